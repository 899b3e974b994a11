//! Benchmarks as data: reading HumanEval, MBPP and MBPP-sanitized files into
//! one [`Task`] shape.
//!
//! Every benchmark reduces to: a prompt, a function name, a reference
//! solution, and test code that is appended to a candidate program. A
//! HumanEval-style `test` defines `check(candidate)` and the program ends
//! with `check(<entry_point>)`; MBPP's tests are `assert` lines that call
//! the function by name, after their setup code. Any JSON Lines file with
//! `task_id`, `prompt`, `entry_point` and `test` fields reads as HumanEval;
//! an EvalPlus file (HumanEval+, MBPP+: `base_input`, `plus_input`, `atol`
//! and a reference solution) is tested differentially against the reference
//! (see [`crate::evalplus`]), with its inputs passed on as the file spells
//! them.
//!
//! The design decision a newcomer may question: MBPP's train, validation
//! and few-shot tasks live in the same file as its test split, so the split
//! (task ids 11..=510, per the upstream README) is applied here, and tasks
//! 2, 3 and 4 are kept aside as the paper's three prompt examples.
//!
//! ```
//! use codelm_eval::{Benchmark, Dataset};
//!
//! let line = concat!(
//!     r#"{"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f", "#,
//!     r#""canonical_solution": "    return 1\n", "test": "def check(c):\n    assert c() == 1\n"}"#,
//! );
//! let dataset = Dataset::from_bytes(Benchmark::HumanEval, "t.jsonl".as_ref(), line.as_bytes())?;
//! assert_eq!(dataset.tasks[0].program("    return 1\n").ends_with("check(f)\n"), true);
//! # Ok::<(), codelm_eval::Error>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::evalplus::Differential;
use crate::{Error, Result};

/// MBPP's test split, per the upstream README.
pub const MBPP_TEST_IDS: std::ops::RangeInclusive<u64> = 11..=510;

/// MBPP tasks used as the paper's three prompt examples.
pub const MBPP_SHOT_IDS: [u64; 3] = [2, 3, 4];

/// Which benchmark a file holds; decides the parser, the split and the
/// prompt formats that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benchmark {
    /// HumanEval (164 tasks) or any file in its format.
    HumanEval,
    /// MBPP, full version, test split (500 tasks).
    Mbpp,
    /// MBPP, sanitized version, test split (257 tasks).
    MbppSanitized,
}

impl Benchmark {
    /// The name users type: `humaneval`, `mbpp`, `mbpp-sanitized`.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::HumanEval => "humaneval",
            Benchmark::Mbpp => "mbpp",
            Benchmark::MbppSanitized => "mbpp-sanitized",
        }
    }

    /// Parses a name typed by a user.
    pub fn from_name(name: &str) -> Option<Benchmark> {
        [
            Benchmark::HumanEval,
            Benchmark::Mbpp,
            Benchmark::MbppSanitized,
        ]
        .into_iter()
        .find(|benchmark| benchmark.name() == name)
    }

    /// The file the benchmark ships as.
    pub fn file_name(self) -> &'static str {
        match self {
            Benchmark::HumanEval => "HumanEval.jsonl.gz",
            Benchmark::Mbpp => "mbpp.jsonl",
            Benchmark::MbppSanitized => "sanitized-mbpp.json",
        }
    }

    /// Whether this is one of the MBPP variants.
    pub fn is_mbpp(self) -> bool {
        matches!(self, Benchmark::Mbpp | Benchmark::MbppSanitized)
    }
}

/// One problem, in the shape every benchmark reduces to.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The benchmark's id, e.g. `HumanEval/0` or `11` for MBPP.
    pub task_id: String,
    /// HumanEval: the code to continue (signature and docstring). MBPP: the
    /// problem statement in English.
    pub prompt: String,
    /// The function under test.
    pub entry_point: String,
    /// A complete reference program, when the dataset has one.
    pub reference: Option<String>,
    /// Code run before the solution (MBPP-sanitized's imports).
    pub test_setup: String,
    /// Code run after the solution.
    pub test: String,
    /// Whether the program ends with `check(<entry_point>)`.
    pub calls_check: bool,
    /// MBPP's assert lines, shown in its prompts; empty for HumanEval.
    pub asserts: Vec<String>,
}

