//! The two layers built on `HostMatrix` weights (f32, or int8 with one scale per row from a q8
//! model pack): a dense layer and a token embedding table.
//!
//! Int8 weights can stay int8 on the device: a dense layer then widens its weight to f32 for
//! the one matmul it runs and scales the output columns (`x (q·s)ᵀ = (x qᵀ)·s`), so the model
//! takes a quarter of the memory of f32 weights. That suits burn's CPU backend, where the
//! weights live in the tab's WebAssembly memory; `HostMatrix::dequantise` gives f32 weights
//! for the backends that keep them elsewhere (the GPU).

use burn::module::Param;
use burn::nn::Embedding;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use burn::tensor::activation::{gelu, sigmoid};

use super::config::Activation;
use super::host_matrix::{transpose, HostMatrix};
use super::packed::PackedWeight;

fn int8_tensor(values: Vec<i8>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), (device, DType::I8))
}

fn vector(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Where the layers live, and how dense layers split their matmuls.
#[derive(Debug, Clone)]
pub struct Placement {
    pub device: Device,
    /// With more than one, a dense layer on few rows (one image: 50 tokens) runs as that many
    /// matmuls over column blocks of its weight, one batched call: burn's CPU backend then
    /// gives each thread whole matmuls, where splitting one small matmul across threads gained
    /// little (natively, ViT-B/32 batch 1 on 2 threads: 255 → 200 ms with 4 blocks). Same
    /// result up to float rounding.
    pub column_blocks: usize,
    /// Dense layers keep their weight on the host, packed for `PackedWeight`'s kernel, and
    /// run their matmul there (burn's CPU backend in WebAssembly, where that kernel is 1.3–1.5×
    /// faster than burn's; see `packed.rs`).
    pub packed_matmul: bool,
    /// The largest tensor the device holds in one piece, in bytes (`None`: no limit). WebGPU's
    /// default binding limit is 128 MiB, less than ViT-L/14's 151.8 MB token embedding table,
    /// so a table above it is kept in parts (`EmbeddingTable::Parts`).
    pub largest_tensor: Option<usize>,
}

impl Placement {
    pub fn new(device: &Device) -> Self {
        Self { device: device.clone(), column_blocks: 1, packed_matmul: false, largest_tensor: None }
    }
}

/// Up to this many rows a dense layer splits its columns (see `Placement::column_blocks`);
/// larger matmuls parallelise well as they are (batch 8, many prompts).
const SPLIT_MAX_ROWS: usize = 128;

/// The weight of a dense layer.
#[derive(Debug)]
enum DenseWeight {
    /// `[in, out]`.
    Float(Tensor<2>),
    /// Kept int8 `[out, in]`, with `scales` `[out]`.
    Int8 { weight: Tensor<2, Int>, scales: Tensor<1> },
    /// On the host, with its bias (see `Placement::packed_matmul`).
    Packed { weight: PackedWeight, bias: Option<Vec<f32>> },
}

/// `y = x Wᵀ + b` for a weight `W` given `[out, in]` (PyTorch's orientation).
#[derive(Debug)]
pub struct Dense {
    weight: DenseWeight,
    bias: Option<Tensor<1>>,
    inputs: usize,
    outputs: usize,
    column_blocks: usize,
    /// Applied to the output (fused into the packed matmul where it can be).
    activation: Option<Activation>,
}

impl Dense {
    pub fn new(weight: HostMatrix, outputs: usize, bias: Option<Vec<f32>>, at: &Placement) -> Self {
        let device = &at.device;
        let inputs = weight.len() / outputs;
        if at.packed_matmul && PackedWeight::fits(outputs) {
            let weight = DenseWeight::Packed { weight: PackedWeight::new(weight, outputs), bias };
            return Self { weight, bias: None, inputs, outputs, column_blocks: 1, activation: None };
        }
        let weight = match weight {
            HostMatrix::F32(w) => DenseWeight::Float(Tensor::from_data(
                TensorData::new(transpose(&w, outputs, inputs), [inputs, outputs]),
                device,
            )),
            HostMatrix::Int8 { values, scales } => DenseWeight::Int8 {
                weight: int8_tensor(values, [outputs, inputs], device),
                scales: vector(scales, device),
            },
        };
        let column_blocks = if at.column_blocks > 1 && outputs % at.column_blocks == 0 { at.column_blocks } else { 1 };
        Self { weight, bias: bias.map(|b| vector(b, device)), inputs, outputs, column_blocks, activation: None }
    }

    /// The same layer followed by `activation`.
    pub fn with_activation(self, activation: Activation) -> Self {
        Self { activation: Some(activation), ..self }
    }

    /// `x`: `[..., in]` → `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if let (DenseWeight::Float(w), 1) = (&self.weight, self.column_blocks) {
            // All rows as one matmul, `[1, …, 1, rows, in]`, keeping x's rank: burn's kernel
            // fusion (GPU) stops at a reshape to fewer dimensions, which kept the bias and the
            // activation out of the neighbouring kernels. (The weight broadcast over x's leading
            // dimensions instead made many small matmuls: 30 prompts of 8 tokens, 30 matmuls of
            // 8 rows, 1.5× slower on SwiftShader.)
            let dims = x.dims();
            let mut rows = [1; D];
            rows[D - 1] = self.inputs;
            if D >= 2 {
                rows[D - 2] = x.shape().num_elements() / self.inputs;
            }
            let mut out = dims;
            out[D - 1] = self.outputs;
            // The bias's view at the output's shape is made before the matmul: kernel fusion
            // (GPU) takes the ops that follow a matmul into its kernel only while each can be
            // fused, and the reshape and the broadcast (expand) of the bias that the add made
            // between the matmul and itself ended that at the matmul.
            let bias = self.bias.as_ref().map(|b| b.clone().unsqueeze::<D>().expand(out));
            // Back to x's shape before the bias, so that the bias, the activation and what
            // follows (a residual sum) can be one kernel.
            let y = x.reshape(rows).matmul(w.clone().unsqueeze::<D>()).reshape(out);
            let y = match bias {
                Some(bias) => y + bias,
                None => y,
            };
            return self.activate(y);
        }
        let dims = x.dims();
        let rows = x.shape().num_elements() / self.inputs;
        // All leading dimensions as rows of one matmul.
        let x = x.reshape([rows, self.inputs]);
        let blocks = if rows <= SPLIT_MAX_ROWS { self.column_blocks } else { 1 };
        let (b, o, i) = (blocks, self.outputs / blocks, self.inputs);
        let y = match &self.weight {
            DenseWeight::Float(w) if b == 1 => x.matmul(w.clone()),
            // [in, out] → [blocks, in, out/blocks] (a view), one batched matmul, back to [rows, out].
            DenseWeight::Float(w) => {
                x.unsqueeze::<3>().matmul(w.clone().reshape([i, b, o]).swap_dims(0, 1)).swap_dims(0, 1).reshape([rows, self.outputs])
            }
            DenseWeight::Packed { weight, bias } => {
                let device = x.device();
                // The activation is applied in the kernel.
                let y = weight.matmul(&host_values(x), rows, bias.as_deref(), self.activation);
                let y: Tensor<2> = Tensor::from_data(TensorData::new(y, [rows, self.outputs]), &device);
                let mut out = dims;
                out[D - 1] = self.outputs;
                return y.reshape(out);
            }
            // The f32 weight exists only for this call; the output columns take the scales.
            DenseWeight::Int8 { weight, scales } => {
                let w = weight.clone().float();
                let y = if b == 1 {
                    x.matmul(w.transpose())
                } else {
                    x.unsqueeze::<3>().matmul(w.reshape([b, o, i]).swap_dims(1, 2)).swap_dims(0, 1).reshape([rows, self.outputs])
                };
                y * scales.clone().unsqueeze::<2>()
            }
        };
        let y = match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze::<2>(),
            None => y,
        };
        let y = self.activate(y);
        let mut out = dims;
        out[D - 1] = self.outputs;
        y.reshape(out)
    }

    /// For a layer whose weight is packed on the host (`Placement::packed_matmul`): `x`
    /// `[rows, in]` → `[rows, out]`, bias and activation applied, without leaving the host.
    /// `None` for any other layer.
    pub fn forward_host(&self, x: &[f32], rows: usize) -> Option<Vec<f32>> {
        match &self.weight {
            DenseWeight::Packed { weight, bias } => Some(weight.matmul(x, rows, bias.as_deref(), self.activation)),
            _ => None,
        }
    }

    /// Whether `forward_host` runs this layer.
    pub fn runs_on_host(&self) -> bool {
        matches!(self.weight, DenseWeight::Packed { .. })
    }

    fn activate<const D: usize>(&self, y: Tensor<D>) -> Tensor<D> {
        match self.activation {
            Some(Activation::QuickGelu) => y.clone() * sigmoid(y * 1.702),
            Some(Activation::Gelu) => gelu(y),
            None => y,
        }
    }
}

