//! fieldclip: OpenAI's CLIP in burn, for classifying and searching biological images on the
//! device — natively (CLI) and in the browser (WebGPU or CPU).

pub mod adapter;
pub mod clip;
pub mod error;
pub mod fingerprint;
pub mod heatmap;
pub mod model;
pub mod pack;
pub mod pack_format;
pub mod preprocess;
pub mod search;
pub mod session;
pub mod taxonomy;
pub mod tokenizer;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use adapter::{Adapter, LeaveOneOut};
pub use clip::{ClipModel, Prediction, Template};
pub use error::Error;
pub use search::{Hit, Index};

// The library's own unit tests that also run in WebAssembly (the packed matmul's SIMD128
// kernel) run in the same headless browser as tests/web.rs.
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
