// Step 4: the user's photo collection for the loaded model — indexing in the worker (with
// progress and cancel, kept on the device), search by text / by example / "more like this",
// labels on photos, and the few-shot adapter made from them. Names and labels go in as text.
import { sha256Hex } from './storage.js';

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
 * `call(type, payload, transfer)`: a request to the model worker. `activeLabels()`: the label
 * list in use ({ labels, templates }). `settings` + `saveSettings()`: kept across visits.
 * `onAdapterImported(list)`: a label list to switch to for an imported adapter.
 */
export function createGallery({ device, call, activeLabels, settings, saveSettings, onAdapterImported, download }) {
  let modelId = null;
  let records = []; // in the worker's row order: { sha256, name, embedding, label }
  let cancelled = false;
  let adapterJson = null; // the adapter last made or imported, for the current labels
  let imported = false; // an imported adapter is used as it is, until the user labels photos
  let thumbUrls = [];

  function showCount() {
    $('gallery-clear').disabled = records.length === 0;
    if (!modelId) return setStatus($('gallery-status'), 'Load a model to start a collection.');
    const labelled = records.filter((r) => r.label).length;
    setStatus($('gallery-status'), records.length
      ? `${records.length} photos in your collection, ${labelled} with a label.`
      : 'Your collection is empty: add photos or a folder to search them.');
  }

  /** The loaded model changed: its collection is read from the device and handed to the worker. */
  async function setModel(id) {
    modelId = id;
    records = await device.galleryAll(id).catch(() => []);
    const dim = records[0]?.embedding.length || 0;
    const matrix = new Float32Array(records.length * dim);
    records.forEach((r, i) => matrix.set(r.embedding, i * dim));
    await call('galleryReset', { matrix, dim }, [matrix.buffer]);
    $('search-results').replaceChildren();
    setStatus($('search-status'), '');
    showCount();
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
    if (!modelId) return setStatus($('gallery-status'), 'Load a model first (step 1): the collection is indexed with it.', true);
    const bar = $('gallery-progress');
    bar.hidden = false;
    $('gallery-cancel').hidden = false;
    cancelled = false;
    let added = 0;
    let known = 0;
    const failed = [];
    // Photos are stored in blocks (www/storage.js): every 32, and at the end or on cancel.
    let pending = [];
    const flush = async () => {
      const block = pending;
      pending = [];
      await device.galleryAdd(modelId, block).catch(() => { /* kept for this visit */ });
    };
    const seen = new Set(records.map((r) => r.sha256));
    for (const [i, file] of files.entries()) {
      if (cancelled) break;
      try {
        const bytes = await file.arrayBuffer();
        const sha256 = await sha256Hex(bytes);
        if (seen.has(sha256)) {
          known += 1;
        } else {
          const { embedding } = await call('embedImage', { bytes }, [bytes]);
          const entry = { sha256, name: file.webkitRelativePath || file.name, embedding, label: null };
          const thumb = await thumbnail(file).catch(() => null);
          await call('galleryAdd', { embedding });
          records.push({ ...entry, thumb });
          seen.add(sha256);
          pending.push({ ...entry, thumb });
          if (pending.length === 32) await flush();
          added += 1;
        }
      } catch (e) {
        failed.push(`${file.name}: ${e.message}`);
      }
      bar.value = (i + 1) / files.length;
      setStatus($('gallery-status'), `Adding photos: ${i + 1} of ${files.length}…`);
    }
    await flush();
    bar.hidden = true;
    $('gallery-cancel').hidden = true;
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
    await setModel(modelId);
  });

  // ---- search ----
  async function search(query, what) {
    if (!modelId) return setStatus($('search-status'), 'Load a model first (step 1).', true);
    if (records.length === 0) return setStatus($('search-status'), 'The collection is empty: add photos to it first.', true);
    const k = Math.max(1, Math.min(500, Number($('search-k').value) || 24));
    const start = performance.now();
    const { hits } = await call('search', { query: query(), k });
    const ms = performance.now() - start;
    setStatus($('search-status'), `The ${hits.length} photos most like ${what}, of ${records.length} (${ms.toFixed(0)} ms).`);
    await showTiles(hits);
  }

  async function showTiles(hits) {
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
        await device.gallerySetLabel(modelId, r.sha256, r.label).catch(() => {});
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
    $('search-results').replaceChildren(...tiles);
  }

  $('search-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('search-text').value.trim();
    if (!text) return setStatus($('search-status'), 'Type what to look for, e.g. "a leaf with brown spots".', true);
    try {
      const { embedding } = await call('embedText', { text });
      await search(() => embedding, `"${text}"`);
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
      const bytes = await file.arrayBuffer();
      const { embedding } = await call('embedImage', { bytes }, [bytes]);
      await search(() => embedding, `your photo "${file.name}"`);
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

  /**
   * Makes the adapter again from the labelled photos (unless one was imported), checks it by
   * leave-one-out and hands it to the worker, active or not as the checkbox says.
   */
  async function refreshAdapter() {
    $('adapter-export').disabled = true;
    $('adapter-use').disabled = true;
    try {
      let json = adapterJson;
      if (!imported) {
        const { matrix, exampleLabels, count } = examples();
        if (!modelId || count === 0) {
          adapterJson = null;
          if (modelId) await call('useAdapter', { json: null, active: false });
          return setStatus($('adapter-status'), modelId ? 'No photo of the collection has a label from this list yet: give a few photos a label (the menu under each photo).' : '');
        }
        ({ json } = await call('makeAdapter', { examples: matrix, exampleLabels, alpha: alpha(), beta: beta(), probe: $('adapter-probe').checked }));
      }
      const check = await call('useAdapter', { json, active: $('adapter-use').checked });
      adapterJson = json;
      showCheck(check);
      $('adapter-export').disabled = false;
      $('adapter-use').disabled = false;
    } catch (e) {
      if (imported) imported = false;
      setStatus($('adapter-status'), e.message, true);
    }
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
      refreshAdapter();
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
      const json = await file.text();
      let parsed;
      try { parsed = JSON.parse(json); } catch (err) { throw new Error(`${file.name} is not valid JSON (${err.message}).`); }
      adapterJson = json;
      imported = true;
      $('adapter-use').checked = settings.adapterUse = true;
      saveSettings();
      // Switches to the adapter's own label list (so its classes line up), which refreshes it.
      await onAdapterImported({ name: file.name.replace(/\.json$/i, ''), labels: parsed.labels || [], templates: parsed.templates?.length ? parsed.templates : activeLabels().templates });
      await refreshAdapter();
    } catch (err) {
      setStatus($('adapter-status'), `${file.name}: ${err.message}`, true);
    }
  });

  return { setModel, refreshAdapter, isAdapted: () => $('adapter-use').checked && Boolean(adapterJson) };
}