/// A CPU-backend tensor's values (the read is synchronous there).
pub fn host_values(x: Tensor<2>) -> Vec<f32> {
    let data = x.into_data();
    if data.dtype() == DType::F32 {
        if let Ok(values) = data.as_slice::<f32>() {
            return values.to_vec();
        }
    }
    data.iter::<f32>().collect()
}

/// A token embedding table `[vocab, width]`.
#[derive(Debug)]
pub enum EmbeddingTable {
    Float(Embedding),
    Int8 { table: Tensor<2, Int>, scales: Tensor<1> },
    /// An f32 table too large for one tensor on the device (`Placement::largest_tensor`), as
    /// consecutive blocks of rows: `(first row, rows)`.
    Parts(Vec<(usize, Tensor<2>)>),
}

impl EmbeddingTable {
    pub fn new(table: HostMatrix, vocab: usize, at: &Placement) -> Self {
        let device = &at.device;
        let width = table.len() / vocab;
        let row_bytes = width * std::mem::size_of::<f32>();
        match table {
            HostMatrix::F32(t) if at.largest_tensor.is_some_and(|largest| vocab * row_bytes > largest) => {
                let rows_per_part = (at.largest_tensor.unwrap_or(usize::MAX) / row_bytes.max(1)).max(1);
                let parts = t
                    .chunks(rows_per_part * width)
                    .enumerate()
                    .map(|(i, rows)| {
                        let tensor = Tensor::from_data(TensorData::new(rows.to_vec(), [rows.len() / width, width]), device);
                        (i * rows_per_part, tensor)
                    })
                    .collect();
                EmbeddingTable::Parts(parts)
            }
            HostMatrix::F32(t) => EmbeddingTable::Float(Embedding {
                weight: Param::from_tensor(Tensor::from_data(TensorData::new(t, [vocab, width]), device)),
            }),
            HostMatrix::Int8 { values, scales } => {
                EmbeddingTable::Int8 { table: int8_tensor(values, [vocab, width], device), scales: vector(scales, device) }
            }
        }
    }

