//! The wasm API in headless Chromium (`wasm-pack test --headless --chrome`), on burn's WebGPU
//! backend and on its CPU backend, against the oracle (tiny HF model).
#![cfg(target_arch = "wasm32")]

#[path = "common/checkpoints.rs"]
mod checkpoints;

use fieldclip::web::{Classifier, GalleryIndex};
use serde_json::Value;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WEIGHTS: &[u8] = include_bytes!("data/tiny/model.safetensors");
const CONFIG: &[u8] = include_bytes!("data/tiny/config.json");
const EXPECTED: &[u8] = include_bytes!("data/tiny/expected.json");
/// Three oracle images: (index in expected.json, pixels, file bytes).
const IMAGES: [(usize, &[u8], &[u8]); 3] = [
    (0, include_bytes!("data/tiny/pixels/astronaut.npy"), include_bytes!("data/images/astronaut.jpg")),
    (3, include_bytes!("data/tiny/pixels/chelsea.npy"), include_bytes!("data/images/chelsea.png")),
    (6, include_bytes!("data/tiny/pixels/coffee_alpha.npy"), include_bytes!("data/images/coffee_alpha.png")),
];

fn npy_f32(bytes: &[u8]) -> Vec<f32> {
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

async fn check_backend(backend: &str, atol: f32, logit_atol: f32) {
    let expected: Value = serde_json::from_slice(EXPECTED).unwrap();
    let mut classifier = Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), backend.into(), None)
        .await
        .unwrap_or_else(|_| panic!("create on {backend}"));
    assert_eq!(classifier.backend(), backend);
    let dim = classifier.embedding_size();

    let prompts: Vec<String> =
        expected["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_string()).collect();
    let text = classifier.embed_texts(prompts.clone()).await.unwrap_or_else(|_| panic!("embed texts"));
    let mut worst_text = 0.0f32;
    for (j, row) in text.chunks_exact(dim).enumerate() {
        worst_text = worst_text.max(max_abs_diff(row, &floats(&expected["text_embeds"][j])));
    }

    let scale = classifier.logit_scale();
    let (mut worst_image, mut worst_logit) = (0.0f32, 0.0f32);
    for (i, npy, _) in IMAGES {
        let image = classifier.embed_pixels(npy_f32(npy)).await.unwrap_or_else(|_| panic!("embed pixels"));
        worst_image = worst_image.max(max_abs_diff(&image, &floats(&expected["image_embeds"][i])));
        let logits: Vec<f32> =
            text.chunks_exact(dim).map(|t| scale * t.iter().zip(&image).map(|(a, b)| a * b).sum::<f32>()).collect();
        worst_logit = worst_logit.max(max_abs_diff(&logits, &floats(&expected["logits_per_image"][i])));
    }
    web_sys::console::log_1(
        &format!("{backend}: image embeds {worst_image:.2e}, text embeds {worst_text:.2e}, logits {worst_logit:.2e}").into(),
    );
    assert!(worst_image <= atol, "{backend}: image embeddings differ by {worst_image}");
    assert!(worst_text <= atol, "{backend}: text embeddings differ by {worst_text}");
    assert!(worst_logit <= logit_atol, "{backend}: logits differ by {worst_logit}");

    // The file path through the browser build's own decoding and preprocessing.
    for (i, _, file) in IMAGES {
        let image = classifier.embed_image(file.to_vec()).await.unwrap_or_else(|_| panic!("embed image"));
        let want = floats(&expected["image_embeds"][i]);
        let cos: f32 = image.iter().zip(&want).map(|(a, b)| a * b).sum();
        assert!(cos >= 0.9999, "{backend}: image {i} from file, cosine {cos}");
    }

    // `classify` with the oracle prompts as labels (template "{}") gives the oracle's probabilities.
    classifier.set_labels(prompts.clone(), vec!["{}".into()]).await.unwrap_or_else(|_| panic!("set labels"));
    let mut worst_prob = 0.0f32;
    for (i, _, file) in IMAGES {
        let result = classifier.classify(file.to_vec(), 12).await.unwrap_or_else(|_| panic!("classify"));
        let result: Value = serde_wasm_bindgen::from_value(result).unwrap();
        let predictions = result["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), 12);
        for p in predictions {
            let j = prompts.iter().position(|t| t == p["label"].as_str().unwrap()).unwrap();
            let want = expected["probs"][i][j].as_f64().unwrap() as f32;
            worst_prob = worst_prob.max((p["probability"].as_f64().unwrap() as f32 - want).abs());
        }
    }
    web_sys::console::log_1(&format!("{backend}: classify probabilities from files {worst_prob:.2e}").into());
    assert!(worst_prob <= 1e-3, "{backend}: probabilities differ by {worst_prob}");
}

#[wasm_bindgen_test]
async fn tiny_model_on_cpu_matches_oracle() {
    check_backend("cpu", 1e-4, 1e-3).await;
}

#[wasm_bindgen_test]
async fn tiny_model_on_webgpu_matches_oracle() {
    // Embeddings to 1e-3 as asked; logits are 14.3 × cosine, so their bound scales with it.
    check_backend("webgpu", 1e-3, 1e-2).await;
}

/// The `kind` the worker decides on (see `src/web.rs`).
fn kind<T>(result: Result<T, wasm_bindgen::JsValue>) -> String {
    let error = result.err().expect("an error");
    js_sys::Reflect::get(&error, &"kind".into()).unwrap().as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
async fn corrupt_image_and_empty_labels_are_errors_of_kind_input_not_panics() {
    let mut classifier = Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), "cpu".into(), None).await.unwrap_or_else(|_| panic!());
    assert_eq!(kind(classifier.classify(IMAGES[0].2.to_vec(), 5).await), "input", "no labels yet");
    assert_eq!(kind(classifier.set_labels(vec![], vec!["a photo of a {}.".into()]).await), "input");
    assert_eq!(kind(classifier.set_labels(vec!["oak".into()], vec!["no placeholder".into()]).await), "input");
    classifier.set_labels(vec!["oak".into(), "kelp".into()], vec!["a photo of a {}.".into()]).await.unwrap_or_else(|_| panic!());
    assert_eq!(kind(classifier.classify(b"not an image".to_vec(), 5).await), "input");
    assert!(classifier.classify(IMAGES[0].2.to_vec(), 5).await.is_ok(), "the classifier still works");
    assert_eq!(kind(classifier.embed_pixels_batch(vec![0.0; 7], 1).await), "input");
    // `embedTexts([])` used to panic inside the text tower (#19).
    assert_eq!(kind(classifier.embed_texts(vec![]).await), "input");
    assert!(classifier.embed_texts(vec!["oak".into()]).await.is_ok(), "the classifier still works");
    assert_eq!(kind(classifier.import_prompt_embeddings(vec!["a photo of a oak.".into()], vec![0.0; 3])), "storage");
    assert_eq!(kind(Classifier::create(b"garbage".to_vec(), None, "cpu".into(), None).await), "model");
    assert_eq!(kind(Classifier::create(WEIGHTS.to_vec(), None, "tpu".into(), None).await), "input");
}

