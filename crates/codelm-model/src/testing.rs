//! Tiny random-weight models written to GGUF: for tests, examples and benchmarks of
//! code that needs a real model file without a real model.
//!
//! A [`TinySpec`] gives the shape (qwen2 by default: n_embd 64, 2 layers, 4 heads, 2
//! key/value heads, n_ff 128); [`random_weights`] fills it from a seed;
//! [`tiny_metadata`] spells the hyper-parameters and a Qwen-style byte-level BPE
//! tokenizer (256 byte tokens, 26 merges, the ChatML and FIM special tokens, a ChatML
//! template) as real GGUF files do; [`tiny_writer`] puts both into a [`GgufWriter`].
//! [`write_tiny_model`] does all three for the common case.
//!
//! The steps stay separate because loader tests need to break a file on purpose: drop
//! a tensor, mistype a metadata value, store weights in another type. The random
//! numbers come from [`SplitMix64`] rather than a crate, so the same seed gives the
//! same model, and the same expected values, on every platform and forever.
//!
//! ```
//! use codelm_model::quant::GgmlType;
//! use codelm_model::testing::{n_vocab, write_tiny_model, TinySpec};
//! use codelm_model::Model;
//!
//! let path = std::env::temp_dir().join(format!("codelm-doc-tiny-{}.gguf", std::process::id()));
//! write_tiny_model(&path, &TinySpec::small(), GgmlType::F32)?;
//! let (model, _file) = Model::load(&path)?;
//! std::fs::remove_file(&path)?;
//! assert_eq!(model.config.n_embd, 64);
//! assert_eq!(model.config.n_vocab, n_vocab());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use crate::gguf::{GgufWriter, MetaValue};
use crate::quant::{quantize_row, GgmlType};
use crate::Result;

/// A small deterministic generator (SplitMix64), so weights do not depend on a crate.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 uniformly random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform sample in the open interval (0, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }

    /// A sample in `0..n` (with a negligible modulo bias).
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

/// Hyper-parameters of a tiny model, named as in [`Config`](crate::Config).
#[derive(Clone, Debug)]
pub struct TinySpec {
    /// `general.architecture`: `"qwen2"` adds QKV biases; any other name is written
    /// as given, so loaders can be tested on architectures they do not know.
    pub arch: &'static str,
    /// Hidden size.
    pub n_embd: usize,
    /// Layers.
    pub n_layer: usize,
    /// Query heads; must divide `n_embd`.
    pub n_head: usize,
    /// Key/value heads (GQA); must divide `n_head`.
    pub n_kv_head: usize,
    /// Feed-forward hidden size.
    pub n_ff: usize,
    /// Training context length.
    pub n_ctx: usize,
    /// Seed of [`random_weights`].
    pub seed: u64,
}

impl TinySpec {
    /// qwen2, n_embd 64, 2 layers, 4 heads, 2 kv heads, head_dim 16, n_ff 128, n_ctx 64,
    /// seed 42.
    pub fn small() -> TinySpec {
        TinySpec {
            arch: "qwen2",
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_kv_head: 2,
            n_ff: 128,
            n_ctx: 64,
            seed: 42,
        }
    }

    /// [`TinySpec::small`] with rows of 256 everywhere (n_embd and n_ff 256), for the
    /// K-quant block size.
    pub fn wide() -> TinySpec {
        TinySpec {
            n_embd: 256,
            n_ff: 256,
            ..TinySpec::small()
        }
    }

    fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// GPT-2's byte ↔ printable character map.
fn byte_to_char() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut extra = 0;
    for byte in 0..256u32 {
        if !printable.contains(&byte) {
            printable.push(byte);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut map = vec![' '; 256];
    for (byte, c) in printable.iter().zip(&chars) {
        map[*byte as usize] = char::from_u32(*c).unwrap();
    }
    map
}

const MERGES: &[(&str, &str)] = &[
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("Ġ", "in"),
    ("e", "r"),
    ("d", "e"),
    ("de", "f"),
    ("Ġ", "Ġ"),
    ("ĠĠ", "ĠĠ"),
    ("r", "e"),
    ("re", "t"),
    ("u", "r"),
    ("ret", "ur"),
    ("retur", "n"),
    ("Ġ", "re"),
    ("(", ")"),
    (":", "Ċ"),
    ("Ġ", "a"),
    ("Ġ", "b"),
    ("s", "e"),
    ("l", "f"),
    ("se", "lf"),
    ("p", "r"),
    ("pr", "in"),
    ("prin", "t"),
];

const SPECIALS: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A minimal Qwen-style byte-level BPE vocabulary: 256 byte tokens (id = byte), one
/// token per merge, then the special tokens. Returns (tokens, token types, merges).
fn vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = byte_to_char().iter().map(|c| c.to_string()).collect();
    let mut types = vec![1; 256];
    let mut merges = Vec::new();
    for (left, right) in MERGES {
        tokens.push(format!("{left}{right}"));
        types.push(1);
        merges.push(format!("{left} {right}"));
    }
    for special in SPECIALS {
        tokens.push(special.to_string());
        types.push(3);
    }
    (tokens, types, merges)
}

/// The id of a special token of the tiny vocabulary: `<|endoftext|>`, `<|im_start|>`,
/// `<|im_end|>`, `<|fim_prefix|>`, `<|fim_middle|>`, `<|fim_suffix|>`, `<|fim_pad|>`,
/// `<|repo_name|>` or `<|file_sep|>`. They come last, so every id below
/// `special_id("<|endoftext|>")` is an ordinary token.
///
/// # Panics
///
/// If `text` is not one of those.
pub fn special_id(text: &str) -> u32 {
    let position = SPECIALS.iter().position(|special| *special == text);
    let position = position.unwrap_or_else(|| panic!("{text:?} is not a tiny special token"));
    (256 + MERGES.len() + position) as u32
}

/// The size of the tiny vocabulary: 256 bytes, 26 merges and 9 special tokens.
pub fn n_vocab() -> usize {
    256 + MERGES.len() + SPECIALS.len()
}

/// A weight in Hugging Face order: `shape = [rows, cols]` or `[len]`, row-major.
#[derive(Clone, Debug)]
pub struct TinyTensor {
    /// The GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// `[rows, cols]` for a matrix, `[len]` for a vector.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// Random weights for `spec` under GGUF names, drawn from `spec.seed`: norms near 1,
/// biases and matrices small. The output rows of special tokens are zero, so sampling
/// almost never picks them.
pub fn random_weights(spec: &TinySpec) -> Vec<TinyTensor> {
    let mut rng = SplitMix64::new(spec.seed);
    let (d, hd) = (spec.n_embd, spec.head_dim());
    let (q_dim, kv_dim) = (spec.n_head * hd, spec.n_kv_head * hd);
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, kind: &str, rng: &mut SplitMix64| {
        let n: usize = shape.iter().product();
        let fan_in = *shape.last().unwrap() as f32;
        let data = (0..n)
            .map(|_| match kind {
                "norm" => 1.0 + 0.1 * rng.normal(),
                "bias" => 0.1 * rng.normal(),
                "embd" => rng.normal(),
                "out" => 3.0 * rng.normal() / fan_in.sqrt(),
                _ => rng.normal() / fan_in.sqrt(),
            })
            .collect();
        out.push(TinyTensor { name, shape, data });
    };
    push(
        "token_embd.weight".into(),
        vec![n_vocab(), d],
        "embd",
        &mut rng,
    );
    for i in 0..spec.n_layer {
        let b = |s: &str| format!("blk.{i}.{s}");
        push(b("attn_norm.weight"), vec![d], "norm", &mut rng);
        push(b("attn_q.weight"), vec![q_dim, d], "matrix", &mut rng);
        push(b("attn_k.weight"), vec![kv_dim, d], "matrix", &mut rng);
        push(b("attn_v.weight"), vec![kv_dim, d], "matrix", &mut rng);
        if spec.arch == "qwen2" {
            push(b("attn_q.bias"), vec![q_dim], "bias", &mut rng);
            push(b("attn_k.bias"), vec![kv_dim], "bias", &mut rng);
            push(b("attn_v.bias"), vec![kv_dim], "bias", &mut rng);
        }
        push(b("attn_output.weight"), vec![d, q_dim], "matrix", &mut rng);
        push(b("ffn_norm.weight"), vec![d], "norm", &mut rng);
        push(b("ffn_gate.weight"), vec![spec.n_ff, d], "matrix", &mut rng);
        push(b("ffn_up.weight"), vec![spec.n_ff, d], "matrix", &mut rng);
        push(b("ffn_down.weight"), vec![d, spec.n_ff], "matrix", &mut rng);
    }
    push("output_norm.weight".into(), vec![d], "norm", &mut rng);
    push("output.weight".into(), vec![n_vocab(), d], "out", &mut rng);
    let output = out.last_mut().unwrap();
    for id in 256 + MERGES.len()..n_vocab() {
        output.data[id * d..(id + 1) * d].fill(0.0);
    }
    out
}

/// Metadata for `spec` as real GGUF files spell it, tokenizer and chat template
/// included; `<|im_end|>` is the end-of-sequence token.
pub fn tiny_metadata(spec: &TinySpec) -> Vec<(String, MetaValue)> {
    let a = spec.arch;
    let (tokens, types, merges) = vocab();
    let strs = |v: Vec<String>| MetaValue::Array(v.into_iter().map(MetaValue::Str).collect());
    vec![
        ("general.architecture".into(), MetaValue::Str(a.into())),
        ("general.name".into(), MetaValue::Str("tiny".into())),
        (
            format!("{a}.context_length"),
            MetaValue::U32(spec.n_ctx as u32),
        ),
        (
            format!("{a}.embedding_length"),
            MetaValue::U32(spec.n_embd as u32),
        ),
        (
            format!("{a}.block_count"),
            MetaValue::U32(spec.n_layer as u32),
        ),
        (
            format!("{a}.feed_forward_length"),
            MetaValue::U32(spec.n_ff as u32),
        ),
        (
            format!("{a}.attention.head_count"),
            MetaValue::U32(spec.n_head as u32),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            MetaValue::U32(spec.n_kv_head as u32),
        ),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            MetaValue::F32(1e-6),
        ),
        (format!("{a}.rope.freq_base"), MetaValue::F32(10000.0)),
        ("tokenizer.ggml.model".into(), MetaValue::Str("gpt2".into())),
        ("tokenizer.ggml.pre".into(), MetaValue::Str("qwen2".into())),
        ("tokenizer.ggml.tokens".into(), strs(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strs(merges)),
        (
            "tokenizer.ggml.eos_token_id".into(),
            MetaValue::U32(special_id("<|im_end|>")),
        ),
        (
            "tokenizer.ggml.bos_token_id".into(),
            MetaValue::U32(special_id("<|endoftext|>")),
        ),
        (
            "tokenizer.ggml.add_bos_token".into(),
            MetaValue::Bool(false),
        ),
        (
            "tokenizer.chat_template".into(),
            MetaValue::Str(CHATML.into()),
        ),
    ]
}

/// A writer holding `meta` and `weights`, matrices stored as `dtype` and vectors as F32.
pub fn tiny_writer(
    meta: &[(String, MetaValue)],
    weights: &[TinyTensor],
    dtype: GgmlType,
) -> GgufWriter {
    let mut writer = GgufWriter::new();
    for (key, value) in meta {
        writer.meta(key, value.clone());
    }
    for tensor in weights {
        // GGUF lists dimensions fastest-varying first, the reverse of Hugging Face.
        let dims: Vec<usize> = tensor.shape.iter().rev().copied().collect();
        let dtype = if tensor.shape.len() == 2 {
            dtype
        } else {
            GgmlType::F32
        };
        writer.tensor(
            &tensor.name,
            &dims,
            dtype,
            quantize_row(dtype, &tensor.data),
        );
    }
    writer
}

/// Writes the model `spec` describes to `path`, matrices stored as `dtype`.
pub fn write_tiny_model(path: &Path, spec: &TinySpec, dtype: GgmlType) -> Result<()> {
    tiny_writer(&tiny_metadata(spec), &random_weights(spec), dtype).write(path)
}
