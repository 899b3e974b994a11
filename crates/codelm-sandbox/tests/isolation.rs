//! Each isolation level: what it hides, and that outcomes record it.

use std::path::PathBuf;

use codelm_sandbox::{Bind, Isolation, Job, Language, Sandbox, SandboxConfig, Status};

fn python() -> Language {
    *Language::find("python").unwrap_or_else(|| panic!("python is in the table"))
}

/// Runs `source` at `isolation` and checks it passed with `expected_stdout`.
/// Levels other than `Full` are skipped when unavailable here.
fn check(isolation: Isolation, source: &str, expected_stdout: &str) {
    let config = SandboxConfig {
        isolation,
        ..SandboxConfig::default()
    };
    let sandbox = match Sandbox::new(config) {
        Ok(sandbox) => sandbox,
        Err(error) if isolation != Isolation::Full => {
            eprintln!("skipping {isolation:?}: {error}");
            return;
        }
        Err(error) => panic!("full isolation must work on the test machine: {error}"),
    };
    let outcome = sandbox.run(&Job::from_source(python(), source));
    assert_eq!(outcome.isolation, isolation);
    assert_eq!(
        outcome.status,
        Status::Passed,
        "{}",
        outcome.stderr.to_string_lossy()
    );
    assert_eq!(outcome.stdout.to_string_lossy(), expected_stdout);
}

const PROBE: &str = r#"import os, socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    inet = 'inet'
except OSError:
    inet = 'no-inet'
print(os.path.exists('/root'), os.path.exists('/work'), os.uname().nodename, inet)
"#;

#[test]
fn full_isolation_hides_host_and_network() {
    check(Isolation::Full, PROBE, "False False sandbox no-inet\n");
}

#[test]
fn no_user_ns_runs_as_unprivileged_host_uid() {
    let source = "import os\nprint(os.getuid() >= 200000, os.path.exists('/root'))";
    check(Isolation::NoUserNs, source, "True False\n");
}

#[test]
fn none_uses_a_private_temporary_directory_that_is_removed() {
    let source = "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))";
    let sandbox = Sandbox::new(SandboxConfig {
        isolation: Isolation::None,
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|error| panic!("no isolation always works: {error}"));
    let outcome = sandbox.run(&Job::from_source(python(), source));
    assert_eq!(outcome.status, Status::Passed);
    let stdout = outcome.stdout.to_string_lossy().into_owned();
    let mut lines = stdout.lines();
    let workdir = PathBuf::from(lines.next().unwrap_or_default());
    assert!(workdir.starts_with(std::env::temp_dir()), "{workdir:?}");
    assert_eq!(lines.next(), Some("['main.py']"));
    assert!(!workdir.exists());
}

#[test]
fn toolchain_outside_usr_is_bound_read_only() {
    let Ok(output) = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
    else {
        eprintln!("skipping: no rustc on the host");
        return;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let config = SandboxConfig {
        binds: vec![Bind {
            host: sysroot,
            inside: PathBuf::from("/opt/rust"),
            is_on_path: true,
        }],
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config).unwrap_or_else(|error| panic!("{error}"));
    let rust = *Language::find("rust").unwrap_or_else(|| panic!("rust is in the table"));
    assert!(sandbox.is_available(&rust));
    let job = Job::from_source(rust, "fn main() { println!(\"{}\", 6 * 7); }");
    let outcome = sandbox.run(&job);
    assert_eq!(
        outcome.status,
        Status::Passed,
        "{}",
        outcome.stderr.to_string_lossy()
    );
    assert_eq!(outcome.stdout.to_string_lossy(), "42\n");
}

#[test]
fn missing_bind_source_is_refused_up_front() {
    let config = SandboxConfig {
        binds: vec![Bind {
            host: PathBuf::from("/nonexistent/codelm/toolchain"),
            inside: PathBuf::from("/opt/tool"),
            is_on_path: false,
        }],
        ..SandboxConfig::default()
    };
    let error = Sandbox::new(config).err().map(|e| e.to_string());
    assert!(error.is_some_and(|e| e.contains("/nonexistent/codelm/toolchain")));
}
