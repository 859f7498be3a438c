//! `cargo bench`: full-size ViT-B/32 on burn's CPU backend next to PyTorch (transformers) on
//! the same machine, in the same run. Medians over 10 runs after 3 warm-ups.
//!
//! Weights: `FIELDCLIP_VITB32_WEIGHTS` (the oracle's random ViT-B/32) or, when unset, random
//! weights of the same shapes made here (speed does not depend on the values).
//! PyTorch: the Python in `FIELDCLIP_TORCH_PYTHON` (default: the oracle venv,
//! `~/.cache/fieldclip-oracle-venv/bin/python`) runs `benches/torch_reference.py`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use burn::tensor::Device;
use fieldclip::clip::read;
use fieldclip::model::block::BlockWeights;
use fieldclip::model::{Clip, ClipConfig, ClipWeights, HostMatrix, TextWeights, VisionWeights};
use fieldclip::preprocess::{Pipeline, PreprocessConfig};
use fieldclip::tokenizer::ClipTokenizer;
use fieldclip::weights::WeightsInfo;
use fieldclip::ClipModel;

use fieldclip::clip::BENCH_PROMPTS as PROMPTS;
const IMAGES: [&str; 8] =
    ["astronaut", "rocket", "coffee", "chelsea", "camera_gray", "logo_rgba", "coffee_alpha", "astronaut_wide"];

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(p)
}

fn median_ms(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut t: Vec<f64> = (0..10)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[4] + t[5]) / 2.0
}

/// A small deterministic generator: values ~ U(−0.05, 0.05).
struct Random(u64);
impl Random {
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
            })
            .collect()
    }
    fn ones(&mut self, n: usize) -> Vec<f32> {
        vec![1.0; n]
    }
}

fn random_vitb32() -> (ClipWeights, ClipConfig) {
    let shapes = {
        let mut m = std::collections::HashMap::new();
        m.insert("vision_model.embeddings.patch_embedding.weight".to_string(), vec![768, 3, 32, 32]);
        m.insert("vision_model.embeddings.position_embedding.weight".to_string(), vec![50, 768]);
        m.insert("text_model.embeddings.token_embedding.weight".to_string(), vec![49408, 512]);
        m.insert("text_model.embeddings.position_embedding.weight".to_string(), vec![77, 512]);
        m.insert("text_projection.weight".to_string(), vec![512, 512]);
        for (t, w) in [("vision_model", 768), ("text_model", 512)] {
            for i in 0..12 {
                m.insert(format!("{t}.encoder.layers.{i}.self_attn.q_proj.weight"), vec![w, w]);
                m.insert(format!("{t}.encoder.layers.{i}.mlp.fc1.weight"), vec![4 * w, w]);
            }
        }
        m
    };
    let config = fieldclip::weights::architecture(&shapes, None).unwrap().1;
    let mut r = Random(42);
    let mut block = |w: usize| BlockWeights {
        ln_1: (r.ones(w), r.vec(w)),
        qkv_weight: HostMatrix::F32(r.vec(3 * w * w)),
        qkv_bias: r.vec(3 * w),
        out_weight: HostMatrix::F32(r.vec(w * w)),
        out_bias: r.vec(w),
        ln_2: (r.ones(w), r.vec(w)),
        fc1_weight: HostMatrix::F32(r.vec(4 * w * w)),
        fc1_bias: r.vec(4 * w),
        fc2_weight: HostMatrix::F32(r.vec(4 * w * w)),
        fc2_bias: r.vec(w),
    };
    let vision_blocks = (0..12).map(|_| block(768)).collect();
    let text_blocks = (0..12).map(|_| block(512)).collect();
    let mut r = Random(7);
    let weights = ClipWeights {
        vision: VisionWeights {
            patch_embedding: HostMatrix::F32(r.vec(768 * 3 * 32 * 32)),
            class_embedding: r.vec(768),
            position_embedding: r.vec(50 * 768),
            ln_pre: (r.ones(768), r.vec(768)),
            blocks: vision_blocks,
            ln_post: (r.ones(768), r.vec(768)),
            projection: HostMatrix::F32(r.vec(512 * 768)),
        },
        text: TextWeights {
            token_embedding: HostMatrix::F32(r.vec(49408 * 512)),
            position_embedding: r.vec(77 * 512),
            blocks: text_blocks,
            ln_final: (r.ones(512), r.vec(512)),
            projection: HostMatrix::F32(r.vec(512 * 512)),
        },
        logit_scale: 2.6592,
    };
    (weights, config)
}

