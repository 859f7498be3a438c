// Loads fieldclip's WebAssembly in a worker. Three builds of the same code: pkg-threads/ runs
// burn's CPU matmuls on every core and multiplies with relaxed SIMD (int8 dot products and
// fused multiply-add, src/model/packed.rs); pkg-threads-simd128/ is the same on every core with
// SIMD128 only, for browsers without relaxed SIMD (Safari); both need shared memory, which the
// browser only gives a cross-origin isolated page (scripts/serve.py and sw.js send the headers).
// pkg/ runs anywhere (SIMD128, WebGPU), on one core.

/**
 * Whether this browser runs WebAssembly relaxed SIMD: a 1-function module using
 * `i32x4.relaxed_dot_i8x16_i7x16_add_s` validates.
 */
export function hasRelaxedSimd() {
  const module = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128 v128 v128) → v128
    0x03, 0x02, 0x01, 0x00, // one function of that type
    0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x93, 0x02, 0x0b, // its body
  ]);
  try {
    return WebAssembly.validate(module);
  } catch {
    return false;
  }
}

/**
 * The most a pool's threads may take to start before the page goes on with one thread: offline,
 * WebKit's helper threads (workers started by a worker) bypass the service worker, cannot load
 * the build's module, and would be waited for forever.
 */
const POOL_START_MS = 20_000;

/** `promise`, or a rejection once `ms` have passed. */
function withTimeout(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Imports and starts the best build for this context. `threads`: how many to use (default:
 * every core); `webgpu`: the build with WebGPU (pkg/). Resolves to `{ wasm, memory, build, cpu }`:
 * the module's exports, its `WebAssembly.Memory`, `'threads'` or `'single'`, and `{ threads,
 * reason, relaxedSimd }` saying how the CPU backend runs, for the user.
 * A threaded build is used even for one thread where it can run: pkg-threads/'s relaxed SIMD
 * kernels are the faster ones (BENCHMARKS.md), and pkg-threads-simd128/ runs the same threaded
 * CPU backend where the browser has shared memory but no relaxed SIMD (Safari, WebKit).
 */
export async function loadWasm(threads = navigator.hardwareConcurrency || 1, { webgpu = false } = {}) {
  let reason;
  const relaxedSimd = hasRelaxedSimd();
  if (webgpu) {
    reason = 'one thread (WebGPU runs in the single-threaded build)';
  } else if (self.crossOriginIsolated && typeof SharedArrayBuffer !== 'function') {
    // WebKitGTK by default: isolated, but its shared memory cannot reach another thread.
    reason = 'one thread (this browser does not share memory between threads)';
  } else if (self.crossOriginIsolated) {
    const glue = new URL(relaxedSimd ? '../pkg-threads/fieldclip.js' : '../pkg-threads-simd128/fieldclip.js', import.meta.url).href;
    try {
      const wasm = await import(glue);
      const exports = await wasm.default();
      await withTimeout(wasm.initThreadPool(threads), POOL_START_MS);
      const count = threads === 1 ? 'one thread' : `${threads} threads`;
      const simd = relaxedSimd ? 'relaxed SIMD' : 'SIMD128 (this browser has no relaxed SIMD)';
      return { wasm, memory: exports.memory, build: 'threads', cpu: { threads, relaxedSimd, reason: `${count}, ${simd}` } };
    } catch (e) {
      console.warn('The threaded build did not start:', e);
      reason = 'one thread (the threaded build did not start in this browser; offline, WebKit\'s threads cannot load it)';
    }
  } else {
    reason = 'one thread (the page is not cross-origin isolated)';
  }
  const wasm = await import('../pkg/fieldclip.js');
  const exports = await wasm.default();
  return { wasm, memory: exports.memory, build: 'single', cpu: { threads: 1, relaxedSimd: false, reason } };
}