/// The blank-label case the CLI had wrong: blanks and repeats are left out by the session, so
/// each label keeps its own score.
#[wasm_bindgen_test]
async fn blank_and_repeated_labels_are_left_out_and_scores_stay_on_their_labels() {
    let expected: Value = serde_json::from_slice(EXPECTED).unwrap();
    let prompts: Vec<String> = (0..3).map(|j| expected["prompts"][j]["text"].as_str().unwrap().to_string()).collect();
    let mut classifier = Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), "cpu".into(), None).await.unwrap_or_else(|_| panic!());
    let messy = vec![prompts[0].clone(), "".into(), prompts[1].clone(), "  ".into(), prompts[2].clone(), prompts[0].clone()];
    classifier.set_labels(messy, vec!["{}".into(), "{}".into()]).await.unwrap_or_else(|_| panic!());
    assert_eq!(classifier.labels(), prompts);
    let result: Value = serde_wasm_bindgen::from_value(classifier.classify(IMAGES[1].2.to_vec(), 10).await.unwrap_or_else(|_| panic!())).unwrap();
    let predictions = result["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 3);
    // chelsea.png is the oracle's image 3: softmax of its logits over these three prompts.
    let logits: Vec<f64> = (0..3).map(|j| expected["logits_per_image"][3][j].as_f64().unwrap()).collect();
    let total: f64 = logits.iter().map(|l| l.exp()).sum();
    for p in predictions {
        let j = prompts.iter().position(|l| l == p["label"].as_str().unwrap()).unwrap();
        let want = logits[j].exp() / total;
        assert!((p["probability"].as_f64().unwrap() - want).abs() < 1e-3, "{p} vs {want}");
    }
}

