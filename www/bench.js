// Browser benchmarks (bench.html). Results go to the page's table and to `window.benchResult`
// for scripts/bench-web.sh. Medians after warm-up; no pass/fail here, the numbers are the point.
import { LABELS, TEMPLATE, benchPixels, countWorkers, median, random, time as timeWith } from './bench-common.js';
import { gpuAdapter, installGpuProfile, profileCases, readGpuCounts, resetGpuCounts } from './bench-gpu.js';
import { openDeviceStore } from './storage.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const rows = [];

const time = (what, fn, opts) => timeWith(what, fn, opts, report);

function report(row) {
  rows.push(row);
  const tr = document.createElement('tr');
  for (const cell of [row.what, `${row.median.toFixed(row.unit === 'ms' ? 2 : 0)} ${row.unit}`, String(row.runs ?? '')]) {
    const td = document.createElement('td');
    td.textContent = cell;
    tr.append(td);
  }
  $('bench-table').tBodies[0].append(tr);
}

/**
 * pkg/'s WebAssembly, initialised; imported by the suites that use it here (search, taxa), so a
 * page whose engine is transformers.js alone never loads pkg/ (it may be mid-build).
 */
async function fieldclipWasm() {
  const wasm = await import('../pkg/fieldclip.js');
  await wasm.default();
  return wasm;
}

function unitRows(n, dim, rand) {
  const m = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) { const v = rand(); m[i * dim + d] = v; norm += v * v; }
    norm = Math.sqrt(norm);
    for (let d = 0; d < dim; d++) m[i * dim + d] /= norm;
  }
  return m;
}

/**
 * One photo against a tree-of-life-sized list (100,000 taxa, 512-d as BioCLIP's): logits,
 * softmax, the roll-up of every rank and the answer, in wasm on the CPU (#16: ≤ 100 ms).
 */
async function taxaSuite() {
  const n = Number(params.get('taxa')) || 100000;
  const dim = 512;
  const { TaxaIndex } = await fieldclipWasm();
  const start = performance.now();
  const index = TaxaIndex.synthetic(n, dim, 7);
  report({ what: `${n} taxa made and grouped by rank (once, when a list loads)`, median: performance.now() - start, unit: 'ms', runs: 1 });
  const queries = unitRows(8, dim, random(7));
  let q = 0;
  await time(`one photo against ${n} taxa: every rank rolled up, answer (wasm, CPU)`,
    () => index.classify(queries.slice((q % 8) * dim, (q++ % 8 + 1) * dim), 100, 0.8, 5));
  index.free();
}

