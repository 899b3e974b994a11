//! Per-job cgroup v1 directories for memory, pids and CPU accounting.
//!
//! Job cgroups nest under the caller's own cgroup (read from
//! `/proc/self/cgroup`), so jobs stay inside any limit the caller is under.
//! Creating and removing a memory cgroup costs about as much as starting
//! Python, so finished jobs' cgroups go back to a pool and are reused, with
//! their limits rewritten and counters reset. Cgroup v2 is not handled yet;
//! without writable v1 controllers the sandbox relies on rlimits alone and
//! says so in each outcome.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::{Error, Limits, Result};

const MOUNT: &str = "/sys/fs/cgroup";
const BASE_NAME: &str = "codelm-sandbox";

/// Numbers job directories uniquely across all sandboxes of this process.
static N_CREATED: AtomicU64 = AtomicU64::new(0);

/// The directory `codelm-sandbox` in each controller hierarchy, shared by
/// all sandboxes; job directories are named `job-<pid>-<counter>`.
#[derive(Debug)]
pub(crate) struct CgroupRoot {
    memory: PathBuf,
    pids: PathBuf,
    cpuacct: Option<PathBuf>,
    pool: Mutex<Vec<JobCgroup>>,
}

/// Usage read back from a job's cgroups.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CgroupStats {
    pub peak_bytes: u64,
    pub n_oom_kills: u64,
    /// Times the job's memory usage reached its limit (`memory.failcnt`).
    pub n_limit_hits: u64,
    pub cpu_ns: Option<u64>,
}

/// One job's cgroup directories, removed on drop.
#[derive(Debug)]
pub(crate) struct JobCgroup {
    memory: PathBuf,
    pids: PathBuf,
    cpuacct: Option<PathBuf>,
    /// Memory charged before the job started (cache left by earlier jobs).
    usage_baseline: u64,
    /// OOM kills counted before the job started.
    oom_baseline: u64,
    /// `memory.failcnt` before the job started.
    failcnt_baseline: u64,
    /// The memory and process limits last written, skipped when a reused
    /// cgroup gets the same ones.
    written_limits: Option<(u64, u64)>,
}

