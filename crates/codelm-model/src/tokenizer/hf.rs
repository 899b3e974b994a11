//! Loading a Hugging Face `tokenizer.json` (byte-level BPE) and its `tokenizer_config.json`.
//!
//! Only what llama.cpp's GGUF conversion keeps is read: the vocabulary, the merges,
//! the added tokens (special ones become control tokens, the others user-defined), and
//! the pre-tokenizer's split patterns. Normalizers are ignored, as in llama.cpp.

use std::path::Path;

use serde_json::Value;

use super::bpe::Bpe;
use super::pretokenize::{PreTokenizer, GPT2_PATTERN};
use super::{split_merge, Model, Parts, TokenKind, Tokenizer};
use crate::error::{Error, Result};

fn format_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| format_err(path, e.to_string()))
}

/// Appends the split patterns of a pre-tokenizer description to `patterns`; returns
/// whether it contains a byte-level step.
fn collect_patterns(node: &Value, path: &Path, patterns: &mut Vec<String>) -> Result<bool> {
    let kind = node.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Sequence" => {
            let mut byte_level = false;
            let items = node
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    format_err(path, "pre_tokenizer Sequence without `pretokenizers`")
                })?;
            for item in items {
                byte_level |= collect_patterns(item, path, patterns)?;
            }
            Ok(byte_level)
        }
        "ByteLevel" => {
            if node
                .get("use_regex")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                patterns.push(GPT2_PATTERN.to_string());
            }
            Ok(true)
        }
        "Split" => {
            let pattern = node.get("pattern");
            let regex = pattern.and_then(|p| p.get("Regex")).and_then(Value::as_str);
            let literal = pattern
                .and_then(|p| p.get("String"))
                .and_then(Value::as_str);
            match (regex, literal) {
                (Some(regex), _) => patterns.push(regex.to_string()),
                (None, Some(literal)) => patterns.push(fancy_regex::escape(literal).into_owned()),
                (None, None) => {
                    return Err(format_err(path, "Split pre-tokenizer without a pattern"))
                }
            }
            Ok(false)
        }
        "Digits" => {
            let individual = node
                .get("individual_digits")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            patterns.push(if individual { r"\p{N}" } else { r"\p{N}+" }.to_string());
            Ok(false)
        }
        other => Err(format_err(
            path,
            format!("unsupported pre_tokenizer type `{other}`"),
        )),
    }
}

/// A token named in `tokenizer_config.json`: a string or `{"content": ...}`.
fn config_token<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    let value = config.get(key)?;
    value
        .as_str()
        .or_else(|| value.get("content").and_then(Value::as_str))
}

pub(super) fn load(path: &Path) -> Result<Tokenizer> {
    let json = read_json(path)?;
    let model = json
        .get("model")
        .ok_or_else(|| format_err(path, "no `model`"))?;
    let model_type = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
    if model_type != "BPE" {
        return Err(format_err(
            path,
            format!("unsupported model type `{model_type}` (supported: BPE)"),
        ));
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| format_err(path, "model without `vocab`"))?;

    let mut entries: Vec<(u32, &str, TokenKind)> = Vec::with_capacity(vocab.len());
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| format_err(path, format!("bad id for vocabulary entry `{text}`")))?;
        entries.push((id, text, TokenKind::Normal));
    }
    for added in json
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = added
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok());
        let text = added.get("content").and_then(Value::as_str);
        let (Some(id), Some(text)) = (id, text) else {
            return Err(format_err(path, "added token without `id` or `content`"));
        };
        let special = added
            .get("special")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let kind = if special {
            TokenKind::Control
        } else {
            TokenKind::UserDefined
        };
        entries.push((id, text, kind));
    }
    let n_vocab = entries
        .iter()
        .map(|&(id, _, _)| id as usize + 1)
        .max()
        .unwrap_or(0);
    if n_vocab == 0 || n_vocab > 16 * 1024 * 1024 {
        return Err(format_err(path, format!("vocabulary of {n_vocab} tokens")));
    }
    let mut texts = vec![String::new(); n_vocab];
    let mut kinds = vec![TokenKind::Undefined; n_vocab];
    // Added tokens come last, so their kind wins over a plain vocabulary entry.
    for (id, text, kind) in entries {
        texts[id as usize] = text.to_string();
        kinds[id as usize] = kind;
    }

    let mut merges: Vec<(String, String)> = Vec::new();
    for rule in model
        .get("merges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pair = match rule {
            Value::String(rule) => split_merge(rule).map(|(l, r)| (l.to_string(), r.to_string())),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(l), Value::String(r)] => Some((l.clone(), r.clone())),
                _ => None,
            },
            _ => None,
        };
        merges.push(pair.ok_or_else(|| format_err(path, format!("bad merge rule {rule}")))?);
    }

    let mut patterns = Vec::new();
    let mut byte_level = match json.get("pre_tokenizer") {
        Some(node) if !node.is_null() => collect_patterns(node, path, &mut patterns)?,
        _ => false,
    };
    byte_level |= json
        .get("decoder")
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        == Some("ByteLevel");
    if !byte_level {
        return Err(format_err(
            path,
            "only byte-level BPE tokenizers are supported",
        ));
    }
    let pattern_refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let pre = PreTokenizer::from_patterns(&pattern_refs)?;
    let ignore_merges = model
        .get("ignore_merges")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let bpe = Bpe::new(
        texts.iter().map(String::as_str),
        merges.iter().map(|(l, r)| (l.as_str(), r.as_str())),
        ignore_merges,
    );

    let config_path = path.with_file_name("tokenizer_config.json");
    let config = if config_path.exists() {
        read_json(&config_path)?
    } else {
        Value::Null
    };
    let lookup = |key: &str| {
        let text = config_token(&config, key)?;
        texts.iter().position(|t| t == text).map(|id| id as u32)
    };
    let bos_id = lookup("bos_token");
    let eos_id = lookup("eos_token");
    let add_bos = config
        .get("add_bos_token")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let chat_template = config
        .get("chat_template")
        .and_then(Value::as_str)
        .map(str::to_string);

    Ok(Tokenizer::assemble(
        Model::Bpe { bpe, pre },
        Parts {
            texts,
            kinds,
            bos_id,
            eos_id,
            family_ids: vec![None; super::FAMILIES.len()],
            add_bos,
            chat_template,
        },
    ))
}
