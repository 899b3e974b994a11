//! The cross-shard step: exact and near duplicates over the whole corpus.
//!
//! Phase 1 leaves, for every shard, sorted runs of content hashes and of LSH
//! band hashes (see [`crate::extsort`]). This step merges them:
//!
//! 1. Exact: runs of (hash, doc) merged in order; in each group of equal
//!    hashes the first document (lowest id) is kept, the others are marked.
//! 2. Near: runs of (band, band hash, doc) merged in order; documents sharing a
//!    (band, hash) are joined in a union-find whose root is always the lowest
//!    id. Exact duplicates are left out (their twin speaks for them). Every
//!    document that is not its cluster's root is marked.
//!
//! Memory is one status byte and one `u32` parent per document (5 bytes per
//! document) plus the merge buffers; document ids are dense (`shard offset +
//! index in shard`), so the result does not depend on threads or run sizes.
//! The same two steps are a sort and a connected-components job on a cluster
//! engine (below).
//!
//! # Path to a cluster
//!
//! Only dedup crosses shards, and it is two textbook jobs. (1) The per-shard work
//! — filters, redaction, MinHash — is a map over files: a Spark `mapPartitions`,
//! a Ray Data `map_batches`, or datatrove's stage 1, with `minhash.rs`'s
//! permutation family (datatrove's `(a·h + b) mod 2^64 mod (2^61 − 1)`, 32-bit)
//! so signatures are interchangeable with datatrove's given the same parameters.
//! (2) The band records `(band, band hash, doc)` are a shuffle keyed by `(band,
//! hash)` — Spark `groupByKey`, datatrove's `MinhashDedupBuckets` (one task per
//! band), or any sort; each group yields edges `(first doc, doc)`. (3) The
//! union-find over those edges is connected components: GraphFrames'
//! `connectedComponents`, the large-star/small-star iteration text-dedup's Spark
//! script uses, or, since edges are few (≈ duplicates, not documents), the
//! single-machine union-find of `dedup.rs` fed from the shuffled edges, as
//! datatrove's `MinhashDedupCluster` does. Taking the component's minimum id as
//! its representative keeps the cluster result identical to the one-machine run.
//! (4) The write pass is again a map, joining each shard with the `(doc → keep?)`
//! table. Exact dedup is the same shuffle keyed by the content hash. On one
//! machine the "engine" is the external sort in `extsort.rs`, which is why the
//! 5-bytes-per-document union-find is the only state that grows with the corpus.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::extsort::{self, BandRecord, HashRecord};
use crate::report::{Example, MAX_EXAMPLES};

/// Status of a kept document.
pub const KEEP: u8 = 0;
/// Status of an exact duplicate.
pub const EXACT: u8 = 1;
/// Status of a near duplicate.
pub const NEAR: u8 = 2;

/// Most documents per run: ids are 31-bit so a root can carry its cluster size.
pub const MAX_DOCS: u64 = (1 << 31) - 1;

/// Bytes of dedup state per document.
pub const BYTES_PER_DOC: u64 = 5;

/// One shard's phase-1 output, as the dedup step sees it.
#[derive(Debug, Clone)]
pub struct ShardRuns {
    /// Directory holding `exact-*.run`, `bands-*.run` and `paths.jsonl`.
    pub dir: PathBuf,
    /// Documents staged by the shard.
    pub n_docs: u64,
}

/// What the dedup step found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupSummary {
    /// Exact duplicates marked.
    pub n_exact: u64,
    /// Near duplicates marked.
    pub n_near: u64,
    /// Clusters of near duplicates with more than one document.
    pub n_clusters: u64,
    /// Largest near-duplicate cluster.
    pub max_cluster: u64,
    /// Examples of exact duplicates: the removed file and the kept one.
    pub exact_examples: Vec<Example>,
    /// Examples of near duplicates: the removed file and its cluster's kept file.
    pub near_examples: Vec<Example>,
}

/// Union-find over dense ids whose root is always the smallest id of its set.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    /// The root of `x`'s set (path halving).
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Joins the sets of `a` and `b`; the smaller root becomes the root.
    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }

    fn into_parents(self) -> Vec<u32> {
        self.parent
    }
}

fn runs_in(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".run"))
        })
        .collect();
    runs.sort();
    Ok(runs)
}

/// The global id of each shard's first document, and the number of
/// documents; too many for a `u32` id is an error.
fn doc_offsets(shards: &[ShardRuns]) -> Result<(Vec<u64>, u64)> {
    let mut offsets = Vec::with_capacity(shards.len());
    let mut total = 0u64;
    for s in shards {
        offsets.push(total);
        total += s.n_docs;
    }
    if total > MAX_DOCS {
        return Err(Error::TooManyDocuments {
            n_docs: total,
            limit: MAX_DOCS,
        });
    }
    Ok((offsets, total))
}