fn load_model(device: &Device) -> (ClipModel, Option<String>) {
    if let Ok(path) = std::env::var("FIELDCLIP_VITB32_WEIGHTS") {
        let bytes = std::fs::read(&path).expect("read FIELDCLIP_VITB32_WEIGHTS");
        let config = std::fs::read(data("vitb32/config.json")).unwrap();
        return (ClipModel::from_bytes(&bytes, Some(&config), device).expect("load weights"), Some(path));
    }
    let (weights, config) = random_vitb32();
    let info = WeightsInfo {
        name: config.name(),
        layout: fieldclip::weights::Layout::HuggingFace,
        dtypes: vec!["F32".into()],
        parameters: config.parameter_count(),
        config: config.clone(),
        config_source: "random weights made by the benchmark".into(),
    };
    let model = ClipModel {
        model: Clip::placed(weights, config, &fieldclip::clip::placement(device)),
        tokenizer: ClipTokenizer::new().unwrap(),
        preprocess: PreprocessConfig::openai(224, Pipeline::HuggingFace),
        info,
        device: device.clone(),
        id: "ViT-B/32 random".into(),
    };
    (model, None)
}

fn npy(path: &PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn torch_reference(pixel_paths: &[PathBuf], ids: &[Vec<u32>], weights: Option<&str>) -> Result<serde_json::Value, String> {
    let python = std::env::var("FIELDCLIP_TORCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/fieldclip-oracle-venv/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    let request = serde_json::json!({
        "config": data("vitb32/config.json"),
        "pixels": pixel_paths,
        "ids": ids,
        "weights": weights,
    });
    let mut child = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/torch_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{python} failed"));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: only measure in bench mode.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let device = Device::flex();
    let (model, weights_path) = load_model(&device);
    let pixel_paths: Vec<PathBuf> = IMAGES.iter().map(|n| data(&format!("tiny/pixels/{n}.npy"))).collect();
    let pixels: Vec<Vec<f32>> = pixel_paths.iter().map(npy).collect();
    let tokens = model.tokenize(&PROMPTS).unwrap();
    // `cargo bench --bench encode -- heatmap`: only the heat-map cost (#15).
    if std::env::args().any(|a| a == "heatmap") {
        heatmap_cost(&model, &pixels, &tokens);
        return;
    }

    let ours = [
        ("image embed, batch 1", median_ms(|| drop(read(model.encode_images(&pixels[..1]).unwrap().embeds).unwrap()))),
        ("image embed, batch 8", median_ms(|| drop(read(model.encode_images(&pixels).unwrap().embeds).unwrap()))),
        ("30 prompts, grouped by length, each group cut to its longest end-of-text", median_ms(|| drop(read(model.encode_tokens(&tokens).unwrap().embeds).unwrap()))),
    ];
    let padded = median_ms(|| drop(read(model.encode_tokens_padded(&tokens).unwrap().embeds).unwrap()));
    let longest = tokens.iter().map(|t| t.eot_index + 1).max().unwrap();
    // The tokens up to each prompt's end-of-text: what a prompt needs, whatever the grouping.
    let prompt_tokens: usize = tokens.iter().map(|t| t.eot_index + 1).sum();

    let ids: Vec<Vec<u32>> = tokens.iter().map(|t| t.ids.clone()).collect();
    let reference = torch_reference(&pixel_paths, &ids, weights_path.as_deref());
    println!("\nfieldclip vs PyTorch, full-size ViT-B/32, f32, CPU ({} threads for PyTorch; burn flex backend)", 2);
    println!("weights: {}", weights_path.as_deref().unwrap_or("random, made by the benchmark"));
    println!("| | fieldclip (burn flex) | PyTorch (transformers) | ratio |");
    println!("| --- | --- | --- | --- |");
    let keys = ["image_b1", "image_b8", "text_30"];
    for ((name, ms), key) in ours.iter().zip(keys) {
        match &reference {
            Ok(r) => {
                let theirs = r[key].as_f64().unwrap();
                println!("| {name} | {ms:.1} ms | {theirs:.1} ms | {:.2}× |", ms / theirs);
            }
            Err(_) => println!("| {name} | {ms:.1} ms | – | – |"),
        }
    }
    println!("| 30 prompts padded to 77 (fieldclip, for comparison) | {padded:.1} ms | | cut/padded = {:.2}× (longest end-of-text at {longest} tokens) |", ours[2].1 / padded);
    // #17 item 4: what a token costs in each tower (image: 1 + 49 patch tokens at width 768;
    // text: the batch cut to its longest end-of-text, at width 512).
    let image_tokens = 1 + (224 / 32) * (224 / 32);
    println!(
        "cost per token: image {:.3} ms (batch 1), {:.3} ms (batch 8) per patch token; text {:.3} ms per prompt token ({prompt_tokens} tokens up to the 30 end-of-texts)",
        ours[0].1 / image_tokens as f64,
        ours[1].1 / (8 * image_tokens) as f64,
        ours[2].1 / prompt_tokens as f64,
    );
    match reference {
        Ok(r) => println!("PyTorch {} / transformers {}, same machine, same run", r["torch"], r["transformers"]),
        Err(e) => println!("PyTorch reference not measured: {e}. Set FIELDCLIP_TORCH_PYTHON to a Python with torch + transformers."),
    }
}

