//! A real-model smoke test: three HumanEval tasks, greedy, instruct mode,
//! through the in-process engine and the sandbox. Slow (about two minutes
//! on two cores), so it runs only with `CODELM_SLOW_TESTS=1`; the model is
//! `$CODELM_TEST_MODEL` or the cached qwen2.5-coder-0.5b-instruct.

use std::path::{Path, PathBuf};

use codelm_eval::backend::{GenParams, LocalBackend};
use codelm_eval::execute::{ExecPolicy, Executor};
use codelm_eval::prompt::Mode;
use codelm_eval::run::{self, RunOptions, SampleSource, Scores};
use codelm_eval::store::RunStore;
use codelm_eval::{Benchmark, Dataset};
use codelm_generate::Engine;
use codelm_sandbox::{Sandbox, SandboxConfig};

fn model_path() -> PathBuf {
    std::env::var_os("CODELM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/codelm/models/qwen2.5-coder-0.5b-instruct.gguf")
        })
}

fn check(n_tasks: usize, min_passed: usize) -> Scores {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/humaneval-5.jsonl");
    let dataset = Dataset::load(Benchmark::HumanEval, &fixture).unwrap();
    let tasks: Vec<_> = dataset.tasks.iter().take(n_tasks).collect();
    let engine = Engine::load(&model_path(), Some(4096)).unwrap();
    let mut backend = LocalBackend::new(engine);
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let executor = Executor::new(sandbox, ExecPolicy::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = RunStore::open(dir.path(), &serde_json::json!({}), false).unwrap();
    let options = RunOptions {
        mode: Mode::Instruct,
        params: GenParams {
            n: 1,
            max_tokens: 512,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
        },
        show_progress: false,
    };
    let scores = run::evaluate(
        &dataset,
        &tasks,
        SampleSource::Backend(&mut backend),
        &options,
        &executor,
        &mut store,
    )
    .unwrap();
    assert_eq!(scores.n_samples, n_tasks);
    assert!(
        scores.n_passed >= min_passed,
        "{scores:?}\n{:#?}",
        store.verdicts()
    );
    scores
}

#[test]
fn greedy_instruct_solves_easy_humaneval_tasks() {
    if std::env::var("CODELM_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set CODELM_SLOW_TESTS=1 to run");
        return;
    }
    // HumanEval/0, /2 and /4 all pass with qwen2.5-coder-0.5b-instruct
    // Q5_0 greedy; allow one miss for other models and quantizations.
    check(3, 2);
}
