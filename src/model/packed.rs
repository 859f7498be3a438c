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
//!
//! **Int8 weights (q8 packs) multiply in integers** (#17), as ONNX Runtime's dynamic
//! quantisation does: each row of the activations is quantised on the fly to
//! `ACTIVATION_LEVELS` (symmetric, one scale per row), the products are summed exactly in i32,
//! and the row's and the output's scales are applied once, on the way out. The weights stay
//! int8 in memory. With SIMD128 the kernel widens both to i16 and uses `i32x4.dot_i16x8_s`
//! (8 products per instruction, runs wherever SIMD128 does); the build with relaxed SIMD
//! (cargo feature `relaxed-simd`, scripts/build-web.sh: these kernels only, as burn's own SIMD
//! crate does not build with relaxed SIMD on for every crate) uses
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s` (16 products and the add in one instruction), whose
//! second operand must be 7-bit non-negative: the activations go in offset by +64 and the
//! offset's share, 64 · Σ weights of the output, is taken off the i32 sum. Both compute the
//! same integer sums, so the two builds give the same bits. Measured in Chromium 156 on this
//! VM, one thread, ViT-B/32's shapes (BENCHMARKS.md): f32 kernel 19–20 GMAC/s, int8 SIMD128
//! 29–35, int8 relaxed 51–59; f32 with relaxed fused multiply-add 23–25.
//!
//! Activations get 7 bits (±63) in both builds, not 8, because the relaxed instruction's
//! operand has 7; per row, which follows outliers more closely than ONNX Runtime's one u8 range
//! for the whole tensor.

use super::config::Activation;
use super::host_matrix::HostMatrix;

/// Output columns per panel: two SIMD128 vectors.
pub const PANEL: usize = 8;
/// Rows per kernel call: 4 × 2 accumulators + 2 weight vectors + 1 broadcast fit V8's 16
/// vector registers (5 or 6 rows spilled and ran slower).
const ROWS: usize = 4;
/// Activations are quantised per row to integers in `−63..=63` (see the module's notes).
pub const ACTIVATION_LEVELS: f32 = 63.0;
/// The relaxed kernel's activations are `q + 64` (0..=127: its operand's 7 bits).
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
const ACTIVATION_OFFSET: i32 = 64;

/// Whether this build multiplies with relaxed SIMD (a second page build, see build-web.sh).
pub const RELAXED_SIMD: bool = cfg!(all(target_arch = "wasm32", feature = "relaxed-simd"));

/// A dense weight `[outputs, inputs]` stored as `[outputs / 8][inputs][8]`.
#[derive(Debug)]
pub struct PackedWeight {
    inputs: usize,
    outputs: usize,
    panels: Panels,
}

#[derive(Debug)]
enum Panels {
    F32(CacheAligned<f32>),
    /// Int8 panels (a quarter of the memory) in the integer kernel's order (`int8_index`), the
    /// inputs padded with zeros to `depth` (a multiple of 4); `scales`: one per output;
    /// `offsets`: the relaxed kernel's correction per output (64 · Σ weights), else zeros.
    Int8 { values: CacheAligned<i8>, scales: Vec<f32>, offsets: Vec<i32>, depth: usize },
}

/// Values whose first one starts a 64-byte cache line. The kernels load each panel in 16-byte
/// vectors at multiples of 16 bytes from its start (panels are multiples of 32 bytes long), so
/// from here every load is aligned and none straddles two lines. A `Vec<f32>` or `Vec<i8>` is
/// only as aligned as WebAssembly's allocator makes it (8 bytes), so half of them started
/// 8 bytes into a vector.
struct CacheAligned<T> {
    lines: Vec<CacheLine>,
    len: usize,
    values: std::marker::PhantomData<T>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine([u8; 64]);

/// Numbers whose all-zero bytes are the value 0 (what `CacheAligned::zeros` relies on).
trait ZeroBytes: Copy {}
impl ZeroBytes for f32 {}
impl ZeroBytes for i8 {}

impl<T: ZeroBytes> CacheAligned<T> {
    fn zeros(len: usize) -> Self {
        let lines = vec![CacheLine([0; 64]); (len * std::mem::size_of::<T>()).div_ceil(64)];
        Self { lines, len, values: std::marker::PhantomData }
    }
}

impl<T: ZeroBytes> std::ops::Deref for CacheAligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // Safety: the lines hold at least `len` values' bytes, all initialised, and `T`'s
        // alignment divides 64.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const T, self.len) }
    }
}

impl<T: ZeroBytes> std::ops::DerefMut for CacheAligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // Safety: as above, and `&mut self` is the only borrow.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut T, self.len) }
    }
}

impl<T> std::fmt::Debug for CacheAligned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} values, 64-byte aligned", self.len)
    }
}

/// `[outputs, inputs]` row-major → `[outputs / 8][inputs][8]`.
fn pack<T: ZeroBytes>(weight: &[T], outputs: usize, inputs: usize) -> CacheAligned<T> {
    let mut out = CacheAligned::zeros(weight.len());
    for (o, row) in weight.chunks_exact(inputs).enumerate().take(outputs) {
        let (panel, lane) = (o / PANEL, o % PANEL);
        let base = panel * inputs * PANEL + lane;
        for (p, &w) in row.iter().enumerate() {
            out[base + p * PANEL] = w;
        }
    }
    out
}

/// Where weight (`lane` of the panel, input `p`) sits within its int8 panel. Per 4 inputs, 32
/// bytes. SIMD128 (`i32x4.dot_i16x8_s` sums pairs): the first 16 bytes are lanes 0–3, the last 16
/// lanes 4–7; in each, 8 bytes per pair of inputs, 2 per lane.
#[cfg(not(all(target_arch = "wasm32", feature = "relaxed-simd")))]
fn int8_index(lane: usize, p: usize) -> usize {
    let (quad, within) = (p / 4, p % 4);
    quad * 32 + (lane / 4) * 16 + (within / 2) * 8 + (lane % 4) * 2 + within % 2
}

/// Relaxed SIMD (`relaxed_dot_i8x16_i7x16_add` sums fours): 4 bytes per lane, the lane's 4 inputs.
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
fn int8_index(lane: usize, p: usize) -> usize {
    (p / 4) * 32 + lane * 4 + p % 4
}

/// `[outputs, inputs]` int8 → panels of `int8_index`'s order, inputs padded to `depth`.
fn pack_int8(weight: &[i8], outputs: usize, inputs: usize, depth: usize) -> CacheAligned<i8> {
    let mut out = CacheAligned::zeros(outputs.div_ceil(PANEL) * depth * PANEL);
    for (o, row) in weight.chunks_exact(inputs).enumerate().take(outputs) {
        let base = (o / PANEL) * depth * PANEL;
        for (p, &w) in row.iter().enumerate() {
            out[base + int8_index(o % PANEL, p)] = w;
        }
    }
    out
}

/// Each row of `x` (`[rows, inputs]`) as integers in `−63..=63` times one scale per row,
/// `max |row| / 63` (0 for a row of zeros), padded with zeros to `depth` inputs. The definition,
/// written out (the tests' reference); the matmul makes the same integers with
/// `quantise_for_kernel`.
pub fn quantise_rows(x: &[f32], rows: usize, inputs: usize, depth: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = vec![0i8; rows * depth];
    let mut scales = vec![0.0f32; rows];
    for (r, row) in x.chunks_exact(inputs).enumerate().take(rows) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if row.iter().any(|v| !v.is_finite()) {
            // A non-finite input gives non-finite outputs, as the f32 product would.
            scales[r] = f32::NAN;
            continue;
        }
        if max == 0.0 {
            continue;
        }
        let inverse = ACTIVATION_LEVELS / max;
        scales[r] = max / ACTIVATION_LEVELS;
        for (q, &v) in q[r * depth..r * depth + inputs].iter_mut().zip(row) {
            *q = (v * inverse).round() as i8;
        }
    }
    (q, scales)
}

/// The quantised activations in the form the kernel reads: i16 for `dot_i16x8`, bytes + 64
/// for the relaxed dot.
#[cfg(not(all(target_arch = "wasm32", feature = "relaxed-simd")))]
type KernelActivation = i16;
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
type KernelActivation = u8;

fn kernel_activation(q: i32) -> KernelActivation {
    #[cfg(not(all(target_arch = "wasm32", feature = "relaxed-simd")))]
    return q as i16;
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    return (q + ACTIVATION_OFFSET) as u8;
}

/// `quantise_rows`' integers in the form the kernel reads, made where the time goes: rows on
/// every thread of the threaded build, 16 values a step with SIMD128. (Written out once per
/// row, single-threaded and scalar, with a libm `roundf` per value, this took ~15 % of a q8
/// image batch, all of it on one thread.)
fn quantise_for_kernel(x: &[f32], rows: usize, inputs: usize, depth: usize) -> (Vec<KernelActivation>, Vec<f32>) {
    let mut q = vec![kernel_activation(0); rows * depth];
    let mut scales = vec![0.0f32; rows];
    let row = |(out, (scale, x)): (&mut [KernelActivation], (&mut f32, &[f32]))| *scale = quantise_row(x, out);
    #[cfg(feature = "threads")]
    {
        use rayon::prelude::*;
        q.par_chunks_mut(depth).zip(scales.par_iter_mut().zip(x.par_chunks(inputs))).with_min_len(4).for_each(row);
    }
    #[cfg(not(feature = "threads"))]
    q.chunks_mut(depth).zip(scales.iter_mut().zip(x.chunks(inputs))).for_each(row);
    (q, scales)
}

/// One row as `quantise_rows` does it, into `out` (already the kernel's zeros); returns the
/// row's scale.
fn quantise_row(x: &[f32], out: &mut [KernelActivation]) -> f32 {
    let max = max_abs(x);
    if !max.is_finite() {
        // A non-finite input gives non-finite outputs, as the f32 product would.
        return f32::NAN;
    }
    if max == 0.0 {
        return 0.0;
    }
    let inverse = ACTIVATION_LEVELS / max;
    let done = quantise_simd(x, out, inverse);
    for (q, &v) in out[done..x.len()].iter_mut().zip(&x[done..]) {
        *q = kernel_activation((v * inverse).round() as i32);
    }
    max / ACTIVATION_LEVELS
}

/// `max |x|`, or a non-finite value where `x` has one.
fn max_abs(x: &[f32]) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        use core::arch::wasm32::*;
        let chunks = x.chunks_exact(4);
        let tail = chunks.remainder();
        // f32x4.max returns NaN where either lane is NaN, so a NaN is never lost.
        let lanes = chunks.fold(f32x4_splat(0.0), |m, c| f32x4_max(m, f32x4_abs(unsafe { v128_load(c.as_ptr() as *const v128) })));
        let lanes = [f32x4_extract_lane::<0>(lanes), f32x4_extract_lane::<1>(lanes), f32x4_extract_lane::<2>(lanes), f32x4_extract_lane::<3>(lanes)];
        scalar_max_abs(lanes.iter().chain(tail))
    }
    #[cfg(not(target_arch = "wasm32"))]
    scalar_max_abs(x.iter())
}

fn scalar_max_abs<'a>(values: impl Iterator<Item = &'a f32>) -> f32 {
    let mut max = 0.0f32;
    for v in values {
        if !v.is_finite() {
            return f32::NAN;
        }
        max = max.max(v.abs());
    }
    max
}

/// `kernel_activation(round(v · inverse))` for the first multiple of 16 values of `x`, with
/// SIMD128; returns how many it did. `round` halves away from zero, as `f32::round`:
/// `trunc(p + copysign(0.49999997, p))` is exactly that for |p| < 2²³ (here ≤ 63).
#[cfg(target_arch = "wasm32")]
fn quantise_simd(x: &[f32], out: &mut [KernelActivation], inverse: f32) -> usize {
    use core::arch::wasm32::*;
    let done = x.len() / 16 * 16;
    let (inverse, below_half, sign) = (f32x4_splat(inverse), f32x4_splat(0.499_999_97), u32x4_splat(0x8000_0000));
    for (x, out) in x[..done].chunks_exact(16).zip(out.chunks_exact_mut(16)) {
        // Safety: `x` has 16 values and `out` 16 elements; wasm loads and stores need no alignment.
        unsafe {
            let quad = |i: usize| {
                let p = f32x4_mul(v128_load(x.as_ptr().add(i) as *const v128), inverse);
                i32x4_trunc_sat_f32x4(f32x4_add(p, v128_or(below_half, v128_and(p, sign))))
            };
            let (low, high) = (i16x8_narrow_i32x4(quad(0), quad(4)), i16x8_narrow_i32x4(quad(8), quad(12)));
            #[cfg(not(feature = "relaxed-simd"))]
            {
                v128_store(out.as_mut_ptr() as *mut v128, low);
                v128_store(out.as_mut_ptr().add(8) as *mut v128, high);
            }
            #[cfg(feature = "relaxed-simd")]
            {
                let offset = i16x8_splat(ACTIVATION_OFFSET as i16);
                v128_store(out.as_mut_ptr() as *mut v128, u8x16_narrow_i16x8(i16x8_add(low, offset), i16x8_add(high, offset)));
            }
        }
    }
    done
}

#[cfg(not(target_arch = "wasm32"))]
fn quantise_simd(_x: &[f32], _out: &mut [KernelActivation], _inverse: f32) -> usize {
    0
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
            HostMatrix::Int8 { values, scales } => {
                let depth = inputs.div_ceil(4) * 4;
                #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
                let offsets = values.chunks_exact(inputs).map(|row| ACTIVATION_OFFSET * row.iter().map(|&w| w as i32).sum::<i32>()).collect();
                #[cfg(not(all(target_arch = "wasm32", feature = "relaxed-simd")))]
                let offsets = vec![0; outputs];
                Panels::Int8 { values: pack_int8(&values, outputs, inputs, depth), scales, offsets, depth }
            }
        };
        Self { inputs, outputs, panels }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x [rows, inputs] → activation(x Wᵀ + bias)`, `[rows, outputs]`. With int8 weights the
    /// rows of `x` are quantised first (see the module's notes).
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>, activation: Option<Activation>) -> Vec<f32> {
        let (k, n) = (self.inputs, self.outputs);
        assert_eq!(x.len(), rows * k, "input is not [rows, inputs]");
        let mut y = vec![0.0f32; rows * n];
        let out = Output(y.as_mut_ptr());
        let epilogue = |j: usize, scale: Option<[f32; PANEL]>| {
            let columns = j * PANEL..(j + 1) * PANEL;
            Epilogue { scale, bias: bias.map(|b| lanes(&b[columns])), activation }
        };
        match &self.panels {
            Panels::F32(w) => {
                let panel = |j: usize| {
                    // Safety: panel j writes columns j·8..j·8+8 of each row of `y` and nothing
                    // else, so panels run on different threads write disjoint elements.
                    unsafe { panel_rows(x, rows, k, &w[j * k * PANEL..(j + 1) * k * PANEL], &epilogue(j, None), out.at(j * PANEL), n) };
                };
                for_each_panel(n / PANEL, panel);
            }
            Panels::Int8 { values, scales, offsets, depth } => {
                let depth = *depth;
                let (q, row_scales) = quantise_for_kernel(x, rows, k, depth);
                let panel = |j: usize| {
                    let columns = j * PANEL..(j + 1) * PANEL;
                    let mut offset = [0i32; PANEL];
                    offset.copy_from_slice(&offsets[columns.clone()]);
                    let weights = &values[j * depth * PANEL..(j + 1) * depth * PANEL];
                    let epilogue = epilogue(j, Some(lanes(&scales[columns])));
                    // Safety: as above, disjoint columns.
                    unsafe { int8_panel_rows(&q, &row_scales, rows, depth, weights, &offset, &epilogue, out.at(j * PANEL), n) };
                };
                for_each_panel(n / PANEL, panel);
            }
        }
        y
    }
}

