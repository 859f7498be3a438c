// Taxa lists (#16): a table of lineages (kingdom … genus, species epithet) with common names.
// The worker's `setTaxa` (src/taxonomy.rs) is what decides; the page parses the same table the
// same way to count and name the taxa before a model is loaded and to keep each result's lineage.

export const RANKS = ['kingdom', 'phylum', 'class', 'order', 'family', 'genus', 'species'];
/** BioCLIP's text formats, the default first. */
export const TEXT_FORMATS = ['taxon_com', 'taxon', 'sci', 'com', 'sci_com'];
export const TAXA_HEADER = [...RANKS, 'common_name'].join(',');

function inputError(message) {
  const e = new Error(message);
  e.kind = 'input';
  return e;
}

/** One CSV/TSV line's fields, trimmed; double quotes group a field (`""` is a quote in one). */
function splitLine(line, delimiter) {
  const fields = [''];
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"' && quoted && line[i + 1] === '"') {
      fields[fields.length - 1] += '"';
      i += 1;
    } else if (c === '"') {
      quoted = !quoted;
    } else if (c === delimiter && !quoted) {
      fields.push('');
    } else {
      fields[fields.length - 1] += c;
    }
  }
  return fields.map((f) => f.trim());
}

function parseTable(text) {
  const lines = text.replace(/^\uFEFF/, '').split('\n').map((l) => l.replace(/\r$/, ''));
  const rows = lines.map((line, i) => ({ line, number: i + 1 })).filter(({ line }) => line.trim());
  if (rows.length === 0) throw inputError('The taxa file has no header line naming its columns (kingdom,phylum,class,order,family,genus,species,common_name).');
  const delimiter = rows[0].line.includes('\t') ? '\t' : ',';
  const columns = splitLine(rows[0].line, delimiter).map((c) => c.toLowerCase().replace(/ /g, '_'));
  const rankColumn = RANKS.map((r) => columns.indexOf(r));
  const commonColumn = columns.findIndex((c) => c === 'common_name' || c === 'common');
  if (rankColumn.every((c) => c < 0) && commonColumn < 0) {
    throw inputError("The taxa file's header names none of the columns kingdom, phylum, class, order, family, genus, species, common_name.");
  }
  const taxa = [];
  for (const { line, number } of rows.slice(1)) {
    const fields = splitLine(line, delimiter);
    if (fields.length !== columns.length) throw inputError(`Line ${number} of the taxa file has ${fields.length} fields; the header has ${columns.length}.`);
    const field = (c) => (c < 0 ? '' : fields[c]);
    const taxon = { ranks: rankColumn.map(field), common: field(commonColumn) };
    if (taxon.ranks.every((r) => !r) && !taxon.common) throw inputError(`Taxon ${taxa.length + 1} has neither a name at any rank nor a common name.`);
    taxa.push(taxon);
  }
  if (taxa.length === 0) throw inputError('The taxa file lists no taxon.');
  return taxa;
}

/** Whether `value` is one entry of pybioclip's names JSON: `[[7 rank strings], common name]`. */
const isNamesEntry = (value) => Array.isArray(value) && value.length === 2 && typeof value[1] === 'string'
  && Array.isArray(value[0]) && value[0].length === 7 && value[0].every((r) => typeof r === 'string');

/**
 * Why `data` (parsed JSON) is not pybioclip's names layout, as the end of a sentence, or null
 * when it is one.
 */
export function notNamesJson(data) {
  if (!Array.isArray(data)) return 'it is not a list of [[kingdom, phylum, class, order, family, genus, epithet], common name].';
  if (data.length === 0) return 'it lists no taxon.';
  const i = data.findIndex((entry) => !isNamesEntry(entry));
  return i < 0 ? null : `entry ${i + 1} is not [[kingdom, phylum, class, order, family, genus, epithet], common name].`;
}

/**
 * The taxa of a taxa list's text (a CSV/TSV table, or pybioclip's names JSON): `[{ ranks: [7
 * strings, the last the epithet], common }]`. Throws an Error (kind 'input') saying what is
 * wrong, as the worker would.
 */
