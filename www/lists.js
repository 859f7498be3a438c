// The user's label lists, kept on the device (www/storage.js): presets are copied in on first
// use and can be edited like any other list. Import/export as .txt (one label a line) or .json.
// A list is plain, `{ name, labels, templates }`, or of taxa (#16), `{ name, kind: 'taxa',
// table, format, templates }`: `table` is a CSV/TSV table of lineages (www/taxa.js), `format`
// BioCLIP's text format, and no templates means OpenAI's 80. Taxa import from .csv/.tsv and
// pybioclip's names JSON.
import { PRESETS } from './presets.js';
import { TEXT_FORMATS, notNamesJson, parseTaxa, taxaToTable, usedTaxa } from './taxa.js';

const KEY = 'lists';
// Where the first version of the page kept the lists; moved over once.
const LEGACY_KEY = 'fieldclip.lists.v1';

function seed() {
  const lists = {};
  for (const [id, p] of Object.entries(PRESETS)) {
    lists[id] = p.taxa
      ? { name: p.name, kind: 'taxa', table: taxaToTable(p.taxa.map((t) => ({ ranks: t.slice(0, 7), common: t[7] }))), format: 'taxon_com', templates: [p.template] }
      : { name: p.name, labels: [...p.labels], templates: [p.template] };
  }
  return { active: 'plants', lists };
}

export const isTaxaList = (list) => list.kind === 'taxa';

/** How many labels or taxa a list has (0 for a taxa table that does not read yet). */
export function listSize(list) {
  if (!isTaxaList(list)) return list.labels.length;
  try { return usedTaxa(parseTaxa(list.table), list.format).length; } catch { return 0; }
}

/** What a JSON value is, in words, for a message: "a number", "null", "a list"… */
function kindOfValue(value) {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return `${value}`;
  return `a ${typeof value}`;
}

/**
 * Why `value` is not a list of text strings, as the end of a sentence ("its labels must be a
 * list of text strings (item 3 is a number)."), or null when it is one. `what`: "labels",
 * "templates". Item numbers count from 1.
 */
export function notStrings(value, what) {
  if (!Array.isArray(value)) {
    const why = value === undefined ? 'there are none' : typeof value === 'string' ? 'not a single string' : `not ${kindOfValue(value)}`;
    return `its ${what} must be a list of text strings (${why}).`;
  }
  const i = value.findIndex((v) => typeof v !== 'string');
  return i < 0 ? null : `its ${what} must be a list of text strings (item ${i + 1} is ${kindOfValue(value[i])}).`;
}

/**
 * A stored list that the page can use: a name, templates that are text strings, and labels
 * that are text strings or (a taxa list) a table and one of the text formats. A table that does
 * not read yet is the user's to fix, not damage.
 */
const usableList = (list) => Boolean(list) && typeof list === 'object' && typeof list.name === 'string'
  && !notStrings(list.templates, 'templates')
  && (list.kind === 'taxa'
    ? typeof list.table === 'string' && TEXT_FORMATS.includes(list.format)
    : list.kind === undefined && !notStrings(list.labels, 'labels'));

/**
 * The stored lists with every damaged one left out (its name, or id, added to `dropped`), or
 * null when nothing usable is left. A damaged active list gives way to the first good one.
 */
function usableLists(stored, dropped) {
  if (!stored || typeof stored !== 'object' || !stored.lists || typeof stored.lists !== 'object') return null;
  const lists = {};
  for (const [id, list] of Object.entries(stored.lists)) {
    if (usableList(list)) lists[id] = list;
    else dropped.push(typeof list?.name === 'string' ? list.name : id);
  }
  const ids = Object.keys(lists);
  if (ids.length === 0) return null;
  return { active: ids.includes(stored.active) ? stored.active : ids[0], lists };
}

/**
 * The lists kept on the device (or, the first time, the presets). A damaged stored list (by an
 * old version, another tab, a browser bug) never breaks the page: it is left out, and
 * `problem` says so; the lists are `{ active, lists: { id: list } }`.
 */
