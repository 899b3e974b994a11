//! The run directory: an append-only record of a run that survives
//! `kill -9` at any point.
//!
//! ```text
//! <run>/config.json      what was asked for; compared on --resume
//! <run>/samples.jsonl    one line per generated sample, flushed per line
//! <run>/verdicts.jsonl   one line per executed sample, flushed per line
//! <run>/selections.jsonl one line per task selected by execution (`--select`)
//! <run>/timings.json     reference solutions' wall times (timeout scaling)
//! <run>/summary.json     written at the end
//! ```
//!
//! The design decision a newcomer may question: records are JSON Lines
//! appended with one `write` each, not a database. The only damage a crash
//! can do is a torn last line, which [`RunStore::open`] cuts off; lines are
//! keyed by `(task_id, sample_idx)` and the first copy wins, so nothing is
//! counted twice.
//!
//! ```
//! use codelm_eval::store::{RunStore, SampleRecord};
//!
//! let dir = tempfile::tempdir()?;
//! let config = serde_json::json!({"model": "m", "n": 1});
//! let mut store = RunStore::open(dir.path(), &config, false)?;
//! store.append_sample(&SampleRecord { task_id: "T/0".into(), ..SampleRecord::default() })?;
//! let resumed = RunStore::open(dir.path(), &config, true)?;
//! assert_eq!(resumed.samples().len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Config keys that may change between a run and its resumption. `limit`
/// may grow or shrink: samples are keyed by task, so a longer run reuses
/// the shorter one's.
const MAY_CHANGE_ON_RESUME: [&str; 4] = ["threads", "exec_jobs", "codelm_version", "limit"];

/// One generated sample, as stored in `samples.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The task.
    pub task_id: String,
    /// 0-based index among the task's samples.
    pub sample_idx: usize,
    /// The model's raw output.
    pub completion: String,
    /// The post-processed code that was executed (before the tests).
    pub solution: String,
    /// `stop`, `length`, or `external` for imported samples.
    pub finish_reason: String,
    /// Generated tokens.
    pub n_tokens: usize,
    /// Seconds spent generating this task's batch.
    pub generation_s: f64,
}

/// One verdict, as stored in `verdicts.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    /// The task.
    pub task_id: String,
    /// 0-based index among the task's samples.
    pub sample_idx: usize,
    /// `passed`, `failed`, `timed_out`, ...
    pub status: String,
    /// Whether every test passed.
    pub passed: bool,
    /// The failing assert line, when known.
    pub failing_test: Option<String>,
    /// The error line.
    pub error: Option<String>,
    /// Program wall time in seconds.
    pub wall_s: f64,
    /// The timeout the program ran under, in seconds.
    pub timeout_s: f64,
}

/// A graded program outside the samples: a greedy baseline or a repair.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GradedRecord {
    /// Whether it passed the benchmark's tests.
    pub passed: bool,
    /// The verdict's status.
    pub status: String,
}

/// One selector's pick over one budget, graded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PickRecord {
    /// Candidates it chose among (the first `budget` samples).
    pub budget: usize,
    /// `first`, `codet`, `cluster`, `repair`, `codet+repair`, ...
    pub strategy: String,
    /// The sample it chose.
    pub sample_idx: usize,
    /// Whether the graded program is a repair of that sample.
    pub repaired: bool,
    /// Why the evidence could not decide, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The benchmark's verdict on the chosen program.
    pub passed: bool,
}

/// A task's selection by execution, as stored in `selections.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectionRecord {
    /// The task.
    pub task_id: String,
    /// The greedy baseline (absent when the run itself is greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greedy: Option<GradedRecord>,
    /// Every selector's pick over every budget.
    pub picks: Vec<PickRecord>,
    /// Tests from the prompt's examples.
    pub n_example_tests: usize,
    /// Tests the model wrote.
    pub n_model_tests: usize,
    /// Tokens generated for tests and repairs (what selection costs).
    pub extra_tokens: usize,
    /// Tokens of the greedy baseline (what the report costs).
    #[serde(default)]
    pub greedy_tokens: usize,
    /// Programs run for the evidence (candidates and repairs).
    pub executions: usize,
    /// Wall time of the task's selection (generation and execution).
    pub seconds: f64,
    /// What went wrong along the way.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The cases, every candidate's scores and the repairs, for inspection.
    #[serde(default)]
    pub evidence: Value,
}

/// An open run directory.
pub struct RunStore {
    dir: PathBuf,
    samples_file: File,
    verdicts_file: File,
    selections_file: File,
    samples: Vec<SampleRecord>,
    verdicts: Vec<VerdictRecord>,
    selections: Vec<SelectionRecord>,
}

