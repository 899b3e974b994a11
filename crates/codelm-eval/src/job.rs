//! One evaluation from its settings to its summary: what `codelm eval` runs
//! once it has parsed its flags, loaded the dataset and the model, and opened
//! the sandbox.
//!
//! [`Job::run`] selects the tasks, records the run's config, opens (or
//! resumes) the run directory, generates or reads the samples, executes and
//! scores them, and writes `summary.json`. The design decision a newcomer may
//! question: the job takes a ready [`Executor`] and sample source instead of
//! flags, so the binary keeps every choice that touches the machine (model
//! files, the network, isolation) and the job can be run from a test with a
//! samples file.
//!
//! ```
//! use codelm_eval::job::{benchmark_label, run_dir_name};
//! assert_eq!(benchmark_label("mbpp-sanitized"), "mbpp-sanitized");
//! assert_eq!(benchmark_label("tasks/mine.jsonl"), "mine.jsonl");
//! assert_eq!(run_dir_name("mbpp", "/models/my model.gguf", 0), "mbpp-my_model-19700101-000000");
//! ```

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::backend::{Backend, GenParams};
use crate::execute::Executor;
use crate::prompt::{self, Mode};
use crate::report::{self, Hardware, ModelInfo, RunConfig};
use crate::run::{self, RunOptions, SampleSource};
use crate::select::{self, SelectConfig};
use crate::store::RunStore;
use crate::{Benchmark, Dataset, Result, Task};

/// Where a job's samples come from.
pub enum Samples<'a> {
    /// Generate them with a backend.
    Backend(&'a mut dyn Backend),
    /// Score the samples of a JSONL file (task_id and completion or solution).
    File(&'a Path),
}

/// Where a job keeps its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunDir {
    /// Continue the interrupted run in this directory (same config required).
    Resume(PathBuf),
    /// Start a run in this directory.
    New(PathBuf),
    /// Start a run in `runs/<benchmark>-<model>-<UTC timestamp>`.
    Default,
}

/// An evaluation's settings.
pub struct Job<'a> {
    /// The benchmark.
    pub dataset: &'a Dataset,
    /// The benchmark's name in reports (see [`benchmark_label`]).
    pub label: String,
    /// Prompt mode.
    pub mode: Mode,
    /// Sampling settings, with the benchmark's stop sequences.
    pub params: GenParams,
    /// Evaluate only the first N tasks.
    pub limit: Option<usize>,
    /// The model, as recorded.
    pub model: ModelInfo,
    /// The backend, as recorded: `local`, `openai <url>` or `samples <file>`.
    pub backend: String,
    /// Generation threads, as recorded.
    pub threads: Option<usize>,
    /// Programs executed in parallel, as recorded.
    pub exec_jobs: usize,
    /// The run directory.
    pub run_dir: RunDir,
    /// Choose among each task's samples by executing them, and grade the
    /// choices (`--select`); needs a backend.
    pub select: Option<SelectConfig>,
    /// Print the run's outline and a progress bar on stderr.
    pub show_progress: bool,
    /// When the evaluation started (for the summary's wall time).
    pub started: Instant,
}

/// A finished job.
#[derive(Debug)]
pub struct Finished {
    /// `summary.json`'s content.
    pub summary: Value,
    /// The run directory.
    pub dir: PathBuf,
}

