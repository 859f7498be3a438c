//! The crate's error, each variant worded as a sentence a user can act on, and its kind: what
//! the page (and any caller) does about it without reading the sentence.

use crate::preprocess::ImageError;
use crate::tokenizer::TokenizerError;
use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    ModelInput(#[from] crate::model::ModelInputError),
    #[error(transparent)]
    Taxonomy(#[from] crate::taxonomy::TaxonomyError),
    #[error("The labels in use are not taxa: load a taxa list (CSV with kingdom … species columns) first.")]
    NoTaxa,
    #[error("The label list is empty: add at least one label.")]
    NoLabels,
    #[error("The prompt template `{0}` has no `{{}}` where the label goes.")]
    TemplateWithoutPlaceholder(String),
    #[error("There are no prompt templates: add at least one, e.g. `a photo of a {{}}.`")]
    NoTemplates,
    #[error("The backend failed: {0}")]
    Backend(String),
    #[error("The gallery is empty: add some photos to it first.")]
    EmptyGallery,
    #[error(
        "The {what} holds {found}-dimensional embeddings but the model in use makes {expected}-dimensional \
         ones: it was made with another model; make it again with this one, or load that model."
    )]
    DimensionMismatch { what: &'static str, expected: usize, found: usize },
    #[error(
        "The {what} was made with the model `{made_with}`, not with the loaded `{loaded}`, so their \
         embeddings do not compare: make it again with this model, or load that one."
    )]
    ModelMismatch { what: &'static str, made_with: String, loaded: String },
    #[error("The class `{0}` has no labelled examples: add at least one photo of it, or take it off the label list.")]
    ClassWithoutExamples(String),
    #[error("No photo has a label yet: give a few photos a label from the list first.")]
    NoExamples,
    #[error(
        "The labels {given:?} do not match the adapter's {adapter:?}: use the adapter's labels (in its \
         order), or make a new adapter for these."
    )]
    AdapterLabels { adapter: Vec<String>, given: Vec<String> },
    #[error("This is not a valid {what} file: {reason}.")]
    InvalidFile { what: &'static str, reason: String },
    #[error("The prompt `{0}` has not been encoded.")]
    PromptNotEncoded(String),
    #[error(
        "The prompt embeddings stored on this device do not fit this model ({values} values for {prompts} \
         prompts of size {dim}); they will be made again."
    )]
    StoredPromptEmbeddings { values: usize, prompts: usize, dim: usize },
    #[error("Expected images of {expected} pixel values (3 × size × size), got one of {found}.")]
    PixelCount { expected: usize, found: usize },
    #[error("Expected {expected} values ({rows} rows of {dim}), got {found}.")]
    RowCount { rows: usize, dim: usize, expected: usize, found: usize },
    #[error("Label number {index} is not on the list of {labels} labels.")]
    LabelIndex { index: usize, labels: usize },
    #[error("The {what} must be a finite number, not {value}.")]
    NotFinite { what: &'static str, value: String },
    #[error(
        "A prompt starting `{start}…` would be {chars} characters long; the limit is {limit} (CLIP reads \
         only its first 77 tokens). Shorten the label or the template."
    )]
    PromptTooLong { start: String, chars: usize, limit: usize },
    #[error("The adapter check has {parts} parts; there is no part {part}.")]
    CheckPart { part: usize, parts: usize },
    #[error("There is no text to embed: give at least one.")]
    NoTexts,
    #[error("`{0}` is not one of the labels in use, so it has no map: pick one from the list.")]
    NotALabel(String),
}

/// What kind of failure an `Error` is: the page decides on this (a device error moves the model
/// to the CPU; an input error never does), never on the sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The user's input: a photo, a label list, a template, an adapter or gallery file.
    Input,
    /// The weights file cannot be used.
    Model,
    /// The backend failed (e.g. the WebGPU device was lost).
    Device,
    /// Something stored on the device earlier no longer fits.
    Storage,
    /// The user stopped the work (raised by the page's own code).
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Input => "input",
            ErrorKind::Model => "model",
            ErrorKind::Device => "device",
            ErrorKind::Storage => "storage",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Weights(_) => ErrorKind::Model,
            // The tokenizer ships with fieldclip; it fails only on a model whose context it
            // cannot serve.
            Error::Tokenizer(_) => ErrorKind::Model,
            Error::Backend(_) => ErrorKind::Device,
            Error::StoredPromptEmbeddings { .. } => ErrorKind::Storage,
            Error::Image(_)
            | Error::NoLabels
            | Error::TemplateWithoutPlaceholder(_)
            | Error::NoTemplates
            | Error::EmptyGallery
            | Error::DimensionMismatch { .. }
            | Error::ModelMismatch { .. }
            | Error::ClassWithoutExamples(_)
            | Error::NoExamples
            | Error::AdapterLabels { .. }
            | Error::InvalidFile { .. }
            | Error::PromptNotEncoded(_)
            | Error::NotALabel(_)
            | Error::PixelCount { .. }
            | Error::RowCount { .. }
            | Error::LabelIndex { .. }
            | Error::NotFinite { .. }
            | Error::PromptTooLong { .. }
            | Error::CheckPart { .. }
            | Error::NoTexts
            | Error::ModelInput(_)
            | Error::Taxonomy(_)
            | Error::NoTaxa => ErrorKind::Input,
        }
    }
}
