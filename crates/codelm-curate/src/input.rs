//! Inputs: planning shards, and reading them as a stream of records.
//!
//! A directory is walked once, sorted by name (so shard contents never depend
//! on the file system's order), honouring `.gitignore` and skipping hidden,
//! vendored, generated and binary-extension paths; its files are cut into
//! shards of `input.files_per_shard` and the file lists are written to disk, so
//! planning holds no per-file state in memory. While walking, each directory's
//! license is resolved once (its package manifest, its `LICENSE` files, a
//! wheel's `*.dist-info` for the packages next to it, or its parent's), and
//! recorded with each file. A JSONL (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`) or
//! Parquet file is one shard; its rows use The Stack's field names
//! (`content`, `max_stars_repo_path`, `max_stars_repo_licenses`, ...) or the
//! plain ones (`text`, `path`, `repo_name`, `license`, `stars`).
//!
//! Readers never hold more than one file (or row) beyond `input.max_file_bytes`
//! guard: larger files are skipped without being read, and longer JSONL lines
//! are skipped while streaming past them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::license::{self, LicenseSource};
use crate::record::{Item, Record, Skipped, Stage};
use crate::report::ReasonTally;

/// What a shard reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShardSource {
    /// A list of files written by the planner (one JSON object per line).
    Files {
        /// The list file.
        list: PathBuf,
    },
    /// A JSON Lines file, optionally gzip- or zstd-compressed.
    Jsonl {
        /// The file.
        path: PathBuf,
    },
    /// A Parquet file.
    Parquet {
        /// The file.
        path: PathBuf,
    },
}

/// One shard of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// What to read.
    pub source: ShardSource,
    /// Bytes on disk (files' sizes, or the dataset file's size), for progress.
    pub bytes: u64,
}

/// The shards of a run, and what planning itself removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Shards in order; a shard's index is its id.
    pub shards: Vec<ShardPlan>,
    /// Paths removed while walking (vendored, binary extension, too large...), by stage and reason.
    pub skipped: BTreeMap<Stage, BTreeMap<String, ReasonTally>>,
}

/// One file of a directory shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute (or as given) path to read.
    #[serde(rename = "p")]
    pub abs: PathBuf,
    /// Path shown in records: relative to the input's parent directory.
    #[serde(rename = "d")]
    pub display: String,
    /// Size in bytes.
    #[serde(rename = "s")]
    pub size: u64,
    /// License resolved for the file's directory.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Where the license came from.
    #[serde(rename = "ls", default, skip_serializing_if = "Option::is_none")]
    pub license_source: Option<LicenseSource>,
    /// Repository or package.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
}

const VENDORED_DIRS: &[&str] = &[
    "node_modules",
    "bower_components",
    "jspm_packages",
    "vendor",
    "vendors",
    "vendored",
    "_vendor",
    "third_party",
    "third-party",
    "thirdparty",
    "3rdparty",
    "__pycache__",
    "Pods",
    "Carthage",
];

const GENERATED_SUFFIXES: &[&str] = &[
    ".min.js",
    ".min.css",
    "-min.js",
    ".bundle.js",
    "_pb2.py",
    "_pb2_grpc.py",
    "_pb2.pyi",
    ".pb.go",
    ".pb.cc",
    ".pb.h",
    ".g.dart",
    ".freezed.dart",
    ".designer.cs",
    ".lock",
];

const GENERATED_NAMES: &[&str] = &[
    "package-lock.json",
    "pnpm-lock.yaml",
    "go.sum",
    "npm-shrinkwrap.json",
];

const BINARY_EXTENSIONS: &[&str] = &[
    "png",
    "jpg",
    "jpeg",
    "gif",
    "bmp",
    "ico",
    "icns",
    "webp",
    "tif",
    "tiff",
    "psd",
    "pdf",
    "zip",
    "gz",
    "tgz",
    "bz2",
    "xz",
    "zst",
    "7z",
    "tar",
    "rar",
    "jar",
    "war",
    "whl",
    "egg",
    "so",
    "dylib",
    "dll",
    "exe",
    "a",
    "o",
    "obj",
    "lib",
    "pyc",
    "pyo",
    "pyd",
    "class",
    "wasm",
    "bin",
    "dat",
    "db",
    "sqlite",
    "sqlite3",
    "mp3",
    "mp4",
    "wav",
    "ogg",
    "flac",
    "avi",
    "mov",
    "mkv",
    "ttf",
    "otf",
    "woff",
    "woff2",
    "eot",
    "npy",
    "npz",
    "pkl",
    "pickle",
    "h5",
    "hdf5",
    "parquet",
    "arrow",
    "onnx",
    "pt",
    "pth",
    "ckpt",
    "safetensors",
    "gguf",
    "mo",
    "node",
    "deb",
    "rpm",
    "iso",
];

