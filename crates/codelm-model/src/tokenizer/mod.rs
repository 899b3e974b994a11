//! Text ↔ token ids, matching llama.cpp token for token.
//!
//! [`Tokenizer`] reads the `tokenizer.ggml.*` metadata of a GGUF file (byte-level BPE
//! with a named pre-tokenizer, as in Qwen2.5-Coder or DeepSeek-Coder, or SentencePiece
//! BPE, as in Code Llama) or a Hugging Face `tokenizer.json`. llama.cpp is the
//! reference because the same GGUF files run there: for a given file the ids agree,
//! which the fixture test in `tests/tokenizer.rs` checks on real code.
//!
//! The decision a newcomer would question: special tokens written in the text are
//! recognised only when the caller asks (`parse_special`). Prompt formats insert
//! `<|im_start|>` or `<|fim_prefix|>` on purpose; user text passed with
//! `parse_special = false` spells such strings out as ordinary characters, so it
//! cannot inject control tokens. Tokens the vocabulary marks *user-defined* (not
//! control) are always matched, as llama.cpp does.
//!
//! Deliberate differences from llama.cpp: a vocabulary entry `</s>` keeps its recorded
//! type (llama.cpp makes it a control, end-of-generation token in every vocabulary,
//! which would stop Qwen at an HTML `</s>`); [`Tokenizer::decode`] skips llama.cpp's
//! `clean_spaces` rewriting so that decoding gives back the encoded text; and where
//! a vocabulary holds fill-in-the-middle markers of several model families, all are
//! control tokens (llama.cpp promotes whichever its hash map yields first).
//!
//! ```
//! use codelm_model::tokenizer::Tokenizer;
//!
//! let dir = std::env::temp_dir().join(format!("codelm-tokenizer-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("tokenizer.json");
//! std::fs::write(&path, r#"{
//!     "model": {"type": "BPE", "vocab": {"h": 0, "i": 1, "hi": 2, "Ġ": 3, "<|end|>": 4},
//!               "merges": ["h i"]},
//!     "pre_tokenizer": {"type": "ByteLevel"},
//!     "added_tokens": [{"id": 4, "content": "<|end|>", "special": true}]
//! }"#).unwrap();
//! let tok = Tokenizer::from_hf_json(&path).unwrap();
//! assert_eq!(tok.encode("hi<|end|>", true), [2, 4]);
//! assert_eq!(tok.decode(&[2, 3, 2]), "hi hi");
//! assert!(tok.is_eog(4));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod bpe;
mod hf;
mod pretokenize;
mod spm;

use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, MetaValue};

use bpe::{Bpe, FastMap, Scratch};
use pretokenize::PreTokenizer;

/// How the vocabulary treats a token (GGUF `tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    /// A token without a recorded type.
    Undefined,
    /// An ordinary piece of text.
    Normal,
    /// The unknown-token placeholder.
    Unknown,
    /// A control token such as `<|im_start|>`.
    Control,
    /// A token added by the model's authors that stands for its literal text.
    UserDefined,
    /// A reserved slot.
    Unused,
    /// A SentencePiece byte token `<0xXX>`.
    Byte,
}

impl TokenKind {
    fn from_gguf(value: i64) -> TokenKind {
        match value {
            1 => TokenKind::Normal,
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Undefined,
        }
    }
}

/// Tokens llama.cpp finds by their text when the file does not name one by id
/// (`keys`): end of turn, end of message, and the fill-in-the-middle markers. Found
/// tokens become control tokens, whatever their recorded type.
struct Family {
    keys: &'static [&'static str],
    texts: &'static [&'static str],
    ends_generation: bool,
}

