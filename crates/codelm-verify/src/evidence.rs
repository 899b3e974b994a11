//! Running every candidate against every case in the sandbox.
//!
//! One program per candidate: the language's harness loads the candidate,
//! then runs the cases one by one, each under its own timeout, and writes a
//! record per case. A candidate that hangs, floods its output, exits or kills
//! itself mid-way loses only the cases it did not reach, which count as
//! failed; nothing it does reaches the other candidates or the caller.
//!
//! A candidate can read the harness it runs in, so it could forge records
//! in its own favour: evidence decides which candidate is *chosen*, never
//! whether one is *correct*, which the caller's own tests judge.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use codelm_sandbox::{Job, Limits, Sandbox, Status};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cases::{Case, Check};
use crate::lang::Lang;

/// Limits for evidence runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOptions {
    /// Time to load (define) a candidate.
    pub load_timeout: Duration,
    /// Time for each case.
    pub test_timeout: Duration,
    /// Memory per program.
    pub memory_bytes: u64,
}

impl Default for ExecOptions {
    /// The evaluator's floor (3 s) to load, 1 s per case, 1 GiB.
    fn default() -> Self {
        ExecOptions {
            load_timeout: Duration::from_secs(3),
            test_timeout: Duration::from_secs(1),
            memory_bytes: 1 << 30,
        }
    }
}

/// How loading a candidate went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "load", content = "error")]
pub enum Load {
    /// It defined itself without error.
    Ok,
    /// It raised while loading (a syntax error, say).
    Error(String),
    /// Loading took longer than the load timeout.
    Timeout,
    /// The program ended without reporting (killed, out of memory, ...).
    Lost(String),
}

/// One case's result for one candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    /// Verdict of a test; `None` for an input-only case.
    pub passed: Option<bool>,
    /// A digest of the value (or `error:<Type>`, or `not-run`): equal
    /// digests mean equal behaviour on this input.
    pub output: String,
    /// The value as the language prints it, cut short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    /// The error, when it raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CaseResult {
    fn not_run(case: &Case) -> CaseResult {
        CaseResult {
            passed: case.check.is_test().then_some(false),
            output: "not-run".to_string(),
            shown: None,
            error: Some("not run".to_string()),
        }
    }
}

/// What running one candidate showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Whether it loaded.
    #[serde(flatten)]
    pub load: Load,
    /// One result per case, in case order.
    pub results: Vec<CaseResult>,
}

impl Run {
    /// Whether the candidate loaded.
    pub fn loaded(&self) -> bool {
        self.load == Load::Ok
    }

    /// Whether it passed case `idx` (false for input-only cases).
    pub fn passed(&self, idx: usize) -> bool {
        self.results
            .get(idx)
            .is_some_and(|result| result.passed == Some(true))
    }
}

/// One program to run: a candidate and the cases to run it on.
pub struct Trial<'a> {
    /// The language.
    pub lang: Lang,
    /// The candidate's code.
    pub code: &'a str,
    /// The cases.
    pub cases: &'a [Case],
}

/// Runs trials in the sandbox, in parallel; one [`Run`] per trial, in order.
pub fn run_trials(sandbox: &Sandbox, trials: &[Trial<'_>], options: &ExecOptions) -> Vec<Run> {
    let random = RandomState::new();
    let marker = format!(
        "codelm-case-{:016x}{:016x}:",
        random.hash_one(1u8),
        random.hash_one(2u8)
    );
    let jobs: Vec<Option<Job>> = trials
        .iter()
        .map(|trial| job(trial, &marker, options))
        .collect();
    let is_runnable: Vec<bool> = jobs.iter().map(Option::is_some).collect();
    let runnable: Vec<Job> = jobs.into_iter().flatten().collect();
    let mut outcomes = sandbox.run_many(&runnable).into_iter();
    trials
        .iter()
        .zip(is_runnable)
        .map(|(trial, is_runnable)| {
            if !is_runnable {
                return lost(trial.cases, format!("no runner for {}", trial.lang.name()));
            }
            match outcomes.next() {
                Some(outcome) => {
                    let stdout = outcome.stdout.to_string_lossy();
                    parse_records(&stdout, &marker, trial.cases, &outcome.status)
                }
                None => lost(trial.cases, "the sandbox returned no outcome".to_string()),
            }
        })
        .collect()
}

/// The harness job for one trial; `None` when the language has no runner.
fn job(trial: &Trial<'_>, marker: &str, options: &ExecOptions) -> Option<Job> {
    let runner = trial.lang.runner()?;
    let tests: Vec<Value> = trial
        .cases
        .iter()
        .map(|case| test_json(&case.check))
        .collect();
    let payload = json!({
        "code": trial.code,
        "tests": tests,
        "marker": marker,
        "load_timeout": options.load_timeout.as_secs_f64(),
        "test_timeout": options.test_timeout.as_secs_f64(),
    });
    let limits = Limits {
        timeout: options.load_timeout
            + options.test_timeout * trial.cases.len() as u32
            + Duration::from_secs(2),
        memory_bytes: options.memory_bytes,
        output_bytes: 256 << 10,
        ..Limits::default()
    };
    let source = trial.lang.harness(&payload.to_string());
    Some(Job::from_source(runner, source).with_limits(limits))
}

fn lost(cases: &[Case], why: String) -> Run {
    Run {
        load: Load::Lost(why),
        results: cases.iter().map(CaseResult::not_run).collect(),
    }
}

fn test_json(check: &Check) -> Value {
    match check {
        Check::Equals { call, expected } => {
            json!({"kind": "equals", "expr": call, "expected": expected})
        }
        Check::Holds { condition } => json!({"kind": "holds", "expr": condition}),
        Check::Runs { call } => json!({"kind": "runs", "expr": call}),
    }
}

fn parse_records(stdout: &str, marker: &str, cases: &[Case], status: &Status) -> Run {
    let mut load = None;
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    for line in stdout.lines() {
        let Some(record) = line.split_once(marker).map(|(_, rest)| rest) else {
            continue;
        };
        let Ok(record) = serde_json::from_str::<Value>(record) else {
            continue;
        };
        if let Some(state) = record["load"].as_str() {
            let error = record["error"].as_str().unwrap_or_default().to_string();
            load = Some(match state {
                "ok" => Load::Ok,
                "timeout" => Load::Timeout,
                _ => Load::Error(error),
            });
        } else if let Some(idx) = record["i"].as_u64().map(|i| i as usize) {
            if let Some(slot) = results.get_mut(idx) {
                let text = |key: &str| record[key].as_str().map(str::to_string);
                *slot = Some(CaseResult {
                    passed: record["pass"].as_bool(),
                    output: text("out").unwrap_or_else(|| "error:unknown".to_string()),
                    shown: text("shown"),
                    error: text("error"),
                });
            }
        }
    }
    let load = load.unwrap_or_else(|| Load::Lost(status_text(status)));
    let results = results
        .into_iter()
        .zip(cases)
        .map(|(result, case)| result.unwrap_or_else(|| CaseResult::not_run(case)))
        .collect();
    Run { load, results }
}

fn status_text(status: &Status) -> String {
    match status {
        Status::SandboxError { message } => format!("sandbox error: {message}"),
        other => format!("ended without a report ({})", other.name()),
    }
}
