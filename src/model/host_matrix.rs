//! A weight matrix on the host, as read from a checkpoint or a q8 pack: f32, or int8 with one
//! scale per row. Its own module so that the layers (`dense`) and the packed matmul (`packed`)
//! both take it without depending on each other.

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
