// bench.html's worker for fieldclip in `?suite=peer|cpu`: the model runs here, as on the page
// (www/worker.js), with the build www/wasm.js picks as on the page (pkg-threads/ with a pool of
// exactly the threads asked for where it can run, else pkg/ on one thread; WebGPU: pkg/).
// In `?suite=gpu` it counts the WebGPU work of each call instead (www/bench-gpu.js).
import { LABELS, TEMPLATE, benchPixels, countWorkers, fieldclipEngine, loadFieldclip, median } from './bench-common.js';
import { gpuAdapter, installGpuProfile, profileCases, readGpuCounts, resetGpuCounts } from './bench-gpu.js';
import { loadWasm } from './wasm.js';

let released = null;
// wasm-bindgen-rayon starts one Worker per thread of its pool: counted, to show what ran.
const workers = countWorkers();

/** `?suite=gpu`: WebGPU work per call, the wrapper installed before the wasm makes its device. */
async function gpuProfile(opts) {
  installGpuProfile();
  const { wasm } = await loadWasm(1, { webgpu: true });
  resetGpuCounts();
  const start = performance.now();
  const model = await loadFieldclip(wasm, 'webgpu', opts);
  const load = { ...readGpuCounts(), ms: performance.now() - start };
  const one = benchPixels(1, 1, opts.size);
  const eight = benchPixels(8, 2, opts.size);
  const prompts = LABELS.map(TEMPLATE);
  const rows = await profileCases([
    { name: 'image b1', call: () => model.embedPixels(one) },
    { name: 'image b8', call: () => model.embedPixelsBatch(eight, 8) },
    { name: '30 prompts', call: () => model.embedTexts(prompts) },
  ], opts, median);
  model.free?.();
  return { adapter: gpuAdapter(), load, rows };
}

self.onmessage = async ({ data }) => {
  if (data.released) return released?.();
  const { backend, threads, opts } = data;
  try {
    if (data.gpu) {
      self.postMessage({ gpu: await gpuProfile(opts) });
      self.postMessage({ done: true });
      return;
    }
    // Before and after loading the model the page lets the runner read the tab's memory.
    const hold = (stage) => new Promise((resolve) => {
      released = resolve;
      self.postMessage({ hold: stage });
    });
    await hold('before');
    // Load to first result counts from here: the WebAssembly (and its threads) start, then the model.
    const start = performance.now();
    // WebGPU needs the single-threaded build (the threaded one has no WebGPU).
    const { wasm, memory, cpu, build } = await loadWasm(threads || undefined, { webgpu: backend === 'webgpu' });
    self.postMessage({ cpu });
    await fieldclipEngine(wasm, backend, { ...opts, memory, start }, (row) => self.postMessage({ row }), () => hold('loaded'));
    self.postMessage({ info: { threads: cpu.threads, workers: workers(), build, relaxedSimd: cpu.relaxedSimd, reason: cpu.reason } });
    self.postMessage({ done: true });
  } catch (e) {
    self.postMessage({ error: String(e.message || e) });
  }
};
