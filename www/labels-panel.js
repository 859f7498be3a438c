// Step 2: the label lists — editing the active one (name, labels or a taxa table, prompt
// templates, the text format of taxa), switching, making, deleting, importing and exporting
// lists, and handing the labels to the model worker, which encodes only the prompts it has not
// seen (their embeddings are kept on the device). Instead of a list, pybioclip's tree of life
// (www/tree-of-life.js) can be in use: choosing one puts the other out of use.
import { download, isTaxaList, listSize, newId, parseImport, parseLines, saveLists } from './lists.js';
import { readText } from './files.js';
import { TAXA_HEADER, lineageLookup, parseTaxa, taxonTitle, usedTaxa } from './taxa.js';
import { createTreeOfLife, describeTree } from './tree-of-life.js';

const $ = (id) => document.getElementById(id);

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}

// The list select's entry for the tree of life (no list id looks like it).
const TREE = ':tree-of-life';

const FORMAT_NAMES = {
  taxon_com: 'taxon + common names', taxon: 'taxon names', sci: 'scientific names', com: 'common names', sci_com: 'scientific + common names',
};

/**
 * `lists`: the saved lists (`loadLists` of www/lists.js). `call(type, payload, transfer)`: a
 * request to the model worker. `modelLoaded()`: whether a model is built; `modelSha256()`: the
 * id the prompt embeddings of the model in use are kept under; `modelGeneration()`: changes
 * when another model is asked for (www/app.js). `onReady()`: the labels were encoded (the
 * few-shot adapter follows them).
 */
