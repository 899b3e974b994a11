//! MinHash signatures against datatrove's saved outputs.
//!
//! `fixtures/minhash/reference.json` (format 1) was written by
//! `fixtures/minhash/make_reference.py` with datatrove 0.10.1: its permutation
//! parameters and its `get_signature` on xxh32 shingles. Signatures must be
//! equal bit for bit (tolerance: none).

use codelm_curate::minhash::{shingle_hashes, MinHasher};

#[derive(serde::Deserialize)]
struct Reference {
    format: u32,
    ngram: usize,
    bands: usize,
    rows: usize,
    a: Vec<u64>,
    b: Vec<u64>,
    docs: Vec<Doc>,
}

#[derive(serde::Deserialize)]
struct Doc {
    text: String,
    shingles: Vec<u32>,
    signature: Option<Vec<u32>>,
}

fn check(hasher: &MinHasher, doc: &Doc) {
    let mut shingles = Vec::new();
    shingle_hashes(&doc.text, hasher.ngram(), &mut shingles);
    assert_eq!(shingles, doc.shingles, "shingles of {:?}", doc.text);
    assert_eq!(
        hasher.signature(&doc.text),
        doc.signature,
        "signature of {:?}",
        doc.text
    );
}

#[test]
fn signatures_match_datatrove() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minhash/reference.json"
    ))
    .unwrap();
    let r: Reference = serde_json::from_str(&text).unwrap();
    assert_eq!(r.format, 1);
    let hasher = MinHasher::with_params(r.ngram, r.bands, r.rows, r.a.clone(), r.b.clone());
    assert!(
        r.docs.iter().any(|d| d.signature.is_none()),
        "the fixture covers a too-short text"
    );
    for doc in &r.docs {
        check(&hasher, doc);
    }
}