export function parseTaxa(text) {
  if (!text.trimStart().startsWith('[')) return parseTable(text);
  let data;
  try { data = JSON.parse(text); } catch (e) { throw inputError(`This is not a names file of pybioclip's layout ([[[kingdom, …, epithet], common name], …]): ${e.message}.`); }
  const wrong = notNamesJson(data);
  if (wrong) throw inputError(`This is not a names file of pybioclip's layout: ${wrong}`);
  return data.map(([ranks, common]) => ({ ranks: [...ranks], common }));
}

/**
 * The distinct species (`genus epithet`, lower case) a species list names, as the tree of life's
 * filter reads it (src/taxonomy.rs `parse_species_list`): a taxa table when its first line (not
 * blank, not a `#` comment) has commas or tabs and names a genus column, its rows that name a
 * genus and an epithet; else one `Genus epithet` a line, anything after the first two words
 * (an author) ignored, blank lines and `#` lines too. Throws (kind 'input') for a bad table.
 */
export function speciesOfList(text) {
  text = text.replace(/^\uFEFF/, '');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const first = (lines[0] ?? '').toLowerCase();
  const names = (first.includes(',') || first.includes('\t')) && first.includes('genus')
    ? parseTable(lines.join('\n')).map((t) => nameAt(t, 6)).filter((n) => n.includes(' '))
    : lines.map((l) => l.split(/\s+/).slice(0, 2).join(' '));
  return [...new Set(names.map((n) => n.split(/\s+/).join(' ').toLowerCase()))];
}

/** A CSV cell as the taxa table reads it back (quoted when it holds a comma or a quote). */
const cell = (text) => (/[",]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);

/** Taxa → a CSV table with the standard header, one taxon a line. */
export function taxaToTable(taxa) {
  return `${[TAXA_HEADER, ...taxa.map((t) => [...t.ranks, t.common].map(cell).join(','))].join('\n')}\n`;
}

/** Python's `str.capitalize()`. */
function capitalize(s) {
  const [first = '', ...rest] = [...s];
  return first.toUpperCase() + rest.join('').toLowerCase();
}

/** The taxon's own name at rank `r` (0 = kingdom … 6 = species, where it is `Genus epithet`). */
export function nameAt(taxon, r) {
  return r === 6 ? [taxon.ranks[5], taxon.ranks[6]].filter(Boolean).join(' ') : taxon.ranks[r];
}

function scientificName(t) {
  const genus = capitalize(t.ranks[5]);
  const epithet = t.ranks[6].toLowerCase();
  if (genus && epithet) return `${genus} ${epithet}`;
  if (genus) return genus;
  const higher = t.ranks.slice(0, 5).reverse().find(Boolean);
  return higher ? capitalize(higher) : epithet;
}

/** The class name its prompts are made from, in BioCLIP's `format` (as src/taxonomy.rs). */
export function className(t, format) {
  const taxonomic = () => [...t.ranks.slice(0, 6).map(capitalize), t.ranks[6].toLowerCase()].filter(Boolean).join(' ');
  const withCommon = (name) => (t.common ? `${name} with common name ${t.common}` : name);
  switch (format) {
    case 'taxon': return taxonomic();
    case 'sci': return scientificName(t);
    case 'com': return t.common || scientificName(t);
    case 'sci_com': return withCommon(scientificName(t));
    default: return withCommon(taxonomic());
  }
}

/** The taxa the worker keeps (in its label order): those whose class name is not blank or a repeat. */
export function usedTaxa(taxa, format) {
  const seen = new Set();
  return taxa.filter((t) => {
    const name = className(t, format).trim();
    if (!name || seen.has(name)) return false;
    seen.add(name);
    return true;
  });
}

/** How a taxon is named on the page: `Quercus robur (English oak)`. */
export function taxonTitle(t) {
  const sci = nameAt(t, 6) || scientificName(t);
  if (!sci) return t.common;
  return t.common ? `${sci} (${t.common})` : sci;
}

/**
 * Finds the taxon of a species in a result (its label `Genus epithet` and common name) among
 * `taxa`: `(label, common) → { kingdom, …, species (the epithet), common_name }` or null.
 */
export function lineageLookup(taxa) {
  const byName = new Map();
  for (const t of taxa) {
    const key = `${nameAt(t, 6)}\u0000${t.common}`;
    if (!byName.has(key)) byName.set(key, t);
  }
  return (label, common = '') => {
    const t = byName.get(`${label}\u0000${common}`);
    return t ? { ...Object.fromEntries(RANKS.map((r, i) => [r, t.ranks[i]])), common_name: t.common } : null;
  };
}
