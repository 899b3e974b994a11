//! The decoder-only transformer shared by the `qwen2` and `llama` families:
//! GQA attention with optional QKV bias, RoPE, RMSNorm, SwiGLU, tied embeddings.
//!
//! The two architectures differ only in data (biases present or not, RoPE pairing,
//! θ and scaling), so one model reads both, from GGUF or from a Hugging Face
//! directory, through [`WeightSource`].
//!
//! [`Model::forward`] takes any number of sequences at once, each with any number
//! of new tokens: a prompt's prefill is one sequence with many tokens, batched
//! decoding of `n` samples is `n` sequences with one token each. All rows go through
//! each weight matrix together, so a weight is read from memory once per step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::ops;
use crate::quant::{GgmlType, QMatrix, WeightBytes};
use crate::rope::{Rope, RopeScaling, RopeStyle};
use crate::safetensors::SafeTensors;

/// The architectures this model implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2 / Qwen2.5 (QKV bias, NeoX RoPE).
    Qwen2,
    /// Llama / Code Llama / Mistral-style.
    Llama,
}

/// Hyper-parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// Architecture.
    pub arch: Arch,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Layers.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GQA).
    pub n_kv_head: usize,
    /// Per-head dimension.
    pub head_dim: usize,
    /// Feed-forward hidden size.
    pub n_ff: usize,
    /// Training context length.
    pub n_ctx_train: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// RoPE base.
    pub rope_theta: f32,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// RoPE extension.
    pub rope_scaling: RopeScaling,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
}

/// A loaded model.
pub struct Model {
    /// Hyper-parameters.
    pub config: Config,
    tok_embd: QMatrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    output: QMatrix,
    rope: Rope,
}

/// Keys and values of a run of positions, per layer: `(len, n_kv_head * head_dim)`.
#[derive(Clone, Debug, Default)]
struct KvRows {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl KvRows {
    fn empty(n_layer: usize) -> KvRows {
        KvRows {
            keys: vec![Vec::new(); n_layer],
            values: vec![Vec::new(); n_layer],
        }
    }

    /// A copy of the first `floats` floats of every layer.
    fn head(&self, floats: usize) -> KvRows {
        let copy = |layers: &[Vec<f32>]| -> Vec<Vec<f32>> {
            layers.iter().map(|l| l[..floats].to_vec()).collect()
        };
        KvRows {
            keys: copy(&self.keys),
            values: copy(&self.values),
        }
    }

