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
}
