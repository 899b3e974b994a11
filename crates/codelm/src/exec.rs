//! `codelm exec`: run one program in the sandbox and report its outcome.
//!
//! The program's own stdout and stderr are replayed to ours, followed by a
//! one-line summary on stderr; `--json` prints one JSON object instead.
//! The exit code is 0 when the program passed, 1 when it failed, timed out
//! or hit a limit, and 2 when the sandbox itself could not run it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use codelm_sandbox::{Job, Language, Limits, Outcome, Sandbox, SandboxConfig, Status};

/// Arguments of `codelm exec`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecArgs {
    /// Source file to run.
    pub file: PathBuf,
    /// Language (python, node, cpp, c, java, rust, go, bash); guessed from
    /// the file extension when omitted.
    #[arg(long)]
    pub lang: Option<String>,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Memory limit, e.g. `512M` or `2G`.
    #[arg(long, default_value = "512M")]
    pub memory: String,
    /// File fed to the program's standard input.
    #[arg(long)]
    pub stdin: Option<PathBuf>,
    /// Isolation level: `full`, `no-userns` or `none` (trusted code only).
    #[arg(long, value_enum, default_value = "full")]
    pub isolation: crate::cli::IsolationArg,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Arguments passed to the program (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs the program and prints its outcome; returns the exit code to use.
pub fn run(args: &ExecArgs) -> anyhow::Result<i32> {
    let language = match &args.lang {
        Some(name) => Language::find(name).with_context(|| format!("unknown language `{name}`"))?,
        None => args
            .file
            .extension()
            .and_then(|ext| Language::find(&ext.to_string_lossy()))
            .with_context(|| {
                format!(
                    "cannot tell the language of {}; pass --lang",
                    args.file.display()
                )
            })?,
    };
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let source =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let stdin = match &args.stdin {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    let limits = Limits {
        timeout: Duration::from_secs_f64(args.timeout),
        memory_bytes: parse_size(&args.memory)?,
        ..Limits::default()
    };
    let config = SandboxConfig {
        isolation: args.isolation.into(),
        limits: limits.clone(),
        n_jobs: 1,
        // One job: starting a warm Python would cost more than it saves.
        use_python_zygote: false,
        ..SandboxConfig::default()
    };
    let sandbox = match Sandbox::new(config) {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("codelm exec: {error}");
            return Ok(2);
        }
    };
    let mut job = Job::from_source(*language, source).with_stdin(stdin);
    job.args = args.args.clone();
    let outcome = sandbox.run(&job);
    if args.json {
        println!("{}", to_json(&outcome));
    } else {
        std::io::stdout().write_all(&outcome.stdout.bytes)?;
        std::io::stdout().flush()?;
        std::io::stderr().write_all(&outcome.stderr.bytes)?;
        eprintln!("codelm exec: {}", summary(&outcome));
    }
    Ok(exit_code(&outcome.status))
}

fn exit_code(status: &Status) -> i32 {
    match status {
        Status::Passed => 0,
        Status::SandboxError { .. } => 2,
        _ => 1,
    }
}

/// Parses sizes such as `512M`, `2G`, `64KiB` or `1000` (bytes; binary units).
fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: f64 = number
        .parse()
        .with_context(|| format!("invalid size `{text}`"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => bail!("invalid size unit in `{text}` (use K, M, G or T)"),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        bail!("size `{text}` out of range");
    }
    Ok(bytes as u64)
}

fn summary(outcome: &Outcome) -> String {
    let status = match &outcome.status {
        Status::Failed { exit_code } => format!("failed with exit code {exit_code}"),
        Status::Signaled { signal } => format!("killed by signal {signal}"),
        Status::SandboxError { message } => format!("sandbox error: {message}"),
        status => status.name().replace('_', " "),
    };
    let truncated = if outcome.stdout.is_truncated || outcome.stderr.is_truncated {
        ", output truncated"
    } else {
        ""
    };
    format!(
        "{status} in {:.3}s (cpu {:.3}s, peak {:.1} MiB, isolation {}{truncated})",
        outcome.wall_time.as_secs_f64(),
        outcome.cpu_time.as_secs_f64(),
        outcome.peak_memory_bytes as f64 / (1u64 << 20) as f64,
        outcome.isolation.name(),
    )
}

fn to_json(outcome: &Outcome) -> serde_json::Value {
    let (exit_code, signal, message) = match &outcome.status {
        Status::Failed { exit_code } => (Some(*exit_code), None, None),
        Status::Passed => (Some(0), None, None),
        Status::Signaled { signal } => (None, Some(*signal), None),
        Status::SandboxError { message } => (None, None, Some(message.clone())),
        _ => (None, None, None),
    };
    serde_json::json!({
        "status": outcome.status.name(),
        "exit_code": exit_code,
        "signal": signal,
        "message": message,
        "stdout": outcome.stdout.to_string_lossy(),
        "stdout_truncated": outcome.stdout.is_truncated,
        "stderr": outcome.stderr.to_string_lossy(),
        "stderr_truncated": outcome.stderr.is_truncated,
        "wall_time_s": outcome.wall_time.as_secs_f64(),
        "cpu_time_s": outcome.cpu_time.as_secs_f64(),
        "peak_memory_bytes": outcome.peak_memory_bytes,
        "isolation": outcome.isolation.name(),
        "uses_cgroup": outcome.uses_cgroup,
        "warm_start": outcome.is_warm_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("512M").ok(), Some(512 << 20));
        assert_eq!(parse_size("2G").ok(), Some(2 << 30));
        assert_eq!(parse_size("64KiB").ok(), Some(64 << 10));
        assert_eq!(parse_size("1000").ok(), Some(1000));
        assert_eq!(parse_size("1.5g").ok(), Some(3 << 29));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn exit_codes_follow_the_status() {
        assert_eq!(exit_code(&Status::Passed), 0);
        assert_eq!(exit_code(&Status::TimedOut), 1);
        assert_eq!(exit_code(&Status::Failed { exit_code: 3 }), 1);
        let error = Status::SandboxError {
            message: String::new(),
        };
        assert_eq!(exit_code(&error), 2);
    }
}
