// Where the page's WebAssembly spends its time on the CPU backend: loads pkg/ (the build the
// page uses, single-threaded) into node, which runs the same V8 as Chromium, embeds a batch of
// images under V8's sampling profiler and prints self time by function (wasm function names
// come from the module's name section). A tool for deciding what to optimise, not a benchmark:
// the numbers are node's, on one thread. Batch `texts` embeds 30 prompts instead of images.
// Self time is also summed by kind of work (matmul, attention, layer norm, …; by the function
// names' paths, see KINDS).
// Usage: node benches/web/profile.mjs [weights (.safetensors or .fcpk)] [batch|texts] [runs] [top]
import { readFileSync, openSync, readSync, closeSync, existsSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const weights = process.argv[2] || process.env.FIELDCLIP_VITB32_WEIGHTS || join(homedir(), '.cache/fieldclip-oracle/vitb32-random/model.safetensors');
const texts = process.argv[3] === 'texts';
const batch = texts ? 30 : Number(process.argv[3] || 8);
const runs = Number(process.argv[4] || 3);
const top = Number(process.argv[5] || 25);
if (!existsSync(join(root, 'pkg/fieldclip_bg.wasm'))) throw new Error('pkg/ is missing: run scripts/build-web.sh --release');
if (!existsSync(weights)) throw new Error(`${weights} is missing (make it with ../shared/oracle/make_oracle.py models)`);

const wasm = await import(join(root, 'pkg/fieldclip.js'));
const module = new WebAssembly.Module(readFileSync(join(root, 'pkg/fieldclip_bg.wasm')));
if (!WebAssembly.Module.customSections(module, 'name').length) {
  throw new Error('pkg/ has no function names (a release build drops them): build it with FIELDCLIP_KEEP_NAMES=1 scripts/build-web.sh --release');
}
wasm.initSync({ module });
// As the page does: the file pushed in pieces.
const stream = new wasm.WeightsStream(false);
const fd = openSync(weights, 'r');
const piece = Buffer.alloc(8 << 20);
for (let n; (n = readSync(fd, piece, 0, piece.length)) > 0;) stream.push(piece.subarray(0, n));
closeSync(fd);
const config = weights.endsWith('.fcpk') ? undefined : readFileSync(join(dirname(weights), 'config.json'));
const model = await wasm.Classifier.fromStream(stream, config, 'cpu');
const pixels = Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => 2 * Math.sin(i));
const PLANTS = ['oak', 'maple', 'birch', 'fern', 'moss', 'lichen', 'tulip', 'rose', 'daisy', 'sunflower'];
const prompts = Array.from({ length: 30 }, (_, i) => `a photo of a ${PLANTS[i % 10]}${i >= 10 ? ` leaf with ${i >= 20 ? 'brown spots' : 'a torn edge'}` : ''}.`);
const work = () => (texts ? model.embedTexts(prompts) : model.embedPixelsBatch(pixels, batch));
await work(); // warm-up (V8 tiers the hot functions up)

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 500 });
await session.post('Profiler.start');
for (let r = 0; r < runs; r++) {
  const start = performance.now();
  await work();
  console.log(`${texts ? '30 prompts' : `image embed, batch ${batch}`}: ${(performance.now() - start).toFixed(0)} ms`);
}
const { profile } = await session.post('Profiler.stop');
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
profile.samples.forEach((id, i) => {
  const name = byId.get(id).callFrame.functionName || '(anonymous)';
  self.set(name, (self.get(name) || 0) + profile.timeDeltas[i]);
  total += profile.timeDeltas[i];
});
// Kinds of work, by the wasm function's name (the first that matches).
const KINDS = [
  ['matmul (packed kernels, burn/gemm matmul)', /packed|gemm|matmul/i],
  ['softmax', /softmax/i],
  ['layer norm', /layer_?norm/i],
  ['activations (GELU, exp)', /gelu|sigmoid|erf|exp/i],
  ['patch embedding (conv)', /conv|im2col/i],
  ['copies, reshapes, allocation', /memcpy|memmove|memset|copy|contiguous|reshape|permute|swap_dims|clone|alloc|realloc|Vec|into_data|from_data/i],
  ['elementwise and reductions (burn flex)', /burn_flex|macerator|binary|unary|reduce|sum|mean|add|mul|sub|div/i],
];
const byKind = new Map();
for (const [name, us] of self) {
  const kind = KINDS.find(([, re]) => re.test(name))?.[0] ?? 'other';
  byKind.set(kind, (byKind.get(kind) || 0) + us);
}
console.log(`\nself time by kind of work, ${(total / 1e6).toFixed(1)} s sampled`);
for (const [kind, us] of [...byKind].sort((a, b) => b[1] - a[1])) console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${kind}`);
console.log(`\nself time, ${(total / 1e6).toFixed(1)} s sampled`);
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${name.slice(0, 150)}`);
}
