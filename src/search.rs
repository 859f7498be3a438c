//! Searching a gallery of photo embeddings by a text or photo embedding: exact cosine ranking
//! (one matrix–vector product), and the gallery file the command line keeps.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One gallery row found for a query: its row index and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

/// Best first; equal scores keep the lower index first, so results do not depend on the sort.
fn best_first(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.index.cmp(&b.index))
}

/// A dot product over eight running sums: independent additions the compiler can keep in
/// SIMD lanes (a single running sum must add in order and cannot be vectorised).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Each row's L2 norm, for `rank_with_norms`.
pub fn row_norms(matrix: &[f32], dim: usize) -> Vec<f32> {
    matrix.chunks_exact(dim).map(|row| dot(row, row).sqrt()).collect()
}

/// The `k` rows of `matrix` (row-major `[rows, dim]`) most cosine-similar to `query`, best
/// first, by brute force. A zero row scores 0.
pub fn rank(query: &[f32], matrix: &[f32], dim: usize, k: usize) -> Result<Vec<Hit>, Error> {
    if dim == 0 || !matrix.len().is_multiple_of(dim) {
        let rows = matrix.len().checked_div(dim).unwrap_or(0);
        return Err(Error::RowCount { rows, dim, expected: rows * dim, found: matrix.len() });
    }
    rank_with_norms(query, matrix, &row_norms(matrix, dim), dim, k)
}

/// `rank` with the rows' norms computed once beforehand (a gallery searched many times).
pub fn rank_with_norms(query: &[f32], matrix: &[f32], norms: &[f32], dim: usize, k: usize) -> Result<Vec<Hit>, Error> {
    if dim == 0 || matrix.len() != norms.len() * dim {
        return Err(Error::RowCount { rows: norms.len(), dim, expected: norms.len() * dim, found: matrix.len() });
    }
    if matrix.is_empty() {
        return Err(Error::EmptyGallery);
    }
    if query.len() != dim {
        return Err(Error::DimensionMismatch { what: "gallery", expected: query.len(), found: dim });
    }
    let query_norm = dot(query, query).sqrt();
    let mut hits: Vec<Hit> = matrix
        .chunks_exact(dim)
        .zip(norms)
        .enumerate()
        .map(|(index, (row, norm))| {
            let denominator = query_norm * norm;
            Hit { index, score: if denominator > 0.0 { dot(row, query) / denominator } else { 0.0 } }
        })
        .collect();
    if k == 0 {
        return Ok(Vec::new());
    }
    if k < hits.len() {
        hits.select_nth_unstable_by(k - 1, best_first);
        hits.truncate(k);
    }
    hits.sort_by(best_first);
    Ok(hits)
}

/// A photo collection's embeddings in memory, searched by exact brute-force cosine ranking;
/// each row's norm is computed once, when it is added.
#[derive(Debug, Clone, Default)]
pub struct Gallery {
    dim: usize,
    /// `[photos, dim]`, row-major, in the order added.
    matrix: Vec<f32>,
    norms: Vec<f32>,
}

impl Gallery {
    pub fn new(dim: usize) -> Self {
        Self { dim, matrix: Vec::new(), norms: Vec::new() }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Appends embeddings (`n × dim`, row-major).
    pub fn add(&mut self, embeddings: &[f32]) -> Result<(), Error> {
        if self.dim == 0 || !embeddings.len().is_multiple_of(self.dim) {
            let rows = embeddings.len().checked_div(self.dim).unwrap_or(0);
            let expected = rows * self.dim;
            return Err(Error::RowCount { rows, dim: self.dim, expected, found: embeddings.len() });
        }
        if embeddings.iter().any(|v| !v.is_finite()) {
            return Err(Error::NotFinite { what: "embedding value", value: "NaN or infinity".into() });
        }
        self.norms.extend(row_norms(embeddings, self.dim));
        self.matrix.extend_from_slice(embeddings);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    /// The `k` photos most like `query`, best first (equal scores keep the lower index first).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, Error> {
        if self.is_empty() {
            return Err(Error::EmptyGallery);
        }
        if query.len() != self.dim {
            return Err(Error::DimensionMismatch { what: "collection", expected: query.len(), found: self.dim });
        }
        rank_with_norms(query, &self.matrix, &self.norms, self.dim, k)
    }
}

/// Version of the gallery file's layout.
pub const INDEX_FORMAT: u32 = 1;

/// A gallery file: `{"format", "model", "dim", "entries": [{"name", "sha256", "embedding"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub format: u32,
    /// `fingerprint::model_id` of the model that made the embeddings.
    pub model: String,
    pub dim: usize,
    pub entries: Vec<IndexEntry>,
}

/// One photo: a name to show (its path), the SHA-256 of its file, its L2-normalised embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub name: String,
    pub sha256: String,
    pub embedding: Vec<f32>,
}

impl Index {
    pub fn new(model: &str, dim: usize) -> Self {
        Self { format: INDEX_FORMAT, model: model.to_string(), dim, entries: Vec::new() }
    }

    pub fn find(&self, sha256: &str) -> Option<&IndexEntry> {
        self.entries.iter().find(|e| e.sha256 == sha256)
    }

    /// Adds a photo unless the same content is already there; says whether it was added.
    pub fn add(&mut self, name: &str, sha256: &str, embedding: Vec<f32>) -> Result<bool, Error> {
        if embedding.len() != self.dim {
            return Err(Error::DimensionMismatch { what: "gallery", expected: embedding.len(), found: self.dim });
        }
        if self.find(sha256).is_some() {
            return Ok(false);
        }
        self.entries.push(IndexEntry { name: name.to_string(), sha256: sha256.to_string(), embedding });
        Ok(true)
    }

    /// Errors unless the gallery was made by the model `model` (a `fingerprint::model_id`) with
    /// `dim`-dimensional embeddings.
    pub fn check_model(&self, model: &str, dim: usize) -> Result<(), Error> {
        if self.dim != dim {
            return Err(Error::DimensionMismatch { what: "gallery", expected: dim, found: self.dim });
        }
        if self.model != model {
            return Err(Error::ModelMismatch { what: "gallery", made_with: self.model.clone(), loaded: model.into() });
        }
        Ok(())
    }

    /// The `k` entries most similar to `query`, best first (`Hit::index` indexes `entries`).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, Error> {
        self.gallery()?.search(query, k)
    }

    /// The entries' embeddings as an in-memory `Gallery` (same order).
    pub fn gallery(&self) -> Result<Gallery, Error> {
        let mut gallery = Gallery::new(self.dim);
        let matrix: Vec<f32> = self.entries.iter().flat_map(|e| e.embedding.iter().copied()).collect();
        if !matrix.is_empty() {
            gallery.add(&matrix)?;
        }
        Ok(gallery)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a gallery serialises")
    }

    /// Reads a gallery file, checking its format version and that every embedding has `dim` values.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidFile { what: "gallery", reason };
        let index: Self = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if index.format != INDEX_FORMAT {
            return Err(invalid(format!("its format is {}, this fieldclip reads {INDEX_FORMAT}", index.format)));
        }
        if let Some(e) = index.entries.iter().find(|e| e.embedding.len() != index.dim) {
            return Err(invalid(format!("`{}` has {} values, not {}", e.name, e.embedding.len(), index.dim)));
        }
        // 1e39 reads as infinity in f32: it would make every score `inf` or NaN.
        if let Some(e) = index.entries.iter().find(|e| e.embedding.iter().any(|v| !v.is_finite())) {
            return Err(invalid(format!("`{}` holds a value that is not a finite number", e.name)));
        }
        Ok(index)
    }
}
