//! Tiny random-weight models, written by the tests themselves, through the public API.
//!
//! Three areas, each with one `check_*` helper:
//!
//! - **Loading errors** ([`check_error`]): broken GGUF files (truncated at every
//!   section, bad magic, unknown version, architecture or tensor type, missing or
//!   misshapen tensors, mistyped metadata) give the right [`Error`] variant, never a
//!   panic.
//! - **Forward invariants** ([`check_close`]): every storage type approximates the F32
//!   model within a stated tolerance; a batch of sequences equals each sequence alone;
//!   prefill equals token-by-token decoding; `KvCache::truncate` then re-feeding
//!   recomputes the same logits; caches that share a frozen prefix compute what
//!   copies would, bit for bit; context overflow and bad token ids are errors.
//! - **Reference logits** ([`check_reference`]): `fixtures/tiny/` holds two tiny
//!   Hugging Face checkpoints (llama with an untied head, qwen2 with QKV biases and a
//!   tied head) and the logits transformers computes for them under three RoPE
//!   variants (none, linear, YaRN); `fixtures/tiny/make_hf_fixture.py` made them. Each
//!   case is loaded both as the Hugging Face directory and as a GGUF F32 file converted
//!   here the way `convert_hf_to_gguf.py` does (llama's Q/K rows permuted for adjacent
//!   RoPE pairs).

use std::path::{Path, PathBuf};

use codelm_model::gguf::GgufWriter;
use codelm_model::quant::{blocks, quantize_row, GgmlType};
use codelm_model::safetensors::SafeTensors;
use codelm_model::testing::{
    n_vocab, random_weights, tiny_metadata, tiny_writer, write_tiny_model, SplitMix64, TinySpec,
    TinyTensor,
};
use codelm_model::{Error, KvCache, MetaValue, Model};
use serde_json::Value;

// ---------------------------------------------------------------------------------
// Test helpers (the tiny-model builder is `codelm_model::testing`).
// ---------------------------------------------------------------------------------

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("codelm-tiny-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------
// Loading errors.
// ---------------------------------------------------------------------------------

/// Writes `bytes` as a GGUF file, loads it, and checks the error is the expected one.
fn check_error(case: &str, bytes: &[u8], is_expected: impl Fn(&Error) -> bool) {
    check_load_error(case, &[("model.gguf", bytes)], is_expected);
}

/// Writes `files` into a fresh directory and loads `model.gguf` if it is among them,
/// else the directory (a Hugging Face model); the load must fail without panicking
/// with an error `is_expected` accepts.
fn check_load_error(case: &str, files: &[(&str, &[u8])], is_expected: impl Fn(&Error) -> bool) {
    let dir = TempDir::new(&format!(
        "err-{}",
        case.replace(|c: char| !c.is_alphanumeric(), "_")
    ));
    for (name, bytes) in files {
        std::fs::write(dir.path(name), bytes).unwrap();
    }
    let path = if files.iter().any(|(name, _)| *name == "model.gguf") {
        dir.path("model.gguf")
    } else {
        dir.0.clone()
    };
    let result = std::panic::catch_unwind(|| Model::load(&path).map(|_| ()));
    match result {
        Err(_) => panic!("{case}: Model::load panicked"),
        Ok(Ok(())) => panic!("{case}: Model::load succeeded"),
        Ok(Err(e)) => assert!(is_expected(&e), "{case}: unexpected error {e:?}"),
    }
}

fn valid_bytes() -> (Vec<u8>, Vec<TinyTensor>) {
    let spec = TinySpec::small();
    let weights = random_weights(&spec);
    (
        tiny_writer(&tiny_metadata(&spec), &weights, GgmlType::F32).to_bytes(),
        weights,
    )
}

/// Byte offset where the tensor info of `name` starts (its length prefix).
fn tensor_info_offset(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("tensor info `{name}` not found"))
}

#[test]
fn truncated_files_are_truncated_errors() {
    let (bytes, weights) = valid_bytes();
    let first_info = tensor_info_offset(&bytes, &weights[0].name);
    let last = weights.last().unwrap();
    let last_info = tensor_info_offset(&bytes, &last.name);
    let last_len = last.data.len() * 4;
    let last_data_end = bytes.len() - (32 - last_len % 32) % 32;
    let cuts = [
        ("empty file", 0),
        ("inside the magic", 2),
        ("inside the version", 6),
        ("inside the tensor count", 12),
        ("inside the metadata count", 20),
        ("after the counts", 24),
        ("inside the first key", 30),
        ("inside the metadata", first_info / 2),
        ("inside the last metadata value", first_info - 3),
        ("inside the first tensor name", first_info + 10),
        ("inside the last tensor info", last_info + 12),
        (
            "inside the first tensor's data",
            bytes.len() - weights.iter().map(|t| t.data.len() * 4).sum::<usize>() + 8,
        ),
        ("inside the last tensor's data", last_data_end - 1),
    ];
    for (case, cut) in cuts {
        check_error(case, &bytes[..cut], |e| {
            matches!(e, Error::Truncated { .. })
        });
    }
}

