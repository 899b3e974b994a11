//! The `codelm` binary: parses flags, wires the crates together, chooses exit codes.

mod cli;
mod curate;
mod eval;
mod exec;
mod generate;
mod serve;
mod verify;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    };
    std::process::exit(code);
}
