// Runs bench.html in headless Chromium (the same browser as the tests) and prints its table.
// Usage: node benches/web/run.mjs [search|taxa|cpu|peer|gpu|kernels] [--runs N] [--warmup N] [--rounds N]
//        [--engines spec,spec… (gpu: fieldclip,transformers.js)] [--classify] [--peer-main-thread]
//        [--weights model.safetensors|folder (gpu)] [--cases 'image b1,…' (gpu)] [--order (gpu)] [--out file.json]
//
// `kernels` times the packed matmul alone on ViT-B/32's dense shapes, f32 and int8, against the
// SIMD peak of the same build (a loop of independent multiply-adds or int8 dot products), one
// thread, in pkg/ (SIMD128) and pkg-threads/ (relaxed SIMD) (#17; www/bench-kernels.js).
//
// `gpu` counts the WebGPU work per call (#18): dispatches, passes, submits, readbacks, bytes,
// pipelines, buffer peak, for fieldclip and (where its files are here) transformers.js (fp32,
// its default on WebGPU) on the same model. Weights: --weights (a file, or an HF CLIP folder:
// config.json + model.safetensors), else the random ViT-B/32 below, else tests/data/tiny (said
// in the table and in the JSON's "model"). transformers.js runs the ONNX export of the same
// weights: the oracle's for the ViT-B/32 (below), for any other model the one
// benches/web/export_peer_onnx.py makes into ~/.cache/fieldclip-bench/onnx/<folder>-<sha256 of
// the weights>/; where it is missing the run prints the command that makes it (the oracle's
// Python, ~/.cache/oracle-venv) and profiles fieldclip alone. `--engines fieldclip` or
// `--engines transformers.js`: one engine only (for development).
//
// `cpu` (#17) is THE comparison on the CPU: fieldclip against transformers.js as its users get
// it, on the same random full-size ViT-B/32, at equal settings. 8 engines: fieldclip f32
// (safetensors) and q8 (model pack), transformers.js dtype 'fp32' and 'q8' (its default on
// wasm; `onnx/*_quantized.onnx`, dynamic int8), each at 1 and 2 threads (fieldclip's pool in
// the build www/wasm.js picks, reported; ONNX Runtime's numThreads); text padded to the batch's longest
// prompt as transformers.js's zero-shot pipeline does (fieldclip cuts to the longest end-of-text).
// Engines alternate in rounds (each round runs every engine once, in order, each in a fresh
// browser: load, warm-up, timed runs), so drift hits all of them. Cases: image batch 1, image
// batch 8, 30 prompts: median and min over every round's runs; load to first result and the tab
// process's peak memory (VmHWM), medians over the rounds; ratios fieldclip / transformers.js
// per pair (same dtype, same threads). Defaults: --rounds 3 --runs 5 --warmup 2. Writes
// benches/results/web-cpu.json ({rows, load_ms, peak_memory_mb, ratios, table, threads, pages}).
// Builds (rustc, wasm-opt) running on the machine during the run are reported as disturbing it.
//
// `peer` is the same runner with other defaults: engines fieldclip-webgpu, peer-webgpu,
// fieldclip-cpu, peer-wasm (each engine's default threads), 1 round of 10 runs, and the 4th case
// (classifying a photo after editing one label; in `cpu` with --classify).
// An engine spec is `<fieldclip-cpu|fieldclip-webgpu|peer-wasm|peer-webgpu>[+f32|+q8][@threads]`.
// Both engines run in a Web Worker (--peer-main-thread: transformers.js on the page's thread).
//
// `cpu` and `peer` need:
//   - the safetensors weights: $FIELDCLIP_VITB32_WEIGHTS, default
//     ~/.cache/fieldclip-oracle/vitb32-random/model.safetensors (`make_oracle.py models`);
//   - the ONNX towers next to them in onnx/: clip_vision.onnx (`make_oracle.py onnx`),
//     clip_text_dyn.onnx (a dynamic sequence axis) and, for q8, clip_vision_quantized.onnx and
//     clip_text_dyn_quantized.onnx (`../shared/oracle/make_peer_onnx.py`); linked into
//     transformers.js's layout as onnx/{vision,text}_model[_quantized].onnx (PEER_FILES below);
//   - npm's @huggingface/transformers, installed here into benches/web/peer/ on first use;
//   - for fieldclip q8: the q8 model pack of the same weights next to them (model.q8.fcpk); where
//     it is missing the run stops and prints the `cargo run … pack` command that makes it;
//   - the page's WebAssembly built (pkg/, pkg-threads/; scripts/bench-web.sh builds the release).
// Pages are served cross-origin isolated (COOP/COEP), so both engines may use threads.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, stat, symlink, writeFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { browser, serve } from '../../tests/e2e/webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
// Ctrl-C or a timeout: exit through 'exit', where webdriver.mjs kills the browsers it started.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const VALUED = ['--runs', '--warmup', '--rounds', '--engines', '--weights', '--out', '--browser'];
// Which browser runs the pages: chromium (default), firefox or webkit (tests/e2e/webdriver.mjs).
const BROWSER = option('--browser', 'chromium');
const suite = args.find((a, i) => !a.startsWith('--') && !VALUED.includes(args[i - 1])) || 'search';
const out = resolve(option('--out', join(root, `benches/results/web-${suite}.json`)));
const PEER_VERSION = '4.3.2';

/** Where the oracle's random full-size ViT-B/32 and its ONNX export are. */
function vitb32Paths() {
  const weights = process.env.FIELDCLIP_VITB32_WEIGHTS || join(homedir(), '.cache/fieldclip-oracle/vitb32-random/model.safetensors');
  return { weights, onnx: join(dirname(weights), 'onnx') };
}

