// bench.html's worker for fieldclip in `?suite=peer`: the model runs here, as on the page
// (www/worker.js), with the threaded build where the page is cross-origin isolated.
import { fieldclipEngine } from './bench-common.js';
import { loadWasm } from './wasm.js';

self.onmessage = async ({ data: { backend, threads, opts } }) => {
  try {
    // WebGPU needs the single-threaded build (the threaded one has no WebGPU).
    const { wasm, memory, cpu } = await loadWasm(backend === 'webgpu' ? 1 : threads || undefined);
    self.postMessage({ cpu });
    await fieldclipEngine(wasm.Classifier, backend, { ...opts, memory }, (row) => self.postMessage({ row }));
    self.postMessage({ done: true });
  } catch (e) {
    self.postMessage({ error: String(e.message || e) });
  }
};
