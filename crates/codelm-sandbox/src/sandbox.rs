//! The calling side of a run: prepares a [`Plan`], clones the supervisor,
//! lets it go and hands its pipes to [`pump`](crate::pump), which feeds
//! stdin, collects output, enforces the wall-clock limit and turns what
//! happened into an [`Outcome`]. Python jobs go to the zygote first
//! (`zygote.rs`), which uses the same plan, supervisor and pump.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use crate::cgroup::CgroupRoot;
use crate::job::is_valid_file_name;
use crate::pump::{above_stdio, pipe, pump, write_all, Pipes};
use crate::seccomp::{self, SockFilter};
use crate::spawn::{self, ChildFds, MountOp, Plan, Resource, Step};
use crate::zygote::Zygote;
use crate::{Error, Isolation, Job, Language, Limits, Outcome, Result, SandboxConfig, Status};

/// Working directory (and HOME) inside the sandbox.
pub const WORKDIR: &str = "/sandbox";

/// Directories of the host shown read-only (symbolic links are recreated).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];
/// Files under the read-only /etc replaced by an empty file.
const SECRET_FILES: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/machine-id",
];
/// Directories under /etc replaced by an empty read-only tmpfs.
const SECRET_DIRS: &[&str] = &["/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d"];
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];
const DEFAULT_PATH: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// Jobs run as distinct host uids from this range, so per-user limits and
/// signals never reach another job.
const JOB_ID_BASE: u32 = 200_000;
const N_JOB_IDS: u32 = 100_000;
static NEXT_JOB: AtomicU32 = AtomicU32::new(0);

/// Runs jobs under a fixed isolation level.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    cgroups: Option<CgroupRoot>,
    seccomp: Option<Vec<SockFilter>>,
    scrub: Vec<(usize, usize)>,
    /// The warm Python process, started on first use.
    zygote: Mutex<Option<Arc<Zygote>>>,
    /// Set when starting a zygote failed; jobs then start cold.
    is_zygote_broken: AtomicBool,
}

/// The probe job run by [`Sandbox::new`].
const PROBE: Language = Language {
    name: "probe",
    aliases: &[],
    extension: "",
    default_main: "",
    compile: None,
    run: &["true"],
    limits_address_space: true,
    memory_error_markers: &[],
};

