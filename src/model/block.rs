//! The pre-LayerNorm transformer block shared by both CLIP towers:
//! `h += attn(ln_1(h)); h += mlp(ln_2(h))`.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::attention::{attention, attention_with_bias, Causality};
use super::config::TransformerConfig;
use super::dense::{host_values, Dense, Placement};
use super::host_matrix::HostMatrix;
use super::norm::{fold_into, Norm};

pub fn layer_norm_from(gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Norm {
    Norm::new(gamma, beta, eps)
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

/// A LayerNorm's parameters on the host, for blocks that run on the host (`host_path`).
#[derive(Debug)]
struct HostNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    epsilon: f32,
}

impl HostNorm {
    /// Each row of `x` (`[rows, gamma.len()]`) normalised: `γ·(x − mean)/√(var + ε) + β`.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let width = self.gamma.len();
        let mut out = vec![0.0; x.len()];
        for (row, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let mean = row.iter().sum::<f32>() / width as f32;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            let rstd = 1.0 / (variance + self.epsilon).sqrt();
            for (((o, &v), &g), &b) in out.iter_mut().zip(row).zip(&self.gamma).zip(&self.beta) {
                *o = (v - mean) * rstd * g + b;
            }
        }
        out
    }
}

#[derive(Debug)]
pub struct ResidualAttentionBlock {
    /// Where every dense layer is packed on the host (burn's CPU backend in WebAssembly), the
    /// block runs there but for the attention itself (`forward_host`); these are its norms.
    host_path: Option<[HostNorm; 2]>,
    ln_1: Norm,
    /// q, k and v in one matmul.
    qkv: Qkv,
    out_proj: Dense,
    ln_2: Norm,
    fc1: Dense,
    fc2: Dense,
    heads: usize,
}

/// The q, k and v projection of a block.
#[derive(Debug)]
enum Qkv {
    /// A dense layer `[width, 3·width]`; its output is split into heads by views.
    Dense(Dense),
    /// On the GPU, with f32 weights: one batched matmul over the heads, `weight`
    /// `[3·heads, width, head_dim]` (each head's columns of the dense weight) and `bias`
    /// `[1, 3·heads, 1, head_dim]`, whose output `[3·heads, batch·tokens, head_dim]` is
    /// already in a layout the attention's matmuls read. Split by views instead, q, k and v
    /// were permuted views that burn's matmul copied twice each before multiplying (#18).
    PerHead { weight: Tensor<3>, bias: Tensor<4> },
}

impl Qkv {
    /// `per_head` where the device is a GPU (`PerHead`'s reason is the GPU's matmul).
    fn new(weight: HostMatrix, bias: Vec<f32>, heads: usize, at: &Placement, per_head: bool) -> Self {
        match weight {
            HostMatrix::F32(w) if per_head => {
                let outputs = bias.len();
                let (inputs, head_dim) = (w.len() / outputs, outputs / 3 / heads);
                // out[j][p][d] = w[j·head_dim + d][p]
                let mut per_head = vec![0f32; w.len()];
                for (o, row) in w.chunks_exact(inputs).enumerate() {
                    let (j, d) = (o / head_dim, o % head_dim);
                    for (p, &value) in row.iter().enumerate() {
                        per_head[(j * inputs + p) * head_dim + d] = value;
                    }
                }
                let weight = Tensor::from_data(TensorData::new(per_head, [3 * heads, inputs, head_dim]), &at.device);
                let bias = Tensor::from_data(TensorData::new(bias, [1, 3 * heads, 1, head_dim]), &at.device);
                Qkv::PerHead { weight, bias }
            }
            weight => Qkv::Dense(dense(weight, bias, at)),
        }
    }

    /// `norm(x)` (`x`: `[batch, tokens, width]`) → q, k and v, each `[batch, heads, tokens, head_dim]`.
    fn heads(&self, x: Tensor<3>, norm: &Norm, heads: usize) -> HeadsQkv {
        match self {
            Qkv::Dense(dense) => split_heads(dense.forward(norm.forward(x)), heads),
            Qkv::PerHead { .. } => {
                let [batch, tokens, _] = x.dims();
                self.heads_of_rows(x, batch, tokens, norm, heads)
            }
        }
    }

