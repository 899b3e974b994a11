//! Decontamination: drop files that share a word n-gram with a benchmark.
//!
//! As Qwen2.5-Coder did, a file is removed when it shares any 10-gram of words
//! with a benchmark's prompts or solutions. A "word" is a maximal run of
//! alphanumeric characters or `_`, lowercased, so the match ignores layout,
//! punctuation and case: a HumanEval prompt pasted into a file with different
//! indentation is still caught. Benchmark n-grams made mostly of numbers
//! (`0 1 2 3 4 5 6 7 8 9` in a doctest) are not indexed: they are no evidence
//! of a copied task, and they were two of the first three hits in CPython's
//! standard library. Only n-gram hashes (64-bit) are kept, so the index of
//! HumanEval + MBPP is about 2 MB.
//!
//! ```
//! use codelm_curate::decontam::Decontaminator;
//! let d = Decontaminator::from_texts(["def add(a, b): return the sum of a and b plus one"], 10, "toy");
//! assert!(d.find("# copy\ndef  ADD(a,b):\n    return the sum of a and b plus one\n").is_some());
//! assert!(d.find("def add(a, b): return a + b").is_none());
//! ```

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

/// A benchmark n-gram found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contamination {
    /// The shared words, joined by spaces.
    pub ngram: String,
    /// The benchmark (file name or label) the n-gram came from.
    pub source: String,
}

/// An index of benchmark word n-grams.
#[derive(Debug, Clone, Default)]
pub struct Decontaminator {
    n: usize,
    grams: HashMap<u64, u32>,
    sources: Vec<String>,
}

/// Words of a text: lowercased runs of alphanumerics and `_`.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
}

fn gram_hash(word_hashes: &[u64]) -> u64 {
    let mut bytes = [0u8; 8 * 32];
    let mut v = Vec::new();
    let buf: &mut [u8] = if word_hashes.len() <= 32 {
        &mut bytes[..word_hashes.len() * 8]
    } else {
        v.resize(word_hashes.len() * 8, 0);
        &mut v
    };
    for (i, h) in word_hashes.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&h.to_le_bytes());
    }
    xxh3_64(buf)
}

