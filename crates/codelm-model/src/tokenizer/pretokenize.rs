//! Pre-tokenization: splitting text into the words that byte-level BPE merges within.
//!
//! A pre-tokenizer is a list of stages applied one after another, as llama.cpp does:
//! each stage splits every chunk left by the previous one, and the text between two
//! matches of a stage stays a chunk of its own. The common patterns (GPT-2, Llama 3,
//! Qwen2) are hand-written scanners that reproduce llama.cpp's own scanners, quirks
//! included, because they are several times faster than a backtracking regex and
//! matching llama.cpp token for token is the point. Rarer patterns run through
//! `fancy-regex` with Unicode classes, which is what llama.cpp's `std::regex` fallback
//! computes on its category-collapsed text.

use std::ops::Range;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The GPT-2 pattern, also the word pattern of StarCoder and the default pre-tokenizer.
pub(crate) const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// The Llama 3 pattern as written in its `tokenizer.json`.
pub(crate) const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The Qwen2 pattern as written in its `tokenizer.json`.
pub(crate) const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// One splitting stage.
#[derive(Debug)]
enum Stage {
    /// A hand-written scanner.
    Scan(Scanner),
    /// A general regex; matches and the gaps between them become chunks.
    Regex(fancy_regex::Regex),
}

/// The hand-written scanners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanner {
    /// [`GPT2_PATTERN`].
    Gpt2,
    /// [`LLAMA3_PATTERN`] (digits in groups of up to three).
    Llama3,
    /// [`QWEN2_PATTERN`] (single digits).
    Qwen2,
}

/// A pre-tokenizer: the stages named by `tokenizer.ggml.pre`.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    stages: Vec<Stage>,
}

/// How a `tokenizer.ggml.pre` name changes the surrounding tokenizer.
#[derive(Debug)]
pub(crate) struct PreTokenizerConfig {
    /// The splitting stages.
    pub(crate) pre_tokenizer: PreTokenizer,
    /// A word that is a whole vocabulary token is emitted without merging.
    pub(crate) ignore_merges: bool,
    /// The default for `add_bos` before `tokenizer.ggml.add_bos_token` overrides it.
    pub(crate) add_bos: bool,
}