/**
 * The ONNX files of transformers.js's model folder, as `onnx/<name><suffix>.onnx` ←
 * the export's file. transformers.js 4.3.2 picks `<model_file_name><suffix>.onnx` in `onnx/`,
 * the suffix from its dtype (src/utils/dtypes.js, DEFAULT_DTYPE_SUFFIX_MAPPING: fp32 '',
 * q8 '_quantized'). The text tower is the export with a dynamic sequence axis, so prompts can
 * be padded to the batch's longest as the zero-shot pipeline does (the static one takes 77).
 */
const PEER_FILES = {
  fp32: { 'vision_model.onnx': 'clip_vision.onnx', 'text_model.onnx': 'clip_text_dyn.onnx' },
  q8: { 'vision_model_quantized.onnx': 'clip_vision_quantized.onnx', 'text_model_quantized.onnx': 'clip_text_dyn_quantized.onnx' },
};

/** The oracle's Python (torch, transformers, onnx, onnxruntime), which makes the ONNX exports. */
const ORACLE_PYTHON = join(homedir(), '.cache/oracle-venv/bin/python');
/** Where export_peer_onnx.py's exports of models other than the oracle's ViT-B/32 are looked for. */
const ONNX_CACHE = join(homedir(), '.cache/fieldclip-bench/onnx');
/** The model folders the pages load, remade by each run (served as /bench-models/). */
const MODELS = join(homedir(), '.cache/fieldclip-bench/models');

