// bench.html's worker for fieldclip in `?suite=peer`: the model runs here, as on the page
// (www/worker.js), with the threaded build where the page is cross-origin isolated.
import { fieldclipEngine } from './bench-common.js';
import { loadWasm } from './wasm.js';

let released = null;

self.onmessage = async ({ data }) => {
  if (data.released) return released?.();
  const { backend, threads, opts } = data;
  try {
    // WebGPU needs the single-threaded build (the threaded one has no WebGPU).
    const { wasm, memory, cpu } = await loadWasm(backend === 'webgpu' ? 1 : threads || undefined);
    self.postMessage({ cpu });
    // Before and after loading the model the page lets the runner read the tab's memory.
    const hold = (stage) => new Promise((resolve) => {
      released = resolve;
      self.postMessage({ hold: stage });
    });
    await hold('before');
    await fieldclipEngine(wasm, backend, { ...opts, memory }, (row) => self.postMessage({ row }), () => hold('loaded'));
    self.postMessage({ done: true });
  } catch (e) {
    self.postMessage({ error: String(e.message || e) });
  }
};
