//! Pipeline configuration, read from TOML.
//!
//! Every field has a default, so an empty file (or no file) is a valid config;
//! the defaults are the values bigcode used for The Stack and StarCoder (see
//! each field). Unknown keys are rejected, so a typo such as `treshold` is an
//! error rather than a silently ignored setting.
//!
//! ```
//! let cfg = codelm_curate::Config::from_toml_str(
//!     "[near_dedup]\nthreshold = 0.8\n[pii]\nenabled = false\n",
//! ).unwrap();
//! assert_eq!(cfg.near_dedup.threshold, 0.8);
//! assert_eq!(cfg.near_dedup.ngram, 5);
//! assert!(!cfg.pii.enabled);
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The whole pipeline configuration; one section per stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How inputs are read and split into shards.
    pub input: InputConfig,
    /// Which shard formats are written.
    pub output: OutputConfig,
    /// Language detection and the language allow-list.
    pub language: LanguageConfig,
    /// License detection and the license allow-list.
    pub license: LicenseConfig,
    /// Repository metadata thresholds.
    pub metadata: MetadataConfig,
    /// StarCoder file-quality filters.
    pub quality: QualityConfig,
    /// Benchmark decontamination.
    pub decontamination: DecontaminationConfig,
    /// Exact deduplication.
    pub exact_dedup: ExactDedupConfig,
    /// MinHash/LSH near deduplication.
    pub near_dedup: NearDedupConfig,
    /// PII and secret redaction.
    pub pii: PiiConfig,
    /// Threads and memory; not part of the run's fingerprint (they never change the output).
    pub resources: ResourceConfig,
}

/// How inputs are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Honour `.gitignore` files (also outside git repositories) when walking directories.
    pub honor_gitignore: bool,
    /// Skip hidden files and directories (`.git`, `.venv`, ...).
    pub skip_hidden: bool,
    /// Skip vendored and generated paths (`node_modules/`, `_vendor/`, `*.min.js`, `*_pb2.py`, lock files).
    pub skip_vendored: bool,
    /// Files of a directory input per shard (the unit of parallel output and of resumption).
    pub files_per_shard: usize,
    /// Files and records larger than this are never read into memory (a memory guard,
    /// separate from the quality stage's size filter).
    pub max_file_bytes: u64,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            honor_gitignore: true,
            skip_hidden: true,
            skip_vendored: true,
            files_per_shard: 2000,
            max_file_bytes: 8 << 20,
        }
    }
}

/// Which output formats are written, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Write `part-NNNNNN.parquet` (snappy-compressed).
    pub parquet: bool,
    /// Write `part-NNNNNN.jsonl`.
    pub jsonl: bool,
    /// Content bytes buffered per Parquet row group.
    pub row_group_bytes: u64,
    /// Keep `work/` (staged shards, hash runs) after a successful run.
    pub keep_work: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            parquet: true,
            jsonl: false,
            row_group_bytes: 32 << 20,
            keep_work: false,
        }
    }
}

/// Language detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanguageConfig {
    /// Run the stage; when off every record keeps the language it came with (or none).
    pub enabled: bool,
    /// Languages to keep, by name as in [`crate::lang::LANGUAGES`]; empty keeps every detected one.
    pub allow: Vec<String>,
    /// Keep files whose language cannot be detected.
    pub keep_unknown: bool,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        LanguageConfig {
            enabled: true,
            allow: Vec::new(),
            keep_unknown: false,
        }
    }
}

/// License detection and filtering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LicenseConfig {
    /// Run the stage.
    pub enabled: bool,
    /// SPDX ids that are allowed (permissive by default, as in The Stack). An
    /// expression is allowed when it evaluates to true with `OR`/`AND`.
    pub allow: Vec<String>,
    /// Keep records for which no license can be detected (The Stack drops them).
    pub keep_unlicensed: bool,
}

impl Default for LicenseConfig {
    fn default() -> Self {
        LicenseConfig {
            enabled: true,
            allow: crate::license::PERMISSIVE
                .iter()
                .map(|s| s.to_string())
                .collect(),
            keep_unlicensed: false,
        }
    }
}

/// Repository metadata thresholds; applied only to records that carry the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// Run the stage.
    pub enabled: bool,
    /// Minimum repository stars (0: no filter; bigcode applies none).
    pub min_stars: u64,
    /// Minimum repository forks (0: no filter).
    pub min_forks: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            enabled: true,
            min_stars: 0,
            min_forks: 0,
        }
    }
}

