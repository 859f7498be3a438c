// Step 2's tree of life (#16): pybioclip's txt_emb_species.npy + .json, streamed into the worker
// (the .npy, up to ~1 GB, is never whole in memory) and filtered, then kept on the
// device as a compact label pack (f16 embeddings + names) so that it comes back at the next
// visit, offline, without the files. The filter is none, a taxon's name, or a species list
// (pasted or read from a .txt/.csv), applied before the softmax as the CLI's --species-list.
// The labels panel decides whether it or a list is in use.
import { readBytes, readText } from './files.js';
import { sha256Hex, whyNotStored } from './storage.js';
import { speciesOfList } from './taxa.js';

const $ = (id) => document.getElementById(id);

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}

function formatBytes(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
}

// kv keys of the device store: the pack and what it is, and whether it is the labels in use.
// { pack: Blob, sha256, bytes, size, dim, filter, filterKind, speciesList?, modelId, savedAt }:
// `filter` the taxon's name or "N species", `filterKind` '' | 'taxon' | 'species' (absent in
// records of before species lists: 'taxon' when there is a filter), `speciesList` the list's
// text when it is short enough to keep (its textarea is refilled at the next visit).
const KEY = 'treeOfLife';
const IN_USE_KEY = 'treeOfLifeInUse';
// Longer lists are not kept (the pack, ~1 KB a taxon, outweighs a list's ~30 bytes a species).
const SPECIES_LIST_KEPT = 256 * 1024;

const usableRecord = (r) => Boolean(r) && typeof r === 'object' && r.pack instanceof Blob && typeof r.sha256 === 'string'
  && Number.isInteger(r.bytes) && Number.isInteger(r.size) && r.size > 0 && Number.isInteger(r.dim) && r.dim > 0
  && typeof r.filter === 'string' && typeof r.modelId === 'string'
  && [undefined, '', 'taxon', 'species'].includes(r.filterKind) && (r.speciesList === undefined || typeof r.speciesList === 'string');

/** '' (all taxa), 'taxon' or 'species': what kind of filter a tree or record was loaded with. */
const kindOf = ({ filter, filterKind }) => (filter ? filterKind || 'taxon' : '');

/** A sentence-ending description: "24 taxa", "41,000 taxa within Plantae", "2 taxa from a list of 2 species". */
export function describeTree({ size, filter, filterKind }) {
  const kind = kindOf({ filter, filterKind });
  const where = kind === 'species' ? ` from a list of ${filter}` : kind ? ` within ${filter}` : '';
  return `${size.toLocaleString('en')} ${size === 1 ? 'taxon' : 'taxa'}${where}`;
}

/** "The list names 2 species" (no full stop), or a sentence saying why it names none. */
function countSpecies(text) {
  if (!text.trim()) return '';
  let n;
  try {
    n = speciesOfList(text).length;
  } catch (e) {
    return e.message;
  }
  return n ? `The list names ${n.toLocaleString('en')} species` : 'The list names no species yet.';
}