/// Runs `panel(j)` for every panel, on every thread of the threaded build.
fn for_each_panel(panels: usize, panel: impl Fn(usize) + Sync + Send) {
    #[cfg(feature = "threads")]
    {
        use rayon::prelude::*;
        (0..panels).into_par_iter().for_each(panel);
    }
    #[cfg(not(feature = "threads"))]
    (0..panels).for_each(panel);
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
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
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
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
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
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
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
#[cfg_attr(all(target_arch = "wasm32", feature = "relaxed-simd"), target_feature(enable = "relaxed-simd"))]
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

/// `acc · scale + bias`, then the activation, for half `half` (lanes 0–3 or 4–7) of a panel.
#[cfg(target_arch = "wasm32")]
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
unsafe fn finish(mut v: core::arch::wasm32::v128, half: usize, epilogue: &Epilogue) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let load = |v: &[f32; PANEL]| v128_load(v.as_ptr().add(4 * half) as *const v128);
    if let Some(scale) = &epilogue.scale {
        v = f32x4_mul(v, load(scale));
    }
    if let Some(bias) = &epilogue.bias {
        v = f32x4_add(v, load(bias));
    }
    match epilogue.activation {
        Some(Activation::QuickGelu) => quick_gelu4(v),
        Some(Activation::Gelu) => gelu4(v),
        None => v,
    }
}

