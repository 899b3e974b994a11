#!/usr/bin/env python3
"""Compare `codelm eval` with EvalPlus's own checker on an EvalPlus-format file.

Installs evalplus==0.3.1 from PyPI into a venv outside the repository
(${TMPDIR:-/tmp}/codelm-evalplus), makes a private copy of the package with
upstream's fix #241 applied (evalplus commit 6eb1e19, 2024-11-01, after the
0.3.1 release: HumanEval/32's `find_zero` oracle skipped recording the
input's result, so 0.3.1 fails every HumanEval/32 sample; `--as-released`
judges with 0.3.1 unchanged), computes the expected outputs and judges
every sample with EvalPlus's code (`evaluate.check_correctness`, which calls
`eval.untrusted_check`, with the ground truth from `gen.util.trusted_exec` as
`evaluate.get_groundtruth` computes it, and MBPP+ inputs converted by
`data.mbpp.mbpp_deserialize_inputs`), scores the same samples with
`codelm eval humaneval --dataset FILE --samples FILE`, and compares the
verdicts sample by sample. A sample passes EvalPlus when both its base and
plus parts pass (the HumanEval+ / MBPP+ score).

Without arguments it uses the committed special-case fixture
(crates/codelm-eval/tests/fixtures/evalplus-special*.jsonl). With a real
HumanEvalPlus.jsonl or MbppPlus.jsonl, pass it and a samples file.

Usage:
    python3 bench/eval/compare_evalplus.py [--dataset FILE --samples FILE] [--codelm PATH] [--as-released]

EvalPlus runs the samples in a child process with `exec` and is not a
sandbox: run this only on samples you trust (the fixture's are safe).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_official  # noqa: E402  (venv and package-copy helpers)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "codelm-eval" / "tests" / "fixtures"
REQUIREMENT = "evalplus==0.3.1"

# Runs inside the evalplus venv: reads the dataset and samples, prints one
# JSON line per sample with EvalPlus's verdict.
EVALPLUS_JUDGE = r"""
import json, sys
from evalplus.data.mbpp import mbpp_deserialize_inputs
from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
from evalplus.evaluate import check_correctness
from evalplus.gen.util import trusted_exec

dataset_path, samples_path = sys.argv[1], sys.argv[2]
problems = {}
for line in open(dataset_path):
    if line.strip():
        task = json.loads(line)
        problems[task["task_id"]] = task
expected = {}
for task_id, task in problems.items():
    dataset = "mbpp" if task_id.startswith("Mbpp/") else "humaneval"
    task.setdefault("plus_input", [])
    if dataset == "mbpp":
        task["base_input"] = mbpp_deserialize_inputs(task_id, task["base_input"])
        task["plus_input"] = mbpp_deserialize_inputs(task_id, task["plus_input"])
    not_none = MBPP_OUTPUT_NOT_NONE_TASKS if dataset == "mbpp" else []
    oracle = {}
    for part in ("base", "plus"):
        oracle[part], oracle[part + "_time"] = trusted_exec(
            task["prompt"] + task["canonical_solution"],
            task[part + "_input"],
            task["entry_point"],
            record_time=True,
            output_not_none=task["entry_point"] in not_none,
        )
    expected[task_id] = oracle

index = {}
for line in open(samples_path):
    if not line.strip():
        continue
    sample = json.loads(line)
    task_id = sample["task_id"]
    task = problems[task_id]
    dataset = "mbpp" if task_id.startswith("Mbpp/") else "humaneval"
    solution = sample["solution"] if "solution" in sample else task["prompt"] + sample["completion"]
    result = check_correctness(dataset, index.get(task_id, 0), task, solution, expected[task_id], fast_check=True)
    print(json.dumps({
        "task_id": task_id,
        "sample_idx": index.get(task_id, 0),
        "base": result["base"][0],
        "plus": result["plus"][0],
    }), flush=True)
    index[task_id] = index.get(task_id, 0) + 1
