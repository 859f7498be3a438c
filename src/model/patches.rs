//! Patch-level embeddings for heat-maps, computed as ClearCLIP computes them (GitHub
//! `mc-lan/ClearCLIP`, `open_clip/transformer.py`, `custom_attn`): the vision tower runs as
//! usual up to its last block; that block's attention is replaced by one of four variants,
//! with or without its residual and MLP; every token then goes through `post_layernorm` and
//! the projection and is L2-normalised. A label's map is the cosine between each patch token
//! and the label's normalised text embedding.
//!
//! The ordinary image embedding comes from the same pass: the last block's queries, keys and
//! values are computed once, and its ordinary attention and MLP run for the class token alone,
//! so a map costs one extra `out_proj` (and MLP, with the residual) over the patch tokens.

use burn::tensor::Tensor;

use super::attention::{attention, Causality};
use super::block::HeadsQkv;
use super::vision::{VisionOutput, VisionTransformer};
use super::ModelInputError;

/// The attention of the last block for the patch tokens (ClearCLIP's `model_type`). `q`, `k`,
/// `v` are per head; `s = head_dim^−0.5` for every product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapAttention {
    /// `softmax(q kᵀ s) v`: the ordinary attention.
    Vanilla,
    /// `v` (identity attention).
    MaskClip,
    /// `(softmax(q qᵀ s) + softmax(k kᵀ s)) v` — a sum, as ClearCLIP's SCLIP.
    SClip,
    /// `softmax(q qᵀ s) v`.
    ClearClip,
}

/// One of ClearCLIP's dense-feature variants: an attention and whether the last block keeps
/// its residual connection and MLP (ClearCLIP's `ignore_residual = !residual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapVariant {
    pub attention: MapAttention,
    pub residual: bool,
}

impl MapVariant {
    /// ClearCLIP as published (and its demo): q·qᵀ attention, no residual, no MLP.
    pub const CLEARCLIP: Self = Self { attention: MapAttention::ClearClip, residual: false };
    pub const MASKCLIP: Self = Self { attention: MapAttention::MaskClip, residual: false };
    pub const SCLIP: Self = Self { attention: MapAttention::SClip, residual: false };
    /// Ordinary attention without the residual and MLP (ClearCLIP's `vanilla`; *not* CLIP's
    /// own patch tokens, those are `PLAIN`).
    pub const VANILLA: Self = Self { attention: MapAttention::Vanilla, residual: false };
    /// The unchanged last block: CLIP's own patch tokens.
    pub const PLAIN: Self = Self { attention: MapAttention::Vanilla, residual: true };

    /// The names users pick from: `clearclip`, `maskclip`, `sclip`, `vanilla`, `plain`;
    /// ClearCLIP's other three residual entries as `<attention>+residual`.
    pub fn parse(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        let (attention, residual) = match lower.strip_suffix("+residual") {
            Some(base) => (base, true),
            None if lower == "plain" => return Some(Self::PLAIN),
            None => (lower.as_str(), false),
        };
        let attention = match attention {
            "clearclip" => MapAttention::ClearClip,
            "maskclip" => MapAttention::MaskClip,
            "sclip" => MapAttention::SClip,
            "vanilla" => MapAttention::Vanilla,
            _ => return None,
        };
        Some(Self { attention, residual })
    }

    /// The name `parse` reads back.
    pub fn name(&self) -> String {
        let base = match self.attention {
            MapAttention::Vanilla if self.residual => return "plain".into(),
            MapAttention::Vanilla => "vanilla",
            MapAttention::MaskClip => "maskclip",
            MapAttention::SClip => "sclip",
            MapAttention::ClearClip => "clearclip",
        };
        if self.residual { format!("{base}+residual") } else { base.into() }
    }
}

impl Default for MapVariant {
    fn default() -> Self {
        Self::CLEARCLIP
    }
}

/// The image embedding and the patch embeddings of one variant, for a batch.
pub struct PatchOutput {
    /// The ordinary image embedding (exactly `VisionTransformer::forward`'s).
    pub image: VisionOutput,
    /// `[batch, rows·cols, projection_dim]`, each token L2-normalised; row-major over the grid.
    pub patch_embeds: Tensor<3>,
    pub grid: [usize; 2],
}

impl VisionTransformer {
    /// One pass giving the image embedding and the patch embeddings of `variant`.
    pub fn forward_with_patches(&self, pixels: Tensor<4>, variant: MapVariant) -> Result<PatchOutput, ModelInputError> {
        let x = self.tokens(pixels)?;
        let [batch, tokens, width] = x.dims();
        let blocks = self.transformer.blocks();
        let last = blocks.last().ok_or(ModelInputError::NoBlocks)?;
        let h = self.transformer.forward_first(x, blocks.len() - 1, false);
        let HeadsQkv { q, k, v } = last.heads_qkv(h.clone());
        let ordinary = &Causality::Full;

        // The class token through the ordinary last block: the image embedding.
        let cls_context = attention(q.clone().narrow(2, 0, 1), k.clone(), v.clone(), ordinary);
        let cls = last.feed_forward(h.clone().narrow(1, 0, 1) + last.out_projection(cls_context));
        let image = self.pool(cls.reshape([batch, width]));

        // Every token through the variant (`attention` scales by head_dim^−0.5).
        let context = match variant.attention {
            MapAttention::Vanilla => attention(q, k, v, ordinary),
            MapAttention::MaskClip => v,
            MapAttention::ClearClip => attention(q.clone(), q, v, ordinary),
            MapAttention::SClip => {
                attention(q.clone(), q, v.clone(), ordinary) + attention(k.clone(), k, v, ordinary)
            }
        };
        let mut out = last.out_projection(context);
        if variant.residual {
            out = last.feed_forward(h + out);
        }
        let patches = out.narrow(1, 1, tokens - 1);
        let projected = self.projection.forward(self.ln_post.forward(patches));
        let norm = projected.clone().powf_scalar(2.0).sum_dim(2).sqrt();
        Ok(PatchOutput { image, patch_embeds: projected / norm, grid: self.grid() })
    }
}
