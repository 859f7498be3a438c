//! Shared helpers of the native tests: oracle files and comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path)
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(data(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The full-size random ViT-B/32 named by `FIELDCLIP_VITB32_WEIGHTS`, for the `#[ignore]`d
/// tests that need it. Unset is a failure here: those tests run only when asked for.
pub fn vitb32_weights() -> Vec<u8> {
    let path = std::env::var("FIELDCLIP_VITB32_WEIGHTS").expect(
        "FIELDCLIP_VITB32_WEIGHTS must name the full-size random ViT-B/32 (make_oracle.py models) for this test",
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn json(path: &str) -> Value {
    serde_json::from_slice(&read(path)).unwrap()
}

/// A float32 `.npy` file (little endian, C order) → its values.
pub fn npy_f32(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not an npy file");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'<f4'") && header.contains("'fortran_order': False"), "{header}");
    bytes[start + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

pub fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// Tip-Adapter's logits written out from its formula, as a reference:
/// `scale·f·Wᵀ + α·Σ_keys exp(−β(1 − f·key))·onehot(key's label)`, in f64.
pub fn tip_adapter_logits(
    image: &[f32],
    label_embeds: &[Vec<f32>],
    keys: &[(Vec<f32>, usize)],
    scale: f32,
    alpha: f32,
    beta: f32,
) -> Vec<f32> {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
    (0..label_embeds.len())
        .map(|c| {
            let cache: f64 = keys
                .iter()
                .filter(|(_, label)| *label == c)
                .map(|(key, _)| (-(beta as f64) * (1.0 - dot(image, key))).exp())
                .sum();
            (scale as f64 * dot(image, &label_embeds[c]) + alpha as f64 * cache) as f32
        })
        .collect()
}

/// Leave-one-out of the reference: (zero-shot correct, Tip-Adapter correct) over `examples`.
pub fn tip_adapter_leave_one_out(
    examples: &[(Vec<f32>, usize)],
    label_embeds: &[Vec<f32>],
    scale: f32,
    alpha: f32,
    beta: f32,
) -> (usize, usize) {
    let mut correct = (0, 0);
    for (i, (image, label)) in examples.iter().enumerate() {
        let others: Vec<(Vec<f32>, usize)> =
            examples.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, e)| e.clone()).collect();
        correct.0 += usize::from(argmax(&tip_adapter_logits(image, label_embeds, &[], scale, 0.0, beta)) == *label);
        correct.1 +=
            usize::from(argmax(&tip_adapter_logits(image, label_embeds, &others, scale, alpha, beta)) == *label);
    }
    correct
}
