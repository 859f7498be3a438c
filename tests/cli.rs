//! The `fieldclip` command line, run as a user would.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

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
fn classify_reports_a_bad_file_and_goes_on() {
    let broken = std::env::temp_dir().join("fieldclip-cli-broken.jpg");
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
