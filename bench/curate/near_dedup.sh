#!/usr/bin/env bash
# Near dedup, codelm vs datatrove (PyPI), on the Python sources of this
# machine's Python install and the Rust sources of the cargo registry.
#
#   bash bench/curate/near_dedup.sh [WORKDIR]
#
# Makes its own venv (bench/curate/.venv, or $CURATE_BENCH_VENV), builds the
# `near_dedup` example, then runs bench/curate/near_dedup_bench.py. Set
# THREADS to change the thread count of both sides (default: all cores), and
# CARGO_TARGET_DIR as for any cargo build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-/tmp/codelm-curate-bench}"
venv="${CURATE_BENCH_VENV:-$here/.venv}"
threads="${THREADS:-$(nproc)}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # datatrove's minhash module imports its tokenizer helpers (tokenizers, nltk)
  # and text utilities (regex), its JSONL reader orjson; xxhash is its shingle hash.
  "$venv/bin/pip" install -q "datatrove==0.10.1" xxhash regex tokenizers nltk numpy orjson
fi

target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build -q --release -p codelm-curate --example near_dedup)
mkdir -p "$work"
"$venv/bin/python" "$here/near_dedup_bench.py" "$work" "$target/release/examples/near_dedup" --threads "$threads"
