//! The classification session the page and the CLI share: label cleaning, the prompt cache,
//! classification against the oracle, adapters, per-image failures and error kinds.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use burn::tensor::Device;
use common::*;
use fieldclip::error::ErrorKind;
use fieldclip::session::{AdapterSettings, DropReason, LabelSet, Query, Session};
use fieldclip::search::Gallery;
use fieldclip::{ClipModel, Error};
use pollster::block_on;
use serde_json::Value;

fn session() -> Session {
    let model = ClipModel::from_bytes(&read("tiny/model.safetensors"), Some(&read("tiny/config.json")), &Device::flex()).unwrap();
    Session::new(model)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn prompts(expected: &Value) -> Vec<String> {
    expected["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_string()).collect()
}

#[test]
fn labels_are_cleaned_once_and_the_reasons_reported() {
    let set = LabelSet::new(&strings(&[" oak ", "", "kelp", "oak", "  ", "sea urchin"]), &strings(&["a photo of a {}.", "a photo of a {}."]))
        .unwrap();
    assert_eq!(set.labels, strings(&["oak", "kelp", "sea urchin"]));
    let reasons: Vec<(&str, usize, DropReason)> = set.dropped.iter().map(|d| (d.what, d.position, d.reason.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            ("label", 2, DropReason::Blank),
            ("label", 4, DropReason::Duplicate { first: 1 }),
            ("label", 5, DropReason::Blank),
            ("template", 2, DropReason::Duplicate { first: 1 }),
        ]
    );
    assert_eq!(set.dropped[1].to_string(), "label 4 (`oak`) repeats label 1, so it was left out");
    assert_eq!(set.prompts(), strings(&["a photo of a oak.", "a photo of a kelp.", "a photo of a sea urchin."]));
}

#[test]
fn classification_matches_the_oracle_and_blank_labels_do_not_shift_scores() {
    let expected = json("tiny/expected.json");
    let prompts = prompts(&expected);
    let mut session = session();
    // Every oracle prompt as a label, with blanks and a repeat in between.
    let mut messy: Vec<String> = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        messy.push(p.clone());
        if i % 4 == 1 {
            messy.push("   ".into());
        }
    }
    messy.push(prompts[0].clone());
    let update = block_on(session.set_label_list(&messy, &strings(&["{}"]))).unwrap();
    assert_eq!(update.labels, prompts);
    assert_eq!(update.encoded, prompts, "every prompt encoded once");
    assert_eq!(update.dropped.len(), messy.len() - prompts.len());
    for (i, image) in expected["image_embeds"].as_array().unwrap().iter().enumerate() {
        let predictions = session.classify_embedding(&floats(image)).unwrap();
        assert_eq!(predictions.len(), prompts.len());
        for p in &predictions {
            let j = prompts.iter().position(|t| *t == p.label).unwrap();
            let want = expected["probs"][i][j].as_f64().unwrap() as f32;
            assert!((p.probability - want).abs() < 1e-4, "image {i}, {}: {} vs {want}", p.label, p.probability);
        }
        let sum: f32 = predictions.iter().map(|p| p.probability).sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
    // From the image file, through decoding and preprocessing.
    let predictions = block_on(session.classify(&read("images/chelsea.png"))).unwrap();
    let j = prompts.iter().position(|t| *t == predictions[0].label).unwrap();
    assert!((predictions[0].probability - expected["probs"][3][j].as_f64().unwrap() as f32).abs() < 1e-3);
}

#[test]
fn an_edited_label_encodes_only_its_own_prompts() {
    let mut session = session();
    let templates = strings(&["a photo of a {}.", "a close-up photo of a {}."]);
    let first = block_on(session.set_label_list(&strings(&["oak", "kelp"]), &templates)).unwrap();
    assert_eq!(first.encoded.len(), 4);
    let embeds_before = session.label_embeddings()[..session.dim()].to_vec();
    let second = block_on(session.set_label_list(&strings(&["oak", "sea urchin"]), &templates)).unwrap();
    assert_eq!(second.encoded, strings(&["a photo of a sea urchin.", "a close-up photo of a sea urchin."]));
    assert_eq!(session.encoded_prompts(), 6);
    assert_eq!(&session.label_embeddings()[..session.dim()], embeds_before.as_slice(), "oak is unchanged");

    // Stored prompt embeddings come back into a new session without the text encoder.
    let stored = session.prompt_embeddings(&second.encoded).unwrap();
    let mut fresh = self::session();
    fresh.import_prompt_embeddings(second.encoded.clone(), &stored).unwrap();
    let update = block_on(fresh.set_label_list(&strings(&["sea urchin"]), &templates)).unwrap();
    assert!(update.encoded.is_empty(), "taken from the imported cache");
    let e = fresh.import_prompt_embeddings(second.encoded.clone(), &stored[1..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
}

#[test]
fn a_broken_photo_fails_alone_in_a_batch() {
    let session = session();
    let images = vec![read("images/astronaut.jpg"), b"\xff\xd8\xff not a jpeg".to_vec(), read("images/chelsea.png")];
    let mut calls = Vec::new();
    let results = block_on(session.embed_images(&images, &mut |done, total| calls.push((done, total)))).unwrap();
    assert_eq!(calls, vec![(3, 3)]);
    assert!(results[0].is_ok() && results[2].is_ok());
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Input, "{e}");
    let alone = block_on(session.embed_image(&images[2])).unwrap();
    assert!(max_abs_diff(results[2].as_ref().unwrap(), &alone) < 1e-5);
}

#[test]
fn search_by_text_ranks_as_the_oracle_cosines() {
    let expected = json("tiny/expected.json");
    let session = session();
    let mut gallery = Gallery::new(session.dim());
    let images: Vec<Vec<f32>> = rows(&expected["image_embeds"]);
    gallery.add(&images.concat()).unwrap();
    let text = prompts(&expected)[4].clone();
    let hits = block_on(session.search(&gallery, Query::Text(&text), 3)).unwrap();
    let want = floats(&expected["text_embeds"][4]);
    let mut order: Vec<(usize, f32)> = images.iter().map(|i| cosine(i, &want)).enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(hits.iter().map(|h| h.index).collect::<Vec<_>>(), order[..3].iter().map(|o| o.0).collect::<Vec<_>>());
    for (h, o) in hits.iter().zip(&order) {
        assert!((h.score - o.1).abs() < 1e-4);
    }
}

#[test]
fn adapters_belong_to_one_model_and_one_label_list() {
    let expected = json("tiny/expected.json");
    let mut session = session();
    block_on(session.set_label_list(&strings(&["oak", "kelp"]), &strings(&["{}"]))).unwrap();
    let examples = [floats(&expected["image_embeds"][0]), floats(&expected["image_embeds"][3])].concat();
    let settings = AdapterSettings { alpha: 1.0, beta: 5.5, probe_blend: None, every_label_needs_examples: true };
    let adapter = session.make_adapter(&examples, &[0, 1], settings).unwrap();
    assert_eq!(adapter.model, session.model_id());
    session.set_adapter(Some(adapter.clone())).unwrap();
    let adapted = session.classify_embedding(&floats(&expected["image_embeds"][0])).unwrap();
    let reference = adapter.classify(&floats(&expected["image_embeds"][0]), session.label_embeddings(), session.model().logit_scale_exp()).unwrap();
    assert_eq!(adapted, reference);
    // Label numbers off the list, sizes that do not fit, NaN settings: input errors, no panic.
    let some = AdapterSettings { every_label_needs_examples: false, ..settings };
    let e = session.make_adapter(&examples, &[0, 2], some).unwrap_err();
    assert!(matches!(e, Error::LabelIndex { index: 2, labels: 2 }), "{e}");
    let e = session.make_adapter(&examples[1..], &[0, 1], some).unwrap_err();
    assert!(matches!(e, Error::RowCount { .. }), "{e}");
    let e = session.make_adapter(&examples, &[0, 1], AdapterSettings { beta: f32::NAN, ..settings }).unwrap_err();
    assert!(matches!(e, Error::NotFinite { .. }), "{e}");
    // A new list drops the adapter; the old one is refused for it.
    block_on(session.set_label_list(&strings(&["oak", "beech"]), &strings(&["{}"]))).unwrap();
    assert!(session.adapter().is_none());
    let e = session.set_adapter(Some(adapter)).unwrap_err();
    assert!(matches!(e, Error::AdapterLabels { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Input);
}

#[test]
fn errors_carry_their_kind() {
    let mut session = session();
    let e = block_on(session.classify(&read("images/chelsea.png"))).unwrap_err();
    assert!(matches!(e, Error::NoLabels) && e.kind() == ErrorKind::Input, "{e}");
    let e = block_on(session.set_label_list(&strings(&["", " "]), &strings(&["{}"]))).unwrap_err();
    assert!(matches!(e, Error::NoLabels), "{e}");
    let e = block_on(session.embed_pixels(&[vec![0.0; 5]])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Input, "{e}");
    let e = ClipModel::from_bytes(b"garbage", None, &Device::flex()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Model, "{e}");
    assert_eq!(Error::Backend("device lost".into()).kind(), ErrorKind::Device);
}

/// #19: empty or malformed batches handed to the model are errors, not panics inside burn.
#[test]
fn empty_and_malformed_batches_are_errors() {
    let session = session();
    let model = session.model();
    assert!(matches!(block_on(session.embed_texts(&[])), Err(Error::NoTexts)));
    assert!(matches!(block_on(session.embed_pixels(&[])), Err(Error::ModelInput(_))));
    assert!(matches!(model.encode_tokens(&[]), Err(Error::ModelInput(_))));
    assert!(matches!(model.encode_images(&[]), Err(Error::ModelInput(_))));
    assert!(matches!(model.encode_images(&[vec![0.0; 7]]), Err(Error::PixelCount { .. })));
    let text = &model.model.text;
    assert!(text.forward(&[], &[]).is_err());
    assert!(text.forward(&[vec![49406, 49407]], &[2]).is_err(), "pooled position past the row");
    assert!(text.forward(&[vec![49406, 49408]], &[1]).is_err(), "token id outside the vocabulary");
    assert!(text.forward(&[vec![49406, 49407], vec![49406]], &[1, 0]).is_err(), "rows of different lengths");
    assert!(text.forward(&[vec![0; 78]], &[77]).is_err(), "longer than the context");
    // What is refused is a user's input, never the device's failure.
    assert_eq!(Error::NoTexts.kind(), ErrorKind::Input);
}