/** Searching 10,000 embeddings of a 512-d model, and what storing them costs. */
async function searchSuite() {
  const n = Number(params.get('photos')) || 10000;
  const dim = 512;
  const rand = random(42);
  const matrix = unitRows(n, dim, rand);
  const queries = unitRows(32, dim, rand);
  const { GalleryIndex } = await fieldclipWasm();
  const gallery = new GalleryIndex(dim);
  gallery.add(matrix);
  let q = 0;
  const nextQuery = () => queries.slice((q % 32) * dim, (q++ % 32 + 1) * dim);
  await time(`text search, ${n} photos, top 24 (wasm, CPU)`, () => gallery.search(nextQuery(), 24));

  // Reference in the same run: the same scores in plain JavaScript (no sort), to compare with.
  await time(`reference: ${n} dot products of ${dim} in plain JavaScript`, () => {
    const query = nextQuery();
    const scores = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let d = 0, o = i * dim; d < dim; d++) s += matrix[o + d] * query[d];
      scores[i] = s;
    }
    return scores;
  });

  // The same request through a worker, as the page makes it (query in, hits out).
  const worker = new Worker(new URL('./bench-worker.js', import.meta.url), { type: 'module' });
  const ask = (msg) => new Promise((resolve) => { worker.onmessage = ({ data }) => resolve(data); worker.postMessage(msg); });
  await ask({ matrix, dim });
  await time(`text search, ${n} photos, top 24, page → worker → page`, () => ask({ query: nextQuery(), k: 24 }));
  worker.terminate();

  // Storage: the collection as the page stores it (www/storage.js), in a database of its own.
  const name = 'fieldclip-bench';
  await new Promise((r) => { const d = indexedDB.deleteDatabase(name); d.onsuccess = d.onerror = r; });
  const settled = async (previous) => {
    // Chromium updates its usage figure lazily: wait until it stops moving.
    let usage = previous;
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const now = (await navigator.storage.estimate()).usage;
      if (now === usage && i > 3) break;
      usage = now;
    }
    return usage;
  };
  const store = await openDeviceStore(name);
  const before = await settled((await navigator.storage.estimate()).usage);
  const model = 'ViT-B/32 0123456789abcdef';
  const hex = () => Array.from({ length: 32 }, () => Math.floor((rand() + 0.5) * 256).toString(16).padStart(2, '0')).join('');
  // In blocks of 32, as the page stores photos while adding them.
  for (let start = 0; start < n; start += 32) {
    const block = [];
    for (let i = start; i < Math.min(n, start + 32); i++) {
      block.push({ sha256: hex(), name: `DCIM/100FIELD/IMG_${String(i).padStart(5, '0')}.jpg`, embedding: matrix.slice(i * dim, (i + 1) * dim) });
    }
    await store.galleryAdd(model, block);
  }
  const back = await store.galleryAll(model);
  if (back.length !== n) throw new Error(`stored ${n} photos, read back ${back.length}`);
  const after = await settled(before);
  report({ what: `stored per photo (IndexedDB usage / ${n}, name "DCIM/100FIELD/IMG_01234.jpg", no thumbnail)`, median: (after - before) / n, unit: 'bytes', runs: 1 });
  store.db.close();
  await new Promise((r) => { const d = indexedDB.deleteDatabase(name); d.onsuccess = d.onerror = r; });
}

// ---- fieldclip next to transformers.js (ONNX Runtime Web) on the same weights ----
// `?suite=peer&engine=fieldclip-webgpu|fieldclip-cpu|peer-webgpu|peer-wasm[&dtype=f32|q8][&threads=N]`
// `[&classify=0][&peerThread=main]`, one engine per page load (benches/web/run.mjs runs them in
// rounds and prints the table with ratios; its suite `cpu` is this suite on the CPU engines).
// `dtype=q8`: fieldclip loads the q8 model pack made from the same weights, transformers.js
// `dtype: 'q8'` (its `_quantized.onnx` files); default f32 (transformers.js's 'fp32').
// Both engines run in a Web Worker (www/bench-fieldclip.js, www/bench-peer.js), as fieldclip's
// page runs its model; `peerThread=main` runs transformers.js on this page's thread instead.
// The same inputs for both: deterministic 224×224 pixels, 30 label prompts, one photo.
let cpuInfo = null;
let engineInfo = null;

/** An engine in its worker; its rows, holds and what it ran with come back here. */
function engineInWorker(url, message) {
  const worker = new Worker(url, { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onmessage = async ({ data }) => {
      if (data.cpu) cpuInfo = data.cpu;
      if (data.info) engineInfo = data.info;
      if (data.row) report(data.row);
      if (data.hold) {
        await hold(data.hold);
        worker.postMessage({ released: true });
      }
      if (data.error) reject(new Error(data.error));
      if (data.done || data.error) worker.terminate();
      if (data.done) resolve();
    };
    worker.onerror = (e) => reject(new Error(e.message || 'the benchmark worker failed'));
    worker.postMessage(message);
  });
}

/**
 * Before and right after loading a model: under the headless runner (benches/web/run.mjs),
 * which reads the tab process's memory at these points, wait until it has; nothing to do in a
 * browser opened by hand.
 */
async function hold(stage) {
  if (!navigator.webdriver) return;
  window.benchHold = stage;
  while (window.benchGo !== stage) await new Promise((resolve) => setTimeout(resolve, 50));
}

