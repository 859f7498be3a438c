// bench.html's worker for fieldclip in `?suite=peer`: the model runs here, as on the page
// (www/worker.js), with the threaded build where the page is cross-origin isolated.
import { fieldclipEngine } from './bench-common.js';
import { loadWasm } from './wasm.js';

let measured = null;

self.onmessage = async ({ data }) => {
  if (data.measured) return measured?.();
  const { backend, threads, opts } = data;
  try {
    // WebGPU needs the single-threaded build (the threaded one has no WebGPU).
    const { wasm, memory, cpu } = await loadWasm(backend === 'webgpu' ? 1 : threads || undefined);
    self.postMessage({ cpu });
    // Once loaded, the page measures its memory (workers included) before the runs go on.
    const loaded = () => new Promise((resolve) => {
      measured = resolve;
      self.postMessage({ loaded: true });
    });
    await fieldclipEngine(wasm, backend, { ...opts, memory }, (row) => self.postMessage({ row }), loaded);
    self.postMessage({ done: true });
  } catch (e) {
    self.postMessage({ error: String(e.message || e) });
  }
};