impl Sandbox {
    /// Checks that the configured isolation works here by running a probe
    /// job.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] names the mechanism that failed; ask for a
    /// weaker [`Isolation`] explicitly to run anyway.
    pub fn new(config: SandboxConfig) -> Result<Self> {
        let level = config.isolation;
        let seccomp = match level {
            Isolation::None => None,
            _ => Some(seccomp::filter().ok_or_else(|| Error::Unavailable {
                level,
                mechanism: "seccomp",
                detail: "no filter for this CPU architecture".to_string(),
            })?),
        };
        // SAFETY: geteuid has no preconditions.
        if level == Isolation::NoUserNs && unsafe { libc::geteuid() } != 0 {
            return Err(Error::Unavailable {
                level,
                mechanism: "namespaces",
                detail: "namespaces without a user namespace need root".to_string(),
            });
        }
        let cgroups = if config.use_cgroups {
            CgroupRoot::open()
        } else {
            None
        };
        if config.binds.len() > spawn::MAX_BINDS {
            return Err(Error::TooManyBinds {
                max: spawn::MAX_BINDS,
            });
        }
        let sandbox = Sandbox {
            config,
            cgroups,
            seccomp,
            scrub: scrub_regions(),
            zygote: Mutex::new(None),
            is_zygote_broken: AtomicBool::new(false),
        };
        let probe = Job {
            language: PROBE,
            files: Vec::new(),
            main_file: String::new(),
            stdin: Vec::new(),
            args: Vec::new(),
            // The caller's limits may be too tight even for `true`.
            limits: Some(Limits::default()),
        };
        let outcome = std::thread::scope(|scope| {
            // Both take tens of milliseconds; the zygote boots meanwhile.
            scope.spawn(|| sandbox.zygote());
            sandbox.run(&probe)
        });
        match outcome.status {
            Status::Passed => Ok(sandbox),
            Status::SandboxError { message } => Err(Error::Unavailable {
                level,
                mechanism: mechanism_of(&message),
                detail: message,
            }),
            status => Err(Error::Unavailable {
                level,
                mechanism: "probe job",
                detail: format!(
                    "`true` ended with {status:?}: {}",
                    outcome.stderr.to_string_lossy()
                ),
            }),
        }
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Whether jobs get cgroup memory and pids limits.
    pub fn uses_cgroups(&self) -> bool {
        self.cgroups.is_some()
    }

    /// Whether the programs a language needs are on the sandbox PATH.
    pub fn is_available(&self, language: &Language) -> bool {
        let compile = language.compile.and_then(|c| c.first());
        let run = language.run.first();
        [compile, run]
            .into_iter()
            .flatten()
            .all(|program| program.contains('/') || self.resolve(program).is_some())
    }

    /// Runs one job. Failures of the sandbox itself become
    /// [`Status::SandboxError`].
    pub fn run(&self, job: &Job) -> Outcome {
        let limits = job.limits.as_ref().unwrap_or(&self.config.limits);
        self.try_run(job, limits).unwrap_or_else(|error| {
            Outcome::sandbox_error(error.to_string(), self.config.isolation)
        })
    }

    /// Runs jobs `config.n_jobs` at a time; outcomes are in job order.
    pub fn run_many(&self, jobs: &[Job]) -> Vec<Outcome> {
        let next = AtomicUsize::new(0);
        let (sender, receiver) = mpsc::channel();
        let work = |sender: mpsc::Sender<(usize, Outcome)>| loop {
            let idx = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(idx) else { break };
            if sender.send((idx, self.run(job))).is_err() {
                break;
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..self.config.n_jobs.min(jobs.len()) {
                let sender = sender.clone();
                // A worker that cannot start leaves its jobs to the others.
                let _ = std::thread::Builder::new().spawn_scoped(scope, || work(sender));
            }
            work(sender);
        });
        let mut outcomes: Vec<(usize, Outcome)> = receiver.into_iter().collect();
        outcomes.sort_by_key(|(idx, _)| *idx);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// The seccomp filter jobs run under, if any.
    pub(crate) fn seccomp(&self) -> Option<&[SockFilter]> {
        self.seccomp.as_deref()
    }

    /// The cgroup pool, when cgroups are in use.
    pub(crate) fn cgroups(&self) -> Option<&CgroupRoot> {
        self.cgroups.as_ref()
    }

    /// The zygote to run `job` on, started if needed; `None` runs it cold.
    fn zygote_for(&self, job: &Job) -> Option<Arc<Zygote>> {
        Zygote::can_run(job).then(|| self.zygote())?
    }

    /// The zygote, started if needed; `None` when Python jobs start cold.
    fn zygote(&self) -> Option<Arc<Zygote>> {
        let is_eligible = self.config.use_python_zygote
            && self.config.isolation == Isolation::Full
            && self.cgroups.is_some()
            && !self.is_zygote_broken.load(Ordering::Relaxed);
        if !is_eligible {
            return None;
        }
        let mut slot = self.zygote.lock().ok()?;
        if slot.is_none() {
            match Zygote::start(self) {
                Ok(zygote) => *slot = Some(Arc::new(zygote)),
                Err(_) => {
                    self.is_zygote_broken.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        }
        slot.clone()
    }

    /// Drops a zygote that failed a job, unless another took its place.
    fn retire_zygote(&self, zygote: &Arc<Zygote>) {
        if let Ok(mut slot) = self.zygote.lock() {
            if slot
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, zygote))
            {
                *slot = None;
            }
        }
    }

    /// PATH directories as `(inside, host)` pairs.
    fn path_dirs(&self) -> Vec<(PathBuf, PathBuf)> {
        let defaults = DEFAULT_PATH
            .iter()
            .map(|dir| (PathBuf::from(dir), PathBuf::from(dir)));
        let binds = self.config.binds.iter().filter(|b| b.is_on_path).map(|b| {
            let inside = match self.config.isolation {
                Isolation::None => &b.host,
                _ => &b.inside,
            };
            (inside.join("bin"), b.host.join("bin"))
        });
        defaults.chain(binds).collect()
    }

    /// Finds a program on the sandbox PATH; returns its path inside.
    fn resolve(&self, program: &str) -> Option<PathBuf> {
        self.path_dirs().into_iter().find_map(|(inside, host)| {
            let meta = fs::metadata(host.join(program)).ok()?;
            (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then(|| inside.join(program))
        })
    }

    fn steps(&self, job: &Job) -> Result<Vec<Step>> {
        let language = &job.language;
        let mut commands = Vec::new();
        if let Some(compile) = language.compile {
            commands.push((Language::expand(compile, &job.main_file), false));
        }
        let mut run = Language::expand(language.run, &job.main_file);
        run.extend(job.args.iter().cloned());
        commands.push((run, true));
        commands
            .into_iter()
            .map(|(argv, is_run)| {
                let program = argv.first().cloned().unwrap_or_default();
                let path = if program.contains('/') {
                    PathBuf::from(&program)
                } else {
                    self.resolve(&program)
                        .ok_or_else(|| Error::ProgramNotFound {
                            language: language.name.to_string(),
                            program: program.clone(),
                        })?
                };
                let argv = argv.into_iter().map(cstring).collect::<Result<_>>()?;
                Ok(Step::new(
                    cstring(path.into_os_string().into_encoded_bytes())?,
                    argv,
                    is_run,
                ))
            })
            .collect()
    }

    fn root_ops(&self, limits: &Limits, owner: (u32, u32)) -> Result<Vec<MountOp>> {
        let root = |path: &Path| cstring(format!("/tmp{}", path.display()));
        let size = limits.file_size_bytes;
        let tmpfs = |dst: &str, options: String| {
            Ok(MountOp::Tmpfs {
                dst: root(Path::new(dst))?,
                options: cstring(options)?,
            })
        };
        let mut ops = vec![tmpfs("", "size=1m,mode=755".to_string())?];
        for dir in SYSTEM_DIRS {
            let Ok(meta) = fs::symlink_metadata(dir) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(dir).map_err(|source| Error::Io {
                    path: PathBuf::from(dir),
                    source,
                })?;
                ops.push(MountOp::Symlink {
                    target: cstring(target.into_os_string().into_encoded_bytes())?,
                    link: root(Path::new(dir))?,
                });
            } else if meta.is_dir() {
                ops.push(MountOp::Mkdir(root(Path::new(dir))?));
                ops.push(bind(Path::new(dir), &root(Path::new(dir))?, false)?);
            }
        }
        for file in SECRET_FILES.iter().filter(|f| Path::new(f).is_file()) {
            ops.push(bind(Path::new("/dev/null"), &root(Path::new(file))?, true)?);
        }
        for dir in SECRET_DIRS.iter().filter(|d| Path::new(d).is_dir()) {
            ops.push(tmpfs(dir, "size=4k,mode=555".to_string())?);
            ops.push(MountOp::ReadOnly(root(Path::new(dir))?));
        }
        ops.push(MountOp::Mkdir(root(Path::new("/dev"))?));
        ops.push(tmpfs("/dev", "size=64k,mode=755".to_string())?);
        for device in DEVICES {
            let host = Path::new("/dev").join(device);
            ops.push(MountOp::Touch(root(&host)?));
            ops.push(bind(&host, &root(&host)?, true)?);
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            ops.push(MountOp::Symlink {
                target: cstring(target)?,
                link: root(&Path::new("/dev").join(link))?,
            });
        }
        ops.push(MountOp::Mkdir(root(Path::new("/dev/shm"))?));
        ops.push(MountOp::ReadOnly(root(Path::new("/dev"))?));
        ops.push(tmpfs("/dev/shm", format!("size={size},mode=1777"))?);
        ops.push(MountOp::Mkdir(root(Path::new("/proc"))?));
        ops.push(MountOp::Proc(root(Path::new("/proc"))?));
        ops.push(MountOp::Mkdir(root(Path::new("/tmp"))?));
        ops.push(tmpfs("/tmp", format!("size={size},mode=1777"))?);
        ops.push(MountOp::Mkdir(root(Path::new(WORKDIR))?));
        let (uid, gid) = owner;
        ops.push(tmpfs(
            WORKDIR,
            format!("size={size},mode=755,uid={uid},gid={gid}"),
        )?);
        for (idx, extra) in self.config.binds.iter().enumerate() {
            for ancestor in extra.inside.ancestors().collect::<Vec<_>>().iter().rev() {
                if ancestor.parent().is_some() {
                    ops.push(MountOp::Mkdir(root(ancestor)?));
                }
            }
            ops.push(MountOp::AttachTree {
                bind_idx: idx,
                dst: root(&extra.inside)?,
            });
        }
        Ok(ops)
    }

    fn try_run(&self, job: &Job, limits: &Limits) -> Result<Outcome> {
        if let Some((name, _)) = job.files.iter().find(|(n, _)| !is_valid_file_name(n)) {
            return Err(Error::InvalidFileName(name.clone()));
        }
        if let Some(zygote) = self.zygote_for(job) {
            match zygote.run(self, job, limits) {
                Ok(outcome) => return Ok(outcome),
                // The warm process died; the next job starts a new one.
                Err(_) => self.retire_zygote(&zygote),
            }
        }
        let prepared = self.prepare(job, limits, false)?;
        self.execute(&prepared.plan, job, limits, prepared.job_id)
    }

    /// Builds the plan of a job; `is_privileged` keeps capabilities and
    /// skips seccomp (only for the trusted zygote).
    pub(crate) fn prepare(
        &self,
        job: &Job,
        limits: &Limits,
        is_privileged: bool,
    ) -> Result<Prepared> {
        if let Some((name, _)) = job.files.iter().find(|(n, _)| !is_valid_file_name(n)) {
            return Err(Error::InvalidFileName(name.clone()));
        }
        let isolation = self.config.isolation;
        let job_id = JOB_ID_BASE + NEXT_JOB.fetch_add(1, Ordering::Relaxed) % N_JOB_IDS;
        // SAFETY: geteuid and getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let drop_to = match isolation {
            Isolation::Full => None,
            Isolation::NoUserNs => Some((job_id, job_id)),
            Isolation::None => (euid == 0).then_some((job_id, job_id)),
        };
        let owner = match isolation {
            Isolation::Full => (0, 0),
            _ => drop_to.unwrap_or((euid, egid)),
        };
        let clone_flags = match isolation {
            Isolation::Full => NAMESPACES | libc::CLONE_NEWUSER,
            Isolation::NoUserNs => NAMESPACES,
            Isolation::None => 0,
        };
        // Without namespaces the job gets a host temporary directory.
        let temp_dir = match isolation {
            Isolation::None => Some(host_workdir(job, owner)?),
            _ => None,
        };
        let workdir = temp_dir
            .as_ref()
            .map_or_else(|| PathBuf::from(WORKDIR), |dir| dir.path().to_path_buf());
        let files = match isolation {
            Isolation::None => Vec::new(),
            _ => job
                .files
                .iter()
                .map(|(name, data)| Ok((cstring(format!("{WORKDIR}/{name}"))?, data.clone())))
                .collect::<Result<_>>()?,
        };
        let root_ops = match isolation {
            Isolation::None => Vec::new(),
            _ => self.root_ops(limits, owner)?,
        };
        let tmp = match isolation {
            Isolation::None => workdir.display().to_string(),
            _ => "/tmp".to_string(),
        };
        let env = self
            .environment(&workdir.display().to_string(), &tmp)
            .into_iter()
            .map(|(key, value)| cstring(format!("{key}={value}")))
            .collect::<Result<_>>()?;
        let rlimits = match is_privileged {
            true => Vec::new(),
            false => rlimits(limits, &job.language, limits.n_processes),
        };
        let seccomp = match is_privileged {
            true => None,
            false => self.seccomp.clone(),
        };
        let mut plan = Plan::new(
            clone_flags,
            root_ops,
            cstring(workdir.into_os_string().into_encoded_bytes())?,
            files,
            owner,
            self.steps(job)?,
            env,
            rlimits,
            drop_to,
            seccomp,
            self.scrub.clone(),
        );
        plan.is_privileged = is_privileged;
        Ok(Prepared {
            plan,
            _temp_dir: temp_dir,
            job_id,
        })
    }

    /// Detached trees of the extra binds, one set per supervisor.
    pub(crate) fn bind_trees(&self) -> Result<Vec<OwnedFd>> {
        match self.config.isolation {
            Isolation::None => Ok(Vec::new()),
            _ => self
                .config
                .binds
                .iter()
                .map(|bind| detached_tree(&bind.host))
                .collect(),
        }
    }

    /// The clean environment of every job.
    pub(crate) fn environment(&self, home: &str, tmp: &str) -> Vec<(String, String)> {
        let path = self
            .path_dirs()
            .iter()
            .map(|(inside, _)| inside.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        [
            ("PATH", path.as_str()),
            ("HOME", home),
            ("TMPDIR", tmp),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("PYTHONHASHSEED", "0"),
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("USER", "sandbox"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
    }

    /// Clones a supervisor for `plan` and maps its user namespace; the
    /// caller then attaches cgroups and writes the go byte.
    pub(crate) fn spawn_supervisor(
        &self,
        plan: &Plan,
        fds: ChildFds,
        job_id: u32,
    ) -> Result<Supervisor> {
        // SAFETY: the child runs only `supervise`, which makes raw system
        // calls on memory prepared above and never returns.
        let pid = unsafe { spawn::raw_clone(plan.clone_flags) };
        if pid == 0 {
            // SAFETY: see above; `plan` stays valid in the child's copy.
            unsafe { spawn::supervise(plan, fds) }
        }
        if pid < 0 {
            return Err(Error::last_os("clone"));
        }
        let child = Supervisor {
            pid,
            is_reaped: false,
        };
        if plan.is_user_ns {
            for file in ["uid_map", "gid_map"] {
                let path = PathBuf::from(format!("/proc/{pid}/{file}"));
                fs::write(&path, format!("0 {job_id} 1\n"))
                    .map_err(|source| Error::Io { path, source })?;
            }
        }
        Ok(child)
    }

    fn execute(&self, plan: &Plan, job: &Job, limits: &Limits, job_id: u32) -> Result<Outcome> {
        let cgroup = match &self.cgroups {
            Some(root) => Some(root.acquire(limits)?),
            None => None,
        };
        let (go_read, go_write) = pipe()?;
        let (pipes, child_pipes) = Pipes::new()?;
        let trees = self.bind_trees()?;
        let binds = bind_fds(&trees);
        let fds = ChildFds {
            go: go_read.as_raw_fd(),
            status: child_pipes.status.as_raw_fd(),
            stdin: child_pipes.stdin.as_raw_fd(),
            stdout: child_pipes.stdout.as_raw_fd(),
            stderr: child_pipes.stderr.as_raw_fd(),
            binds,
        };
        let mut child = self.spawn_supervisor(plan, fds, job_id)?;
        drop((go_read, child_pipes));
        if let Some(cgroup) = &cgroup {
            cgroup.attach(child.pid)?;
        }
        let start = Instant::now();
        write_all(&go_write, b"g")?;
        drop(go_write);
        // The namespaces' teardown, which reaping waits for, is not the
        // program's time: the wall time ends with pumping.
        let pumped = pump(pipes, &job.stdin, limits, start, &|| child.kill());
        child.reap();
        let stats = cgroup.as_ref().map(|cgroup| cgroup.stats());
        let outcome = pumped.into_outcome(Some(plan), job, limits, stats, self.config.isolation);
        if let (Some(root), Some(cgroup)) = (&self.cgroups, cgroup) {
            root.release(cgroup);
        }
        Ok(outcome)
    }
}

/// Names the isolation mechanism a probe failure message points at.
fn mechanism_of(message: &str) -> &'static str {
    const MECHANISMS: &[(&str, &str)] = &[
        ("clone", "namespaces (clone)"),
        ("uid_map", "user namespace"),
        ("gid_map", "user namespace"),
        ("cgroup", "cgroups"),
        ("mounts", "mount namespace"),
        ("root", "mount namespace"),
        ("seccomp", "seccomp"),
        ("no_new_privs", "no_new_privs"),
        ("rlimit", "rlimits"),
        ("privileges", "setuid"),
    ];
    MECHANISMS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map_or("probe job", |&(_, mechanism)| mechanism)
}

const NAMESPACES: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

pub(crate) fn cstring(text: impl Into<Vec<u8>>) -> Result<CString> {
    CString::new(text).map_err(|e| Error::NulByte(String::from_utf8_lossy(&e.into_vec()).into()))
}

fn bind(src: &Path, dst: &CString, is_device: bool) -> Result<MountOp> {
    Ok(MountOp::Bind {
        src: cstring(src.as_os_str().as_encoded_bytes())?,
        dst: dst.clone(),
        is_device,
    })
}

/// Creates the host working directory used without namespaces.
fn host_workdir(job: &Job, owner: (u32, u32)) -> Result<tempfile::TempDir> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let dir = tempfile::Builder::new()
        .prefix("codelm-sandbox-")
        .tempdir()
        .map_err(io(&std::env::temp_dir()))?;
    for (name, data) in &job.files {
        let path = dir.path().join(name);
        fs::write(&path, data).map_err(io(&path))?;
        std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)).map_err(io(&path))?;
    }
    std::os::unix::fs::chown(dir.path(), Some(owner.0), Some(owner.1)).map_err(io(dir.path()))?;
    Ok(dir)
}

