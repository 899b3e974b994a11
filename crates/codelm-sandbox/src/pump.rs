//! The parent's side of a running job, the same for a cold job (`sandbox.rs`)
//! and a warm one (`zygote.rs`): the pipes it is given ([`Pipes`]), feeding
//! its stdin and reading its stdout, stderr and report under the limits
//! ([`pump`]), and turning what was seen into an [`Outcome`]
//! ([`Pumped::into_outcome`]).
//!
//! The design decision a newcomer may question: the end of a job is read
//! from its report pipe, polled with its output, not from `waitpid`. The
//! supervisor (or the worker) writes its report before it exits, and its
//! exit tears down namespaces, which is slow and not the program's time;
//! a warm worker does not exit at all. So pumping ends at the report, the
//! caller then does what its path needs (reap the supervisor, or keep or
//! kill the worker) and reads the cgroup, and only then is the job
//! classified: [`pump`] and [`Pumped::into_outcome`] are two calls, not one.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::cgroup::CgroupStats;
use crate::spawn::{self, MountOp, Plan, Report};
use crate::{Captured, Error, Isolation, Job, Limits, Outcome, Result, Status};

/// Time allowed for output to drain after a kill.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Why the parent killed a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Timeout,
    Output,
}

/// The parent's ends of a job's stdin, stdout, stderr and report pipes.
pub(crate) struct Pipes {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    status: OwnedFd,
}

/// The job's ends of its [`Pipes`], handed to its supervisor or worker and
/// then dropped, so the parent sees each pipe close when the job is done.
pub(crate) struct ChildPipes {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub status: OwnedFd,
}

impl Pipes {
    /// A job's four pipes: the parent's ends and the job's.
    pub(crate) fn new() -> Result<(Pipes, ChildPipes)> {
        let (stdin_read, stdin_write) = pipe()?;
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let parent = Pipes {
            stdin: stdin_write,
            stdout: stdout_read,
            stderr: stderr_read,
            status: status_read,
        };
        let child = ChildPipes {
            stdin: stdin_read,
            stdout: stdout_write,
            stderr: stderr_write,
            status: status_write,
        };
        Ok((parent, child))
    }
}

/// A pipe as `(read, write)`, both ends close-on-exec and above stdio.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::last_os("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// Moves a descriptor above 2 so it cannot collide with redirected stdio.
pub(crate) fn above_stdio(fd: OwnedFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: duplicating a valid descriptor.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(Error::last_os("fcntl"));
    }
    // SAFETY: fcntl returned a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Writes all of `data`, retrying when a signal interrupts.
pub(crate) fn write_all(fd: &OwnedFd, data: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: writing from a valid slice.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
            )
        };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::Os {
                    operation: "write",
                    source: error,
                });
            }
            continue;
        }
        done += n as usize;
    }
    Ok(())
}

/// Output collected up to a cap.
struct Capture {
    bytes: Vec<u8>,
    cap: usize,
    is_truncated: bool,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Capture {
            bytes: Vec::new(),
            cap,
            is_truncated: false,
        }
    }

    /// Appends what fits; returns whether something did not.
    fn push(&mut self, data: &[u8]) -> bool {
        let room = self.cap.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..room.min(data.len())]);
        if data.len() > room {
            self.is_truncated = true;
        }
        self.is_truncated
    }

    fn into_captured(self) -> Captured {
        Captured {
            bytes: self.bytes,
            is_truncated: self.is_truncated,
        }
    }
}

/// What [`pump`] saw of a job.
pub(crate) struct Pumped {
    stdout: Capture,
    stderr: Capture,
    /// The bytes read from the report pipe.
    status: Vec<u8>,
    kill: Option<KillReason>,
    /// From the go signal to the end of pumping.
    wall_time: Duration,
}

impl Pumped {
    /// The supervisor's or worker's report, when a whole one arrived.
    fn report(&self) -> Option<Report> {
        let bytes: &[u8; spawn::REPORT_BYTES] = self.status.as_slice().try_into().ok()?;
        let mut report: Report = [0; 8];
        for (value, chunk) in report.iter_mut().zip(bytes.chunks_exact(8)) {
            *value = i64::from_ne_bytes(chunk.try_into().ok()?);
        }
        Some(report)
    }

    /// Whether the job's end was reported and the parent killed nothing: a
    /// worker that did so has already cleaned up after the job.
    pub(crate) fn is_reported_unkilled(&self) -> bool {
        self.kill.is_none() && self.report().is_some()
    }

