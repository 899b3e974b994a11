"""Load test of two OpenAI-compatible servers with IDE-style FIM requests.

Each of --clients clients edits its own real source file (from Python's
standard library, chosen deterministically) and asks for completions at a
cursor: the prefix is --prefix-chars characters before the cursor, the suffix
300 characters after it. Between its --requests requests a client's cursor
moves 40 characters on, so its later prefixes extend its earlier ones, as when a
user types. Requests go to /v1/completions with `suffix`, greedy, streamed.

Measured per server: aggregate generated tokens/s (streamed text chunks, one
per token on both servers) over the wall time of the whole load, and the time
to first token (first non-empty chunk) p50/p99 over all requests. Both servers
get the same requests with the same model file and thread count; with --rounds
> 1 they alternate, so machine-speed swings hit both.
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time

import httpx

SUFFIX_CHARS = 300
STEP_CHARS = 40


def pick_files(n, prefix_chars):
    stdlib = sysconfig.get_paths()["stdlib"]
    candidates = []
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in ("test", "tests", "idlelib", "site-packages", "__pycache__"))
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                try:
                    text = open(path, encoding="utf-8").read()
                except (UnicodeDecodeError, OSError):
                    continue
                if len(text) > prefix_chars + SUFFIX_CHARS + 10 * STEP_CHARS + 2000 and text.isascii():
                    candidates.append(text)
    step = max(1, len(candidates) // n)
    return candidates[::step][:n]


def requests_for(files, n_requests, prefix_chars):
    plans = []
    for text in files:
        start = 1000  # Skip the license header most files open with.
        plan = []
        for k in range(n_requests):
            cursor = start + prefix_chars + k * STEP_CHARS
            plan.append((text[start:cursor], text[cursor:cursor + SUFFIX_CHARS]))
        plans.append(plan)
    return plans


async def one_request(client, url, model, prefix, suffix, max_tokens):
    body = {"model": model, "prompt": prefix, "suffix": suffix, "max_tokens": max_tokens,
            "temperature": 0, "stream": True}
    start = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url + "/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {await response.aread()}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                if choice.get("text"):
                    tokens += 1
                    if first is None:
                        first = time.perf_counter() - start
    return first if first is not None else time.perf_counter() - start, tokens


async def run_load(url, model, plans, max_tokens):
    async with httpx.AsyncClient(timeout=httpx.Timeout(3600.0)) as client:
        async def client_loop(plan):
            results = []
            for prefix, suffix in plan:
                results.append(await one_request(client, url, model, prefix, suffix, max_tokens))
            return results

        start = time.perf_counter()
        per_client = await asyncio.gather(*(client_loop(plan) for plan in plans))
        wall = time.perf_counter() - start
    results = [r for rs in per_client for r in rs]
    ttfts = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {
        "wall_s": wall,
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "ttft_p50_s": statistics.median(ttfts),
        "ttft_p99_s": ttfts[min(len(ttfts) - 1, int(round(0.99 * (len(ttfts) - 1))))],
        "requests": len(results),
    }


def wait_ready(url, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("server did not come up")


def serve_codelm(args, port):
    cmd = [args.codelm, "serve", "--model", args.model, "--port", str(port), "--threads", str(args.threads),
           "--ctx", "4096", "--model-id", "bench"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serve_llama(args, port):
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", args.model, "--port", str(port),
           "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads), "--n_ctx", "4096",
           "--model_alias", "bench",
           # By default a new request aborts the running stream; queue them instead.
           "--interrupt_requests", "False"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--codelm", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--prefix-chars", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json-out")
    args = parser.parse_args()

    files = pick_files(args.clients, args.prefix_chars)
    if len(files) < args.clients:
        sys.exit(f"only {len(files)} suitable source files")
    plans = requests_for(files, args.requests, args.prefix_chars)
    print(f"{args.clients} clients x {args.requests} FIM requests, {args.prefix_chars}-char prefixes, "
          f"max_tokens {args.max_tokens}, {args.threads} threads, model {os.path.basename(args.model)}", flush=True)

    servers = [("codelm", serve_codelm), ("llama.cpp", serve_llama)]
    results = {name: [] for name, _ in servers}
    for round_idx in range(args.rounds):
        order = servers if round_idx % 2 == 0 else servers[::-1]
        for name, start in order:
            port = 18700 + round_idx * 2 + (name == "llama.cpp")
            proc = start(args, port)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ready(url, proc)
                # One small request first, so start-up work is not timed.
                asyncio.run(run_load(url, "bench", [[("def f(x):\n    return ", "\n")]], 4))
                result = asyncio.run(run_load(url, "bench", plans, args.max_tokens))
            finally:
                proc.terminate()
                proc.wait()
            results[name].append(result)
            print(f"round {round_idx + 1} {name:9}: {result['tokens']} tokens in {result['wall_s']:.1f} s = "
                  f"{result['tokens_per_s']:.2f} tok/s; time to first token p50 {result['ttft_p50_s']:.2f} s, "
                  f"p99 {result['ttft_p99_s']:.2f} s", flush=True)

    def best(name, key, lower):
        values = [r[key] for r in results[name]]
        return min(values) if lower else max(values)

    ours_tps, theirs_tps = best("codelm", "tokens_per_s", False), best("llama.cpp", "tokens_per_s", False)
    ours_p50, theirs_p50 = best("codelm", "ttft_p50_s", True), best("llama.cpp", "ttft_p50_s", True)
    ours_p99, theirs_p99 = best("codelm", "ttft_p99_s", True), best("llama.cpp", "ttft_p99_s", True)
    print()
    print(f"{'':24}{'codelm':>10}{'llama.cpp':>11}{'ratio':>9}")
    print(f"{'aggregate tok/s':24}{ours_tps:10.2f}{theirs_tps:11.2f}{ours_tps / theirs_tps:8.2f}x")
    print(f"{'TTFT p50 (s)':24}{ours_p50:10.2f}{theirs_p50:11.2f}{ours_p50 / theirs_p50:8.2f}x")
    print(f"{'TTFT p99 (s)':24}{ours_p99:10.2f}{theirs_p99:11.2f}{ours_p99 / theirs_p99:8.2f}x")
    print("(tok/s: higher is better; TTFT: lower is better; ratio = codelm / llama.cpp)")
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump({"args": vars(args), "results": results}, out, indent=1)


if __name__ == "__main__":
    main()