/// File quality filters, with StarCoder's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Run the stage.
    pub enabled: bool,
    /// Largest file kept, in bytes (The Stack: 1 MB).
    pub max_size_bytes: u64,
    /// Longest line allowed, in characters (StarCoder: 1000).
    pub max_line_length: usize,
    /// Largest mean line length allowed (StarCoder: 100).
    pub max_mean_line_length: f64,
    /// Smallest fraction of alphanumeric characters (StarCoder: 0.25).
    pub min_alphanum_fraction: f64,
    /// Lines scanned at the top of a file for auto-generation markers (StarCoder: 5).
    pub autogen_scan_lines: usize,
    /// Case-insensitive markers of generated files (StarCoder's three, plus Go's `DO NOT EDIT`).
    pub autogen_markers: Vec<String>,
    /// A single base64/hex/unicode-escape run longer than this removes the file (StarCoder: 1024).
    pub encoded_max_run: usize,
    /// Encoded runs covering more than this fraction of the file remove it (StarCoder: 0.5).
    pub encoded_max_fraction: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            enabled: true,
            max_size_bytes: 1 << 20,
            max_line_length: 1000,
            max_mean_line_length: 100.0,
            min_alphanum_fraction: 0.25,
            autogen_scan_lines: 5,
            autogen_markers: [
                "auto-generated",
                "autogenerated",
                "automatically generated",
                "do not edit",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            encoded_max_run: 1024,
            encoded_max_fraction: 0.5,
        }
    }
}

/// Decontamination against benchmark texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontaminationConfig {
    /// Run the stage (it does nothing, and says so in the report, without benchmark files).
    pub enabled: bool,
    /// Word n-gram size shared with a benchmark that removes a file (Qwen2.5-Coder: 10).
    pub ngram: usize,
    /// Benchmark files: `.jsonl`, `.jsonl.gz` or `.json` records (their `fields` are
    /// read), or any other file, read whole as one text.
    pub benchmarks: Vec<PathBuf>,
    /// String fields of benchmark records that are prompts or solutions.
    pub fields: Vec<String>,
}

impl Default for DecontaminationConfig {
    fn default() -> Self {
        DecontaminationConfig {
            enabled: true,
            ngram: 10,
            benchmarks: Vec::new(),
            fields: ["prompt", "canonical_solution", "text", "code"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Exact deduplication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExactDedupConfig {
    /// Run the stage: of files whose whitespace-normalized content is identical, keep the first.
    pub enabled: bool,
}

impl Default for ExactDedupConfig {
    fn default() -> Self {
        ExactDedupConfig { enabled: true }
    }
}

/// MinHash/LSH near deduplication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearDedupConfig {
    /// Run the stage.
    pub enabled: bool,
    /// Tokens per shingle (bigcode: 5).
    pub ngram: usize,
    /// Permutations budget; bands × rows ≤ this (bigcode: 256).
    pub num_perm: usize,
    /// Target Jaccard similarity (bigcode: 0.7); picks bands and rows as datasketch does.
    pub threshold: f64,
    /// Override the number of bands (with `rows`).
    pub bands: Option<usize>,
    /// Override the rows per band (with `bands`).
    pub rows: Option<usize>,
    /// Seed of the permutation parameters.
    pub seed: u64,
}

impl Default for NearDedupConfig {
    fn default() -> Self {
        NearDedupConfig {
            enabled: true,
            ngram: 5,
            num_perm: 256,
            threshold: 0.7,
            bands: None,
            rows: None,
            seed: 42,
        }
    }
}

impl NearDedupConfig {
    /// The (bands, rows) used: the overrides, or the datasketch optimum for `threshold`.
    pub fn bands_rows(&self) -> (usize, usize) {
        match (self.bands, self.rows) {
            (Some(bands), Some(rows)) => (bands, rows),
            _ => crate::minhash::optimal_params(self.threshold, self.num_perm),
        }
    }
}

/// PII and secret redaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    /// Run the stage.
    pub enabled: bool,
    /// Redact e-mail addresses.
    pub emails: bool,
    /// Redact public IPv4/IPv6 addresses (private, loopback and documentation ranges are kept).
    pub ip_addresses: bool,
    /// Redact API keys and tokens: known formats and high-entropy string literals.
    pub keys: bool,
    /// Redact passwords assigned in code and embedded in URLs.
    pub passwords: bool,
    /// Shannon entropy (bits/char) above which a base64 string literal is a key (detect-secrets: 4.5).
    pub base64_entropy: f64,
    /// Shannon entropy above which a hex string literal is a key (detect-secrets: 3.0).
    pub hex_entropy: f64,
    /// Placeholder for e-mail addresses.
    pub email_placeholder: String,
    /// Placeholder for IP addresses.
    pub ip_placeholder: String,
    /// Placeholder for keys and tokens.
    pub key_placeholder: String,
    /// Placeholder for passwords.
    pub password_placeholder: String,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            enabled: true,
            emails: true,
            ip_addresses: true,
            keys: true,
            passwords: true,
            base64_entropy: 4.5,
            hex_entropy: 3.0,
            email_placeholder: "<EMAIL>".into(),
            ip_placeholder: "<IP_ADDRESS>".into(),
            key_placeholder: "<KEY>".into(),
            password_placeholder: "<PASSWORD>".into(),
        }
    }
}

