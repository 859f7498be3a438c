//! The wasm API in headless Chromium (`wasm-pack test --headless --chrome`), on burn's WebGPU
//! backend and on its CPU backend, against the oracle (tiny HF model).
#![cfg(target_arch = "wasm32")]

use fieldclip::web::Classifier;
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

#[wasm_bindgen_test]
async fn corrupt_image_and_empty_labels_are_errors_not_panics() {
    let mut classifier = Classifier::create(WEIGHTS.to_vec(), Some(CONFIG.to_vec()), "cpu".into(), None).await.unwrap_or_else(|_| panic!());
    assert!(classifier.classify(IMAGES[0].2.to_vec(), 5).await.is_err(), "no labels yet");
    assert!(classifier.set_labels(vec![], vec!["a photo of a {}.".into()]).await.is_err());
    assert!(classifier.set_labels(vec!["oak".into()], vec!["no placeholder".into()]).await.is_err());
    classifier.set_labels(vec!["oak".into(), "kelp".into()], vec!["a photo of a {}.".into()]).await.unwrap_or_else(|_| panic!());
    assert!(classifier.classify(b"not an image".to_vec(), 5).await.is_err());
    assert!(classifier.classify(IMAGES[0].2.to_vec(), 5).await.is_ok(), "the classifier still works");
    assert!(Classifier::create(b"garbage".to_vec(), None, "cpu".into(), None).await.is_err());
}

#[wasm_bindgen_test]
async fn loading_reports_its_steps() {
    let steps = js_sys::Array::new();
    let record = js_sys::Function::new_with_args("step, fraction", "this.push([step, fraction]);").bind(&steps);
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
