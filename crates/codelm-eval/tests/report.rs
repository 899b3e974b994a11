//! The end-of-run table, as a snapshot.

use codelm_eval::report::{render_table, summary, Hardware};
use codelm_eval::run::Scores;
use codelm_eval::store::SampleRecord;
use std::collections::BTreeMap;

fn check(config: serde_json::Value, scores: Scores, expected: &str) {
    let hardware = Hardware {
        cpu: "Test CPU".into(),
        n_cores: 2,
    };
    let samples: Vec<SampleRecord> = (0..2)
        .map(|sample_idx| SampleRecord {
            sample_idx,
            n_tokens: 300,
            generation_s: 60.0,
            ..SampleRecord::default()
        })
        .collect();
    let summary = summary(
        &config, "format", "example", &hardware, 125.0, &samples, &scores,
    );
    assert_eq!(summary["prompt"]["example"], "example");
    assert_eq!(render_table(&summary), expected.trim_start());
}

#[test]
fn table_shows_model_quantization_seed_hardware_and_scores() {
    let config = serde_json::json!({
        "benchmark": "humaneval",
        "dataset": {"path": "/d/HumanEval.jsonl.gz", "sha256": "abc"},
        "model": {"name": "qwen", "file": "/m.gguf", "sha256": "def", "quantization": "Q8_0 (Q8_0 100%)"},
        "backend": "local",
        "mode": "instruct",
        "sampling": {"n": 10, "temperature": 0.8, "top_p": 0.95, "max_tokens": 768, "seed": 7},
        "codelm_version": "0.1.0",
    });
    let scores = Scores {
        n_tasks: 2,
        n_samples: 20,
        n_passed: 9,
        pass_at_k: vec![(1, 0.45), (10, 0.9)],
        statuses: BTreeMap::from([("failed".to_string(), 11), ("passed".to_string(), 9)]),
    };
    check(
        config,
        scores,
        "
benchmark       humaneval (2 tasks, 20 samples)
dataset sha256  abc
model           qwen
model sha256    def
quantization    Q8_0 (Q8_0 100%)
backend         local
prompt mode     instruct
sampling        temperature 0.8, top_p 0.95, n 10, max_tokens 768, seed 7
hardware        Test CPU, 2 cores
codelm          0.1.0
wall time       2m 5s
verdicts        failed 11, passed 9
generation      600 tokens in 1m 0s (10.0 tokens/s)
pass@1          45.00%
pass@10         90.00%
",
    );
}
