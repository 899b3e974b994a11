#!/usr/bin/env bash
# Builds codelm-model for aarch64 and runs its tests under qemu-user: the NEON
# kernels (`quant/kernels.rs`, module `neon`) and every portable path that an
# x86 machine with AVX-512 never takes. Not part of CI (it needs the cross
# toolchain); run it after touching kernels or `ops.rs`.
#
#   bash scripts/test-aarch64.sh            # the crate's unit and integration tests
#   bash scripts/test-aarch64.sh --lib      # unit tests only (about a minute)
#
# Installs, when missing: the Rust target (rustup), gcc-aarch64-linux-gnu and
# qemu-user (apt-get, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    apt-get install -y -q gcc-aarch64-linux-gnu qemu-user
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(--tests)
fi
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" \
    cargo test --release -j "${CARGO_JOBS:-2}" --target "$target" -p codelm-model "${args[@]}"
