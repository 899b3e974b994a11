//! One evaluation run: generate, post-process, execute, score.
//!
//! Generation runs on the calling thread and execution on a worker thread,
//! so the sandbox tests task `i` while the model writes task `i + 1`. Both
//! append to the [`RunStore`] as they go; on `--resume`, samples already
//! stored are not regenerated and stored verdicts are not re-run.
//!
//! ```
//! use codelm_eval::run::count_statuses;
//! use codelm_eval::store::VerdictRecord;
//!
//! let verdict = |status: &str| VerdictRecord { status: status.into(), ..VerdictRecord::default() };
//! let counts = count_statuses(&[verdict("passed"), verdict("failed"), verdict("passed")]);
//! assert_eq!(counts.get("passed"), Some(&2));
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::backend::{Backend, GenParams};
use crate::dataset::{Benchmark, Dataset, Task};
use crate::execute::Executor;
use crate::pass_at_k::{mean_pass_at_k, REPORTED_KS};
use crate::postprocess::{definitions, extract_code, imports, sanitize, truncate_at_stops, words};
use crate::prompt::{self, Mode};
use crate::store::{RunStore, SampleRecord, VerdictRecord};
use crate::{Error, Result};

/// Where samples come from.
pub enum SampleSource<'a> {
    /// Generate with a backend.
    Backend(&'a mut dyn Backend),
    /// Score samples read from a file (see [`read_samples_file`]).
    Records(Vec<SampleRecord>),
}

/// What a run needs besides the data, the backend and the sandbox.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Prompt mode.
    pub mode: Mode,
    /// Sampling settings; `stop` is filled in from the prompt mode.
    pub params: GenParams,
    /// Draw a progress bar on stderr.
    pub show_progress: bool,
}

/// Counts and pass@k over the evaluated tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Tasks evaluated.
    pub n_tasks: usize,
    /// Samples executed, over all tasks.
    pub n_samples: usize,
    /// Samples that passed.
    pub n_passed: usize,
    /// `(k, pass@k)` for each reported k that every task has samples for.
    pub pass_at_k: Vec<(usize, f64)>,
    /// How many samples ended in each status.
    pub statuses: BTreeMap<String, usize>,
}

