//! Small element-wise and row-wise operations of the forward pass.

#[cfg(target_arch = "x86_64")]
use crate::isa::{self, Isa};

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
    assert_eq!(gate.len(), up.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512F was detected at run time; the lengths are equal.
        return unsafe { avx512::swiglu(gate, up) };
    }
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
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512F was detected at run time.
        return unsafe { avx512::softmax(xs) };
    }
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

/// `x ← e^x` for every element; `e^x` is exactly zero below −104 (where
/// `f32` underflows anyway), for −∞ and for NaN.
pub fn exp_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512F was detected at run time.
        return unsafe { avx512::exp_in_place(xs) };
    }
    for x in xs.iter_mut() {
        *x = if *x >= -104.0 { x.exp() } else { 0.0 };
    }
}

/// The rows `t < len` of a matrix, row `t` being `width` floats at `t · stride`
/// of its piece: a cache's keys or values, held as its shared prefix's rows and
/// then its own. Each piece is `(floats, rows)`; the attention functions take
/// the rows in order, so where the pieces split changes no bit.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    /// `(floats, rows)` of each piece, in row order.
    pub pieces: &'a [(&'a [f32], usize)],
    /// Floats from one row's start to the next one's.
    pub stride: usize,
}

impl Rows<'_> {
    /// Rows in all pieces.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|&(_, n)| n).sum()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Panics unless every piece holds its rows `width` floats wide.
    fn check(&self, width: usize) {
        for &(floats, n) in self.pieces {
            assert!(n == 0 || floats.len() >= (n - 1) * self.stride + width);
        }
    }

    /// `(t, row t)` for every row in order, each row running on to its
    /// piece's end.
    fn each(&self) -> impl Iterator<Item = (usize, &[f32])> + '_ {
        let stride = self.stride;
        self.pieces
            .iter()
            .flat_map(move |&(floats, n)| (0..n).map(move |t| &floats[t * stride..]))
            .enumerate()
    }
}

/// Attention scores of `heads` query heads (`qs`, `heads · head_dim`) against the
/// keys `keys`: `out[h · len + t] = scale · q_h · k_t` for `t < len = keys.len()`.
/// Every score is computed the same way whatever `len` is and however the keys
/// are split into pieces.
pub fn scores(qs: &[f32], keys: Rows, scale: f32, heads: usize, out: &mut [f32]) {
    let hd = qs.len() / heads;
    let len = keys.len();
    assert!(qs.len() == heads * hd && out.len() == heads * len);
    keys.check(hd);
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && matches!(hd, 64 | 128) {
        let mut start = 0;
        for &(floats, n) in keys.pieces {
            // SAFETY: AVX-512F was detected at run time; the lengths were checked.
            unsafe {
                match hd {
                    64 => avx512::scores::<4>(qs, floats, keys.stride, n, scale, out, len, start),
                    _ => avx512::scores::<8>(qs, floats, keys.stride, n, scale, out, len, start),
                }
            }
            start += n;
        }
        return;
    }
    for (t, key) in keys.each() {
        for (h, qh) in qs.chunks_exact(hd).enumerate() {
            out[h * len + t] = dot(qh, &key[..hd]) * scale;
        }
    }
}

/// [`weighted_sum`] for several heads that share `src`: head `h` writes
/// `out[h · width..][..width]` from `weights[h · len..][..len]`, where `width =
/// out.len() / heads` and `len = weights.len() / heads = src.len()`.
/// Bit-identical to one [`weighted_sum`] per head; each row of `src` is loaded
/// once for all heads.
pub fn weighted_sums(out: &mut [f32], weights: &[f32], src: Rows, heads: usize) {
    let (width, len) = (out.len() / heads, weights.len() / heads);
    assert!(out.len() == width * heads && weights.len() == len * heads && src.len() == len);
    src.check(width);
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && matches!(width, 64 | 128) {
        // SAFETY: AVX-512F was detected at run time; `src` is long enough.
        unsafe {
            match width {
                64 => avx512::weighted_sums::<4>(out, weights, src),
                _ => avx512::weighted_sums::<8>(out, weights, src),
            }
        }
        return;
    }
    // Indexed, not zipped with the weights' chunks: with no weights (`len` 0)
    // every head's output must still be written (zeros).
    for (h, o) in out.chunks_exact_mut(width.max(1)).enumerate() {
        weighted_sum(o, &weights[h * len..(h + 1) * len], src);
    }
}

