//! The crate's single error type.
//!
//! Variants carry the file (and line, where there is one) they concern, so a
//! message such as "data/a.jsonl line 3: invalid JSON" is actionable as is.
//! Problems with one input record (binary content, a line that is not JSON)
//! are not errors: they are counted in the report as removals with a reason.

use std::path::PathBuf;

/// Result alias used throughout `codelm-curate`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can stop a curation run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        cause: std::io::Error,
    },

    /// The configuration file is not valid TOML for [`crate::Config`].
    #[error("{}: invalid curation config", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        cause: Box<toml::de::Error>,
    },

    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid config value `{key}`: {reason}")]
    ConfigValue {
        /// The dotted key, e.g. `near_dedup.threshold`.
        key: String,
        /// Why the value is rejected.
        reason: String,
    },

    /// A benchmark file for decontamination could not be parsed.
    #[error("{}{}: invalid JSON", path.display(), fmt_line(*line))]
    Json {
        /// The file being read.
        path: PathBuf,
        /// 1-based line for JSON Lines files, 0 for whole documents.
        line: usize,
        /// The parser's error.
        #[source]
        cause: serde_json::Error,
    },

    /// A Parquet file could not be read or written.
    #[error("{}: Parquet error", path.display())]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The Parquet library's error.
        #[source]
        cause: parquet::errors::ParquetError,
    },

    /// A Parquet input lacks the text column.
    #[error("{}: no string column named one of {candidates:?}", path.display())]
    MissingColumn {
        /// The Parquet file.
        path: PathBuf,
        /// The column names that were looked for.
        candidates: Vec<&'static str>,
    },

    /// An input path does not exist or has a type we cannot read.
    #[error("{}: not a directory, .jsonl[.gz|.zst] or .parquet file", path.display())]
    UnsupportedInput {
        /// The input path.
        path: PathBuf,
    },

    /// The output directory holds a run made with other inputs or settings.
    #[error(
        "{} holds a run with a different configuration or input list \
         (fingerprint {found}, this run {expected}); use a new --out directory",
        out.display()
    )]
    ResumeMismatch {
        /// The output directory.
        out: PathBuf,
        /// Fingerprint stored in its manifest.
        found: String,
        /// Fingerprint of this run.
        expected: String,
    },

    /// A work file of the run is truncated or inconsistent (e.g. edited by hand).
    #[error("{}: corrupt work file: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// More documents than the 32-bit document ids of the dedup step can number.
    #[error("{n_docs} documents exceed the limit of {limit} per run; split the corpus")]
    TooManyDocuments {
        /// Documents seen.
        n_docs: u64,
        /// The limit.
        limit: u64,
    },

    /// The thread pool could not be built.
    #[error("cannot start the thread pool")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |cause| Error::Io { path, cause }
    }

    /// Wraps a Parquet error with the path it concerns.
    pub(crate) fn parquet(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
        let path = path.into();
        move |cause| Error::Parquet { path, cause }
    }

    /// A [`Error::ConfigValue`] for `key`.
    pub(crate) fn config_value(key: &str, reason: impl Into<String>) -> Error {
        Error::ConfigValue {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

fn fmt_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}
