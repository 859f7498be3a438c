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
    let mut digest = SampledDigest::new(weights.len() as u64);
    digest.update(weights);
    format!("{architecture} {}", digest.finish())
}

/// The 16 hex digits of `model_id`, computed on a file that arrives in pieces.
#[derive(Clone)]
pub struct SampledDigest {
    len: u64,
    /// Bytes seen so far.
    at: u64,
    hasher: Sha256,
}

impl SampledDigest {
    /// For a file of `len` bytes, to be fed from its start.
    pub fn new(len: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(len.to_le_bytes());
        Self { len, at: 0, hasher }
    }

    /// The next bytes of the file.
    pub fn update(&mut self, chunk: &[u8]) {
        let (from, to) = (self.at, self.at + chunk.len() as u64);
        self.at = to;
        if self.len <= SAMPLES * SAMPLE_BYTES {
            self.hasher.update(chunk);
            return;
        }
        // Samples do not overlap here (they are more than SAMPLE_BYTES apart), so feeding
        // each one's part of every chunk in order hashes exactly the samples, in order.
        for i in 0..SAMPLES {
            let start = i * (self.len - SAMPLE_BYTES) / (SAMPLES - 1);
            let (s, e) = (start.max(from), (start + SAMPLE_BYTES).min(to));
            if s < e {
                self.hasher.update(&chunk[(s - from) as usize..(e - from) as usize]);
            }
        }
    }

    pub fn finish(self) -> String {
        self.hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}