/// What a heat-map adds to classifying (#15): classification alone (image embedding read back,
/// logits against 30 labels) against classification with the top label's map from the same pass
/// (`encode_images_with_patches`: image and patch embeddings read back, logits, one cosine map
/// per photo). The two alternate in rounds (A B A B…) so machine drift hits both; medians of 15.
fn heatmap_cost(model: &ClipModel, pixels: &[Vec<f32>], tokens: &[fieldclip::tokenizer::Tokens]) {
    use fieldclip::clip::{normalize_rows, zero_shot_logits};
    use fieldclip::heatmap::PatchEmbeddings;
    use fieldclip::model::MapVariant;
    let dim = model.info.config.projection_dim;
    let mut labels = read(model.encode_tokens(tokens).unwrap().embeds).unwrap();
    normalize_rows(&mut labels, dim);
    let scale = model.logit_scale_exp();
    let classify = |batch: &[Vec<f32>]| -> Vec<Vec<f32>> {
        let mut e = read(model.encode_images(batch).unwrap().embeds).unwrap();
        normalize_rows(&mut e, dim);
        e.chunks_exact(dim).map(|row| zero_shot_logits(row, &labels, scale)).collect()
    };
    let explain = |batch: &[Vec<f32>], variant: MapVariant| -> Vec<Vec<f32>> {
        let out = model.encode_images_with_patches(batch, variant).unwrap();
        let grid = out.grid;
        let mut e = read(out.image.embeds).unwrap();
        normalize_rows(&mut e, dim);
        let patches = read(out.patch_embeds).unwrap();
        let cells = grid[0] * grid[1];
        e.chunks_exact(dim)
            .zip(patches.chunks_exact(cells * dim))
            .map(|(row, p)| {
                let logits = zero_shot_logits(row, &labels, scale);
                let best = logits.iter().enumerate().fold(0, |b, (i, v)| if *v > logits[b] { i } else { b });
                let patches = PatchEmbeddings { grid, dim, values: p.to_vec() };
                patches.cosine(&labels[best * dim..(best + 1) * dim])
            })
            .collect()
    };
    println!("\nheat-map cost, full-size ViT-B/32, f32, CPU (burn flex), medians of 15 alternating rounds");
    println!("| | classify | classify + top label's map | ratio |");
    println!("| --- | --- | --- | --- |");
    for (name, batch) in [("batch 1", &pixels[..1]), ("batch 8", pixels)] {
        for variant in [MapVariant::CLEARCLIP, MapVariant::PLAIN] {
            for _ in 0..3 {
                classify(batch);
                explain(batch, variant);
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..15 {
                let t = Instant::now();
                drop(classify(batch));
                a.push(t.elapsed().as_secs_f64() * 1000.0);
                let t = Instant::now();
                drop(explain(batch, variant));
                b.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let (ma, mb) = (a[7], b[7]);
            println!("| {name}, {} | {ma:.1} ms | {mb:.1} ms | {:.3}× |", variant.name(), mb / ma);
        }
    }
}
