//! Writes the hostile corpus (tests/hostile/corpus.rs) and its `cases.json` into a folder, for
//! the page's end-to-end test: `cargo run --example hostile_corpus -- DIR`.

#[cfg(unix)]
#[path = "../tests/hostile/corpus.rs"]
mod corpus;

#[cfg(unix)]
fn main() {
    let dir = std::env::args().nth(1).expect("usage: hostile_corpus DIR");
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cases = corpus::make(std::path::Path::new(&dir), &corpus::Model::tiny(&repo));
    println!("{} cases written to {dir}", cases.len());
}

#[cfg(not(unix))]
fn main() {}
