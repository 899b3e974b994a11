//! The warm Python path must behave like a cold `python3 main.py`.

use std::sync::OnceLock;
use std::time::Duration;

use codelm_sandbox::{Job, Language, Limits, Outcome, Sandbox, SandboxConfig, Status};

fn sandbox(use_python_zygote: bool) -> &'static Sandbox {
    static COLD: OnceLock<Sandbox> = OnceLock::new();
    static WARM: OnceLock<Sandbox> = OnceLock::new();
    let cell = if use_python_zygote { &WARM } else { &COLD };
    cell.get_or_init(|| {
        let config = SandboxConfig {
            use_python_zygote,
            ..SandboxConfig::default()
        };
        Sandbox::new(config).unwrap_or_else(|error| panic!("{error}"))
    })
}

fn run(use_python_zygote: bool, source: &str, stdin: &str, args: &[&str]) -> Outcome {
    let python = *Language::find("python").unwrap_or_else(|| panic!("python is in the table"));
    let mut job = Job::from_source(python, source).with_stdin(stdin);
    job.args = args.iter().map(|arg| arg.to_string()).collect();
    sandbox(use_python_zygote).run(&job)
}

/// Runs `source` cold and warm and checks that status, stdout and stderr
/// are identical.
fn check(source: &str, stdin: &str, args: &[&str]) -> Outcome {
    let cold = run(false, source, stdin, args);
    let warm = run(true, source, stdin, args);
    assert!(warm.is_warm_start && !cold.is_warm_start);
    assert_eq!(
        warm.status,
        cold.status,
        "{source}\n{}",
        warm.stderr.to_string_lossy()
    );
    assert_eq!(
        warm.stdout.to_string_lossy(),
        cold.stdout.to_string_lossy(),
        "{source}"
    );
    assert_eq!(
        warm.stderr.to_string_lossy(),
        cold.stderr.to_string_lossy(),
        "{source}"
    );
    warm
}

#[test]
fn program_context_matches() {
    let source = "import os, sys\nprint(__name__, __file__, sys.argv, sys.path[0], os.getcwd())\nprint(sorted(os.environ.items()))\nprint(hash('abc'), os.getpid(), os.getppid())";
    check(source, "", &["a", "b c"]);
}

#[test]
fn exits_and_exceptions_match() {
    check("import sys\nsys.exit(3)", "", &[]);
    check("import sys\nsys.exit('bye')", "", &[]);
    check("exit()", "", &[]);
    check("raise SystemExit(256 + 7)", "", &[]);
    check("def f():\n    raise ValueError('x')\nf()", "", &[]);
    check("def f(:\n    pass\n", "", &[]);
    check("x = 1 is 1\nprint(x)", "", &[]);
    check(
        "import warnings\nwarnings.warn('careful')\nprint('after')",
        "",
        &[],
    );
    check(
        "import sys\nprint('partial', end='')\nsys.stdout.flush()\n1/0",
        "",
        &[],
    );
}

#[test]
fn uncaught_exceptions_print_as_python3_prints_them() {
    check(
        "def f():\n    try:\n        1/0\n    except ZeroDivisionError as e:\n        raise ValueError('wrapped') from e\nf()",
        "",
        &[],
    );
    check(
        "import sys\nsys.excepthook = lambda *a: print('hooked', a[0].__name__)\nraise KeyError(1)",
        "",
        &[],
    );
    check(
        "import sys\ndef hook(*a):\n    raise RuntimeError('bad hook')\nsys.excepthook = hook\nraise KeyError(1)",
        "",
        &[],
    );
    // The callback's repr holds an address, so compare the rest.
    let outcome = run(
        true,
        "import atexit\natexit.register(lambda: 1/0)\nprint('main')",
        "",
        &[],
    );
    let stderr = outcome.stderr.to_string_lossy();
    assert_eq!(outcome.status, Status::Passed, "{stderr}");
    assert!(
        stderr.starts_with("Exception ignored in atexit callback")
            && stderr.ends_with("ZeroDivisionError: division by zero\n"),
        "{stderr}"
    );
}

#[test]
fn missing_main_file_matches() {
    let python = *Language::find("python").unwrap_or_else(|| panic!("python is in the table"));
    let mut job = Job::from_source(python, "print(1)");
    job.main_file = "absent.py".to_string();
    let cold = sandbox(false).run(&job);
    let warm = sandbox(true).run(&job);
    assert_eq!(warm.status, cold.status);
    assert_eq!(warm.stderr.bytes, cold.stderr.bytes);
}

#[test]
fn shutdown_behaviour_matches() {
    let source = "import atexit, threading, time\natexit.register(lambda: print('atexit'))\nthreading.Thread(target=lambda: (time.sleep(0.05), print('thread'))).start()\nprint('main')";
    check(source, "", &[]);
    check("print('unflushed', end='')", "", &[]);
    // SIGINT raises KeyboardInterrupt; uncaught, python3 then dies of SIGINT.
    let source = "import os, signal\nprint(signal.getsignal(signal.SIGINT))\nos.kill(os.getpid(), signal.SIGINT)";
    check(source, "", &[]);
}

#[test]
fn stdin_and_subprocesses_match() {
    check(
        "print(input().upper())\nprint(len(open(0).read()))",
        "abc\nrest\n",
        &[],
    );
    let source = "import subprocess, multiprocessing\nprint(subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout.strip())\ndef square(x):\n    return x * x\nif __name__ == '__main__':\n    with multiprocessing.Pool(2) as pool:\n        print(pool.map(square, range(5)))";
    check(source, "", &[]);
}