impl RunStore {
    /// Opens `dir`. A new run writes `config.json` and refuses a directory
    /// that already holds one; with `resume`, the stored config must equal
    /// `config` (except [`MAY_CHANGE_ON_RESUME`]) and the stored records are
    /// loaded, torn last lines cut off.
    pub fn open(dir: &Path, config: &Value, resume: bool) -> Result<RunStore> {
        let config_path = dir.join("config.json");
        if resume {
            let text = fs::read_to_string(&config_path).map_err(Error::io(&config_path))?;
            let stored: Value = serde_json::from_str(&text).map_err(|cause| Error::Json {
                path: config_path.clone(),
                line: 0,
                cause,
            })?;
            check_same(dir, &stored, config)?;
        } else {
            if config_path.exists() {
                return Err(Error::InvalidOption {
                    name: "--run-dir",
                    reason: format!("{} already holds a run; use --resume {0}", dir.display()),
                });
            }
            fs::create_dir_all(dir).map_err(Error::io(dir))?;
            write_json(&config_path, config)?;
        }
        let samples_path = dir.join("samples.jsonl");
        let verdicts_path = dir.join("verdicts.jsonl");
        let selections_path = dir.join("selections.jsonl");
        let samples = read_records(&samples_path)?;
        let verdicts = read_records(&verdicts_path)?;
        let selections = read_records(&selections_path)?;
        Ok(RunStore {
            dir: dir.to_path_buf(),
            samples_file: append(&samples_path)?,
            verdicts_file: append(&verdicts_path)?,
            selections_file: append(&selections_path)?,
            samples,
            verdicts,
            selections,
        })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Samples stored so far, first copy of each key, in file order.
    pub fn samples(&self) -> &[SampleRecord] {
        &self.samples
    }

    /// Verdicts stored so far, first copy of each key, in file order.
    pub fn verdicts(&self) -> &[VerdictRecord] {
        &self.verdicts
    }

    /// Appends a sample and flushes it to the file.
    pub fn append_sample(&mut self, record: &SampleRecord) -> Result<()> {
        let path = self.dir.join("samples.jsonl");
        append_line(&mut self.samples_file, &path, record)?;
        self.samples.push(record.clone());
        Ok(())
    }

    /// Appends a verdict and flushes it to the file.
    pub fn append_verdict(&mut self, record: &VerdictRecord) -> Result<()> {
        let path = self.dir.join("verdicts.jsonl");
        append_line(&mut self.verdicts_file, &path, record)?;
        self.verdicts.push(record.clone());
        Ok(())
    }

    /// Selections stored so far, first copy of each task, in file order.
    pub fn selections(&self) -> &[SelectionRecord] {
        &self.selections
    }

    /// Appends a selection and flushes it to the file.
    pub fn append_selection(&mut self, record: &SelectionRecord) -> Result<()> {
        let path = self.dir.join("selections.jsonl");
        append_line(&mut self.selections_file, &path, record)?;
        self.selections.push(record.clone());
        Ok(())
    }

    /// Reference timings stored by an earlier session (task id → seconds).
    pub fn timings(&self) -> BTreeMap<String, Option<f64>> {
        fs::read_to_string(self.dir.join("timings.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Stores reference timings.
    pub fn write_timings(&self, timings: &BTreeMap<String, Option<f64>>) -> Result<()> {
        let value = serde_json::to_value(timings).unwrap_or_default();
        write_json(&self.dir.join("timings.json"), &value)
    }

    /// Writes `summary.json`.
    pub fn write_summary(&self, summary: &Value) -> Result<()> {
        write_json(&self.dir.join("summary.json"), summary)
    }
}

fn check_same(dir: &Path, stored: &Value, requested: &Value) -> Result<()> {
    match first_difference("", stored, requested) {
        None => Ok(()),
        Some((field, old, new)) => {
            let show = |value: Option<&Value>| value.map_or("absent".to_string(), Value::to_string);
            Err(Error::ConfigMismatch {
                dir: dir.to_path_buf(),
                field,
                stored: show(old),
                requested: show(new),
            })
        }
    }
}

/// The first differing field as a dotted path, recursing into objects;
/// top-level keys in [`MAY_CHANGE_ON_RESUME`] are skipped.
fn first_difference<'a>(
    prefix: &str,
    stored: &'a Value,
    requested: &'a Value,
) -> Option<(String, Option<&'a Value>, Option<&'a Value>)> {
    let (Value::Object(old), Value::Object(new)) = (stored, requested) else {
        return (stored != requested).then(|| (prefix.to_string(), Some(stored), Some(requested)));
    };
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        if prefix.is_empty() && MAY_CHANGE_ON_RESUME.contains(&key.as_str()) {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (old.get(key), new.get(key)) {
            (Some(a), Some(b)) => {
                if let Some(difference) = first_difference(&path, a, b) {
                    return Some(difference);
                }
            }
            (a, b) => return Some((path, a, b)),
        }
    }
    None
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    // Write beside, then rename, so a crash never leaves half a file.
    let partial = path.with_extension("json.partial");
    fs::write(&partial, text).map_err(Error::io(&partial))?;
    fs::rename(&partial, path).map_err(Error::io(path))
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(Error::io(path))
}

fn append_line<T: Serialize>(file: &mut File, path: &Path, record: &T) -> Result<()> {
    let mut line = serde_json::to_string(record).unwrap_or_default();
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.flush())
        .map_err(Error::io(path))
}

/// Something keyed by `(task_id, sample_idx)`.
trait Keyed {
    fn key(&self) -> (String, usize);
}

impl Keyed for SampleRecord {
    fn key(&self) -> (String, usize) {
        (self.task_id.clone(), self.sample_idx)
    }
}

impl Keyed for SelectionRecord {
    fn key(&self) -> (String, usize) {
        (self.task_id.clone(), 0)
    }
}

impl Keyed for VerdictRecord {
    fn key(&self) -> (String, usize) {
        (self.task_id.clone(), self.sample_idx)
    }
}

/// Reads complete lines; cuts the file at the first torn or unparsable line
/// (only a crash mid-write makes one, and only at the end).
fn read_records<T: DeserializeOwned + Keyed>(path: &Path) -> Result<Vec<T>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(cause) if cause.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(cause) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                cause,
            })
        }
    };
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    let mut good_end = 0;
    while good_end < bytes.len() {
        let Some(newline) = bytes[good_end..].iter().position(|&byte| byte == b'\n') else {
            break;
        };
        let line = &bytes[good_end..good_end + newline];
        let Ok(record) = serde_json::from_slice::<T>(line) else {
            break;
        };
        if seen.insert(record.key()) {
            records.push(record);
        }
        good_end += newline + 1;
    }
    if good_end < bytes.len() {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(Error::io(path))?;
        file.set_len(good_end as u64).map_err(Error::io(path))?;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(task_id: &str, sample_idx: usize) -> SampleRecord {
        SampleRecord {
            task_id: task_id.into(),
            sample_idx,
            completion: "x".into(),
            ..SampleRecord::default()
        }
    }

    #[test]
    fn torn_last_line_is_cut_and_doubles_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"n": 2});
        let mut store = RunStore::open(dir.path(), &config, false).unwrap();
        store.append_sample(&sample("A", 0)).unwrap();
        store.append_sample(&sample("A", 1)).unwrap();
        store.append_sample(&sample("A", 0)).unwrap();
        drop(store);
        let path = dir.path().join("samples.jsonl");
        let mut bytes = fs::read(&path).unwrap();
        let full_len = bytes.len();
        bytes.extend_from_slice(br#"{"task_id": "B", "sample_i"#);
        fs::write(&path, &bytes).unwrap();

        let mut store = RunStore::open(dir.path(), &config, true).unwrap();
        assert_eq!(store.samples(), [sample("A", 0), sample("A", 1)]);
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, full_len);
        store.append_sample(&sample("B", 0)).unwrap();
        drop(store);
        let store = RunStore::open(dir.path(), &config, true).unwrap();
        assert_eq!(store.samples().len(), 3);
    }

    #[test]
    fn resume_checks_the_config() {
        let dir = tempfile::tempdir().unwrap();
        RunStore::open(
            dir.path(),
            &serde_json::json!({"n": 1, "threads": 2}),
            false,
        )
        .unwrap();
        let error = RunStore::open(dir.path(), &serde_json::json!({"n": 1}), false)
            .err()
            .unwrap();
        assert!(error.to_string().contains("already holds a run"), "{error}");
        assert!(
            RunStore::open(dir.path(), &serde_json::json!({"n": 1, "threads": 4}), true).is_ok()
        );
        let error = RunStore::open(dir.path(), &serde_json::json!({"n": 5}), true)
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot resume {}: `n` was 1 but is now 5; resume with the original options or start a new run",
                dir.path().display()
            )
        );
        let nested = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"sampling": {"seed": 1, "n": 1}});
        RunStore::open(nested.path(), &config, false).unwrap();
        let error = RunStore::open(
            nested.path(),
            &serde_json::json!({"sampling": {"seed": 2, "n": 1}}),
            true,
        )
        .err()
        .unwrap();
        assert!(
            error
                .to_string()
                .contains("`sampling.seed` was 1 but is now 2"),
            "{error}"
        );
        let error = RunStore::open(
            nested.path(),
            &serde_json::json!({"sampling": {"n": 1}}),
            true,
        )
        .err()
        .unwrap();
        assert!(
            error
                .to_string()
                .contains("`sampling.seed` was 1 but is now absent"),
            "{error}"
        );
    }
}
