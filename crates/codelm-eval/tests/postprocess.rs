//! Post-processing from a raw reply to the executed solution, through one
//! `check` helper per prompt mode.

use std::path::Path;

use codelm_eval::prompt::{self, Mode};
use codelm_eval::run::solution_for;
use codelm_eval::{Benchmark, Dataset};

fn check(benchmark: Benchmark, mode: Mode, task_id: &str, reply: &str, expected: &str) {
    let file = match benchmark {
        Benchmark::HumanEval => "humaneval-5.jsonl",
        Benchmark::Mbpp => "mbpp-8.jsonl",
        Benchmark::MbppSanitized => "sanitized-mbpp-6.json",
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let dataset = Dataset::load(benchmark, &path).unwrap();
    let task = dataset.task(task_id).unwrap();
    let stops = prompt::stops(benchmark, mode);
    let solution = solution_for(benchmark, mode, task, reply, &stops).unwrap();
    assert_eq!(solution, expected);
}

const ADD_PROMPT: &str = "\n\ndef add(x: int, y: int):\n    \"\"\"Add two numbers x and y\n    >>> add(2, 3)\n    5\n    >>> add(5, 7)\n    12\n    \"\"\"\n";

#[test]
fn base_humaneval_is_prompt_plus_completion_cut_at_stops() {
    check(
        Benchmark::HumanEval,
        Mode::Base,
        "HumanEval/53",
        "    return x + y\n\n\ndef main():\n    print(add(1, 2))\n",
        &format!("{ADD_PROMPT}    return x + y\n\n"),
    );
}

#[test]
fn instruct_reply_is_extracted_and_sanitized() {
    let reply = "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:\n```python\nimport sys\n\ndef helper(v):\n    return v\n\ndef add(x: int, y: int):\n    return helper(x) + y\n\n# Example usage\nprint(add(2, 3))\nassert add(1, 1) == 2\nif __name__ == \"__main__\":\n    add(0, 0)\n";
    check(
        Benchmark::HumanEval,
        Mode::Instruct,
        "HumanEval/53",
        reply,
        "import sys\n\ndef helper(v):\n    return v\n\ndef add(x: int, y: int):\n    return helper(x) + y\n",
    );
}

#[test]
fn instruct_reply_without_signature_gets_the_prompt() {
    check(
        Benchmark::HumanEval,
        Mode::Instruct,
        "HumanEval/53",
        "```python\n    return x + y\n```",
        &format!("{ADD_PROMPT}    return x + y\n"),
    );
}

#[test]
fn instruct_adds_the_prompts_missing_imports() {
    check(
        Benchmark::HumanEval,
        Mode::Instruct,
        "HumanEval/0",
        "```python\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n```",
        "from typing import List\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n",
    );
}

#[test]
fn base_mbpp_is_cut_at_done_and_sanitized() {
    check(
        Benchmark::Mbpp,
        Mode::Base,
        "11",
        "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]\nprint(remove_Occ('hello', 'l'))\n[DONE]\nYou are an expert",
        "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]\n",
    );
}
