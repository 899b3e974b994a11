//! Reading benchmark files: every fixture through one `check` helper that
//! renders what was parsed as a compact, snapshot-like summary.

use std::path::{Path, PathBuf};

use codelm_eval::{Benchmark, Dataset};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One line per task: `id entry_point n_asserts calls_check`, then the shots.
fn check(benchmark: Benchmark, file: &str, expected: &str) {
    let dataset = Dataset::load(benchmark, &fixture(file)).unwrap();
    let mut lines: Vec<String> = dataset
        .tasks
        .iter()
        .map(|task| {
            format!(
                "{} {} asserts={} check={}",
                task.task_id,
                task.entry_point,
                task.asserts.len(),
                task.calls_check
            )
        })
        .collect();
    let shots: Vec<&str> = dataset
        .shots
        .iter()
        .map(|task| task.task_id.as_str())
        .collect();
    lines.push(format!("shots: {}", shots.join(",")));
    assert_eq!(lines.join("\n").trim(), expected.trim());
    assert_eq!(dataset.sha256.len(), 64);
}

#[test]
fn humaneval_fixture() {
    check(
        Benchmark::HumanEval,
        "humaneval-5.jsonl",
        "
HumanEval/0 has_close_elements asserts=0 check=true
HumanEval/2 truncate_number asserts=0 check=true
HumanEval/4 mean_absolute_deviation asserts=0 check=true
HumanEval/23 strlen asserts=0 check=true
HumanEval/53 add asserts=0 check=true
shots: ",
    );
}

#[test]
fn mbpp_keeps_the_test_split_and_the_three_shots() {
    check(
        Benchmark::Mbpp,
        "mbpp-8.jsonl",
        "
11 remove_Occ asserts=3 check=false
12 sort_matrix asserts=3 check=false
17 square_perimeter asserts=3 check=false
367 is_tree_balanced asserts=3 check=false
shots: 2,3,4",
    );
}

#[test]
fn mbpp_sanitized_fixture() {
    check(
        Benchmark::MbppSanitized,
        "sanitized-mbpp-6.json",
        "
11 remove_Occ asserts=3 check=false
12 sort_matrix asserts=3 check=false
shots: 2,3,4",
    );
}

#[test]
fn program_layout_for_both_families() {
    let humaneval = Dataset::load(Benchmark::HumanEval, &fixture("humaneval-5.jsonl")).unwrap();
    let task = humaneval.task("HumanEval/53").unwrap();
    let program = task.program("def add(x, y):\n    return x + y\n");
    assert!(program.starts_with("def add(x, y):\n    return x + y\n\n\n"));
    assert!(program.ends_with("check(add)\n"));

    let mbpp = Dataset::load(Benchmark::MbppSanitized, &fixture("sanitized-mbpp-6.json")).unwrap();
    let task = mbpp.task("Mbpp/11").unwrap();
    assert_eq!(task.task_id, "11");
    let program = task.program("SOLUTION");
    assert!(
        program.starts_with("SOLUTION\n\nassert remove_Occ("),
        "{program}"
    );
}

#[test]
fn bad_records_name_the_line_and_field() {
    let error = Dataset::from_bytes(
        Benchmark::HumanEval,
        Path::new("bad.jsonl"),
        b"{\"task_id\": \"a\", \"prompt\": \"p\", \"entry_point\": \"f\", \"test\": \"t\"}\n{\"task_id\": \"b\"}\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "bad.jsonl line 2: missing or non-string field `prompt`"
    );
    let error = Dataset::from_bytes(Benchmark::HumanEval, Path::new("e.jsonl"), b"\n").unwrap_err();
    assert_eq!(error.to_string(), "e.jsonl holds no humaneval tasks");
    let error =
        Dataset::from_bytes(Benchmark::Mbpp, Path::new("m.jsonl"), b"{not json}\n").unwrap_err();
    assert_eq!(error.to_string(), "m.jsonl line 1: invalid JSON");
}
