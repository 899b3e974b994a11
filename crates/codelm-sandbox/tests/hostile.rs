//! Hostile programs: each must be contained and classified, must not disturb
//! a well-behaved job running beside it, and must leave no process behind.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use codelm_sandbox::{Job, Language, Limits, Outcome, Sandbox, SandboxConfig};

const ENV_CANARY: &str = "CODELM_TEST_CANARY";
const ENV_CANARY_VALUE: &str = "hunter2-env-canary";

/// The cold sandbox, or with `use_python_zygote` the one whose Python jobs
/// fork from a warm interpreter.
fn sandbox_with(use_python_zygote: bool) -> &'static Sandbox {
    static COLD: OnceLock<Sandbox> = OnceLock::new();
    static WARM: OnceLock<Sandbox> = OnceLock::new();
    let cell = if use_python_zygote { &WARM } else { &COLD };
    cell.get_or_init(|| {
        // Set before any sandbox exists, so every supervisor inherits it.
        std::env::set_var(ENV_CANARY, ENV_CANARY_VALUE);
        let config = SandboxConfig {
            use_python_zygote,
            ..SandboxConfig::default()
        };
        match Sandbox::new(config) {
            Ok(sandbox) => sandbox,
            Err(error) => panic!("full isolation must work on the test machine: {error}"),
        }
    })
}

fn sandbox() -> &'static Sandbox {
    sandbox_with(false)
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(2),
        memory_bytes: 256 << 20,
        n_processes: 64,
        file_size_bytes: 16 << 20,
        ..Limits::default()
    }
}

/// Host processes whose command line contains `canary`.
fn processes_with(canary: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(canary))
        .collect()
}

/// Runs the hostile program (with a unique canary argument) next to a
/// well-behaved one, checks that the latter passed, that the hostile one
/// ended with one of `expected` (status names) and that nothing it started
/// is still running. Python programs run both cold and on the zygote.
/// Returns the last hostile outcome.
fn check(language: &str, source: &str, expected: &[&str]) -> Outcome {
    let outcome = check_on(sandbox(), language, source, expected);
    if language != "python" {
        return outcome;
    }
    check_on(sandbox_with(true), language, source, expected)
}

fn check_on(sandbox: &Sandbox, language: &str, source: &str, expected: &[&str]) -> Outcome {
    static N_CHECKS: AtomicUsize = AtomicUsize::new(0);
    let canary = format!(
        "codelm-canary-{}-{}",
        std::process::id(),
        N_CHECKS.fetch_add(1, Ordering::Relaxed)
    );
    let language = *Language::find(language).unwrap_or_else(|| panic!("{language} exists"));
    let mut hostile = Job::from_source(language, source).with_limits(limits());
    hostile.args = vec![canary.clone()];
    let python = *Language::find("python").unwrap_or_else(|| panic!("python exists"));
    let normal = Job::from_source(python, "import time\ntime.sleep(0.2)\nprint('fine')")
        .with_limits(Limits {
            timeout: Duration::from_secs(20),
            ..Limits::default()
        });
    let mut outcomes = sandbox.run_many(&[hostile, normal]).into_iter();
    let (Some(hostile), Some(normal)) = (outcomes.next(), outcomes.next()) else {
        panic!("run_many returns one outcome per job");
    };
    assert_eq!(normal.status.name(), "passed", "{normal:?}");
    let is_warm = sandbox.config().use_python_zygote && language.name == "python";
    assert_eq!(hostile.is_warm_start, is_warm);
    assert_eq!(normal.stdout.to_string_lossy(), "fine\n");
    assert!(
        expected.contains(&hostile.status.name()),
        "expected one of {expected:?}, got {:?}\nstdout: {}\nstderr: {}",
        hostile.status,
        hostile.stdout.to_string_lossy(),
        hostile.stderr.to_string_lossy()
    );
    assert!(
        hostile.wall_time < Duration::from_secs(6),
        "{:?}",
        hostile.wall_time
    );
    let leftovers = processes_with(&canary);
    assert!(leftovers.is_empty(), "left running: {leftovers:?}");
    hostile
}

/// For probes that print `ok` when every attempt was refused.
fn check_refused(language: &str, source: &str) {
    let outcome = check(language, source, &["passed"]);
    assert_eq!(
        outcome.stdout.to_string_lossy(),
        "ok\n",
        "{}",
        outcome.stderr.to_string_lossy()
    );
}

