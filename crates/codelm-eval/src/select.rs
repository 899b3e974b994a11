//! Execution in the loop for an evaluation (`codelm eval --select`): after
//! the samples are generated and graded, each task's samples are the
//! candidates of `codelm-verify`, and every selector's pick over every
//! budget is graded by the benchmark's tests.
//!
//! The selector sees only [`prompt::spec_text`], the text the model was
//! shown, and the entry point: never the task's tests or reference. The
//! benchmark's tests grade the picks afterwards, as they grade samples.
//! Each task's result is one line of `selections.jsonl`, appended when the
//! task is done; a resumed run skips tasks that have one.
//!
//! The same-budget baselines come from the same run: `first` (the first
//! sample: what a sampled run without selection keeps), pass@1 of the
//! budget's samples (the unbiased estimate), pass@budget (the ceiling), and
//! greedy (one extra sample at temperature 0).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use codelm_verify::{
    Ask, Generate, Lang, Origin, Problem, Reply, Selection, Selector, Spec, Strategy, Verified,
};
use serde_json::{json, Value};

use crate::backend::{Backend, GenParams};
use crate::dataset::{Dataset, Task};
use crate::execute::Executor;
use crate::pass_at_k::pass_at_k;
use crate::prompt::{self, EvalPrompt, Mode};
use crate::run::solution_for;
use crate::store::{GradedRecord, PickRecord, RunStore, SelectionRecord};
use crate::{Error, Result};

/// What `--select` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectConfig {
    /// The strategy reported as the run's selection.
    pub strategy: Strategy,
    /// Budgets reported besides the run's `n` (prefixes of its samples).
    pub budgets: Vec<usize>,
    /// The loop's settings (the strategy and budgets are set from above).
    pub options: codelm_verify::Options,
}

impl SelectConfig {
    /// The config as recorded in `config.json`.
    pub fn to_json(&self) -> Value {
        let options = &self.options;
        json!({
            "strategy": self.strategy.name(),
            "budgets": self.budgets,
            "repair_rounds": options.repair_rounds,
            "test_samples": options.test_samples,
            "tests_per_sample": options.tests_per_sample,
            "test_temperature": options.test_temperature,
            "max_cases": options.max_cases,
            "max_tokens": options.max_tokens,
            "test_timeout_s": options.exec.test_timeout.as_secs_f64(),
        })
    }
}

/// [`Generate`] through an evaluation backend.
struct BackendGenerator<'a> {
    backend: &'a mut dyn Backend,
}

impl Generate for BackendGenerator<'_> {
    fn generate(&mut self, asks: &[Ask]) -> Vec<std::result::Result<Vec<Reply>, String>> {
        // Asks differ in n and sampling; group those that can share a batch.
        let mut results: Vec<Option<std::result::Result<Vec<Reply>, String>>> =
            asks.iter().map(|_| None).collect();
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (idx, ask) in asks.iter().enumerate() {
            let key = format!(
                "{} {} {} {} {:?}",
                ask.n, ask.temperature, ask.seed, ask.max_tokens, ask.stop
            );
            groups.entry(key).or_default().push(idx);
        }
        for indices in groups.into_values() {
            let first = &asks[indices[0]];
            let params = GenParams {
                n: first.n,
                max_tokens: first.max_tokens,
                temperature: first.temperature,
                top_p: 1.0,
                seed: first.seed,
                stop: first.stop.clone(),
            };
            let prompts: Vec<EvalPrompt> = indices
                .iter()
                .map(|&idx| EvalPrompt::Chat {
                    user: asks[idx].user.clone(),
                    response_prefix: asks[idx].response_prefix.clone(),
                })
                .collect();
            let outputs = self.backend.generate_many(&prompts, &params);
            for (idx, output) in indices.into_iter().zip(outputs) {
                results[idx] = Some(match output {
                    Ok(generated) => Ok(generated
                        .into_iter()
                        .map(|g| Reply {
                            text: g.text,
                            n_tokens: g.n_tokens,
                        })
                        .collect()),
                    Err(error) => Err(error.to_string()),
                });
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not generated".to_string())))
            .collect()
    }
}

/// Everything the selection phase needs from its run.
pub struct Phase<'a> {
    /// The benchmark.
    pub dataset: &'a Dataset,
    /// The tasks evaluated.
    pub tasks: &'a [&'a Task],
    /// The prompt mode.
    pub mode: Mode,
    /// The run's sampling settings.
    pub params: &'a GenParams,
    /// What to select.
    pub config: &'a SelectConfig,
    /// Grades the picks and runs the evidence.
    pub executor: &'a Executor,
    /// Draw a progress line per chunk on stderr.
    pub show_progress: bool,
}

/// Turns a repair reply into the program it stands for.
type CodeOf<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// Tasks verified together: one generation batch, one parallel sandbox call.
const CHUNK: usize = 8;

