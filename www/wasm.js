// Loads fieldclip's WebAssembly in a worker. Two builds of the same code: pkg-threads/ runs
// burn's CPU matmuls on every core, but needs shared memory, which the browser only gives a
// cross-origin isolated page (scripts/serve.py and sw.js send the headers); pkg/ runs
// anywhere, on one core.

/**
 * Imports and starts the best build for this context. `threads`: how many to use (default:
 * every core; 1 picks the single-threaded build). Resolves to `{ wasm, memory, cpu }`: the
 * module's exports, its `WebAssembly.Memory`, and `{ threads, reason }` saying how the CPU backend runs, for the user.
 */
export async function loadWasm(threads = navigator.hardwareConcurrency || 1) {
  let reason;
  if (threads > 1 && self.crossOriginIsolated) {
    try {
      const wasm = await import('../pkg-threads/fieldclip.js');
      const exports = await wasm.default();
      await wasm.initThreadPool(threads);
      return { wasm, memory: exports.memory, cpu: { threads, reason: `${threads} threads` } };
    } catch (e) {
      reason = `one thread (the threaded build did not start: ${e.message || e})`;
    }
  } else if (threads > 1) {
    reason = 'one thread (the page is not cross-origin isolated)';
  } else {
    reason = 'one thread';
  }
  const wasm = await import('../pkg/fieldclip.js');
  const exports = await wasm.default();
  return { wasm, memory: exports.memory, cpu: { threads: 1, reason } };
}