#[test]
fn bad_magic_and_versions_are_rejected() {
    let (bytes, _) = valid_bytes();
    let mut magic = bytes.clone();
    magic[..4].copy_from_slice(b"GGML");
    check_error(
        "bad magic",
        &magic,
        |e| matches!(e, Error::BadMagic { found, .. } if found == b"GGML"),
    );
    for version in [0u32, 1, 4, 0xFFFF_FFFF] {
        let mut b = bytes.clone();
        b[4..8].copy_from_slice(&version.to_le_bytes());
        check_error(
            &format!("version {version}"),
            &b,
            |e| matches!(e, Error::UnsupportedVersion { version: v, .. } if *v == version),
        );
    }
}

#[test]
fn unknown_architecture_is_named() {
    let mut spec = TinySpec::small();
    spec.arch = "gpt-neox";
    let bytes =
        tiny_writer(&tiny_metadata(&spec), &random_weights(&spec), GgmlType::F32).to_bytes();
    check_error(
        "gpt-neox",
        &bytes,
        |e| matches!(e, Error::UnknownArchitecture { arch, .. } if arch == "gpt-neox"),
    );
}

#[test]
fn unsupported_tensor_type_names_the_tensor() {
    let (mut bytes, weights) = valid_bytes();
    let t = &weights[3];
    // Name, then u32 n_dims, u64 dims, then the u32 type id.
    let at = tensor_info_offset(&bytes, &t.name) + 8 + t.name.len() + 4 + 8 * t.shape.len();
    assert_eq!(bytes[at..at + 4], 0u32.to_le_bytes());
    bytes[at..at + 4].copy_from_slice(&10u32.to_le_bytes()); // Q2_K.
    check_error("Q2_K tensor", &bytes, |e| {
        matches!(e, Error::UnsupportedType { tensor, type_name, .. }
            if *tensor == t.name && type_name.contains("Q2_K"))
    });
    bytes[at..at + 4].copy_from_slice(&999u32.to_le_bytes());
    check_error(
        "type 999",
        &bytes,
        |e| matches!(e, Error::UnsupportedType { tensor, .. } if *tensor == t.name),
    );
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let spec = TinySpec::small();
    let meta = tiny_metadata(&spec);
    let weights = random_weights(&spec);

    let without: Vec<TinyTensor> = weights
        .iter()
        .filter(|t| t.name != "blk.1.ffn_down.weight")
        .cloned()
        .collect();
    check_error(
        "missing ffn_down",
        &tiny_writer(&meta, &without, GgmlType::F32).to_bytes(),
        |e| matches!(e, Error::MissingTensor { tensor, .. } if tensor == "blk.1.ffn_down.weight"),
    );

    let without_norm: Vec<TinyTensor> = weights
        .iter()
        .filter(|t| t.name != "output_norm.weight")
        .cloned()
        .collect();
    check_error(
        "missing output_norm",
        &tiny_writer(&meta, &without_norm, GgmlType::F32).to_bytes(),
        |e| matches!(e, Error::MissingTensor { tensor, .. } if tensor == "output_norm.weight"),
    );

    // attn_k stored with the query's shape (64 × 64 instead of 32 × 64).
    let mut wrong = weights.clone();
    let k = wrong
        .iter_mut()
        .find(|t| t.name == "blk.0.attn_k.weight")
        .unwrap();
    k.shape = vec![64, 64];
    k.data = vec![0.5; 64 * 64];
    check_error(
        "misshapen attn_k",
        &tiny_writer(&meta, &wrong, GgmlType::F32).to_bytes(),
        |e| {
            matches!(e, Error::ShapeMismatch { tensor, expected, actual, .. }
            if tensor == "blk.0.attn_k.weight" && *expected == [64, 32] && *actual == [64, 64])
        },
    );

    // A norm vector of the wrong length.
    let mut short = weights.clone();
    let norm = short
        .iter_mut()
        .find(|t| t.name == "blk.1.ffn_norm.weight")
        .unwrap();
    norm.shape = vec![32];
    norm.data.truncate(32);
    check_error(
        "short ffn_norm",
        &tiny_writer(&meta, &short, GgmlType::F32).to_bytes(),
        |e| {
            matches!(e, Error::ShapeMismatch { tensor, expected, actual, .. }
            if tensor == "blk.1.ffn_norm.weight" && *expected == [64] && *actual == [32])
        },
    );
}

#[test]
fn mistyped_or_missing_metadata_is_named() {
    let spec = TinySpec::small();
    let weights = random_weights(&spec);
    let cases: [(&str, Option<MetaValue>, &str); 4] = [
        (
            "qwen2.embedding_length",
            Some(MetaValue::Str("64".into())),
            "unsigned integer",
        ),
        (
            "qwen2.attention.layer_norm_rms_epsilon",
            Some(MetaValue::U32(1)),
            "float",
        ),
        ("qwen2.block_count", None, "unsigned integer"),
        ("general.architecture", Some(MetaValue::U32(2)), "string"),
    ];
    for (key, value, expected_type) in cases {
        let meta: Vec<(String, MetaValue)> = tiny_metadata(&spec)
            .into_iter()
            .filter_map(|(k, v)| match (k == key, &value) {
                (false, _) => Some((k, v)),
                (true, Some(replacement)) => Some((k, replacement.clone())),
                (true, None) => None,
            })
            .collect();
        check_error(
            key,
            &tiny_writer(&meta, &weights, GgmlType::F32).to_bytes(),
            |e| matches!(e, Error::Metadata { key: k, expected, .. } if k == key && *expected == expected_type),
        );
    }
}