/// Why a path is skipped before reading, if it is: `vendored`, `generated` or `binary`.
pub fn path_skip_reason(rel_path: &str, skip_vendored: bool) -> Option<&'static str> {
    let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
    let lower = name.to_ascii_lowercase();
    if let Some((_, ext)) = lower.rsplit_once('.') {
        if BINARY_EXTENSIONS.contains(&ext) {
            return Some("binary");
        }
    }
    if skip_vendored {
        let mut components = rel_path.split('/');
        components.next_back();
        if components.any(|c| VENDORED_DIRS.contains(&c)) {
            return Some("vendored");
        }
        if GENERATED_NAMES.contains(&lower.as_str())
            || GENERATED_SUFFIXES.iter().any(|s| lower.ends_with(s))
        {
            return Some("generated");
        }
    }
    None
}

/// Per-directory license context while walking.
#[derive(Debug, Clone)]
struct DirContext {
    path: PathBuf,
    license: Option<(String, LicenseSource)>,
    repo: Option<String>,
    /// For a directory holding `*.dist-info`: top-level name → (license, distribution).
    packages: Option<HashMap<String, (Option<String>, String)>>,
}

fn dist_name(dir_name: &str) -> String {
    let stem = dir_name
        .trim_end_matches(".dist-info")
        .trim_end_matches(".egg-info");
    // `name-1.2.3` → `name`.
    match stem.find('-') {
        Some(i) => stem[..i].to_string(),
        None => stem.to_string(),
    }
}

fn packages_of(dir: &Path) -> Option<HashMap<String, (Option<String>, String)>> {
    let mut infos: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".dist-info") || n.ends_with(".egg-info"))
        })
        .collect();
    if infos.is_empty() {
        return None;
    }
    infos.sort();
    let mut map = HashMap::new();
    for info in infos {
        let info_name = info
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let dist = dist_name(&info_name);
        let lic = license::from_dist_info(&info);
        let mut names: Vec<String> = Vec::new();
        if let Ok(record) = std::fs::read_to_string(info.join("RECORD")) {
            for line in record.lines() {
                let path = line.split(',').next().unwrap_or("");
                let first = path.split('/').next().unwrap_or("");
                if first.is_empty()
                    || first.starts_with("..")
                    || first.ends_with(".dist-info")
                    || first == "__pycache__"
                {
                    continue;
                }
                names.push(first.to_string());
            }
        }
        if let Ok(top) = std::fs::read_to_string(info.join("top_level.txt")) {
            for t in top.lines().map(str::trim).filter(|t| !t.is_empty()) {
                names.push(t.to_string());
                names.push(format!("{t}.py"));
            }
        }
        for n in names {
            map.entry(n).or_insert_with(|| (lic.clone(), dist.clone()));
        }
    }
    Some(map)
}

fn resolve_dir(path: &Path, parent: Option<&DirContext>, resolve_licenses: bool) -> DirContext {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mapped = parent
        .and_then(|p| p.packages.as_ref())
        .and_then(|m| m.get(&name).cloned());
    let boundary = parent.is_some_and(|p| p.packages.is_some());
    let own = if resolve_licenses {
        license::from_manifest(path)
            .map(|l| (l, LicenseSource::Package))
            .or_else(|| license::from_license_files(path).map(|l| (l, LicenseSource::LicenseFile)))
    } else {
        None
    };
    let is_project = own.is_some()
        || path.join(".git").exists()
        || path.join("Cargo.toml").exists()
        || path.join("package.json").exists()
        || path.join("pyproject.toml").exists()
        || path.join("setup.py").exists();
    let (license, repo) = if let Some(own) = own {
        (Some(own), Some(name.clone()))
    } else if let Some((lic, dist)) = mapped {
        (lic.map(|l| (l, LicenseSource::Package)), Some(dist))
    } else if boundary {
        // Next to `*.dist-info` but in no RECORD: not covered by the enclosing tree's license.
        (None, if is_project { Some(name.clone()) } else { None })
    } else {
        let inherited = parent.and_then(|p| p.license.clone());
        let repo = if is_project {
            Some(name.clone())
        } else {
            parent.and_then(|p| p.repo.clone())
        };
        (inherited, repo)
    };
    DirContext {
        path: path.to_path_buf(),
        license,
        repo,
        packages: if resolve_licenses {
            packages_of(path)
        } else {
            None
        },
    }
}