/// Finds this process's argv and environment strings (fields 48 to 51 of
/// `/proc/self/stat`) so the supervisor can zero its copies.
fn scrub_regions() -> Vec<(usize, usize)> {
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return Vec::new();
    };
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return Vec::new();
    };
    // Field 3 is the first after the command name.
    let fields: Vec<usize> = fields
        .split_whitespace()
        .skip(48 - 3)
        .take(4)
        .filter_map(|f| f.parse().ok())
        .collect();
    match fields[..] {
        [arg_start, arg_end, env_start, env_end]
            if arg_start <= arg_end && env_start <= env_end =>
        {
            vec![
                (arg_start, arg_end - arg_start),
                (env_start, env_end - env_start),
            ]
        }
        _ => Vec::new(),
    }
}

/// Descriptor numbers of bind trees for [`ChildFds::binds`].
pub(crate) fn bind_fds(trees: &[OwnedFd]) -> [libc::c_int; spawn::MAX_BINDS] {
    let mut binds = [-1; spawn::MAX_BINDS];
    for (slot, fd) in binds.iter_mut().zip(trees) {
        *slot = fd.as_raw_fd();
    }
    binds
}

/// Clones a host directory tree as a detached, read-only mount, which the
/// supervisor can attach although its own uid may not reach the directory.
fn detached_tree(path: &Path) -> Result<OwnedFd> {
    let c_path = cstring(path.as_os_str().as_encoded_bytes())?;
    let error = |operation| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("{operation}: {}", std::io::Error::last_os_error())),
    };
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: a NUL-terminated path and valid flags.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    if fd < 0 {
        return Err(error("open_tree"));
    }
    // SAFETY: open_tree returned a fresh descriptor we now own.
    let fd = above_stdio(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })?;
    if !spawn::make_read_only(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH, true) {
        return Err(error("mount_setattr"));
    }
    Ok(fd)
}

