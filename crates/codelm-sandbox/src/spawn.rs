//! The code that runs in the forked children, between `clone` and `execve`.
//!
//! The calling process is multi-threaded, so after `clone` the children may
//! only make raw system calls: no allocation, no locks, no formatting.
//! Everything they need (paths, argv, environment, the BPF program) is built
//! into a [`Plan`] before `clone`, and failures travel back to the parent as
//! a fixed-size [`Report`] of integers.
//!
//! Process tree: the parent clones the *supervisor* into the new namespaces
//! (it is PID 1 there), the supervisor builds the root file system and forks
//! one child per step (compile, run), which applies limits and `execve`s.

use std::ffi::{CStr, CString};
use std::mem::size_of;
use std::ptr;

use libc::{c_char, c_int, c_ulong, c_void};

use crate::seccomp::{SockFilter, SockFprog};

/// Where the supervisor assembles the new root before `pivot_root`.
pub(crate) const NEW_ROOT: &CStr = c"/tmp";

/// Integers sent from the supervisor to the parent when it finishes.
pub(crate) type Report = [i64; 8];
pub(crate) const REPORT_BYTES: usize = size_of::<Report>();
pub(crate) const KIND_DONE: i64 = 1;
pub(crate) const KIND_FAILED: i64 = 2;
pub(crate) const IDX_KIND: usize = 0;
pub(crate) const IDX_STAGE: usize = 1;
pub(crate) const IDX_ERRNO: usize = 2;
pub(crate) const IDX_DETAIL: usize = 3;
pub(crate) const IDX_STEP: usize = 4;
pub(crate) const IDX_WAIT_STATUS: usize = 5;
pub(crate) const IDX_CPU_US: usize = 6;
pub(crate) const IDX_MAXRSS_KB: usize = 7;

/// The setup stage that failed, as sent in a report.
///
/// Discriminants index [`describe_stage`]'s table, starting at 1.
#[derive(Debug, Clone, Copy)]
#[repr(i64)]
pub(crate) enum Stage {
    Setgroups = 1,
    SetIds,
    Hostname,
    MakePrivate,
    MountOp,
    PivotRoot,
    RootReadOnly,
    WriteFile,
    Pipe,
    Fork,
    Stdio,
    Chdir,
    Rlimit,
    DropPrivileges,
    NoNewPrivs,
    Seccomp,
    Exec,
    Wait,
    Zygote,
}

/// Describes a stage code from a report.
pub(crate) fn describe_stage(code: i64) -> &'static str {
    const NAMES: [&str; 19] = [
        "dropping supplementary groups",
        "switching to namespace root",
        "setting the hostname",
        "making mounts private",
        "building the root file system",
        "pivot_root",
        "making the root read-only",
        "writing a job file",
        "creating a pipe",
        "forking the program",
        "redirecting standard streams",
        "entering the working directory",
        "setting rlimits",
        "dropping privileges",
        "setting no_new_privs",
        "installing the seccomp filter",
        "executing the program",
        "waiting for the program",
        "preparing the warm Python process",
    ];
    usize::try_from(code - 1)
        .ok()
        .and_then(|idx| NAMES.get(idx))
        .copied()
        .unwrap_or("unknown stage")
}

/// One step of building the root file system.
#[derive(Debug)]
pub(crate) enum MountOp {
    /// Creates a directory (an existing one is fine).
    Mkdir(CString),
    /// Creates a symbolic link `link -> target`.
    Symlink { target: CString, link: CString },
    /// Creates an empty file to bind a file or device onto.
    Touch(CString),
    /// Recursive read-only, nosuid bind mount; `nodev` unless `is_device`.
    Bind {
        src: CString,
        dst: CString,
        is_device: bool,
    },
    /// A fresh tmpfs.
    Tmpfs { dst: CString, options: CString },
    /// Makes a tmpfs read-only once it is populated.
    ReadOnly(CString),
    /// A procfs for the new PID namespace.
    Proc(CString),
    /// Attaches the detached tree passed as `ChildFds::binds[bind_idx]`.
    AttachTree { bind_idx: usize, dst: CString },
}

impl MountOp {
    /// The path the operation acts on, for error messages.
    pub(crate) fn target(&self) -> String {
        let path = match self {
            MountOp::Mkdir(path)
            | MountOp::Touch(path)
            | MountOp::Proc(path)
            | MountOp::ReadOnly(path) => path,
            MountOp::Symlink { link, .. } => link,
            MountOp::Bind { dst, .. }
            | MountOp::Tmpfs { dst, .. }
            | MountOp::AttachTree { dst, .. } => dst,
        };
        path.to_string_lossy().into_owned()
    }
}

