//! The pieces put together: weights → model, tokenizer, preprocessing, and zero-shot
//! classification (label prompts, prompt ensembling, softmax over labels).

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

use crate::error::Error;
use crate::model::{Clip, MapVariant, PatchOutput, Placement, TextOutput, TextTransformer, VisionOutput, VisionTransformer};
use crate::preprocess::{self, Pipeline, PreprocessConfig};
use crate::tokenizer::{ClipTokenizer, Tokens};
use crate::weights::{self, Layout, WeightsInfo};

/// burn's CPU backend computes with int8 tensors and holds the weights in (WebAssembly)
/// memory, where a quarter of the size matters; the GPU backends get f32.
fn keeps_int8_weights(device: &Device) -> bool {
    *device == Device::flex()
}

/// 30 short label prompts, as users write them: the text batch that `cargo bench` and
/// `fieldclip bench` time (their longest end-of-text is at 16 tokens).
pub const BENCH_PROMPTS: [&str; 30] = [
    "a photo of a sunflower, a type of plant.", "a photo of a clownfish, a type of marine animal.",
    "a photo of an astronaut.", "a photo of a cat.", "a photo of a cup of coffee.", "a photo of a rocket.",
    "a black and white photo of a man with a camera.", "a microscope image of stained tissue.", "a logo.",
    "a photo of Quercus robur, a type of tree.", "a photo of the moon.",
    "a photo of a sea anemone, a type of marine animal.", "a photo of a dog.", "a photo of a bird.",
    "a photo of a horse.", "a photo of a car.", "a photo of a house.", "a photo of a flower.", "a photo of a tree.",
    "a photo of a fish.", "a photo of a mushroom.", "a photo of a butterfly.", "a photo of a frog.",
    "a photo of a snake.", "a photo of a beetle.", "a photo of a fern.", "a photo of a moss.",
    "a photo of a lichen.", "a photo of a jellyfish.", "a photo of a starfish.",
];

/// How the model's layers are placed on `device`. On burn's CPU backend in WebAssembly the
/// dense layers run fieldclip's own packed matmul (`model::packed`). Natively, burn's matmul
/// with small matmuls as 4 column blocks (see `Placement`); a GPU parallelises within each
/// matmul.
pub fn placement(device: &Device) -> Placement {
    let cpu = *device == Device::flex();
    let wasm = cfg!(target_arch = "wasm32");
    Placement { device: device.clone(), column_blocks: if cpu && !wasm { 4 } else { 1 }, packed_matmul: cpu && wasm, largest_tensor: None }
}

/// A loaded CLIP model with its tokenizer and preprocessing, on one device.
pub struct ClipModel {
    pub model: Clip,
    pub tokenizer: ClipTokenizer,
    pub preprocess: PreprocessConfig,
    pub info: WeightsInfo,
    pub device: Device,
    /// `fingerprint::model_id` of the weights file: what galleries and adapters are made with.
    pub id: String,
}

impl ClipModel {
    /// `weights`: a safetensors file (HF or open_clip layout); `config`: the optional
    /// `config.json` / `open_clip_config.json` found next to it.
    pub fn from_bytes(weights: &[u8], config: Option<&[u8]>, device: &Device) -> Result<Self, Error> {
        Self::from_bytes_with_progress(weights, config, device, &mut |_, _| {})
    }

    /// Like `from_bytes`, reporting each step (`what`, fraction done) as it starts.
    pub fn from_bytes_with_progress(
        weights: &[u8],
        config: Option<&[u8]>,
        device: &Device,
        progress: &mut dyn FnMut(&str, f32),
    ) -> Result<Self, Error> {
        progress("Reading the weights", 0.0);
        let loaded = weights::load(weights, config)?;
        Self::from_loaded(loaded, device, progress)
    }

    /// Builds the model from weights already read (e.g. streamed by a `WeightsReader`).
    /// Int8 weights of a q8 pack stay int8 on the CPU backend (a quarter of the memory; see
    /// `model::dense`) and are widened to f32 for the GPU.
    pub fn from_loaded(
        loaded: weights::LoadedWeights,
        device: &Device,
        progress: &mut dyn FnMut(&str, f32),
    ) -> Result<Self, Error> {
        Self::from_loaded_at(loaded, &placement(device), progress)
    }

