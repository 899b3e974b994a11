//! End-to-end behaviour of `curate` on a small corpus built here: what each
//! stage removes, what the output holds, and resumption after interruptions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use codelm_curate::minhash::jaccard;
use codelm_curate::output::read_parquet_rows;
use codelm_curate::record::Stage;
use codelm_curate::{curate, Config, Error, NoProgress, Progress, Report};

const MIT: &str = "MIT License\n\nCopyright (c) 2024 Example\n\nPermission is hereby granted, free of charge, to any person \
obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without \
restriction ...\n\nThe above copyright notice and this permission notice shall be included in all\ncopies or substantial \
portions of the Software.\n";

/// A realistic module: the near-duplicate tests edit it.
const MODULE_A: &str = r#"import collections
import threading


class LRUCache:
    """A thread-safe least-recently-used cache with a fixed capacity."""

    def __init__(self, capacity):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._data = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key, default=None):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return default

    def put(self, key, value):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
            self._data[key] = value
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def delete(self, key):
        with self._lock:
            return self._data.pop(key, None) is not None

    def clear(self):
        with self._lock:
            self._data.clear()
            self.hits = 0
            self.misses = 0

    def stats(self):
        total = self.hits + self.misses
        ratio = self.hits / total if total else 0.0
        return {"hits": self.hits, "misses": self.misses, "ratio": ratio}

    def __len__(self):
        return len(self._data)

    def __contains__(self, key):
        with self._lock:
            return key in self._data
"#;

const MODULE_B: &str = r#"import argparse
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Resize images in a folder.")
    parser.add_argument("folder", help="folder with the images")
    parser.add_argument("--width", type=int, default=800, help="target width")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    parser.add_argument("--dry-run", action="store_true", help="only print what would change")
    return parser.parse_args(argv)