/** `call(type, payload, transfer)`: a request to the model worker. */
export function createTreeOfLife({ device, call }) {
  // The tree the worker holds or the device keeps: `{ size, dim, filter, filterKind, modelId }`, or null.
  let available = null;
  // Whether the worker holds it (else it is restored from the device when used).
  let inWorker = false;

  const treeOf = (r) => ({ size: r.size, dim: r.dim, filter: r.filter, filterKind: kindOf(r), modelId: r.modelId });

  /** Shows the filter's controls for the kind chosen ('none', 'taxon' or 'species'). */
  function showFilter(kind) {
    $('tol-filter-kind').value = kind;
    for (const el of document.querySelectorAll('.tol-taxon')) el.hidden = kind !== 'taxon';
    $('tol-species').hidden = kind !== 'species';
  }

  /**
   * Under the species list: how many species it names and, once a tree was loaded from this
   * very list (`kept` given), how many of its taxa match them.
   */
  function showCount(kept) {
    const count = countSpecies($('tol-species-list').value);
    const matched = kept === undefined ? ''
      : `; ${kept.toLocaleString('en')} ${kept === 1 ? 'taxon' : 'taxa'} of the tree of life ${kept === 1 ? 'matches' : 'match'} them`;
    // A sentence already (no species, a bad table) or nothing: as it is.
    $('tol-species-count').textContent = !count || count.endsWith('.') ? count : `${count}${matched}.`;
  }

  $('tol-filter-kind').addEventListener('change', () => showFilter($('tol-filter-kind').value));
  $('tol-species-list').addEventListener('input', () => showCount());
  $('tol-species-file').addEventListener('change', async () => {
    const input = $('tol-species-file');
    const [file] = input.files;
    input.value = ''; // the same file chosen again is read again
    if (!file) return;
    try {
      $('tol-species-list').value = await readText(file, 'labels');
    } catch (e) {
      return setStatus($('tol-status'), `The species list could not be read: ${e.message}`, true);
    }
    showCount();
  });

  /** The filter chosen: `{ filter }` (a taxon's name, or '' for all) or `{ speciesList }`. */
  function chosenFilter() {
    const kind = $('tol-filter-kind').value;
    if (kind === 'species') return { speciesList: $('tol-species-list').value };
    return { filter: kind === 'taxon' ? $('tol-filter').value.trim() : '' };
  }

  /** The stored pack gone (`why`: what was wrong with it): an Error saying so, to throw. */
  async function dropStored(why) {
    await device.set(KEY, null).catch(() => {});
    if (!inWorker) available = null;
    $('tol-remove').hidden = !available;
    const message = `The tree of life kept on this device could not be read (${why}), so it was removed: load its files again, or choose a list.`;
    setStatus($('tol-status'), message, true);
    return new Error(message);
  }

  /**
   * At start-up: what the device keeps. Resolves to whether the tree of life was the labels in
   * use (and is still there); a damaged record is removed and said in the tree's status.
   */
  async function start() {
    const [record, inUse] = await Promise.all([device.get(KEY).catch(() => null), device.get(IN_USE_KEY).catch(() => false)]);
    if (record && !usableRecord(record)) {
      await dropStored('its description is damaged');
      $('tree-of-life').open = true;
      return false;
    }
    if (record) {
      available = treeOf(record);
      if (available.filterKind === 'species') {
        showFilter('species');
        if (record.speciesList !== undefined) {
          $('tol-species-list').value = record.speciesList;
          showCount(record.size);
        }
      } else {
        showFilter(available.filterKind || 'none');
        $('tol-filter').value = available.filterKind ? record.filter : '';
      }
      setStatus($('tol-status'), `Kept on this device: ${describeTree(record)} (${formatBytes(record.bytes)}), loaded with the model ${record.modelId}.`);
      $('tol-remove').hidden = false;
    }
    return inUse === true && Boolean(record);
  }

  /**
   * Puts the tree in use in the worker, from the device if the worker has none. Resolves to
   * `{ restored }`; rejects with an Error whose message is for the user (a stored pack that no
   * longer reads is removed first).
   */
  async function activate() {
    const answer = await call('treeOfLifeUse');
    if (answer.present) {
      inWorker = true;
      noteOtherModel(answer.modelId);
      return { restored: false };
    }
    inWorker = false;
    const record = await device.get(KEY).catch(() => null);
    if (!usableRecord(record)) {
      available = null;
      $('tol-remove').hidden = true;
      throw new Error('The tree of life is no longer on this device: load its files again, or choose a list.');
    }
    setStatus($('tol-status'), `Restoring ${describeTree(record)} from this device…`);
    let pack;
    try {
      pack = await record.pack.arrayBuffer();
    } catch (e) {
      throw await dropStored(`its data could not be read: ${e.message}`);
    }
    if (pack.byteLength !== record.bytes || (await sha256Hex(pack)) !== record.sha256) throw await dropStored('its contents changed since it was saved');
    let restored;
    try {
      restored = await call('treeOfLifeRestore', { pack, filter: record.filter, filterKind: kindOf(record) }, [pack]);
    } catch (e) {
      if (e.kind === 'storage') throw await dropStored(e.message.replace(/\.$/, ''));
      throw e;
    }
    inWorker = true;
    available = treeOf(record);
    setStatus($('tol-status'), `Restored from this device: ${describeTree(record)} (${formatBytes(record.bytes)}), loaded with the model ${record.modelId}.`);
    noteOtherModel(restored.modelId);
    return { restored: true };
  }

  /**
   * Another model file than the one it was loaded with: fine if it is the same BioCLIP (say, a
   * pack of it), which the page cannot tell, so it says so.
   */
  function noteOtherModel(modelId) {
    if (!available || modelId === available.modelId) return;
    setStatus($('tol-status'), `This tree of life was loaded with the model ${available.modelId}; the model in use is ${modelId}. Its answers mean something only if both are the BioCLIP model its embeddings were made with.`);
  }

  /** Shows the worker's progress while it reads the .npy. */
  function showProgress({ step, fraction }) {
    const bar = $('tol-progress');
    bar.hidden = fraction >= 1;
    bar.value = fraction;
    if (fraction < 1) setStatus($('tol-status'), `${step}…`);
  }

  /**
   * Reads the chosen files into the worker (which then classifies against them), filtered as
   * chosen (`{ filter }` a taxon's name or '', or `{ speciesList }` its text), and keeps the
   * pack on the device. Resolves when the tree is in the worker; rejects with an Error whose
   * message is for the user (what was there before stays).
   */
  async function load(files, { filter = '', speciesList } = chosenFilter()) {
    const npy = files.find((f) => /\.npy$/i.test(f.name));
    const names = files.find((f) => /\.json$/i.test(f.name));
    if (!npy || !names) throw new Error('Choose both files together: txt_emb_species.npy and txt_emb_species.json.');
    const namesBytes = await readBytes(names, 'names');
    setStatus($('tol-status'), `Reading ${npy.name} (${formatBytes(npy.size)})…`);
    $('tol-progress').hidden = false;
    $('tol-progress').value = 0;
    let answer;
    try {
      answer = await call('treeOfLife', { npy, names: namesBytes, filter, speciesList, keep: device.persistent }, [namesBytes]);
    } finally {
      $('tol-progress').hidden = true;
    }
    inWorker = true;
    available = treeOf(answer);
    $('tol-remove').hidden = false;
    if (available.filterKind === 'species' && $('tol-species-list').value === speciesList) showCount(answer.size);
    await keep(answer, speciesList);
  }

  /** Keeps a loaded tree's pack (and a short species list) on the device; a full device is said, not fatal. */
  async function keep(answer, speciesList) {
    const made = describeTree(answer);
    if (!device.persistent) {
      return setStatus($('tol-status'), `Loaded ${made}. This browser lets the page keep nothing, so it works until you close the page.`);
    }
    setStatus($('tol-status'), `Saving ${describeTree(answer)} on this device (${formatBytes(answer.pack.byteLength)})…`);
    try {
      const sha256 = await sha256Hex(answer.pack);
      // The older one goes first: its space may be what the new one needs.
      await device.set(KEY, null);
      await device.set(KEY, {
        pack: new Blob([answer.pack]), sha256, bytes: answer.pack.byteLength, size: answer.size, dim: answer.dim,
        filter: answer.filter, filterKind: kindOf(answer), modelId: answer.modelId, savedAt: Date.now(),
        ...(typeof speciesList === 'string' && speciesList.length <= SPECIES_LIST_KEPT ? { speciesList } : {}),
      });
      setStatus($('tol-status'), `Loaded ${made}, and kept on this device (${formatBytes(answer.pack.byteLength)}): it comes back at the next visit, offline, without the files.`);
    } catch (e) {
      await device.set(KEY, null).catch(() => {});
      const { why, freeingSpaceHelps } = whyNotStored(e);
      setStatus($('tol-status'), `Loaded ${made}, but not kept on this device: ${why}. It works until you close the page${freeingSpaceHelps
        ? '; free some space (Models on this device, step 1) and load the files again to keep it.' : '.'}`, true);
    }
  }

  /** Removes it from the worker and the device. */
  async function remove() {
    await call('treeOfLifeDrop').catch(() => {});
    await device.set(KEY, null).catch(() => {});
    available = null;
    inWorker = false;
    $('tol-remove').hidden = true;
    setStatus($('tol-status'), 'The tree of life was removed from this device.');
  }

  return {
    start,
    activate,
    load,
    /** The filter its controls say: `{ filter }` or `{ speciesList }`, for `load`. */
    chosenFilter,
    remove,
    showProgress,
    /** `{ size, dim, filter, filterKind, modelId }` of the tree there is (in the worker or kept), or null. */
    available: () => available,
    /** Remembers whether it is the labels in use, for the next visit. */
    setInUse: (inUse) => device.set(IN_USE_KEY, inUse).catch(() => {}),
  };
}