/// Whether the AVX-512 versions can run.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx512() -> bool {
    isa::features().has(Isa::Avx512)
}

/// Whether the AVX2+FMA versions can run.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    isa::features().has(Isa::Avx2)
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

/// `out = Σ_t weights[t] · src_t[..out.len()]`, with each element's terms added
/// in `t` order exactly as `out.fill(0.0)` followed by one [`axpy`] per `t` would
/// (so the result is bit-identical), but with the sums held in registers instead
/// of stored and reloaded for every `t`.
///
/// # Panics
/// If `src` does not hold `weights.len()` rows of `out.len()` floats.
pub fn weighted_sum(out: &mut [f32], weights: &[f32], src: Rows) {
    assert_eq!(src.len(), weights.len());
    src.check(out.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time; `src` is long enough.
        return unsafe { avx2::weighted_sum(out, weights, src) };
    }
    out.fill(0.0);
    let width = out.len();
    for (t, row) in src.each() {
        axpy(out, weights[t], &row[..width]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Rows;
    use std::arch::x86_64::*;

    /// Lane `k` of the result is the sum of the 16 lanes of `acc[k]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sum_lanes_16(acc: &[__m512; 16]) -> __m512 {
        // 16 → 8 registers: 256-bit halves added; each holds two accumulators.
        let b: [__m512; 8] = std::array::from_fn(|j| {
            let (x, y) = (acc[2 * j], acc[2 * j + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(x, y),
                _mm512_shuffle_f32x4::<0xEE>(x, y),
            )
        });
        // 8 → 4: 128-bit unit `u` of `c[j]` holds four partial sums of acc[4j + u].
        let c: [__m512; 4] = std::array::from_fn(|j| {
            let (x, y) = (b[2 * j], b[2 * j + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(x, y),
                _mm512_shuffle_f32x4::<0xDD>(x, y),
            )
        });
        // Within each unit: lane j of unit u becomes the full sum of acc[4j + u].
        let e0 = _mm512_add_ps(
            _mm512_unpacklo_ps(c[0], c[1]),
            _mm512_unpackhi_ps(c[0], c[1]),
        );
        let e1 = _mm512_add_ps(
            _mm512_unpacklo_ps(c[2], c[3]),
            _mm512_unpackhi_ps(c[2], c[3]),
        );
        let h = _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(e0, e1),
            _mm512_shuffle_ps::<0xEE>(e0, e1),
        );
        // Lane 4u + j → lane 4j + u.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, h)
    }

    /// One query (`C` registers) · one key.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_key<const C: usize>(q: &[__m512; C], key: *const f32) -> __m512 {
        let mut a = _mm512_mul_ps(q[0], _mm512_loadu_ps(key));
        for (c, q) in q.iter().enumerate().skip(1) {
            a = _mm512_fmadd_ps(*q, _mm512_loadu_ps(key.add(16 * c)), a);
        }
        a
    }

    /// [`super::scores`] for head dimension `16 · C`, over one piece of `len`
    /// keys whose scores go to `out[h · out_len + start + t]`: sixteen keys per
    /// pass, their sums reduced together; a last partial pass leaves the missing
    /// keys at zero, so every score comes out of the same arithmetic.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores<const C: usize>(
        qs: &[f32],
        keys: &[f32],
        stride: usize,
        len: usize,
        scale: f32,
        out: &mut [f32],
        out_len: usize,
        start: usize,
    ) {
        let hd = 16 * C;
        let scale = _mm512_set1_ps(scale);
        // Keys sixteen at a time, every head over them while they are in L1.
        let mut t = 0;
        while t < len {
            for (g, qh) in qs.chunks_exact(hd).enumerate() {
                let q: [__m512; C] =
                    std::array::from_fn(|c| _mm512_loadu_ps(qh.as_ptr().add(16 * c)));
                let m = (len - t).min(16);
                let mut acc = [_mm512_setzero_ps(); 16];
                if m == 16 {
                    for (j, acc) in acc.iter_mut().enumerate() {
                        *acc = dot_key(&q, keys.as_ptr().add((t + j) * stride));
                    }
                } else {
                    for (j, acc) in acc.iter_mut().enumerate().take(m) {
                        *acc = dot_key(&q, keys.as_ptr().add((t + j) * stride));
                    }
                }
                let s = _mm512_mul_ps(sum_lanes_16(&acc), scale);
                let mask = (1u32 << m) as u16;
                let mask = if m == 16 {
                    u16::MAX
                } else {
                    mask.wrapping_sub(1)
                };
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(g * out_len + start + t), mask, s);
            }
            t += 16;
        }
    }

    /// `e^x`, x ≤ 88 (Cephes' `expf`: x = n·ln 2 + r, a degree-6 polynomial in r,
    /// then · 2^n); zero below −104, for −∞ and for NaN.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp(x: __m512) -> __m512 {
        let in_range = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(-104.0));
        let x = _mm512_max_ps(x, _mm512_set1_ps(-104.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for k in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(k));
        }
        let y = _mm512_fmadd_ps(
            p,
            _mm512_mul_ps(r, r),
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        _mm512_maskz_mov_ps(in_range, _mm512_scalef_ps(y, n))
    }

    /// [`super::exp_in_place`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_in_place(xs: &mut [f32]) {
        let mut chunks = xs.chunks_exact_mut(16);
        for chunk in &mut chunks {
            let v = exp(_mm512_loadu_ps(chunk.as_ptr()));
            _mm512_storeu_ps(chunk.as_mut_ptr(), v);
        }
        let rest = chunks.into_remainder();
        let mask = ((1u32 << rest.len()) - 1) as u16;
        let v = exp(_mm512_maskz_loadu_ps(mask, rest.as_ptr()));
        _mm512_mask_storeu_ps(rest.as_mut_ptr(), mask, v);
    }

    /// [`super::swiglu`], sixteen lanes at a time, `e^-g` from [`exp`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
        let one = _mm512_set1_ps(1.0);
        for i in (0..gate.len()).step_by(16) {
            let m = (gate.len() - i).min(16);
            let mask = ((1u32 << m) - 1) as u16;
            let g = _mm512_maskz_loadu_ps(mask, gate.as_ptr().add(i));
            let u = _mm512_maskz_loadu_ps(mask, up.as_ptr().add(i));
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), g));
            let silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
            _mm512_mask_storeu_ps(gate.as_mut_ptr().add(i), mask, _mm512_mul_ps(silu, u));
        }
    }

    /// [`super::softmax`], sixteen lanes at a time.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn softmax(xs: &mut [f32]) {
        let n = xs.len();
        let tail = |i: usize| -> u16 {
            let m = n - i;
            if m >= 16 {
                u16::MAX
            } else {
                ((1u32 << m) - 1) as u16
            }
        };
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..n).step_by(16) {
            let v = _mm512_mask_loadu_ps(max, tail(i), xs.as_ptr().add(i));
            max = _mm512_max_ps(max, v);
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut sum = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            let m = tail(i);
            let e = exp(_mm512_sub_ps(
                _mm512_maskz_loadu_ps(m, xs.as_ptr().add(i)),
                max,
            ));
            let e = _mm512_maskz_mov_ps(m, e);
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(xs.as_mut_ptr().add(i), m, e);
        }
        let sum = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
        for i in (0..n).step_by(16) {
            let m = tail(i);
            let v = _mm512_maskz_loadu_ps(m, xs.as_ptr().add(i));
            _mm512_mask_storeu_ps(xs.as_mut_ptr().add(i), m, _mm512_div_ps(v, sum));
        }
    }

    /// Rows of values per block of [`weighted_sums`]: 32 KiB at width 128, so a
    /// block stays in L1 while every pass of heads goes over it.
    const VALUE_BLOCK: usize = 64;

    /// [`super::weighted_sums`] for width `16 · C`: up to `24 / C` heads' sums in
    /// registers per pass over a block of rows, every pass over each block in
    /// turn. The sums are stored and reloaded between blocks, which changes no
    /// bit: each element still gets its terms in row order.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn weighted_sums<const C: usize>(out: &mut [f32], weights: &[f32], src: Rows) {
        let width = 16 * C;
        let heads = out.len() / width;
        let len = weights.len() / heads;
        let per_pass = 24 / C;
        let mut pass = |rows: *const f32, t: usize, count: usize, first: bool| {
            let mut h = 0;
            while h < heads {
                let k = (heads - h).min(per_pass);
                let (o, w) = (
                    &mut out[h * width..(h + k) * width],
                    &weights[h * len..(h + k) * len],
                );
                let block = (rows, src.stride, t, count, first);
                match k {
                    1 => heads_pass::<1, C>(o, w, len, block),
                    2 => heads_pass::<2, C>(o, w, len, block),
                    3 => heads_pass::<3, C>(o, w, len, block),
                    4 => heads_pass::<4, C>(o, w, len, block),
                    5 => heads_pass::<5, C>(o, w, len, block),
                    _ => heads_pass::<6, C>(o, w, len, block),
                }
                h += k;
            }
        };
        let (mut t, mut first) = (0, true);
        for &(floats, n) in src.pieces {
            for b in (0..n).step_by(VALUE_BLOCK) {
                let rows = floats.as_ptr().add(b * src.stride);
                pass(rows, t + b, (n - b).min(VALUE_BLOCK), first);
                first = false;
            }
            t += n;
        }
        if first {
            // No rows: the sums are zeros.
            pass(std::ptr::null(), 0, 0, true);
        }
    }

    /// `H` heads · width `16 · C` over `count` rows `stride` apart from `rows`,
    /// which are rows `t..t + count` of the weights: each element's terms are
    /// fused-multiply-added in row order, from zero when `first` and onto `out`
    /// otherwise, as `super::avx2::weighted_sum` adds them.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn heads_pass<const H: usize, const C: usize>(
        out: &mut [f32],
        weights: &[f32],
        len: usize,
        (rows, stride, t, count, first): (*const f32, usize, usize, usize, bool),
    ) {
        let mut acc: [[__m512; C]; H] = std::array::from_fn(|h| {
            std::array::from_fn(|c| {
                if first {
                    _mm512_setzero_ps()
                } else {
                    _mm512_loadu_ps(out.as_ptr().add(h * 16 * C + 16 * c))
                }
            })
        });
        for i in 0..count {
            let row = rows.add(i * stride);
            let v: [__m512; C] = std::array::from_fn(|c| _mm512_loadu_ps(row.add(16 * c)));
            for (h, acc) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*weights.get_unchecked(h * len + t + i));
                for (acc, v) in acc.iter_mut().zip(&v) {
                    *acc = _mm512_fmadd_ps(w, *v, *acc);
                }
            }
        }
        for (h, acc) in acc.iter().enumerate() {
            for (c, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(h * 16 * C + 16 * c), *acc);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Rows;
    use std::arch::x86_64::*;

    /// [`super::weighted_sum`]: 64 outputs (eight registers) per pass over the rows.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(out: &mut [f32], weights: &[f32], src: Rows) {
        let n = out.len();
        let mut c = 0;
        while c + 8 <= n {
            let width = ((n - c) / 8).min(8);
            let mut acc = [_mm256_setzero_ps(); 8];
            for (t, row) in src.each() {
                let k = _mm256_set1_ps(weights[t]);
                let row = row.as_ptr().add(c);
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
            for (t, row) in src.each() {
                *o += weights[t] * row[i];
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
    use crate::isa::{at_every_level, Isa};

    #[test]
    fn rms_norm_unit_weight_gives_unit_rms() {
        let mut xs = vec![3.0, 4.0, 0.0, 0.0];
        rms_norm(&mut xs, &[1.0; 4], 0.0);
        let rms = (xs.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-6);
    }

    #[test]
    fn dot_and_axpy_match_plain_loops_for_odd_lengths() {
        at_every_level(dot_and_axpy_match_plain_loops_for_odd_lengths_at);
    }

    fn dot_and_axpy_match_plain_loops_for_odd_lengths_at(_: Isa) {
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
        at_every_level(weighted_sum_equals_repeated_axpy_at);
    }

    fn weighted_sum_equals_repeated_axpy_at(_: Isa) {
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
            let pieces = [(&src[..], rows)];
            weighted_sum(
                &mut got,
                &weights,
                Rows {
                    pieces: &pieces,
                    stride,
                },
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "width {width} rows {rows}");
        }
    }

    /// Scores match one dot product per (head, key), for lengths with and
    /// without a partial pass, both head sizes of the fast path and another.
    #[test]
    fn scores_match_dot_products() {
        at_every_level(scores_match_dot_products_at);
    }

    fn scores_match_dot_products_at(_: Isa) {
        for (hd, group, stride, len) in [
            (64, 7, 128, 37),
            (64, 7, 128, 16),
            (128, 6, 256, 5),
            (128, 2, 128, 33),
            (32, 3, 64, 9),
            (64, 1, 64, 1),
        ] {
            let qs: Vec<f32> = (0..group * hd).map(|i| (i as f32 * 0.37).sin()).collect();
            let keys: Vec<f32> = (0..stride * len).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut got = vec![f32::NAN; group * len];
            let pieces = [(&keys[..], len)];
            scores(
                &qs,
                Rows {
                    pieces: &pieces,
                    stride,
                },
                0.125,
                group,
                &mut got,
            );
            for g in 0..group {
                for t in 0..len {
                    let q = &qs[g * hd..(g + 1) * hd];
                    let k = &keys[t * stride..t * stride + hd];
                    let expected: f32 = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * 0.125;
                    let err = (got[g * len + t] - expected).abs();
                    assert!(err < 1e-4, "hd {hd} len {len} g {g} t {t}: {err}");
                }
            }
        }
    }

    /// Several heads at once are bit-identical to `weighted_sum` per head.
    #[test]
    fn weighted_sums_equal_weighted_sum_per_head() {
        at_every_level(weighted_sums_equal_weighted_sum_per_head_at);
    }

    fn weighted_sums_equal_weighted_sum_per_head_at(_: Isa) {
        // 150 and 200 rows take several blocks of the AVX-512 version.
        for (width, heads, stride, len) in [
            (64, 7, 128, 37),
            (128, 6, 256, 150),
            (64, 7, 128, 200),
            (128, 6, 256, 5),
            (128, 2, 128, 33),
            (64, 1, 64, 0),
            (48, 3, 96, 4),
        ] {
            let src: Vec<f32> = (0..stride * len + width)
                .map(|i| (i as f32 * 0.173).sin())
                .collect();
            let weights: Vec<f32> = (0..heads * len)
                .map(|t| (t as f32 * 0.71).cos().abs())
                .collect();
            let mut expected = vec![2.0f32; heads * width];
            let pieces = [(&src[..], len)];
            let rows = Rows {
                pieces: &pieces,
                stride,
            };
            for (h, o) in expected.chunks_exact_mut(width).enumerate() {
                weighted_sum(o, &weights[h * len..(h + 1) * len], rows);
            }
            let mut got = vec![1.0f32; heads * width];
            weighted_sums(&mut got, &weights, rows, heads);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "width {width} heads {heads}");
        }
    }

    /// Keys and values split into two pieces anywhere (a shared prefix, then a
    /// cache's own rows) give the same bits as one piece.
    #[test]
    fn pieces_change_no_bit() {
        at_every_level(pieces_change_no_bit_at);
    }

    fn pieces_change_no_bit_at(_: Isa) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (hd, heads, stride, len) in [(128, 6, 256, 140), (64, 7, 128, 20), (48, 2, 96, 9)] {
            let qs: Vec<f32> = (0..heads * hd).map(|i| (i as f32 * 0.37).sin()).collect();
            let keys: Vec<f32> = (0..stride * len).map(|i| (i as f32 * 0.11).cos()).collect();
            let values: Vec<f32> = (0..stride * len)
                .map(|i| (i as f32 * 0.173).sin())
                .collect();
            let weights: Vec<f32> = (0..heads * len)
                .map(|t| (t as f32 * 0.71).cos().abs())
                .collect();
            let (k1, v1) = ([(&keys[..], len)], [(&values[..], len)]);
            let mut one_scores = vec![f32::NAN; heads * len];
            scores(
                &qs,
                Rows {
                    pieces: &k1,
                    stride,
                },
                0.1,
                heads,
                &mut one_scores,
            );
            let mut one_sums = vec![f32::NAN; heads * hd];
            let one_values = Rows {
                pieces: &v1,
                stride,
            };
            weighted_sums(&mut one_sums, &weights, one_values, heads);
            let mut one_sum = vec![f32::NAN; hd];
            weighted_sum(&mut one_sum, &weights[..len], one_values);
            for split in 0..=len {
                let two = |src: &[f32]| {
                    // The second piece is a copy, as a cache's own rows are.
                    let own = src[split * stride..].to_vec();
                    (src[..split * stride].to_vec(), own)
                };
                let ((ka, kb), (va, vb)) = (two(&keys), two(&values));
                let kp = [(&ka[..], split), (&kb[..], len - split)];
                let vp = [(&va[..], split), (&vb[..], len - split)];
                let values = Rows {
                    pieces: &vp,
                    stride,
                };
                let mut got = vec![f32::NAN; heads * len];
                scores(
                    &qs,
                    Rows {
                        pieces: &kp,
                        stride,
                    },
                    0.1,
                    heads,
                    &mut got,
                );
                assert_eq!(
                    bits(&got),
                    bits(&one_scores),
                    "scores hd {hd} split {split}"
                );
                let mut got = vec![f32::NAN; heads * hd];
                weighted_sums(&mut got, &weights, values, heads);
                assert_eq!(bits(&got), bits(&one_sums), "sums hd {hd} split {split}");
                let mut got = vec![f32::NAN; hd];
                weighted_sum(&mut got, &weights[..len], values);
                assert_eq!(bits(&got), bits(&one_sum), "sum hd {hd} split {split}");
            }
        }
    }

    #[test]
    fn softmax_matches_the_exponential_formula() {
        at_every_level(softmax_matches_the_exponential_formula_at);
    }

    fn softmax_matches_the_exponential_formula_at(_: Isa) {
        for n in [1, 5, 16, 17, 100, 577] {
            let xs: Vec<f32> = (0..n).map(|i| (i as f32 * 0.93).sin() * 12.0).collect();
            let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = xs.iter().map(|&x| f64::from(x - max).exp()).collect();
            let total: f64 = e.iter().sum();
            let mut got = xs.clone();
            softmax(&mut got);
            for (g, e) in got.iter().zip(&e) {
                let expected = e / total;
                assert!(
                    (f64::from(*g) - expected).abs() <= 1e-6 + 2e-6 * expected,
                    "n {n}"
                );
            }
        }
    }

    #[test]
    fn swiglu_matches_the_formula() {
        at_every_level(swiglu_matches_the_formula_at);
    }

    fn swiglu_matches_the_formula_at(_: Isa) {
        let mut gate: Vec<f32> = (0..203).map(|i| (i as f32 - 101.0) * 0.97).collect();
        gate.extend([-1e30, 1e30, 0.0, -0.0]);
        let up: Vec<f32> = (0..gate.len())
            .map(|i| (i as f32 * 0.31).sin() * 3.0)
            .collect();
        let expected: Vec<f64> = gate
            .iter()
            .zip(&up)
            .map(|(&g, &u)| f64::from(g) / (1.0 + (-f64::from(g)).exp()) * f64::from(u))
            .collect();
        swiglu(&mut gate, &up);
        for (i, (got, e)) in gate.iter().zip(&expected).enumerate() {
            assert!(
                (f64::from(*got) - e).abs() <= 1e-6 * e.abs() + 1e-30,
                "element {i}: {got} vs {e}"
            );
        }
    }

    #[test]
    fn exp_matches_f64_and_is_zero_far_below() {
        at_every_level(exp_matches_f64_and_is_zero_far_below_at);
    }

    fn exp_matches_f64_and_is_zero_far_below_at(_: Isa) {
        let mut xs: Vec<f32> = (0..1000).map(|i| -100.0 + i as f32 * 0.1877).collect();
        xs.extend([-104.5, -1e30, f32::NEG_INFINITY, f32::NAN, 0.0]);
        let expected: Vec<f64> = xs.iter().map(|&x| f64::from(x).exp()).collect();
        exp_in_place(&mut xs);
        for (i, (got, e)) in xs.iter().zip(&expected).enumerate() {
            if (1000..1004).contains(&i) {
                assert_eq!(*got, 0.0, "element {i}");
            } else {
                // Relative error, or one step below the smallest normal float.
                assert!(
                    (f64::from(*got) - e).abs() <= 3e-7 * e + 2e-45,
                    "element {i}: {got} vs {e}"
                );
            }
        }
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        at_every_level(softmax_sums_to_one_and_survives_large_logits_at);
    }

    fn softmax_sums_to_one_and_survives_large_logits_at(_: Isa) {
        let mut xs = vec![1000.0, 1000.0, -1000.0];
        softmax(&mut xs);
        assert!((xs[0] - 0.5).abs() < 1e-6 && xs[2] == 0.0);
    }
}
