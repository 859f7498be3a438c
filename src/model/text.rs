//! CLIP's text tower: token + position embeddings → causal transformer → final LN →
//! the row of the first end-of-text token → projection.

use burn::tensor::{Int, Tensor, TensorData};

use super::norm::Norm;
use super::block::{layer_norm_from, tensor1, tensor2, BlockWeights, Transformer};
use super::config::TextConfig;
use super::ModelInputError;
use super::dense::{Dense, EmbeddingTable, Placement};
use super::host_matrix::HostMatrix;

/// Host-side text parameters in PyTorch orientation.
#[derive(Debug, Clone)]
pub struct TextWeights {
    /// `[vocab, width]`.
    pub token_embedding: HostMatrix,
    /// `[context_length, width]`.
    pub position_embedding: Vec<f32>,
    pub blocks: Vec<BlockWeights>,
    pub ln_final: (Vec<f32>, Vec<f32>),
    /// `[projection_dim, width]` (HF orientation).
    pub projection: HostMatrix,
}

impl TextWeights {
    /// The same weights with f32 matrices.
    pub fn dequantise(self) -> Self {
        Self {
            token_embedding: self.token_embedding.dequantise(),
            blocks: self.blocks.into_iter().map(BlockWeights::dequantise).collect(),
            projection: self.projection.dequantise(),
            ..self
        }
    }
}

#[derive(Debug)]
pub struct TextTransformer {
    token_embedding: EmbeddingTable,
    position_embedding: Tensor<2>,
    pub(super) transformer: Transformer,
    ln_final: Norm,
    projection: Dense,
    config: TextConfig,
}

pub struct TextOutput {
    /// `final_layer_norm` at the end-of-text token, `[batch, width]`.
    pub pooled: Tensor<2>,
    /// Projected, not normalised, `[batch, projection_dim]`.
    pub embeds: Tensor<2>,
}

impl TextTransformer {
    pub fn new(w: TextWeights, config: &TextConfig, projection_dim: usize, at: &Placement) -> Self {
        let device = &at.device;
        let width = config.transformer.width;
        Self {
            token_embedding: EmbeddingTable::new(w.token_embedding, config.vocab_size, at),
            position_embedding: tensor2(w.position_embedding, [config.context_length, width], device),
            transformer: Transformer::new(w.blocks, &config.transformer, at),
            ln_final: layer_norm_from(
                tensor1(w.ln_final.0, device),
                tensor1(w.ln_final.1, device),
                config.transformer.layer_norm_eps,
            ),
            projection: Dense::new(w.projection, projection_dim, None, at),
            config: config.clone(),
        }
    }

    pub fn context_length(&self) -> usize {
        self.config.context_length
    }

    /// `ids`: one row per text, all of the same length `L ≤ context_length` (the caller may cut
    /// the padded 77 down to the longest end-of-text: exact, since attention is causal and
    /// nothing after the pooled token can influence it). `eot`: the pooled position per row.
    /// Inputs that do not fit (no rows, rows of different or too great length, an `eot` past
    /// its row, a token id outside the vocabulary) are an error, not a panic inside burn.
    pub fn forward(&self, ids: &[Vec<u32>], eot: &[usize]) -> Result<TextOutput, ModelInputError> {
        let device = self.position_embedding.device();
        let batch = ids.len();
        let Some(len) = ids.first().map(Vec::len) else {
            return Err(ModelInputError::EmptyBatch);
        };
        let context = self.config.context_length;
        if len == 0 || len > context || ids.iter().any(|row| row.len() != len) || eot.len() != batch {
            return Err(ModelInputError::TokenShape { rows: batch, context });
        }
        if let Some(&index) = eot.iter().find(|&&e| e >= len) {
            return Err(ModelInputError::PooledPosition { index, len });
        }
        let vocab = self.config.vocab_size;
        if let Some(&id) = ids.iter().flatten().find(|&&t| t as usize >= vocab) {
            return Err(ModelInputError::TokenId { id, vocab });
        }
        let width = self.config.transformer.width;
        let flat: Vec<i64> = ids.iter().flat_map(|row| row.iter().map(|&t| t as i64)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [batch, len]), &device);
        let positions = self.position_embedding.clone().narrow(0, 0, len).reshape([1, len, width]);
        let x = self.token_embedding.forward(ids) + positions;
        // Only the end-of-text token goes through the last block's MLP (`forward_pooled`).
        let pooled = self.ln_final.forward(self.transformer.forward_pooled(x, eot, true));
        let embeds = self.projection.forward(pooled.clone());
        Ok(TextOutput { pooled, embeds })
    }
}