struct ShardListWriter {
    dir: PathBuf,
    files_per_shard: usize,
    current: Option<(BufWriter<File>, PathBuf, usize, u64)>,
    done: Vec<ShardPlan>,
    first_index: usize,
}

impl ShardListWriter {
    fn push(&mut self, entry: &FileEntry) -> Result<()> {
        if self.current.is_none() {
            let idx = self.first_index + self.done.len();
            let path = self.dir.join(format!("files-{idx:06}.jsonl"));
            let f = File::create(&path).map_err(Error::io(&path))?;
            self.current = Some((BufWriter::new(f), path, 0, 0));
        }
        let (w, path, n, bytes) = self.current.as_mut().expect("open shard list");
        let line = serde_json::to_string(entry).expect("entry serializes");
        writeln!(w, "{line}").map_err(Error::io(path.as_path()))?;
        *n += 1;
        *bytes += entry.size;
        if *n >= self.files_per_shard {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((mut w, path, _, bytes)) = self.current.take() {
            w.flush().map_err(Error::io(&path))?;
            self.done.push(ShardPlan {
                source: ShardSource::Files { list: path },
                bytes,
            });
        }
        Ok(())
    }
}

fn is_jsonl(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        ".jsonl",
        ".jsonl.gz",
        ".jsonl.zst",
        ".ndjson",
        ".ndjson.gz",
        ".ndjson.zst",
    ]
    .iter()
    .any(|s| n.ends_with(s))
}

/// Plans the shards of `inputs`, writing directory file lists into `dir`.
pub fn plan(inputs: &[PathBuf], cfg: &Config, dir: &Path) -> Result<Plan> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut plan = Plan::default();
    let mut loose_files: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(Error::io(input))?;
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.is_dir() {
            plan_directory(input, cfg, dir, &mut plan)?;
        } else if is_jsonl(&name) {
            plan.shards.push(ShardPlan {
                source: ShardSource::Jsonl {
                    path: input.clone(),
                },
                bytes: meta.len(),
            });
        } else if name.to_ascii_lowercase().ends_with(".parquet") {
            plan.shards.push(ShardPlan {
                source: ShardSource::Parquet {
                    path: input.clone(),
                },
                bytes: meta.len(),
            });
        } else if meta.is_file() {
            loose_files.push(input.clone());
        } else {
            return Err(Error::UnsupportedInput {
                path: input.clone(),
            });
        }
    }
    if !loose_files.is_empty() {
        let mut lists = ShardListWriter {
            dir: dir.to_path_buf(),
            files_per_shard: cfg.input.files_per_shard,
            current: None,
            done: Vec::new(),
            first_index: plan.shards.len(),
        };
        for f in loose_files {
            let size = std::fs::metadata(&f).map_err(Error::io(&f))?.len();
            let parent = f.parent().unwrap_or(Path::new("."));
            let ctx = resolve_dir(parent, None, cfg.license.enabled);
            lists.push(&FileEntry {
                display: f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                abs: f.clone(),
                size,
                license: ctx.license.as_ref().map(|l| l.0.clone()),
                license_source: ctx.license.as_ref().map(|l| l.1),
                repo: ctx.repo.clone(),
            })?;
        }
        lists.close()?;
        plan.shards.extend(lists.done);
    }
    Ok(plan)
}