/// One program to execute (a compile or the run).
#[derive(Debug)]
pub(crate) struct Step {
    pub path: CString,
    pub argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    pub is_run: bool,
}

impl Step {
    pub(crate) fn new(path: CString, argv: Vec<CString>, is_run: bool) -> Self {
        let argv_ptrs = null_terminated(&argv);
        Step {
            path,
            argv,
            argv_ptrs,
            is_run,
        }
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// The resource type `setrlimit` takes.
#[cfg(target_env = "gnu")]
pub(crate) type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(crate) type Resource = c_int;

/// Everything the children need, prepared before `clone`.
#[derive(Debug)]
pub(crate) struct Plan {
    /// `CLONE_NEW*` flags of the supervisor (0 for no namespaces).
    pub clone_flags: c_int,
    /// Whether the supervisor is in a new user namespace.
    pub is_user_ns: bool,
    /// Root file system operations; empty means "stay in the host's view".
    pub root_ops: Vec<MountOp>,
    pub workdir: CString,
    /// Job files as absolute paths in the final view, with contents.
    pub files: Vec<(CString, Vec<u8>)>,
    pub file_owner: (libc::uid_t, libc::gid_t),
    pub steps: Vec<Step>,
    /// Owns the strings `env_ptrs` points into.
    _env: Vec<CString>,
    env_ptrs: Vec<*const c_char>,
    /// `(resource, soft, hard)` limits.
    pub rlimits: Vec<(Resource, u64, u64)>,
    /// Unprivileged ids to switch to before `execve`.
    pub drop_to: Option<(libc::uid_t, libc::gid_t)>,
    pub seccomp: Option<Vec<SockFilter>>,
    /// Memory (argv and environment strings) the supervisor zeroes so the
    /// job cannot read the caller's command line or environment via /proc/1.
    pub scrub: Vec<(usize, usize)>,
    /// Keeps capabilities and skips `no_new_privs` (the trusted zygote).
    pub is_privileged: bool,
}

impl Plan {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        clone_flags: c_int,
        root_ops: Vec<MountOp>,
        workdir: CString,
        files: Vec<(CString, Vec<u8>)>,
        file_owner: (libc::uid_t, libc::gid_t),
        steps: Vec<Step>,
        env: Vec<CString>,
        rlimits: Vec<(Resource, u64, u64)>,
        drop_to: Option<(libc::uid_t, libc::gid_t)>,
        seccomp: Option<Vec<SockFilter>>,
        scrub: Vec<(usize, usize)>,
    ) -> Self {
        let env_ptrs = null_terminated(&env);
        Plan {
            clone_flags,
            is_user_ns: clone_flags & libc::CLONE_NEWUSER != 0,
            root_ops,
            workdir,
            files,
            file_owner,
            steps,
            _env: env,
            env_ptrs,
            rlimits,
            drop_to,
            seccomp,
            scrub,
            is_privileged: false,
        }
    }
}

/// Most extra binds a sandbox accepts.
pub(crate) const MAX_BINDS: usize = 4;

/// Descriptors the supervisor uses (all `>= 3`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildFds {
    pub go: c_int,
    pub status: c_int,
    pub stdin: c_int,
    pub stdout: c_int,
    pub stderr: c_int,
    /// Detached mount trees of extra binds, cloned by the caller because
    /// the supervisor's unprivileged uid may not reach them; `-1` when unused.
    pub binds: [c_int; MAX_BINDS],
}

unsafe fn errno() -> i64 {
    i64::from(*libc::__errno_location())
}

/// Closes every descriptor from 3 up except those in `keep`.
unsafe fn close_all_except(keep: &[c_int]) {
    let mut sorted = [c_int::MAX; 16];
    let n = keep.len().min(sorted.len());
    sorted[..n].copy_from_slice(&keep[..n]);
    sorted[..n].sort_unstable();
    let mut low: c_int = 3;
    for &fd in &sorted[..n] {
        if fd >= low {
            if fd > low {
                close_range(low, fd - 1);
            }
            low = fd + 1;
        }
    }
    close_range(low, c_int::MAX);
}

unsafe fn close_range(low: c_int, high: c_int) {
    let rc = libc::syscall(libc::SYS_close_range, low as u32, high as u32, 0u32);
    if rc != 0 {
        // Kernels before 5.9: close the common range one by one.
        for fd in low..high.min(4096) {
            libc::close(fd);
        }
    }
}

