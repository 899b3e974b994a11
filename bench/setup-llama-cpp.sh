#!/usr/bin/env bash
# Builds llama-cpp-python 0.3.36 from source into a venv, for bench/inference.sh.
#
# The venv lives at $LLAMA_VENV, default ${CODELM_BENCH_DIR:-$HOME/.cache/codelm/bench}/venv.
# Running it again does nothing when that version is already installed. The build
# takes several minutes on two cores.
#
# llama.cpp is built for the native CPU but without AMX: with -march=native on a
# Sapphire Rapids CPU its AMX kernel crashes, so the AMX flags are switched off.
# With NO_AVX512=1 it is built without AVX-512 too, into its own venv
# (default .../bench/venv-avx2): the peer for codelm's AVX2 kernels on an
# AVX-512 machine (bench/inference.sh with CODELM_ISA=avx2 does both).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
BENCH_DIR=${CODELM_BENCH_DIR:-$HOME/.cache/codelm/bench}
if [ "${NO_AVX512:-0}" = 1 ]; then
    LLAMA_VENV=${LLAMA_VENV:-$BENCH_DIR/venv-avx2}
else
    LLAMA_VENV=${LLAMA_VENV:-$BENCH_DIR/venv}
fi
PYTHON=${PYTHON:-python3}

if [ -x "$LLAMA_VENV/bin/python" ] &&
    [ "$("$LLAMA_VENV/bin/python" -c 'import llama_cpp, numpy; print(llama_cpp.__version__)' 2>/dev/null)" = "$LLAMA_CPP_PYTHON_VERSION" ]; then
    echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION already in $LLAMA_VENV" >&2
    exit 0
fi

echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into $LLAMA_VENV" >&2
mkdir -p "$(dirname "$LLAMA_VENV")"
"$PYTHON" -m venv "$LLAMA_VENV"
"$LLAMA_VENV/bin/pip" install --quiet --upgrade pip
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if [ "${NO_AVX512:-0}" = 1 ]; then
    no_amx="$no_amx -mno-avx512f"
fi
CMAKE_ARGS="-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'" \
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$LLAMA_VENV/bin/pip" install --no-cache-dir --no-binary llama-cpp-python \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" numpy
"$LLAMA_VENV/bin/python" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)' >&2