const FAMILIES: &[Family] = &[
    Family {
        keys: &["tokenizer.ggml.eot_token_id"],
        texts: &[
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|end_of_text|>",
            "<EOT>",
            "_<EOT>",
            "<｜end▁of▁sentence｜>",
        ],
        ends_generation: true,
    },
    Family {
        keys: &["tokenizer.ggml.eom_token_id"],
        texts: &["<|eom_id|>"],
        ends_generation: true,
    },
    Family {
        keys: &[
            "tokenizer.ggml.fim_pre_token_id",
            "tokenizer.ggml.prefix_token_id",
        ],
        texts: &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
        ],
        ends_generation: false,
    },
    Family {
        keys: &[
            "tokenizer.ggml.fim_suf_token_id",
            "tokenizer.ggml.suffix_token_id",
        ],
        texts: &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
        ],
        ends_generation: false,
    },
    Family {
        keys: &[
            "tokenizer.ggml.fim_mid_token_id",
            "tokenizer.ggml.middle_token_id",
        ],
        texts: &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
        ],
        ends_generation: false,
    },
    Family {
        keys: &["tokenizer.ggml.fim_pad_token_id"],
        texts: &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"],
        ends_generation: true,
    },
    Family {
        keys: &["tokenizer.ggml.fim_rep_token_id"],
        texts: &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
        ends_generation: true,
    },
    Family {
        keys: &["tokenizer.ggml.fim_sep_token_id"],
        texts: &["<|file_sep|>"],
        ends_generation: true,
    },
];

/// Token texts that always end generation (and are control tokens) when present.
const EOG_BY_TEXT: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<|EOT|>",
];

/// One vocabulary entry.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    /// The bytes the token stands for in decoded text.
    bytes: Vec<u8>,
    kind: TokenKind,
}

/// The algorithm that turns a run of plain text into tokens.
#[derive(Debug)]
enum Model {
    /// Byte-level BPE after a pre-tokenizer.
    Bpe { bpe: Bpe, pre: PreTokenizer },
    /// SentencePiece BPE with scores and `<0xXX>` byte fallback.
    Spm {
        scores: Vec<f32>,
        byte_token: Box<[Option<u32>; 256]>,
        unk_id: Option<u32>,
        add_space_prefix: bool,
    },
}

/// A tokenizer loaded from a GGUF file or a `tokenizer.json`.
///
/// Encoding never adds BOS; callers check [`Tokenizer::add_bos`] and prepend
/// [`Tokenizer::bos_id`] themselves. Every id-taking method accepts any `u32`:
/// ids outside the vocabulary read as empty text and are not end-of-generation.
#[derive(Debug)]
pub struct Tokenizer {
    model: Model,
    tokens: Vec<Token>,
    token_to_id: FastMap<String, u32>,
    /// Tokens matched in the text before the model runs, longest text first.
    specials: Vec<u32>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
    eog_ids: Vec<u32>,
    chat_template: Option<String>,
}

/// A stretch of input after special-token matching.
enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

/// Everything except the model-specific tables, gathered by the loaders.
struct Parts {
    texts: Vec<String>,
    kinds: Vec<TokenKind>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    /// The id the file gives each of [`FAMILIES`], if any.
    family_ids: Vec<Option<u32>>,
    add_bos: bool,
    chat_template: Option<String>,
}

fn meta_u32(gguf: &GgufFile, key: &str, n_vocab: usize) -> Option<u32> {
    let id = gguf.get(key).and_then(MetaValue::as_u64)?;
    let id = u32::try_from(id).ok()?;
    ((id as usize) < n_vocab).then_some(id)
}

fn meta_bool(gguf: &GgufFile, key: &str) -> Option<bool> {
    gguf.get(key).and_then(MetaValue::as_bool)
}