async function sha256(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

/**
 * A model both engines run: `weights` (safetensors) and `config` (HF CLIP config.json) for
 * fieldclip; `onnx`, the folder of its ONNX export (PEER_FILES' right-hand names) for
 * transformers.js, and `makeOnnx(dtypes)`, how to make that export; `key`, its folders'
 * names under MODELS: `<key>/` (fieldclip's) and `transformers-js-<key>/` (transformers.js's).
 */
function vitb32Model() {
  const { weights, onnx } = vitb32Paths();
  return {
    key: 'vitb32', name: 'random ViT-B/32 (full size)', weights, onnx, config: join(root, 'tests/data/vitb32/config.json'),
    makeOnnx: () => 'make them with ../shared/oracle/make_oracle.py onnx, then ../shared/oracle/make_peer_onnx.py',
  };
}

/**
 * Any other HF CLIP folder (config.json + model.safetensors, e.g. tests/data/tiny): its ONNX
 * export is looked for in ONNX_CACHE/<folder name>-<sha256 of the weights, 12 digits>/, made by
 * benches/web/export_peer_onnx.py (the hash of the weights' bytes, so an export never stands in
 * for other weights at the same path).
 */
async function folderModel(weights) {
  const folder = dirname(weights);
  const key = `${basename(folder)}-${(await sha256(weights)).slice(0, 12)}`;
  const onnx = join(ONNX_CACHE, key);
  const name = weights.startsWith(`${root}/`) ? weights.slice(root.length + 1) : weights;
  const unusable = basename(weights) !== 'model.safetensors' || !existsSync(join(folder, 'config.json'))
    ? `the ONNX export needs a Hugging Face CLIP folder (config.json + model.safetensors); ${weights} is not in one` : null;
  return {
    key, name, weights, onnx, config: join(folder, 'config.json'), unusable,
    makeOnnx: (dtypes) => `make them (seconds for the tiny model, minutes for a ViT-B/32) with\n\n  ${ORACLE_PYTHON} ${join(root, 'benches/web/export_peer_onnx.py')} ${folder} ${onnx}${dtypes.includes('q8') ? ' --quantize' : ''}\n`,
  };
}

/**
 * Why transformers.js cannot run `model` at `dtypes` (its ONNX files missing, or an export whose
 * check against PyTorch failed), with how to make them; null when it can.
 */
function peerMissing(model, dtypes) {
  if (model.unusable) return model.unusable;
  const missing = dtypes.flatMap((d) => Object.values(PEER_FILES[d])).map((f) => join(model.onnx, f)).filter((f) => !existsSync(f));
  if (missing.length) return `${missing.join(', ')} missing: ${model.makeOnnx(dtypes)}`;
  const report = join(model.onnx, 'export_report.json');
  if (existsSync(report) && JSON.parse(readFileSync(report, 'utf8')).ok === false) {
    return `the export in ${model.onnx} disagreed with PyTorch (${report}): ${model.makeOnnx(dtypes)}`;
  }
  return null;
}

/** transformers.js (npm, installed into benches/web/peer/ on first use); its node_modules folder. */
async function installPeer() {
  const peer = join(root, 'benches/web/peer');
  if (!existsSync(join(peer, 'node_modules/@huggingface/transformers/package.json'))) {
    await mkdir(peer, { recursive: true });
    console.log(`installing @huggingface/transformers@${PEER_VERSION} (npm)…`);
    // --ignore-scripts/--omit=optional: only the browser bundle and ONNX Runtime Web's files
    // are needed, no native Node add-ons.
    execFileSync('npm', ['install', '--prefix', peer, '--no-save', '--no-audit', '--no-fund', '--ignore-scripts',
      '--omit=optional', `@huggingface/transformers@${PEER_VERSION}`], { stdio: 'inherit', timeout: 600e3 });
  }
  const installed = JSON.parse(await readFile(join(peer, 'node_modules/@huggingface/transformers/package.json'), 'utf8')).version;
  if (installed !== PEER_VERSION) throw new Error(`benches/web/peer holds @huggingface/transformers ${installed}, not ${PEER_VERSION}: delete benches/web/peer and run again`);
  return join(peer, 'node_modules');
}

/**
 * Model folders over the same weights, under MODELS (served as /bench-models/): fieldclip's,
 * `<key>/` (the safetensors, its config, and the model packs in `packs`), and, where
 * `peerDtypes` ('fp32', 'q8') is not empty, transformers.js's, `transformers-js-<key>/` (the
 * model's ONNX export in its layout, with its config, tokenizer and image preprocessor), with
 * transformers.js itself (/node_modules/). A pack that is missing is not made here (that is a
 * cargo build): the command is printed and the run stops; missing ONNX files stop it too.
 */
async function prepareModels(model, { packs = [], peerDtypes = [] } = {}) {
  if (!existsSync(model.weights)) throw new Error(`${model.weights} is missing${model.key === 'vitb32' ? ': make it with ../shared/oracle/make_oracle.py models (or set FIELDCLIP_VITB32_WEIGHTS)' : ''}`);
  const missing = peerDtypes.length ? peerMissing(model, peerDtypes) : null;
  if (missing) throw new Error(missing);
  const mounts = { '/bench-models/': MODELS };
  if (peerDtypes.length) mounts['/node_modules/'] = await installPeer();
  await rm(MODELS, { recursive: true, force: true });
  const fc = join(MODELS, model.key);
  await mkdir(fc, { recursive: true });
  await symlink(model.weights, join(fc, 'model.safetensors'));
  await copyFile(model.config, join(fc, 'config.json'));
  // (the config next to the weights goes into the pack)
  for (const dtype of packs) {
    const pack = join(dirname(model.weights), `model.${dtype}.fcpk`);
    if (!existsSync(pack)) {
      const from = existsSync(join(dirname(model.weights), 'config.json')) ? model.weights : join(fc, 'model.safetensors');
      console.error(`The ${dtype} model pack ${pack} is missing. Make it (a cargo build) with\n\n`
        + `  cargo run --release --bin fieldclip -- pack --weights ${from} --dtype ${dtype} -o ${pack}\n\n`
        + 'in this repository, then run this command again.');
      process.exit(2);
    }
    await symlink(pack, join(fc, `model.${dtype}.fcpk`));
  }
  if (!peerDtypes.length) return mounts;
  const tj = join(MODELS, `transformers-js-${model.key}`);
  await mkdir(join(tj, 'onnx'), { recursive: true });
  const config = JSON.parse(await readFile(model.config, 'utf8'));
  const size = config.vision_config?.image_size ?? 224;
  await copyFile(model.config, join(tj, 'config.json'));
  await copyFile(join(root, 'assets/tokenizer.json'), join(tj, 'tokenizer.json'));
  await writeFile(join(tj, 'tokenizer_config.json'), JSON.stringify({
    tokenizer_class: 'CLIPTokenizer', model_max_length: config.text_config?.max_position_embeddings ?? 77, do_lower_case: true,
    bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', unk_token: '<|endoftext|>',
  }));
  await writeFile(join(tj, 'preprocessor_config.json'), JSON.stringify({
    image_processor_type: 'CLIPImageProcessor', feature_extractor_type: 'CLIPFeatureExtractor',
    do_resize: true, size: { shortest_edge: size }, resample: 3, do_center_crop: true, crop_size: { height: size, width: size },
    do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, do_convert_rgb: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  }));
  for (const dtype of peerDtypes) {
    for (const [name, file] of Object.entries(PEER_FILES[dtype])) await symlink(join(model.onnx, file), join(tj, 'onnx', name));
  }
  return mounts;
}

/** The process group of each running chromedriver (it leads its own: tests/e2e/webdriver.mjs). */
async function chromedrivers() {
  const pids = new Set();
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (/^\d+$/.test(pid) && (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'chromedriver') pids.add(pid);
  }
  return pids;
}

/**
 * Peak and current resident memory (MB) of Chromium's renderer processes: the bench tab's
 * process (its page and workers) is the largest one (this runner opens one tab at a time).
 * `group`: only the renderers of this process group (this run's chromedriver and its
 * Chromium), so another browser on the machine is not counted; all renderers if none is in it.
 */
async function rendererMemory(group) {
  const found = [];
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!/chrom/.test(cmdline) || !cmdline.includes('--type=renderer')) continue;
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const kb = (field) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] || 0);
    // Field 5 of stat (after the command's parenthesis) is the process group.
    found.push({ peak: kb('VmHWM'), now: kb('VmRSS'), group: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2] });
  }
  const ours = found.filter((p) => p.group === group);
  const pool = ours.length ? ours : found;
  const best = pool.reduce((a, b) => (!a || b.peak > a.peak ? b : a), null);
  return best && { peak: best.peak / 1024, now: best.now / 1024, scope: ours.length ? 'this browser' : 'every renderer on the machine' };
}

