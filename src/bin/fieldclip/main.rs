//! `fieldclip`: the command-line face of the same library the browser page uses, one module
//! per command over `fieldclip::session::Session`. Native only; `wasm-pack test` builds every
//! target for wasm32, where this is an empty program.

#[cfg(not(target_arch = "wasm32"))]
mod adapt;
#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod classify;
#[cfg(not(target_arch = "wasm32"))]
mod common;
#[cfg(not(target_arch = "wasm32"))]
mod embed;
#[cfg(not(target_arch = "wasm32"))]
mod explain;
#[cfg(not(target_arch = "wasm32"))]
mod index;
#[cfg(not(target_arch = "wasm32"))]
mod inspect;
#[cfg(not(target_arch = "wasm32"))]
mod pack;
#[cfg(not(target_arch = "wasm32"))]
mod search;
#[cfg(not(target_arch = "wasm32"))]
mod taxa;
#[cfg(not(target_arch = "wasm32"))]
mod tokenize;

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::process::ExitCode;

    use clap::{Parser, Subcommand};

    use crate::{adapt, bench, classify, embed, explain, index, inspect, pack, search, tokenize};

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

    #[derive(Subcommand)]
    enum Command {
        /// Top-5 labels per image with probabilities.
        ///
        /// Labels are trimmed; blank and repeated labels are left out (with a warning).
        Classify(classify::ClassifyArgs),
        /// A gallery file of the photos in a folder, for `search`.
        ///
        /// Embeds every image in DIR and its subfolders (.jpg .jpeg .png .webp .gif .bmp; hidden
        /// files and links to folders are skipped). An existing OUTPUT is extended; a photo whose
        /// content is already in it is not added again. An unreadable image is reported and skipped
        /// (exit code 1, the file is still written).
        Index(index::IndexArgs),
        /// The photos of a gallery most similar to a text or to a photo (cosine similarity).
        Search(search::SearchArgs),
        /// Teaches the labels from example photos; writes an adapter file for `classify --adapter`.
        ///
        /// The examples become a Tip-Adapter cache (training-free), optionally with a linear probe
        /// trained on them. Prints leave-one-out accuracy on the examples, zero-shot vs adapted. An
        /// unreadable example is reported and skipped (exit code 1).
        Adapt(adapt::AdaptArgs),
        /// L2-normalised image and text embeddings as JSON.
        Embed(embed::EmbedArgs),
        /// Where each label matches each photo: the cosine between every patch and the label.
        ///
        /// A map shows similarity, not cause, at the model's patch grid (7×7 on ViT-B/32). Computed
        /// as ClearCLIP does (GitHub mc-lan/ClearCLIP): the last block's attention is replaced
        /// (--variant), every token goes through the final LayerNorm and the projection. Prints the
        /// maps as shaded grids, or --json, or PNG overlays with -o.
        Explain(explain::ExplainArgs),
        /// CLIP token ids (77 per text) as JSON.
        Tokenize(tokenize::TokenizeArgs),
        /// The architecture, layout, dtype and parameter count found in a weights file.
        Inspect(inspect::InspectArgs),
        /// A compact model pack (.fcpk): one file with the config, in f16 or int8 (q8), that the
        /// page and this tool load like the safetensors file.
        Pack(pack::PackArgs),
        /// How fast this machine embeds photos and prompts with a model, on the CPU or the GPU.
        ///
        /// Times image batches (synthetic pixels: speed does not depend on them) and a batch of
        /// short prompts, each call ending with the embeddings read back; prints the first call
        /// (on a GPU it compiles the kernels), the median and the minimum.
        Bench(bench::BenchArgs),
    }

    pub fn main() -> ExitCode {
        if std::env::var_os("RUST_LOG").is_some() {
            env_logger::init();
        }
        let result = match Cli::parse().command {
            Command::Classify(args) => classify::run(args),
            Command::Index(args) => index::run(args),
            Command::Search(args) => search::run(args),
            Command::Adapt(args) => adapt::run(args),
            Command::Embed(args) => embed::run(args),
            Command::Explain(args) => explain::run(args),
            Command::Tokenize(args) => tokenize::run(args),
            Command::Inspect(args) => inspect::run(args),
            Command::Pack(args) => pack::run(args),
            Command::Bench(args) => bench::run(args),
        };
        match result {
            Ok(code) => code,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