/// Runs `body(case)` for each case in a child process (this test binary, filtered to
/// `test_name`), so that an abort, which would take the whole binary down, fails only
/// this test and names the case.
fn in_child_processes(test_name: &str, cases: &[&str], body: impl Fn(&str)) {
    if let Some(case) = std::env::var_os("CODELM_TINY_CHILD_CASE") {
        body(case.to_str().unwrap());
        return;
    }
    let mut failures = Vec::new();
    for case in cases {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
            .env("CODELM_TINY_CHILD_CASE", case)
            .output()
            .unwrap();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first_lines: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(3)
                .collect();
            failures.push(format!(
                "{case}: {} — {}",
                out.status,
                first_lines.join(" | ")
            ));
        }
    }
    assert!(failures.is_empty(), "{test_name}:\n{}", failures.join("\n"));
}

#[test]
fn absurd_hyper_parameters_are_errors() {
    // Counts come from the file; one far beyond what the tensors can back must be
    // refused, not used to size an allocation (whose failure aborts the process).
    let keys = [
        "qwen2.block_count",
        "qwen2.feed_forward_length",
        "qwen2.embedding_length",
        "qwen2.attention.head_count",
        "qwen2.attention.head_count_kv",
        "qwen2.context_length",
    ];
    in_child_processes("absurd_hyper_parameters_are_errors", &keys, |key| {
        let spec = TinySpec::small();
        let meta: Vec<(String, MetaValue)> = tiny_metadata(&spec)
            .into_iter()
            .map(|(k, v)| {
                if k == key {
                    (k, MetaValue::U64(1 << 40))
                } else {
                    (k, v)
                }
            })
            .collect();
        let bytes = tiny_writer(&meta, &random_weights(&spec), GgmlType::F32).to_bytes();
        if key.ends_with("context_length") {
            // A long training context is legitimate; loading must not allocate for it.
            let dir = TempDir::new("ctx-2-40");
            let path = dir.path("model.gguf");
            std::fs::write(&path, bytes).unwrap();
            let (model, _) = Model::load(&path).unwrap();
            assert_eq!(model.config.n_ctx_train, 1 << 40);
            return;
        }
        check_error(key, &bytes, |e| {
            matches!(
                e,
                Error::Format { .. }
                    | Error::ShapeMismatch { .. }
                    | Error::MissingTensor { .. }
                    | Error::Metadata { .. }
            )
        });
    });
}

#[test]
fn broken_hugging_face_directories_are_errors() {
    let source = fixture_dir().join("qwen2");
    let config = std::fs::read(source.join("config.json")).unwrap();
    let weights = std::fs::read(source.join("model.safetensors")).unwrap();
    let with_config = |edit: &dyn Fn(&mut Value)| -> Vec<u8> {
        let mut json: Value = serde_json::from_slice(&config).unwrap();
        edit(&mut json);
        json.to_string().into_bytes()
    };

    check_load_error("no config", &[("model.safetensors", &weights)], |e| {
        matches!(e, Error::Io { .. })
    });
    check_load_error("no weights", &[("config.json", &config)], |e| {
        matches!(e, Error::Format { .. })
    });
    check_load_error(
        "config not JSON",
        &[("config.json", b"{"), ("model.safetensors", &weights)],
        |e| matches!(e, Error::Format { .. }),
    );
    let neox = with_config(&|c| c["model_type"] = "gpt_neox".into());
    check_load_error(
        "gpt_neox",
        &[("config.json", &neox), ("model.safetensors", &weights)],
        |e| matches!(e, Error::UnknownArchitecture { arch, .. } if arch == "gpt_neox"),
    );
    let string_hidden = with_config(&|c| c["hidden_size"] = "64".into());
    check_load_error(
        "hidden_size string",
        &[
            ("config.json", &string_hidden),
            ("model.safetensors", &weights),
        ],
        |e| matches!(e, Error::Format { .. }),
    );
    let wider = with_config(&|c| c["intermediate_size"] = 96.into());
    check_load_error(
        "intermediate_size 96",
        &[("config.json", &wider), ("model.safetensors", &weights)],
        |e| matches!(e, Error::ShapeMismatch { tensor, .. } if tensor == "model.layers.0.mlp.gate_proj.weight"),
    );
    let deeper = with_config(&|c| c["num_hidden_layers"] = 3.into());
    check_load_error(
        "3 layers",
        &[("config.json", &deeper), ("model.safetensors", &weights)],
        |e| matches!(e, Error::MissingTensor { tensor, .. } if tensor.starts_with("model.layers.2.")),
    );

    // The safetensors file cut inside its length prefix, its JSON header, and its data.
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    for cut in [
        0,
        4,
        8 + header_len / 2,
        8 + header_len + 100,
        weights.len() - 1,
    ] {
        check_load_error(
            &format!("safetensors cut at {cut}"),
            &[
                ("config.json", &config),
                ("model.safetensors", &weights[..cut]),
            ],
            |e| {
                matches!(
                    e,
                    Error::Format { .. } | Error::Truncated { .. } | Error::Io { .. }
                )
            },
        );
    }
    // A header that claims more data than the file holds.
    let mut lying = weights.clone();
    let header = std::str::from_utf8(&lying[8..8 + header_len])
        .unwrap()
        .to_string();
    let offsets_key = "\"data_offsets\":[0,";
    let at = header.find(offsets_key).expect("a tensor at offset 0") + offsets_key.len();
    let n_digits = header[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .count();
    lying[8 + at..8 + at + n_digits].fill(b'9');
    check_load_error(
        "data_offsets past the end",
        &[("config.json", &config), ("model.safetensors", &lying)],
        |e| matches!(e, Error::Format { .. } | Error::Truncated { .. }),
    );
}

// ---------------------------------------------------------------------------------
// Forward invariants.
// ---------------------------------------------------------------------------------

/// Largest |a − b|, after checking lengths and finiteness.
fn check_close(case: &str, actual: &[f32], expected: &[f32], tolerance: f32) -> f32 {
    assert_eq!(actual.len(), expected.len(), "{case}: lengths");
    assert!(
        actual.iter().all(|v| v.is_finite()),
        "{case}: non-finite logits"
    );
    let max_err = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_err <= tolerance,
        "{case}: max |Δ| {max_err} exceeds tolerance {tolerance}"
    );
    max_err
}

