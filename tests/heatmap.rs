//! Patch heat-maps (#15) against ClearCLIP's reference code (`../shared/oracle/heatmap`, copied
//! to tests/data/heatmap): both tiny models, all 10 images, all 8 of ClearCLIP's variants.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use burn::tensor::Device;
use common::*;
use fieldclip::clip::{normalize_rows, read as read_tensor};
use fieldclip::model::MapVariant;
use fieldclip::session::Session;
use fieldclip::ClipModel;
use serde_json::Value;

/// The tolerance for a float32 implementation (the oracle's README: 1e-5 reachable).
const ATOL: f32 = 1e-4;

struct Case {
    name: &'static str,
    weights: &'static str,
    config: &'static str,
}

const CASES: [Case; 2] = [
    Case { name: "tiny", weights: "tiny/model.safetensors", config: "tiny/config.json" },
    Case { name: "openclip_tiny", weights: "openclip_tiny/model.safetensors", config: "openclip_tiny/open_clip_config.json" },
];

/// The oracle's JSON key of each variant, with ours.
fn variants() -> Vec<(&'static str, MapVariant)> {
    [
        ("ClearCLIP", "clearclip"),
        ("MaskCLIP", "maskclip"),
        ("SCLIP", "sclip"),
        ("vanilla", "vanilla"),
        ("vanilla_residual", "plain"),
        ("ClearCLIP_residual", "clearclip+residual"),
        ("MaskCLIP_residual", "maskclip+residual"),
        ("SCLIP_residual", "sclip+residual"),
    ]
    .into_iter()
    .map(|(key, name)| (key, MapVariant::parse(name).unwrap()))
    .collect()
}

fn load(case: &Case) -> (ClipModel, Value, Vec<Vec<f32>>) {
    let model = ClipModel::from_bytes(&read(case.weights), Some(&read(case.config)), &Device::flex()).unwrap();
    let oracle = json(&format!("heatmap/{}.json", case.name));
    let pixels = oracle["images"].as_array().unwrap().iter().map(|i| npy_f32(&read(i["pixels_npy"].as_str().unwrap()))).collect();
    (model, oracle, pixels)
}