/// Parses a SentencePiece byte token `<0xXX>`.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    ///
    /// Supports the `gpt2` model (byte-level BPE; pre-tokenizers `default`, `gpt2`,
    /// `qwen2`, `llama3`/`llama-bpe`, `deepseek-coder`, `starcoder`/`refact`) and the
    /// `llama` model (SentencePiece BPE).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer> {
        let model_name = gguf.get_str("tokenizer.ggml.model")?;
        let texts: Vec<String> = gguf
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_string)
            .collect();
        let n_vocab = texts.len();
        if n_vocab == 0 || u32::try_from(n_vocab).is_err() {
            return Err(Error::Tokenizer(format!("vocabulary of {n_vocab} tokens")));
        }
        let kinds: Vec<TokenKind> = match gguf.get("tokenizer.ggml.token_type") {
            Some(value) => {
                let items = value.as_array().unwrap_or_default();
                if items.len() < n_vocab {
                    return Err(Error::Tokenizer(format!(
                        "tokenizer.ggml.token_type has {} entries for {n_vocab} tokens",
                        items.len()
                    )));
                }
                items[..n_vocab]
                    .iter()
                    .map(|v| TokenKind::from_gguf(v.as_i64().unwrap_or(0)))
                    .collect()
            }
            None => vec![TokenKind::Normal; n_vocab],
        };
        let id = |key: &str| meta_u32(gguf, key, n_vocab);
        let is_spm = match model_name {
            "llama" => true,
            "gpt2" => false,
            other => {
                return Err(Error::Tokenizer(format!(
                    "unsupported tokenizer model `{other}` (supported: gpt2, llama)"
                )))
            }
        };
        // llama.cpp's defaults for SentencePiece vocabularies, used when the keys are absent.
        let spm_default =
            |fallback: u32| (is_spm && (fallback as usize) < n_vocab).then_some(fallback);
        let bos_id = id("tokenizer.ggml.bos_token_id").or(spm_default(1));
        let eos_id = id("tokenizer.ggml.eos_token_id").or(spm_default(2));
        let family_ids = FAMILIES
            .iter()
            .map(|family| family.keys.iter().find_map(|key| id(key)))
            .collect();
        let chat_template = gguf
            .get("tokenizer.chat_template")
            .and_then(MetaValue::as_str)
            .map(str::to_string);

        let (model, default_add_bos) = if is_spm {
            let scores: Vec<f32> = match gguf.get("tokenizer.ggml.scores") {
                Some(value) => {
                    let items = value.as_array().unwrap_or_default();
                    if items.len() < n_vocab {
                        return Err(Error::Tokenizer(format!(
                            "tokenizer.ggml.scores has {} entries for {n_vocab} tokens",
                            items.len()
                        )));
                    }
                    items[..n_vocab]
                        .iter()
                        .map(|v| {
                            v.as_f32()
                                .or_else(|| v.as_i64().map(|i| i as f32))
                                .unwrap_or(0.0)
                        })
                        .collect()
                }
                None => vec![0.0; n_vocab],
            };
            let model = Model::Spm {
                scores,
                byte_token: Box::new([None; 256]),
                unk_id: id("tokenizer.ggml.unknown_token_id").or(spm_default(0)),
                add_space_prefix: meta_bool(gguf, "tokenizer.ggml.add_space_prefix")
                    .unwrap_or(true),
            };
            (model, true)
        } else {
            let merges = gguf.get_str_array("tokenizer.ggml.merges")?;
            let pre_name = gguf.get("tokenizer.ggml.pre").and_then(MetaValue::as_str);
            let config = PreTokenizer::from_gguf_name(pre_name)?;
            let pairs = merges.iter().filter_map(|m| split_merge(m));
            let bpe = Bpe::new(
                texts.iter().map(String::as_str),
                pairs,
                config.ignore_merges,
            );
            (
                Model::Bpe {
                    bpe,
                    pre: config.pre_tokenizer,
                },
                config.add_bos,
            )
        };
        let add_bos = meta_bool(gguf, "tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos);
        Ok(Tokenizer::assemble(
            model,
            Parts {
                texts,
                kinds,
                bos_id,
                eos_id,
                family_ids,
                add_bos,
                chat_template,
            },
        ))
    }

    /// Builds the tokenizer from a Hugging Face `tokenizer.json` holding a byte-level BPE
    /// model. A `tokenizer_config.json` in the same directory, when present, supplies
    /// the BOS/EOS tokens, `add_bos_token` and the chat template.
    pub fn from_hf_json(path: &Path) -> Result<Tokenizer> {
        hf::load(path)
    }

    /// Fills in the derived tables shared by both loaders.
    fn assemble(mut model: Model, parts: Parts) -> Tokenizer {
        let Parts {
            texts,
            mut kinds,
            bos_id,
            eos_id,
            family_ids,
            add_bos,
            chat_template,
        } = parts;
        let mut token_to_id = FastMap::with_capacity_and_hasher(texts.len(), Default::default());
        for (id, text) in texts.iter().enumerate() {
            if !text.is_empty() {
                token_to_id.insert(text.clone(), id as u32);
            }
        }
        let mut eog_ids: Vec<u32> = eos_id.into_iter().collect();
        let mut make_control = |id: u32| {
            let kind = &mut kinds[id as usize];
            if matches!(
                kind,
                TokenKind::UserDefined | TokenKind::Normal | TokenKind::Undefined
            ) {
                *kind = TokenKind::Control;
            }
        };
        for (family, file_id) in FAMILIES.iter().zip(family_ids) {
            let found: Vec<u32> = match file_id {
                Some(id) => vec![id],
                // llama.cpp takes the first match in hash order; with several matches
                // (markers of two model families in one vocabulary) all count here.
                None => family
                    .texts
                    .iter()
                    .filter_map(|text| token_to_id.get(*text).copied())
                    .inspect(|&id| make_control(id))
                    .collect(),
            };
            if family.ends_generation {
                eog_ids.extend(found);
            }
        }
        for text in EOG_BY_TEXT {
            if let Some(&id) = token_to_id.get(*text) {
                make_control(id);
                eog_ids.push(id);
            }
        }

        let byte_map = bpe::CharToByte::new();
        let tokens: Vec<Token> = texts
            .into_iter()
            .zip(&kinds)
            .map(|(text, &kind)| {
                let bytes = match (&model, kind) {
                    (_, TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown) => {
                        text.as_bytes().to_vec()
                    }
                    // Reserved slots (`[PAD151665]`) stand for no text, as in llama.cpp.
                    (_, TokenKind::Unused | TokenKind::Undefined) => Vec::new(),
                    (Model::Spm { .. }, TokenKind::Byte) => {
                        parse_byte_token(&text).map_or_else(Vec::new, |b| vec![b])
                    }
                    (Model::Spm { .. }, _) => text.replace('▁', " ").into_bytes(),
                    (Model::Bpe { .. }, TokenKind::Byte) => parse_byte_token(&text)
                        .map_or_else(|| text.as_bytes().to_vec(), |b| vec![b]),
                    (Model::Bpe { .. }, _) => byte_map.decode_lossy(&text),
                };
                Token { text, bytes, kind }
            })
            .collect();

        if let Model::Spm { byte_token, .. } = &mut model {
            for byte in 0..=255u8 {
                let hex = format!("<0x{byte:02X}>");
                let single = (byte as char).to_string();
                let found = token_to_id
                    .get(&hex)
                    .or_else(|| byte.is_ascii().then(|| token_to_id.get(&single)).flatten());
                byte_token[byte as usize] = found.copied();
            }
        }

        let mut specials: Vec<u32> = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                !t.text.is_empty()
                    && matches!(
                        t.kind,
                        TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                    )
            })
            .map(|(id, _)| id as u32)
            .collect();
        specials.sort_by_key(|&id| std::cmp::Reverse(tokens[id as usize].text.len()));

        eog_ids.sort_unstable();
        eog_ids.dedup();

        Tokenizer {
            model,
            tokens,
            token_to_id,
            specials,
            bos_id,
            eos_id,
            add_bos,
            eog_ids,
            chat_template,
        }
    }

    /// Token ids for `text`, without BOS. With `parse_special`, control tokens written
    /// in the text (`<|im_start|>`, `<|fim_prefix|>`) become single tokens; without it
    /// they are tokenised as the characters they are made of.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let fragments = self.partition(text, parse_special);
        match &self.model {
            Model::Bpe { bpe, pre } => {
                let mut words = Vec::new();
                let mut scratch = Scratch::default();
                // Repeated words (indentation, keywords) reuse the ids from their first
                // occurrence: word text → range of `out`.
                let mut seen: FastMap<&str, (usize, usize)> = FastMap::default();
                for fragment in &fragments {
                    let range = match fragment {
                        Fragment::Token(id) => {
                            out.push(*id);
                            continue;
                        }
                        Fragment::Text(range) => range.clone(),
                    };
                    let fragment_text = &text[range];
                    words.clear();
                    pre.split(fragment_text, &mut words);
                    for word in &words {
                        let word = &fragment_text[word.clone()];
                        if let Some(&(start, len)) = seen.get(word) {
                            out.extend_from_within(start..start + len);
                            continue;
                        }
                        let start = out.len();
                        bpe.encode_word(word.as_bytes(), &mut scratch, &mut out);
                        seen.insert(word, (start, out.len() - start));
                    }
                }
            }
            Model::Spm {
                scores,
                byte_token,
                unk_id,
                add_space_prefix,
            } => {
                let vocab = spm::SpmVocab {
                    token_to_id: &self.token_to_id,
                    scores,
                    byte_token,
                    unk_id: *unk_id,
                };
                // llama.cpp prefixes a space to text at the start and after each special token.
                let mut after_special = true;
                for fragment in &fragments {
                    match fragment {
                        Fragment::Token(id) => {
                            out.push(*id);
                            after_special = true;
                        }
                        Fragment::Text(range) => {
                            let mut escaped = String::with_capacity(range.len() * 3 + 3);
                            if *add_space_prefix && after_special {
                                escaped.push('▁');
                            }
                            for c in text[range.clone()].chars() {
                                escaped.push(if c == ' ' { '▁' } else { c });
                            }
                            spm::encode(&vocab, &escaped, &mut out);
                            after_special = false;
                        }
                    }
                }
            }
        }
        out
    }

    /// Splits `text` at special tokens: each special token, longest first, is cut out
    /// of every remaining text fragment, as llama.cpp's partition does.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut fragments = Vec::new();
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text(0..text.len()));
        let mut next = Vec::new();
        for &id in &self.specials {
            let token = &self.tokens[id as usize];
            if !parse_special && matches!(token.kind, TokenKind::Control | TokenKind::Unknown) {
                continue;
            }
            let needle = token.text.as_str();
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(r) if text[r.clone()].contains(needle)))
            {
                continue;
            }
            next.clear();
            for fragment in fragments.drain(..) {
                let Fragment::Text(range) = fragment else {
                    next.push(fragment);
                    continue;
                };
                let mut last = range.start;
                for (at, _) in text[range.clone()].match_indices(needle) {
                    let at = range.start + at;
                    if at > last {
                        next.push(Fragment::Text(last..at));
                    }
                    next.push(Fragment::Token(id));
                    last = at + needle.len();
                }
                if last < range.end {
                    next.push(Fragment::Text(last..range.end));
                }
            }
            std::mem::swap(&mut fragments, &mut next);
        }
        fragments
    }

    /// Whether the model expects BOS at the start of a prompt
    /// (`tokenizer.ggml.add_bos_token`).
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos_id.is_some()
    }

    /// The beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Whether generating `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog_ids.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, ascending: EOS, end-of-turn, and tokens such as
    /// `<|im_end|>` or `<|file_sep|>` recognised by their text.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog_ids
    }

    /// The raw bytes `id` stands for: byte-level pieces decoded, `▁` as a space,
    /// `<0xXX>` as that byte, control tokens as their text; empty for an unknown id.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.tokens
            .get(id as usize)
            .map_or(&[], |t| t.bytes.as_slice())
    }

    /// The text of `ids`, with invalid UTF-8 replaced. For SentencePiece vocabularies
    /// that prefix a space when encoding, one leading space is removed from the first
    /// token, as llama.cpp's detokenizer does.
    pub fn decode(&self, ids: &[u32]) -> String {
        let strips_prefix = matches!(
            self.model,
            Model::Spm {
                add_space_prefix: true,
                ..
            }
        );
        let mut bytes = Vec::new();
        for (idx, &id) in ids.iter().enumerate() {
            let piece = self.token_bytes(id);
            let piece = match piece.strip_prefix(b" ") {
                Some(rest) if idx == 0 && strips_prefix => rest,
                _ => piece,
            };
            bytes.extend_from_slice(piece);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The id of the vocabulary entry spelled exactly `text` (as stored in the
    /// vocabulary, e.g. `<|fim_prefix|>`).
    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// The number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// The vocabulary string of `id` as stored (`Ġ` and `▁` not decoded); empty for an
    /// unknown id.
    pub fn token_text(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or("", |t| t.text.as_str())
    }

    /// The Jinja chat template (`tokenizer.chat_template`), if the file has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
}

/// Splits a merge rule `"left right"` at the first space after the first byte.
fn split_merge(rule: &str) -> Option<(&str, &str)> {
    // Searching bytes, as llama.cpp does: a space is ASCII, so `at` is a char boundary.
    let at = rule.bytes().skip(1).position(|b| b == b' ')? + 1;
    Some((&rule[..at], &rule[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_rules_split_after_the_first_byte() {
        assert_eq!(split_merge("Ġ t"), Some(("Ġ", "t")));
        assert_eq!(split_merge("a b c"), Some(("a", "b c")));
        assert_eq!(split_merge("nospace"), None);
        assert_eq!(split_merge("  x"), Some((" ", "x")));
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(b'\n'));
        assert_eq!(parse_byte_token("<0xZZ>"), None);
        assert_eq!(parse_byte_token("<0x0>"), None);
    }
}
