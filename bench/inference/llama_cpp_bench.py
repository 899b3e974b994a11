"""One measurement of llama.cpp's inference speed, the peer of codelm's
`crates/codelm-generate/examples/bench.rs`: same modes, same flags, same JSON
fields, so that `run.py` can compare them line by line. Not a test.

Modes:
  prefill  one llama_decode of all prompt ids (after an untimed 8-token warm-up).
  decode   after an untimed prefill, n_gen greedy tokens, one llama_decode each.
  batch    the prompt decoded once in sequence 0, its KV cells copied to sequences
           1..n_samples-1 (llama.cpp's `batched` example), then one llama_batch of
           n_samples tokens per step, sampled at temperature 0.8 with numpy.
  check-tokenize  tokenizes --text-file with llama.cpp's tokenizer and reports
           whether its first ids equal --prompt-ids.

Uses the low-level bindings of llama-cpp-python (pinned 0.3.36). The peak RSS is
ru_maxrss, which includes the Python interpreter and numpy (about 30 MB).
"""

import argparse
import ctypes
import json
import os
import resource
import sys
import time

import numpy as np
import llama_cpp as ll

# Tokens run before a timed prefill so that page faults on the memory-mapped
# weights are not counted, as in bench.rs.
N_WARMUP_TOKENS = 8


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["prefill", "decode", "batch", "check-tokenize"])
    p.add_argument("--model", required=True)
    p.add_argument("--prompt-ids", required=True)
    p.add_argument("--text-file")
    p.add_argument("--n-gen", type=int, default=128)
    p.add_argument("--n-samples", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


@ll.llama_log_callback
def quiet_log(level, text, user_data):
    pass


class Batch:
    """A llama_batch with room for `capacity` tokens, one sequence id each."""

    def __init__(self, capacity):
        self.raw = ll.llama_batch_init(capacity, 0, 1)

    def set(self, entries):
        """entries: (token, pos, seq_id, wants_logits) tuples."""
        b = self.raw
        for i, (token, pos, seq_id, wants_logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq_id
            b.logits[i] = wants_logits
        b.n_tokens = len(entries)
        return b

    def free(self):
        ll.llama_batch_free(self.raw)


def decode(ctx, batch):
    rc = ll.llama_decode(ctx, batch)
    if rc != 0:
        sys.exit(f"llama_decode returned {rc}")


def logits_at(ctx, idx, n_vocab):
    return np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, idx), shape=(n_vocab,))