/// `acc + a · b`: fused (one rounding) in the relaxed SIMD build, where it is one instruction.
#[cfg(target_arch = "wasm32")]
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
fn multiply_add(a: core::arch::wasm32::v128, b: core::arch::wasm32::v128, acc: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    #[cfg(feature = "relaxed-simd")]
    return f32x4_relaxed_madd(a, b, acc);
    #[cfg(not(feature = "relaxed-simd"))]
    return f32x4_add(acc, f32x4_mul(a, b));
}

/// `MR` rows of `a` (`[MR, k]`, rows `k` apart) times one panel (`[k][8]`) into `c`.
#[cfg(target_arch = "wasm32")]
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
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
            acc[0] = multiply_add(a, b0, acc[0]);
            acc[1] = multiply_add(a, b1, acc[1]);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (half, &v) in acc.iter().enumerate() {
            v128_store(c.add(r * ldc + 4 * half) as *mut v128, finish(v, half, epilogue));
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
            *c.add(r * ldc + l) = finish_scalar(sum, l, epilogue);
        }
    }
}

/// `finish` for one output, in plain Rust.
#[cfg(not(target_arch = "wasm32"))]
fn finish_scalar(sum: f32, lane: usize, epilogue: &Epilogue) -> f32 {
    let scaled = epilogue.scale.map_or(sum, |s| sum * s[lane]);
    let y = epilogue.bias.map_or(scaled, |b| scaled + b[lane]);
    match epilogue.activation {
        Some(Activation::QuickGelu) => y / (1.0 + (-1.702 * y).exp()),
        Some(Activation::Gelu) => gelu(y),
        None => y,
    }
}

