//! Small element-wise and row-wise operations of the forward pass.

/// `x ← x / rms(x) · weight`, row by row (`xs` is `(n, weight.len())`).
pub fn rms_norm(xs: &mut [f32], weight: &[f32], eps: f32) {
    for row in xs.chunks_exact_mut(weight.len()) {
        let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        let scale = 1.0 / (mean_sq + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

/// `gate ← silu(gate) · up`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// Adds `bias` to each row of `xs`.
pub fn add_bias(xs: &mut [f32], bias: &[f32]) {
    for row in xs.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// `dst += src`.
pub fn add_in_place(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// In-place softmax.
pub fn softmax(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in xs.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in xs.iter_mut() {
        *v /= sum;
    }
}

/// Whether the AVX2+FMA versions can run (checked once, then cached by std).
#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time; lengths are equal.
        return unsafe { avx2::dot(a, b) };
    }
    // Eight independent accumulators let the compiler vectorise without
    // reassociating a single sum.
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for idx in chunks * 8..a.len() {
        sum += a[idx] * b[idx];
    }
    sum
}

/// `dst += scale · src`.
#[inline]
pub fn axpy(dst: &mut [f32], scale: f32, src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time; lengths are equal.
        return unsafe { avx2::axpy(dst, scale, src) };
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d += scale * s;
    }
}

/// `out = Σ_t weights[t] · src[t * stride..t * stride + out.len()]`, with each
/// element's terms added in `t` order exactly as `out.fill(0.0)` followed by one
/// [`axpy`] per `t` would (so the result is bit-identical), but with the sums held
/// in registers instead of stored and reloaded for every `t`.
///
/// # Panics
/// If `src` is too short for `weights.len()` rows.
pub fn weighted_sum(out: &mut [f32], weights: &[f32], src: &[f32], stride: usize) {
    if let Some(last) = weights.len().checked_sub(1) {
        assert!(src.len() >= last * stride + out.len());
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time; `src` is long enough.
        return unsafe { avx2::weighted_sum(out, weights, src, stride) };
    }
    out.fill(0.0);
    for (t, &w) in weights.iter().enumerate() {
        axpy(out, w, &src[t * stride..t * stride + out.len()]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::weighted_sum`]: 64 outputs (eight registers) per pass over the rows.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(out: &mut [f32], weights: &[f32], src: &[f32], stride: usize) {
        let n = out.len();
        let mut c = 0;
        while c + 8 <= n {
            let width = ((n - c) / 8).min(8);
            let mut acc = [_mm256_setzero_ps(); 8];
            for (t, &w) in weights.iter().enumerate() {
                let k = _mm256_set1_ps(w);
                let row = src.as_ptr().add(t * stride + c);
                for (i, acc) in acc.iter_mut().enumerate().take(width) {
                    *acc = _mm256_fmadd_ps(k, _mm256_loadu_ps(row.add(8 * i)), *acc);
                }
            }
            for (i, acc) in acc.iter().enumerate().take(width) {
                _mm256_storeu_ps(out.as_mut_ptr().add(c + 8 * i), *acc);
            }
            c += 8 * width;
        }
        // The tail as `axpy`'s scalar tail computes it.
        for (i, o) in out.iter_mut().enumerate().skip(c) {
            *o = 0.0;
            for (t, &w) in weights.iter().enumerate() {
                *o += w * src[t * stride + i];
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                acc0,
            );
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i + 8)),
                _mm256_loadu_ps(b.as_ptr().add(i + 8)),
                acc1,
            );
            i += 16;
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let lo = _mm256_castps256_ps128(acc);
        let hi = _mm256_extractf128_ps(acc, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        let mut sum = _mm_cvtss_f32(s);
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(dst: &mut [f32], scale: f32, src: &[f32]) {
        let n = dst.len();
        let k = _mm256_set1_ps(scale);
        let mut i = 0;
        while i + 8 <= n {
            let d = _mm256_loadu_ps(dst.as_ptr().add(i));
            _mm256_storeu_ps(
                dst.as_mut_ptr().add(i),
                _mm256_fmadd_ps(k, _mm256_loadu_ps(src.as_ptr().add(i)), d),
            );
            i += 8;
        }
        while i < n {
            dst[i] += scale * src[i];
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_weight_gives_unit_rms() {
        let mut xs = vec![3.0, 4.0, 0.0, 0.0];
        rms_norm(&mut xs, &[1.0; 4], 0.0);
        let rms = (xs.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-6);
    }

    #[test]
    fn dot_and_axpy_match_plain_loops_for_odd_lengths() {
        for n in [0, 1, 7, 8, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - expected).abs() < 1e-4, "n={n}");
            let mut d = a.clone();
            axpy(&mut d, 0.5, &b);
            for i in 0..n {
                assert!((d[i] - (a[i] + 0.5 * b[i])).abs() < 1e-6);
            }
        }
    }

    /// `weighted_sum` is bit-identical to zeroing and one `axpy` per row, for
    /// widths with and without a tail, one pass or several.
    #[test]
    fn weighted_sum_equals_repeated_axpy() {
        for (width, stride, rows) in [
            (64, 128, 37),
            (128, 256, 5),
            (100, 100, 9),
            (7, 9, 3),
            (64, 64, 0),
        ] {
            let src: Vec<f32> = (0..stride * rows + width)
                .map(|i| (i as f32 * 0.173).sin())
                .collect();
            let weights: Vec<f32> = (0..rows).map(|t| (t as f32 * 0.71).cos().abs()).collect();
            let mut expected = vec![0.0f32; width];
            for (t, &w) in weights.iter().enumerate() {
                axpy(&mut expected, w, &src[t * stride..t * stride + width]);
            }
            let mut got = vec![1.0f32; width];
            weighted_sum(&mut got, &weights, &src, stride);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "width {width} rows {rows}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let mut xs = vec![1000.0, 1000.0, -1000.0];
        softmax(&mut xs);
        assert!((xs[0] - 0.5).abs() < 1e-6 && xs[2] == 0.0);
    }
}
