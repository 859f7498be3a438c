//! The command line: argument parsing and output formatting over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};
use fieldclip::adapter::{DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_BLEND, DEFAULT_PROBE_L2};
use fieldclip::clip::{classify, ensemble_labels, label_prompts, normalize_rows, read, Template};
use fieldclip::fingerprint::sha256_hex;
use fieldclip::weights::WeightsReader;
use fieldclip::pack::{pack, PackDtype};
use fieldclip::tokenizer::ClipTokenizer;
use fieldclip::{Adapter, ClipModel, Error, Index, Prediction};
use serde_json::json;

/// Images per forward pass.
const BATCH: usize = 8;
const DEFAULT_TEMPLATE: &str = "a photo of a {}.";
/// The files `index` and `adapt` take as photos (by extension, any case).
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

#[derive(Parser)]
#[command(
    name = "fieldclip",
    version,
    about = "CLIP for biological images: classify, search, adapt to your own classes, embed, tokenize, inspect"
)]
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
        /// Prompt template with `{}` for the label (repeat to ensemble) [default: the adapter's,
        /// else `a photo of a {}.`]
        #[arg(long)]
        template: Vec<String>,
        /// An adapter file from `fieldclip adapt`: adds its few-shot terms (its labels are used
        /// when none are given)
        #[arg(long)]
        adapter: Option<PathBuf>,
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
    /// A gallery file of the photos in a folder, for `search`.
    ///
    /// Embeds every image in DIR and its subfolders (.jpg .jpeg .png .webp .gif .bmp; hidden
    /// files and links to folders are skipped). An existing OUTPUT is extended; a photo whose
    /// content is already in it is not added again. An unreadable image is reported and skipped
    /// (exit code 1, the file is still written).
    Index(IndexArgs),
    /// The photos of a gallery most similar to a text or to a photo (cosine similarity).
    Search(SearchArgs),
    /// Teaches the labels from example photos; writes an adapter file for `classify --adapter`.
    ///
    /// The examples become a Tip-Adapter cache (training-free), optionally with a linear probe
    /// trained on them. Prints leave-one-out accuracy on the examples, zero-shot vs adapted. An
    /// unreadable example is reported and skipped (exit code 1).
    Adapt(AdaptArgs),
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
    /// A compact model pack (.fcpk): one file with the config, in f16 or int8 (q8), that the
    /// page and this tool load like the safetensors file.
    Pack {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long, value_enum)]
        dtype: PackArg,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PackArg {
    /// Half precision: half the size
    F16,
    /// int8 matrices with a scale per output channel: about a quarter of the size
    Q8,
}

#[derive(Args)]
struct IndexArgs {
    #[arg(long)]
    weights: PathBuf,
    dir: PathBuf,
    /// The gallery file to write
    #[arg(short, long)]
    output: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: Backend,
}

#[derive(Args)]
struct SearchArgs {
    /// A gallery file from `fieldclip index`
    #[arg(long)]
    index: PathBuf,
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    text: Option<String>,
    #[arg(long)]
    image: Option<PathBuf>,
    /// How many photos to show
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// The model that made the gallery; needed for --text, and for an --image whose content
    /// is not in the gallery
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: Backend,
}

