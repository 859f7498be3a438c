//! `fieldclip adapt`: teaches the labels from example photos and writes an adapter file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fieldclip::adapter::{DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_BLEND};
use fieldclip::session::{AdapterSettings, LabelSet};
use fieldclip::Error;

use crate::common::{err, image_embeddings, image_files, load, read_labels, Backend, DEFAULT_TEMPLATE};

#[derive(Args)]
pub struct AdaptArgs {
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

pub fn run(args: AdaptArgs) -> Result<ExitCode, String> {
    let AdaptArgs { weights, labels, examples, output, alpha, beta, template, probe, blend, backend } = args;
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
    let set = LabelSet::new(&labels, &template).map_err(err)?;
    for dropped in &set.dropped {
        eprintln!("warning: {dropped}");
    }
    for dir in class_dirs.iter().filter(|d| !set.labels.contains(d)) {
        eprintln!("warning: {}: not one of the labels, ignored", examples.join(dir).display());
    }
    let mut paths = Vec::new();
    let mut path_labels = Vec::new();
    for (class, label) in set.labels.iter().enumerate() {
        let dir = examples.join(label);
        let files = if dir.is_dir() { image_files(&dir)? } else { Vec::new() };
        if files.is_empty() {
            return Err(format!("{}: {}", dir.display(), Error::ClassWithoutExamples(label.clone())));
        }
        path_labels.extend(std::iter::repeat_n(class, files.len()));
        paths.extend(files);
    }
    let mut session = load(&weights, backend)?;
    pollster::block_on(session.set_labels(set)).map_err(err)?;
    let mut failed = false;
    let mut keys = Vec::new();
    let mut key_labels = Vec::new();
    for ((path, result), class) in image_embeddings(&session, &paths)?.into_iter().zip(path_labels) {
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
    let settings = AdapterSettings { alpha, beta, probe_blend: probe.then_some(blend), every_label_needs_examples: true };
    let adapter = session.make_adapter(&keys, &key_labels, settings).map_err(err)?;
    let loo = session.leave_one_out(&adapter).map_err(err)?;
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
