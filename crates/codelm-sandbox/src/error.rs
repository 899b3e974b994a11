//! Errors raised while configuring a sandbox or preparing a job.
//!
//! Failures of the sandboxed program itself are not errors: they are
//! [`Status`](crate::Status) values inside an [`Outcome`](crate::Outcome).

use std::path::PathBuf;

use crate::Isolation;

/// Everything that can go wrong before or around running a job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An isolation mechanism the configured level needs is missing here.
    #[error("isolation level {level:?} is unavailable: {mechanism} failed: {detail}")]
    Unavailable {
        /// The level that was asked for.
        level: Isolation,
        /// The mechanism that failed (namespaces, seccomp, ...).
        mechanism: &'static str,
        /// What went wrong, as reported by the kernel or the probe job.
        detail: String,
    },
    /// No language of that name is in the runner table.
    #[error("unknown language `{0}`")]
    UnknownLanguage(String),
    /// The program a language needs is not on the sandbox's PATH.
    #[error("language `{language}` needs `{program}`, which is not on the sandbox PATH")]
    ProgramNotFound {
        /// The language name.
        language: String,
        /// The program that was looked for.
        program: String,
    },
    /// A job file name is empty, contains a slash or NUL, or is `.`/`..`.
    #[error("invalid job file name {0:?}")]
    InvalidFileName(String),
    /// More extra binds than the sandbox supports.
    #[error("at most {max} extra binds are supported")]
    TooManyBinds {
        /// The limit.
        max: usize,
    },
    /// A string handed to the kernel contains a NUL byte.
    #[error("argument contains a NUL byte: {0:?}")]
    NulByte(String),
    /// A system call in the supervising process failed.
    #[error("{operation} failed: {source}")]
    Os {
        /// What the sandbox was doing.
        operation: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Reading or writing a control file (cgroup, uid map) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps the current `errno` as an [`Error::Os`].
    pub(crate) fn last_os(operation: &'static str) -> Self {
        Error::Os {
            operation,
            source: std::io::Error::last_os_error(),
        }
    }
}
