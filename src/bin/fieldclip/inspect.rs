//! `fieldclip inspect`: what a weights file holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::common::{read_file_as, resolve_weights, FileKind};

#[derive(Args)]
pub struct InspectArgs {
    #[arg(long)]
    weights: PathBuf,
}

pub fn run(args: InspectArgs) -> Result<ExitCode, String> {
    let (file, config) = resolve_weights(&args.weights)?;
    let bytes = read_file_as(&file, FileKind::Weights)?;
    let config_bytes = config.as_deref().map(|c| read_file_as(c, FileKind::Config)).transpose()?;
    let info =
        fieldclip::weights::load(&bytes, config_bytes.as_deref()).map_err(|e| format!("{}: {e}", file.display()))?.info;
    let c = &info.config;
    println!("file:         {}", file.display());
    println!("architecture: {}", info.name);
    println!("layout:       {}", info.layout.describe());
    println!("dtype:        {}", info.dtypes.join(", "));
    println!("parameters:   {} ({:.1} M)", info.parameters, info.parameters as f64 / 1e6);
    println!("config:       {}", config.map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()));
    println!("settings:     {}", info.config_source);
    for (name, t) in [("vision", &c.vision.transformer), ("text", &c.text.transformer)] {
        println!("{name:<13} {} wide, {} layers, {} heads, MLP {}, {:?}", t.width, t.layers, t.heads, t.mlp_width, t.activation);
    }
    println!("image:        {} px, patch {}", c.vision.image_size, c.vision.patch_size);
    println!("text:         context {}, vocab {}", c.text.context_length, c.text.vocab_size);
    println!("embedding:    {}", c.projection_dim);
    Ok(ExitCode::SUCCESS)
}