    /// `from_loaded` with the layers placed as `at` says instead of as `placement` would for
    /// its device: natively, the tests run a q8 pack on the packed int8 matmul WebAssembly uses.
    pub fn from_loaded_at(
        loaded: weights::LoadedWeights,
        at: &Placement,
        progress: &mut dyn FnMut(&str, f32),
    ) -> Result<Self, Error> {
        let device = &at.device;
        let config = loaded.config_json.as_deref();
        let info = loaded.info;
        let id = format!("{} {}", info.name, loaded.sampled_digest);
        let pipeline = match info.layout {
            Layout::HuggingFace => Pipeline::HuggingFace,
            Layout::OpenClip => Pipeline::OpenClip,
        };
        let mut preprocess = PreprocessConfig::openai(info.config.vision.image_size, pipeline);
        if let Some((mean, std)) = config.and_then(open_clip_normalisation) {
            preprocess.mean = mean;
            preprocess.std = std;
        }
        // open_clip configs may say how to resize (`preprocess_cfg.resize_mode`): "squash" is
        // the no-crop resize pybioclip uses for BioCLIP.
        if config.and_then(open_clip_resize_mode).as_deref() == Some("squash") {
            preprocess.pipeline = Pipeline::Squash;
        }
        let tokenizer = ClipTokenizer::with_context_length(info.config.text.context_length)?;
        let (c, w) = (&info.config, loaded.weights);
        let w = if keeps_int8_weights(device) { w } else { w.dequantise() };
        progress("Building the image encoder", 0.4);
        let vision = VisionTransformer::new(w.vision, &c.vision, c.projection_dim, at);
        progress("Building the text encoder", 0.75);
        let text = TextTransformer::new(w.text, &c.text, c.projection_dim, at);
        progress("Ready", 1.0);
        let model = Clip { vision, text, logit_scale: w.logit_scale, config: c.clone() };
        Ok(Self { model, tokenizer, preprocess, info, device: device.clone(), id })
    }

    /// Whether int8 weights are kept as int8 (see `from_loaded`).
    pub fn keeps_int8_weights(&self) -> bool {
        keeps_int8_weights(&self.device)
    }

    /// `exp(logit_scale)`, the factor between cosine similarity and logits.
    pub fn logit_scale_exp(&self) -> f32 {
        self.model.logit_scale.exp()
    }

    /// Decodes and preprocesses an image file's bytes for this model.
    pub fn pixels(&self, image_bytes: &[u8]) -> Result<Vec<f32>, Error> {
        Ok(preprocess::preprocess(image_bytes, &self.preprocess)?)
    }

    /// Runs the vision tower on preprocessed images (each `3·S·S`; at least one).
    pub fn encode_images(&self, pixels: &[Vec<f32>]) -> Result<VisionOutput, Error> {
        Ok(self.model.vision.forward(self.pixel_tensor(pixels)?)?)
    }

    /// Like `encode_images`, and also the patch embeddings of `variant` (one pass, see
    /// `model::patches`).
    pub fn encode_images_with_patches(&self, pixels: &[Vec<f32>], variant: MapVariant) -> Result<PatchOutput, Error> {
        Ok(self.model.vision.forward_with_patches(self.pixel_tensor(pixels)?, variant)?)
    }

    fn pixel_tensor(&self, pixels: &[Vec<f32>]) -> Result<Tensor<4>, Error> {
        let s = self.preprocess.image_size;
        if pixels.is_empty() {
            return Err(crate::model::ModelInputError::EmptyBatch.into());
        }
        if let Some(bad) = pixels.iter().find(|p| p.len() != 3 * s * s) {
            return Err(Error::PixelCount { expected: 3 * s * s, found: bad.len() });
        }
        let flat: Vec<f32> = pixels.iter().flatten().copied().collect();
        Ok(Tensor::<4>::from_data(TensorData::new(flat, [pixels.len(), 3, s, s]), &self.device))
    }

    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Tokens>, Error> {
        Ok(self.tokenizer.encode_batch(texts)?)
    }