#[derive(Args)]
struct AdaptArgs {
    #[arg(long)]
    weights: PathBuf,
    /// A text file with one label per line [default: the subfolder names of --examples]
    #[arg(long)]
    labels: Option<PathBuf>,
    /// A folder with one subfolder of photos per label, named exactly as the label
    #[arg(long)]
    examples: PathBuf,
    /// The adapter file to write
    #[arg(short, long)]
    output: PathBuf,
    /// Weight of the examples against zero-shot
    #[arg(long, default_value_t = DEFAULT_ALPHA)]
    alpha: f32,
    /// Sharpness: how fast an example's pull falls off with distance
    #[arg(long, default_value_t = DEFAULT_BETA)]
    beta: f32,
    /// Prompt template with `{}` for the label (repeat to ensemble)
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    template: Vec<String>,
    /// Also train a linear probe on the examples, held near the label text embeddings
    #[arg(long)]
    probe: bool,
    /// The probe's share of the text logits (0: zero-shot only, 1: probe only)
    #[arg(long, default_value_t = DEFAULT_BLEND, requires = "probe")]
    blend: f32,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: Backend,
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
        let file = ["model.safetensors", "open_clip_model.safetensors", "model.fcpk"]
            .iter()
            .map(|n| path.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("{} holds no model.safetensors, open_clip_model.safetensors or model.fcpk", path.display()))?;
        (file, path.to_path_buf())
    } else if path.is_file() {
        (path.to_path_buf(), path.parent().map(Path::to_path_buf).unwrap_or_default())
    } else {
        return Err(format!("{} does not exist", path.display()));
    };
    // A pack carries its own config file.
    if file.extension().is_some_and(|e| e == "fcpk") {
        return Ok((file, None));
    }
    let config = ["open_clip_config.json", "config.json"].iter().map(|n| dir.join(n)).find(|p| p.is_file());
    Ok((file, config))
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The model and its `fingerprint::model_id`.
/// The file is streamed through a `WeightsReader`, never held whole next to the weights.
fn load(path: &Path, backend: Backend) -> Result<(ClipModel, String), String> {
    use std::io::Read;
    let (file, config) = resolve_weights(path)?;
    let config_bytes = config.as_deref().map(read_file).transpose()?;
    let cannot_read = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let mut input = std::fs::File::open(&file).map_err(cannot_read)?;
    let mut reader = WeightsReader::with_file_hash(false);
    let mut chunk = vec![0u8; 8 << 20];
    loop {
        let n = input.read(&mut chunk).map_err(cannot_read)?;
        if n == 0 {
            break;
        }
        reader.push(&chunk[..n]).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let loaded = reader.finish(config_bytes.as_deref()).map_err(|e| format!("{}: {e}", file.display()))?;
    let model = ClipModel::from_loaded(loaded, &device(backend), &mut |_, _| {})
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let id = model.id.clone();
    Ok((model, id))
}

/// One label per line; blank lines are skipped.
fn read_labels(file: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

fn templates(texts: &[String]) -> Result<Vec<Template>, String> {
    texts.iter().map(|t| Template::new(t)).collect::<Result<_, _>>().map_err(err)
}

/// The image files under `dir`, sorted; see `index`'s help for which.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // file_type does not follow links, so a link cannot lead the walk in a circle.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if path.is_file()
                && path
                    .extension()
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
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
        let mut embeds =
            if pixels.is_empty() { Vec::new() } else { read(model.encode_images(&pixels).embeds).map_err(err)? };
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

/// The labels' prompt-ensembled text embeddings, `[labels, dim]`.
fn label_embeddings(model: &ClipModel, labels: &[String], templates: &[Template]) -> Result<Vec<f32>, String> {
    let prompts = label_prompts(labels, templates).map_err(err)?;
    Ok(ensemble_labels(&text_embeddings(model, &prompts)?, model.info.config.projection_dim, templates.len()))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn index(args: IndexArgs) -> Result<ExitCode, String> {
    let IndexArgs { weights, dir, output, backend } = args;
    let files = image_files(&dir)?;
    if files.is_empty() {
        return Err(format!("{} holds no images ({})", dir.display(), IMAGE_EXTENSIONS.join(", ")));
    }
    let (model, id) = load(&weights, backend)?;
    let dim = model.info.config.projection_dim;
    let mut gallery = if output.is_file() {
        let gallery = Index::from_json(&read_file(&output)?).map_err(|e| format!("{}: {e}", output.display()))?;
        gallery.check_model(&id, dim).map_err(|e| format!("{}: {e}", output.display()))?;
        gallery
    } else {
        Index::new(&id, dim)
    };
    // Hashed first, so that content already in the gallery (or met earlier in DIR) is
    // not embedded again.
    let mut failed = false;
    let mut new: Vec<(PathBuf, String)> = Vec::new();
    for path in files {
        let sha256 = match read_file(&path) {
            Ok(bytes) => sha256_hex(&bytes),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                continue;
            }
        };
        let same = gallery
            .find(&sha256)
            .map(|e| e.name.clone())
            .or_else(|| new.iter().find(|(_, h)| *h == sha256).map(|(p, _)| p.display().to_string()));
        match same {
            Some(name) => eprintln!("{}: same content as {name}, not added again", path.display()),
            None => new.push((path, sha256)),
        }
    }
    let paths: Vec<PathBuf> = new.iter().map(|(p, _)| p.clone()).collect();
    let mut added = 0;
    for ((path, result), (_, sha256)) in image_embeddings(&model, &paths)?.into_iter().zip(&new) {
        match result {
            Ok(embedding) => {
                gallery.add(&path.display().to_string(), sha256, embedding).map_err(err)?;
                added += 1;
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                failed = true;
            }
        }
    }
    std::fs::write(&output, gallery.to_json()).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    eprintln!("{added} photos added; {} holds {}", output.display(), gallery.entries.len());
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn search(args: SearchArgs) -> Result<ExitCode, String> {
    let SearchArgs { index: gallery_file, text, image, k, weights, json, backend } = args;
    let gallery =
        Index::from_json(&read_file(&gallery_file)?).map_err(|e| format!("{}: {e}", gallery_file.display()))?;
    let model = weights.map(|w| load(&w, backend)).transpose()?;
    if let Some((model, id)) = &model {
        gallery
            .check_model(id, model.info.config.projection_dim)
            .map_err(|e| format!("{}: {e}", gallery_file.display()))?;
    }
    let query = match (text, image) {
        (Some(text), _) => {
            let (model, _) = model.as_ref().ok_or("--text needs --weights, the model that made the gallery")?;
            text_embeddings(model, &[text])?
        }
        (None, Some(path)) => match gallery.find(&sha256_hex(&read_file(&path)?)) {
            Some(entry) => entry.embedding.clone(),
            None => {
                let (model, _) = model.as_ref().ok_or_else(|| {
                    format!("{} is not in the gallery: --weights is needed to embed it", path.display())
                })?;
                let (_, result) = image_embeddings(model, std::slice::from_ref(&path))?.remove(0);
                result.map_err(|e| format!("{}: {e}", path.display()))?
            }
        },
        (None, None) => unreachable!("clap requires --text or --image"),
    };
    let hits = gallery.search(&query, k).map_err(|e| format!("{}: {e}", gallery_file.display()))?;
    if json {
        let out: Vec<_> = hits
            .iter()
            .enumerate()
            .map(|(rank, h)| json!({"rank": rank + 1, "score": h.score, "name": gallery.entries[h.index].name}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        println!("rank    score  name");
        for (rank, h) in hits.iter().enumerate() {
            println!("{:>4}  {:>7.4}  {}", rank + 1, h.score, gallery.entries[h.index].name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn adapt(args: AdaptArgs) -> Result<ExitCode, String> {
    let AdaptArgs { weights, labels, examples, output, alpha, beta, template, probe, blend, backend } = args;
    let templates = templates(&template)?;
    let mut class_dirs: Vec<String> = std::fs::read_dir(&examples)
        .map_err(|e| format!("cannot read {}: {e}", examples.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    class_dirs.sort();
    let labels = match labels {
        Some(file) => read_labels(&file)?,
        None => class_dirs.clone(),
    };
    for dir in class_dirs.iter().filter(|d| !labels.contains(d)) {
        eprintln!("warning: {}: not one of the labels, ignored", examples.join(dir).display());
    }
    let mut paths = Vec::new();
    let mut path_labels = Vec::new();
    for (class, label) in labels.iter().enumerate() {
        let dir = examples.join(label);
        let files = if dir.is_dir() { image_files(&dir)? } else { Vec::new() };
        if files.is_empty() {
            return Err(format!("{}: {}", dir.display(), Error::ClassWithoutExamples(label.clone())));
        }
        path_labels.extend(std::iter::repeat_n(class, files.len()));
        paths.extend(files);
    }
    let (model, id) = load(&weights, backend)?;
    let dim = model.info.config.projection_dim;
    let label_embeds = label_embeddings(&model, &labels, &templates)?;
    let mut failed = false;
    let mut keys = Vec::new();
    let mut key_labels = Vec::new();
    for ((path, result), class) in image_embeddings(&model, &paths)?.into_iter().zip(path_labels) {
        match result {
            Ok(embedding) => {
                keys.extend(embedding);
                key_labels.push(class);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                failed = true;
            }
        }
    }
    let template_texts = templates.iter().map(|t| t.as_str().to_string()).collect();
    let mut adapter = Adapter::new(&id, labels, template_texts, dim, &keys, &key_labels).map_err(err)?;
    adapter.alpha = alpha;
    adapter.beta = beta;
    let scale = model.logit_scale_exp();
    if probe {
        adapter.train_probe(&label_embeds, scale, blend, DEFAULT_PROBE_L2).map_err(err)?;
    }
    let loo = adapter.leave_one_out(&label_embeds, scale).map_err(err)?;
    println!(
        "leave-one-out accuracy on {} labelled photos: zero-shot {}/{} ({:.1}%), adapted {}/{} ({:.1}%)",
        loo.examples,
        loo.zero_shot_correct,
        loo.examples,
        loo.zero_shot_accuracy() * 100.0,
        loo.adapted_correct,
        loo.examples,
        loo.adapted_accuracy() * 100.0
    );
    std::fs::write(&output, adapter.to_json()).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    eprintln!("wrote {}", output.display());
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
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
        Command::Pack { weights, dtype, output } => {
            let (file, config) = resolve_weights(&weights)?;
            let bytes = read_file(&file)?;
            let config_bytes = config.as_deref().map(read_file).transpose()?;
            let dtype = match dtype {
                PackArg::F16 => PackDtype::F16,
                PackArg::Q8 => PackDtype::Q8,
            };
            let packed = pack(&bytes, config_bytes.as_deref(), dtype).map_err(|e| format!("{}: {e}", file.display()))?;
            std::fs::write(&output, &packed).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            let mb = |n: usize| n as f64 / 1e6;
            println!(
                "{}: {:.1} MB ({}), {:.0}% of {} ({:.1} MB)",
                output.display(),
                mb(packed.len()),
                dtype.name(),
                100.0 * packed.len() as f64 / bytes.len() as f64,
                file.display(),
                mb(bytes.len())
            );
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
        Command::Index(args) => index(args),
        Command::Search(args) => search(args),
        Command::Adapt(args) => adapt(args),
        Command::Embed { weights, image, text, backend } => {
            let (model, _) = load(&weights, backend)?;
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
        Command::Classify { weights, labels, label, template, adapter, top, json, csv, backend, images } => {
            let adapter = match &adapter {
                Some(file) => {
                    Some(Adapter::from_json(&read_file(file)?).map_err(|e| format!("{}: {e}", file.display()))?)
                }
                None => None,
            };
            let labels: Vec<String> = match (labels, &adapter) {
                (Some(file), _) => read_labels(&file)?,
                (None, Some(a)) if label.is_empty() => a.labels.clone(),
                (None, _) => label,
            };
            let template = match &adapter {
                _ if !template.is_empty() => template,
                Some(a) if !a.templates.is_empty() => a.templates.clone(),
                _ => vec![DEFAULT_TEMPLATE.to_string()],
            };
            let templates = templates(&template)?;
            // Label and adapter mistakes are found before the slow model load.
            label_prompts(&labels, &templates).map_err(err)?;
            if let Some(a) = &adapter {
                a.check_labels(&labels).map_err(err)?;
            }
            let (model, id) = load(&weights, backend)?;
            if let Some(a) = &adapter {
                a.check_model(&id, model.info.config.projection_dim).map_err(err)?;
            }
            let label_embeds = label_embeddings(&model, &labels, &templates)?;
            let scale = model.logit_scale_exp();
            let mut failed = false;
            let mut rows: Vec<(String, Vec<Prediction>)> = Vec::new();
            for (path, result) in image_embeddings(&model, &images)? {
                match result {
                    Ok(e) => {
                        let mut p = match &adapter {
                            Some(a) => a.classify(&e, &label_embeds, scale).map_err(err)?,
                            None => classify(&e, &label_embeds, &labels, scale),
                        };
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
