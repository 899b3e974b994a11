//! The pipeline: plan, filter (per shard), dedup (global), write (per shard).
//!
//! ```text
//! inputs ─plan─▶ shards ─filter─▶ staged shards + sorted hash runs ─dedup─▶ status ─write─▶ part-N.parquet
//!                 (walk)   language, license, metadata,        (exact, near,        (keep status 0)
//!                          quality, decontamination, PII,       union-find)
//!                          content hash, MinHash bands
//! ```
//!
//! The output directory holds the run's state, and every step commits by an
//! atomic rename: `work/plan/` (the shard plan), `work/stage/shard-N/` (one
//! per filtered shard), `work/dedup/` (the duplicate status of every
//! document), and `data/.done/part-N.json` (one per written shard, after its
//! data files were renamed into place). A second run with the same inputs
//! and config skips whatever was committed, so an interrupted run resumes by
//! shard and its output is byte-identical to an uninterrupted one: shard
//! contents, document ids and the kept member of each duplicate cluster are
//! all functions of the sorted input, never of timing or thread count. A run
//! with other inputs or settings is refused ([`Error::ResumeMismatch`]).
//!
//! The filter phase reads one shard at a time on a reader thread and processes
//! batches of `resources.batch_mb` on all cores; the write phase writes
//! `threads` shards at once. See [`crate::memory_bound`] for the memory this takes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::config::Config;
use crate::decontam::Decontaminator;
use crate::dedup::{self, DedupSummary, ShardRuns};
use crate::error::{Error, Result};
use crate::extsort::{BandRecord, HashRecord, RunWriter};
use crate::input::{self, Plan};
use crate::lang;
use crate::license;
use crate::minhash::MinHasher;
use crate::output::ShardWriter;
use crate::pii::{PiiCounts, Redactor};
use crate::quality;
use crate::record::{Item, Meta, Stage};
use crate::report::{
    Example, MemoryBound, NearDedupReport, PiiReport, ReasonTally, Report, RunInfo, StageReport,
    MAX_EXAMPLES,
};

/// Version of the output directory layout.
pub const FORMAT: u32 = 1;

/// Receives progress; the CLI draws a bar with it.
pub trait Progress: Sync {
    /// A phase starts; `total` is in the phase's unit (bytes for filtering, shards for writing; 0: unknown).
    fn start(&self, phase: &str, total: u64);
    /// Work done in the current phase.
    fn advance(&self, n: u64);
    /// The phase ended.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Manifest {
    format: u32,
    fingerprint: String,
    inputs: Vec<String>,
    config: Config,
    complete: bool,
}

/// Per-shard results of the filter phase (`stats.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FilterStats {
    n_in: u64,
    bytes_in: u64,
    n_staged: u64,
    n_signed: u64,
    removed: BTreeMap<Stage, BTreeMap<String, ReasonTally>>,
}

/// Per-shard results of the write phase (`data/.done/part-N.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WriteStats {
    n_out: u64,
    bytes_out: u64,
    exact: (u64, u64),
    near: (u64, u64),
    pii: PiiCounts,
    pii_files: u64,
    pii_examples: BTreeMap<String, Vec<Example>>,
    languages: BTreeMap<String, (u64, u64)>,
    licenses: BTreeMap<String, u64>,
}

/// The memory a run needs at most: fixed buffers plus [`dedup::BYTES_PER_DOC`] per document.
///
/// Fixed part: 64 MiB for the program itself, plus the larger of
/// - filtering: `sort_buffer_mb` (dedup records before a spill) + 4 batches of
///   `batch_mb` (one filling, one queued, one processing and its results) + 3
///   records of `max_file_bytes` (reading, parsing) + the decontamination index;
/// - writing: per thread, 2 × `row_group_bytes` (buffered rows and their
///   encoded copy) + one record + 2 MiB of I/O buffers;
/// - merging: 64 runs × 256 KiB of read buffers.
pub fn memory_bound(
    cfg: &Config,
    n_threads: usize,
    decontam_grams: usize,
    n_docs: u64,
) -> MemoryBound {
    const MIB: u64 = 1 << 20;
    let r = &cfg.resources;
    let filter = r.sort_buffer_mb * MIB
        + 4 * r.batch_mb * MIB
        + 3 * cfg.input.max_file_bytes
        + decontam_grams as u64 * 48;
    let write =
        n_threads as u64 * (2 * cfg.output.row_group_bytes + cfg.input.max_file_bytes + 2 * MIB);
    let merge = (crate::extsort::MAX_FAN_IN as u64) * (256 << 10);
    let fixed = 64 * MIB + filter.max(write).max(merge);
    MemoryBound {
        fixed_bytes: fixed,
        per_doc_bytes: dedup::BYTES_PER_DOC,
        n_docs,
        total_bytes: fixed + dedup::BYTES_PER_DOC * n_docs,
    }
}