impl Task {
    /// The program that tests `solution`: setup, solution, tests, and the
    /// `check` call where the benchmark has one.
    pub fn program(&self, solution: &str) -> String {
        let mut program = String::new();
        if !self.test_setup.trim().is_empty() {
            program.push_str(&self.test_setup);
            program.push('\n');
        }
        program.push_str(solution);
        program.push_str("\n\n");
        program.push_str(&self.test);
        program.push('\n');
        if self.calls_check {
            program.push_str(&format!("check({})\n", self.entry_point));
        }
        program
    }
}

/// A benchmark's tasks plus what a report needs to identify the data.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What the file was read as.
    pub benchmark: Benchmark,
    /// Where it was read from.
    pub path: PathBuf,
    /// Lowercase hex sha256 of the file's bytes (before decompression).
    pub sha256: String,
    /// The tasks evaluated, in file order.
    pub tasks: Vec<Task>,
    /// MBPP's prompt examples (tasks 2, 3, 4); empty for HumanEval.
    pub shots: Vec<Task>,
}

impl Dataset {
    /// Reads `path` as `benchmark`; gzip files are recognised by content.
    pub fn load(benchmark: Benchmark, path: &Path) -> Result<Dataset> {
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        Dataset::from_bytes(benchmark, path, &bytes)
    }

    /// Parses file contents; `path` only labels errors and the report.
    pub fn from_bytes(benchmark: Benchmark, path: &Path, bytes: &[u8]) -> Result<Dataset> {
        let sha256 = hex_sha256(bytes);
        let text = decompress(path, bytes)?;
        let records = parse_records(path, &text)?;
        let mut tasks = Vec::new();
        let mut shots = Vec::new();
        for (line, source, record) in records {
            let location = Location { path, line };
            match benchmark {
                Benchmark::HumanEval => tasks.push(humaneval_task(&location, source, &record)?),
                Benchmark::Mbpp | Benchmark::MbppSanitized => {
                    let id = record
                        .get("task_id")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| location.missing("task_id"))?;
                    if MBPP_TEST_IDS.contains(&id) {
                        tasks.push(mbpp_task(benchmark, &location, &record, id)?);
                    } else if MBPP_SHOT_IDS.contains(&id) {
                        shots.push(mbpp_task(benchmark, &location, &record, id)?);
                    }
                }
            }
        }
        shots.sort_by_key(|task| task.task_id.parse::<u64>().unwrap_or(u64::MAX));
        if tasks.is_empty() {
            return Err(Error::EmptyDataset {
                path: path.to_path_buf(),
                benchmark: benchmark.name().to_string(),
            });
        }
        Ok(Dataset {
            benchmark,
            path: path.to_path_buf(),
            sha256,
            tasks,
            shots,
        })
    }

    /// The task with id `task_id`. MBPP ids also match as `Mbpp/<id>`, the
    /// EvalPlus spelling.
    pub fn task(&self, task_id: &str) -> Option<&Task> {
        let bare = task_id.strip_prefix("Mbpp/").unwrap_or(task_id);
        self.tasks.iter().find(|task| {
            task.task_id == task_id || (self.benchmark.is_mbpp() && task.task_id == bare)
        })
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Lowercase hex sha256 of a file, read in 1 MiB pieces.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n_read = file.read(&mut buffer).map_err(Error::io(path))?;
        if n_read == 0 {
            break;
        }
        hasher.update(&buffer[..n_read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

fn decompress(path: &Path, bytes: &[u8]) -> Result<String> {
    let mut text = String::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(Error::io(path))?;
    } else {
        text = String::from_utf8(bytes.to_vec()).map_err(|cause| {
            Error::io(path)(std::io::Error::new(std::io::ErrorKind::InvalidData, cause))
        })?;
    }
    Ok(text)
}

/// Records with their 1-based line and, for JSON Lines, the line's text
/// (line 0 and no text inside a JSON array document).
fn parse_records<'a>(path: &Path, text: &'a str) -> Result<Vec<(usize, Option<&'a str>, Value)>> {
    if text.trim_start().starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|cause| Error::Json {
            path: path.to_path_buf(),
            line: 0,
            cause,
        })?;
        let items = match value {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        return Ok(items.into_iter().map(|item| (0, None, item)).collect());
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(idx, line)| {
            serde_json::from_str(line)
                .map(|value| (idx + 1, Some(line), value))
                .map_err(|cause| Error::Json {
                    path: path.to_path_buf(),
                    line: idx + 1,
                    cause,
                })
        })
        .collect()
}