    /// Classifies the job and assembles its outcome. `stats` are its
    /// cgroup's, read once its processes are gone; `plan`, where there is
    /// one, names what a sandbox error failed on.
    pub(crate) fn into_outcome(
        self,
        plan: Option<&Plan>,
        job: &Job,
        limits: &Limits,
        stats: Option<CgroupStats>,
        isolation: Isolation,
    ) -> Outcome {
        let report = self.report();
        let report = report.as_ref();
        let observed = Observed {
            report,
            kill: self.kill,
            stats,
            stderr: &self.stderr,
        };
        let status = classify(plan, job, limits, &observed);
        let cpu_time = match stats.and_then(|s| s.cpu_ns) {
            Some(ns) => Duration::from_nanos(ns),
            None => Duration::from_micros(report.map_or(0, |r| r[spawn::IDX_CPU_US]).max(0) as u64),
        };
        // The cgroup misses pages cached before the job; the largest
        // process's RSS misses the sum over processes: report the larger.
        let max_rss = report.map_or(0, |r| r[spawn::IDX_MAXRSS_KB].max(0) as u64 * 1024);
        Outcome {
            status,
            stdout: self.stdout.into_captured(),
            stderr: self.stderr.into_captured(),
            wall_time: self.wall_time,
            cpu_time,
            peak_memory_bytes: stats.map_or(0, |s| s.peak_bytes).max(max_rss),
            isolation,
            uses_cgroup: stats.is_some(),
            is_warm_start: false,
        }
    }
}

/// Feeds `stdin` to the job and reads its stdout, stderr and report until
/// all close, calling `kill` at the deadline or when output overflows.
/// `started` is when the job was let go, which its wall time counts from.
pub(crate) fn pump(
    pipes: Pipes,
    stdin: &[u8],
    limits: &Limits,
    started: Instant,
    kill: &dyn Fn(),
) -> Pumped {
    let Pipes {
        stdin: stdin_fd,
        stdout,
        stderr,
        status,
    } = pipes;
    let mut pumped = Pumped {
        stdout: Capture::new(limits.output_bytes),
        stderr: Capture::new(limits.output_bytes),
        status: Vec::new(),
        kill: None,
        wall_time: Duration::ZERO,
    };
    // An empty stdin is closed at once.
    let stdin = (!stdin.is_empty()).then_some((stdin_fd, stdin));
    let mut stdin = stdin.map(|(fd, data)| {
        // SAFETY: setting a flag on a valid descriptor.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        (fd, data)
    });
    let mut readers: [Option<OwnedFd>; 3] = [Some(stdout), Some(stderr), Some(status)];
    let deadline = Instant::now() + limits.timeout;
    let mut grace_end: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // The report arrives before the supervisor's (slower) exit, which
        // tears the namespaces down; reaping waits for that separately.
        let is_reported = readers[2].is_none() || pumped.status.len() >= spawn::REPORT_BYTES;
        if readers[0].is_none() && readers[1].is_none() && is_reported {
            break;
        }
        let now = Instant::now();
        if pumped.kill.is_none() && now >= deadline {
            kill();
            pumped.kill = Some(KillReason::Timeout);
        }
        if pumped.kill.is_some() || is_reported {
            // Killed, or the supervisor is done: give leftovers a moment.
            let end = *grace_end.get_or_insert(now + KILL_GRACE);
            if now >= end {
                break;
            }
        }
        let wake = match (pumped.kill, grace_end) {
            (None, Some(end)) => end.min(deadline),
            (None, None) => deadline,
            (Some(_), end) => end.unwrap_or(now),
        };
        let timeout_ms = wake.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1;
        let mut polls: Vec<libc::pollfd> = readers
            .iter()
            .flatten()
            .map(|fd| poll_entry(fd.as_raw_fd(), libc::POLLIN))
            .collect();
        if let Some((fd, _)) = &stdin {
            polls.push(poll_entry(fd.as_raw_fd(), libc::POLLOUT));
        }
        // SAFETY: `polls` is a valid array of pollfd.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_ms) };
        if n <= 0 {
            continue;
        }
        for poll in polls.iter().filter(|p| p.revents != 0) {
            if let Some((fd, data)) = &mut stdin {
                if fd.as_raw_fd() == poll.fd {
                    // SAFETY: writing from a valid slice.
                    let written = unsafe { libc::write(poll.fd, data.as_ptr().cast(), data.len()) };
                    if written < 0
                        && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock
                    {
                        stdin = None;
                    } else if written > 0 {
                        *data = &data[written as usize..];
                        if data.is_empty() {
                            stdin = None;
                        }
                    }
                    continue;
                }
            }
            let Some(idx) = readers
                .iter()
                .position(|r| r.as_ref().is_some_and(|fd| fd.as_raw_fd() == poll.fd))
            else {
                continue;
            };
            // SAFETY: reading into a valid buffer.
            let n = unsafe { libc::read(poll.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                readers[idx] = None;
                continue;
            }
            let data = &buf[..n as usize];
            let is_overflow = match idx {
                0 => pumped.stdout.push(data),
                1 => pumped.stderr.push(data),
                _ => {
                    pumped.status.extend_from_slice(data);
                    false
                }
            };
            if is_overflow && pumped.kill.is_none() {
                kill();
                pumped.kill = Some(KillReason::Output);
            }
        }
    }
    pumped.wall_time = started.elapsed();
    pumped
}