    fn truncate(&mut self, floats: usize) {
        for l in self.keys.iter_mut().chain(&mut self.values) {
            l.truncate(floats);
        }
    }
}

/// Key/value cache of one sequence: the first `n_shared` positions in rows that
/// other caches may share (a request's samples share their prompt's; the prefix
/// cache shares them with later prompts), then rows of its own. Clones copy only
/// their own rows; [`KvCache::freeze`] makes every row shared.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    shared: Option<Arc<KvRows>>,
    n_shared: usize,
    own: KvRows,
    /// Floats per position and layer (`n_kv_head * head_dim`).
    width: usize,
    len: usize,
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything after the first `len` tokens (to reuse a shared prefix).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        if len <= self.n_shared {
            self.n_shared = len;
            self.own.truncate(0);
        } else {
            self.own.truncate((len - self.n_shared) * self.width);
        }
        self.len = len;
    }

    /// The first `len` tokens (all of them when `len` is larger), sharing this
    /// cache's shared rows and copying only the own rows among them.
    pub fn prefix(&self, len: usize) -> KvCache {
        let len = len.min(self.len);
        let n_shared = self.n_shared.min(len);
        KvCache {
            shared: self.shared.clone(),
            n_shared,
            own: self.own.head((len - n_shared) * self.width),
            width: self.width,
            len,
        }
    }

    /// Makes every position shared, so that clones share them instead of copying
    /// them. Rows of its own join the shared ones in one new copy (once).
    pub fn freeze(&mut self) {
        if self.len == self.n_shared {
            return;
        }
        let n = self.n_shared * self.width;
        let join = |shared: Option<&Vec<f32>>, own: &Vec<f32>| {
            let mut all = Vec::with_capacity(n + own.len());
            all.extend_from_slice(shared.map_or(&[][..], |s| &s[..n]));
            all.extend_from_slice(own);
            all
        };
        let shared = self.shared.as_deref();
        let rows = KvRows {
            keys: (self.own.keys.iter().enumerate())
                .map(|(l, own)| join(shared.map(|s| &s.keys[l]), own))
                .collect(),
            values: (self.own.values.iter().enumerate())
                .map(|(l, own)| join(shared.map(|s| &s.values[l]), own))
                .collect(),
        };
        // A new own part: the old one's allocation would outlive its rows.
        self.own = KvRows::empty(self.own.keys.len());
        self.shared = Some(Arc::new(rows));
        self.n_shared = self.len;
    }

    /// Bytes of memory it reads (its shared rows included).
    pub fn n_bytes(&self) -> usize {
        self.len * self.width * self.own.keys.len() * 2 * std::mem::size_of::<f32>()
    }

    /// The first `len` positions' keys (`values` false) or values of `layer`, as
    /// row pieces for `ops`: the shared rows, then the own ones, each starting at
    /// column `offset`. During a forward pass the own rows already hold the step's
    /// new positions, which `len` may include.
    fn pieces(
        &self,
        layer: usize,
        values: bool,
        offset: usize,
        len: usize,
    ) -> [(&[f32], usize); 2] {
        fn pick(rows: &KvRows, layer: usize, values: bool, offset: usize) -> &[f32] {
            let layers = if values { &rows.values } else { &rows.keys };
            layers[layer].get(offset..).unwrap_or(&[])
        }
        let shared = match &self.shared {
            Some(rows) => pick(rows, layer, values, offset),
            None => &[],
        };
        let own = pick(&self.own, layer, values, offset);
        [(shared, self.n_shared), (own, len - self.n_shared)]
    }
}

/// One tensor as a weight file stores it.
pub struct StoredTensor {
    /// The file that holds it, for messages.
    pub file: PathBuf,
    /// Its name in that file.
    pub name: String,
    /// Storage type.
    pub dtype: GgmlType,
    /// Shape in the file's own order.
    pub shape: Vec<usize>,
    /// Whether `shape` lists the contiguous dimension first (GGUF) rather than
    /// last (safetensors, as PyTorch).
    pub is_contiguous_first: bool,
    /// The encoded bytes.
    pub bytes: WeightBytes,
}

/// A weight file, GGUF or safetensors: it only looks tensors up; shape checks and
/// decoding are shared by [`WeightSource::matrix`] and [`WeightSource::vector`].
pub trait WeightSource {
    /// The tensor called `name` in this format, or `None`.
    fn lookup(&self, name: &TensorName) -> Option<StoredTensor>;

    /// The file or directory being read, for messages.
    fn path(&self) -> &Path;

    /// How this format spells `name`.
    fn spelling<'a>(&self, name: &'a TensorName) -> &'a str;

    /// Whether a tensor exists.
    fn has(&self, name: &TensorName) -> bool {
        self.lookup(name).is_some()
    }

    /// The tensor, or [`Error::MissingTensor`] naming it in the file's spelling.
    fn require(&self, name: &TensorName) -> Result<StoredTensor> {
        self.lookup(name).ok_or_else(|| Error::MissingTensor {
            path: self.path().to_path_buf(),
            tensor: self.spelling(name).to_string(),
        })
    }

    /// A 2-D weight, checked to be `(rows, cols)`.
    fn matrix(&self, name: &TensorName, rows: usize, cols: usize) -> Result<QMatrix> {
        let t = self.require(name)?;
        let expected = if t.is_contiguous_first {
            vec![cols, rows]
        } else {
            vec![rows, cols]
        };
        if t.shape != expected {
            return Err(Error::ShapeMismatch {
                path: t.file,
                tensor: t.name,
                expected,
                actual: t.shape,
            });
        }
        QMatrix::from_bytes(t.dtype, rows, cols, t.bytes).map_err(|e| Error::Format {
            path: t.file,
            message: format!("tensor `{}`: {e:?}", t.name),
        })
    }

    /// A 1-D weight of length `len`, as floats.
    fn vector(&self, name: &TensorName, len: usize) -> Result<Vec<f32>> {
        let t = self.require(name)?;
        if t.shape != [len] {
            return Err(Error::ShapeMismatch {
                path: t.file,
                tensor: t.name,
                expected: vec![len],
                actual: t.shape,
            });
        }
        let mut out = vec![0f32; len];
        crate::quant::blocks::dequantize(t.dtype, t.bytes.as_slice(), &mut out);
        Ok(out)
    }
}

