//! `codelm eval --select` end to end with a scripted model on the real
//! sandbox: the selected pick beats the unselected baseline for the reason
//! the evidence gives, the report has the same-budget baselines, a resumed
//! run keeps its records, and no graded test reaches the selector.

use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

use codelm_eval::backend::{Backend, GenParams, Generated};
use codelm_eval::execute::{ExecPolicy, Executor};
use codelm_eval::job::{Job, RunDir, Samples};
use codelm_eval::prompt::{EvalPrompt, Mode};
use codelm_eval::report::ModelInfo;
use codelm_eval::select::SelectConfig;
use codelm_eval::{Benchmark, Dataset, Result};
use codelm_sandbox::{Sandbox, SandboxConfig};
use codelm_verify::Strategy;

/// The graded test holds a value that appears nowhere in the prompt.
const SECRET: &str = "7741";

fn dataset(dir: &Path) -> Dataset {
    let task = serde_json::json!({
        "task_id": "T/0",
        "prompt": "def triple(x):\n    \"\"\"Returns three times x.\n    >>> triple(2)\n    6\n    \"\"\"\n",
        "entry_point": "triple",
        "canonical_solution": "    return 3 * x\n",
        "test": format!("def check(candidate):\n    assert candidate(2) == 6\n    assert candidate({SECRET}) == 3 * {SECRET}\n"),
    });
    let path = dir.join("tasks.jsonl");
    std::fs::write(&path, format!("{task}\n")).unwrap();
    Dataset::load(Benchmark::HumanEval, &path).unwrap()
}

/// Samples: 0 and 2 wrong (x + x + 0, x * x), 1 and 3 right. Tests: asserts
/// in the model's style. Every prompt it is shown is recorded.
struct Scripted {
    prompts: RefCell<Vec<String>>,
}

const CANDIDATES: [&str; 4] = [
    "def triple(x):\n    return x + x + 0 if x != 2 else 6\n",
    "def triple(x):\n    return 3 * x\n",
    "def triple(x):\n    return x * x if x != 2 else 6\n",
    "def triple(x):\n    return x * 3\n",
];

impl Backend for Scripted {
    fn generate(&mut self, prompt: &EvalPrompt, params: &GenParams) -> Result<Vec<Generated>> {
        let EvalPrompt::Chat {
            user,
            response_prefix,
        } = prompt
        else {
            panic!("instruct mode sends chat prompts");
        };
        self.prompts
            .borrow_mut()
            .push(format!("{user}\n{response_prefix}\n{:?}", params.stop));
        let reply = |text: &str| Generated {
            text: format!("{response_prefix}{text}"),
            finish_reason: "stop".to_string(),
            n_tokens: 5,
        };
        let replies = if user.contains("test cases") {
            vec![reply("3) == 9\nassert triple(0) == 0\nassert triple(-1) == -3\n```"); params.n]
        } else if params.temperature == 0.0 {
            vec![reply(CANDIDATES[0])]
        } else {
            (0..params.n).map(|i| reply(CANDIDATES[i % 4])).collect()
        };
        Ok(replies)
    }

    fn render(&self, _: &EvalPrompt) -> Result<String> {
        Ok(String::new())
    }
}