enum Outcome {
    Removed {
        stage: Stage,
        reason: String,
        bytes: u64,
        path: String,
        detail: String,
    },
    Kept {
        meta: Box<Meta>,
        content: String,
        exact: u128,
        bands: Option<Vec<u64>>,
        bytes: u64,
    },
}

/// The per-record stages, compiled once.
struct Filters<'a> {
    cfg: &'a Config,
    redactor: Option<Redactor>,
    decontam: Option<Decontaminator>,
    minhasher: Option<MinHasher>,
}

/// xxh3-128 of the content with every whitespace run collapsed to one space (and trimmed).
pub fn exact_hash(content: &str) -> u128 {
    let mut h = Xxh3::new();
    let mut first = true;
    for w in content.split_whitespace() {
        if !first {
            h.update(b" ");
        }
        h.update(w.as_bytes());
        first = false;
    }
    h.digest128()
}

impl Filters<'_> {
    fn process(&self, item: Item) -> Outcome {
        let cfg = self.cfg;
        let rec = match item {
            Item::Record(r) => r,
            Item::Skipped(s) => {
                return Outcome::Removed {
                    stage: s.stage,
                    reason: s.reason,
                    bytes: s.bytes,
                    path: s.path,
                    detail: String::new(),
                }
            }
        };
        let bytes = rec.content.len() as u64;
        let removed = |stage, reason: &str, detail: String| Outcome::Removed {
            stage,
            reason: reason.to_string(),
            bytes,
            path: rec.path.clone(),
            detail,
        };
        let mut flags = Vec::new();

        let language = if cfg.language.enabled {
            let detected = lang::detect(&rec.path, &rec.content)
                .map(str::to_string)
                .or_else(|| rec.language.clone());
            match &detected {
                None if !cfg.language.keep_unknown => {
                    return removed(Stage::Language, "unknown_language", String::new())
                }
                Some(l) if !cfg.language.allow.is_empty() && !cfg.language.allow.contains(l) => {
                    return removed(Stage::Language, "not_in_allow_list", l.clone())
                }
                _ => {}
            }
            detected
        } else {
            rec.language.clone()
        };
        if language.is_none() {
            flags.push("language_unknown".to_string());
        }

        let header = if cfg.license.enabled {
            license::detect_header(&rec.content)
        } else {
            None
        };
        let (license, license_source) = match header {
            Some(h) => (Some(h), Some(license::LicenseSource::Header)),
            None => (rec.license.clone(), rec.license_source),
        };
        if cfg.license.enabled {
            match &license {
                None if !cfg.license.keep_unlicensed => {
                    return removed(
                        Stage::License,
                        "no_license",
                        rec.repo.clone().unwrap_or_default(),
                    )
                }
                None => flags.push("unlicensed".to_string()),
                Some(expr) if !license::is_allowed(expr, &cfg.license.allow) => {
                    let source = license_source.map(|s| s.as_str()).unwrap_or("");
                    return removed(
                        Stage::License,
                        &format!("not_allowed:{expr}"),
                        format!("from {source}"),
                    );
                }
                Some(_) => {}
            }
        }

        if cfg.metadata.enabled {
            if rec.stars.is_some_and(|s| s < cfg.metadata.min_stars) {
                return removed(
                    Stage::Metadata,
                    "stars_below_min",
                    format!("{} stars", rec.stars.unwrap_or(0)),
                );
            }
            if rec.forks.is_some_and(|f| f < cfg.metadata.min_forks) {
                return removed(
                    Stage::Metadata,
                    "forks_below_min",
                    format!("{} forks", rec.forks.unwrap_or(0)),
                );
            }
        }

        if cfg.quality.enabled {
            if let Some(reason) = quality::check(&rec.content, &cfg.quality) {
                return removed(Stage::Quality, reason, String::new());
            }
        }

        if let Some(d) = &self.decontam {
            if let Some(hit) = d.find(&rec.content) {
                return removed(
                    Stage::Decontamination,
                    "benchmark_ngram",
                    format!("{}: \"{}\"", hit.source, hit.ngram),
                );
            }
        }

        let exact = exact_hash(&rec.content);
        let bands = self.minhasher.as_ref().and_then(|m| {
            let sig = m.signature(&rec.content)?;
            Some(m.band_hashes(&sig))
        });
        if self.minhasher.is_some() && bands.is_none() {
            flags.push("no_shingles".to_string());
        }

        let (content, pii) = match self.redactor.as_ref().and_then(|r| r.redact(&rec.content)) {
            Some(red) => {
                flags.push("pii_redacted".to_string());
                (red.content, red.counts)
            }
            None => (rec.content, PiiCounts::default()),
        };
        Outcome::Kept {
            meta: Box::new(Meta {
                path: rec.path,
                repo: rec.repo,
                language,
                license,
                license_source: license_source.map(|s| s.as_str().to_string()),
                stars: rec.stars,
                forks: rec.forks,
                size_bytes: bytes,
                content_hash: format!("{exact:032x}"),
                pii,
                flags,
            }),
            content,
            exact,
            bands,
            bytes,
        }
    }
}

