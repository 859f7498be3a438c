// The model runs here, off the main thread, so the page never freezes (even on the CPU backend).
import init, { Classifier } from '../pkg/fieldclip.js';

let classifier = null;
const ready = init();

async function handle(msg) {
  switch (msg.type) {
    case 'load': {
      classifier = null;
      const weights = new Uint8Array(msg.weights);
      const config = msg.config ? new Uint8Array(msg.config) : undefined;
      classifier = await Classifier.create(weights, config, msg.backend);
      return { info: classifier.info(), backend: classifier.backend, reason: classifier.backendReason };
    }
    case 'labels':
      need();
      await classifier.setLabels(msg.labels, msg.templates);
      return { encodedPrompts: classifier.encodedPrompts };
    case 'classify': {
      need();
      const start = performance.now();
      const result = await classifier.classify(new Uint8Array(msg.bytes), msg.topK);
      return { ...result, ms: performance.now() - start };
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
