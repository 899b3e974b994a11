#!/usr/bin/env bash
# Peak memory of a full curation run against the bound the run states.
#
#   bash bench/curate/memory_bound.sh [WORKDIR] [FACTOR]
#
# Computes the stated bound for the config below (small buffers, so that the
# bound is well under the machine's memory), synthesizes a corpus FACTOR
# (default 10) times larger than the bound by repetition with mutations
# (synthesize.py), curates it with every stage on, and compares the peak RSS
# (/usr/bin/time -v) with the bound that the run's report.json states.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-/tmp/codelm-curate-membench}"
factor="${2:-10}"
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build -q --release -p codelm-curate --example curate)
mkdir -p "$work"

cat > "$work/curate.toml" <<'EOF'
[input]
max_file_bytes = 1048576

[output]
row_group_bytes = 8388608

[resources]
sort_buffer_mb = 64
batch_mb = 8
EOF

# The fixed part of the bound for this config (the per-document part is added
# from the run's own document count afterwards): 64 MiB + max(filter, write, merge).
threads="${THREADS:-$(nproc)}"
fixed=$(( (64 + 64 + 4 * 8) * 1048576 + 3 * 1048576 ))
corpus_bytes=$(( fixed * factor ))
echo "fixed part of the bound: $((fixed / 1048576)) MiB; synthesizing $((corpus_bytes / 1048576)) MiB of content"
if [ ! -f "$work/corpus/.done-$corpus_bytes" ]; then
  rm -rf "$work/corpus"
  python3 "$here/synthesize.py" "$work/corpus" "$corpus_bytes" 16
  touch "$work/corpus/.done-$corpus_bytes"
fi
du -sh "$work/corpus"

benchmarks=()
for b in "${HUMANEVAL:-}" "${MBPP:-}"; do
  [ -n "$b" ] && [ -f "$b" ] && benchmarks+=(--benchmark "$b")
done
rm -rf "$work/out"
/usr/bin/time -v "$target/release/examples/curate" "$work"/corpus/*.jsonl --out "$work/out" \
  --config "$work/curate.toml" --threads "$threads" --quiet "${benchmarks[@]}" \
  > "$work/curate.out" 2> "$work/time.txt"
cat "$work/curate.out"
peak_kb=$(grep "Maximum resident set size" "$work/time.txt" | awk '{print $NF}')
wall=$(grep "Elapsed (wall clock)" "$work/time.txt" | awk '{print $NF}')
python3 - "$work/out/report.json" "$peak_kb" "$wall" "$corpus_bytes" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
peak = int(sys.argv[2]) * 1024
m = report["memory"]
corpus = int(sys.argv[4])
print(f"corpus: {report['n_in']} files, {report['bytes_in'] / 2**20:.0f} MiB read "
      f"({corpus / m['total_bytes']:.1f}x the bound); wall {sys.argv[3]}")
print(f"stated bound: {m['total_bytes'] / 2**20:.1f} MiB = {m['fixed_bytes'] / 2**20:.0f} MiB fixed "
      f"+ {m['per_doc_bytes']} B x {m['n_docs']} docs")
print(f"peak RSS:     {peak / 2**20:.1f} MiB ({100 * peak / m['total_bytes']:.0f}% of the bound)")
print("WITHIN BOUND" if peak <= m["total_bytes"] else "BOUND EXCEEDED")
sys.exit(0 if peak <= m["total_bytes"] else 1)
EOF