export async function loadLists(device) {
  const dropped = [];
  let unreadable = false; // something is stored, but nothing of it is a usable list
  const problem = () => {
    if (dropped.length) {
      const one = dropped.length === 1;
      return `${one ? 'A label list' : `${dropped.length} label lists`} kept on this device could not be read and ${one ? 'was' : 'were'} left out (${dropped.map((n) => `"${n}"`).join(', ')}).`;
    }
    return unreadable ? 'The label lists kept on this device could not be read, so the preset lists are shown.' : null;
  };
  try {
    const stored = await device.get(KEY);
    const lists = usableLists(stored, dropped);
    if (lists) return { lists, problem: problem() };
    unreadable ||= stored !== undefined && stored !== null;
  } catch { /* fall through to the older place, then the presets */ }
  try {
    const legacy = usableLists(JSON.parse(localStorage.getItem(LEGACY_KEY)), dropped);
    if (legacy) {
      await device.set(KEY, legacy);
      localStorage.removeItem(LEGACY_KEY);
      return { lists: legacy, problem: problem() };
    }
  } catch { /* fall through to the presets */ }
  return { lists: seed(), problem: problem() };
}

/** Saves the lists; false when the device refused (full or unavailable). */
export async function saveLists(device, lists) {
  try {
    await device.set(KEY, lists);
    return true;
  } catch {
    return false;
  }
}

export function newId(store) {
  let i = 1;
  while (store.lists[`list-${i}`]) i += 1;
  return `list-${i}`;
}

/** Lines of a text area or .txt file → labels (trimmed, empty lines and duplicates dropped). */
export function parseLines(text) {
  return [...new Set(text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean))];
}

/** A taxa list named `name` from a table's text, or an Error saying why it does not read. */
function taxaList(fileName, name, table) {
  try {
    parseTaxa(table);
  } catch (e) {
    throw new Error(`${fileName}: ${e.message}`);
  }
  return { name, kind: 'taxa', table, format: 'taxon_com', templates: [] };
}

/**
 * A list from an imported file, or an Error saying why not (the lists are left as they are):
 * .txt one label a line; .json a list of labels, `{"name", "labels", "templates"}`, a taxa list
 * as exported (`"kind": "taxa"`) or pybioclip's names layout; .csv/.tsv a taxa table.
 */
export function parseImport(fileName, text) {
  const base = fileName.replace(/\.(txt|json|csv|tsv)$/i, '');
  if (/\.(csv|tsv)$/i.test(fileName)) return taxaList(fileName, base, text.replace(/^\uFEFF/, ''));
  if (/\.json$/i.test(fileName)) {
    let data;
    try { data = JSON.parse(text); } catch (e) { throw new Error(`${fileName} is not valid JSON (${e.message}).`); }
    if (data === null || typeof data !== 'object') {
      throw new Error(`${fileName} must hold a list of label strings, or {"name", "labels": [...], "templates": [...]}.`);
    }
    // pybioclip's names layout: a list of [[7 ranks], common name].
    if (Array.isArray(data) && Array.isArray(data[0])) {
      const wrong = notNamesJson(data);
      if (wrong) throw new Error(`${fileName}: ${wrong}`);
      return taxaList(fileName, base, taxaToTable(data.map(([ranks, common]) => ({ ranks, common }))));
    }
    const name = typeof data.name === 'string' && data.name.trim() ? data.name.trim() : base;
    const given = Array.isArray(data) ? undefined : data.templates;
    const wrongTemplates = given === undefined ? null : notStrings(given, 'templates');
    if (data.kind === 'taxa') {
      if (typeof data.table !== 'string') throw new Error(`${fileName}: its table must be text (a CSV table of taxa).`);
      if (data.format !== undefined && !TEXT_FORMATS.includes(data.format)) {
        throw new Error(`${fileName}: its format must be one of ${TEXT_FORMATS.join(', ')}.`);
      }
      if (wrongTemplates) throw new Error(`${fileName}: ${wrongTemplates}`);
      return { ...taxaList(fileName, name, data.table), format: data.format ?? 'taxon_com', templates: given ? parseLines(given.join('\n')) : [] };
    }
    const labels = Array.isArray(data) ? data : data.labels;
    const wrongLabels = notStrings(labels, 'labels');
    if (wrongLabels) throw new Error(`${fileName}: ${wrongLabels}`);
    if (wrongTemplates) throw new Error(`${fileName}: ${wrongTemplates}`);
    const templates = given && parseLines(given.join('\n'));
    return {
      name,
      labels: parseLines(labels.join('\n')),
      templates: templates?.length ? templates : ['a photo of a {}.'],
    };
  }
  return { name: base, labels: parseLines(text), templates: ['a photo of a {}.'] };
}

export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
