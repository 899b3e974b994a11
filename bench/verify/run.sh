#!/usr/bin/env bash
# Execution in the loop, measured: a greedy run and a --select run of the same
# benchmark and model, one after the other on this machine, then the ablation
# table (every selector, every budget, with and without repair, against the
# same-budget baselines) and the wall-time ratio.
#
#   bash bench/verify/run.sh [BENCH] [N] [LIMIT] [MODEL]
#   bash bench/verify/run.sh humaneval 8 40 qwen2.5-coder-0.5b-instruct
#
# Environment: STRATEGY (codet+repair), TEMPERATURE (0.8), BUDGETS (1,2,4),
# OUT (bench/verify/out). Both runs are resumable with the same command.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=${1:-humaneval}
N=${2:-8}
LIMIT=${3:-164}
MODEL=${4:-qwen2.5-coder-0.5b-instruct}
STRATEGY=${STRATEGY:-codet+repair}
TEMPERATURE=${TEMPERATURE:-0.8}
BUDGETS=${BUDGETS:-1,2,4}
OUT=${OUT:-bench/verify/out}
mkdir -p "$OUT"
cargo build --release -q -p codelm
CODELM=target/release/codelm
tag="$BENCH-$(basename "$MODEL" .gguf)-n$N-l$LIMIT"

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "kernels: $($CODELM models info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(", ".join(f"{k} {v}" for k,v in d["kernels"].items()))')"

run() { # DIR ARGS...
  local dir=$1; shift
  local resume=(--run-dir "$dir")
  [ -f "$dir/config.json" ] && resume=(--resume "$dir")
  local start=$(date +%s.%N)
  $CODELM eval "$BENCH" --model "$MODEL" --limit "$LIMIT" --quiet "${resume[@]}" "$@" > "$dir.table"
  python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')"
}
greedy_s=$(run "$OUT/$tag-greedy")
select_s=$(run "$OUT/$tag-select" --n "$N" --temperature "$TEMPERATURE" --select "$STRATEGY" --budgets "$BUDGETS")

python3 - "$OUT/$tag-greedy/summary.json" "$OUT/$tag-select/summary.json" "$greedy_s" "$select_s" <<'PY'
import json, sys
greedy, selected = (json.load(open(p)) for p in sys.argv[1:3])
greedy_s, select_s = float(sys.argv[3]), float(sys.argv[4])
sel = selected["selection"]
pct = lambda v: "-" if v is None else f"{100 * v:5.1f}"
print(f"model {selected['model']['name']}, {selected['benchmark']}, {sel['n_tasks']} tasks, strategy {sel['strategy']}")
print(f"greedy run pass@1 {pct(greedy['results']['pass_at_k'].get('pass@1'))}; greedy inside the select run {pct(sel['greedy'])}")
names = sorted({k for row in sel["budgets"] for k in row["selected"]})
print("| n | pass@1 | pass@n | " + " | ".join(names) + " |")
print("|---" * (3 + len(names)) + "|")
for row in sel["budgets"]:
    print(f"| {row['n']} | {pct(row['pass@1'])} | {pct(row['pass@n'])} | " + " | ".join(pct(row['selected'].get(k)) for k in names) + " |")
print(f"extra tokens {int(sel['extra_tokens'])}, programs run {int(sel['executions'])}, selection phase {sel['seconds']:.0f} s")
print(f"wall time: greedy {greedy_s:.0f} s, select {select_s:.0f} s, ratio {select_s / greedy_s:.2f}x")
PY
