//! `fieldclip index`: a gallery file of the photos in a folder, for `search`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fieldclip::fingerprint::sha256_hex;
use fieldclip::Index;

use crate::common::{err, image_embeddings, image_files, load, read_file_as, Backend, FileKind, IMAGE_EXTENSIONS};

#[derive(Args)]
pub struct IndexArgs {
    #[arg(long)]
    weights: PathBuf,
    dir: PathBuf,
    /// The gallery file to write
    #[arg(short, long)]
    output: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: Backend,
}

pub fn run(args: IndexArgs) -> Result<ExitCode, String> {
    let IndexArgs { weights, dir, output, backend } = args;
    let files = image_files(&dir)?;
    if files.is_empty() {
        return Err(format!("{} holds no images ({})", dir.display(), IMAGE_EXTENSIONS.join(", ")));
    }
    let session = load(&weights, backend)?;
    let (id, dim) = (session.model_id(), session.dim());
    let mut gallery = if output.is_file() {
        let gallery = Index::from_json(&read_file_as(&output, FileKind::Json)?).map_err(|e| format!("{}: {e}", output.display()))?;
        gallery.check_model(id, dim).map_err(|e| format!("{}: {e}", output.display()))?;
        gallery
    } else {
        Index::new(id, dim)
    };
    // Hashed first, so that content already in the gallery (or met earlier in DIR) is
    // not embedded again.
    let mut failed = false;
    let mut new: Vec<(PathBuf, String)> = Vec::new();
    for path in files {
        let sha256 = match read_file_as(&path, FileKind::Image) {
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
    for ((path, result), (_, sha256)) in image_embeddings(&session, &paths)?.into_iter().zip(&new) {
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
