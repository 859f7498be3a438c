// Step 3: the photos to classify — chosen, taken, dropped, pasted or a whole folder — queued
// for the model worker one at a time, a result card each (kept on the device with a thumbnail,
// shown again at the next visit), the "not sure" threshold and the CSV export. Against a taxa
// list (#16) a card answers at the deepest rank whose best taxon reaches the rank threshold.
import { thumbnail } from './gallery.js';
import { readBytes } from './files.js';
import { RANKS } from './taxa.js';

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

const isObject = (v) => Boolean(v) && typeof v === 'object' && !Array.isArray(v);
const usableRow = (r) => isObject(r) && typeof r.name === 'string' && Number.isFinite(r.probability);
const usableLineage = (l) => l === undefined || l === null
  || (isObject(l) && [...RANKS, 'common_name'].every((k) => typeof l[k] === 'string'));

/**
 * A taxa result's own parts, whole: the answer (or null), the threshold it was made at and the
 * best taxa of every rank.
 */
const usableTaxaParts = (r) => (r.answer === null || (isObject(r.answer) && RANKS.includes(r.answer.rank)
    && typeof r.answer.name === 'string' && Number.isFinite(r.answer.probability)))
  && Number.isFinite(r.threshold) && isObject(r.ranks) && RANKS.every((k) => Array.isArray(r.ranks[k]) && r.ranks[k].every(usableRow))
  && r.predictions.every((p) => (p.common_name === undefined || typeof p.common_name === 'string') && usableLineage(p.lineage));

/**
 * A result kept on the device that can be shown again (not damaged): predictions with text
 * labels, and for taxa (`ranks`) their answer and ranks.
 */
const usableResult = (r) => Boolean(r) && typeof r === 'object' && r.thumb instanceof Blob && typeof r.name === 'string'
  && Array.isArray(r.predictions) && r.predictions.length > 0
  && r.predictions.every((p) => p && typeof p.label === 'string' && Number.isFinite(p.probability))
  && (r.ranks === undefined || usableTaxaParts(r));

const percent = (p) => `${Math.round(p * 100)} %`;
// Genus and species names are written in italics.
const italicRanks = new Set(['genus', 'species']);

/** A taxon's name as text, in italics at genus and species. */
function taxonName(rank, name) {
  const el = document.createElement(italicRanks.has(rank) ? 'i' : 'span');
  el.textContent = name;
  return el;
}

/**
 * The answer line of a taxa result: "genus <i>Quercus</i> 86 % — species uncertain", "species
 * <i>Quercus robur</i> (English oak) 91 %" or "Not sure at any rank (nothing reaches 80 %)".
 */
function answerLine(result) {
  const line = document.createElement('p');
  line.className = 'answer';
  const { answer } = result;
  line.dataset.answerRank = answer ? answer.rank : '';
  line.dataset.answerName = answer ? answer.name : '';
  line.dataset.answerProbability = answer ? String(answer.probability) : '';
  if (!answer) {
    line.textContent = `Not sure at any rank (nothing reaches ${percent(result.threshold)})`;
    return line;
  }
  const parts = [`${answer.rank} `, taxonName(answer.rank, answer.name)];
  const common = answer.rank === 'species' ? result.predictions.find((p) => p.label === answer.name)?.common_name : '';
  if (common) parts.push(` (${common})`);
  parts.push(` ${percent(answer.probability)}`);
  const deeper = RANKS[RANKS.indexOf(answer.rank) + 1];
  if (deeper) parts.push(` — ${deeper} uncertain`);
  line.append(...parts);
  return line;
}

/** "By rank": each rank's best taxa with their probabilities, on demand. */
function byRank(result) {
  const details = document.createElement('details');
  details.className = 'by-rank';
  const summary = document.createElement('summary');
  summary.textContent = 'By rank';
  details.append(summary);
  for (const rank of RANKS) {
    const rows = result.ranks[rank];
    if (!rows.length) continue;
    const block = document.createElement('div');
    block.className = 'rank';
    block.dataset.rank = rank;
    const title = document.createElement('div');
    title.className = 'rank-name';
    title.textContent = rank;
    const list = document.createElement('ol');
    for (const row of rows) {
      const li = document.createElement('li');
      li.className = 'rank-row';
      li.dataset.name = row.name;
      li.dataset.probability = String(row.probability);
      const prob = document.createElement('span');
      prob.className = 'prob';
      prob.textContent = `${(row.probability * 100).toFixed(1)}%`;
      li.append(taxonName(rank, row.name || '(unnamed)'), prob);
      list.append(li);
    }
    block.append(title, list);
    details.append(block);
  }
  return details;
}

const TAXA_COLUMNS = [...RANKS, 'common_name'];

/**
 * `call(type, payload, transfer)`: a request to the model worker; `modelGeneration()`: changes
 * each time another model is asked for (www/app.js). `settings` + `saveSettings()`: kept across
 * visits. `modelLoaded()`: whether a model is built. `labels`: the labels panel (`isReady()`,
 * `apply()`). `onSwitchedToCpu(reason)`: WebGPU failed and the model moved to the CPU.
 */