fn load(spec: &TinySpec, dtype: GgmlType, dir: &TempDir) -> Model {
    let path = dir.path(&format!("tiny-{}.gguf", dtype.name()));
    write_tiny_model(&path, spec, dtype).unwrap();
    Model::load(&path).unwrap().0
}

fn random_tokens(seed: u64, n: usize) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.below(n_vocab() as u32)).collect()
}

/// Logits after every token of `tokens` fed at once into a fresh cache.
fn prefill(model: &Model, tokens: &[u32], all: bool) -> Vec<f32> {
    let mut cache = model.new_cache();
    model
        .forward(&mut [&mut cache], &[tokens], 1 << 20, all)
        .unwrap()
        .remove(0)
}

fn rms(xs: &[f32]) -> f32 {
    (xs.iter().map(|x| x * x).sum::<f32>() / xs.len() as f32).sqrt()
}

/// `weights` with every matrix rounded through `dtype` and back to F32.
fn round_trip(weights: &[TinyTensor], dtype: GgmlType) -> Vec<TinyTensor> {
    weights
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.shape.len() == 2 {
                let bytes = quantize_row(dtype, &t.data);
                blocks::dequantize(dtype, &bytes, &mut t.data);
            }
            t
        })
        .collect()
}

fn load_weights(
    spec: &TinySpec,
    weights: &[TinyTensor],
    dtype: GgmlType,
    dir: &TempDir,
    tag: &str,
) -> Model {
    let path = dir.path(&format!("tiny-{}-{tag}.gguf", dtype.name()));
    tiny_writer(&tiny_metadata(spec), weights, dtype)
        .write(&path)
        .unwrap();
    Model::load(&path).unwrap().0
}

#[test]
fn every_weight_type_approximates_f32() {
    // Two comparisons per type, over the logits of all positions of a 24-token
    // sequence:
    // - against an F32 model holding the same weights rounded through the type
    //   (so only the kernels differ: activations are quantized to 8 bits for the
    //   integer types), max |Δ| within `kernel_tolerance` × the logits' RMS;
    // - against the F32 model of the original weights, RMS(Δ) within
    //   `type_tolerance` × the logits' RMS (weight rounding, amplified by two random
    //   layers).
    // Tolerances hold the measured errors with about 2× margin.
    let cases: [(GgmlType, f32, f32); 11] = [
        (GgmlType::F32, 1e-5, 1e-6),
        (GgmlType::F16, 1e-5, 1e-3),
        (GgmlType::BF16, 1e-5, 1e-2),
        (GgmlType::Q8_0, 0.15, 0.04),
        (GgmlType::Q6_K, 0.15, 0.1),
        (GgmlType::Q5_0, 0.15, 0.2),
        (GgmlType::Q5_1, 0.15, 0.2),
        (GgmlType::Q5_K, 0.15, 0.2),
        (GgmlType::Q4_0, 0.15, 0.4),
        (GgmlType::Q4_1, 0.15, 0.4),
        (GgmlType::Q4_K, 0.15, 0.4),
    ];
    let dir = TempDir::new("types");
    let tokens = random_tokens(7, 24);
    for spec in [TinySpec::small(), TinySpec::wide()] {
        let weights = random_weights(&spec);
        let reference = prefill(
            &load_weights(&spec, &weights, GgmlType::F32, &dir, "orig"),
            &tokens,
            true,
        );
        let scale = rms(&reference);
        for (dtype, kernel_tolerance, type_tolerance) in cases {
            if spec.n_embd % dtype.block_size() != 0 || spec.n_ff % dtype.block_size() != 0 {
                continue;
            }
            let case = format!("{} n_embd {}", dtype.name(), spec.n_embd);
            let logits = prefill(
                &load_weights(&spec, &weights, dtype, &dir, "q"),
                &tokens,
                true,
            );
            let rounded = round_trip(&weights, dtype);
            let same_weights = prefill(
                &load_weights(&spec, &rounded, GgmlType::F32, &dir, "rounded"),
                &tokens,
                true,
            );
            let kernel_err = check_close(
                &format!("{case} vs F32 of the rounded weights"),
                &logits,
                &same_weights,
                kernel_tolerance * scale,
            );
            let diff: Vec<f32> = logits.iter().zip(&reference).map(|(a, b)| a - b).collect();
            let type_err = rms(&diff) / scale;
            assert!(
                type_err <= type_tolerance,
                "{case}: RMS(Δ) vs F32 is {type_err} × RMS, above {type_tolerance}"
            );
            eprintln!(
                "{case:>16}: kernel max |Δ| {:.2e} × RMS, weights RMS(Δ) {type_err:.2e} × RMS",
                kernel_err / scale
            );
        }
    }
}

