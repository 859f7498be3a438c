//! The `fieldclip` command line, run as a user would.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fieldclip(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldclip")).args(args).output().expect("run fieldclip");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn path(p: &str) -> String {
    data(p).display().to_string()
}

#[test]
fn embed_prints_normalised_embeddings_in_the_documented_shape() {
    let expected = json("tiny/expected.json");
    let prompt = expected["prompts"][3]["text"].as_str().unwrap();
    let (code, stdout, stderr) = fieldclip(&[
        "embed", "--weights", &path("tiny"), "--image", &path("images/chelsea.png"), "--text", prompt,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["images", "logit_scale", "texts"]);
    assert_eq!(out["images"][0]["path"], path("images/chelsea.png"));
    let image = floats(&out["images"][0]["embedding"]);
    assert!(cosine(&image, &floats(&expected["image_embeds"][3])) >= 0.9999);
    assert!((image.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5, "L2-normalised");
    assert_eq!(out["texts"][0]["text"], prompt);
    assert!(max_abs_diff(&floats(&out["texts"][0]["embedding"]), &floats(&expected["text_embeds"][3])) < 1e-5);
    assert!((out["logit_scale"].as_f64().unwrap() - expected["logit_scale_exp"].as_f64().unwrap()).abs() < 1e-4);
}

#[test]
fn bench_times_each_case_on_the_prompts_it_reports() {
    let (code, stdout, stderr) = fieldclip(&[
        "bench", "--weights", &path("tiny"), "--batch", "1,3", "--prompts", "4", "--runs", "2", "--warmup", "1", "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["backend"], "cpu");
    assert_eq!(out["build"], if cfg!(debug_assertions) { "dev" } else { "release" });
    let cases: Vec<&str> = out["rows"].as_array().unwrap().iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(cases, ["image batch 1", "image batch 3", "4 prompts"]);
    for row in out["rows"].as_array().unwrap() {
        let (min, median) = (row["min_ms"].as_f64().unwrap(), row["median_ms"].as_f64().unwrap());
        assert!(min > 0.0 && min <= median && row["first_ms"].as_f64().unwrap() > 0.0, "{row}");
    }
    // The prompts it timed, as the tokenizer gives them, so another engine can time the same.
    let ids = out["prompt_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 4);
    let (_, tokenized, _) = fieldclip(&["tokenize", "--text", "a photo of a sunflower, a type of plant."]);
    let tokenized: Value = serde_json::from_str(&tokenized).unwrap();
    assert_eq!(ids[0], tokenized["texts"][0]["ids"]);
    let longest = ids
        .iter()
        .map(|row| row.as_array().unwrap().iter().position(|id| id == 49407).unwrap() + 1)
        .max()
        .unwrap();
    assert_eq!(out["longest_prompt_tokens"], longest);

    // `--batch` without sizes: the prompts alone (the GPU profile counts each case apart).
    let (code, stdout, stderr) =
        fieldclip(&["bench", "--weights", &path("tiny"), "--batch", "--prompts", "2", "--runs", "1", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["rows"].as_array().unwrap().len(), 1);
    assert_eq!(out["rows"][0]["case"], "2 prompts");

    let (code, _, stderr) = fieldclip(&["bench", "--weights", &path("tiny"), "--batch", "0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--batch sizes must be at least 1"), "{stderr}");
}

#[test]
fn classify_reports_a_bad_file_and_goes_on() {
    let scratch = temp_dir("broken");
    let broken = scratch.join("fieldclip-cli-broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
    let expected = json("tiny/expected.json");
    let labels: Vec<&str> = expected["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap()).collect();
    let mut args = vec!["classify", "--weights", "", "--template", "{}", "--csv"];
    let weights = path("tiny/model.safetensors");
    args[2] = &weights;
    for l in &labels {
        args.extend(["--label", l]);
    }
    let (astronaut, broken_path) = (path("images/astronaut.jpg"), broken.display().to_string());
    args.extend([astronaut.as_str(), broken_path.as_str()]);
    let (code, stdout, stderr) = fieldclip(&args);
    assert_eq!(code, 1, "a failed file makes the exit code 1");
    assert!(stderr.contains("fieldclip-cli-broken.jpg") && stderr.contains("could not be decoded"), "{stderr}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows[0], "file,rank,label,probability");
    assert_eq!(rows.len(), 1 + 5, "top 5 of the one good image");
    // Labels with commas are quoted; the probabilities are the oracle's.
    let best = argmax(&floats(&expected["probs"][0]));
    let quoted = |l: &str| if l.contains(',') { format!("\"{l}\"") } else { l.to_string() };
    let first = rows[1];
    assert!(first.starts_with(&format!("{astronaut},1,{},", quoted(labels[best]))), "{first}");
    assert!(rows.iter().any(|r| r.contains("\"a photo of a sunflower, a type of plant.\"")), "a quoted label among the top 5");
    // From the JPEG file through our own decoding (not the oracle's pixels): the page's 1e-3.
    let p: f32 = first.rsplit(',').next().unwrap().parse().unwrap();
    assert!((p - floats(&expected["probs"][0])[best]).abs() < 1e-3, "{p}");
}

/// A blank `--label` (and a repeated one) used to shift every score onto the wrong label: now
/// the session leaves them out, says so, and the scores are those of the clean list.
#[test]
fn blank_and_repeated_labels_are_left_out_with_a_warning_and_scores_stay_on_their_labels() {
    let expected = json("tiny/expected.json");
    let labels: Vec<&str> = (0..3).map(|j| expected["prompts"][j]["text"].as_str().unwrap()).collect();
    let (weights, photo) = (path("tiny/model.safetensors"), path("images/chelsea.png"));
    let run = |given: &[&str]| {
        let mut args = vec!["classify", "--weights", &weights, "--template", "{}", "--json", "--top", "10"];
        for l in given {
            args.extend(["--label", l]);
        }
        args.push(&photo);
        fieldclip(&args)
    };
    let (code, clean, stderr) = run(&labels);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let (code, messy, stderr) = run(&[labels[0], "", labels[1], "  ", labels[2], labels[0]]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: label 2 is blank"), "{stderr}");
    assert!(stderr.contains("warning: label 4 is blank"), "{stderr}");
    assert!(stderr.contains(&format!("label 6 (`{}`) repeats label 1", labels[0])), "{stderr}");
    let predictions = |stdout: &str| -> Vec<(String, f64)> {
        let out: Value = serde_json::from_str(stdout).unwrap();
        out[0]["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["label"].as_str().unwrap().to_string(), p["probability"].as_f64().unwrap()))
            .collect()
    };
    assert_eq!(predictions(&messy), predictions(&clean));
    // Each label has the probability of the oracle's logits for its prompt (chelsea.png is the
    // oracle's image 3), softmaxed over these three.
    let logits: Vec<f64> = (0..3).map(|j| expected["logits_per_image"][3][j].as_f64().unwrap()).collect();
    let total: f64 = logits.iter().map(|l| l.exp()).sum();
    let got = predictions(&clean);
    assert_eq!(got.len(), 3);
    for (label, probability) in got {
        let j = labels.iter().position(|l| *l == label).unwrap();
        let want = logits[j].exp() / total;
        assert!((probability - want).abs() < 1e-3, "{label}: {probability} vs {want}");
    }
}

/// Labels a spreadsheet would run as formulas are written to the CSV as text.
#[test]
fn csv_cells_that_look_like_formulas_are_kept_as_text() {
    let (weights, photo) = (path("tiny/model.safetensors"), path("images/chelsea.png"));
    let args = ["classify", "--weights", &weights, "--csv", "--label", "=HYPERLINK(\"x\")", "--label", "@SUM(A1)"];
    let (code, stdout, stderr) = fieldclip(&[&args[..], &["--label=-2+3", "--label", "oak", &photo]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(",\"'=HYPERLINK(\"\"x\"\")\","), "{stdout}");
    assert!(stdout.contains(",'@SUM(A1),") && stdout.contains(",'-2+3,") && stdout.contains(",oak,"), "{stdout}");
}

#[test]
fn tokenize_and_inspect() {
    let (code, stdout, _) = fieldclip(&["tokenize", "--text", "a photo of a cat."]);
    assert_eq!(code, 0);
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let ids = out["texts"][0]["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[..7].iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>(), [49406, 320, 1125, 539, 320, 2368, 269]);

    let (code, stdout, stderr) = fieldclip(&["inspect", "--weights", &path("openclip_tiny")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("open_clip"), "{stdout}");
    assert!(stdout.contains("1762593"), "{stdout}");

    let (code, _, stderr) = fieldclip(&["inspect", "--weights", &path("images/coffee.jpg")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a safetensors file"), "{stderr}");
}

/// A fresh, empty folder for one test, removed when the test ends (passed or failed).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("fieldclip-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// Copies one of tests/data/images to `to`, making its folder.
fn copy_image(image: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(data(&format!("images/{image}")), to).unwrap();
}

/// The oracle's embedding of one of tests/data/images.
fn oracle_embedding(expected: &Value, image: &str) -> Vec<f32> {
    let row =
        expected["images"].as_array().unwrap().iter().position(|i| i["file"] == format!("images/{image}")).unwrap();
    floats(&expected["image_embeds"][row])
}

fn string(p: &Path) -> String {
    p.display().to_string()
}

/// Names of `search --json` hits and their scores.
fn hits(stdout: &str) -> Vec<(String, f32)> {
    let out: Value = serde_json::from_str(stdout).unwrap();
    let hits = out.as_array().unwrap();
    for (i, h) in hits.iter().enumerate() {
        assert_eq!(h["rank"], i + 1);
    }
    hits.iter().map(|h| (h["name"].as_str().unwrap().to_string(), h["score"].as_f64().unwrap() as f32)).collect()
}

#[test]
fn index_skips_broken_files_and_repeated_content_and_search_finds_by_text_and_by_photo() {
    let expected = json("tiny/expected.json");
    let dir = temp_dir("index");
    let photos = dir.join("photos");
    copy_image("astronaut.jpg", &photos.join("astronaut.jpg"));
    copy_image("coffee.jpg", &photos.join("coffee.jpg"));
    copy_image("chelsea.png", &photos.join("cats/chelsea.png"));
    copy_image("chelsea.png", &photos.join("cats/same-cat.png"));
    std::fs::write(photos.join("broken.jpg"), b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
    std::fs::write(photos.join("notes.txt"), "not a photo").unwrap();
    let (weights, gallery) = (path("tiny/model.safetensors"), dir.join("gallery.json"));
    let index_args = ["index", "--weights", &weights, &string(&photos), "-o", &string(&gallery)];

    let (code, _, stderr) = fieldclip(&index_args);
    assert_eq!(code, 1, "a broken file makes the exit code 1: {stderr}");
    assert!(stderr.contains("broken.jpg") && stderr.contains("could not be decoded"), "{stderr}");
    assert!(stderr.contains("same-cat.png: same content as "), "{stderr}");
    assert!(stderr.contains("3 photos added"), "{stderr}");
    let index: Value = serde_json::from_slice(&std::fs::read(&gallery).unwrap()).unwrap();
    assert_eq!(index["format"], 1);
    assert_eq!(index["dim"], 32);
    let entries = index["entries"].as_array().unwrap();
    let indexed =
        [("astronaut.jpg", "astronaut.jpg"), ("cats/chelsea.png", "chelsea.png"), ("coffee.jpg", "coffee.jpg")];
    assert_eq!(entries.len(), indexed.len());
    for (entry, (name, image)) in entries.iter().zip(indexed) {
        assert_eq!(entry["name"], string(&photos.join(name)));
        let sha256: String =
            Sha256::digest(read(&format!("images/{image}"))).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(entry["sha256"], sha256);
        assert!(cosine(&floats(&entry["embedding"]), &oracle_embedding(&expected, image)) >= 0.9999);
    }

    let (code, _, stderr) = fieldclip(&index_args);
    assert_eq!(code, 1);
    assert!(stderr.contains("0 photos added") && stderr.contains("holds 3"), "indexing again adds nothing: {stderr}");

    // The indexed names by cosine similarity of the oracle's embeddings to `query`, best first.
    let ranking = |query: &[f32]| {
        let mut ranked: Vec<(String, f32)> = indexed
            .iter()
            .map(|(name, image)| (string(&photos.join(name)), cosine(query, &oracle_embedding(&expected, image))))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    };
    // By text.
    let text = expected["prompts"][2]["text"].as_str().unwrap();
    let gallery = string(&gallery);
    let (code, stdout, stderr) =
        fieldclip(&["search", "--index", &gallery, "--weights", &weights, "--text", text, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let reference = ranking(&floats(&expected["text_embeds"][2]));
    let found = hits(&stdout);
    assert_eq!(found.iter().map(|h| &h.0).collect::<Vec<_>>(), reference.iter().map(|h| &h.0).collect::<Vec<_>>());
    assert!(found.iter().zip(&reference).all(|(a, b)| (a.1 - b.1).abs() < 1e-3), "{found:?} vs {reference:?}");

    // By a photo already in the gallery (the original of a copy): found by its content, no
    // weights needed, itself first.
    let (code, stdout, stderr) =
        fieldclip(&["search", "--index", &gallery, "--image", &path("images/chelsea.png"), "-k", "2"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert_eq!(rows[0], "rank    score  name");
    assert_eq!(rows[1], format!("   1   1.0000  {}", photos.join("cats/chelsea.png").display()));

    // By a new photo: embedded with the weights.
    let photo = path("images/camera_gray.png");
    let (code, stdout, stderr) =
        fieldclip(&["search", "--index", &gallery, "--weights", &weights, "--image", &photo, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let reference = ranking(&oracle_embedding(&expected, "camera_gray.png"));
    let found = hits(&stdout);
    assert_eq!(found.iter().map(|h| &h.0).collect::<Vec<_>>(), reference.iter().map(|h| &h.0).collect::<Vec<_>>());

    let (code, _, stderr) = fieldclip(&["search", "--index", &gallery, "--image", &photo]);
    assert_eq!(code, 2);
    assert!(stderr.contains("camera_gray.png is not in the gallery: --weights is needed to embed it"), "{stderr}");
    let (code, _, stderr) =
        fieldclip(&["search", "--index", &gallery, "--weights", &path("openclip_tiny"), "--text", "a cat"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("was made with the model `ViT (64 wide, 2 layers, patch 32, 224 px) "), "{stderr}");

    let empty = dir.join("empty.json");
    std::fs::write(
        &empty,
        serde_json::json!({"format": 1, "model": index["model"], "dim": 32, "entries": []}).to_string(),
    )
    .unwrap();
    let (code, _, stderr) =
        fieldclip(&["search", "--index", &string(&empty), "--weights", &weights, "--text", "a cat"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("The gallery is empty: add some photos to it first."), "{stderr}");
}

#[test]
fn adapt_learns_two_classes_from_examples_and_classify_uses_the_adapter() {
    let expected = json("tiny/expected.json");
    let prompt = |i: usize| expected["prompts"][i]["text"].as_str().unwrap().to_string();
    // Two groups of photos the random tiny model sees as alike (see tests/adapter.rs), named by
    // two prompts; camera_gray.png, of the first group, is held out to be classified.
    let labels = [prompt(0), prompt(5)];
    let groups = [
        vec!["coffee_alpha.png", "logo_rgba.png", "ihc_tall.png"],
        vec!["astronaut_wide.png", "chelsea_small.png", "coffee.jpg", "rocket.jpg"],
    ];
    let dir = temp_dir("adapt");
    let examples = dir.join("examples");
    for (label, group) in labels.iter().zip(&groups) {
        for image in group {
            copy_image(image, &examples.join(label).join(image));
        }
    }
    let labels_file = dir.join("labels.txt");
    std::fs::write(&labels_file, format!("{}\n{}\n", labels[0], labels[1])).unwrap();
    let (weights, adapter_file) = (path("tiny/model.safetensors"), string(&dir.join("adapter.json")));
    let adapt = |labels_file: &Path, extra: &[&str]| {
        let (labels_file, examples) = (string(labels_file), string(&examples));
        let mut args = vec!["adapt", "--weights", &weights, "--labels", &labels_file, "--examples", &examples];
        args.extend(["-o", &adapter_file, "--template", "{}"]);
        args.extend(extra);
        fieldclip(&args)
    };

    let (code, stdout, stderr) = adapt(&labels_file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let label_embeds = vec![floats(&expected["text_embeds"][0]), floats(&expected["text_embeds"][5])];
    let scale = expected["logit_scale_exp"].as_f64().unwrap() as f32;
    let reference_examples: Vec<(Vec<f32>, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(label, group)| group.iter().map(move |image| (label, *image)))
        .map(|(label, image)| (oracle_embedding(&expected, image), label))
        .collect();
    let (zero_shot, adapted) = tip_adapter_leave_one_out(&reference_examples, &label_embeds, scale, 1.0, 5.5);
    eprintln!("leave-one-out on 7: zero-shot {zero_shot}/7, Tip-Adapter {adapted}/7");
    assert!(adapted > zero_shot);
    assert!(
        stdout.contains(&format!("zero-shot {zero_shot}/7")) && stdout.contains(&format!("adapted {adapted}/7")),
        "{stdout}"
    );

    let adapter: Value = serde_json::from_slice(&std::fs::read(&adapter_file).unwrap()).unwrap();
    assert_eq!(adapter["labels"], serde_json::json!(labels));
    assert_eq!(adapter["templates"], serde_json::json!(["{}"]));
    assert_eq!((adapter["alpha"].as_f64(), adapter["beta"].as_f64()), (Some(1.0), Some(5.5)));
    assert_eq!(adapter["key_labels"], serde_json::json!([0, 0, 0, 1, 1, 1, 1]));
    assert!(adapter["probe"].is_null());
    // A setting that is not a number is refused by its name.
    for (option, name) in [("--beta", "beta (β)"), ("--alpha", "alpha (α)")] {
        let (code, _, stderr) = adapt(&labels_file, &[option, "nan"]);
        assert_ne!(code, 0);
        assert!(stderr.contains(&format!("The adapter's {name} must be a finite number, not NaN.")), "{stderr}");
    }

    // camera_gray.png: zero-shot wrong, the adapter (labels and template from the file) right,
    // with the probability of the reference Tip-Adapter logits.
    let photo = path("images/camera_gray.png");
    let classify =
        |options: &[&str]| fieldclip(&[&["classify", "--weights", &weights, "--json"], options, &[&photo]].concat());
    let (code, stdout, stderr) = classify(&["--template", "{}", "--label", &labels[0], "--label", &labels[1]]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out[0]["predictions"][0]["label"], labels[1].as_str(), "zero-shot is wrong");
    let (code, stdout, stderr) = classify(&["--adapter", &adapter_file]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let best = &out[0]["predictions"][0];
    assert_eq!(best["label"], labels[0].as_str(), "adapted is right");
    let photo_embedding = oracle_embedding(&expected, "camera_gray.png");
    let logits = tip_adapter_logits(&photo_embedding, &label_embeds, &reference_examples, scale, 1.0, 5.5);
    let probability = 1.0 / (1.0 + (logits[1] - logits[0]).exp());
    assert!((best["probability"].as_f64().unwrap() as f32 - probability).abs() < 1e-3, "{best} vs {probability}");

    let (code, _, stderr) = classify(&["--adapter", &adapter_file, "--label", "oak", "--label", "beech"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("do not match the adapter's"), "{stderr}");

    let (code, stdout, stderr) = adapt(&labels_file, &["--probe", "--blend", "0.4"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("zero-shot {zero_shot}/7")), "{stdout}");
    let adapter: Value = serde_json::from_slice(&std::fs::read(&adapter_file).unwrap()).unwrap();
    assert_eq!(adapter["probe"]["blend"].as_f64(), Some(0.4), "the shortest decimal of the f32");
    assert_eq!(adapter["probe"]["weights"].as_array().unwrap().len(), 2);

    let with_logo = dir.join("labels-with-logo.txt");
    std::fs::write(&with_logo, format!("{}\n{}\na logo.\n", labels[0], labels[1])).unwrap();
    let (code, _, stderr) = adapt(&with_logo, &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("The class `a logo.` has no labelled examples"), "{stderr}");
}

#[test]
fn pack_writes_a_quarter_size_file_that_embeds_like_the_original() {
    let dir = temp_dir("pack");
    let packed = dir.join("model.fcpk");
    let (code, stdout, stderr) = fieldclip(&["pack", "--weights", &path("tiny"), "--dtype", "q8", "-o", &packed.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(q8), 28% of"), "{stdout}");
    let size = std::fs::metadata(&packed).unwrap().len() as f64;
    assert!(size < 0.3 * std::fs::metadata(data("tiny/model.safetensors")).unwrap().len() as f64);

    // The pack alone (its folder has no config file) embeds like the original model.
    let expected = json("tiny/expected.json");
    let (code, stdout, stderr) =
        fieldclip(&["embed", "--weights", &dir.display().to_string(), "--image", &path("images/chelsea.png")]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let cos = cosine(&floats(&out["images"][0]["embedding"]), &floats(&expected["image_embeds"][3]));
    assert!(cos >= 0.99, "cosine {cos}");
    let (code, stdout, _) = fieldclip(&["inspect", "--weights", &packed.display().to_string()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("F16, I8"), "{stdout}");

    std::fs::write(dir.join("model.fcpk"), &std::fs::read(&packed).unwrap()[..1000]).unwrap();
    let (code, _, stderr) = fieldclip(&["embed", "--weights", &dir.display().to_string(), "--text", "a cat"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("truncated"), "{stderr}");
}

/// #16: `classify --taxa` answers at the deepest rank reaching the threshold, as the taxonomy
/// oracle (pybioclip's squash preprocessing, OpenAI's 80 templates, `taxon_com`).
#[test]
fn classify_taxa_answers_at_the_rank_the_oracle_does() {
    let e = json("taxonomy/expected.json");
    let images: Vec<&Value> = e["images"].as_array().unwrap().iter().filter(|i| i["file"].as_str().unwrap().ends_with(".png")).collect();
    let paths: Vec<String> = images.iter().map(|i| path(i["file"].as_str().unwrap())).collect();
    let mut args = vec!["classify", "--weights", "", "--taxa", "", "--preprocess", "squash", "--rank-threshold", "0.2", "--json"];
    let (weights, taxa) = (path("openclip_tiny"), path("taxonomy/taxa.csv"));
    (args[2], args[4]) = (&weights, &taxa);
    args.extend(paths.iter().map(String::as_str));
    let (code, stdout, stderr) = fieldclip(&args);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    for (image, got) in images.iter().zip(out.as_array().unwrap()) {
        let block = &image["pybioclip_squash"];
        let want = &block["answers_at_other_thresholds"]["0.2"];
        let file = image["file"].as_str().unwrap();
        if want.is_null() {
            assert!(got["answer"].is_null(), "{file}: {}", got["answer"]);
        } else {
            assert_eq!(got["answer"]["rank"], want["rank"], "{file}");
            assert_eq!(got["answer"]["name"], want["taxon"], "{file}");
            assert!((got["answer"]["probability"].as_f64().unwrap() - want["score"].as_f64().unwrap()).abs() < 1e-4);
        }
        for rank in ["kingdom", "family", "genus", "species"] {
            let names = |v: &Value, key: &str| -> Vec<String> {
                v.as_array().unwrap().iter().map(|r| r[key].as_str().unwrap().to_string()).collect()
            };
            assert_eq!(names(&got["ranks"][rank], "name"), names(&block["rollup"][rank], "taxon"), "{file} {rank}");
        }
    }

    // The CSV: one row per listed species with its lineage; `species` is the epithet.
    let (code, stdout, stderr) =
        fieldclip(&["classify", "--weights", &weights, "--taxa", &taxa, "--preprocess", "squash", "--csv", "--top", "2", &paths[0]]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "file,rank,label,probability,answer_rank,answer_name,answer_probability,kingdom,phylum,class,order,family,genus,species,common_name");
    assert_eq!(lines.len(), 3);
    let cells: Vec<&str> = lines[1].split(',').collect();
    let label = cells[2];
    let (genus, epithet) = label.split_once(' ').unwrap();
    assert_eq!((cells[12], cells[13]), (genus, epithet), "{}", lines[1]);

    // pybioclip's tree-of-life files, filtered to one kingdom before the softmax.
    let (code, stdout, stderr) = fieldclip(&[
        "classify", "--weights", &weights, "--tree-of-life", &path("taxonomy/txt_emb_species.npy"), "--filter", "Animalia", "--json",
        &paths[0],
    ]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let kingdoms = out[0]["ranks"]["kingdom"].as_array().unwrap();
    assert_eq!(kingdoms.len(), 1);
    assert_eq!(kingdoms[0]["name"], "Animalia");
    assert!((kingdoms[0]["probability"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    assert!(!out[0]["answer"].is_null(), "Animalia itself is at 100 %");
    let (code, _, stderr) = fieldclip(&["classify", "--weights", &weights, "--taxa", &taxa, "--filter", "Fungi", &paths[0]]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no taxon matches"), "{stderr}");

    // A species list: only those species, their probabilities a softmax among themselves.
    let dir = temp_dir("species-list");
    let list = dir.join("my-species.txt");
    std::fs::write(&list, "# two species\nQuercus robur L.\n\nactinia equina\n").unwrap();
    let list = string(&list);
    let (code, stdout, stderr) = fieldclip(&[
        "classify", "--weights", &weights, "--tree-of-life", &path("taxonomy/txt_emb_species.npy"), "--species-list", &list,
        "--json", &paths[0],
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("2 taxa"), "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let mut species: Vec<String> =
        out[0]["ranks"]["species"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
    species.sort();
    assert_eq!(species, ["Actinia equina", "Quercus robur"]);
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let (code, _, stderr) = fieldclip(&["classify", "--weights", &weights, "--taxa", &taxa, "--species-list", &string(&empty), &paths[0]]);
    assert_eq!(code, 2);
    assert!(stderr.contains("empty.txt") && stderr.contains("names no species"), "{stderr}");
}

/// #16: a PyTorch zip checkpoint (what BioCLIP ships as `open_clip_pytorch_model.bin`), made
/// from the tiny open_clip model by scripts/make-torch-checkpoint.py, loads to exactly the
/// outputs of its safetensors, through the CLI as users run it.
#[test]
fn a_pytorch_checkpoint_loads_to_the_same_outputs_as_its_safetensors() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("torch-checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("open_clip_pytorch_model.bin");
    let made = Command::new("python3")
        .args([&path("../../scripts/make-torch-checkpoint.py"), &path("openclip_tiny/model.safetensors"), bin.to_str().unwrap()])
        .status()
        .expect("python3 (scripts/setup.sh installs it)");
    assert!(made.success());
    std::fs::copy(data("openclip_tiny/open_clip_config.json"), dir.join("open_clip_config.json")).unwrap();
    let embed = |weights: &str| {
        let (code, stdout, stderr) =
            fieldclip(&["embed", "--weights", weights, "--image", &path("images/coffee_alpha.png"), "--text", "a photo of a cat."]);
        assert_eq!(code, 0, "{weights}: {stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    let from_bin = embed(dir.to_str().unwrap());
    let from_safetensors = embed(&path("openclip_tiny"));
    assert_eq!(from_bin, from_safetensors, "the same weights, the same outputs");
    let expected = json("openclip_tiny/expected.json");
    let cos = cosine(&floats(&from_bin["texts"][0]["embedding"]), &floats(&from_safetensors["texts"][0]["embedding"]));
    assert!(cos > 0.9999, "{cos}");
    assert!(expected["image_embeds"].is_array());
    // A damaged checkpoint is refused with a sentence, not a panic.
    let broken = dir.join("broken.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let (code, _, stderr) = fieldclip(&["inspect", "--weights", broken.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Pearson correlation of two maps.
fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let sa: f32 = a.iter().map(|x| (x - ma).powi(2)).sum::<f32>().sqrt();
    let sb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum::<f32>().sqrt();
    cov / (sa * sb)
}

#[test]
fn explain_prints_maps_in_the_documented_shape_and_writes_overlays() {
    let oracle = json("heatmap/tiny.json");
    let prompts: Vec<&str> = oracle["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap()).collect();
    let image_index = oracle["images"].as_array().unwrap().iter().position(|i| i["file"] == "images/chelsea.png").unwrap();
    let scratch = temp_dir("explain-broken");
    let broken = scratch.join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n cut off").unwrap();
    let (weights, chelsea, broken) = (path("tiny"), path("images/chelsea.png"), string(&broken));
    let mut args = vec!["explain", "--weights", &weights, "--image", &chelsea, "--image", &broken, "--json"];
    for p in &prompts[..3] {
        args.extend(["--text", p]);
    }
    let (code, stdout, stderr) = fieldclip(&args);
    assert_eq!(code, 1, "a broken photo makes the exit code 1: {stderr}");
    assert!(stderr.contains("broken.png"), "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["images", "variant"]);
    assert_eq!(out["variant"], "clearclip");
    let images = out["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "the broken photo is left out");
    let keys: Vec<&String> = images[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["grid", "maps", "path"]);
    assert_eq!(images[0]["path"], chelsea);
    assert_eq!(images[0]["grid"], serde_json::json!([7, 7]));
    let maps = images[0]["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 3);
    let want = rows(&oracle["variants"]["ClearCLIP"]["images"][image_index]["cosine_maps"]);
    for (i, map) in maps.iter().enumerate() {
        let keys: Vec<&String> = map.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["cosine", "text"]);
        assert_eq!(map["text"], prompts[i], "--text is the prompt as given");
        let cosine = floats(&map["cosine"]);
        assert_eq!(cosine.len(), 49);
        // From the PNG file (our decoding and resize, not the oracle's pixels): the same map,
        // up to the pixel differences of the two resizers.
        let r = correlation(&cosine, &want[i]);
        assert!(r >= 0.99, "prompt {i}: correlation with the oracle's map {r}");
        // Measured: 1.9e-4 (the resizers differ by ~1e-6 per pixel on this PNG).
        assert!(max_abs_diff(&cosine, &want[i]) < 1e-3, "prompt {i}");
    }

    // -o: one PNG per photo and label, the model's view (224×224) with the map over it.
    let dir = temp_dir("explain-out");
    let (dir_s, labels) = (string(&dir), ["cat", "rocket"]);
    let (code, stdout, stderr) = fieldclip(&[
        "explain", "--weights", &weights, "--image", &chelsea, "--label", labels[0], "--label", labels[1],
        "--variant", "plain", "-o", &dir_s,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let mut written: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    assert_eq!(written, ["chelsea-cat.png", "chelsea-rocket.png"], "{stdout}");
    let overlay = image::open(dir.join("chelsea-cat.png")).unwrap().to_rgb8();
    assert_eq!(overlay.dimensions(), (224, 224));
    let (code, _, stderr) = fieldclip(&["explain", "--weights", &weights, "--image", &chelsea, "--text", "x", "--variant", "gradcam"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown variant `gradcam`"), "{stderr}");
}
