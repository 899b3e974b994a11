//! `--verify` on `complete`, `chat` and `infill`: draw candidates in one
//! batch, hand them to `codelm-verify` with the prompt as the
//! specification, print the chosen one and the evidence.

use anyhow::{bail, Context, Result};
use codelm_generate::{Engine, Prompt};
use codelm_sandbox::{Sandbox, SandboxConfig};
use codelm_verify::{EngineGenerator, Lang, Options, Problem, Spec, Strategy};
use serde_json::json;

use crate::cli::GenArgs;

pub fn parse_strategy(text: &str) -> std::result::Result<Strategy, String> {
    Strategy::parse(text).ok_or_else(|| {
        format!("`{text}`: expected codet, cluster, repair, codet+repair or cluster+repair")
    })
}

/// Generates, verifies and prints; `code_of` turns a sample's text into the
/// program it stands for (the prompt plus a completion, a reply's code
/// block, prefix + middle + suffix).
pub fn run(
    engine: &Engine,
    prompt: &Prompt,
    spec_text: &str,
    code_of: &dyn Fn(&str) -> String,
    gen: &GenArgs,
) -> Result<i32> {
    let args = &gen.verify;
    let lang = Lang::from_name(&args.lang)
        .with_context(|| format!("--lang {}: expected python or javascript", args.lang))?;
    let mut opts = crate::generate::options(gen)?;
    if opts.n == 1 {
        opts.n = 8;
    }
    if opts.sampling.temperature == 0.0 && opts.n > 1 {
        opts.sampling.temperature = 0.8;
    }
    let candidates_text = engine.generate(prompt, &opts, &mut |_, _| true)?;
    let candidates: Vec<String> = candidates_text.iter().map(|c| code_of(&c.text)).collect();
    let entry = match &args.entry {
        Some(entry) => entry.clone(),
        None => lang
            .entry_point(spec_text, &candidates)
            .context("cannot tell which function to test; pass --entry NAME")?,
    };
    let sandbox = Sandbox::new(SandboxConfig::default())
        .context("--verify runs candidates in the sandbox, which is unavailable here")?;
    if lang
        .runner()
        .is_none_or(|runner| !sandbox.is_available(&runner))
    {
        bail!("the sandbox has no {} here", lang.name());
    }
    let options = Options {
        strategy: args.select,
        seed: gen.seed,
        ..Options::default()
    };
    let problem = Problem {
        spec: Spec::new(lang, spec_text, entry.as_str()),
        candidates: candidates.clone(),
        code_of: &codelm_verify::extract_code,
    };
    let mut generator = EngineGenerator::new(engine);
    let verified = codelm_verify::verify(&mut generator, &sandbox, &[problem], &options)?
        .pop()
        .context("the verifier returned nothing")?;
    let n = candidates.len();
    let chosen = verified
        .selection(args.select, n)
        .context("the verifier made no selection")?;
    let score = chosen.choice.score();
    let n_examples = verified
        .cases
        .iter()
        .filter(|c| c.origin == codelm_verify::Origin::Example && c.check.is_test())
        .count();
    let n_tests = verified
        .cases
        .iter()
        .filter(|c| c.origin == codelm_verify::Origin::Model && c.check.is_test())
        .count();
    if gen.json {
        let out = json!({
            "strategy": args.select.name(),
            "entry_point": entry,
            "chosen": chosen.choice.index,
            "repaired": chosen.is_repaired(),
            "fallback": chosen.choice.fallback,
            "code": chosen.code,
            "cases": verified.cases,
            "candidates": candidates.iter().zip(&chosen.choice.scores).zip(&verified.runs).map(|((code, score), run)| json!({
                "code": code,
                "scores": score,
                "run": run,
            })).collect::<Vec<_>>(),
            "repair": chosen.repair,
            "notes": verified.notes,
            "extra_tokens": verified.tokens,
            "executions": verified.executions,
        });
        println!("{out}");
        return Ok(0);
    }
    println!("{}", chosen.code.trim_end());
    eprintln!(
        "[{}: candidate {} of {n}{}; examples passed {}/{n_examples}, model tests passed {}/{n_tests}; agrees with {} (tests) and {} (outputs) of {} that survive; {} programs run, {} extra tokens]",
        args.select.name(),
        chosen.choice.index,
        if chosen.is_repaired() { ", repaired" } else { "" },
        score.examples_passed,
        score.tests_passed,
        score.consensus.saturating_sub(1),
        score.cluster.saturating_sub(1),
        chosen.choice.survivors,
        verified.executions,
        verified.tokens,
    );
    if let Some(fallback) = &chosen.choice.fallback {
        eprintln!("[fallback: {fallback}]");
    }
    for note in &verified.notes {
        eprintln!("[note: {note}]");
    }
    Ok(0)
}
