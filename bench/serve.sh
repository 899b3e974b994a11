#!/usr/bin/env bash
# Load test: codelm serve against llama.cpp's server (llama-cpp-python[server],
# built from source by setup-llama-cpp.sh) on the same model, threads and requests.
# A benchmark, not a test: see bench/serve/load.py for what is measured.
#
#   bench/serve.sh                                   # 16 clients, 0.5B
#   CLIENTS=8 REQUESTS=2 MODEL=qwen2.5-coder-1.5b-instruct bench/serve.sh
#
# Environment: MODEL (registry name), CLIENTS (16), REQUESTS (per client, 3),
# MAX_TOKENS (32), PREFIX_CHARS (1500), THREADS (2), ROUNDS (1; servers alternate),
# LLAMA_VENV (default ${CODELM_BENCH_DIR:-~/.cache/codelm/bench}/venv),
# CODELM_CACHE, CARGO_JOBS (1), JSON_OUT (raw results).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-qwen2.5-coder-0.5b-instruct}
BENCH_DIR=${CODELM_BENCH_DIR:-$HOME/.cache/codelm/bench}
export LLAMA_VENV=${LLAMA_VENV:-$BENCH_DIR/venv}
MODELS_DIR=${CODELM_CACHE:-$HOME/.cache/codelm}/models

bench/setup-llama-cpp.sh
if ! "$LLAMA_VENV/bin/python" -c 'import llama_cpp.server.app, httpx' 2>/dev/null; then
    # The extras only: llama-cpp-python itself is already built.
    "$LLAMA_VENV/bin/pip" install --quiet fastapi uvicorn sse-starlette starlette-context \
        pydantic-settings PyYAML httpx
fi
cargo build --release -j "${CARGO_JOBS:-1}" -p codelm
path=$MODELS_DIR/$MODEL.gguf
[ -f "$path" ] || target/release/codelm models pull "$MODEL"

exec "$LLAMA_VENV/bin/python" bench/serve/load.py \
    --codelm target/release/codelm --model "$path" \
    --clients "${CLIENTS:-16}" --requests "${REQUESTS:-3}" \
    --max-tokens "${MAX_TOKENS:-32}" --prefix-chars "${PREFIX_CHARS:-1500}" \
    --threads "${THREADS:-2}" --rounds "${ROUNDS:-1}" ${JSON_OUT:+--json-out "$JSON_OUT"}