impl Scores {
    /// Scores from verdicts; tasks without any verdict are left out.
    pub fn from_verdicts(task_ids: &[&str], verdicts: &[VerdictRecord]) -> Scores {
        let wanted: HashSet<&str> = task_ids.iter().copied().collect();
        let mut per_task: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let relevant: Vec<VerdictRecord> = verdicts
            .iter()
            .filter(|verdict| wanted.contains(verdict.task_id.as_str()))
            .cloned()
            .collect();
        for verdict in &relevant {
            let entry = per_task.entry(verdict.task_id.as_str()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(verdict.passed);
        }
        let counts: Vec<(usize, usize)> = per_task.values().copied().collect();
        Scores {
            n_tasks: counts.len(),
            n_samples: relevant.len(),
            n_passed: counts.iter().map(|(_, c)| c).sum(),
            pass_at_k: REPORTED_KS
                .iter()
                .filter_map(|&k| mean_pass_at_k(&counts, k).map(|score| (k, score)))
                .collect(),
            statuses: count_statuses(&relevant),
        }
    }

    /// The scores as JSON for `summary.json`.
    pub fn to_json(&self) -> Value {
        let pass_at_k: serde_json::Map<String, Value> = self
            .pass_at_k
            .iter()
            .map(|(k, score)| (format!("pass@{k}"), json!(score)))
            .collect();
        json!({
            "n_tasks": self.n_tasks,
            "n_samples": self.n_samples,
            "n_passed": self.n_passed,
            "pass_at_k": pass_at_k,
            "statuses": self.statuses,
        })
    }
}

/// How many verdicts have each status.
pub fn count_statuses(verdicts: &[VerdictRecord]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for verdict in verdicts {
        *counts.entry(verdict.status.clone()).or_insert(0) += 1;
    }
    counts
}

/// The code that is executed for a model's `text`, given the prompt mode.
///
/// Base HumanEval: the prompt followed by the text cut at the stops (as the
/// official harness does). Base MBPP: the cut text, sanitized. Instruct: the
/// fenced code, sanitized; if it lacks the function's signature it is taken
/// as a body and the prompt goes in front; the prompt's imports and helper
/// functions (HumanEval/38's `encode_cyclic`, say) are added when missing.
/// The sanitizer's roots are the entry point and every name the tests use.
pub fn solution_for(
    benchmark: Benchmark,
    mode: Mode,
    task: &Task,
    text: &str,
    stops: &[String],
) -> Result<String> {
    let entry = task.entry_point.as_str();
    let test_code = format!("{}\n{}", task.test_setup, task.test);
    let mut roots: Vec<&str> = vec![entry];
    roots.extend(words(&test_code));
    match (mode, benchmark) {
        (Mode::Base, Benchmark::HumanEval) => {
            Ok(format!("{}{}", task.prompt, truncate_at_stops(text, stops)))
        }
        (Mode::Base, _) => sanitize(truncate_at_stops(text, stops), &roots),
        (Mode::Instruct, benchmark) => {
            let code = extract_code(text, Some(entry));
            let sanitized = sanitize(&code, &roots)?;
            if benchmark.is_mbpp() {
                return Ok(sanitized);
            }
            if !sanitized.contains(&format!("def {entry}(")) {
                return Ok(format!("{}{code}", task.prompt));
            }
            let defined: HashSet<String> = definitions(&sanitized)?
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            let mut missing: Vec<String> = imports(&task.prompt)?
                .into_iter()
                .filter(|line| !sanitized.contains(line.as_str()))
                .collect();
            missing.extend(
                definitions(&task.prompt)?
                    .into_iter()
                    .filter(|(name, _)| name != entry && !defined.contains(name))
                    .map(|(_, source)| format!("\n{source}\n")),
            );
            if missing.is_empty() {
                Ok(sanitized)
            } else {
                Ok(format!("{}\n{sanitized}", missing.join("\n")))
            }
        }
    }
}

/// Reads a human-eval / EvalPlus samples file: JSON lines with `task_id`
/// and either `completion` (appended to the HumanEval prompt; the code
/// itself for MBPP) or `solution` (the complete code). Samples are used
/// verbatim, without post-processing, as the official harnesses do.
pub fn read_samples_file(path: &Path, dataset: &Dataset) -> Result<Vec<SampleRecord>> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    let mut next_idx: HashMap<String, usize> = HashMap::new();
    let mut records = Vec::new();
    for (line_idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_number = line_idx + 1;
        let value: Value = serde_json::from_str(line).map_err(|cause| Error::Json {
            path: path.to_path_buf(),
            line: line_number,
            cause,
        })?;
        let task_id = match &value["task_id"] {
            Value::String(id) => id.clone(),
            Value::Number(id) => id.to_string(),
            _ => {
                return Err(Error::MissingField {
                    path: path.to_path_buf(),
                    line: line_number,
                    field: "task_id",
                })
            }
        };
        let task = dataset.task(&task_id).ok_or_else(|| Error::UnknownTask {
            path: path.to_path_buf(),
            line: line_number,
            task_id: task_id.clone(),
        })?;
        let (completion, solution) =
            match (value["solution"].as_str(), value["completion"].as_str()) {
                (Some(solution), _) => (solution.to_string(), solution.to_string()),
                (None, Some(completion)) if dataset.benchmark == Benchmark::HumanEval => (
                    completion.to_string(),
                    format!("{}{completion}", task.prompt),
                ),
                (None, Some(completion)) => (completion.to_string(), completion.to_string()),
                (None, None) => {
                    return Err(Error::MissingField {
                        path: path.to_path_buf(),
                        line: line_number,
                        field: "completion",
                    })
                }
            };
        let sample_idx = next_idx.entry(task.task_id.clone()).or_insert(0);
        records.push(SampleRecord {
            task_id: task.task_id.clone(),
            sample_idx: *sample_idx,
            completion,
            solution,
            finish_reason: "external".to_string(),
            n_tokens: 0,
            generation_s: 0.0,
        });
        *sample_idx += 1;
    }
    Ok(records)
}

fn progress_bar(show: bool, total: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let style =
        ProgressStyle::with_template("{elapsed_precise} [{bar:25}] {pos}/{len} {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
        .with_style(style)
}

/// A batch of samples for the execution thread.
struct Batch<'a> {
    task: &'a Task,
    records: Vec<SampleRecord>,
    timeout: Duration,
}

