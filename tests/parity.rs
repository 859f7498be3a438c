//! The model against the reference implementations (`../shared/oracle`, copied to tests/data):
//! transformers' CLIPModel (`tiny`), open_clip (`openclip_tiny`), and optionally the
//! full-size random ViT-B/32 (`FIELDCLIP_VITB32_WEIGHTS`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use burn::tensor::Device;
use common::*;
use fieldclip::clip::{normalize_rows, read as read_tensor};
use fieldclip::ClipModel;
use serde_json::Value;

/// Tolerances of the issue (float32 reference).
const EMBED_ATOL: f32 = 1e-4;
const COSINE_MIN: f32 = 0.99999;
const LOGIT_ATOL: f32 = 1e-3;
const PROB_ATOL: f32 = 1e-4;

fn load(weights: &[u8], config: &[u8]) -> ClipModel {
    ClipModel::from_bytes(weights, Some(config), &Device::flex()).expect("load model")
}

fn assert_rows_close(what: &str, got: &[f32], want: &[Vec<f32>], atol: f32) {
    let dim = want[0].len();
    assert_eq!(got.len(), dim * want.len(), "{what}: size");
    let mut worst = 0.0f32;
    let mut worst_cos = 1.0f32;
    for (i, w) in want.iter().enumerate() {
        let g = &got[i * dim..(i + 1) * dim];
        worst = worst.max(max_abs_diff(g, w));
        worst_cos = worst_cos.min(cosine(g, w));
    }
    eprintln!("{what}: max abs diff {worst:.2e}, min cosine {worst_cos:.8}");
    assert!(worst <= atol, "{what}: max abs diff {worst} > {atol}");
    assert!(worst_cos >= COSINE_MIN, "{what}: cosine {worst_cos} < {COSINE_MIN}");
}