/// Finds this process's directory in the v1 hierarchy of `controller`.
fn own_dir(controller: &str, proc_cgroup: &str) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let mount = Path::new(MOUNT).join(controllers);
        let is_match = controllers.split(',').any(|c| c == controller) && mount.is_dir();
        is_match.then(|| mount.join(path.trim_start_matches('/')))
    })
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Removes job directories left by processes that no longer exist.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("job-"))
            .and_then(|n| n.split('-').next());
        if let Some(pid) = pid {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

impl CgroupRoot {
    /// Creates the sandbox's directories, or returns `None` when the memory
    /// and pids controllers are not writable here.
    pub(crate) fn open() -> Option<Self> {
        let proc_cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
        let make = |controller: &str| {
            let dir = own_dir(controller, &proc_cgroup)?.join(BASE_NAME);
            fs::create_dir_all(&dir).ok()?;
            remove_stale(&dir);
            Some(dir)
        };
        let memory = make("memory")?;
        let pids = make("pids")?;
        Some(CgroupRoot {
            memory,
            pids,
            cpuacct: make("cpuacct"),
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Takes a pooled cgroup that no process holds any more, or creates
    /// one, and configures it for a job.
    pub(crate) fn acquire(&self, limits: &Limits) -> Result<JobCgroup> {
        let pooled = self.pool.lock().map_or(None, |mut pool| {
            let idx = pool.iter().rposition(JobCgroup::is_empty)?;
            Some(pool.swap_remove(idx))
        });
        if let Some(mut cgroup) = pooled {
            if cgroup.configure(limits).is_ok() {
                return Ok(cgroup);
            }
        }
        let mut cgroup = self.create()?;
        cgroup.configure(limits)?;
        Ok(cgroup)
    }

    /// Returns a job's cgroup to the pool. Its last process may still be
    /// exiting; [`CgroupRoot::acquire`] skips it until it is gone.
    pub(crate) fn release(&self, cgroup: JobCgroup) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(cgroup);
        }
    }

    fn create(&self) -> Result<JobCgroup> {
        let name = format!(
            "job-{}-{}",
            std::process::id(),
            N_CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let cgroup = JobCgroup {
            memory: self.memory.join(&name),
            pids: self.pids.join(&name),
            cpuacct: self.cpuacct.as_ref().map(|dir| dir.join(&name)),
            usage_baseline: 0,
            oom_baseline: 0,
            failcnt_baseline: 0,
            written_limits: None,
        };
        let created = [
            Some(&cgroup.memory),
            Some(&cgroup.pids),
            cgroup.cpuacct.as_ref(),
        ];
        for dir in created.into_iter().flatten() {
            fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(cgroup)
    }
}

impl Drop for CgroupRoot {
    /// Removes the pooled cgroups. The shared directories stay: another
    /// sandbox may be about to create a job directory in them.
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.clear();
        }
    }
}

impl JobCgroup {
    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        [Some(&self.memory), Some(&self.pids), self.cpuacct.as_ref()]
            .into_iter()
            .flatten()
    }

    /// Writes the job's limits and resets the usage counters.
    pub(crate) fn configure(&mut self, limits: &Limits) -> Result<()> {
        let wanted = (limits.memory_bytes, limits.n_processes);
        if self.written_limits != Some(wanted) {
            self.written_limits = None;
            self.write_limits(limits)?;
            self.written_limits = Some(wanted);
        }
        write(&self.memory.join("memory.max_usage_in_bytes"), "0")?;
        if let Some(cpuacct) = &self.cpuacct {
            write(&cpuacct.join("cpuacct.usage"), "0")?;
        }
        self.usage_baseline = read_u64(&self.memory.join("memory.usage_in_bytes")).unwrap_or(0);
        self.oom_baseline = self.n_oom_kills();
        self.failcnt_baseline = read_u64(&self.memory.join("memory.failcnt")).unwrap_or(0);
        Ok(())
    }

    fn write_limits(&self, limits: &Limits) -> Result<()> {
        let memory = limits.memory_bytes.to_string();
        let limit = self.memory.join("memory.limit_in_bytes");
        let memsw = self.memory.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            // memsw must stay at least the memory limit: order the writes
            // by whether the limit grows or shrinks.
            if write(&limit, &memory).is_err() {
                write(&memsw, &memory)?;
                write(&limit, &memory)?;
            }
            write(&memsw, &memory)?;
        } else {
            write(&limit, &memory)?;
        }
        write(&self.pids.join("pids.max"), &limits.n_processes.to_string())
    }

    fn n_oom_kills(&self) -> u64 {
        let oom_control =
            fs::read_to_string(self.memory.join("memory.oom_control")).unwrap_or_default();
        oom_control
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether no process is in the job's cgroups.
    fn is_empty(&self) -> bool {
        fs::read(self.pids.join("cgroup.procs")).is_ok_and(|procs| procs.is_empty())
    }

    /// Moves a process (and its future children) into the job's cgroups.
    pub(crate) fn attach(&self, pid: libc::pid_t) -> Result<()> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Reads the job's peak memory, OOM kills and CPU time.
    pub(crate) fn stats(&self) -> CgroupStats {
        let peak = read_u64(&self.memory.join("memory.max_usage_in_bytes")).unwrap_or(0);
        CgroupStats {
            peak_bytes: peak.saturating_sub(self.usage_baseline),
            n_oom_kills: self.n_oom_kills().saturating_sub(self.oom_baseline),
            n_limit_hits: read_u64(&self.memory.join("memory.failcnt"))
                .unwrap_or(0)
                .saturating_sub(self.failcnt_baseline),
            cpu_ns: self
                .cpuacct
                .as_ref()
                .and_then(|dir| read_u64(&dir.join("cpuacct.usage"))),
        }
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        for dir in self.dirs().filter(|dir| dir.exists()) {
            // The last processes of a namespace may still be exiting.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_self_cgroup() {
        let text = "4:memory:/a/b\n8:pids:/\n0::/\n";
        let dir = own_dir("memory", text);
        if Path::new("/sys/fs/cgroup/memory").is_dir() {
            assert_eq!(dir, Some(PathBuf::from("/sys/fs/cgroup/memory/a/b")));
        }
        assert_eq!(own_dir("blkio", text), None);
    }
}
