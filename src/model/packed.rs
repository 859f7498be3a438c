//! The dense layers' matmul for burn's CPU backend in WebAssembly: the weight packed once, at
//! load, in panels of 8 output columns, and a 4-row × 8-column SIMD128 kernel over them.
//!
//! Why not burn's matmul there: it calls the `gemm` crate, whose WebAssembly microkernel
//! (12 rows × 4 columns: 3 vector loads, 4 broadcasts and 12 multiply-adds per step) keeps 12
//! accumulators live; under V8 kernels with that many ran slower (5- and 6-row versions of
//! this one too). Measured in V8 on this 2-core VM, one thread,
//! ViT-B/32's shapes (400 × 768 → 3072, 400 × 3072 → 768, 50 × 768 → 3072): gemm 7.5–11 GMAC/s,
//! this kernel 10–16 GMAC/s (1.3–1.5×). The model spent 78 % of an image batch in gemm's kernel.
//! It also packs the weight once instead of on every call, and adds bias and int8 scales
//! on the way out. Natively burn's matmul (gemm's AVX2/FMA kernels) stays; there this module
//! runs a plain scalar kernel, which the tests use to check the packing and the blocking.

use super::config::Activation;
use super::host_matrix::HostMatrix;

/// Output columns per panel: two SIMD128 vectors.
pub const PANEL: usize = 8;
/// Rows per kernel call: 4 × 2 accumulators + 2 weight vectors + 1 broadcast fit V8's 16
/// vector registers (5 or 6 rows spilled and ran slower).
const ROWS: usize = 4;

/// A dense weight `[outputs, inputs]` stored as `[outputs / 8][inputs][8]`.
#[derive(Debug)]
pub struct PackedWeight {
    inputs: usize,
    outputs: usize,
    panels: Panels,
}

#[derive(Debug)]
enum Panels {
    F32(Vec<f32>),
    /// Int8 panels (a quarter of the memory), widened to f32 one panel at a time; `scales`
    /// has one scale per output.
    Int8 { values: Vec<i8>, scales: Vec<f32> },
}

/// `[outputs, inputs]` row-major → `[outputs / 8][inputs][8]`.
fn pack<T: Copy + Default>(weight: &[T], outputs: usize, inputs: usize) -> Vec<T> {
    let mut out = vec![T::default(); weight.len()];
    for (o, row) in weight.chunks_exact(inputs).enumerate().take(outputs) {
        let (panel, lane) = (o / PANEL, o % PANEL);
        let base = panel * inputs * PANEL + lane;
        for (p, &w) in row.iter().enumerate() {
            out[base + p * PANEL] = w;
        }
    }
    out
}

impl PackedWeight {
    /// Whether a layer with this many outputs can be packed (whole panels only).
    pub fn fits(outputs: usize) -> bool {
        outputs > 0 && outputs % PANEL == 0
    }

