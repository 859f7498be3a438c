//! `fieldclip classify`: the top labels of each photo, with probabilities.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fieldclip::session::LabelSet;
use fieldclip::{Adapter, Prediction};
use fieldclip::preprocess::Pipeline;
use serde_json::json;

use crate::common::{err, image_embeddings, load, read_file_as, read_labels, FileKind, Backend, DEFAULT_TEMPLATE};

#[derive(Args)]
pub struct ClassifyArgs {
    /// A .safetensors file, or a folder holding model.safetensors (+ config file)
    #[arg(long)]
    pub(crate) weights: PathBuf,
    /// A text file with one label per line
    #[arg(long, conflicts_with = "label")]
    pub(crate) labels: Option<PathBuf>,
    /// A label (repeat for several)
    #[arg(long)]
    pub(crate) label: Vec<String>,
    /// Prompt template with `{}` for the label (repeat to ensemble) [default: the adapter's,
    /// else `a photo of a {}.`]
    #[arg(long)]
    pub(crate) template: Vec<String>,
    /// Use OpenAI's 80 ImageNet templates (the ensemble pybioclip uses; the default with --taxa)
    #[arg(long, conflicts_with = "template")]
    pub(crate) openai_templates: bool,
    /// Taxa as the labels: CSV/TSV with the header kingdom,phylum,class,order,family,genus,
    /// species,common_name (species = the epithet; missing ranks allowed) or pybioclip's names
    /// JSON. Answers at the deepest rank that reaches --rank-threshold
    #[arg(long, conflicts_with_all = ["labels", "label", "adapter"])]
    pub(crate) taxa: Option<PathBuf>,
    /// pybioclip's tree-of-life embeddings (`txt_emb_species.npy`, with `txt_emb_species.json`
    /// next to it) as the taxa, read streamed
    #[arg(long, conflicts_with_all = ["labels", "label", "adapter", "taxa"])]
    pub(crate) tree_of_life: Option<PathBuf>,
    /// Keep only the taxa with this name at some rank ("Plantae", "Fagaceae", "Quercus robur"),
    /// before the softmax (as pybioclip)
    #[arg(long, conflicts_with = "species_list")]
    pub(crate) filter: Option<String>,
    /// Keep only the species on this list: one `Genus epithet` a line (`#` comments, authors
    /// after the name ignored) or a taxa table with genus and species columns
    #[arg(long)]
    pub(crate) species_list: Option<PathBuf>,
    /// How taxa are named in their prompts (BioCLIP's formats): taxon, sci, com, sci_com, taxon_com
    #[arg(long, default_value = "taxon_com")]
    pub(crate) text_format: String,
    /// The answer is the deepest rank whose best taxon reaches this probability
    #[arg(long, default_value_t = fieldclip::taxonomy::DEFAULT_THRESHOLD)]
    pub(crate) rank_threshold: f64,
    /// How photos are resized: crop (shortest side, centre crop) or squash (both sides, no crop:
    /// pybioclip's for BioCLIP) [default: the model's]
    #[arg(long)]
    pub(crate) preprocess: Option<Resize>,
    /// An adapter file from `fieldclip adapt`: adds its few-shot terms (its labels are used
    /// when none are given)
    #[arg(long)]
    pub(crate) adapter: Option<PathBuf>,
    /// How many labels to show per image
    #[arg(long, default_value_t = 5)]
    pub(crate) top: usize,
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,
    #[arg(long)]
    pub(crate) csv: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    pub(crate) backend: Backend,
    #[arg(required = true)]
    pub(crate) images: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Resize {
    Crop,
    Squash,
}

/// A CSV cell: quoted where needed. One starting with `=`, `+`, `-`, `@` (or a tab / carriage
/// return) would be run as a formula by a spreadsheet: it is kept as text with a leading `'`
/// (OWASP's advice).
pub fn csv_field(text: &str) -> String {
    let s = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn run(args: ClassifyArgs) -> Result<ExitCode, String> {
    if args.taxa.is_some() || args.tree_of_life.is_some() {
        return crate::taxa::run(args);
    }
    if args.filter.is_some() || args.species_list.is_some() {
        return Err("--filter and --species-list need --taxa or --tree-of-life".into());
    }
    let ClassifyArgs { weights, labels, label, template, openai_templates, adapter, top, json, csv, backend, images, preprocess, .. } = args;
    let template = if openai_templates { fieldclip::taxonomy::OPENAI_TEMPLATES.iter().map(|t| t.to_string()).collect() } else { template };
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
    set_resize(&mut session, preprocess);
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

/// `--preprocess`, where given.
pub fn set_resize(session: &mut fieldclip::session::Session, resize: Option<Resize>) {
    let pipeline = match resize {
        None => return,
        Some(Resize::Squash) => Pipeline::Squash,
        // The crop of the model's own family.
        Some(Resize::Crop) => match session.model().info.layout {
            fieldclip::weights::Layout::HuggingFace => Pipeline::HuggingFace,
            fieldclip::weights::Layout::OpenClip => Pipeline::OpenClip,
        },
    };
    session.set_pipeline(pipeline);
}
