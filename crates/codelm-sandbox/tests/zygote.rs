//! The warm Python path must behave like a cold `python3 main.py`.

use std::sync::OnceLock;

use codelm_sandbox::{Job, Language, Outcome, Sandbox, SandboxConfig};

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
    check(
        "import sys\nprint('partial', end='')\nsys.stdout.flush()\n1/0",
        "",
        &[],
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
