//! MinHash signatures and LSH bands, bit-compatible with datatrove.
//!
//! A document's tokens are the maximal runs of `[A-Za-z0-9_]` (bigcode's
//! near-dedup split, case kept); its shingles are the token `n`-grams joined
//! by one space and hashed with xxh32. Each of the `bands × rows` permutations
//! is datatrove's `((a·h + b) mod 2^64) mod (2^61 − 1)`, truncated to 32 bits,
//! so with datatrove's parameters ([`MinHasher::with_params`]) a signature is
//! the one datatrove's `MinhashDedupSignature` computes with
//! `HashConfig(precision=32, hash_fc="xxhash")` on the same shingles. A band's
//! `rows` values are hashed to 64 bits (xxh3); two documents are candidates
//! when any band hash is equal.
//!
//! The permutation loop is the hot spot of the whole pipeline: it is written
//! so the compiler vectorizes it over shingles, and compiled three times
//! (baseline, AVX2, AVX-512) with a run-time choice.
//!
//! ```
//! use codelm_curate::minhash::MinHasher;
//! let m = MinHasher::new(5, 25, 10, 42);
//! let a = m.signature("def add(a, b):\n    total = a + b\n    return total\n").unwrap();
//! let b = m.signature("def add(a, b):\n    total = a + b\n    return total  # sum\n").unwrap();
//! assert_eq!(a.len(), 250);
//! assert!(m.band_hashes(&a).iter().zip(m.band_hashes(&b)).any(|(x, y)| *x == y));
//! assert!(m.signature("too few tokens").is_none());
//! ```

use xxhash_rust::xxh3::xxh3_64;
use xxhash_rust::xxh32::xxh32;

/// The Mersenne prime 2^61 − 1 of the permutation family.
pub const MERSENNE_PRIME: u64 = (1 << 61) - 1;

/// Computes MinHash signatures and band hashes.
#[derive(Debug, Clone)]
pub struct MinHasher {
    ngram: usize,
    bands: usize,
    rows: usize,
    a: Vec<u64>,
    b: Vec<u64>,
}

/// Tokens of a text: maximal runs of ASCII letters, digits and `_`.
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
}

/// The xxh32 hashes of a text's token `n`-grams, in order, with repeats.
pub fn shingle_hashes(text: &str, ngram: usize, out: &mut Vec<u32>) {
    out.clear();
    let toks: Vec<&str> = tokens(text).collect();
    if ngram == 0 || toks.len() < ngram {
        return;
    }
    let mut buf = Vec::with_capacity(64);
    for window in toks.windows(ngram) {
        buf.clear();
        for (i, t) in window.iter().enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            buf.extend_from_slice(t.as_bytes());
        }
        out.push(xxh32(&buf, 0));
    }
}

/// Exact Jaccard similarity of two texts' shingle sets (for tests and spot checks).
pub fn jaccard(x: &str, y: &str, ngram: usize) -> f64 {
    let mut hx = Vec::new();
    let mut hy = Vec::new();
    shingle_hashes(x, ngram, &mut hx);
    shingle_hashes(y, ngram, &mut hy);
    let sx: std::collections::HashSet<u32> = hx.into_iter().collect();
    let sy: std::collections::HashSet<u32> = hy.into_iter().collect();
    if sx.is_empty() && sy.is_empty() {
        return 1.0;
    }
    sx.intersection(&sy).count() as f64 / sx.union(&sy).count() as f64
}

/// SplitMix64: a small, well-mixed generator for the permutation parameters.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl MinHasher {
    /// A hasher for `ngram`-token shingles with `bands × rows` permutations drawn from `seed`.
    ///
    /// # Panics
    /// If `bands` or `rows` is 0 (the config validation rules that out).
    pub fn new(ngram: usize, bands: usize, rows: usize, seed: u64) -> MinHasher {
        let mut state = seed;
        let n = bands * rows;
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        for _ in 0..n {
            a.push(1 + splitmix64(&mut state) % (MERSENNE_PRIME - 1));
            b.push(splitmix64(&mut state) % MERSENNE_PRIME);
        }
        MinHasher::with_params(ngram, bands, rows, a, b)
    }

    /// A hasher with explicit permutation parameters (e.g. datatrove's, to reproduce
    /// its signatures exactly).
    ///
    /// # Panics
    /// If `a` and `b` do not both hold `bands × rows` values, or `bands`/`rows` is 0.
    pub fn with_params(
        ngram: usize,
        bands: usize,
        rows: usize,
        a: Vec<u64>,
        b: Vec<u64>,
    ) -> MinHasher {
        assert!(bands > 0 && rows > 0, "bands and rows must be positive");
        assert_eq!(a.len(), bands * rows, "one `a` per permutation");
        assert_eq!(b.len(), bands * rows, "one `b` per permutation");
        MinHasher {
            ngram,
            bands,
            rows,
            a,
            b,
        }
    }

    /// Number of bands.
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Rows (permutations) per band.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Tokens per shingle.
    pub fn ngram(&self) -> usize {
        self.ngram
    }

    /// The signature of `text`, or `None` when it has fewer than `ngram` tokens
    /// (such documents are left to exact dedup, as datatrove leaves them alone).
    pub fn signature(&self, text: &str) -> Option<Vec<u32>> {
        let mut hashes = Vec::new();
        shingle_hashes(text, self.ngram, &mut hashes);
        self.signature_of_hashes(&mut hashes)
    }

    /// The signature of a set of shingle hashes (sorted and deduplicated in place).
    pub fn signature_of_hashes(&self, hashes: &mut Vec<u32>) -> Option<Vec<u32>> {
        if hashes.is_empty() {
            return None;
        }
        // The minimum over a multiset is the minimum over its set: drop repeats first.
        hashes.sort_unstable();
        hashes.dedup();
        let mut sig = vec![0u32; self.a.len()];
        permute_min(hashes, &self.a, &self.b, &mut sig);
        Some(sig)
    }

    /// One 64-bit hash per band of a signature.
    pub fn band_hashes(&self, sig: &[u32]) -> Vec<u64> {
        sig.chunks(self.rows)
            .map(|rows| {
                let mut bytes = Vec::with_capacity(rows.len() * 4);
                for r in rows {
                    bytes.extend_from_slice(&r.to_le_bytes());
                }
                xxh3_64(&bytes)
            })
            .collect()
    }
}

