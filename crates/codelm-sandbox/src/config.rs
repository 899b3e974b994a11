//! Sandbox-wide configuration: isolation level, default limits, parallelism.

use std::path::PathBuf;
use std::time::Duration;

/// How strongly jobs are isolated from the host.
///
/// The sandbox refuses to start when the level asked for is unavailable;
/// callers opt into a weaker level explicitly, and every
/// [`Outcome`](crate::Outcome) records the level that was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// New user, PID, mount, network, IPC and UTS namespaces; a read-only
    /// minimal root; seccomp; rlimits; cgroups where writable.
    Full,
    /// As `Full` but without a user namespace: needs real root
    /// (`CAP_SYS_ADMIN`) and drops to an unprivileged uid before `execve`.
    NoUserNs,
    /// Rlimits, a private temporary directory and (as root) an unprivileged
    /// uid only. The program sees the host file system and network.
    /// Use for trusted code or debugging.
    None,
}

impl Isolation {
    /// Lower-case name used in CLI output.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Full => "full",
            Isolation::NoUserNs => "no-userns",
            Isolation::None => "none",
        }
    }
}

/// Resource limits of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit; the whole process tree is killed when it passes.
    pub timeout: Duration,
    /// Memory limit in bytes (cgroup, and address space for languages that
    /// tolerate `RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Maximum number of processes and threads.
    pub n_processes: u64,
    /// Largest file the job may write, and the size of its tmpfs mounts.
    pub file_size_bytes: u64,
    /// Maximum number of open file descriptors.
    pub n_open_files: u64,
    /// Bytes kept of stdout and of stderr each; more output kills the job.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            memory_bytes: 512 << 20,
            n_processes: 128,
            file_size_bytes: 64 << 20,
            n_open_files: 256,
            output_bytes: 1 << 20,
        }
    }
}

/// A host directory made visible read-only inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Directory on the host.
    pub host: PathBuf,
    /// Where it appears inside the sandbox (absolute).
    pub inside: PathBuf,
    /// Whether `inside/bin` is appended to the sandbox's PATH.
    pub is_on_path: bool,
}

/// Configuration of a [`Sandbox`](crate::Sandbox).
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Isolation level; see [`Isolation`].
    pub isolation: Isolation,
    /// Limits for jobs that do not set their own.
    pub limits: Limits,
    /// Number of jobs [`Sandbox::run_many`](crate::Sandbox::run_many) runs at once.
    pub n_jobs: usize,
    /// Whether to use cgroup v1 memory/pids/cpuacct controllers when writable.
    pub use_cgroups: bool,
    /// Extra read-only directories (e.g. a toolchain outside `/usr`).
    pub binds: Vec<Bind>,
    /// Whether Python jobs fork from a warm interpreter (a "zygote") instead
    /// of starting `python3` each time; needs `Full` isolation and cgroups,
    /// and falls back to a cold start otherwise. The zygote boots with the
    /// sandbox, alongside its probe job (tens of milliseconds of CPU), so
    /// single runs and sandboxes without Python jobs may prefer `false`.
    pub use_python_zygote: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            isolation: Isolation::Full,
            limits: Limits::default(),
            n_jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            use_cgroups: true,
            binds: Vec::new(),
            use_python_zygote: true,
        }
    }
}
