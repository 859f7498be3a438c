//! Labels that are taxa: a lineage (kingdom … genus, species epithet) and a common name.
//!
//! - BioCLIP's text formats (`naming_eval.py`, class `Taxon`) turn a taxon into the class name
//!   its prompts are made from; OpenAI's 80 ImageNet templates (as pybioclip uses them) make the
//!   ensemble.
//! - Probabilities over the leaves (species) roll up the taxonomy as pybioclip's
//!   `format_grouped_probs` does: a higher taxon's probability is the sum of its leaves'.
//! - The answer is the deepest rank whose best taxon reaches a threshold, else none ("not sure").
//! - pybioclip's tree-of-life files (`txt_emb_species.npy` + `.json`) are read streamed,
//!   optionally filtered to a taxon or a species list.
//!
//! Checked against `shared/oracle/taxonomy` (tests/taxonomy.rs).

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Serialize;

/// The ranks of a lineage, kingdom first; `species` holds the epithet only (`robur`).
pub const RANKS: [&str; 7] = ["kingdom", "phylum", "class", "order", "family", "genus", "species"];
/// How many taxa per rank a roll-up keeps (pybioclip's `topk`).
pub const TOP_K: usize = 5;
/// Leaves at or under this probability are left out of the roll-up (pybioclip's `min_prob`).
pub const MIN_PROB: f32 = 1e-9;
/// The default answer threshold.
pub const DEFAULT_THRESHOLD: f64 = 0.8;

/// OpenAI's 80 ImageNet templates (pybioclip's `OPENA_AI_IMAGENET_TEMPLATE`), in order, with
/// `{}` for the class name. Filled by plain replacement: "a bad photo of a English oak.".
pub const OPENAI_TEMPLATES: [&str; 80] = [
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
    "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.",
    "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.",
    "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.",
    "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.",
    "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.",
    "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.",
    "a photo of the small {}.", "a photo of the weird {}.", "the cartoon {}.", "art of the {}.",
    "a drawing of the {}.", "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.",
    "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.", "a toy {}.",
    "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.", "a tattoo of the {}.",
];

#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    #[error("The taxa file has no header line naming its columns (kingdom,phylum,class,order,family,genus,species,common_name).")]
    NoHeader,
    #[error("The taxa file's header names none of the columns kingdom, phylum, class, order, family, genus, species, common_name.")]
    NoKnownColumns,
    #[error("Line {line} of the taxa file has {found} fields; the header has {expected}.")]
    FieldCount { line: usize, expected: usize, found: usize },
    #[error("The taxa file lists no taxon.")]
    Empty,
    #[error("Taxon {index} has neither a name at any rank nor a common name.")]
    Nameless { index: usize },
    #[error("This is not a names file of pybioclip's layout ([[[kingdom, …, epithet], common name], …]): {0}.")]
    NamesJson(String),
    #[error("Unknown text format `{0}`: use taxon, sci, com, sci_com or taxon_com.")]
    UnknownFormat(String),
    #[error("The tree-of-life embeddings file is not a float32 .npy file of shape [dim, taxa]: {0}.")]
    Npy(String),
    #[error("The tree-of-life files do not match: the .npy holds {columns} taxa, the names file {names}.")]
    NamesCount { columns: usize, names: usize },
    #[error("No taxon matches the filter `{0}`.")]
    NothingMatches(String),
    #[error("Reading the tree-of-life file failed: {0}.")]
    Io(String),
    #[error("The stored tree-of-life pack cannot be read: {0}.")]
    Pack(String),
    #[error("The species list names no species: give one `Genus epithet` a line, or a taxa table with genus and species columns.")]
    EmptySpeciesList,
}

/// One taxon: its lineage (`ranks[6]` is the species epithet; any rank may be empty) and its
/// common name (may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taxon {
    pub ranks: [String; 7],
    pub common_name: String,
}

/// Python's `str.capitalize()`: the first character upper case, the rest lower.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

impl Taxon {
    /// BioCLIP's `taxonomic_name`: the higher ranks capitalised, the epithet lower case, joined
    /// by spaces (empty ranks left out).
    pub fn taxonomic_name(&self) -> String {
        let higher = self.ranks[..6].iter().map(|r| capitalize(r));
        let parts: Vec<String> = higher.chain(std::iter::once(self.ranks[6].to_lowercase())).filter(|p| !p.is_empty()).collect();
        parts.join(" ")
    }

