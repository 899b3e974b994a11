//! `codelm curate` without the `codelm` binary: the same flags but `--skip`
//! (turn stages off in the TOML config instead), the same
//! [`codelm_curate::run`]. Used by `bench/curate/` so the benchmarks do not
//! depend on the CLI wiring.
//!
//! ```text
//! cargo run --release -p codelm-curate --example curate -- INPUT... --out DIR [--config curate.toml]
//! ```

use std::path::PathBuf;

use clap::Parser;
use codelm_curate::CurateOptions;

#[derive(Parser)]
#[command(name = "curate", about = "Curate code corpora for training")]
struct Cli {
    /// Directories, JSONL or Parquet files.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also write JSON Lines shards.
    #[arg(long)]
    jsonl: bool,
    /// Worker threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Benchmark file for decontamination (repeatable).
    #[arg(long = "benchmark", value_name = "FILE")]
    benchmarks: Vec<PathBuf>,
    /// Keep files without a detectable license.
    #[arg(long)]
    keep_unlicensed: bool,
    /// Keep the work directory.
    #[arg(long)]
    keep_work: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    let cli = Cli::parse();
    let options = CurateOptions {
        config: cli.config,
        jsonl: cli.jsonl,
        threads: cli.threads,
        benchmarks: cli.benchmarks,
        keep_unlicensed: cli.keep_unlicensed,
        keep_work: cli.keep_work,
        quiet: cli.quiet,
        ..CurateOptions::new(cli.inputs, cli.out)
    };
    if let Err(e) = codelm_curate::run(&options) {
        eprintln!("error: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}