async function peerSuite() {
  const engine = params.get('engine') || 'fieldclip-cpu';
  // `pack=q8` (older runners) is `dtype=q8`.
  const dtype = (params.get('dtype') || params.get('pack') || 'f32') === 'q8' ? 'q8' : 'f32';
  const opts = {
    warmup: Number(params.get('warmup') || 2),
    runs: Number(params.get('runs') || 10),
    dtype,
    weights: params.get('weights') || (dtype === 'q8' ? '/bench-models/vitb32/model.q8.fcpk' : '/bench-models/vitb32/model.safetensors'),
    config: params.get('config') || '/bench-models/vitb32/config.json',
    photo: params.get('photo') || '/tests/data/images/coffee.jpg',
    peerModels: '/bench-models/',
    peerModel: 'transformers-js-vitb32',
    threads: Number(params.get('threads')) || undefined,
    classify: params.get('classify') !== '0',
  };
  $('bench-status').textContent = `Running ${engine} ${dtype}…`;
  const [kind, backend] = engine.split('-');
  if (kind === 'fieldclip') {
    await engineInWorker(new URL('./bench-fieldclip.js', import.meta.url), { backend: backend === 'webgpu' ? 'webgpu' : 'cpu', threads: opts.threads, opts });
  } else if (params.get('peerThread') === 'main') {
    const workers = countWorkers();
    const { peerEngine } = await import('./bench-peer.js');
    await peerEngine(backend === 'webgpu' ? 'webgpu' : 'wasm', opts, report, hold, (info) => { engineInfo = info; });
    engineInfo.workers = workers();
  } else {
    await engineInWorker(new URL('./bench-peer.js', import.meta.url), { device: backend === 'webgpu' ? 'webgpu' : 'wasm', opts });
  }
}

// ---- WebGPU work per call (#18) ----
// `?suite=gpu&engine=fieldclip|transformers.js[&weights=…&config=…][&peerModel=…][&size=224]`
// `[&runs=N&warmup=N]`: the WebGPU calls each engine makes per image embedding (batch 1 and 8)
// and per 30-prompt text batch, counted by wrapping the WebGPU prototypes (www/bench-gpu.js)
// before the model loads. fieldclip runs in its worker as on the page; transformers.js on this
// page's main thread, with the ONNX model in `/bench-models/<peerModel>/` (benches/web/run.mjs
// prepares both over the same weights). `size`: the model's image size (pixels are size × size).
let gpuResult = null;

function reportGpu({ rows }) {
  for (const r of rows) {
    report({ what: `${r.case}: ${r.dispatches} dispatches, ${r.passes} passes, ${r.submits} submits, ${r.readbacks} readbacks, pipelines ${r.pipelines_first} first / ${r.pipelines_later} later, ${r.bytes_written} B written, ${r.bytes_read} B read, peak ${r.peak_buffer_bytes} B of buffers`, median: r.ms, unit: 'ms', runs: r.runs });
  }
}

async function transformersGpu(opts) {
  installGpuProfile();
  const { encodeTexts, loadTransformers } = await import('./bench-peer.js');
  const t = await loadTransformers(opts);
  resetGpuCounts();
  const start = performance.now();
  // fp32: what transformers.js picks by default on 'webgpu' anyway (its DEFAULT_DEVICE_DTYPE;
  // only wasm defaults to q8), said here so the files it loads are known (onnx/*_model.onnx).
  const load = { device: 'webgpu', dtype: 'fp32' };
  const tokenizer = await t.AutoTokenizer.from_pretrained(opts.peerModel);
  const vision = await t.CLIPVisionModelWithProjection.from_pretrained(opts.peerModel, { ...load, model_file_name: 'vision_model' });
  const text = await t.CLIPTextModelWithProjection.from_pretrained(opts.peerModel, { ...load, model_file_name: 'text_model' });
  const loaded = { ...readGpuCounts(), ms: performance.now() - start };
  // What its sessions say they run on (the device and dtype it resolved), ONNX Runtime's version.
  const ran = {
    device: vision.sessions?.model?.config?.device,
    dtype: { vision: vision.sessions?.model?.config?.dtype, text: text.sessions?.model?.config?.dtype },
    ort: t.env.backends.onnx.versions?.web,
    library: `@huggingface/transformers@${t.env.version}`,
  };
  // Outputs come back to the CPU (transformers.js's default), as fieldclip's do.
  const { size } = opts;
  const images = (pixels, n) => vision({ pixel_values: new t.Tensor('float32', pixels, [n, 3, size, size]) });
  const one = benchPixels(1, 1, size);
  const eight = benchPixels(8, 2, size);
  const prompts = LABELS.map(TEMPLATE);
  // Padded to the longest prompt, as transformers.js's zero-shot pipeline does.
  const rows = await profileCases([
    { name: 'image b1', call: () => images(one, 1) },
    { name: 'image b8', call: () => images(eight, 8) },
    { name: '30 prompts', call: () => encodeTexts(tokenizer, text, prompts) },
  ], opts, median);
  return { adapter: gpuAdapter(), load: loaded, rows, ran };
}

