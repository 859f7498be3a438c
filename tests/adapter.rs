//! Few-shot adaptation on the tiny oracle model's embeddings: Tip-Adapter against its formula,
//! leave-one-out, the linear probe at its optimum, the adapter file, and the errors.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use fieldclip::adapter::{Adapter, DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_BLEND, DEFAULT_PROBE_L2};
use fieldclip::clip::classify;
use fieldclip::Error;

/// The oracle's image rows (see `images` in expected.json).
const ASTRONAUT: usize = 0;
const ROCKET: usize = 1;
const COFFEE: usize = 2;
const CAMERA_GRAY: usize = 4;
const LOGO_RGBA: usize = 5;
const COFFEE_ALPHA: usize = 6;
const ASTRONAUT_WIDE: usize = 7;
const IHC_TALL: usize = 8;
const CHELSEA_SMALL: usize = 9;

/// The tiny model has random weights, so its embeddings group photos by its own likeness,
/// not by what they show: camera_gray, coffee_alpha, logo_rgba and ihc_tall are close to each
/// other (cosine 0.95–0.99), rocket, chelsea_small, coffee and astronaut_wide too. These two
/// groups are the classes, named by two prompts whose zero-shot scores are close:
/// "a photo of a sunflower, a type of plant." (prompt 0) for the first group and
/// "a photo of a rocket." (prompt 5) for the second. Zero-shot calls most of the first group
/// "rocket"; their examples should pull them back.
struct Case {
    labels: Vec<String>,
    label_embeds: Vec<Vec<f32>>,
    scale: f32,
    images: Vec<Vec<f32>>,
}

const SUNFLOWER_PHOTOS: [usize; 4] = [CAMERA_GRAY, COFFEE_ALPHA, LOGO_RGBA, IHC_TALL];
const ROCKET_PHOTOS: [usize; 4] = [ROCKET, CHELSEA_SMALL, COFFEE, ASTRONAUT_WIDE];

fn case() -> Case {
    let expected = json("tiny/expected.json");
    let texts = rows(&expected["text_embeds"]);
    Case {
        labels: [0, 5].iter().map(|&p| expected["prompts"][p]["text"].as_str().unwrap().to_string()).collect(),
        label_embeds: vec![texts[0].clone(), texts[5].clone()],
        scale: expected["logit_scale_exp"].as_f64().unwrap() as f32,
        images: rows(&expected["image_embeds"]),
    }
}

impl Case {
    /// (embedding, label) of each photo, sunflowers (label 0) then rockets (label 1).
    fn examples(&self, leave_out: &[usize]) -> Vec<(Vec<f32>, usize)> {
        let labelled = SUNFLOWER_PHOTOS.iter().map(|&i| (i, 0)).chain(ROCKET_PHOTOS.iter().map(|&i| (i, 1)));
        labelled.filter(|(i, _)| !leave_out.contains(i)).map(|(i, l)| (self.images[i].clone(), l)).collect()
    }

    fn adapter(&self, examples: &[(Vec<f32>, usize)]) -> Adapter {
        let flat: Vec<f32> = examples.iter().flat_map(|(e, _)| e.clone()).collect();
        let labels: Vec<usize> = examples.iter().map(|(_, l)| *l).collect();
        let templates = vec!["{}".to_string()];
        Adapter::new("tiny", self.labels.clone(), templates, self.images[0].len(), &flat, &labels).unwrap()
    }

    fn label_embeds(&self) -> Vec<f32> {
        self.label_embeds.concat()
    }
}

#[test]
fn tip_adapter_puts_right_what_zero_shot_gets_wrong() {
    let case = case();
    let w = case.label_embeds();
    // camera_gray held out: classified from the other seven examples.
    let examples = case.examples(&[CAMERA_GRAY]);
    let adapter = case.adapter(&examples);
    assert_eq!((adapter.alpha, adapter.beta), (1.0, 5.5));
    let photo = &case.images[CAMERA_GRAY];

    let zero_shot = classify(photo, &w, &case.labels, case.scale);
    assert_eq!(zero_shot[0].label, case.labels[1], "zero-shot says rocket");
    let adapted = adapter.classify(photo, &w, case.scale).unwrap();
    assert_eq!(adapted[0].label, case.labels[0], "the examples make it a sunflower");

    let reference = tip_adapter_logits(photo, &case.label_embeds, &examples, case.scale, 1.0, 5.5);
    let logits = adapter.logits(photo, &w, case.scale).unwrap();
    assert!(max_abs_diff(&logits, &reference) < 1e-5, "{logits:?} vs {reference:?}");
    eprintln!("camera_gray: zero-shot logits {:?}, adapted {logits:?}", [zero_shot[1].logit, zero_shot[0].logit]);

    // Every photo against the examples of the others.
    for (alpha, beta) in [(DEFAULT_ALPHA, DEFAULT_BETA), (3.0, 12.0)] {
        let mut adapter = case.adapter(&case.examples(&[]));
        (adapter.alpha, adapter.beta) = (alpha, beta);
        for image in &case.images {
            let reference = tip_adapter_logits(image, &case.label_embeds, &case.examples(&[]), case.scale, alpha, beta);
            let logits = adapter.logits(image, &w, case.scale).unwrap();
            assert!(max_abs_diff(&logits, &reference) < 1e-4, "{logits:?} vs {reference:?}");
        }
        let loo = adapter.leave_one_out(&w, case.scale).unwrap();
        let (zero_shot, adapted) =
            tip_adapter_leave_one_out(&case.examples(&[]), &case.label_embeds, case.scale, alpha, beta);
        assert_eq!((loo.examples, loo.zero_shot_correct, loo.adapted_correct), (8, zero_shot, adapted));
        eprintln!("α {alpha}, β {beta}: leave-one-out zero-shot {zero_shot}/8, Tip-Adapter {adapted}/8");
        assert!(loo.adapted_correct > loo.zero_shot_correct, "{loo:?}");
    }
}