    /// `heads` for `x` of any shape `[…, …, width]` holding `batch·tokens` rows, batch-major.
    fn heads_of_rows(&self, x: Tensor<3>, batch: usize, tokens: usize, norm: &Norm, heads: usize) -> HeadsQkv {
        match self {
            Qkv::Dense(_) => {
                let width = x.dims()[2];
                self.heads(x.reshape([batch, tokens, width]), norm, heads)
            }
            Qkv::PerHead { weight, bias } => {
                // Every token as a row of one matmul per head, [1, 1, batch·tokens, width] @
                // [1, 3·heads, width, head_dim] (with the batch as a matmul dimension, 30 prompts
                // of 8 tokens were 30 × 3·heads matmuls of 8 rows: 4× slower on SwiftShader),
                // then [3·heads, batch, tokens, head_dim] seen as [batch, 3·heads, …]: a batch
                // order burn's matmul reads as it is.
                let width = x.dims()[2];
                let [_, three_heads, _, head_dim] = bias.dims();
                // Rows made before the norm: a reshape between the norm's last kernel and the
                // matmul cost a kernel of its own.
                let rows = norm.forward(x.reshape([1, 1, batch * tokens, width]));
                let qkv = rows.matmul(weight.clone().unsqueeze::<4>()) + bias.clone();
                let qkv = qkv.reshape([three_heads, batch, tokens, head_dim]).swap_dims(0, 1);
                let part = |i: usize| qkv.clone().narrow(1, i * heads, heads);
                HeadsQkv { q: part(0), k: part(1), v: part(2) }
            }
        }
    }

    fn dense(&self) -> Option<&Dense> {
        match self {
            Qkv::Dense(dense) => Some(dense),
            Qkv::PerHead { .. } => None,
        }
    }
}

impl ResidualAttentionBlock {
    pub fn new(w: BlockWeights, config: &TransformerConfig, at: &Placement) -> Self {
        let device = &at.device;
        let eps = config.layer_norm_eps;
        let norm = |(g, b): &(Vec<f32>, Vec<f32>)| layer_norm_from(tensor1(g.clone(), device), tensor1(b.clone(), device), eps);
        let host_norm = |(gamma, beta): (Vec<f32>, Vec<f32>)| HostNorm { gamma, beta, epsilon: eps as f32 };
        let on_gpu = *device != Device::flex();
        let mut w = w;
        // On the GPU, each norm's γ and β go into the f32 layer that reads it (`fold_into`).
        let fold = |ln: &(Vec<f32>, Vec<f32>), weight: &mut HostMatrix, bias: &mut Vec<f32>| match weight {
            HostMatrix::F32(matrix) if on_gpu => {
                fold_into(&ln.0, &ln.1, matrix, bias);
                Norm::without_affine(ln.0.len(), eps, device)
            }
            _ => norm(ln),
        };
        let ln_1 = fold(&w.ln_1, &mut w.qkv_weight, &mut w.qkv_bias);
        let ln_2 = fold(&w.ln_2, &mut w.fc1_weight, &mut w.fc1_bias);
        let (qkv, out_proj) = (Qkv::new(w.qkv_weight, w.qkv_bias, config.heads, at, on_gpu), dense(w.out_weight, w.out_bias, at));
        let fc1 = dense(w.fc1_weight, w.fc1_bias, at).with_activation(config.activation);
        let fc2 = dense(w.fc2_weight, w.fc2_bias, at);
        let on_host = qkv.dense().is_some_and(Dense::runs_on_host) && [&out_proj, &fc1, &fc2].iter().all(|d| d.runs_on_host());
        Self {
            host_path: on_host.then(|| [host_norm(w.ln_1), host_norm(w.ln_2)]),
            ln_1,
            qkv,
            out_proj,
            ln_2,
            fc1,
            fc2,
            heads: config.heads,
        }
    }

