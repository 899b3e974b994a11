//! `codelm-model`: model files, tokenizer and the transformer forward pass.

pub mod error;
pub mod gguf;
pub mod isa;
pub mod model;
pub mod ops;
pub mod quant;
pub mod rope;
pub mod safetensors;
pub mod testing;
pub mod tokenizer;

pub use error::{Error, Result};
pub use gguf::{GgufFile, MetaValue};
pub use model::{Config, KvCache, Model, ModelFile};
pub use tokenizer::Tokenizer;
