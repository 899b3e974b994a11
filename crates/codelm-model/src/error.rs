//! The one error type of `codelm-model`.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not start with the GGUF magic.
    #[error("{path}: not a GGUF file (magic {found:02x?})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A GGUF version we do not read.
    #[error("{path}: unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The file ends before a structure it declares.
    #[error("{path}: truncated or corrupt file while reading {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read (a metadata key, a tensor name).
        what: String,
    },
    /// A tensor uses a storage type we cannot compute with.
    #[error("{path}: tensor `{tensor}` has unsupported type {type_name}")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The type's name or numeric id.
        type_name: String,
    },
    /// A tensor's shape is not what the model's configuration implies.
    #[error("{path}: tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// A tensor the architecture needs is absent.
    #[error("{path}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
    },
    /// A metadata key the loader needs is absent or has the wrong type.
    #[error("{path}: metadata `{key}` is missing or not a {expected}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The expected type.
        expected: &'static str,
    },
    /// An architecture we do not implement.
    #[error("{path}: unsupported architecture `{arch}` (supported: qwen2, llama)")]
    UnknownArchitecture {
        /// The file.
        path: PathBuf,
        /// The architecture name in the file.
        arch: String,
    },
    /// A malformed `config.json`, `tokenizer.json` or safetensors header.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer description is unusable.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A prompt or cache does not fit the context window.
    #[error("context overflow: {needed} tokens needed, the context holds {n_ctx}")]
    ContextOverflow {
        /// Tokens the request needs.
        needed: usize,
        /// The context length.
        n_ctx: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    BadToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
