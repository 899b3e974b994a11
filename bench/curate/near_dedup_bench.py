"""Near dedup: codelm vs datatrove on the same documents, in one run.

Both sides use 5-token shingles (runs of [A-Za-z0-9_], joined by a space,
hashed with xxh32), 25 bands x 10 rows (datasketch's optimum for Jaccard 0.7
with 256 permutations; 250 used), 32-bit MinHash values, and union-find
clustering. datatrove keeps its own signature, bucket and cluster stages; only
its text tokenizer is replaced (its default needs spaCy and is meant for
prose), by the code tokenizer above.

Prints docs/s for both, the ratio, and how codelm's clusters agree with
datatrove's: pair precision/recall (pairs of documents put in one cluster) and
duplicate-document precision/recall (documents in a cluster of 2 or more),
for three codelm runs: datatrove's own permutation parameters (same hash
family, so the clusters should be identical), codelm's seed, and codelm with a
second seed against the first (the agreement two correct runs of a randomized
algorithm reach).

Usage: python near_dedup_bench.py WORKDIR EXAMPLE_BINARY [--threads N] [--limit N]
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections import Counter

import numpy as np
import xxhash

TOKEN = re.compile(r"[A-Za-z0-9_]+")
NGRAM, BANDS, ROWS = 5, 25, 10


def corpus_paths():
    """Python sources of this interpreter (stdlib + site-packages) and Rust sources of the cargo registry."""
    stdlib = sysconfig.get_paths()["stdlib"]
    py = sorted(glob.glob(os.path.join(stdlib, "**", "*.py"), recursive=True))
    registry = os.path.expanduser("~/.cargo/registry/src")
    rs = sorted(glob.glob(os.path.join(registry, "**", "*.rs"), recursive=True))
    return py + rs


def build_corpus(work, n_tasks, limit):
    docs = []
    for p in corpus_paths():
        try:
            with open(p, "rb") as f:
                text = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not text:
            # datatrove's readers drop empty documents, which would shift its document
            # indices; an empty file has no shingles on either side anyway.
            continue
        docs.append((p, text))
        if limit and len(docs) >= limit:
            break
    with open(os.path.join(work, "docs.jsonl"), "w") as f:
        for i, (p, t) in enumerate(docs):
            f.write(json.dumps({"id": str(i), "text": t}) + "\n")
    chunk_dir = os.path.join(work, "chunks")
    os.makedirs(chunk_dir, exist_ok=True)
    bounds = [len(docs) * r // n_tasks for r in range(n_tasks + 1)]
    for r in range(n_tasks):
        with open(os.path.join(chunk_dir, f"docs_{r:05d}.jsonl"), "w") as f:
            for i in range(bounds[r], bounds[r + 1]):
                f.write(json.dumps({"id": str(i), "text": docs[i][1]}) + "\n")
    with open(os.path.join(work, "paths.json"), "w") as f:
        json.dump([p for p, _ in docs], f)
    return len(docs), bounds, sum(len(t) for _, t in docs)


def run_datatrove(work, n_tasks, bounds, threads):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import minhash as dt
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils.hashing import HashConfig

    class CodeTokenizer:
        def word_tokenize(self, text, language=None):
            return TOKEN.findall(text)

    dt.load_word_tokenizer = lambda language: CodeTokenizer()

    class CodeSignature(dt.MinhashDedupSignature):
        def get_shingles(self, text):
            toks = TOKEN.findall(text)
            n = self.config.n_grams
            return np.fromiter(
                (xxhash.xxh32_intdigest(" ".join(toks[i:i + n]).encode()) for i in range(len(toks) - n + 1)),
                dtype=np.uint64,
            ).reshape((-1, 1))

    cfg = dt.MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=1,
                           hash_config=HashConfig(precision=32, hash_fc="xxhash"))
    base = os.path.join(work, "datatrove")
    shutil.rmtree(base, ignore_errors=True)
    sigs, buckets, clusters = (os.path.join(base, x) for x in ("sigs", "buckets", "clusters"))
    times = {}
    t = time.time()
    LocalPipelineExecutor(
        pipeline=[JsonlReader(os.path.join(work, "chunks"), text_key="text", id_key="id"),
                  CodeSignature(output_folder=sigs, config=cfg)],
        tasks=n_tasks, workers=threads, logging_dir=os.path.join(base, "logs1")).run()
    times["signatures"] = time.time() - t
    t = time.time()
    LocalPipelineExecutor(
        pipeline=[dt.MinhashDedupBuckets(input_folder=sigs, output_folder=buckets, config=cfg)],
        tasks=BANDS, workers=threads, logging_dir=os.path.join(base, "logs2")).run()
    times["buckets"] = time.time() - t
    t = time.time()
    LocalPipelineExecutor(
        pipeline=[dt.MinhashDedupCluster(input_folder=buckets, output_folder=clusters, config=cfg, save_cluster_id=True)],
        tasks=1, workers=1, logging_dir=os.path.join(base, "logs3")).run()
    times["clusters"] = time.time() - t
    labels = list(range(bounds[-1]))
    for path in glob.glob(os.path.join(clusters, "*.clusters")):
        rank = int(os.path.basename(path).split(".")[0])
        data = np.fromfile(path, dtype="<u4").reshape((-1, 2))
        for doc, cid in data:
            labels[bounds[rank] + int(doc)] = ("dt", int(cid))
    # Parameters for codelm's bit-compatible run.
    a, b = CodeSignature(output_folder=sigs, config=cfg).parameters
    with open(os.path.join(work, "datatrove_params.json"), "w") as f:
        json.dump({"a": [int(x) for x in a[0]], "b": [int(x) for x in b[0]]}, f)
    return labels, times


def run_codelm(work, binary, threads, extra, name):
    out = os.path.join(work, f"codelm_{name}.txt")
    cmd = [binary, "--input", os.path.join(work, "docs.jsonl"), "--out", out, "--ngram", str(NGRAM),
           "--bands", str(BANDS), "--rows", str(ROWS), "--threads", str(threads)] + extra
    t = time.time()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.time() - t
    inner = json.loads(proc.stderr.strip().splitlines()[-1])
    with open(out) as f:
        labels = [int(x) for x in f]
    return labels, wall, inner


def agreement(pred, ref):
    """Pair and duplicate-document precision/recall of clustering `pred` against `ref`."""
    def pairs(counter):
        return sum(n * (n - 1) // 2 for n in counter.values())
    size_p, size_r = Counter(pred), Counter(ref)
    both = Counter(zip(pred, ref))
    tp, pp, rp = pairs(both), pairs(size_p), pairs(size_r)
    dup_p = {i for i, l in enumerate(pred) if size_p[l] > 1}
    dup_r = {i for i, l in enumerate(ref) if size_r[l] > 1}
    inter = len(dup_p & dup_r)
    return {
        "pairs_pred": pp, "pairs_ref": rp, "pairs_both": tp,
        "pair_precision": tp / pp if pp else 1.0, "pair_recall": tp / rp if rp else 1.0,
        "dup_docs_pred": len(dup_p), "dup_docs_ref": len(dup_r),
        "dup_doc_precision": inter / len(dup_p) if dup_p else 1.0,
        "dup_doc_recall": inter / len(dup_r) if dup_r else 1.0,
        "removed_pred": len(pred) - len(size_p), "removed_ref": len(ref) - len(size_r),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("binary")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    n_tasks = 8
    n_docs, bounds, n_chars = build_corpus(args.work, n_tasks, args.limit)
    print(f"corpus: {n_docs} documents, {n_chars / 1e6:.1f} M characters "
          f"({sysconfig.get_paths()['stdlib']}/**/*.py, site-packages included, + ~/.cargo/registry/src/**/*.rs)")
    print(f"parameters: {NGRAM}-token shingles, {BANDS} bands x {ROWS} rows = {BANDS * ROWS} permutations "
          f"(threshold 0.7 of 256), 32-bit values, {args.threads} threads each")

    # Interleave: codelm, datatrove, codelm again (best of the two codelm timings is not taken: both are shown).
    own, wall1, inner1 = run_codelm(args.work, args.binary, args.threads, ["--seed", "42"], "seed42")
    dt_labels, dt_times = run_datatrove(args.work, n_tasks, bounds, args.threads)
    same, wall2, inner2 = run_codelm(args.work, args.binary, args.threads,
                                     ["--params", os.path.join(args.work, "datatrove_params.json")], "dtparams")
    other, wall3, _ = run_codelm(args.work, args.binary, args.threads, ["--seed", "7"], "seed7")

    dt_total = sum(dt_times.values())
    dt_rate = n_docs / dt_total
    rates = [n_docs / w for w in (wall1, wall2, wall3)]
    print("\nthroughput (wall clock, reading JSONL to clusters):")
    print(f"  datatrove 0.10.1: {dt_total:8.2f} s  {dt_rate:9.1f} docs/s  "
          f"(signatures {dt_times['signatures']:.1f} s, buckets {dt_times['buckets']:.1f} s, clusters {dt_times['clusters']:.1f} s)")
    for name, w, r in (("codelm seed 42", wall1, rates[0]), ("codelm dt params", wall2, rates[1]), ("codelm seed 7", wall3, rates[2])):
        print(f"  {name:16}: {w:8.2f} s  {r:9.1f} docs/s  ({r / dt_rate:.1f}x datatrove)")
    print(f"  codelm inside the process (seed 42): {inner1['seconds']:.2f} s, signatures {inner1['signature_seconds']:.2f} s")

    results = {
        "codelm(datatrove params) vs datatrove": agreement(same, dt_labels),
        "codelm(seed 42) vs datatrove": agreement(own, dt_labels),
        "codelm(seed 7) vs codelm(seed 42)": agreement(other, own),
    }
    print("\nagreement (pred vs ref):")
    for name, r in results.items():
        print(f"  {name}: pairs P={r['pair_precision']:.4f} R={r['pair_recall']:.4f} "
              f"({r['pairs_both']}/{r['pairs_pred']} pred, {r['pairs_ref']} ref); "
              f"dup docs P={r['dup_doc_precision']:.4f} R={r['dup_doc_recall']:.4f} "
              f"({r['dup_docs_pred']} vs {r['dup_docs_ref']}); removed {r['removed_pred']} vs {r['removed_ref']}")
    summary = {"n_docs": n_docs, "n_chars": n_chars, "threads": args.threads,
               "datatrove_seconds": dt_times, "datatrove_docs_per_s": dt_rate,
               "codelm_seconds": [wall1, wall2, wall3], "codelm_docs_per_s": rates,
               "ratio": rates[0] / dt_rate, "agreement": results}
    with open(os.path.join(args.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nratio (codelm seed 42 / datatrove): {rates[0] / dt_rate:.1f}x; details in {args.work}/summary.json")


if __name__ == "__main__":
    main()