fn plan_directory(root: &Path, cfg: &Config, dir: &Path, plan: &mut Plan) -> Result<()> {
    let root_name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| root.display().to_string());
    let honor = cfg.input.honor_gitignore;
    let walker = ignore::WalkBuilder::new(root)
        .hidden(cfg.input.skip_hidden)
        .git_ignore(honor)
        .git_exclude(honor)
        .git_global(false)
        .ignore(false)
        .parents(honor)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut lists = ShardListWriter {
        dir: dir.to_path_buf(),
        files_per_shard: cfg.input.files_per_shard,
        current: None,
        done: Vec::new(),
        first_index: plan.shards.len(),
    };
    let mut stack: Vec<DirContext> = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = match &e {
                    ignore::Error::WithPath { path, .. } => path.display().to_string(),
                    _ => root.display().to_string(),
                };
                tally(plan, Stage::Input, "unreadable", 0, &path);
                continue;
            }
        };
        let path = entry.path();
        let Some(ft) = entry.file_type() else {
            continue;
        };
        while stack
            .last()
            .is_some_and(|c| !path.starts_with(&c.path) || c.path == path)
        {
            stack.pop();
        }
        if ft.is_dir() {
            let ctx = resolve_dir(path, stack.last(), cfg.license.enabled);
            stack.push(ctx);
            continue;
        }
        if !ft.is_file() {
            continue; // Symlinks and special files are not followed.
        }
        let rel = path.strip_prefix(root).unwrap_or(path);
        let rel = rel.to_string_lossy().replace('\\', "/");
        let display = format!("{root_name}/{rel}");
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if let Some(reason) = path_skip_reason(&rel, cfg.input.skip_vendored) {
            tally(plan, Stage::Input, reason, size, &display);
            continue;
        }
        if size > cfg.input.max_file_bytes {
            tally(plan, Stage::Input, "exceeds_read_limit", size, &display);
            continue;
        }
        let parent = stack.last();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mapped = parent
            .and_then(|p| p.packages.as_ref())
            .and_then(|m| m.get(&file_name).cloned());
        let (license, repo) = match mapped {
            Some((lic, dist)) => (lic.map(|l| (l, LicenseSource::Package)), Some(dist)),
            None => match parent {
                Some(p) if p.packages.is_some() => (None, p.repo.clone()),
                Some(p) => (p.license.clone(), p.repo.clone()),
                None => (None, None),
            },
        };
        lists.push(&FileEntry {
            abs: path.to_path_buf(),
            display,
            size,
            license: license.as_ref().map(|l| l.0.clone()),
            license_source: license.as_ref().map(|l| l.1),
            repo: repo.or_else(|| Some(root_name.clone())),
        })?;
    }
    lists.close()?;
    plan.shards.extend(lists.done);
    Ok(())
}

fn tally(plan: &mut Plan, stage: Stage, reason: &str, bytes: u64, example: &str) {
    plan.skipped
        .entry(stage)
        .or_default()
        .entry(reason.to_string())
        .or_default()
        .add(bytes, example, "");
}

/// A stream of items from one shard.
pub type ItemStream = Box<dyn Iterator<Item = Result<Item>> + Send>;

/// Opens a shard for reading.
pub fn open(source: &ShardSource, cfg: &Config) -> Result<ItemStream> {
    match source {
        ShardSource::Files { list } => {
            let f = File::open(list).map_err(Error::io(list))?;
            Ok(Box::new(FileListReader {
                lines: BufReader::new(f).lines(),
                list: list.clone(),
                line_idx: 0,
                max_bytes: cfg.input.max_file_bytes,
                language_prefilter: cfg.language.enabled && !cfg.language.keep_unknown,
            }))
        }
        ShardSource::Jsonl { path } => {
            Ok(Box::new(JsonlReader::open(path, cfg.input.max_file_bytes)?))
        }
        ShardSource::Parquet { path } => Ok(Box::new(ParquetReader::open(path)?)),
    }
}

struct FileListReader {
    lines: std::io::Lines<BufReader<File>>,
    list: PathBuf,
    line_idx: usize,
    max_bytes: u64,
    language_prefilter: bool,
}

impl Iterator for FileListReader {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        let line = match self.lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(Err(Error::io(&self.list)(e))),
        };
        self.line_idx += 1;
        let entry: FileEntry = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(cause) => {
                return Some(Err(Error::Json {
                    path: self.list.clone(),
                    line: self.line_idx,
                    cause,
                }))
            }
        };
        Some(Ok(read_file(
            entry,
            self.max_bytes,
            self.language_prefilter,
        )))
    }
}

