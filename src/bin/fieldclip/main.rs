//! `fieldclip`: the command-line face of the same library the browser page uses. Native only;
//! `wasm-pack test` builds every target for wasm32, where this is an empty program.

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