struct Layout {
    out: PathBuf,
}

impl Layout {
    fn manifest(&self) -> PathBuf {
        self.out.join("manifest.json")
    }
    fn work(&self) -> PathBuf {
        self.out.join("work")
    }
    fn plan(&self) -> PathBuf {
        self.work().join("plan")
    }
    fn stage(&self, idx: usize) -> PathBuf {
        self.work().join("stage").join(format!("shard-{idx:06}"))
    }
    fn dedup(&self) -> PathBuf {
        self.work().join("dedup")
    }
    fn data(&self) -> PathBuf {
        self.out.join("data")
    }
    fn part_stem(&self, idx: usize) -> PathBuf {
        self.data().join(format!("part-{idx:06}"))
    }
    fn done(&self, idx: usize) -> PathBuf {
        self.data()
            .join(".done")
            .join(format!("part-{idx:06}.json"))
    }
    fn report(&self) -> PathBuf {
        self.out.join("report.json")
    }
}

fn tmp_dir_for(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.tmp"))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_dir_for(path);
    {
        let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
        f.write_all(bytes).map_err(Error::io(&tmp))?;
        f.sync_all().map_err(Error::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

/// Writes the run's manifest atomically.
fn write_manifest(layout: &Layout, manifest: &Manifest) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest).expect("a manifest serializes");
    write_atomic(&layout.manifest(), text.as_bytes())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&text).map_err(|cause| Error::Json {
        path: path.to_path_buf(),
        line: 0,
        cause,
    })
}

/// Removes a leftover temporary directory and creates it empty.
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(Error::io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))
}

/// Commits a finished temporary directory by renaming it to its final name.
fn commit_dir(tmp: &Path, dir: &Path) -> Result<()> {
    std::fs::rename(tmp, dir).map_err(Error::io(dir))
}

