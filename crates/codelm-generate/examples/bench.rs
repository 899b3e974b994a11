//! One measurement of codelm's inference speed, for `bench/inference.sh`, which runs
//! this example and llama.cpp alternately and compares them. Not a test: the
//! numbers depend on the machine and on whatever else it is doing.
//!
//! Each run loads the model, measures one thing and prints one JSON line:
//!
//! - `tokenize`: the first `--n-prompt` token ids of `--text-file` (no BOS), so
//!   that both engines are fed exactly the same ids.
//! - `prefill`: one forward pass over the `--prompt-ids` tokens.
//! - `decode`: after an untimed prefill of the prompt, `--n-gen` greedy steps of
//!   one token each.
//! - `batch`: `Engine::generate_tokens` with `--n-samples` samples at
//!   temperature 0.8 and no stop tokens, so every sample runs `--n-gen` tokens.
//!   The decode phase starts at the first streamed token, which is sampled from
//!   the shared prefill's logits before any batched step runs.
//!
//! - `membw` (no model): the machine's memory bandwidth with as many threads,
//!   reading a 1 GiB buffer and copying 512 MiB, best of five passes, so that
//!   decode's weight bandwidth (`weight_bytes_per_token` × tok/s) can be set
//!   against the physical limit.
//!
//! Threads come from `RAYON_NUM_THREADS`; the peak RSS is `VmHWM` at the end.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p codelm-generate --example bench -- \
//!     decode --model model.gguf --prompt-ids ids.json
//! ```

use std::path::PathBuf;
use std::time::Instant;

use codelm_generate::{Engine, GenerateOptions, SamplingParams};
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Tokens run through the model before a timed prefill, so that page faults on
/// the memory-mapped weights are not counted as prefill time.
const N_WARMUP_TOKENS: usize = 8;

struct Args {
    mode: String,
    model: PathBuf,
    text_file: Option<PathBuf>,
    prompt_ids: Option<PathBuf>,
    n_prompt: usize,
    n_gen: usize,
    n_samples: usize,
    seed: u64,
}

fn parse_args() -> Result<Args> {
    let mut raw = std::env::args().skip(1);
    let mode = raw
        .next()
        .ok_or("usage: bench tokenize|prefill|decode|batch|membw --model PATH ...")?;
    let mut args = Args {
        mode,
        model: PathBuf::new(),
        text_file: None,
        prompt_ids: None,
        n_prompt: 512,
        n_gen: 128,
        n_samples: 10,
        seed: 1,
    };
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => args.model = value.into(),
            "--text-file" => args.text_file = Some(value.into()),
            "--prompt-ids" => args.prompt_ids = Some(value.into()),
            "--n-prompt" => args.n_prompt = value.parse()?,
            "--n-gen" => args.n_gen = value.parse()?,
            "--n-samples" => args.n_samples = value.parse()?,
            "--seed" => args.seed = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(args)
}