/// The test inputs of an EvalPlus record, as the file spells them.
#[derive(serde::Deserialize)]
struct RawInputs<'a> {
    #[serde(borrow, default)]
    base_input: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    plus_input: Option<&'a serde_json::value::RawValue>,
}

struct Location<'a> {
    path: &'a Path,
    line: usize,
}

impl Location<'_> {
    fn missing(&self, field: &'static str) -> Error {
        Error::MissingField {
            path: self.path.to_path_buf(),
            line: self.line,
            field,
        }
    }

    fn string(&self, record: &Value, field: &'static str) -> Result<String> {
        record
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.missing(field))
    }

    fn strings(&self, record: &Value, field: &'static str) -> Result<Vec<String>> {
        record
            .get(field)
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| self.missing(field))
    }
}

fn humaneval_task(location: &Location<'_>, source: Option<&str>, record: &Value) -> Result<Task> {
    let task_id = match record.get("task_id") {
        Some(Value::Number(number)) => number.to_string(),
        _ => location.string(record, "task_id")?,
    };
    let prompt = location.string(record, "prompt")?;
    let entry_point = location.string(record, "entry_point")?;
    // HumanEval's canonical solution is a body; MBPP+'s `code` a program.
    let reference = match (record.get("canonical_solution"), record.get("code")) {
        (Some(Value::String(body)), _) => Some(format!("{prompt}{body}")),
        (_, Some(Value::String(code))) => Some(code.clone()),
        _ => None,
    };
    let test = match record.get("base_input") {
        Some(Value::Array(_)) => {
            // The inputs as the file spells them (see `crate::evalplus`).
            let raw: Option<RawInputs> = source.and_then(|line| serde_json::from_str(line).ok());
            let inputs =
                |key: &str, raw: Option<&serde_json::value::RawValue>| match record.get(key) {
                    Some(value @ Value::Array(_)) => {
                        raw.map_or_else(|| value.to_string(), |raw| raw.get().to_string())
                    }
                    _ => "[]".to_string(),
                };
            let base_input = inputs("base_input", raw.as_ref().and_then(|r| r.base_input));
            let plus_input = inputs("plus_input", raw.as_ref().and_then(|r| r.plus_input));
            let reference = reference
                .as_deref()
                .ok_or_else(|| location.missing("canonical_solution"))?;
            Differential {
                task_id: &task_id,
                entry_point: &entry_point,
                reference,
                base_input: &base_input,
                plus_input: &plus_input,
                atol: record.get("atol").and_then(Value::as_f64).unwrap_or(0.0),
            }
            .test()
        }
        _ => location.string(record, "test")?,
    };
    Ok(Task {
        task_id,
        entry_point,
        reference,
        test_setup: String::new(),
        calls_check: test.contains("def check("),
        test,
        prompt,
        asserts: Vec::new(),
    })
}

fn mbpp_task(
    benchmark: Benchmark,
    location: &Location<'_>,
    record: &Value,
    id: u64,
) -> Result<Task> {
    // MBPP's `test_setup_code` builds test data with the solution's own
    // classes (task 367), so it runs after the solution; the sanitized
    // set's `test_imports` run before it, as its README prescribes.
    let asserts = location.strings(record, "test_list")?;
    let (prompt, test_setup, test) = if benchmark == Benchmark::Mbpp {
        let setup = location
            .string(record, "test_setup_code")?
            .replace("\r\n", "\n");
        let test = if setup.trim().is_empty() {
            asserts.join("\n")
        } else {
            format!("{setup}\n{}", asserts.join("\n"))
        };
        (location.string(record, "text")?, String::new(), test)
    } else {
        (
            location.string(record, "prompt")?,
            location.strings(record, "test_imports")?.join("\n"),
            asserts.join("\n"),
        )
    };
    let code = location.string(record, "code")?.replace("\r\n", "\n");
    let entry_point = mbpp_entry_point(&code, &asserts).ok_or_else(|| location.missing("code"))?;
    Ok(Task {
        task_id: id.to_string(),
        prompt,
        entry_point,
        reference: Some(code),
        test_setup,
        test,
        calls_check: false,
        asserts,
    })
}