def plan(names, width):
    for name in sorted(names):
        if name.lower().endswith((".jpg", ".jpeg", ".png")):
            yield name, width


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for name, width in plan(["a.jpg", "b.png", "notes.txt"], args.width):
        print(f"{name} -> {width}px at quality {args.quality}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
"#;

const SETTINGS: &str = r#""""Deployment settings."""
ADMIN_EMAIL = "ops-team@acme-corp.com"
DB_PASSWORD = "s3cr3t-Pa55w0rd"
AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
UPSTREAM = "93.184.216.34"
LOCAL = "127.0.0.1"


def connect():
    return (ADMIN_EMAIL, DB_PASSWORD, AWS_ACCESS_KEY_ID, UPSTREAM, LOCAL)
"#;

const SETTINGS_REDACTED: &str = r#""""Deployment settings."""
ADMIN_EMAIL = "<EMAIL>"
DB_PASSWORD = "<PASSWORD>"
AWS_ACCESS_KEY_ID = "<KEY>"
UPSTREAM = "<IP_ADDRESS>"
LOCAL = "127.0.0.1"


def connect():
    return (ADMIN_EMAIL, DB_PASSWORD, AWS_ACCESS_KEY_ID, UPSTREAM, LOCAL)
"#;

/// HumanEval/0's prompt, re-indented and re-wrapped, as someone might paste it.
const CHEAT: &str = r#"from typing import List

def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """Check if in given list of numbers, are any two numbers closer to each other
    than given threshold."""
    for i, a in enumerate(numbers):
        for b in numbers[i + 1:]:
            if abs(a - b) < threshold:
                return True
    return False
"#;

const MBPP_COPY: &str = r#"def similar(a, b):
    """Write a function to find the similar elements from the given two tuple lists."""
    return tuple(sorted(set(a) & set(b)))
"#;

fn fork_of_a() -> String {
    MODULE_A
        .replace("def delete(self, key):", "def remove(self, key):")
        .replace("capacity must be positive", "capacity must be > 0")
}

fn half_a_half_b() -> String {
    let a: Vec<&str> = MODULE_A.lines().collect();
    let b: Vec<&str> = MODULE_B.lines().collect();
    let mut s = a[..22].join("\n");
    s.push('\n');
    s.push_str(&b[4..].join("\n"));
    s.push('\n');
    s
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// The corpus; returns its root.
fn corpus(dir: &Path) -> PathBuf {
    let root = dir.join("corpus");
    write(&root, "repo_mit/LICENSE", MIT.as_bytes());
    write(&root, "repo_mit/.gitignore", b"ignored.py\n");
    write(&root, "repo_mit/ignored.py", MODULE_B.as_bytes());
    write(&root, "repo_mit/core.py", MODULE_A.as_bytes());
    write(
        &root,
        "repo_mit/core_copy.py",
        MODULE_A.replace("    ", "\t").as_bytes(),
    );
    write(&root, "repo_mit/core_fork.py", fork_of_a().as_bytes());
    write(&root, "repo_mit/other.py", MODULE_B.as_bytes());
    write(&root, "repo_mit/half.py", half_a_half_b().as_bytes());
    write(&root, "repo_mit/settings.py", SETTINGS.as_bytes());
    write(
        &root,
        "repo_mit/gpl_file.py",
        format!("# SPDX-License-Identifier: GPL-3.0-only\n{MODULE_B}x = 1\n").as_bytes(),
    );
    write(&root, "repo_mit/cheat.py", CHEAT.as_bytes());
    write(&root, "repo_mit/mbpp_copy.py", MBPP_COPY.as_bytes());
    write(&root, "repo_mit/gen_pb2.py", b"# generated\nX = 1\n");
    write(
        &root,
        "repo_mit/node_modules/x/index.js",
        b"module.exports = 1;\n",
    );
    write(
        &root,
        "repo_mit/minified.js",
        format!("var a={};\n", "1,".repeat(3000)).as_bytes(),
    );
    write(
        &root,
        "repo_mit/autogen.py",
        b"# Code generated by protoc-gen-py. DO NOT EDIT.\nX = 1\nY = 2\n",
    );
    write(&root, "repo_mit/data.bin", &[0u8, 1, 2, 3]);
    write(&root, "repo_mit/noext_binary", b"\x7fELF\x00\x00\x01");
    write(&root, "repo_mit/latin1.py", b"# caf\xe9\nx = 1\n");
    write(
        &root,
        "repo_mit/script",
        b"#!/usr/bin/env python3\nimport sys\nprint(sys.argv[1:])\n",
    );
    write(&root, "repo_mit/notes.txt", b"remember the milk\n");
    write(
        &root,
        "repo_nolicense/lib.rs",
        b"pub fn double(x: u32) -> u32 {\n    x * 2\n}\n",
    );
    write(
        &root,
        "repo_apache/Cargo.toml",
        b"[package]\nname = \"demo\"\nversion = \"0.1.0\"\nlicense = \"Apache-2.0\"\n",
    );
    write(&root, "repo_apache/src/main.rs", b"fn main() {\n    let xs: Vec<u32> = (1..=10).collect();\n    println!(\"{}\", xs.iter().sum::<u32>());\n}\n");
    root
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bench")
        .join(name)
}

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.input.files_per_shard = 4;
    cfg.output.jsonl = true;
    cfg.resources.threads = 2;
    cfg.decontamination.benchmarks = vec![
        fixture("humaneval_sample.jsonl"),
        fixture("mbpp_sample.jsonl"),
    ];
    cfg
}

fn removed(report: &Report, stage: Stage) -> BTreeMap<String, (u64, Vec<String>)> {
    let st = report.stages.iter().find(|s| s.stage == stage).unwrap();
    st.reasons
        .iter()
        .map(|(r, t)| {
            let mut paths: Vec<String> = t.examples.iter().map(|e| strip_root(&e.path)).collect();
            paths.sort();
            assert_eq!(t.examples.len() as u64, t.n.min(3), "examples of {r}");
            (r.clone(), (t.n, paths))
        })
        .collect()
}

fn strip_root(p: &str) -> String {
    p.split_once('/')
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| p.to_string())
}

fn check_removed(report: &Report, stage: Stage, expected: &[(&str, &[&str])]) {
    let expected: BTreeMap<String, (u64, Vec<String>)> = expected
        .iter()
        .map(|(r, ps)| {
            (
                r.to_string(),
                (ps.len() as u64, ps.iter().map(|p| p.to_string()).collect()),
            )
        })
        .collect();
    assert_eq!(removed(report, stage), expected, "stage {stage:?}");
}

