//! The `codelm curate` command: flags, a progress bar, and the report.
//!
//! The binary embeds [`CurateArgs`] in its subcommand enum and calls [`run`];
//! everything testable lives in the library, so `run` only merges the flags
//! into the config, draws progress on stderr, prints the report table on
//! stdout and leaves `report.json` in the output directory.

use std::path::PathBuf;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::error::Result;
use crate::pipeline::{curate, Progress};
use crate::report::Report;

/// A stage that `--skip` turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// Arguments of `codelm curate`.
#[derive(Debug, Clone, clap::Args)]
pub struct CurateArgs {
    /// Directories (git checkouts or plain trees), JSONL (.jsonl, .jsonl.gz,
    /// .jsonl.zst) or Parquet files in The Stack's layout.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output directory; a run interrupted there resumes by shard.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// TOML configuration (defaults: bigcode/StarCoder values).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also write JSON Lines shards next to the Parquet ones.
    #[arg(long)]
    pub jsonl: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Benchmark file for decontamination (repeatable): HumanEval.jsonl.gz,
    /// mbpp.jsonl, sanitized-mbpp.json, or plain text.
    #[arg(long = "benchmark", value_name = "FILE")]
    pub benchmarks: Vec<PathBuf>,
    /// Turn a stage off (repeatable).
    #[arg(long = "skip", value_enum, value_name = "STAGE")]
    pub skip: Vec<SkipStage>,
    /// Keep files without a detectable license.
    #[arg(long)]
    pub keep_unlicensed: bool,
    /// Keep the work directory (staged shards, hash runs) after the run.
    #[arg(long)]
    pub keep_work: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl CurateArgs {
    /// The configuration: the file (or defaults) with the flags applied.
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
pub fn run(args: &CurateArgs) -> Result<Report> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CurateArgs,
    }

    #[test]
    fn flags_override_the_config() {
        let cli = Cli::parse_from([
            "curate",
            "a",
            "b.jsonl",
            "--out",
            "o",
            "--jsonl",
            "--threads",
            "3",
            "--skip",
            "near-dedup",
            "--skip",
            "pii",
            "--benchmark",
            "he.jsonl.gz",
            "--keep-unlicensed",
        ]);
        let cfg = cli.args.config().unwrap();
        assert_eq!(cli.args.inputs.len(), 2);
        assert!(cfg.output.jsonl && cfg.output.parquet);
        assert_eq!(cfg.resources.threads, 3);
        assert!(!cfg.near_dedup.enabled && !cfg.pii.enabled && cfg.exact_dedup.enabled);
        assert_eq!(
            cfg.decontamination.benchmarks,
            vec![PathBuf::from("he.jsonl.gz")]
        );
        assert!(cfg.license.keep_unlicensed);
    }

    #[test]
    fn inputs_and_out_are_required() {
        assert!(Cli::try_parse_from(["curate", "--out", "o"]).is_err());
        assert!(Cli::try_parse_from(["curate", "a"]).is_err());
    }
}
