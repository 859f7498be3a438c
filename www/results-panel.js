// Step 3: the photos to classify — chosen, taken, dropped, pasted or a whole folder — queued
// for the model worker one at a time, a result card each (kept on the device with a thumbnail,
// shown again at the next visit), the "not sure" threshold and the CSV export. Against a taxa
// list (#16) a card answers at the deepest rank whose best taxon reaches the rank threshold.
// "Where?" on a card (#15) draws over its photo where one of its labels matches.
import { thumbnail } from './gallery.js';
import { readBytes } from './files.js';
import { VARIANTS, drawMap, drawRamp } from './heatmap.js';
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
// A map's photo is shown full width in its card, but never taller than this (CSS pixels).
const MAP_MAX_HEIGHT = 420;

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
    // The photo in a frame that a map can be laid over (#15), its legend under it.
    const photo = document.createElement('figure');
    photo.className = 'photo';
    const frame = document.createElement('div');
    frame.className = 'frame';
    const img = document.createElement('img');
    img.alt = '';
    img.src = URL.createObjectURL(image);
    img.style.imageOrientation = 'from-image';
    frame.append(img);
    photo.append(frame);
    const body = document.createElement('div');
    const name = document.createElement('div');
    name.className = 'name';
    name.textContent = fileName || 'pasted image';
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = 'waiting…';
    const preds = document.createElement('div');
    body.append(name, meta, preds);
    li.append(photo, body);
    $('results').prepend(li);
    return { li, name, meta, preds, img, photo, frame, body };
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
    view.photo.remove();
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

  // ---- Where? (#15): a label's heat-map over the card's photo ----
  $('map-top').checked = settings.mapTop === true;
  $('map-top').addEventListener('change', () => { settings.mapTop = $('map-top').checked; saveSettings(); });
  $('map-variant').value = Object.hasOwn(VARIANTS, settings.mapVariant) ? settings.mapVariant : 'clearclip';
  $('map-variant').addEventListener('change', () => { settings.mapVariant = $('map-variant').value; saveSettings(); });
  const mapOpacity = () => (Number.isFinite(settings.mapOpacity) ? Math.min(1, Math.max(0, settings.mapOpacity)) : 0.5);

  let colours = null;
  /** The colour table (768 bytes), asked of the worker's WebAssembly module once. */
  function colourTable() {
    colours ??= call('colourTable').then((answer) => answer.table, (e) => { colours = null; throw e; });
    return colours;
  }

  const mapKey = (variant, label) => `${variant}\u0000${label}`;

  /**
   * Adds the "Where?" control to the card of a photo just classified (`file`, by the
   * `generation`th model): its top labels to choose from and a button that shows (or hides) the
   * chosen one's map over the photo. `result.map`: the top label's map, made with the
   * classification (`variant`), shown at once. A species of the tree of life is mapped by its
   * index in the tree (`taxon`), checked by the worker against its name.
   */
  function offerMaps(view, result, file, generation, variant) {
    const where = document.createElement('div');
    where.className = 'where row';
    view.body.append(where);
    const taxa = result.ranks !== undefined;
    // A taxa list's species are mapped by the label the model holds for them (their class name),
    // the tree of life's by their name and index in the tree.
    const choices = result.predictions
      .map((p) => ({
        text: taxa && p.common_name ? `${p.label ? `${p.label} (${p.common_name})` : p.common_name}` : p.label,
        mapLabel: taxa ? p.mapLabel : p.label,
        taxon: result.tree ? p.index : undefined,
      }))
      .filter((c) => typeof c.mapLabel === 'string' && (!result.tree || Number.isInteger(c.taxon)));
    if (choices.length === 0) return where.remove();
    const select = document.createElement('select');
    select.className = 'where-label';
    select.setAttribute('aria-label', 'Label to show on the photo');
    choices.forEach((c, i) => select.append(new Option(c.text, String(i))));
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'where-show';
    button.textContent = 'Where?';
    button.title = 'Show where on the photo the chosen label matches';
    const error = document.createElement('p');
    // Not `.error`: that marks a card whose photo failed (and tests look for it).
    error.className = 'where-error';
    error.hidden = true;
    where.append(select, button, error);
    view.where = { file, generation, choices, select, button, error, maps: new Map(), shown: null };
    const show = () => showChosen(view).catch((e) => mapError(view, `No map: ${e.message}`));
    button.addEventListener('click', () => (view.where.shown ? hideMap(view) : show()));
    select.addEventListener('change', () => { if (view.where.shown) show(); });
    if (result.map) {
      const i = choices.findIndex((c) => c.mapLabel === result.map.text);
      if (i >= 0) select.value = String(i);
      view.where.maps.set(mapKey(variant, result.map.text), result.map);
      showMap(view, result.map, i >= 0 ? choices[i].text : result.map.text).catch((e) => mapError(view, `No map: ${e.message}`));
    }
  }

  /** Shows the map of the label chosen on the card, asking the worker for it the first time. */
  async function showChosen(view) {
    const w = view.where;
    const choice = w.choices[Number(w.select.value)];
    const variant = $('map-variant').value;
    w.error.hidden = true;
    let map = w.maps.get(mapKey(variant, choice.mapLabel));
    if (!map) {
      if (w.generation !== modelGeneration() || !modelLoaded()) {
        return mapError(view, 'The model changed since this photo was classified: classify it again to see where its labels match.');
      }
      w.select.disabled = w.button.disabled = true;
      w.button.textContent = 'Mapping…';
      try {
        // The photo is read again from its file: nothing of it is kept but the handle.
        const bytes = await readBytes(w.file);
        const taxa = choice.taxon === undefined ? undefined : [choice.taxon];
        const answer = await call('explain', { bytes, labels: [choice.mapLabel], taxa, variant }, [bytes]);
        if (answer.switchedToCpu) onSwitchedToCpu(answer.switchedToCpu);
        map = answer.maps[0];
        w.maps.set(mapKey(variant, choice.mapLabel), map);
      } catch (e) {
        return mapError(view, `No map: ${e.message}`);
      } finally {
        w.select.disabled = w.button.disabled = false;
        w.button.textContent = w.shown ? 'Hide map' : 'Where?';
      }
    }
    await showMap(view, map, choice.text);
  }

  /** Says why there is no map; a map of another label shown until then goes (it would be mislabelled). */
  function mapError(view, message) {
    if (view.where.shown) hideMap(view);
    view.where.error.textContent = message;
    view.where.error.hidden = false;
  }

  /** The canvas over the photo and the legend under it, made for the card's first map. */
  function mapElements(view) {
    const w = view.where;
    if (w.canvas) return;
    w.canvas = document.createElement('canvas');
    w.canvas.className = 'heatmap';
    w.canvas.setAttribute('role', 'img');
    view.frame.append(w.canvas);
    w.legend = document.createElement('figcaption');
    w.legend.className = 'legend';
    w.title = document.createElement('div');
    w.title.className = 'legend-title';
    const scale = document.createElement('div');
    scale.className = 'legend-scale';
    w.low = document.createElement('span');
    w.low.className = 'legend-min';
    w.ramp = document.createElement('canvas');
    w.ramp.className = 'legend-ramp';
    w.ramp.setAttribute('aria-hidden', 'true');
    w.high = document.createElement('span');
    w.high.className = 'legend-max';
    scale.append(w.low, w.ramp, w.high);
    w.note = document.createElement('div');
    w.note.className = 'legend-note';
    const opacity = document.createElement('label');
    opacity.className = 'legend-opacity';
    w.opacity = document.createElement('input');
    w.opacity.type = 'range';
    w.opacity.min = '0';
    w.opacity.max = '1';
    w.opacity.step = '0.05';
    w.opacity.value = String(mapOpacity());
    w.opacity.addEventListener('input', () => {
      w.canvas.style.opacity = w.opacity.value;
      settings.mapOpacity = Number(w.opacity.value);
    });
    w.opacity.addEventListener('change', saveSettings);
    opacity.append('Opacity ', w.opacity);
    w.legend.append(w.title, scale, w.note, opacity);
    view.photo.append(w.legend);
    w.observer = new ResizeObserver(() => drawShown(view));
  }

  /**
   * Lays `map` over the card's photo. The map covers exactly what the model saw of the photo:
   * with the resize 'crop' that is the centred square of the shorter side (the model's resize
   * and centre crop), so the photo is shown as that square — `object-fit: cover` in a square
   * frame shows precisely the centred square (CLIP's crop rounds its offset to a whole pixel at
   * the model's 224 px, far below a map cell) — and the map spans the frame; with 'squash' both
   * sides were resized to the model's square, so the frame takes the photo's own aspect ratio,
   * the whole photo fills it, and the map is stretched over all of it.
   */
  async function showMap(view, map, text) {
    let table;
    try {
      table = await colourTable();
    } catch (e) {
      return mapError(view, `No map: ${e.message}`);
    }
    await view.img.decode().catch(() => {});
    const w = view.where;
    mapElements(view);
    const squash = map.preprocess === 'squash';
    const ratio = squash && view.img.naturalWidth > 0 && view.img.naturalHeight > 0 ? view.img.naturalWidth / view.img.naturalHeight : 1;
    view.li.classList.add('mapped');
    view.frame.classList.toggle('squash', squash);
    view.frame.style.aspectRatio = String(ratio);
    view.frame.style.width = `min(100%, ${Math.round(MAP_MAX_HEIGHT * ratio)}px)`;
    w.shown = { map, table };
    w.drawn = null;
    const variant = VARIANTS[map.variant] ?? map.variant;
    w.canvas.setAttribute('aria-label', `Map of where "${text}" matches the photo (${variant})`);
    w.canvas.style.opacity = w.opacity.value;
    w.canvas.dataset.preprocess = map.preprocess;
    w.legend.dataset.label = map.text;
    w.legend.dataset.variant = map.variant;
    w.legend.dataset.min = String(map.min);
    w.legend.dataset.max = String(map.max);
    w.title.textContent = text;
    w.low.textContent = map.min.toFixed(3);
    w.high.textContent = map.max.toFixed(3);
    w.low.title = 'the lowest cosine similarity on this photo';
    w.high.title = 'the highest cosine similarity on this photo';
    w.note.textContent = `cosine similarity of each patch to the label, lowest to highest on this photo (${variant}, ${map.grid[0]}×${map.grid[1]} cells)${squash ? '' : '; shown: the centred square the model saw'}`;
    drawRamp(w.ramp, table);
    w.canvas.hidden = w.legend.hidden = false;
    w.button.textContent = 'Hide map';
    drawShown(view);
    w.observer.observe(view.frame);
  }

  /** (Re)draws the map shown at the frame's size in device pixels (at a new size only). */
  function drawShown(view) {
    const w = view.where;
    if (!w.shown) return;
    const { width, height } = view.frame.getBoundingClientRect();
    if (width < 1 || height < 1) return;
    const scale = window.devicePixelRatio || 1;
    const size = [Math.round(width * scale), Math.round(height * scale)];
    if (w.drawn?.map === w.shown.map && w.drawn.size === size.join('x')) return;
    drawMap(w.canvas, w.shown.map, w.shown.table, ...size);
    w.drawn = { map: w.shown.map, size: size.join('x') };
  }

  function hideMap(view) {
    const w = view.where;
    w.shown = null;
    w.observer.disconnect();
    view.li.classList.remove('mapped');
    view.frame.classList.remove('squash');
    view.frame.style.aspectRatio = view.frame.style.width = '';
    w.canvas.hidden = w.legend.hidden = true;
    w.button.textContent = 'Where?';
  }

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
    // The colours of the maps made with the answers, asked for before the first photo.
    if ($('map-top').checked) colourTable().catch(() => { /* each card says so */ });
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
        // With "Show where the top label matches", the top label's map comes with the answer.
        const variant = $('map-top').checked ? $('map-variant').value : undefined;
        const result = await call('classify', { bytes, topK: 5, threshold: rankThreshold(), map: variant }, [bytes]);
        if (result.switchedToCpu) onSwitchedToCpu(result.switchedToCpu);
        if (result.ranks) withLineages(result);
        showPredictions(view, result, result.backend);
        offerMaps(view, result, file, generation, variant);
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
