//! `codelm-verify`: execution in the loop. Draw several candidates, have the
//! model write tests for them, run every candidate on every test in the
//! sandbox, and keep the one the evidence supports; repair it from a
//! failing test when asked.
//!
//! * [`cases`]: the evidence's inputs: the specification's examples and the
//!   model's tests, as [`Check`]s.
//! * [`evidence`]: running candidates on cases ([`run_trials`]).
//! * [`select`]: CodeT agreement, output clustering, and the baseline.
//! * [`verify`](mod@verify): the loop over many problems at once, with
//!   repair, behind the [`Generate`] seam.
//! * [`lang`]: what is per language (Python, JavaScript).
//!
//! The design decision a newcomer may question: a selector is handed a
//! [`Spec`] (the text the model saw and the entry point) and nothing else.
//! This crate depends on no benchmark type, so a benchmark's graded tests
//! cannot reach it except through the caller's own prompt; the evaluator's
//! leakage test checks that no graded test reaches the model or the
//! sandbox during selection.
//!
//! The invariant: the same candidates, seed and model give the same cases,
//! the same runs (up to timing) and the same choice; ties go to the earliest
//! candidate.

#![deny(missing_docs)]

pub mod cases;
mod error;
pub mod evidence;
pub mod lang;
pub mod select;
pub mod verify;

pub use cases::{examples, Case, Check, Origin, Spec};
pub use error::{Error, Result};
pub use evidence::{run_trials, ExecOptions, Run, Trial};
pub use lang::Lang;
pub use select::{select, Choice, Selector, Strategy};
pub use verify::{
    extract_code, fenced_blocks, verify, Ask, EngineGenerator, Generate, Options, Problem, Reply,
    Selection, Verified,
};