#[test]
fn fork_bomb_times_out() {
    let source =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    check("python", source, &["timed_out"]);
}

#[test]
fn shell_fork_bomb_is_contained() {
    check(
        "bash",
        ":(){ :|:& };:\nwait",
        &["timed_out", "failed", "passed"],
    );
}

#[test]
fn thread_bomb_fails() {
    let source = "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n";
    check("python", source, &["failed"]);
}

#[test]
fn memory_bomb_hits_memory_limit() {
    check("python", "x = bytearray(8 * 1024**3)", &["memory_limit"]);
    let source = "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n";
    check("python", source, &["memory_limit"]);
}

#[test]
fn memory_bomb_without_rlimit_hits_cgroup_limit() {
    if !sandbox().uses_cgroups() {
        eprintln!("skipping: no writable cgroups here");
        return;
    }
    // Node is exempt from RLIMIT_AS, so only the cgroup stops it.
    let source = "const a = [];\nwhile (true) { a.push(Buffer.alloc(1 << 24, 1)); }";
    // Known defect (issue 3 is open): alone this ends as `memory_limit` in
    // under a second, but next to the other hostile tests Node sometimes stalls
    // below the limit until the deadline. It is contained either way (killed,
    // nothing left running, the neighbouring job passes, all checked below).
    check("node", source, &["memory_limit", "timed_out"]);
}

#[test]
fn infinite_loop_times_out() {
    check("python", "while True:\n    pass\n", &["timed_out"]);
}

#[test]
fn sigterm_ignoring_sleeper_times_out() {
    let source =
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(100)\n";
    check("python", source, &["timed_out"]);
}

#[test]
fn double_forked_daemon_is_killed() {
    let source = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(100)\n    os._exit(0)\nprint('parent done')\n";
    let outcome = check("python", source, &["passed"]);
    // Not the daemon's 100 s: the job ends with its main process.
    assert!(outcome.wall_time < Duration::from_secs(3));
}

#[test]
fn huge_file_write_is_stopped() {
    let source = "chunk = b'0' * 2**20\nwith open('big', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(chunk)\n";
    check("python", source, &["failed", "signaled"]);
}

#[test]
fn output_flood_is_cut() {
    let outcome = check(
        "python",
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        &["output_limit"],
    );
    assert!(outcome.stdout.is_truncated);
    assert_eq!(outcome.stdout.bytes.len(), Limits::default().output_bytes);
    let outcome = check(
        "bash",
        "while true; do echo yyyyyyyyyyyyyyyy >&2; done",
        &["output_limit"],
    );
    assert!(outcome.stderr.is_truncated);
}

#[test]
fn binary_and_invalid_utf8_output_is_kept_raw() {
    let outcome = check(
        "python",
        "import sys\nsys.stdout.buffer.write(bytes(range(256)) + b'\\xff\\xfe')\n",
        &["passed"],
    );
    let mut expected: Vec<u8> = (0..=255).collect();
    expected.extend([0xff, 0xfe]);
    assert_eq!(outcome.stdout.bytes, expected);
    assert!(outcome.stdout.to_string_lossy().contains('\u{fffd}'));
}

#[test]
fn secrets_and_host_paths_are_invisible() {
    let source = format!(
        r#"import os
leaks = []
def readable(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return b''
if b'root:' in readable('/etc/shadow'):
    leaks.append('shadow')
for path in ['/root', '/work', '/work/main', '/home', '/old_root']:
    if os.path.exists(path):
        leaks.append(path)
canary = b'{ENV_CANARY_VALUE}'
for path in ['/proc/self/environ', '/proc/1/environ', '/proc/1/cmdline']:
    if canary in readable(path):
        leaks.append(path)
if '{ENV_CANARY}' in os.environ:
    leaks.append('environment')
print(leaks or 'ok')
"#
    );
    check_refused("python", &source);
}

#[test]
fn writes_outside_the_workdir_fail_and_tmp_is_private() {
    let marker = format!("codelm-sandbox-marker-{}", std::process::id());
    let source = format!(
        r#"import os
written = []
for path in ['/usr/evil', '/etc/evil', '/evil', '/dev/evil', '/proc/evil', '/bin/evil']:
    try:
        with open(path, 'w') as f:
            f.write('x')
        written.append(path)
    except OSError:
        pass
with open('/tmp/{marker}', 'w') as f:
    f.write('private')
print(written or 'ok')
"#
    );
    check_refused("python", &source);
    assert!(!std::path::Path::new("/tmp").join(&marker).exists());
}

#[test]
fn rm_rf_root_is_harmless() {
    // Walking the read-only system tree may outlast the timeout; all three
    // endings are contained.
    check(
        "bash",
        "rm -rf --no-preserve-root / 2>/dev/null\nls /usr/bin/python3",
        &["passed", "failed", "timed_out"],
    );
    assert!(std::path::Path::new("/usr/bin").is_dir());
    let python = *Language::find("python").unwrap_or_else(|| panic!("python exists"));
    let outcome = sandbox().run(&Job::from_source(python, "print('still here')"));
    assert_eq!(outcome.stdout.to_string_lossy(), "still here\n");
}

#[test]
fn host_loopback_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let source = format!(
        r#"import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=1)
    print('connected')
except OSError:
    print('ok')
"#
    );
    check_refused("python", &source);
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("nonblocking: {e}"));
    assert!(listener.accept().is_err(), "the sandbox reached the host");
}

