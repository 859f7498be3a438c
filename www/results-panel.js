// Step 3: the photos to classify — chosen, taken, dropped, pasted or a whole folder — queued
// for the model worker one at a time, a result card each (kept on the device with a thumbnail,
// shown again at the next visit), the "not sure" threshold and the CSV export.
import { thumbnail } from './gallery.js';
import { readBytes } from './files.js';

const $ = (id) => document.getElementById(id);

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}

/**
 * A CSV cell. One starting with `=`, `+`, `-`, `@` (or a tab / carriage return) would be run as
 * a formula by a spreadsheet: it is kept as text with a leading `'` (OWASP's advice).
 */
function csvField(text) {
  const s = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A result kept on the device that can be shown again (not damaged): predictions with text labels. */
const usableResult = (r) => Boolean(r) && typeof r === 'object' && r.thumb instanceof Blob && typeof r.name === 'string'
  && Array.isArray(r.predictions) && r.predictions.length > 0
  && r.predictions.every((p) => p && typeof p.label === 'string' && Number.isFinite(p.probability));

/**
 * `call(type, payload, transfer)`: a request to the model worker; `modelGeneration()`: changes
 * each time another model is asked for (www/app.js). `settings` + `saveSettings()`: kept across
 * visits. `modelLoaded()`: whether a model is built. `labels`: the labels panel (`isReady()`,
 * `apply()`). `onSwitchedToCpu(reason)`: WebGPU failed and the model moved to the CPU.
 */
export function createResultsPanel({ device, call, modelGeneration, settings, saveSettings, download, modelLoaded, labels, onSwitchedToCpu }) {
  const results = []; // { file, predictions } per classified image, for the CSV export
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
  /** Queues photos to classify, after any still being classified. */
  function classifyFiles(files) {
    files = files.filter(Boolean);
    if (files.length === 0) return;
    queue = queue.then(() => runBatch(files));
  }

  async function runBatch(files) {
    if (!modelLoaded()) return setStatus($('batch-status'), 'Load a model first (step 1).', true);
    if (!labels.isReady()) await labels.apply();
    if (!labels.isReady()) return setStatus($('batch-status'), 'Fix the label list first (step 2).', true);
    // Every photo of the batch is classified by the model in use now: when another one is asked
    // for, the rest of the batch stops (a photo already sent is answered by this model).
    const generation = modelGeneration();
    let modelChanged = false;
    const bar = $('batch-progress');
    bar.hidden = false;
    $('batch-cancel').hidden = false;
    cancelled = false;
    let done = 0;
    for (const file of files) {
      if (cancelled) break;
      if (generation !== modelGeneration() || !modelLoaded()) { modelChanged = true; break; }
      const view = card(file, file.name);
      try {
        const bytes = await readBytes(file);
        const result = await call('classify', { bytes, topK: 5 }, [bytes]);
        if (result.switchedToCpu) onSwitchedToCpu(result.switchedToCpu);
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
    if (modelChanged) setStatus($('batch-status'), `The model changed; the rest of this batch was not classified (${done} of ${files.length} photos were done).`, true);
    else if (cancelled) setStatus($('batch-status'), `Cancelled after ${done} of ${files.length} photos.`);
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

  /**
   * At start-up: the results kept on the device, as cards. Returns a sentence when some could
   * not be read (damaged): they are left out.
   */
  async function restore() {
    const all = await device.getResults().catch(() => []);
    const stored = Array.isArray(all) ? all.filter(usableResult) : [];
    for (const r of stored) {
      showPredictions(card(r.thumb, r.name), r, r.backend);
      results.push({ file: r.name, predictions: r.predictions });
    }
    $('export-csv').disabled = $('clear-results').disabled = results.length === 0;
    if (stored.length) setStatus($('batch-status'), `${stored.length} results from earlier are shown below.`);
    const damaged = (Array.isArray(all) ? all.length : 0) - stored.length;
    if (damaged === 0) return null;
    return `${damaged === 1 ? 'A result' : `${damaged} results`} kept on this device could not be read and ${damaged === 1 ? 'was' : 'were'} left out (Clear results removes ${damaged === 1 ? 'it' : 'them'}).`;
  }

  return { restore, classifyFiles };
}