export function createLabelsPanel({ device, call, lists, modelLoaded, modelSha256, modelGeneration, onReady }) {
  let ready = false;
  // The lineages of the taxa the worker uses now (null: plain labels, or the tree of life,
  // whose results come with their lineages), for the results.
  let lookup = null;
  // Whether the tree of life is the labels in use, rather than the active list.
  let treeInUse = false;
  const tree = createTreeOfLife({ device, call });
  // What the device keeps is read before labels are first applied.
  const started = tree.start().then((inUse) => { treeInUse = inUse; renderLists(); }, () => {});

  function useTree(inUse) {
    if (treeInUse === inUse) return;
    treeInUse = inUse;
    tree.setInUse(inUse);
  }

  function activeList() {
    return lists.lists[lists.active];
  }

  /** Shows the editor for a plain list or for a taxa list (none for the tree of life). */
  function showKind(list) {
    $('list-editor').hidden = treeInUse;
    $('list-delete').hidden = treeInUse;
    if (treeInUse) {
      $('labels-section').dataset.kind = 'tree';
      return;
    }
    const taxa = isTaxaList(list);
    $('labels-section').dataset.kind = taxa ? 'taxa' : 'plain';
    $('labels-label').textContent = taxa ? 'Taxa: a header line naming the columns, then one taxon per line' : 'Labels, one per line (paste many at once)';
    $('taxa-hint').hidden = !taxa;
    $('text-format-row').hidden = !taxa;
    $('templates').placeholder = taxa ? "Leave empty for OpenAI's 80 ImageNet templates (as pybioclip)" : '';
    $('templates-hint').hidden = !taxa;
    $('list-export-txt').hidden = taxa;
    $('list-export-csv').hidden = !taxa;
  }

  function renderLists() {
    const select = $('list-select');
    select.replaceChildren();
    for (const [id, list] of Object.entries(lists.lists)) {
      const option = document.createElement('option');
      option.value = id;
      option.textContent = `${list.name} (${listSize(list)})`;
      select.append(option);
    }
    const available = tree.available();
    if (available) {
      const option = document.createElement('option');
      option.value = TREE;
      option.textContent = `Tree of life (${describeTree(available)})`;
      select.append(option);
    }
    select.value = treeInUse && available ? TREE : lists.active;
    const list = activeList();
    showKind(list);
    $('list-name').value = list.name;
    $('labels').value = isTaxaList(list) ? list.table : list.labels.join('\n');
    $('templates').value = list.templates.join('\n');
    if (isTaxaList(list)) $('text-format').value = list.format;
  }

  let labelTimer = null;
  let labelsVersion = 0;
  /** Checks the active list and has the worker encode it (or puts the tree of life in use). */
  async function applyLabels() {
    await started;
    const list = activeList();
    saveLists(device, lists);
    ready = false;
    const version = ++labelsVersion;
    if (treeInUse) return applyTree(version);
    if (isTaxaList(list)) return applyTaxa(list, version);
    if (list.labels.length === 0) return setStatus($('labels-status'), 'The label list is empty: add at least one label, one per line.', true);
    if (list.templates.length === 0) return setStatus($('labels-status'), 'Add a prompt template, e.g. "a photo of a {}."', true);
    const bad = list.templates.find((t) => !t.includes('{}'));
    if (bad !== undefined) return setStatus($('labels-status'), `The template "${bad}" needs {} where the label goes, e.g. "a photo of a {}."`, true);
    if (!modelLoaded()) return setStatus($('labels-status'), `${list.labels.length} labels. Load a model to use them.`);
    setStatus($('labels-status'), `Encoding ${list.labels.length} labels…`);
    try {
      const encodedPrompts = await encode({ labels: list.labels, templates: list.templates }, version, null);
      if (version !== labelsVersion) return;
      setStatus($('labels-status'), `${list.labels.length} labels ready (${encodedPrompts} prompts encoded so far; edits re-encode only what changed).`);
      await onReady();
    } catch (e) {
      setStatus($('labels-status'), e.message, true);
    }
  }

  /** A taxa list: read here first (so a bad table is said without a model), then by the worker. */
  async function applyTaxa(list, version) {
    if (!list.table.trimStart().startsWith('[') && list.table.split('\n').filter((l) => l.trim()).length < 2) {
      return setStatus($('labels-status'), `The taxa list is empty: under the header line (${TAXA_HEADER}), add one taxon per line.`, true);
    }
    let taxa;
    try {
      taxa = parseTaxa(list.table);
    } catch (e) {
      return setStatus($('labels-status'), e.message, true);
    }
    const bad = list.templates.find((t) => !t.includes('{}'));
    if (bad !== undefined) return setStatus($('labels-status'), `The template "${bad}" needs {} where the taxon's name goes, e.g. "a photo of {}."`, true);
    const count = usedTaxa(taxa, list.format).length;
    const templates = list.templates.length ? `${list.templates.length} template${list.templates.length === 1 ? '' : 's'}` : "OpenAI's 80 templates";
    const taxaCount = `${count} ${count === 1 ? 'taxon' : 'taxa'}`;
    if (!modelLoaded()) return setStatus($('labels-status'), `${taxaCount} (${FORMAT_NAMES[list.format]}, ${templates}). Load a model to use them.`);
    setStatus($('labels-status'), `Encoding ${taxaCount} (${count * (list.templates.length || 80)} prompts; only new ones are encoded)…`);
    try {
      const encodedPrompts = await encode({ taxa: { table: list.table, format: list.format, templates: list.templates } }, version, taxa);
      if (version !== labelsVersion) return;
      setStatus($('labels-status'), `${taxaCount} ready (${FORMAT_NAMES[list.format]}, ${templates}; ${encodedPrompts} prompts encoded so far; edits re-encode only what changed).`);
      await onReady();
    } catch (e) {
      setStatus($('labels-status'), e.message, true);
    }
  }

  /**
   * The tree of life in use: the worker's, or the pack kept on the device. One that no longer
   * reads was removed (said in its own status): the active list takes over.
   */
  async function applyTree(version) {
    lookup = null;
    const available = tree.available();
    if (!available) {
      useTree(false);
      renderLists();
      return applyLabels();
    }
    if (!modelLoaded()) return setStatus($('labels-status'), `Tree of life: ${describeTree(available)}. Load a model to use it.`);
    setStatus($('labels-status'), `Tree of life: loading ${describeTree(available)}…`);
    try {
      const { restored } = await tree.activate();
      if (version !== labelsVersion) return;
      ready = true;
      setStatus($('labels-status'), `Tree of life: ${describeTree(tree.available())} ready${restored ? ' (restored from this device)' : ''}.`);
    } catch (e) {
      if (version !== labelsVersion) return;
      if (!tree.available()) {
        $('tree-of-life').open = true;
        useTree(false);
        renderLists();
        return applyLabels();
      }
      setStatus($('labels-status'), e.message, true);
    }
  }

  /**
   * Has the worker encode a label set (`taxa`: the parsed taxa of a taxa list, else null);
   * returns how many prompts it has encoded so far.
   */
  async function encode(payload, version, taxa) {
    const generation = modelGeneration();
    const sha256 = modelSha256();
    const answer = await call('labels', payload);
    // Kept under the model that encoded them: not if another model was asked for meanwhile.
    if (answer.fresh.length && sha256 && generation === modelGeneration()) {
      device.putPrompts(sha256, answer.fresh, answer.embeds).catch(() => { /* kept in memory only */ });
    }
    if (version === labelsVersion) {
      lookup = taxa && lineageLookup(taxa);
      ready = true;
    }
    return answer.encodedPrompts;
  }

  function editedList() {
    const list = activeList();
    list.name = $('list-name').value.trim() || 'Untitled list';
    if (isTaxaList(list)) {
      list.table = $('labels').value;
      list.format = $('text-format').value;
    } else {
      list.labels = parseLines($('labels').value);
    }
    list.templates = parseLines($('templates').value);
    $('list-select').selectedOptions[0].textContent = `${list.name} (${listSize(list)})`;
    saveLists(device, lists);
    clearTimeout(labelTimer);
    labelTimer = setTimeout(applyLabels, 400);
  }
  for (const id of ['list-name', 'labels', 'templates']) $(id).addEventListener('input', editedList);
  $('text-format').addEventListener('change', editedList);

  /** Adds `list` as a new list and makes it the active one (the tree of life goes out of use). */
  function addList(list) {
    useTree(false);
    const id = newId(lists);
    lists.lists[id] = list;
    lists.active = id;
    renderLists();
  }

  $('list-select').addEventListener('change', () => {
    const value = $('list-select').value;
    useTree(value === TREE);
    if (value !== TREE) lists.active = value;
    renderLists();
    applyLabels();
  });
  $('list-new').addEventListener('click', () => {
    addList({ name: 'My list', labels: [], templates: ['a photo of a {}.'] });
    applyLabels();
    $('labels').focus();
  });
  $('list-new-taxa').addEventListener('click', () => {
    addList({ name: 'My taxa', kind: 'taxa', table: `${TAXA_HEADER}\n`, format: 'taxon_com', templates: [] });
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
      addList(parseImport(file.name, await readText(file, 'labels')));
      applyLabels();
    } catch (e) {
      setStatus($('labels-status'), e.message, true);
    }
  });
  const fileBase = () => activeList().name.replace(/[^\w.-]+/g, '_');
  $('list-export-txt').addEventListener('click', () => download(`${fileBase()}.txt`, `${activeList().labels.join('\n')}\n`, 'text/plain'));
  $('list-export-csv').addEventListener('click', () => {
    const { table } = activeList();
    const tsv = (table.split('\n').find((l) => l.trim()) ?? '').includes('\t');
    download(`${fileBase()}.${tsv ? 'tsv' : 'csv'}`, table.endsWith('\n') ? table : `${table}\n`, tsv ? 'text/tab-separated-values' : 'text/csv');
  });
  $('list-export-json').addEventListener('click', () => download(`${fileBase()}.json`, JSON.stringify(activeList(), null, 2), 'application/json'));

  /**
   * The active list as labels, in the order the worker numbers them (what the collection's
   * labels and the few-shot adapter use): a taxa list's taxa named "Quercus robur (English oak)".
   */
  function activeLabels() {
    const list = activeList();
    if (!isTaxaList(list)) return list;
    let taxa = [];
    try { taxa = usedTaxa(parseTaxa(list.table), list.format); } catch { /* no labels until the table reads */ }
    const titles = taxa.map(taxonTitle);
    // Two taxa with one title would share a label: the second keeps its full class name.
    const labels = titles.map((t, i) => (titles.indexOf(t) === i ? t : `${t} [${i + 1}]`));
    return { name: list.name, labels, templates: list.templates };
  }

  /** Switches to `list` (added as a new list unless it has the active list's labels) and applies it. */
  async function useList(list) {
    useTree(false);
    renderLists();
    const same = !isTaxaList(list) && activeLabels().labels.join('\n') === list.labels.join('\n');
    if (!same) addList(list);
    await applyLabels();
  }

  // ---- the tree of life ----
  $('tol-files').addEventListener('change', () => {
    const files = [...$('tol-files').files];
    $('tol-chosen').textContent = files.map((f) => f.name).join(', ');
  });
  $('tol-load').addEventListener('click', async () => {
    if (!modelLoaded()) {
      return setStatus($('tol-status'), "Load the BioCLIP model first (step 1): the tree of life's embeddings fit only the model they were made with.", true);
    }
    // Labels chosen while it loads stay in use (the worker gets them after it).
    const version = labelsVersion;
    $('tol-load').disabled = true;
    try {
      await tree.load([...$('tol-files').files], tree.chosenFilter());
    } catch (e) {
      return setStatus($('tol-status'), `The tree of life could not be loaded: ${e.message}`, true);
    } finally {
      $('tol-load').disabled = false;
    }
    if (version === labelsVersion) {
      useTree(true);
      labelsVersion += 1;
      lookup = null;
      ready = true;
      setStatus($('labels-status'), `Tree of life: ${describeTree(tree.available())} ready.`);
    }
    renderLists();
  });
  $('tol-remove').addEventListener('click', async () => {
    if (!confirm('Remove the tree of life from this device?')) return;
    await tree.remove();
    const wasInUse = treeInUse;
    useTree(false);
    renderLists();
    if (wasInUse) applyLabels();
  });

  renderLists();
  applyLabels();

  return {
    /** Encodes the active list again (after a model loaded); resolves when done. */
    apply: applyLabels,
    /** Whether the active list is encoded for the model in use. */
    isReady: () => ready,
    /** The active list as stored: plain `{ name, labels, templates }` or a taxa list. */
    activeList,
    activeLabels,
    /**
     * For a taxa list in use, `(label, commonName) → lineage` of a species in a result
     * (www/taxa.js `lineageLookup`); null when the labels are plain.
     */
    taxaLookup: () => lookup,
    useList,
    /** A progress report of the worker while it reads a tree of life. */
    showTreeProgress: (progress) => tree.showProgress(progress),
  };
}
