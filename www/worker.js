// The model runs here, off the main thread, so the page never freezes (even on the CPU backend).
import init, { Classifier } from '../pkg/fieldclip.js';

let classifier = null;
// Kept to rebuild the model on the CPU if the WebGPU device is lost.
let source = null;
let labels = null;
const ready = init();

async function create(backend) {
  const progress = (step, fraction) => self.postMessage({ progress: { step, fraction } });
  classifier = await Classifier.create(source.weights, source.config, backend, progress);
  if (labels) await classifier.setLabels(labels.labels, labels.templates);
}

/** Errors about the input itself; anything else on WebGPU is treated as a lost device. */
function isInputError(message) {
  return /^The (image|file|label|prompt)|^There are no|^Expected /.test(message);
}

async function handle(msg) {
  switch (msg.type) {
    case 'load': {
      classifier = null;
      labels = null;
      source = { weights: new Uint8Array(msg.weights), config: msg.config ? new Uint8Array(msg.config) : undefined };
      await create(msg.backend);
      return { info: classifier.info(), backend: classifier.backend, reason: classifier.backendReason };
    }
    case 'labels':
      need();
      await classifier.setLabels(msg.labels, msg.templates);
      labels = { labels: msg.labels, templates: msg.templates };
      return { encodedPrompts: classifier.encodedPrompts };
    case 'classify': {
      need();
      const bytes = new Uint8Array(msg.bytes);
      const start = performance.now();
      try {
        const result = await classifier.classify(bytes, msg.topK);
        return { ...result, ms: performance.now() - start, backend: classifier.backend };
      } catch (e) {
        const message = String(e && e.message ? e.message : e);
        if (classifier.backend !== 'webgpu' || isInputError(message)) throw e;
        await create('cpu');
        const result = await classifier.classify(bytes, msg.topK);
        return { ...result, ms: performance.now() - start, backend: 'cpu', switchedToCpu: message };
      }
    }
    default:
      throw new Error(`unknown request ${msg.type}`);
  }
}

function need() {
  if (!classifier) throw new Error('Load a model first.');
}

// One request at a time: the classifier is borrowed mutably while labels are encoded.
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      await ready;
      self.postMessage({ id: data.id, ok: true, value: await handle(data) });
    } catch (e) {
      self.postMessage({ id: data.id, ok: false, error: String(e && e.message ? e.message : e) });
    }
  });
};
