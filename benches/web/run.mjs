// Runs bench.html in headless Chromium (the same browser as the tests) and prints its table.
// Usage: node benches/web/run.mjs [search|taxa|peer|gpu] [--runs N] [--warmup N] [--engines a,b[+q8][@threads]]
//        [--weights model.safetensors|folder (gpu)] [--out file.json]
//
// `gpu` counts the WebGPU work per call (#18): dispatches, passes, submits, readbacks, bytes,
// pipelines, buffer peak, for fieldclip and (where its files are here) transformers.js on the
// same ONNX model. Weights: --weights, else the random ViT-B/32 below, else tests/data/tiny
// (said in the table and in the JSON's "model").
//
// `peer` compares fieldclip with transformers.js (ONNX Runtime Web) on the same random
// full-size ViT-B/32, each on WebGPU and on the CPU (wasm). It needs:
//   - the safetensors weights: $FIELDCLIP_VITB32_WEIGHTS, default
//     ~/.cache/fieldclip-oracle/vitb32-random/model.safetensors (`make_oracle.py models`);
//   - the ONNX towers next to them in onnx/ (`make_oracle.py onnx`);
//   - npm's @huggingface/transformers, installed here into benches/web/peer/ on first use;
//   - for an engine `fieldclip-…+q8`: the q8 model pack of the same weights, made next to them
//     on first use (`cargo run --bin fieldclip -- pack`).
// Pages are served cross-origin isolated (COOP/COEP), so ONNX Runtime may use its threads.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, stat, symlink, writeFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { browser, serve } from '../../tests/e2e/webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const suite = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) || 'search';
const out = resolve(option('--out', join(root, `benches/results/web-${suite}.json`)));
const PEER_VERSION = '4.3.2';

