//! The curation report: what each stage removed and why, in JSON and as a table.
//!
//! Counts are kept per stage and per reason, with the bytes removed and the
//! first few examples (in shard order, so a resumed run reports the same
//! examples). Everything but [`RunInfo`] is a pure function of the inputs and
//! the config: two runs, or a run and its resumption, produce the same report
//! apart from timings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::pii::PiiCounts;
use crate::record::Stage;

/// Examples kept per reason.
pub const MAX_EXAMPLES: usize = 3;

/// One example of a removal or redaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The file (or `dataset:line`).
    pub path: String,
    /// What was found (the license, the shared n-gram, the kept duplicate...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Count, bytes and examples for one reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasonTally {
    /// Files removed.
    pub n: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// The first few examples.
    pub examples: Vec<Example>,
}

impl ReasonTally {
    /// Counts one file.
    pub fn add(&mut self, bytes: u64, path: &str, detail: &str) {
        self.n += 1;
        self.bytes += bytes;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(Example {
                path: path.to_string(),
                detail: detail.to_string(),
            });
        }
    }

    /// Adds another tally (examples in order, up to the limit).
    pub fn merge(&mut self, other: &ReasonTally) {
        self.n += other.n;
        self.bytes += other.bytes;
        for e in &other.examples {
            if self.examples.len() >= MAX_EXAMPLES {
                break;
            }
            self.examples.push(e.clone());
        }
    }
}

/// Removals of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage.
    pub stage: Stage,
    /// Whether it ran.
    pub enabled: bool,
    /// Files that reached the stage.
    pub n_in: u64,
    /// Files it removed.
    pub n_removed: u64,
    /// Bytes it removed.
    pub bytes_removed: u64,
    /// Removals by reason.
    pub reasons: BTreeMap<String, ReasonTally>,
    /// A remark (e.g. "no benchmark files given").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Redactions in the kept files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PiiReport {
    /// Whether the stage ran.
    pub enabled: bool,
    /// Redactions by kind.
    pub counts: PiiCounts,
    /// Kept files with at least one redaction.
    pub n_files: u64,
    /// Examples: the file and the redacted line.
    pub examples: BTreeMap<String, Vec<Example>>,
}

/// Near-dedup parameters and cluster statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NearDedupReport {
    /// Tokens per shingle.
    pub ngram: usize,
    /// Bands.
    pub bands: usize,
    /// Rows per band.
    pub rows: usize,
    /// Target Jaccard threshold.
    pub threshold: f64,
    /// Documents with a signature (at least `ngram` tokens).
    pub n_signed: u64,
    /// Clusters with more than one document.
    pub n_clusters: u64,
    /// Largest cluster.
    pub max_cluster: u64,
}

/// Memory bound of the run (see [`crate::memory_bound`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryBound {
    /// Fixed buffers, in bytes.
    pub fixed_bytes: u64,
    /// Bytes per document (dedup step).
    pub per_doc_bytes: u64,
    /// Documents reaching dedup.
    pub n_docs: u64,
    /// The bound: fixed + per-doc × documents.
    pub total_bytes: u64,
}