    /// BioCLIP's `scientific_name`: `Genus epithet` (the genus alone without an epithet; the
    /// deepest named rank without a genus).
    pub fn scientific_name(&self) -> String {
        let genus = capitalize(&self.ranks[5]);
        let epithet = self.ranks[6].to_lowercase();
        match (genus.is_empty(), epithet.is_empty()) {
            (false, false) => format!("{genus} {epithet}"),
            (false, true) => genus,
            _ => self.ranks[..5].iter().rev().find(|r| !r.is_empty()).map(|r| capitalize(r)).unwrap_or(epithet),
        }
    }

    /// The class name in `format` (BioCLIP's `Taxon` methods).
    pub fn class_name(&self, format: TextFormat) -> String {
        let with_common = |name: String| {
            if self.common_name.is_empty() { name } else { format!("{name} with common name {}", self.common_name) }
        };
        match format {
            TextFormat::Taxon => self.taxonomic_name(),
            TextFormat::Sci => self.scientific_name(),
            // A taxon without a common name is named by its scientific name rather than by nothing.
            TextFormat::Com if self.common_name.is_empty() => self.scientific_name(),
            TextFormat::Com => self.common_name.clone(),
            TextFormat::SciCom => with_common(self.scientific_name()),
            TextFormat::TaxonCom => with_common(self.taxonomic_name()),
        }
    }

    /// The taxon's own name at `rank` (0 = kingdom … 6 = species, where it is `Genus epithet`),
    /// as given (not re-capitalised).
    pub fn name_at(&self, rank: usize) -> String {
        if rank == 6 {
            [self.ranks[5].as_str(), self.ranks[6].as_str()].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ")
        } else {
            self.ranks[rank].clone()
        }
    }

    /// pybioclip's key at `rank`: the lineage from the kingdom down to it, joined by spaces; at
    /// species the lineage, `Genus epithet` and the common name.
    pub fn key_at(&self, rank: usize) -> String {
        let mut parts: Vec<String> = self.ranks[..=rank].to_vec();
        if rank == 6 {
            parts.push(self.name_at(6));
            parts.push(self.common_name.clone());
        }
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }

    /// Whether `name` is this taxon's name at some rank (or its `Genus epithet`), ignoring case.
    pub fn is_within(&self, name: &str) -> bool {
        let name = name.trim();
        self.ranks[..6].iter().any(|r| !r.is_empty() && r.eq_ignore_ascii_case(name)) || self.name_at(6).eq_ignore_ascii_case(name)
    }
}

/// BioCLIP's text formats for a taxon's class name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// `Plantae Tracheophyta … Quercus robur`
    Taxon,
    /// `Quercus robur`
    Sci,
    /// `English oak`
    Com,
    /// `Quercus robur with common name English oak`
    SciCom,
    /// `Plantae … Quercus robur with common name English oak`: the default, and the format of
    /// pybioclip's tree-of-life embeddings.
    TaxonCom,
}

impl std::str::FromStr for TextFormat {
    type Err = TaxonomyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "taxon" => Self::Taxon,
            "sci" => Self::Sci,
            "com" => Self::Com,
            "sci_com" => Self::SciCom,
            "taxon_com" => Self::TaxonCom,
            other => return Err(TaxonomyError::UnknownFormat(other.into())),
        })
    }
}

