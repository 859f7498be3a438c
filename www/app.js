// The page: wires the controls to the model worker and to what is kept on the device. Labels
// and file names are always put in the page as text (textContent), never as HTML.
import { createGallery, thumbnail } from './gallery.js';
import { registerServiceWorker } from './install.js';
import { download, loadLists, newId, parseImport, parseLines, saveLists } from './lists.js';
import { IntegrityError, isQuotaError, openDeviceStore } from './storage.js';

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let nextId = 1;

function call(type, payload = {}, transfer = []) {
  const id = nextId++;
  worker.postMessage({ id, type, ...payload }, transfer);
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
worker.onmessage = ({ data }) => {
  if (data.progress) return showLoadProgress(data.progress);
  const p = pending.get(data.id);
  pending.delete(data.id);
  if (data.ok) p.resolve(data.value); else p.reject(new Error(data.error));
};

const state = { modelLoaded: false, labelsReady: false, modelId: null };
const device = await openDeviceStore();
const settings = { backend: 'auto', threshold: 30, ...(await device.get('settings').catch(() => null)) };
const saveSettings = () => device.set('settings', settings).catch(() => {});

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}

function formatBytes(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

// ---- 1. Model ----
const params = new URLSearchParams(location.search);
const weightsUrl = params.get('weights') || 'models/model.safetensors';
$('weights-url').textContent = weightsUrl;
$('backend').value = settings.backend;
$('backend').addEventListener('change', () => { settings.backend = $('backend').value; saveSettings(); });

function showLoadProgress({ step, fraction }) {
  const bar = $('load-progress');
  bar.hidden = fraction >= 1;
  bar.value = fraction;
  if (fraction < 1) setStatus($('model-status'), `${step}…`);
}

/**
 * Builds the model in the worker, which streams the file (a Blob: a File, a stored file, a
 * download) into it. `sha256`: the hash it was stored under, checked while loading; without
 * it the worker computes it. Returns the file's SHA-256 when it loaded, else null.
 */
async function loadModel(weights, config, { name, sha256, id }) {
  state.modelLoaded = false;
  state.modelId = null;
  setStatus($('model-status'), `Building the model from ${name}…`);
  try {
    const prompts = sha256 ? await device.getPrompts(sha256).catch(() => null) : null;
    const loaded = await call('load', { weights, config, backend: $('backend').value, prompts, sha256: sha256 || true }, config ? [config] : []);
    const { info, modelId, backend, reason, cpu } = loaded;
    if (!sha256) {
      sha256 = loaded.sha256;
      const stored = await device.getPrompts(sha256).catch(() => null);
      if (stored && stored.prompts.length) await call('prompts', { prompts: stored });
    }
    state.modelLoaded = true;
    state.modelId = sha256;
    const params = (info.parameters / 1e6).toFixed(1);
    setStatus($('model-status'), `Loaded ${info.name}, ${params} M parameters (${info.layout === 'OpenClip' ? 'open_clip' : 'Hugging Face'} layout, ${info.dtypes.join('/')}). Running on ${backend === 'webgpu' ? 'WebGPU' : `the CPU, ${cpu.reason}`}: ${reason}. Now check the labels and add photos.`);
    await applyLabels();
    await gallery.setModel(modelId);
    renderModels();
    return sha256;
  } catch (e) {
    if (id && /changed since it was saved/.test(e.message)) {
      await device.deleteModel(id).catch(() => {});
      renderModels();
      setStatus($('model-status'), new IntegrityError(name, 'its contents changed since it was saved').message, true);
    } else {
      setStatus($('model-status'), `This model could not be loaded: ${e.message}`, true);
    }
    return null;
  }
}

/** A writer for the model file on the device, or null with the reason shown. */
async function openModelWriter() {
  try {
    return await device.modelWriter();
  } catch (e) {
    showSaveProblem(e);
    return null;
  }
}

function showSaveProblem(e) {
  const why = isQuotaError(e)
    ? 'there is not enough storage space on this device for it'
    : `the browser refused (${e.message})`;
  setStatus($('save-status'), `This model was not saved on the device: ${why}. It works until you close the page; free some space (delete models below) and load it again to keep it.`, true);
}

/** Commits a model file written while loading and remembers it for the next start. */
async function finishSave(writer, meta) {
  try {
    const saved = await writer.finish(meta);
    await device.set('lastModel', saved.id);
    const persistent = navigator.storage.persist ? await navigator.storage.persist() : false;
    setStatus($('save-status'), `Saved on this device: it loads at the next start without a network. ${persistent
      ? 'The browser keeps it until you delete it.'
      : 'The browser may still clear it if the device runs low on space (it did not grant persistent storage; installing the app usually does).'}`);
  } catch (e) {
    await writer.abort();
    showSaveProblem(e);
  }
  renderModels();
}

/** The download as a Blob, written to the device as it arrives; never one big buffer. */
async function readWithProgress(response, total, writer) {
  const reader = response.body.getReader();
  const bar = $('load-progress');
  // Pieces are folded into a Blob every 16 MB (the browser keeps Blob data out of the page's
  // memory, on disk when it is large).
  let blob = new Blob([]);
  let pending = [];
  let pendingBytes = 0;
  let received = 0;
  bar.hidden = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    pending.push(value);
    pendingBytes += value.length;
    if (pendingBytes >= 16 << 20) {
      blob = new Blob([blob, ...pending]);
      pending = [];
      pendingBytes = 0;
    }
    received += value.length;
    if (writer.current) {
      try {
        await writer.current.write(value);
      } catch (e) {
        await writer.current.abort();
        writer.current = null;
        showSaveProblem(e);
      }
    }
    if (total) bar.value = received / total;
    setStatus($('model-status'), `Downloading weights: ${formatBytes(received)}${total ? ` of ${formatBytes(total)} (${Math.round((100 * received) / total)}%)` : ''}`);
  }
  bar.hidden = true;
  return new Blob([blob, ...pending]);
}