fn read_prompt_ids(args: &Args) -> Result<Vec<u32>> {
    let path = args.prompt_ids.as_ref().ok_or("--prompt-ids is required")?;
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Peak resident set size of this process in KiB (`VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (idx, &value) in logits.iter().enumerate() {
        if value > logits[best] {
            best = idx;
        }
    }
    best as u32
}

/// Bytes per memory-bandwidth buffer.
const MEMBW_BYTES: usize = 1 << 30;

/// Best read and copy bandwidth in GB/s over `n_threads` threads. A copy
/// moves each byte twice (read and write), counted as STREAM does.
fn memory_bandwidth(n_threads: usize) -> (f64, f64) {
    let words = MEMBW_BYTES / 8;
    let mut source: Vec<u64> = (0..words as u64).collect();
    let mut target = vec![0u64; words / 2];
    let chunk = words.div_ceil(n_threads);
    let mut best_read = 0f64;
    let mut best_copy = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = source
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut lanes = [0u64; 8];
                        for block in part.chunks_exact(8) {
                            for (lane, &word) in lanes.iter_mut().zip(block) {
                                *lane = lane.wrapping_add(word);
                            }
                        }
                        lanes.iter().fold(0u64, |a, &b| a.wrapping_add(b))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        std::hint::black_box(sums);
        best_read = best_read.max(MEMBW_BYTES as f64 / start.elapsed().as_secs_f64() / 1e9);
        let half = &mut source[..words / 2];
        let start = Instant::now();
        std::thread::scope(|scope| {
            for (to, from) in target.chunks_mut(chunk / 2).zip(half.chunks(chunk / 2)) {
                scope.spawn(move || to.copy_from_slice(from));
            }
        });
        std::hint::black_box(&mut target);
        best_copy = best_copy.max(MEMBW_BYTES as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    (best_read, best_copy)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if args.mode == "membw" {
        let n_threads = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let (read_gb_s, copy_gb_s) = memory_bandwidth(n_threads);
        let out = json!({
            "engine": "codelm",
            "mode": "membw",
            "threads": n_threads,
            "buffer_mib": MEMBW_BYTES >> 20,
            "read_gb_s": read_gb_s,
            "copy_gb_s": copy_gb_s,
        });
        println!("{out}");
        return Ok(());
    }
    let n_ctx = args.n_prompt + args.n_gen + 16;
    let load_start = Instant::now();
    let engine = Engine::load(&args.model, Some(n_ctx))?;
    let load_s = load_start.elapsed().as_secs_f64();
    let model = engine.model();
    let mut out = json!({
        "engine": "codelm",
        "mode": args.mode,
        "model": args.model.display().to_string(),
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "load_s": load_s,
    });
    let fields: Value = match args.mode.as_str() {
        "tokenize" => {
            let path = args.text_file.as_ref().ok_or("--text-file is required")?;
            let text = std::fs::read_to_string(path)?;
            let mut ids = engine.tokenizer().encode(&text, false);
            if ids.len() < args.n_prompt {
                return Err(format!("{} has only {} tokens", path.display(), ids.len()).into());
            }
            ids.truncate(args.n_prompt);
            // Bytes of weights per storage type, the quantization to record, and
            // the kernel that multiplies each on this CPU.
            let weight_types: Vec<String> = model
                .weight_types()
                .iter()
                .map(|(dtype, n_bytes)| {
                    let kernel = codelm_model::quant::kernels::Kernel::select(*dtype).name();
                    format!(
                        "{dtype:?}: {:.0} MiB ({kernel})",
                        *n_bytes as f64 / 1048576.0
                    )
                })
                .collect();
            let features = codelm_model::isa::features().names();
            json!({ "ids": ids, "weight_types": weight_types, "codelm_features": features })
        }
        "prefill" => {
            let prompt = read_prompt_ids(&args)?;
            let mut warmup = model.new_cache();
            model.forward(
                &mut [&mut warmup],
                &[&prompt[..N_WARMUP_TOKENS]],
                n_ctx,
                false,
            )?;
            let mut cache = model.new_cache();
            let start = Instant::now();
            model.forward(&mut [&mut cache], &[&prompt], n_ctx, false)?;
            let prefill_s = start.elapsed().as_secs_f64();
            json!({
                "n_prompt": prompt.len(),
                "prefill_s": prefill_s,
                "prefill_tok_s": prompt.len() as f64 / prefill_s,
            })
        }
        "decode" => {
            let prompt = read_prompt_ids(&args)?;
            let mut cache = model.new_cache();
            let logits = model.forward(&mut [&mut cache], &[&prompt], n_ctx, false)?;
            let mut token = argmax(&logits[0]);
            let mut tokens = vec![token];
            let start = Instant::now();
            // The first token comes from the prefill, so `n_gen - 1` steps make `n_gen`.
            for _ in 1..args.n_gen {
                let logits = model.forward(&mut [&mut cache], &[&[token]], n_ctx, false)?;
                token = argmax(&logits[0]);
                tokens.push(token);
            }
            let decode_s = start.elapsed().as_secs_f64();
            json!({
                "n_prompt": prompt.len(),
                "n_generated": tokens.len(),
                "decode_s": decode_s,
                "decode_tok_s": (args.n_gen - 1) as f64 / decode_s,
                "weight_bytes_per_token": model.weight_bytes(),
                "tokens": tokens,
            })
        }
        "batch" => {
            let prompt = read_prompt_ids(&args)?;
            // A separate prefill, which also warms the weights up.
            let mut cache = model.new_cache();
            let start = Instant::now();
            model.forward(&mut [&mut cache], &[&prompt], n_ctx, false)?;
            let prefill_s = start.elapsed().as_secs_f64();
            drop(cache);
            let opts = GenerateOptions {
                n: args.n_samples,
                max_tokens: args.n_gen,
                sampling: SamplingParams {
                    temperature: 0.8,
                    seed: args.seed,
                    ..Default::default()
                },
                stop: Vec::new(),
                logprobs: None,
            };
            let mut first_token_at: Option<Instant> = None;
            let start = Instant::now();
            let completions = engine.generate_tokens(&prompt, &[], &opts, &mut |_, _| {
                first_token_at.get_or_insert_with(Instant::now);
                true
            })?;
            let end = Instant::now();
            let first = first_token_at.ok_or("no sample produced text")?;
            let n_generated: usize = completions.iter().map(|c| c.tokens.len()).sum();
            // The first token of each sample comes from the shared prefill's logits.
            let n_decoded = n_generated - completions.len();
            let total_s = (end - start).as_secs_f64();
            let decode_s = (end - first).as_secs_f64();
            json!({
                "n_prompt": prompt.len(),
                "n_samples": args.n_samples,
                "n_generated": n_generated,
                "separate_prefill_s": prefill_s,
                "batch_prefill_s": (first - start).as_secs_f64(),
                "batch_decode_s": decode_s,
                "batch_total_s": total_s,
                "batch_decode_tok_s": n_decoded as f64 / decode_s,
                "batch_total_tok_s": n_generated as f64 / total_s,
            })
        }
        other => return Err(format!("unknown mode {other}").into()),
    };
    if let (Value::Object(out), Value::Object(fields)) = (&mut out, fields) {
        out.extend(fields);
        out.insert("peak_rss_kib".into(), json!(peak_rss_kib()));
    }
    println!("{out}");
    Ok(())
}