/// Exact: a batch's rows never influence each other's arithmetic (ARCHITECTURE.md).
#[test]
fn batched_sequences_equal_each_alone() {
    let dir = TempDir::new("batch");
    for dtype in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0] {
        let model = load(&TinySpec::small(), dtype, &dir);
        let mut worst = 0.0f32;
        let seqs = [
            random_tokens(1, 5),
            random_tokens(2, 17),
            random_tokens(3, 1),
        ];
        let mut caches: Vec<KvCache> = seqs.iter().map(|_| model.new_cache()).collect();
        let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
        let inputs: Vec<&[u32]> = seqs.iter().map(|s| &s[..]).collect();
        let batched = model.forward(&mut refs, &inputs, 64, true).unwrap();
        for (seq, logits) in seqs.iter().zip(&batched) {
            worst = worst.max(check_close(
                &format!("{} batch of 3, len {}", dtype.name(), seq.len()),
                logits,
                &prefill(&model, seq, true),
                0.0,
            ));
        }
        // A decode step for all three continues each cache correctly.
        let next = [[10u32], [20], [30]];
        let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
        let inputs: Vec<&[u32]> = next.iter().map(|s| &s[..]).collect();
        let step = model.forward(&mut refs, &inputs, 64, false).unwrap();
        for ((seq, t), logits) in seqs.iter().zip(&next).zip(&step) {
            let mut whole = seq.clone();
            whole.push(t[0]);
            worst = worst.max(check_close(
                &format!(
                    "{} batched decode step after len {}",
                    dtype.name(),
                    seq.len()
                ),
                logits,
                &prefill(&model, &whole, false),
                0.0,
            ));
        }
        eprintln!("{}: batched vs alone max |Δ| {worst:.2e}", dtype.name());
    }
}

#[test]
fn prefill_equals_token_by_token() {
    let dir = TempDir::new("prefill");
    for dtype in [GgmlType::F32, GgmlType::Q4_K] {
        let spec = if dtype == GgmlType::F32 {
            TinySpec::small()
        } else {
            TinySpec::wide()
        };
        let model = load(&spec, dtype, &dir);
        let tokens = random_tokens(11, 20);
        let mut worst = 0.0f32;
        let at_once = prefill(&model, &tokens, true);
        let mut cache = model.new_cache();
        let n = model.config.n_vocab;
        for (idx, &t) in tokens.iter().enumerate() {
            let step = model
                .forward(&mut [&mut cache], &[&[t]], 64, false)
                .unwrap();
            worst = worst.max(check_close(
                &format!("{} position {idx}", dtype.name()),
                &step[0],
                &at_once[idx * n..(idx + 1) * n],
                1e-4,
            ));
        }
        assert_eq!(cache.len(), tokens.len());
        eprintln!(
            "{}: prefill vs token by token max |Δ| {worst:.2e}",
            dtype.name()
        );
    }
}