$('weights-url-button').addEventListener('click', async () => {
  setStatus($('save-status'), '');
  const writer = { current: null };
  try {
    const response = await fetch(weightsUrl);
    if (!response.ok) throw new Error(`${weightsUrl} answered ${response.status} ${response.statusText}`);
    writer.current = await openModelWriter();
    const weights = await readWithProgress(response, Number(response.headers.get('content-length')) || 0, writer);
    let config;
    // A pack (.fcpk) carries its config; a safetensors file may have one next to it.
    for (const name of /\.fcpk$/i.test(weightsUrl) ? [] : ['open_clip_config.json', 'config.json']) {
      const r = await fetch(new URL(name, new URL(weightsUrl, location.href))).catch(() => null);
      if (r && r.ok) { config = await r.arrayBuffer(); break; }
    }
    await loadAndSave(weights, config, weightsUrl.split('/').pop(), writer.current);
  } catch (e) {
    if (writer.current) await writer.current.abort();
    setStatus($('model-status'), `Could not download the weights: ${e.message}. Choose the file from this device instead.`, true);
  }
});

/** Loads a model from a Blob and keeps it on the device when it loaded (a bad file is not kept). */
async function loadAndSave(weights, config, name, writer, file) {
  setStatus($('model-status'), `Checking ${name}…`);
  const size = weights.size;
  // The worker gets its own copy of the config; the page keeps one to store.
  const configCopy = config ? config.slice(0) : undefined;
  const sha256 = await loadModel(weights, config, { name });
  if (!sha256) {
    if (writer) await writer.abort();
    return;
  }
  if (file) writer = await openModelWriter();
  if (!writer) return;
  if (file) {
    setStatus($('save-status'), `Saving ${name} on this device…`);
    try {
      const reader = file.stream().getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await writer.write(value);
      }
    } catch (e) {
      await writer.abort();
      return showSaveProblem(e);
    }
  }
  await finishSave(writer, { sha256, name, size, config: configCopy });
}

async function loadModelFiles(files) {
  const weightsFile = files.find((f) => !f.name.endsWith('.json'));
  const configFile = files.find((f) => f.name.endsWith('.json'));
  if (!weightsFile) {
    setStatus($('model-status'), 'Choose the .safetensors weights file (the config file alone is not enough).', true);
    return;
  }
  setStatus($('save-status'), '');
  setStatus($('model-status'), `Reading ${weightsFile.name} (${formatBytes(weightsFile.size)})…`);
  const config = configFile ? await configFile.arrayBuffer() : undefined;
  await loadAndSave(weightsFile, config, weightsFile.name, null, weightsFile);
}

async function loadFromDevice(id) {
  setStatus($('save-status'), '');
  setStatus($('model-status'), 'Loading the model stored on this device…');
  try {
    const { meta, weights, config } = await device.readModel(id);
    await device.set('lastModel', id);
    if (await loadModel(weights, config ? config.slice(0) : undefined, meta)) {
      setStatus($('save-status'), `${meta.name} was loaded from this device (no network needed).`);
    }
  } catch (e) {
    setStatus($('model-status'), e.message, true);
    renderModels();
  }
}

