//! `codelm-eval`: evaluating code models by executing what they write.
//!
//! A run reads a benchmark ([`dataset`]), builds each task's prompt
//! ([`prompt`]), gets samples from a [`backend`] (the in-process engine or
//! an OpenAI-compatible server) or from a samples file, turns each reply
//! into a program ([`postprocess`]), executes it under `codelm-sandbox`
//! ([`execute`]), and scores the verdicts with the unbiased pass@k
//! estimator ([`pass_at_k`]). Everything is recorded in a run directory
//! ([`store`]) that can be resumed after a crash; [`report`] renders the
//! summary. [`job`] puts these together for one run, as `codelm eval` does;
//! with `--select`, [`select`] then chooses among each task's samples by
//! running them (`codelm-verify`) and grades the choices.
//!
//! The design decision a newcomer may question: the harness never imports
//! Python. Parsing (tree-sitter), post-processing and scoring are Rust, and
//! Python runs only inside the sandbox, so an evaluation cannot be broken
//! or subverted by the code it judges.
//!
//! # Adding a benchmark
//!
//! 1. Add a variant to [`Benchmark`] with its user-facing name and file name.
//! 2. Teach [`Dataset::from_bytes`] to turn one record into a [`Task`]:
//!    the prompt, the entry point, a reference solution (used to scale the
//!    timeouts), and test code appended to a candidate (`calls_check` when
//!    it defines `check(candidate)`). Apply the official test split there.
//! 3. Give it prompt formats and stop sequences in [`prompt::build`] and
//!    [`prompt::stops`], and, if its replies need it, a post-processing
//!    rule in [`run::solution_for`].
//! 4. Commit a few tasks as a fixture under `tests/fixtures/` (with the
//!    script that made them) and check that their reference solutions pass.
//!
//! ```
//! use codelm_eval::{pass_at_k, Benchmark};
//!
//! assert_eq!(Benchmark::from_name("mbpp-sanitized"), Some(Benchmark::MbppSanitized));
//! assert_eq!(pass_at_k(2, 1, 1), Some(0.5));
//! ```

#![deny(missing_docs)]

pub mod backend;
pub mod dataset;
mod error;
pub mod evalplus;
pub mod execute;
pub mod job;
pub mod pass_at_k;
pub mod postprocess;
pub mod prompt;
pub mod report;
pub mod run;
pub mod select;
pub mod store;

pub use dataset::{Benchmark, Dataset, Task};
pub use error::{Error, Result};
pub use pass_at_k::pass_at_k;