    /// The whole block on host values `x` (`[batch·tokens, width]`), for a block whose dense
    /// layers are packed on the host: the layer norms, the dense layers (bias and activation in
    /// their kernel) and both residual sums stay on the host, with no tensor made between them;
    /// only the attention runs as a tensor op (burn's CPU backend's one-pass kernel, per batch
    /// and head). Any other block runs through tensors.
    pub fn forward_host(&self, x: &[f32], batch: usize, tokens: usize, causality: &Causality, device: &Device) -> Vec<f32> {
        self.try_forward_host(x, batch, tokens, causality, device).unwrap_or_else(|| {
            // Not a host block: the same through tensors.
            let width = x.len() / (batch * tokens).max(1);
            let x = Tensor::from_data(TensorData::new(x.to_vec(), [batch, tokens, width]), device);
            host_values(self.forward(x, causality).reshape([batch * tokens, width]))
        })
    }

    fn try_forward_host(&self, x: &[f32], batch: usize, tokens: usize, causality: &Causality, device: &Device) -> Option<Vec<f32>> {
        let [ln_1, ln_2] = self.host_path.as_ref()?;
        let rows = batch * tokens;
        let width = ln_1.gamma.len();
        let qkv = self.qkv.dense()?.forward_host(&ln_1.apply(x), rows)?;
        let heads = split_heads(Tensor::from_data(TensorData::new(qkv, [batch, tokens, 3 * width]), device), self.heads);
        let context = attention(heads.q, heads.k, heads.v, causality);
        let context = host_values(context.swap_dims(1, 2).reshape([rows, width]));
        let mut y = self.out_proj.forward_host(&context, rows)?;
        y.iter_mut().zip(x).for_each(|(y, x)| *y += x);
        let mut out = self.fc2.forward_host(&self.fc1.forward_host(&ln_2.apply(&y), rows)?, rows)?;
        out.iter_mut().zip(&y).for_each(|(o, y)| *o += y);
        Some(out)
    }

    /// Whether `forward_host` runs this block.
    pub fn runs_on_host(&self) -> bool {
        self.host_path.is_some()
    }

    /// `x`: `[batch, tokens, width]`. `causality` may mask attention to later tokens (text tower).
    pub fn forward(&self, x: Tensor<3>, causality: &Causality) -> Tensor<3> {
        let [batch, tokens, width] = x.dims();
        if batch > 1 && matches!(self.qkv, Qkv::PerHead { .. }) {
            // On the GPU the block runs on the tokens as rows, `[1, batch·tokens, width]`, the
            // shape of the dense layers' matmuls: kernel fusion takes a matmul's bias,
            // activation and residual sum into its kernel, but not past a reshape of its
            // output to `[batch, tokens, …]`, so each dense layer kept a kernel of its own for
            // them at batch > 1 (#18). (At batch 1 both shapes are the same.)
            let rows = x.reshape([1, batch * tokens, width]);
            let HeadsQkv { q, k, v } = self.qkv.heads_of_rows(rows.clone(), batch, tokens, &self.ln_1, self.heads);
            let context = attention(q, k, v, causality);
            let [_, heads, _, head_dim] = context.dims();
            let context = context.swap_dims(1, 2).reshape([1, batch * tokens, heads * head_dim]);
            let y = rows + self.out_proj.forward(context);
            return self.feed_forward(y).reshape([batch, tokens, width]);
        }
        let heads = self.heads_qkv(x.clone());
        let context = attention(heads.q, heads.k, heads.v, causality);
        self.feed_forward(x + self.out_projection(context))
    }