/// Runs the evaluation of `tasks` into `store` and returns the scores.
pub fn evaluate(
    dataset: &Dataset,
    tasks: &[&Task],
    source: SampleSource<'_>,
    options: &RunOptions,
    executor: &Executor,
    store: &mut RunStore,
) -> Result<Scores> {
    // Imported samples count only for the selected tasks, and only those
    // tasks are evaluated.
    let selected: HashSet<&str> = tasks.iter().map(|task| task.task_id.as_str()).collect();
    let source = match source {
        SampleSource::Records(records) => SampleSource::Records(
            records
                .into_iter()
                .filter(|record| selected.contains(record.task_id.as_str()))
                .collect(),
        ),
        backend => backend,
    };
    let (tasks, total): (Vec<&Task>, usize) = match &source {
        SampleSource::Backend(_) => (tasks.to_vec(), tasks.len() * options.params.n),
        SampleSource::Records(records) => {
            let ids: HashSet<&str> = records
                .iter()
                .map(|record| record.task_id.as_str())
                .collect();
            let tasks = tasks
                .iter()
                .copied()
                .filter(|task| ids.contains(task.task_id.as_str()))
                .collect();
            (tasks, records.len())
        }
    };
    let timeouts = reference_timeouts(&tasks, executor, store)?;
    let task_ids: Vec<&str> = tasks.iter().map(|task| task.task_id.as_str()).collect();
    let bar = progress_bar(options.show_progress, total);
    let initial = Scores::from_verdicts(&task_ids, store.verdicts());
    bar.set_position(initial.n_samples as u64);
    bar.set_message(pass_message(initial.n_passed, initial.n_samples));

    let done_verdicts: HashSet<(String, usize)> = store
        .verdicts()
        .iter()
        .map(|verdict| (verdict.task_id.clone(), verdict.sample_idx))
        .collect();
    let stored_samples: HashSet<(String, usize)> = store
        .samples()
        .iter()
        .map(|sample| (sample.task_id.clone(), sample.sample_idx))
        .collect();
    let task_of = |task_id: &str| tasks.iter().copied().find(|task| task.task_id == task_id);
    let timeout_of = |task_id: &str| {
        timeouts
            .get(task_id)
            .copied()
            .unwrap_or(executor.policy().floor)
    };
    // Samples stored by an interrupted session whose verdicts were lost.
    let mut pending: BTreeMap<String, Vec<SampleRecord>> = BTreeMap::new();
    for sample in store.samples() {
        if task_ids.contains(&sample.task_id.as_str())
            && !done_verdicts.contains(&(sample.task_id.clone(), sample.sample_idx))
        {
            pending
                .entry(sample.task_id.clone())
                .or_default()
                .push(sample.clone());
        }
    }

    let store = Mutex::new(store);
    let (sender, receiver) = mpsc::channel::<Batch<'_>>();
    std::thread::scope(|scope| -> Result<()> {
        let worker = scope.spawn(|| execute_batches(receiver, executor, &store, &bar, initial));
        // False once the worker has stopped, which it does only on an
        // error that join() then reports.
        let send = |batch| sender.send(batch).is_ok();
        for (task_id, records) in std::mem::take(&mut pending) {
            if let Some(task) = task_of(&task_id) {
                send(Batch {
                    task,
                    timeout: timeout_of(&task_id),
                    records,
                });
            }
        }
        let generated = match source {
            SampleSource::Records(records) => {
                let fresh: Vec<SampleRecord> = records
                    .into_iter()
                    .filter(|record| {
                        !stored_samples.contains(&(record.task_id.clone(), record.sample_idx))
                    })
                    .collect();
                let mut by_task: BTreeMap<String, Vec<SampleRecord>> = BTreeMap::new();
                for record in fresh {
                    append_sample(&store, &record)?;
                    by_task
                        .entry(record.task_id.clone())
                        .or_default()
                        .push(record);
                }
                for (task_id, records) in by_task {
                    if let Some(task) = task_of(&task_id) {
                        send(Batch {
                            task,
                            timeout: timeout_of(&task_id),
                            records,
                        });
                    }
                }
                Ok(())
            }
            SampleSource::Backend(backend) => generate_all(
                dataset,
                &tasks,
                backend,
                options,
                &stored_samples,
                &store,
                &mut |task, records| {
                    send(Batch {
                        task,
                        timeout: timeout_of(&task.task_id),
                        records,
                    })
                },
            ),
        };
        drop(sender);
        let executed = worker.join().unwrap_or_else(|_| {
            Err(Error::InvalidOption {
                name: "execution",
                reason: "the execution thread panicked".to_string(),
            })
        });
        generated.and(executed)
    })?;
    bar.finish_and_clear();
    let store = store
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(Scores::from_verdicts(&task_ids, store.verdicts()))
}

fn pass_message(n_passed: usize, n_done: usize) -> String {
    if n_done == 0 {
        return "pass -,".to_string();
    }
    format!(
        "pass {:.1}% ({n_passed}/{n_done}),",
        100.0 * n_passed as f64 / n_done as f64
    )
}

fn append_sample(store: &Mutex<&mut RunStore>, record: &SampleRecord) -> Result<()> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .append_sample(record)
}