/// Splits one CSV/TSV line; double quotes group a field (`""` is a quote inside one).
fn split_line(line: &str, delimiter: char) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Taxa from CSV or TSV text whose header names some of `kingdom, phylum, class, order, family,
/// genus, species, common_name` (any order, any case; other columns ignored; missing ranks
/// empty). `species` is the epithet. Blank lines are skipped.
pub fn parse_taxa_table(text: &str) -> Result<Vec<Taxon>, TaxonomyError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(TaxonomyError::NoHeader)?;
    let delimiter = if header.contains('\t') { '\t' } else { ',' };
    let columns: Vec<String> = split_line(header, delimiter).iter().map(|c| c.to_lowercase().replace(' ', "_")).collect();
    let rank_column: Vec<Option<usize>> = RANKS.iter().map(|r| columns.iter().position(|c| c == r)).collect();
    let common_column = columns.iter().position(|c| c == "common_name" || c == "common");
    if rank_column.iter().all(Option::is_none) && common_column.is_none() {
        return Err(TaxonomyError::NoKnownColumns);
    }
    let mut taxa = Vec::new();
    for (number, line) in lines {
        let fields = split_line(line, delimiter);
        if fields.len() != columns.len() {
            return Err(TaxonomyError::FieldCount { line: number + 1, expected: columns.len(), found: fields.len() });
        }
        let field = |c: Option<usize>| c.map(|c| fields[c].clone()).unwrap_or_default();
        let taxon = Taxon { ranks: std::array::from_fn(|r| field(rank_column[r])), common_name: field(common_column) };
        if taxon.ranks.iter().all(String::is_empty) && taxon.common_name.is_empty() {
            return Err(TaxonomyError::Nameless { index: taxa.len() + 1 });
        }
        taxa.push(taxon);
    }
    if taxa.is_empty() {
        return Err(TaxonomyError::Empty);
    }
    Ok(taxa)
}

/// Taxa from pybioclip's names JSON: `[[[kingdom, phylum, class, order, family, genus,
/// epithet], common_name], …]`.
pub fn parse_names_json(bytes: &[u8]) -> Result<Vec<Taxon>, TaxonomyError> {
    let rows: Vec<(Vec<String>, String)> = serde_json::from_slice(bytes).map_err(|e| TaxonomyError::NamesJson(e.to_string()))?;
    rows.into_iter()
        .enumerate()
        .map(|(i, (ranks, common_name))| {
            if ranks.len() != 7 {
                return Err(TaxonomyError::NamesJson(format!("entry {} has {} ranks, not 7", i + 1, ranks.len())));
            }
            Ok(Taxon { ranks: std::array::from_fn(|r| ranks[r].clone()), common_name })
        })
        .collect()
}

/// Taxa from a file's text: a names JSON (starts with `[`) or a CSV/TSV table.
pub fn parse_taxa(text: &str) -> Result<Vec<Taxon>, TaxonomyError> {
    if text.trim_start().starts_with('[') { parse_names_json(text.as_bytes()) } else { parse_taxa_table(text) }
}

/// One row of a rank's roll-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankEntry {
    /// The taxon's own name at the rank (`Quercus`; at species `Quercus robur`).
    pub name: String,
    /// pybioclip's key (the lineage down to the rank).
    pub key: String,
    /// The summed probability of its leaves.
    pub probability: f32,
    /// How many leaves were summed.
    pub leaves: usize,
    /// At species: the taxon's index in the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// The roll-up of one photo: per rank (kingdom first) its best taxa, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedTaxa {
    pub ranks: Vec<Vec<RankEntry>>,
}

/// The deepest rank whose best taxon reached the threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub rank: &'static str,
    pub name: String,
    pub key: String,
    pub probability: f32,
}

/// The taxa grouped once per rank (each taxon's group at each higher rank, and each group's
/// key), so that rolling a photo's probabilities up is array additions, not string work: with
/// 100,000 taxa that is what keeps one photo within milliseconds.
#[derive(Debug, Clone)]
pub struct TaxonIndex {
    /// `group[rank][taxon]`: the taxon's group at `rank` (0 = kingdom … 5 = genus).
    group: Vec<Vec<u32>>,
    /// `keys[rank][group]`, and the first taxon of the group (for its name).
    keys: Vec<Vec<(String, usize)>>,
    taxa: Vec<Taxon>,
}