def main():
    args = parse_args()
    with open(args.prompt_ids) as f:
        prompt = json.load(f)
    n_prompt = len(prompt)

    ll.llama_log_set(quiet_log, ctypes.c_void_p())
    ll.llama_backend_init()
    load_start = time.perf_counter()
    model_params = ll.llama_model_default_params()
    model = ll.llama_model_load_from_file(args.model.encode(), model_params)
    if not model:
        sys.exit(f"cannot load {args.model}")
    vocab = ll.llama_model_get_vocab(model)
    n_vocab = ll.llama_vocab_n_tokens(vocab)
    load_s = time.perf_counter() - load_start

    out = {
        "engine": "llama.cpp",
        "mode": args.mode,
        "model": args.model,
        "threads": args.threads,
        "load_s": load_s,
        "llama_cpp_python": ll.__version__,
    }

    if args.mode == "check-tokenize":
        with open(args.text_file, "rb") as f:
            text = f.read()
        buf = (ll.llama_token * (len(text) + 16))()
        n = ll.llama_tokenize(vocab, text, len(text), buf, len(buf), False, False)
        ids = list(buf[: min(n, n_prompt)])
        # The last id may differ where the cut falls inside a pre-token.
        out["ids_match"] = ids[:-1] == prompt[:-1]
        print(json.dumps(out))
        return

    ctx_params = ll.llama_context_default_params()
    ctx_params.n_threads = args.threads
    ctx_params.n_threads_batch = args.threads
    ctx_params.n_batch = 512
    ctx_params.no_perf = True
    if args.mode == "batch":
        # The prompt's cells are shared by all sequences in a unified cache.
        ctx_params.n_seq_max = args.n_samples
        ctx_params.kv_unified = True
        ctx_params.n_ctx = n_prompt + args.n_samples * args.n_gen + 256
    else:
        ctx_params.n_seq_max = 1
        ctx_params.n_ctx = n_prompt + args.n_gen + 256
    ctx = ll.llama_init_from_model(model, ctx_params)
    if not ctx:
        sys.exit("cannot create a context")
    memory = ll.llama_get_memory(ctx)
    out["flash_attn_type"] = ctx_params.flash_attn_type
    out["n_ctx"] = ctx_params.n_ctx

    batch = Batch(max(n_prompt, args.n_samples))
    prompt_entries = [(t, pos, 0, False) for pos, t in enumerate(prompt)]
    prompt_entries[-1] = (prompt[-1], n_prompt - 1, 0, True)

    if args.mode == "prefill":
        warmup = [(t, pos, 0, False) for pos, t in enumerate(prompt[:N_WARMUP_TOKENS])]
        warmup[-1] = (warmup[-1][0], warmup[-1][1], 0, True)
        decode(ctx, batch.set(warmup))
        ll.llama_memory_clear(memory, True)
        start = time.perf_counter()
        decode(ctx, batch.set(prompt_entries))
        ll.llama_synchronize(ctx)
        prefill_s = time.perf_counter() - start
        out.update(n_prompt=n_prompt, prefill_s=prefill_s, prefill_tok_s=n_prompt / prefill_s)

    elif args.mode == "decode":
        decode(ctx, batch.set(prompt_entries))
        token = int(np.argmax(logits_at(ctx, -1, n_vocab)))
        tokens = [token]
        start = time.perf_counter()
        for step in range(1, args.n_gen):
            decode(ctx, batch.set([(token, n_prompt + step - 1, 0, True)]))
            token = int(np.argmax(logits_at(ctx, 0, n_vocab)))
            tokens.append(token)
        decode_s = time.perf_counter() - start
        out.update(
            n_prompt=n_prompt,
            n_generated=len(tokens),
            decode_s=decode_s,
            decode_tok_s=(args.n_gen - 1) / decode_s,
            tokens=tokens,
        )

    elif args.mode == "batch":
        rng = np.random.default_rng(args.seed)

        def sample(logits):
            """One token per row of `logits` (rows, n_vocab), at temperature 0.8.

            Vectorised inverse-CDF sampling, so that Python does not dominate a
            step; it costs a few milliseconds per step of 10 rows.
            """
            z = logits / np.float32(0.8)
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            cdf = np.cumsum(z, axis=1)
            u = rng.random(len(z)) * cdf[:, -1]
            return [min(int(np.searchsorted(row, x, side="right")), n_vocab - 1) for row, x in zip(cdf, u)]

        # A separate prefill, which also warms the weights up, as in bench.rs.
        start = time.perf_counter()
        decode(ctx, batch.set(prompt_entries))
        prefill_s = time.perf_counter() - start
        ll.llama_memory_clear(memory, True)

        n = args.n_samples
        start = time.perf_counter()
        decode(ctx, batch.set(prompt_entries))
        for seq_id in range(1, n):
            ll.llama_memory_seq_cp(memory, 0, seq_id, -1, -1)
        first_logits = logits_at(ctx, -1, n_vocab)
        samples = [[token] for token in sample(np.tile(first_logits, (n, 1)))]
        first = time.perf_counter()
        for step in range(1, args.n_gen):
            pos = n_prompt + step - 1
            decode(ctx, batch.set([(s[-1], pos, seq_id, True) for seq_id, s in enumerate(samples)]))
            # All n outputs, in batch order: (n, n_vocab).
            logits = np.ctypeslib.as_array(ll.llama_get_logits(ctx), shape=(n * n_vocab,))
            for s, token in zip(samples, sample(logits.reshape(n, n_vocab))):
                s.append(token)
        end = time.perf_counter()
        n_generated = sum(len(s) for s in samples)
        n_decoded = n_generated - n
        out.update(
            n_prompt=n_prompt,
            n_samples=n,
            n_generated=n_generated,
            separate_prefill_s=prefill_s,
            batch_prefill_s=first - start,
            batch_decode_s=end - first,
            batch_total_s=end - start,
            batch_decode_tok_s=n_decoded / (end - first),
            batch_total_tok_s=n_generated / (end - start),
        )

    batch.free()
    ll.llama_free(ctx)
    ll.llama_model_free(model)
    # ru_maxrss is in KiB on Linux.
    out["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


if __name__ == "__main__":
    main()