/// The cloned supervisor; killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Supervisor {
    pid: libc::pid_t,
    is_reaped: bool,
}

impl Supervisor {
    /// Kills the supervisor, which takes its PID namespace with it, and its
    /// process group (the only reach without namespaces).
    pub(crate) fn kill(&self) {
        if !self.is_reaped {
            // SAFETY: the pid is our unreaped child, so it cannot be reused.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
    }

    fn reap(&mut self) {
        self.kill();
        if !self.is_reaped {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
            }
            self.is_reaped = true;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Process and thread limits of a job; `n_processes` is the `RLIMIT_NPROC`
/// value (per user, so the zygote raises it and relies on the pids cgroup).
pub(crate) fn rlimits(
    limits: &Limits,
    language: &Language,
    n_processes: u64,
) -> Vec<(Resource, u64, u64)> {
    let cpu_seconds = limits.timeout.as_secs_f64().ceil() as u64 + 1;
    let mut rlimits = vec![
        (libc::RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
        (libc::RLIMIT_NPROC, n_processes, n_processes),
        (
            libc::RLIMIT_FSIZE,
            limits.file_size_bytes,
            limits.file_size_bytes,
        ),
        (
            libc::RLIMIT_NOFILE,
            limits.n_open_files,
            limits.n_open_files,
        ),
        (libc::RLIMIT_CORE, 0, 0),
    ];
    if language.limits_address_space {
        rlimits.push((libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes));
    }
    rlimits
}

/// A job's plan and what must live as long as it.
pub(crate) struct Prepared {
    pub plan: Plan,
    /// The host working directory without namespaces, removed on drop.
    _temp_dir: Option<tempfile::TempDir>,
    pub job_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sandbox>();
    }

    #[test]
    fn names_the_failed_mechanism() {
        let message = "installing the seccomp filter: Invalid argument (os error 22)";
        assert_eq!(mechanism_of(message), "seccomp");
        assert_eq!(mechanism_of("clone failed: EPERM"), "namespaces (clone)");
        assert_eq!(mechanism_of("something else"), "probe job");
    }

    #[test]
    fn finds_argv_and_environment() {
        let regions = scrub_regions();
        assert_eq!(regions.len(), 2);
        assert!(regions.iter().all(|&(start, len)| start > 0 && len > 0));
    }
}