/** transformers.js, and a model folder in its layout over the oracle's ONNX export. */
async function preparePeer(packs) {
  const peer = join(root, 'benches/web/peer');
  if (!existsSync(join(peer, 'node_modules/@huggingface/transformers/package.json'))) {
    await mkdir(peer, { recursive: true });
    console.log(`installing @huggingface/transformers@${PEER_VERSION} (npm)…`);
    // --ignore-scripts/--omit=optional: only the browser bundle and ONNX Runtime Web's files
    // are needed, no native Node add-ons.
    execFileSync('npm', ['install', '--prefix', peer, '--no-save', '--no-audit', '--no-fund', '--ignore-scripts',
      '--omit=optional', `@huggingface/transformers@${PEER_VERSION}`], { stdio: 'inherit' });
  }
  const weights = process.env.FIELDCLIP_VITB32_WEIGHTS || join(homedir(), '.cache/fieldclip-oracle/vitb32-random/model.safetensors');
  const onnx = join(dirname(weights), 'onnx');
  for (const f of [weights, join(onnx, 'clip_vision.onnx'), join(onnx, 'clip_text.onnx')]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: make it with ../shared/oracle/make_oracle.py (stages models, onnx)`);
  }
  const models = join(homedir(), '.cache/fieldclip-bench/models');
  await rm(models, { recursive: true, force: true });
  const fc = join(models, 'vitb32');
  const tj = join(models, 'transformers-js-vitb32');
  await mkdir(fc, { recursive: true });
  await mkdir(join(tj, 'onnx'), { recursive: true });
  await symlink(weights, join(fc, 'model.safetensors'));
  await copyFile(join(root, 'tests/data/vitb32/config.json'), join(fc, 'config.json'));
  // (the config next to the weights goes into the pack)
  for (const dtype of packs) {
    const pack = join(dirname(weights), `model.${dtype}.fcpk`);
    if (!existsSync(pack)) {
      console.log(`making the ${dtype} pack ${pack}…`);
      execFileSync('cargo', ['run', '--quiet', '--bin', 'fieldclip', '--', 'pack', '--weights', join(fc, 'model.safetensors'), '--dtype', dtype, '-o', pack], { cwd: root, stdio: 'inherit' });
    }
    await symlink(pack, join(fc, `model.${dtype}.fcpk`));
  }
  await copyFile(join(root, 'tests/data/vitb32/config.json'), join(tj, 'config.json'));
  await copyFile(join(root, 'assets/tokenizer.json'), join(tj, 'tokenizer.json'));
  await writeFile(join(tj, 'tokenizer_config.json'), JSON.stringify({
    tokenizer_class: 'CLIPTokenizer', model_max_length: 77, do_lower_case: true,
    bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', unk_token: '<|endoftext|>',
  }));
  await writeFile(join(tj, 'preprocessor_config.json'), JSON.stringify({
    image_processor_type: 'CLIPImageProcessor', feature_extractor_type: 'CLIPFeatureExtractor',
    do_resize: true, size: { shortest_edge: 224 }, resample: 3, do_center_crop: true, crop_size: { height: 224, width: 224 },
    do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, do_convert_rgb: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  }));
  await symlink(join(onnx, 'clip_vision.onnx'), join(tj, 'onnx/vision_model.onnx'));
  await symlink(join(onnx, 'clip_text.onnx'), join(tj, 'onnx/text_model.onnx'));
  return { '/node_modules/': join(peer, 'node_modules'), '/bench-models/': models };
}

/**
 * Peak and current resident memory (MB) of Chromium's renderer processes: the bench tab's
 * process (its page and workers) is the largest one (this runner opens one tab at a time).
 */
async function rendererMemory() {
  let best = null;
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!/chrom/.test(cmdline) || !cmdline.includes('--type=renderer')) continue;
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kb = (field) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] || 0);
    if (!best || kb('VmHWM') > best.peak) best = { peak: kb('VmHWM'), now: kb('VmRSS') };
  }
  return best && { peak: best.peak / 1024, now: best.now / 1024 };
}

async function runPage(server, query) {
  const page = await browser();
  try {
    await page.goto(`${server.url}bench.html?${query}`);
    // The page holds before and after loading the model (`benchHold`) until the runner has
    // read the tab process's memory (`benchGo`).
    let before = null;
    const memoryRows = [];
    for (;;) {
      const state = await page.waitFor('return window.benchResult ? "done" : (window.benchHold !== window.benchGo && window.benchHold);', query, 3600e3);
      if (state === 'done') break;
      const memory = await rendererMemory();
      if (state === 'before') before = memory;
      if (state === 'loaded' && memory) {
        memoryRows.push({ what: 'tab process peak memory while loading (renderer, resident)', median: memory.peak, unit: 'MB', runs: 1 });
        if (before) memoryRows.push({ what: 'of which loading added (peak minus before loading)', median: memory.peak - before.now, unit: 'MB', runs: 1 });
      }
      await page.run(`window.benchGo = ${JSON.stringify(state)};`);
    }
    const result = await page.run('return window.benchResult;');
    if (result.error) throw new Error(`${query}: ${result.error}`);
    result.rows.splice(result.rows.findIndex((r) => r.what === 'load to first result') + 1, 0, ...memoryRows);
    return result;
  } finally {
    await page.close();
  }
}

/** A model's shape from its config.json, for the table's title. */
async function modelName(config, fallback) {
  try {
    const c = JSON.parse(await readFile(config, 'utf8'));
    const v = c.vision_config || {};
    const t = c.text_config || {};
    return `${fallback}: vision ${v.num_hidden_layers} layers × ${v.hidden_size} wide, patch ${v.patch_size}, ${v.image_size} px; text ${t.num_hidden_layers} layers × ${t.hidden_size} wide`;
  } catch {
    return fallback;
  }
}

/** `gpu`: WebGPU work per call of each engine, one fresh page each; the table, and the JSON. */
async function gpuSuite() {
  const runs = option('--runs', '3');
  const warmup = option('--warmup', '1');
  const vitb32 = process.env.FIELDCLIP_VITB32_WEIGHTS || join(homedir(), '.cache/fieldclip-oracle/vitb32-random/model.safetensors');
  let weights = option('--weights', null);
  let note = '';
  if (weights) {
    weights = resolve(weights);
    if (existsSync(weights) && (await stat(weights)).isDirectory()) weights = join(weights, 'model.safetensors');
    if (!existsSync(weights)) throw new Error(`${weights} is missing`);
  } else if (existsSync(vitb32)) {
    weights = vitb32;
  } else {
    weights = join(root, 'tests/data/tiny/model.safetensors');
    note = `${vitb32} is missing (FIELDCLIP_VITB32_WEIGHTS), so the tiny test model stands in: the same ops per layer, far fewer layers and narrower; counts are not the full model's`;
    console.log(`note: ${note}`);
  }
  const isVitb32 = weights === resolve(vitb32);
  const config = isVitb32 ? join(root, 'tests/data/vitb32/config.json') : join(dirname(weights), 'config.json');
  const model = await modelName(config, isVitb32 ? 'random ViT-B/32 (full size)' : weights.startsWith(root) ? weights.slice(root.length + 1) : weights);
  // The peer needs the ONNX export of the same model, and transformers.js (npm, installed on first use).
  const onnx = join(dirname(vitb32), 'onnx');
  let peerSkipped = null;
  if (!isVitb32) peerSkipped = 'transformers.js needs the ONNX export of the same model; there is one only for the random ViT-B/32, which is not the model profiled';
  else if (!existsSync(join(onnx, 'clip_vision.onnx')) || !existsSync(join(onnx, 'clip_text.onnx'))) peerSkipped = `${onnx}/clip_{vision,text}.onnx are missing (make_oracle.py onnx)`;
  let mounts = { '/gpu-model/': dirname(weights) };
  let weightsUrl = `/gpu-model/${basename(weights)}`;
  let configUrl = '/gpu-model/config.json';
  if (!peerSkipped) {
    mounts = await preparePeer([]);
    weightsUrl = '/bench-models/vitb32/model.safetensors';
    configUrl = '/bench-models/vitb32/config.json';
  } else {
    console.log(`transformers.js not run: ${peerSkipped}`);
  }
  const engines = peerSkipped ? ['fieldclip'] : ['fieldclip', 'transformers.js'];
  const server = await serve(root, { mounts });
  const byEngine = {};
  try {
    for (const engine of engines) {
      console.log(`running ${engine}…`);
      const query = `suite=gpu&engine=${encodeURIComponent(engine)}&runs=${runs}&warmup=${warmup}&weights=${encodeURIComponent(weightsUrl)}&config=${encodeURIComponent(configUrl)}`;
      byEngine[engine] = await runPage(server, query);
    }
  } finally {
    await server.close();
  }
  const rows = engines.flatMap((engine) => byEngine[engine].gpu.rows.map((r) => ({ engine, ...r })));
  const adapters = [...new Set(engines.map((e) => byEngine[e].gpu.adapter || 'adapter not named'))].join('; ');
  const mb = (b) => `${(b / 1e6).toFixed(b < 1e7 ? 2 : 1)} MB`;
  const kb = (b) => (b < 1e6 ? `${(b / 1e3).toFixed(1)} kB` : mb(b));
  const lines = [
    `WebGPU work per call — model: ${model}${note ? ' (stand-in)' : ''}; adapter: ${adapters}; ms: median of ${runs} after ${warmup} warm-up (+ the first call)${peerSkipped ? '; transformers.js not run' : ''}`,
    '',
    '| engine | case | dispatches | passes | submits | readbacks | pipelines, first call | pipelines, later calls | bytes written | bytes read | peak buffer bytes (live, incl. weights) | ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.engine} | ${r.case} | ${r.dispatches} | ${r.passes} | ${r.submits} | ${r.readbacks} | ${r.pipelines_first} | ${r.pipelines_later} | ${kb(r.bytes_written)} | ${kb(r.bytes_read)} | ${mb(r.peak_buffer_bytes)} | ${r.ms.toFixed(1)} |`),
  ];
  for (const e of engines) {
    const l = byEngine[e].gpu.load;
    lines.push('', `${e} loading: ${l.pipelines} pipelines, ${l.buffers_created} buffers, ${kb(l.bytes_written)} written, ${mb(l.live_buffer_bytes)} of buffers live after it, ${l.ms.toFixed(0)} ms`);
    const varying = byEngine[e].gpu.rows.filter((r) => r.varying);
    if (varying.length) lines.push(`${e}: counts that changed between later calls (the last call's shown): ${varying.map((r) => `${r.case}: ${r.varying.join(', ')}`).join('; ')}`);
  }
  console.log(`\n${lines.join('\n')}`);
  const any = Object.values(byEngine)[0];
  return {
    suite, model, ...(note ? { note } : {}), adapter: adapters, userAgent: any.userAgent, runs: Number(runs), warmup: Number(warmup),
    peer: peerSkipped ? { skipped: peerSkipped } : `@huggingface/transformers@${PEER_VERSION}`,
    table: lines,
    rows: rows.map(({ first_call: _, runs: __, ...r }) => r),
    load: Object.fromEntries(engines.map((e) => [e, byEngine[e].gpu.load])),
    first_calls: rows.map((r) => ({ engine: r.engine, case: r.case, ...r.first_call })),
  };
}

