//! One program to run.

use crate::{Language, Limits};

/// A program and its inputs.
#[derive(Debug, Clone)]
pub struct Job {
    /// How to compile and run it.
    pub language: Language,
    /// Files placed in the working directory (flat names only).
    pub files: Vec<(String, Vec<u8>)>,
    /// Name of the file the language's commands refer to as `{main}`.
    pub main_file: String,
    /// Bytes fed to standard input.
    pub stdin: Vec<u8>,
    /// Extra arguments appended to the run command.
    pub args: Vec<String>,
    /// Limits; `None` uses the sandbox's defaults.
    pub limits: Option<Limits>,
}

impl Job {
    /// A job made of one source file named after the language's default.
    pub fn from_source(language: Language, source: impl Into<Vec<u8>>) -> Self {
        Job {
            language,
            files: vec![(language.default_main.to_string(), source.into())],
            main_file: language.default_main.to_string(),
            stdin: Vec::new(),
            args: Vec::new(),
            limits: None,
        }
    }

    /// Sets the job's limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Sets the job's standard input.
    pub fn with_stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = stdin.into();
        self
    }
}

/// Checks that a job file name is a plain name in the working directory.
pub(crate) fn is_valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_paths_in_file_names() {
        assert!(is_valid_file_name("main.py"));
        assert!(!is_valid_file_name("../x"));
        assert!(!is_valid_file_name(".."));
        assert!(!is_valid_file_name(""));
        assert!(!is_valid_file_name("a\0b"));
    }
}
