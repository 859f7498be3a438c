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

// ---- The model worker: requests answered by id, progress reports while a model builds ----
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let nextId = 1;

/**
 * A request to the worker. It rejects with an Error whose message is for the user and whose
 * `kind` says what failed: 'input', 'model', 'device', 'storage' or 'cancelled'.
 */
function call(type, payload = {}, transfer = []) {
  const id = nextId++;
  worker.postMessage({ id, type, ...payload }, transfer);
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
worker.onmessage = ({ data }) => {
  if (data.progress) return model.showProgress(data.progress);
  const p = pending.get(data.id);
  pending.delete(data.id);
  if (data.ok) return p.resolve(data.value);
  const error = new Error(data.error);
  error.kind = data.kind;
  p.reject(error);
};

const device = await openDeviceStore();
const settings = { backend: 'auto', threshold: 30, ...(await device.get('settings').catch(() => null)) };
const saveSettings = () => device.set('settings', settings).catch(() => {});

// ---- The panels ----
const model = createModelPanel({
  device,
  call,
  settings,
  saveSettings,
  /** A model was built: its labels are encoded, then its collection is opened. */
  async onLoaded(modelId) {
    await labels.apply();
    await gallery.setModel(modelId);
  },
});

const labels = createLabelsPanel({
  device,
  call,
  lists: await loadLists(device),
  modelLoaded: () => model.isLoaded(),
  modelSha256: () => model.sha256(),
  onReady: () => gallery.refreshAdapter(),
});

const gallery = createGallery({
  device,
  call,
  activeLabels: () => labels.activeList(),
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
  settings,
  saveSettings,
  download,
  modelLoaded: () => model.isLoaded(),
  labels,
  onSwitchedToCpu: (reason) => model.showSwitchedToCpu(reason),
});

// ---- Start-up: what is on the device, then the offline app shell ----
if (device.reason) {
  const warning = $('storage-warning');
  warning.hidden = false;
  warning.textContent = `This browser does not let the page keep anything (${device.reason}; private browsing?). Everything works, but models, lists and results are gone when you close the page.`;
}
await results.restore();
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
}).then((problem) => { if (problem) $('offline-status').textContent = problem; });
// Every control is wired: tests (and anyone scripting the page) wait for this.
document.documentElement.dataset.ready = 'true';