impl Phase<'_> {
    /// Selects for every task without a record and appends the records.
    ///
    /// # Errors
    ///
    /// A sampled run is required (`temperature > 0`, `n > 1`); errors of the
    /// verifier (the sandbox cannot run Python) and of writing the store.
    pub fn run(&self, backend: &mut dyn Backend, store: &mut RunStore) -> Result<()> {
        if self.params.n < 2 || self.params.temperature <= 0.0 {
            return Err(Error::InvalidOption {
                name: "--select",
                reason: "needs several sampled candidates: --n 2 or more and --temperature above 0"
                    .to_string(),
            });
        }
        let done: std::collections::HashSet<String> = store
            .selections()
            .iter()
            .map(|record| record.task_id.clone())
            .collect();
        let pending: Vec<&Task> = self
            .tasks
            .iter()
            .copied()
            .filter(|task| !done.contains(&task.task_id))
            .collect();
        let timeouts: HashMap<String, Duration> = store
            .verdicts()
            .iter()
            .map(|v| (v.task_id.clone(), Duration::from_secs_f64(v.timeout_s)))
            .collect();
        let mut options = self.config.options.clone();
        options.strategy = self.config.strategy;
        options.budgets = self.config.budgets.clone();
        options.seed = self.params.seed;
        for (chunk_idx, chunk) in pending.chunks(CHUNK).enumerate() {
            if self.show_progress {
                eprintln!(
                    "codelm eval: selecting ({}), tasks {}..{} of {}",
                    self.config.strategy.name(),
                    chunk_idx * CHUNK + 1,
                    chunk_idx * CHUNK + chunk.len(),
                    pending.len()
                );
            }
            let started = Instant::now();
            let records = self.chunk(chunk, backend, store, &options, &timeouts)?;
            let seconds = started.elapsed().as_secs_f64() / chunk.len() as f64;
            for mut record in records {
                record.seconds = seconds;
                store.append_selection(&record)?;
            }
        }
        Ok(())
    }

    fn chunk(
        &self,
        tasks: &[&Task],
        backend: &mut dyn Backend,
        store: &RunStore,
        options: &codelm_verify::Options,
        timeouts: &HashMap<String, Duration>,
    ) -> Result<Vec<SelectionRecord>> {
        let benchmark = self.dataset.benchmark;
        let n = self.params.n;
        // Candidates: each task's stored solutions, in sample order.
        let mut candidates: Vec<Vec<String>> = Vec::new();
        let mut graded: Vec<Vec<bool>> = Vec::new();
        for task in tasks {
            let mut solutions: Vec<(usize, String)> = store
                .samples()
                .iter()
                .filter(|s| s.task_id == task.task_id && s.sample_idx < n)
                .map(|s| (s.sample_idx, s.solution.clone()))
                .collect();
            solutions.sort_by_key(|(idx, _)| *idx);
            let mut passed = vec![false; solutions.len()];
            for verdict in store.verdicts() {
                if verdict.task_id == task.task_id && verdict.sample_idx < passed.len() {
                    passed[verdict.sample_idx] = verdict.passed;
                }
            }
            candidates.push(solutions.into_iter().map(|(_, code)| code).collect());
            graded.push(passed);
        }
        let code_of: Vec<CodeOf> = tasks
            .iter()
            .map(|task| {
                let task: &Task = task;
                // Repairs are chat replies: post-processed as instruct samples.
                Box::new(move |reply: &str| {
                    solution_for(benchmark, Mode::Instruct, task, reply, &[])
                        .unwrap_or_else(|_| codelm_verify::extract_code(reply))
                }) as CodeOf
            })
            .collect();
        let problems: Vec<Problem<'_>> = tasks
            .iter()
            .zip(&candidates)
            .zip(&code_of)
            .filter(|((_, candidates), _)| !candidates.is_empty())
            .map(|((task, candidates), code_of)| Problem {
                spec: Spec::new(
                    Lang::Python,
                    prompt::spec_text(benchmark, task, self.mode),
                    task.entry_point.as_str(),
                ),
                candidates: candidates.clone(),
                code_of: code_of.as_ref(),
            })
            .collect();
        let mut generator = BackendGenerator {
            backend: &mut *backend,
        };
        let verified =
            codelm_verify::verify(&mut generator, self.executor.sandbox(), &problems, options)
                .map_err(|error| Error::InvalidOption {
                    name: "--select",
                    reason: error.to_string(),
                })?;

        // The greedy baseline: one more sample per task at temperature 0.
        let greedy_params = GenParams {
            n: 1,
            temperature: 0.0,
            stop: prompt::stops(benchmark, self.mode),
            ..self.params.clone()
        };
        let prompts: Vec<EvalPrompt> = tasks
            .iter()
            .map(|task| prompt::build(self.dataset, task, self.mode))
            .collect();
        let greedy_replies = backend.generate_many(&prompts, &greedy_params);

        // Grade what is not a stored sample: greedy and repaired picks.
        let mut programs: Vec<(String, Duration)> = Vec::new();
        let mut greedy_slots: Vec<Option<usize>> = Vec::new();
        let mut greedy_tokens: Vec<usize> = Vec::new();
        for (task, reply) in tasks.iter().zip(&greedy_replies) {
            let timeout = timeouts
                .get(&task.task_id)
                .copied()
                .unwrap_or(self.executor.policy().floor);
            match reply.as_ref().ok().and_then(|replies| replies.first()) {
                Some(sample) => {
                    let solution = solution_for(
                        benchmark,
                        self.mode,
                        task,
                        &sample.text,
                        &greedy_params.stop,
                    )?;
                    greedy_slots.push(Some(programs.len()));
                    greedy_tokens.push(sample.n_tokens);
                    programs.push((task.program(&solution), timeout));
                }
                None => {
                    greedy_slots.push(None);
                    greedy_tokens.push(0);
                }
            }
        }
        let mut verified_iter = verified.into_iter();
        let mut per_task: Vec<Option<Verified>> = Vec::new();
        for candidates in &candidates {
            per_task.push(if candidates.is_empty() {
                None
            } else {
                verified_iter.next()
            });
        }
        let mut repair_slots: HashMap<(usize, String), usize> = HashMap::new();
        for (task_idx, (task, verified)) in tasks.iter().zip(&per_task).enumerate() {
            let Some(verified) = verified else { continue };
            let timeout = timeouts
                .get(&task.task_id)
                .copied()
                .unwrap_or(self.executor.policy().floor);
            for selection in verified.selections.iter().filter(|s| s.is_repaired()) {
                let key = (task_idx, selection.code.clone());
                if let std::collections::hash_map::Entry::Vacant(slot) = repair_slots.entry(key) {
                    slot.insert(programs.len());
                    programs.push((task.program(&selection.code), timeout));
                }
            }
        }
        let verdicts = self.executor.run(&programs);

        let mut records = Vec::new();
        for (task_idx, task) in tasks.iter().enumerate() {
            let greedy = greedy_slots[task_idx].map(|slot| GradedRecord {
                passed: verdicts[slot].is_passed(),
                status: verdicts[slot].status.clone(),
            });
            let mut record = SelectionRecord {
                task_id: task.task_id.clone(),
                greedy,
                greedy_tokens: greedy_tokens[task_idx],
                ..SelectionRecord::default()
            };
            let Some(verified) = &per_task[task_idx] else {
                record
                    .notes
                    .push("no candidates were generated".to_string());
                records.push(record);
                continue;
            };
            let count = |origin| {
                verified
                    .cases
                    .iter()
                    .filter(|c| c.origin == origin && c.check.is_test())
                    .count()
            };
            record.n_example_tests = count(Origin::Example);
            record.n_model_tests = count(Origin::Model);
            record.extra_tokens += verified.tokens;
            record.executions = verified.executions;
            record.notes = verified.notes.clone();
            for selection in &verified.selections {
                let passed = if selection.is_repaired() {
                    let slot = repair_slots[&(task_idx, selection.code.clone())];
                    verdicts[slot].is_passed()
                } else {
                    graded[task_idx]
                        .get(selection.choice.index)
                        .copied()
                        .unwrap_or(false)
                };
                record.picks.push(PickRecord {
                    budget: selection.budget,
                    strategy: pick_name(strategy_of(selection)),
                    sample_idx: selection.choice.index,
                    repaired: selection.is_repaired(),
                    fallback: selection.choice.fallback.clone(),
                    passed,
                });
            }
            record.evidence = evidence_json(verified);
            records.push(record);
        }
        Ok(records)
    }
}