/// The probe's objective, in f64: mean cross-entropy of the examples plus `l2/2·‖P − scale·W‖²`,
/// and its gradient with respect to `P`.
fn probe_objective(case: &Case, examples: &[(Vec<f32>, usize)], probe: &[Vec<f32>], l2: f64) -> (f64, Vec<Vec<f64>>) {
    let n = examples.len() as f64;
    let shift: Vec<Vec<f64>> = probe
        .iter()
        .zip(&case.label_embeds)
        .map(|(p, w)| p.iter().zip(w).map(|(p, w)| *p as f64 - case.scale as f64 * *w as f64).collect())
        .collect();
    let mut loss = l2 / 2.0 * shift.iter().flatten().map(|d| d * d).sum::<f64>();
    let mut gradient: Vec<Vec<f64>> = shift.iter().map(|row| row.iter().map(|d| l2 * d).collect()).collect();
    for (f, label) in examples {
        let logits: Vec<f64> =
            probe.iter().map(|p| p.iter().zip(f).map(|(a, b)| *a as f64 * *b as f64).sum()).collect();
        let max = logits.iter().copied().fold(f64::MIN, f64::max);
        let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
        loss += (sum.ln() + max - logits[*label]) / n;
        for (c, g) in gradient.iter_mut().enumerate() {
            let residual = (logits[c] - max).exp() / sum - if c == *label { 1.0 } else { 0.0 };
            g.iter_mut().zip(f).for_each(|(g, x)| *g += residual * *x as f64 / n);
        }
    }
    (loss, gradient)
}

#[test]
fn the_linear_probe_reaches_its_optimum_and_blends_with_zero_shot() {
    let case = case();
    let w = case.label_embeds();
    let examples = case.examples(&[]);
    let mut adapter = case.adapter(&examples);
    adapter.train_probe(&w, case.scale, DEFAULT_BLEND, DEFAULT_PROBE_L2).unwrap();
    let probe = adapter.probe.clone().unwrap();

    let l2 = DEFAULT_PROBE_L2 as f64;
    let start: Vec<Vec<f32>> = case.label_embeds.iter().map(|w| w.iter().map(|x| x * case.scale).collect()).collect();
    let (loss_at_start, _) = probe_objective(&case, &examples, &start, l2);
    let (loss, gradient) = probe_objective(&case, &examples, &probe.weights, l2);
    let gradient_norm = gradient.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
    eprintln!(
        "probe objective {loss_at_start:.4} at the text weights, {loss:.4} trained; gradient norm {gradient_norm:.2e}"
    );
    assert!(loss < loss_at_start - 0.1);
    assert!(gradient_norm < 1e-4, "at the minimum: {gradient_norm}");

    // logits = (1 − blend)·zero-shot + blend·probe + cache
    for image in &case.images {
        let zero_shot = tip_adapter_logits(image, &case.label_embeds, &[], case.scale, 0.0, 0.0);
        let cache = tip_adapter_logits(image, &case.label_embeds, &examples, 0.0, 1.0, 5.5);
        let expected: Vec<f32> = (0..2)
            .map(|c| {
                let probe_logit: f32 = probe.weights[c].iter().zip(image).map(|(a, b)| a * b).sum();
                (1.0 - DEFAULT_BLEND) * zero_shot[c] + DEFAULT_BLEND * probe_logit + cache[c]
            })
            .collect();
        assert!(max_abs_diff(&adapter.logits(image, &w, case.scale).unwrap(), &expected) < 1e-4);
    }

    // The probe alone (no cache) in leave-one-out, retrained for every held-out photo.
    adapter.alpha = 0.0;
    let loo = adapter.leave_one_out(&w, case.scale).unwrap();
    eprintln!("leave-one-out: zero-shot {}/8, probe {}/8", loo.zero_shot_correct, loo.adapted_correct);
    assert!(loo.adapted_correct > loo.zero_shot_correct, "{loo:?}");
    let held_out = case.adapter(&case.examples(&[CAMERA_GRAY]));
    assert_eq!(held_out.leave_one_out(&w, case.scale).unwrap().examples, 7);
}

