"""Runs codelm and llama.cpp alternately on the same GGUF, prompt ids and thread
count, and prints medians and per-round ratios. Called by bench/inference.sh.

Each round also measures the machine's memory bandwidth (read and copy, same
thread count), printed next to the weight bandwidth each engine reaches in
decode: weight bytes per token times decode tok/s.

Every measurement is its own process (so each has its own peak RSS), and each
round runs both engines back to back for one measurement before moving to the
next, alternating which goes first, because this machine's speed swings by up
to 2x from one minute to the next. Ratios are codelm / llama.cpp: above 1 means
codelm is faster (for RSS, above 1 means codelm uses more memory).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ["prefill", "decode", "batch"]

# (label, mode, JSON field)
METRICS = [
    ("prefill tok/s ({n_prompt}-token prompt)", "prefill", "prefill_tok_s"),
    ("decode tok/s (greedy, {n_gen} tokens after the prompt)", "decode", "decode_tok_s"),
    ("batch n={n_samples} decode tok/s (all sequences)", "batch", "batch_decode_tok_s"),
    ("batch n={n_samples} total tok/s (incl. shared prefill)", "batch", "batch_total_tok_s"),
    ("peak RSS MiB, prefill process", "prefill", "peak_rss_mib"),
    ("peak RSS MiB, decode process", "decode", "peak_rss_mib"),
    ("peak RSS MiB, batch process", "batch", "peak_rss_mib"),
    ("CPUs busy (cpu s / wall s), decode process", "decode", "cores_busy"),
    ("CPUs busy (cpu s / wall s), batch process", "batch", "cores_busy"),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--codelm-bin", required=True, help="target/release/examples/bench")
    p.add_argument("--python", required=True, help="python of the llama-cpp-python venv")
    p.add_argument("--model", action="append", required=True, help="NAME=PATH, repeatable")
    p.add_argument("--text-file", required=True, help="source of the prompt")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-prompt", type=int, default=512)
    p.add_argument("--n-gen", type=int, default=128)
    p.add_argument("--n-samples", type=int, default=10)
    p.add_argument("--seed", type=int, default=1, help="batch sampling seed, both engines")
    p.add_argument("--json-out", help="write every raw measurement here")
    return p.parse_args()


def log(message):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_json(command, env=None):
    """Runs one measurement; adds the process's wall and CPU seconds to its JSON."""
    cpu_before, start = children_cpu_s(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall_s, cpu_s = time.perf_counter() - start, children_cpu_s() - cpu_before
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # CPUs kept busy on average: spinning worker threads show up here.
    out.update(process_wall_s=wall_s, process_cpu_s=cpu_s, cores_busy=cpu_s / wall_s)
    return out


def machine_info(args):
    with open("/proc/cpuinfo") as f:
        cpuinfo = f.read()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), "unknown")
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "") + " "
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f" {f} " in flags]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        rev += " (+ uncommitted changes)" if dirty else ""
    except OSError:
        rev = "unknown"
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "isa": isa,
        "kernel": platform.release(),
        "threads_per_engine": args.threads,
        "codelm_rev": rev,
    }


def engine_commands(args, model_path, ids_path):
    common = ["--model", model_path, "--prompt-ids", ids_path, "--n-gen", str(args.n_gen),
              "--seed", str(args.seed)]
    codelm_env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    return {
        "codelm": lambda mode: run_json(
            [args.codelm_bin, mode, *common, "--n-prompt", str(args.n_prompt), "--n-samples", str(args.n_samples)],
            env=codelm_env,
        ),
        "llama.cpp": lambda mode: run_json(
            [args.python, os.path.join(os.path.dirname(__file__), "llama_cpp_bench.py"), mode, *common,
             "--n-samples", str(args.n_samples), "--threads", str(args.threads)]
        ),
    }


def bench_model(args, name, path, workdir):
    log(f"{name}: tokenizing {args.text_file}")
    tokenized = run_json([args.codelm_bin, "tokenize", "--model", path, "--text-file", args.text_file,
                          "--n-prompt", str(args.n_prompt)])
    ids = tokenized["ids"]
    ids_path = os.path.join(workdir, f"{name}.ids.json")
    with open(ids_path, "w") as f:
        json.dump(ids, f)
    check = run_json([args.python, os.path.join(os.path.dirname(__file__), "llama_cpp_bench.py"),
                      "check-tokenize", "--model", path, "--prompt-ids", ids_path, "--text-file", args.text_file])
    engines = engine_commands(args, path, ids_path)
    rounds = []
    for round_idx in range(args.rounds):
        order = ["codelm", "llama.cpp"] if round_idx % 2 == 0 else ["llama.cpp", "codelm"]
        results = {}
        for mode in MODES:
            for engine in order:
                log(f"{name}: round {round_idx + 1}/{args.rounds}, {mode}, {engine}")
                out = engines[engine](mode)
                out["peak_rss_mib"] = out["peak_rss_kib"] / 1024
                out["loadavg_after"] = os.getloadavg()[0]
                results[(engine, mode)] = out
        log(f"{name}: round {round_idx + 1}/{args.rounds}, memory bandwidth")
        results[("machine", "membw")] = run_json(
            [args.codelm_bin, "membw"], env=dict(os.environ, RAYON_NUM_THREADS=str(args.threads)))
        rounds.append(results)
    greedy_match = all(r[("codelm", "decode")]["tokens"] == r[("llama.cpp", "decode")]["tokens"] for r in rounds)
    return {"name": name, "path": path, "weight_types": tokenized["weight_types"],
            "codelm_features": tokenized["codelm_features"],
            "tokenizers_agree": check["ids_match"],
            "greedy_tokens_agree": greedy_match, "rounds": rounds}