/// Marks duplicates. Returns one status byte per document ([`KEEP`], [`EXACT`], [`NEAR`]).
pub fn find_duplicates(
    shards: &[ShardRuns],
    exact: bool,
    near: bool,
    tmp_dir: &Path,
) -> Result<(Vec<u8>, DedupSummary)> {
    let (offsets, total) = doc_offsets(shards)?;
    let dense = |doc: u64| -> Result<u32> {
        let shard = (doc >> 32) as usize;
        let local = doc & 0xffff_ffff;
        match (offsets.get(shard), shards.get(shard)) {
            (Some(off), Some(s)) if local < s.n_docs => Ok((off + local) as u32),
            _ => Err(Error::Corrupt {
                path: tmp_dir.to_path_buf(),
                reason: format!("document id {shard}:{local} out of range"),
            }),
        }
    };
    let mut status = vec![KEEP; total as usize];
    let mut summary = DedupSummary::default();
    let mut exact_pairs: Vec<(u32, u32)> = Vec::new();
    let mut near_pairs: Vec<(u32, u32)> = Vec::new();

    if exact {
        let mut runs = Vec::new();
        for s in shards {
            runs.extend(runs_in(&s.dir, "exact-")?);
        }
        let mut group: Option<(u128, u32)> = None;
        extsort::merge::<HashRecord>(&runs, tmp_dir, |r| {
            let d = dense(r.doc)?;
            match group {
                Some((h, first)) if h == r.hash => {
                    status[d as usize] = EXACT;
                    summary.n_exact += 1;
                    if exact_pairs.len() < MAX_EXAMPLES {
                        exact_pairs.push((d, first));
                    }
                }
                _ => group = Some((r.hash, d)),
            }
            Ok(())
        })?;
    }

    if near {
        let mut parent = near_clusters(shards, &status, tmp_dir)?;
        // Count cluster sizes in the roots' slots (flag bit 31 + size); members
        // hold their root directly, and a root (the smallest id) comes first.
        const FLAG: u32 = 1 << 31;
        for d in 0..total as u32 {
            let p = parent[d as usize];
            if p == d {
                parent[d as usize] = FLAG | 1;
            } else if p & FLAG == 0 {
                parent[p as usize] += 1;
                status[d as usize] = NEAR;
                summary.n_near += 1;
                if near_pairs.len() < MAX_EXAMPLES {
                    near_pairs.push((d, p));
                }
            }
        }
        for p in &parent {
            if p & FLAG != 0 {
                let size = (p & !FLAG) as u64;
                if size > 1 {
                    summary.n_clusters += 1;
                    summary.max_cluster = summary.max_cluster.max(size);
                }
            }
        }
    }

    let wanted: Vec<u32> = exact_pairs
        .iter()
        .chain(&near_pairs)
        .flat_map(|&(a, b)| [a, b])
        .collect();
    let paths = resolve_paths(shards, &offsets, &wanted)?;
    let example = |(removed, kept): (u32, u32)| Example {
        path: paths.get(&removed).cloned().unwrap_or_default(),
        detail: format!(
            "duplicate of {}",
            paths.get(&kept).cloned().unwrap_or_default()
        ),
    };
    summary.exact_examples = exact_pairs.into_iter().map(example).collect();
    summary.near_examples = near_pairs.into_iter().map(example).collect();
    Ok((status, summary))
}

/// The near-duplicate clusters of the shards' band runs: for every document,
/// the smallest id of its cluster (itself when alone). Documents whose
/// `status` is [`EXACT`] are left out (they stay alone).
pub fn near_clusters(shards: &[ShardRuns], status: &[u8], tmp_dir: &Path) -> Result<Vec<u32>> {
    let (offsets, total) = doc_offsets(shards)?;
    let mut runs = Vec::new();
    for s in shards {
        runs.extend(runs_in(&s.dir, "bands-")?);
    }
    let mut uf = UnionFind::new(total as usize);
    let mut group: Option<(u32, u64, u32)> = None;
    extsort::merge::<BandRecord>(&runs, tmp_dir, |r| {
        let shard = (r.doc >> 32) as usize;
        let local = r.doc & 0xffff_ffff;
        let d = match (offsets.get(shard), shards.get(shard)) {
            (Some(off), Some(s)) if local < s.n_docs => (off + local) as u32,
            _ => {
                return Err(Error::Corrupt {
                    path: tmp_dir.to_path_buf(),
                    reason: format!("document id {shard}:{local} out of range"),
                })
            }
        };
        if status.get(d as usize) == Some(&EXACT) {
            return Ok(());
        }
        match group {
            Some((band, hash, first)) if band == r.band && hash == r.hash => uf.union(first, d),
            _ => group = Some((r.band, r.hash, d)),
        }
        Ok(())
    })?;
    for d in 0..total as u32 {
        uf.find(d);
    }
    Ok(uf.into_parents())
}

