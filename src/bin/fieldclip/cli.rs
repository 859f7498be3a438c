//! The command line: argument parsing and output formatting over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use fieldclip::clip::{classify, ensemble_labels, label_prompts, normalize_rows, read, Template};
use fieldclip::tokenizer::ClipTokenizer;
use fieldclip::{ClipModel, Error, Prediction};
use serde_json::json;

/// Images per forward pass.
const BATCH: usize = 8;

#[derive(Parser)]
#[command(name = "fieldclip", version, about = "CLIP for biological images: classify, embed, tokenize, inspect")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// burn's pure-Rust CPU backend
    Cpu,
    /// burn's wgpu backend (Vulkan / Metal / DX12)
    Wgpu,
}

#[derive(Subcommand)]
enum Command {
    /// Top-5 labels per image with probabilities.
    Classify {
        /// A .safetensors file, or a folder holding model.safetensors (+ config file)
        #[arg(long)]
        weights: PathBuf,
        /// A text file with one label per line
        #[arg(long, conflicts_with = "label")]
        labels: Option<PathBuf>,
        /// A label (repeat for several)
        #[arg(long)]
        label: Vec<String>,
        /// Prompt template with `{}` for the label (repeat to ensemble)
        #[arg(long, default_value = "a photo of a {}.")]
        template: Vec<String>,
        /// How many labels to show per image
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// L2-normalised image and text embeddings as JSON.
    Embed {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        image: Vec<PathBuf>,
        #[arg(long)]
        text: Vec<String>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
    },
    /// CLIP token ids (77 per text) as JSON.
    Tokenize {
        #[arg(long, required = true)]
        text: Vec<String>,
    },
    /// The architecture, layout, dtype and parameter count found in a weights file.
    Inspect {
        #[arg(long)]
        weights: PathBuf,
    },
}

pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn device(backend: Backend) -> Device {
    match backend {
        Backend::Cpu => Device::flex(),
        Backend::Wgpu => Device::wgpu(Default::default()),
    }
}

/// The weights file and its optional config file.
fn resolve_weights(path: &Path) -> Result<(PathBuf, Option<PathBuf>), String> {
    let (file, dir) = if path.is_dir() {
        let file = ["model.safetensors", "open_clip_model.safetensors"]
            .iter()
            .map(|n| path.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("{} holds no model.safetensors or open_clip_model.safetensors", path.display()))?;
        (file, path.to_path_buf())
    } else if path.is_file() {
        (path.to_path_buf(), path.parent().map(Path::to_path_buf).unwrap_or_default())
    } else {
        return Err(format!("{} does not exist", path.display()));
    };
    let config = ["open_clip_config.json", "config.json"].iter().map(|n| dir.join(n)).find(|p| p.is_file());
    Ok((file, config))
}

fn load(path: &Path, backend: Backend) -> Result<ClipModel, String> {
    let (file, config) = resolve_weights(path)?;
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let config_bytes = match &config {
        Some(c) => Some(std::fs::read(c).map_err(|e| format!("cannot read {}: {e}", c.display()))?),
        None => None,
    };
    ClipModel::from_bytes(&bytes, config_bytes.as_deref(), &device(backend))
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn err(e: Error) -> String {
    e.to_string()
}

/// Embeds images in batches, in input order; a file that fails is reported and skipped.
fn image_embeddings(model: &ClipModel, paths: &[PathBuf]) -> Result<Vec<(PathBuf, Result<Vec<f32>, String>)>, String> {
    let dim = model.info.config.projection_dim;
    let mut results = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(BATCH) {
        let mut pixels = Vec::new();
        let mut errors = Vec::new();
        for path in chunk {
            match std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| model.pixels(&b).map_err(err)) {
                Ok(p) => {
                    pixels.push(p);
                    errors.push(None);
                }
                Err(e) => errors.push(Some(e)),
            }
        }
        let mut embeds = if pixels.is_empty() { Vec::new() } else { read(model.encode_images(&pixels).embeds).map_err(err)? };
        normalize_rows(&mut embeds, dim);
        let mut rows = embeds.chunks_exact(dim);
        for (path, error) in chunk.iter().zip(errors) {
            let result = match error {
                Some(e) => Err(e),
                None => Ok(rows.next().expect("one embedding per decoded image").to_vec()),
            };
            results.push((path.clone(), result));
        }
        if paths.len() > BATCH {
            eprintln!("[{}/{}] images embedded", results.len(), paths.len());
        }
    }
    Ok(results)
}

fn text_embeddings(model: &ClipModel, texts: &[String]) -> Result<Vec<f32>, String> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = model.tokenize(&refs).map_err(err)?;
    let mut e = read(model.encode_tokens(&tokens).embeds).map_err(err)?;
    normalize_rows(&mut e, model.info.config.projection_dim);
    Ok(e)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Tokenize { text } => {
            let tokenizer = ClipTokenizer::new().map_err(|e| e.to_string())?;
            let texts: Vec<_> = text
                .iter()
                .map(|t| tokenizer.encode(t).map(|tok| json!({"text": t, "ids": tok.ids})))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            println!("{}", json!({ "texts": texts }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { weights } => {
            let (file, config) = resolve_weights(&weights)?;
            let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let config_bytes = config.as_ref().map(std::fs::read).transpose().map_err(|e| e.to_string())?;
            let info = fieldclip::weights::load(&bytes, config_bytes.as_deref())
                .map_err(|e| format!("{}: {e}", file.display()))?
                .info;
            let c = &info.config;
            println!("file:         {}", file.display());
            println!("architecture: {}", info.name);
            println!("layout:       {}", info.layout.describe());
            println!("dtype:        {}", info.dtypes.join(", "));
            println!("parameters:   {} ({:.1} M)", info.parameters, info.parameters as f64 / 1e6);
            println!("config:       {}", config.map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()));
            println!("settings:     {}", info.config_source);
            for (name, t) in [("vision", &c.vision.transformer), ("text", &c.text.transformer)] {
                println!(
                    "{name:<13} {} wide, {} layers, {} heads, MLP {}, {:?}",
                    t.width, t.layers, t.heads, t.mlp_width, t.activation
                );
            }
            println!("image:        {} px, patch {}", c.vision.image_size, c.vision.patch_size);
            println!("text:         context {}, vocab {}", c.text.context_length, c.text.vocab_size);
            println!("embedding:    {}", c.projection_dim);
            Ok(ExitCode::SUCCESS)
        }
        Command::Embed { weights, image, text, backend } => {
            let model = load(&weights, backend)?;
            let mut failed = false;
            let images: Vec<_> = image_embeddings(&model, &image)?
                .into_iter()
                .filter_map(|(path, r)| match r {
                    Ok(e) => Some(json!({"path": path.display().to_string(), "embedding": e})),
                    Err(e) => {
                        eprintln!("error: {}: {e}", path.display());
                        failed = true;
                        None
                    }
                })
                .collect();
            let texts = if text.is_empty() { Vec::new() } else { text_embeddings(&model, &text)? };
            let dim = model.info.config.projection_dim;
            let texts: Vec<_> =
                text.iter().zip(texts.chunks_exact(dim)).map(|(t, e)| json!({"text": t, "embedding": e})).collect();
            println!("{}", json!({"images": images, "texts": texts, "logit_scale": model.logit_scale_exp()}));
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Classify { weights, labels, label, template, top, json, csv, backend, images } => {
            let labels: Vec<String> = match labels {
                Some(file) => std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
                None => label,
            };
            let templates: Vec<Template> = template.iter().map(|t| Template::new(t)).collect::<Result<_, _>>().map_err(err)?;
            let prompts = label_prompts(&labels, &templates).map_err(err)?;
            let model = load(&weights, backend)?;
            let dim = model.info.config.projection_dim;
            let label_embeds = ensemble_labels(&text_embeddings(&model, &prompts)?, dim, templates.len());
            let scale = model.logit_scale_exp();
            let mut failed = false;
            let mut rows: Vec<(String, Vec<Prediction>)> = Vec::new();
            for (path, result) in image_embeddings(&model, &images)? {
                match result {
                    Ok(e) => {
                        let mut p = classify(&e, &label_embeds, &labels, scale);
                        p.truncate(top);
                        rows.push((path.display().to_string(), p));
                    }
                    Err(e) => {
                        eprintln!("error: {}: {e}", path.display());
                        failed = true;
                    }
                }
            }
            if json {
                let out: Vec<_> = rows.iter().map(|(f, p)| json!({"path": f, "predictions": p})).collect();
                println!("{}", serde_json::to_string_pretty(&out).unwrap());
            } else if csv {
                println!("file,rank,label,probability");
                for (file, preds) in &rows {
                    for (rank, p) in preds.iter().enumerate() {
                        println!("{},{},{},{:.6}", csv_field(file), rank + 1, csv_field(&p.label), p.probability);
                    }
                }
            } else {
                for (file, preds) in &rows {
                    println!("{file}");
                    for (rank, p) in preds.iter().enumerate() {
                        let bar = "█".repeat((p.probability * 30.0).round() as usize);
                        println!("  {}. {:<40} {:>6.2}%  {bar}", rank + 1, p.label, p.probability * 100.0);
                    }
                }
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}
