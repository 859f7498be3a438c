// Step 2: the label lists — editing the active one (name, labels, prompt templates), switching,
// making, deleting, importing and exporting lists, and handing the labels to the model worker,
// which encodes only the prompts it has not seen (their embeddings are kept on the device).
import { download, newId, parseImport, parseLines, saveLists } from './lists.js';
import { readText } from './files.js';

const $ = (id) => document.getElementById(id);

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}

/**
 * `lists`: the saved lists (`loadLists` of www/lists.js). `call(type, payload, transfer)`: a
 * request to the model worker. `modelLoaded()`: whether a model is built; `modelSha256()`: the
 * id the prompt embeddings of the model in use are kept under; `modelGeneration()`: changes
 * when another model is asked for (www/app.js). `onReady()`: the labels were encoded (the
 * few-shot adapter follows them).
 */
export function createLabelsPanel({ device, call, lists, modelLoaded, modelSha256, modelGeneration, onReady }) {
  let ready = false;

  function activeList() {
    return lists.lists[lists.active];
  }

  function renderLists() {
    const select = $('list-select');
    select.replaceChildren();
    for (const [id, list] of Object.entries(lists.lists)) {
      const option = document.createElement('option');
      option.value = id;
      option.textContent = `${list.name} (${list.labels.length})`;
      select.append(option);
    }
    select.value = lists.active;
    const list = activeList();
    $('list-name').value = list.name;
    $('labels').value = list.labels.join('\n');
    $('templates').value = list.templates.join('\n');
  }

  let labelTimer = null;
  let labelsVersion = 0;
  /** Checks the active list and has the worker encode it. */
  async function applyLabels() {
    const list = activeList();
    saveLists(device, lists);
    ready = false;
    const version = ++labelsVersion;
    if (list.labels.length === 0) return setStatus($('labels-status'), 'The label list is empty: add at least one label, one per line.', true);
    if (list.templates.length === 0) return setStatus($('labels-status'), 'Add a prompt template, e.g. "a photo of a {}."', true);
    const bad = list.templates.find((t) => !t.includes('{}'));
    if (bad !== undefined) return setStatus($('labels-status'), `The template "${bad}" needs {} where the label goes, e.g. "a photo of a {}."`, true);
    if (!modelLoaded()) return setStatus($('labels-status'), `${list.labels.length} labels. Load a model to use them.`);
    setStatus($('labels-status'), `Encoding ${list.labels.length} labels…`);
    try {
      const generation = modelGeneration();
      const sha256 = modelSha256();
      const { encodedPrompts, fresh, embeds } = await call('labels', { labels: list.labels, templates: list.templates });
      // Kept under the model that encoded them: not if another model was asked for meanwhile.
      if (fresh.length && sha256 && generation === modelGeneration()) {
        device.putPrompts(sha256, fresh, embeds).catch(() => { /* kept in memory only */ });
      }
      if (version !== labelsVersion) return;
      ready = true;
      setStatus($('labels-status'), `${list.labels.length} labels ready (${encodedPrompts} prompts encoded so far; edits re-encode only what changed).`);
      await onReady();
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
    saveLists(device, lists);
    clearTimeout(labelTimer);
    labelTimer = setTimeout(applyLabels, 400);
  }
  for (const id of ['list-name', 'labels', 'templates']) $(id).addEventListener('input', editedList);

  $('list-select').addEventListener('change', () => { lists.active = $('list-select').value; renderLists(); applyLabels(); });
  $('list-new').addEventListener('click', () => {
    const id = newId(lists);
    lists.lists[id] = { name: 'My list', labels: [], templates: ['a photo of a {}.'] };
    lists.active = id;
    renderLists();
    applyLabels();
    $('labels').focus();
  });
  $('list-delete').addEventListener('click', () => {
    if (Object.keys(lists.lists).length === 1) return setStatus($('labels-status'), 'This is the only list; edit it instead.', true);
    if (!confirm(`Delete the list "${activeList().name}"?`)) return;
    delete lists.lists[lists.active];
    lists.active = Object.keys(lists.lists)[0];
    renderLists();
    applyLabels();
  });
  $('list-import').addEventListener('change', async (event) => {
    const file = event.target.files[0];
    event.target.value = '';
    if (!file) return;
    try {
      const list = parseImport(file.name, await readText(file, 'labels'));
      const id = newId(lists);
      lists.lists[id] = list;
      lists.active = id;
      renderLists();
      applyLabels();
    } catch (e) {
      setStatus($('labels-status'), e.message, true);
    }
  });
  const fileBase = () => activeList().name.replace(/[^\w.-]+/g, '_');
  $('list-export-txt').addEventListener('click', () => download(`${fileBase()}.txt`, `${activeList().labels.join('\n')}\n`, 'text/plain'));
  $('list-export-json').addEventListener('click', () => download(`${fileBase()}.json`, JSON.stringify(activeList(), null, 2), 'application/json'));

  /** Switches to `list` (added as a new list unless it has the active list's labels) and applies it. */
  async function useList(list) {
    const same = activeList().labels.join('\n') === list.labels.join('\n');
    if (!same) {
      const id = newId(lists);
      lists.lists[id] = list;
      lists.active = id;
      renderLists();
    }
    await applyLabels();
  }

  renderLists();
  applyLabels();

  return {
    /** Encodes the active list again (after a model loaded); resolves when done. */
    apply: applyLabels,
    /** Whether the active list is encoded for the model in use. */
    isReady: () => ready,
    /** The active list: { name, labels, templates }. */
    activeList,
    useList,
  };
}