#[test]
fn truncate_then_refeed_recomputes_the_same_logits() {
    let dir = TempDir::new("truncate");
    let model = load(&TinySpec::small(), GgmlType::F32, &dir);
    let tokens = random_tokens(5, 12);
    let other = random_tokens(6, 4);
    let mut cache = model.new_cache();
    let full = model
        .forward(&mut [&mut cache], &[&tokens], 64, false)
        .unwrap();
    let bytes_full = cache.n_bytes();

    cache.truncate(8);
    assert_eq!(cache.len(), 8);
    assert_eq!(cache.n_bytes(), bytes_full / 12 * 8);
    let again = model
        .forward(&mut [&mut cache], &[&tokens[8..]], 64, false)
        .unwrap();
    check_close("re-fed suffix", &again[0], &full[0], 1e-5);

    // A different continuation of the shared prefix equals a fresh run.
    cache.truncate(8);
    let branch = model
        .forward(&mut [&mut cache], &[&other], 64, false)
        .unwrap();
    let mut fresh_tokens = tokens[..8].to_vec();
    fresh_tokens.extend(&other);
    check_close(
        "branch",
        &branch[0],
        &prefill(&model, &fresh_tokens, false),
        1e-5,
    );

    // Truncating to zero gives an empty cache that works like a new one.
    cache.truncate(0);
    assert!(cache.is_empty());
    let restart = model
        .forward(&mut [&mut cache], &[&tokens], 64, false)
        .unwrap();
    check_close("restart", &restart[0], &full[0], 1e-5);
}

/// A frozen cache's clones read its rows in place; whatever is shared, every
/// continuation computes the same bits as a cache that copied everything.
#[test]
fn shared_rows_change_no_bit() {
    let dir = TempDir::new("shared");
    let model = load(&TinySpec::small(), GgmlType::Q8_0, &dir);
    let tokens = random_tokens(7, 12);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    // Logits of each of `steps` (a chunk of tokens each) run on `cache`.
    let run = |cache: &mut KvCache, steps: &[&[u32]]| -> Vec<Vec<u32>> {
        steps
            .iter()
            .map(|chunk| bits(&model.forward(&mut [cache], &[chunk], 64, false).unwrap()[0]))
            .collect()
    };
    let copied = |prompt: &[u32], steps: &[&[u32]]| {
        let mut cache = model.new_cache();
        run(&mut cache, &[prompt]);
        run(&mut cache, steps)
    };

    let mut prompt = model.new_cache();
    run(&mut prompt, &[&tokens[..8]]);
    let bytes = prompt.n_bytes();
    prompt.freeze();
    assert_eq!(prompt.n_bytes(), bytes);
    // Two samples branch off the frozen prompt, one token at a time; one's
    // rows never reach the other.
    let (a, b) = ([[3u32], [4], [5]], [[6u32], [7], [8]]);
    let a: Vec<&[u32]> = a.iter().map(|t| &t[..]).collect();
    let b: Vec<&[u32]> = b.iter().map(|t| &t[..]).collect();
    let (mut first, mut second) = (prompt.clone(), prompt.clone());
    assert_eq!(run(&mut first, &a), copied(&tokens[..8], &a));
    assert_eq!(run(&mut second, &b), copied(&tokens[..8], &b));
    assert_eq!((first.len(), second.len(), prompt.len()), (11, 11, 8));

    // Freezing again merges shared and own rows; going on changes nothing.
    first.freeze();
    let mut after: Vec<&[u32]> = a.clone();
    after.extend([&tokens[8..10], &tokens[10..]]);
    assert_eq!(
        run(&mut first, &after[3..]),
        copied(&tokens[..8], &after)[3..]
    );

    // A prefix, a truncation into the shared rows, and one past them.
    let mut prefix = prompt.prefix(5);
    assert_eq!(
        run(&mut prefix, &[&tokens[5..]]),
        copied(&tokens[..5], &[&tokens[5..]])
    );
    second.truncate(3);
    assert_eq!(
        run(&mut second, &[&tokens[3..]]),
        copied(&tokens[..3], &[&tokens[3..]])
    );
    let mut past = first.prefix(9);
    assert_eq!(past.len(), 9);
    past.truncate(10);
    assert_eq!(
        run(&mut past, &[&[1]]),
        copied(&[&tokens[..8], a[0]].concat(), &[&[1]])
    );
}

#[test]
fn context_overflow_and_bad_tokens_are_errors() {
    let dir = TempDir::new("limits");
    let model = load(&TinySpec::small(), GgmlType::F32, &dir);
    let tokens = random_tokens(9, 9);
    let n_vocab = model.config.n_vocab;

    let mut cache = model.new_cache();
    let err = model
        .forward(&mut [&mut cache], &[&tokens], 8, false)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ContextOverflow {
                needed: 9,
                n_ctx: 8
            }
        ),
        "{err:?}"
    );
    assert!(
        cache.is_empty(),
        "a refused forward must not touch the cache"
    );

    model
        .forward(&mut [&mut cache], &[&tokens[..6]], 8, false)
        .unwrap();
    let err = model
        .forward(&mut [&mut cache], &[&tokens[6..]], 8, false)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ContextOverflow {
                needed: 9,
                n_ctx: 8
            }
        ),
        "{err:?}"
    );
    assert_eq!(cache.len(), 6);
    // Exactly full is fine.
    model
        .forward(&mut [&mut cache], &[&tokens[6..8]], 8, false)
        .unwrap();

    for bad in [n_vocab as u32, u32::MAX] {
        let mut good_cache = model.new_cache();
        let mut cache = model.new_cache();
        let err = model
            .forward(
                &mut [&mut good_cache, &mut cache],
                &[&tokens[..3], &[1, bad]],
                64,
                false,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::BadToken { id, n_vocab: n } if id == bad && n == n_vocab),
            "{err:?}"
        );
        assert!(good_cache.is_empty() && cache.is_empty());
    }
}