/// Paths of the given dense ids, read from the shards' `paths.jsonl`.
fn resolve_paths(
    shards: &[ShardRuns],
    offsets: &[u64],
    ids: &[u32],
) -> Result<HashMap<u32, String>> {
    let mut by_shard: BTreeMap<usize, Vec<(u64, u32)>> = BTreeMap::new();
    for &id in ids {
        let shard = offsets.partition_point(|&o| o <= id as u64) - 1;
        by_shard
            .entry(shard)
            .or_default()
            .push((id as u64 - offsets[shard], id));
    }
    let mut out = HashMap::new();
    for (shard, wanted) in by_shard {
        let path = shards[shard].dir.join("paths.jsonl");
        let f = std::fs::File::open(&path).map_err(Error::io(&path))?;
        for (line_idx, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(Error::io(&path))?;
            for &(local, id) in &wanted {
                if local == line_idx as u64 {
                    let p: String = serde_json::from_str(&line).map_err(|cause| Error::Json {
                        path: path.clone(),
                        line: line_idx + 1,
                        cause,
                    })?;
                    out.insert(id, p);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extsort::RunWriter;

    #[test]
    fn union_find_roots_are_minimal() {
        let mut uf = UnionFind::new(6);
        uf.union(4, 5);
        uf.union(5, 2);
        uf.union(1, 0);
        assert_eq!(uf.find(4), 2);
        assert_eq!(uf.find(5), 2);
        assert_eq!(uf.find(1), 0);
        assert_eq!(uf.find(3), 3);
    }

    fn shard(dir: &Path, idx: u64, paths: &[&str], exact: &[u128], bands: &[&[u64]]) -> ShardRuns {
        let d = dir.join(format!("s{idx}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut e = RunWriter::<HashRecord>::new(&d, "exact", 48);
        let mut b = RunWriter::<BandRecord>::new(&d, "bands", 40);
        for (local, h) in exact.iter().enumerate() {
            let doc = idx << 32 | local as u64;
            e.push(HashRecord { hash: *h, doc }).unwrap();
            for (band, bh) in bands[local].iter().enumerate() {
                b.push(BandRecord {
                    band: band as u32,
                    hash: *bh,
                    doc,
                })
                .unwrap();
            }
        }
        e.finish().unwrap();
        b.finish().unwrap();
        let lines: String = paths
            .iter()
            .map(|p| format!("{}\n", serde_json::to_string(p).unwrap()))
            .collect();
        std::fs::write(d.join("paths.jsonl"), lines).unwrap();
        ShardRuns {
            dir: d,
            n_docs: paths.len() as u64,
        }
    }

    #[test]
    fn marks_exact_then_near_duplicates_across_shards() {
        let dir = tempfile::tempdir().unwrap();
        // Docs (dense ids): 0 a, 1 b, 2 c | 3 a', 4 d, 5 e.
        // a' is an exact copy of a; b~d share band 1; d~e share band 0 (transitive cluster b,d,e);
        // c shares a band with a' only, which is dropped as exact, and with a (band 2).
        let s0 = shard(
            dir.path(),
            0,
            &["a", "b", "c"],
            &[1, 2, 3],
            &[&[10, 11, 12], &[20, 21, 22], &[30, 31, 12]],
        );
        let s1 = shard(
            dir.path(),
            1,
            &["a2", "d", "e"],
            &[1, 4, 5],
            &[&[10, 11, 12], &[40, 21, 42], &[40, 51, 52]],
        );
        let (status, summary) =
            find_duplicates(&[s0, s1], true, true, &dir.path().join("tmp")).unwrap();
        assert_eq!(status, vec![KEEP, KEEP, NEAR, EXACT, NEAR, NEAR]);
        assert_eq!((summary.n_exact, summary.n_near), (1, 3));
        assert_eq!((summary.n_clusters, summary.max_cluster), (2, 3));
        assert_eq!(summary.exact_examples[0].path, "a2");
        assert_eq!(summary.exact_examples[0].detail, "duplicate of a");
        assert_eq!(summary.near_examples[0].path, "c");
        assert_eq!(summary.near_examples[0].detail, "duplicate of a");
        assert_eq!(summary.near_examples[1].detail, "duplicate of b");
    }

    #[test]
    fn stages_can_be_off() {
        let dir = tempfile::tempdir().unwrap();
        let s0 = shard(dir.path(), 0, &["a", "b"], &[1, 1], &[&[1], &[1]]);
        let (status, _) =
            find_duplicates(std::slice::from_ref(&s0), false, false, dir.path()).unwrap();
        assert_eq!(status, vec![KEEP, KEEP]);
        let (status, _) =
            find_duplicates(std::slice::from_ref(&s0), false, true, dir.path()).unwrap();
        assert_eq!(status, vec![KEEP, NEAR]);
        let (status, _) = find_duplicates(&[s0], true, false, dir.path()).unwrap();
        assert_eq!(status, vec![KEEP, EXACT]);
    }
}
