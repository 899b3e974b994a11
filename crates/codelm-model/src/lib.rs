//! `codelm-model`: model files, tokenizer and the transformer forward pass.

pub mod error;
pub mod gguf;
pub mod quant;

pub use error::{Error, Result};
pub use gguf::{GgufFile, MetaValue};
