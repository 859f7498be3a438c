// The user's label lists, kept on the device (www/storage.js): presets are copied in on first
// use and can be edited like any other list. Import/export as .txt (one label a line) or .json.
import { PRESETS } from './presets.js';

const KEY = 'lists';
// Where the first version of the page kept the lists; moved over once.
const LEGACY_KEY = 'fieldclip.lists.v1';

function seed() {
  const lists = {};
  for (const [id, p] of Object.entries(PRESETS)) lists[id] = { name: p.name, labels: [...p.labels], templates: [p.template] };
  return { active: 'plants', lists };
}

const valid = (lists) => lists && lists.lists && Object.keys(lists.lists).length && lists.lists[lists.active];

export async function loadLists(device) {
  try {
    const lists = await device.get(KEY);
    if (valid(lists)) return lists;
    const legacy = JSON.parse(localStorage.getItem(LEGACY_KEY));
    if (valid(legacy)) {
      await device.set(KEY, legacy);
      localStorage.removeItem(LEGACY_KEY);
      return legacy;
    }
  } catch { /* fall through to the presets */ }
  return seed();
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

/** A list from an imported file, or an Error saying why not. */
export function parseImport(fileName, text) {
  const base = fileName.replace(/\.(txt|json)$/i, '');
  if (/\.json$/i.test(fileName)) {
    let data;
    try { data = JSON.parse(text); } catch (e) { throw new Error(`${fileName} is not valid JSON (${e.message}).`); }
    const labels = Array.isArray(data) ? data : data.labels;
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string')) {
      throw new Error(`${fileName} must hold a list of label strings, or {"name", "labels": [...], "templates": [...]}.`);
    }
    const templates = Array.isArray(data.templates) && data.templates.length ? data.templates.map(String) : ['a photo of a {}.'];
    return { name: typeof data.name === 'string' ? data.name : base, labels: parseLines(labels.join('\n')), templates };
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
