// The page: wires the controls to the model worker. Labels and file names are always put in
// the page as text (textContent), never as HTML.
import { PRESETS } from './presets.js';

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
  const p = pending.get(data.id);
  pending.delete(data.id);
  if (data.ok) p.resolve(data.value); else p.reject(new Error(data.error));
};

const state = { modelLoaded: false, labelsReady: false, batch: 0 };
const STORE_KEY = 'fieldclip.labels.v1';

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

$('weights-file').addEventListener('change', async (event) => {
  const files = [...event.target.files];
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
  event.target.value = '';
});

// ---- 2. Labels ----
for (const [key, preset] of Object.entries(PRESETS)) {
  const option = document.createElement('option');
  option.value = key;
  option.textContent = preset.name;
  $('preset').append(option);
}
const custom = document.createElement('option');
custom.value = 'custom';
custom.textContent = 'My own list';
$('preset').append(custom);

function currentLabels() {
  return $('labels').value.split('\n').map((l) => l.trim()).filter(Boolean);
}

function saveLabels() {
  localStorage.setItem(STORE_KEY, JSON.stringify({ preset: $('preset').value, labels: $('labels').value, template: $('template').value }));
}

function loadPreset(key) {
  const preset = PRESETS[key];
  if (!preset) return;
  $('labels').value = preset.labels.join('\n');
  $('template').value = preset.template;
}

const saved = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
if (saved) {
  $('preset').value = saved.preset;
  $('labels').value = saved.labels;
  $('template').value = saved.template;
} else {
  loadPreset('plants');
}

let labelTimer = null;
async function applyLabels() {
  saveLabels();
  state.labelsReady = false;
  const labels = currentLabels();
  const template = $('template').value;
  if (labels.length === 0) return setStatus($('labels-status'), 'The label list is empty: add at least one label, one per line.', true);
  if (!template.includes('{}')) return setStatus($('labels-status'), 'The template needs {} where the label goes, e.g. "a photo of a {}."', true);
  if (!state.modelLoaded) return setStatus($('labels-status'), `${labels.length} labels. Load a model to use them.`);
  setStatus($('labels-status'), `Encoding ${labels.length} labels…`);
  try {
    await call('labels', { labels, templates: [template] });
    state.labelsReady = true;
    setStatus($('labels-status'), `${labels.length} labels ready.`);
  } catch (e) {
    setStatus($('labels-status'), e.message, true);
  }
}
$('preset').addEventListener('change', () => { loadPreset($('preset').value); applyLabels(); });
for (const id of ['labels', 'template']) {
  $(id).addEventListener('input', () => {
    $('preset').value = 'custom';
    clearTimeout(labelTimer);
    labelTimer = setTimeout(applyLabels, 400);
  });
}
applyLabels();

// ---- 3. Photos ----
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
  return { li, meta, preds, img };
}

function showPredictions(view, result) {
  view.meta.textContent = `${Math.round(result.ms)} ms`;
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

async function classifyFiles(files) {
  files = files.filter(Boolean);
  if (files.length === 0) return;
  if (!state.modelLoaded) return setStatus($('batch-status'), 'Load a model first (step 1).', true);
  if (!state.labelsReady) await applyLabels();
  if (!state.labelsReady) return setStatus($('batch-status'), 'Fix the label list first (step 2).', true);
  const bar = $('batch-progress');
  bar.hidden = false;
  let done = 0;
  for (const file of files) {
    const view = card(file);
    try {
      const bytes = await file.arrayBuffer();
      showPredictions(view, await call('classify', { bytes, topK: 5 }, [bytes]));
    } catch (e) {
      view.li.classList.add('failed');
      view.meta.textContent = '';
      const err = document.createElement('p');
      err.className = 'error';
      err.textContent = e.message;
      view.preds.append(err);
      view.img.remove();
    }
    done += 1;
    bar.value = done / files.length;
    setStatus($('batch-status'), `${done} of ${files.length} photos done.`);
  }
  bar.hidden = true;
}

$('photo-files').addEventListener('change', (e) => { classifyFiles([...e.target.files]); e.target.value = ''; });
$('camera').addEventListener('change', (e) => { classifyFiles([...e.target.files]); e.target.value = ''; });
const zone = $('drop-zone');
zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('over'); classifyFiles([...e.dataTransfer.files]); });
document.addEventListener('paste', (e) => classifyFiles([...e.clipboardData.files]));