    /// Runs the text tower. The batch is cut to its longest end-of-text token instead of the
    /// padded context (exact: attention is causal and each row is pooled at its end-of-text).
    /// On the CPU, prompts of very different lengths run as a few groups of similar length,
    /// each cut to its own longest (`length_groups`): the same rows, fewer tokens computed.
    pub fn encode_tokens(&self, tokens: &[Tokens]) -> Result<TextOutput, Error> {
        let groups = if keeps_int8_weights(&self.device) {
            length_groups(&tokens.iter().map(|t| t.eot_index + 1).collect::<Vec<_>>())
        } else {
            Vec::new()
        };
        if groups.len() < 2 {
            return self.encode_group(tokens);
        }
        let mut pooled = Vec::with_capacity(groups.len());
        let mut embeds = Vec::with_capacity(groups.len());
        // `position[i]`: where prompt i lands among the groups' concatenated rows.
        let mut position = vec![0i64; tokens.len()];
        for (row, &i) in groups.iter().flatten().enumerate() {
            position[i] = row as i64;
        }
        for group in &groups {
            let rows: Vec<Tokens> = group.iter().map(|&i| tokens[i].clone()).collect();
            let out = self.encode_group(&rows)?;
            pooled.push(out.pooled);
            embeds.push(out.embeds);
        }
        let order = Tensor::<1, Int>::from_data(TensorData::new(position, [tokens.len()]), &self.device);
        Ok(TextOutput {
            pooled: Tensor::cat(pooled, 0).select(0, order.clone()),
            embeds: Tensor::cat(embeds, 0).select(0, order),
        })
    }

    fn encode_group(&self, tokens: &[Tokens]) -> Result<TextOutput, Error> {
        let len = tokens.iter().map(|t| t.eot_index + 1).max().unwrap_or(1);
        let short = crate::model::ModelInputError::TokenShape { rows: tokens.len(), context: self.model.text.context_length() };
        let ids: Vec<Vec<u32>> =
            tokens.iter().map(|t| t.ids.get(..len).map(<[u32]>::to_vec)).collect::<Option<_>>().ok_or(short)?;
        let eot: Vec<usize> = tokens.iter().map(|t| t.eot_index).collect();
        Ok(self.model.text.forward(&ids, &eot)?)
    }

    /// Like `encode_tokens` but always over the full padded context (for measuring the gain).
    pub fn encode_tokens_padded(&self, tokens: &[Tokens]) -> Result<TextOutput, Error> {
        let ids: Vec<Vec<u32>> = tokens.iter().map(|t| t.ids.clone()).collect();
        let eot: Vec<usize> = tokens.iter().map(|t| t.eot_index).collect();
        Ok(self.model.text.forward(&ids, &eot)?)
    }
}

/// What one more forward pass of the text tower costs on the CPU, in prompt tokens (the layers'
/// fixed costs and smaller matmuls; a token of the 512-wide tower is ~0.5 ms on 2 cores).
const GROUP_COST_TOKENS: usize = 16;
/// At most this many groups per batch.
const MAX_GROUPS: usize = 4;

/// Prompts (by their lengths up to the end-of-text) split into at most `MAX_GROUPS` groups of
/// similar length, minimising the tokens computed, Σ rows × the group's longest, plus
/// `GROUP_COST_TOKENS` per group (dynamic programming over the lengths sorted). Each group
/// lists indices into `lengths`; one group when splitting saves nothing.
pub fn length_groups(lengths: &[usize]) -> Vec<Vec<usize>> {
    let n = lengths.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| lengths[i]);
    // cost[g][i]: the best cost of the first i sorted prompts in g groups; `cut` where the
    // last group starts.
    let mut cost = vec![vec![usize::MAX; n + 1]; MAX_GROUPS + 1];
    let mut cut = vec![vec![0; n + 1]; MAX_GROUPS + 1];
    cost[0][0] = 0;
    for g in 1..=MAX_GROUPS {
        for i in 1..=n {
            let longest = lengths[order[i - 1]];
            for j in 0..i {
                if cost[g - 1][j] == usize::MAX {
                    continue;
                }
                let c = cost[g - 1][j] + (i - j) * longest + GROUP_COST_TOKENS;
                if c < cost[g][i] {
                    cost[g][i] = c;
                    cut[g][i] = j;
                }
            }
        }
    }
    let Some(best) = (1..=MAX_GROUPS).filter(|&g| cost[g][n] != usize::MAX).min_by_key(|&g| (cost[g][n], g)) else {
        return vec![order];
    };
    let mut groups = Vec::with_capacity(best);
    let (mut g, mut i) = (best, n);
    while g > 0 {
        let j = cut[g][i];
        groups.push(order[j..i].to_vec());
        (g, i) = (g - 1, j);
    }
    groups.reverse();
    groups
}

/// `preprocess_cfg.resize_mode` of an open_clip config, where given.
fn open_clip_resize_mode(config: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    Some(v.get("preprocess_cfg")?.get("resize_mode")?.as_str()?.to_string())
}