/// The function the asserts call: the first `def name(` of the reference
/// whose name the first assert calls, else the reference's last function.
fn mbpp_entry_point(code: &str, asserts: &[String]) -> Option<String> {
    let defined: Vec<&str> = code
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("def "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::trim)
        .collect();
    let first_assert = asserts.first().map(String::as_str).unwrap_or_default();
    defined
        .iter()
        .find(|name| first_assert.contains(&format!("{name}(")))
        .or(defined.last())
        .map(|name| name.to_string())
}

/// Looks for `file_name` in `<dir>/../shared/data/mbpp/` for `start` and
/// each of its ancestors; returns the first hit or every directory tried.
pub fn find_mbpp_file(start: &Path, file_name: &str) -> std::result::Result<PathBuf, Vec<PathBuf>> {
    let mut searched = Vec::new();
    for dir in start.ancestors() {
        for candidate in [dir.join("shared/data/mbpp"), dir.join("data/mbpp")] {
            let path = candidate.join(file_name);
            if path.is_file() {
                return Ok(path);
            }
            searched.push(candidate);
        }
    }
    Err(searched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_point_is_the_function_the_asserts_call() {
        let code = "def helper(x):\n  return x\ndef main_fn(a):\n  return helper(a)\n";
        let asserts = vec!["assert main_fn(1) == 1".to_string()];
        assert_eq!(mbpp_entry_point(code, &asserts).as_deref(), Some("main_fn"));
        assert_eq!(mbpp_entry_point(code, &[]).as_deref(), Some("main_fn"));
        assert_eq!(mbpp_entry_point("x = 1", &asserts), None);
    }

    #[test]
    fn gzip_is_recognised_by_content() {
        use std::io::Write;
        let line = br#"{"task_id": "T/0", "prompt": "p", "entry_point": "f", "test": "t"}"#;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(line).unwrap();
        let bytes = encoder.finish().unwrap();
        let dataset = Dataset::from_bytes(Benchmark::HumanEval, Path::new("x"), &bytes).unwrap();
        assert_eq!(dataset.tasks[0].task_id, "T/0");
        assert!(!dataset.tasks[0].calls_check);
        assert_eq!(dataset.sha256, hex_sha256(&bytes));
    }

    #[test]
    fn raw_inputs_keep_the_file_spelling() {
        let line = r#"{"a": "x\"}, \"base_input\": 1", "base_input": [[123456789012345678901234567891, 1e-7, "]"]], "n" : 1.50}"#;
        let raw: RawInputs = serde_json::from_str(line).unwrap();
        assert_eq!(
            raw.base_input.map(|r| r.get()),
            Some(r#"[[123456789012345678901234567891, 1e-7, "]"]]"#)
        );
        assert!(raw.plus_input.is_none());
    }

    #[test]
    fn evalplus_inputs_reach_python_as_written() {
        // serde_json alone would turn the integer into 1.2345678901234568e29.
        let line = r#"{"task_id": "T/0", "prompt": "def f(n):\n", "entry_point": "f", "canonical_solution": "    return n\n", "base_input": [[123456789012345678901234567891]], "atol": 0}"#;
        let dataset =
            Dataset::from_bytes(Benchmark::HumanEval, Path::new("x"), line.as_bytes()).unwrap();
        assert!(dataset.tasks[0]
            .test
            .contains(r#"("[[123456789012345678901234567891]]", "[]")"#));
    }

    #[test]
    fn mbpp_lookup_walks_up() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("shared/data/mbpp");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("mbpp.jsonl"), "").unwrap();
        let deep = root.path().join("main/crates/x");
        assert_eq!(
            find_mbpp_file(&deep, "mbpp.jsonl"),
            Ok(data.join("mbpp.jsonl"))
        );
        let searched = find_mbpp_file(&deep, "other.json").unwrap_err();
        assert!(searched.contains(&data));
    }
}
