//! The crate's error, each variant worded as a sentence a user can act on.

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
}
