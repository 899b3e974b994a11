#!/usr/bin/env bash
# Compares codelm's CPU inference with llama.cpp's on the same GGUF files, prompt
# ids and thread count: prefill, greedy decode, n=10 batched sampling and peak RSS.
# A benchmark, not a test: see bench/inference/run.py for what is measured.
#
#   bench/inference.sh                 # 3 rounds, 0.5B and 1.5B
#   QUICK=1 bench/inference.sh         # smoke run: 1 round, 0.5B only
#   ROUNDS=5 MODELS=qwen2.5-coder-1.5b-instruct bench/inference.sh
#
# Environment: ROUNDS (3), MODELS (space-separated registry names), THREADS (2),
# QUICK=1, LLAMA_VENV (a venv that already has llama-cpp-python 0.3.36; default
# ${CODELM_BENCH_DIR:-~/.cache/codelm/bench}/venv, built by setup-llama-cpp.sh),
# CODELM_CACHE (where models live), CARGO_JOBS (1), PROMPT_FILE (a source file
# with at least 512 tokens; default Python's json/decoder.py), JSON_OUT (raw results),
# CODELM_ISA=avx2 (cap codelm's kernels at AVX2 and compare with a llama.cpp built
# without AVX-512, venv-avx2: how an AVX-512 machine measures the AVX2 path).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
MODELS=${MODELS:-qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct}
if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=1
    MODELS=qwen2.5-coder-0.5b-instruct
fi
THREADS=${THREADS:-2}
BENCH_DIR=${CODELM_BENCH_DIR:-$HOME/.cache/codelm/bench}
export LLAMA_VENV=${LLAMA_VENV:-$BENCH_DIR/venv}
MODELS_DIR=${CODELM_CACHE:-$HOME/.cache/codelm}/models

bench/setup-llama-cpp.sh
cargo build --release -j "${CARGO_JOBS:-1}" -p codelm-generate --example bench

model_args=()
for name in $MODELS; do
    path=$MODELS_DIR/$name.gguf
    if [ ! -f "$path" ]; then
        cargo run --release -j "${CARGO_JOBS:-1}" -p codelm -- models pull "$name"
    fi
    model_args+=(--model "$name=$path")
done

PROMPT_FILE=${PROMPT_FILE:-$("$LLAMA_VENV/bin/python" -c \
    'import json, os; print(os.path.join(os.path.dirname(json.__file__), "decoder.py"))')}

exec "$LLAMA_VENV/bin/python" bench/inference/run.py \
    --codelm-bin target/release/examples/bench \
    --python "$LLAMA_VENV/bin/python" \
    --text-file "$PROMPT_FILE" \
    --rounds "$ROUNDS" \
    --threads "$THREADS" \
    ${JSON_OUT:+--json-out "$JSON_OUT"} \
    "${model_args[@]}"