#[wasm_bindgen_test]
async fn loading_reports_its_steps() {
    let steps = js_sys::Array::new();
    let record = js_sys::Function::new_with_args("step, fraction", "this.push([step, fraction]);").bind0(&steps);
    Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), "cpu".into(), Some(record)).await.unwrap_or_else(|_| panic!());
    let fractions: Vec<f64> = steps.iter().map(|s| js_sys::Array::from(&s).get(1).as_f64().unwrap()).collect();
    assert!(fractions.len() >= 3, "{fractions:?}");
    assert!(fractions.windows(2).all(|w| w[0] < w[1]) && fractions.last() == Some(&1.0), "{fractions:?}");
}

#[wasm_bindgen_test]
async fn stored_prompt_embeddings_make_labels_ready_without_encoding() {
    let labels: Vec<String> = vec!["oak".into(), "kelp".into(), "sea anemone".into()];
    let templates: Vec<String> = vec!["a photo of a {}.".into(), "a field photo of a {}.".into()];
    let mut first = Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), "cpu".into(), None).await.unwrap_or_else(|_| panic!());
    let encoded = first.set_labels(labels.clone(), templates.clone()).await.unwrap_or_else(|_| panic!());
    assert_eq!(encoded.len(), 6, "every prompt is new: {encoded:?}");
    let stored = first.prompt_embeddings(encoded.clone()).unwrap_or_else(|_| panic!());
    assert_eq!(stored.len(), 6 * first.embedding_size());

    // A later visit: a fresh classifier fed the stored embeddings encodes nothing and agrees.
    let mut second = Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), "cpu".into(), None).await.unwrap_or_else(|_| panic!());
    assert!(second.import_prompt_embeddings(encoded[..1].to_vec(), stored.clone()).is_err(), "wrong length is refused");
    second.import_prompt_embeddings(encoded, stored).unwrap_or_else(|_| panic!());
    let again = second.set_labels(labels, templates).await.unwrap_or_else(|_| panic!());
    assert!(again.is_empty(), "nothing re-encoded: {again:?}");
    let a: Value = serde_wasm_bindgen::from_value(first.classify(IMAGES[0].2.to_vec(), 3).await.unwrap_or_else(|_| panic!())).unwrap();
    let b: Value = serde_wasm_bindgen::from_value(second.classify(IMAGES[0].2.to_vec(), 3).await.unwrap_or_else(|_| panic!())).unwrap();
    assert_eq!(a, b);
}

#[wasm_bindgen_test]
fn gallery_search_is_the_brute_force_cosine_ranking() {
    let expected: Value = serde_json::from_slice(EXPECTED).unwrap();
    let images: Vec<Vec<f32>> = expected["image_embeds"].as_array().unwrap().iter().map(floats).collect();
    let dim = images[0].len();
    let mut gallery = GalleryIndex::new(dim);
    assert!(gallery.search(images[0].clone(), 3).is_err(), "an empty gallery is an error");
    gallery.add(images.concat()).unwrap_or_else(|_| panic!());
    assert!(gallery.add(vec![0.0; dim + 1]).is_err(), "a wrong size is refused");
    assert!(gallery.search(vec![0.0; dim - 1], 3).is_err(), "a query of another model is refused");
    for text in expected["text_embeds"].as_array().unwrap().iter().map(floats) {
        let mut want: Vec<(usize, f32)> =
            images.iter().enumerate().map(|(i, img)| (i, img.iter().zip(&text).map(|(a, b)| a * b).sum())).collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        let hits: Value = serde_wasm_bindgen::from_value(gallery.search(text.clone(), 4).unwrap_or_else(|_| panic!())).unwrap();
        let hits = hits.as_array().unwrap();
        assert_eq!(hits.len(), 4);
        for (hit, (index, score)) in hits.iter().zip(&want) {
            assert_eq!(hit["index"].as_u64().unwrap() as usize, *index);
            assert!((hit["score"].as_f64().unwrap() as f32 - score).abs() <= 1e-6);
        }
    }
}

