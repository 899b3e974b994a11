//! Running candidate programs through `codelm-sandbox` and turning each
//! outcome into a [`Verdict`].
//!
//! Timeouts are scaled to be machine-independent: each task's reference
//! solution is run once and timed, and a candidate gets
//! `max(floor, factor × reference time)` (defaults 3 s and 10×). The
//! reference timings are cached in the run directory, so a resumed run uses
//! the same limits. The design decision a newcomer may question: a fixed
//! timeout would make slow machines fail correct but slow solutions, and
//! fast ones pass accidentally quadratic ones; the reference is the only
//! yardstick that moves with the machine.
//!
//! Every program ends by writing a marker, random per [`Executor`], to its
//! stdout; a program that exits with status 0 without it (a candidate that
//! calls `sys.exit(0)` or `os._exit(0)` before or during the tests) has not
//! passed: it is `failed`, as the official harnesses judge it.
//!
//! ```
//! use codelm_eval::execute::error_summary;
//!
//! let stderr = "Traceback (most recent call last):\n  File \"main.py\", line 9, in check\n    assert candidate(2) == 4\nAssertionError\n";
//! let (failing_test, error) = error_summary(stderr);
//! assert_eq!(failing_test.as_deref(), Some("assert candidate(2) == 4"));
//! assert_eq!(error.as_deref(), Some("AssertionError"));
//! ```

use std::hash::BuildHasher;
use std::time::Duration;

use codelm_sandbox::{Job, Language, Limits, Outcome, Sandbox, Status};

use crate::dataset::Task;

/// How limits are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecPolicy {
    /// The smallest timeout any program gets.
    pub floor: Duration,
    /// Multiple of the reference solution's wall time.
    pub factor: f64,
    /// Address-space / memory limit per program.
    pub memory_bytes: u64,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy {
            floor: Duration::from_secs(3),
            factor: 10.0,
            memory_bytes: 1 << 30,
        }
    }
}

impl ExecPolicy {
    /// The timeout for a task whose reference ran in `reference` (the floor
    /// when unknown).
    pub fn timeout(&self, reference: Option<Duration>) -> Duration {
        let scaled = reference.map_or(Duration::ZERO, |time| time.mul_f64(self.factor));
        scaled.max(self.floor)
    }

    fn limits(&self, timeout: Duration) -> Limits {
        Limits {
            timeout,
            memory_bytes: self.memory_bytes,
            ..Limits::default()
        }
    }
}

/// The judgement on one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `passed`, `failed`, `timed_out`, `memory_limit`, `output_limit`,
    /// `signaled` or `sandbox_error` (the sandbox's names).
    pub status: String,
    /// The test line that failed, when the traceback shows one.
    pub failing_test: Option<String>,
    /// The error: the traceback's last line, or the sandbox's message.
    pub error: Option<String>,
    /// Wall time of the program.
    pub wall_time: Duration,
}

impl Verdict {
    /// Whether the sample passed every test.
    pub fn is_passed(&self) -> bool {
        self.status == "passed"
    }

    fn from_outcome(outcome: &Outcome, marker: &str) -> Verdict {
        let is_finished = contains(&outcome.stdout.bytes, marker.as_bytes());
        if outcome.status == Status::Passed && !is_finished {
            return Verdict {
                status: "failed".to_string(),
                failing_test: None,
                error: Some("exited with status 0 before its tests finished".to_string()),
                wall_time: outcome.wall_time,
            };
        }
        let (failing_test, error) = match &outcome.status {
            Status::Passed => (None, None),
            Status::SandboxError { message } => (None, Some(message.clone())),
            Status::TimedOut => (
                None,
                Some(format!(
                    "timed out after {:.1} s",
                    outcome.wall_time.as_secs_f64()
                )),
            ),
            _ => error_summary(&outcome.stderr.to_string_lossy()),
        };
        Verdict {
            status: outcome.status.name().to_string(),
            failing_test,
            error,
            wall_time: outcome.wall_time,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The failing `assert` line and the last line of a Python traceback.
pub fn error_summary(stderr: &str) -> (Option<String>, Option<String>) {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let error = lines.last().map(|line| truncate(line, 300));
    let failing_test = lines
        .iter()
        .rev()
        .find(|line| line.starts_with("assert"))
        .map(|line| truncate(line, 300));
    (failing_test, error)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars).collect();
    out.push('…');
    out
}

/// Runs programs in the sandbox.
pub struct Executor {
    sandbox: Sandbox,
    python: Language,
    policy: ExecPolicy,
    /// Printed by a program's last line (see the module docs).
    marker: String,
}

impl Executor {
    /// Wraps a sandbox; `None` when it has no Python.
    pub fn new(sandbox: Sandbox, policy: ExecPolicy) -> Option<Executor> {
        let python = *Language::find("python")?;
        let random = std::collections::hash_map::RandomState::new();
        let marker = format!(
            "codelm-tests-finished-{:016x}{:016x}",
            random.hash_one(1u8),
            random.hash_one(2u8)
        );
        Some(Executor {
            sandbox,
            python,
            policy,
            marker,
        })
    }

    /// `program`, then a line that writes the marker; `__import__` because
    /// the program may have rebound `os` or `sys`.
    fn job(&self, program: &str, limits: Limits) -> Job {
        let source = format!(
            "{program}\n__import__(\"os\").write(1, b\"\\n{}\\n\")\n",
            self.marker
        );
        Job::from_source(self.python, source).with_limits(limits)
    }

    /// The sandbox the programs run in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The limits policy.
    pub fn policy(&self) -> &ExecPolicy {
        &self.policy
    }

    /// Times each task's reference program (`None` for tasks without one
    /// and for references that do not pass, which get the floor).
    pub fn time_references(&self, tasks: &[&Task]) -> Vec<Option<Duration>> {
        let generous = self.policy.limits(Duration::from_secs(60));
        let jobs: Vec<Job> = tasks
            .iter()
            .filter_map(|task| task.reference.as_ref().map(|reference| (task, reference)))
            .map(|(task, reference)| self.job(&task.program(reference), generous.clone()))
            .collect();
        let mut outcomes = self.sandbox.run_many(&jobs).into_iter();
        tasks
            .iter()
            .map(|task| {
                task.reference.as_ref()?;
                let outcome = outcomes.next()?;
                Verdict::from_outcome(&outcome, &self.marker)
                    .is_passed()
                    .then_some(outcome.wall_time)
            })
            .collect()
    }

    /// Runs `(program, timeout)` pairs in parallel; verdicts in input order.
    pub fn run(&self, programs: &[(String, Duration)]) -> Vec<Verdict> {
        let jobs: Vec<Job> = programs
            .iter()
            .map(|(program, timeout)| self.job(program, self.policy.limits(*timeout)))
            .collect();
        self.sandbox
            .run_many(&jobs)
            .iter()
            .map(|outcome| Verdict::from_outcome(outcome, &self.marker))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_scaled_with_a_floor() {
        let policy = ExecPolicy::default();
        assert_eq!(policy.timeout(None), Duration::from_secs(3));
        assert_eq!(
            policy.timeout(Some(Duration::from_millis(20))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.timeout(Some(Duration::from_millis(500))),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn summary_of_a_name_error() {
        let stderr = "Traceback (most recent call last):\n  File \"/sandbox/main.py\", line 3, in <module>\n    f()\nNameError: name 'f' is not defined\n";
        assert_eq!(
            error_summary(stderr),
            (None, Some("NameError: name 'f' is not defined".to_string()))
        );
        assert_eq!(error_summary(""), (None, None));
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}
