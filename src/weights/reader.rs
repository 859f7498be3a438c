//! The streamed reader of a safetensors file: the only code that sees the file's bytes and the
//! offsets its header gives, which are untrusted, so they are checked here, in one place,
//! before anything is built from them.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, Metadata, TensorView};
use sha2::{Digest, Sha256};

use crate::fingerprint::SampledDigest;
use crate::pack_format;

use super::{LoadedWeights, WeightsError};

/// Most bytes a safetensors header may take (the reference crate's limit).
const MAX_HEADER: usize = 100_000_000;
/// Most bytes reserved for one tensor before its bytes arrive: a header is untrusted, and one
/// declaring a terabyte tensor must not make the allocator abort (the largest tensor of
/// ViT-L/14 in f32 is 152 MB; bigger ones grow as their bytes come).
const MAX_RESERVE: usize = 256 << 20;

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

/// A tensor as stored in the file: its dtype, shape and bytes.
pub(super) struct StoredTensor {
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
    pub(super) bytes: Vec<u8>,
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
        self.header.as_ref().map(|h| h.data_start.saturating_add(h.data_len))
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
            let total = data_start.checked_add(header.data_len).ok_or_else(|| {
                WeightsError::NotSafetensors("its header describes more tensor data than a file can hold".into())
            })?;
            let mut sampled = SampledDigest::new(total as u64);
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
                    let stored = StoredTensor { dtype: info.dtype, shape: info.shape.clone(), bytes: Vec::with_capacity(size.min(MAX_RESERVE)) };
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
        // A pack's format version is checked whether or not a config file comes with it: a
        // pack of another version is laid out differently, whatever config sits beside it.
        let packed = pack_config(&header.metadata)?;
        let config_json = match config_json {
            Some(given) => Some(given.to_vec()),
            None => packed,
        };
        super::loaded(self.tensors, config_json, self.sampled)
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
    // Compared as u64: on wasm32 a cast to usize would cut 2^32 + 10 down to 10.
    if length > MAX_HEADER as u64 || length < 2 {
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
    pack_format::pack_config(|key| meta.get(key).map(String::as_str)).map_err(WeightsError::BadPack)
}

/// A stored tensor as f32 values (F32, F16 or BF16).
pub(crate) fn to_f32(name: &str, view: &TensorView) -> Result<Vec<f32>, WeightsError> {
    bytes_to_f32(name, view.dtype(), view.data())
}

/// A tensor's values as f32. A NaN or infinite value is refused here, naming the tensor: it
/// would make every output NaN (or every probability 0) without a word.
pub(super) fn bytes_to_f32(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>, WeightsError> {
    let values: Vec<f32> = match dtype {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
        other => return Err(WeightsError::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
    };
    if !values.iter().all(|v| v.is_finite()) {
        return Err(WeightsError::NotFinite(name.to_string()));
    }
    Ok(values)
}
