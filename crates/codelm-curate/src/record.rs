//! Records: what enters the pipeline, and the metadata kept with each output file.

use serde::{Deserialize, Serialize};

use crate::license::LicenseSource;
use crate::pii::PiiCounts;

/// One source file (from a directory) or dataset row entering the pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// Path of the file (relative to its repository when known).
    pub path: String,
    /// The file's text.
    pub content: String,
    /// Repository (or package) the file belongs to.
    pub repo: Option<String>,
    /// License known before looking at the content (package, LICENSE file, input field).
    pub license: Option<String>,
    /// Where `license` came from.
    pub license_source: Option<LicenseSource>,
    /// Repository stars, when the input says.
    pub stars: Option<u64>,
    /// Repository forks, when the input says.
    pub forks: Option<u64>,
    /// Language given by the input (dataset `lang` field), if any.
    pub language: Option<String>,
}

/// The pipeline stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading: binary, non-UTF-8, unreadable, vendored or generated paths.
    Input,
    /// Language detection and allow-list.
    Language,
    /// License detection and allow-list.
    License,
    /// Repository stars/forks thresholds.
    Metadata,
    /// StarCoder quality filters.
    Quality,
    /// Benchmark decontamination.
    Decontamination,
    /// Exact deduplication.
    ExactDedup,
    /// Near deduplication.
    NearDedup,
    /// PII redaction (never removes a file).
    Pii,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 9] = [
        Stage::Input,
        Stage::Language,
        Stage::License,
        Stage::Metadata,
        Stage::Quality,
        Stage::Decontamination,
        Stage::ExactDedup,
        Stage::NearDedup,
        Stage::Pii,
    ];

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Language => "language",
            Stage::License => "license",
            Stage::Metadata => "metadata",
            Stage::Quality => "quality",
            Stage::Decontamination => "decontamination",
            Stage::ExactDedup => "exact_dedup",
            Stage::NearDedup => "near_dedup",
            Stage::Pii => "pii",
        }
    }
}

/// An input that never became a [`Record`], with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// Path (or `file:line` for dataset rows).
    pub path: String,
    /// Size in bytes, as far as known.
    pub bytes: u64,
    /// The stage that removed it.
    pub stage: Stage,
    /// The reason, e.g. `binary`, `not_utf8`, `unknown_language`.
    pub reason: String,
}

/// What an input reader yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A readable text record.
    Record(Record),
    /// Something removed before it could be a record.
    Skipped(Skipped),
}

/// Metadata written with each kept file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Path of the file.
    pub path: String,
    /// Repository or package.
    pub repo: Option<String>,
    /// Detected language.
    pub language: Option<String>,
    /// SPDX license expression.
    pub license: Option<String>,
    /// Where the license came from (`header`, `package`, `license_file`, `input`).
    pub license_source: Option<String>,
    /// Repository stars.
    pub stars: Option<u64>,
    /// Repository forks.
    pub forks: Option<u64>,
    /// Size of the original content in bytes.
    pub size_bytes: u64,
    /// Hex xxh3-128 of the whitespace-normalized original content (the exact-dedup key).
    pub content_hash: String,
    /// Redactions made.
    pub pii: PiiCounts,
    /// Flags: `pii_redacted`, `unlicensed`, `language_unknown`, `no_shingles`.
    pub flags: Vec<String>,
}
