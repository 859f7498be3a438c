//! A mutation fuzzer over the readers of untrusted bytes (issue #19): the weights reader, image
//! decoding + preprocessing, and the adapter and gallery JSON readers. Seeds are small valid
//! files (made here) and every file kept in `tests/hostile/fuzz/` (inputs that once broke
//! something); each case is a seed with a few random edits: bit flips, bytes set to boundary
//! values, 16/32/64-bit fields overwritten with extremes, cuts, splices, repeated spans, and for
//! JSON numbers swapped for extremes.
//!
//! Every case must return (`Ok` or `Err`) without a panic, within `CASE_TIME_LIMIT`. The seed is
//! fixed, so a run is repeatable: `FIELDCLIP_FUZZ_CASES=100000 cargo test --release --test fuzz`
//! runs longer (and `FIELDCLIP_FUZZ_SEED` picks another sequence). An input that fails is
//! written to `target/tmp/fuzz-failures/`: keep it in `tests/hostile/fuzz/` once fixed.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fieldclip::preprocess::{preprocess, Pipeline, PreprocessConfig};
use fieldclip::{Adapter, Index};
use image::{DynamicImage, ImageBuffer, Rgb, Rgba};

/// Cases per target in `cargo test` (a few seconds each).
const DEFAULT_CASES: usize = 1500;
const CASE_TIME_LIMIT: Duration = Duration::from_secs(10);

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn cases() -> usize {
    std::env::var("FIELDCLIP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES)
}

fn seed() -> u64 {
    std::env::var("FIELDCLIP_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x00f1_e1dc_11b0)
}

const BOUNDARY_BYTES: [u8; 6] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
const BOUNDARY_WORDS: [u64; 8] = [0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX];

/// One to four random edits of `input`. `focus`: edits fall in the first `focus` bytes (a
/// header) three times out of four.
fn mutate(rng: &mut Rng, input: &[u8], focus: usize) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        let window = if focus > 0 && rng.below(4) != 0 { focus.min(len) } else { len };
        let at = rng.below(window.max(1));
        match rng.below(9) {
            0 if len > 0 => out[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => out[at.min(len - 1)] = BOUNDARY_BYTES[rng.below(BOUNDARY_BYTES.len())],
            2 | 3 => {
                let width = [2, 4, 8][rng.below(3)];
                let value = BOUNDARY_WORDS[rng.below(BOUNDARY_WORDS.len())].wrapping_add(rng.below(3) as u64).wrapping_sub(1);
                let bytes = if rng.below(2) == 0 { value.to_le_bytes() } else { value.to_be_bytes() };
                let end = (at + width).min(len);
                out[at.min(end)..end].copy_from_slice(&bytes[..end - at.min(end)]);
            }
            4 => out.truncate(at),
            5 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                out.drain(at.min(end)..end);
            }
            6 => {
                let insert: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                let at = at.min(len);
                out.splice(at..at, insert);
            }
            7 if len > 0 => {
                // Repeat a span (a chunk, a marker) a few times.
                let start = at.min(len - 1);
                let span = out[start..(start + 1 + rng.below(32)).min(len)].to_vec();
                for _ in 0..1 + rng.below(4) {
                    out.splice(start..start, span.iter().copied());
                }
            }
            _ => {
                // Splice in bytes from elsewhere in the input.
                if len > 1 {
                    let from = rng.below(len);
                    let n = rng.below(32).min(len - from).min(len - at.min(len));
                    let piece = out[from..from + n].to_vec();
                    let at = at.min(len - n);
                    out[at..at + n].copy_from_slice(&piece);
                }
            }
        }
    }
    out
}

