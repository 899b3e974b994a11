//! Public behaviour of `Sandbox::run` and `run_many`: statuses, captured
//! output, limits and the language table.

use std::sync::OnceLock;
use std::time::Duration;

use codelm_sandbox::{Job, Language, Limits, Sandbox, SandboxConfig, Status};

/// The default sandbox (Python jobs run warm, on the zygote).
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| match Sandbox::new(SandboxConfig::default()) {
        Ok(sandbox) => sandbox,
        Err(error) => panic!("full isolation must work on the test machine: {error}"),
    })
}

fn language(name: &str) -> Language {
    *Language::find(name).unwrap_or_else(|| panic!("{name} is in the table"))
}

fn limits(timeout_ms: u64) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        ..Limits::default()
    }
}

/// Runs `source` in `language` and checks the status and, when given, stdout.
/// Returns `None` when the language's toolchain is not installed.
fn check(
    language_name: &str,
    source: &str,
    expected: Status,
    expected_stdout: Option<&str>,
) -> Option<codelm_sandbox::Outcome> {
    let language = language(language_name);
    if !sandbox().is_available(&language) {
        eprintln!("skipping {language_name}: toolchain not installed");
        return None;
    }
    let job = Job::from_source(language, source).with_limits(limits(20_000));
    let outcome = sandbox().run(&job);
    assert_eq!(
        outcome.status,
        expected,
        "stderr: {}",
        outcome.stderr.to_string_lossy()
    );
    if let Some(stdout) = expected_stdout {
        assert_eq!(outcome.stdout.to_string_lossy(), stdout);
    }
    Some(outcome)
}

#[test]
fn python_passes_and_reports_resources() {
    let outcome = check("python", "print(6 * 7)", Status::Passed, Some("42\n"));
    let outcome = outcome.expect("python3 is installed");
    assert_eq!(outcome.isolation, codelm_sandbox::Isolation::Full);
    assert!(outcome.wall_time > Duration::ZERO);
    assert!(outcome.peak_memory_bytes > 0);
    assert!(!outcome.stdout.is_truncated);
}

#[test]
fn exit_code_and_stderr_are_kept() {
    let source = "import sys\nsys.stderr.write('bad\\n')\nsys.exit(3)";
    let outcome = check("python", source, Status::Failed { exit_code: 3 }, Some(""));
    assert_eq!(outcome.map(|o| o.stderr.bytes), Some(b"bad\n".to_vec()));
}

#[test]
fn exception_fails_with_traceback() {
    let outcome = check(
        "python",
        "assert 1 == 2",
        Status::Failed { exit_code: 1 },
        None,
    );
    let stderr = outcome.map(|o| o.stderr.to_string_lossy().into_owned());
    assert!(stderr.is_some_and(|s| s.contains("AssertionError")));
}

#[test]
fn stdin_is_fed() {
    let job = Job::from_source(language("python"), "print(input()[::-1])").with_stdin("abc\n");
    let outcome = sandbox().run(&job);
    assert_eq!(outcome.status, Status::Passed);
    assert_eq!(outcome.stdout.to_string_lossy(), "cba\n");
}

#[test]
fn large_stdin_and_stdout_stream_through() {
    let data = "x".repeat(300_000) + "\n";
    let job = Job::from_source(
        language("python"),
        "import sys\nsys.stdout.write(sys.stdin.read())",
    )
    .with_stdin(data.clone());
    let outcome = sandbox().run(&job);
    assert_eq!(outcome.status, Status::Passed);
    assert_eq!(outcome.stdout.bytes, data.as_bytes());
}

#[test]
fn environment_is_clean_and_fixed() {
    let source = "import os\nprint(os.getcwd(), os.environ['HOME'], os.environ['PYTHONHASHSEED'], os.environ['LANG'])";
    check(
        "python",
        source,
        Status::Passed,
        Some("/sandbox /sandbox 0 C.UTF-8\n"),
    );
}

#[test]
fn timeout_is_classified() {
    let job = Job::from_source(language("python"), "while True: pass").with_limits(limits(500));
    let outcome = sandbox().run(&job);
    assert_eq!(outcome.status, Status::TimedOut);
    assert!(outcome.wall_time < Duration::from_secs(3));
}

#[test]
fn extra_files_and_arguments_are_visible() {
    let mut job = Job::from_source(
        language("python"),
        "import sys\nimport helper\nprint(helper.X, sys.argv[1:])",
    );
    job.files
        .push(("helper.py".to_string(), b"X = 5\n".to_vec()));
    job.args = vec!["a".to_string(), "b c".to_string()];
    let outcome = sandbox().run(&job);
    assert_eq!(outcome.stdout.to_string_lossy(), "5 ['a', 'b c']\n");
}

#[test]
fn path_like_file_names_are_refused() {
    let mut job = Job::from_source(language("python"), "pass");
    job.files.push(("../escape.py".to_string(), Vec::new()));
    let outcome = sandbox().run(&job);
    assert!(matches!(outcome.status, Status::SandboxError { .. }));
}

#[test]
fn run_many_keeps_job_order() {
    let python = language("python");
    let jobs: Vec<Job> = (0..12)
        .map(|idx| Job::from_source(python, format!("print({idx})")))
        .collect();
    let outcomes = sandbox().run_many(&jobs);
    let printed: Vec<String> = outcomes
        .iter()
        .map(|o| o.stdout.to_string_lossy().trim().to_string())
        .collect();
    let expected: Vec<String> = (0..12).map(|idx| idx.to_string()).collect();
    assert_eq!(printed, expected);
}

#[test]
fn bash_runs() {
    check("bash", "echo $((6 * 7))", Status::Passed, Some("42\n"));
}

#[test]
fn node_runs() {
    check("node", "console.log(6 * 7)", Status::Passed, Some("42\n"));
}

#[test]
fn cpp_compiles_and_runs() {
    let source = "#include <cstdio>\nint main() { std::printf(\"%d\\n\", 6 * 7); }\n";
    check("cpp", source, Status::Passed, Some("42\n"));
}

#[test]
fn cpp_compile_error_fails() {
    let outcome = check(
        "cpp",
        "int main() { return x; }",
        Status::Failed { exit_code: 1 },
        Some(""),
    );
    let stderr = outcome.map(|o| o.stderr.to_string_lossy().into_owned());
    assert!(stderr.is_none_or(|s| s.contains("error")));
}

#[test]
fn c_compiles_and_runs() {
    let source = "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 6 * 7); return 0; }\n";
    check("c", source, Status::Passed, Some("42\n"));
}

#[test]
fn java_runs() {
    let source =
        "public class Main { public static void main(String[] a) { System.out.println(6 * 7); } }";
    check("java", source, Status::Passed, Some("42\n"));
}

#[test]
fn rust_runs_when_installed() {
    check(
        "rust",
        "fn main() { println!(\"{}\", 6 * 7); }",
        Status::Passed,
        Some("42\n"),
    );
}

#[test]
fn go_runs_when_installed() {
    let source = "package main\nimport \"fmt\"\nfunc main() { fmt.Println(6 * 7) }\n";
    check("go", source, Status::Passed, Some("42\n"));
}

#[test]
fn missing_toolchain_is_a_sandbox_error() {
    let mut cobol = language("python");
    cobol.name = "cobol";
    cobol.run = &["cobc-does-not-exist", "{main}"];
    let outcome = sandbox().run(&Job::from_source(cobol, ""));
    assert!(matches!(outcome.status, Status::SandboxError { .. }));
}