def fmt(value):
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def print_report(args, info, models, started, finished):
    print()
    print(f"codelm vs llama.cpp (llama-cpp-python 0.3.36), {started} .. {finished} UTC")
    print(f"CPU: {info['cpu']}, {info['logical_cpus']} logical CPUs, ISA: {' '.join(info['isa'])}, "
          f"kernel {info['kernel']}, codelm {info['codelm_rev']}")
    print(f"threads per engine: {args.threads}; rounds: {args.rounds}; prompt: first {args.n_prompt} "
          f"tokens of {args.text_file}; decode: {args.n_gen} tokens; batch: n={args.n_samples}, "
          f"temperature 0.8, seed {args.seed}, no stop tokens")
    print("ratio = codelm / llama.cpp: above 1 means codelm is faster (for RSS and CPUs busy: "
          "codelm uses more).")
    print("llama.cpp RSS includes the Python interpreter and numpy (about 30 MiB).")
    print("decode and batch-decode tok/s count only tokens produced by decode steps (the first token "
          "of each sequence comes from the prefill); batch total = all generated tokens / (prefill + decode).")
    for model in models:
        rounds = model["rounds"]
        print()
        print(f"== {model['name']} ({model['path']})")
        print(f"   weights (and codelm's kernel for each): {', '.join(model['weight_types'])}")
        print(f"   codelm's kernels may use: {', '.join(model['codelm_features'])}"
              f"{' (capped by CODELM_ISA=' + os.environ['CODELM_ISA'] + ')' if os.environ.get('CODELM_ISA') else ''}")
        print(f"   same prompt ids from both tokenizers: {model['tokenizers_agree']}; "
              f"same greedy tokens: {model['greedy_tokens_agree']}")
        loads = [r[key]["loadavg_after"] for r in rounds for key in r if "loadavg_after" in r[key]]
        print(f"   1-minute load average during the run: {min(loads):.1f} .. {max(loads):.1f} "
              f"(on {info['logical_cpus']} CPUs)")
        header = f"   {'metric':<54} {'codelm':>9} {'llama.cpp':>9} {'ratio':>6}  per-round ratios"
        print(header)
        print("   " + "-" * (len(header) - 3))
        for label, mode, field in METRICS:
            codelm = [r[("codelm", mode)][field] for r in rounds]
            llama = [r[("llama.cpp", mode)][field] for r in rounds]
            median_c, median_l = statistics.median(codelm), statistics.median(llama)
            per_round = " ".join(f"{c / l:.2f}" for c, l in zip(codelm, llama))
            label = label.format(n_prompt=args.n_prompt, n_gen=args.n_gen, n_samples=args.n_samples)
            print(f"   {label:<54} {fmt(median_c):>9} {fmt(median_l):>9} {median_c / median_l:>6.2f}  {per_round}")
        print_scaling(args, rounds)
        print_bandwidth(args, rounds)


def print_scaling(args, rounds):
    """How much n samples of one prompt gain over one stream, per engine."""
    for engine in ("codelm", "llama.cpp"):
        ratios = [r[(engine, "batch")]["batch_decode_tok_s"] / r[(engine, "decode")]["decode_tok_s"]
                  for r in rounds]
        per_round = " ".join(f"{x:.2f}" for x in ratios)
        print(f"   {engine:<10} batch n={args.n_samples} decode / single-stream decode "
              f"{statistics.median(ratios):5.2f}x (per round: {per_round})")


def print_bandwidth(args, rounds):
    """Decode's weight traffic next to the machine's measured bandwidth."""
    bytes_per_token = rounds[0][("codelm", "decode")]["weight_bytes_per_token"]
    read = statistics.median(r[("machine", "membw")]["read_gb_s"] for r in rounds)
    copy = statistics.median(r[("machine", "membw")]["copy_gb_s"] for r in rounds)
    print(f"   memory bandwidth, {args.threads} threads (median of rounds): read {read:.1f} GB/s, "
          f"copy {copy:.1f} GB/s (read + written bytes)")
    print(f"   weights read per decoded token: {bytes_per_token / 1e6:.1f} MB (both engines read "
          f"the same tensors)")
    for engine in ("codelm", "llama.cpp"):
        tok_s = statistics.median(r[(engine, "decode")]["decode_tok_s"] for r in rounds)
        achieved = bytes_per_token * tok_s / 1e9
        print(f"   {engine:<10} decode weight bandwidth {achieved:5.1f} GB/s = "
              f"{100 * achieved / read:3.0f}% of measured read bandwidth")


def main():
    args = parse_args()
    info = machine_info(args)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    models = []
    with tempfile.TemporaryDirectory() as workdir:
        for spec in args.model:
            name, path = spec.split("=", 1)
            models.append(bench_model(args, name, path, workdir))
    finished = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M")
    if args.json_out:
        raw = [dict(m, rounds=[{f"{e}/{mode}": v for (e, mode), v in r.items()} for r in m["rounds"]])
               for m in models]
        with open(args.json_out, "w") as f:
            json.dump({"machine": info, "args": vars(args), "models": raw}, f, indent=1)
    print_report(args, info, models, started, finished)


if __name__ == "__main__":
    main()
