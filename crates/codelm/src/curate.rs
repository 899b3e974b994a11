//! `codelm curate`: its flags, turned into [`codelm_curate::CurateOptions`].

use std::path::PathBuf;

use codelm_curate::{CurateOptions, SkipStage};

/// A stage that `--skip` turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SkipArg {
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

impl From<SkipArg> for SkipStage {
    fn from(stage: SkipArg) -> Self {
        match stage {
            SkipArg::Language => SkipStage::Language,
            SkipArg::License => SkipStage::License,
            SkipArg::Metadata => SkipStage::Metadata,
            SkipArg::Quality => SkipStage::Quality,
            SkipArg::Decontamination => SkipStage::Decontamination,
            SkipArg::ExactDedup => SkipStage::ExactDedup,
            SkipArg::NearDedup => SkipStage::NearDedup,
            SkipArg::Pii => SkipStage::Pii,
        }
    }
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
    pub skip: Vec<SkipArg>,
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

impl From<CurateArgs> for CurateOptions {
    fn from(args: CurateArgs) -> Self {
        CurateOptions {
            inputs: args.inputs,
            out: args.out,
            config: args.config,
            jsonl: args.jsonl,
            threads: args.threads,
            benchmarks: args.benchmarks,
            skip: args.skip.into_iter().map(SkipStage::from).collect(),
            keep_unlicensed: args.keep_unlicensed,
            keep_work: args.keep_work,
            quiet: args.quiet,
        }
    }
}

/// Runs `codelm curate`; returns the exit code.
pub fn run(args: CurateArgs) -> anyhow::Result<i32> {
    codelm_curate::run(&args.into())?;
    Ok(0)
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
        let cfg = CurateOptions::from(cli.args.clone()).config().unwrap();
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