async function runPage(server, query) {
  const drivers = await chromedrivers();
  const page = await browser({ engine: BROWSER });
  const ours = [...(await chromedrivers())].filter((pid) => !drivers.has(pid));
  const group = ours.length === 1 ? ours[0] : null;
  try {
    await page.goto(`${server.url}bench.html?${query}`);
    // The page holds before and after loading the model (`benchHold`) until the runner has
    // read the tab process's memory (`benchGo`).
    let before = null;
    let loaded = null;
    const memoryRows = [];
    for (;;) {
      const state = await page.waitFor('return window.benchResult ? "done" : (window.benchHold !== window.benchGo && window.benchHold);', query, 3600e3);
      if (state === 'done') break;
      // Only Chromium's tab process is found and read (its renderer's command line).
      const memory = BROWSER === 'chromium' ? await rendererMemory(group) : null;
      if (state === 'before') before = memory;
      if (state === 'loaded' && memory) {
        loaded = memory;
        memoryRows.push({ what: 'tab process peak memory while loading (renderer, resident)', median: memory.peak, unit: 'MB', runs: 1 });
        if (before) memoryRows.push({ what: 'of which loading added (peak minus before loading)', median: memory.peak - before.now, unit: 'MB', runs: 1 });
      }
      await page.run(`window.benchGo = ${JSON.stringify(state)};`);
    }
    const result = await page.run('return window.benchResult;');
    if (result.error) throw new Error(`${query}: ${result.error}`);
    // The process's high-water mark now: its peak over the whole page (loading and every run).
    const end = BROWSER === 'chromium' ? await rendererMemory(group) : null;
    if (before || loaded) result.memory = { before, loaded, end };
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

/** The engines of `gpu`, in their order (`--engines` picks some of them, for development). */
const GPU_ENGINES = ['fieldclip', 'transformers.js'];
/** Its cases (`--cases` picks some of them). */
const GPU_CASES = ['image b1', 'image b8', '30 prompts'];

/** `gpu`: WebGPU work per call of each engine, one fresh page each; the table, and the JSON. */
async function gpuSuite() {
  const runs = option('--runs', '3');
  const warmup = option('--warmup', '1');
  let engines = option('--engines', GPU_ENGINES.join(',')).split(',').map((e) => e.trim()).filter(Boolean);
  const unknown = engines.filter((e) => !GPU_ENGINES.includes(e));
  if (unknown.length || !engines.length) throw new Error(`--engines ${engines.join(',')}: gpu's engines are ${GPU_ENGINES.join(', ')}`);
  engines = GPU_ENGINES.filter((e) => engines.includes(e));
  // --cases: some of the cases only (the full model on a software adapter: one image is minutes).
  const cases = option('--cases', GPU_CASES.join(',')).split(',').map((c) => c.trim()).filter(Boolean);
  if (!cases.length || cases.some((c) => !GPU_CASES.includes(c))) throw new Error(`--cases ${cases.join(',')}: gpu's cases are ${GPU_CASES.join(', ')}`);
  const vitb32 = resolve(vitb32Paths().weights);
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
  const m = weights === vitb32 ? vitb32Model() : await folderModel(weights);
  const model = await modelName(m.config, m.name);
  // The peer runs the ONNX export of the same model (vitb32: the oracle's; any other: made by
  // export_peer_onnx.py into ONNX_CACHE), fp32 only: the dtype transformers.js 4.3.2 picks by
  // default on 'webgpu' (src/utils/dtypes.js: DEFAULT_DEVICE_DTYPE_MAPPING names only wasm → q8,
  // every other device gets DEFAULT_DEVICE_DTYPE, fp32; the configs here set no
  // transformers.js_config.dtype), and the one www/bench.js asks for.
  const peerDtype = 'fp32';
  let peerSkipped = null;
  if (!engines.includes('transformers.js')) peerSkipped = 'not asked (--engines)';
  else if ((peerSkipped = peerMissing(m, [peerDtype]))) {
    console.log(`transformers.js not run: ${peerSkipped}`);
    engines = engines.filter((e) => e !== 'transformers.js');
    if (!engines.length) throw new Error('nothing to run: transformers.js was the only engine asked for (--engines)');
  }
  const mounts = await prepareModels(m, { peerDtypes: peerSkipped ? [] : [peerDtype] });
  const weightsUrl = `/bench-models/${m.key}/model.safetensors`;
  const configUrl = `/bench-models/${m.key}/config.json`;
  const peerModel = `transformers-js-${m.key}`;
  const size = JSON.parse(await readFile(m.config, 'utf8')).vision_config?.image_size ?? 224;
  const server = await serve(root, { mounts });
  const byEngine = {};
  try {
    for (const engine of engines) {
      console.log(`running ${engine}…`);
      const query = new URLSearchParams({ suite: 'gpu', engine, runs, warmup, weights: weightsUrl, config: configUrl, peerModel, size, cases: cases.join(',') }).toString();
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
    `WebGPU work per call — model: ${model}${note ? ' (stand-in)' : ''}; adapter: ${adapters}; ms: median of ${runs} after ${warmup} warm-up (+ the first call)`
      + GPU_ENGINES.filter((e) => !engines.includes(e)).map((e) => `; ${e} not run (${e === 'transformers.js' && peerSkipped !== 'not asked (--engines)' ? 'its ONNX files are missing: "peer" in the JSON' : '--engines'})`).join(''),
    '',
    '| engine | case | dispatches | passes | submits | readbacks | pipelines, first call | pipelines, later calls | bytes written | bytes read | peak buffer bytes (live, incl. weights) | ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.engine} | ${r.case} | ${r.dispatches} | ${r.passes} | ${r.submits} | ${r.readbacks} | ${r.pipelines_first} | ${r.pipelines_later} | ${kb(r.bytes_written)} | ${kb(r.bytes_read)} | ${mb(r.peak_buffer_bytes)} | ${r.ms.toFixed(1)} |`),
  ];
  for (const e of engines) {
    const { load: l, ran } = byEngine[e].gpu;
    // What transformers.js reports it ran (its sessions' device and dtype), and from which export.
    if (ran) lines.push('', `${e} ran: device ${ran.device}, dtype vision ${ran.dtype?.vision} / text ${ran.dtype?.text}, ONNX Runtime Web ${ran.ort}, ${ran.library}; ONNX export in ${m.onnx}`);
    lines.push('', `${e} loading: ${l.pipelines} pipelines, ${l.buffers_created} buffers, ${kb(l.bytes_written)} written, ${mb(l.live_buffer_bytes)} of buffers live after it, ${l.ms.toFixed(0)} ms`);
    const varying = byEngine[e].gpu.rows.filter((r) => r.varying);
    if (varying.length) lines.push(`${e}: counts that changed between later calls (the last call's shown): ${varying.map((r) => `${r.case}: ${r.varying.join(', ')}`).join('; ')}`);
  }
  console.log(`\n${lines.join('\n')}`);
  const any = Object.values(byEngine)[0];
  return {
    suite, model, ...(note ? { note } : {}), adapter: adapters, userAgent: any.userAgent, runs: Number(runs), warmup: Number(warmup),
    engines,
    peer: peerSkipped ? { skipped: peerSkipped }
      : { package: `@huggingface/transformers@${PEER_VERSION}`, dtype: peerDtype, onnx: m.onnx, files: PEER_FILES[peerDtype], ran: byEngine['transformers.js'].gpu.ran },
    table: lines,
    // `order` (every dispatch of the call in turn) only with --order: long, for reading a call.
    rows: rows.map(({ first_call: _, runs: __, order, ...r }) => (args.includes('--order') ? { ...r, order } : r)),
    load: Object.fromEntries(engines.map((e) => [e, byEngine[e].gpu.load])),
    first_calls: rows.map((r) => ({ engine: r.engine, case: r.case, ...r.first_call, order: undefined, kernels: undefined })),
  };
}

const fmt = (r) => `${r.median.toFixed(r.unit === 'ms' ? 1 : 0)} ${r.unit}`;

// ---- `peer` and `cpu`: fieldclip next to transformers.js, engines alternating in rounds ----

/** The timed cases of the table, in its order (bench-common.js / bench-peer.js name them so). */
const CASES = ['image embed, batch 1', 'image embed, batch 8', '30 label prompts'];

/**
 * An engine spec, `<fieldclip|peer>-<cpu|wasm|webgpu>[+f32|+fp32|+q8][@threads]`: fieldclip
 * (`cpu` its CPU backend in WebAssembly, `webgpu`) or transformers.js (`wasm`: ONNX Runtime
 * Web's CPU backend, `webgpu`); `+q8` fieldclip's q8 model pack / transformers.js's dtype 'q8'
 * (default f32 / 'fp32'); `@N` N threads (fieldclip's pool, ONNX Runtime's numThreads; default:
 * each engine's own default).
 */
function parseEngine(spec) {
  const [body, threads] = spec.split('@');
  const [name, dtypeName = 'f32'] = body.split('+');
  const [kind, backend] = name.split('-');
  const ok = (kind === 'fieldclip' && ['cpu', 'webgpu'].includes(backend)) || (kind === 'peer' && ['wasm', 'webgpu'].includes(backend));
  if (!ok || !['f32', 'fp32', 'q8'].includes(dtypeName) || (threads !== undefined && !(Number(threads) >= 1))) {
    throw new Error(`engine ${spec}: expected fieldclip-cpu, fieldclip-webgpu, peer-wasm or peer-webgpu, then +f32 or +q8, then @threads`);
  }
  const dtype = dtypeName === 'q8' ? 'q8' : 'f32';
  const gpu = backend === 'webgpu';
  return {
    spec, kind, backend, dtype, gpu,
    asked: threads === undefined ? null : Number(threads),
    library: kind === 'peer' ? 'transformers.js' : 'fieldclip',
    // fieldclip and transformers.js engines of one pair: the same device, dtype and threads.
    pair: `${gpu ? 'webgpu' : 'cpu'}|${dtype}|${threads ?? ''}`,
  };
}

/** The 8 CPU engines of `cpu`: each pair (same dtype, same threads) side by side, fieldclip first. */
const CPU_ENGINES = [1, 2].flatMap((n) => ['f32', 'q8'].flatMap((d) => [`fieldclip-cpu+${d}@${n}`, `peer-wasm+${d}@${n}`])).join(',');

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/**
 * Other work on this machine while the bench runs (it has few cores, shared with builds): the
 * CPU time of every process outside this run (this node process and the browsers it started,
 * by process group), sampled every 2 s and summed per page; a page during which the others
 * used 0.1 core or more on average, or during which a build (rustc, wasm-opt) was seen, is
 * reported as disturbed.
 */
class LoadWatch {
  static BUILDERS = ['rustc', 'wasm-opt'];

  constructor() {
    this.hz = Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100;
    this.prev = new Map();
    this.page = null;
    this.busy = false;
  }

  async sample() {
    if (this.busy) return;
    this.busy = true;
    const all = [];
    for (const pid of await readdir('/proc').catch(() => [])) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
      if (!stat) continue;
      // After the command: state, ppid, pgrp, …, utime (12th), stime (13th).
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      all.push({ pid, comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ppid: f[1], group: f[2], ticks: Number(f[11]) + Number(f[12]) });
    }
    // This run's browsers: every descendant of a process this one started (chromedriver, and
    // under it Chromium, whose zygote and renderers start process groups and sessions of their
    // own, so the process group alone missed them and counted the run's own browser as other work).
    const parent = new Map(all.map((p) => [p.pid, p.ppid]));
    const isOurs = (pid) => {
      for (let at = pid, hops = 0; at && at !== '0' && hops < 64; at = parent.get(at), hops++) {
        if (Number(parent.get(at)) === process.pid) return true;
      }
      return false;
    };
    // Once ours, always ours: when a page closes, chromedriver may exit before its browser, whose
    // processes then hang under init for a moment (and were counted as other work).
    this.ours ??= new Set();
    for (const p of all) if (isOurs(p.pid) || this.ours.has(p.group)) this.ours.add(p.pid);
    const now = new Map(all.filter((p) => !this.ours.has(p.pid)).map((p) => [p.pid, p]));
    if (this.page) {
      for (const [pid, { comm, ticks }] of now) {
        // A process new since the last sample: all its time is within the page.
        const used = ticks - (this.prev.get(pid)?.ticks ?? 0);
        if (used > 0) this.page.by.set(comm, (this.page.by.get(comm) || 0) + used);
        if (LoadWatch.BUILDERS.includes(comm)) this.page.builders.add(comm);
      }
    }
    this.prev = now;
    this.busy = false;
  }

  async startPage() {
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    await this.sample();
    this.page = { start: Date.now(), by: new Map(), builders: new Set() };
  }

  /** The other processes' average load during the page (cores), the largest of them, builds seen. */
  async endPage() {
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    await this.sample();
    const { start, by, builders } = this.page;
    this.page = null;
    const seconds = (Date.now() - start) / 1000;
    const cores = (ticks) => ticks / this.hz / seconds;
    const top = [...by].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([comm, t]) => ({ comm, cores: Number(cores(t).toFixed(2)) }));
    const total = cores([...by.values()].reduce((x, y) => x + y, 0));
    return { other_cores: Number(total.toFixed(2)), top, builders: [...builders], disturbed: total >= 0.1 || builders.size > 0 };
  }
}

async function peerSuite() {
  const cpu = suite === 'cpu';
  const engines = option('--engines', cpu ? CPU_ENGINES : 'fieldclip-webgpu,peer-webgpu,fieldclip-cpu,peer-wasm').split(',').map(parseEngine);
  const rounds = Number(option('--rounds', cpu ? '3' : '1'));
  const runs = Number(option('--runs', cpu ? '5' : '10'));
  const warmup = Number(option('--warmup', '2'));
  // The 4th case (classifying a photo after editing a label) only where asked, or in `peer`.
  const classify = !cpu || args.includes('--classify');
  const peerMain = args.includes('--peer-main-thread');
  const packs = [...new Set(engines.filter((e) => e.kind === 'fieldclip' && e.dtype === 'q8').map(() => 'q8'))];
  const peerDtypes = [...new Set(engines.filter((e) => e.kind === 'peer').map((e) => (e.dtype === 'q8' ? 'q8' : 'fp32')))];
  const mounts = await prepareModels(vitb32Model(), { packs, peerDtypes });
  const headers = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
  const model = await modelName(join(root, 'tests/data/vitb32/config.json'), 'random ViT-B/32 (full size)');
  const pages = Object.fromEntries(engines.map((e) => [e.spec, []]));
  const failures = [];
  // Other work on the machine during a page disturbs its numbers: watched, and said.
  const load = new LoadWatch();
  const watch = setInterval(() => load.sample(), 2000);
  const server = await serve(root, { mounts, headers });
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const e of engines) {
        const query = new URLSearchParams({
          suite: 'peer', engine: `${e.kind}-${e.backend}`, dtype: e.dtype, runs, warmup,
          ...(e.asked ? { threads: e.asked } : {}), ...(classify ? {} : { classify: 0 }), ...(peerMain ? { peerThread: 'main' } : {}),
        });
        const asked = server.requests.length;
        await load.startPage();
        let page;
        try {
          page = await runPage(server, query.toString());
        } catch (err) {
          await load.endPage();
          // One failed page does not lose the rest of a long run: said in the table's header.
          failures.push({ engine: e.spec, round, error: String(err.message || err) });
          console.log(`round ${round}/${rounds} ${e.spec}: FAILED: ${err.message || err}`);
          continue;
        }
        // What the page fetched: the model files and WebAssembly each engine really loaded.
        page.files = [...new Set(server.requests.slice(asked).map((u) => u.split('?')[0]).filter((u) => /\.(onnx|safetensors|fcpk|wasm)$/.test(u)))];
        page.load = await load.endPage();
        const other = page.load.disturbed ? `DISTURBED: other processes used ${page.load.other_cores} core(s) on average (${page.load.top.map((t) => `${t.comm} ${t.cores}`).join(', ')})${page.load.builders.length ? `, ${page.load.builders.join(', ')} seen` : ''}` : null;
        pages[e.spec].push(page);
        const cell = (what) => page.rows.find((r) => r.what === what);
        console.log(`round ${round}/${rounds} ${e.spec}: ${page.threads ?? '?'} thread(s), ${page.ran?.workers ?? '?'} workers started`
          + `${page.ran?.dtype ? `, dtype ${JSON.stringify(page.ran.dtype)}` : ''}, loaded ${page.files.map((f) => basename(f)).join(' ')}; `
          + `${['load to first result', ...CASES].map((w) => (cell(w) ? `${w} ${fmt(cell(w))}` : null)).filter(Boolean).join(', ')}`
          + `${page.memory?.end ? `; tab peak ${page.memory.end.peak.toFixed(0)} MB` : ''}${other ? ` (${other})` : ''}`);
      }
    }
  } finally {
    clearInterval(watch);
    await server.close();
  }

  // Every timed run of every round, pooled per engine and case: median and min.
  const done = engines.flatMap((e) => pages[e.spec]);
  if (!done.length) throw new Error(`every page failed: ${failures.map((f) => `${f.engine}: ${f.error}`).join('; ')}`);
  const whats = [...new Set(done.flatMap((p) => p.rows.filter((r) => r.runs > 1 || CASES.includes(r.what)).map((r) => r.what)))];
  const stats = {};
  for (const e of engines) {
    const ps = pages[e.spec];
    const threadsRan = [...new Set(ps.map((p) => p.threads))];
    const loads = ps.map((p) => p.rows.find((r) => r.what === 'load to first result')?.median).filter((v) => v != null);
    const st = {
      threads: threadsRan.length === 1 ? threadsRan[0] : threadsRan.length ? threadsRan : null,
      workers: [...new Set(ps.map((p) => p.ran?.workers))],
      load: loads.length ? median(loads) : null,
      loadRounds: loads,
      peak: ps.length && ps.every((p) => p.memory?.end) ? median(ps.map((p) => p.memory.end.peak)) : null,
      peakRounds: ps.map((p) => p.memory?.end?.peak ?? null),
      cases: {},
    };
    for (const what of whats) {
      const all = ps.flatMap((p) => p.rows.find((r) => r.what === what)?.all ?? []);
      if (all.length) st.cases[what] = { median: median(all), min: Math.min(...all), n: all.length };
    }
    stats[e.spec] = st;
  }
  const threadsOf = (e) => stats[e.spec].threads;
  const mismatched = engines.filter((e) => e.asked && threadsOf(e) != null && threadsOf(e) !== e.asked);

  // Columns: per pair (device × dtype × threads) fieldclip, transformers.js and their ratio.
  const groups = [];
  for (const e of engines) {
    let g = groups.find((x) => x.pair === e.pair);
    if (!g) groups.push((g = { pair: e.pair, gpu: e.gpu, dtype: e.dtype, asked: e.asked }));
    g[e.kind] ??= e;
  }
  const threadLabel = (g) => {
    const ran = [g.fieldclip, g.peer].filter(Boolean).map(threadsOf);
    const n = g.asked ?? (new Set(ran).size === 1 ? ran[0] : ran.join('/'));
    return g.gpu ? 'WebGPU' : `@${n}`;
  };
  const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  const x = (a, b) => (a != null && b != null ? `${(a / b).toFixed(2)}×` : '–');
  const head = [];
  const columns = [];
  for (const g of groups) {
    const title = `${g.dtype} ${threadLabel(g)}`;
    for (const kind of ['fieldclip', 'peer']) {
      if (g[kind]) {
        head.push(`${title}: ${kind === 'peer' ? 'transformers.js' : 'fieldclip'}`);
        columns.push({ kind: 'engine', e: g[kind] });
      }
    }
    if (g.fieldclip && g.peer) {
      head.push(`${title}: ratio`);
      columns.push({ kind: 'ratio', a: g.fieldclip, b: g.peer });
    }
  }
  const flag = (e) => (mismatched.includes(e) ? ` ‼ ran ${threadsOf(e)} thr.` : '');
  const timeCell = (what) => (c) => {
    if (c.kind === 'engine') {
      const v = stats[c.e.spec].cases[what];
      return v ? `${ms(v.median)} / ${ms(v.min)} ms${flag(c.e)}` : '–';
    }
    const a = stats[c.a.spec].cases[what];
    const b = stats[c.b.spec].cases[what];
    return a && b ? `${x(a.median, b.median)} / ${x(a.min, b.min)}` : '–';
  };
  const oneCell = (key, unit) => (c) => {
    if (c.kind === 'engine') return stats[c.e.spec][key] != null ? `${ms(stats[c.e.spec][key])} ${unit}` : '–';
    return x(stats[c.a.spec][key], stats[c.b.spec][key]);
  };
  const any = done[0];
  const peerPage = engines.filter((e) => e.kind === 'peer').flatMap((e) => pages[e.spec])[0];
  const order = engines.map((e) => e.spec).join(' → ');
  const tableHead = [
    `fieldclip next to transformers.js${cpu ? ' on the CPU' : ''} — ${model}`,
    `browser: ${any.userAgent.match(/(HeadlessChrome|Chrome|Firefox)\/[\d.]+/)?.[0] ?? any.userAgent} (${BROWSER}), ${any.cores} logical cores, cross-origin isolated: ${any.crossOriginIsolated ? 'yes' : 'NO (no threads)'}`,
    `peer: @huggingface/transformers ${PEER_VERSION} (its browser bundle) on ONNX Runtime Web ${peerPage?.ran?.ort ?? '?'} (ort-wasm-simd-threaded.asyncify, the file transformers.js loads), `
      + `dtype 'fp32' (onnx/*_model.onnx) and 'q8' (onnx/*_model_quantized.onnx, dynamic int8: its default on wasm); text padded to the longest prompt of the batch (padding: true, as its zero-shot pipeline), `
      + `run ${peerMain ? "on the page's main thread" : 'in a Web Worker, as fieldclip'}; model files fetched from the local server, stored by neither (useBrowserCache false)`,
    'fieldclip: f32 = the safetensors file, q8 = its q8 model pack; the build www/wasm.js picks as on the page (see builds below); text cut to the batch\'s longest end-of-text token; in a Web Worker',
    `fieldclip builds: ${engines.filter((e) => e.kind === 'fieldclip').map((e) => `${e.spec} ${[...new Set(pages[e.spec].map((p) => `${p.ran?.build === 'threads' ? (p.ran?.relaxedSimd ? 'pkg-threads/ (relaxed SIMD)' : 'pkg-threads-simd128/') : p.ran?.build === 'single' ? 'pkg/' : '?'}`))].join(', ')}`).join('; ')}`,
    `threads that ran (asked → ran, Workers started): ${engines.map((e) => `${e.spec} ${e.asked ?? 'default'} → ${threadsOf(e)} (${stats[e.spec].workers.join('/')})`).join('; ')}`,
    `runs: ${rounds} round${rounds === 1 ? '' : 's'}, engines alternating in each (${order}), each engine in a fresh browser per round: load, ${warmup} warm-up${warmup === 1 ? '' : 's'}, ${runs} timed runs per case; `
      + `times are median / min over all ${rounds * runs} timed runs; load to first result and tab peak memory (the renderer process's VmHWM: page, workers, WebAssembly) are medians over the rounds`,
  ];
  if (failures.length) tableHead.push(`‼ FAILED PAGES (left out): ${failures.map((f) => `${f.engine} round ${f.round}: ${f.error}`).join('; ')}`);
  if (mismatched.length) tableHead.push(`‼ THREADS NOT AS ASKED: ${mismatched.map((e) => `${e.spec} ran ${threadsOf(e)}`).join('; ')}`);
  const disturbedPages = done.filter((p) => p.load.disturbed);
  const others = [...new Set(disturbedPages.flatMap((p) => [...p.load.builders, ...p.load.top.filter((t) => t.cores >= 0.05).map((t) => t.comm)]))];
  if (disturbedPages.length) {
    tableHead.push(`‼ DISTURBED: other work ran on this machine during ${disturbedPages.length} of ${done.length} pages (${others.join(', ')}; up to ${Math.max(...disturbedPages.map((p) => p.load.other_cores))} core(s) on average during a page): those numbers are not comparable`);
  } else {
    tableHead.push(`other work on the machine: under 0.1 core on average during every page (at most ${Math.max(...done.map((p) => p.load.other_cores))})`);
  }
  const rowNames = { 'image embed, batch 1': 'image batch 1', 'image embed, batch 8': 'image batch 8', '30 label prompts': '30 prompts' };
  tableHead.push('columns: dtype @threads; ratio = fieldclip / transformers.js (below 1: fieldclip faster or smaller); each time cell: median / min');
  const lines = [
    ...tableHead,
    '',
    `| case (median / min) | ${head.join(' | ')} |`,
    `| --- |${head.map(() => ' --- |').join('')}`,
    ...whats.map((what) => `| ${rowNames[what] ?? what} | ${columns.map(timeCell(what)).join(' | ')} |`),
    `| load to first result (median of rounds) | ${columns.map(oneCell('load', 'ms')).join(' | ')} |`,
    `| tab peak memory (median of rounds) | ${columns.map(oneCell('peak', 'MB')).join(' | ')} |`,
  ];
  console.log(`\n${lines.join('\n')}`);

  const label = (e) => `${e.library} ${e.gpu ? 'webgpu' : 'cpu'} ${e.dtype}${e.asked ? ` @${e.asked}` : ''}`;
  const rows = engines.flatMap((e) => Object.entries(stats[e.spec].cases).map(([what, v]) => ({
    engine: e.library, spec: e.spec, backend: e.gpu ? 'webgpu' : 'cpu', dtype: e.dtype, threads: threadsOf(e), asked_threads: e.asked,
    case: what, median_ms: v.median, min_ms: v.min, runs: v.n,
  })));
  const ratios = groups.filter((g) => g.fieldclip && g.peer).flatMap((g) => {
    const [a, b] = [stats[g.fieldclip.spec], stats[g.peer.spec]];
    const base = { backend: g.gpu ? 'webgpu' : 'cpu', dtype: g.dtype, threads: g.asked ?? threadsOf(g.fieldclip), fieldclip: g.fieldclip.spec, peer: g.peer.spec };
    return [
      ...whats.filter((w) => a.cases[w] && b.cases[w]).map((w) => ({ ...base, case: w, ratio_median: a.cases[w].median / b.cases[w].median, ratio_min: a.cases[w].min / b.cases[w].min })),
      ...(a.load && b.load ? [{ ...base, case: 'load to first result', ratio_median: a.load / b.load }] : []),
      ...(a.peak && b.peak ? [{ ...base, case: 'tab peak memory', ratio_median: a.peak / b.peak }] : []),
    ];
  });
  return {
    suite, model, userAgent: any.userAgent, cores: any.cores, crossOriginIsolated: any.crossOriginIsolated,
    peer: {
      package: `@huggingface/transformers@${PEER_VERSION}`, onnxruntime_web: peerPage?.ran?.ort, wasm: 'ort-wasm-simd-threaded.asyncify',
      dtypes: { f32: 'fp32', q8: 'q8' }, files: PEER_FILES, text_padding: 'longest prompt of the batch (padding: true)', thread: peerMain ? 'main' : 'worker',
    },
    rounds, runs, warmup, order: engines.map((e) => e.spec), disturbed_pages: disturbedPages.length, failures,
    table: lines,
    rows,
    load_ms: Object.fromEntries(engines.map((e) => [label(e), { median: stats[e.spec].load, rounds: stats[e.spec].loadRounds }])),
    peak_memory_mb: Object.fromEntries(engines.map((e) => [label(e), { median: stats[e.spec].peak, rounds: stats[e.spec].peakRounds, scope: pages[e.spec][0]?.memory?.end?.scope }])),
    ratios,
    threads: Object.fromEntries(engines.map((e) => [label(e), { asked: e.asked, ran: threadsOf(e), workers_started: stats[e.spec].workers }])),
    // Every page as it came back (its rows carry every timed run, `all`).
    pages,
  };
}

let result;
if (suite === 'peer' || suite === 'cpu') {
  result = await peerSuite();
} else if (suite === 'gpu') {
  result = await gpuSuite();
} else {
  // `kernels` compares pkg/ with pkg-threads/ (relaxed SIMD), which needs an isolated page.
  const isolation = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
  const server = await serve(root, suite === 'kernels' ? { headers: isolation } : {});
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