/// Reads one planned file: skips unknown-language files without reading them
/// (when the language stage would drop them anyway), then binary and non-UTF-8 content.
fn read_file(entry: FileEntry, max_bytes: u64, language_prefilter: bool) -> Item {
    let skipped = |stage, reason: &str, bytes| {
        Item::Skipped(Skipped {
            path: entry.display.clone(),
            bytes,
            stage,
            reason: reason.to_string(),
        })
    };
    if language_prefilter
        && crate::lang::detect_from_path(&entry.display).is_none()
        && crate::lang::has_extension(&entry.display)
    {
        return skipped(Stage::Language, "unknown_language", entry.size);
    }
    let mut buf = Vec::new();
    let read = File::open(&entry.abs).and_then(|f| f.take(max_bytes + 1).read_to_end(&mut buf));
    if read.is_err() {
        return skipped(Stage::Input, "unreadable", entry.size);
    }
    if buf.len() as u64 > max_bytes {
        return skipped(Stage::Input, "exceeds_read_limit", entry.size);
    }
    if buf[..buf.len().min(8000)].contains(&0) {
        return skipped(Stage::Input, "binary", buf.len() as u64);
    }
    let bytes = buf.len() as u64;
    let content = match String::from_utf8(buf) {
        Ok(s) => s,
        Err(_) => return skipped(Stage::Input, "not_utf8", bytes),
    };
    Item::Record(Record {
        path: entry.display,
        content,
        repo: entry.repo,
        license: entry.license,
        license_source: entry.license_source,
        stars: None,
        forks: None,
        language: None,
    })
}

/// A multi-frame zstd decoder over the pure-Rust `ruzstd`.
struct ZstdReader<R: BufRead> {
    src: R,
    dec: ruzstd::decoding::FrameDecoder,
    active: bool,
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        use ruzstd::decoding::BlockDecodingStrategy;
        loop {
            if self.active {
                while self.dec.can_collect() == 0 && !self.dec.is_finished() {
                    self.dec
                        .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(std::io::Error::other)?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.active = false;
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.dec.reset(&mut self.src) {
                Ok(()) => self.active = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    std::io::copy(
                        &mut (&mut self.src).take(length as u64),
                        &mut std::io::sink(),
                    )?;
                }
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    }
}

/// Opens a possibly compressed file (`.gz`, `.zst`) as a buffered reader.
pub fn open_decompressed(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let f = File::open(path).map_err(Error::io(path))?;
    let name = path.to_string_lossy().to_ascii_lowercase();
    Ok(if name.ends_with(".gz") {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(BufReader::new(f)),
        ))
    } else if name.ends_with(".zst") {
        Box::new(BufReader::with_capacity(
            1 << 20,
            ZstdReader {
                src: BufReader::new(f),
                dec: ruzstd::decoding::FrameDecoder::new(),
                active: false,
            },
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, f))
    })
}

/// Reads one line into `buf` (without the newline). Returns `None` at EOF,
/// `Some(false)` for a line longer than `limit` (skipped, `buf` left empty).
fn read_line_limited(
    r: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok(if any { Some(!too_long) } else { None });
        }
        any = true;
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > limit {
                too_long = true;
                buf.clear();
                buf.shrink_to(1 << 16);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let consumed = found.map_or(chunk.len(), |i| i + 1);
        r.consume(consumed);
        if found.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(!too_long));
        }
    }
}

struct JsonlReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    line_idx: usize,
    limit: usize,
    buf: Vec<u8>,
}

impl JsonlReader {
    fn open(path: &Path, max_bytes: u64) -> Result<Self> {
        Ok(JsonlReader {
            path: path.to_path_buf(),
            reader: open_decompressed(path)?,
            line_idx: 0,
            // JSON escaping can double a text's size; the content check happens after parsing.
            limit: (max_bytes as usize)
                .saturating_mul(2)
                .saturating_add(1 << 16),
            buf: Vec::new(),
        })
    }
}

impl Iterator for JsonlReader {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        loop {
            let ok = match read_line_limited(&mut self.reader, &mut self.buf, self.limit) {
                Ok(None) => return None,
                Ok(Some(ok)) => ok,
                Err(e) => return Some(Err(Error::io(&self.path)(e))),
            };
            self.line_idx += 1;
            let location = format!("{}:{}", self.path.display(), self.line_idx);
            if !ok {
                return Some(Ok(Item::Skipped(Skipped {
                    path: location,
                    bytes: self.limit as u64,
                    stage: Stage::Input,
                    reason: "exceeds_read_limit".into(),
                })));
            }
            if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let bytes = self.buf.len() as u64;
            return Some(Ok(
                match serde_json::from_slice::<serde_json::Value>(&self.buf) {
                    Ok(v) => record_from_json(&v, &location, bytes),
                    Err(_) => Item::Skipped(Skipped {
                        path: location,
                        bytes,
                        stage: Stage::Input,
                        reason: "invalid_json".into(),
                    }),
                },
            ));
        }
    }
}