$('weights-file').addEventListener('change', (event) => {
  loadModelFiles([...event.target.files]);
  event.target.value = '';
});
// A model file can also be dropped anywhere on step 1 (a tablet with the weights on it).
const modelSection = $('model-section');
modelSection.addEventListener('dragover', (e) => { e.preventDefault(); modelSection.classList.add('over'); });
modelSection.addEventListener('dragleave', () => modelSection.classList.remove('over'));
modelSection.addEventListener('drop', (e) => {
  e.preventDefault();
  modelSection.classList.remove('over');
  loadModelFiles([...e.dataTransfer.files]);
});

async function renderModels() {
  const models = await device.listModels().catch(() => []);
  const list = $('model-list');
  list.replaceChildren();
  for (const m of models) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'model-name';
    name.textContent = m.name + (m.id === state.modelId ? ' (in use)' : '');
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `${formatBytes(m.size)}, saved ${new Date(m.savedAt).toLocaleDateString()}`;
    const use = document.createElement('button');
    use.type = 'button';
    use.textContent = 'Use';
    use.disabled = m.id === state.modelId;
    use.addEventListener('click', () => loadFromDevice(m.id));
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = 'Delete';
    remove.setAttribute('aria-label', `Delete ${m.name} from this device`);
    remove.addEventListener('click', async () => {
      if (!confirm(`Delete ${m.name} (${formatBytes(m.size)}) from this device?`)) return;
      await device.deleteModel(m.id);
      if ((await device.get('lastModel')) === m.id) await device.set('lastModel', null);
      renderModels();
    });
    li.append(name, meta, use, remove);
    list.append(li);
  }
  if (models.length === 0) {
    const li = document.createElement('li');
    li.textContent = device.reason ? 'Models cannot be kept in this browser.' : 'None yet: a model you load is kept here.';
    list.append(li);
  }
  $('device-models').querySelector('summary').textContent = `Models on this device (${models.length})`;
  const usage = await device.usage().catch(() => null);
  const persisted = navigator.storage && navigator.storage.persisted ? await navigator.storage.persisted().catch(() => false) : false;
  $('storage-usage').textContent = usage
    ? `This app uses ${formatBytes(usage.usage)} of the ${formatBytes(usage.quota)} the browser allows it. ${persisted
      ? 'Storage is persistent: the browser keeps it until you delete it.'
      : 'Storage is not persistent: the browser may clear it when the device runs low on space.'}`
    : '';
}

// ---- 2. Labels ----
const lists = await loadLists(device);

function activeList() {
  return lists.lists[lists.active];
}

function renderLists() {
  const select = $('list-select');
  select.replaceChildren();
  for (const [id, list] of Object.entries(lists.lists)) {
    const option = document.createElement('option');
    option.value = id;
    option.textContent = `${list.name} (${list.labels.length})`;
    select.append(option);
  }
  select.value = lists.active;
  const list = activeList();
  $('list-name').value = list.name;
  $('labels').value = list.labels.join('\n');
  $('templates').value = list.templates.join('\n');
}

let labelTimer = null;
let labelsVersion = 0;
async function applyLabels() {
  const list = activeList();
  saveLists(device, lists);
  state.labelsReady = false;
  const version = ++labelsVersion;
  if (list.labels.length === 0) return setStatus($('labels-status'), 'The label list is empty: add at least one label, one per line.', true);
  if (list.templates.length === 0) return setStatus($('labels-status'), 'Add a prompt template, e.g. "a photo of a {}."', true);
  const bad = list.templates.find((t) => !t.includes('{}'));
  if (bad !== undefined) return setStatus($('labels-status'), `The template "${bad}" needs {} where the label goes, e.g. "a photo of a {}."`, true);
  if (!state.modelLoaded) return setStatus($('labels-status'), `${list.labels.length} labels. Load a model to use them.`);
  setStatus($('labels-status'), `Encoding ${list.labels.length} labels…`);
  try {
    const { encodedPrompts, fresh, embeds } = await call('labels', { labels: list.labels, templates: list.templates });
    if (fresh.length && state.modelId) device.putPrompts(state.modelId, fresh, embeds).catch(() => { /* kept in memory only */ });
    if (version !== labelsVersion) return;
    state.labelsReady = true;
    setStatus($('labels-status'), `${list.labels.length} labels ready (${encodedPrompts} prompts encoded so far; edits re-encode only what changed).`);
    await gallery.refreshAdapter();
  } catch (e) {
    setStatus($('labels-status'), e.message, true);
  }
}