impl TaxonIndex {
    pub fn new(taxa: Vec<Taxon>) -> Self {
        let mut group = Vec::with_capacity(6);
        let mut keys = Vec::with_capacity(6);
        for rank in 0..6 {
            let mut ids: HashMap<String, u32> = HashMap::new();
            let mut rank_keys: Vec<(String, usize)> = Vec::new();
            let of: Vec<u32> = taxa
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let key = t.key_at(rank);
                    *ids.entry(key.clone()).or_insert_with(|| {
                        rank_keys.push((key, i));
                        (rank_keys.len() - 1) as u32
                    })
                })
                .collect();
            group.push(of);
            keys.push(rank_keys);
        }
        Self { group, keys, taxa }
    }

    pub fn taxa(&self) -> &[Taxon] {
        &self.taxa
    }

    /// Rolls leaf probabilities (`probs[i]` is taxon `i`'s, summing to 1) up the taxonomy as
    /// pybioclip does: at species the `top_k` largest (ties: lower index first); at every other
    /// rank, leaves over `MIN_PROB` summed per key in f32 in index order, the `top_k` largest
    /// kept (ties: the group met first among those leaves first).
    pub fn roll_up(&self, probs: &[f32], top_k: usize) -> RankedTaxa {
        let n = probs.len().min(self.taxa.len());
        let mut ranks = Vec::with_capacity(7);
        for rank in 0..6 {
            let groups = self.keys[rank].len();
            let mut sums = vec![0.0f32; groups];
            let mut leaves = vec![0usize; groups];
            let mut first_met = vec![usize::MAX; groups];
            for i in 0..n {
                if probs[i] <= MIN_PROB {
                    continue;
                }
                let g = self.group[rank][i] as usize;
                sums[g] += probs[i];
                leaves[g] += 1;
                first_met[g] = first_met[g].min(i);
            }
            let mut met: Vec<usize> = (0..groups).filter(|&g| leaves[g] > 0).collect();
            // The best `top_k` picked first (a genus list is tens of thousands long), then
            // ordered; the order is total (no two groups are first met at the same leaf).
            let order = |a: &usize, b: &usize| sums[*b].total_cmp(&sums[*a]).then(first_met[*a].cmp(&first_met[*b]));
            if top_k < met.len() {
                met.select_nth_unstable_by(top_k, order);
                met.truncate(top_k);
            }
            met.sort_by(order);
            let rows = met
                .into_iter()
                .take(top_k)
                .map(|g| {
                    let (key, first) = &self.keys[rank][g];
                    RankEntry { name: self.taxa[*first].name_at(rank), key: key.clone(), probability: sums[g], leaves: leaves[g], index: None }
                })
                .collect();
            ranks.push(rows);
        }
        // The top k leaves without sorting them all (100,000 taxa): a partial selection.
        let mut leaves: Vec<usize> = (0..n).collect();
        let by_probability = |a: &usize, b: &usize| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b));
        if top_k < n {
            leaves.select_nth_unstable_by(top_k, by_probability);
            leaves.truncate(top_k);
        }
        leaves.sort_by(by_probability);
        let species = leaves
            .into_iter()
            .take(top_k)
            .map(|i| {
                let t = &self.taxa[i];
                RankEntry { name: t.name_at(6), key: t.key_at(6), probability: probs[i], leaves: 1, index: Some(i) }
            })
            .collect();
        ranks.push(species);
        RankedTaxa { ranks }
    }
}

/// One photo classified against taxa.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaxaResult {
    pub ranked: RankedTaxa,
    pub answer: Option<Answer>,
}

impl TaxonIndex {
    /// The roll-up of leaf probabilities and the answer at `threshold`.
    pub fn classify(&self, probs: &[f32], threshold: f64) -> TaxaResult {
        let ranked = self.roll_up(probs, TOP_K);
        let answer = ranked.answer(threshold);
        TaxaResult { ranked, answer }
    }
}

/// `n` made-up taxa in a plausible tree (3 species a genus, 40 a family, 400 an order, 4,000 a
/// class, 20,000 a phylum, 50,000 a kingdom), for benchmarks of tree-of-life sizes.
pub fn synthetic_taxa(n: usize) -> Vec<Taxon> {
    (0..n)
        .map(|i| Taxon {
            ranks: [
                format!("Kingdom{}", i / 50_000),
                format!("Phylum{}", i / 20_000),
                format!("Class{}", i / 4_000),
                format!("Order{}", i / 400),
                format!("Family{}", i / 40),
                format!("Genus{}", i / 3),
                format!("epithet{}", i % 3),
            ],
            common_name: format!("species {i}"),
        })
        .collect()
}

/// `TaxonIndex::roll_up` for a one-off list of taxa.
pub fn roll_up(probs: &[f32], taxa: &[Taxon], top_k: usize) -> RankedTaxa {
    TaxonIndex::new(taxa.to_vec()).roll_up(probs, top_k)
}