#[test]
fn an_exported_adapter_imports_to_identical_logits() {
    let case = case();
    let w = case.label_embeds();
    let mut adapter = case.adapter(&case.examples(&[]));
    (adapter.alpha, adapter.beta) = (0.7, 6.25);
    adapter.train_probe(&w, case.scale, 0.3, DEFAULT_PROBE_L2).unwrap();
    let json = adapter.to_json();
    let imported = Adapter::from_json(json.as_bytes()).unwrap();
    assert_eq!(imported, adapter);
    for image in &case.images {
        let bits =
            |a: &Adapter| a.logits(image, &w, case.scale).unwrap().iter().map(|l| l.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&imported), bits(&adapter));
    }
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["alpha", "beta", "dim", "format", "key_labels", "keys", "labels", "model", "probe", "templates"]);
    assert_eq!(value["format"], 1);
    assert_eq!(value["key_labels"], serde_json::json!([0, 0, 0, 0, 1, 1, 1, 1]));

    // serde_json writes the shortest decimal that reads back as the same f32: checked on
    // 2^20 f32s spread over every exponent, beyond the handful in this adapter.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let floats: Vec<f32> = std::iter::repeat_with(|| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        f32::from_bits((state >> 32) as u32)
    })
    .filter(|f| f.is_finite())
    .take(1 << 20)
    .collect();
    let back: Vec<f32> = serde_json::from_str(&serde_json::to_string(&floats).unwrap()).unwrap();
    assert!(floats.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn errors_say_what_to_do() {
    let case = case();
    let w = case.label_embeds();
    let dim = case.images[0].len();
    let only_rockets: Vec<f32> = ROCKET_PHOTOS.iter().flat_map(|&i| case.images[i].clone()).collect();
    let e = Adapter::new("tiny", case.labels.clone(), vec![], dim, &only_rockets, &[1; 4]).unwrap_err();
    assert!(matches!(&e, Error::ClassWithoutExamples(label) if *label == case.labels[0]));
    assert_eq!(
        e.to_string(),
        "The class `a photo of a sunflower, a type of plant.` has no labelled examples: add at least one photo of it, \
         or take it off the label list."
    );

    let adapter = case.adapter(&case.examples(&[]));
    let e = adapter.logits(&case.images[ASTRONAUT][..16], &w, case.scale).unwrap_err();
    assert!(matches!(e, Error::DimensionMismatch { expected: 16, found, .. } if found == dim), "{e:?}");
    assert!(e.to_string().starts_with(&format!("The adapter holds {dim}-dimensional embeddings")), "{e}");
    assert!(matches!(adapter.logits(&case.images[0], &w[..dim], case.scale), Err(Error::DimensionMismatch { .. })));
    assert!(matches!(adapter.check_model("tiny", 512), Err(Error::DimensionMismatch { expected: 512, .. })));
    assert!(matches!(adapter.check_model("other", dim), Err(Error::ModelMismatch { .. })));
    adapter.check_model("tiny", dim).unwrap();

    adapter.check_labels(&case.labels).unwrap();
    let swapped = vec![case.labels[1].clone(), case.labels[0].clone()];
    let e = adapter.check_labels(&swapped).unwrap_err();
    assert!(e.to_string().contains("do not match the adapter's"), "{e}");

    let e = Adapter::from_json(b"not json").unwrap_err();
    assert!(e.to_string().starts_with("This is not a valid adapter file: "), "{e}");
    let mut value: serde_json::Value = serde_json::from_str(&adapter.to_json()).unwrap();
    value["key_labels"][0] = 2.into();
    let e = Adapter::from_json(value.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("a key label is not one of the 2 labels"), "{e}");
    value["format"] = 9.into();
    assert!(Adapter::from_json(value.to_string().as_bytes()).unwrap_err().to_string().contains("its format is 9"));
    // Non-finite numbers are refused where they enter (1e39 is infinity as f32; NaN is written
    // as null, which does not read as a number at all).
    let mut value: serde_json::Value = serde_json::from_str(&adapter.to_json()).unwrap();
    value["beta"] = serde_json::json!(1e39);
    let e = Adapter::from_json(value.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
    value["beta"] = serde_json::Value::Null;
    assert!(Adapter::from_json(value.to_string().as_bytes()).is_err());
    // Sizes that do not fit are errors, not panics.
    let e = Adapter::new("tiny", case.labels.clone(), vec![], dim, &only_rockets[1..], &[0, 1, 1, 1]).unwrap_err();
    assert!(matches!(e, Error::RowCount { .. }), "{e:?}");
}

#[test]
fn labels_without_photos_keep_their_zero_shot_logit() {
    let case = case();
    let expected = json("tiny/expected.json");
    let dim = case.images[0].len();
    // A third label ("a photo of a cat.") that no photo carries, as on the page while the
    // user labels photos one by one.
    let mut labels = case.labels.clone();
    labels.push(expected["prompts"][3]["text"].as_str().unwrap().to_string());
    let mut w: Vec<f32> = case.label_embeds.concat();
    w.extend(floats(&expected["text_embeds"][3]));
    let examples = case.examples(&[CAMERA_GRAY]);
    let flat: Vec<f32> = examples.iter().flat_map(|(e, _)| e.clone()).collect();
    let example_labels: Vec<usize> = examples.iter().map(|(_, l)| *l).collect();

    let e = Adapter::new("tiny", labels.clone(), vec![], dim, &flat, &example_labels).unwrap_err();
    assert!(matches!(&e, Error::ClassWithoutExamples(l) if *l == labels[2]), "{e:?}");
    let adapter = Adapter::with_some_classes("tiny", labels.clone(), vec![], dim, &flat, &example_labels).unwrap();
    assert_eq!(adapter.classes_without_examples(), 1);

    let f = &case.images[CAMERA_GRAY];
    let logits = adapter.logits(f, &w, case.scale).unwrap();
    let cat_zero_shot = case.scale * f.iter().zip(&w[2 * dim..]).map(|(a, b)| a * b).sum::<f32>();
    assert!((logits[2] - cat_zero_shot).abs() <= 1e-6, "no cache term for a label without photos: {logits:?}");
    let reference = tip_adapter_logits(f, &case.label_embeds, &examples, case.scale, DEFAULT_ALPHA, DEFAULT_BETA);
    assert!(max_abs_diff(&logits[..2], &reference) <= 1e-5, "{logits:?} vs {reference:?}");

    // Such an adapter file reads back; one with no photo at all is refused.
    assert_eq!(Adapter::from_json(adapter.to_json().as_bytes()).unwrap(), adapter);
    let e = Adapter::with_some_classes("tiny", labels, vec![], dim, &[], &[]).unwrap_err();
    assert_eq!(e.to_string(), "No photo has a label yet: give a few photos a label from the list first.");
}

/// #19: the check comes in parts (so the page can stop it); the parts add up to the whole, and
/// with a probe more than 10 photos are checked in 10 folds (10 trainings, not one per photo).
#[test]
fn the_check_in_parts_adds_up_and_a_probe_is_retrained_once_a_fold() {
    let case = case();
    let w = case.label_embeds();
    // 8 photos, then each photo twice (16: more than MAX_CHECK_PARTS).
    let eight = case.examples(&[]);
    let sixteen: Vec<(Vec<f32>, usize)> = eight.iter().chain(&eight).cloned().collect();
    for examples in [eight, sixteen] {
        for probe in [false, true] {
            let mut adapter = case.adapter(&examples);
            if probe {
                adapter.train_probe(&w, case.scale, DEFAULT_BLEND, DEFAULT_PROBE_L2).unwrap();
            }
            let parts = adapter.check_parts();
            assert_eq!(parts, examples.len().min(fieldclip::adapter::MAX_CHECK_PARTS));
            let whole = adapter.leave_one_out(&w, case.scale).unwrap();
            let (mut n, mut zero_shot, mut adapted) = (0, 0, 0);
            for part in 0..parts {
                let p = adapter.leave_one_out_part(&w, case.scale, part).unwrap();
                (n, zero_shot, adapted) = (n + p.examples, zero_shot + p.zero_shot_correct, adapted + p.adapted_correct);
            }
            assert_eq!((n, zero_shot, adapted), (whole.examples, whole.zero_shot_correct, whole.adapted_correct));
            assert_eq!(n, examples.len());
            assert!(matches!(adapter.leave_one_out_part(&w, case.scale, parts), Err(Error::CheckPart { .. })));
        }
    }
    // Without a probe it is exact leave-one-out: each photo against the cache of the others
    // (the reference computes it directly).
    let examples = case.examples(&[]);
    let adapter = case.adapter(&examples);
    let (zero_shot, adapted) = tip_adapter_leave_one_out(&examples, &case.label_embeds, case.scale, DEFAULT_ALPHA, DEFAULT_BETA);
    let loo = adapter.leave_one_out(&w, case.scale).unwrap();
    assert_eq!((loo.zero_shot_correct, loo.adapted_correct), (zero_shot, adapted));
}