/// JSON numbers replaced by extremes (and the byte edits above).
fn mutate_json(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    const EXTREMES: [&str; 10] = ["1e39", "-1e39", "1e999", "-0", "1e-45", "18446744073709551616", "-1", "0.5", "[]", "null"];
    let text = String::from_utf8_lossy(input).to_string();
    let numbers: Vec<(usize, usize)> = {
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() || (bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || b"-+.eE".contains(&bytes[i])) {
                    i += 1;
                }
                spans.push((start, i));
            } else {
                i += 1;
            }
        }
        spans
    };
    if !numbers.is_empty() && rng.below(2) == 0 {
        let (start, end) = numbers[rng.below(numbers.len())];
        let mut out = text[..start].to_string();
        out.push_str(EXTREMES[rng.below(EXTREMES.len())]);
        out.push_str(&text[end..]);
        out.into_bytes()
    } else {
        mutate(rng, input, 0)
    }
}

/// The inputs kept from earlier runs whose name starts with `prefix`.
fn kept(prefix: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)));
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Runs `target` on every kept input and on `cases()` mutants of the seeds; fails listing every
/// input that panicked or ran too long (written to target/tmp/fuzz-failures/).
fn fuzz(name: &str, seeds: &[Vec<u8>], mutant: &mut dyn FnMut(&mut Rng, &[u8]) -> Vec<u8>, target: &dyn Fn(&[u8])) {
    let mut rng = Rng(seed() ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let mut inputs: Vec<Vec<u8>> = kept(name);
    inputs.extend(seeds.iter().cloned());
    let failures_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let mut failures = Vec::new();
    let total = cases();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..inputs.len() + total {
        let input = if i < inputs.len() {
            inputs[i].clone()
        } else {
            let pick = rng.below(seeds.len());
            mutant(&mut rng, &seeds[pick])
        };
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        let took = start.elapsed();
        if outcome.is_err() || took > CASE_TIME_LIMIT {
            std::fs::create_dir_all(&failures_dir).unwrap();
            let file = failures_dir.join(format!("{name}-{i:06}.bin"));
            std::fs::write(&file, &input).unwrap();
            let why = if outcome.is_err() { "panicked".to_string() } else { format!("took {took:?}") };
            failures.push(format!("{} {why}", file.display()));
        }
    }
    std::panic::set_hook(previous_hook);
    assert!(failures.is_empty(), "{name}: {} of {} inputs failed:\n{}", failures.len(), inputs.len() + total, failures.join("\n"));
}

fn tiny_weights() -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny/model.safetensors")).unwrap()
}

/// A small safetensors file: three tensors of mixed dtypes.
fn small_safetensors() -> Vec<u8> {
    let header = br#"{"__metadata__":{"format":"pt"},"logit_scale":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a.weight":{"dtype":"F16","shape":[2,3],"data_offsets":[4,16]},"b.bias":{"dtype":"F32","shape":[3],"data_offsets":[16,28]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend((0..28u8).map(|i| i.wrapping_mul(13)));
    out
}

#[test]
fn weights_reader_never_panics() {
    let tiny = tiny_weights();
    let header_len = 8 + u64::from_le_bytes(tiny[..8].try_into().unwrap()) as usize;
    let config = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny/config.json")).unwrap();
    let seeds = vec![tiny, small_safetensors()];
    fuzz(
        "weights",
        &seeds,
        &mut |rng, seed| mutate(rng, seed, header_len),
        &|bytes| {
            let _ = fieldclip::weights::load(bytes, Some(&config));
            // Streamed in two pieces, as the page and CLI read.
            let mut reader = fieldclip::weights::WeightsReader::new();
            let cut = bytes.len() / 3;
            if reader.push(&bytes[..cut]).is_ok() && reader.push(&bytes[cut..]).is_ok() {
                let _ = reader.finish(None);
            }
        },
    );
}