/// All rows of the quantised `x` (`[rows, depth]`, scales `row_scales`) against one int8
/// panel; like `panel_rows`.
///
/// # Safety
/// As `panel_rows`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(all(target_arch = "wasm32", feature = "relaxed-simd"), target_feature(enable = "relaxed-simd"))]
unsafe fn int8_panel_rows(
    x: &[KernelActivation],
    row_scales: &[f32],
    rows: usize,
    depth: usize,
    weights: &[i8],
    offset: &[i32; PANEL],
    epilogue: &Epilogue,
    c: *mut f32,
    ldc: usize,
) {
    assert!(x.len() >= rows * depth && weights.len() >= depth * PANEL && row_scales.len() >= rows && depth % 4 == 0);
    let mut i = 0;
    while i + ROWS <= rows {
        int8_kernel::<ROWS>(depth, &x[i * depth..], &row_scales[i..], weights, offset, epilogue, c.add(i * ldc), ldc);
        i += ROWS;
    }
    let (left, scales, c) = (&x[i * depth..], &row_scales[i..], c.add(i * ldc));
    match rows - i {
        3 => int8_kernel::<3>(depth, left, scales, weights, offset, epilogue, c, ldc),
        2 => int8_kernel::<2>(depth, left, scales, weights, offset, epilogue, c, ldc),
        1 => int8_kernel::<1>(depth, left, scales, weights, offset, epilogue, c, ldc),
        _ => {}
    }
}

