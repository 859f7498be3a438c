//! CLIP's vision tower: patchify → class token + positions → pre-LN → transformer →
//! post-LN on the class token → projection.

use burn::tensor::Tensor;

use super::norm::Norm;
use super::block::{layer_norm_from, tensor1, tensor2, BlockWeights, Transformer};
use super::config::VisionConfig;
use super::ModelInputError;
use super::dense::{Dense, Placement};
use super::host_matrix::HostMatrix;

/// Host-side vision parameters in PyTorch orientation.
#[derive(Debug, Clone)]
pub struct VisionWeights {
    /// Conv2d weight `[width, 3, patch, patch]` (no bias), as a `[width, 3·patch·patch]` matrix.
    pub patch_embedding: HostMatrix,
    pub class_embedding: Vec<f32>,
    /// `[positions, width]`.
    pub position_embedding: Vec<f32>,
    pub ln_pre: (Vec<f32>, Vec<f32>),
    pub blocks: Vec<BlockWeights>,
    pub ln_post: (Vec<f32>, Vec<f32>),
    /// `[projection_dim, width]` (HF orientation).
    pub projection: HostMatrix,
}

impl VisionWeights {
    /// The same weights with f32 matrices.
    pub fn dequantise(self) -> Self {
        Self {
            patch_embedding: self.patch_embedding.dequantise(),
            blocks: self.blocks.into_iter().map(BlockWeights::dequantise).collect(),
            projection: self.projection.dequantise(),
            ..self
        }
    }
}

#[derive(Debug)]
pub struct VisionTransformer {
    /// The stride-`patch` convolution written as one matmul over flattened patches
    /// (weight `[width, 3·patch·patch]`): same result, and it runs as a plain GEMM on every backend.
    pub(super) patch_embedding: Dense,
    pub(super) class_embedding: Tensor<3>,
    pub(super) position_embedding: Tensor<3>,
    pub(super) ln_pre: Norm,
    pub(super) transformer: Transformer,
    pub(super) ln_post: Norm,
    pub(super) projection: Dense,
    pub(super) config: VisionConfig,
}

/// Output of the image encoder for a batch.
pub struct VisionOutput {
    /// `post_layernorm(CLS)`, `[batch, width]`.
    pub pooled: Tensor<2>,
    /// Projected, not normalised, `[batch, projection_dim]`.
    pub embeds: Tensor<2>,
}

impl VisionTransformer {
    pub fn new(w: VisionWeights, config: &VisionConfig, projection_dim: usize, at: &Placement) -> Self {
        let device = &at.device;
        let width = config.transformer.width;
        let eps = config.transformer.layer_norm_eps;
        let norm = |(g, b): (Vec<f32>, Vec<f32>)| layer_norm_from(tensor1(g, device), tensor1(b, device), eps);
        Self {
            patch_embedding: Dense::new(w.patch_embedding, width, None, at),
            class_embedding: tensor1(w.class_embedding, device).reshape([1, 1, width]),
            position_embedding: tensor2(w.position_embedding, [config.num_positions(), width], device)
                .reshape([1, config.num_positions(), width]),
            ln_pre: norm(w.ln_pre),
            transformer: Transformer::new(w.blocks, &config.transformer, at),
            ln_post: norm(w.ln_post),
            projection: Dense::new(w.projection, projection_dim, None, at),
            config: config.clone(),
        }
    }

    /// `pixels`: `[batch ≥ 1, 3, image_size, image_size]`, already normalised; any other
    /// shape is an error (not a panic inside burn).
    pub fn forward(&self, pixels: Tensor<4>) -> Result<VisionOutput, ModelInputError> {
        let x = self.tokens(pixels)?;
        let batch = x.dims()[0];
        // Only the class token goes through the last block's MLP (`forward_pooled`).
        let cls = self.transformer.forward_pooled(x, &vec![0; batch], false);
        Ok(self.pool(cls))
    }

    /// The transformer's input: patches embedded, class token, positions, `ln_pre`;
    /// `[batch, 1 + rows·cols, width]`.
    pub(super) fn tokens(&self, pixels: Tensor<4>) -> Result<Tensor<3>, ModelInputError> {
        let [batch, channels, height, width_px] = pixels.dims();
        let size = self.config.image_size;
        if batch == 0 {
            return Err(ModelInputError::EmptyBatch);
        }
        if [channels, height, width_px] != [3, size, size] {
            return Err(ModelInputError::ImageShape { expected: [3, size, size], found: [channels, height, width_px] });
        }
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
        Ok(self.ln_pre.forward(x))
    }

    /// The class token after the last block → `post_layernorm` → projection.
    pub(super) fn pool(&self, cls: Tensor<2>) -> VisionOutput {
        let pooled = self.ln_post.forward(cls);
        let embeds = self.projection.forward(pooled.clone());
        VisionOutput { pooled, embeds }
    }

    /// The patch grid, `[rows, cols]` (row-major, as the patch convolution flattens it).
    pub fn grid(&self) -> [usize; 2] {
        let cells = self.config.image_size / self.config.patch_size;
        [cells, cells]
    }
}
