//! fieldclip: OpenAI's CLIP in burn, for classifying and searching biological images on the
//! device — natively (CLI) and in the browser (WebGPU or CPU).

pub mod adapter;
pub mod clip;
pub mod error;
pub mod fingerprint;
pub mod model;
pub mod pack;
pub mod preprocess;
pub mod search;
pub mod tokenizer;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use adapter::{Adapter, LeaveOneOut};
pub use clip::{ClipModel, Prediction, Template};
pub use error::Error;
pub use search::{Hit, Index};