impl RankedTaxa {
    /// The deepest rank whose best taxon has a probability ≥ `threshold` (compared as f64), or
    /// `None`: not sure at any rank.
    pub fn answer(&self, threshold: f64) -> Option<Answer> {
        (0..self.ranks.len()).rev().find_map(|rank| {
            let best = self.ranks[rank].first()?;
            (best.probability as f64 >= threshold).then(|| Answer {
                rank: RANKS[rank],
                name: best.name.clone(),
                key: best.key.clone(),
                probability: best.probability,
            })
        })
    }
}

/// What a tree-of-life file is filtered to.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Taxa with this name at some rank ("Plantae", "Fagaceae", "Quercus robur").
    Within(String),
    /// Taxa whose `Genus epithet` is on the list (held lower-case, so a list of thousands
    /// checks each of hundreds of thousands of taxa in one lookup).
    Species(HashSet<String>),
}

impl Filter {
    /// A species-list filter: each name `Genus epithet`, any case.
    pub fn species<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        Filter::Species(names.into_iter().map(|n| species_key(n.as_ref())).filter(|n| !n.is_empty()).collect())
    }

    pub fn keeps(&self, taxon: &Taxon) -> bool {
        match self {
            Filter::Within(name) => taxon.is_within(name),
            Filter::Species(list) => list.contains(&species_key(&taxon.name_at(6))),
        }
    }

    fn describe(&self) -> String {
        match self {
            Filter::Within(name) => name.clone(),
            Filter::Species(list) => format!("{} species", list.len()),
        }
    }
}