#[wasm_bindgen_test]
async fn adapter_made_in_the_browser_classifies_like_its_formula_and_round_trips() {
    let expected: Value = serde_json::from_slice(EXPECTED).unwrap();
    let images: Vec<Vec<f32>> = expected["image_embeds"].as_array().unwrap().iter().map(floats).collect();
    let texts: Vec<Vec<f32>> = expected["text_embeds"].as_array().unwrap().iter().map(floats).collect();
    let labels: Vec<String> = [0, 5, 3].iter().map(|&i| expected["prompts"][i]["text"].as_str().unwrap().to_string()).collect();
    let mut classifier = Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), "cpu".into(), None).await.unwrap_or_else(|_| panic!());
    classifier.set_labels(labels.clone(), vec!["{}".into()]).await.unwrap_or_else(|_| panic!());
    assert!(classifier.make_adapter(vec![], vec![], 1.0, 5.5, false).is_err(), "no labelled photo");
    // coffee_alpha (6) labelled as label 0, rocket (1) as label 1; label 2 has no photo.
    let examples = [images[6].clone(), images[1].clone()].concat();
    let json = classifier.make_adapter(examples, vec![0, 1], 1.0, 5.5, false).unwrap_or_else(|_| panic!());
    let check: Value = serde_wasm_bindgen::from_value(classifier.check_adapter(&json).unwrap_or_else(|_| panic!())).unwrap();
    assert_eq!(check["examples"], 2);
    assert_eq!(check["classes_without_examples"], 1);
    classifier.set_adapter(Some(json.clone())).unwrap_or_else(|_| panic!());

    // astronaut.jpg (IMAGES[0], row 0) through the page's path, against the formula on the
    // oracle embeddings.
    let scale = expected["logit_scale_exp"].as_f64().unwrap() as f32;
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let f = &images[0];
    let mut logits: Vec<f32> = [0, 5, 3].iter().map(|&t| scale * dot(f, &texts[t])).collect();
    logits[0] += (-5.5 * (1.0 - dot(f, &images[6]))).exp();
    logits[1] += (-5.5 * (1.0 - dot(f, &images[1]))).exp();
    let result: Value = serde_wasm_bindgen::from_value(classifier.classify(IMAGES[0].2.to_vec(), 3).await.unwrap_or_else(|_| panic!())).unwrap();
    for p in result["predictions"].as_array().unwrap() {
        let c = labels.iter().position(|l| l == p["label"].as_str().unwrap()).unwrap();
        assert!((p["logit"].as_f64().unwrap() as f32 - logits[c]).abs() <= 1e-3, "{p} vs {}", logits[c]);
    }

    // Exported and imported (the page's round trip): the same result, bit for bit.
    classifier.set_adapter(None).unwrap_or_else(|_| panic!());
    classifier.set_adapter(Some(json)).unwrap_or_else(|_| panic!());
    let again: Value = serde_wasm_bindgen::from_value(classifier.classify(IMAGES[0].2.to_vec(), 3).await.unwrap_or_else(|_| panic!())).unwrap();
    assert_eq!(again, result);

    // An adapter for other labels is refused, and new labels drop the one in use.
    classifier.set_labels(labels[..2].to_vec(), vec!["{}".into()]).await.unwrap_or_else(|_| panic!());
    let json = classifier.make_adapter(images[6].clone(), vec![0], 1.0, 5.5, true).unwrap_or_else(|_| panic!());
    classifier.set_labels(labels.clone(), vec!["{}".into()]).await.unwrap_or_else(|_| panic!());
    assert!(classifier.set_adapter(Some(json)).is_err());
}