fn regex(pattern: &str) -> Result<Stage> {
    fancy_regex::Regex::new(pattern)
        .map(Stage::Regex)
        .map_err(|e| Error::Tokenizer(format!("bad pre-tokenizer pattern `{pattern}`: {e}")))
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` name; `None` is a file
    /// without the key, which llama.cpp treats as `default`.
    pub(crate) fn from_gguf_name(name: Option<&str>) -> Result<PreTokenizerConfig> {
        let mut ignore_merges = false;
        let mut add_bos = false;
        let stages = match name.unwrap_or("default") {
            "default" => vec![
                regex(r"[\p{P}\$\+<=>\^~\|]+")?,
                Stage::Scan(Scanner::Gpt2),
                regex(r"\p{N}+")?,
                regex(r"[0-9][0-9][0-9]")?,
            ],
            "llama3" | "llama-v3" | "llama-bpe" => {
                ignore_merges = true;
                add_bos = true;
                vec![Stage::Scan(Scanner::Llama3)]
            }
            "qwen2" | "deepseek-r1-qwen" | "stablelm2" => vec![Stage::Scan(Scanner::Qwen2)],
            "deepseek-coder" => vec![
                regex(r"[\r\n]")?,
                regex(r"\s?\p{L}+")?,
                regex(r"\s?\p{P}+")?,
                regex("[\u{4e00}-\u{9fa5}\u{0800}-\u{4e00}\u{ac00}-\u{d7ff}]+")?,
                regex(r"\p{N}")?,
            ],
            "starcoder" | "refact" | "smollm" | "codeshell" => {
                vec![regex(r"\p{N}")?, Stage::Scan(Scanner::Gpt2)]
            }
            "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" => vec![Stage::Scan(Scanner::Gpt2)],
            other => {
                return Err(Error::Tokenizer(format!(
                    "unsupported pre-tokenizer `{other}` (supported: default, gpt2, qwen2, \
                     llama3, llama-bpe, deepseek-coder, starcoder, refact)"
                )))
            }
        };
        Ok(PreTokenizerConfig {
            pre_tokenizer: PreTokenizer { stages },
            ignore_merges,
            add_bos,
        })
    }

    /// A pre-tokenizer from a list of regex patterns (from a `tokenizer.json`); a pattern
    /// equal to one with a hand-written scanner uses the scanner.
    pub(crate) fn from_patterns(patterns: &[&str]) -> Result<PreTokenizer> {
        let stages = patterns
            .iter()
            .map(|&pattern| match pattern {
                GPT2_PATTERN => Ok(Stage::Scan(Scanner::Gpt2)),
                LLAMA3_PATTERN => Ok(Stage::Scan(Scanner::Llama3)),
                QWEN2_PATTERN => Ok(Stage::Scan(Scanner::Qwen2)),
                _ => regex(pattern),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PreTokenizer { stages })
    }

    /// Splits `text` into words, appending their byte ranges to `words` in order.
    pub(crate) fn split(&self, text: &str, words: &mut Vec<Range<usize>>) {
        let first = words.len();
        if text.is_empty() {
            return;
        }
        words.push(0..text.len());
        let mut next = Vec::new();
        let mut scratch = Vec::new();
        for stage in &self.stages {
            next.clear();
            for range in words.drain(first..) {
                let chunk = &text[range.clone()];
                match stage {
                    Stage::Scan(scanner) => {
                        scanner.split(chunk, range.start, &mut scratch, &mut next)
                    }
                    Stage::Regex(re) => split_regex(re, chunk, range.start, &mut next),
                }
            }
            words.append(&mut next);
        }
    }
}

/// Splits `chunk` at the matches of `re`; unmatched stretches stay chunks.
fn split_regex(re: &fancy_regex::Regex, chunk: &str, base: usize, out: &mut Vec<Range<usize>>) {
    let mut last = 0;
    for found in re.find_iter(chunk) {
        // A regex that gives up on backtracking leaves the rest of the chunk whole.
        let Ok(found) = found else { break };
        if found.start() == found.end() {
            continue;
        }
        if found.start() > last {
            out.push(base + last..base + found.start());
        }
        out.push(base + found.start()..base + found.end());
        last = found.end();
    }
    if last < chunk.len() {
        out.push(base + last..base + chunk.len());
    }
}

/// Character class bits used by the scanners.
const LETTER: u8 = 1;
const NUMBER: u8 = 2;
const WHITESPACE: u8 = 4;
/// Set for every character, so that "no class" differs from "past the end" (flags 0).
const PRESENT: u8 = 8;

/// Sorted, disjoint codepoint ranges of `\p{L}` and `\p{N}` above ASCII.
struct UnicodeClasses {
    letters: Vec<(u32, u32)>,
    numbers: Vec<(u32, u32)>,
}

/// Collects the runs of consecutive non-ASCII codepoints that `class` matches, by
/// scanning a string of all of them with the regex engine; this keeps the scanners on
/// the same Unicode tables as the regex stages.
fn class_ranges(all: &str, class: &str) -> Vec<(u32, u32)> {
    let Ok(re) = fancy_regex::Regex::new(&format!("{class}+")) else {
        return Vec::new();
    };
    re.find_iter(all)
        .filter_map(|found| {
            let found = found.ok()?;
            let text = found.as_str();
            let first = text.chars().next()? as u32;
            let last = text.chars().next_back()? as u32;
            Some((first, last))
        })
        .collect()
}

fn unicode_classes() -> &'static UnicodeClasses {
    static CLASSES: OnceLock<UnicodeClasses> = OnceLock::new();
    CLASSES.get_or_init(|| {
        // No letter or number lies above plane 3 (planes 14-16 hold tags, variation
        // selectors and private use), so a quarter of the codepoints suffices.
        let all: String = (0x80..=0x3FFFF).filter_map(char::from_u32).collect();
        UnicodeClasses {
            letters: class_ranges(&all, r"\p{L}"),
            numbers: class_ranges(&all, r"\p{N}"),
        }
    })
}

fn in_ranges(ranges: &[(u32, u32)], cp: u32) -> bool {
    let idx = ranges.partition_point(|&(_, last)| last < cp);
    ranges.get(idx).is_some_and(|&(first, _)| first <= cp)
}

/// The class bits of one character.
fn char_flags(c: char) -> u8 {
    if c.is_ascii() {
        let b = c as u8;
        return PRESENT
            | if b.is_ascii_alphabetic() {
                LETTER
            } else if b.is_ascii_digit() {
                NUMBER
            } else if b.is_ascii_whitespace() || b == 0x0B {
                WHITESPACE
            } else {
                0
            };
    }
    let classes = unicode_classes();
    let cp = c as u32;
    let mut flags = PRESENT;
    if c.is_whitespace() {
        flags |= WHITESPACE;
    }
    if in_ranges(&classes.letters, cp) {
        flags |= LETTER;
    } else if in_ranges(&classes.numbers, cp) {
        flags |= NUMBER;
    }
    flags
}

/// One character of a chunk being scanned.
#[derive(Clone, Copy)]
struct Cp {
    c: char,
    flags: u8,
    /// Byte offset of the character within the chunk.
    at: usize,
}

impl Scanner {
    /// Appends the words of `chunk` (byte offset `base` in the text) to `out`.
    fn split(self, chunk: &str, base: usize, cps: &mut Vec<Cp>, out: &mut Vec<Range<usize>>) {
        cps.clear();
        cps.extend(chunk.char_indices().map(|(at, c)| Cp {
            c,
            flags: char_flags(c),
            at,
        }));
        let n = cps.len();
        let c_at = |pos: usize| cps.get(pos).map(|cp| cp.c);
        let flags_at = |pos: usize| cps.get(pos).map_or(0, |cp| cp.flags);
        let byte_at = |pos: usize| cps.get(pos).map_or(chunk.len(), |cp| cp.at);
        let is = |pos: usize, bit: u8| flags_at(pos) & bit != 0;
        let is_cr_lf = |c: Option<char>| matches!(c, Some('\r' | '\n'));
        let lower = |c: Option<char>| c.map(|c| c.to_ascii_lowercase());

        let mut prev_end = 0;
        let mut emit = |end: usize, out: &mut Vec<Range<usize>>| {
            if end > prev_end {
                out.push(base + byte_at(prev_end)..base + byte_at(end));
            }
            prev_end = end;
        };

        let mut pos = 0;
        while pos < n {
            let c = cps[pos].c;
            let flags = cps[pos].flags;

            // Contractions: 's 't 're 've 'm 'll 'd (case-insensitive except for GPT-2).
            if c == '\'' && pos + 1 < n {
                let fold = |c: Option<char>| if self == Scanner::Gpt2 { c } else { lower(c) };
                let next = fold(c_at(pos + 1));
                if matches!(next, Some('s' | 't' | 'm' | 'd')) {
                    pos += 2;
                    emit(pos, out);
                    continue;
                }
                if pos + 2 < n {
                    let pair = (next, fold(c_at(pos + 2)));
                    if matches!(
                        pair,
                        (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
                    ) {
                        pos += 3;
                        emit(pos, out);
                        continue;
                    }
                }
            }

            if self == Scanner::Gpt2 {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`, each after an optional space.
                let lead = usize::from(c == ' ');
                let flags2 = flags_at(pos + lead);
                let same_run: Option<fn(u8) -> bool> = if flags2 & LETTER != 0 {
                    Some(|f| f & LETTER != 0)
                } else if flags2 & NUMBER != 0 {
                    Some(|f| f & NUMBER != 0)
                } else if flags2 & (LETTER | NUMBER | WHITESPACE) == 0 && flags2 != 0 {
                    Some(|f| f & (LETTER | NUMBER | WHITESPACE) == 0 && f != 0)
                } else {
                    None
                };
                if let Some(same_run) = same_run {
                    pos += lead;
                    while same_run(flags_at(pos)) {
                        pos += 1;
                    }
                    emit(pos, out);
                    continue;
                }
            } else {
                // `[^\r\n\p{L}\p{N}]?\p{L}+`
                if !(c == '\r' || c == '\n' || flags & NUMBER != 0)
                    && (flags & LETTER != 0 || is(pos + 1, LETTER))
                {
                    pos += 1;
                    while is(pos, LETTER) {
                        pos += 1;
                    }
                    emit(pos, out);
                    continue;
                }
                // `\p{N}` (Qwen2) or `\p{N}{1,3}` (Llama 3).
                if flags & NUMBER != 0 {
                    if self == Scanner::Qwen2 {
                        pos += 1;
                        emit(pos, out);
                    } else {
                        let mut start = pos;
                        while is(pos, NUMBER) {
                            pos += 1;
                            if pos - start >= 3 {
                                emit(pos, out);
                                start = pos;
                            }
                        }
                        emit(pos, out);
                    }
                    continue;
                }
                // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
                let mut flags2 = if c == ' ' { flags_at(pos + 1) } else { flags };
                if flags2 & (LETTER | NUMBER | WHITESPACE) == 0 && flags != 0 {
                    pos += usize::from(c == ' ');
                    while flags2 & (LETTER | NUMBER | WHITESPACE) == 0 && flags2 != 0 {
                        pos += 1;
                        flags2 = flags_at(pos);
                    }
                    while is_cr_lf(c_at(pos)) {
                        pos += 1;
                    }
                    emit(pos, out);
                    continue;
                }
            }

            let mut n_space = 0;
            let mut last_cr_lf_end = None;
            while is(pos + n_space, WHITESPACE) {
                if self != Scanner::Gpt2 && is_cr_lf(c_at(pos + n_space)) {
                    last_cr_lf_end = Some(pos + n_space + 1);
                }
                n_space += 1;
            }
            // `\s*[\r\n]+`
            if let Some(end) = last_cr_lf_end {
                pos = end;
                emit(pos, out);
                continue;
            }
            // `\s+(?!\S)`: all but the last space when a non-space follows in the chunk.
            if n_space > 1 && pos + n_space < n {
                pos += n_space - 1;
                emit(pos, out);
                continue;
            }
            // `\s+`
            if n_space > 0 {
                pos += n_space;
                emit(pos, out);
                continue;
            }
            // No alternative matches: the character stands alone.
            pos += 1;
            emit(pos, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: &PreTokenizer, text: &str) -> Vec<String> {
        let mut ranges = Vec::new();
        pre.split(text, &mut ranges);
        ranges.into_iter().map(|r| text[r].to_string()).collect()
    }

    fn named(name: &str) -> PreTokenizer {
        PreTokenizer::from_gguf_name(Some(name))
            .unwrap()
            .pre_tokenizer
    }

    #[test]
    fn qwen2_splits_like_its_regex() {
        let qwen = named("qwen2");
        assert_eq!(
            words(&qwen, "I'VE it's  x12\n\n  def f():\r\n\tpass"),
            [
                "I", "'VE", " it", "'s", " ", " x", "1", "2", "\n\n", " ", " def", " f", "():\r\n",
                "\tpass"
            ]
        );
        assert_eq!(
            words(&qwen, "héllo 世界!!  "),
            ["héllo", " 世界", "!!", "  "]
        );
    }

    #[test]
    fn llama3_groups_digits_by_three() {
        assert_eq!(words(&named("llama3"), "12345678"), ["123", "456", "78"]);
    }

    #[test]
    fn gpt2_contractions_are_case_sensitive() {
        assert_eq!(
            words(&named("gpt2"), "I'VE it's 42"),
            ["I", "'", "VE", " it", "'s", " 42"]
        );
    }

    #[test]
    fn starcoder_splits_digits_first() {
        assert_eq!(
            words(&named("starcoder"), "x = 123"),
            ["x", " =", " ", "1", "2", "3"]
        );
    }

    #[test]
    fn unknown_pre_tokenizer_is_an_error() {
        assert!(PreTokenizer::from_gguf_name(Some("no-such")).is_err());
    }

    #[test]
    fn unicode_classes_cover_letters_and_numbers() {
        assert_eq!(char_flags('é') & LETTER, LETTER);
        assert_eq!(char_flags('世') & LETTER, LETTER);
        assert_eq!(char_flags('٣') & NUMBER, NUMBER);
        assert_eq!(char_flags('\u{3000}') & WHITESPACE, WHITESPACE);
        assert_eq!(char_flags('😀') & (LETTER | NUMBER | WHITESPACE), 0);
    }
}
