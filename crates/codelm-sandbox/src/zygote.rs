//! A warm Python process (a "zygote") whose forks run Python jobs.
//!
//! Starting `python3` costs about 10 ms of CPU, several times the sandbox's
//! own overhead. The zygote runs `zygote.py` inside a fully isolated sandbox
//! of its own, as root of its user namespace with capabilities and without
//! seccomp (it runs only our code). It forks *workers*: each is PID 1 of a
//! fresh PID namespace, in its own session and its own mount, network, IPC
//! and UTS namespaces, with its own tmpfs at `/sandbox`, `/tmp` and
//! `/dev/shm`, and sits in a cgroup of its own. A worker runs one job at a
//! time, each in a fork with its own session and a fresh IPC namespace, the
//! job's rlimits, no capabilities, `no_new_privs` and the same seccomp
//! filter as a cold job.
//!
//! After each job the worker kills and reaps everything left in its PID
//! namespace and empties its tmpfs directories, then reports; the parent
//! resets the cgroup's counters (and limits, when they change) and hands
//! the worker the next job. Only a worker that reported a
//! finished job is reused: at a deadline, an output overflow or anything
//! unexpected the parent kills the worker, which takes its namespace with
//! it. Jobs that ran one after the other on a worker share its network and
//! UTS namespaces, which hold nothing once the processes are gone (no
//! usable interface, no capabilities to change them); jobs that run at the
//! same time never share a namespace.
//!
//! Jobs share the zygote's user namespace and uid, so `RLIMIT_NPROC` is
//! shared between concurrent jobs; the per-job process cap comes from the
//! pids cgroup, which is why the zygote needs cgroups. Any failure to reach
//! the zygote makes the job start cold instead.

use std::fmt::Write as _;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Instant;

use crate::cgroup::{CgroupRoot, JobCgroup};
use crate::pump::{above_stdio, pipe, pump, write_all, Pipes};
use crate::sandbox::{bind_fds, cstring, rlimits, Sandbox, Supervisor};
use crate::spawn::{ChildFds, Stage};
use crate::{seccomp, Error, Job, Language, Limits, Outcome, Result};

const SOURCE: &[u8] = include_bytes!("zygote.py");

/// How long a forked job may take to report ready.
const READY_TIMEOUT_MS: i32 = 10_000;

const TITLE_ROOM: &str = concat!(
    "................................................................",
    "................................................................",
    "................................................................",
    "................................................................",
);

/// The zygote's own "language": the script, run by the table's python3.
const ZYGOTE: Language = Language {
    name: "python-zygote",
    aliases: &[],
    extension: "py",
    default_main: "zygote.py",
    compile: None,
    // The last argument only reserves room for the jobs' command lines.
    run: &["python3", "{main}", TITLE_ROOM],
    limits_address_space: false,
    memory_error_markers: &[],
};

/// A running zygote; killed (with its namespace) on drop.
#[derive(Debug)]
pub(crate) struct Zygote {
    control: Mutex<OwnedFd>,
    /// Workers waiting for a job.
    idle: Mutex<Vec<Worker>>,
    _supervisor: Supervisor,
    _status: OwnedFd,
}

/// A worker process of the zygote and the cgroup it and its jobs run in.
#[derive(Debug)]
struct Worker {
    sock: OwnedFd,
    pidfd: Pidfd,
    cgroup: JobCgroup,
}

impl Worker {
    /// Kills the worker and its namespace and waits for it to go.
    fn kill(&self) {
        self.pidfd.kill();
        self.pidfd.wait(2_000);
    }
}

fn os_error(operation: &'static str) -> Error {
    Error::last_os(operation)
}

fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        return Err(os_error("socketpair"));
    }
    // SAFETY: socketpair returned two fresh descriptors we now own.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(a)?, above_stdio(b)?))
}

fn send_all(sock: &OwnedFd, data: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < data.len() {
        let rest = &data[done..];
        // SAFETY: sending from a valid slice.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(os_error("send"));
        }
        done += n as usize;
    }
    Ok(())
}

fn send_blob(sock: &OwnedFd, data: &[u8]) -> Result<()> {
    send_all(sock, &(data.len() as u64).to_le_bytes())?;
    send_all(sock, data)
}