/// `preprocess_cfg.mean/std` of an open_clip config, where given.
fn open_clip_normalisation(config: &[u8]) -> Option<([f32; 3], [f32; 3])> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let triple = |key: &str| -> Option<[f32; 3]> {
        let a = v.get("preprocess_cfg")?.get(key)?.as_array()?;
        Some([a.first()?.as_f64()? as f32, a.get(1)?.as_f64()? as f32, a.get(2)?.as_f64()? as f32])
    };
    Some((triple("mean")?, triple("std")?))
}

/// A prompt template such as `a photo of a {}.`; `{}` is replaced by the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template(String);

impl Template {
    pub fn new(text: &str) -> Result<Self, Error> {
        if text.contains("{}") {
            Ok(Self(text.to_string()))
        } else {
            Err(Error::TemplateWithoutPlaceholder(text.to_string()))
        }
    }

    pub fn apply(&self, label: &str) -> String {
        self.0.replace("{}", label)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Scales each row of a row-major `[rows, dim]` matrix to unit length.
pub fn normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// CLIP's prompt ensembling: the normalised prompt embeddings of each label averaged and
/// normalised again. `prompt_embeds` is `[labels·templates, dim]`, label-major.
pub fn ensemble_labels(prompt_embeds: &[f32], dim: usize, templates: usize) -> Vec<f32> {
    let mut normalized = prompt_embeds.to_vec();
    normalize_rows(&mut normalized, dim);
    let mut out: Vec<f32> = normalized
        .chunks_exact(dim * templates)
        .flat_map(|group| {
            (0..dim).map(move |d| group.chunks_exact(dim).map(|row| row[d]).sum::<f32>() / templates as f32)
        })
        .collect();
    normalize_rows(&mut out, dim);
    out
}

/// One label's score for one image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    pub label: String,
    pub probability: f32,
    pub logit: f32,
}

/// Logits `scale · cos` and softmax probabilities of one image against every label, best
/// first. Both embeddings must already be L2-normalised.
pub fn classify(image_embed: &[f32], label_embeds: &[f32], labels: &[String], scale: f32) -> Vec<Prediction> {
    predictions(labels, &zero_shot_logits(image_embed, label_embeds, scale))
}

/// `scale · cos` of one image against every label, in label order (normalised embeddings).
pub fn zero_shot_logits(image_embed: &[f32], label_embeds: &[f32], scale: f32) -> Vec<f32> {
    label_embeds
        .chunks_exact(image_embed.len())
        // Eight running sums (`search::dot`): a tree-of-life list is 100,000 rows.
        .map(|l| scale * crate::search::dot(l, image_embed))
        .collect()
}

/// Each label's logit and softmax probability, best first.
pub fn predictions(labels: &[String], logits: &[f32]) -> Vec<Prediction> {
    let probs = softmax(logits);
    let mut out: Vec<Prediction> = labels
        .iter()
        .zip(logits.iter().zip(probs))
        .map(|(label, (&logit, probability))| Prediction { label: label.clone(), probability, logit })
        .collect();
    // Stable sort: equal scores keep the label list's order.
    out.sort_by(|a, b| b.logit.total_cmp(&a.logit));
    out
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Reads a tensor back to the host (native; on wasm use `read_async`, a synchronous read
/// panics on WebGPU).
#[cfg(not(target_arch = "wasm32"))]
pub fn read<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, Error> {
    tensor.into_data().try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))
}

pub async fn read_async<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, Error> {
    let data = tensor.into_data_async().await.map_err(|e| Error::Backend(format!("{e:?}")))?;
    data.try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::length_groups;

    #[test]
    fn length_groups_split_where_it_saves_tokens() {
        // Alike lengths: one group.
        assert_eq!(length_groups(&[8, 9, 8, 10]), vec![vec![0, 2, 1, 3]]);
        // 24 short prompts and 6 long ones: two groups, sorted by length, every index once.
        let lengths: Vec<usize> = (0..30).map(|i| if i % 5 == 0 { 16 } else { 8 }).collect();
        let groups = length_groups(&lengths);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert!(groups[0].iter().all(|&i| lengths[i] == 8) && groups[1].iter().all(|&i| lengths[i] == 16));
        let mut all: Vec<usize> = groups.concat();
        all.sort();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        // Never more than MAX_GROUPS, and nothing lost on an empty batch.
        assert!(length_groups(&(1..=77).collect::<Vec<_>>()).len() <= super::MAX_GROUPS);
        assert_eq!(length_groups(&[]), vec![Vec::<usize>::new()]);
    }
}