function editedList() {
  const list = activeList();
  list.name = $('list-name').value.trim() || 'Untitled list';
  list.labels = parseLines($('labels').value);
  list.templates = parseLines($('templates').value);
  $('list-select').selectedOptions[0].textContent = `${list.name} (${list.labels.length})`;
  saveLists(device, lists);
  clearTimeout(labelTimer);
  labelTimer = setTimeout(applyLabels, 400);
}
for (const id of ['list-name', 'labels', 'templates']) $(id).addEventListener('input', editedList);

$('list-select').addEventListener('change', () => { lists.active = $('list-select').value; renderLists(); applyLabels(); });
$('list-new').addEventListener('click', () => {
  const id = newId(lists);
  lists.lists[id] = { name: 'My list', labels: [], templates: ['a photo of a {}.'] };
  lists.active = id;
  renderLists();
  applyLabels();
  $('labels').focus();
});
$('list-delete').addEventListener('click', () => {
  if (Object.keys(lists.lists).length === 1) return setStatus($('labels-status'), 'This is the only list; edit it instead.', true);
  if (!confirm(`Delete the list "${activeList().name}"?`)) return;
  delete lists.lists[lists.active];
  lists.active = Object.keys(lists.lists)[0];
  renderLists();
  applyLabels();
});
$('list-import').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  event.target.value = '';
  if (!file) return;
  try {
    const list = parseImport(file.name, await file.text());
    const id = newId(lists);
    lists.lists[id] = list;
    lists.active = id;
    renderLists();
    applyLabels();
  } catch (e) {
    setStatus($('labels-status'), e.message, true);
  }
});
const fileBase = () => activeList().name.replace(/[^\w.-]+/g, '_');
$('list-export-txt').addEventListener('click', () => download(`${fileBase()}.txt`, `${activeList().labels.join('\n')}\n`, 'text/plain'));
$('list-export-json').addEventListener('click', () => download(`${fileBase()}.json`, JSON.stringify(activeList(), null, 2), 'application/json'));

renderLists();
applyLabels();

// ---- 4. Collection: search and few-shot (www/gallery.js) ----
const gallery = createGallery({
  device,
  call,
  activeLabels: () => activeList(),
  settings,
  saveSettings,
  download,
  /** An imported adapter brings its label list: use it (as a new list unless it is the active one). */
  async onAdapterImported(list) {
    if (list.labels.length === 0) throw new Error('The adapter has no labels.');
    const same = activeList().labels.join('\n') === list.labels.join('\n');
    if (!same) {
      const id = newId(lists);
      lists.lists[id] = list;
      lists.active = id;
      renderLists();
    }
    await applyLabels();
  },
});

// ---- 3. Photos ----
const results = [];  // { file, predictions } per classified image, for the CSV export
$('threshold').value = settings.threshold;
$('threshold').addEventListener('change', () => { settings.threshold = Number($('threshold').value); saveSettings(); });

/** A result card; `image` is the photo file or a stored thumbnail (Blob). */
function card(image, fileName) {
  const li = document.createElement('li');
  li.className = 'card';
  const img = document.createElement('img');
  img.alt = '';
  img.src = URL.createObjectURL(image);
  img.style.imageOrientation = 'from-image';
  const body = document.createElement('div');
  const name = document.createElement('div');
  name.className = 'name';
  name.textContent = fileName || 'pasted image';
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = 'waiting…';
  const preds = document.createElement('div');
  body.append(name, meta, preds);
  li.append(img, body);
  $('results').prepend(li);
  return { li, name, meta, preds, img };
}

