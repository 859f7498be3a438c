//! CLIP in burn: backend-agnostic (the `Device` picks the backend), no I/O.

pub mod attention;
pub mod block;
pub mod config;
pub mod dense;
pub mod host_matrix;
pub mod norm;
pub mod packed;
pub mod patches;
pub mod text;
pub mod vision;

use burn::tensor::{Device, Tensor};

pub use dense::{Dense, EmbeddingTable, Placement};
pub use host_matrix::HostMatrix;
pub use config::{Activation, ClipConfig, TextConfig, TransformerConfig, VisionConfig};
pub use text::{TextOutput, TextTransformer, TextWeights};
pub use patches::{MapAttention, MapVariant, PatchOutput};
pub use vision::{VisionOutput, VisionTransformer, VisionWeights};

/// Input a tower cannot take. Checked before any tensor is built, so a caller's mistake is an
/// error and not a panic inside burn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelInputError {
    #[error("There is nothing to embed: the batch is empty.")]
    EmptyBatch,
    #[error("Expected images of shape {expected:?} (channels, height, width), got {found:?}.")]
    ImageShape { expected: [usize; 3], found: [usize; 3] },
    #[error("Expected {rows} rows of token ids of one length between 1 and {context}, with one pooled position each.")]
    TokenShape { rows: usize, context: usize },
    #[error("The pooled position {index} is past the end of its row ({len} tokens).")]
    PooledPosition { index: usize, len: usize },
    #[error("Token id {id} is outside the vocabulary of {vocab}.")]
    TokenId { id: u32, vocab: usize },
    #[error("This model's vision tower has no transformer blocks, so it has no patch map.")]
    NoBlocks,
}

/// Both towers and the learned temperature.
#[derive(Debug)]
pub struct Clip {
    pub vision: VisionTransformer,
    pub text: TextTransformer,
    /// `logit_scale` as stored (a log); logits use `exp(logit_scale)`.
    pub logit_scale: f32,
    pub config: ClipConfig,
}

/// All parameters of a CLIP model, on the host, in PyTorch orientation.
#[derive(Debug, Clone)]
pub struct ClipWeights {
    pub vision: VisionWeights,
    pub text: TextWeights,
    pub logit_scale: f32,
}

impl ClipWeights {
    /// The same weights with every int8 matrix turned into f32 (for devices that should not
    /// widen int8 weights on each forward pass, see `dense`).
    pub fn dequantise(self) -> Self {
        Self { vision: self.vision.dequantise(), text: self.text.dequantise(), logit_scale: self.logit_scale }
    }
}

impl Clip {
    /// Whether every block of both towers runs on host values (dense layers packed on the
    /// host: `ResidualAttentionBlock::forward_host`).
    pub fn blocks_run_on_host(&self) -> bool {
        [&self.vision.transformer, &self.text.transformer].iter().all(|t| t.blocks().iter().all(|b| b.runs_on_host()))
    }

    pub fn new(weights: ClipWeights, config: ClipConfig, device: &Device) -> Self {
        Self::placed(weights, config, &Placement::new(device))
    }

    pub fn placed(weights: ClipWeights, config: ClipConfig, at: &Placement) -> Self {
        Self {
            vision: VisionTransformer::new(weights.vision, &config.vision, config.projection_dim, at),
            text: TextTransformer::new(weights.text, &config.text, config.projection_dim, at),
            logit_scale: weights.logit_scale,
            config,
        }
    }
}

/// Divides each row by its L2 norm.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt();
    x / norm
}
