// Step 4: the user's photo collection for the loaded model — indexing in the worker (with
// progress and cancel, kept on the device), search by text / by example / "more like this",
// labels on photos, and the few-shot adapter made from them. Names and labels go in as text.
import { notStrings } from './lists.js';
import { sha256Hex } from './storage.js';
import { readBytes, readText } from './files.js';

const $ = (id) => document.getElementById(id);

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}

/** A small JPEG of a photo (EXIF-oriented, centre-cropped square). */
export async function thumbnail(file, size = 192) {
  const bitmap = await createImageBitmap(file);
  const side = Math.min(bitmap.width, bitmap.height);
  const canvas = new OffscreenCanvas(size, size);
  canvas.getContext('2d').drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, size, size);
  bitmap.close();
  return canvas.convertToBlob({ type: 'image/jpeg', quality: 0.8 });
}

/**
 * The label list an imported adapter file brings (`parsed`: its JSON), or an Error whose
 * message ends a sentence that starts with the file's name. `templates`: used when the file
 * names none.
 */
function adapterList(name, parsed, templates) {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error('this is not an adapter file (a JSON object with "labels", as Export adapter or fieldclip adapt write).');
  }
  const wrong = notStrings(parsed.labels, 'labels') || (parsed.templates === undefined ? null : notStrings(parsed.templates, 'templates'));
  if (wrong) throw new Error(wrong);
  // Its photos' labels are positions in this list: a blank or repeated label cannot line up.
  if (parsed.labels.length === 0) throw new Error('its list of labels is empty.');
  const blank = parsed.labels.findIndex((l) => !l.trim());
  if (blank >= 0) throw new Error(`its labels must not be blank (item ${blank + 1} is).`);
  const repeated = parsed.labels.find((l, i) => parsed.labels.indexOf(l) !== i);
  if (repeated !== undefined) throw new Error(`its labels must not repeat ("${repeated}" is there twice).`);
  return { name, labels: parsed.labels, templates: parsed.templates?.length ? parsed.templates : templates };
}

/**
 * `call(type, payload, transfer)`: a request to the model worker; `modelGeneration()`: changes
 * each time another model is asked for (www/app.js). `activeLabels()`: the label list in use
 * ({ labels, templates }). `settings` + `saveSettings()`: kept across visits.
 * `onAdapterImported(list)`: a label list to switch to for an imported adapter.
 */
