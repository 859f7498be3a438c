//! `fieldclip tokenize`: CLIP token ids (77 per text) as JSON.

use std::process::ExitCode;

use clap::Args;
use fieldclip::tokenizer::ClipTokenizer;
use serde_json::json;

#[derive(Args)]
pub struct TokenizeArgs {
    #[arg(long, required = true)]
    text: Vec<String>,
}

pub fn run(args: TokenizeArgs) -> Result<ExitCode, String> {
    let tokenizer = ClipTokenizer::new().map_err(|e| e.to_string())?;
    let texts: Vec<_> = args
        .text
        .iter()
        .map(|t| tokenizer.encode(t).map(|tok| json!({"text": t, "ids": tok.ids})))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    println!("{}", json!({ "texts": texts }));
    Ok(ExitCode::SUCCESS)
}