// ---------------------------------------------------------------------------------
// Reference logits from Hugging Face transformers.
// ---------------------------------------------------------------------------------

/// Largest allowed |ours − transformers| for a logit (both compute in F32; logits are
/// of order 1–5, and the differences come from summation order and `exp`/`sin`).
const HF_TOLERANCE: f32 = 1e-3;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

/// A model directory for one case: the committed config with the case's overrides,
/// and the committed weights.
fn hf_dir(case: &Value, dir: &TempDir) -> PathBuf {
    let source = fixture_dir().join(case["model"].as_str().unwrap());
    let target = dir.0.join(case["name"].as_str().unwrap());
    std::fs::create_dir_all(&target).unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap())
            .unwrap();
    for (key, value) in case["config_overrides"].as_object().unwrap() {
        config[key] = value.clone();
    }
    std::fs::write(target.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        source.join("model.safetensors"),
        target.join("model.safetensors"),
    )
    .unwrap();
    target
}

/// Converts a Hugging Face directory to a GGUF F32 file as `convert_hf_to_gguf.py`
/// does: GGUF names, llama's Q/K rows permuted so RoPE pairs are adjacent, RoPE
/// scaling under `{arch}.rope.scaling.*`.
fn hf_to_gguf(dir: &Path, out: &Path) {
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let st = SafeTensors::open_dir(dir).unwrap();
    let arch = config["model_type"].as_str().unwrap();
    let int = |k: &str| config[k].as_u64().unwrap() as usize;
    let (n_head, n_kv_head, n_layer) = (
        int("num_attention_heads"),
        int("num_key_value_heads"),
        int("num_hidden_layers"),
    );
    let mut w = GgufWriter::new();
    let a = arch;
    w.meta("general.architecture", MetaValue::Str(a.into()));
    w.meta(
        &format!("{a}.context_length"),
        MetaValue::U32(int("max_position_embeddings") as u32),
    );
    w.meta(
        &format!("{a}.embedding_length"),
        MetaValue::U32(int("hidden_size") as u32),
    );
    w.meta(&format!("{a}.block_count"), MetaValue::U32(n_layer as u32));
    w.meta(
        &format!("{a}.feed_forward_length"),
        MetaValue::U32(int("intermediate_size") as u32),
    );
    w.meta(
        &format!("{a}.attention.head_count"),
        MetaValue::U32(n_head as u32),
    );
    w.meta(
        &format!("{a}.attention.head_count_kv"),
        MetaValue::U32(n_kv_head as u32),
    );
    w.meta(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        MetaValue::F32(config["rms_norm_eps"].as_f64().unwrap() as f32),
    );
    w.meta(
        &format!("{a}.rope.freq_base"),
        MetaValue::F32(config["rope_theta"].as_f64().unwrap() as f32),
    );
    let scaling = &config["rope_scaling"];
    if let Some(kind) = scaling["type"].as_str() {
        w.meta(
            &format!("{a}.rope.scaling.type"),
            MetaValue::Str(kind.into()),
        );
        w.meta(
            &format!("{a}.rope.scaling.factor"),
            MetaValue::F32(scaling["factor"].as_f64().unwrap() as f32),
        );
        if let Some(orig) = scaling["original_max_position_embeddings"].as_u64() {
            w.meta(
                &format!("{a}.rope.scaling.original_context_length"),
                MetaValue::U32(orig as u32),
            );
        }
    }

    let read = |name: &str| -> Option<(Vec<usize>, Vec<f32>)> {
        let (t, _) = st.get(name)?;
        let mut data = vec![0f32; t.shape.iter().product()];
        blocks::dequantize(t.dtype, t.bytes.as_slice(), &mut data);
        Some((t.shape.clone(), data))
    };
    // Rows (n_heads, 2, head_dim/2) → (n_heads, head_dim/2, 2).
    let permute = |(shape, data): (Vec<usize>, Vec<f32>), heads: usize| {
        let cols = shape.get(1).copied().unwrap_or(1);
        let head_dim = shape[0] / heads;
        let half = head_dim / 2;
        let mut out = vec![0f32; data.len()];
        for h in 0..heads {
            for i in 0..half {
                for j in 0..2 {
                    let from = h * head_dim + j * half + i;
                    let to = h * head_dim + i * 2 + j;
                    out[to * cols..(to + 1) * cols]
                        .copy_from_slice(&data[from * cols..(from + 1) * cols]);
                }
            }
        }
        (shape, out)
    };
    let mut names: Vec<(String, String, usize)> = vec![
        (
            "model.embed_tokens.weight".into(),
            "token_embd.weight".into(),
            0,
        ),
        ("model.norm.weight".into(), "output_norm.weight".into(), 0),
        ("lm_head.weight".into(), "output.weight".into(), 0),
    ];
    for i in 0..n_layer {
        let l = |hf: &str, gguf: &str, heads: usize| {
            (
                format!("model.layers.{i}.{hf}"),
                format!("blk.{i}.{gguf}"),
                heads,
            )
        };
        let permuted = |heads| if arch == "llama" { heads } else { 0 };
        names.extend([
            l("input_layernorm.weight", "attn_norm.weight", 0),
            l("self_attn.q_proj.weight", "attn_q.weight", permuted(n_head)),
            l(
                "self_attn.k_proj.weight",
                "attn_k.weight",
                permuted(n_kv_head),
            ),
            l("self_attn.v_proj.weight", "attn_v.weight", 0),
            l("self_attn.q_proj.bias", "attn_q.bias", permuted(n_head)),
            l("self_attn.k_proj.bias", "attn_k.bias", permuted(n_kv_head)),
            l("self_attn.v_proj.bias", "attn_v.bias", 0),
            l("self_attn.o_proj.weight", "attn_output.weight", 0),
            l("post_attention_layernorm.weight", "ffn_norm.weight", 0),
            l("mlp.gate_proj.weight", "ffn_gate.weight", 0),
            l("mlp.up_proj.weight", "ffn_up.weight", 0),
            l("mlp.down_proj.weight", "ffn_down.weight", 0),
        ]);
    }
    for (hf, gguf, heads) in names {
        let Some(tensor) = read(&hf) else { continue };
        let (shape, data) = if heads > 0 {
            permute(tensor, heads)
        } else {
            tensor
        };
        let dims: Vec<usize> = shape.iter().rev().copied().collect();
        w.tensor(
            &gguf,
            &dims,
            GgmlType::F32,
            quantize_row(GgmlType::F32, &data),
        );
    }
    w.write(out).unwrap();
}