/// Reference timings, measured once per task and cached in the run.
fn reference_timeouts(
    tasks: &[&Task],
    executor: &Executor,
    store: &RunStore,
) -> Result<HashMap<String, Duration>> {
    let mut timings = store.timings();
    let missing: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|task| !timings.contains_key(&task.task_id))
        .collect();
    if !missing.is_empty() {
        let measured = executor.time_references(&missing);
        for (task, time) in missing.iter().zip(measured) {
            timings.insert(task.task_id.clone(), time.map(|time| time.as_secs_f64()));
        }
        store.write_timings(&timings)?;
    }
    Ok(tasks
        .iter()
        .map(|task| {
            let reference = timings
                .get(&task.task_id)
                .copied()
                .flatten()
                .map(Duration::from_secs_f64);
            (task.task_id.clone(), executor.policy().timeout(reference))
        })
        .collect())
}

fn execute_batches(
    receiver: mpsc::Receiver<Batch<'_>>,
    executor: &Executor,
    store: &Mutex<&mut RunStore>,
    bar: &ProgressBar,
    initial: Scores,
) -> Result<()> {
    let (mut n_passed, mut n_done) = (initial.n_passed, initial.n_samples);
    for batch in receiver {
        let programs: Vec<(String, Duration)> = batch
            .records
            .iter()
            .map(|record| (batch.task.program(&record.solution), batch.timeout))
            .collect();
        let verdicts = executor.run(&programs);
        let mut store = store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (record, verdict) in batch.records.iter().zip(verdicts) {
            let passed = verdict.is_passed();
            store.append_verdict(&VerdictRecord {
                task_id: record.task_id.clone(),
                sample_idx: record.sample_idx,
                status: verdict.status,
                passed,
                failing_test: verdict.failing_test,
                error: verdict.error,
                wall_s: verdict.wall_time.as_secs_f64(),
                timeout_s: batch.timeout.as_secs_f64(),
            })?;
            n_done += 1;
            n_passed += usize::from(passed);
            bar.set_message(pass_message(n_passed, n_done));
            bar.inc(1);
        }
    }
    Ok(())
}

fn generate_all<'a>(
    dataset: &Dataset,
    tasks: &[&'a Task],
    backend: &mut dyn Backend,
    options: &RunOptions,
    stored: &HashSet<(String, usize)>,
    store: &Mutex<&mut RunStore>,
    send: &mut dyn FnMut(&'a Task, Vec<SampleRecord>) -> bool,
) -> Result<()> {
    let stops = prompt::stops(dataset.benchmark, options.mode);
    let params = GenParams {
        stop: stops.clone(),
        ..options.params.clone()
    };
    // Tasks are generated in chunks so a local engine can decode them as one
    // batch (about 16 sequences at a time); batching does not change any token.
    let chunk_len = (16 / params.n.max(1)).max(1);
    let pending: Vec<(&'a Task, Vec<usize>)> = tasks
        .iter()
        .map(|task| {
            let missing = (0..params.n)
                .filter(|idx| !stored.contains(&(task.task_id.clone(), *idx)))
                .collect::<Vec<usize>>();
            (*task, missing)
        })
        .filter(|(_, missing)| !missing.is_empty())
        .collect();
    for chunk in pending.chunks(chunk_len) {
        let prompts: Vec<_> = chunk
            .iter()
            .map(|(task, _)| prompt::build(dataset, task, options.mode))
            .collect();
        let started = Instant::now();
        let results = backend.generate_many(&prompts, &params);
        let seconds = started.elapsed().as_secs_f64() / chunk.len() as f64;
        for ((task, missing), result) in chunk.iter().zip(results) {
            let task: &'a Task = task;
            let missing = missing.clone();
            let generated = match result {
                Ok(generated) => generated,
                // A prompt the engine rejects (too long, say) fails its samples
                // rather than the run; transport errors stop the run.
                Err(Error::Engine(cause)) => (0..params.n)
                    .map(|_| crate::backend::Generated {
                        text: String::new(),
                        finish_reason: format!("error: {cause}"),
                        n_tokens: 0,
                    })
                    .collect(),
                Err(error) => return Err(error),
            };
            let mut records = Vec::new();
            for idx in missing {
                let Some(sample) = generated.get(idx) else {
                    continue;
                };
                let record = SampleRecord {
                    task_id: task.task_id.clone(),
                    sample_idx: idx,
                    completion: sample.text.clone(),
                    solution: solution_for(
                        dataset.benchmark,
                        options.mode,
                        task,
                        &sample.text,
                        &stops,
                    )?,
                    finish_reason: sample.finish_reason.clone(),
                    n_tokens: sample.n_tokens,
                    generation_s: seconds,
                };
                append_sample(store, &record)?;
                records.push(record);
            }
            if !send(task, records) {
                // Execution failed; stop generating and let the caller report it.
                return Ok(());
            }
        }
    }
    Ok(())
}