#[test]
fn each_warm_job_gets_fresh_state() {
    let first = run(true, "import random\nprint(random.random())", "", &[]);
    let second = run(true, "import random\nprint(random.random())", "", &[]);
    assert_ne!(first.stdout.bytes, second.stdout.bytes);
    check("import os\nprint(sorted(os.listdir('.')), sorted(os.listdir('/tmp')))\nopen('/tmp/x', 'w').write('1')", "", &[]);
    let outcome = check("import os\nprint(os.path.exists('/tmp/x'))", "", &[]);
    assert_eq!(outcome.stdout.to_string_lossy(), "False\n");
}

/// A warm sandbox with one job at a time, so consecutive jobs run on the
/// same worker.
fn serial_sandbox() -> Sandbox {
    let config = SandboxConfig {
        n_jobs: 1,
        ..SandboxConfig::default()
    };
    Sandbox::new(config).unwrap_or_else(|error| panic!("{error}"))
}

fn python(source: &str) -> Job {
    let python = *Language::find("python").unwrap_or_else(|| panic!("python is in the table"));
    Job::from_source(python, source)
}

/// What the next job on a worker sees: its files, processes, SysV IPC.
const LOOK_AROUND: &str = r#"import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print(sorted(os.listdir('/sandbox')), os.listdir('/tmp'), os.listdir('/dev/shm'))
print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), os.getpid())
print(libc.shmget(4242, 0, 0) == -1, open('/proc/sysvipc/shm').read().count(chr(10)))
"#;

#[test]
fn consecutive_jobs_on_a_worker_start_clean() {
    let sandbox = serial_sandbox();
    let litter = r#"import ctypes, os, subprocess
for path in ['/sandbox/left', '/tmp/left', '/dev/shm/left']:
    open(path, 'w').write('x')
os.makedirs('/tmp/a/b/c')
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(4242, 4096, 0o1600) >= 0
subprocess.Popen(['sleep', '30'], start_new_session=True)
print('littered')
"#;
    let first = sandbox.run(&python(litter));
    assert_eq!(first.stdout.to_string_lossy(), "littered\n", "{first:?}");
    let second = sandbox.run(&python(LOOK_AROUND));
    assert!(second.is_warm_start);
    assert_eq!(
        second.stdout.to_string_lossy(),
        "['main.py'] [] []\n[1, 2] 2\nTrue 1\n",
        "{}",
        second.stderr.to_string_lossy()
    );
}

#[test]
fn a_directory_a_job_changed_is_replaced() {
    let sandbox = serial_sandbox();
    let tamper = "import os\nos.setxattr('/sandbox', 'user.note', b'left')\nos.chmod('/tmp', 0o500)\nos.chmod('/sandbox', 0o500)\nprint('changed')\n";
    let first = sandbox.run(&python(tamper));
    assert_eq!(first.stdout.to_string_lossy(), "changed\n", "{first:?}");
    let look = "import os\nprint(oct(os.stat('/tmp').st_mode & 0o7777), oct(os.stat('/sandbox').st_mode & 0o7777), os.listxattr('/sandbox'))\nopen('/tmp/x', 'w').write('ok')\n";
    let second = sandbox.run(&python(look));
    assert!(second.is_warm_start);
    assert_eq!(
        second.stdout.to_string_lossy(),
        "0o1777 0o755 []\n",
        "{}",
        second.stderr.to_string_lossy()
    );
}

#[test]
fn a_tree_too_deep_to_delete_is_replaced() {
    let sandbox = serial_sandbox();
    let deep = "import os\nos.chdir('/tmp')\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')\n";
    let first = sandbox.run(&python(deep));
    assert_eq!(first.stdout.to_string_lossy(), "deep\n", "{first:?}");
    assert_eq!(first.status.name(), "passed", "{first:?}");
    let second = sandbox.run(&python(LOOK_AROUND));
    // Warm: the worker survived its cleanup (one that failed would leave
    // the next job to a cold start).
    assert!(second.is_warm_start);
    assert!(second
        .stdout
        .to_string_lossy()
        .starts_with("['main.py'] [] []\n"));
}

#[test]
fn a_worker_that_timed_out_is_replaced() {
    let sandbox = serial_sandbox();
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let first = sandbox.run(&python("while True:\n    pass\n").with_limits(limits));
    assert_eq!(first.status.name(), "timed_out");
    let second = sandbox.run(&python(LOOK_AROUND));
    assert_eq!(second.status.name(), "passed", "{second:?}");
    assert!(second.is_warm_start);
}

#[test]
fn files_larger_than_the_tmpfs_are_refused_and_the_worker_goes_on() {
    let sandbox = serial_sandbox();
    let limits = Limits {
        file_size_bytes: 64 << 10,
        ..Limits::default()
    };
    let mut job = python("print('ran')").with_limits(limits);
    job.files
        .push(("big.bin".to_string(), vec![b'x'; 256 << 10]));
    let refused = sandbox.run(&job);
    assert!(refused.is_warm_start);
    assert!(
        matches!(refused.status, Status::SandboxError { .. }),
        "{refused:?}"
    );
    let next = sandbox.run(&python(LOOK_AROUND));
    assert!(next.is_warm_start);
    assert_eq!(
        next.stdout.to_string_lossy(),
        "['main.py'] [] []\n[1, 2] 2\nTrue 1\n",
        "{}",
        next.stderr.to_string_lossy()
    );
}
