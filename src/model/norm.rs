//! LayerNorm, in the form each backend runs best.
//!
//! burn's `LayerNorm` computes `(x − mean) / sqrt(var + ε)` with `sqrt(var + ε)` on the reduced
//! shape `[…, 1]`; on the GPU kernel fusion fuses only ops of one shape, so that step is a kernel
//! of its own (mean, `(x − mean)²`, var, `sqrt(var + ε)`, the rest: 5). Here the variance is
//! first broadcast to the input's shape (a view, no kernel), so `sqrt(var + ε)` joins the last
//! kernel: one kernel fewer a norm, the same arithmetic per element (#18). (Fusion still splits
//! the last kernel in two for some norms, the second of a block among them; not ours to choose.)
//! On burn's CPU backend burn's own layer norm runs as before.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

#[derive(Debug)]
pub struct Norm {
    layer_norm: LayerNorm,
    epsilon: f64,
    /// False where γ and β were folded into the dense layer that reads the norm (`fold_into`):
    /// then the composed norm stops at `(x − mean) / sqrt(var + ε)`.
    affine: bool,
    /// Whether to compose the norm of fusable ops (see the module's comment).
    composed: bool,
}

impl Norm {
    pub fn new(gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Self {
        let device = gamma.device();
        let mut layer_norm = LayerNormConfig::new(gamma.dims()[0]).with_epsilon(eps).init(&device);
        layer_norm.gamma = Param::from_tensor(gamma);
        layer_norm.beta = Some(Param::from_tensor(beta));
        Self { layer_norm, epsilon: eps, affine: true, composed: device != Device::flex() }
    }

    /// `(x − mean) / sqrt(var + ε)` alone, for a norm whose γ and β were folded into the dense
    /// layer that reads it (`fold_into`).
    pub fn without_affine(width: usize, eps: f64, device: &Device) -> Self {
        let ones = Tensor::<1>::ones([width], device);
        Self { affine: false, ..Self::new(ones.clone(), ones.zeros_like(), eps) }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !self.composed {
            return self.layer_norm.forward(x);
        }
        let dims = x.dims();
        let mean = x.clone().mean_dim(D - 1);
        let centered = x - mean;
        let var = (centered.clone() * centered.clone()).mean_dim(D - 1);
        let normalized = centered / (var.expand(dims) + self.epsilon).sqrt();
        if !self.affine {
            return normalized;
        }
        let gamma = self.layer_norm.gamma.val().unsqueeze::<D>();
        let beta = self.layer_norm.beta.as_ref().expect("made with a beta").val().unsqueeze::<D>();
        normalized * gamma + beta
    }
}

/// Folds a norm's `gamma` and `beta` into the dense layer that reads it, `weight` `[out, in]`
/// (PyTorch's orientation) and `bias` `[out]`: `(n·γ + β)·Wᵀ + b = n·(W·diag γ)ᵀ + (W·β + b)`.
/// On the GPU a norm's last kernel was split in two by kernel fusion (the division, then
/// `·γ + β`); without γ and β it is one (#18).
pub fn fold_into(gamma: &[f32], beta: &[f32], weight: &mut [f32], bias: &mut [f32]) {
    let inputs = gamma.len();
    for (row, b) in weight.chunks_exact_mut(inputs).zip(bias.iter_mut()) {
        *b += row.iter().zip(beta).map(|(&w, &beta)| w as f64 * beta as f64).sum::<f64>() as f32;
        row.iter_mut().zip(gamma).for_each(|(w, &g)| *w *= g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// The composed norm and burn's layer norm (both run on the CPU backend) each match the
    /// norm written out in f64, on rows with means from 0 to 18 and a spread of ~2.
    #[test]
    fn composed_norm_is_a_layer_norm() {
        let device = Device::flex();
        let (rows, width, eps) = (10, 24, 1e-5);
        let wave = |n: usize, seed: f64| (0..n).map(move |i| (i as f64 * 0.37 + seed).sin());
        let gamma: Vec<f64> = wave(width, 1.0).map(|v| 1.0 + 0.3 * v).collect();
        let beta: Vec<f64> = wave(width, 2.0).map(|v| 0.3 * v).collect();
        let x: Vec<f64> = wave(rows * width, 3.0).enumerate().map(|(i, v)| 2.0 * v + (i / width) as f64 * 2.0).collect();
        let mut expected = Vec::new();
        for row in x.chunks(width) {
            let mean = row.iter().sum::<f64>() / width as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / width as f64;
            expected.extend(row.iter().enumerate().map(|(j, v)| (v - mean) / (var + eps).sqrt() * gamma[j] + beta[j]));
        }
        let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let tensor1 = |v: &[f64]| Tensor::<1>::from_data(TensorData::new(f32s(v), [v.len()]), &device);
        let mut norm = Norm::new(tensor1(&gamma), tensor1(&beta), eps);
        let input = Tensor::<3>::from_data(TensorData::new(f32s(&x), [2, rows / 2, width]), &device);
        for composed in [false, true] {
            norm.composed = composed;
            let got = norm.forward(input.clone()).into_data().try_to_vec::<f32>().unwrap();
            let diff = got.iter().zip(&expected).map(|(g, e)| (*g as f64 - e).abs()).fold(0.0, f64::max);
            // f32 rounding of x − mean (|x| ≤ 20: ~1e-6) over a spread of ~2, times γ ≤ 1.3.
            assert!(diff < 1e-5, "composed {composed}: largest difference {diff}");
        }
    }
}
