//! Scaled dot-product attention, `softmax(q kᵀ / √head_dim [+ causal mask]) v`, in the form
//! each backend runs best.
//!
//! burn's CPU backend has its own one-pass attention kernel: there burn's `attention` op is
//! used. On the GPU burn's `attention` op is opaque to kernel fusion and, without `autotune`
//! (whose matmul candidates failed shader validation in Chromium), runs as 11 kernels per call
//! (matmul, scale, two clamps of two kernels each, max, sub, exp, sum, div, matmul). Written as
//! ordinary tensor ops, fusion makes it 5 (matmul, max, the scale, sub and exp in one, sum, and
//! the second matmul with the softmax's division as its epilogue) and the causal mask is an
//! additive `-inf` above the diagonal, uploaded once per forward pass and shared by every
//! block, instead of a mask built on the GPU per block.

use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor, TensorData};

/// Whether attention may look at later tokens, in the form the device's attention wants.
#[derive(Debug, Clone)]
pub enum Causality {
    /// Every token sees every token (vision tower, patch maps).
    Full,
    /// Each token sees itself and earlier tokens (text tower). `bias`: `[1, 1, t, t]`, 0 on and
    /// below the diagonal and `-inf` above, where attention is composed of tensor ops.
    Causal { bias: Option<Tensor<4>> },
}

/// burn's own attention kernel (the CPU backend) rather than attention composed of fusable ops.
fn uses_attention_op(device: &Device) -> bool {
    *device == Device::flex()
}

impl Causality {
    /// The causal mask for `tokens` tokens on `device` (made once per forward pass).
    pub fn causal(tokens: usize, device: &Device) -> Self {
        let bias = (!uses_attention_op(device)).then(|| causal_bias(tokens, device));
        Self::Causal { bias }
    }
}

/// `[1, 1, tokens, tokens]`: 0 on and below the diagonal, `-inf` above.
fn causal_bias(tokens: usize, device: &Device) -> Tensor<4> {
    let mut bias = vec![0f32; tokens * tokens];
        for row in 0..tokens {
            for value in &mut bias[row * tokens + row + 1..(row + 1) * tokens] {
                *value = f32::NEG_INFINITY;
            }
        }
    Tensor::from_data(TensorData::new(bias, [1, 1, tokens, tokens]), device)
}

/// `q`: `[batch, heads, queries, head_dim]`, `k` and `v`: `[batch, heads, keys, head_dim]` →
/// `[batch, heads, queries, head_dim]`.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causality: &Causality) -> Tensor<4> {
    let device = q.device();
    if uses_attention_op(&device) {
        let is_causal = matches!(causality, Causality::Causal { .. });
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal };
        return burn_attention(q, k, v, None, None, options);
    }
    let bias = match causality {
        Causality::Full => None,
        Causality::Causal { bias: Some(bias) } => Some(bias.clone()),
        Causality::Causal { bias: None } => Some(causal_bias(q.dims()[2], &device)),
    };
    composed_attention(q, k, v, bias)
}

/// Attention with an additive `bias` (`-inf` hides a key) broadcast over the scores
/// `[batch, heads, queries, keys]`; `bias` is `[batch, 1, queries, keys]`.
pub fn attention_with_bias(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<4>>) -> Tensor<4> {
    if uses_attention_op(&q.device()) {
        // burn's CPU kernel wants the bias at the scores' full shape.
        let [batch, heads, queries, keys] = [q.dims()[0], q.dims()[1], q.dims()[2], k.dims()[2]];
        let bias = bias.map(|b| b.expand([batch, heads, queries, keys]));
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
        return burn_attention(q, k, v, None, bias, options);
    }
    composed_attention(q, k, v, bias)
}

/// Attention as ordinary tensor ops (see the module's comment), with an additive `bias`
/// broadcast over the scores `[batch, heads, queries, keys]`.
fn composed_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<4>>) -> Tensor<4> {
    let head_dim = q.dims()[3];
    let scale = (head_dim as f64).powf(-0.5);
    let scores = q.matmul(k.swap_dims(2, 3));
    // softmax(scale·s) = exp(scale·(s − max s)) / Σ, as scale > 0: the maximum is taken of the
    // matmul's output as it is and the scale joins the exp's kernel, where scaling first was a
    // kernel of its own (#18). The same values where the scale is a power of two (head_dim 16,
    // 64, 256). With a bias the scores are scaled and biased first, as in burn's softmax.
    let exp = match bias {
        Some(bias) => {
            let logits = scores * scale + bias;
            let max = logits.clone().max_dim(3);
            (logits - max).exp()
        }
        None => {
            let max = scores.clone().max_dim(3);
            ((scores - max) * scale).exp()
        }
    };
    let sum = exp.clone().sum_dim(3);
    // (e / Σ)·v = (e·v) / Σ: the division runs on the `[queries, head_dim]` output as the
    // matmul's epilogue (one kernel with it) instead of as a kernel of its own over the
    // `[queries, keys]` probabilities.
    exp.matmul(v) / sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The composed form equals burn's attention op (checked on the CPU backend, where both
    /// run), with and without the causal mask, on views of one `qkv` tensor as the blocks pass.
    #[test]
    fn composed_attention_matches_burns_attention_op() {
        let device = Device::flex();
        let (batch, heads, tokens, head_dim) = (2, 3, 7, 8);
        let qkv = Tensor::<4>::random([batch, tokens, 3 * heads, head_dim], Distribution::Normal(0.0, 1.0), &device).swap_dims(1, 2);
        let part = |i: usize| qkv.clone().narrow(1, i * heads, heads);
        for causal in [false, true] {
            let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: causal };
            let expected = burn_attention(part(0), part(1), part(2), None, None, options);
            let bias = causal.then(|| causal_bias(tokens, &device));
            let got = composed_attention(part(0), part(1), part(2), bias);
            let diff: f32 = (got - expected).abs().max().into_scalar();
            assert!(diff < 1e-5, "causal {causal}: largest difference {diff}");
        }
        // The mask really masks: the first query sees only the first key, so gets its value.
        let first = composed_attention(part(0), part(1), part(2), Some(causal_bias(tokens, &device))).narrow(2, 0, 1);
        let diff: f32 = (first - part(2).narrow(2, 0, 1)).abs().max().into_scalar();
        assert!(diff < 1e-6, "the first token attends beyond itself: {diff}");
    }
}
