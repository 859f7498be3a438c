//! Weight matrices that are either f32 or int8 with one scale per row (a q8 model pack), and
//! the two layers built on them: a dense layer and a token embedding table.
//!
//! Int8 weights can stay int8 on the device: a dense layer then widens its weight to f32 for
//! the one matmul it runs and scales the output columns (`x (q·s)ᵀ = (x qᵀ)·s`), so the model
//! takes a quarter of the memory of f32 weights. That suits burn's CPU backend, where the
//! weights live in the tab's WebAssembly memory; `HostMatrix::dequantise` gives f32 weights
//! for the backends that keep them elsewhere (the GPU).

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

/// A weight matrix on the host, row-major `[rows, cols]` in the checkpoint's orientation.
#[derive(Debug, Clone)]
pub enum HostMatrix {
    F32(Vec<f32>),
    /// `value[r][c] = values[r·cols + c] · scales[r]`.
    Int8 { values: Vec<i8>, scales: Vec<f32> },
}

impl HostMatrix {
    pub fn len(&self) -> usize {
        match self {
            HostMatrix::F32(v) => v.len(),
            HostMatrix::Int8 { values, .. } => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The f32 values (int8 rows multiplied by their scales).
    pub fn into_f32(self) -> Vec<f32> {
        match self {
            HostMatrix::F32(v) => v,
            HostMatrix::Int8 { values, scales } => {
                let cols = values.len() / scales.len().max(1);
                values.chunks_exact(cols.max(1)).zip(&scales).flat_map(|(row, s)| row.iter().map(move |&q| q as f32 * s)).collect()
            }
        }
    }

    /// The same matrix with f32 values.
    pub fn dequantise(self) -> Self {
        HostMatrix::F32(self.into_f32())
    }

    /// Matrices stacked row after row (q, k and v into one). Int8 only if all parts are.
    pub fn concat_rows(parts: Vec<HostMatrix>) -> HostMatrix {
        if parts.iter().all(|p| matches!(p, HostMatrix::Int8 { .. })) {
            let (mut values, mut scales) = (Vec::new(), Vec::new());
            for part in parts {
                if let HostMatrix::Int8 { values: v, scales: s } = part {
                    values.extend(v);
                    scales.extend(s);
                }
            }
            HostMatrix::Int8 { values, scales }
        } else {
            HostMatrix::F32(parts.into_iter().flat_map(HostMatrix::into_f32).collect())
        }
    }
}

/// `[rows, cols]` f32 → `[cols, rows]`.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

fn int8_tensor(values: Vec<i8>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), (device, DType::I8))
}

fn vector(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// `y = x Wᵀ + b` for a weight `W` given `[out, in]` (PyTorch's orientation).
#[derive(Debug)]
pub enum Dense {
    /// burn's `Linear`, weight stored `[in, out]`.
    Float(Linear),
    /// Weight kept int8 `[out, in]`, `scales` `[out]`.
    Int8 { weight: Tensor<2, Int>, scales: Tensor<1>, bias: Option<Tensor<1>> },
}

impl Dense {
    pub fn new(weight: HostMatrix, outputs: usize, bias: Option<Vec<f32>>, device: &Device) -> Self {
        let inputs = weight.len() / outputs;
        let bias = bias.map(|b| vector(b, device));
        match weight {
            HostMatrix::F32(w) => {
                let w = Tensor::from_data(TensorData::new(transpose(&w, outputs, inputs), [inputs, outputs]), device);
                Dense::Float(Linear { weight: Param::from_tensor(w), bias: bias.map(Param::from_tensor) })
            }
            HostMatrix::Int8 { values, scales } => Dense::Int8 {
                weight: int8_tensor(values, [outputs, inputs], device),
                scales: vector(scales, device),
                bias,
            },
        }
    }

    /// `x`: `[..., in]` → `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Dense::Float(linear) => linear.forward(x),
            Dense::Int8 { weight, scales, bias } => {
                let dims = x.dims();
                let [outputs, inputs] = weight.dims();
                let rows = x.shape().num_elements() / inputs;
                // All leading dimensions as rows of one matmul; the f32 weight exists only
                // for this call.
                let y = x.reshape([rows, inputs]).matmul(weight.clone().float().transpose());
                let y = y * scales.clone().unsqueeze::<2>();
                let y = match bias {
                    Some(b) => y + b.clone().unsqueeze::<2>(),
                    None => y,
                };
                let mut out = dims;
                out[D - 1] = outputs;
                y.reshape(out)
            }
        }
    }
}

/// A token embedding table `[vocab, width]`.
#[derive(Debug)]
pub enum EmbeddingTable {
    Float(Embedding),
    Int8 { table: Tensor<2, Int>, scales: Tensor<1> },
}

impl EmbeddingTable {
    pub fn new(table: HostMatrix, vocab: usize, device: &Device) -> Self {
        let width = table.len() / vocab;
        match table {
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
        }
    }
}
