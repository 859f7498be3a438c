// transformers.js (ONNX Runtime Web), the peer of bench.html's `?suite=peer|cpu`, set up as its
// users get it: the npm package's browser bundle (dist/transformers.js, which bundles ONNX
// Runtime Web), ONNX Runtime's threaded SIMD build from the file transformers.js itself points
// ONNX Runtime at (`ort-wasm-simd-threaded.asyncify`, here from npm instead of its CDN), the model
// file chosen by `from_pretrained(…, { dtype })` (`q8`, its wasm default, loads
// `onnx/<name>_quantized.onnx`), and prompts padded to the longest of the batch
// (`padding: true`, as its zero-shot pipeline does for CLIP), not to 77.
//
// Loaded as a module Worker (the default: the peer runs in a worker as fieldclip does, the same
// message protocol as bench-fieldclip.js), or imported by bench.js for `&peerThread=main`.
import { LABELS, TEMPLATE, benchPixels, countWorkers, fetchBytes, time } from './bench-common.js';

const TRANSFORMERS = '/node_modules/@huggingface/transformers/dist/transformers.js';
const ORT = '/node_modules/onnxruntime-web/dist/';

/**
 * transformers.js, configured: local files only, not stored in the browser's cache (fieldclip's
 * bench does not store its file either, so both load from the server alike), `threads` as ONNX
 * Runtime's `numThreads` (unset: ONNX Runtime's default, half the cores, at most 4).
 */
export async function loadTransformers({ peerModels, threads }) {
  const t = await import(TRANSFORMERS);
  t.env.allowRemoteModels = false;
  t.env.allowLocalModels = true;
  t.env.localModelPath = peerModels;
  t.env.useBrowserCache = false;
  // What transformers.js sets itself (an object with both files), but from npm, not jsDelivr.
  t.env.backends.onnx.wasm.wasmPaths = { mjs: `${ORT}ort-wasm-simd-threaded.asyncify.mjs`, wasm: `${ORT}ort-wasm-simd-threaded.asyncify.wasm` };
  if (threads) t.env.backends.onnx.wasm.numThreads = threads;
  return t;
}

/** Prompts as transformers.js's zero-shot pipeline tokenizes them: padded to the batch's longest. */
export const encodeTexts = (tokenizer, text, prompts) => text(tokenizer(prompts, { padding: true, truncation: true }));

/** transformers.js's dtype name for the bench's `f32` / `q8`. */
export const peerDtype = (dtype) => (dtype === 'q8' ? 'q8' : 'fp32');

/**
 * The peer's side of `?suite=peer|cpu`: load, first result, then the timed cases. `info(…)`
 * gets what actually ran (threads, dtype of each tower, ONNX Runtime's version).
 */
export async function peerEngine(device, opts, report, hold = async () => {}, info = () => {}) {
  await hold('before');
  // From nothing to the first embedding: the library, ONNX Runtime's WebAssembly, both towers.
  const start = performance.now();
  const t = await loadTransformers(opts);
  const load = { device, dtype: peerDtype(opts.dtype) };
  const tokenizer = await t.AutoTokenizer.from_pretrained(opts.peerModel);
  const processor = await t.AutoProcessor.from_pretrained(opts.peerModel);
  const vision = await t.CLIPVisionModelWithProjection.from_pretrained(opts.peerModel, { ...load, model_file_name: 'vision_model' });
  const text = await t.CLIPTextModelWithProjection.from_pretrained(opts.peerModel, { ...load, model_file_name: 'text_model' });
  const images = (pixels, n) => vision({ pixel_values: new t.Tensor('float32', pixels, [n, 3, 224, 224]) });
  const one = benchPixels(1, 1);
  await images(one, 1);
  report({ what: 'load to first result', median: performance.now() - start, unit: 'ms', runs: 1 });
  const onnx = t.env.backends.onnx;
  info({
    // ONNX Runtime sets numThreads to what it uses (1 where threads are not available).
    threads: device === 'wasm' ? onnx.wasm.numThreads : undefined,
    dtype: { vision: vision.sessions?.model?.config?.dtype, text: text.sessions?.model?.config?.dtype },
    device: vision.sessions?.model?.config?.device,
    ort: onnx.versions?.web,
    library: `@huggingface/transformers@${t.env.version}`,
  });
  await hold('loaded');
  const eight = benchPixels(8, 2);
  const prompts = LABELS.map(TEMPLATE);
  await time('image embed, batch 1', () => images(one, 1), opts, report);
  await time('image embed, batch 8', () => images(eight, 8), opts, report);
  await time('30 label prompts', () => encodeTexts(tokenizer, text, prompts), opts, report);
  if (!opts.classify) return;
  // What the zero-shot pipeline does for each photo: every label's prompt, then the photo.
  const photo = await fetchBytes(opts.photo);
  let edit = 0;
  await time('classify one photo after editing one label', async () => {
    const labels = [...LABELS];
    labels[edit % 30] = `${LABELS[edit % 30]} ${++edit}`;
    const { text_embeds: textEmbeds } = await encodeTexts(tokenizer, text, labels.map(TEMPLATE));
    const image = await t.RawImage.fromBlob(new Blob([photo]));
    const { image_embeds: imageEmbeds } = await vision(await processor(image));
    return [textEmbeds, imageEmbeds];
  }, opts, report);
}

// As a worker: the same messages as bench-fieldclip.js ({ row }, { hold }, { info }, { done }, { error }).
if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope) {
  const workers = countWorkers();
  let released = null;
  self.onmessage = async ({ data }) => {
    if (data.released) return released?.();
    const { device, opts } = data;
    try {
      const hold = (stage) => new Promise((resolve) => {
        released = resolve;
        self.postMessage({ hold: stage });
      });
      let ran = {};
      await peerEngine(device, opts, (row) => self.postMessage({ row }), hold, (i) => { ran = i; });
      self.postMessage({ info: { ...ran, workers: workers() } });
      self.postMessage({ done: true });
    } catch (e) {
      self.postMessage({ error: String(e.message || e) });
    }
  };
}
