//! The `codelm curate` command: its options, a progress bar, and the report.
//!
//! The binary parses its flags into [`CurateOptions`] and calls [`run`], which
//! merges the options into the config, draws progress on stderr, prints the
//! report table on stdout and leaves `report.json` in the output directory.
//! The options are a plain struct, so that this crate does not depend on the
//! binary's flag parser; the flags' spelling and help live in the binary.
//!
//! ```
//! use codelm_curate::{CurateOptions, SkipStage};
//! let options = CurateOptions {
//!     threads: Some(3),
//!     skip: vec![SkipStage::Pii],
//!     ..CurateOptions::new(vec!["corpus".into()], "out".into())
//! };
//! let cfg = options.config().unwrap();
//! assert_eq!(cfg.resources.threads, 3);
//! assert!(!cfg.pii.enabled && cfg.exact_dedup.enabled);
//! ```

use std::path::PathBuf;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::error::Result;
use crate::pipeline::{curate, Progress};
use crate::report::Report;

/// A stage that `--skip` turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipStage {
    /// Language detection (records keep the language they came with).
    Language,
    /// License detection and filtering.
    License,
    /// Stars/forks thresholds.
    Metadata,
    /// Quality filters.
    Quality,
    /// Benchmark decontamination.
    Decontamination,
    /// Exact dedup.
    ExactDedup,
    /// Near dedup.
    NearDedup,
    /// PII redaction.
    Pii,
}

/// What `codelm curate` runs on and how: the config file, and the settings
/// that override it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurateOptions {
    /// Directories (git checkouts or plain trees), JSONL (.jsonl, .jsonl.gz,
    /// .jsonl.zst) or Parquet files in The Stack's layout.
    pub inputs: Vec<PathBuf>,
    /// Output directory; a run interrupted there resumes by shard.
    pub out: PathBuf,
    /// TOML configuration (defaults: bigcode/StarCoder values).
    pub config: Option<PathBuf>,
    /// Also write JSON Lines shards next to the Parquet ones.
    pub jsonl: bool,
    /// Worker threads (default: the config's, all cores).
    pub threads: Option<usize>,
    /// Benchmark files for decontamination, added to the config's.
    pub benchmarks: Vec<PathBuf>,
    /// Stages turned off.
    pub skip: Vec<SkipStage>,
    /// Keep files without a detectable license.
    pub keep_unlicensed: bool,
    /// Keep the work directory (staged shards, hash runs) after the run.
    pub keep_work: bool,
    /// No progress bar.
    pub quiet: bool,
}

impl CurateOptions {
    /// Curating `inputs` into `out` with the default config and no overrides.
    pub fn new(inputs: Vec<PathBuf>, out: PathBuf) -> Self {
        CurateOptions {
            inputs,
            out,
            config: None,
            jsonl: false,
            threads: None,
            benchmarks: Vec::new(),
            skip: Vec::new(),
            keep_unlicensed: false,
            keep_work: false,
            quiet: false,
        }
    }
}

impl CurateOptions {
    /// The configuration: the file (or defaults) with the options applied.
    pub fn config(&self) -> Result<Config> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if self.jsonl {
            cfg.output.jsonl = true;
        }
        if let Some(t) = self.threads {
            cfg.resources.threads = t;
        }
        cfg.decontamination
            .benchmarks
            .extend(self.benchmarks.iter().cloned());
        if self.keep_unlicensed {
            cfg.license.keep_unlicensed = true;
        }
        if self.keep_work {
            cfg.output.keep_work = true;
        }
        for s in &self.skip {
            match s {
                SkipStage::Language => cfg.language.enabled = false,
                SkipStage::License => cfg.license.enabled = false,
                SkipStage::Metadata => cfg.metadata.enabled = false,
                SkipStage::Quality => cfg.quality.enabled = false,
                SkipStage::Decontamination => cfg.decontamination.enabled = false,
                SkipStage::ExactDedup => cfg.exact_dedup.enabled = false,
                SkipStage::NearDedup => cfg.near_dedup.enabled = false,
                SkipStage::Pii => cfg.pii.enabled = false,
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        if self.quiet {
            return;
        }
        let bar = if total == 0 {
            let b = ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        } else {
            ProgressBar::new(total)
        };
        let template = if phase == "filtering" {
            "{msg:>13} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else if total == 0 {
            "{msg:>13} {spinner} {elapsed}"
        } else {
            "{msg:>13} [{bar:30}] {pos}/{len} shards"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(phase.to_string());
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

/// Runs `codelm curate`: curates the inputs, prints the report table and
/// returns the report (also written to `OUT/report.json`).
pub fn run(args: &CurateOptions) -> Result<Report> {
    let cfg = args.config()?;
    let bar = Bar {
        bar: Mutex::new(None),
        quiet: args.quiet,
    };
    let report = curate(&args.inputs, &args.out, &cfg, &bar)?;
    print!("{}", report.table());
    eprintln!("report: {}", args.out.join("report.json").display());
    Ok(report)
}