/// `Genus epithet` lower-cased, with runs of white space made one space.
fn species_key(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The species of a species list: a taxa table (CSV/TSV with `genus` and `species` columns, as
/// `parse_taxa` reads) or plain text with one `Genus epithet` a line (anything after the first
/// two words, e.g. an author, is ignored; blank lines and lines starting with `#` too).
pub fn parse_species_list(text: &str) -> Result<Vec<String>, TaxonomyError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let lower = lines.first().copied().unwrap_or("").to_ascii_lowercase();
    let names: Vec<String> = if (lower.contains(',') || lower.contains('\t')) && lower.contains("genus") {
        // A table, with any comment lines before or in it left out.
        parse_taxa(&lines.join("\n"))?.iter().map(|t| t.name_at(6)).filter(|n| n.contains(' ')).collect()
    } else {
        lines.iter().map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect()
    };
    if names.is_empty() {
        return Err(TaxonomyError::EmptySpeciesList);
    }
    Ok(names)
}

/// Taxa with their text embeddings (`[taxa, dim]` row-major, L2-normalised as stored).
#[derive(Debug, Clone)]
pub struct TaxaEmbeddings {
    pub taxa: Vec<Taxon>,
    pub dim: usize,
    pub embeddings: Vec<f32>,
}

/// The shape of a float32, C-order `.npy` file and where its data starts.
fn npy_header(head: &[u8]) -> Result<(usize, usize, usize), TaxonomyError> {
    let bad = |why: &str| TaxonomyError::Npy(why.into());
    if head.len() < 10 || &head[..6] != b"\x93NUMPY" {
        return Err(bad("it does not start with the .npy magic"));
    }
    let (len, start) = match head[6] {
        1 => (u16::from_le_bytes([head[8], head[9]]) as usize, 10),
        2 | 3 if head.len() >= 12 => (u32::from_le_bytes(head[8..12].try_into().unwrap()) as usize, 12),
        _ => return Err(bad("unknown .npy version")),
    };
    let text = head.get(start..start + len).ok_or_else(|| bad("its header is cut off"))?;
    let text = std::str::from_utf8(text).map_err(|_| bad("its header is not text"))?;
    if !text.contains("'descr': '<f4'") || !text.contains("'fortran_order': False") {
        return Err(bad(&format!("its header says {}", text.trim())));
    }
    let shape = text.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape.split(',').filter(|d| !d.trim().is_empty()).map(|d| d.trim().parse()).collect::<Result<_, _>>()
        .map_err(|_| bad("its shape is not numbers"))?;
    match dims[..] {
        [dim, taxa] if dim > 0 && dim <= 4096 => Ok((dim, taxa, start + len)),
        _ => Err(bad(&format!("its shape is {dims:?}"))),
    }
}

/// pybioclip's tree-of-life `.npy` read piece by piece (as a browser hands a file over): only
/// the header and the kept columns are ever held, so a 1 GB file needs the memory of its
/// filtered result. `push` the bytes in order, then `finish`.
#[derive(Debug)]
pub struct TreeOfLifeReader {
    taxa: Vec<Taxon>,
    filter: Option<Filter>,
    /// Bytes of the header (until it is read), then of a part-filled row.
    pending: Vec<u8>,
    /// Once the header is read: the dimension, the kept columns, the rows done.
    layout: Option<(usize, Vec<usize>)>,
    rows_done: usize,
    embeddings: Vec<f32>,
    received: u64,
}

impl TreeOfLifeReader {
    /// `names`: the names JSON; `filter`: the taxa to keep.
    pub fn new(names: &[u8], filter: Option<Filter>) -> Result<Self, TaxonomyError> {
        Ok(Self { taxa: parse_names_json(names)?, filter, pending: Vec::new(), layout: None, rows_done: 0, embeddings: Vec::new(), received: 0 })
    }

    /// Bytes pushed so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// How many taxa are kept (known once the header is read).
    pub fn kept(&self) -> usize {
        self.layout.as_ref().map_or(0, |(_, kept)| kept.len())
    }

    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), TaxonomyError> {
        self.received += chunk.len() as u64;
        if self.layout.is_none() {
            self.pending.extend_from_slice(chunk);
            let Some(header_len) = npy_header_len(&self.pending)? else { return Ok(()) };
            if self.pending.len() < header_len {
                return Ok(());
            }
            let (dim, columns, start) = npy_header(&self.pending[..header_len])?;
            if columns != self.taxa.len() {
                return Err(TaxonomyError::NamesCount { columns, names: self.taxa.len() });
            }
            let kept: Vec<usize> = (0..columns).filter(|&j| self.filter.as_ref().is_none_or(|f| f.keeps(&self.taxa[j]))).collect();
            if kept.is_empty() {
                return Err(TaxonomyError::NothingMatches(self.filter.as_ref().map(Filter::describe).unwrap_or_default()));
            }
            self.embeddings = vec![0.0; kept.len() * dim];
            self.layout = Some((dim, kept));
            let rest = self.pending.split_off(start);
            self.pending = Vec::new();
            return self.push_rows(&rest);
        }
        // Whole rows straight from the chunk; a part-row waits in `pending`.
        if !self.pending.is_empty() {
            let row_bytes = self.taxa.len() * 4;
            let need = (row_bytes - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk[..need]);
            chunk = &chunk[need..];
            if self.pending.len() == row_bytes {
                let row = std::mem::take(&mut self.pending);
                self.take_row(&row)?;
            }
        }
        self.push_rows(chunk)
    }

    fn push_rows(&mut self, bytes: &[u8]) -> Result<(), TaxonomyError> {
        let row_bytes = self.taxa.len() * 4;
        let mut rows = bytes.chunks_exact(row_bytes);
        for row in &mut rows {
            self.take_row(row)?;
        }
        self.pending.extend_from_slice(rows.remainder());
        Ok(())
    }

    fn take_row(&mut self, row: &[u8]) -> Result<(), TaxonomyError> {
        let (dim, kept) = self.layout.as_ref().expect("the header was read");
        let d = self.rows_done;
        if d >= *dim {
            return Err(TaxonomyError::Npy(format!("it holds more than its {dim} rows")));
        }
        for (k, &j) in kept.iter().enumerate() {
            let v = f32::from_le_bytes(row[4 * j..4 * j + 4].try_into().unwrap());
            if !v.is_finite() {
                return Err(TaxonomyError::Npy(format!("taxon {j} holds a value that is not a finite number")));
            }
            self.embeddings[k * dim + d] = v;
        }
        self.rows_done += 1;
        Ok(())
    }

    /// The kept taxa and their embeddings; an error if the file ended early.
    pub fn finish(self) -> Result<TaxaEmbeddings, TaxonomyError> {
        let Some((dim, kept)) = self.layout else {
            return Err(TaxonomyError::Npy("it ends before its header".into()));
        };
        if self.rows_done != dim || !self.pending.is_empty() {
            return Err(TaxonomyError::Npy(format!("it ends early: {} of {dim} rows", self.rows_done)));
        }
        let taxa = kept.into_iter().map(|j| self.taxa[j].clone()).collect();
        Ok(TaxaEmbeddings { taxa, dim, embeddings: self.embeddings })
    }
}