/// A tensor's name in both formats; the literal strings stay searchable here.
pub struct TensorName {
    gguf: String,
    hf: String,
}

fn name(gguf: impl Into<String>, hf: impl Into<String>) -> TensorName {
    TensorName {
        gguf: gguf.into(),
        hf: hf.into(),
    }
}

fn layer_name(layer_idx: usize, gguf: &str, hf: &str) -> TensorName {
    name(
        format!("blk.{layer_idx}.{gguf}"),
        format!("model.layers.{layer_idx}.{hf}"),
    )
}

impl WeightSource for GgufFile {
    fn lookup(&self, name: &TensorName) -> Option<StoredTensor> {
        let info = self.tensor(&name.gguf)?;
        Some(StoredTensor {
            file: self.path().to_path_buf(),
            name: name.gguf.clone(),
            dtype: info.dtype,
            shape: info.dims.clone(),
            is_contiguous_first: true,
            bytes: self.tensor_weight_bytes(info),
        })
    }

    fn path(&self) -> &Path {
        GgufFile::path(self)
    }

    fn spelling<'a>(&self, name: &'a TensorName) -> &'a str {
        &name.gguf
    }
}

impl WeightSource for SafeTensors {
    fn lookup(&self, name: &TensorName) -> Option<StoredTensor> {
        let (t, file) = self.get(&name.hf)?;
        Some(StoredTensor {
            file: file.clone(),
            name: name.hf.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            is_contiguous_first: false,
            bytes: t.bytes.clone(),
        })
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn spelling<'a>(&self, name: &'a TensorName) -> &'a str {
        &name.hf
    }
}

impl Config {
    /// Reads hyper-parameters from GGUF metadata (`{arch}.*` keys).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Config> {
        let arch_name = gguf.get_str("general.architecture")?;
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            "llama" => Arch::Llama,
            other => {
                return Err(Error::UnknownArchitecture {
                    path: gguf.path().to_path_buf(),
                    arch: other.to_string(),
                })
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let int = |k: &str| gguf.get_u64(&key(k)).map(|v| v as usize);
        let n_embd = int("embedding_length")?;
        let n_head = int("attention.head_count")?;
        let n_kv_head = gguf
            .get(&key("attention.head_count_kv"))
            .and_then(|v| v.as_u64())
            .map_or(n_head, |v| v as usize);
        let head_dim = gguf
            .get(&key("attention.key_length"))
            .and_then(|v| v.as_u64())
            .map_or_else(|| n_embd / n_head.max(1), |v| v as usize);
        let n_vocab = match gguf.get(&key("vocab_size")).and_then(|v| v.as_u64()) {
            Some(v) => v as usize,
            None => gguf
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .map(|a| a.len())
                .or_else(|| {
                    gguf.tensor("token_embd.weight")
                        .and_then(|t| t.dims.get(1).copied())
                })
                .ok_or_else(|| Error::Metadata {
                    path: gguf.path().to_path_buf(),
                    key: key("vocab_size"),
                    expected: "unsigned integer",
                })?,
        };
        let float_or = |k: &str, default: f32| {
            gguf.get(&key(k))
                .and_then(|v| v.as_f32())
                .unwrap_or(default)
        };
        let scaling_type = gguf
            .get(&key("rope.scaling.type"))
            .and_then(|v| v.as_str())
            .unwrap_or("none");
        let factor = float_or("rope.scaling.factor", 1.0);
        let rope_scaling = match scaling_type {
            "linear" if factor != 1.0 => RopeScaling::Linear { factor },
            "yarn" if factor != 1.0 => RopeScaling::Yarn {
                factor,
                original_context: gguf
                    .get(&key("rope.scaling.original_context_length"))
                    .and_then(|v| v.as_u64())
                    .map_or(int("context_length")?, |v| v as usize),
            },
            _ => RopeScaling::None,
        };
        let config = Config {
            arch,
            n_vocab,
            n_embd,
            n_layer: int("block_count")?,
            n_head,
            n_kv_head,
            head_dim,
            n_ff: int("feed_forward_length")?,
            n_ctx_train: int("context_length")?,
            rms_eps: gguf.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: float_or("rope.freq_base", 10000.0),
            // The GGUF converter permutes llama's Q/K rows for adjacent pairs.
            rope_style: if arch == Arch::Llama {
                RopeStyle::Normal
            } else {
                RopeStyle::Neox
            },
            rope_scaling,
        };
        config.validate(gguf.path())?;
        Ok(config)
    }

