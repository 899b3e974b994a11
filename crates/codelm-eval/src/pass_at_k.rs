//! The unbiased pass@k estimator (Chen et al., 2021, "Evaluating Large
//! Language Models Trained on Code").
//!
//! With `n` samples of which `c` pass, the probability that at least one of
//! `k` samples drawn without replacement passes is `1 - C(n-c, k) / C(n, k)`.
//! The binomials overflow long before `n = 200`, so we use the equivalent
//! product `1 - prod_{i=n-c+1}^{n} (1 - k/i)`, as the paper's reference code
//! does.
//!
//! ```
//! use codelm_eval::pass_at_k;
//!
//! assert!((pass_at_k(10, 3, 1).unwrap() - 0.3).abs() < 1e-12);
//! assert_eq!(pass_at_k(5, 0, 1), Some(0.0));
//! assert_eq!(pass_at_k(1, 1, 10), None); // k > n: undefined
//! ```

/// The k values reported when `n >= k`.
pub const REPORTED_KS: [usize; 3] = [1, 10, 100];

/// pass@k for one task with `n` samples and `c` correct ones; `None` when
/// `k` is 0, `k > n` or `c > n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let product: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    Some(1.0 - product)
}

/// Mean pass@k over tasks given as `(n, c)` pairs; `None` when there is no
/// task or any task has fewer than `k` samples.
pub fn mean_pass_at_k(counts: &[(usize, usize)], k: usize) -> Option<f64> {
    if counts.is_empty() {
        return None;
    }
    let mut sum = 0.0;
    for &(n, c) in counts {
        sum += pass_at_k(n, c, k)?;
    }
    Some(sum / counts.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `1 - C(n-c, k) / C(n, k)` with exact integer binomials, for small n.
    fn by_binomials(n: u128, c: u128, k: u128) -> f64 {
        fn choose(n: u128, k: u128) -> u128 {
            if k > n {
                return 0;
            }
            (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
        }
        1.0 - choose(n - c, k) as f64 / choose(n, k) as f64
    }

    #[test]
    fn matches_the_binomial_formula() {
        for n in 1..=40u128 {
            for c in 0..=n {
                for k in [1, 2, 5, 10, 20] {
                    if k > n {
                        continue;
                    }
                    let fast = pass_at_k(n as usize, c as usize, k as usize).unwrap();
                    let exact = by_binomials(n, c, k);
                    assert!((fast - exact).abs() < 1e-12, "n={n} c={c} k={k}");
                }
            }
        }
    }

    #[test]
    fn known_values() {
        assert!((pass_at_k(10, 3, 1).unwrap() - 0.3).abs() < 1e-15);
        assert_eq!(pass_at_k(10, 10, 10), Some(1.0));
        assert_eq!(pass_at_k(10, 0, 10), Some(0.0));
        assert!((pass_at_k(10, 1, 10).unwrap() - 1.0).abs() < 1e-15);
        // 1 - C(198, 100) / C(200, 100) = 1 - (100 * 99) / (200 * 199).
        let expected = 1.0 - (100.0 * 99.0) / (200.0 * 199.0);
        assert!((pass_at_k(200, 2, 100).unwrap() - expected).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 6, 1), None);
        assert_eq!(pass_at_k(5, 1, 0), None);
    }

    #[test]
    fn mean_needs_k_samples_everywhere() {
        assert_eq!(mean_pass_at_k(&[(1, 1), (1, 0)], 1), Some(0.5));
        assert_eq!(mean_pass_at_k(&[(10, 1), (1, 0)], 10), None);
        assert_eq!(mean_pass_at_k(&[], 1), None);
    }
}