impl Decontaminator {
    /// An index of the `n`-grams of `texts`, all attributed to `label`.
    pub fn from_texts<I, S>(texts: I, n: usize, label: &str) -> Decontaminator
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut d = Decontaminator {
            n: n.max(1),
            ..Default::default()
        };
        d.add_texts(texts, label);
        d
    }

    /// An empty index for `n`-grams.
    pub fn new(n: usize) -> Decontaminator {
        Decontaminator {
            n: n.max(1),
            ..Default::default()
        }
    }

    /// Adds the `n`-grams of `texts`, attributed to `label`. A text shorter than
    /// `n` words adds nothing (it cannot share an `n`-gram with anything).
    pub fn add_texts<I, S>(&mut self, texts: I, label: &str)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let source_idx = match self.sources.iter().position(|s| s == label) {
            Some(i) => i,
            None => {
                self.sources.push(label.to_string());
                self.sources.len() - 1
            }
        } as u32;
        for text in texts {
            let hashes: Vec<u64> = words(text.as_ref())
                .map(|w| xxh3_64(w.as_bytes()))
                .collect();
            if hashes.len() < self.n {
                continue;
            }
            let ws: Vec<String> = words(text.as_ref()).collect();
            for (start, window) in hashes.windows(self.n).enumerate() {
                // N-grams of mostly numbers ("0 1 2 3 4 5 6 7 8 9" in a doctest)
                // are not evidence of a copied task.
                let n_wordy = ws[start..start + self.n]
                    .iter()
                    .filter(|w| w.chars().any(|c| c.is_alphabetic()))
                    .count();
                if 2 * n_wordy < self.n {
                    continue;
                }
                self.grams.entry(gram_hash(window)).or_insert(source_idx);
            }
        }
    }

    /// Adds a benchmark file: `.jsonl`/`.jsonl.gz` records or a `.json` array
    /// (string `fields` of each record are added), or any other file whole.
    pub fn add_file(&mut self, path: &Path, fields: &[String]) -> Result<usize> {
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let name = label.to_ascii_lowercase();
        let mut raw = Vec::new();
        let file = std::fs::File::open(path).map_err(Error::io(path))?;
        if name.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(file)
                .read_to_end(&mut raw)
                .map_err(Error::io(path))?;
        } else {
            std::io::BufReader::new(file)
                .read_to_end(&mut raw)
                .map_err(Error::io(path))?;
        }
        let text = String::from_utf8_lossy(&raw);
        let stem = name.trim_end_matches(".gz");
        let mut texts = Vec::new();
        let mut collect = |v: &serde_json::Value| {
            for f in fields {
                if let Some(s) = v.get(f).and_then(|s| s.as_str()) {
                    texts.push(s.to_string());
                }
            }
        };
        if stem.ends_with(".jsonl") {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value =
                    serde_json::from_str(line).map_err(|cause| Error::Json {
                        path: path.to_path_buf(),
                        line: i + 1,
                        cause,
                    })?;
                collect(&v);
            }
        } else if stem.ends_with(".json") {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|cause| Error::Json {
                    path: path.to_path_buf(),
                    line: 0,
                    cause,
                })?;
            match &v {
                serde_json::Value::Array(xs) => xs.iter().for_each(&mut collect),
                other => collect(other),
            }
        } else {
            texts.push(text.into_owned());
        }
        let n_texts = texts.len();
        self.add_texts(texts, &label);
        Ok(n_texts)
    }

    /// Number of distinct n-grams indexed.
    pub fn len(&self) -> usize {
        self.grams.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// The n-gram size.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The first benchmark n-gram found in `content`, if any.
    pub fn find(&self, content: &str) -> Option<Contamination> {
        if self.grams.is_empty() {
            return None;
        }
        let words: Vec<String> = words(content).collect();
        if words.len() < self.n {
            return None;
        }
        let hashes: Vec<u64> = words.iter().map(|w| xxh3_64(w.as_bytes())).collect();
        for (start, window) in hashes.windows(self.n).enumerate() {
            if let Some(&src) = self.grams.get(&gram_hash(window)) {
                return Some(Contamination {
                    ngram: words[start..start + self.n].join(" "),
                    source: self.sources[src as usize].clone(),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        let w: Vec<String> = words("def has_close(Numbers: List[float]) -> bool:").collect();
        assert_eq!(w, ["def", "has_close", "numbers", "list", "float", "bool"]);
    }

    #[test]
    fn one_shared_gram_is_enough_and_nine_words_are_not() {
        let bench = "one two three four five six seven eight nine ten eleven";
        let d = Decontaminator::from_texts([bench], 10, "b");
        assert_eq!(d.len(), 2);
        let hit = d
            .find("zero, TWO three four five six seven eight nine ten eleven!")
            .unwrap();
        assert_eq!(
            hit.ngram,
            "two three four five six seven eight nine ten eleven"
        );
        assert_eq!(hit.source, "b");
        assert!(d
            .find("two three four five six seven eight nine ten")
            .is_none());
        assert!(d
            .find("one two three four five six seven eight nine TEN_")
            .is_none());
    }

    #[test]
    fn numeric_ngrams_are_not_indexed() {
        let d = Decontaminator::from_texts([">>> f('0 1 2 3 4 5 6 7 8 9 10')"], 10, "b");
        assert_eq!(d.len(), 0);
        assert!(d.find("print(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)").is_none());
    }

    #[test]
    fn reads_jsonl_gz_and_json_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("he.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::fast(),
        );
        use std::io::Write;
        writeln!(enc, r#"{{"task_id": "x/0", "prompt": "a b c d e f g h i j k", "test": "t u v w x y z q r s p"}}"#).unwrap();
        enc.finish().unwrap();
        let mut d = Decontaminator::new(10);
        let fields: Vec<String> = vec!["prompt".into()];
        assert_eq!(d.add_file(&p, &fields).unwrap(), 1);
        assert_eq!(d.len(), 2);
        assert!(
            d.find("t u v w x y z q r s p").is_none(),
            "only the chosen fields count"
        );
        let j = dir.path().join("s.json");
        std::fs::write(&j, r#"[{"prompt": "l m n o p q r s t u"}]"#).unwrap();
        d.add_file(&j, &fields).unwrap();
        assert_eq!(d.find("x l m n o p q r s t u").unwrap().source, "s.json");
    }
}
