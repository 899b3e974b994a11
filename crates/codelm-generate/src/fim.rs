//! Fill-in-the-middle (infill) prompts, in the format the vocabulary shows
//! the model was trained on.
//!
//! [`FimFormat::detect`] looks the marker tokens up in the vocabulary and
//! recognises, in this order:
//!
//! | family | prefix / suffix / middle | repository context |
//! | --- | --- | --- |
//! | Qwen2.5-Coder | `<\|fim_prefix\|>` `<\|fim_suffix\|>` `<\|fim_middle\|>` | `<\|repo_name\|>` `<\|file_sep\|>` |
//! | StarCoder | `<fim_prefix>` `<fim_suffix>` `<fim_middle>` | `<repo_name>` or `<reponame>`, `<file_sep>` |
//! | Code Llama | `▁<PRE>` `▁<SUF>` `▁<MID>` (or without `▁`) | none |
//! | DeepSeek-Coder | `<｜fim▁begin｜>` `<｜fim▁hole｜>` `<｜fim▁end｜>` | none |
//!
//! The design decision a newcomer may question: a prompt is a list of
//! [`Segment`]s, marker tokens as ids and user code as text, never one string.
//! The tokenizer encodes each text segment without parsing special tokens,
//! so code that happens to contain `<|fim_middle|>` cannot inject a marker.
//! Whether a BOS token goes first is the tokenizer's setting, not ours; Code
//! Llama's leading space before the prefix is SentencePiece's dummy prefix,
//! also the tokenizer's business.
//!
//! Orders: PSM is `<PRE>prefix<SUF>suffix<MID>`. SPM follows llama.cpp's
//! `/infill` (and StarCoder's SPM variant): `<SUF>suffix<PRE>prefix<MID>`,
//! for every family; Code Llama's own SPM layout differs and is not offered.
//!
//! Repository context (Qwen2.5-Coder's repo-level layout, from its README and
//! technical report) is used when the vocabulary has a file separator and the
//! input names a repository, a current path or extra files:
//!
//! ```text
//! <|repo_name|>{repo}\n
//! <|file_sep|>{path}\n{content}\n        (once per extra file)
//! <|file_sep|>{current_path}\n
//! <|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>
//! ```
//!
//! The newline after a file's content is added only when the content does
//! not already end with one, and a missing repository name or current path
//! leaves its line out. Families without a file separator get the extra files
//! as text at the start of the prefix, each introduced by `--- {path} ---\n`,
//! much as llama.cpp joins `input_extra` chunks.
//!
//! ```
//! use codelm_generate::{FimFamily, FimFormat, FimInput, Segment};
//!
//! let vocab = |text: &str| match text {
//!     "<fim_prefix>" => Some(1),
//!     "<fim_suffix>" => Some(2),
//!     "<fim_middle>" => Some(3),
//!     "<|endoftext|>" => Some(0),
//!     _ => None,
//! };
//! let format = FimFormat::detect(&vocab).unwrap();
//! assert_eq!(format.family(), FimFamily::StarCoder);
//! assert_eq!(
//!     format.prompt(&FimInput::new("def f():\n    ", "\n")),
//!     [
//!         Segment::Special(1),
//!         Segment::Text("def f():\n    ".to_string()),
//!         Segment::Special(2),
//!         Segment::Text("\n".to_string()),
//!         Segment::Special(3),
//!     ]
//! );
//! assert_eq!(format.stop_tokens(), [0]);
//! ```

/// One piece of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A special token, by id.
    Special(u32),
    /// Text to tokenize without recognising special tokens in it.
    Text(String),
}

/// The model families whose infill markers are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FimFamily {
    /// Qwen2.5-Coder.
    Qwen,
    /// StarCoder, StarCoder2 and SantaCoder-style vocabularies.
    StarCoder,
    /// Code Llama.
    CodeLlama,
    /// DeepSeek-Coder.
    DeepSeek,
}