#[wasm_bindgen_test]
async fn q8_pack_made_and_loaded_in_the_browser_keeps_the_embeddings() {
    use fieldclip::pack::{pack, PackDtype};
    let expected: Value = serde_json::from_slice(EXPECTED).unwrap();
    let packed = pack(WEIGHTS, Some(CONFIG), PackDtype::Q8).unwrap_or_else(|e| panic!("{e}"));
    assert!(packed.len() * 10 < WEIGHTS.len() * 3, "{} bytes", packed.len());
    // No config file: the pack's own.
    let classifier = Classifier::create(packed.clone(), None, "cpu".into(), None).await.unwrap_or_else(|_| panic!());
    for (i, pixels, _) in IMAGES {
        let got = classifier.embed_pixels(npy_f32(pixels)).await.unwrap_or_else(|_| panic!());
        let want = floats(&expected["image_embeds"][i]);
        let cos: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        web_sys::console::log_1(&format!("q8 pack: image {i} cosine {cos:.6}").into());
        assert!(cos >= 0.99, "image {i}: cosine {cos}");
    }
    assert!(Classifier::create(packed[..packed.len() / 2].to_vec(), None, "cpu".into(), None).await.is_err(), "a truncated pack");
}

/// The page's way in: the file pushed piece by piece into a `WeightsStream`. The q8 pack's
/// weights stay int8 on the CPU and are widened for WebGPU: both give the oracle's embeddings
/// within the pack's tolerance, and the SHA-256 is the file's.
#[wasm_bindgen_test]
async fn streamed_q8_pack_loads_on_cpu_and_webgpu() {
    use fieldclip::pack::{pack, PackDtype};
    use fieldclip::web::WeightsStream;
    let expected: Value = serde_json::from_slice(EXPECTED).unwrap();
    let packed = pack(WEIGHTS, Some(CONFIG), PackDtype::Q8).unwrap_or_else(|e| panic!("{e}"));
    for backend in ["cpu", "webgpu"] {
        let mut stream = WeightsStream::new(true);
        for piece in packed.chunks(50_001) {
            stream.push(piece).unwrap_or_else(|_| panic!());
        }
        assert_eq!(stream.expected_size(), Some(packed.len() as f64));
        assert_eq!(stream.sha256(), Some(fieldclip::fingerprint::sha256_hex(&packed)));
        let classifier = Classifier::from_stream(stream, None, backend.into(), None).await.unwrap_or_else(|_| panic!());
        let id = classifier.model_id();
        let architecture = id.rsplit_once(' ').unwrap().0;
        assert_eq!(id, fieldclip::fingerprint::model_id(architecture, &packed), "the CLI's model id");
        for (i, pixels, _) in IMAGES {
            let got = classifier.embed_pixels(npy_f32(pixels)).await.unwrap_or_else(|_| panic!());
            let want = floats(&expected["image_embeds"][i]);
            let cos: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
            web_sys::console::log_1(&format!("streamed q8 pack on {backend}: image {i} cosine {cos:.6}").into());
            assert!(cos >= 0.99, "{backend}, image {i}: cosine {cos}");
        }
    }
    // A file that is not a model fails at its first piece.
    let mut stream = WeightsStream::new(false);
    assert!(stream.push(b"\x80\x02}q\x00(X").is_err());
}

/// The ClearCLIP oracle (`tests/data/heatmap`) for one tiny model: its files and the 10 images'
/// pixels in the oracle's order.
struct MapCase {
    weights: &'static [u8],
    config: &'static [u8],
    oracle: &'static [u8],
    pixels: [(&'static str, &'static [u8]); 10],
}