async function gpuSuite() {
  const engine = params.get('engine') || 'fieldclip';
  const opts = {
    warmup: Number(params.get('warmup') ?? 1),
    runs: Number(params.get('runs') || 3),
    weights: params.get('weights') || '/bench-models/vitb32/model.safetensors',
    config: params.get('config') || '/bench-models/vitb32/config.json',
    peerModels: '/bench-models/',
    peerModel: params.get('peerModel') || 'transformers-js-vitb32',
    size: Number(params.get('size')) || 224,
    cases: params.get('cases') ? params.get('cases').split(',') : null,
  };
  $('bench-status').textContent = `Running gpu, ${engine}…`;
  if (engine === 'fieldclip') {
    const worker = new Worker(new URL('./bench-fieldclip.js', import.meta.url), { type: 'module' });
    gpuResult = await new Promise((resolve, reject) => {
      let got = null;
      worker.onmessage = ({ data }) => {
        if (data.gpu) got = data.gpu;
        if (data.error) reject(new Error(data.error));
        if (data.done || data.error) worker.terminate();
        if (data.done) resolve(got);
      };
      worker.onerror = (e) => reject(new Error(e.message || 'the benchmark worker failed'));
      worker.postMessage({ gpu: true, opts });
    });
  } else {
    gpuResult = await transformersGpu(opts);
  }
  for (const r of gpuResult.rows) r.runs = opts.runs;
  reportGpu(gpuResult);
}

/**
 * The packed matmul alone (#17): ViT-B/32's dense shapes, f32 and int8, against the SIMD peak
 * of the same build, one thread, for pkg/ (SIMD128) and, where it runs, pkg-threads/ (relaxed SIMD).
 */
async function kernelsSuite() {
  const { hasRelaxedSimd } = await import('./wasm.js');
  const builds = ['single', ...(self.crossOriginIsolated && hasRelaxedSimd() ? ['threads'] : [])];
  for (const build of builds) {
    const worker = new Worker(new URL('./bench-kernels.js', import.meta.url), { type: 'module' });
    const answer = await new Promise((resolve) => {
      worker.onmessage = ({ data }) => resolve(data);
      worker.onerror = (e) => resolve({ error: e.message });
      worker.postMessage({ build });
    });
    worker.terminate();
    if (answer.error) throw new Error(`${build}: ${answer.error}`);
    answer.rows.forEach(report);
  }
}

const suites = { search: searchSuite, peer: peerSuite, taxa: taxaSuite, gpu: gpuSuite, kernels: kernelsSuite };
const suite = params.get('suite') || 'search';
try {
  $('bench-status').textContent = `Running ${suite}…`;
  await suites[suite]();
  $('bench-status').textContent = 'Done.';
  // `threads`: what the engine ran with (fieldclip's pool, ONNX Runtime's numThreads after
  // loading); `ran.workers`: the Workers its engine started (fieldclip: one per pool thread;
  // ONNX Runtime: numThreads − 1, its calling thread being the last).
  window.benchResult = {
    suite, engine: params.get('engine'), dtype: params.get('dtype') || params.get('pack') || undefined,
    threads: engineInfo?.threads ?? cpuInfo?.threads, cpu: cpuInfo?.reason, ran: engineInfo, gpu: gpuResult,
    crossOriginIsolated: self.crossOriginIsolated, cores: navigator.hardwareConcurrency, userAgent: navigator.userAgent, rows,
  };
  console.log(`fieldclip-bench ${JSON.stringify(rows.map((r) => [r.what, r.median]))}`);
} catch (e) {
  $('bench-status').textContent = `Failed: ${e.message}`;
  window.benchResult = { suite, error: String(e.message || e) };
}