fn strategy_of(selection: &Selection) -> Strategy {
    Strategy {
        selector: selection.choice.selector,
        repair: selection.repair.is_some(),
    }
}

/// A strategy's display name, `first` included.
fn pick_name(strategy: Strategy) -> String {
    if strategy.selector == Selector::First && !strategy.repair {
        "first".to_string()
    } else {
        strategy.name()
    }
}

fn evidence_json(verified: &Verified) -> Value {
    let full = verified
        .selections
        .iter()
        .filter(|s| s.repair.is_none())
        .max_by_key(|s| s.budget);
    let repairs: Vec<&codelm_verify::verify::Repair> = verified
        .selections
        .iter()
        .filter_map(|s| s.repair.as_ref())
        .collect();
    json!({
        "cases": verified.cases,
        "scores": full.map(|s| &s.choice.scores),
        "repairs": repairs,
    })
}

/// The selection section of `summary.json`: per budget, the baselines and
/// every selector's pass rate over the tasks with a record.
pub fn summary(
    records: &[SelectionRecord],
    task_ids: &[&str],
    verdicts: &[crate::store::VerdictRecord],
    config: &SelectConfig,
) -> Value {
    let wanted: std::collections::HashSet<&str> = task_ids.iter().copied().collect();
    let records: Vec<&SelectionRecord> = records
        .iter()
        .filter(|r| wanted.contains(r.task_id.as_str()))
        .collect();
    let n_tasks = records.len().max(1) as f64;
    let mut passed_by_task: HashMap<&str, Vec<(usize, bool)>> = HashMap::new();
    for verdict in verdicts {
        passed_by_task
            .entry(verdict.task_id.as_str())
            .or_default()
            .push((verdict.sample_idx, verdict.passed));
    }
    let mut budgets: Vec<usize> = records
        .iter()
        .flat_map(|r| r.picks.iter().map(|p| p.budget))
        .collect();
    budgets.sort_unstable();
    budgets.dedup();
    let rows: Vec<Value> = budgets
        .iter()
        .map(|&budget| {
            let mut pass_1 = 0.0;
            let mut pass_n = 0.0;
            let mut by_strategy: BTreeMap<String, f64> = BTreeMap::new();
            let mut fallbacks: BTreeMap<String, usize> = BTreeMap::new();
            for record in &records {
                let samples = passed_by_task
                    .get(record.task_id.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let first: Vec<bool> = samples
                    .iter()
                    .filter(|(idx, _)| *idx < budget)
                    .map(|(_, passed)| *passed)
                    .collect();
                let correct = first.iter().filter(|&&p| p).count();
                pass_1 += pass_at_k(first.len(), correct, 1).unwrap_or(0.0);
                pass_n += f64::from(u8::from(correct > 0));
                for pick in record.picks.iter().filter(|p| p.budget == budget) {
                    *by_strategy.entry(pick.strategy.clone()).or_default() +=
                        f64::from(u8::from(pick.passed));
                    if pick.fallback.is_some() {
                        *fallbacks.entry(pick.strategy.clone()).or_default() += 1;
                    }
                }
            }
            let rates: serde_json::Map<String, Value> = by_strategy
                .into_iter()
                .map(|(name, passed)| (name, json!(passed / n_tasks)))
                .collect();
            json!({
                "n": budget,
                "pass@1": pass_1 / n_tasks,
                "pass@n": pass_n / n_tasks,
                "selected": rates,
                "fallbacks": fallbacks,
            })
        })
        .collect();
    let greedy: Vec<bool> = records
        .iter()
        .filter_map(|r| r.greedy.as_ref().map(|g| g.passed))
        .collect();
    let sum = |f: &dyn Fn(&SelectionRecord) -> f64| records.iter().map(|r| f(r)).sum::<f64>();
    json!({
        "strategy": config.strategy.name(),
        "config": config.to_json(),
        "n_tasks": records.len(),
        "greedy": (!greedy.is_empty())
            .then(|| greedy.iter().filter(|&&p| p).count() as f64 / greedy.len() as f64),
        "budgets": rows,
        "extra_tokens": sum(&|r| r.extra_tokens as f64),
        "executions": sum(&|r| r.executions as f64),
        "seconds": sum(&|r| r.seconds),
        "tasks_with_example_tests": records.iter().filter(|r| r.n_example_tests > 0).count(),
        "tasks_with_model_tests": records.iter().filter(|r| r.n_model_tests > 0).count(),
    })
}

/// The summary table's rows for a selection section (none without one):
/// the greedy baseline, then per budget the baselines and each selector.
pub fn table_rows(selection: &Value) -> Vec<(String, String)> {
    let Some(budgets) = selection["budgets"].as_array() else {
        return Vec::new();
    };
    let percent = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v))
    };
    let mut rows = vec![(
        "selection".to_string(),
        format!(
            "{} over {} tasks; {} extra tokens, {} programs run, {}",
            selection["strategy"].as_str().unwrap_or("-"),
            selection["n_tasks"],
            selection["extra_tokens"],
            selection["executions"],
            crate::report::format_duration(selection["seconds"].as_f64().unwrap_or(0.0)),
        ),
    )];
    rows.push(("greedy".to_string(), percent(&selection["greedy"])));
    for row in budgets {
        let n = &row["n"];
        let mut cells = vec![
            format!("pass@1 {}", percent(&row["pass@1"])),
            format!("pass@{n} {}", percent(&row["pass@n"])),
        ];
        if let Some(rates) = row["selected"].as_object() {
            for (name, rate) in rates {
                cells.push(format!("{name} {}", percent(rate)));
            }
        }
        rows.push((format!("n={n}"), cells.join(", ")));
    }
    rows
}
