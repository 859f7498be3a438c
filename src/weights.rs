//! Every checkpoint layout fieldclip reads, and its mapping onto `model::ClipWeights`, in one
//! place. Input is bytes, pushed in pieces (`WeightsReader`: the browser streams a file into
//! it) or all at once (`load`); the header is parsed by the reference `safetensors` crate. The architecture is read from tensor shapes and refined by an
//! optional config file (HF `config.json` or open_clip's `open_clip_config.json`).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use safetensors::tensor::{Dtype, Metadata, TensorView};
use serde::Serialize;
use sha2::{Digest, Sha256};
use serde_json::Value;

use crate::fingerprint::SampledDigest;
use crate::model::block::BlockWeights;
use crate::model::dense::{transpose, HostMatrix};
use crate::pack;
use crate::model::{
    Activation, ClipConfig, ClipWeights, TextConfig, TextWeights, TransformerConfig, VisionConfig,
    VisionWeights,
};

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
    #[error("The config file cannot be used: {0}")]
    BadConfig(String),
    #[error("This model pack is damaged or from another version: {0}. Make it again with `fieldclip pack`.")]
    BadPack(String),
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

/// Most bytes a safetensors header may take (the reference crate's limit).
const MAX_HEADER: usize = 100_000_000;

/// A safetensors file (a checkpoint or a model pack) read front to back in pieces of any
/// size: a download as it arrives, a file read in chunks, or all of it at once. Each tensor's
/// bytes are kept once, in their own buffer, and handed over (not copied) to the model, so
/// loading never holds the whole file next to the weights made from it. The model id's
/// digest (and, if asked for, the file's SHA-256) is computed on the way.
pub struct WeightsReader {
    /// SHA-256 of the whole file (seconds for a large file in WebAssembly: only on request).
    hasher: Option<Sha256>,
    /// Starts once the header tells the file's size.
    sampled: Option<SampledDigest>,
    received: usize,
    /// The first bytes, until the header is complete.
    head: Vec<u8>,
    header: Option<Header>,
    /// Index (in `header.order`) of the tensor being filled.
    filling: usize,
    /// Data bytes received so far (after the header).
    data_received: usize,
    tensors: HashMap<String, StoredTensor>,
}

struct Header {
    /// 8 + the header's length: where tensor data starts.
    data_start: usize,
    data_len: usize,
    /// Tensor names, by offset, with their end offsets.
    order: Vec<(String, usize)>,
    metadata: Metadata,
}

struct StoredTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Default for WeightsReader {
    fn default() -> Self {
        Self::new()
    }
}

impl WeightsReader {
    /// A reader that also computes the file's SHA-256.
    pub fn new() -> Self {
        Self::with_file_hash(true)
    }