function showPredictions(view, result, backend) {
  view.meta.textContent = `${Math.round(result.ms)} ms on ${backend === 'webgpu' ? 'WebGPU' : 'CPU'}${result.adapted ? ', with your labelled photos' : ''}${result.at ? `, ${new Date(result.at).toLocaleString()}` : ''}`;
  const threshold = Number($('threshold').value) / 100;
  if (result.predictions[0].probability < threshold) {
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = 'not sure';
    view.name.append(badge);
  }
  for (const p of result.predictions) {
    const row = document.createElement('div');
    row.className = 'pred';
    row.dataset.probability = String(p.probability);
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = p.label;
    const prob = document.createElement('span');
    prob.className = 'prob';
    prob.textContent = `${(p.probability * 100).toFixed(1)}%`;
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${(p.probability * 100).toFixed(1)}%`;
    bar.append(fill);
    row.append(label, prob, bar);
    view.preds.append(row);
  }
}

function showError(view, message) {
  view.li.classList.add('failed');
  view.meta.textContent = 'could not be classified';
  const err = document.createElement('p');
  err.className = 'error';
  err.textContent = message;
  view.preds.append(err);
  URL.revokeObjectURL(view.img.src);
  view.img.remove();
}

function csvField(s) {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

$('export-csv').addEventListener('click', () => {
  const lines = ['file,rank,label,probability'];
  for (const r of results) {
    r.predictions.forEach((p, i) => lines.push([csvField(r.file), i + 1, csvField(p.label), p.probability.toFixed(6)].join(',')));
  }
  download('fieldclip-results.csv', `${lines.join('\n')}\n`, 'text/csv');
});
$('clear-results').addEventListener('click', () => {
  results.length = 0;
  device.clearResults().catch(() => {});
  for (const img of $('results').querySelectorAll('img')) URL.revokeObjectURL(img.src);
  $('results').replaceChildren();
  $('export-csv').disabled = $('clear-results').disabled = true;
  setStatus($('batch-status'), '');
});

let cancelled = false;
$('batch-cancel').addEventListener('click', () => { cancelled = true; });

let queue = Promise.resolve();
function classifyFiles(files) {
  files = files.filter(Boolean);
  if (files.length === 0) return;
  queue = queue.then(() => runBatch(files));
}

async function runBatch(files) {
  if (!state.modelLoaded) return setStatus($('batch-status'), 'Load a model first (step 1).', true);
  if (!state.labelsReady) await applyLabels();
  if (!state.labelsReady) return setStatus($('batch-status'), 'Fix the label list first (step 2).', true);
  const bar = $('batch-progress');
  bar.hidden = false;
  $('batch-cancel').hidden = false;
  cancelled = false;
  let done = 0;
  for (const file of files) {
    if (cancelled) break;
    const view = card(file, file.name);
    try {
      const bytes = await file.arrayBuffer();
      const result = await call('classify', { bytes, topK: 5 }, [bytes]);
      if (result.switchedToCpu) setStatus($('model-status'), `WebGPU stopped working (${result.switchedToCpu}); the model now runs on the CPU.`, true);
      showPredictions(view, result, result.backend);
      results.push({ file: file.name, predictions: result.predictions });
      keepResult(file, result);
    } catch (e) {
      showError(view, e.message);
    }
    done += 1;
    bar.value = done / files.length;
    setStatus($('batch-status'), `${done} of ${files.length} photos done.`);
  }
  if (cancelled) setStatus($('batch-status'), `Cancelled after ${done} of ${files.length} photos.`);
  bar.hidden = true;
  $('batch-cancel').hidden = true;
  $('export-csv').disabled = $('clear-results').disabled = results.length === 0;
}

$('photo-files').addEventListener('change', (e) => { classifyFiles([...e.target.files]); e.target.value = ''; });
$('camera').addEventListener('change', (e) => { classifyFiles([...e.target.files]); e.target.value = ''; });
// A folder: its images, in name order (other files in it, like .DS_Store, are skipped).
$('photo-folder').addEventListener('change', (e) => {
  const files = [...e.target.files].filter((f) => f.type.startsWith('image/'));
  files.sort((a, b) => a.webkitRelativePath.localeCompare(b.webkitRelativePath));
  classifyFiles(files);
  e.target.value = '';
});
const zone = $('drop-zone');
zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('over'); classifyFiles([...e.dataTransfer.files]); });
zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('photo-files').click(); } });
document.addEventListener('paste', (e) => classifyFiles([...e.clipboardData.files]));

/** Stores a result so it is still there after a reload, offline. */
async function keepResult(file, result) {
  try {
    const thumb = await thumbnail(file);
    await device.addResult({ name: file.name, thumb, predictions: result.predictions, ms: result.ms, backend: result.backend, at: Date.now() });
  } catch { /* the result stays on the page for this visit */ }
}

async function restoreResults() {
  const stored = await device.getResults().catch(() => []);
  for (const r of stored) {
    showPredictions(card(r.thumb, r.name), r, r.backend);
    results.push({ file: r.name, predictions: r.predictions });
  }
  $('export-csv').disabled = $('clear-results').disabled = results.length === 0;
  if (stored.length) setStatus($('batch-status'), `${stored.length} results from earlier are shown below.`);
}

// ---- Start-up: what is on the device, then the offline app shell ----
if (device.reason) {
  const warning = $('storage-warning');
  warning.hidden = false;
  warning.textContent = `This browser does not let the page keep anything (${device.reason}; private browsing?). Everything works, but models, lists and results are gone when you close the page.`;
}
await restoreResults();
renderModels();
const lastModel = await device.get('lastModel').catch(() => null);
if (lastModel) loadFromDevice(lastModel);

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
