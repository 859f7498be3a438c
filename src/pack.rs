//! Compact model packs (`.fcpk`) for tablets: one file with the weights in f16, or in int8
//! with one f32 scale per row (per output channel of every Linear/conv weight), and the config.
//!
//! A pack is a safetensors file: the checkpoint's own tensor names and layout, so `weights::load`
//! reads it like any checkpoint; the int8 tensors are dequantised on load (`weight = q · scale`
//! row by row). Its `__metadata__` marks it and carries the config file it was made with.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::Error;
use crate::weights::{self, WeightsError};

// The format's names live in `pack_format` (shared with `weights`, which reads packs),
// re-exported here where they have always been.
pub use crate::pack_format::{CONFIG_KEY, DTYPE_KEY, FORMAT_KEY, FORMAT_VERSION, SCALE_SUFFIX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackDtype {
    /// Every tensor in half precision: half the size of f32.
    F16,
    /// Matrices (rank ≥ 2, except the small positional embeddings) as int8 with a scale per
    /// row; everything else in f16. About a quarter of the f32 size.
    Q8,
}

impl PackDtype {
    pub fn name(self) -> &'static str {
        match self {
            PackDtype::F16 => "f16",
            PackDtype::Q8 => "q8",
        }
    }
}

/// Whether a tensor is stored as int8 in a q8 pack.
fn quantised(name: &str, shape: &[usize]) -> bool {
    shape.len() >= 2 && !name.contains("position")
}

/// Row-wise symmetric int8: `scale = max|row| / 127`, `q = round(x / scale)`.
fn quantise_rows(values: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let cols = values.len() / rows;
    let mut q = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(rows);
    for row in values.chunks_exact(cols) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        q.extend(row.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    (q, scales)
}

/// Makes a pack from a checkpoint (and the config file next to it, if any). The checkpoint is
/// loaded first, so a file fieldclip cannot use is refused here rather than packed.
pub fn pack(weights_bytes: &[u8], config: Option<&[u8]>, dtype: PackDtype) -> Result<Vec<u8>, Error> {
    weights::load(weights_bytes, config)?;
    let tensors = SafeTensors::deserialize(weights_bytes).map_err(|e| WeightsError::NotSafetensors(e.to_string()))?;
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in tensors.tensors() {
        let shape = view.shape().to_vec();
        let values = weights::to_f32(&name, &view)?;
        if dtype == PackDtype::Q8 && quantised(&name, &shape) {
            let (q, scales) = quantise_rows(&values, shape[0]);
            out.push((name.clone(), Dtype::I8, shape.clone(), q.into_iter().map(|v| v as u8).collect()));
            let bytes = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            out.push((format!("{name}{SCALE_SUFFIX}"), Dtype::F32, vec![shape[0]], bytes));
        } else {
            let bytes = values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
            out.push((name, Dtype::F16, shape, bytes));
        }
    }
    let mut metadata = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
        (DTYPE_KEY.to_string(), dtype.name().to_string()),
    ]);
    if let Some(config) = config {
        let text = std::str::from_utf8(config).map_err(|_| WeightsError::BadConfig("it is not UTF-8 text".into()))?;
        metadata.insert(CONFIG_KEY.to_string(), text.to_string());
    }
    let views: Vec<(String, TensorView)> = out
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Backend(format!("building the pack: {e}")))?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Backend(format!("writing the pack: {e}")))
}