const fmt = (r) => `${r.median.toFixed(r.unit === 'ms' ? 1 : 0)} ${r.unit}`;
let result;
if (suite === 'peer') {
  // `name@N`: the engine with N threads (fieldclip's CPU backend, or ONNX Runtime's wasm);
  // `fieldclip-…+q8`: fieldclip loading the q8 model pack instead of the f32 safetensors.
  const engines = option('--engines', 'fieldclip-webgpu,peer-webgpu,fieldclip-cpu,peer-wasm').split(',');
  const packs = [...new Set(engines.map((e) => e.split('@')[0].split('+')[1]).filter(Boolean))];
  const mounts = await preparePeer(packs);
  const headers = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
  const server = await serve(root, { mounts, headers });
  const runs = option('--runs', '10');
  const warmup = option('--warmup', '2');
  const byEngine = {};
  try {
    for (const engine of engines) {
      const [spec, threads] = engine.split('@');
      const [name, pack] = spec.split('+');
      console.log(`running ${engine}…`);
      byEngine[engine] = await runPage(server, `suite=peer&engine=${name}&runs=${runs}&warmup=${warmup}${threads ? `&threads=${threads}` : ''}${pack ? `&pack=${pack}` : ''}`);
      console.log(`  threads: ${byEngine[engine].threads ?? '?'}${byEngine[engine].cpu ? ` (${byEngine[engine].cpu})` : ''}`);
      for (const r of byEngine[engine].rows) console.log(`  ${r.what}: ${fmt(r)}`);
    }
  } finally {
    await server.close();
  }
  const whats = byEngine[engines[0]].rows.map((r) => r.what);
  const cell = (engine, what) => byEngine[engine]?.rows.find((r) => r.what === what);
  const ratio = (a, b, what) => (cell(a, what) && cell(b, what) ? `${(cell(a, what).median / cell(b, what).median).toFixed(2)}×` : '–');
  // Each fieldclip engine against the peer on the same backend (its default threads).
  const pairs = engines.filter((e) => e.startsWith('fieldclip-')).map((e) => [e, e.startsWith('fieldclip-webgpu') ? 'peer-webgpu' : 'peer-wasm']).filter(([, p]) => engines.includes(p));
  const title = (e) => (byEngine[e]?.threads && !e.includes('webgpu') ? `${e} (${byEngine[e].threads} thr.)` : e);
  const lines = [
    `| full-size ViT-B/32, fp32, medians of ${runs} after ${warmup} warm-up | ${engines.map(title).join(' | ')} |${pairs.map(([a, b]) => ` ${a} / ${b} |`).join('')}`,
    `| --- |${engines.map(() => ' --- |').join('')}${pairs.map(() => ' --- |').join('')}`,
    ...whats.map((what) => `| ${what} | ${engines.map((e) => (cell(e, what) ? fmt(cell(e, what)) : '–')).join(' | ')} |${pairs.map(([a, b]) => ` ${ratio(a, b, what)} |`).join('')}`),
  ];
  console.log(`\n${lines.join('\n')}`);
  const any = Object.values(byEngine)[0];
  result = { suite, userAgent: any.userAgent, crossOriginIsolated: any.crossOriginIsolated, peer: `@huggingface/transformers@${PEER_VERSION}`, table: lines, engines: byEngine };
} else if (suite === 'gpu') {
  result = await gpuSuite();
} else {
  const server = await serve(root);
  try {
    result = await runPage(server, `suite=${suite}`);
  } finally {
    await server.close();
  }
  const width = Math.max(...result.rows.map((r) => r.what.length));
  console.log(`${suite} — ${result.userAgent}`);
  for (const r of result.rows) console.log(`${r.what.padEnd(width)}  ${fmt(r).padStart(12)}${r.runs > 1 ? ` (median of ${r.runs})` : ''}`);
}
await mkdir(dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ date: new Date().toISOString(), ...result }, null, 1)}\n`);
console.log(`written to ${out}`);
