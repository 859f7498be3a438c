//! fieldclip: OpenAI's CLIP in burn, for classifying and searching biological images on the
//! device — natively (CLI) and in the browser (WebGPU or CPU).

pub mod clip;
pub mod error;
pub mod model;
pub mod preprocess;
pub mod tokenizer;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use clip::{ClipModel, Prediction, Template};
pub use error::Error;
