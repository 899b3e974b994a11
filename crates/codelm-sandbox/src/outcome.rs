//! What running a job produced.

use std::borrow::Cow;
use std::time::Duration;

use crate::Isolation;

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The program exited with status 0.
    Passed,
    /// The program (or its compiler) exited with a non-zero status.
    Failed {
        /// The exit status.
        exit_code: i32,
    },
    /// The wall-clock or CPU limit was reached.
    TimedOut,
    /// The memory limit was reached.
    MemoryLimit,
    /// The program wrote more than the output limit.
    OutputLimit,
    /// The program was killed by a signal not explained by a limit.
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// The sandbox could not run the program.
    SandboxError {
        /// What failed.
        message: String,
    },
}

impl Status {
    /// Short machine-readable name (`passed`, `failed`, `timed_out`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed { .. } => "failed",
            Status::TimedOut => "timed_out",
            Status::MemoryLimit => "memory_limit",
            Status::OutputLimit => "output_limit",
            Status::Signaled { .. } => "signaled",
            Status::SandboxError { .. } => "sandbox_error",
        }
    }
}

/// Captured bytes of one output stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// Raw bytes, at most the output limit.
    pub bytes: Vec<u8>,
    /// Whether the program wrote more than was kept.
    pub is_truncated: bool,
}

impl Captured {
    /// The bytes as text, with invalid UTF-8 replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Everything known about one finished job.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Standard output.
    pub stdout: Captured,
    /// Standard error (compiler messages included).
    pub stderr: Captured,
    /// Wall time from release of the job to its end.
    pub wall_time: Duration,
    /// User plus system CPU time of all its processes.
    pub cpu_time: Duration,
    /// Peak memory in bytes: the larger of the cgroup peak and the largest
    /// process's RSS.
    pub peak_memory_bytes: u64,
    /// Isolation level the job ran under.
    pub isolation: Isolation,
    /// Whether cgroup limits were applied.
    pub uses_cgroup: bool,
    /// Whether the job forked from the warm Python zygote instead of
    /// starting an interpreter.
    pub is_warm_start: bool,
}

impl Outcome {
    /// An outcome for a job that never started.
    pub(crate) fn sandbox_error(message: String, isolation: Isolation) -> Self {
        Outcome {
            status: Status::SandboxError { message },
            stdout: Captured::default(),
            stderr: Captured::default(),
            wall_time: Duration::ZERO,
            cpu_time: Duration::ZERO,
            peak_memory_bytes: 0,
            isolation,
            uses_cgroup: false,
            is_warm_start: false,
        }
    }
}