/// Where the suffix goes relative to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FimOrder {
    /// Prefix, suffix, middle.
    #[default]
    Psm,
    /// Suffix, prefix, middle.
    Spm,
}

/// What to complete: the code around the hole and optional repository
/// context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FimInput {
    /// Code before the hole.
    pub prefix: String,
    /// Code after the hole.
    pub suffix: String,
    /// Marker order.
    pub order: FimOrder,
    /// Repository name, for repo-level formats.
    pub repo_name: Option<String>,
    /// Path of the file being completed, for repo-level formats.
    pub file_path: Option<String>,
    /// Other files as `(filename, text)` pairs, like llama.cpp's
    /// `input_extra`.
    pub extra_files: Vec<(String, String)>,
}

impl FimInput {
    /// A PSM request with no repository context.
    pub fn new(prefix: impl Into<String>, suffix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            suffix: suffix.into(),
            ..Self::default()
        }
    }
}

/// A vocabulary's infill markers and the tokens that end an infill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FimFormat {
    family: FimFamily,
    prefix: u32,
    suffix: u32,
    middle: u32,
    repo_name: Option<u32>,
    file_sep: Option<u32>,
    stop_tokens: Vec<u32>,
}

/// Marker spellings per family, each list tried in order.
struct Spellings {
    family: FimFamily,
    prefix: &'static [&'static str],
    suffix: &'static [&'static str],
    middle: &'static [&'static str],
    repo_name: &'static [&'static str],
    file_sep: &'static [&'static str],
    stops: &'static [&'static str],
}

const FAMILIES: [Spellings; 4] = [
    Spellings {
        family: FimFamily::Qwen,
        prefix: &["<|fim_prefix|>"],
        suffix: &["<|fim_suffix|>"],
        middle: &["<|fim_middle|>"],
        repo_name: &["<|repo_name|>"],
        file_sep: &["<|file_sep|>"],
        stops: &[
            "<|endoftext|>",
            "<|fim_pad|>",
            "<|file_sep|>",
            "<|repo_name|>",
            "<|im_end|>",
        ],
    },
    Spellings {
        family: FimFamily::StarCoder,
        prefix: &["<fim_prefix>"],
        suffix: &["<fim_suffix>"],
        middle: &["<fim_middle>"],
        repo_name: &["<repo_name>", "<reponame>"],
        file_sep: &["<file_sep>"],
        stops: &[
            "<|endoftext|>",
            "<fim_pad>",
            "<file_sep>",
            "<repo_name>",
            "<reponame>",
        ],
    },
    Spellings {
        family: FimFamily::CodeLlama,
        prefix: &["▁<PRE>", "<PRE>"],
        suffix: &["▁<SUF>", "<SUF>"],
        middle: &["▁<MID>", "<MID>"],
        repo_name: &[],
        file_sep: &[],
        stops: &["▁<EOT>", "<EOT>", "</s>"],
    },
    Spellings {
        family: FimFamily::DeepSeek,
        prefix: &["<｜fim▁begin｜>"],
        suffix: &["<｜fim▁hole｜>"],
        middle: &["<｜fim▁end｜>"],
        repo_name: &[],
        file_sep: &[],
        stops: &["<|EOT|>", "<｜end▁of▁sentence｜>"],
    },
];

fn first_known(lookup: &dyn Fn(&str) -> Option<u32>, spellings: &[&str]) -> Option<u32> {
    spellings.iter().find_map(|text| lookup(text))
}

