//! The pre-LayerNorm transformer block shared by both CLIP towers:
//! `h += attn(ln_1(h)); h += mlp(ln_2(h))`.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor, TensorData};

use super::attention::{attention, Causality};
use super::config::TransformerConfig;
use super::dense::{Dense, Placement};
use super::host_matrix::HostMatrix;

pub fn layer_norm_from(gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> LayerNorm {
    let mut norm = LayerNormConfig::new(gamma.dims()[0]).with_epsilon(eps).init(&gamma.device());
    norm.gamma = Param::from_tensor(gamma);
    norm.beta = Some(Param::from_tensor(beta));
    norm
}

/// Host-side parameters of one block, in the checkpoint's PyTorch orientation
/// (Linear weights `[out, in]`, q/k/v fused as `[3·width, width]` in that order).
#[derive(Debug, Clone)]
pub struct BlockWeights {
    pub ln_1: (Vec<f32>, Vec<f32>),
    pub qkv_weight: HostMatrix,
    pub qkv_bias: Vec<f32>,
    pub out_weight: HostMatrix,
    pub out_bias: Vec<f32>,
    pub ln_2: (Vec<f32>, Vec<f32>),
    pub fc1_weight: HostMatrix,
    pub fc1_bias: Vec<f32>,
    pub fc2_weight: HostMatrix,
    pub fc2_bias: Vec<f32>,
}

pub fn tensor1(data: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
}

pub fn tensor2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

impl BlockWeights {
    /// The same block with f32 matrices.
    pub fn dequantise(self) -> Self {
        Self {
            qkv_weight: self.qkv_weight.dequantise(),
            out_weight: self.out_weight.dequantise(),
            fc1_weight: self.fc1_weight.dequantise(),
            fc2_weight: self.fc2_weight.dequantise(),
            ..self
        }
    }
}

/// `[out, in]` PyTorch weight → a dense layer computing `x Wᵀ + b`.
fn dense(weight: HostMatrix, bias: Vec<f32>, at: &Placement) -> Dense {
    Dense::new(weight, bias.len(), Some(bias), at)
}

#[derive(Debug)]
pub struct ResidualAttentionBlock {
    ln_1: LayerNorm,
    /// q, k and v in one matmul: `[width, 3·width]`.
    qkv: Dense,
    out_proj: Dense,
    ln_2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    heads: usize,
}

impl ResidualAttentionBlock {
    pub fn new(w: BlockWeights, config: &TransformerConfig, at: &Placement) -> Self {
        let device = &at.device;
        let eps = config.layer_norm_eps;
        let norm = |(g, b): (Vec<f32>, Vec<f32>)| layer_norm_from(tensor1(g, device), tensor1(b, device), eps);
        Self {
            ln_1: norm(w.ln_1),
            qkv: dense(w.qkv_weight, w.qkv_bias, at),
            out_proj: dense(w.out_weight, w.out_bias, at),
            ln_2: norm(w.ln_2),
            fc1: dense(w.fc1_weight, w.fc1_bias, at).with_activation(config.activation),
            fc2: dense(w.fc2_weight, w.fc2_bias, at),
            heads: config.heads,
        }
    }

    /// `x`: `[batch, tokens, width]`. `causality` may mask attention to later tokens (text tower).
    pub fn forward(&self, x: Tensor<3>, causality: &Causality) -> Tensor<3> {
        let heads = self.heads_qkv(x.clone());
        let context = attention(heads.q, heads.k, heads.v, causality);
        self.feed_forward(x + self.out_projection(context))
    }

    /// `ln_1(x)` projected to queries, keys and values, split into heads (computed once and
    /// shared when the patch maps reuse the last block's attention, see `patches`).
    pub fn heads_qkv(&self, x: Tensor<3>) -> HeadsQkv {
        let [batch, tokens, width] = x.dims();
        let head_dim = width / self.heads;
        let qkv = self.qkv.forward(self.ln_1.forward(x));
        if qkv.device() == Device::flex() {
            // [b, t, 3, heads, head_dim] → [3, b, heads, t, head_dim], each part copied
            // contiguous for the CPU backend's attention kernel.
            let qkv = qkv.reshape([batch, tokens, 3, self.heads, head_dim]).permute([2, 0, 3, 1, 4]);
            let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([batch, self.heads, tokens, head_dim]);
            return HeadsQkv { q: part(0), k: part(1), v: part(2) };
        }
        // [b, t, 3·heads, head_dim] → [b, 3·heads, t, head_dim], q, k and v as views of it:
        // no reshape of a permuted tensor to fewer dimensions, where burn's kernel fusion stops
        // (GPU, #18).
        let qkv = qkv.reshape([batch, tokens, 3 * self.heads, head_dim]).swap_dims(1, 2);
        let part = |i: usize| qkv.clone().narrow(1, i * self.heads, self.heads);
        HeadsQkv { q: part(0), k: part(1), v: part(2) }
    }

    /// Per-head attention output `[batch, heads, tokens, head_dim]` → heads concatenated in
    /// order → `out_proj`: `[batch, tokens, width]`.
    pub fn out_projection(&self, context: Tensor<4>) -> Tensor<3> {
        let [batch, heads, tokens, head_dim] = context.dims();
        self.out_proj.forward(context.swap_dims(1, 2).reshape([batch, tokens, heads * head_dim]))
    }

    /// The block's second half: `y + mlp(ln_2(y))`.
    pub fn feed_forward(&self, y: Tensor<3>) -> Tensor<3> {
        // fc1 applies the activation (fused into the matmul where it can be).
        let h = self.fc1.forward(self.ln_2.forward(y.clone()));
        y + self.fc2.forward(h)
    }
}

/// One block's queries, keys and values, each `[batch, heads, tokens, head_dim]`.
pub struct HeadsQkv {
    pub q: Tensor<4>,
    pub k: Tensor<4>,
    pub v: Tensor<4>,
}

/// A stack of blocks.
#[derive(Debug)]
pub struct Transformer {
    blocks: Vec<ResidualAttentionBlock>,
}

impl Transformer {
    pub fn new(blocks: Vec<BlockWeights>, config: &TransformerConfig, at: &Placement) -> Self {
        Self { blocks: blocks.into_iter().map(|b| ResidualAttentionBlock::new(b, config, at)).collect() }
    }

    /// `causal`: each token attends to itself and earlier tokens only (text tower).
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        self.forward_first(x, self.blocks.len(), causal)
    }

    /// The first `n` blocks only.
    pub fn forward_first(&self, mut x: Tensor<3>, n: usize, causal: bool) -> Tensor<3> {
        // The mask is made once for every block.
        let causality = if causal { Causality::causal(x.dims()[1], &x.device()) } else { Causality::Full };
        for block in &self.blocks[..n.min(self.blocks.len())] {
            x = block.forward(x, &causality);
        }
        x
    }

    pub fn blocks(&self) -> &[ResidualAttentionBlock] {
        &self.blocks
    }
}