fn run(dir: &Path, resume: bool, strategy: &str) -> serde_json::Value {
    let dataset = dataset(dir);
    let sandbox = Sandbox::new(SandboxConfig {
        n_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let executor = Executor::new(sandbox, ExecPolicy::default()).unwrap();
    let mut backend = Scripted {
        prompts: RefCell::new(Vec::new()),
    };
    let run_dir = dir.join("run");
    let job = Job {
        dataset: &dataset,
        label: "tasks".to_string(),
        mode: Mode::Instruct,
        params: GenParams {
            n: 4,
            max_tokens: 64,
            temperature: 0.8,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
        },
        limit: None,
        model: ModelInfo {
            name: "scripted".to_string(),
            file: None,
            sha256: None,
            quantization: None,
        },
        backend: "scripted".to_string(),
        threads: None,
        exec_jobs: 2,
        run_dir: if resume {
            RunDir::Resume(run_dir)
        } else {
            RunDir::New(run_dir)
        },
        select: Some(SelectConfig {
            strategy: Strategy::parse(strategy).unwrap(),
            budgets: vec![1, 2],
            options: codelm_verify::Options::default(),
        }),
        show_progress: false,
        started: Instant::now(),
    };
    let finished = job.run(Samples::Backend(&mut backend), &executor).unwrap();
    for prompt in backend.prompts.borrow().iter() {
        assert!(
            !prompt.contains(SECRET),
            "a graded test reached the model: {prompt}"
        );
    }
    finished.summary
}

#[test]
fn selection_beats_the_first_sample_and_reports_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), false, "codet");
    let selection = &summary["selection"];
    let row = |n: u64| {
        selection["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["n"] == n)
            .unwrap()
            .clone()
    };
    // All four pass the docstring's example; the model's tests separate
    // them, and 1 and 3 agree on all of them.
    assert_eq!(row(4)["pass@1"], 0.5);
    assert_eq!(row(4)["pass@n"], 1.0);
    assert_eq!(row(4)["selected"]["first"], 0.0);
    assert_eq!(row(4)["selected"]["codet"], 1.0);
    assert_eq!(row(4)["selected"]["cluster"], 1.0);
    assert_eq!(
        row(1)["selected"]["codet"],
        0.0,
        "one candidate: nothing to choose"
    );
    assert_eq!(selection["greedy"], 0.0);
    let text = codelm_eval::report::render_table(&summary);
    assert!(text.contains("n=4"), "{text}");

    // The selector never saw the graded test: not in its cases either.
    let record = std::fs::read_to_string(dir.path().join("run/selections.jsonl")).unwrap();
    assert_eq!(record.lines().count(), 1);
    assert!(!record.contains(SECRET), "{record}");
    assert!(record.contains("triple(-1)"));

    // Resuming keeps the record and adds none.
    let resumed = run(dir.path(), true, "codet");
    assert_eq!(resumed["selection"]["budgets"], selection["budgets"]);
    let record = std::fs::read_to_string(dir.path().join("run/selections.jsonl")).unwrap();
    assert_eq!(record.lines().count(), 1);
}

#[test]
fn repair_from_the_first_sample() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), false, "repair");
    // The first sample passes the docstring example, so there is nothing
    // visible to repair it from: it stays as it is.
    let row = &summary["selection"]["budgets"][2];
    assert_eq!(row["n"], 4);
    assert_eq!(row["selected"]["repair"], 0.0);
    let record = std::fs::read_to_string(dir.path().join("run/selections.jsonl")).unwrap();
    assert!(record.contains("passes every visible test"), "{record}");
}

/// The examples read off real HumanEval prompts are right: each task's
/// reference solution passes every one of them in the verifier's harness.
#[test]
fn humaneval_examples_pass_with_the_reference_solutions() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/humaneval-5.jsonl");
    let dataset = Dataset::load(Benchmark::HumanEval, &fixture).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        n_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let items: Vec<(String, Vec<codelm_verify::Case>)> = dataset
        .tasks
        .iter()
        .map(|task| {
            let spec = codelm_verify::Spec::new(
                codelm_verify::Lang::Python,
                task.prompt.as_str(),
                task.entry_point.as_str(),
            );
            let code = format!("{}{}", task.prompt, task.reference.clone().unwrap());
            (code, codelm_verify::examples(&spec))
        })
        .collect();
    let trials: Vec<codelm_verify::Trial<'_>> = items
        .iter()
        .map(|(code, cases)| codelm_verify::Trial {
            lang: codelm_verify::Lang::Python,
            code,
            cases,
        })
        .collect();
    let runs = codelm_verify::run_trials(&sandbox, &trials, &codelm_verify::ExecOptions::default());
    let mut n_tests = 0;
    for ((_, cases), run) in items.iter().zip(&runs) {
        for (idx, case) in cases.iter().enumerate() {
            if case.check.is_test() {
                n_tests += 1;
                assert!(run.passed(idx), "{case:?}: {:?}", run.results[idx]);
            }
        }
    }
    assert!(n_tests >= 5, "only {n_tests} examples found");
}