/// Threads and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceConfig {
    /// Worker threads; 0 uses every core.
    pub threads: usize,
    /// Bytes of dedup records (band hashes, content hashes) sorted in memory before
    /// spilling a run to disk, in MiB. See [`crate::memory_bound`].
    pub sort_buffer_mb: u64,
    /// Input content processed per parallel batch, in MiB.
    pub batch_mb: u64,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        ResourceConfig {
            threads: 0,
            sort_buffer_mb: 256,
            batch_mb: 32,
        }
    }
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml_str(text: &str) -> std::result::Result<Config, Box<toml::de::Error>> {
        toml::from_str(text).map_err(Box::new)
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let cfg = Config::from_toml_str(&text).map_err(|cause| Error::Config {
            path: path.to_path_buf(),
            cause,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<()> {
        let nd = &self.near_dedup;
        if nd.enabled {
            if nd.ngram == 0 {
                return Err(Error::config_value(
                    "near_dedup.ngram",
                    "must be at least 1",
                ));
            }
            if !(nd.threshold > 0.0 && nd.threshold < 1.0) {
                return Err(Error::config_value(
                    "near_dedup.threshold",
                    "must be strictly between 0 and 1",
                ));
            }
            if nd.bands.is_some() != nd.rows.is_some() {
                return Err(Error::config_value(
                    "near_dedup.bands",
                    "set both `bands` and `rows`, or neither",
                ));
            }
            let (bands, rows) = nd.bands_rows();
            if bands == 0 || rows == 0 || bands * rows > 4096 {
                return Err(Error::config_value(
                    "near_dedup.num_perm",
                    "bands × rows must be between 1 and 4096",
                ));
            }
            if nd.bands.is_none() && nd.num_perm < 2 {
                return Err(Error::config_value(
                    "near_dedup.num_perm",
                    "must be at least 2",
                ));
            }
        }
        if self.decontamination.enabled && self.decontamination.ngram == 0 {
            return Err(Error::config_value(
                "decontamination.ngram",
                "must be at least 1",
            ));
        }
        if self.input.files_per_shard == 0 {
            return Err(Error::config_value(
                "input.files_per_shard",
                "must be at least 1",
            ));
        }
        if !self.output.parquet && !self.output.jsonl {
            return Err(Error::config_value(
                "output.parquet",
                "enable at least one of `parquet` and `jsonl`",
            ));
        }
        if self.resources.sort_buffer_mb == 0 || self.resources.batch_mb == 0 {
            return Err(Error::config_value(
                "resources.sort_buffer_mb",
                "buffers must be at least 1 MiB",
            ));
        }
        if !(0.0..=1.0).contains(&self.quality.min_alphanum_fraction) {
            return Err(Error::config_value(
                "quality.min_alphanum_fraction",
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }

    /// A hash of every setting that can change the output (all but `resources`).
    pub(crate) fn fingerprint_json(&self) -> String {
        let mut c = self.clone();
        c.resources = ResourceConfig::default();
        c.output.keep_work = false;
        serde_json::to_string(&c).expect("config serializes")
    }

    /// Worker threads to use.
    pub fn n_threads(&self) -> usize {
        if self.resources.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.resources.threads
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn defaults_are_bigcode_values() {
        let c = Config::default();
        assert_eq!(c.near_dedup.ngram, 5);
        assert_eq!(c.near_dedup.num_perm, 256);
        assert_eq!(c.near_dedup.threshold, 0.7);
        assert_eq!(c.near_dedup.bands_rows(), (25, 10));
        assert_eq!(c.quality.max_line_length, 1000);
        assert_eq!(c.quality.max_mean_line_length, 100.0);
        assert_eq!(c.quality.min_alphanum_fraction, 0.25);
        assert_eq!(c.decontamination.ngram, 10);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::from_toml_str("[near_dedup]\ntreshold = 0.5\n").is_err());
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        let mut c = Config::default();
        c.near_dedup.threshold = 1.5;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.near_dedup.bands = Some(4);
        assert!(c.validate().is_err());
        c.near_dedup.rows = Some(2);
        c.validate().unwrap();
        assert_eq!(c.near_dedup.bands_rows(), (4, 2));
    }

    #[test]
    fn resources_do_not_change_the_fingerprint() {
        let a = Config::default();
        let mut b = Config::default();
        b.resources.threads = 7;
        b.resources.sort_buffer_mb = 1;
        assert_eq!(a.fingerprint_json(), b.fingerprint_json());
        b.quality.max_line_length = 10;
        assert_ne!(a.fingerprint_json(), b.fingerprint_json());
    }
}
