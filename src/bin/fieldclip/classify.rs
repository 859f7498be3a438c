//! `fieldclip classify`: the top labels of each photo, with probabilities.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fieldclip::session::LabelSet;
use fieldclip::{Adapter, Prediction};
use serde_json::json;

use crate::common::{err, image_embeddings, load, read_file_as, read_labels, FileKind, Backend, DEFAULT_TEMPLATE};

#[derive(Args)]
pub struct ClassifyArgs {
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
}

/// A CSV cell: quoted where needed. One starting with `=`, `+`, `-`, `@` (or a tab / carriage
/// return) would be run as a formula by a spreadsheet: it is kept as text with a leading `'`
/// (OWASP's advice).
fn csv_field(text: &str) -> String {
    let s = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn run(args: ClassifyArgs) -> Result<ExitCode, String> {
    let ClassifyArgs { weights, labels, label, template, adapter, top, json, csv, backend, images } = args;
    let adapter_file = adapter.clone();
    let adapter = match &adapter {
        Some(file) => Some(Adapter::from_json(&read_file_as(file, FileKind::Json)?).map_err(|e| format!("{}: {e}", file.display()))?),
        None => None,
    };
    // Where the labels came from, to name it in an error about them.
    let (labels, source): (Vec<String>, Option<PathBuf>) = match (labels, &adapter) {
        (Some(file), _) => (read_labels(&file)?, Some(file)),
        (None, Some(a)) if label.is_empty() => (a.labels.clone(), adapter_file.clone()),
        (None, _) => (label, None),
    };
    let in_source = |e: fieldclip::Error| match &source {
        Some(file) => format!("{}: {e}", file.display()),
        None => e.to_string(),
    };
    let in_adapter = |e: fieldclip::Error| match &adapter_file {
        Some(file) => format!("{}: {e}", file.display()),
        None => e.to_string(),
    };
    let template = match &adapter {
        _ if !template.is_empty() => template,
        Some(a) if !a.templates.is_empty() => a.templates.clone(),
        _ => vec![DEFAULT_TEMPLATE.to_string()],
    };
    // Label and adapter mistakes are found before the slow model load.
    let set = LabelSet::new(&labels, &template).map_err(in_source)?;
    for dropped in &set.dropped {
        eprintln!("warning: {dropped}");
    }
    if let Some(a) = &adapter {
        a.check_labels(&set.labels).map_err(in_adapter)?;
    }
    let mut session = load(&weights, backend)?;
    pollster::block_on(session.set_labels(set)).map_err(in_source)?;
    session.set_adapter(adapter).map_err(in_adapter)?;
    let mut failed = false;
    let mut rows: Vec<(String, Vec<Prediction>)> = Vec::new();
    for (path, result) in image_embeddings(&session, &images)? {
        match result {
            Ok(e) => {
                let mut p = session.classify_embedding(&e).map_err(err)?;
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