/// `MR` quantised rows times one int8 panel, SIMD128: per 4 inputs, the panel's 32 bytes
/// widened to four i16x8 (two lanes' pairs each), each row's pairs broadcast, 4 `dot_i16x8`.
#[cfg(all(target_arch = "wasm32", not(feature = "relaxed-simd")))]
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
#[allow(clippy::too_many_arguments)]
unsafe fn int8_kernel<const MR: usize>(
    depth: usize,
    a: &[i16],
    row_scales: &[f32],
    b: &[i8],
    _offset: &[i32; PANEL],
    epilogue: &Epilogue,
    c: *mut f32,
    ldc: usize,
) {
    use core::arch::wasm32::*;
    let (a, b) = (a.as_ptr(), b.as_ptr());
    let mut acc = [[i32x4_splat(0); 2]; MR];
    for quad in 0..depth / 4 {
        let low = v128_load(b.add(quad * 32) as *const v128);
        let high = v128_load(b.add(quad * 32 + 16) as *const v128);
        let (w00, w01) = (i16x8_extend_low_i8x16(low), i16x8_extend_high_i8x16(low));
        let (w10, w11) = (i16x8_extend_low_i8x16(high), i16x8_extend_high_i8x16(high));
        for (r, acc) in acc.iter_mut().enumerate() {
            let a0 = v128_load32_splat(a.add(r * depth + 4 * quad) as *const u32);
            let a1 = v128_load32_splat(a.add(r * depth + 4 * quad + 2) as *const u32);
            acc[0] = i32x4_add(acc[0], i32x4_add(i32x4_dot_i16x8(a0, w00), i32x4_dot_i16x8(a1, w01)));
            acc[1] = i32x4_add(acc[1], i32x4_add(i32x4_dot_i16x8(a0, w10), i32x4_dot_i16x8(a1, w11)));
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row_scale = f32x4_splat(row_scales[r]);
        for (half, &v) in acc.iter().enumerate() {
            let v = f32x4_mul(f32x4_convert_i32x4(v), row_scale);
            v128_store(c.add(r * ldc + 4 * half) as *mut v128, finish(v, half, epilogue));
        }
    }
}

/// The same with relaxed SIMD: per 4 inputs, two weight vectors (4 lanes × 4 inputs each), each
/// row's 4 offset activations broadcast, 2 `relaxed_dot_i8x16_i7x16_add`; the offset's share
/// taken off at the end (exact, in i32).
#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
#[cfg_attr(feature = "relaxed-simd", inline, target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "relaxed-simd"), inline(always))]
#[allow(clippy::too_many_arguments)]
unsafe fn int8_kernel<const MR: usize>(
    depth: usize,
    a: &[u8],
    row_scales: &[f32],
    b: &[i8],
    offset: &[i32; PANEL],
    epilogue: &Epilogue,
    c: *mut f32,
    ldc: usize,
) {
    use core::arch::wasm32::*;
    let (a, b) = (a.as_ptr(), b.as_ptr());
    let mut acc = [[i32x4_splat(0); 2]; MR];
    for quad in 0..depth / 4 {
        let w0 = v128_load(b.add(quad * 32) as *const v128);
        let w1 = v128_load(b.add(quad * 32 + 16) as *const v128);
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = v128_load32_splat(a.add(r * depth + 4 * quad) as *const u32);
            acc[0] = i32x4_relaxed_dot_i8x16_i7x16_add(w0, x, acc[0]);
            acc[1] = i32x4_relaxed_dot_i8x16_i7x16_add(w1, x, acc[1]);
        }
    }
    let offsets = [v128_load(offset.as_ptr() as *const v128), v128_load(offset.as_ptr().add(4) as *const v128)];
    for (r, acc) in acc.iter().enumerate() {
        let row_scale = f32x4_splat(row_scales[r]);
        for (half, &v) in acc.iter().enumerate() {
            let v = f32x4_mul(f32x4_convert_i32x4(i32x4_sub(v, offsets[half])), row_scale);
            v128_store(c.add(r * ldc + 4 * half) as *mut v128, finish(v, half, epilogue));
        }
    }
}