/// Every output row's (path without the corpus root, content), from the JSONL shards.
fn output_rows(out: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut rows = BTreeMap::new();
    let mut parquet_paths = BTreeSet::new();
    for e in std::fs::read_dir(out.join("data")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".jsonl") {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let key = strip_root(v["path"].as_str().unwrap());
                assert!(rows.insert(key, v).is_none(), "a record written twice");
            }
        } else if name.ends_with(".parquet") {
            for (path, _) in read_parquet_rows(&p).unwrap() {
                assert!(parquet_paths.insert(strip_root(&path)));
            }
        }
    }
    assert_eq!(
        parquet_paths,
        rows.keys().cloned().collect(),
        "Parquet and JSONL hold the same rows"
    );
    rows
}

#[test]
fn premises_of_the_corpus() {
    let fork = jaccard(MODULE_A, &fork_of_a(), 5);
    let half = jaccard(MODULE_A, &half_a_half_b(), 5);
    assert!(fork > 0.85, "fork Jaccard {fork}"); // LSH candidate probability > 0.999 at 25x10.
    assert!(half < 0.5, "half Jaccard {half}");
}

#[test]
fn each_stage_removes_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let root = corpus(dir.path());
    let out = dir.path().join("out");
    let report = curate(&[root], &out, &config(), &NoProgress).unwrap();

    check_removed(
        &report,
        Stage::Input,
        &[
            ("binary", &["repo_mit/data.bin", "repo_mit/noext_binary"]),
            ("generated", &["repo_mit/gen_pb2.py"]),
            ("not_utf8", &["repo_mit/latin1.py"]),
            ("vendored", &["repo_mit/node_modules/x/index.js"]),
        ],
    );
    check_removed(
        &report,
        Stage::Language,
        &[(
            "unknown_language",
            &["repo_mit/LICENSE", "repo_mit/notes.txt"],
        )],
    );
    check_removed(
        &report,
        Stage::License,
        &[
            ("no_license", &["repo_nolicense/lib.rs"]),
            ("not_allowed:GPL-3.0-only", &["repo_mit/gpl_file.py"]),
        ],
    );
    check_removed(&report, Stage::Metadata, &[]);
    check_removed(
        &report,
        Stage::Quality,
        &[
            ("autogenerated", &["repo_mit/autogen.py"]),
            ("max_line_length", &["repo_mit/minified.js"]),
        ],
    );
    check_removed(
        &report,
        Stage::Decontamination,
        &[(
            "benchmark_ngram",
            &["repo_mit/cheat.py", "repo_mit/mbpp_copy.py"],
        )],
    );
    check_removed(
        &report,
        Stage::ExactDedup,
        &[("duplicate_content", &["repo_mit/core_copy.py"])],
    );
    check_removed(
        &report,
        Stage::NearDedup,
        &[("near_duplicate", &["repo_mit/core_fork.py"])],
    );
    let near = &report
        .stages
        .iter()
        .find(|s| s.stage == Stage::NearDedup)
        .unwrap()
        .reasons["near_duplicate"];
    assert!(
        near.examples[0].detail.ends_with("repo_mit/core.py"),
        "{:?}",
        near.examples
    );
    let decontam = &report
        .stages
        .iter()
        .find(|s| s.stage == Stage::Decontamination)
        .unwrap()
        .reasons["benchmark_ngram"];
    assert!(
        decontam
            .examples
            .iter()
            .any(|e| e.detail.starts_with("humaneval_sample.jsonl: \"")),
        "{:?}",
        decontam.examples
    );

    let rows = output_rows(&out);
    let kept: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(
        kept,
        [
            "repo_apache/Cargo.toml",
            "repo_apache/src/main.rs",
            "repo_mit/core.py",
            "repo_mit/half.py",
            "repo_mit/other.py",
            "repo_mit/script",
            "repo_mit/settings.py",
        ]
    );
    assert_eq!(report.n_out, 7);
    assert_eq!(
        report.n_in, 22,
        "every file but the gitignored and hidden ones is counted"
    );

    let settings = &rows["repo_mit/settings.py"];
    assert_eq!(settings["content"], SETTINGS_REDACTED);
    assert_eq!(settings["license"], "MIT");
    assert_eq!(settings["license_source"], "license_file");
    assert_eq!(settings["language"], "Python");
    assert_eq!(
        (
            &settings["pii_emails"],
            &settings["pii_ip_addresses"],
            &settings["pii_keys"],
            &settings["pii_passwords"]
        ),
        (&1.into(), &1.into(), &1.into(), &1.into())
    );
    assert!(settings["flags"].as_str().unwrap().contains("pii_redacted"));
    assert_eq!(rows["repo_apache/src/main.rs"]["license"], "Apache-2.0");
    assert_eq!(rows["repo_apache/src/main.rs"]["license_source"], "package");
    assert_eq!(rows["repo_mit/script"]["language"], "Python");
    assert_eq!(rows["repo_apache/Cargo.toml"]["language"], "TOML");
    assert_eq!(report.pii.counts.emails, 1);
    assert_eq!(report.pii.n_files, 1);
    assert_eq!(report.languages["Python"].0, 5);

    // The report on disk is the one returned; the work directory is gone.
    let on_disk: Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(on_disk, report);
    assert!(!out.join("work").exists());
    assert!(report.table().contains("near_dedup"));
}