const CONTENT_FIELDS: &[&str] = &["content", "text", "code"];
const PATH_FIELDS: &[&str] = &[
    "path",
    "max_stars_repo_path",
    "file_path",
    "filepath",
    "filename",
];
const REPO_FIELDS: &[&str] = &[
    "repo_name",
    "max_stars_repo_name",
    "repo",
    "repository_name",
];
const LICENSE_FIELDS: &[&str] = &[
    "license",
    "licenses",
    "max_stars_repo_licenses",
    "detected_licenses",
    "gha_license_id",
];
const STAR_FIELDS: &[&str] = &[
    "stars",
    "max_stars_count",
    "star_events_count",
    "stargazers_count",
    "stars_count",
];
const FORK_FIELDS: &[&str] = &[
    "forks",
    "max_forks_count",
    "fork_events_count",
    "forks_count",
];
const LANGUAGE_FIELDS: &[&str] = &["lang", "language"];

fn first_str<'a>(v: &'a serde_json::Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_str()))
}

fn first_count(v: &serde_json::Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| {
        let x = v.get(*k)?;
        x.as_u64().or_else(|| {
            x.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
    })
}

/// Builds a record from a dataset row (JSONL object, or a Parquet row as JSON).
pub fn record_from_json(v: &serde_json::Value, location: &str, bytes: u64) -> Item {
    let Some(content) = first_str(v, CONTENT_FIELDS) else {
        return Item::Skipped(Skipped {
            path: location.to_string(),
            bytes,
            stage: Stage::Input,
            reason: "missing_content".into(),
        });
    };
    let mut licenses: Vec<String> = Vec::new();
    for k in LICENSE_FIELDS {
        match v.get(*k) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => licenses.push(s.clone()),
            Some(serde_json::Value::Array(xs)) => {
                licenses.extend(xs.iter().filter_map(|x| x.as_str()).map(str::to_string))
            }
            _ => continue,
        }
        if !licenses.is_empty() {
            break;
        }
    }
    let license = license::all_of(&licenses);
    Item::Record(Record {
        path: first_str(v, PATH_FIELDS).unwrap_or(location).to_string(),
        content: content.to_string(),
        repo: first_str(v, REPO_FIELDS).map(str::to_string),
        license_source: license.as_ref().map(|_| LicenseSource::Input),
        license,
        stars: first_count(v, STAR_FIELDS),
        forks: first_count(v, FORK_FIELDS),
        language: first_str(v, LANGUAGE_FIELDS).map(str::to_string),
    })
}

struct ParquetReader {
    path: PathBuf,
    rows: parquet::record::reader::RowIter<'static>,
    row_idx: usize,
}

impl ParquetReader {
    fn open(path: &Path) -> Result<Self> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::schema::types::Type;
        let f = File::open(path).map_err(Error::io(path))?;
        let reader = SerializedFileReader::new(f).map_err(Error::parquet(path))?;
        let schema = reader.metadata().file_metadata().schema().clone();
        let wanted: Vec<&str> = [
            CONTENT_FIELDS,
            PATH_FIELDS,
            REPO_FIELDS,
            LICENSE_FIELDS,
            STAR_FIELDS,
            FORK_FIELDS,
            LANGUAGE_FIELDS,
        ]
        .concat();
        let fields: Vec<_> = schema
            .get_fields()
            .iter()
            .filter(|f| wanted.contains(&f.name()))
            .cloned()
            .collect();
        if !fields.iter().any(|f| CONTENT_FIELDS.contains(&f.name())) {
            return Err(Error::MissingColumn {
                path: path.to_path_buf(),
                candidates: CONTENT_FIELDS.to_vec(),
            });
        }
        let projection = Type::group_type_builder(schema.name())
            .with_fields(fields)
            .build()
            .map_err(Error::parquet(path))?;
        let rows = parquet::record::reader::RowIter::from_file_into(Box::new(reader))
            .project(Some(projection))
            .map_err(Error::parquet(path))?;
        Ok(ParquetReader {
            path: path.to_path_buf(),
            rows,
            row_idx: 0,
        })
    }
}

