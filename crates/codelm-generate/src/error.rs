//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `codelm-generate`.
#[derive(Debug, Error)]
pub enum Error {
    /// A chat template failed to parse.
    #[error("chat template does not compile")]
    TemplateCompile(#[source] minijinja::Error),
    /// A chat template failed while rendering, including a template's own
    /// `raise_exception(...)` call (its message is in the source error).
    #[error("chat template failed to render")]
    TemplateRender(#[source] minijinja::Error),
    /// The sampler was handed no usable logit: the slice was empty, or every
    /// value was NaN or negative infinity.
    #[error("no finite logit among {n_vocab} to sample from")]
    NoFiniteLogits {
        /// Length of the logits slice.
        n_vocab: usize,
    },
    /// The model or tokenizer failed (bad file, context overflow, ...).
    #[error(transparent)]
    Model(#[from] codelm_model::Error),
    /// A request that cannot be served as asked.
    #[error("{0}")]
    BadRequest(String),
    /// A token id was outside the logits slice.
    #[error("token id {token} is outside the vocabulary of {n_vocab}")]
    TokenOutOfRange {
        /// The offending token id.
        token: u32,
        /// Length of the logits slice.
        n_vocab: usize,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