    /// The block's output at one token per batch element only: `pooled[b]` is the token of
    /// element `b` (the class token, or the end-of-text token); `[batch, width]`. Keys and
    /// values are computed for every token, the query, `out_proj` and the MLP (three quarters
    /// of a block's work) for the pooled token alone. With `causal` the pooled token sees
    /// itself and earlier tokens only, as in `forward`.
    pub fn forward_pooled(&self, x: Tensor<3>, pooled: &[usize], causal: bool) -> Tensor<2> {
        let [batch, tokens, width] = x.dims();
        let device = x.device();
        let HeadsQkv { q, k, v } = self.heads_qkv(x.clone());
        let [_, heads, _, head_dim] = q.dims();
        let rows: Vec<i64> = pooled.iter().enumerate().map(|(b, &t)| (b * tokens + t) as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [batch]), &device);
        let select = |t: Tensor<3>| t.reshape([batch * tokens, width]).select(0, rows.clone());
        // One query token, so `[batch, heads, 1, head_dim]` is a plain reshape: a swap_dims view
        // here would give the size-1 axis a stride that fusion reads as a permuted layout and
        // the score matmul would fall back to an unfused kernel on the GPU.
        let q = select(q.swap_dims(1, 2).reshape([batch, tokens, width])).reshape([batch, heads, 1, head_dim]);
        // Keys after the pooled token are hidden from it, as the causal mask hides them.
        let bias = causal.then(|| {
            let bias: Vec<f32> = pooled
                .iter()
                .flat_map(|&t| (0..tokens).map(move |j| if j > t { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            Tensor::<4>::from_data(TensorData::new(bias, [batch, 1, 1, tokens]), &device)
        });
        let context = attention_with_bias(q, k, v, bias);
        let y = select(x).reshape([batch, 1, width]) + self.out_projection(context);
        self.feed_forward(y).reshape([batch, width])
    }

    /// `ln_1(x)` projected to queries, keys and values, split into heads (computed once and
    /// shared when the patch maps reuse the last block's attention, see `patches`).
    pub fn heads_qkv(&self, x: Tensor<3>) -> HeadsQkv {
        self.qkv.heads(x, &self.ln_1, self.heads)
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

/// `[batch, tokens, 3·width]` (q, k, v) → each `[batch, heads, tokens, head_dim]`.
fn split_heads(qkv: Tensor<3>, heads: usize) -> HeadsQkv {
    let [batch, tokens, width3] = qkv.dims();
    let head_dim = width3 / 3 / heads;
    if qkv.device() == Device::flex() {
        // [b, t, 3, heads, head_dim] → [3, b, heads, t, head_dim], each part copied
        // contiguous for the CPU backend's attention kernel.
        let qkv = qkv.reshape([batch, tokens, 3, heads, head_dim]).permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([batch, heads, tokens, head_dim]);
        return HeadsQkv { q: part(0), k: part(1), v: part(2) };
    }
    // [b, t, 3·heads, head_dim] → [b, 3·heads, t, head_dim], q, k and v as views of it:
    // no reshape of a permuted tensor to fewer dimensions, where burn's kernel fusion stops
    // (GPU, #18).
    let qkv = qkv.reshape([batch, tokens, 3 * heads, head_dim]).swap_dims(1, 2);
    let part = |i: usize| qkv.clone().narrow(1, i * heads, heads);
    HeadsQkv { q: part(0), k: part(1), v: part(2) }
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
        let blocks = &self.blocks[..n.min(self.blocks.len())];
        let [batch, tokens, width] = x.dims();
        let device = x.device();
        // The mask is made once for every block.
        let causality = if causal { Causality::causal(tokens, &device) } else { Causality::Full };
        if !blocks.is_empty() && blocks.iter().all(ResidualAttentionBlock::runs_on_host) {
            // Dense layers packed on the host: the blocks pass host values from one to the next.
            let mut h = host_values(x.reshape([batch * tokens, width]));
            for block in blocks {
                h = block.forward_host(&h, batch, tokens, &causality, &device);
            }
            return Tensor::from_data(TensorData::new(h, [batch, tokens, width]), &device);
        }
        for block in blocks {
            x = block.forward(x, &causality);
        }
        x
    }

    /// Every block, keeping after the last one only the token `pooled[b]` of each batch
    /// element (`ResidualAttentionBlock::forward_pooled`): `[batch, width]`. What both towers
    /// pool; the other tokens' last-block MLP is never needed.
    pub fn forward_pooled(&self, x: Tensor<3>, pooled: &[usize], causal: bool) -> Tensor<2> {
        let [batch, tokens, width] = x.dims();
        match self.blocks.last() {
            Some(last) => last.forward_pooled(self.forward_first(x, self.blocks.len() - 1, causal), pooled, causal),
            None => {
                let rows: Vec<i64> = pooled.iter().enumerate().map(|(b, &t)| (b * tokens + t) as i64).collect();
                let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [batch]), &x.device());
                x.reshape([batch * tokens, width]).select(0, rows)
            }
        }
    }

    pub fn blocks(&self) -> &[ResidualAttentionBlock] {
        &self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// A dense layer after a norm equals the same layer with the norm's γ and β folded in,
    /// after the norm without them (what the blocks do on the GPU).
    #[test]
    fn folded_norm_gives_the_same_projection() {
        let device = Device::flex();
        let (width, outputs) = (12, 16);
        let (gamma, beta) = (values(width, 1.0), values(width, 2.0).iter().map(|v| v - 1.0).collect::<Vec<_>>());
        let weight: Vec<f32> = (0..outputs * width).map(|i| (i as f32 * 0.29).sin()).collect();
        let bias = values(outputs, 3.0);
        let at = Placement { device: device.clone(), column_blocks: 1, packed_matmul: false, largest_tensor: None };
        let x = Tensor::<3>::random([2, 5, width], Distribution::Normal(0.5, 2.0), &device);
        let norm = Norm::new(tensor1(gamma.clone(), &device), tensor1(beta.clone(), &device), 1e-5);
        let expected = dense(HostMatrix::F32(weight.clone()), bias.clone(), &at).forward(norm.forward(x.clone()));
        let (mut folded_weight, mut folded_bias) = (weight, bias);
        fold_into(&gamma, &beta, &mut folded_weight, &mut folded_bias);
        let plain = Norm::without_affine(width, 1e-5, &device);
        let got = dense(HostMatrix::F32(folded_weight), folded_bias, &at).forward(plain.forward(x));
        let diff: f32 = (got - expected.clone()).abs().max().into_scalar();
        let size: f32 = expected.abs().max().into_scalar();
        assert!(diff < 1e-5 * (1.0 + size), "largest difference {diff} (outputs up to {size})");
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| 1.0 + 0.3 * (i as f32 * 0.37 + seed).sin()).collect()
    }

    /// The GPU's per-head projection gives the dense layer's q, k and v of the normalised input
    /// (checked on the CPU backend, where both can be built), at every batch element, head and
    /// token.
    #[test]
    fn per_head_projection_equals_the_dense_split() {
        let device = Device::flex();
        let (width, heads, batch, tokens) = (12, 3, 2, 5);
        let weight: Vec<f32> = (0..3 * width * width).map(|i| (i as f32 * 0.37).sin()).collect();
        let bias: Vec<f32> = (0..3 * width).map(|i| (i as f32 * 0.11).cos()).collect();
        let at = Placement { device: device.clone(), column_blocks: 1, packed_matmul: false, largest_tensor: None };
        let dense = Qkv::new(HostMatrix::F32(weight.clone()), bias.clone(), heads, &at, false);
        let per_head = Qkv::new(HostMatrix::F32(weight), bias, heads, &at, true);
        assert!(matches!(dense, Qkv::Dense(_)) && matches!(per_head, Qkv::PerHead { .. }));
        let x = Tensor::<3>::random([batch, tokens, width], Distribution::Normal(0.0, 1.0), &device);
        let norm = Norm::new(tensor1(values(width, 1.0), &device), tensor1(values(width, 2.0), &device), 1e-5);
        let (got, expected) = (per_head.heads(x.clone(), &norm, heads), dense.heads(x, &norm, heads));
        for (name, got, expected) in [("q", got.q, expected.q), ("k", got.k, expected.k), ("v", got.v, expected.v)] {
            assert_eq!(got.dims(), [batch, heads, tokens, width / heads], "{name}");
            assert_eq!(got.dims(), expected.dims(), "{name}");
            let diff: f32 = (got - expected).abs().max().into_scalar();
            assert!(diff < 1e-5, "{name}: largest difference {diff}");
        }
    }
}
