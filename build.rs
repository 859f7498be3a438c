//! The threaded WebAssembly build (feature `threads`, see scripts/build-web.sh) must be linked
//! with a shared, imported memory and its thread-local storage exported, for wasm-bindgen and
//! wasm-bindgen-rayon to start Web Workers on the same memory. These are link arguments of
//! the final module only, so they live here rather than in RUSTFLAGS (which would rebuild
//! every dependency when changed).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let threads = std::env::var_os("CARGO_FEATURE_THREADS").is_some();
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32");
    if threads && wasm {
        for arg in [
            "--shared-memory",
            "--import-memory",
            "--export=__wasm_init_tls",
            "--export=__tls_size",
            "--export=__tls_align",
            "--export=__tls_base",
        ] {
            println!("cargo:rustc-link-arg-cdylib={arg}");
        }
    }
}
