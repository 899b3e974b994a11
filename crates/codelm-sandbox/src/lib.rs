//! codelm-sandbox: run untrusted, model-written programs under limits.
//!
//! # Isolation design
//!
//! Each job gets a fresh *supervisor* process, cloned straight into new
//! user, PID, mount, network, IPC, UTS and cgroup namespaces. Its uid 0 maps
//! to an otherwise unused host uid (one per job), so even an escape through
//! the file system lands as an unprivileged stranger. The supervisor is PID
//! 1 of the job's namespace: when it exits or is killed, the kernel kills
//! every process in the namespace, daemons included, which is how the
//! wall-clock limit is enforced (the parent simply `SIGKILL`s it).
//!
//! The supervisor builds a minimal root on a tmpfs and `pivot_root`s into
//! it: `/usr`, `/bin`, `/lib*` and `/etc` bound read-only (with `/etc/shadow`
//! and similar masked), a private `/dev` with a few devices, a new `/proc`
//! that only shows the job's processes, and writable, size-capped tmpfs
//! mounts at `/tmp` and at the working directory `/sandbox`, which holds only
//! the job's files. Home directories, `/root`, `/work` and everything else
//! simply do not exist in that tree, and the new network namespace has no
//! usable interface, not even loopback to the host.
//!
//! For each step (optional compile, then run) the supervisor forks a child
//! that resets signals, redirects stdio to pipes, applies rlimits (CPU,
//! processes, file size, open files, no core dumps, address space where the
//! runtime tolerates it), empties its capability bounding set, sets
//! `no_new_privs`, installs a hand-written seccomp-BPF deny list (see
//! `seccomp.rs`), and `execve`s with a clean environment. Where cgroup v1
//! memory and pids controllers are writable, each job also gets its own
//! cgroups, which give exact peak memory, OOM detection and a process cap.
//!
//! Python jobs are by default run warm (`zygote.rs`): a pre-started
//! interpreter, the *zygote*, runs in a sandbox of its own and forks
//! *workers*, each PID 1 of fresh PID, mount, network, IPC and UTS
//! namespaces with its own `/proc`, tmpfs directories and cgroup. A worker
//! forks one process per job, which gets its own session and IPC namespace
//! and applies the same limits, capability drop and seccomp filter before
//! running the program; this saves the ~10 ms of interpreter start-up per
//! job. Before it reports, the worker kills and reaps everything the job
//! left and empties its directories, so the next job finds nothing of it;
//! a worker that hit a deadline or misbehaved is killed instead of reused.
//! Warm jobs share the zygote's user namespace and uid, so their process
//! cap comes from the pids cgroup, and the zygote is only used where
//! cgroups are. Outcomes say whether a job started warm.
//!
//! The design decision a newcomer may question: the children are created
//! with raw `clone`/`fork` system calls from a multi-threaded process, so
//! all code between `clone` and `execve` is restricted to raw system calls
//! on data prepared beforehand (`spawn.rs`). This avoids a helper binary and
//! keeps per-job overhead to a few milliseconds.
//!
//! [`Sandbox::new`] runs a probe job and refuses with
//! [`Error::Unavailable`] when the configured [`Isolation`] does not work on
//! this machine; weaker levels are opt-in and recorded in every [`Outcome`].
//!
//! ```no_run
//! use codelm_sandbox::{Job, Language, Sandbox, SandboxConfig, Status};
//!
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let python = *Language::find("python").expect("python is in the table");
//! let outcome = sandbox.run(&Job::from_source(python, "print(6 * 7)"));
//! assert_eq!(outcome.status, Status::Passed);
//! assert_eq!(outcome.stdout.to_string_lossy(), "42\n");
//! # Ok::<(), codelm_sandbox::Error>(())
//! ```

#![deny(missing_docs)]

mod cgroup;
mod config;
mod error;
mod job;
mod language;
mod outcome;
mod pump;
mod sandbox;
mod seccomp;
mod spawn;
mod zygote;

pub use config::{Bind, Isolation, Limits, SandboxConfig};
pub use error::{Error, Result};
pub use job::Job;
pub use language::{Language, LANGUAGES};
pub use outcome::{Captured, Outcome, Status};
pub use sandbox::{Sandbox, WORKDIR};