#[test]
fn skipped_stages_remove_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = corpus(dir.path());
    let mut cfg = config();
    cfg.near_dedup.enabled = false;
    cfg.exact_dedup.enabled = false;
    cfg.pii.enabled = false;
    cfg.decontamination.enabled = false;
    let out = dir.path().join("out");
    let report = curate(&[root], &out, &cfg, &NoProgress).unwrap();
    for stage in [Stage::ExactDedup, Stage::NearDedup, Stage::Decontamination] {
        let st = report.stages.iter().find(|s| s.stage == stage).unwrap();
        assert!(!st.enabled && st.n_removed == 0, "{stage:?}");
    }
    let rows = output_rows(&out);
    assert_eq!(rows["repo_mit/settings.py"]["content"], SETTINGS);
    assert!(rows.contains_key("repo_mit/core_copy.py") && rows.contains_key("repo_mit/cheat.py"));
    assert_eq!(report.n_out, 11);
}

/// Panics (like a kill) when its phase has advanced `after` times.
struct Interrupt {
    phase: &'static str,
    after: u64,
    current: Mutex<String>,
    count: AtomicU64,
}

impl Interrupt {
    fn new(phase: &'static str, after: u64) -> Interrupt {
        Interrupt {
            phase,
            after,
            current: Mutex::new(String::new()),
            count: AtomicU64::new(0),
        }
    }
}

impl Progress for Interrupt {
    fn start(&self, phase: &str, _: u64) {
        *self.current.lock().unwrap() = phase.to_string();
    }
    fn advance(&self, _: u64) {
        if *self.current.lock().unwrap() == self.phase
            && self.count.fetch_add(1, Ordering::SeqCst) + 1 >= self.after
        {
            panic!("simulated interruption");
        }
    }
    fn finish(&self) {}
}

fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    out
}

#[test]
fn resume_after_interruptions_gives_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = corpus(dir.path());
    let cfg = config();
    let reference = curate(
        std::slice::from_ref(&root),
        &dir.path().join("a"),
        &cfg,
        &NoProgress,
    )
    .unwrap();
    assert!(
        reference.n_shards >= 4,
        "several shards: {}",
        reference.n_shards
    );

    let out = dir.path().join("b");
    for interrupt in [Interrupt::new("filtering", 9), Interrupt::new("writing", 2)] {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            curate(std::slice::from_ref(&root), &out, &cfg, &interrupt)
        }));
        assert!(
            result.is_err(),
            "the {} interruption happened",
            interrupt.phase
        );
    }
    assert!(!out.join("report.json").exists());
    let resumed = curate(std::slice::from_ref(&root), &out, &cfg, &NoProgress).unwrap();
    assert_eq!(
        resumed.run.resumed_shards.0, reference.n_shards,
        "every filtered shard was kept"
    );
    assert!(
        resumed.run.resumed_shards.1 >= 1,
        "some written shards were kept"
    );
    assert_eq!(resumed.without_run_info(), reference.without_run_info());
    let (a, b) = (
        files_under(&dir.path().join("a/data")),
        files_under(&out.join("data")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs after resumption");
    }

    // A finished run is not redone, and another config is refused.
    let again = curate(std::slice::from_ref(&root), &out, &cfg, &NoProgress).unwrap();
    assert_eq!(again.without_run_info(), reference.without_run_info());
    let mut other = cfg.clone();
    other.quality.max_line_length = 80;
    let err = curate(&[root], &out, &other, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::ResumeMismatch { .. }), "{err}");
}