/// The same integer sums in plain Rust (natively: the tests check packing and arithmetic).
/// The panel is laid out `[depth][8]` first so that the compiler vectorises the sums.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
unsafe fn int8_kernel<const MR: usize>(
    depth: usize,
    a: &[i16],
    row_scales: &[f32],
    b: &[i8],
    offset: &[i32; PANEL],
    epilogue: &Epilogue,
    c: *mut f32,
    ldc: usize,
) {
    let mut panel = vec![[0i32; PANEL]; depth];
    for (p, column) in panel.iter_mut().enumerate() {
        for (l, w) in column.iter_mut().enumerate() {
            *w = b[int8_index(l, p)] as i32;
        }
    }
    for r in 0..MR {
        let mut sums = [0i32; PANEL];
        for (&x, column) in a[r * depth..(r + 1) * depth].iter().zip(&panel) {
            for (sum, &w) in sums.iter_mut().zip(column) {
                *sum += x as i32 * w;
            }
        }
        for l in 0..PANEL {
            *c.add(r * ldc + l) = finish_scalar((sums[l] - offset[l]) as f32 * row_scales[r], l, epilogue);
        }
    }
}

/// The machine's SIMD peak in this build, for the kernels' report (#17: GFLOP/s reached against
/// it): `iterations` rounds of 12 independent f32x4 multiply-adds `acc += a · b` (the kernels' own
/// `multiply_add`: fused in the relaxed build), `F32_PEAK_FLOP` per round. `b` moves every round
/// and each accumulator has its own `a`, so no product can be hoisted or shared; the result
/// depends on every one, so none is optimised away.
#[cfg(target_arch = "wasm32")]
#[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
pub fn f32_peak(iterations: u32) -> f32 {
    use core::arch::wasm32::*;
    // Opaque starting values: stable rustc 1.95's LLVM crashed (SCCP) folding the constants.
    let a: [v128; 12] = core::hint::black_box(core::array::from_fn(|j| f32x4_splat(1e-3 * (j as f32 + 1.0))));
    let (mut b, step) = core::hint::black_box((f32x4_splat(1e-6), f32x4_splat(1e-9)));
    let mut acc = core::hint::black_box([f32x4_splat(1.0); 12]);
    for _ in 0..iterations {
        b = f32x4_add(b, step);
        for (v, a) in acc.iter_mut().zip(&a) {
            *v = multiply_add(*a, b, *v);
        }
    }
    acc.iter().map(|v| f32x4_extract_lane::<0>(*v)).sum()
}