#[inline(always)]
fn permute_min_generic(hashes: &[u32], a: &[u64], b: &[u64], out: &mut [u32]) {
    for ((o, &ai), &bi) in out.iter_mut().zip(a).zip(b) {
        let mut m = u64::MAX;
        for &h in hashes {
            // numpy's uint64 arithmetic wraps, then `% p`; datatrove then masks to 32 bits.
            let x = ai.wrapping_mul(h as u64).wrapping_add(bi);
            let y = (x & MERSENNE_PRIME) + (x >> 61);
            let y = if y >= MERSENNE_PRIME {
                y - MERSENNE_PRIME
            } else {
                y
            };
            m = m.min(y & 0xffff_ffff);
        }
        *o = m as u32;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn permute_min_avx2(hashes: &[u32], a: &[u64], b: &[u64], out: &mut [u32]) {
    permute_min_generic(hashes, a, b, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
unsafe fn permute_min_avx512(hashes: &[u32], a: &[u64], b: &[u64], out: &mut [u32]) {
    permute_min_generic(hashes, a, b, out)
}

fn permute_min(hashes: &[u32], a: &[u64], b: &[u64], out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { permute_min_avx512(hashes, a, b, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { permute_min_avx2(hashes, a, b, out) };
        }
    }
    permute_min_generic(hashes, a, b, out)
}

/// Probability that a pair of Jaccard similarity `s` shares at least one band.
pub fn candidate_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

fn integrate(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    // Composite Simpson rule; the integrands are smooth polynomials.
    const N: usize = 512;
    let h = (hi - lo) / N as f64;
    let mut s = f(lo) + f(hi);
    for i in 1..N {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        s += w * f(lo + i as f64 * h);
    }
    s * h / 3.0
}

/// The (bands, rows) minimising the mean of false-positive and false-negative
/// areas for `threshold`, with bands × rows ≤ `num_perm`: datasketch's
/// `_optimal_param` with equal weights (bigcode's and text-dedup's choice).
pub fn optimal_params(threshold: f64, num_perm: usize) -> (usize, usize) {
    let mut best = (f64::INFINITY, (1, 1));
    for bands in 1..=num_perm {
        for rows in 1..=(num_perm / bands) {
            let fp = integrate(|s| candidate_probability(s, bands, rows), 0.0, threshold);
            let fn_ = integrate(
                |s| 1.0 - candidate_probability(s, bands, rows),
                threshold,
                1.0,
            );
            let err = 0.5 * fp + 0.5 * fn_;
            if err < best.0 {
                best = (err, (bands, rows));
            }
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_paths_agree_with_the_scalar_path() {
        let m = MinHasher::new(5, 25, 10, 7);
        let mut hashes: Vec<u32> = (0..1000u32).map(|i| i.wrapping_mul(2654435761)).collect();
        hashes.push(u32::MAX);
        hashes.push(0);
        let mut fast = vec![0u32; 250];
        let mut slow = vec![0u32; 250];
        permute_min(&hashes, &m.a, &m.b, &mut fast);
        permute_min_generic(&hashes, &m.a, &m.b, &mut slow);
        assert_eq!(fast, slow);
    }

    #[test]
    fn estimates_jaccard() {
        let base: String = (0..400)
            .map(|i| format!("let v{i} = f(v{}, {});\n", i / 3, i % 7))
            .collect();
        let mut edited = base.clone();
        edited.push_str(
            &(0..40)
                .map(|i| format!("print(w{i})\n"))
                .collect::<String>(),
        );
        let m = MinHasher::new(5, 64, 4, 1);
        let (sa, sb) = (m.signature(&base).unwrap(), m.signature(&edited).unwrap());
        let est = sa.iter().zip(&sb).filter(|(x, y)| x == y).count() as f64 / sa.len() as f64;
        let exact = jaccard(&base, &edited, 5);
        assert!((est - exact).abs() < 0.1, "estimate {est} vs exact {exact}");
    }

    #[test]
    fn optimal_params_match_datasketch() {
        // datasketch 2.0 `datasketch.lsh._optimal_param(t, n, 0.5, 0.5)` printed these.
        assert_eq!(optimal_params(0.7, 256), (25, 10));
        assert_eq!(optimal_params(0.7, 128), (14, 9));
        assert_eq!(optimal_params(0.85, 256), (13, 19));
        assert_eq!(optimal_params(0.5, 64), (14, 4));
    }

    #[test]
    fn tokenization_is_ascii_word_runs() {
        let t: Vec<&str> = tokens("fn main() { let café_x = 1; }").collect();
        assert_eq!(t, ["fn", "main", "let", "caf", "_x", "1"]);
    }
}
