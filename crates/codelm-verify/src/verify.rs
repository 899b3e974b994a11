//! The loop: ask for tests, run every candidate, select, repair.
//!
//! [`verify`] takes several problems at once so that each round's
//! generation is one batch and each round's programs one parallel sandbox
//! call: first the model's tests for every problem, then all candidates on
//! all cases, then the selections, then up to `repair_rounds` rounds of
//! repair for the choices that still fail a visible test. The model is
//! reached only through [`Generate`], so the same loop runs on the local
//! engine ([`EngineGenerator`]), an evaluation backend, or the server's
//! engine thread.
//!
//! Selections are made for each *budget*: the first `b` candidates. Sample
//! `i` of a request is drawn with seed `seed + i`, so the first `b` of `n`
//! candidates are exactly those an `n = b` request draws, and one run
//! answers for every smaller budget.

use codelm_generate::{Engine, GenerateOptions, Message, Prompt, Request, SamplingParams};
use codelm_sandbox::Sandbox;
use serde::Serialize;

use crate::cases::{examples, model_cases, tests_ask, Case, Origin, Spec};
use crate::evidence::{run_trials, ExecOptions, Load, Run, Trial};
use crate::select::{select, Choice, Selector, Strategy};
use crate::{Error, Result};

/// One generation the loop needs: a user turn and the start of the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The user message.
    pub user: String,
    /// The start of the assistant's reply, where the backend can force it.
    pub response_prefix: String,
    /// Replies wanted.
    pub n: usize,
    /// Temperature; 0 is greedy.
    pub temperature: f32,
    /// Seed of the first reply (reply `i` uses `seed + i`).
    pub seed: u64,
    /// New tokens at most per reply.
    pub max_tokens: usize,
    /// Stop sequences.
    pub stop: Vec<String>,
}

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The assistant's reply, the forced prefix included.
    pub text: String,
    /// Tokens generated.
    pub n_tokens: usize,
}

/// Anything that can answer [`Ask`]s: the local engine, an evaluation
/// backend, the server's engine thread.
pub trait Generate {
    /// One result per ask, each `ask.n` replies or why there are none.
    fn generate(&mut self, asks: &[Ask]) -> Vec<std::result::Result<Vec<Reply>, String>>;
}

/// [`Generate`] on an in-process engine: every ask in one batch.
pub struct EngineGenerator<'a> {
    engine: &'a Engine,
}

