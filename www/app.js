// The page: the composition root. It starts the model worker and wires the panels — 1. model
// (www/model-panel.js), 2. labels (www/labels-panel.js), 3. photos and results
// (www/results-panel.js), 4. the collection (www/gallery.js) — to it, to each other and to what
// is kept on the device. Labels and file names are always put in the page as text
// (textContent), never as HTML.
import { createGallery } from './gallery.js';
import { registerServiceWorker } from './install.js';
import { createLabelsPanel } from './labels-panel.js';
import { download, loadLists } from './lists.js';
import { createModelPanel } from './model-panel.js';
import { createResultsPanel } from './results-panel.js';
import { openDeviceStore } from './storage.js';

const $ = (id) => document.getElementById(id);

// ---- The model worker: requests answered by id, progress reports (a model, a tree of life) ----
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let nextId = 1;
// Counts the 'load' requests sent. The worker answers requests in the order they were sent, so
// every request sent while this number stays the same is answered by the same model: a batch
// notes it when it starts and stops (dropping what it just got) when it changes, so nothing made
// by one model is kept under another model's collection or prompt embeddings.
let modelGeneration = 0;

/**
 * A request to the worker. It rejects with an Error whose message is for the user and whose
 * `kind` says what failed: 'input', 'model', 'device', 'storage' or 'cancelled'.
 */
function call(type, payload = {}, transfer = []) {
  const id = nextId++;
  if (type === 'load') modelGeneration += 1;
  worker.postMessage({ id, type, ...payload }, transfer);
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
const currentModelGeneration = () => modelGeneration;
worker.onmessage = ({ data }) => {
  if (data.progress) return model.showProgress(data.progress);
  if (data.treeProgress) return labels.showTreeProgress(data.treeProgress);
  const p = pending.get(data.id);
  pending.delete(data.id);
  if (data.ok) return p.resolve(data.value);
  const error = new Error(data.error);
  error.kind = data.kind;
  // A refused model file: the model loaded before is still in use (www/worker.js, checkHeader).
  error.kept = data.kept;
  p.reject(error);
};

const device = await openDeviceStore();
const settings = { backend: 'auto', threshold: 30, preprocess: 'auto', rankThreshold: 0.8, ...(await device.get('settings').catch(() => null)) };
const saveSettings = () => device.set('settings', settings).catch(() => {});
const { lists, problem: listsProblem } = await loadLists(device);

// ---- The panels ----
const model = createModelPanel({
  device,
  call,
  modelGeneration: currentModelGeneration,
  settings,
  saveSettings,
  /** A model was built (by the `generation`th load): its labels are encoded, then its collection is opened. */
  async onLoaded(modelId, generation) {
    await labels.apply();
    await gallery.setModel(modelId, generation);
  },
  /** A model file was refused at its header: the model loaded before stays, its collection too. */
  async onKept(modelId, generation) {
    await gallery.setModel(modelId, generation);
  },
});

const labels = createLabelsPanel({
  device,
  call,
  modelGeneration: currentModelGeneration,
  lists,
  modelLoaded: () => model.isLoaded(),
  modelSha256: () => model.sha256(),
  onReady: () => gallery.refreshAdapter(),
});

const gallery = createGallery({
  device,
  call,
  modelGeneration: currentModelGeneration,
  activeLabels: () => labels.activeLabels(),
  settings,
  saveSettings,
  download,
  /** An imported adapter brings its label list: use it (as a new list unless it is the active one). */
  async onAdapterImported(list) {
    if (list.labels.length === 0) throw new Error('The adapter has no labels.');
    await labels.useList(list);
  },
});

const results = createResultsPanel({
  device,
  call,
  modelGeneration: currentModelGeneration,
  settings,
  saveSettings,
  download,
  modelLoaded: () => model.isLoaded(),
  labels,
  onSwitchedToCpu: (reason) => model.showSwitchedToCpu(reason),
});

// ---- Start-up: what is on the device, then the offline app shell ----
const warnings = [];
if (device.reason) warnings.push(`This browser keeps nothing for this page: ${device.reason}. Everything works, but models, lists and results are gone when you close the page.`);
if (listsProblem) warnings.push(listsProblem);
const resultsProblem = await results.restore();
if (resultsProblem) warnings.push(resultsProblem);
if (warnings.length) {
  const warning = $('storage-warning');
  warning.hidden = false;
  warning.textContent = warnings.join(' ');
}
await model.restore();

function showOnline() {
  $('offline-status').textContent = navigator.onLine ? '' : 'You are offline: everything on this page keeps working.';
}
window.addEventListener('online', showOnline);
window.addEventListener('offline', showOnline);
showOnline();
registerServiceWorker({
  onOfflineReady: () => { $('offline-status').textContent ||= 'Ready to work offline.'; },
  onUpdate: (apply) => {
    $('update-banner').hidden = false;
    $('update-reload').onclick = apply;
  },
  onVersion: (version) => { $('app-version').textContent = `version ${version}`; },
  onFailed: (problem) => { $('offline-status').textContent = problem; },
}).then((problem) => { if (problem) $('offline-status').textContent = problem; });
// Every control is wired: tests (and anyone scripting the page) wait for this.
document.documentElement.dataset.ready = 'true';