impl Job<'_> {
    /// Runs the job: generates (or reads) the samples of the selected tasks,
    /// executes and scores them, and writes the summary.
    ///
    /// # Errors
    ///
    /// Those of [`RunStore::open`] (a resumed run with another config among
    /// them), of the backend, of reading the samples file, and of writing the
    /// run directory.
    pub fn run(self, samples: Samples<'_>, executor: &Executor) -> Result<Finished> {
        let dataset = self.dataset;
        let n_tasks = self.limit.unwrap_or(usize::MAX).min(dataset.tasks.len());
        let tasks: Vec<&Task> = dataset.tasks.iter().take(n_tasks).collect();
        let config = RunConfig {
            benchmark: self.label.clone(),
            dataset_path: dataset.path.display().to_string(),
            dataset_sha256: dataset.sha256.clone(),
            model: self.model,
            backend: self.backend,
            mode: self.mode,
            params: self.params.clone(),
            limit: self.limit,
            policy: executor.policy().clone(),
            threads: self.threads,
            exec_jobs: self.exec_jobs,
            codelm_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut config_json = config.to_json();
        if let Some(select) = &self.select {
            if matches!(samples, Samples::File(_)) {
                return Err(crate::Error::InvalidOption {
                    name: "--select",
                    reason: "needs a model to write tests; it cannot select from a samples file"
                        .to_string(),
                });
            }
            config_json["select"] = select.to_json();
        }

        let (dir, resume) = match self.run_dir {
            RunDir::Resume(dir) => (dir, true),
            RunDir::New(dir) => (dir, false),
            RunDir::Default => (default_run_dir(&self.label, &config.model.name), false),
        };
        let mut store = RunStore::open(&dir, &config_json, resume)?;
        if self.show_progress {
            eprintln!(
                "codelm eval: {} tasks of {}, {} mode, run directory {}",
                tasks.len(),
                self.label,
                self.mode.name(),
                dir.display()
            );
        }

        let example = match (&samples, tasks.first()) {
            (Samples::Backend(backend), Some(task)) => {
                backend.render(&prompt::build(dataset, task, self.mode))?
            }
            _ => "-".to_string(),
        };
        let (mut backend, source) = match samples {
            Samples::Backend(backend) => (Some(backend), None),
            Samples::File(path) => (None, Some(run::read_samples_file(path, dataset)?)),
        };
        let source = match (&mut backend, source) {
            (Some(backend), _) => SampleSource::Backend(&mut **backend),
            (None, records) => SampleSource::Records(records.unwrap_or_default()),
        };
        let options = RunOptions {
            mode: self.mode,
            params: self.params.clone(),
            show_progress: self.show_progress,
        };
        let scores = run::evaluate(dataset, &tasks, source, &options, executor, &mut store)?;
        if let (Some(config), Some(backend)) = (&self.select, backend) {
            let phase = select::Phase {
                dataset,
                tasks: &tasks,
                mode: self.mode,
                params: &self.params,
                config,
                executor,
                show_progress: self.show_progress,
            };
            phase.run(backend, &mut store)?;
        }
        let mut summary = report::summary(
            &config_json,
            &prompt::template(dataset.benchmark, self.mode),
            &example,
            &Hardware::detect(),
            self.started.elapsed().as_secs_f64(),
            store.samples(),
            &scores,
        );
        if let Some(config) = &self.select {
            let task_ids: Vec<&str> = tasks.iter().map(|task| task.task_id.as_str()).collect();
            summary["selection"] =
                select::summary(store.selections(), &task_ids, store.verdicts(), config);
        }
        store.write_summary(&summary)?;
        Ok(Finished { summary, dir })
    }
}

/// The benchmark's name in reports: a known benchmark's name, a file's name
/// otherwise.
pub fn benchmark_label(benchmark: &str) -> String {
    match Benchmark::from_name(benchmark) {
        Some(benchmark) => benchmark.name().to_string(),
        None => Path::new(benchmark).file_name().map_or_else(
            || benchmark.to_string(),
            |name| name.to_string_lossy().into_owned(),
        ),
    }
}

fn default_run_dir(benchmark: &str, model: &str) -> PathBuf {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("runs").join(run_dir_name(benchmark, model, seconds))
}

/// `<benchmark>-<model file stem>-<UTC timestamp>`, every character outside
/// `[A-Za-z0-9._-]` replaced by `_`, for a run started at `seconds` after
/// the Unix epoch.
pub fn run_dir_name(benchmark: &str, model: &str, seconds: u64) -> String {
    let stem = Path::new(model).file_stem().map_or_else(
        || model.to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let safe_benchmark = sanitize_name(benchmark);
    format!(
        "{safe_benchmark}-{}-{}",
        sanitize_name(&stem),
        utc_timestamp(seconds)
    )
}

/// `name` with every character outside `[A-Za-z0-9._-]` replaced by `_`.
fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `YYYYMMDD-HHMMSS` in UTC (civil-from-days, Howard Hinnant's algorithm).
fn utc_timestamp(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let secs = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(0), "19700101-000000");
        assert_eq!(utc_timestamp(951_782_400 + 3661), "20000229-010101");
        assert_eq!(utc_timestamp(1_763_700_000), "20251121-044000");
    }

    #[test]
    fn run_dir_names_are_safe() {
        let dir = default_run_dir("mbpp", "/models/my model.gguf");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("mbpp-my_model-"), "{name}");
    }
}