/// Timings and resumption; the only part of the report that differs between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Worker threads.
    pub threads: usize,
    /// Shards already finished by an earlier run (phase 1, phase 3).
    pub resumed_shards: (usize, usize),
    /// Seconds per phase: plan, filter, dedup, write.
    pub seconds: BTreeMap<String, f64>,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Report format version.
    pub format: u32,
    /// Inputs as given.
    pub inputs: Vec<String>,
    /// Shards.
    pub n_shards: usize,
    /// Files and rows read (including those skipped while reading).
    pub n_in: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Files kept.
    pub n_out: u64,
    /// Bytes kept (after redaction).
    pub bytes_out: u64,
    /// Per-stage removals, in pipeline order.
    pub stages: Vec<StageReport>,
    /// Redactions.
    pub pii: PiiReport,
    /// Near-dedup details.
    pub near_dedup: Option<NearDedupReport>,
    /// Kept files by language: (files, bytes).
    pub languages: BTreeMap<String, (u64, u64)>,
    /// Kept files by license expression.
    pub licenses: BTreeMap<String, u64>,
    /// The memory bound.
    pub memory: MemoryBound,
    /// Timings; excluded from comparisons.
    pub run: RunInfo,
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// The report without its run section (for comparing two runs).
    pub fn without_run_info(&self) -> Report {
        Report {
            run: RunInfo::default(),
            ..self.clone()
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<16} {:>10} {:>10} {:>11}  top reasons",
            "stage", "in", "removed", "removed MB"
        );
        for st in &self.stages {
            let mut reasons: Vec<(&String, &ReasonTally)> = st.reasons.iter().collect();
            reasons.sort_by(|a, b| b.1.n.cmp(&a.1.n).then(a.0.cmp(b.0)));
            let top: Vec<String> = reasons
                .iter()
                .take(4)
                .map(|(r, t)| format!("{r} {}", t.n))
                .collect();
            let mut tail = top.join(", ");
            if reasons.len() > 4 {
                tail.push_str(&format!(", +{} more", reasons.len() - 4));
            }
            if !st.enabled {
                tail = format!(
                    "(skipped{})",
                    st.note
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                );
            } else if let Some(n) = &st.note {
                tail = format!("{tail} ({n})");
            }
            let _ = writeln!(
                s,
                "{:<16} {:>10} {:>10} {:>11}  {}",
                st.stage.name(),
                st.n_in,
                st.n_removed,
                mb(st.bytes_removed),
                tail
            );
        }
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        let _ = writeln!(
            s,
            "kept {} of {} files ({:.1}%), {} of {} MB ({:.1}%)",
            self.n_out,
            self.n_in,
            pct(self.n_out, self.n_in),
            mb(self.bytes_out),
            mb(self.bytes_in),
            pct(self.bytes_out, self.bytes_in)
        );
        if self.pii.enabled {
            let c = &self.pii.counts;
            let _ = writeln!(
                s,
                "pii redacted in {} files: {} emails, {} IP addresses, {} keys, {} passwords",
                self.pii.n_files, c.emails, c.ip_addresses, c.keys, c.passwords
            );
        }
        if let Some(nd) = &self.near_dedup {
            let _ = writeln!(
                s,
                "near dedup: {}-gram shingles, {} bands x {} rows (threshold {}), {} clusters, largest {}",
                nd.ngram, nd.bands, nd.rows, nd.threshold, nd.n_clusters, nd.max_cluster
            );
        }
        let mut langs: Vec<_> = self.languages.iter().collect();
        langs.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        let langs: Vec<String> = langs
            .iter()
            .take(8)
            .map(|(l, (n, _))| format!("{l} {n}"))
            .collect();
        if !langs.is_empty() {
            let _ = writeln!(s, "kept by language: {}", langs.join(", "));
        }
        let mut lics: Vec<_> = self.licenses.iter().collect();
        lics.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let lics: Vec<String> = lics
            .iter()
            .take(8)
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        if !lics.is_empty() {
            let _ = writeln!(s, "kept by license: {}", lics.join(", "));
        }
        let _ = writeln!(
            s,
            "memory bound: {} MB ({} MB fixed + {} B x {} docs)",
            mb(self.memory.total_bytes),
            mb(self.memory.fixed_bytes),
            self.memory.per_doc_bytes,
            self.memory.n_docs
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_keep_the_first_examples() {
        let mut a = ReasonTally::default();
        for i in 0..5 {
            a.add(10, &format!("f{i}"), "");
        }
        assert_eq!(a.n, 5);
        assert_eq!(a.bytes, 50);
        assert_eq!(
            a.examples
                .iter()
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>(),
            ["f0", "f1", "f2"]
        );
        let mut b = ReasonTally::default();
        b.add(1, "g0", "x");
        b.merge(&a);
        assert_eq!(b.n, 6);
        assert_eq!(b.examples.len(), MAX_EXAMPLES);
        assert_eq!(b.examples[0].path, "g0");
    }

    #[test]
    fn table_lists_every_stage() {
        let mut r = Report {
            n_in: 10,
            n_out: 4,
            ..Default::default()
        };
        for stage in Stage::ALL {
            let mut reasons = BTreeMap::new();
            reasons.insert(
                "because".to_string(),
                ReasonTally {
                    n: 1,
                    bytes: 2_000_000,
                    examples: vec![],
                },
            );
            r.stages.push(StageReport {
                stage,
                enabled: stage != Stage::Metadata,
                n_in: 10,
                n_removed: 1,
                bytes_removed: 2_000_000,
                reasons,
                note: None,
            });
        }
        let t = r.table();
        assert!(t.contains("near_dedup"));
        let metadata = t.lines().find(|l| l.starts_with("metadata")).unwrap();
        assert!(metadata.ends_with("2.0  (skipped)"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.starts_with("near_dedup") && l.ends_with("because 1")),
            "{t}"
        );
        assert!(t.contains("kept 4 of 10 files (40.0%)"));
    }
}
