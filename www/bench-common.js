// What bench.html's page and its workers share: timing, seeded inputs, and the fieldclip side
// of the comparison with transformers.js (run in a worker, where the threaded build may block).

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// Between runs the page goes back to its event loop, so it stays scriptable (the headless
// runner polls it) even when one run keeps the main thread busy for seconds.
const breathe = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Runs `fn` `warmup` times, then `runs` times timed; reports the median through `report`. */
export async function time(what, fn, { warmup = 3, runs = 20, unit = 'ms' } = {}, report) {
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

/** A seeded generator, so every run uses the same synthetic inputs. */
export function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

// The same inputs for both engines: deterministic 224×224 pixels, 30 label prompts, one photo.
export const LABELS = ['oak', 'beech', 'birch', 'maple', 'ash', 'willow', 'alder', 'hazel', 'rowan', 'holly',
  'yew', 'pine', 'spruce', 'larch', 'fir', 'poplar', 'aspen', 'elm', 'lime', 'hornbeam',
  'sweet chestnut', 'horse chestnut', 'sycamore', 'field maple', 'wild cherry', 'blackthorn',
  'hawthorn', 'elder', 'dogwood', 'spindle'];
export const TEMPLATE = (label) => `a photo of a ${label}, a type of tree.`;

/** `count` images of `size` × `size` pixels (3 channels, planar), seeded. */
export function benchPixels(count, seed, size = 224) {
  const rand = random(seed);
  return Float32Array.from({ length: count * 3 * size * size }, () => 4 * rand());
}

export async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/**
 * Counts the Workers this scope starts from now on (an engine's threads: wasm-bindgen-rayon's
 * pool, ONNX Runtime's pthreads), so the bench can show how many an engine really ran with.
 */
export function countWorkers() {
  const Native = globalThis.Worker;
  let started = 0;
  if (!Native) return () => null;
  globalThis.Worker = class extends Native {
    constructor(...args) {
      super(...args);
      started++;
    }
  };
  return () => started;
}

/**
 * fieldclip's side of `?suite=peer|cpu`: `wasm` an initialised build, `backend` cpu|webgpu.
 * `loaded()` is awaited once the model gave its first result (the tab's memory is read then).
 * `opts.start`: when loading began (default: now), so the WebAssembly's start can count.
 */
export async function fieldclipEngine(wasm, backend, opts, report, loaded = async () => {}) {
  const start = opts.start ?? performance.now();
  const model = await loadFieldclip(wasm, backend, opts);
  const one = benchPixels(1, 1);
  await model.embedPixels(one);
  report({ what: 'load to first result', median: performance.now() - start, unit: 'ms', runs: 1 });
  // WebAssembly memory never shrinks: its size now is the peak of loading (file pieces,
  // parsed tensors and the model together), plus the first embedding's activations.
  if (opts.memory) report({ what: 'WebAssembly memory after loading (its peak)', median: opts.memory.buffer.byteLength / 1e6, unit: 'MB', runs: 1 });
  await loaded();
  const eight = benchPixels(8, 2);
  const prompts = LABELS.map(TEMPLATE);
  await time('image embed, batch 1', () => model.embedPixels(one), opts, report);
  await time('image embed, batch 8', () => model.embedPixelsBatch(eight, 8), opts, report);
  await time('30 label prompts', () => model.embedTexts(prompts), opts, report);
  if (opts.classify === false) return;
  const photo = await fetchBytes(opts.photo);
  // The page's path: the labels' prompts are cached, an edited label is encoded alone.
  await model.setLabels(LABELS, ['a photo of a {}, a type of tree.']);
  let edit = 0;
  await time('classify one photo after editing one label', async () => {
    const labels = [...LABELS];
    labels[edit % 30] = `${LABELS[edit % 30]} ${++edit}`;
    await model.setLabels(labels, ['a photo of a {}, a type of tree.']);
    await model.classify(photo, 5);
  }, opts, report);
}

/** Loads `opts.weights` (and `opts.config` unless a pack) as the page does; resolves to the `Classifier`. */
export async function loadFieldclip(wasm, backend, opts) {
  // As the page loads a model: the file (a Blob) streamed into WebAssembly piece by piece.
  const response = await fetch(opts.weights);
  if (!response.ok) throw new Error(`${opts.weights}: ${response.status}`);
  const blob = await response.blob();
  const stream = new wasm.WeightsStream(false);
  const reader = blob.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    stream.push(value);
  }
  // A pack carries its config.
  const config = /\.fcpk$/.test(opts.weights) ? undefined : await fetchBytes(opts.config);
  const model = await wasm.Classifier.fromStream(stream, config, backend);
  // As the page does: on WebGPU the kernels are compiled at load (`warmUp`).
  await model.warmUp();
  return model;
}