    /// `weight` in PyTorch's orientation `[outputs, inputs]`; `fits(outputs)` must hold.
    pub fn new(weight: HostMatrix, outputs: usize) -> Self {
        let inputs = weight.len() / outputs;
        let panels = match weight {
            HostMatrix::F32(w) => Panels::F32(pack(&w, outputs, inputs)),
            HostMatrix::Int8 { values, scales } => Panels::Int8 { values: pack(&values, outputs, inputs), scales },
        };
        Self { inputs, outputs, panels }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x [rows, inputs] → activation(x Wᵀ + bias)`, `[rows, outputs]`.
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>, activation: Option<Activation>) -> Vec<f32> {
        let (k, n) = (self.inputs, self.outputs);
        assert_eq!(x.len(), rows * k, "input is not [rows, inputs]");
        let mut y = vec![0.0f32; rows * n];
        let out = Output(y.as_mut_ptr());
        let panel = |j: usize, scratch: &mut Vec<f32>| {
            let columns = j * PANEL..(j + 1) * PANEL;
            let (weights, scale): (&[f32], _) = match &self.panels {
                Panels::F32(w) => (&w[j * k * PANEL..(j + 1) * k * PANEL], None),
                Panels::Int8 { values, scales } => {
                    scratch.clear();
                    scratch.extend(values[j * k * PANEL..(j + 1) * k * PANEL].iter().map(|&q| q as f32));
                    (&scratch[..], Some(lanes(&scales[columns.clone()])))
                }
            };
            let epilogue = Epilogue { scale, bias: bias.map(|b| lanes(&b[columns])), activation };
            // Safety: panel j writes columns j·8..j·8+8 of each row of `y` and nothing else,
            // so panels run on different threads write disjoint elements.
            unsafe { panel_rows(x, rows, k, weights, &epilogue, out.at(j * PANEL), n) };
        };
        #[cfg(feature = "threads")]
        {
            use rayon::prelude::*;
            (0..n / PANEL).into_par_iter().for_each_init(Vec::new, |scratch, j| panel(j, scratch));
        }
        #[cfg(not(feature = "threads"))]
        {
            let mut scratch = Vec::new();
            (0..n / PANEL).for_each(|j| panel(j, &mut scratch));
        }
        y
    }
}

fn lanes(values: &[f32]) -> [f32; PANEL] {
    let mut out = [0.0; PANEL];
    out.copy_from_slice(values);
    out
}

/// The output buffer, written by panels on several threads (disjoint columns).
#[derive(Clone, Copy)]
struct Output(*mut f32);
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// What each output takes on the way out: `acc · scale + bias`, then the activation.
/// Fused here because burn's CPU backend computes QuickGELU's sigmoid (and GELU's `erf`) one
/// scalar call per element: the sigmoid was 6–8 % of a ViT-B/32 image batch in wasm.
struct Epilogue {
    scale: Option<[f32; PANEL]>,
    bias: Option<[f32; PANEL]>,
    activation: Option<Activation>,
}

/// Abramowitz & Stegun 7.1.26: `erf(x) = 1 − t·P(t)·e^(−x²)`, `t = 1 / (1 + p·|x|)`, odd in
/// `x`; absolute error ≤ 1.5e-7.
const ERF_P: f32 = 0.327_591_1;
/// The coefficients of `P`, highest power first.
const ERF_A: [f32; 5] = [1.061_405_4, -1.453_152, 1.421_413_8, -0.284_496_74, 0.254_829_6];

/// `GELU(y) = ½ y (1 + erf(y / √2))`, scalar (what the vector version computes per lane).
#[cfg(not(target_arch = "wasm32"))]
fn gelu(y: f32) -> f32 {
    let x = y * core::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + ERF_P * x.abs());
    let poly = ERF_A[1..].iter().fold(ERF_A[0], |p, &a| p * t + a) * t;
    let erf = (1.0 - poly * (-x * x).exp()).copysign(x);
    0.5 * y * (1.0 + erf)
}

/// GELU for four lanes (see `gelu`).
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn gelu4(y: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let x = f32x4_mul(y, f32x4_splat(core::f32::consts::FRAC_1_SQRT_2));
    let t = f32x4_div(f32x4_splat(1.0), f32x4_add(f32x4_splat(1.0), f32x4_mul(f32x4_splat(ERF_P), f32x4_abs(x))));
    let mut poly = f32x4_splat(ERF_A[0]);
    for a in &ERF_A[1..] {
        poly = f32x4_add(f32x4_mul(poly, t), f32x4_splat(*a));
    }
    let poly = f32x4_mul(poly, t);
    let erf_abs = f32x4_sub(f32x4_splat(1.0), f32x4_mul(poly, exp4(f32x4_neg(f32x4_mul(x, x)))));
    // erf(x) has the sign of x (erf_abs ≥ 0: its sign bit is clear).
    let erf = v128_or(erf_abs, v128_and(x, f32x4_splat(-0.0)));
    f32x4_mul(f32x4_mul(f32x4_splat(0.5), y), f32x4_add(f32x4_splat(1.0), erf))
}

/// `eˣ` for four lanes: `x = n·ln 2 + r`, `|r| ≤ ½ ln 2`, Cephes' degree-6 polynomial for `eʳ`
/// (relative error ~2e-7), `2ⁿ` put in the exponent bits. Inputs are clamped to where
/// `eˣ` is a normal f32; below that QuickGELU's result is 0 either way (or `y`, above).
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn exp4(x: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let x = f32x4_pmax(f32x4_pmin(x, f32x4_splat(88.0)), f32x4_splat(-87.0));
    let n = f32x4_nearest(f32x4_mul(x, f32x4_splat(core::f32::consts::LOG2_E)));
    // ln 2 in two parts, so that n · ln 2 is exact enough.
    let r = f32x4_sub(x, f32x4_mul(n, f32x4_splat(0.693_359_4)));
    let r = f32x4_sub(r, f32x4_mul(n, f32x4_splat(-2.121_944_4e-4)));
    let mut p = f32x4_splat(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1] {
        p = f32x4_add(f32x4_mul(p, r), f32x4_splat(c));
    }
    let e_r = f32x4_add(f32x4_add(f32x4_mul(f32x4_mul(p, r), r), r), f32x4_splat(1.0));
    let two_n = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
    f32x4_mul(e_r, two_n)
}

/// `y · sigmoid(1.702 y) = y / (1 + e^(−1.702 y))`.
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn quick_gelu4(y: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let e = exp4(f32x4_mul(y, f32x4_splat(-1.702)));
    f32x4_div(y, f32x4_add(f32x4_splat(1.0), e))
}

/// All rows of `x` against one panel. `c` points at column 0 of the panel in row 0 of the
/// output, whose rows are `ldc` apart.
///
/// # Safety
/// `c` must be valid for writes of `rows` rows of 8 elements, `ldc` apart.
unsafe fn panel_rows(x: &[f32], rows: usize, k: usize, weights: &[f32], epilogue: &Epilogue, c: *mut f32, ldc: usize) {
    debug_assert!(x.len() >= rows * k && weights.len() >= k * PANEL);
    let mut i = 0;
    while i + ROWS <= rows {
        kernel::<ROWS>(k, &x[i * k..], weights, epilogue, c.add(i * ldc), ldc);
        i += ROWS;
    }
    let left = &x[i * k..];
    let c = c.add(i * ldc);
    match rows - i {
        3 => kernel::<3>(k, left, weights, epilogue, c, ldc),
        2 => kernel::<2>(k, left, weights, epilogue, c, ldc),
        1 => kernel::<1>(k, left, weights, epilogue, c, ldc),
        _ => {}
    }
}

/// `MR` rows of `a` (`[MR, k]`, rows `k` apart) times one panel (`[k][8]`) into `c`.
#[cfg(target_arch = "wasm32")]
#[inline(always)]
unsafe fn kernel<const MR: usize>(k: usize, a: &[f32], b: &[f32], epilogue: &Epilogue, c: *mut f32, ldc: usize) {
    use core::arch::wasm32::*;
    debug_assert!(a.len() >= (MR - 1) * k + k && b.len() >= k * PANEL);
    let (a, b) = (a.as_ptr(), b.as_ptr());
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    for p in 0..k {
        let b0 = v128_load(b.add(p * PANEL) as *const v128);
        let b1 = v128_load(b.add(p * PANEL + 4) as *const v128);
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = v128_load32_splat(a.add(r * k + p) as *const u32);
            acc[0] = f32x4_add(acc[0], f32x4_mul(a, b0));
            acc[1] = f32x4_add(acc[1], f32x4_mul(a, b1));
        }
    }
    let load = |v: &[f32; PANEL], half: usize| v128_load(v.as_ptr().add(4 * half) as *const v128);
    for (r, acc) in acc.iter().enumerate() {
        for half in 0..2 {
            let mut v = acc[half];
            if let Some(scale) = &epilogue.scale {
                v = f32x4_mul(v, load(scale, half));
            }
            if let Some(bias) = &epilogue.bias {
                v = f32x4_add(v, load(bias, half));
            }
            match epilogue.activation {
                Some(Activation::QuickGelu) => v = quick_gelu4(v),
                Some(Activation::Gelu) => v = gelu4(v),
                None => {}
            }
            v128_store(c.add(r * ldc + 4 * half) as *mut v128, v);
        }
    }
}

/// The same, in plain Rust (native builds run burn's matmul; this checks the packing).
#[cfg(not(target_arch = "wasm32"))]
unsafe fn kernel<const MR: usize>(k: usize, a: &[f32], b: &[f32], epilogue: &Epilogue, c: *mut f32, ldc: usize) {
    for r in 0..MR {
        for l in 0..PANEL {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += a[r * k + p] * b[p * PANEL + l];
            }
            let scaled = epilogue.scale.map_or(sum, |s| sum * s[l]);
            let y = epilogue.bias.map_or(scaled, |b| scaled + b[l]);
            *c.add(r * ldc + l) = match epilogue.activation {
                Some(Activation::QuickGelu) => y / (1.0 + (-1.702 * y).exp()),
                Some(Activation::Gelu) => gelu(y),
                None => y,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], rows: usize, w: &[f32], outputs: usize, bias: &[f32]) -> Vec<f32> {
        let inputs = w.len() / outputs;
        let mut y = vec![0.0; rows * outputs];
        for r in 0..rows {
            for o in 0..outputs {
                let dot: f32 = (0..inputs).map(|p| x[r * inputs + p] * w[o * inputs + p]).sum();
                y[r * outputs + o] = dot + bias[o];
            }
        }
        y
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin() * 1.5).collect()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "element {i}: {x} vs {y}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn packed_matmul_matches_the_plain_product_for_every_row_remainder() {
        let (inputs, outputs) = (13, 24);
        let w = values(inputs * outputs, 0.5);
        let bias = values(outputs, 2.0);
        let packed = PackedWeight::new(HostMatrix::F32(w.clone()), outputs);
        for rows in [1, 2, 3, 4, 5, 7, 9] {
            let x = values(rows * inputs, rows as f32);
            close(&packed.matmul(&x, rows, Some(&bias), None), &reference(&x, rows, &w, outputs, &bias));
        }
        let x = values(6 * inputs, 1.0);
        close(&packed.matmul(&x, 6, None, None), &reference(&x, 6, &w, outputs, &vec![0.0; outputs]));
        let gelu: Vec<f32> = reference(&x, 6, &w, outputs, &bias).iter().map(|y| y / (1.0 + (-1.702 * y).exp())).collect();
        close(&packed.matmul(&x, 6, Some(&bias), Some(Activation::QuickGelu)), &gelu);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn int8_panels_take_their_scales() {
        let (inputs, outputs) = (10, 16);
        let q: Vec<i8> = (0..inputs * outputs).map(|i| ((i * 37) % 255) as i32 - 127).map(|v| v as i8).collect();
        let scales = values(outputs, 0.1).iter().map(|s| s.abs() / 100.0 + 1e-3).collect::<Vec<_>>();
        let bias = values(outputs, 3.0);
        let matrix = HostMatrix::Int8 { values: q, scales };
        let dequantised = matrix.clone().into_f32();
        let packed = PackedWeight::new(matrix, outputs);
        let x = values(5 * inputs, 0.3);
        close(&packed.matmul(&x, 5, Some(&bias), None), &reference(&x, 5, &dequantised, outputs, &bias));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn only_whole_panels_fit() {
        assert!(PackedWeight::fits(768) && PackedWeight::fits(8));
        assert!(!PackedWeight::fits(0) && !PackedWeight::fits(12));
    }
}
