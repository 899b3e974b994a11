//! Curation of code corpora for training: what The Stack and StarCoder did
//! with several Python toolkits and a cluster, as one streaming pipeline.
//!
//! Directories (walked in name order, honouring `.gitignore`), JSONL and
//! Parquet datasets go in; sharded Parquet (and JSONL) with the kept files and
//! their metadata come out, with a report of what each stage removed and why.
//! The stages, each configurable and skippable ([`Config`]):
//!
//! | stage | module | removes |
//! | --- | --- | --- |
//! | input | [`input`] | binary, non-UTF-8, vendored and generated files |
//! | language | [`lang`] | unknown or not allowed languages (extension and shebang table) |
//! | license | [`license`] | non-permissive or undetectable licenses (SPDX) |
//! | metadata | [`pipeline`] | repositories under the stars/forks thresholds |
//! | quality | [`quality`] | StarCoder's line-length, alphanumeric, auto-generated and encoded-data filters |
//! | decontamination | [`decontam`] | files sharing a word 10-gram with HumanEval/MBPP |
//! | exact dedup | [`dedup`] | identical files after whitespace normalization |
//! | near dedup | [`minhash`], [`dedup`] | MinHash/LSH clusters (5-gram shingles, Jaccard 0.7), one kept each |
//! | PII | [`pii`] | nothing: e-mails, IPs, keys and passwords become placeholders |
//!
//! The design decision a newcomer will question: dedup is a separate global
//! step over sorted runs on disk rather than an in-memory index. Per-record
//! stages run shard by shard on all cores; each shard spills its content
//! hashes and LSH band hashes as sorted runs ([`extsort`]); one merge then
//! marks exact duplicates and feeds a union-find whose root is always the
//! lowest document id, so the kept file of every cluster is fixed by the input
//! order alone. That is what makes a resumed run identical to an uninterrupted
//! one, and what maps onto a cluster engine: band records are a shuffle by
//! `(band, hash)`, the union-find a connected-components job.
//!
//! # Memory bound
//!
//! A run holds at most [`memory_bound`]: 64 MiB + the largest of the phases'
//! fixed buffers (by default `sort_buffer_mb` 256 + 4 × `batch_mb` 32 + 3 ×
//! `input.max_file_bytes` 8 MiB ≈ 472 MiB in all), plus 5 bytes per document
//! that reaches dedup (a status byte and a union-find parent). The report
//! states the bound of each run (`memory`).
//!
//! # Example
//!
//! ```
//! use codelm_curate::{curate, Config, NoProgress};
//! let src = tempfile::tempdir().unwrap();
//! std::fs::write(src.path().join("LICENSE"), "Permission is hereby granted, free of charge, \
//!     to any person obtaining a copy of this software ... The above copyright notice and this \
//!     permission notice shall be included in all copies.").unwrap();
//! let code = "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n";
//! std::fs::write(src.path().join("a.py"), code).unwrap();
//! std::fs::write(src.path().join("b.py"), code).unwrap();
//! let out = tempfile::tempdir().unwrap();
//! let report = curate(&[src.path().to_path_buf()], out.path(), &Config::default(), &NoProgress).unwrap();
//! assert_eq!(report.n_out, 1); // b.py is an exact duplicate of a.py; LICENSE is not code.
//! assert!(out.path().join("data/part-000000.parquet").exists());
//! ```

#![deny(missing_docs)]

pub mod command;
pub mod config;
pub mod decontam;
pub mod dedup;
pub mod error;
pub mod extsort;
pub mod input;
pub mod lang;
pub mod license;
pub mod minhash;
pub mod output;
pub mod pii;
pub mod pipeline;
pub mod quality;
pub mod record;
pub mod report;

pub use command::{run, CurateOptions, SkipStage};
pub use config::Config;
pub use error::{Error, Result};
pub use pipeline::{curate, memory_bound, NoProgress, Progress};
pub use report::Report;