export function createResultsPanel({ device, call, modelGeneration, settings, saveSettings, download, modelLoaded, labels, onSwitchedToCpu }) {
  // Per classified image, for the CSV export: { file, predictions } (+ answer, ranks for taxa).
  const results = [];
  $('threshold').value = settings.threshold;
  $('threshold').addEventListener('change', () => { settings.threshold = Number($('threshold').value); saveSettings(); });
  /** The rank threshold for taxa lists, 0.05 to 1 (0.8 when the field does not hold a number). */
  const rankThreshold = () => {
    const t = Number($('rank-threshold').value);
    return $('rank-threshold').value.trim() && Number.isFinite(t) ? Math.min(1, Math.max(0.05, t)) : 0.8;
  };
  $('rank-threshold').value = String(Number.isFinite(settings.rankThreshold) ? settings.rankThreshold : 0.8);
  $('rank-threshold').addEventListener('change', () => {
    settings.rankThreshold = rankThreshold();
    $('rank-threshold').value = String(settings.rankThreshold);
    saveSettings();
  });

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
    const taxa = result.ranks !== undefined;
    // A taxa result says how sure it is in its answer line instead.
    const threshold = Number($('threshold').value) / 100;
    if (!taxa && result.predictions[0].probability < threshold) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'not sure';
      view.name.append(badge);
    }
    if (taxa) {
      view.li.classList.add('taxa');
      view.preds.append(answerLine(result));
    }
    for (const p of result.predictions) {
      const row = document.createElement('div');
      row.className = 'pred';
      row.dataset.probability = String(p.probability);
      const label = document.createElement('span');
      label.className = 'label';
      if (taxa) {
        row.dataset.label = p.label;
        // A taxon without a genus or epithet is named by its common name alone.
        if (p.label) label.append(taxonName('species', p.label));
        if (p.common_name) label.append(p.label ? ` (${p.common_name})` : p.common_name);
      } else {
        label.textContent = p.label;
      }
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
    if (taxa) view.preds.append(byRank(result));
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

  // Taxa results add their answer and each species' lineage (plain results leave those empty).
  $('export-csv').addEventListener('click', () => {
    const taxa = results.some((r) => r.ranks);
    const lines = [taxa ? `file,rank,label,probability,answer_rank,answer_name,answer_probability,${TAXA_COLUMNS.join(',')}` : 'file,rank,label,probability'];
    for (const r of results) {
      const answer = r.answer ? [r.answer.rank, r.answer.name, r.answer.probability.toFixed(6)] : ['', '', ''];
      r.predictions.forEach((p, i) => {
        const cells = [csvField(r.file), i + 1, csvField(p.label), p.probability.toFixed(6)];
        if (taxa) {
          const lineage = p.lineage || { common_name: p.common_name || '' };
          cells.push(...answer.map(csvField), ...TAXA_COLUMNS.map((k) => csvField(lineage[k] ?? '')));
        }
        lines.push(cells.join(','));
      });
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
        const result = await call('classify', { bytes, topK: 5, threshold: rankThreshold() }, [bytes]);
        if (result.switchedToCpu) onSwitchedToCpu(result.switchedToCpu);
        if (result.ranks) withLineages(result);
        showPredictions(view, result, result.backend);
        results.push(exported(file.name, result));
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

  /**
   * Each species of a taxa result gets its lineage from the taxa list in use (kept with it);
   * against the tree of life the worker has added them.
   */
  function withLineages(result) {
    const lookup = labels.taxaLookup();
    for (const p of result.predictions) p.lineage ??= lookup?.(p.label, p.common_name) ?? null;
  }

  /** What the CSV export keeps of a result. */
  function exported(file, r) {
    return r.ranks ? { file, predictions: r.predictions, answer: r.answer, ranks: r.ranks } : { file, predictions: r.predictions };
  }

  /** Stores a result so it is still there after a reload, offline. */
  async function keepResult(file, result) {
    try {
      const thumb = await thumbnail(file);
      const taxa = result.ranks ? { answer: result.answer, ranks: result.ranks, threshold: result.threshold } : {};
      await device.addResult({ name: file.name, thumb, predictions: result.predictions, ms: result.ms, backend: result.backend, at: Date.now(), ...taxa });
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
      results.push(exported(r.name, r));
    }
    $('export-csv').disabled = $('clear-results').disabled = results.length === 0;
    if (stored.length) setStatus($('batch-status'), `${stored.length} results from earlier are shown below.`);
    const damaged = (Array.isArray(all) ? all.length : 0) - stored.length;
    if (damaged === 0) return null;
    return `${damaged === 1 ? 'A result' : `${damaged} results`} kept on this device could not be read and ${damaged === 1 ? 'was' : 'were'} left out (Clear results removes ${damaged === 1 ? 'it' : 'them'}).`;
  }

  return { restore, classifyFiles };
}