    pub fn with_file_hash(sha256: bool) -> Self {
        Self {
            hasher: sha256.then(Sha256::new),
            sampled: None,
            received: 0,
            head: Vec::new(),
            header: None,
            filling: 0,
            data_received: 0,
            tensors: HashMap::new(),
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The whole file's size, once its header has been read.
    pub fn expected_size(&self) -> Option<usize> {
        self.header.as_ref().map(|h| h.data_start + h.data_len)
    }

    /// The next piece of the file. Fails as soon as the bytes show the file cannot be read.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), WeightsError> {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(chunk);
        }
        self.received += chunk.len();
        if let Some(sampled) = &mut self.sampled {
            sampled.update(chunk);
        }
        if self.header.is_none() {
            let before = self.head.len();
            self.head.extend_from_slice(chunk);
            let Some(data_start) = header_end(&self.head)? else { return Ok(()) };
            let mut header = parse_header(&self.head[8..data_start])?;
            header.data_start = data_start;
            let mut sampled = SampledDigest::new((data_start + header.data_len) as u64);
            sampled.update(&self.head);
            self.sampled = Some(sampled);
            // Empty tensors get no bytes: stored now.
            for (name, info) in header.metadata.tensors() {
                if info.data_offsets.0 == info.data_offsets.1 {
                    self.tensors.insert(name, StoredTensor { dtype: info.dtype, shape: info.shape.clone(), bytes: Vec::new() });
                }
            }
            self.header = Some(header);
            chunk = &chunk[data_start - before..];
            self.head = Vec::new();
        }
        let header = self.header.as_ref().unwrap();
        if self.data_received + chunk.len() > header.data_len {
            return Err(WeightsError::NotSafetensors(format!(
                "it goes on for {} bytes after the tensors its header describes",
                self.data_received + chunk.len() - header.data_len
            )));
        }
        while !chunk.is_empty() {
            let (name, end) = &header.order[self.filling];
            let tensor = match self.tensors.get_mut(name) {
                Some(t) => t,
                None => {
                    let info = header.metadata.info(name).expect("a name from the header");
                    let size = info.data_offsets.1 - info.data_offsets.0;
                    let stored = StoredTensor { dtype: info.dtype, shape: info.shape.clone(), bytes: Vec::with_capacity(size) };
                    self.tensors.entry(name.clone()).or_insert(stored)
                }
            };
            let take = (end - self.data_received).min(chunk.len());
            tensor.bytes.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            self.data_received += take;
            if self.data_received == *end {
                self.filling += 1;
            }
        }
        Ok(())
    }