macro_rules! pixels {
    ($dir:literal) => {
        [
            ("astronaut", include_bytes!(concat!("data/", $dir, "/pixels/astronaut.npy"))),
            ("astronaut_wide", include_bytes!(concat!("data/", $dir, "/pixels/astronaut_wide.npy"))),
            ("camera_gray", include_bytes!(concat!("data/", $dir, "/pixels/camera_gray.npy"))),
            ("chelsea", include_bytes!(concat!("data/", $dir, "/pixels/chelsea.npy"))),
            ("chelsea_small", include_bytes!(concat!("data/", $dir, "/pixels/chelsea_small.npy"))),
            ("coffee", include_bytes!(concat!("data/", $dir, "/pixels/coffee.npy"))),
            ("coffee_alpha", include_bytes!(concat!("data/", $dir, "/pixels/coffee_alpha.npy"))),
            ("ihc_tall", include_bytes!(concat!("data/", $dir, "/pixels/ihc_tall.npy"))),
            ("logo_rgba", include_bytes!(concat!("data/", $dir, "/pixels/logo_rgba.npy"))),
            ("rocket", include_bytes!(concat!("data/", $dir, "/pixels/rocket.npy"))),
        ]
    };
}

fn map_cases() -> [MapCase; 2] {
    [
        MapCase { weights: WEIGHTS, config: CONFIG, oracle: include_bytes!("data/heatmap/tiny.json"), pixels: pixels!("tiny") },
        MapCase {
            weights: include_bytes!("data/openclip_tiny/model.safetensors"),
            config: include_bytes!("data/openclip_tiny/open_clip_config.json"),
            oracle: include_bytes!("data/heatmap/openclip_tiny.json"),
            pixels: pixels!("openclip_tiny"),
        },
    ]
}