    /// `ids`: `[batch, len]` → `[batch, len, width]`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        match self {
            EmbeddingTable::Float(embedding) => embedding.forward(ids),
            EmbeddingTable::Int8 { table, scales } => {
                let [batch, len] = ids.dims();
                let width = table.dims()[1];
                let ids = ids.reshape([batch * len]);
                let rows = table.clone().select(0, ids.clone()).float();
                let rows = rows * scales.clone().select(0, ids).unsqueeze_dim::<2>(1);
                rows.reshape([batch, len, width])
            }
            // Each part gathers its own rows (ids outside it read its row 0) and the rows of
            // the part each id falls in are kept.
            EmbeddingTable::Parts(parts) => {
                let [batch, len] = ids.dims();
                let ids = ids.reshape([batch * len]);
                let mut rows: Option<Tensor<2>> = None;
                for (first, part) in parts {
                    let [count, width] = part.dims();
                    let local = ids.clone().sub_scalar(*first as i64).clamp(0, count as i64 - 1);
                    let gathered = part.clone().select(0, local);
                    rows = Some(match rows {
                        None => gathered,
                        Some(rows) => {
                            let inside = ids.clone().greater_equal_elem(*first as i64).unsqueeze_dim::<2>(1).expand([batch * len, width]);
                            rows.mask_where(inside, gathered)
                        }
                    });
                }
                let rows = rows.expect("a table has at least one part");
                let width = rows.dims()[1];
                rows.reshape([batch, len, width])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.61 + seed).sin()).collect()
    }

    /// A packed dense layer (as in WebAssembly) gives what burn's matmul gives, f32 and int8,
    /// with each activation, on a `[batch, tokens, in]` input. (Natively the packed layer runs
    /// the scalar kernel; `wasm-pack test` runs this in WebAssembly, on the SIMD128 one.)
    /// With int8 weights the packed layer multiplies quantised activations (`packed`'s notes):
    /// burn's matmul then gets the input as the kernel sees it, each row rounded to 63 levels.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn packed_layers_match_burns_matmul() {
        let device = Device::flex();
        let (inputs, outputs) = (12, 16);
        let q: Vec<i8> = (0..inputs * outputs).map(|i| ((i * 53) % 251) as i32 - 125).map(|v| v as i8).collect();
        let weights = [
            HostMatrix::F32(values(inputs * outputs, 0.2)),
            HostMatrix::Int8 { values: q, scales: (0..outputs).map(|o| 0.01 + o as f32 * 1e-3).collect() },
        ];
        let rows = 2 * 5;
        let x_values = values(rows * inputs, 1.0);
        let (x_quantised, row_scales) = super::super::packed::quantise_rows(&x_values, rows, inputs, inputs);
        let x_as_the_int8_kernel_sees_it: Vec<f32> =
            x_quantised.iter().enumerate().map(|(i, &v)| v as f32 * row_scales[i / inputs]).collect();
        let x = Tensor::<3>::from_data(TensorData::new(x_values, [2, 5, inputs]), &device);
        let x_seen = Tensor::<3>::from_data(TensorData::new(x_as_the_int8_kernel_sees_it, [2, 5, inputs]), &device);
        for weight in weights {
            let int8 = matches!(weight, HostMatrix::Int8 { .. });
            for activation in [None, Some(Activation::QuickGelu), Some(Activation::Gelu)] {
                let layer = |packed_matmul| {
                    let at = Placement { device: device.clone(), column_blocks: 1, packed_matmul, largest_tensor: None };
                    let dense = Dense::new(weight.clone(), outputs, Some(values(outputs, 3.0)), &at);
                    assert_eq!(matches!(dense.weight, DenseWeight::Packed { .. }), packed_matmul);
                    match activation {
                        Some(a) => dense.with_activation(a),
                        None => dense,
                    }
                };
                let expected = layer(false).forward(if int8 { x_seen.clone() } else { x.clone() });
                let got = layer(true).forward(x.clone());
                assert_eq!(got.dims(), [2, 5, outputs]);
                let (got, expected) = (got.into_data().try_to_vec::<f32>().unwrap(), expected.into_data().try_to_vec::<f32>().unwrap());
                for (g, e) in got.iter().zip(&expected) {
                    assert!((g - e).abs() <= 1e-5 * (1.0 + e.abs()), "int8 {int8}, {activation:?}: {g} vs {e}");
                }
            }
        }
    }

    /// A table above the device's largest tensor is kept in parts and looks up the same rows,
    /// ids in every part and at both ends.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_table_in_parts_looks_up_the_same_rows() {
        let device = Device::flex();
        let (vocab, width) = (10, 4);
        let table = HostMatrix::F32(values(vocab * width, 0.4));
        let whole = EmbeddingTable::new(table.clone(), vocab, &Placement::new(&device));
        // 3 rows (48 bytes) a part: 4 parts, the last of 1 row.
        let at = Placement { largest_tensor: Some(3 * width * 4 + 5), ..Placement::new(&device) };
        let parts = EmbeddingTable::new(table, vocab, &at);
        assert!(matches!(&parts, EmbeddingTable::Parts(p) if p.len() == 4));
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 9, 3, 2, 5, 6, 8, 1], [2, 4]), &device);
        let (a, b) = (whole.forward(ids.clone()), parts.forward(ids));
        assert_eq!(a.dims(), [2, 4, width]);
        assert_eq!(a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
    }
}