/// Floating-point operations in one round of `f32_peak` (12 × 4 lanes × multiply and add).
pub const F32_PEAK_FLOP: f64 = 96.0;

/// The same for the int8 kernels' instruction: per round, 12 independent `dot_i16x8` + add
/// (SIMD128) or `relaxed_dot_i8x16_i7x16_add` (relaxed), `int8_peak_macs()` products, one
/// operand moving every round and the other one per accumulator (nothing hoisted or shared).
#[cfg(target_arch = "wasm32")]
#[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
pub fn int8_peak(iterations: u32) -> i32 {
    use core::arch::wasm32::*;
    // Opaque starting values (see `f32_peak`).
    let weights: [v128; 12] = core::hint::black_box(core::array::from_fn(|j| i8x16_splat(j as i8 + 1)));
    let (mut x, one) = core::hint::black_box((i8x16_splat(3), i8x16_splat(1)));
    let mut acc = core::hint::black_box([i32x4_splat(0); 12]);
    for _ in 0..iterations {
        x = i8x16_add(x, one);
        for (v, w) in acc.iter_mut().zip(&weights) {
            #[cfg(feature = "relaxed-simd")]
            {
                *v = i32x4_relaxed_dot_i8x16_i7x16_add(x, *w, *v);
            }
            #[cfg(not(feature = "relaxed-simd"))]
            {
                *v = i32x4_add(*v, i32x4_dot_i16x8(x, *w));
            }
        }
    }
    acc.iter().map(|v| i32x4_extract_lane::<0>(*v)).fold(0, i32::wrapping_add)
}

