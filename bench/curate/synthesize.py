"""Synthesizes a large code corpus by repetition with mutations.

Reads the Python sources of this interpreter (stdlib + site-packages) and the
Rust sources of the cargo registry, then writes copies of them as JSONL
shards until TARGET_BYTES of content are written. Copy k of a file is mutated
with a rate that cycles through 0, 1, 3, 10, 30 and 60 % of its lines (a line
is deleted, suffixed with a copy-specific comment, or followed by a new
statement), so the corpus holds exact duplicates, near duplicates on both
sides of the 0.7 threshold, and distinct files, in realistic proportions.
Deterministic (seeded).

Usage: python synthesize.py OUT_DIR TARGET_BYTES [N_SHARDS]
"""
import glob
import json
import os
import random
import sys
import sysconfig

RATES = [0.0, 0.01, 0.03, 0.10, 0.30, 0.60]


def sources():
    stdlib = sysconfig.get_paths()["stdlib"]
    paths = sorted(glob.glob(os.path.join(stdlib, "**", "*.py"), recursive=True))
    paths += sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/**/*.rs"), recursive=True))
    for p in paths:
        try:
            with open(p, "rb") as f:
                text = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text and len(text) < 1 << 20:
            yield p, text


def mutate(text, rate, copy, rng):
    if rate == 0.0:
        return text
    out = []
    comment = "#" if text.lstrip().startswith(("import", "from", "#", '"""')) else "//"
    for line in text.split("\n"):
        r = rng.random()
        if r < rate / 3:
            continue
        if r < 2 * rate / 3:
            out.append(f"{line}  {comment} rev {copy}")
        elif r < rate:
            out.append(line)
            out.append(f"{comment} note {copy}-{rng.randrange(1 << 30)}")
        else:
            out.append(line)
    return "\n".join(out)


def main():
    out_dir, target = sys.argv[1], int(float(sys.argv[2]))
    n_shards = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    os.makedirs(out_dir, exist_ok=True)
    base = list(sources())
    rng = random.Random(1234)
    files = [open(os.path.join(out_dir, f"synth-{i:03d}.jsonl"), "w") for i in range(n_shards)]
    written = 0
    n_docs = 0
    copy = 0
    while written < target:
        rate = RATES[copy % len(RATES)]
        for path, text in base:
            content = mutate(text, rate, copy, rng)
            row = {"content": content, "path": f"copy{copy}/{path.lstrip('/')}", "repo_name": f"synth/copy{copy}",
                   "license": "MIT", "stars": copy}
            files[n_docs % n_shards].write(json.dumps(row) + "\n")
            written += len(content.encode())
            n_docs += 1
            if written >= target:
                break
        copy += 1
    for f in files:
        f.close()
    print(json.dumps({"docs": n_docs, "content_bytes": written, "copies": copy, "shards": n_shards}))


if __name__ == "__main__":
    main()
