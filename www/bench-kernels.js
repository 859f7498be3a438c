// bench.html?suite=kernels's worker (#17): the packed matmul (src/model/packed.rs) alone on
// ViT-B/32's dense shapes, f32 and int8, and this build's SIMD peak (a loop of independent
// multiply-adds / int8 dot products, the kernels' own instructions), on one thread. Message
// `{ build: 'single' | 'threads' }`: pkg/ (SIMD128) or pkg-threads/ (relaxed SIMD, a pool of one).
import { median } from './bench-common.js';

/** Median ms of `fn` after one warm-up call: at least 5 runs and 400 ms. */
function timed(fn) {
  fn();
  const times = [];
  const start = performance.now();
  while (times.length < 5 || performance.now() - start < 400) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return { ms: median(times), runs: times.length };
}

// [rows, inputs, outputs]: one image (50 tokens), 8 images (400), 30 prompts of ~10 tokens (300).
const SHAPES = [[50, 768, 3072], [50, 3072, 768], [400, 768, 3072], [400, 3072, 768], [300, 512, 2048], [300, 2048, 512]];

self.onmessage = async ({ data: { build } }) => {
  try {
    const wasm = await import(build === 'threads' ? '../pkg-threads/fieldclip.js' : '../pkg/fieldclip.js');
    await wasm.default();
    if (build === 'threads') await wasm.initThreadPool(1);
    const { KernelBench } = wasm;
    const kernels = KernelBench.kernels();
    const rows = [];
    const iterations = 2_000_000;
    const f32Peak = timed(() => KernelBench.f32Peak(iterations));
    const f32PeakRate = (iterations * KernelBench.f32PeakFlop()) / f32Peak.ms / 1e6;
    rows.push({ what: `${kernels}: f32 peak (independent multiply-adds)`, median: f32PeakRate, unit: 'GFLOP/s', runs: f32Peak.runs });
    const int8Peak = timed(() => KernelBench.int8Peak(iterations));
    const int8PeakRate = (iterations * KernelBench.int8PeakMacs() * 2) / int8Peak.ms / 1e6;
    rows.push({ what: `${kernels}: int8 peak (independent dot products)`, median: int8PeakRate, unit: 'GOP/s', runs: int8Peak.runs });
    for (const [r, i, o] of SHAPES) {
      for (const int8 of [false, true]) {
        const bench = new KernelBench(r, i, o, int8);
        const { ms, runs } = timed(() => bench.run());
        bench.free();
        const rate = (2 * r * i * o) / ms / 1e6;
        const peak = int8 ? int8PeakRate : f32PeakRate;
        rows.push({
          what: `${kernels}: ${int8 ? 'int8' : 'f32'} matmul ${r}×${i} → ${o} (${Math.round((100 * rate) / peak)} % of peak)`,
          median: rate, unit: int8 ? 'GOP/s' : 'GFLOP/s', runs,
        });
      }
    }
    self.postMessage({ rows });
  } catch (e) {
    self.postMessage({ error: String(e.message || e) });
  }
};
