//! What a run records about itself, and the table printed at its end.
//!
//! `config.json` holds everything that determines the samples (and is
//! compared on `--resume`); `summary.json` adds the prompt format with one
//! rendered example, the machine, the wall time and the scores. Numbers
//! without the model file, quantization, seed and hardware next to them are
//! not comparable, so the table always shows them.
//!
//! ```
//! use codelm_eval::report::format_duration;
//!
//! assert_eq!(format_duration(3725.0), "1h 2m 5s");
//! assert_eq!(format_duration(4.2), "4.2s");
//! ```

use serde_json::{json, Value};

use crate::backend::GenParams;
use crate::execute::ExecPolicy;
use crate::prompt::Mode;
use crate::run::Scores;
use crate::store::SampleRecord;

/// The model being evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// What the user asked for: a registry name, a path, or a server's model.
    pub name: String,
    /// The weights file, for local models.
    pub file: Option<String>,
    /// The weights file's sha256.
    pub sha256: Option<String>,
    /// Weight storage types, e.g. `Q4_K (Q4_K 62%, Q6_K 31%)`.
    pub quantization: Option<String>,
}

/// Everything that determines a run's samples and verdicts.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `humaneval`, `mbpp`, `mbpp-sanitized`.
    pub benchmark: String,
    /// The dataset file.
    pub dataset_path: String,
    /// Its sha256.
    pub dataset_sha256: String,
    /// The model.
    pub model: ModelInfo,
    /// `local`, `openai <url>` or `samples <file>`.
    pub backend: String,
    /// Prompt mode.
    pub mode: Mode,
    /// Sampling settings.
    pub params: GenParams,
    /// First N tasks only.
    pub limit: Option<usize>,
    /// Execution limits.
    pub policy: ExecPolicy,
    /// Generation threads (may change on resume).
    pub threads: Option<usize>,
    /// Parallel sandbox jobs (may change on resume).
    pub exec_jobs: usize,
    /// `codelm` version (may change on resume).
    pub codelm_version: String,
}

impl RunConfig {
    /// The config as stored in `config.json`.
    pub fn to_json(&self) -> Value {
        json!({
            "benchmark": self.benchmark,
            "dataset": {"path": self.dataset_path, "sha256": self.dataset_sha256},
            "model": {
                "name": self.model.name,
                "file": self.model.file,
                "sha256": self.model.sha256,
                "quantization": self.model.quantization,
            },
            "backend": self.backend,
            "mode": self.mode.name(),
            "sampling": {
                "n": self.params.n,
                "temperature": f32_for_json(self.params.temperature),
                "top_p": f32_for_json(self.params.top_p),
                "max_tokens": self.params.max_tokens,
                "seed": self.params.seed,
            },
            "limit": self.limit,
            "execution": {
                "timeout_floor_s": self.policy.floor.as_secs_f64(),
                "timeout_factor": self.policy.factor,
                "memory_bytes": self.policy.memory_bytes,
            },
            "threads": self.threads,
            "exec_jobs": self.exec_jobs,
            "codelm_version": self.codelm_version,
        })
    }
}

/// An `f32` flag as the decimal the user typed (`0.8`, not
/// `0.800000011920929`).
fn f32_for_json(value: f32) -> f64 {
    (f64::from(value) * 1e6).round() / 1e6
}

/// The machine a run happened on.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardware {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available to the process.
    pub n_cores: usize,
}

impl Hardware {
    /// Reads `/proc/cpuinfo` (`unknown` elsewhere).
    pub fn detect() -> Hardware {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, name)| name.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        Hardware {
            cpu,
            n_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// `summary.json`: the config plus prompt format, machine, time, generation
/// statistics (from `samples`) and scores.
pub fn summary(
    config: &Value,
    prompt_template: &str,
    prompt_example: &str,
    hardware: &Hardware,
    wall_s: f64,
    samples: &[SampleRecord],
    scores: &Scores,
) -> Value {
    let mut summary = config.clone();
    // Samples of one task share a batch and its time; count the time once.
    let n_tokens: usize = samples.iter().map(|sample| sample.n_tokens).sum();
    let seconds: f64 = samples
        .iter()
        .filter(|sample| sample.sample_idx == 0)
        .map(|sample| sample.generation_s)
        .sum();
    summary["generation"] = json!({"n_tokens": n_tokens, "seconds": seconds});
    summary["prompt"] = json!({"format": prompt_template, "example": prompt_example});
    summary["hardware"] = json!({"cpu": hardware.cpu, "n_cores": hardware.n_cores});
    summary["wall_s"] = json!(wall_s);
    summary["results"] = scores.to_json();
    summary
}

/// `1h 2m 5s`, `3m 0s` or `4.2s`.
pub fn format_duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let total = seconds.round() as u64;
    let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h {minutes}m {secs}s")
    } else {
        format!("{minutes}m {secs}s")
    }
}

/// The end-of-run table.
pub fn render_table(summary: &Value) -> String {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let sampling = &summary["sampling"];
    let temperature = sampling["temperature"].as_f64().unwrap_or(0.0);
    let decoding = if temperature <= 0.0 {
        "greedy".to_string()
    } else {
        format!(
            "temperature {temperature}, top_p {}",
            text(&sampling["top_p"])
        )
    };
    let results = &summary["results"];
    let statuses = results["statuses"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(status, count)| format!("{status} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut rows = vec![
        (
            "benchmark".to_string(),
            format!(
                "{} ({} tasks, {} samples)",
                text(&summary["benchmark"]),
                text(&results["n_tasks"]),
                text(&results["n_samples"])
            ),
        ),
        (
            "dataset sha256".to_string(),
            text(&summary["dataset"]["sha256"]),
        ),
        ("model".to_string(), text(&summary["model"]["name"])),
        (
            "model sha256".to_string(),
            text(&summary["model"]["sha256"]),
        ),
        (
            "quantization".to_string(),
            text(&summary["model"]["quantization"]),
        ),
        ("backend".to_string(), text(&summary["backend"])),
        ("prompt mode".to_string(), text(&summary["mode"])),
        (
            "sampling".to_string(),
            format!(
                "{decoding}, n {}, max_tokens {}, seed {}",
                text(&sampling["n"]),
                text(&sampling["max_tokens"]),
                text(&sampling["seed"])
            ),
        ),
        (
            "hardware".to_string(),
            format!(
                "{}, {} cores",
                text(&summary["hardware"]["cpu"]),
                text(&summary["hardware"]["n_cores"])
            ),
        ),
        ("codelm".to_string(), text(&summary["codelm_version"])),
        (
            "wall time".to_string(),
            format_duration(summary["wall_s"].as_f64().unwrap_or(0.0)),
        ),
        ("verdicts".to_string(), statuses),
    ];
    let generation = &summary["generation"];
    if let (Some(n_tokens), Some(seconds)) = (
        generation["n_tokens"].as_u64(),
        generation["seconds"].as_f64(),
    ) {
        if n_tokens > 0 && seconds > 0.0 {
            rows.push((
                "generation".to_string(),
                format!(
                    "{n_tokens} tokens in {} ({:.1} tokens/s)",
                    format_duration(seconds),
                    n_tokens as f64 / seconds
                ),
            ));
        }
    }
    if let Some(scores) = results["pass_at_k"].as_object() {
        for (name, score) in scores {
            rows.push((
                name.clone(),
                format!("{:.2}%", 100.0 * score.as_f64().unwrap_or(0.0)),
            ));
        }
    }
    rows.extend(crate::select::table_rows(&summary["selection"]));
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}
