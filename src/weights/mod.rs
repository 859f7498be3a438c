//! Every checkpoint layout fieldclip reads, and its mapping onto `model::ClipWeights`, in one
//! place. Input is bytes, pushed in pieces (`WeightsReader`: the browser streams a file into
//! it) or all at once (`load`); the header is parsed by the reference `safetensors` crate. The architecture is read from tensor shapes and refined by an
//! optional config file (HF `config.json` or open_clip's `open_clip_config.json`).
//!
//! The parts, in the order a file goes through them: `reader` (the file's bytes, streamed),
//! `layouts` (each layout's tensor names, as data), `config` (the architecture from the shapes
//! and the config file) and `assemble` (the tensors into `ClipWeights`). PyTorch checkpoints
//! come in as the safetensors file of their weights: `pytorch` natively (burn's reader, from a
//! path), `torch_zip` on the page (from the bytes of a `File`, piece by piece).

mod assemble;
mod config;
mod layouts;
#[cfg(not(target_arch = "wasm32"))]
mod pytorch;
mod reader;
mod torch_zip;

use std::collections::HashMap;

use serde::Serialize;

use crate::fingerprint::SampledDigest;
use crate::model::{ClipConfig, ClipWeights};

use assemble::{read_weights, Source};
use config::{derive_config, parse_config};
use reader::StoredTensor;

pub use config::{architecture, Shapes};
pub use reader::WeightsReader;
pub use torch_zip::{PlannedTensor, TorchZip, TorchZipError};
#[cfg(not(target_arch = "wasm32"))]
pub use pytorch::load_pytorch;
pub(crate) use reader::to_f32;

const CONVERT_HINT: &str = "Convert it to safetensors with Python: \
    `import torch; from safetensors.torch import save_file; \
    sd = torch.load('FILE', map_location='cpu', weights_only=True); \
    sd = sd.get('state_dict', sd); \
    save_file({k.removeprefix('module.'): v.contiguous() for k, v in sd.items()}, 'model.safetensors')`";

/// Why a weights file cannot be used. The `Display` text is meant for the user.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("The file is empty.")]
    Empty,
    #[error("This is a PyTorch pickle checkpoint (.bin/.pt/.pth), not a safetensors file. {CONVERT_HINT}")]
    PyTorchPickle,
    #[error("This is a PyTorch zip checkpoint or a TorchScript archive, not a safetensors file. {CONVERT_HINT}")]
    PyTorchZip,
    #[error("This PyTorch checkpoint cannot be read: {0}.")]
    PyTorchCheckpoint(String),
    #[error("This is an ONNX or other protobuf model, not a safetensors file. fieldclip needs the PyTorch weights saved as safetensors (e.g. `model.safetensors` from Hugging Face).")]
    Onnx,
    #[error("This is not a safetensors file ({0}).")]
    NotSafetensors(String),
    #[error("The safetensors file is truncated: its header describes {expected} bytes of tensor data but only {found} are there. Download it again.")]
    Truncated { expected: usize, found: usize },
    #[error("The file holds no tensor of a CLIP model this tool knows (neither Hugging Face `vision_model.*`/`text_model.*` nor open_clip `visual.*` keys). First keys found: {0}.")]
    UnknownLayout(String),
    #[error("Tensor `{0}` is missing from the weights file.")]
    MissingTensor(String),
    #[error("Tensor `{name}` has shape {found:?}, expected {expected:?}.")]
    WrongShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("Tensor `{name}` has shape {found:?}, expected a tensor with {expected} dimensions.")]
    WrongRank { name: String, expected: usize, found: Vec<usize> },
    #[error("Tensor `{name}` is stored as {dtype}; only F32, F16 and BF16 weights are supported.")]
    UnsupportedDtype { name: String, dtype: String },
    #[error("Tensor `{name}` gives the model {what} of {value}, which cannot work: {why}.")]
    ImpossibleDimension { name: String, what: &'static str, value: usize, why: String },
    #[error("Tensor `{0}` holds NaN or infinite values: the file is damaged, or was saved from a model whose training diverged.")]
    NotFinite(String),
    #[error("The config file cannot be used: {0}")]
    BadConfig(String),
    #[error("This model pack is damaged or from another version: {0}. Make it again with `fieldclip pack`.")]
    BadPack(String),
}

impl From<TorchZipError> for WeightsError {
    fn from(e: TorchZipError) -> Self {
        WeightsError::PyTorchCheckpoint(e.0)
    }
}

/// The key layout of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// `transformers.CLIPModel` (`vision_model.*`, `text_model.*`, separate q/k/v).
    HuggingFace,
    /// open_clip / OpenAI state dict (`visual.*`, fused `in_proj_weight`, `x @ proj`).
    OpenClip,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::HuggingFace => "Hugging Face CLIPModel",
            Layout::OpenClip => "open_clip / OpenAI state dict",
        }
    }
}

/// What was found in a weights file, for `inspect` and the page.
#[derive(Debug, Clone, Serialize)]
pub struct WeightsInfo {
    pub name: String,
    pub layout: Layout,
    /// The storage dtypes found, e.g. `["F16"]`.
    pub dtypes: Vec<String>,
    pub parameters: usize,
    pub config: ClipConfig,
    /// Where the activation / head count came from.
    pub config_source: String,
}

/// Parsed weights ready to build a model.
pub struct LoadedWeights {
    pub weights: ClipWeights,
    pub info: WeightsInfo,
    /// The config file used: the one given, or the one inside a model pack.
    pub config_json: Option<Vec<u8>>,
    /// The file's `fingerprint::SampledDigest` (the model id without the architecture).
    pub sampled_digest: String,
}

/// Reads a checkpoint from memory. `config_json` is the optional config file that sat next to
/// the weights (HF `config.json` or `open_clip_config.json`; the kind is recognised).
pub fn load(bytes: &[u8], config_json: Option<&[u8]>) -> Result<LoadedWeights, WeightsError> {
    let mut reader = WeightsReader::new();
    reader.push(bytes)?;
    reader.finish(config_json)
}

/// The weights of a file read to its end (the second half of `WeightsReader::finish`): the
/// layout, the architecture from the shapes and the config file (the one given, or a pack's),
/// then every tensor. `sampled` is the file's digest, started with its header.
fn loaded(
    tensors: HashMap<String, StoredTensor>,
    config_json: Option<Vec<u8>>,
    sampled: Option<SampledDigest>,
) -> Result<LoadedWeights, WeightsError> {
    let source = Source::new(tensors);
    let config_value = parse_config(config_json.as_deref())?;
    let layout = source.layout().ok_or_else(|| source.unknown_layout())?;
    let keys = layouts::keys(layout);
    let (config, config_source) = derive_config(&source, keys, config_value.as_ref())?;
    let info = WeightsInfo {
        name: config.name(),
        layout,
        dtypes: source.dtypes(),
        parameters: config.parameter_count(),
        config,
        config_source,
    };
    let weights = read_weights(&source, keys, &info.config)?;
    let sampled_digest = sampled.expect("started with the header").finish();
    Ok(LoadedWeights { weights, info, config_json, sampled_digest })
}