unsafe fn read_full(fd: c_int, buf: *mut c_void, len: usize) -> isize {
    loop {
        let n = libc::read(fd, buf, len);
        if n >= 0 || errno() != i64::from(libc::EINTR) {
            return n;
        }
    }
}

unsafe fn write_all(fd: c_int, data: &[u8]) -> bool {
    let mut done = 0;
    while done < data.len() {
        let n = libc::write(fd, data[done..].as_ptr().cast(), data.len() - done);
        if n < 0 {
            if errno() == i64::from(libc::EINTR) {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

unsafe fn send(fd: c_int, report: &Report) {
    libc::write(fd, report.as_ptr().cast(), REPORT_BYTES);
}

unsafe fn fail(fd: c_int, report: &mut Report, stage: Stage, detail: usize) -> ! {
    report[IDX_KIND] = KIND_FAILED;
    report[IDX_STAGE] = stage as i64;
    report[IDX_ERRNO] = errno();
    report[IDX_DETAIL] = detail as i64;
    send(fd, report);
    libc::_exit(1)
}

/// Drops supplementary groups. The raw system call affects this thread
/// only, which is the whole process here; libc's wrapper would try to
/// synchronise with the parent's threads, which do not exist in the child,
/// and hang.
unsafe fn set_groups_empty() -> libc::c_long {
    libc::syscall(libc::SYS_setgroups, 0usize, ptr::null::<libc::gid_t>())
}

/// Sets real, effective and saved ids with raw system calls (see
/// [`set_groups_empty`]).
unsafe fn set_ids(uid: libc::uid_t, gid: libc::gid_t) -> libc::c_long {
    let rc = libc::syscall(libc::SYS_setresgid, gid, gid, gid);
    if rc != 0 {
        return rc;
    }
    libc::syscall(libc::SYS_setresuid, uid, uid, uid)
}

/// A `fork` that skips libc's atfork handlers and malloc locks, which may
/// be held by threads that do not exist in this process.
pub(crate) unsafe fn raw_clone(flags: c_int) -> libc::pid_t {
    libc::syscall(
        libc::SYS_clone,
        (flags | libc::SIGCHLD) as c_ulong,
        0usize,
        0usize,
        0usize,
        0usize,
    ) as libc::pid_t
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Makes a mount (recursively) read-only, nosuid and, unless it holds
/// devices, nodev. `flags` are `*at` flags such as `AT_EMPTY_PATH`.
pub(crate) fn make_read_only(dirfd: c_int, path: &CStr, flags: c_int, is_nodev: bool) -> bool {
    let mut set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
    if is_nodev {
        set |= MOUNT_ATTR_NODEV;
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = (flags | libc::AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW) as u32;
    // SAFETY: a NUL-terminated path and a valid attribute struct.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        ) == 0
    }
}

unsafe fn apply(op: &MountOp, fds: &ChildFds) -> bool {
    let null = ptr::null::<c_char>();
    match op {
        MountOp::Mkdir(path) => {
            libc::mkdir(path.as_ptr(), 0o755) == 0 || errno() == i64::from(libc::EEXIST)
        }
        MountOp::Symlink { target, link } => libc::symlink(target.as_ptr(), link.as_ptr()) == 0,
        MountOp::Touch(path) => {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                0o644,
            );
            fd >= 0 && libc::close(fd) == 0
        }
        MountOp::Bind {
            src,
            dst,
            is_device,
        } => {
            let flags = (libc::MS_BIND | libc::MS_REC) as c_ulong;
            libc::mount(src.as_ptr(), dst.as_ptr(), null, flags, ptr::null()) == 0
                && make_read_only(libc::AT_FDCWD, dst, 0, !is_device)
        }
        MountOp::AttachTree { bind_idx, dst } => {
            const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
            let Some(&fd) = fds.binds.get(*bind_idx) else {
                return false;
            };
            libc::syscall(
                libc::SYS_move_mount,
                fd,
                c"".as_ptr(),
                libc::AT_FDCWD,
                dst.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            ) == 0
        }
        MountOp::Tmpfs { dst, options } => {
            let flags = (libc::MS_NOSUID | libc::MS_NODEV) as c_ulong;
            let tmpfs = c"tmpfs".as_ptr();
            libc::mount(tmpfs, dst.as_ptr(), tmpfs, flags, options.as_ptr().cast()) == 0
        }
        MountOp::ReadOnly(dst) => {
            let flags = libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
            libc::mount(null, dst.as_ptr(), null, flags as c_ulong, ptr::null()) == 0
        }
        MountOp::Proc(dst) => {
            let proc = c"proc".as_ptr();
            let flags = (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as c_ulong;
            libc::mount(proc, dst.as_ptr(), proc, flags, ptr::null()) == 0
        }
    }
}

/// The supervisor: PID 1 of the job's namespaces. Never returns.
///
/// # Safety
///
/// Must be called only in a freshly cloned child whose parent keeps `plan`
/// alive; it makes only raw system calls.
pub(crate) unsafe fn supervise(plan: &Plan, fds: ChildFds) -> ! {
    let mut report: Report = [0; 8];
    // A job dies with the thread that waits for it. The zygote instead
    // outlives the thread that started it and exits when its control
    // socket closes.
    if !plan.is_privileged {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
    }
    let [b0, b1, b2, b3] = fds.binds;
    close_all_except(&[
        fds.go, fds.status, fds.stdin, fds.stdout, fds.stderr, b0, b1, b2, b3,
    ]);
    libc::setsid();
    let mut byte = 0u8;
    if read_full(fds.go, (&mut byte as *mut u8).cast(), 1) != 1 {
        libc::_exit(1);
    }
    libc::close(fds.go);
    libc::prctl(
        libc::PR_SET_NAME,
        c"codelm-init".as_ptr() as c_ulong,
        0,
        0,
        0,
    );
    for &(start, len) in &plan.scrub {
        ptr::write_bytes(start as *mut u8, 0, len);
    }
    if plan.is_user_ns {
        if set_groups_empty() != 0 {
            fail(fds.status, &mut report, Stage::Setgroups, 0);
        }
        if set_ids(0, 0) != 0 {
            fail(fds.status, &mut report, Stage::SetIds, 0);
        }
    }
    libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    if plan.clone_flags & libc::CLONE_NEWUTS != 0 {
        let name = b"sandbox";
        if libc::sethostname(name.as_ptr().cast(), name.len()) != 0 {
            fail(fds.status, &mut report, Stage::Hostname, 0);
        }
    }
    if !plan.root_ops.is_empty() {
        build_root(plan, &fds, &mut report);
    }
    for (idx, (path, data)) in plan.files.iter().enumerate() {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0
            || !write_all(fd, data)
            || libc::fchown(fd, plan.file_owner.0, plan.file_owner.1) != 0
            || libc::close(fd) != 0
        {
            fail(fds.status, &mut report, Stage::WriteFile, idx);
        }
    }
    for (idx, step) in plan.steps.iter().enumerate() {
        report[IDX_STEP] = idx as i64;
        let mut pipe = [0 as c_int; 2];
        if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            fail(fds.status, &mut report, Stage::Pipe, idx);
        }
        let pid = raw_clone(0);
        if pid < 0 {
            fail(fds.status, &mut report, Stage::Fork, idx);
        }
        if pid == 0 {
            exec_step(plan, step, fds, pipe[1]);
        }
        libc::close(pipe[1]);
        if idx + 1 == plan.steps.len() {
            // Only the program's processes hold the output pipes now, so
            // they close as soon as it is done.
            libc::close(fds.stdin);
            libc::close(fds.stdout);
            libc::close(fds.stderr);
        }
        let mut failure = [0i64; 3];
        let n = read_full(pipe[0], failure.as_mut_ptr().cast(), size_of::<[i64; 3]>());
        libc::close(pipe[0]);
        if n == size_of::<[i64; 3]>() as isize {
            report[IDX_KIND] = KIND_FAILED;
            report[IDX_STAGE] = failure[0];
            report[IDX_ERRNO] = failure[1];
            report[IDX_DETAIL] = failure[2];
            send(fds.status, &report);
            libc::_exit(1);
        }
        let mut wait_status: c_int = 0;
        loop {
            // As PID 1 the supervisor also reaps orphaned grandchildren.
            let reaped = libc::waitpid(-1, &mut wait_status, 0);
            if reaped == pid {
                break;
            }
            if reaped < 0 && errno() != i64::from(libc::EINTR) {
                fail(fds.status, &mut report, Stage::Wait, idx);
            }
        }
        report[IDX_WAIT_STATUS] = i64::from(wait_status);
        let is_success = libc::WIFEXITED(wait_status) && libc::WEXITSTATUS(wait_status) == 0;
        if !is_success {
            break;
        }
    }
    let mut usage: libc::rusage = std::mem::zeroed();
    libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
    let micros = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    report[IDX_CPU_US] = micros(usage.ru_utime) + micros(usage.ru_stime);
    report[IDX_MAXRSS_KB] = usage.ru_maxrss;
    report[IDX_KIND] = KIND_DONE;
    send(fds.status, &report);
    libc::_exit(0)
}

unsafe fn build_root(plan: &Plan, fds: &ChildFds, report: &mut Report) {
    let status = fds.status;
    let root = c"/";
    let flags = (libc::MS_REC | libc::MS_PRIVATE) as c_ulong;
    if libc::mount(ptr::null(), root.as_ptr(), ptr::null(), flags, ptr::null()) != 0 {
        fail(status, report, Stage::MakePrivate, 0);
    }
    for (idx, op) in plan.root_ops.iter().enumerate() {
        if !apply(op, fds) {
            fail(status, report, Stage::MountOp, idx);
        }
    }
    let dot = c".";
    if libc::chdir(NEW_ROOT.as_ptr()) != 0
        || libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0
        || libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0
        || libc::chdir(root.as_ptr()) != 0
    {
        fail(status, report, Stage::PivotRoot, 0);
    }
    let flags = (libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV) as c_ulong;
    if libc::mount(ptr::null(), root.as_ptr(), ptr::null(), flags, ptr::null()) != 0 {
        fail(status, report, Stage::RootReadOnly, 0);
    }
}

unsafe fn step_fail(fd: c_int, stage: Stage, detail: usize) -> ! {
    let failure = [stage as i64, errno(), detail as i64];
    libc::write(fd, failure.as_ptr().cast(), size_of::<[i64; 3]>());
    libc::_exit(127)
}

/// A step's child: applies limits and executes the program. Never returns.
unsafe fn exec_step(plan: &Plan, step: &Step, fds: ChildFds, err: c_int) -> ! {
    // Dispositions set to "ignore" (Rust ignores SIGPIPE) survive execve.
    for signal in 1..32 {
        libc::signal(signal, libc::SIG_DFL);
    }
    let mut mask: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut mask);
    libc::sigprocmask(libc::SIG_SETMASK, &mask, ptr::null_mut());

    let stdin = if step.is_run {
        fds.stdin
    } else {
        libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
    };
    if stdin < 0
        || libc::dup2(stdin, 0) < 0
        || libc::dup2(fds.stdout, 1) < 0
        || libc::dup2(fds.stderr, 2) < 0
    {
        step_fail(err, Stage::Stdio, 0);
    }
    close_all_except(&[err]);
    if libc::chdir(plan.workdir.as_ptr()) != 0 {
        step_fail(err, Stage::Chdir, 0);
    }
    for (idx, &(resource, soft, hard)) in plan.rlimits.iter().enumerate() {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        if libc::setrlimit(resource, &limit) != 0 {
            step_fail(err, Stage::Rlimit, idx);
        }
    }
    // Empty the bounding set so that executing as (namespace) root grants
    // no capabilities; fails harmlessly when already unprivileged.
    for cap in (0..64).filter(|_| !plan.is_privileged) {
        libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0);
    }
    if let Some((uid, gid)) = plan.drop_to {
        if set_groups_empty() != 0 || set_ids(uid, gid) != 0 {
            step_fail(err, Stage::DropPrivileges, 0);
        }
    }
    if !plan.is_privileged && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as c_ulong, 0, 0, 0) != 0 {
        step_fail(err, Stage::NoNewPrivs, 0);
    }
    if let Some(filter) = &plan.seccomp {
        let program = SockFprog {
            len: filter.len() as u16,
            filter: filter.as_ptr(),
        };
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as c_ulong,
            &program as *const SockFprog as c_ulong,
            0,
            0,
        ) != 0
        {
            step_fail(err, Stage::Seccomp, 0);
        }
    }
    libc::execve(
        step.path.as_ptr(),
        step.argv_ptrs.as_ptr(),
        plan.env_ptrs.as_ptr(),
    );
    step_fail(err, Stage::Exec, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_has_a_description() {
        assert_eq!(
            describe_stage(Stage::Setgroups as i64),
            "dropping supplementary groups"
        );
        assert_eq!(
            describe_stage(Stage::Wait as i64),
            "waiting for the program"
        );
        assert_eq!(describe_stage(0), "unknown stage");
        assert_eq!(describe_stage(99), "unknown stage");
    }

    #[test]
    fn argv_arrays_are_null_terminated() {
        let strings = [c"a".to_owned(), c"b".to_owned()];
        let pointers = null_terminated(&strings);
        assert_eq!(pointers.len(), 3);
        assert!(pointers[2].is_null());
    }
}