    /// Reads hyper-parameters from a Hugging Face `config.json`.
    pub fn from_hf_config(path: &Path) -> Result<Config> {
        let bad = |message: String| Error::Format {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let arch = match json["model_type"].as_str() {
            Some("qwen2") => Arch::Qwen2,
            Some("llama") | Some("mistral") => Arch::Llama,
            other => {
                return Err(Error::UnknownArchitecture {
                    path: path.to_path_buf(),
                    arch: other.unwrap_or("missing model_type").to_string(),
                })
            }
        };
        let int = |k: &str| {
            json[k]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("`{k}` is missing or not an integer")))
        };
        let n_embd = int("hidden_size")?;
        let n_head = int("num_attention_heads")?;
        // transformers 5 writes `rope_parameters` (θ included) instead of
        // `rope_theta` + `rope_scaling`.
        let params = &json["rope_parameters"];
        let scaling = if json["rope_scaling"].is_object() {
            &json["rope_scaling"]
        } else {
            params
        };
        let factor = scaling["factor"].as_f64().unwrap_or(1.0) as f32;
        let rope_scaling = match scaling["type"].as_str().or(scaling["rope_type"].as_str()) {
            Some("linear") => RopeScaling::Linear { factor },
            Some("yarn") => RopeScaling::Yarn {
                factor,
                original_context: scaling["original_max_position_embeddings"]
                    .as_u64()
                    .map_or(int("max_position_embeddings")?, |v| v as usize),
            },
            _ => RopeScaling::None,
        };
        let config = Config {
            arch,
            n_vocab: int("vocab_size")?,
            n_embd,
            n_layer: int("num_hidden_layers")?,
            n_head,
            n_kv_head: json["num_key_value_heads"]
                .as_u64()
                .map_or(n_head, |v| v as usize),
            head_dim: json["head_dim"]
                .as_u64()
                .map_or(n_embd / n_head.max(1), |v| v as usize),
            n_ff: int("intermediate_size")?,
            n_ctx_train: int("max_position_embeddings")?,
            rms_eps: json["rms_norm_eps"].as_f64().unwrap_or(1e-6) as f32,
            rope_theta: json["rope_theta"]
                .as_f64()
                .or(params["rope_theta"].as_f64())
                .unwrap_or(10000.0) as f32,
            // Hugging Face checkpoints rotate halves for every architecture.
            rope_style: RopeStyle::Neox,
            rope_scaling,
        };
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        // Generous bounds that no real model reaches; they keep forged counts from
        // turning into huge allocations.
        let bounded = self.n_layer <= 4096
            && self.n_embd <= 1 << 17
            && self.n_ff <= 1 << 20
            && self.n_head <= 4096
            && self.head_dim <= 4096
            && self.n_vocab <= 1 << 24;
        let ok = bounded
            && self.n_head > 0
            && self.n_kv_head > 0
            && self.n_head.is_multiple_of(self.n_kv_head)
            && self.head_dim > 0
            && self.head_dim.is_multiple_of(2)
            && self.n_layer > 0
            && self.n_vocab > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Format {
                path: path.to_path_buf(),
                message: format!("inconsistent hyper-parameters: {self:?}"),
            })
        }
    }
}