/// The header's whole length once its first 12 bytes are there (`None` before); over 1 MB is
/// refused.
fn npy_header_len(head: &[u8]) -> Result<Option<usize>, TaxonomyError> {
    if head.len() < 12 {
        return Ok(None);
    }
    if &head[..6] != b"\x93NUMPY" {
        return Err(TaxonomyError::Npy("it does not start with the .npy magic".into()));
    }
    let len = match head[6] {
        1 => 10 + u16::from_le_bytes([head[8], head[9]]) as usize,
        2 | 3 => 12 + u32::from_le_bytes(head[8..12].try_into().unwrap()) as usize,
        _ => return Err(TaxonomyError::Npy("unknown .npy version".into())),
    };
    if len > 1 << 20 {
        return Err(TaxonomyError::Npy("its header is over 1 MB".into()));
    }
    Ok(Some(len))
}

/// Reads pybioclip's tree-of-life pair: `npy` (`[dim, taxa]` float32, column j the
/// `taxon_com` embedding of taxon j) streamed, so that only the kept columns are ever held;
/// `names` (the names JSON). With a filter only its taxa are kept.
pub fn read_tree_of_life(mut npy: impl Read, names: &[u8], filter: Option<&Filter>) -> Result<TaxaEmbeddings, TaxonomyError> {
    let mut reader = TreeOfLifeReader::new(names, filter.cloned())?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = npy.read(&mut buffer).map_err(|e| TaxonomyError::Io(e.to_string()))?;
        if n == 0 {
            break;
        }
        reader.push(&buffer[..n])?;
    }
    reader.finish()
}

/// The label pack's magic and version: a compact file of taxa with their embeddings in f16,
/// kept on the device instead of a 1 GB tree-of-life file.
const PACK_MAGIC: &[u8; 8] = b"FCTAXA01";

impl TaxaEmbeddings {
    /// `PACK_MAGIC`, the JSON length (u32 LE), the JSON `{"dim", "taxa": [[[7 ranks], common]…]}`,
    /// then `taxa × dim` f16 (LE): ~1 KB a taxon at 512-d.
    pub fn to_pack(&self) -> Vec<u8> {
        let names: Vec<(&[String; 7], &str)> = self.taxa.iter().map(|t| (&t.ranks, t.common_name.as_str())).collect();
        let json = serde_json::to_vec(&serde_json::json!({"dim": self.dim, "taxa": names})).expect("names serialise");
        let mut out = Vec::with_capacity(12 + json.len() + self.embeddings.len() * 2);
        out.extend_from_slice(PACK_MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for v in &self.embeddings {
            out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
        }
        out
    }

    /// A pack written by `to_pack`.
    pub fn from_pack(bytes: &[u8]) -> Result<Self, TaxonomyError> {
        let bad = |why: &str| TaxonomyError::Pack(why.into());
        if bytes.len() < 12 || &bytes[..8] != PACK_MAGIC {
            return Err(bad("it does not start as one"));
        }
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let json = bytes.get(12..12 + len).ok_or_else(|| bad("its names are cut off"))?;
        #[derive(serde::Deserialize)]
        struct Names {
            dim: usize,
            taxa: Vec<([String; 7], String)>,
        }
        let names: Names = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
        let data = &bytes[12 + len..];
        if names.dim == 0 || data.len() != names.taxa.len() * names.dim * 2 {
            return Err(bad("its embeddings do not fit its names"));
        }
        let embeddings: Vec<f32> = data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
        if embeddings.iter().any(|v| !v.is_finite()) {
            return Err(bad("it holds a value that is not a finite number"));
        }
        let taxa = names.taxa.into_iter().map(|(ranks, common_name)| Taxon { ranks, common_name }).collect();
        Ok(Self { taxa, dim: names.dim, embeddings })
    }
}