fn prompts(oracle: &Value) -> Vec<String> {
    oracle["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_string()).collect()
}

/// Our normalised text embeddings of the oracle's prompts, checked against its `text_embeds`.
fn text_embeds(model: &ClipModel, oracle: &Value) -> Vec<f32> {
    let texts = prompts(oracle);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut e = read_tensor(model.encode_tokens(&model.tokenize(&refs).unwrap()).unwrap().embeds).unwrap();
    normalize_rows(&mut e, model.info.config.projection_dim);
    let want: Vec<f32> = rows(&oracle["text_embeds"]).concat();
    let diff = max_abs_diff(&e, &want);
    assert!(diff <= ATOL, "text embeddings: {diff}");
    e
}

#[test]
fn patch_embeddings_and_maps_match_clearclip_for_every_variant() {
    for case in &CASES {
        let (model, oracle, pixels) = load(case);
        let dim = model.info.config.projection_dim;
        let texts = text_embeds(&model, &oracle);
        let grid: Vec<usize> = oracle["grid"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let plain_image = read_tensor(model.encode_images(&pixels).unwrap().embeds).unwrap();
        for (key, variant) in variants() {
            // All 10 images in one batch: each must come out as the oracle's one-image batches.
            let out = model.encode_images_with_patches(&pixels, variant).unwrap();
            assert_eq!(out.grid.to_vec(), grid, "{} grid", case.name);
            let image = read_tensor(out.image.embeds).unwrap();
            let patches = read_tensor(out.patch_embeds).unwrap();
            let cells = grid[0] * grid[1];
            assert_eq!(patches.len(), pixels.len() * cells * dim);
            // The image embedding of the same pass is the ordinary one, for every variant.
            let same = max_abs_diff(&image, &plain_image);
            assert!(same <= 1e-5, "{} {key}: image embedding differs from forward() by {same}", case.name);

            let (mut worst_patch, mut worst_map) = (0.0f32, 0.0f32);
            for (i, want) in oracle["variants"][key]["images"].as_array().unwrap().iter().enumerate() {
                let got = &patches[i * cells * dim..(i + 1) * cells * dim];
                worst_patch = worst_patch.max(max_abs_diff(got, &rows(&want["patch_embeds"]).concat()));
                let maps: Vec<f32> = texts
                    .chunks_exact(dim)
                    .flat_map(|t| got.chunks_exact(dim).map(move |p| p.iter().zip(t).map(|(a, b)| a * b).sum::<f32>()))
                    .collect();
                worst_map = worst_map.max(max_abs_diff(&maps, &rows(&want["cosine_maps"]).concat()));
                if key == "vanilla_residual" {
                    // CLIP's own last block: its class token is the image embedding.
                    let mut normalised = image[i * dim..(i + 1) * dim].to_vec();
                    normalize_rows(&mut normalised, dim);
                    let d = max_abs_diff(&normalised, &floats(&want["cls_embed"]));
                    assert!(d <= ATOL, "{}: plain class token vs image embedding {d}", case.name);
                }
            }
            eprintln!("{} {key}: patch embeddings {worst_patch:.1e}, maps {worst_map:.1e}", case.name);
            assert!(worst_patch <= ATOL, "{} {key}: patch embeddings differ by {worst_patch}", case.name);
            assert!(worst_map <= ATOL, "{} {key}: cosine maps differ by {worst_map}", case.name);
        }
    }
}

#[test]
fn variant_names_read_back() {
    for name in ["clearclip", "maskclip", "sclip", "vanilla", "plain", "sclip+residual", "clearclip+residual", "maskclip+residual"] {
        assert_eq!(MapVariant::parse(name).unwrap().name(), name);
    }
    assert_eq!(MapVariant::parse("ClearCLIP"), Some(MapVariant::CLEARCLIP));
    assert_eq!(MapVariant::parse("vanilla+residual"), Some(MapVariant::PLAIN));
    assert_eq!(MapVariant::default(), MapVariant::CLEARCLIP);
    assert!(MapVariant::parse("gradcam").is_none());
}

#[test]
fn session_explains_with_the_classification_of_the_same_pass() {
    let (model, oracle, pixels) = load(&CASES[1]);
    let mut session = Session::new(model);
    let labels = prompts(&oracle);
    pollster::block_on(session.set_label_list(&labels, &["{}".to_string()])).unwrap();
    let key = "ClearCLIP";
    for (i, want) in oracle["variants"][key]["images"].as_array().unwrap().iter().enumerate() {
        let asked = vec![labels[3].clone(), labels[0].clone()];
        let explained = pollster::block_on(session.explain_pixels(pixels[i].clone(), &asked, MapVariant::CLEARCLIP)).unwrap();
        assert_eq!(explained.variant, "clearclip");
        assert_eq!(explained.grid, [4, 4]);
        let maps = rows(&want["cosine_maps"]);
        for (map, index) in explained.maps.iter().zip([3, 0]) {
            assert_eq!(map.text, labels[index]);
            let d = max_abs_diff(&map.cosine, &maps[index]);
            assert!(d <= ATOL, "image {i}, prompt {index}: {d}");
        }
        // The predictions are classify's, from the same forward pass.
        let embed = pollster::block_on(session.embed_pixels(&[pixels[i].clone()])).unwrap();
        let classified = session.classify_embedding(&embed).unwrap();
        assert_eq!(explained.predictions.len(), classified.len());
        for (a, b) in explained.predictions.iter().zip(&classified) {
            assert_eq!(a.label, b.label);
            assert!((a.probability - b.probability).abs() <= 1e-5);
        }
        // No labels asked: the best label's map.
        let best = pollster::block_on(session.explain_pixels(pixels[i].clone(), &[], MapVariant::CLEARCLIP)).unwrap();
        assert_eq!(best.maps.len(), 1);
        assert_eq!(best.maps[0].text, classified[0].label);
    }
    let err = pollster::block_on(session.explain_pixels(pixels[0].clone(), &["not a label".into()], MapVariant::CLEARCLIP)).unwrap_err();
    assert_eq!(err.to_string(), "`not a label` is not one of the labels in use, so it has no map: pick one from the list.");
}
