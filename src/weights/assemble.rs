//! Reading a checkpoint's tensors into `model::ClipWeights`: each tensor taken once, its shape
//! checked and its dtype converted (a pack's int8 matrices kept int8, with their scales), and
//! the layouts' differences applied (HF's separate q/k/v stacked, open_clip's `x @ proj`
//! turned around). Apart from the reader: by now the bytes are whole tensors.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use safetensors::tensor::Dtype;

use crate::model::block::BlockWeights;
use crate::model::host_matrix::{transpose, HostMatrix};
use crate::model::{ClipConfig, ClipWeights, TextWeights, TransformerConfig, VisionWeights};
use crate::pack_format::SCALE_SUFFIX;

use super::config::Shapes;
use super::layouts::{LayoutKeys, Projection, Qkv, Tower};
use super::reader::{bytes_to_f32, StoredTensor};
use super::WeightsError;

/// Tensor access with dtype conversion and shape checks. Each tensor is read once: its bytes
/// are handed over to the weights made from them.
pub(super) struct Source {
    tensors: RefCell<HashMap<String, StoredTensor>>,
    /// A prefix every key carries, e.g. `module.` from DataParallel or `model.`.
    prefix: String,
}

impl Source {
    pub(super) fn new(tensors: HashMap<String, StoredTensor>) -> Self {
        let prefix = ["module.", "model.", "clip."]
            .into_iter()
            .find(|p| !tensors.is_empty() && tensors.keys().all(|n| n.starts_with(p)))
            .unwrap_or("")
            .to_string();
        Self { tensors: RefCell::new(tensors), prefix }
    }

    pub(super) fn unknown_layout(&self) -> WeightsError {
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
            .take(&format!("{key}{SCALE_SUFFIX}"), &[rows])
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
    pub(super) fn dtypes(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .tensors
            .borrow()
            .iter()
            .filter(|(name, _)| !name.ends_with(SCALE_SUFFIX))
            .map(|(_, t)| format!("{:?}", t.dtype))
            .collect();
        set.into_iter().collect()
    }
}

impl Shapes for Source {
    fn shape_of(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.borrow().get(&format!("{}{key}", self.prefix)).map(|t| t.shape.clone())
    }
}

fn read_block(source: &Source, keys: &LayoutKeys, tower: Tower, i: usize, t: &TransformerConfig) -> Result<BlockWeights, WeightsError> {
    let w = t.width;
    let n = |part: &str| keys.block_key(tower, i, part);
    let block = &keys.block;
    let (qkv_weight, qkv_bias) = match block.qkv {
        Qkv::Separate(parts) => {
            let mut weights = Vec::with_capacity(3);
            let mut bias = Vec::with_capacity(3 * w);
            for (weight_key, bias_key) in parts {
                weights.push(source.matrix(&n(weight_key), &[w, w])?);
                bias.extend(source.get(&n(bias_key), &[w])?);
            }
            (HostMatrix::concat_rows(weights), bias)
        }
        Qkv::Fused((weight_key, bias_key)) => {
            (source.matrix(&n(weight_key), &[3 * w, w])?, source.get(&n(bias_key), &[3 * w])?)
        }
    };
    Ok(BlockWeights {
        ln_1: (source.get(&n(block.ln_1.0), &[w])?, source.get(&n(block.ln_1.1), &[w])?),
        qkv_weight,
        qkv_bias,
        out_weight: source.matrix(&n(block.out_proj.0), &[w, w])?,
        out_bias: source.get(&n(block.out_proj.1), &[w])?,
        ln_2: (source.get(&n(block.ln_2.0), &[w])?, source.get(&n(block.ln_2.1), &[w])?),
        fc1_weight: source.matrix(&n(block.fc1.0), &[t.mlp_width, w])?,
        fc1_bias: source.get(&n(block.fc1.1), &[t.mlp_width])?,
        fc2_weight: source.matrix(&n(block.fc2.0), &[w, t.mlp_width])?,
        fc2_bias: source.get(&n(block.fc2.1), &[w])?,
    })
}

/// Projection in HF orientation `[projection_dim, width]`.
fn read_projection(source: &Source, keys: &LayoutKeys, name: &str, width: usize, proj: usize) -> Result<HostMatrix, WeightsError> {
    match keys.projection {
        Projection::Linear => source.matrix(name, &[proj, width]),
        // open_clip computes `x @ proj` with proj `[width, projection_dim]` (so a pack's
        // per-row scales are per input here: dequantised before turning it around).
        Projection::XAtProj => Ok(HostMatrix::F32(transpose(&source.get(name, &[width, proj])?, width, proj))),
    }
}

pub(super) fn read_weights(source: &Source, keys: &LayoutKeys, c: &ClipConfig) -> Result<ClipWeights, WeightsError> {
    let v = &c.vision;
    let vw = v.transformer.width;
    let vision = VisionWeights {
        patch_embedding: source.matrix(keys.patch_embedding, &[vw, 3, v.patch_size, v.patch_size])?,
        class_embedding: source.get(keys.class_embedding, &[vw])?,
        position_embedding: source.get(keys.vision_positions, &[v.num_positions(), vw])?,
        ln_pre: (source.get(keys.ln_pre.0, &[vw])?, source.get(keys.ln_pre.1, &[vw])?),
        blocks: (0..v.transformer.layers)
            .map(|i| read_block(source, keys, Tower::Vision, i, &v.transformer))
            .collect::<Result<_, _>>()?,
        ln_post: (source.get(keys.ln_post.0, &[vw])?, source.get(keys.ln_post.1, &[vw])?),
        projection: read_projection(source, keys, keys.vision_projection, vw, c.projection_dim)?,
    };
    let t = &c.text;
    let tw = t.transformer.width;
    let text = TextWeights {
        token_embedding: source.matrix(keys.token_embedding, &[t.vocab_size, tw])?,
        position_embedding: source.get(keys.text_positions, &[t.context_length, tw])?,
        blocks: (0..t.transformer.layers)
            .map(|i| read_block(source, keys, Tower::Text, i, &t.transformer))
            .collect::<Result<_, _>>()?,
        ln_final: (source.get(keys.ln_final.0, &[tw])?, source.get(keys.ln_final.1, &[tw])?),
        projection: read_projection(source, keys, keys.text_projection, tw, c.projection_dim)?,
    };
    let logit_scale = source.get(keys.logit_scale, &[])?[0];
    Ok(ClipWeights { vision, text, logit_scale })
}