/// Loads `path`, runs the fixture's tokens, and compares the logits at the stored
/// positions with transformers'. Returns the largest difference.
fn check_reference(case_name: &str, path: &Path, fixture: &Value, case: &Value) -> f32 {
    let (model, _) = Model::load(path).unwrap_or_else(|e| panic!("{case_name}: {e}"));
    let tokens: Vec<u32> = fixture["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let n = model.config.n_vocab;
    let logits = prefill(&model, &tokens, true);
    let mut worst = 0.0f32;
    for (pos, expected) in case["logits"].as_object().unwrap() {
        let pos: usize = pos.parse().unwrap();
        let expected: Vec<f32> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let err = check_close(
            &format!("{case_name} position {pos}"),
            &logits[pos * n..(pos + 1) * n],
            &expected,
            HF_TOLERANCE,
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn logits_match_transformers() {
    let text = std::fs::read_to_string(fixture_dir().join("hf_logits.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(fixture["format"], 1, "fixture format version");
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    let dir = TempDir::new("hf");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let hf = hf_dir(case, &dir);
        let err_hf = check_reference(&format!("{name} (safetensors)"), &hf, &fixture, case);
        let gguf = dir.path(&format!("{name}.gguf"));
        hf_to_gguf(&hf, &gguf);
        let err_gguf = check_reference(&format!("{name} (GGUF F32)"), &gguf, &fixture, case);
        eprintln!("{name}: max |Δ| safetensors {err_hf:.2e}, GGUF {err_gguf:.2e}");
    }
}

#[test]
fn rope_scaling_changes_the_reference_logits() {
    // Guards the fixture itself: if scaling did not matter at these positions, the
    // test above could not tell a missing scaling implementation from a right one.
    let text = std::fs::read_to_string(fixture_dir().join("hf_logits.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let last = |name: &str| -> Vec<f32> {
        let case = fixture["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        case["logits"]["47"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    for arch in ["llama", "qwen2"] {
        let none = last(&format!("{arch}_none"));
        for rope in ["linear", "yarn"] {
            let scaled = last(&format!("{arch}_{rope}"));
            let diff = none
                .iter()
                .zip(&scaled)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                diff > 100.0 * HF_TOLERANCE,
                "{arch}_{rope}: only {diff} from unscaled"
            );
        }
    }
}

#[test]
fn transformers_5_rope_parameters_are_read() {
    // transformers ≥ 5 writes θ and the scaling into one `rope_parameters` object and
    // no longer writes `rope_theta` or `rope_scaling`; such a config must give the
    // same logits as the classic spelling.
    let text = std::fs::read_to_string(fixture_dir().join("hf_logits.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let dir = TempDir::new("hf5");
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let hf = hf_dir(case, &dir);
        let config_path = hf.join("config.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        let mut params = match config["rope_scaling"].take() {
            Value::Object(scaling) => scaling,
            _ => serde_json::Map::from_iter([("rope_type".to_string(), Value::from("default"))]),
        };
        params.remove("type");
        params.insert("rope_theta".into(), config["rope_theta"].take());
        let object = config.as_object_mut().unwrap();
        object.remove("rope_scaling");
        object.remove("rope_theta");
        object.insert("rope_parameters".into(), Value::Object(params));
        std::fs::write(&config_path, config.to_string()).unwrap();
        check_reference(&format!("{name} (rope_parameters)"), &hf, &fixture, case);
    }
}
