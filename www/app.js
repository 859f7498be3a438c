// The page: wires the controls to the model worker. Labels and file names are always put in
// the page as text (textContent), never as HTML.
import { download, loadStore, newId, parseImport, parseLines, saveStore } from './lists.js';

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

const state = { modelLoaded: false, labelsReady: false, batch: 0 };

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

function showLoadProgress({ step, fraction }) {
  const bar = $('load-progress');
  bar.hidden = fraction >= 1;
  bar.value = fraction;
  if (fraction < 1) setStatus($('model-status'), `${step}…`);
}

async function loadModel(weights, config, sourceName) {
  state.modelLoaded = false;
  setStatus($('model-status'), `Building the model from ${sourceName}…`);
  try {
    const { info, backend, reason } = await call('load', { weights, config, backend: $('backend').value }, [weights]);
    state.modelLoaded = true;
    const params = (info.parameters / 1e6).toFixed(1);
    setStatus($('model-status'), `Loaded ${info.name}, ${params} M parameters (${info.layout === 'OpenClip' ? 'open_clip' : 'Hugging Face'} layout, ${info.dtypes.join('/')}). Running on ${backend === 'webgpu' ? 'WebGPU' : 'the CPU'}: ${reason}. Now check the labels and add photos.`);
    await applyLabels();
  } catch (e) {
    setStatus($('model-status'), `This model could not be loaded: ${e.message}`, true);
  }
}

async function readWithProgress(response, total) {
  const reader = response.body.getReader();
  const bar = $('load-progress');
  const chunks = [];
  let received = 0;
  bar.hidden = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    if (total) bar.value = received / total;
    setStatus($('model-status'), `Downloading weights: ${formatBytes(received)}${total ? ` of ${formatBytes(total)} (${Math.round((100 * received) / total)}%)` : ''}`);
  }
  bar.hidden = true;
  const out = new Uint8Array(received);
  let offset = 0;
  for (const c of chunks) { out.set(c, offset); offset += c.length; }
  return out.buffer;
}

$('weights-url-button').addEventListener('click', async () => {
  try {
    const response = await fetch(weightsUrl);
    if (!response.ok) throw new Error(`${weightsUrl} answered ${response.status} ${response.statusText}`);
    const weights = await readWithProgress(response, Number(response.headers.get('content-length')) || 0);
    let config;
    for (const name of ['open_clip_config.json', 'config.json']) {
      const r = await fetch(new URL(name, new URL(weightsUrl, location.href))).catch(() => null);
      if (r && r.ok) { config = await r.arrayBuffer(); break; }
    }
    await loadModel(weights, config, weightsUrl);
  } catch (e) {
    setStatus($('model-status'), `Could not download the weights: ${e.message}. Choose the file from this device instead.`, true);
  }
});

async function loadModelFiles(files) {
  const weightsFile = files.find((f) => !f.name.endsWith('.json'));
  const configFile = files.find((f) => f.name.endsWith('.json'));
  if (!weightsFile) {
    setStatus($('model-status'), 'Choose the .safetensors weights file (the config file alone is not enough).', true);
    return;
  }
  setStatus($('model-status'), `Reading ${weightsFile.name} (${formatBytes(weightsFile.size)})…`);
  const weights = await weightsFile.arrayBuffer();
  const config = configFile ? await configFile.arrayBuffer() : undefined;
  await loadModel(weights, config, weightsFile.name);
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

// ---- 2. Labels ----
const store = loadStore();

function activeList() {
  return store.lists[store.active];
}

function renderLists() {
  const select = $('list-select');
  select.replaceChildren();
  for (const [id, list] of Object.entries(store.lists)) {
    const option = document.createElement('option');
    option.value = id;
    option.textContent = `${list.name} (${list.labels.length})`;
    select.append(option);
  }
  select.value = store.active;
  const list = activeList();
  $('list-name').value = list.name;
  $('labels').value = list.labels.join('\n');
  $('templates').value = list.templates.join('\n');
}

let labelTimer = null;
let labelsVersion = 0;
async function applyLabels() {
  const list = activeList();
  saveStore(store);
  state.labelsReady = false;
  const version = ++labelsVersion;
  if (list.labels.length === 0) return setStatus($('labels-status'), 'The label list is empty: add at least one label, one per line.', true);
  if (list.templates.length === 0) return setStatus($('labels-status'), 'Add a prompt template, e.g. "a photo of a {}."', true);
  const bad = list.templates.find((t) => !t.includes('{}'));
  if (bad !== undefined) return setStatus($('labels-status'), `The template "${bad}" needs {} where the label goes, e.g. "a photo of a {}."`, true);
  if (!state.modelLoaded) return setStatus($('labels-status'), `${list.labels.length} labels. Load a model to use them.`);
  setStatus($('labels-status'), `Encoding ${list.labels.length} labels…`);
  try {
    const { encodedPrompts } = await call('labels', { labels: list.labels, templates: list.templates });
    if (version !== labelsVersion) return;
    state.labelsReady = true;
    setStatus($('labels-status'), `${list.labels.length} labels ready (${encodedPrompts} prompts encoded so far; edits re-encode only what changed).`);
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
  clearTimeout(labelTimer);
  labelTimer = setTimeout(applyLabels, 400);
}
for (const id of ['list-name', 'labels', 'templates']) $(id).addEventListener('input', editedList);

$('list-select').addEventListener('change', () => { store.active = $('list-select').value; renderLists(); applyLabels(); });
$('list-new').addEventListener('click', () => {
  const id = newId(store);
  store.lists[id] = { name: 'My list', labels: [], templates: ['a photo of a {}.'] };
  store.active = id;
  renderLists();
  applyLabels();
  $('labels').focus();
});
$('list-delete').addEventListener('click', () => {
  if (Object.keys(store.lists).length === 1) return setStatus($('labels-status'), 'This is the only list; edit it instead.', true);
  if (!confirm(`Delete the list "${activeList().name}"?`)) return;
  delete store.lists[store.active];
  store.active = Object.keys(store.lists)[0];
  renderLists();
  applyLabels();
});
$('list-import').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  event.target.value = '';
  if (!file) return;
  try {
    const list = parseImport(file.name, await file.text());
    const id = newId(store);
    store.lists[id] = list;
    store.active = id;
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

// ---- 3. Photos ----
const results = [];  // { file, predictions } per classified image, for the CSV export

function card(file) {
  const li = document.createElement('li');
  li.className = 'card';
  const img = document.createElement('img');
  img.alt = '';
  img.src = URL.createObjectURL(file);
  img.style.imageOrientation = 'from-image';
  const body = document.createElement('div');
  const name = document.createElement('div');
  name.className = 'name';
  name.textContent = file.name || 'pasted image';
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
  view.meta.textContent = `${Math.round(result.ms)} ms on ${backend === 'webgpu' ? 'WebGPU' : 'CPU'}`;
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
    const view = card(file);
    try {
      const bytes = await file.arrayBuffer();
      const result = await call('classify', { bytes, topK: 5 }, [bytes]);
      if (result.switchedToCpu) setStatus($('model-status'), `WebGPU stopped working (${result.switchedToCpu}); the model now runs on the CPU.`, true);
      showPredictions(view, result, result.backend);
      results.push({ file: file.name, predictions: result.predictions });
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
