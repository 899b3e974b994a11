//! The crate's single error type.
//!
//! Variants carry the file, line or task they concern, so a message such as
//! "tests/x.jsonl line 3: missing field `entry_point`" is actionable as is.

use std::path::PathBuf;

/// Result alias used throughout `codelm-eval`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while evaluating.
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

    /// A line or document is not the JSON we expect.
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

    /// A record lacks a field the benchmark needs.
    #[error("{}{}: missing or non-string field `{field}`", path.display(), fmt_line(*line))]
    MissingField {
        /// The file being read.
        path: PathBuf,
        /// 1-based line, 0 for whole documents.
        line: usize,
        /// The field's name.
        field: &'static str,
    },

    /// A dataset file holds no task at all (after the split filter).
    #[error("{} holds no {benchmark} tasks", path.display())]
    EmptyDataset {
        /// The file read.
        path: PathBuf,
        /// The benchmark it was read as.
        benchmark: String,
    },

    /// A dataset could not be found in any of the usual places.
    #[error(
        "cannot find {file}; looked in: {}; pass --dataset FILE",
        fmt_paths(searched)
    )]
    DatasetNotFound {
        /// The file name looked for.
        file: String,
        /// Every directory searched, in order.
        searched: Vec<PathBuf>,
    },

    /// A samples file names a task the benchmark does not have.
    #[error("{}{}: unknown task `{task_id}`", path.display(), fmt_line(*line))]
    UnknownTask {
        /// The samples file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The task id found.
        task_id: String,
    },

    /// A flag value or option is out of range.
    #[error("invalid {name}: {reason}")]
    InvalidOption {
        /// The option's name, as the user spells it.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// `--resume` was given options that differ from the stored run.
    #[error(
        "cannot resume {}: `{field}` was {stored} but is now {requested}; \
         resume with the original options or start a new run",
        dir.display()
    )]
    ConfigMismatch {
        /// The run directory.
        dir: PathBuf,
        /// The config field that differs.
        field: String,
        /// The stored value, as JSON.
        stored: String,
        /// The requested value, as JSON.
        requested: String,
    },

    /// The in-process model failed (a prompt longer than the context, say).
    #[error("the model failed")]
    Engine(#[source] codelm_generate::Error),

    /// An OpenAI-compatible server could not be reached or answered badly.
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The endpoint.
        url: String,
        /// Status line, transport error or the body's complaint.
        reason: String,
    },

    /// The Python grammar could not be loaded into the parser.
    #[error("cannot load the tree-sitter Python grammar")]
    Grammar(#[from] tree_sitter::LanguageError),

    /// The sandbox refused to start.
    #[error("the sandbox is unavailable")]
    Sandbox(#[from] codelm_sandbox::Error),
}

fn fmt_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}

fn fmt_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |cause| Error::Io { path, cause }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_and_line() {
        let error = Error::MissingField {
            path: PathBuf::from("a.jsonl"),
            line: 3,
            field: "entry_point",
        };
        assert_eq!(
            error.to_string(),
            "a.jsonl line 3: missing or non-string field `entry_point`"
        );
        let error = Error::DatasetNotFound {
            file: "mbpp.jsonl".into(),
            searched: vec![PathBuf::from("/a"), PathBuf::from("/b")],
        };
        assert_eq!(
            error.to_string(),
            "cannot find mbpp.jsonl; looked in: /a, /b; pass --dataset FILE"
        );
    }
}
