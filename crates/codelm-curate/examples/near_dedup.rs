//! Near dedup alone, for `bench/curate/`: documents in, cluster roots out.
//!
//! Runs exactly the pipeline's code path (MinHash signatures on all cores,
//! band records spilled as sorted runs, external merge, union-find) on a JSONL
//! file of `{"text": ...}` lines, and writes one line per document: the index
//! of its cluster's smallest member (its own index when it has no duplicate).
//!
//! ```text
//! cargo run --release -p codelm-curate --example near_dedup -- \
//!     --input docs.jsonl --out clusters.txt [--bands 25 --rows 10 --ngram 5]
//!     [--seed 42 | --params datatrove_params.json] [--threads N] [--sort-buffer-mb 256]
//! ```

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use codelm_curate::dedup::{near_clusters, ShardRuns};
use codelm_curate::extsort::{BandRecord, RunWriter};
use codelm_curate::minhash::MinHasher;
use rayon::prelude::*;

struct Args {
    input: PathBuf,
    out: PathBuf,
    ngram: usize,
    bands: usize,
    rows: usize,
    seed: u64,
    params: Option<PathBuf>,
    threads: usize,
    sort_buffer_mb: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        input: PathBuf::new(),
        out: PathBuf::new(),
        ngram: 5,
        bands: 25,
        rows: 10,
        seed: 42,
        params: None,
        threads: 0,
        sort_buffer_mb: 256,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--input" => a.input = v.into(),
            "--out" => a.out = v.into(),
            "--ngram" => a.ngram = v.parse().expect("--ngram N"),
            "--bands" => a.bands = v.parse().expect("--bands N"),
            "--rows" => a.rows = v.parse().expect("--rows N"),
            "--seed" => a.seed = v.parse().expect("--seed N"),
            "--params" => a.params = Some(v.into()),
            "--threads" => a.threads = v.parse().expect("--threads N"),
            "--sort-buffer-mb" => a.sort_buffer_mb = v.parse().expect("--sort-buffer-mb N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(
        !a.input.as_os_str().is_empty() && !a.out.as_os_str().is_empty(),
        "--input and --out are required"
    );
    a
}

#[derive(serde::Deserialize)]
struct Params {
    a: Vec<u64>,
    b: Vec<u64>,
}

fn main() {
    let args = parse_args();
    let start = Instant::now();
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global()
            .expect("thread pool");
    }
    let hasher = match &args.params {
        Some(p) => {
            let params: Params =
                serde_json::from_str(&std::fs::read_to_string(p).expect("params file"))
                    .expect("params JSON");
            MinHasher::with_params(args.ngram, args.bands, args.rows, params.a, params.b)
        }
        None => MinHasher::new(args.ngram, args.bands, args.rows, args.seed),
    };
    let work = tempfile::tempdir().expect("temporary directory");
    let mut runs = RunWriter::<BandRecord>::new(work.path(), "bands", args.sort_buffer_mb << 20);
    let reader = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(&args.input).expect("input"),
    );
    let mut lines = reader.lines();
    let mut n_docs: u64 = 0;
    let mut n_signed: u64 = 0;
    loop {
        // Batches of 4096 documents: parse and sign in parallel, spill in order.
        let batch: Vec<String> = lines
            .by_ref()
            .take(4096)
            .map(|l| l.expect("read line"))
            .collect();
        if batch.is_empty() {
            break;
        }
        let bands: Vec<Option<Vec<u64>>> = batch
            .par_iter()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
                let text = v["text"].as_str().expect("text field");
                hasher.signature(text).map(|s| hasher.band_hashes(&s))
            })
            .collect();
        for b in bands {
            if let Some(b) = b {
                n_signed += 1;
                for (band, hash) in b.into_iter().enumerate() {
                    runs.push(BandRecord {
                        band: band as u32,
                        hash,
                        doc: n_docs,
                    })
                    .expect("spill");
                }
            }
            n_docs += 1;
        }
    }
    runs.finish().expect("spill");
    let signed = start.elapsed().as_secs_f64();
    let shard = ShardRuns {
        dir: work.path().to_path_buf(),
        n_docs,
    };
    let roots = near_clusters(&[shard], &[], &work.path().join("merge")).expect("clusters");
    let mut out = BufWriter::new(std::fs::File::create(&args.out).expect("output"));
    for r in &roots {
        writeln!(out, "{r}").expect("write");
    }
    out.flush().expect("write");
    let total = start.elapsed().as_secs_f64();
    let n_dups = roots
        .iter()
        .enumerate()
        .filter(|(i, r)| *i as u32 != **r)
        .count();
    eprintln!(
        "{{\"docs\": {n_docs}, \"signed\": {n_signed}, \"removed\": {n_dups}, \"seconds\": {total:.3}, \"signature_seconds\": {signed:.3}, \"docs_per_s\": {:.1}}}",
        n_docs as f64 / total
    );
}
