//! `fieldclip search`: the photos of a gallery most similar to a text or to a photo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fieldclip::fingerprint::sha256_hex;
use fieldclip::session::Query;
use fieldclip::Index;
use serde_json::json;

use crate::common::{image_embeddings, load, read_file_as, text_embeddings, FileKind, Backend};

#[derive(Args)]
pub struct SearchArgs {
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

pub fn run(args: SearchArgs) -> Result<ExitCode, String> {
    let SearchArgs { index: gallery_file, text, image, k, weights, json, backend } = args;
    let in_file = |e: fieldclip::Error| format!("{}: {e}", gallery_file.display());
    let gallery = Index::from_json(&read_file_as(&gallery_file, FileKind::Json)?).map_err(in_file)?;
    let session = weights.map(|w| load(&w, backend)).transpose()?;
    if let Some(session) = &session {
        gallery.check_model(session.model_id(), session.dim()).map_err(in_file)?;
    }
    let query = match (text, image) {
        (Some(text), _) => {
            let session = session.as_ref().ok_or("--text needs --weights, the model that made the gallery")?;
            text_embeddings(session, &[text])?
        }
        (None, Some(path)) => match gallery.find(&sha256_hex(&read_file_as(&path, FileKind::Image)?)) {
            Some(entry) => entry.embedding.clone(),
            None => {
                let session = session.as_ref().ok_or_else(|| {
                    format!("{} is not in the gallery: --weights is needed to embed it", path.display())
                })?;
                let (_, result) = image_embeddings(session, std::slice::from_ref(&path))?.remove(0);
                result.map_err(|e| format!("{}: {e}", path.display()))?
            }
        },
        (None, None) => unreachable!("clap requires --text or --image"),
    };
    let hits = match &session {
        Some(session) => {
            pollster::block_on(session.search(&gallery.gallery().map_err(in_file)?, Query::Embedding(&query), k))
        }
        None => gallery.search(&query, k),
    }
    .map_err(in_file)?;
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
