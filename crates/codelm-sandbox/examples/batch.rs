//! Runs a JSONL file of programs in the sandbox and prints JSONL verdicts.
//!
//! Input lines: `{"id": ..., "language": "python", "source": "...",
//! "timeout": 3.0, "stdin": "..."}` (`timeout` and `stdin` optional).
//! Output lines, in input order: `{"id": ..., "status": "passed",
//! "exit_code": 0, "wall_time_s": ..., "cpu_time_s": ..., "peak_memory_bytes": ...}`.
//! Throughput goes to stderr.
//!
//! ```text
//! cargo run --release -p codelm-sandbox --example batch -- --jobs 2 < programs.jsonl
//! ```

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use codelm_sandbox::{Isolation, Job, Language, Limits, Sandbox, SandboxConfig, Status};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = SandboxConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jobs" => config.n_jobs = args.next().ok_or("--jobs needs a value")?.parse()?,
            "--memory-mib" => {
                let mib: u64 = args.next().ok_or("--memory-mib needs a value")?.parse()?;
                config.limits.memory_bytes = mib << 20;
            }
            "--no-cgroups" => config.use_cgroups = false,
            "--zygote" => config.use_python_zygote = true,
            "--no-zygote" => config.use_python_zygote = false,
            "--isolation" => {
                config.isolation = match args.next().as_deref() {
                    Some("full") => Isolation::Full,
                    Some("no-userns") => Isolation::NoUserNs,
                    Some("none") => Isolation::None,
                    _ => return Err("--isolation takes full, no-userns or none".into()),
                }
            }
            _ => {
                let usage =
                    "--jobs N, --memory-mib N, --no-cgroups, --[no-]zygote, --isolation LEVEL";
                return Err(format!("unknown argument `{arg}` ({usage})").into());
            }
        }
    }
    let mut ids = Vec::new();
    let mut jobs = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line)?;
        let name = record["language"].as_str().unwrap_or("python");
        let language = *Language::find(name).ok_or(format!("unknown language {name}"))?;
        let source = record["source"].as_str().ok_or("missing source")?;
        let timeout = record["timeout"].as_f64().unwrap_or(10.0);
        let limits = Limits {
            timeout: Duration::from_secs_f64(timeout),
            ..config.limits.clone()
        };
        let stdin = record["stdin"].as_str().unwrap_or("");
        jobs.push(
            Job::from_source(language, source)
                .with_limits(limits)
                .with_stdin(stdin),
        );
        ids.push(record["id"].clone());
    }
    let sandbox = Sandbox::new(config)?;
    let start = Instant::now();
    let outcomes = sandbox.run_many(&jobs);
    let elapsed = start.elapsed();
    let mut stdout = std::io::stdout().lock();
    for (id, outcome) in ids.into_iter().zip(&outcomes) {
        let exit_code = match outcome.status {
            Status::Passed => Some(0),
            Status::Failed { exit_code } => Some(exit_code),
            _ => None,
        };
        let verdict = json!({
            "id": id,
            "status": outcome.status.name(),
            "exit_code": exit_code,
            "wall_time_s": outcome.wall_time.as_secs_f64(),
            "cpu_time_s": outcome.cpu_time.as_secs_f64(),
            "peak_memory_bytes": outcome.peak_memory_bytes,
            "warm_start": outcome.is_warm_start,
        });
        writeln!(stdout, "{verdict}")?;
    }
    eprintln!(
        "{} jobs in {:.3}s: {:.1} executions/s with {} parallel jobs",
        outcomes.len(),
        elapsed.as_secs_f64(),
        outcomes.len() as f64 / elapsed.as_secs_f64(),
        sandbox.config().n_jobs
    );
    Ok(())
}