/// Products (multiply-accumulates) in one round of `int8_peak`: 12 instructions of 16 (relaxed)
/// or 8 (SIMD128).
pub fn int8_peak_macs() -> f64 {
    if RELAXED_SIMD {
        12.0 * 16.0
    } else {
        12.0 * 8.0
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

    /// Int8 weights and `(−127..=127, scales)`, from `values`.
    fn int8_weight(inputs: usize, outputs: usize) -> (Vec<i8>, Vec<f32>) {
        let q: Vec<i8> = (0..inputs * outputs).map(|i| ((i * 37) % 255) as i32 - 127).map(|v| v as i8).collect();
        let scales = values(outputs, 0.1).iter().map(|s| s.abs() / 100.0 + 1e-3).collect::<Vec<_>>();
        (q, scales)
    }

    /// What the integer path must compute, written out: each row of `x` rounded to
    /// `−63..=63` times `max |row| / 63`, exact integer sums with the weights, then
    /// `sum · row scale · weight scale + bias`.
    fn int8_reference(x: &[f32], rows: usize, q: &[i8], scales: &[f32], bias: &[f32]) -> Vec<f32> {
        let outputs = scales.len();
        let inputs = q.len() / outputs;
        let mut y = vec![0.0; rows * outputs];
        for r in 0..rows {
            let row = &x[r * inputs..(r + 1) * inputs];
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let xq: Vec<i32> = row.iter().map(|v| if max > 0.0 { (v * 63.0 / max).round() as i32 } else { 0 }).collect();
            assert!(xq.iter().all(|v| v.abs() <= 63));
            for o in 0..outputs {
                let sum: i32 = (0..inputs).map(|p| xq[p] * q[o * inputs + p] as i32).sum();
                y[r * outputs + o] = sum as f32 * (max / 63.0) * scales[o] + bias[o];
            }
        }
        y
    }

    /// Int8 weights multiply in integers: exactly the reference's arithmetic, for every row
    /// remainder and input counts that are not a multiple of 4; and within the quantisation's
    /// error of the f32 product (7-bit activations: ≤ 1/126 of each row's largest value).
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn int8_panels_multiply_in_integers() {
        for inputs in [10, 13, 16, 64] {
            let outputs = 16;
            let (q, scales) = int8_weight(inputs, outputs);
            let bias = values(outputs, 3.0);
            let matrix = HostMatrix::Int8 { values: q.clone(), scales: scales.clone() };
            let dequantised = matrix.clone().into_f32();
            let packed = PackedWeight::new(matrix, outputs);
            for rows in [1, 2, 3, 4, 5, 7, 9] {
                let x = values(rows * inputs, 0.3 + rows as f32);
                let got = packed.matmul(&x, rows, Some(&bias), None);
                close(&got, &int8_reference(&x, rows, &q, &scales, &bias));
                // Against f32: each product's error is at most |w| · max|row| / 126.
                let f32_product = reference(&x, rows, &dequantised, outputs, &bias);
                for r in 0..rows {
                    let max = x[r * inputs..(r + 1) * inputs].iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    for o in 0..outputs {
                        let bound: f32 = (0..inputs).map(|p| dequantised[o * inputs + p].abs()).sum::<f32>() * max / 126.0;
                        let (g, e) = (got[r * outputs + o], f32_product[r * outputs + o]);
                        assert!((g - e).abs() <= bound * 1.001 + 1e-5, "row {r} output {o}: {g} vs f32 {e}, bound {bound}");
                    }
                }
            }
        }
    }

    /// The kernel's activations (SIMD, on every thread in WebAssembly) are exactly
    /// `quantise_rows`' integers: halves rounded away from zero (a row whose largest value is 63
    /// scales by 1, so 2.5 and −3.5 are ties), rows of zeros, non-finite rows, tails that are not
    /// a multiple of 16 and padding to `depth`.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn kernel_activations_are_the_written_out_quantisation() {
        for inputs in [5usize, 16, 37, 768] {
            let depth = inputs.div_ceil(4) * 4;
            let mut x = values(6 * inputs, inputs as f32);
            let ties = [63.0, 2.5, -3.5, 0.5, -0.5, 62.5, -62.5, 1.5, -1.5, 0.499_999_97, -2.500_000_2];
            for (v, t) in x[inputs..2 * inputs].iter_mut().zip(ties.iter().cycle()) {
                *v = *t;
            }
            x[inputs] = 63.0;
            x[2 * inputs..3 * inputs].fill(0.0);
            x[4 * inputs - 1] = f32::NAN;
            x[5 * inputs] = f32::NEG_INFINITY;
            let (expected, expected_scales) = quantise_rows(&x, 6, inputs, depth);
            let (got, scales) = quantise_for_kernel(&x, 6, inputs, depth);
            let expected: Vec<KernelActivation> = expected.iter().map(|&q| kernel_activation(q as i32)).collect();
            assert_eq!(got, expected, "{inputs} inputs");
            assert_eq!(scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>(), expected_scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>());
            assert_eq!(scales[1], 1.0);
            assert!(scales[3].is_nan() && scales[5].is_nan() && scales[2] == 0.0);
        }
    }

    /// Rows of zeros give the bias; a row with a NaN or an infinity gives NaN (as f32 would),
    /// and only in that row.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn int8_rows_of_zeros_and_non_finite_rows() {
        let (inputs, outputs) = (12, 8);
        let (q, scales) = int8_weight(inputs, outputs);
        let bias = values(outputs, 1.0);
        let packed = PackedWeight::new(HostMatrix::Int8 { values: q, scales }, outputs);
        let mut x = values(3 * inputs, 0.5);
        x[..inputs].fill(0.0);
        x[inputs + 5] = f32::NAN;
        let y = packed.matmul(&x, 3, Some(&bias), None);
        assert_eq!(&y[..outputs], &bias[..]);
        assert!(y[outputs..2 * outputs].iter().all(|v| v.is_nan()));
        assert!(y[2 * outputs..].iter().all(|v| v.is_finite()));
        x[inputs + 5] = f32::INFINITY;
        assert!(packed.matmul(&x, 3, Some(&bias), None)[outputs..2 * outputs].iter().all(|v| v.is_nan()));
    }

    /// Every panel starts on a 16-byte boundary (the whole buffer on a cache line), f32 and int8.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn panels_are_aligned_for_vector_loads() {
        for inputs in [13, 768] {
            let (q, scales) = int8_weight(inputs, 16);
            for weight in [HostMatrix::F32(values(inputs * 16, 0.5)), HostMatrix::Int8 { values: q.clone(), scales: scales.clone() }] {
                let packed = PackedWeight::new(weight, 16);
                let (start, panel_bytes) = match &packed.panels {
                    Panels::F32(w) => (w.as_ptr() as usize, inputs * PANEL * 4),
                    Panels::Int8 { values, depth, .. } => (values.as_ptr() as usize, depth * PANEL),
                };
                assert_eq!(start % 64, 0);
                assert_eq!(panel_bytes % 16, 0);
            }
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn only_whole_panels_fit() {
        assert!(PackedWeight::fits(768) && PackedWeight::fits(8));
        assert!(!PackedWeight::fits(0) && !PackedWeight::fits(12));
    }
}