/// Checks the model given the reference's own pixels and prompts: pooled, projected and
/// normalised embeddings of both towers, logits and probabilities.
fn check_against_expected(model: &ClipModel, expected: &Value, pixels: &[Vec<f32>]) {
    let dim = model.info.config.projection_dim;
    let vision = model.encode_images(pixels).unwrap();
    let pooled = read_tensor(vision.pooled).unwrap();
    let embeds = read_tensor(vision.embeds).unwrap();
    assert_rows_close("image_pooled", &pooled, &rows(&expected["image_pooled"]), EMBED_ATOL);
    assert_rows_close("image_embeds_unnormalized", &embeds, &rows(&expected["image_embeds_unnormalized"]), EMBED_ATOL);
    let mut image_n = embeds.clone();
    normalize_rows(&mut image_n, dim);
    assert_rows_close("image_embeds", &image_n, &rows(&expected["image_embeds"]), EMBED_ATOL);

    let prompts = expected["prompts"].as_array().unwrap();
    let texts: Vec<&str> = prompts.iter().map(|p| p["text"].as_str().unwrap()).collect();
    let tokens = model.tokenize(&texts).unwrap();
    for (t, p) in tokens.iter().zip(prompts) {
        let want: Vec<u32> = p["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(t.ids, want, "ids of {:?}", p["text"]);
        assert_eq!(t.eot_index as u64, p["eot_index"].as_u64().unwrap());
    }
    let text = model.encode_tokens(&tokens).unwrap();
    let text_pooled = read_tensor(text.pooled).unwrap();
    let text_embeds = read_tensor(text.embeds).unwrap();
    assert_rows_close("text_pooled", &text_pooled, &rows(&expected["text_pooled"]), EMBED_ATOL);
    assert_rows_close("text_embeds_unnormalized", &text_embeds, &rows(&expected["text_embeds_unnormalized"]), EMBED_ATOL);
    let mut text_n = text_embeds.clone();
    normalize_rows(&mut text_n, dim);
    assert_rows_close("text_embeds", &text_n, &rows(&expected["text_embeds"]), EMBED_ATOL);

    let scale = model.logit_scale_exp();
    assert!((scale - expected["logit_scale_exp"].as_f64().unwrap() as f32).abs() < 1e-4);
    let want_logits = rows(&expected["logits_per_image"]);
    let want_probs = rows(&expected["probs"]);
    let mut worst_logit = 0.0f32;
    let mut worst_prob = 0.0f32;
    for (i, img) in image_n.chunks_exact(dim).enumerate() {
        let logits: Vec<f32> =
            text_n.chunks_exact(dim).map(|t| scale * t.iter().zip(img).map(|(a, b)| a * b).sum::<f32>()).collect();
        let probs = fieldclip::clip::softmax(&logits);
        worst_logit = worst_logit.max(max_abs_diff(&logits, &want_logits[i]));
        worst_prob = worst_prob.max(max_abs_diff(&probs, &want_probs[i]));
    }
    eprintln!("logits: max abs diff {worst_logit:.2e}; probs: {worst_prob:.2e}");
    assert!(worst_logit <= LOGIT_ATOL, "logits {worst_logit}");
    assert!(worst_prob <= PROB_ATOL, "probs {worst_prob}");
}

/// The analytic input of the oracle, `1.5·sin(0.05(c+1)x + 0.03y + 0.5c)`.
fn synthetic_pixels(size: usize) -> Vec<f32> {
    let mut p = Vec::with_capacity(3 * size * size);
    for c in 0..3 {
        for y in 0..size {
            for x in 0..size {
                p.push((1.5 * (0.05 * (c as f64 + 1.0) * x as f64 + 0.03 * y as f64 + 0.5 * c as f64).sin()) as f32);
            }
        }
    }
    p
}

fn check_synthetic(model: &ClipModel, expected: &Value) {
    let s = &expected["synthetic_pixels"];
    let out = model.encode_images(&[synthetic_pixels(model.preprocess.image_size)]).unwrap();
    assert_rows_close("synthetic image_pooled", &read_tensor(out.pooled).unwrap(), &[floats(&s["image_pooled"])], EMBED_ATOL);
    assert_rows_close(
        "synthetic image_embeds_unnormalized",
        &read_tensor(out.embeds).unwrap(),
        &[floats(&s["image_embeds_unnormalized"])],
        EMBED_ATOL,
    );
}

/// Image files through fieldclip's own preprocessing: cosine ≥ 0.9999 to the reference
/// embedding and the same top-1 prompt.
fn check_from_files(model: &ClipModel, expected: &Value) {
    let dim = model.info.config.projection_dim;
    let files: Vec<Vec<u8>> =
        expected["images"].as_array().unwrap().iter().map(|i| read(i["file"].as_str().unwrap())).collect();
    let pixels: Vec<Vec<f32>> = files.iter().map(|b| model.pixels(b).unwrap()).collect();
    let mut embeds = read_tensor(model.encode_images(&pixels).unwrap().embeds).unwrap();
    normalize_rows(&mut embeds, dim);
    let want = rows(&expected["image_embeds"]);
    let text = rows(&expected["text_embeds"]);
    let want_logits = rows(&expected["logits_per_image"]);
    for (i, (got, w)) in embeds.chunks_exact(dim).zip(&want).enumerate() {
        let cos = cosine(got, w);
        let logits: Vec<f32> = text.iter().map(|t| t.iter().zip(got).map(|(a, b)| a * b).sum()).collect();
        eprintln!("{}: cosine {cos:.6}", expected["images"][i]["file"]);
        assert!(cos >= 0.9999, "{}: cosine {cos}", expected["images"][i]["file"]);
        assert_eq!(argmax(&logits), argmax(&want_logits[i]), "top-1 prompt of {}", expected["images"][i]["file"]);
    }
}

fn oracle_pixels(expected: &Value) -> Vec<Vec<f32>> {
    expected["images"].as_array().unwrap().iter().map(|i| npy_f32(&read(i["pixels_npy"].as_str().unwrap()))).collect()
}

#[test]
fn tiny_hf_model_matches_transformers() {
    let model = load(&read("tiny/model.safetensors"), &read("tiny/config.json"));
    let expected = json("tiny/expected.json");
    check_against_expected(&model, &expected, &oracle_pixels(&expected));
    check_synthetic(&model, &expected);
}

#[test]
fn tiny_hf_model_from_image_files() {
    let model = load(&read("tiny/model.safetensors"), &read("tiny/config.json"));
    check_from_files(&model, &json("tiny/expected.json"));
}

#[test]
fn tiny_open_clip_model_matches_open_clip() {
    let model = load(&read("openclip_tiny/model.safetensors"), &read("openclip_tiny/open_clip_config.json"));
    assert_eq!(model.info.layout, fieldclip::weights::Layout::OpenClip);
    let expected = json("openclip_tiny/expected.json");
    check_against_expected(&model, &expected, &oracle_pixels(&expected));
    check_synthetic(&model, &expected);
}

#[test]
fn tiny_open_clip_model_from_image_files() {
    let model = load(&read("openclip_tiny/model.safetensors"), &read("openclip_tiny/open_clip_config.json"));
    check_from_files(&model, &json("openclip_tiny/expected.json"));
}

/// Cutting the text batch to its longest end-of-text gives the padded-77 result.
#[test]
fn text_cut_to_longest_eot_equals_padded() {
    let model = load(&read("tiny/model.safetensors"), &read("tiny/config.json"));
    let tokens = model.tokenize(&["a sunflower", "a photo of a leaf with brown spots, a type of plant."]).unwrap();
    let cut = read_tensor(model.encode_tokens(&tokens).unwrap().embeds).unwrap();
    let padded = read_tensor(model.encode_tokens_padded(&tokens).unwrap().embeds).unwrap();
    assert!(max_abs_diff(&cut, &padded) < 1e-5, "{}", max_abs_diff(&cut, &padded));
}

/// Prompts of mixed lengths run on the CPU as groups of similar length: every row, in its
/// place, as the whole batch padded to 77 gives it (and the groups must have split this batch).
#[test]
fn prompts_grouped_by_length_equal_the_padded_batch() {
    let model = load(&read("tiny/model.safetensors"), &read("tiny/config.json"));
    let mut texts: Vec<&str> = fieldclip::clip::BENCH_PROMPTS.to_vec();
    // Long prompts between short ones, so the groups are not in the batch's order.
    texts.insert(3, "a photo of Quercus robur, the English oak, a large deciduous tree of the family Fagaceae.");
    texts.insert(11, "a microscope image of stained tissue with many small round nuclei and a pink background.");
    let tokens = model.tokenize(&texts).unwrap();
    let grouped = model.encode_tokens(&tokens).unwrap();
    let padded = model.encode_tokens_padded(&tokens).unwrap();
    for (what, got, want) in [("pooled", grouped.pooled, padded.pooled), ("embeds", grouped.embeds, padded.embeds)] {
        let (got, want) = (read_tensor(got).unwrap(), read_tensor(want).unwrap());
        assert!(max_abs_diff(&got, &want) < 1e-5, "{what}: {}", max_abs_diff(&got, &want));
    }
    let lengths: Vec<usize> = tokens.iter().map(|t| t.eot_index + 1).collect();
    assert!(fieldclip::clip::length_groups(&lengths).len() >= 2, "{lengths:?}");
}

/// The full-size random ViT-B/32 (605 MB, regenerated by `make_oracle.py models`).
#[test]
#[ignore = "needs the full-size random ViT-B/32 (605 MB, made by the oracle's make_oracle.py): \
            FIELDCLIP_VITB32_WEIGHTS=path cargo test -- --ignored"]
fn vitb32_matches_transformers() {
    let weights = vitb32_weights();
    let model = load(&weights, &read("vitb32/config.json"));
    assert_eq!(model.info.name, "ViT-B/32");
    assert_eq!(model.info.parameters, 151_277_313);
    let expected = json("vitb32/expected.json");
    check_against_expected(&model, &expected, &oracle_pixels(&expected));
    check_synthetic(&model, &expected);
    check_from_files(&model, &expected);
}

/// The same check natively on burn's wgpu backend (Vulkan / Metal / DX12), at the same
/// tolerances: the GPU path on a real GPU (#18). This machine has none; it ran on a lent H200
/// (BENCHMARKS.md, "A real GPU").
#[cfg(feature = "webgpu")]
#[test]
#[ignore = "needs a GPU (Vulkan, Metal or DX12) and the full-size random ViT-B/32: \
            FIELDCLIP_VITB32_WEIGHTS=path cargo test --test parity -- --ignored vitb32_matches_transformers_on_wgpu"]
fn vitb32_matches_transformers_on_wgpu() {
    let weights = vitb32_weights();
    let model = ClipModel::from_bytes(&weights, Some(&read("vitb32/config.json")), &Device::wgpu(Default::default()))
        .expect("load model on wgpu");
    let expected = json("vitb32/expected.json");
    check_against_expected(&model, &expected, &oracle_pixels(&expected));
    check_synthetic(&model, &expected);
    check_from_files(&model, &expected);
}