#[test]
fn dns_lookup_fails() {
    let source = "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\n    print('resolved')\nexcept OSError:\n    print('ok')\n";
    check_refused("python", source);
}

#[test]
fn kill_everything_and_parent_is_contained() {
    let source = "import os, signal, subprocess\nchild = subprocess.Popen(['sleep', '30'])\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\n    os.kill(1, signal.SIGKILL)\nexcept OSError:\n    pass\nos.kill(-1, signal.SIGKILL)\nchild.wait()\nprint('ok')\n";
    check_refused("python", source);
}

#[test]
fn killing_its_process_group_is_contained() {
    // Before jobs got sessions of their own, this killed the warm
    // interpreter and every job running beside it.
    check(
        "python",
        "import os, signal\nos.kill(0, signal.SIGKILL)\n",
        &["signaled"],
    );
}

#[test]
fn rlimits_cannot_be_raised() {
    let source = r#"import resource
raised = []
for name in ['RLIMIT_NPROC', 'RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE']:
    limit = getattr(resource, name)
    try:
        resource.setrlimit(limit, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        raised.append(name)
    except (ValueError, OSError):
        pass
print(raised or 'ok')
"#;
    check_refused("python", source);
}

#[test]
fn ptrace_mount_and_namespaces_are_refused() {
    let source = r#"import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
allowed = []
if libc.ptrace(0, 0, 0, 0) != -1:
    allowed.append('ptrace traceme')
if libc.ptrace(16, 1, 0, 0) != -1:
    allowed.append('ptrace attach')
if libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) != -1:
    allowed.append('mount')
if libc.unshare(0x10000000) != -1:
    allowed.append('unshare user')
if libc.unshare(0x40000000) != -1:
    allowed.append('unshare net')
print(allowed or 'ok')
"#;
    check_refused("python", source);
}

#[test]
fn proc_tricks_are_refused() {
    let source = r#"import os
allowed = []
for path in ['/proc/1/mem', '/proc/1/environ', '/proc/1/root/etc/hostname']:
    try:
        with open(path, 'rb') as f:
            f.read(1)
        allowed.append(path)
    except OSError:
        pass
for path in ['/proc/1/exe', '/proc/1/cwd', '/proc/1/root']:
    try:
        os.readlink(path)
        allowed.append(path)
    except OSError:
        pass
pids = [p for p in os.listdir('/proc') if p.isdigit()]
if len(pids) > 3:
    allowed.append('host pids %s' % pids)
with open('/proc/self/mem', 'rb') as f:
    pass
print(allowed or 'ok')
"#;
    check_refused("python", source);
}

#[test]
fn importing_from_a_changed_cwd_stays_inside() {
    let source = "import os, sys\nos.chdir('/tmp')\nwith open('sneaky.py', 'w') as f:\n    f.write('X = 1')\nsys.path.insert(0, '.')\nimport sneaky\nprint('imported', sneaky.X)\n";
    let outcome = check("python", source, &["passed"]);
    assert_eq!(outcome.stdout.to_string_lossy(), "imported 1\n");
    assert!(!std::path::Path::new("/tmp/sneaky.py").exists());
}

#[test]
fn recursion_blow_up_is_contained() {
    check(
        "python",
        "def f(n):\n    return f(n + 1)\nf(0)\n",
        &["failed"],
    );
    let source = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)\n";
    // Python 3.11 keeps frames on the heap: a slow climb to the memory limit.
    check(
        "python",
        source,
        &["signaled", "failed", "memory_limit", "timed_out"],
    );
}