/// Runs the whole pipeline over `inputs` into `out`, resuming what an earlier
/// run with the same inputs and config committed there.
pub fn curate(
    inputs: &[PathBuf],
    out: &Path,
    cfg: &Config,
    progress: &dyn Progress,
) -> Result<Report> {
    cfg.validate()?;
    let n_threads = cfg.n_threads();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .build()
        .map_err(Error::ThreadPool)?;
    let layout = Layout {
        out: out.to_path_buf(),
    };
    std::fs::create_dir_all(out).map_err(Error::io(out))?;

    let input_names: Vec<String> = inputs
        .iter()
        .map(|p| {
            p.canonicalize()
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
        .collect();
    let fingerprint = format!(
        "{:032x}",
        xxh3_128(
            format!(
                "{FORMAT}\n{}\n{}",
                input_names.join("\n"),
                cfg.fingerprint_json()
            )
            .as_bytes()
        )
    );
    let mut manifest = Manifest {
        format: FORMAT,
        fingerprint: fingerprint.clone(),
        inputs: input_names.clone(),
        config: cfg.clone(),
        complete: false,
    };
    if layout.manifest().exists() {
        let existing: Manifest = read_json(&layout.manifest())?;
        if existing.fingerprint != fingerprint || existing.format != FORMAT {
            return Err(Error::ResumeMismatch {
                out: out.to_path_buf(),
                found: existing.fingerprint,
                expected: fingerprint,
            });
        }
        if existing.complete && layout.report().exists() {
            return read_json(&layout.report());
        }
    } else {
        write_manifest(&layout, &manifest)?;
    }
    let mut run = RunInfo {
        threads: n_threads,
        ..Default::default()
    };

    // Plan.
    let t = Instant::now();
    let plan: Plan = if layout.plan().join("plan.json").exists() {
        read_json(&layout.plan().join("plan.json"))?
    } else {
        progress.start("planning", 0);
        let tmp = tmp_dir_for(&layout.plan());
        fresh_dir(&tmp)?;
        let mut plan = input::plan(inputs, cfg, &tmp)?;
        // The lists move with the directory: point them at their committed place.
        for s in &mut plan.shards {
            if let input::ShardSource::Files { list } = &mut s.source {
                *list = layout
                    .plan()
                    .join(list.file_name().expect("list file name"));
            }
        }
        write_atomic(
            &tmp.join("plan.json"),
            serde_json::to_string(&plan).expect("plan").as_bytes(),
        )?;
        commit_dir(&tmp, &layout.plan())?;
        progress.finish();
        plan
    };
    run.seconds.insert("plan".into(), t.elapsed().as_secs_f64());

    // Filter, shard by shard.
    let t = Instant::now();
    let mut decontam = None;
    let mut decontam_note = None;
    if cfg.decontamination.enabled {
        if cfg.decontamination.benchmarks.is_empty() {
            decontam_note = Some("no benchmark files given".to_string());
        } else {
            let mut d = Decontaminator::new(cfg.decontamination.ngram);
            for b in &cfg.decontamination.benchmarks {
                d.add_file(b, &cfg.decontamination.fields)?;
            }
            decontam_note = Some(format!("{} benchmark {}-grams", d.len(), d.n()));
            decontam = Some(d);
        }
    }
    let decontam_grams = decontam.as_ref().map_or(0, |d| d.len());
    let minhasher = cfg.near_dedup.enabled.then(|| {
        let (bands, rows) = cfg.near_dedup.bands_rows();
        MinHasher::new(cfg.near_dedup.ngram, bands, rows, cfg.near_dedup.seed)
    });
    let filters = Filters {
        cfg,
        redactor: cfg.pii.enabled.then(|| Redactor::new(&cfg.pii)),
        decontam,
        minhasher,
    };
    let total_bytes: u64 = plan.shards.iter().map(|s| s.bytes).sum();
    progress.start("filtering", total_bytes);
    let mut filter_stats = Vec::with_capacity(plan.shards.len());
    for (idx, shard) in plan.shards.iter().enumerate() {
        let dir = layout.stage(idx);
        if dir.join("stats.json").exists() {
            filter_stats.push(read_json::<FilterStats>(&dir.join("stats.json"))?);
            run.resumed_shards.0 += 1;
            progress.advance(shard.bytes);
            continue;
        }
        let stats = filter_shard(idx, shard, &dir, &filters, &pool, progress)?;
        filter_stats.push(stats);
    }
    progress.finish();
    run.seconds
        .insert("filter".into(), t.elapsed().as_secs_f64());

    // Dedup, across shards.
    let t = Instant::now();
    let shard_runs: Vec<ShardRuns> = filter_stats
        .iter()
        .enumerate()
        .map(|(idx, s)| ShardRuns {
            dir: layout.stage(idx),
            n_docs: s.n_staged,
        })
        .collect();
    let n_docs: u64 = shard_runs.iter().map(|s| s.n_docs).sum();
    let (status, summary) = if layout.dedup().join("summary.json").exists() {
        let status_path = layout.dedup().join("status.bin");
        let status = std::fs::read(&status_path).map_err(Error::io(&status_path))?;
        if status.len() as u64 != n_docs {
            return Err(Error::Corrupt {
                path: status_path,
                reason: format!("{} statuses for {n_docs} documents", status.len()),
            });
        }
        (
            status,
            read_json::<DedupSummary>(&layout.dedup().join("summary.json"))?,
        )
    } else {
        progress.start("deduplicating", 0);
        let tmp = tmp_dir_for(&layout.dedup());
        fresh_dir(&tmp)?;
        let (status, summary) = dedup::find_duplicates(
            &shard_runs,
            cfg.exact_dedup.enabled,
            cfg.near_dedup.enabled,
            &tmp.join("merge"),
        )?;
        write_atomic(&tmp.join("status.bin"), &status)?;
        write_atomic(
            &tmp.join("summary.json"),
            serde_json::to_string(&summary).expect("summary").as_bytes(),
        )?;
        commit_dir(&tmp, &layout.dedup())?;
        progress.finish();
        (status, summary)
    };
    run.seconds
        .insert("dedup".into(), t.elapsed().as_secs_f64());

    // Write, several shards at once.
    let t = Instant::now();
    let mut offsets = Vec::with_capacity(shard_runs.len());
    let mut acc = 0u64;
    for s in &shard_runs {
        offsets.push(acc);
        acc += s.n_docs;
    }
    std::fs::create_dir_all(layout.data().join(".done")).map_err(Error::io(layout.data()))?;
    progress.start("writing", shard_runs.len() as u64);
    let resumed_writes = std::sync::atomic::AtomicUsize::new(0);
    let write_stats: Vec<WriteStats> = pool.install(|| {
        (0..shard_runs.len())
            .into_par_iter()
            .map(|idx| {
                let done = layout.done(idx);
                let result = if done.exists() {
                    resumed_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    read_json(&done)
                } else {
                    let n = shard_runs[idx].n_docs as usize;
                    let off = offsets[idx] as usize;
                    write_shard(&layout, idx, &status[off..off + n], cfg).and_then(|stats| {
                        write_atomic(
                            &done,
                            serde_json::to_string(&stats).expect("stats").as_bytes(),
                        )?;
                        Ok(stats)
                    })
                };
                progress.advance(1);
                result
            })
            .collect::<Result<Vec<_>>>()
    })?;
    run.resumed_shards.1 = resumed_writes.into_inner();
    progress.finish();
    run.seconds
        .insert("write".into(), t.elapsed().as_secs_f64());

    let report = assemble(
        cfg,
        &input_names,
        &plan,
        &filter_stats,
        &summary,
        &write_stats,
        decontam_note,
        memory_bound(cfg, n_threads, decontam_grams, n_docs),
        run,
    );
    write_atomic(&layout.report(), report.to_json().as_bytes())?;
    manifest.complete = true;
    write_manifest(&layout, &manifest)?;
    if !cfg.output.keep_work {
        std::fs::remove_dir_all(layout.work()).map_err(Error::io(layout.work()))?;
    }
    Ok(report)
}

fn filter_shard(
    idx: usize,
    shard: &input::ShardPlan,
    dir: &Path,
    filters: &Filters,
    pool: &rayon::ThreadPool,
    progress: &dyn Progress,
) -> Result<FilterStats> {
    let cfg = filters.cfg;
    let tmp = tmp_dir_for(dir);
    fresh_dir(&tmp)?;
    let records_path = tmp.join("records.bin");
    let paths_path = tmp.join("paths.jsonl");
    let mut records = BufWriter::with_capacity(
        1 << 20,
        File::create(&records_path).map_err(Error::io(&records_path))?,
    );
    let mut paths = BufWriter::new(File::create(&paths_path).map_err(Error::io(&paths_path))?);
    let budget = cfg.resources.sort_buffer_mb << 20;
    let mut bands = RunWriter::<BandRecord>::new(&tmp, "bands", budget / 8 * 7);
    let mut exact = RunWriter::<HashRecord>::new(&tmp, "exact", budget / 8);
    let mut stats = FilterStats::default();
    let batch_bytes = cfg.resources.batch_mb << 20;

    let stream = input::open(&shard.source, cfg)?;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = sync_channel::<Result<Vec<Item>>>(1);
        scope.spawn(move || {
            let mut batch = Vec::new();
            let mut bytes = 0u64;
            for item in stream {
                match item {
                    Ok(it) => {
                        bytes += match &it {
                            Item::Record(r) => r.content.len() as u64,
                            Item::Skipped(_) => 0,
                        };
                        batch.push(it);
                        if bytes >= batch_bytes || batch.len() >= 8192 {
                            if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                                return;
                            }
                            bytes = 0;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Ok(batch));
            }
        });
        for batch in rx {
            let batch = batch?;
            let outcomes: Vec<Outcome> = pool.install(|| {
                batch
                    .into_par_iter()
                    .map(|it| filters.process(it))
                    .collect()
            });
            for o in outcomes {
                stats.n_in += 1;
                match o {
                    Outcome::Removed {
                        stage,
                        reason,
                        bytes,
                        path,
                        detail,
                    } => {
                        stats.bytes_in += bytes;
                        progress.advance(bytes);
                        stats
                            .removed
                            .entry(stage)
                            .or_default()
                            .entry(reason)
                            .or_default()
                            .add(bytes, &path, &detail);
                    }
                    Outcome::Kept {
                        meta,
                        content,
                        exact: hash,
                        bands: band_hashes,
                        bytes,
                    } => {
                        stats.bytes_in += bytes;
                        progress.advance(bytes);
                        let local = stats.n_staged;
                        let doc = (idx as u64) << 32 | local;
                        if cfg.exact_dedup.enabled {
                            exact.push(HashRecord { hash, doc })?;
                        }
                        if let Some(bh) = band_hashes {
                            stats.n_signed += 1;
                            for (band, h) in bh.into_iter().enumerate() {
                                bands.push(BandRecord {
                                    band: band as u32,
                                    hash: h,
                                    doc,
                                })?;
                            }
                        }
                        let meta_json = serde_json::to_vec(&meta).expect("meta serializes");
                        let io = Error::io(&records_path);
                        (|| -> std::io::Result<()> {
                            records.write_all(&(meta_json.len() as u32).to_le_bytes())?;
                            records.write_all(&meta_json)?;
                            records.write_all(&(content.len() as u32).to_le_bytes())?;
                            records.write_all(content.as_bytes())
                        })()
                        .map_err(io)?;
                        writeln!(
                            paths,
                            "{}",
                            serde_json::to_string(&meta.path).expect("path")
                        )
                        .map_err(Error::io(&paths_path))?;
                        stats.n_staged += 1;
                    }
                }
            }
        }
        Ok(())
    })?;
    if stats.n_staged >= 1 << 32 {
        return Err(Error::TooManyDocuments {
            n_docs: stats.n_staged,
            limit: (1 << 32) - 1,
        });
    }
    records.flush().map_err(Error::io(&records_path))?;
    records
        .get_ref()
        .sync_all()
        .map_err(Error::io(&records_path))?;
    paths.flush().map_err(Error::io(&paths_path))?;
    bands.finish()?;
    exact.finish()?;
    write_atomic(
        &tmp.join("stats.json"),
        serde_json::to_string(&stats).expect("stats").as_bytes(),
    )?;
    std::fs::create_dir_all(dir.parent().expect("stage dir has a parent"))
        .map_err(Error::io(dir))?;
    commit_dir(&tmp, dir)?;
    Ok(stats)
}

/// Reads `records.bin` of a staged shard.
struct StagedReader {
    path: PathBuf,
    reader: BufReader<File>,
}

impl StagedReader {
    fn next(&mut self) -> Result<Option<(Meta, String)>> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io(&self.path)(e)),
        }
        let mut meta = vec![0u8; u32::from_le_bytes(len) as usize];
        self.reader
            .read_exact(&mut meta)
            .map_err(Error::io(&self.path))?;
        self.reader
            .read_exact(&mut len)
            .map_err(Error::io(&self.path))?;
        let mut content = vec![0u8; u32::from_le_bytes(len) as usize];
        self.reader
            .read_exact(&mut content)
            .map_err(Error::io(&self.path))?;
        let meta: Meta = serde_json::from_slice(&meta).map_err(|cause| Error::Json {
            path: self.path.clone(),
            line: 0,
            cause,
        })?;
        let content = String::from_utf8(content).map_err(|_| Error::Corrupt {
            path: self.path.clone(),
            reason: "staged content is not UTF-8".into(),
        })?;
        Ok(Some((meta, content)))
    }
}

