//! Identities by content: of a photo (to index it once) and of a weights file (so that a
//! gallery or adapter is only used with the model whose embeddings it holds).

use sha2::{Digest, Sha256};

/// The SHA-256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Samples hashed from a weights file: enough to tell trained models apart, and cheap on a
/// 1.7 GB file in the browser, where hashing all of it would take seconds.
const SAMPLES: u64 = 64;
const SAMPLE_BYTES: u64 = 16 * 1024;

/// `"{architecture} {16 hex digits}"`, e.g. `"ViT-B/32 3f9c…"`: the architecture for people, and
/// a SHA-256 of the file's length and 64 evenly spaced 16 KiB samples (the whole file when
/// smaller) for telling two checkpoints of one architecture apart.
pub fn model_id(architecture: &str, weights: &[u8]) -> String {
    let len = weights.len() as u64;
    let mut hasher = Sha256::new();
    hasher.update(len.to_le_bytes());
    if len <= SAMPLES * SAMPLE_BYTES {
        hasher.update(weights);
    } else {
        for i in 0..SAMPLES {
            let start = (i * (len - SAMPLE_BYTES) / (SAMPLES - 1)) as usize;
            hasher.update(&weights[start..start + SAMPLE_BYTES as usize]);
        }
    }
    let hex: String = hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{architecture} {hex}")
}
