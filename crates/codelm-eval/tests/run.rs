//! End-to-end runs through the real sandbox: samples files, a scripted
//! backend, resumption, and the summary table. One `check` helper scores a
//! samples file and compares the verdicts, rendered one per line.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use codelm_eval::backend::{Backend, GenParams, Generated};
use codelm_eval::execute::{ExecPolicy, Executor};
use codelm_eval::prompt::{EvalPrompt, Mode};
use codelm_eval::run::{self, RunOptions, SampleSource, Scores};
use codelm_eval::store::RunStore;
use codelm_eval::{Benchmark, Dataset, Result};
use codelm_sandbox::{Sandbox, SandboxConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn executor() -> Executor {
    let sandbox = Sandbox::new(SandboxConfig {
        n_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    Executor::new(sandbox, ExecPolicy::default()).unwrap()
}

fn options(n: usize) -> RunOptions {
    RunOptions {
        mode: Mode::Instruct,
        params: GenParams {
            n,
            max_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
        },
        show_progress: false,
    }
}

/// Verdicts as `task_id#idx status | failing test | error`, sorted.
fn verdict_lines(store: &RunStore) -> String {
    let mut lines: Vec<String> = store
        .verdicts()
        .iter()
        .map(|verdict| {
            format!(
                "{}#{} {} | {} | {}",
                verdict.task_id,
                verdict.sample_idx,
                verdict.status,
                verdict.failing_test.as_deref().unwrap_or("-"),
                verdict.error.as_deref().unwrap_or("-")
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Scores `samples` (JSON lines) against `fixture_file` and compares the
/// verdicts with `expected`; returns the scores.
fn check(benchmark: Benchmark, fixture_file: &str, samples: &str, expected: &str) -> Scores {
    let dataset = Dataset::load(benchmark, &fixture(fixture_file)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let samples_path = dir.path().join("samples.jsonl");
    std::fs::write(&samples_path, samples).unwrap();
    let records = run::read_samples_file(&samples_path, &dataset).unwrap();
    let run_dir = dir.path().join("run");
    let mut store = RunStore::open(&run_dir, &serde_json::json!({}), false).unwrap();
    let tasks: Vec<_> = dataset.tasks.iter().collect();
    let scores = run::evaluate(
        &dataset,
        &tasks,
        SampleSource::Records(records),
        &options(1),
        &executor(),
        &mut store,
    )
    .unwrap();
    assert_eq!(verdict_lines(&store), expected.trim());
    scores
}

fn canonical_samples(file: &str) -> String {
    std::fs::read_to_string(fixture(file))
        .unwrap()
        .lines()
        .map(|line| {
            let task: serde_json::Value = serde_json::from_str(line).unwrap();
            serde_json::json!({"task_id": task["task_id"], "completion": task["canonical_solution"]}).to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn humaneval_canonical_solutions_pass_and_a_wrong_one_fails() {
    let mut samples = canonical_samples("humaneval-5.jsonl");
    samples.push_str(r#"{"task_id": "HumanEval/53", "completion": "    return x - y\n"}"#);
    samples.push('\n');
    samples.push_str(
        r#"{"task_id": "HumanEval/23", "completion": "    while True:\n        pass\n"}"#,
    );
    samples.push('\n');
    let scores = check(
        Benchmark::HumanEval,
        "humaneval-5.jsonl",
        &samples,
        "
HumanEval/0#0 passed | - | -
HumanEval/2#0 passed | - | -
HumanEval/23#0 passed | - | -
HumanEval/23#1 timed_out | - | timed out after 3.0 s
HumanEval/4#0 passed | - | -
HumanEval/53#0 passed | - | -
HumanEval/53#1 failed | assert candidate(0, 1) == 1 | AssertionError",
    );
    assert_eq!(scores.n_tasks, 5);
    assert_eq!(scores.n_passed, 5);
    // Tasks 23 and 53 are 1 of 2; the others 1 of 1: (3 + 0.5 + 0.5) / 5.
    assert_eq!(scores.pass_at_k, vec![(1, 0.8)]);
}

#[test]
fn a_program_that_exits_before_its_tests_finish_fails() {
    let completions = [
        "    import sys\n    sys.exit(0)\n",
        "    import os\n    os._exit(0)\n",
        "    return x + y\nimport sys\nsys.exit(0)\n",
        "    print('chatty', x, y)\n    return x + y\n",
        "    return x + y\nos = sys = None\n",
    ];
    let samples: String = completions
        .iter()
        .map(|completion| {
            let record = serde_json::json!({"task_id": "HumanEval/53", "completion": completion});
            format!("{record}\n")
        })
        .collect();
    let exited = "exited with status 0 before its tests finished";
    check(
        Benchmark::HumanEval,
        "humaneval-5.jsonl",
        &samples,
        &format!(
            "
HumanEval/53#0 failed | - | {exited}
HumanEval/53#1 failed | - | {exited}
HumanEval/53#2 failed | - | {exited}
HumanEval/53#3 passed | - | -
HumanEval/53#4 passed | - | -"
        ),
    );
}

#[test]
fn mbpp_reference_solutions_pass() {
    let samples: String = [("11", "remove_Occ"), ("12", "sort_matrix")]
        .iter()
        .map(|(id, _)| {
            let dataset =
                Dataset::load(Benchmark::MbppSanitized, &fixture("sanitized-mbpp-6.json")).unwrap();
            let code = dataset.task(id).unwrap().reference.clone().unwrap();
            serde_json::json!({"task_id": format!("Mbpp/{id}"), "solution": code}).to_string()
                + "\n"
        })
        .collect();
    check(
        Benchmark::MbppSanitized,
        "sanitized-mbpp-6.json",
        &samples,
        "
11#0 passed | - | -
12#0 passed | - | -",
    );
}

#[test]
fn mbpp_setup_code_runs_after_the_solution() {
    // Task 367's setup builds trees with the solution's own `Node` class.
    let dataset = Dataset::load(Benchmark::Mbpp, &fixture("mbpp-8.jsonl")).unwrap();
    let samples: String = dataset
        .tasks
        .iter()
        .map(|task| {
            serde_json::json!({"task_id": task.task_id.parse::<u64>().unwrap(), "solution": task.reference})
                .to_string()
                + "\n"
        })
        .collect();
    check(
        Benchmark::Mbpp,
        "mbpp-8.jsonl",
        &samples,
        "
11#0 passed | - | -
12#0 passed | - | -
17#0 passed | - | -
367#0 passed | - | -",
    );
}

#[test]
fn evalplus_inputs_are_tested_against_the_reference() {
    let samples = [
        r#"{"task_id": "HumanEval/53", "completion": "    return x + y\n"}"#,
        r#"{"task_id": "HumanEval/53", "completion": "    return x + y if x < 1000 else 0\n"}"#,
        r#"{"task_id": "HumanEval/4", "completion": "    return sum(numbers) / len(numbers) + 1e-9\n"}"#,
        r#"{"task_id": "HumanEval/4", "completion": "    return 0.0\n"}"#,
        r#"{"task_id": "Mbpp/17", "solution": "def square_perimeter(a):\n    return a * 4\n"}"#,
    ]
    .join("\n");
    check(
        Benchmark::HumanEval,
        "evalplus-3.jsonl",
        &samples,
        "
HumanEval/4#0 passed | - | -
HumanEval/4#1 failed | - | AssertionError: input 0 [[1.0, 2.0, 3.0]]: expected 2.0, got 0.0
HumanEval/53#0 passed | - | -
HumanEval/53#1 failed | - | AssertionError: input 3 [1000000, 3]: expected 1000003, got 0
Mbpp/17#0 passed | - | -",
    );
}

/// Each special case of EvalPlus's checker, with samples that pass or fail
/// because of it: the statuses are those evalplus 0.3.1 (with upstream's
/// `find_zero` fix, #241) gives; `bench/eval/compare_evalplus.py` checks them
/// against the evalplus package.
#[test]
fn evalplus_special_cases_are_judged_as_evalplus_does() {
    let samples = std::fs::read_to_string(fixture("evalplus-special-samples.jsonl")).unwrap();
    check(
        Benchmark::HumanEval,
        "evalplus-special.jsonl",
        &samples,
        "
HumanEval/32#0 passed | - | -
HumanEval/32#1 failed | - | AssertionError: input 1 [[-6, 11, -6, 1]]: |poly(xs, x)| > 1e-06 at x = 0.55
Mbpp/124#0 passed | - | -
Mbpp/124#1 failed | - | AssertionError: input 0 (0.0, 1j): expected 1.5707963267948966, got 1.5708063267948966
Mbpp/124#2 failed | - | AssertionError: input 0 (0.0, 1j): expected 1.5707963267948966, got 1.0
Mbpp/164#0 passed | - | -
Mbpp/164#1 failed | - | ZeroDivisionError: division by zero
Mbpp/2#0 passed | - | -
Mbpp/2#1 passed | - | -
Mbpp/2#2 failed | - | AssertionError: input 0 [(3, 4, 5, 6), (5, 7, 4, 10)]: expected (4, 5), got (3, 4, 5, 6, 7, 10)
Mbpp/295#0 passed | - | -
Mbpp/295#1 failed | - | AssertionError: input 0 [8]: expected 7, got 8
Mbpp/295#2 failed | - | AssertionError: input 0 [8]: the candidate raised SystemExit(0)
Mbpp/558#0 passed | - | -
Mbpp/558#1 failed | - | AssertionError: input 1 [23, 56]: expected 6, got 33
Mbpp/581#0 passed | - | -
Mbpp/581#1 failed | - | AssertionError: input 0 [3, 4]: expected 33, got 9
Mbpp/737#0 passed | - | -
Mbpp/737#1 passed | - | -
Mbpp/737#2 failed | - | AssertionError: input 1 ['dawood']: expected False, got 'Invalid'
Mbpp/737#3 failed | - | AssertionError: input 0 ['annie']: expected True, got False
Quirk/0#0 passed | - | -
Quirk/1#0 failed | - | AssertionError: input 0 [[1, 2], 3]: expected [3, 6], got [3.0000000000030003, 6.0000000000060005]
Quirk/2#0 failed | - | AssertionError: input 1 [[1, 2], 3]: expected [3, 6], got [3.0000000000030003, 6.0000000000060005]
Quirk/3#0 passed | - | -
Quirk/3#1 failed | - | AssertionError: input 0 [1.0]: expected [[1.0, 1.0]], got [[1.0, 2.0]]
Quirk/4#0 failed | - | AssertionError: input 2 ['nan']: expected nan, got nan
Quirk/5#0 passed | - | -",
    );
}

#[test]
fn unknown_task_in_samples_is_an_error() {
    let dataset = Dataset::load(Benchmark::HumanEval, &fixture("humaneval-5.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(
        &path,
        "{\"task_id\": \"HumanEval/999\", \"completion\": \"\"}\n",
    )
    .unwrap();
    let error = run::read_samples_file(&path, &dataset).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{} line 1: unknown task `HumanEval/999`", path.display())
    );
}

/// Answers every prompt with the canonical solution, counting calls.
struct Scripted<'a> {
    dataset: &'a Dataset,
    calls: Cell<usize>,
}

impl Backend for Scripted<'_> {
    fn generate(&mut self, prompt: &EvalPrompt, params: &GenParams) -> Result<Vec<Generated>> {
        self.calls.set(self.calls.get() + 1);
        let EvalPrompt::Chat { user, .. } = prompt else {
            panic!("expected a chat prompt");
        };
        let task = self
            .dataset
            .tasks
            .iter()
            .find(|task| user.contains(task.prompt.trim()))
            .unwrap();
        let code = task.reference.clone().unwrap();
        Ok((0..params.n)
            .map(|_| Generated {
                text: format!("```python\n{code}\nprint('demo')\n```"),
                finish_reason: "stop".into(),
                n_tokens: 1,
            })
            .collect())
    }

    fn render(&self, prompt: &EvalPrompt) -> Result<String> {
        Ok(format!("{prompt:?}"))
    }
}

/// Fails every prompt as the engine does for one longer than the context.
struct Refusing;

impl Backend for Refusing {
    fn generate(&mut self, _: &EvalPrompt, _: &GenParams) -> Result<Vec<Generated>> {
        Err(codelm_eval::Error::Engine(
            codelm_generate::Error::BadRequest("the prompt is too long".into()),
        ))
    }

    fn render(&self, _: &EvalPrompt) -> Result<String> {
        Ok(String::new())
    }
}

#[test]
fn an_engine_error_fails_its_samples_not_the_run() {
    let dataset = Dataset::load(Benchmark::HumanEval, &fixture("humaneval-5.jsonl")).unwrap();
    let tasks: Vec<_> = dataset.tasks.iter().take(2).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut store = RunStore::open(dir.path(), &serde_json::json!({}), false).unwrap();
    let scores = run::evaluate(
        &dataset,
        &tasks,
        SampleSource::Backend(&mut Refusing),
        &options(1),
        &executor(),
        &mut store,
    )
    .unwrap();
    assert_eq!((scores.n_samples, scores.n_passed), (2, 0));
    assert!(
        store.samples()[0].finish_reason.starts_with("error: "),
        "{:?}",
        store.samples()[0]
    );
}

#[test]
fn resumed_runs_neither_lose_nor_double_samples() {
    let dataset = Dataset::load(Benchmark::HumanEval, &fixture("humaneval-5.jsonl")).unwrap();
    let tasks: Vec<_> = dataset.tasks.iter().collect();
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"n": 2});
    let executor = executor();

    // First session: the first two tasks only, as if killed afterwards.
    let mut backend = Scripted {
        dataset: &dataset,
        calls: Cell::new(0),
    };
    let mut store = RunStore::open(dir.path(), &config, false).unwrap();
    run::evaluate(
        &dataset,
        &tasks[..2],
        SampleSource::Backend(&mut backend),
        &options(2),
        &executor,
        &mut store,
    )
    .unwrap();
    drop(store);
    assert_eq!(backend.calls.get(), 2);

    // A kill -9 mid-write: the last verdict line is torn, and a sample of
    // task 3 was stored without its verdict.
    let verdicts = dir.path().join("verdicts.jsonl");
    let text = std::fs::read_to_string(&verdicts).unwrap();
    std::fs::write(&verdicts, &text[..text.len() - 10]).unwrap();
    let samples = dir.path().join("samples.jsonl");
    let first_line = std::fs::read_to_string(&samples)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let orphan = first_line.replace(&tasks[0].task_id, &tasks[2].task_id);
    std::fs::write(
        &samples,
        std::fs::read_to_string(&samples).unwrap() + &orphan + "\n",
    )
    .unwrap();

    let mut store = RunStore::open(dir.path(), &config, true).unwrap();
    let scores = run::evaluate(
        &dataset,
        &tasks,
        SampleSource::Backend(&mut backend),
        &options(2),
        &executor,
        &mut store,
    )
    .unwrap();
    // Tasks 1 and 2 were not regenerated; task 3 only for its missing sample.
    assert_eq!(backend.calls.get(), 2 + 3);
    assert_eq!(store.samples().len(), 10);
    assert_eq!(store.verdicts().len(), 10);
    assert_eq!(scores.n_samples, 10);
    // The orphan carries task 1's code, so it fails task 3's tests: proof
    // that it was executed as stored, not regenerated.
    assert_eq!(scores.n_passed, 9);
    let mut keys: Vec<_> = store
        .verdicts()
        .iter()
        .map(|v| (v.task_id.clone(), v.sample_idx))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10);
    let timeouts: Vec<f64> = store.verdicts().iter().map(|v| v.timeout_s).collect();
    assert!(timeouts.iter().all(|&t| t >= 3.0), "{timeouts:?}");
    assert_eq!(store.timings().len(), 5);
}