fn encoded(image: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

#[test]
fn image_decoding_and_preprocessing_never_panic() {
    let rgb = DynamicImage::ImageRgb8(ImageBuffer::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, 90])));
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(12, 20, |x, y| Rgba([(x * 20) as u8, 40, (y * 12) as u8, (x * y) as u8])));
    let seeds = vec![
        encoded(rgb.clone(), image::ImageFormat::Jpeg),
        encoded(rgb.clone(), image::ImageFormat::Png),
        encoded(rgba.clone(), image::ImageFormat::Png),
        encoded(rgb.clone(), image::ImageFormat::Gif),
        encoded(rgba, image::ImageFormat::WebP),
        encoded(rgb, image::ImageFormat::Bmp),
    ];
    let configs = [PreprocessConfig::openai(32, Pipeline::HuggingFace), PreprocessConfig::openai(32, Pipeline::OpenClip)];
    fuzz("image", &seeds, &mut |rng, seed| mutate(rng, seed, 64), &|bytes| {
        for config in &configs {
            if let Ok(pixels) = preprocess(bytes, config) {
                assert_eq!(pixels.len(), 3 * 32 * 32);
                assert!(pixels.iter().all(|p| p.is_finite()));
            }
        }
    });
}

#[test]
fn adapter_and_gallery_readers_never_panic() {
    let adapter = br#"{"format":1,"model":"m 01","dim":3,"labels":["cat","dog"],"templates":["a photo of a {}."],"alpha":1.0,"beta":5.5,"keys":[[0.6,0.8,0.0],[0.0,0.6,0.8]],"key_labels":[0,1],"probe":{"blend":0.5,"l2":0.1,"weights":[[1.0,0.0,0.0],[0.0,1.0,0.0]]}}"#;
    let gallery = br#"{"format":1,"model":"m 01","dim":3,"entries":[{"name":"a.jpg","sha256":"00","embedding":[0.6,0.8,0.0]},{"name":"b.jpg","sha256":"01","embedding":[0.0,0.6,0.8]}]}"#;
    let seeds = vec![adapter.to_vec(), gallery.to_vec()];
    let label_embeds = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0];
    fuzz("json", &seeds, &mut mutate_json, &|bytes| {
        if let Ok(a) = Adapter::from_json(bytes) {
            // A file that reads must also work: logits and the check, finite.
            if a.dim == 3 && a.labels.len() == 2 {
                if let Ok(logits) = a.logits(&[0.6, 0.0, 0.8], &label_embeds, 100.0) {
                    assert!(logits.iter().all(|l| !l.is_nan()), "{logits:?}");
                }
                let _ = a.leave_one_out(&label_embeds, 100.0);
            }
        }
        if let Ok(index) = Index::from_json(bytes) {
            if let Ok(hits) = index.search(&[0.0, 0.0, 1.0], 5) {
                assert!(hits.iter().all(|h| h.score.is_finite()), "{hits:?}");
            }
        }
    });
}

#[test]
fn taxa_lists_tree_of_life_files_and_packs_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/taxonomy");
    let csv = std::fs::read(dir.join("taxa.csv")).unwrap();
    let names = std::fs::read(dir.join("txt_emb_species.json")).unwrap();
    let npy = std::fs::read(dir.join("txt_emb_species.npy")).unwrap();
    let pack = fieldclip::taxonomy::read_tree_of_life(Cursor::new(&npy), &names, None).unwrap().to_pack();
    let seeds = vec![csv, names.clone(), npy, pack];
    fuzz("taxa", &seeds, &mut |rng, seed| mutate(rng, seed, 160), &|bytes| {
        let _ = fieldclip::taxonomy::parse_taxa(&String::from_utf8_lossy(bytes));
        if let Ok(mut reader) = fieldclip::taxonomy::TreeOfLifeReader::new(&names, None) {
            let cut = bytes.len() / 2;
            if reader.push(&bytes[..cut]).is_ok() && reader.push(&bytes[cut..]).is_ok() {
                let _ = reader.finish();
            }
        }
        if let Ok(tree) = fieldclip::taxonomy::TaxaEmbeddings::from_pack(bytes) {
            let index = fieldclip::taxonomy::TaxonIndex::new(tree.taxa.clone());
            let probs = vec![1.0 / tree.taxa.len().max(1) as f32; tree.taxa.len()];
            let _ = index.classify(&probs, 0.8);
        }
    });
}