fn field_to_json(f: &parquet::record::Field) -> serde_json::Value {
    use parquet::record::Field;
    use serde_json::Value;
    match f {
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Null,
        },
        Field::Byte(x) => Value::from(*x),
        Field::Short(x) => Value::from(*x),
        Field::Int(x) => Value::from(*x),
        Field::Long(x) => Value::from(*x),
        Field::UByte(x) => Value::from(*x),
        Field::UShort(x) => Value::from(*x),
        Field::UInt(x) => Value::from(*x),
        Field::ULong(x) => Value::from(*x),
        Field::Float(x) => Value::from(*x as f64),
        Field::Double(x) => Value::from(*x),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_to_json).collect())
        }
        _ => Value::Null,
    }
}

impl Iterator for ParquetReader {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        let row = match self.rows.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(Error::parquet(&self.path)(e))),
        };
        self.row_idx += 1;
        let mut obj = serde_json::Map::new();
        for (name, field) in row.get_column_iter() {
            obj.insert(name.clone(), field_to_json(field));
        }
        let v = serde_json::Value::Object(obj);
        let location = format!("{}:{}", self.path.display(), self.row_idx);
        let bytes = first_str(&v, CONTENT_FIELDS).map_or(0, |s| s.len() as u64);
        Some(Ok(record_from_json(&v, &location, bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(
            path_skip_reason("pip/_vendor/rich/x.py", true),
            Some("vendored")
        );
        assert_eq!(
            path_skip_reason("web/node_modules/a/index.js", true),
            Some("vendored")
        );
        assert_eq!(path_skip_reason("a/b.min.js", true), Some("generated"));
        assert_eq!(path_skip_reason("proto/x_pb2.py", true), Some("generated"));
        assert_eq!(path_skip_reason("Cargo.lock", true), Some("generated"));
        assert_eq!(
            path_skip_reason("a/__pycache__/x.cpython-311.pyc", true),
            Some("binary")
        );
        assert_eq!(path_skip_reason("lib/libfoo.so", false), Some("binary"));
        assert_eq!(path_skip_reason("src/vendor.rs", true), None);
        assert_eq!(path_skip_reason("pip/_vendor/x.py", false), None);
    }

    #[test]
    fn long_lines_are_skipped_without_buffering() {
        let data = format!("short\n{}\nafter\r\nlast", "x".repeat(1000));
        let mut r: Box<dyn BufRead> = Box::new(BufReader::with_capacity(16, data.as_bytes()));
        let mut buf = Vec::new();
        assert_eq!(
            read_line_limited(&mut r, &mut buf, 100).unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"short");
        assert_eq!(
            read_line_limited(&mut r, &mut buf, 100).unwrap(),
            Some(false)
        );
        assert!(buf.is_empty());
        assert_eq!(
            read_line_limited(&mut r, &mut buf, 100).unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"after");
        assert_eq!(
            read_line_limited(&mut r, &mut buf, 100).unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"last");
        assert_eq!(read_line_limited(&mut r, &mut buf, 100).unwrap(), None);
    }

    #[test]
    fn the_stack_rows() {
        let v = serde_json::json!({
            "content": "print(1)\n",
            "max_stars_repo_path": "a/b.py",
            "max_stars_repo_name": "org/repo",
            "max_stars_repo_licenses": ["MIT", "Apache-2.0"],
            "max_stars_count": 12.0,
            "max_forks_count": null,
            "lang": "Python"
        });
        let Item::Record(r) = record_from_json(&v, "f:1", 9) else {
            panic!()
        };
        assert_eq!(r.path, "a/b.py");
        assert_eq!(r.repo.as_deref(), Some("org/repo"));
        assert_eq!(r.license.as_deref(), Some("Apache-2.0 AND MIT"));
        assert_eq!(r.stars, Some(12));
        assert_eq!(r.forks, None);
        let missing = record_from_json(&serde_json::json!({"path": "x"}), "f:2", 3);
        assert!(
            matches!(missing, Item::Skipped(Skipped { ref reason, .. }) if reason == "missing_content")
        );
    }
}