    /// The file's SHA-256 (of the bytes pushed so far) as lowercase hex, if it was asked for.
    pub fn sha256_hex(&self) -> Option<String> {
        self.hasher.as_ref().map(|h| h.clone().finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The weights, once the whole file was pushed.
    pub fn finish(self, config_json: Option<&[u8]>) -> Result<LoadedWeights, WeightsError> {
        let Some(header) = self.header else {
            if self.received == 0 {
                return Err(WeightsError::Empty);
            }
            if self.head.len() < 8 {
                return Err(WeightsError::NotSafetensors("it is too short to hold a header".into()));
            }
            let expected = u64::from_le_bytes(self.head[..8].try_into().unwrap()) as usize;
            return Err(WeightsError::Truncated { expected, found: self.head.len() - 8 });
        };
        if self.data_received < header.data_len {
            return Err(WeightsError::Truncated {
                expected: header.data_start + header.data_len,
                found: self.received,
            });
        }
        let config_json = match config_json {
            Some(given) => Some(given.to_vec()),
            None => pack_config(&header.metadata)?,
        };
        let source = Source::new(self.tensors);
        let config_value = parse_config(config_json.as_deref())?;
        let layout = source.layout().ok_or_else(|| source.unknown_layout())?;
        let names = Names { layout };
        let (config, config_source) = derive_config(&source, &names, config_value.as_ref())?;
        let info = WeightsInfo {
            name: config.name(),
            layout,
            dtypes: source.dtypes(),
            parameters: config.parameter_count(),
            config,
            config_source,
        };
        let weights = read_weights(&source, &names, &info.config)?;
        let sampled_digest = self.sampled.expect("started with the header").finish();
        Ok(LoadedWeights { weights, info, config_json, sampled_digest })
    }
}

/// Where tensor data starts (8 + the header length) once enough bytes are there to know the
/// header is complete; an error as soon as the first bytes show another kind of file.
fn header_end(head: &[u8]) -> Result<Option<usize>, WeightsError> {
    // Recognise the formats people most often pick by mistake before trying to parse.
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Err(WeightsError::PyTorchPickle);
    }
    if head.len() >= 4 && head.starts_with(b"PK\x03\x04") {
        return Err(WeightsError::PyTorchZip);
    }
    if head.len() < 9 {
        return Ok(None);
    }
    if head[0] == 0x08 && head[8] != b'{' {
        return Err(WeightsError::Onnx);
    }
    let length = u64::from_le_bytes(head[..8].try_into().unwrap());
    if length as usize > MAX_HEADER || length < 2 {
        return Err(WeightsError::NotSafetensors("its first 8 bytes are not a valid header length".into()));
    }
    if head[8] != b'{' {
        return Err(WeightsError::NotSafetensors("it does not start with a JSON header".into()));
    }
    let end = 8 + length as usize;
    Ok((head.len() >= end).then_some(end))
}

fn parse_header(json: &[u8]) -> Result<Header, WeightsError> {
    let metadata: Metadata = serde_json::from_slice(json)
        .map_err(|e| WeightsError::NotSafetensors(format!("its header cannot be read ({e})")))?;
    let order = metadata
        .offset_keys()
        .into_iter()
        .map(|name| {
            let end = metadata.info(&name).expect("a name from the header").data_offsets.1;
            (name, end)
        })
        .filter(|(name, _)| metadata.info(name).is_some_and(|i| i.data_offsets.1 > i.data_offsets.0))
        .collect();
    Ok(Header { data_start: 0, data_len: metadata.data_len(), order, metadata })
}

/// The config file inside a model pack (`pack.rs`), checking the pack's version; `None` for
/// a plain checkpoint or a pack made without a config file.
fn pack_config(header: &Metadata) -> Result<Option<Vec<u8>>, WeightsError> {
    let Some(meta) = header.metadata() else { return Ok(None) };
    match meta.get(pack::FORMAT_KEY).map(String::as_str) {
        None => Ok(None),
        Some(pack::FORMAT_VERSION) => Ok(meta.get(pack::CONFIG_KEY).map(|c| c.as_bytes().to_vec())),
        Some(other) => Err(WeightsError::BadPack(format!(
            "it is pack format {other}, this fieldclip reads format {}",
            pack::FORMAT_VERSION
        ))),
    }
}

/// A stored tensor as f32 values (F32, F16 or BF16).
pub(crate) fn to_f32(name: &str, view: &TensorView) -> Result<Vec<f32>, WeightsError> {
    bytes_to_f32(name, view.dtype(), view.data())
}

fn bytes_to_f32(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>, WeightsError> {
    Ok(match dtype {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
        other => return Err(WeightsError::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
    })
}

/// Where tensor shapes come from: a parsed file, or (for tests and tools) just a name → shape map.
pub trait Shapes {
    fn shape_of(&self, key: &str) -> Option<Vec<usize>>;

    fn shape(&self, key: &str) -> Result<Vec<usize>, WeightsError> {
        self.shape_of(key).ok_or_else(|| WeightsError::MissingTensor(key.to_string()))
    }

    /// Number of transformer layers: the count of consecutive indices `0..n` present.
    fn count_layers(&self, probe: &dyn Fn(usize) -> String) -> usize {
        (0..).take_while(|&i| self.shape_of(&probe(i)).is_some()).count()
    }

    fn layout(&self) -> Option<Layout> {
        if self.shape_of("vision_model.embeddings.patch_embedding.weight").is_some() {
            Some(Layout::HuggingFace)
        } else if self.shape_of("visual.conv1.weight").is_some() {
            Some(Layout::OpenClip)
        } else {
            None
        }
    }
}

impl Shapes for std::collections::HashMap<String, Vec<usize>> {
    fn shape_of(&self, key: &str) -> Option<Vec<usize>> {
        self.get(key).cloned()
    }
}

impl Shapes for Source {
    fn shape_of(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.borrow().get(&format!("{}{key}", self.prefix)).map(|t| t.shape.clone())
    }
}

/// The architecture and layout implied by tensor shapes and an optional config file.
pub fn architecture(shapes: &dyn Shapes, config_json: Option<&[u8]>) -> Result<(Layout, ClipConfig), WeightsError> {
    let layout = shapes.layout().ok_or_else(|| WeightsError::UnknownLayout("none of the expected keys".into()))?;
    let config = parse_config(config_json)?;
    let (config, _) = derive_config(shapes, &Names { layout }, config.as_ref())?;
    Ok((layout, config))
}

fn parse_config(config_json: Option<&[u8]>) -> Result<Option<Value>, WeightsError> {
    config_json
        .map(|text| serde_json::from_slice::<Value>(text).map_err(|e| WeightsError::BadConfig(format!("it is not valid JSON ({e})"))))
        .transpose()
}

/// Tensor access with dtype conversion and shape checks. Each tensor is read once: its bytes
/// are handed over to the weights made from them.
struct Source {
    tensors: RefCell<HashMap<String, StoredTensor>>,
    /// A prefix every key carries, e.g. `module.` from DataParallel or `model.`.
    prefix: String,
}

impl Source {
    fn new(tensors: HashMap<String, StoredTensor>) -> Self {
        let prefix = ["module.", "model.", "clip."]
            .into_iter()
            .find(|p| !tensors.is_empty() && tensors.keys().all(|n| n.starts_with(p)))
            .unwrap_or("")
            .to_string();
        Self { tensors: RefCell::new(tensors), prefix }
    }

    fn unknown_layout(&self) -> WeightsError {
        let tensors = self.tensors.borrow();
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let first: Vec<&str> = names.into_iter().take(5).map(String::as_str).collect();
        WeightsError::UnknownLayout(if first.is_empty() { "none".into() } else { first.join(", ") })
    }

    /// Removes a tensor, checking its shape. A 0-d scalar is accepted for `[1]` and vice versa.
    fn take(&self, key: &str, expected: &[usize]) -> Result<StoredTensor, WeightsError> {
        let tensor = self
            .tensors
            .borrow_mut()
            .remove(&format!("{}{key}", self.prefix))
            .ok_or_else(|| WeightsError::MissingTensor(key.to_string()))?;
        let found = tensor.shape.clone();
        let numel = |s: &[usize]| s.iter().product::<usize>();
        let scalar_ok = numel(&found) == 1 && numel(expected) == 1 && found.len() <= 1 && expected.len() <= 1;
        if found != expected && !scalar_ok {
            return Err(WeightsError::WrongShape { name: key.to_string(), expected: expected.to_vec(), found });
        }
        Ok(tensor)
    }

    /// A vector or small tensor as f32.
    fn get(&self, key: &str, expected: &[usize]) -> Result<Vec<f32>, WeightsError> {
        Ok(self.matrix(key, expected)?.into_f32())
    }

    /// A weight matrix (any rank, rows = first dimension): int8 with its scales as stored in a
    /// q8 pack, f32 otherwise.
    fn matrix(&self, key: &str, expected: &[usize]) -> Result<HostMatrix, WeightsError> {
        let tensor = self.take(key, expected)?;
        if tensor.dtype != Dtype::I8 {
            return Ok(HostMatrix::F32(bytes_to_f32(key, tensor.dtype, &tensor.bytes)?));
        }
        // An int8 tensor of a model pack: one scale per row.
        let damaged = |why: String| WeightsError::BadPack(format!("tensor `{key}` {why}"));
        let rows = tensor.shape.first().copied().unwrap_or(1);
        let scales = self
            .take(&format!("{key}{}", pack::SCALE_SUFFIX), &[rows])
            .map_err(|e| match e {
                WeightsError::MissingTensor(_) => damaged("is int8 but has no scales".into()),
                WeightsError::WrongShape { found, .. } => damaged(format!("has scales of shape {found:?} for {rows} rows")),
                other => other,
            })?;
        let scales = bytes_to_f32(key, scales.dtype, &scales.bytes)?;
        if rows == 0 || scales.len() != rows {
            return Err(damaged(format!("has {} scales for {rows} rows", scales.len())));
        }
        // Same size and alignment: the buffer is reused as it is.
        let mut bytes = std::mem::ManuallyDrop::new(tensor.bytes);
        // SAFETY: u8 and i8 have the same size and alignment; the Vec's allocation is moved.
        let values = unsafe { Vec::from_raw_parts(bytes.as_mut_ptr() as *mut i8, bytes.len(), bytes.capacity()) };
        Ok(HostMatrix::Int8 { values, scales })
    }

    /// The storage dtypes of the weights (a pack's scale tensors left out).
    fn dtypes(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .tensors
            .borrow()
            .iter()
            .filter(|(name, _)| !name.ends_with(pack::SCALE_SUFFIX))
            .map(|(_, t)| format!("{:?}", t.dtype))
            .collect();
        set.into_iter().collect()
    }
}

struct Names {
    layout: Layout,
}

impl Names {
    fn block(&self, tower: Tower, i: usize, part: &str) -> String {
        match self.layout {
            Layout::HuggingFace => {
                let t = if tower == Tower::Vision { "vision_model" } else { "text_model" };
                format!("{t}.encoder.layers.{i}.{part}")
            }
            Layout::OpenClip => {
                let t = if tower == Tower::Vision { "visual.transformer" } else { "transformer" };
                format!("{t}.resblocks.{i}.{part}")
            }
        }
    }

    /// The names of a block's parameters, in the order (ln1 w/b, out w/b, ln2 w/b, fc1 w/b, fc2 w/b).
    fn block_parts(&self) -> [&'static str; 10] {
        match self.layout {
            Layout::HuggingFace => [
                "layer_norm1.weight",
                "layer_norm1.bias",
                "self_attn.out_proj.weight",
                "self_attn.out_proj.bias",
                "layer_norm2.weight",
                "layer_norm2.bias",
                "mlp.fc1.weight",
                "mlp.fc1.bias",
                "mlp.fc2.weight",
                "mlp.fc2.bias",
            ],
            Layout::OpenClip => [
                "ln_1.weight",
                "ln_1.bias",
                "attn.out_proj.weight",
                "attn.out_proj.bias",
                "ln_2.weight",
                "ln_2.bias",
                "mlp.c_fc.weight",
                "mlp.c_fc.bias",
                "mlp.c_proj.weight",
                "mlp.c_proj.bias",
            ],
        }
    }

    fn get(&self, what: Key) -> &'static str {
        use Key::*;
        match (self.layout, what) {
            (Layout::HuggingFace, PatchEmbedding) => "vision_model.embeddings.patch_embedding.weight",
            (Layout::HuggingFace, ClassEmbedding) => "vision_model.embeddings.class_embedding",
            (Layout::HuggingFace, VisionPositions) => "vision_model.embeddings.position_embedding.weight",
            (Layout::HuggingFace, LnPreWeight) => "vision_model.pre_layrnorm.weight",
            (Layout::HuggingFace, LnPreBias) => "vision_model.pre_layrnorm.bias",
            (Layout::HuggingFace, LnPostWeight) => "vision_model.post_layernorm.weight",
            (Layout::HuggingFace, LnPostBias) => "vision_model.post_layernorm.bias",
            (Layout::HuggingFace, VisionProjection) => "visual_projection.weight",
            (Layout::HuggingFace, TokenEmbedding) => "text_model.embeddings.token_embedding.weight",
            (Layout::HuggingFace, TextPositions) => "text_model.embeddings.position_embedding.weight",
            (Layout::HuggingFace, LnFinalWeight) => "text_model.final_layer_norm.weight",
            (Layout::HuggingFace, LnFinalBias) => "text_model.final_layer_norm.bias",
            (Layout::HuggingFace, TextProjection) => "text_projection.weight",
            (Layout::HuggingFace, LogitScale) => "logit_scale",
            (Layout::OpenClip, PatchEmbedding) => "visual.conv1.weight",
            (Layout::OpenClip, ClassEmbedding) => "visual.class_embedding",
            (Layout::OpenClip, VisionPositions) => "visual.positional_embedding",
            (Layout::OpenClip, LnPreWeight) => "visual.ln_pre.weight",
            (Layout::OpenClip, LnPreBias) => "visual.ln_pre.bias",
            (Layout::OpenClip, LnPostWeight) => "visual.ln_post.weight",
            (Layout::OpenClip, LnPostBias) => "visual.ln_post.bias",
            (Layout::OpenClip, VisionProjection) => "visual.proj",
            (Layout::OpenClip, TokenEmbedding) => "token_embedding.weight",
            (Layout::OpenClip, TextPositions) => "positional_embedding",
            (Layout::OpenClip, LnFinalWeight) => "ln_final.weight",
            (Layout::OpenClip, LnFinalBias) => "ln_final.bias",
            (Layout::OpenClip, TextProjection) => "text_projection",
            (Layout::OpenClip, LogitScale) => "logit_scale",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tower {
    Vision,
    Text,
}

#[derive(Clone, Copy)]
enum Key {
    PatchEmbedding,
    ClassEmbedding,
    VisionPositions,
    LnPreWeight,
    LnPreBias,
    LnPostWeight,
    LnPostBias,
    VisionProjection,
    TokenEmbedding,
    TextPositions,
    LnFinalWeight,
    LnFinalBias,
    TextProjection,
    LogitScale,
}

fn dim(shape: &[usize], i: usize, name: &str, rank: usize) -> Result<usize, WeightsError> {
    if shape.len() != rank {
        return Err(WeightsError::WrongRank { name: name.to_string(), expected: rank, found: shape.to_vec() });
    }
    Ok(shape[i])
}

/// Reads the architecture from the tensor shapes, then applies the config file, if any.
fn derive_config(source: &dyn Shapes, names: &Names, config: Option<&Value>) -> Result<(ClipConfig, String), WeightsError> {
    use Key::*;
    let patch_name = names.get(PatchEmbedding);
    let patch = source.shape(patch_name)?;
    let vision_width = dim(&patch, 0, patch_name, 4)?;
    let patch_size = patch[2];
    let vpos_name = names.get(VisionPositions);
    let vision_positions = dim(&source.shape(vpos_name)?, 0, vpos_name, 2)?;
    let grid = ((vision_positions.saturating_sub(1)) as f64).sqrt().round() as usize;
    if grid * grid + 1 != vision_positions {
        return Err(WeightsError::BadConfig(format!(
            "`{vpos_name}` has {vision_positions} rows, which is not a square grid of patches plus a class token"
        )));
    }
    let (fc1, qkv_probe) = match names.layout {
        Layout::HuggingFace => ("mlp.fc1.weight", "self_attn.q_proj.weight"),
        Layout::OpenClip => ("mlp.c_fc.weight", "attn.in_proj_weight"),
    };
    let vision_layers = source.count_layers(&|i| names.block(Tower::Vision, i, qkv_probe));
    let vision_mlp = source.shape(&names.block(Tower::Vision, 0, fc1))?[0];

    let tok_name = names.get(TokenEmbedding);
    let tok = source.shape(tok_name)?;
    let (vocab_size, text_width) = (dim(&tok, 0, tok_name, 2)?, tok[1]);
    let tpos_name = names.get(TextPositions);
    let context_length = dim(&source.shape(tpos_name)?, 0, tpos_name, 2)?;
    let text_layers = source.count_layers(&|i| names.block(Tower::Text, i, qkv_probe));
    let text_mlp = source.shape(&names.block(Tower::Text, 0, fc1))?[0];
    let proj_name = names.get(TextProjection);
    let proj = source.shape(proj_name)?;
    let projection_dim = match names.layout {
        Layout::HuggingFace => dim(&proj, 0, proj_name, 2)?,
        Layout::OpenClip => dim(&proj, 1, proj_name, 2)?,
    };

    // What shapes cannot tell: defaults of the layout's own reference implementation.
    let mut vision_heads = vision_width / 64;
    let mut text_heads = text_width / 64;
    let mut vision_act = Activation::QuickGelu;
    let mut text_act = Activation::QuickGelu;
    let mut vision_eps = 1e-5;
    let mut text_eps = 1e-5;
    let mut source_note = String::from("no config file: heads = width/64, QuickGELU (OpenAI CLIP defaults)");

    let act = |name: &str| -> Result<Activation, WeightsError> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            other => Err(WeightsError::BadConfig(format!("activation `{other}` is not supported (quick_gelu or gelu)"))),
        }
    };
    let usize_at = |v: &Value, path: &[&str]| -> Option<usize> {
        path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64).map(|n| n as usize)
    };
    let f64_at = |v: &Value, path: &[&str]| -> Option<f64> { path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_f64) };

    if let Some(cfg) = config {
        if let Some(model_cfg) = cfg.get("model_cfg") {
            // open_clip_config.json (what `push_to_hf_hub` writes).
            let quick = model_cfg.get("quick_gelu").and_then(Value::as_bool).unwrap_or(false);
            let a = if quick { Activation::QuickGelu } else { Activation::Gelu };
            vision_act = a;
            text_act = a;
            let head_width = usize_at(model_cfg, &["vision_cfg", "head_width"]).unwrap_or(64);
            vision_heads = vision_width / head_width.max(1);
            if let Some(h) = usize_at(model_cfg, &["text_cfg", "heads"]) {
                text_heads = h;
            }
            source_note = "open_clip_config.json".into();
        } else if cfg.get("vision_config").is_some() || cfg.get("text_config").is_some() {
            // transformers CLIPConfig.
            if let Some(h) = usize_at(cfg, &["vision_config", "num_attention_heads"]) {
                vision_heads = h;
            }
            if let Some(h) = usize_at(cfg, &["text_config", "num_attention_heads"]) {
                text_heads = h;
            }
            if let Some(a) = cfg.pointer("/vision_config/hidden_act").and_then(Value::as_str) {
                vision_act = act(a)?;
            }
            if let Some(a) = cfg.pointer("/text_config/hidden_act").and_then(Value::as_str) {
                text_act = act(a)?;
            }
            vision_eps = f64_at(cfg, &["vision_config", "layer_norm_eps"]).unwrap_or(vision_eps);
            text_eps = f64_at(cfg, &["text_config", "layer_norm_eps"]).unwrap_or(text_eps);
            source_note = "config.json (Hugging Face)".into();
        } else {
            return Err(WeightsError::BadConfig(
                "it is neither a Hugging Face CLIP config.json (vision_config/text_config) nor an open_clip_config.json (model_cfg)".into(),
            ));
        }
    }
    for (tower, width, heads) in [("vision", vision_width, vision_heads), ("text", text_width, text_heads)] {
        if heads == 0 || width % heads != 0 {
            return Err(WeightsError::BadConfig(format!("the {tower} width {width} cannot be split into {heads} attention heads")));
        }
    }
    let config = ClipConfig {
        vision: VisionConfig {
            transformer: TransformerConfig {
                width: vision_width,
                layers: vision_layers,
                heads: vision_heads,
                mlp_width: vision_mlp,
                activation: vision_act,
                layer_norm_eps: vision_eps,
            },
            patch_size,
            image_size: grid * patch_size,
        },
        text: TextConfig {
            transformer: TransformerConfig {
                width: text_width,
                layers: text_layers,
                heads: text_heads,
                mlp_width: text_mlp,
                activation: text_act,
                layer_norm_eps: text_eps,
            },
            vocab_size,
            context_length,
        },
        projection_dim,
    };
    Ok((config, source_note))
}

fn read_block(source: &Source, names: &Names, tower: Tower, i: usize, t: &TransformerConfig) -> Result<BlockWeights, WeightsError> {
    let w = t.width;
    let n = |part: &str| names.block(tower, i, part);
    let [ln1w, ln1b, outw, outb, ln2w, ln2b, fc1w, fc1b, fc2w, fc2b] = names.block_parts();
    let (qkv_weight, qkv_bias) = match names.layout {
        Layout::HuggingFace => {
            let mut weights = Vec::with_capacity(3);
            let mut bias = Vec::with_capacity(3 * w);
            for p in ["q_proj", "k_proj", "v_proj"] {
                weights.push(source.matrix(&n(&format!("self_attn.{p}.weight")), &[w, w])?);
                bias.extend(source.get(&n(&format!("self_attn.{p}.bias")), &[w])?);
            }
            (HostMatrix::concat_rows(weights), bias)
        }
        Layout::OpenClip => {
            (source.matrix(&n("attn.in_proj_weight"), &[3 * w, w])?, source.get(&n("attn.in_proj_bias"), &[3 * w])?)
        }
    };
    Ok(BlockWeights {
        ln_1: (source.get(&n(ln1w), &[w])?, source.get(&n(ln1b), &[w])?),
        qkv_weight,
        qkv_bias,
        out_weight: source.matrix(&n(outw), &[w, w])?,
        out_bias: source.get(&n(outb), &[w])?,
        ln_2: (source.get(&n(ln2w), &[w])?, source.get(&n(ln2b), &[w])?),
        fc1_weight: source.matrix(&n(fc1w), &[t.mlp_width, w])?,
        fc1_bias: source.get(&n(fc1b), &[t.mlp_width])?,
        fc2_weight: source.matrix(&n(fc2w), &[w, t.mlp_width])?,
        fc2_bias: source.get(&n(fc2b), &[w])?,
    })
}

/// Projection in HF orientation `[projection_dim, width]`.
fn read_projection(source: &Source, names: &Names, key: Key, width: usize, proj: usize) -> Result<HostMatrix, WeightsError> {
    let name = names.get(key);
    match names.layout {
        Layout::HuggingFace => source.matrix(name, &[proj, width]),
        // open_clip computes `x @ proj` with proj `[width, projection_dim]` (so a pack's
        // per-row scales are per input here: dequantised before turning it around).
        Layout::OpenClip => Ok(HostMatrix::F32(transpose(&source.get(name, &[width, proj])?, width, proj))),
    }
}

fn read_weights(source: &Source, names: &Names, c: &ClipConfig) -> Result<ClipWeights, WeightsError> {
    use Key::*;
    let v = &c.vision;
    let vw = v.transformer.width;
    let vision = VisionWeights {
        patch_embedding: source.matrix(names.get(PatchEmbedding), &[vw, 3, v.patch_size, v.patch_size])?,
        class_embedding: source.get(names.get(ClassEmbedding), &[vw])?,
        position_embedding: source.get(names.get(VisionPositions), &[v.num_positions(), vw])?,
        ln_pre: (source.get(names.get(LnPreWeight), &[vw])?, source.get(names.get(LnPreBias), &[vw])?),
        blocks: (0..v.transformer.layers)
            .map(|i| read_block(source, names, Tower::Vision, i, &v.transformer))
            .collect::<Result<_, _>>()?,
        ln_post: (source.get(names.get(LnPostWeight), &[vw])?, source.get(names.get(LnPostBias), &[vw])?),
        projection: read_projection(source, names, VisionProjection, vw, c.projection_dim)?,
    };
    let t = &c.text;
    let tw = t.transformer.width;
    let text = TextWeights {
        token_embedding: source.matrix(names.get(TokenEmbedding), &[t.vocab_size, tw])?,
        position_embedding: source.get(names.get(TextPositions), &[t.context_length, tw])?,
        blocks: (0..t.transformer.layers)
            .map(|i| read_block(source, names, Tower::Text, i, &t.transformer))
            .collect::<Result<_, _>>()?,
        ln_final: (source.get(names.get(LnFinalWeight), &[tw])?, source.get(names.get(LnFinalBias), &[tw])?),
        projection: read_projection(source, names, TextProjection, tw, c.projection_dim)?,
    };
    let logit_scale = source.get(names.get(LogitScale), &[])?[0];
    Ok(ClipWeights { vision, text, logit_scale })
}
