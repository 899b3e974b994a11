//! `codelm curate` without the `codelm` binary: the same arguments, the same
//! [`codelm_curate::run`]. Used by `bench/curate/` so the benchmarks do not
//! depend on the CLI wiring.
//!
//! ```text
//! cargo run --release -p codelm-curate --example curate -- INPUT... --out DIR [--config curate.toml]
//! ```

use clap::Parser;

#[derive(Parser)]
#[command(name = "curate", about = "Curate code corpora for training")]
struct Cli {
    #[command(flatten)]
    args: codelm_curate::CurateArgs,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = codelm_curate::run(&cli.args) {
        eprintln!("error: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}