fn pii_example_line(content: &str, placeholder: &str) -> Option<String> {
    let line = content.lines().find(|l| l.contains(placeholder))?;
    let line = line.trim();
    Some(if line.chars().count() > 160 {
        let mut s: String = line.chars().take(157).collect();
        s.push_str("...");
        s
    } else {
        line.to_string()
    })
}

fn write_shard(layout: &Layout, idx: usize, status: &[u8], cfg: &Config) -> Result<WriteStats> {
    let path = layout.stage(idx).join("records.bin");
    let f = File::open(&path).map_err(Error::io(&path))?;
    let mut reader = StagedReader {
        path: path.clone(),
        reader: BufReader::with_capacity(1 << 20, f),
    };
    let mut writer = ShardWriter::create(
        &layout.part_stem(idx),
        cfg.output.parquet,
        cfg.output.jsonl,
        cfg.output.row_group_bytes,
    )?;
    let mut stats = WriteStats::default();
    let placeholders = [
        ("emails", cfg.pii.email_placeholder.as_str()),
        ("ip_addresses", cfg.pii.ip_placeholder.as_str()),
        ("keys", cfg.pii.key_placeholder.as_str()),
        ("passwords", cfg.pii.password_placeholder.as_str()),
    ];
    let mut local = 0usize;
    while let Some((meta, content)) = reader.next()? {
        let s = *status.get(local).ok_or_else(|| Error::Corrupt {
            path: path.clone(),
            reason: format!("more records than the {} planned", status.len()),
        })?;
        local += 1;
        match s {
            dedup::EXACT => {
                stats.exact.0 += 1;
                stats.exact.1 += meta.size_bytes;
                continue;
            }
            dedup::NEAR => {
                stats.near.0 += 1;
                stats.near.1 += meta.size_bytes;
                continue;
            }
            _ => {}
        }
        stats.n_out += 1;
        stats.bytes_out += content.len() as u64;
        if meta.pii.total() > 0 {
            stats.pii_files += 1;
            stats.pii.add(&meta.pii);
            let counts = [
                meta.pii.emails,
                meta.pii.ip_addresses,
                meta.pii.keys,
                meta.pii.passwords,
            ];
            for ((kind, placeholder), n) in placeholders.iter().zip(counts) {
                let examples = stats.pii_examples.entry(kind.to_string()).or_default();
                if n > 0 && examples.len() < MAX_EXAMPLES {
                    if let Some(line) = pii_example_line(&content, placeholder) {
                        examples.push(Example {
                            path: meta.path.clone(),
                            detail: line,
                        });
                    }
                }
            }
        }
        let lang_entry = stats
            .languages
            .entry(meta.language.clone().unwrap_or_else(|| "unknown".into()))
            .or_default();
        lang_entry.0 += 1;
        lang_entry.1 += content.len() as u64;
        *stats
            .licenses
            .entry(meta.license.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
        writer.write(meta, content)?;
    }
    if local != status.len() {
        return Err(Error::Corrupt {
            path,
            reason: format!("{local} records for {} planned", status.len()),
        });
    }
    writer.finish()?;
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    cfg: &Config,
    inputs: &[String],
    plan: &Plan,
    filter_stats: &[FilterStats],
    summary: &DedupSummary,
    write_stats: &[WriteStats],
    decontam_note: Option<String>,
    memory: MemoryBound,
    run: RunInfo,
) -> Report {
    let mut removed: BTreeMap<Stage, BTreeMap<String, ReasonTally>> = BTreeMap::new();
    let mut merge = |src: &BTreeMap<Stage, BTreeMap<String, ReasonTally>>| {
        for (stage, reasons) in src {
            for (reason, tally) in reasons {
                removed
                    .entry(*stage)
                    .or_default()
                    .entry(reason.clone())
                    .or_default()
                    .merge(tally);
            }
        }
    };
    merge(&plan.skipped);
    for s in filter_stats {
        merge(&s.removed);
    }
    let mut exact = ReasonTally::default();
    let mut near = ReasonTally::default();
    let mut pii = PiiReport {
        enabled: cfg.pii.enabled,
        ..Default::default()
    };
    let mut report = Report {
        format: FORMAT,
        inputs: inputs.to_vec(),
        n_shards: plan.shards.len(),
        memory,
        run,
        ..Default::default()
    };
    for w in write_stats {
        exact.n += w.exact.0;
        exact.bytes += w.exact.1;
        near.n += w.near.0;
        near.bytes += w.near.1;
        report.n_out += w.n_out;
        report.bytes_out += w.bytes_out;
        pii.counts.add(&w.pii);
        pii.n_files += w.pii_files;
        for (kind, examples) in &w.pii_examples {
            let e = pii.examples.entry(kind.clone()).or_default();
            for x in examples {
                if e.len() < MAX_EXAMPLES {
                    e.push(x.clone());
                }
            }
        }
        for (l, (n, b)) in &w.languages {
            let e = report.languages.entry(l.clone()).or_default();
            e.0 += n;
            e.1 += b;
        }
        for (l, n) in &w.licenses {
            *report.licenses.entry(l.clone()).or_default() += n;
        }
    }
    exact.examples = summary.exact_examples.clone();
    near.examples = summary.near_examples.clone();
    if exact.n > 0 {
        removed
            .entry(Stage::ExactDedup)
            .or_default()
            .insert("duplicate_content".into(), exact);
    }
    if near.n > 0 {
        removed
            .entry(Stage::NearDedup)
            .or_default()
            .insert("near_duplicate".into(), near);
    }

    let plan_n: u64 = plan
        .skipped
        .values()
        .flat_map(|r| r.values())
        .map(|t| t.n)
        .sum();
    let plan_bytes: u64 = plan
        .skipped
        .values()
        .flat_map(|r| r.values())
        .map(|t| t.bytes)
        .sum();
    report.n_in = plan_n + filter_stats.iter().map(|s| s.n_in).sum::<u64>();
    report.bytes_in = plan_bytes + filter_stats.iter().map(|s| s.bytes_in).sum::<u64>();
    let mut remaining = report.n_in;
    for stage in Stage::ALL {
        let reasons = removed.remove(&stage).unwrap_or_default();
        let n_removed: u64 = reasons.values().map(|t| t.n).sum();
        let bytes_removed: u64 = reasons.values().map(|t| t.bytes).sum();
        let enabled = match stage {
            Stage::Input => true,
            Stage::Language => cfg.language.enabled,
            Stage::License => cfg.license.enabled,
            Stage::Metadata => cfg.metadata.enabled,
            Stage::Quality => cfg.quality.enabled,
            Stage::Decontamination => {
                cfg.decontamination.enabled && !cfg.decontamination.benchmarks.is_empty()
            }
            Stage::ExactDedup => cfg.exact_dedup.enabled,
            Stage::NearDedup => cfg.near_dedup.enabled,
            Stage::Pii => cfg.pii.enabled,
        };
        let note = match stage {
            Stage::Decontamination => decontam_note.clone(),
            Stage::Input if cfg.input.honor_gitignore => {
                Some("files ignored by .gitignore are not counted".into())
            }
            Stage::Pii if cfg.pii.enabled => Some(format!(
                "redacted in {} kept files, removes none",
                pii.n_files
            )),
            _ => None,
        };
        report.stages.push(StageReport {
            stage,
            enabled,
            n_in: remaining,
            n_removed,
            bytes_removed,
            reasons,
            note,
        });
        remaining = remaining.saturating_sub(n_removed);
    }
    if cfg.near_dedup.enabled {
        let (bands, rows) = cfg.near_dedup.bands_rows();
        report.near_dedup = Some(NearDedupReport {
            ngram: cfg.near_dedup.ngram,
            bands,
            rows,
            threshold: cfg.near_dedup.threshold,
            n_signed: filter_stats.iter().map(|s| s.n_signed).sum(),
            n_clusters: summary.n_clusters,
            max_cluster: summary.max_cluster,
        });
    }
    report.pii = pii;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_hash_ignores_whitespace_layout_only() {
        assert_eq!(exact_hash("a  b\n\tc\n"), exact_hash(" a b c"));
        assert_ne!(exact_hash("a b c"), exact_hash("a bc"));
        assert_ne!(exact_hash("a b c"), exact_hash("A b c"));
    }

    #[test]
    fn memory_bound_grows_with_buffers_and_documents() {
        let cfg = Config::default();
        let a = memory_bound(&cfg, 2, 0, 1000);
        assert_eq!(a.total_bytes, a.fixed_bytes + 5000);
        let mut small = Config::default();
        small.resources.sort_buffer_mb = 16;
        assert!(memory_bound(&small, 2, 0, 1000).fixed_bytes < a.fixed_bytes);
    }
}