fn stack_rows() -> Vec<String> {
    let row = |content: &str, path: &str, licenses: &[&str], stars: f64| {
        serde_json::json!({
            "content": content,
            "max_stars_repo_path": path,
            "max_stars_repo_name": "org/repo",
            "max_stars_repo_licenses": licenses,
            "max_stars_count": stars,
            "lang": "Python",
        })
        .to_string()
    };
    vec![
        row(MODULE_A, "a.py", &["MIT"], 50.0),
        row(MODULE_B, "b.py", &["GPL-3.0-only"], 50.0),
        row(
            CHEAT.replace("has_close", "x").as_str(),
            "c.py",
            &["MIT"],
            2.0,
        ),
        "{not json".to_string(),
        serde_json::json!({"path": "d.py", "license": "MIT"}).to_string(),
        row(SETTINGS, "e.py", &["MIT", "Apache-2.0"], 10.0),
    ]
}

#[test]
fn dataset_inputs_gz_zst_and_parquet() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let text = stack_rows().join("\n") + "\n";
    let gz = dir.path().join("stack.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    // Two zstd frames in one file, as parallel compressors write them.
    let zst = dir.path().join("stack.jsonl.zst");
    let (first, second) = text.split_at(text.find("{not json").unwrap());
    let mut bytes = ruzstd::encoding::compress_to_vec(
        first.as_bytes(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    bytes.extend(ruzstd::encoding::compress_to_vec(
        second.as_bytes(),
        ruzstd::encoding::CompressionLevel::Fastest,
    ));
    std::fs::write(&zst, bytes).unwrap();
    let mut cfg = config();
    cfg.metadata.min_stars = 10;
    let out = dir.path().join("out");
    let report = curate(&[gz, zst], &out, &cfg, &NoProgress).unwrap();
    let count = |stage: Stage, reason: &str| {
        report
            .stages
            .iter()
            .find(|s| s.stage == stage)
            .unwrap()
            .reasons
            .get(reason)
            .map_or(0, |t| t.n)
    };
    assert_eq!(count(Stage::Input, "invalid_json"), 2);
    assert_eq!(count(Stage::Input, "missing_content"), 2);
    assert_eq!(count(Stage::License, "not_allowed:GPL-3.0-only"), 2);
    assert_eq!(count(Stage::Metadata, "stars_below_min"), 2);
    assert_eq!(
        count(Stage::ExactDedup, "duplicate_content"),
        2,
        "the .zst rows repeat the .gz rows"
    );
    let rows = output_rows(&out);
    assert_eq!(
        rows.keys().cloned().collect::<Vec<_>>(),
        ["a.py".to_string(), "e.py".to_string()]
    );
    assert_eq!(rows["e.py"]["license"], "Apache-2.0 AND MIT");
    assert_eq!(rows["e.py"]["license_source"], "input");
    assert_eq!(rows["a.py"]["repo_name"], "org/repo");
    assert_eq!(rows["a.py"]["stars"], 50);

    // The Parquet output is itself a valid input (content, path, repo_name, license, stars).
    let parts: Vec<PathBuf> = std::fs::read_dir(out.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    let mut cfg2 = config();
    cfg2.metadata.min_stars = 20;
    let report2 = curate(&parts, &dir.path().join("out2"), &cfg2, &NoProgress).unwrap();
    assert_eq!(report2.n_in, 2);
    assert_eq!(report2.n_out, 1, "e.py has 10 stars < 20");
    let rows2 = output_rows(&dir.path().join("out2"));
    assert_eq!(rows2["a.py"]["license"], "MIT");
}
