//! `fieldclip embed`: L2-normalised image and text embeddings as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::common::{image_embeddings, load, text_embeddings, Backend};

#[derive(Args)]
pub struct EmbedArgs {
    #[arg(long)]
    weights: PathBuf,
    #[arg(long)]
    image: Vec<PathBuf>,
    #[arg(long)]
    text: Vec<String>,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: Backend,
}

pub fn run(args: EmbedArgs) -> Result<ExitCode, String> {
    let EmbedArgs { weights, image, text, backend } = args;
    let session = load(&weights, backend)?;
    let mut failed = false;
    let images: Vec<_> = image_embeddings(&session, &image)?
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
    let texts = if text.is_empty() { Vec::new() } else { text_embeddings(&session, &text)? };
    let texts: Vec<_> =
        text.iter().zip(texts.chunks_exact(session.dim())).map(|(t, e)| json!({"text": t, "embedding": e})).collect();
    println!("{}", json!({"images": images, "texts": texts, "logit_scale": session.model().logit_scale_exp()}));
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