impl<'a> EngineGenerator<'a> {
    /// Generates with `engine`.
    pub fn new(engine: &'a Engine) -> EngineGenerator<'a> {
        EngineGenerator { engine }
    }

    fn request(&self, ask: &Ask) -> std::result::Result<Request, String> {
        let prompt = Prompt::Chat(vec![Message::new("user", ask.user.as_str())]);
        let mut ids = self.engine.tokenize(&prompt).map_err(|e| e.to_string())?;
        ids.extend(self.engine.tokenizer().encode(&ask.response_prefix, false));
        if ids.len() >= self.engine.n_ctx() {
            return Err(format!(
                "the prompt has {} tokens; the context holds {}",
                ids.len(),
                self.engine.n_ctx()
            ));
        }
        Ok(Request {
            prompt: ids,
            stop_tokens: Vec::new(),
            options: GenerateOptions {
                n: ask.n,
                max_tokens: ask.max_tokens,
                sampling: SamplingParams {
                    temperature: ask.temperature,
                    seed: ask.seed,
                    ..SamplingParams::default()
                },
                stop: ask.stop.clone(),
                logprobs: None,
            },
        })
    }
}

impl Generate for EngineGenerator<'_> {
    fn generate(&mut self, asks: &[Ask]) -> Vec<std::result::Result<Vec<Reply>, String>> {
        let mut results: Vec<Option<std::result::Result<Vec<Reply>, String>>> =
            asks.iter().map(|_| None).collect();
        let mut batch = Vec::new();
        for (idx, ask) in asks.iter().enumerate() {
            match self.request(ask) {
                Ok(request) => batch.push((idx, request)),
                Err(error) => results[idx] = Some(Err(error)),
            }
        }
        let requests: Vec<Request> = batch.iter().map(|(_, r)| r.clone()).collect();
        match self.engine.generate_batch(&requests, &mut |_, _, _| true) {
            Ok(outputs) => {
                for ((idx, _), completions) in batch.iter().zip(outputs) {
                    let prefix = &asks[*idx].response_prefix;
                    results[*idx] = Some(Ok(completions
                        .into_iter()
                        .map(|c| Reply {
                            text: format!("{prefix}{}", c.text),
                            n_tokens: c.tokens.len(),
                        })
                        .collect()));
                }
            }
            Err(error) => {
                for (idx, _) in &batch {
                    results[*idx] = Some(Err(error.to_string()));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not generated".to_string())))
            .collect()
    }
}

/// A problem to verify: its specification and the candidates drawn for it.
pub struct Problem<'a> {
    /// What the candidates were asked to implement.
    pub spec: Spec,
    /// The candidates' code, in sample order.
    pub candidates: Vec<String>,
    /// Turns a repair reply into code the way the candidates were made
    /// (the caller's post-processing); [`extract_code`] by default.
    pub code_of: &'a dyn Fn(&str) -> String,
}

/// How the loop runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The selection (and whether it is repaired) that [`Verified::chosen`] returns.
    pub strategy: Strategy,
    /// Candidate budgets to select among (the first `b`); empty means all.
    pub budgets: Vec<usize>,
    /// Repair rounds at most (only when the strategy repairs).
    pub repair_rounds: usize,
    /// Test replies drawn per problem.
    pub test_samples: usize,
    /// Tests asked for per reply.
    pub tests_per_sample: usize,
    /// Temperature of test replies.
    pub test_temperature: f32,
    /// Model-written cases kept at most.
    pub max_cases: usize,
    /// New tokens at most per test or repair reply.
    pub max_tokens: usize,
    /// Seed of the test replies.
    pub seed: u64,
    /// Limits of each program.
    pub exec: ExecOptions,
    /// Programs run per problem at most (candidates and repairs).
    pub max_executions: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strategy: Strategy {
                selector: Selector::Codet,
                repair: false,
            },
            budgets: Vec::new(),
            repair_rounds: 2,
            test_samples: 2,
            tests_per_sample: 8,
            test_temperature: 0.8,
            max_cases: 24,
            max_tokens: 384,
            seed: 0,
            exec: ExecOptions::default(),
            max_executions: None,
        }
    }
}

/// One repair attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The failing test (or load error) shown to the model.
    pub feedback: String,
    /// The code of the reply.
    pub code: String,
    /// How it did on the cases.
    pub run: Run,
    /// Visible tests passed.
    pub visible_passed: usize,
}

/// The repair of one chosen candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Repair {
    /// The candidate repaired.
    pub from: usize,
    /// Each round's attempt.
    pub attempts: Vec<Attempt>,
    /// The attempt kept: the last that passed more visible tests than the
    /// candidate before it; `None` when none did.
    pub kept: Option<usize>,
    /// Why no (further) attempt was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One selection: a selector over a budget, maybe repaired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// Candidates considered (the first `budget`).
    pub budget: usize,
    /// The choice among them.
    pub choice: Choice,
    /// The repair of the choice, when the strategy repairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
    /// The final code: the repaired code when a repair was kept, the chosen
    /// candidate's otherwise.
    pub code: String,
}

impl Selection {
    /// Whether the final code is a repair.
    pub fn is_repaired(&self) -> bool {
        self.repair.as_ref().is_some_and(|r| r.kept.is_some())
    }
}

/// Everything the loop found for one problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verified {
    /// The cases: examples first, then the model's.
    pub cases: Vec<Case>,
    /// One run per candidate.
    pub runs: Vec<Run>,
    /// Every selector over every budget, plus the strategy's repaired
    /// selections.
    pub selections: Vec<Selection>,
    /// Tokens generated for tests and repairs.
    pub tokens: usize,
    /// Programs run.
    pub executions: usize,
    /// What went wrong along the way (no parsable tests, a failed reply, ...).
    pub notes: Vec<String>,
}

impl Verified {
    /// The selection `strategy` made over `budget` candidates.
    pub fn selection(&self, strategy: Strategy, budget: usize) -> Option<&Selection> {
        self.selections.iter().find(|s| {
            s.budget == budget
                && s.choice.selector == strategy.selector
                && s.repair.is_some() == strategy.repair
        })
    }
}

