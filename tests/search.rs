//! Gallery search against a brute-force cosine ranking of the oracle's embeddings, the gallery
//! file, content and model fingerprints, and the errors.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use fieldclip::fingerprint::{model_id, sha256_hex};
use fieldclip::search::{rank, Hit, Index};
use fieldclip::Error;

/// Every row's (index, cosine) with `query`, best first, ties by lower index: the slow obvious way.
fn brute_force(query: &[f32], rows: &[Vec<f32>]) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = rows.iter().enumerate().map(|(i, r)| (i, cosine(query, r))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

fn assert_hits(hits: &[Hit], expected: &[(usize, f32)]) {
    let indices: Vec<usize> = hits.iter().map(|h| h.index).collect();
    assert_eq!(indices, expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for (hit, (_, score)) in hits.iter().zip(expected) {
        assert!((hit.score - score).abs() < 1e-6, "{} vs {score}", hit.score);
    }
}

fn oracle() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let expected = json("tiny/expected.json");
    (rows(&expected["image_embeds"]), rows(&expected["text_embeds"]))
}

#[test]
fn text_and_image_queries_rank_as_brute_force_cosine() {
    let (images, texts) = oracle();
    let dim = images[0].len();
    let gallery = images.concat();
    for query in texts.iter().chain(&images) {
        let expected = brute_force(query, &images);
        assert_hits(&rank(query, &gallery, dim, images.len()).unwrap(), &expected);
        assert_hits(&rank(query, &gallery, dim, 3).unwrap(), &expected[..3]);
        assert_hits(&rank(query, &gallery, dim, 100).unwrap(), &expected);
        assert!(rank(query, &gallery, dim, 0).unwrap().is_empty());
    }
    for (i, image) in images.iter().enumerate() {
        let best = rank(image, &gallery, dim, 1).unwrap()[0];
        assert_eq!(best.index, i, "a photo finds itself first");
        assert!((best.score - 1.0).abs() < 1e-6);
    }
}

#[test]
fn equal_scores_keep_the_lower_index_first_also_where_top_k_cuts_a_tie() {
    let (images, texts) = oracle();
    let dim = images[0].len();
    // chelsea.png (row 3) twice more, at rows 10 and 11: three rows with one score.
    let rows: Vec<Vec<f32>> = images.iter().chain([&images[3], &images[3]]).cloned().collect();
    let gallery = rows.concat();
    let hits = rank(&images[3], &gallery, dim, 3).unwrap();
    assert_eq!(hits.iter().map(|h| h.index).collect::<Vec<_>>(), [3, 10, 11]);
    assert!(hits.iter().all(|h| h.score == hits[0].score));

    let query = &texts[2];
    let expected = brute_force(query, &rows);
    let at = expected.iter().position(|e| e.0 == 3).unwrap();
    assert_eq!(expected[at..at + 3].iter().map(|e| e.0).collect::<Vec<_>>(), [3, 10, 11]);
    // k ends inside the tie: the lower two indices are kept, in order.
    let hits = rank(query, &gallery, dim, at + 2).unwrap();
    assert_hits(&hits, &expected[..at + 2]);
    assert_eq!(hits[at..].iter().map(|h| h.index).collect::<Vec<_>>(), [3, 10]);
}

#[test]
fn the_gallery_file_keeps_one_entry_per_content_and_round_trips() {
    let (images, texts) = oracle();
    let dim = images[0].len();
    let mut index = Index::new("tiny", dim);
    let chelsea = read("images/chelsea.png");
    assert!(index.add("a/chelsea.png", &sha256_hex(&chelsea), images[3].clone()).unwrap());
    assert!(index.add("a/astronaut.jpg", &sha256_hex(&read("images/astronaut.jpg")), images[0].clone()).unwrap());
    assert!(!index.add("b/copy.png", &sha256_hex(&chelsea), images[3].clone()).unwrap(), "same content: not added");
    assert_eq!(index.entries.len(), 2);
    assert_eq!(index.find(&sha256_hex(&chelsea)).unwrap().name, "a/chelsea.png");

    let again = Index::from_json(index.to_json().as_bytes()).unwrap();
    assert_eq!(again, index, "every f32 reads back exactly");
    let hits = again.search(&texts[2], 5).unwrap();
    assert_hits(&hits, &brute_force(&texts[2], &[images[3].clone(), images[0].clone()]));
    again.check_model("tiny", dim).unwrap();
}

#[test]
fn fingerprints() {
    // FIPS 180-2's example.
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let weights = read("tiny/model.safetensors");
    let id = model_id("ViT-tiny", &weights);
    assert!(id.starts_with("ViT-tiny ") && id.len() == "ViT-tiny ".len() + 16, "{id}");
    assert_eq!(model_id("ViT-tiny", &weights), id);
    let mut changed = weights.clone();
    changed[weights.len() - 1] ^= 1;
    assert_ne!(model_id("ViT-tiny", &changed), id, "the last sample ends at the file's end");
}

#[test]
fn errors_say_what_to_do() {
    let (images, _) = oracle();
    let dim = images[0].len();
    let e = rank(&images[0], &[], dim, 5).unwrap_err();
    assert!(matches!(e, Error::EmptyGallery));
    assert_eq!(e.to_string(), "The gallery is empty: add some photos to it first.");
    assert!(matches!(Index::new("tiny", dim).search(&images[0], 5), Err(Error::EmptyGallery)));

    let gallery = images.concat();
    let e = rank(&images[0][..16], &gallery, dim, 5).unwrap_err();
    assert!(matches!(e, Error::DimensionMismatch { expected: 16, found, .. } if found == dim), "{e:?}");
    assert!(e.to_string().contains(&format!("gallery holds {dim}-dimensional embeddings")), "{e}");
    assert!(e.to_string().contains("model in use makes 16-dimensional"), "{e}");

    let mut index = Index::new("ViT-B/32 0123456789abcdef", dim);
    assert!(matches!(index.add("x", "00", vec![0.0; 16]), Err(Error::DimensionMismatch { .. })));
    assert!(matches!(index.check_model("ViT-B/32 0123456789abcdef", 768), Err(Error::DimensionMismatch { .. })));
    let e = index.check_model("ViT-B/32 fedcba9876543210", dim).unwrap_err();
    assert!(e.to_string().contains("made with the model `ViT-B/32 0123456789abcdef`"), "{e}");

    let e = Index::from_json(b"{\"format\": 1").unwrap_err();
    assert!(e.to_string().starts_with("This is not a valid gallery file: "), "{e}");
    let future = r#"{"format": 2, "model": "m", "dim": 2, "entries": []}"#;
    assert!(Index::from_json(future.as_bytes()).unwrap_err().to_string().contains("its format is 2"));
    let ragged =
        r#"{"format": 1, "model": "m", "dim": 2, "entries": [{"name": "a.jpg", "sha256": "00", "embedding": [1]}]}"#;
    assert!(Index::from_json(ragged.as_bytes()).unwrap_err().to_string().contains("`a.jpg` has 1 values, not 2"));
    // 1e39 is infinity as f32: it used to print `inf` scores.
    let huge =
        r#"{"format": 1, "model": "m", "dim": 2, "entries": [{"name": "a.jpg", "sha256": "00", "embedding": [1e39, 0]}]}"#;
    let e = Index::from_json(huge.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("`a.jpg` holds a value that is not a finite number"), "{e}");
}
