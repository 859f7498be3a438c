//! CLIP's vision tower: patchify → class token + positions → pre-LN → transformer →
//! post-LN on the class token → projection.

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

use super::block::{layer_norm_from, linear_from, tensor1, tensor2, transpose, BlockWeights, Transformer};
use super::config::VisionConfig;

/// Host-side vision parameters in PyTorch orientation.
#[derive(Debug, Clone)]
pub struct VisionWeights {
    /// Conv2d weight `[width, 3, patch, patch]` (no bias).
    pub patch_embedding: Vec<f32>,
    pub class_embedding: Vec<f32>,
    /// `[positions, width]`.
    pub position_embedding: Vec<f32>,
    pub ln_pre: (Vec<f32>, Vec<f32>),
    pub blocks: Vec<BlockWeights>,
    pub ln_post: (Vec<f32>, Vec<f32>),
    /// `[projection_dim, width]` (HF orientation).
    pub projection: Vec<f32>,
}

#[derive(Debug)]
pub struct VisionTransformer {
    /// The stride-`patch` convolution written as one matmul over flattened patches
    /// (`[3·patch·patch, width]`): same result, and it runs as a plain GEMM on every backend.
    patch_embedding: Linear,
    class_embedding: Tensor<3>,
    position_embedding: Tensor<3>,
    ln_pre: LayerNorm,
    transformer: Transformer,
    ln_post: LayerNorm,
    projection: Linear,
    config: VisionConfig,
}

/// Output of the image encoder for a batch.
pub struct VisionOutput {
    /// `post_layernorm(CLS)`, `[batch, width]`.
    pub pooled: Tensor<2>,
    /// Projected, not normalised, `[batch, projection_dim]`.
    pub embeds: Tensor<2>,
}

impl VisionTransformer {
    pub fn new(w: VisionWeights, config: &VisionConfig, projection_dim: usize, device: &Device) -> Self {
        let width = config.transformer.width;
        let patch_in = 3 * config.patch_size * config.patch_size;
        let eps = config.transformer.layer_norm_eps;
        let norm = |(g, b): (Vec<f32>, Vec<f32>)| layer_norm_from(tensor1(g, device), tensor1(b, device), eps);
        Self {
            patch_embedding: linear_from(
                tensor2(transpose(&w.patch_embedding, width, patch_in), [patch_in, width], device),
                None,
            ),
            class_embedding: tensor1(w.class_embedding, device).reshape([1, 1, width]),
            position_embedding: tensor2(w.position_embedding, [config.num_positions(), width], device)
                .reshape([1, config.num_positions(), width]),
            ln_pre: norm(w.ln_pre),
            transformer: Transformer::new(w.blocks, &config.transformer, device),
            ln_post: norm(w.ln_post),
            projection: linear_from(
                tensor2(transpose(&w.projection, projection_dim, width), [width, projection_dim], device),
                None,
            ),
            config: config.clone(),
        }
    }

    /// `pixels`: `[batch, 3, image_size, image_size]`, already normalised.
    pub fn forward(&self, pixels: Tensor<4>) -> VisionOutput {
        let [batch, channels, height, width_px] = pixels.dims();
        let p = self.config.patch_size;
        let (gh, gw) = (height / p, width_px / p);
        let width = self.config.transformer.width;
        // [b, c, gh, p, gw, p] → [b, gh, gw, c, p, p]: the flattening order of a Conv2d weight.
        let patches = pixels
            .reshape([batch, channels, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([batch, gh * gw, channels * p * p]);
        let tokens = self.patch_embedding.forward(patches);
        let class = self.class_embedding.clone().expand([batch, 1, width]);
        let x = Tensor::cat(vec![class, tokens], 1) + self.position_embedding.clone();
        let x = self.transformer.forward(self.ln_pre.forward(x), false);
        let cls = x.narrow(1, 0, 1).reshape([batch, width]);
        let pooled = self.ln_post.forward(cls);
        let embeds = self.projection.forward(pooled.clone());
        VisionOutput { pooled, embeds }
    }
}