/// Patch embeddings and cosine maps of the five variants users pick from, for both tiny models
/// and all 10 oracle images, against ClearCLIP's reference code.
async fn check_maps(backend: &str, atol: f32) {
    for case in map_cases() {
        // `pixels` is alphabetical; each oracle entry names its image.
        let oracle: Value = serde_json::from_slice(case.oracle).unwrap();
        let mut classifier = Classifier::create(case.weights.to_vec(), Some(case.config.to_vec()), backend.into(), None)
            .await
            .unwrap_or_else(|_| panic!("create on {backend}"));
        let dim = classifier.embedding_size();
        let prompts: Vec<String> =
            oracle["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_string()).collect();
        classifier.set_labels(prompts.clone(), vec!["{}".into()]).await.unwrap_or_else(|_| panic!("set labels"));
        for (key, name) in [("ClearCLIP", "clearclip"), ("MaskCLIP", "maskclip"), ("SCLIP", "sclip"), ("vanilla", "vanilla"), ("vanilla_residual", "plain")] {
            let (mut worst_patch, mut worst_map) = (0.0f32, 0.0f32);
            for want in oracle["variants"][key]["images"].as_array().unwrap() {
                let stem = want["file"].as_str().unwrap().rsplit('/').next().unwrap().split('.').next().unwrap();
                let (_, npy) = case.pixels.iter().find(|(s, _)| *s == stem).unwrap_or_else(|| panic!("{stem}"));
                let pixels = npy_f32(npy);
                let patches = classifier.patch_embeddings(pixels.clone(), name.into()).await.unwrap_or_else(|_| panic!("patches"));
                let want_patches: Vec<f32> = want["patch_embeds"].as_array().unwrap().iter().flat_map(floats).collect();
                worst_patch = worst_patch.max(max_abs_diff(&patches, &want_patches));
                assert_eq!(patches.len() % dim, 0);

                let explained = classifier.explain_pixels(pixels, prompts.clone(), name.into()).await.unwrap_or_else(|_| panic!("explain"));
                let explained: Value = serde_wasm_bindgen::from_value(explained).unwrap();
                assert_eq!(explained["variant"], name);
                assert_eq!(explained["grid"], oracle["grid"]);
                for (t, map) in explained["maps"].as_array().unwrap().iter().enumerate() {
                    assert_eq!(map["text"], prompts[t].as_str());
                    worst_map = worst_map.max(max_abs_diff(&floats(&map["cosine"]), &floats(&want["cosine_maps"][t])));
                }
            }
            web_sys::console::log_1(&format!("{backend} {key}: patch embeddings {worst_patch:.1e}, maps {worst_map:.1e}").into());
            assert!(worst_patch <= atol, "{backend} {key}: patch embeddings differ by {worst_patch}");
            assert!(worst_map <= atol, "{backend} {key}: cosine maps differ by {worst_map}");
        }
        // Labels the page holds itself (a tree-of-life index): patches and image embedding from one
        // pass, a map per text embedding; the same as `explain` from the same file.
        let file = IMAGES[1].2.to_vec();
        let texts = classifier.embed_texts(vec![prompts[2].clone()]).await.unwrap_or_else(|_| panic!("embed text"));
        let pass = classifier.embed_image_with_patches(file.clone(), "sclip".into()).await.unwrap_or_else(|_| panic!("patches"));
        let field = |key: &str| js_sys::Float32Array::from(js_sys::Reflect::get(&pass, &key.into()).unwrap()).to_vec();
        let map = fieldclip::web::cosine_map(&field("patches"), &texts).unwrap_or_else(|_| panic!("cosine map"));
        let explained = classifier.explain(file.clone(), vec![prompts[2].clone()], "sclip".into(), 3, None).await.unwrap_or_else(|_| panic!("explain"));
        let explained: Value = serde_wasm_bindgen::from_value(explained).unwrap();
        assert!(max_abs_diff(&map, &floats(&explained["maps"][0]["cosine"])) <= 1e-6);
        let embedding = field("embedding");
        assert!(max_abs_diff(&embedding, &classifier.embed_image(file).await.unwrap_or_else(|_| panic!("embed"))) <= 1e-6);
        assert_eq!(kind(fieldclip::web::cosine_map(&field("patches")[..10], &texts)), "input");

        let err = classifier.explain_pixels(npy_f32(case.pixels[0].1), vec!["no such label".into()], "".into()).await;
        assert_eq!(kind(err), "input");
        let err = classifier.explain_pixels(npy_f32(case.pixels[0].1), vec![], "gradcam".into()).await;
        assert_eq!(kind(err), "input");
    }
}

#[wasm_bindgen_test]
async fn heat_maps_on_cpu_match_clearclip() {
    check_maps("cpu", 1e-4).await;
}

#[wasm_bindgen_test]
async fn heat_maps_on_webgpu_match_clearclip() {
    check_maps("webgpu", 1e-3).await;
}

/// ViT-L/14's shapes (its widths, patch grid and vocabulary; one layer a tower) on WebGPU at
/// WebGPU's *default* limits (#18): its 151.8 MB f32 token table is above the default 128 MiB
/// binding, so the model keeps it in parts there. Text (whose ids fall in both parts) and an
/// image give what the CPU gives.
#[wasm_bindgen_test]
async fn l14_shape_runs_on_webgpu_at_default_limits() {
    let bytes = checkpoints::random_hf_checkpoint((1024, 14, 224), 768, 768);
    let gpu = Classifier::create(bytes.clone(), None, "webgpu:default-limits".into(), None)
        .await
        .unwrap_or_else(|e| panic!("L/14 on WebGPU at default limits: {e:?}"));
    assert_eq!(gpu.backend(), "webgpu");
    let cpu = Classifier::create(bytes, None, "cpu".into(), None).await.unwrap();
    // The start and end tokens (49406, 49407) sit in the table's second part, the words in its first.
    let prompts = vec!["a photo of a fern.".to_string(), "zebra".to_string()];
    let (on_gpu, on_cpu) = (gpu.embed_texts(prompts.clone()).await.unwrap(), cpu.embed_texts(prompts).await.unwrap());
    assert_eq!(on_gpu.len(), 2 * 768);
    let text_diff = max_abs_diff(&on_gpu, &on_cpu);
    let pixels: Vec<f32> = (0..3 * 224 * 224).map(|i| (i as f32 * 0.001).sin()).collect();
    let (image_gpu, image_cpu) = (gpu.embed_pixels(pixels.clone()).await.unwrap(), cpu.embed_pixels(pixels).await.unwrap());
    let image_diff = max_abs_diff(&image_gpu, &image_cpu);
    web_sys::console::log_1(&format!("L/14 shape at default limits: text {text_diff:.2e}, image {image_diff:.2e} from the CPU").into());
    assert!(text_diff < 1e-3 && image_diff < 1e-3, "text {text_diff}, image {image_diff}");
}
