//! The crate's single error type.

/// Result alias used throughout `codelm-verify`.
pub type Result<T> = std::result::Result<T, Error>;

/// What can stop a verification. Bad evidence never does: a model that
/// writes no parsable tests, or candidates that hang or crash, end in a
/// fallback choice that says why, not in an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not generate (a prompt too long for the context, a
    /// server that went away, ...).
    #[error("generation failed: {0}")]
    Generate(String),

    /// The sandbox cannot run this language on this machine.
    #[error("the sandbox cannot run {0} here")]
    LanguageUnavailable(&'static str),

    /// An option is out of range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
}