impl FimFormat {
    /// Recognises the infill format from the vocabulary; `lookup` maps a
    /// token's text to its id. `None` when no family's three markers are all
    /// present.
    pub fn detect(lookup: &dyn Fn(&str) -> Option<u32>) -> Option<Self> {
        FAMILIES.iter().find_map(|spellings| {
            let prefix = first_known(lookup, spellings.prefix)?;
            let suffix = first_known(lookup, spellings.suffix)?;
            let middle = first_known(lookup, spellings.middle)?;
            let mut stop_tokens: Vec<u32> = Vec::new();
            for id in spellings.stops.iter().filter_map(|text| lookup(text)) {
                if !stop_tokens.contains(&id) {
                    stop_tokens.push(id);
                }
            }
            Some(Self {
                family: spellings.family,
                prefix,
                suffix,
                middle,
                repo_name: first_known(lookup, spellings.repo_name),
                file_sep: first_known(lookup, spellings.file_sep),
                stop_tokens,
            })
        })
    }

    /// The recognised family.
    pub fn family(&self) -> FimFamily {
        self.family
    }

    /// Token ids that end an infill (end of text, padding, file and
    /// repository separators, end of turn), in the family's list order
    /// without duplicates. The model's own EOS should stop it as well.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// The prompt for `input`, ending with the middle marker.
    pub fn prompt(&self, input: &FimInput) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut prefix = String::new();
        let wants_repo_context =
            input.repo_name.is_some() || input.file_path.is_some() || !input.extra_files.is_empty();
        match self.file_sep {
            Some(file_sep) if wants_repo_context => {
                if let (Some(repo_token), Some(repo_name)) = (self.repo_name, &input.repo_name) {
                    segments.push(Segment::Special(repo_token));
                    segments.push(Segment::Text(format!("{repo_name}\n")));
                }
                for (path, text) in &input.extra_files {
                    let newline = if text.ends_with('\n') { "" } else { "\n" };
                    segments.push(Segment::Special(file_sep));
                    segments.push(Segment::Text(format!("{path}\n{text}{newline}")));
                }
                if let Some(path) = &input.file_path {
                    segments.push(Segment::Special(file_sep));
                    segments.push(Segment::Text(format!("{path}\n")));
                }
            }
            _ => {
                for (path, text) in &input.extra_files {
                    let newline = if text.ends_with('\n') { "" } else { "\n" };
                    prefix.push_str(&format!("--- {path} ---\n{text}{newline}"));
                }
            }
        }
        prefix.push_str(&input.prefix);
        let prefix_part = [Segment::Special(self.prefix), Segment::Text(prefix)];
        let suffix_part = [
            Segment::Special(self.suffix),
            Segment::Text(input.suffix.clone()),
        ];
        let (first, second) = match input.order {
            FimOrder::Psm => (prefix_part, suffix_part),
            FimOrder::Spm => (suffix_part, prefix_part),
        };
        segments.extend(first);
        segments.extend(second);
        segments.push(Segment::Special(self.middle));
        segments.retain(|segment| !matches!(segment, Segment::Text(text) if text.is_empty()));
        segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_middle_marker_means_no_format() {
        let vocab = |text: &str| match text {
            "<|fim_prefix|>" => Some(1),
            "<|fim_suffix|>" => Some(2),
            _ => None,
        };
        assert_eq!(FimFormat::detect(&vocab), None);
    }

    #[test]
    fn duplicate_stop_ids_are_listed_once() {
        let vocab = |text: &str| match text {
            "<PRE>" => Some(1),
            "<SUF>" => Some(2),
            "<MID>" => Some(3),
            "<EOT>" | "▁<EOT>" => Some(4),
            _ => None,
        };
        let format = FimFormat::detect(&vocab).unwrap();
        assert_eq!(format.stop_tokens(), [4]);
    }

    #[test]
    fn empty_text_segments_are_dropped() {
        let vocab = |text: &str| match text {
            "<fim_prefix>" => Some(1),
            "<fim_suffix>" => Some(2),
            "<fim_middle>" => Some(3),
            _ => None,
        };
        let format = FimFormat::detect(&vocab).unwrap();
        assert_eq!(
            format.prompt(&FimInput::new("", "")),
            [
                Segment::Special(1),
                Segment::Special(2),
                Segment::Special(3)
            ]
        );
    }
}