/// Sends one byte carrying `fds` as `SCM_RIGHTS`.
fn send_fds(sock: &OwnedFd, fds: &[RawFd]) -> Result<()> {
    let mut byte = [b'j'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let payload = std::mem::size_of_val(fds) as u32;
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; all pointers refer to live buffers, and
    // the control buffer is aligned and larger than CMSG_SPACE(payload).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(payload) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(os_error("CMSG_FIRSTHDR"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        if libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) != 1 {
            return Err(os_error("sendmsg"));
        }
    }
    Ok(())
}

/// Waits for the job's ready byte and returns the sender's host PID.
fn receive_pid(sock: &OwnedFd) -> Result<libc::pid_t> {
    let mut poll = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one valid descriptor.
    if unsafe { libc::poll(&mut poll, 1, READY_TIMEOUT_MS) } != 1 {
        return Err(os_error("waiting for the zygote"));
    }
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 16];
    // SAFETY: as in `send_fds`; the kernel fills at most msg_controllen.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 16]>();
        if libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) != 1 {
            return Err(os_error("recvmsg"));
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
            {
                let credentials: libc::ucred =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Ok(credentials.pid);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Err(Error::Os {
        operation: "reading the job's credentials",
        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
    })
}

/// A descriptor that refers to a process, for race-free signals.
#[derive(Debug)]
struct Pidfd {
    fd: OwnedFd,
    pid: libc::pid_t,
}

impl Pidfd {
    fn open(pid: libc::pid_t) -> Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(os_error("pidfd_open"));
        }
        // SAFETY: pidfd_open returned a fresh descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Pidfd { fd, pid })
    }

    fn kill(&self) {
        // SAFETY: signalling through a valid pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    /// Waits up to `timeout_ms` for the process to exit.
    fn wait(&self, timeout_ms: i32) {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one valid descriptor.
        unsafe { libc::poll(&mut poll, 1, timeout_ms) };
    }
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut String, text: impl IntoIterator<Item = char>) {
    out.push('"');
    for c in text {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Zygote {
    /// Whether `job` is a plain Python job the zygote can run.
    pub(crate) fn can_run(job: &Job) -> bool {
        Language::find("python").is_some_and(|python| *python == job.language)
    }

    /// Starts the zygote in its own sandbox.
    pub(crate) fn start(sandbox: &Sandbox) -> Result<Self> {
        let job = Job::from_source(ZYGOTE, SOURCE);
        let limits = Limits {
            file_size_bytes: 1 << 20,
            ..Limits::default()
        };
        let prepared = sandbox.prepare(&job, &limits, true)?;
        let (control, control_child) = socketpair()?;
        let (status_read, status_write) = pipe()?;
        let (go_read, go_write) = pipe()?;
        // SAFETY: opening a constant path.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if null < 0 {
            return Err(os_error("open /dev/null"));
        }
        // SAFETY: open returned a fresh descriptor we now own.
        let null = above_stdio(unsafe { OwnedFd::from_raw_fd(null) })?;
        let trees = sandbox.bind_trees()?;
        let fds = ChildFds {
            go: go_read.as_raw_fd(),
            status: status_write.as_raw_fd(),
            stdin: control_child.as_raw_fd(),
            stdout: null.as_raw_fd(),
            stderr: null.as_raw_fd(),
            binds: bind_fds(&trees),
        };
        let supervisor = sandbox.spawn_supervisor(&prepared.plan, fds, prepared.job_id)?;
        drop((go_read, status_write, control_child, null, trees));
        write_all(&go_write, b"g")?;
        let filter = sandbox.seccomp().map(seccomp::to_bytes).unwrap_or_default();
        send_blob(&control, &filter)?;
        Ok(Zygote {
            control: Mutex::new(control),
            idle: Mutex::new(Vec::new()),
            _supervisor: supervisor,
            _status: status_read,
        })
    }

    /// Forks a new worker and puts it into a cgroup of its own.
    fn spawn_worker(&self, root: &CgroupRoot, limits: &Limits) -> Result<Worker> {
        let (sock, sock_child) = socketpair()?;
        let enable: libc::c_int = 1;
        // SAFETY: setting an int option on a valid socket.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&enable as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os_error("setsockopt SO_PASSCRED"));
        }
        send_fds(&*lock(&self.control)?, &[sock_child.as_raw_fd()])?;
        drop(sock_child);
        let pidfd = Pidfd::open(receive_pid(&sock)?)?;
        let started = root.acquire(limits).and_then(|cgroup| {
            cgroup.attach(pidfd.pid)?;
            send_all(&sock, b"g")?;
            Ok(cgroup)
        });
        match started {
            Ok(cgroup) => Ok(Worker {
                sock,
                pidfd,
                cgroup,
            }),
            Err(error) => {
                pidfd.kill();
                Err(error)
            }
        }
    }

    /// The job description read by `zygote.py`.
    fn spec(sandbox: &Sandbox, job: &Job, limits: &Limits) -> String {
        let mut out = String::from("{\"main\": ");
        json_string(&mut out, job.main_file.chars());
        out.push_str(", \"args\": [");
        for (idx, arg) in job.args.iter().enumerate() {
            out.push_str(if idx == 0 { "" } else { ", " });
            json_string(&mut out, arg.chars());
        }
        out.push_str("], \"env\": {");
        for (idx, (key, value)) in sandbox.environment("/sandbox", "/tmp").iter().enumerate() {
            out.push_str(if idx == 0 { "" } else { ", " });
            json_string(&mut out, key.chars());
            out.push_str(": ");
            json_string(&mut out, value.chars());
        }
        out.push_str("}, \"rlimits\": [");
        // Shared by all jobs of the zygote's uid; the pids cgroup caps each.
        let n_jobs = sandbox.config().n_jobs as u64;
        let n_processes = limits.n_processes.saturating_mul(n_jobs + 1) + 32;
        let rlimits = rlimits(limits, &job.language, n_processes);
        for (idx, (resource, soft, hard)) in rlimits.iter().enumerate() {
            out.push_str(if idx == 0 { "" } else { ", " });
            let _ = write!(out, "[{resource}, {soft}, {hard}]");
        }
        out.push_str("], \"files\": [");
        for (idx, (name, data)) in job.files.iter().enumerate() {
            out.push_str(if idx == 0 { "[" } else { ", [" });
            json_string(&mut out, name.chars());
            out.push_str(", ");
            // Bytes travel as Latin-1 characters.
            json_string(&mut out, data.iter().map(|&b| char::from(b)));
            out.push(']');
        }
        let _ = write!(
            out,
            "], \"tmpfs_bytes\": {}, \"failure_stage\": {}}}",
            limits.file_size_bytes,
            Stage::Zygote as i64
        );
        out
    }

    /// Runs a job on an idle worker, or a new one. An error means the
    /// zygote is unusable and the job has not run.
    pub(crate) fn run(&self, sandbox: &Sandbox, job: &Job, limits: &Limits) -> Result<Outcome> {
        cstring(job.main_file.as_bytes())?;
        let root = sandbox.cgroups().ok_or(Error::Os {
            operation: "the zygote needs cgroups",
            source: std::io::Error::from(std::io::ErrorKind::Unsupported),
        })?;
        let idle = lock(&self.idle)?.pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => self.spawn_worker(root, limits)?,
        };
        if let Err(error) = worker.cgroup.configure(limits) {
            worker.kill();
            return Err(error);
        }
        let (pipes, child_pipes) = Pipes::new()?;
        let sent = send_fds(
            &worker.sock,
            &[
                child_pipes.stdin.as_raw_fd(),
                child_pipes.stdout.as_raw_fd(),
                child_pipes.stderr.as_raw_fd(),
                child_pipes.status.as_raw_fd(),
            ],
        )
        .and_then(|()| send_blob(&worker.sock, Self::spec(sandbox, job, limits).as_bytes()));
        drop(child_pipes);
        if let Err(error) = sent {
            worker.kill();
            return Err(error);
        }
        let kill = || worker.pidfd.kill();
        let pumped = pump(pipes, &job.stdin, limits, Instant::now(), &kill);
        // A worker that reported has already killed and reaped everything
        // the job left; any other one goes, with its namespace.
        let is_reusable = pumped.is_reported_unkilled();
        if !is_reusable {
            worker.kill();
        }
        let stats = Some(worker.cgroup.stats());
        let isolation = sandbox.config().isolation;
        let mut outcome = pumped.into_outcome(None, job, limits, stats, isolation);
        outcome.is_warm_start = true;
        if is_reusable {
            // The job has run: whatever happens to the pool, report it.
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(worker);
            }
        } else {
            root.release(worker.cgroup);
        }
        Ok(outcome)
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        if let Ok(idle) = self.idle.get_mut() {
            for worker in idle.drain(..) {
                worker.kill();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| Error::Os {
        operation: "locking the zygote",
        source: std::io::Error::from(std::io::ErrorKind::Other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_json_strings() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\n\u{1}é".chars());
        assert_eq!(out, "\"a\\\"b\\\\c\\u000a\\u0001é\"");
    }
}