impl Model {
    /// Loads a GGUF file or a Hugging Face model directory.
    pub fn load(path: &Path) -> Result<(Model, ModelFile)> {
        if path.is_dir() {
            let config = Config::from_hf_config(&path.join("config.json"))?;
            let weights = SafeTensors::open_dir(path)?;
            let model = Model::from_weights(config, &weights)?;
            Ok((model, ModelFile::HfDir(path.to_path_buf())))
        } else {
            let gguf = GgufFile::open(path)?;
            let config = Config::from_gguf(&gguf)?;
            let model = Model::from_weights(config, &gguf)?;
            Ok((model, ModelFile::Gguf(Box::new(gguf))))
        }
    }

    /// Builds the model from any weight source.
    pub fn from_weights(config: Config, w: &dyn WeightSource) -> Result<Model> {
        let c = &config;
        let (d, q_dim, kv_dim) = (c.n_embd, c.n_head * c.head_dim, c.n_kv_head * c.head_dim);
        // No capacity from the file's counts: a forged count must not allocate.
        let mut layers = Vec::new();
        for i in 0..c.n_layer {
            let bias = |g: &str, h: &str, len: usize| -> Result<Option<Vec<f32>>> {
                let n = layer_name(i, g, h);
                if w.has(&n) {
                    w.vector(&n, len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: w.vector(
                    &layer_name(i, "attn_norm.weight", "input_layernorm.weight"),
                    d,
                )?,
                wq: w.matrix(
                    &layer_name(i, "attn_q.weight", "self_attn.q_proj.weight"),
                    q_dim,
                    d,
                )?,
                wk: w.matrix(
                    &layer_name(i, "attn_k.weight", "self_attn.k_proj.weight"),
                    kv_dim,
                    d,
                )?,
                wv: w.matrix(
                    &layer_name(i, "attn_v.weight", "self_attn.v_proj.weight"),
                    kv_dim,
                    d,
                )?,
                bq: bias("attn_q.bias", "self_attn.q_proj.bias", q_dim)?,
                bk: bias("attn_k.bias", "self_attn.k_proj.bias", kv_dim)?,
                bv: bias("attn_v.bias", "self_attn.v_proj.bias", kv_dim)?,
                wo: w.matrix(
                    &layer_name(i, "attn_output.weight", "self_attn.o_proj.weight"),
                    d,
                    q_dim,
                )?,
                ffn_norm: w.vector(
                    &layer_name(i, "ffn_norm.weight", "post_attention_layernorm.weight"),
                    d,
                )?,
                w_gate: w.matrix(
                    &layer_name(i, "ffn_gate.weight", "mlp.gate_proj.weight"),
                    c.n_ff,
                    d,
                )?,
                w_up: w.matrix(
                    &layer_name(i, "ffn_up.weight", "mlp.up_proj.weight"),
                    c.n_ff,
                    d,
                )?,
                w_down: w.matrix(
                    &layer_name(i, "ffn_down.weight", "mlp.down_proj.weight"),
                    d,
                    c.n_ff,
                )?,
            });
        }
        let tok_embd = w.matrix(
            &name("token_embd.weight", "model.embed_tokens.weight"),
            c.n_vocab,
            d,
        )?;
        let output_name = name("output.weight", "lm_head.weight");
        let output = if w.has(&output_name) {
            w.matrix(&output_name, c.n_vocab, d)?
        } else {
            tok_embd.clone()
        };
        let out_norm = w.vector(&name("output_norm.weight", "model.norm.weight"), d)?;
        let rope = Rope::new(c.rope_style, c.head_dim, c.rope_theta, c.rope_scaling);
        Ok(Model {
            config,
            tok_embd,
            layers,
            out_norm,
            output,
            rope,
        })
    }

    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            shared: None,
            n_shared: 0,
            own: KvRows::empty(self.config.n_layer),
            width: self.config.n_kv_head * self.config.head_dim,
            len: 0,
        }
    }

    /// Bytes of weights read per decoded token (all matrices once).
    pub fn weight_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                    .iter()
                    .map(|m| m.n_bytes())
                    .sum::<usize>()
            })
            .sum();
        layers + self.output.n_bytes()
    }

    /// Storage types of the weight matrices, with how many bytes each holds.
    pub fn weight_types(&self) -> Vec<(GgmlType, usize)> {
        let mut by_type: Vec<(GgmlType, usize)> = Vec::new();
        let all = self
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .chain([&self.output]);
        for m in all {
            match by_type.iter_mut().find(|(t, _)| *t == m.dtype()) {
                Some((_, n)) => *n += m.n_bytes(),
                None => by_type.push((m.dtype(), m.n_bytes())),
            }
        }
        by_type
    }

    /// Runs new tokens through the model.
    ///
    /// `inputs[s]` are the new tokens of sequence `s`, appended to `caches[s]`. Returns,
    /// for each sequence, the logits after its last new token (`n_vocab` floats), or
    /// after every new token when `all_logits` is set (`len * n_vocab`).
    ///
    /// The pass runs on a thread of rayon's pool (moved there when the caller is not
    /// one), so that each of its parallel loops forks and joins there: called from
    /// outside, every loop would put the caller to sleep and wake it again, a few
    /// hundred times per token (measured: decode 7-10% slower).
    pub fn forward(
        &self,
        caches: &mut [&mut KvCache],
        inputs: &[&[u32]],
        n_ctx: usize,
        all_logits: bool,
    ) -> Result<Vec<Vec<f32>>> {
        rayon::scope(|_| self.forward_here(caches, inputs, n_ctx, all_logits))
    }

    /// [`Model::forward`] on the calling thread.
    fn forward_here(
        &self,
        caches: &mut [&mut KvCache],
        inputs: &[&[u32]],
        n_ctx: usize,
        all_logits: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        let (d, hd) = (c.n_embd, c.head_dim);
        let (q_dim, kv_dim) = (c.n_head * hd, c.n_kv_head * hd);
        assert_eq!(caches.len(), inputs.len(), "one cache per sequence");

        // Rows: (sequence, position) for every new token, in order.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (s, (cache, tokens)) in caches.iter().zip(inputs).enumerate() {
            let needed = cache.len() + tokens.len();
            if needed > n_ctx {
                return Err(Error::ContextOverflow { needed, n_ctx });
            }
            rows.extend((0..tokens.len()).map(|i| (s, cache.len() + i)));
        }
        let n = rows.len();
        let mut x = vec![0f32; n * d]; // (n, n_embd)
        for (row, &token) in x
            .chunks_exact_mut(d)
            .zip(inputs.iter().flat_map(|t| t.iter()))
        {
            if token as usize >= c.n_vocab {
                return Err(Error::BadToken {
                    id: token,
                    n_vocab: c.n_vocab,
                });
            }
            self.tok_embd.dequantize_row(token as usize, row);
        }

        let mut h = vec![0f32; n * d];
        let mut q = vec![0f32; n * q_dim];
        let mut k = vec![0f32; n * kv_dim];
        let mut v = vec![0f32; n * kv_dim];
        let mut attn = vec![0f32; n * q_dim];
        let mut proj = vec![0f32; n * d];
        let mut gate = vec![0f32; n * c.n_ff];
        let mut up = vec![0f32; n * c.n_ff];
        for (layer_idx, layer) in self.layers.iter().enumerate() {
            h.copy_from_slice(&x);
            ops::rms_norm(&mut h, &layer.attn_norm, c.rms_eps);
            // q: (n, n_head * head_dim); k, v: (n, n_kv_head * head_dim).
            QMatrix::matmul_all(
                &mut [
                    (&layer.wq, &mut q),
                    (&layer.wk, &mut k),
                    (&layer.wv, &mut v),
                ],
                &h,
                n,
            );
            for (buf, bias) in [
                (&mut q, &layer.bq),
                (&mut k, &layer.bk),
                (&mut v, &layer.bv),
            ] {
                if let Some(bias) = bias {
                    ops::add_bias(buf, bias);
                }
            }
            for (r, &(_, pos)) in rows.iter().enumerate() {
                self.rope.apply(&mut q[r * q_dim..(r + 1) * q_dim], hd, pos);
                self.rope
                    .apply(&mut k[r * kv_dim..(r + 1) * kv_dim], hd, pos);
            }
            for (r, &(s, _)) in rows.iter().enumerate() {
                let own = &mut caches[s].own;
                own.keys[layer_idx].extend_from_slice(&k[r * kv_dim..(r + 1) * kv_dim]);
                own.values[layer_idx].extend_from_slice(&v[r * kv_dim..(r + 1) * kv_dim]);
            }
            self.attention(layer_idx, caches, &rows, &q, &mut attn);
            layer.wo.matmul(&attn, n, &mut proj);
            ops::add_in_place(&mut x, &proj);

            h.copy_from_slice(&x);
            ops::rms_norm(&mut h, &layer.ffn_norm, c.rms_eps);
            // (n, n_ff) each.
            QMatrix::matmul_all(
                &mut [(&layer.w_gate, &mut gate), (&layer.w_up, &mut up)],
                &h,
                n,
            );
            ops::swiglu(&mut gate, &up);
            layer.w_down.matmul(&gate, n, &mut proj);
            ops::add_in_place(&mut x, &proj);
        }
        for (cache, tokens) in caches.iter_mut().zip(inputs) {
            cache.len += tokens.len();
        }

        // Logits only for the rows that need them.
        let mut wanted: Vec<usize> = Vec::new();
        let mut start = 0;
        for tokens in inputs {
            if all_logits {
                wanted.extend(start..start + tokens.len());
            } else if !tokens.is_empty() {
                wanted.push(start + tokens.len() - 1);
            }
            start += tokens.len();
        }
        let mut last = Vec::with_capacity(wanted.len() * d);
        for &r in &wanted {
            last.extend_from_slice(&x[r * d..(r + 1) * d]);
        }
        ops::rms_norm(&mut last, &self.out_norm, c.rms_eps);
        let mut logits = vec![0f32; wanted.len() * c.n_vocab];
        self.output.matmul(&last, wanted.len(), &mut logits);

        let mut out = Vec::with_capacity(inputs.len());
        let mut offset = 0;
        for tokens in inputs {
            let count = if all_logits {
                tokens.len()
            } else {
                usize::from(!tokens.is_empty())
            };
            out.push(logits[offset * c.n_vocab..(offset + count) * c.n_vocab].to_vec());
            offset += count;
        }
        Ok(out)
    }

    /// Causal attention of each new row over its sequence's cache (which already
    /// holds this step's keys and values); `out` is `(n, n_head * head_dim)`.
    fn attention(
        &self,
        layer_idx: usize,
        caches: &[&mut KvCache],
        rows: &[(usize, usize)],
        q: &[f32],
        out: &mut [f32],
    ) {
        let c = &self.config;
        let hd = c.head_dim;
        let (q_dim, kv_dim) = (c.n_head * hd, c.n_kv_head * hd);
        let group = c.n_head / c.n_kv_head;
        let scale = 1.0 / (hd as f32).sqrt();
        // One task per (row, kv head): each key and value is read once for the
        // `group` query heads that share it. Every head's sums run in the same
        // order as one head at a time would, so grouping changes no bit.
        out.par_chunks_mut(group * hd)
            .enumerate()
            .for_each(|(idx, o)| {
                let (r, kv_head) = (idx / c.n_kv_head, idx % c.n_kv_head);
                let (s, pos) = rows[r];
                let len = pos + 1;
                let key_pieces = caches[s].pieces(layer_idx, false, kv_head * hd, len);
                let value_pieces = caches[s].pieces(layer_idx, true, kv_head * hd, len);
                let keys = ops::Rows {
                    pieces: &key_pieces,
                    stride: kv_dim,
                };
                let values = ops::Rows {
                    pieces: &value_pieces,
                    stride: kv_dim,
                };
                let qs =
                    &q[r * q_dim + kv_head * group * hd..r * q_dim + (kv_head + 1) * group * hd];
                let mut scores = vec![0f32; group * len];
                ops::scores(qs, keys, scale, group, &mut scores);
                for head_scores in scores.chunks_exact_mut(len) {
                    ops::softmax(head_scores);
                }
                ops::weighted_sums(o, &scores, values, group);
            });
    }
}

/// What a model was loaded from; GGUF files also carry the tokenizer and template.
pub enum ModelFile {
    /// A GGUF file.
    Gguf(Box<GgufFile>),
    /// A Hugging Face directory.
    HfDir(PathBuf),
}
