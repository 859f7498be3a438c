// Browser benchmarks (bench.html). Results go to the page's table and to `window.benchResult`
// for scripts/bench-web.sh. Medians after warm-up; no pass/fail here, the numbers are the point.
import init, { GalleryIndex } from '../pkg/fieldclip.js';
import { openDeviceStore } from './storage.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const rows = [];

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// Between runs the page goes back to its event loop, so it stays scriptable (the headless
// runner polls it) even when one run keeps the main thread busy for seconds.
const breathe = () => new Promise((resolve) => setTimeout(resolve, 0));

async function time(what, fn, { warmup = 3, runs = 20, unit = 'ms' } = {}) {
  for (let i = 0; i < warmup; i++) {
    await fn();
    await breathe();
  }
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    ms.push(performance.now() - start);
    await breathe();
  }
  report({ what, median: median(ms), unit, runs, all: ms });
}

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

/** A seeded generator, so every run searches the same synthetic collection. */
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
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

/** Searching 10,000 embeddings of a 512-d model, and what storing them costs. */
async function searchSuite() {
  const n = Number(params.get('photos')) || 10000;
  const dim = 512;
  const rand = random(42);
  const matrix = unitRows(n, dim, rand);
  const queries = unitRows(32, dim, rand);
  await init();
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
// `?suite=peer&engine=fieldclip-webgpu|fieldclip-cpu|peer-webgpu|peer-wasm`, one engine per page
// load (benches/web/run.mjs runs all four and prints the table with ratios). The same inputs
// for both: deterministic 224×224 pixels, 30 label prompts, one photo.
const LABELS = ['oak', 'beech', 'birch', 'maple', 'ash', 'willow', 'alder', 'hazel', 'rowan', 'holly',
  'yew', 'pine', 'spruce', 'larch', 'fir', 'poplar', 'aspen', 'elm', 'lime', 'hornbeam',
  'sweet chestnut', 'horse chestnut', 'sycamore', 'field maple', 'wild cherry', 'blackthorn',
  'hawthorn', 'elder', 'dogwood', 'spindle'];
const TEMPLATE = (label) => `a photo of a ${label}, a type of tree.`;

function benchPixels(count, seed) {
  const rand = random(seed);
  return Float32Array.from({ length: count * 3 * 224 * 224 }, () => 4 * rand());
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function fieldclipEngine(backend, opts) {
  const { Classifier } = await import('../pkg/fieldclip.js');
  await init();
  const start = performance.now();
  const weights = await fetchBytes(opts.weights);
  const config = await fetchBytes(opts.config);
  const model = await Classifier.create(weights, config, backend);
  const one = benchPixels(1, 1);
  await model.embedPixels(one);
  report({ what: 'load to first result', median: performance.now() - start, unit: 'ms', runs: 1 });
  const eight = benchPixels(8, 2);
  const prompts = LABELS.map(TEMPLATE);
  const photo = await fetchBytes(opts.photo);
  await time('image embed, batch 1', () => model.embedPixels(one), opts);
  await time('image embed, batch 8', () => model.embedPixelsBatch(eight, 8), opts);
  await time('30 label prompts', () => model.embedTexts(prompts), opts);
  // The page's path: the labels' prompts are cached, an edited label is encoded alone.
  await model.setLabels(LABELS, ['a photo of a {}, a type of tree.']);
  let edit = 0;
  await time('classify one photo after editing one label', async () => {
    const labels = [...LABELS];
    labels[edit % 30] = `${LABELS[edit % 30]} ${++edit}`;
    await model.setLabels(labels, ['a photo of a {}, a type of tree.']);
    await model.classify(photo, 5);
  }, opts);
}

async function peerEngine(device, opts) {
  const t = await import('/node_modules/@huggingface/transformers/dist/transformers.js');
  t.env.allowRemoteModels = false;
  t.env.allowLocalModels = true;
  t.env.localModelPath = opts.peerModels;
  t.env.backends.onnx.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  const start = performance.now();
  const load = { device, dtype: 'fp32' };
  const tokenizer = await t.AutoTokenizer.from_pretrained(opts.peerModel);
  const processor = await t.AutoProcessor.from_pretrained(opts.peerModel);
  const vision = await t.CLIPVisionModelWithProjection.from_pretrained(opts.peerModel, { ...load, model_file_name: 'vision_model' });
  const text = await t.CLIPTextModelWithProjection.from_pretrained(opts.peerModel, { ...load, model_file_name: 'text_model' });
  const images = (pixels, n) => vision({ pixel_values: new t.Tensor('float32', pixels, [n, 3, 224, 224]) });
  const one = benchPixels(1, 1);
  await images(one, 1);
  report({ what: 'load to first result', median: performance.now() - start, unit: 'ms', runs: 1 });
  const eight = benchPixels(8, 2);
  // CLIP's text tower as exported takes 77 tokens, as transformers.js pads for CLIP.
  const encode = (prompts) => text(tokenizer(prompts, { padding: 'max_length', max_length: 77, truncation: true }));
  const photo = await fetchBytes(opts.photo);
  await time('image embed, batch 1', () => images(one, 1), opts);
  await time('image embed, batch 8', () => images(eight, 8), opts);
  await time('30 label prompts', () => encode(LABELS.map(TEMPLATE)), opts);
  // What the zero-shot pipeline does for each photo: every label's prompt, then the photo.
  let edit = 0;
  await time('classify one photo after editing one label', async () => {
    const labels = [...LABELS];
    labels[edit % 30] = `${LABELS[edit % 30]} ${++edit}`;
    const { text_embeds: textEmbeds } = await encode(labels.map(TEMPLATE));
    const image = await t.RawImage.fromBlob(new Blob([photo]));
    const { image_embeds: imageEmbeds } = await vision(await processor(image));
    return [textEmbeds, imageEmbeds];
  }, opts);
}

async function peerSuite() {
  const engine = params.get('engine') || 'fieldclip-cpu';
  const opts = {
    warmup: Number(params.get('warmup') || 2),
    runs: Number(params.get('runs') || 10),
    weights: params.get('weights') || '/bench-models/vitb32/model.safetensors',
    config: params.get('config') || '/bench-models/vitb32/config.json',
    photo: params.get('photo') || '/tests/data/images/coffee.jpg',
    peerModels: '/bench-models/',
    peerModel: 'transformers-js-vitb32',
  };
  $('bench-status').textContent = `Running ${engine}…`;
  const [kind, backend] = engine.split('-');
  if (kind === 'fieldclip') await fieldclipEngine(backend === 'webgpu' ? 'webgpu' : 'cpu', opts);
  else await peerEngine(backend === 'webgpu' ? 'webgpu' : 'wasm', opts);
}

const suites = { search: searchSuite, peer: peerSuite };
const suite = params.get('suite') || 'search';
try {
  $('bench-status').textContent = `Running ${suite}…`;
  await suites[suite]();
  $('bench-status').textContent = 'Done.';
  window.benchResult = { suite, engine: params.get('engine'), crossOriginIsolated: self.crossOriginIsolated, userAgent: navigator.userAgent, rows };
  console.log(`fieldclip-bench ${JSON.stringify(rows.map((r) => [r.what, r.median]))}`);
} catch (e) {
  $('bench-status').textContent = `Failed: ${e.message}`;
  window.benchResult = { suite, error: String(e.message || e) };
}