fn poll_entry(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// What the parent saw of a finished job.
struct Observed<'a> {
    report: Option<&'a Report>,
    kill: Option<KillReason>,
    stats: Option<CgroupStats>,
    stderr: &'a Capture,
}

/// Turns what was observed into a [`Status`].
fn classify(plan: Option<&Plan>, job: &Job, limits: &Limits, observed: &Observed) -> Status {
    let Observed {
        report,
        kill,
        stats,
        stderr,
    } = *observed;
    if let Some(report) = report.filter(|r| r[spawn::IDX_KIND] == spawn::KIND_FAILED) {
        return Status::SandboxError {
            message: describe_failure(plan, report),
        };
    }
    let hit_memory_limit = stats.is_some_and(|s| s.n_oom_kills > 0 || s.n_limit_hits > 0);
    match kill {
        Some(KillReason::Output) => return Status::OutputLimit,
        // Near its limit the kernel may reclaim and stall a job instead of
        // OOM-killing it, so a job that reached the limit and then ran out of
        // time is reported as a memory-limit outcome.
        Some(KillReason::Timeout) if hit_memory_limit => return Status::MemoryLimit,
        Some(KillReason::Timeout) => return Status::TimedOut,
        None => {}
    }
    if stats.is_some_and(|s| s.n_oom_kills > 0) {
        return Status::MemoryLimit;
    }
    let Some(report) = report.filter(|r| r[spawn::IDX_KIND] == spawn::KIND_DONE) else {
        return Status::SandboxError {
            message: "the supervisor ended without a report".to_string(),
        };
    };
    let wait_status = report[spawn::IDX_WAIT_STATUS] as libc::c_int;
    if libc::WIFEXITED(wait_status) && libc::WEXITSTATUS(wait_status) == 0 {
        return Status::Passed;
    }
    let is_memory_error = job
        .language
        .memory_error_markers
        .iter()
        .any(|marker| contains(&stderr.bytes, marker.as_bytes()));
    if is_memory_error {
        return Status::MemoryLimit;
    }
    if libc::WIFSIGNALED(wait_status) {
        let signal = libc::WTERMSIG(wait_status);
        // RLIMIT_CPU sends SIGKILL at its hard limit when SIGXCPU is caught.
        let cpu_limit_us = i64::try_from(limits.timeout.as_micros()).unwrap_or(i64::MAX);
        let is_cpu_kill = signal == libc::SIGKILL && report[spawn::IDX_CPU_US] >= cpu_limit_us;
        if signal == libc::SIGXCPU || is_cpu_kill {
            return Status::TimedOut;
        }
        return Status::Signaled { signal };
    }
    Status::Failed {
        exit_code: libc::WEXITSTATUS(wait_status),
    }
}

fn describe_failure(plan: Option<&Plan>, report: &Report) -> String {
    let stage = report[spawn::IDX_STAGE];
    let errno = std::io::Error::from_raw_os_error(report[spawn::IDX_ERRNO] as i32);
    let detail = usize::try_from(report[spawn::IDX_DETAIL]).unwrap_or(0);
    let step = usize::try_from(report[spawn::IDX_STEP]).unwrap_or(0);
    let context = match stage {
        s if s == spawn::Stage::MountOp as i64 => plan
            .and_then(|plan| plan.root_ops.get(detail))
            .map(MountOp::target),
        s if s == spawn::Stage::Exec as i64 => plan
            .and_then(|plan| plan.steps.get(step))
            .and_then(|step| step.argv.first())
            .map(|arg| arg.to_string_lossy().into_owned()),
        _ => None,
    };
    let context = context.map_or_else(String::new, |c| format!(" ({c})"));
    format!("{}{context}: {errno}", spawn::describe_stage(stage))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_truncates_at_cap() {
        let mut capture = Capture::new(4);
        assert!(!capture.push(b"ab"));
        assert!(capture.push(b"cdef"));
        assert_eq!(capture.into_captured().bytes, b"abcd");
    }
}