"""


FIND_ZERO_RELEASED = """                            assert abs(_poly(*inp, out)) <= atol
                            continue
"""
FIND_ZERO_FIXED = """                            assert abs(_poly(*inp, out)) <= atol
                            details[i] = True
                            progress.value += 1
                            continue
"""


def private_copy(python: Path, root: Path) -> Path:
    """Copies evalplus into root/pkg and applies upstream's fix #241."""
    target = compare_official.copy_package(python, root, "evalplus")
    checker = target / "eval" / "__init__.py"
    source = checker.read_text()
    if source.count(FIND_ZERO_RELEASED) != 1:
        sys.exit("cannot find the find_zero oracle in evalplus/eval/__init__.py")
    checker.write_text(source.replace(FIND_ZERO_RELEASED, FIND_ZERO_FIXED))
    return root / "pkg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=FIXTURES / "evalplus-special.jsonl")
    parser.add_argument("--samples", type=Path, default=FIXTURES / "evalplus-special-samples.jsonl")
    parser.add_argument("--codelm", type=Path, default=REPO / "target" / "release" / "codelm")
    parser.add_argument("--python", type=Path, help="a Python with evalplus 0.3.1 (default: a venv made here)")
    parser.add_argument("--as-released", action="store_true", help="judge with evalplus 0.3.1 as released, without #241")
    args = parser.parse_args()

    root = Path(os.environ.get("TMPDIR", "/tmp")) / "codelm-evalplus"
    root.mkdir(parents=True, exist_ok=True)
    python = args.python or compare_official.ensure_venv(
        root, REQUIREMENT,
        "import evalplus; assert evalplus.__version__.startswith('0.3.1'), evalplus.__version__")
    env = dict(os.environ)
    if not args.as_released:
        env["PYTHONPATH"] = str(private_copy(python, root))
    work = Path(tempfile.mkdtemp(prefix="compare-", dir=root))

    judged = subprocess.run(
        [python, "-c", EVALPLUS_JUDGE, args.dataset, args.samples],
        check=True, capture_output=True, text=True, cwd=work, env=env,
    ).stdout
    official = [json.loads(line) for line in judged.splitlines() if line.strip()]

    run_dir = work / "codelm-run"
    subprocess.run(
        [args.codelm, "eval", "humaneval", "--samples", args.samples, "--dataset", args.dataset,
         "--run-dir", run_dir, "--quiet"],
        check=True, stdout=subprocess.DEVNULL,
    )
    ours = {}
    for line in (run_dir / "verdicts.jsonl").open():
        verdict = json.loads(line)
        ours[(verdict["task_id"], verdict["sample_idx"])] = verdict

    agree = 0
    disagreements = []
    for record in official:
        passed = record["base"] == "pass" and record["plus"] == "pass"
        verdict = ours.get((record["task_id"], record["sample_idx"]))
        ours_passed = bool(verdict and verdict["passed"])
        print(f"{record['task_id']}#{record['sample_idx']}: evalplus base {record['base']}, plus {record['plus']}; "
              f"codelm {verdict['status'] if verdict else 'missing'}"
              + (f" ({verdict['error']})" if verdict and verdict.get("error") else ""))
        if ours_passed == passed:
            agree += 1
        else:
            disagreements.append(f"{record['task_id']}#{record['sample_idx']}")
    n_passed = sum(r["base"] == "pass" and r["plus"] == "pass" for r in official)
    print(f"samples: {len(official)} ({n_passed} passed in evalplus, "
          f"{sum(v['passed'] for v in ours.values())} passed in codelm)")
    print(f"agreement: {agree}/{len(official)}")
    if disagreements:
        print("disagreements: " + ", ".join(disagreements))
    print(f"work directory: {work}")
    sys.exit(0 if not disagreements else 1)


if __name__ == "__main__":
    main()