export function createGallery({ device, call, modelGeneration, activeLabels, settings, saveSettings, onAdapterImported, download }) {
  let modelId = null;
  let modelGen = null; // the modelGeneration() that modelId was loaded as
  let records = []; // in the worker's row order: { sha256, name, embedding, label }
  let notice = ''; // said once more after the next model's collection is opened
  let cancelled = false;
  let adapterJson = null; // the adapter last made or imported, for the current labels
  let imported = false; // an imported adapter is used as it is, until the user labels photos
  let importError = null; // why the last imported adapter file was refused, until the next import
  let thumbUrls = [];

  function showCount() {
    $('gallery-clear').disabled = records.length === 0;
    if (!modelId) return setStatus($('gallery-status'), 'Load a model to start a collection.');
    const labelled = records.filter((r) => r.label).length;
    setStatus($('gallery-status'), records.length
      ? `${records.length} photos in your collection, ${labelled} with a label.`
      : 'Your collection is empty: add photos or a folder to search them.');
  }

  /**
   * The loaded model changed: its collection is read from the device and handed to the worker.
   * `generation`: the modelGeneration() it was loaded as; when a newer model has been asked for
   * since, nothing changes here (that model's own setModel follows).
   */
  async function setModel(id, generation = modelGeneration()) {
    const stored = await device.galleryAll(id).catch(() => []);
    if (generation !== modelGeneration()) return;
    modelId = id;
    modelGen = generation;
    records = stored;
    const dim = records[0]?.embedding.length || 0;
    const matrix = new Float32Array(records.length * dim);
    records.forEach((r, i) => matrix.set(r.embedding, i * dim));
    await call('galleryReset', { matrix, dim }, [matrix.buffer]);
    $('search-results').replaceChildren();
    setStatus($('search-status'), '');
    showCount();
    if (notice) setStatus($('gallery-status'), `${$('gallery-status').textContent} ${notice}`, true);
    notice = '';
    adapterJson = null;
    imported = false;
    await refreshAdapter();
  }

  // ---- adding photos ----
  let queue = Promise.resolve();
  function addFiles(files) {
    files = files.filter(Boolean);
    if (files.length) queue = queue.then(() => addBatch(files));
  }

  async function addBatch(files) {
    if (!modelId || modelGen !== modelGeneration()) {
      return setStatus($('gallery-status'), modelId
        ? 'The model changed (step 1): add the photos again once it is ready, so that they are indexed with it.'
        : 'Load a model first (step 1): the collection is indexed with it.', true);
    }
    // The model this batch is for: each photo is embedded by the worker, one awaited request at
    // a time, and if another model is asked for meanwhile the rest of the batch is not added, so
    // no embedding is kept under a collection of another model.
    const id = modelId;
    const generation = modelGen;
    const kept = records;
    const modelChanged = () => modelGeneration() !== generation;
    const bar = $('gallery-progress');
    bar.hidden = false;
    $('gallery-cancel').hidden = false;
    cancelled = false;
    let stopped = false; // the model changed
    let added = 0;
    let known = 0;
    const failed = [];
    // Photos are stored in blocks (www/storage.js): every 32, and at the end or on cancel.
    let pending = [];
    const flush = async () => {
      const block = pending;
      pending = [];
      await device.galleryAdd(id, block).catch(() => { /* kept for this visit */ });
    };
    const seen = new Set(kept.map((r) => r.sha256));
    for (const [i, file] of files.entries()) {
      if (cancelled) break;
      if (modelChanged()) { stopped = true; break; }
      try {
        const bytes = await readBytes(file);
        const sha256 = await sha256Hex(bytes);
        if (seen.has(sha256)) {
          known += 1;
        } else {
          const { embedding } = await call('embedImage', { bytes }, [bytes]);
          const thumb = await thumbnail(file).catch(() => null);
          // Another model was asked for while this photo was embedded: it is not added.
          if (modelChanged()) { stopped = true; break; }
          const entry = { sha256, name: file.webkitRelativePath || file.name, embedding, label: null };
          // Sent before any other model's 'load', so the worker adds it to this model's index
          // (replaced when the next model's collection is opened): kept in step here.
          await call('galleryAdd', { embedding });
          kept.push({ ...entry, thumb });
          seen.add(sha256);
          pending.push({ ...entry, thumb });
          if (pending.length === 32) await flush();
          added += 1;
        }
      } catch (e) {
        // An answer from after the model changed (e.g. "Load a model first") is no photo's fault.
        if (modelChanged()) { stopped = true; break; }
        failed.push(`${file.name}: ${e.message}`);
      }
      bar.value = (i + 1) / files.length;
      setStatus($('gallery-status'), `Adding photos: ${i + 1} of ${files.length}…`);
    }
    const said = `The model changed; the rest of this batch was not added (${added} of its ${files.length} photos had been added to the previous model's collection).`;
    // Said again when the new model's collection opens (which replaces the status line).
    if (stopped && modelGen === generation) notice = said;
    await flush();
    bar.hidden = true;
    $('gallery-cancel').hidden = true;
    if (stopped) return setStatus($('gallery-status'), said, true);
    showCount();
    const parts = [`${cancelled ? 'Cancelled: ' : ''}${added} added`];
    if (known) parts.push(`${known} already in the collection`);
    if (failed.length) parts.push(`${failed.length} could not be read (${failed.join('; ')})`);
    setStatus($('gallery-status'), `${$('gallery-status').textContent} ${parts.join(', ')}.`, failed.length > 0);
  }

  $('gallery-files').addEventListener('change', (e) => { addFiles([...e.target.files]); e.target.value = ''; });
  $('gallery-folder').addEventListener('change', (e) => {
    const files = [...e.target.files].filter((f) => f.type.startsWith('image/') || !f.type);
    files.sort((a, b) => a.webkitRelativePath.localeCompare(b.webkitRelativePath));
    addFiles(files);
    e.target.value = '';
  });
  $('gallery-cancel').addEventListener('click', () => { cancelled = true; });
  $('gallery-clear').addEventListener('click', async () => {
    if (!confirm(`Remove all ${records.length} photos from the collection? (The photo files themselves are not touched.)`)) return;
    await device.galleryClear(modelId).catch(() => {});
    await setModel(modelId, modelGen);
  });

  // ---- search ----
  const MODEL_CHANGED_SEARCH = 'The model changed (step 1): search again once it is ready.';

  /**
   * Ranks the collection by `query()`, an embedding made as model load `generation` (the query
   * and the collection must come from the same model).
   */
  async function search(query, what, generation = modelGen) {
    if (!modelId) return setStatus($('search-status'), 'Load a model first (step 1).', true);
    if (generation !== modelGen || modelGen !== modelGeneration()) return setStatus($('search-status'), MODEL_CHANGED_SEARCH, true);
    if (records.length === 0) return setStatus($('search-status'), 'The collection is empty: add photos to it first.', true);
    const k = Math.max(1, Math.min(500, Number($('search-k').value) || 24));
    const start = performance.now();
    const { hits } = await call('search', { query: query(), k });
    if (generation !== modelGeneration()) return setStatus($('search-status'), MODEL_CHANGED_SEARCH, true);
    const ms = performance.now() - start;
    setStatus($('search-status'), `The ${hits.length} photos most like ${what}, of ${records.length} (${ms.toFixed(0)} ms).`);
    await showTiles(hits);
  }

  async function showTiles(hits) {
    // The tiles belong to this model's collection (labels given on them are kept under it).
    const id = modelId;
    const generation = modelGen;
    thumbUrls.forEach((u) => URL.revokeObjectURL(u));
    thumbUrls = [];
    const labels = activeLabels().labels;
    const tiles = [];
    for (const [rank, { index, score }] of hits.entries()) {
      const r = records[index];
      const li = document.createElement('li');
      li.className = 'tile';
      li.classList.toggle('labelled', Boolean(r.label));
      li.dataset.sha256 = r.sha256;
      li.dataset.score = String(score);
      const thumb = r.thumb || await device.thumb(r.sha256).catch(() => null);
      if (thumb) {
        r.thumb = thumb;
        const img = document.createElement('img');
        img.alt = '';
        img.src = URL.createObjectURL(thumb);
        thumbUrls.push(img.src);
        li.append(img);
      }
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = r.name;
      const scoreEl = document.createElement('span');
      scoreEl.className = 'score';
      scoreEl.textContent = `#${rank + 1} · similarity ${score.toFixed(3)}`;
      const select = document.createElement('select');
      select.setAttribute('aria-label', `Label of ${r.name}`);
      select.className = 'tile-label';
      for (const value of ['', ...new Set([...labels, ...(r.label ? [r.label] : [])])]) {
        const option = document.createElement('option');
        option.value = value;
        option.textContent = value || '— no label —';
        select.append(option);
      }
      select.value = r.label || '';
      select.addEventListener('change', async () => {
        r.label = select.value || null;
        li.classList.toggle('labelled', Boolean(r.label));
        await device.gallerySetLabel(id, r.sha256, r.label).catch(() => {});
        if (generation !== modelGen) return; // another model's collection is open now
        imported = false;
        showCount();
        await refreshAdapter();
      });
      const more = document.createElement('button');
      more.type = 'button';
      more.className = 'more-like-this';
      more.textContent = 'More like this';
      more.addEventListener('click', () => search(() => r.embedding, `"${r.name}"`));
      li.append(name, scoreEl, select, more);
      tiles.push(li);
    }
    // Another model's collection was opened while the thumbnails were read: these are stale.
    if (generation !== modelGen) return;
    $('search-results').replaceChildren(...tiles);
  }

  $('search-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('search-text').value.trim();
    if (!text) return setStatus($('search-status'), 'Type what to look for, e.g. "a leaf with brown spots".', true);
    try {
      const generation = modelGeneration();
      const { embedding } = await call('embedText', { text });
      await search(() => embedding, `"${text}"`, generation);
    } catch (err) {
      setStatus($('search-status'), err.message, true);
    }
  });
  $('search-image').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    if (!file) return;
    try {
      if (!modelId) throw new Error('Load a model first (step 1).');
      const bytes = await readBytes(file);
      const generation = modelGeneration();
      const { embedding } = await call('embedImage', { bytes }, [bytes]);
      await search(() => embedding, `your photo "${file.name}"`, generation);
    } catch (err) {
      setStatus($('search-status'), `${file.name}: ${err.message}`, true);
    }
  });

  // ---- the few-shot adapter ----
  const alpha = () => Number($('adapter-alpha').value);
  const beta = () => Number($('adapter-beta').value);
  $('adapter-alpha').value = settings.adapterAlpha ?? 1;
  $('adapter-beta').value = settings.adapterBeta ?? 5.5;
  $('adapter-probe').checked = Boolean(settings.adapterProbe);
  $('adapter-use').checked = Boolean(settings.adapterUse);

  /** The labelled photos whose label is on the active list. */
  function examples() {
    const labels = activeLabels().labels;
    const chosen = records.filter((r) => r.label && labels.includes(r.label));
    const dim = chosen[0]?.embedding.length || 0;
    const matrix = new Float32Array(chosen.length * dim);
    chosen.forEach((r, i) => matrix.set(r.embedding, i * dim));
    return { matrix, exampleLabels: Uint32Array.from(chosen.map((r) => labels.indexOf(r.label))), count: chosen.length };
  }

  let refreshes = 0; // refreshAdapter calls (and scheduled ones): only the newest shows its result
  let refreshTimer = null;

  /**
   * Makes the adapter again from the labelled photos (unless one was imported), checks it by
   * leave-one-out and hands it to the worker, active or not as the checkbox says. A newer
   * refresh, or another model, makes this one stop without a word: the worker stops its check
   * between parts ('cancelled'), and whatever this one gets back is dropped.
   */
  async function refreshAdapter() {
    clearTimeout(refreshTimer);
    const mine = ++refreshes;
    const generation = modelGen;
    const stale = () => mine !== refreshes || generation !== modelGeneration();
    $('adapter-export').disabled = true;
    $('adapter-use').disabled = true;
    if (!modelId) {
      adapterJson = null;
      return setStatus($('adapter-status'), '');
    }
    // The collection open here is not the model's in the worker: its setModel refreshes again.
    if (stale()) return;
    try {
      let json = adapterJson;
      if (!imported) {
        const { matrix, exampleLabels, count } = examples();
        if (count === 0) {
          adapterJson = null;
          await call('useAdapter', { json: null, active: false });
          if (stale()) return;
          if (importError) return setStatus($('adapter-status'), importError, true);
          return setStatus($('adapter-status'), 'No photo of the collection has a label from this list yet: give a few photos a label (the menu under each photo).');
        }
        setStatus($('adapter-status'), 'Checking your labelled photos…');
        ({ json } = await call('makeAdapter', { examples: matrix, exampleLabels, alpha: alpha(), beta: beta(), probe: $('adapter-probe').checked }));
        if (stale()) return;
      } else {
        setStatus($('adapter-status'), 'Checking your labelled photos…');
      }
      const check = await call('useAdapter', { json, active: $('adapter-use').checked });
      if (stale()) return;
      adapterJson = json;
      showCheck(check);
      $('adapter-export').disabled = false;
      $('adapter-use').disabled = false;
    } catch (e) {
      if (stale()) return;
      // Stopped by a change that is not a refresh (the labels): one follows when they are
      // encoded; the button runs it again otherwise.
      if (e.kind === 'cancelled') return setStatus($('adapter-status'), 'A newer change stopped the check; it runs again when the labels are ready (or press Check on my labelled photos).');
      if (imported) {
        imported = false;
        // Kept until the next import: a refresh that follows (the labels it switched to being
        // encoded) must not cover why the file was refused.
        importError = e.message;
      }
      setStatus($('adapter-status'), e.message, true);
    }
  }

  /**
   * A refresh soon: several quick changes (α or β stepped with the arrows) make one. Whatever
   * a refresh still running would show is dropped from now on.
   */
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshes += 1;
    $('adapter-export').disabled = true;
    $('adapter-use').disabled = true;
    refreshTimer = setTimeout(refreshAdapter, 300);
  }

  function showCheck(check) {
    const pct = (n) => `${Math.round((100 * n) / check.examples)}%`;
    const verdict = check.adapted_correct > check.zero_shot_correct ? 'Your labelled photos help.'
      : check.adapted_correct < check.zero_shot_correct ? 'Your labelled photos make it worse here: keep it off, or label more photos.'
        : 'No difference yet on these photos.';
    const missing = check.classes_without_examples;
    setStatus($('adapter-status'), `${imported ? 'Imported adapter. ' : ''}Each of its ${check.examples} labelled photos classified without it: `
      + `zero-shot ${check.zero_shot_correct} right (${pct(check.zero_shot_correct)}), with your labelled photos `
      + `${check.adapted_correct} right (${pct(check.adapted_correct)}). ${verdict}`
      + (missing === 1 ? ' 1 label has no labelled photo yet and relies on its text alone.' : '')
      + (missing > 1 ? ` ${missing} labels have no labelled photo yet and rely on their text alone.` : ''));
  }

  for (const id of ['adapter-alpha', 'adapter-beta', 'adapter-probe']) {
    $(id).addEventListener('change', () => {
      imported = false;
      Object.assign(settings, { adapterAlpha: alpha(), adapterBeta: beta(), adapterProbe: $('adapter-probe').checked });
      saveSettings();
      refreshSoon();
    });
  }
  $('adapter-check').addEventListener('click', refreshAdapter);
  $('adapter-use').addEventListener('change', () => {
    settings.adapterUse = $('adapter-use').checked;
    saveSettings();
    refreshAdapter();
  });
  $('adapter-export').addEventListener('click', () => {
    if (adapterJson) download('fieldclip-adapter.json', adapterJson, 'application/json');
  });
  $('adapter-import').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    if (!file) return;
    try {
      if (!modelId) throw new Error('Load a model first (step 1).');
      importError = null;
      const json = await readText(file, 'adapter');
      let parsed;
      try { parsed = JSON.parse(json); } catch (err) { throw new Error(`it is not valid JSON (${err.message}).`); }
      // Checked before anything changes: a bad file leaves the lists and the adapter as they are.
      const list = adapterList(file.name.replace(/\.json$/i, ''), parsed, activeLabels().templates);
      adapterJson = json;
      imported = true;
      $('adapter-use').checked = settings.adapterUse = true;
      saveSettings();
      // Switches to the adapter's own label list (so its classes line up), which refreshes it.
      await onAdapterImported(list);
      await refreshAdapter();
    } catch (err) {
      importError = `${file.name}: ${err.message}`;
      setStatus($('adapter-status'), importError, true);
    }
  });

  return { setModel, refreshAdapter, isAdapted: () => $('adapter-use').checked && Boolean(adapterJson) };
}
