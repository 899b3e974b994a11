#!/usr/bin/env bash
# Installs what the server's client tests drive codelm with, and prints the
# environment that enables them (`eval "$(bash scripts/test-tools.sh)"`):
#   CODELM_TEST_PYTHON    a venv with the official `openai` client and
#                         `websocket-client` (for the DevTools protocol), from PyPI;
#   CODELM_TEST_CHROMIUM  Chromium, from Debian packages when missing (as root).
# Idempotent; a missing browser is a warning (that test then says it skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CODELM_TEST_VENV:-$PWD/target/test-venv}
PYTHON=${CODELM_PYTHON:-python3}
if ! "$VENV/bin/python" -c 'import openai, websocket' 2>/dev/null; then
    echo "installing the openai client into $VENV" >&2
    "$PYTHON" -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'openai==3.54.0' 'websocket-client==1.9.2' >&2
fi
echo "export CODELM_TEST_PYTHON='$VENV/bin/python'"

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (Debian package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2 ||
        { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2; } ||
        true
    chromium=$(command -v chromium || true)
fi
if [ -n "$chromium" ]; then
    echo "export CODELM_TEST_CHROMIUM='$chromium'"
else
    echo "warning: no Chromium; the playground's browser test will be skipped" >&2
fi