/// The first fenced code block of a reply (an unclosed one included), or
/// the whole reply when it has none.
pub fn extract_code(reply: &str) -> String {
    fenced_blocks(reply)
        .into_iter()
        .next()
        .map_or_else(|| reply.to_string(), |(_, code)| code)
}

/// `(language, code)` of every fenced Markdown block in order, the
/// language lowercased; an unclosed last block counts.
pub fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        match current.take() {
            None => {
                if let Some(lang) = trimmed.strip_prefix("```") {
                    current = Some((lang.trim().to_ascii_lowercase(), String::new()));
                }
            }
            Some((lang, code)) => {
                if trimmed.starts_with("```") {
                    blocks.push((lang, code));
                } else {
                    current = Some((lang, code + line));
                }
            }
        }
    }
    if let Some(block) = current {
        blocks.push(block);
    }
    blocks
}

/// Runs the loop for every problem; one [`Verified`] per problem, in order.
///
/// # Errors
///
/// [`Error::LanguageUnavailable`] when the sandbox cannot run a problem's
/// language, [`Error::InvalidOption`] for a problem with no candidates or
/// more than `max_executions`. Nothing the model or the candidates do is an
/// error: it is a fallback, recorded in the notes and the choices.
pub fn verify(
    generator: &mut dyn Generate,
    sandbox: &Sandbox,
    problems: &[Problem<'_>],
    options: &Options,
) -> Result<Vec<Verified>> {
    for problem in problems {
        let runner = problem.spec.lang.runner();
        if !runner.is_some_and(|runner| sandbox.is_available(&runner)) {
            return Err(Error::LanguageUnavailable(problem.spec.lang.name()));
        }
        if problem.candidates.is_empty() {
            return Err(Error::InvalidOption {
                name: "n",
                reason: "there are no candidates to choose from".to_string(),
            });
        }
        if let Some(max) = options.max_executions {
            if problem.candidates.len() > max {
                return Err(Error::InvalidOption {
                    name: "n",
                    reason: format!(
                        "{} candidates exceed the limit of {max} executions",
                        problem.candidates.len()
                    ),
                });
            }
        }
    }

    // 1. Cases: the examples, and tests the model writes.
    let asks: Vec<Ask> = problems
        .iter()
        .map(|problem| {
            let (user, response_prefix) = tests_ask(&problem.spec, options.tests_per_sample);
            Ask {
                user,
                response_prefix,
                n: options.test_samples,
                temperature: options.test_temperature,
                seed: options.seed,
                max_tokens: options.max_tokens,
                stop: vec!["\n```".to_string()],
            }
        })
        .collect();
    let replies = if options.test_samples == 0 {
        asks.iter().map(|_| Ok(Vec::new())).collect()
    } else {
        generator.generate(&asks)
    };
    let mut states: Vec<Verified> = Vec::new();
    for (problem, replies) in problems.iter().zip(replies) {
        let mut notes = Vec::new();
        let mut cases = examples(&problem.spec);
        let (texts, tokens) = match replies {
            Ok(replies) => (
                replies.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
                replies.iter().map(|r| r.n_tokens).sum(),
            ),
            Err(error) => {
                notes.push(format!("no tests were generated: {error}"));
                (Vec::new(), 0)
            }
        };
        let written = model_cases(&problem.spec, &texts, &cases, options.max_cases);
        if written.iter().all(|case| !case.check.is_test()) && options.test_samples > 0 {
            notes.push("the model wrote no parsable tests".to_string());
        }
        cases.extend(written);
        states.push(Verified {
            cases,
            runs: Vec::new(),
            selections: Vec::new(),
            tokens,
            executions: 0,
            notes,
        });
    }

    // 2. Every candidate on every case of its problem.
    let trials: Vec<Trial<'_>> = problems
        .iter()
        .zip(&states)
        .flat_map(|(problem, state)| {
            problem.candidates.iter().map(|code| Trial {
                lang: problem.spec.lang,
                code,
                cases: &state.cases,
            })
        })
        .collect();
    let mut runs = run_trials(sandbox, &trials, &options.exec).into_iter();
    for (problem, state) in problems.iter().zip(&mut states) {
        state.runs = runs.by_ref().take(problem.candidates.len()).collect();
        state.executions = state.runs.len();
    }

    // 3. Every selector over every budget.
    for (problem, state) in problems.iter().zip(&mut states) {
        let n = problem.candidates.len();
        let mut budgets: Vec<usize> = options
            .budgets
            .iter()
            .map(|&b| b.clamp(1, n))
            .chain([n])
            .collect();
        budgets.sort_unstable();
        budgets.dedup();
        for &budget in &budgets {
            let runs = &state.runs[..budget];
            for selector in Selector::ALL {
                let choice = select(&state.cases, runs, selector);
                let code = problem.candidates[choice.index].clone();
                state.selections.push(Selection {
                    budget,
                    choice,
                    repair: None,
                    code,
                });
            }
            if options.strategy.repair {
                let choice = select(&state.cases, runs, options.strategy.selector);
                let code = problem.candidates[choice.index].clone();
                let repair = Repair {
                    from: choice.index,
                    attempts: Vec::new(),
                    kept: None,
                    note: None,
                };
                state.selections.push(Selection {
                    budget,
                    choice,
                    repair: Some(repair),
                    code,
                });
            }
        }
    }

    // 4. Repair, round by round, every problem's chains in one batch.
    if options.strategy.repair {
        repair(generator, sandbox, problems, &mut states, options);
    }
    Ok(states)
}

/// The visible tests repairs are judged by: the examples, or the model's
/// tests when the specification has no examples.
fn visible(cases: &[Case]) -> Vec<usize> {
    let tests = |origin| -> Vec<usize> {
        (0..cases.len())
            .filter(|&idx| cases[idx].origin == origin && cases[idx].check.is_test())
            .collect()
    };
    let examples = tests(Origin::Example);
    if examples.is_empty() {
        tests(Origin::Model)
    } else {
        examples
    }
}

/// The feedback for `run`: its load error or its first failing visible test.
fn feedback(spec: &Spec, cases: &[Case], visible: &[usize], run: &Run) -> Option<String> {
    match &run.load {
        Load::Ok => {}
        Load::Error(error) => return Some(format!("Loading the code fails with:\n{error}")),
        Load::Timeout => return Some("Loading the code does not finish in time.".to_string()),
        Load::Lost(why) => return Some(format!("Running the code fails: {why}.")),
    }
    let idx = *visible.iter().find(|&&idx| !run.passed(idx))?;
    let test = spec.lang.render(&cases[idx].check);
    let result = &run.results[idx];
    let outcome = match (&result.error, &result.shown) {
        (Some(error), _) => format!("It raises: {error}"),
        (None, Some(shown)) => format!("The call returns {shown}."),
        (None, None) => "It fails.".to_string(),
    };
    Some(format!(
        "It fails this test:\n```{}\n{test}\n```\n{outcome}",
        spec.lang.fence()
    ))
}

fn repair_ask(spec: &Spec, code: &str, feedback: &str, max_tokens: usize) -> Ask {
    let fence = spec.lang.fence();
    Ask {
        user: format!(
            "```{fence}\n{}\n```\nThis {} code was written for the task above:\n```{fence}\n{}\n```\n{feedback}\nFix the code. Write the whole corrected code in one markdown code block.",
            spec.text.trim_end(),
            spec.lang.name(),
            code.trim_end(),
        ),
        response_prefix: format!("```{fence}\n"),
        n: 1,
        temperature: 0.0,
        seed: 0,
        max_tokens,
        stop: vec!["\n```".to_string()],
    }
}

/// A repair chain in progress: which problem, which candidate, its current
/// code and run.
struct Chain {
    problem: usize,
    from: usize,
    code: String,
    run: Run,
    passed: usize,
    attempts: Vec<Attempt>,
    kept: Option<usize>,
    note: Option<String>,
}

fn repair(
    generator: &mut dyn Generate,
    sandbox: &Sandbox,
    problems: &[Problem<'_>],
    states: &mut [Verified],
    options: &Options,
) {
    // One chain per (problem, chosen candidate), shared by the budgets
    // that chose it.
    let mut chains: Vec<Chain> = Vec::new();
    for (problem_idx, state) in states.iter().enumerate() {
        let shown = visible(&state.cases);
        for selection in state.selections.iter().filter(|s| s.repair.is_some()) {
            let from = selection.choice.index;
            if chains
                .iter()
                .any(|c| c.problem == problem_idx && c.from == from)
            {
                continue;
            }
            let run = state.runs[from].clone();
            let passed = shown.iter().filter(|&&idx| run.passed(idx)).count();
            chains.push(Chain {
                problem: problem_idx,
                from,
                code: problems[problem_idx].candidates[from].clone(),
                run,
                passed,
                attempts: Vec::new(),
                kept: None,
                note: None,
            });
        }
    }
    for chain in &mut chains {
        let state = &states[chain.problem];
        if chain.run.loaded() && visible(&state.cases).is_empty() {
            chain.note = Some("no visible tests to repair against".to_string());
        }
    }
    for _round in 0..options.repair_rounds {
        let mut pending: Vec<(usize, String)> = Vec::new();
        for (chain_idx, chain) in chains.iter_mut().enumerate() {
            if chain.note.is_some() {
                continue;
            }
            let state = &states[chain.problem];
            let spec = &problems[chain.problem].spec;
            let shown = visible(&state.cases);
            let Some(text) = feedback(spec, &state.cases, &shown, &chain.run) else {
                chain.note = Some("passes every visible test".to_string());
                continue;
            };
            if options
                .max_executions
                .is_some_and(|max| state.executions + 1 > max)
            {
                chain.note = Some("stopped at the execution limit".to_string());
                continue;
            }
            pending.push((chain_idx, text));
        }
        if pending.is_empty() {
            break;
        }
        let asks: Vec<Ask> = pending
            .iter()
            .map(|(chain_idx, text)| {
                let chain = &chains[*chain_idx];
                let spec = &problems[chain.problem].spec;
                repair_ask(spec, &chain.code, text, options.max_tokens)
            })
            .collect();
        let replies = generator.generate(&asks);
        let mut attempts: Vec<(usize, String, String)> = Vec::new();
        for ((chain_idx, text), reply) in pending.into_iter().zip(replies) {
            let chain = &mut chains[chain_idx];
            match reply.map(|mut replies| replies.pop()) {
                Ok(Some(reply)) => {
                    states[chain.problem].tokens += reply.n_tokens;
                    let code = (problems[chain.problem].code_of)(&reply.text);
                    attempts.push((chain_idx, text, code));
                }
                Ok(None) => chain.note = Some("the model returned no repair".to_string()),
                Err(error) => chain.note = Some(format!("repair failed: {error}")),
            }
        }
        let trials: Vec<Trial<'_>> = attempts
            .iter()
            .map(|(chain_idx, _, code)| {
                let problem = chains[*chain_idx].problem;
                Trial {
                    lang: problems[problem].spec.lang,
                    code,
                    cases: &states[problem].cases,
                }
            })
            .collect();
        let runs = run_trials(sandbox, &trials, &options.exec);
        for ((chain_idx, text, code), run) in attempts.into_iter().zip(runs) {
            let chain = &mut chains[chain_idx];
            let state = &mut states[chain.problem];
            state.executions += 1;
            let shown = visible(&state.cases);
            let passed = shown.iter().filter(|&&idx| run.passed(idx)).count();
            let improves = run.loaded() && (!chain.run.loaded() || passed > chain.passed);
            chain.attempts.push(Attempt {
                feedback: text,
                code: code.clone(),
                run: run.clone(),
                visible_passed: passed,
            });
            if improves {
                chain.kept = Some(chain.attempts.len() - 1);
                chain.code = code;
                chain.run = run;
                chain.passed = passed;
            }
        }
    }
    for chain in chains {
        let state = &mut states[chain.problem];
        for selection in &mut state.selections {
            if selection.repair.is_some() && selection.choice.index == chain.from {
                if chain.kept.is_some() {
                    selection.code = chain.code.clone();
                }
                selection.repair = Some(Repair {
                    from: chain.from,
                    attempts: chain.attempts.clone(),
                    kept: chain.kept,
                    note: chain.note.clone(),
                });
            }
        }
    }
}
