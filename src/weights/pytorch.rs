//! PyTorch checkpoints (`torch.save` zip archives: BioCLIP's `open_clip_pytorch_model.bin`)
//! read as they are, through burn's `pytorch-reader` (it interprets the pickle, it never runs
//! it). Native only: the reader needs the file on disk, which a browser page does not have.
//! The tensors are laid out as an in-memory safetensors file and read by the same code as one,
//! so layouts, key maps, shape checks and every error stay in one place.

use std::path::Path;

use pytorch_reader::{DType, PytorchReader};
use safetensors::tensor::{Dtype, TensorView};

use super::{LoadedWeights, WeightsError};

/// Prefixes training code leaves on keys (`module.` from DataParallel).
const STRIPPED_PREFIXES: [&str; 1] = ["module."];

/// Reads a PyTorch checkpoint (a bare state dict, or one under `state_dict` / `model`).
pub fn load_pytorch(path: &Path, config_json: Option<&[u8]>) -> Result<LoadedWeights, WeightsError> {
    let bytes = safetensors_bytes(path)?;
    super::load(&bytes, config_json)
}

/// The checkpoint's weights as a safetensors file in memory: its float tensors (under
/// `state_dict.` / `model.` when nested there, `torch_zip::nested_prefix`), `module.`
/// dropped. The page makes the same bytes from a `File` (`torch_zip`).
pub(super) fn safetensors_bytes(path: &Path) -> Result<Vec<u8>, WeightsError> {
    let unreadable = |e: pytorch_reader::PytorchError| WeightsError::PyTorchCheckpoint(e.to_string());
    let reader = PytorchReader::new(path).map_err(unreadable)?;
    let keys = reader.keys();
    let nested = super::torch_zip::nested_prefix(keys.iter().map(String::as_str));
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (full, tensor) in reader.tensors() {
        let name = match nested {
            Some(prefix) => match full.strip_prefix(prefix) {
                Some(inner) => inner,
                None => continue,
            },
            None => full.as_str(),
        };
        let dtype = match tensor.dtype() {
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
            // Integer buffers (e.g. position ids, attention masks) are not weights.
            _ => continue,
        };
        let bytes = tensor.read().map_err(|e| WeightsError::PyTorchCheckpoint(format!("tensor `{name}` cannot be read: {e}")))?;
        let name = STRIPPED_PREFIXES.iter().fold(name, |n, p| n.strip_prefix(p).unwrap_or(n)).to_string();
        tensors.push((name, dtype, tensor.shape().to_vec(), bytes));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| WeightsError::NotSafetensors(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| WeightsError::NotSafetensors(e.to_string()))
}
