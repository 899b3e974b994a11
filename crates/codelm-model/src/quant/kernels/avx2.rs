//! AVX2 kernels (with FMA and F16C; AVX-VNNI where present) for Q4_0, Q5_0,
//! Q8_0, Q4_K, Q5_K, Q6_K and the float types.
//!
//! Each type has one arithmetic per (row, token), written out by its one-row
//! function ([`dot_float`], [`dot_q8`], [`dot_q8k`]); the tiled functions
//! (several rows or tokens per pass) run the same chains per (row, token), so
//! their results are bit-identical to it.

use std::arch::x86_64::*;

use std::ops::Range;

use super::acts::{Activations, BlockQ8, BlockQ8K, Quants};
use super::Kernel;
use crate::quant::blocks::{scales_mins_k4, GgmlType};

/// Eight weights of a float row from element `i` on, as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn float8(dtype: GgmlType, row: &[u8], i: usize) -> __m256 {
    match dtype {
        GgmlType::F32 => _mm256_loadu_ps(row.as_ptr().add(4 * i) as *const f32),
        GgmlType::F16 => _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(2 * i).cast())),
        // A bf16 is the high half of an f32.
        _ => {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(row.as_ptr().add(2 * i).cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
        }
    }
}

/// The AVX2 float row · token dot: four chains of eight lanes over the 32-element
/// stretches, one chain over the 8-element rest, [`hsum`] of their sum, then
/// the last `len % 8` products in order.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_float(dtype: GgmlType, row: &[u8], xs: &[f32]) -> f32 {
    let n = xs.len();
    assert_eq!(row.len(), n * dtype.block_bytes());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(xs.as_ptr().add(i + 8 * k));
            *acc = _mm256_fmadd_ps(float8(dtype, row, i + 8 * k), x, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        let x = _mm256_loadu_ps(xs.as_ptr().add(i));
        acc[0] = _mm256_fmadd_ps(float8(dtype, row, i), x, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut total = hsum(sum);
    let bb = dtype.block_bytes();
    total += super::portable::dot_float(dtype, &row[i * bb..], &xs[i..]);
    total
}

/// [`dot_float`] of one row against `T` tokens: each 8-element stretch of the
/// row is loaded (and widened) once for all of them, and every token runs
/// exactly `dot_float`'s chains, so each result is bit-identical to it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_float_tokens<const T: usize>(
    dtype: GgmlType,
    row: &[u8],
    xs: [&[f32]; T],
) -> [f32; T] {
    let n = xs[0].len();
    assert!(row.len() == n * dtype.block_bytes() && xs.iter().all(|x| x.len() == n));
    let mut acc = [[_mm256_setzero_ps(); 4]; T];
    let mut i = 0;
    while i + 32 <= n {
        for k in 0..4 {
            let w = float8(dtype, row, i + 8 * k);
            for (acc, x) in acc.iter_mut().zip(&xs) {
                let x = _mm256_loadu_ps(x.as_ptr().add(i + 8 * k));
                acc[k] = _mm256_fmadd_ps(w, x, acc[k]);
            }
        }
        i += 32;
    }
    while i + 8 <= n {
        let w = float8(dtype, row, i);
        for (acc, x) in acc.iter_mut().zip(&xs) {
            acc[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x.as_ptr().add(i)), acc[0]);
        }
        i += 8;
    }
    let bb = dtype.block_bytes();
    std::array::from_fn(|t| {
        let a = &acc[t];
        let sum = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
        hsum(sum) + super::portable::dot_float(dtype, &row[i * bb..], &xs[t][i..])
    })
}

/// IEEE half at `at` to f32 with the F16C instruction.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_at(bytes: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Signed i8 × i8 over 32 lanes, summed in pairs into eight i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_madd_epi16(dot, _mm256_set1_epi16(1))
}

/// Expands 32 bits into 32 bytes, 0xFF where the bit is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bytes_from_bits(bits: u32) -> __m256i {
    let shuffle = _mm256_setr_epi64x(
        0x0000000000000000,
        0x0101010101010101,
        0x0202020202020202,
        0x0303030303030303,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuffle);
    let mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe_u64 as i64);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, mask), _mm256_set1_epi64x(-1))
}

/// 16 packed bytes → 32 nibbles: low nibbles in lanes 0..16, high in 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
    _mm256_and_si256(both, _mm256_set1_epi8(0xF))
}

/// The 32 signed quants of one Q4_0/Q5_0/Q8_0 block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_quants(dtype: GgmlType, b: &[u8]) -> __m256i {
    match dtype {
        GgmlType::Q8_0 => _mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i),
        GgmlType::Q4_0 => _mm256_sub_epi8(nibbles(b.as_ptr().add(2)), _mm256_set1_epi8(8)),
        _ => {
            // Q5_0: value = nibble | (bit ? 0 : 0xF0) as i8, i.e. (q | bit<<4) − 16.
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            let hi = _mm256_andnot_si256(bytes_from_bits(qh), _mm256_set1_epi8(0xF0u8 as i8));
            _mm256_or_si256(nibbles(b.as_ptr().add(6)), hi)
        }
    }
}

/// Decodes a whole Q4_0/Q5_0/Q8_0 row into signed bytes and per-block scales.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn unpack_row(dtype: GgmlType, row: &[u8], qs: &mut Vec<i8>, scales: &mut Vec<f32>) {
    let n_blocks = row.len() / dtype.block_bytes();
    qs.resize(n_blocks * 32, 0);
    scales.clear();
    let bb = dtype.block_bytes();
    for (idx, b) in row.chunks_exact(bb).enumerate() {
        // A batched decode step reads each row from memory here, once.
        if (idx * bb) % 64 < bb {
            _mm_prefetch::<_MM_HINT_T0>(b.as_ptr().wrapping_add(PREFETCH_AHEAD).cast());
            _mm_prefetch::<_MM_HINT_T1>(b.as_ptr().wrapping_add(FAR_AHEAD).cast());
        }
        _mm256_storeu_si256(
            qs.as_mut_ptr().add(32 * idx) as *mut __m256i,
            legacy_quants(dtype, b),
        );
        scales.push(f16_at(b, 0));
    }
}

/// A row decoded by [`unpack_row`] · `T` tokens' Q8_0 activations: each weight
/// block is loaded once and its sign split reused. Per token the sums run in
/// [`dot_q8`]'s order, so each result is bit-identical to it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_unpacked<const T: usize>(
    qs: &[i8],
    scales: &[f32],
    ys: [&[BlockQ8]; T],
) -> [f32; T] {
    assert!(ys.iter().all(|y| y.len() == scales.len()) && qs.len() >= 32 * scales.len());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); T];
    for (j, &scale) in scales.iter().enumerate() {
        let qx = _mm256_loadu_si256(qs.as_ptr().add(32 * j) as *const __m256i);
        let ax = _mm256_sign_epi8(qx, qx);
        for t in 0..T {
            let y = ys[t].get_unchecked(j);
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx)), ones);
            let d = _mm256_set1_ps(scale * y.d);
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[t]);
        }
    }
    let mut out = [0.0; T];
    for t in 0..T {
        out[t] = hsum(acc[t]);
    }
    out
}

/// [`dot_unpacked`] with AVX-VNNI: one `vpdpbusd` replaces the two
/// multiply-adds. The products are exact integers either way, so the results
/// are bit-identical.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub unsafe fn dot_unpacked_vnni<const T: usize>(
    qs: &[i8],
    scales: &[f32],
    ys: [&[BlockQ8]; T],
) -> [f32; T] {
    assert!(ys.iter().all(|y| y.len() == scales.len()) && qs.len() >= 32 * scales.len());
    let mut acc = [_mm256_setzero_ps(); T];
    for (j, &scale) in scales.iter().enumerate() {
        let qx = _mm256_loadu_si256(qs.as_ptr().add(32 * j) as *const __m256i);
        let ax = _mm256_sign_epi8(qx, qx);
        for t in 0..T {
            let y = ys[t].get_unchecked(j);
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let dot = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax, _mm256_sign_epi8(qy, qx));
            let d = _mm256_set1_ps(scale * y.d);
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[t]);
        }
    }
    let mut out = [0.0; T];
    for t in 0..T {
        out[t] = hsum(acc[t]);
    }
    out
}

/// How far ahead (bytes) a decode step asks for each weight row into L1, and
/// into L2: the hardware prefetchers alone do not keep enough misses in flight.
const PREFETCH_AHEAD: usize = 2048;
const FAR_AHEAD: usize = 16384;

/// Four rows of a legacy type · one token's Q8_0 activations, each with
/// [`dot_q8`]'s arithmetic, asking for the rows' bytes ahead.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8_x4(dtype: GgmlType, rows: [&[u8]; 4], ys: &[BlockQ8]) -> [f32; 4] {
    match dtype {
        GgmlType::Q4_0 => dot_q8_x4_of::<Q4>(rows, ys),
        GgmlType::Q5_0 => dot_q8_x4_of::<Q5>(rows, ys),
        GgmlType::Q8_0 => dot_q8_x4_of::<Q8>(rows, ys),
        _ => unreachable!("no AVX2 kernel for {dtype:?}"),
    }
}

const Q4: u8 = 0;
const Q5: u8 = 1;
const Q8: u8 = 2;

const fn legacy_type<const DT: u8>() -> GgmlType {
    match DT {
        Q4 => GgmlType::Q4_0,
        Q5 => GgmlType::Q5_0,
        _ => GgmlType::Q8_0,
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q8_x4_of<const DT: u8>(rows: [&[u8]; 4], ys: &[BlockQ8]) -> [f32; 4] {
    let dtype = legacy_type::<DT>();
    let bb = dtype.block_bytes();
    assert!(rows.iter().all(|r| r.len() >= ys.len() * bb));
    let mut acc = [_mm256_setzero_ps(); 4];
    for (j, y) in ys.iter().enumerate() {
        let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        for r in 0..4 {
            let at = rows[r].as_ptr().add(j * bb);
            // One request per cache line of the row, in L1 and in L2.
            if (j * bb) % 64 < bb {
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH_AHEAD).cast());
                _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(FAR_AHEAD).cast());
            }
            let b = std::slice::from_raw_parts(at, bb);
            let qx = legacy_quants(dtype, b);
            let d = _mm256_set1_ps(f16_at(b, 0) * y.d);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(qx, qy)), acc[r]);
        }
    }
    [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8(dtype: GgmlType, row: &[u8], ys: &[BlockQ8]) -> f32 {
    let bb = dtype.block_bytes();
    let mut acc = _mm256_setzero_ps();
    for (b, y) in row.chunks_exact(bb).zip(ys) {
        let qx = legacy_quants(dtype, b);
        let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        let d = _mm256_set1_ps(f16_at(b, 0) * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(qx, qy)), acc);
    }
    hsum(acc)
}

/// `Σ_j bsums[j] · weights[j]` over sixteen i16 pairs (exact in i32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bsums_dot(bsums: &[i16; 16], weights: __m256i) -> i32 {
    let bs = _mm256_loadu_si256(bsums.as_ptr() as *const __m256i);
    let sums = _mm256_madd_epi16(bs, weights);
    let s = _mm_add_epi32(
        _mm256_castsi256_si128(sums),
        _mm256_extracti128_si256(sums, 1),
    );
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Eight Q4_K mins as sixteen i16, each repeated for the two 16-quant sums
/// of its 32-quant sub-block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn min_pairs(mins: [u8; 8]) -> __m256i {
    let m = _mm_set_epi64x(0, i64::from_le_bytes(mins));
    _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m))
}

/// The 128 six-bit quants of half `half` of a Q6_K block, as four vectors of
/// 32 values in `[0, 64)`, in element order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q6k_quants(b: &[u8], half: usize) -> [__m256i; 4] {
    let low4 = _mm256_set1_epi8(0xF);
    let three = _mm256_set1_epi8(3);
    let ql = b.as_ptr().add(64 * half);
    let qh = _mm256_loadu_si256(b.as_ptr().add(128 + 32 * half) as *const __m256i);
    let ql0 = _mm256_loadu_si256(ql as *const __m256i);
    let ql1 = _mm256_loadu_si256(ql.add(32) as *const __m256i);
    // Bits 2k..2k+2 of `qh` are the high bits of the k-th group of 32.
    let high0 = _mm256_slli_epi16(_mm256_and_si256(qh, three), 4);
    let high1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), three), 4);
    let high2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), three), 4);
    let high3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), three), 4);
    [
        _mm256_or_si256(_mm256_and_si256(ql0, low4), high0),
        _mm256_or_si256(_mm256_and_si256(ql1, low4), high1),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), high2),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), high3),
    ]
}

/// One Q4_K/Q5_K/Q6_K row · one token's Q8_K activations: per super-block, the
/// exact integers (the scaled quant dot in eight i32 lanes, and the min sum),
/// then `acc = fma(d·dy, f32(lanes), acc)` and `acc_min += (dmin·dy)·f32(min sum)`
/// (Q6_K: `32·(d·dy)·f32(Σ scale · bsum)`); the result is `hsum(acc) − acc_min`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8k(dtype: GgmlType, row: &[u8], ys: &[BlockQ8K]) -> f32 {
    dot_q8k_tokens::<1>(dtype, row, [ys], true)[0]
}

/// One k-quant row · `T` tokens' Q8_K activations: each weight super-block is
/// decoded once into registers for all of them, and each token gets exactly
/// [`dot_q8k`]'s arithmetic. With `prefetch`, the row's bytes are asked for
/// ahead (the first pass over a row in a step, which waits on memory).
// Not inlined into `row_tokens`: as a function of its own it kept its
// registers (1.5B prefill 15% faster than inlined).
#[inline(never)]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8k_tokens<const T: usize>(
    dtype: GgmlType,
    row: &[u8],
    ys: [&[BlockQ8K]; T],
    prefetch: bool,
) -> [f32; T] {
    let bb = dtype.block_bytes();
    for y in ys {
        assert_eq!(y.len() * bb, row.len());
    }
    let mut acc = [_mm256_setzero_ps(); T];
    let mut acc_min = [0.0f32; T];
    for (i, b) in row.chunks_exact(bb).enumerate() {
        for line in (0..if prefetch { bb } else { 0 }).step_by(64) {
            let at = b.as_ptr().wrapping_add(line);
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH_AHEAD).cast());
            _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(FAR_AHEAD).cast());
        }
        let y: [&BlockQ8K; T] = std::array::from_fn(|t| ys[t].get_unchecked(i));
        let mut sumi = [_mm256_setzero_si256(); T];
        let d;
        if dtype != GgmlType::Q6_K {
            d = f16_at(b, 0);
            let dmin = f16_at(b, 2);
            let (sc, mins) = scales_mins_k4(&b[4..16]);
            let pair_mins = min_pairs(mins);
            for t in 0..T {
                let summ = bsums_dot(&y[t].bsums, pair_mins);
                acc_min[t] += (dmin * y[t].d) * summ as f32;
            }
            for chunk in 0..4 {
                let (lo, hi) = k4_quants(dtype, b, chunk);
                let s1 = _mm256_set1_epi16(sc[2 * chunk] as i16);
                let s2 = _mm256_set1_epi16(sc[2 * chunk + 1] as i16);
                for t in 0..T {
                    let y_lo =
                        _mm256_loadu_si256(y[t].qs.as_ptr().add(64 * chunk) as *const __m256i);
                    let y_hi =
                        _mm256_loadu_si256(y[t].qs.as_ptr().add(64 * chunk + 32) as *const __m256i);
                    let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y_lo), s1);
                    let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y_hi), s2);
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p_lo, p_hi));
                }
            }
        } else {
            d = f16_at(b, 208);
            let sc = &b[192..208];
            let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
            for t in 0..T {
                let bias = bsums_dot(&y[t].bsums, scales16);
                // Same rounding order as `dot_q8k`: (d · d_y), then the rest.
                acc_min[t] += 32.0 * (d * y[t].d) * bias as f32;
            }
            for half in 0..2 {
                let quants = q6k_quants(b, half);
                for (group, q) in quants.iter().enumerate() {
                    let pos = 128 * half + 32 * group;
                    let s0 = (sc[pos / 16] as i8) as i16;
                    let s1 = (sc[pos / 16 + 1] as i8) as i16;
                    let scale = _mm256_setr_epi16(
                        s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1,
                    );
                    for t in 0..T {
                        let qy = _mm256_loadu_si256(y[t].qs.as_ptr().add(pos) as *const __m256i);
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*q, qy), scale);
                        sumi[t] = _mm256_add_epi32(sumi[t], p);
                    }
                }
            }
        }
        for t in 0..T {
            acc[t] = _mm256_fmadd_ps(
                _mm256_set1_ps(d * y[t].d),
                _mm256_cvtepi32_ps(sumi[t]),
                acc[t],
            );
        }
    }
    std::array::from_fn(|t| hsum(acc[t]) - acc_min[t])
}

/// The unsigned quants of chunk `c` of a Q4_K or Q5_K block: elements
/// `64c..64c + 32` (low nibbles) and `64c + 32..64c + 64` (high nibbles), plus
/// for Q5_K 16 times bit `2c` or `2c + 1` of `qh`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn k4_quants(dtype: GgmlType, b: &[u8], c: usize) -> (__m256i, __m256i) {
    let low4 = _mm256_set1_epi8(0xF);
    let at = if dtype == GgmlType::Q5_K { 48 } else { 16 };
    let q = _mm256_loadu_si256(b.as_ptr().add(at + 32 * c) as *const __m256i);
    let lo = _mm256_and_si256(q, low4);
    let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    if dtype != GgmlType::Q5_K {
        return (lo, hi);
    }
    let qh = _mm256_loadu_si256(b.as_ptr().add(16) as *const __m256i);
    let sixteen = _mm256_set1_epi8(16);
    let bit = |k: usize| {
        let m = _mm256_set1_epi8((1u8 << k) as i8);
        _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, m), m), sixteen)
    };
    (
        _mm256_or_si256(lo, bit(2 * c)),
        _mm256_or_si256(hi, bit(2 * c + 1)),
    )
}

/// One token against every row of the band (a decode step of a legacy type):
/// four rows per pass share each activation load and keep four independent
/// accumulator chains (and their loads) in flight.
///
/// # Safety
/// The CPU must have [`crate::isa::Isa::Avx2`].
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn legacy_one_token(
    dtype: GgmlType,
    row_bytes: usize,
    rows: &[u8],
    ys: &[BlockQ8],
    tile: &mut [f32],
) {
    let n_rows = rows.len() / row_bytes;
    let mut groups = rows.chunks_exact(4 * row_bytes);
    for (g, group) in groups.by_ref().enumerate() {
        let four: [&[u8]; 4] = std::array::from_fn(|i| &group[i * row_bytes..(i + 1) * row_bytes]);
        let sums = dot_q8_x4(dtype, four, ys);
        tile[4 * g..4 * g + 4].copy_from_slice(&sums);
    }
    let done = n_rows - groups.remainder().len() / row_bytes;
    for (r, row) in groups.remainder().chunks_exact(row_bytes).enumerate() {
        tile[done + r] = dot_q8(dtype, row, ys);
    }
}

/// A legacy weight row decoded once for many tokens ([`unpack_row`]).
#[derive(Default)]
pub struct Unpacked {
    qs: Vec<i8>,
    scales: Vec<f32>,
}

/// Runs `$pass!(K)` at token `$t` for passes of four tokens up to `$end`, then
/// one pass of the one to three left.
macro_rules! in_passes {
    ($t:ident, $end:expr, $pass:ident) => {
        while $t + 4 <= $end {
            $pass!(4);
            $t += 4;
        }
        match $end - $t {
            3 => $pass!(3),
            2 => $pass!(2),
            1 => $pass!(1),
            _ => {}
        }
    };
}

/// `K` consecutive tokens' rows of `per` items from token `t` on.
#[inline(always)]
fn tokens<T, const K: usize>(items: &[T], per: usize, t: usize) -> [&[T]; K] {
    let mut out: [&[T]; K] = [&[]; K];
    for (k, o) in out.iter_mut().enumerate() {
        *o = &items[(t + k) * per..(t + k + 1) * per];
    }
    out
}

/// One weight row against tokens `ts` of `acts` (`out[t - ts.start]`), several
/// tokens per pass, each with the arithmetic of the type's one-row function.
///
/// # Safety
/// The CPU must have [`crate::isa::Isa::Avx2`] (and AVX-VNNI for
/// [`Kernel::AvxVnni`], AVX-512 for [`Kernel::Avx512`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn row_tokens(
    dtype: GgmlType,
    row: &[u8],
    acts: &Activations,
    ts: Range<usize>,
    out: &mut [f32],
    unpacked: &mut Unpacked,
) {
    let (mut t, end) = (ts.start, ts.end);
    // `out[o]` is token `t0 + o`.
    let t0 = ts.start;
    match &acts.quants {
        Quants::F32 { xs, cols } => {
            // Several tokens per pass over the row, the same arithmetic.
            if acts.kernel == Kernel::Avx512 {
                while t + 8 <= end {
                    let sums =
                        super::avx512::dot_float_tokens::<8>(dtype, row, tokens(xs, *cols, t));
                    out[t - t0..t - t0 + 8].copy_from_slice(&sums);
                    t += 8;
                }
            }
            while t + 3 <= end {
                let sums = dot_float_tokens::<3>(dtype, row, tokens(xs, *cols, t));
                out[t - t0..t - t0 + 3].copy_from_slice(&sums);
                t += 3;
            }
            for t in t..end {
                out[t - t0] = dot_float(dtype, row, &xs[t * cols..(t + 1) * cols]);
            }
        }
        Quants::Q8 { blocks, per_row } if acts.n > 1 => {
            // Decode the weight row once, then reuse it for every token, four
            // tokens per pass (independent accumulator chains), the rest in one
            // pass of as many.
            let Unpacked { qs, scales } = unpacked;
            unpack_row(dtype, row, qs, scales);
            macro_rules! pass {
                ($k:literal) => {{
                    let ys = tokens::<_, $k>(blocks, *per_row, t);
                    let sums = if acts.kernel == Kernel::AvxVnni {
                        dot_unpacked_vnni::<$k>(qs, scales, ys)
                    } else {
                        dot_unpacked::<$k>(qs, scales, ys)
                    };
                    out[t - t0..t - t0 + $k].copy_from_slice(&sums);
                }};
            }
            in_passes!(t, end, pass);
        }
        Quants::Q8 { blocks, per_row } => {
            for t in t..end {
                let [ys] = tokens(blocks, *per_row, t);
                out[t - t0] = dot_q8(dtype, row, ys);
            }
        }
        Quants::Q8K { blocks, per_row } => {
            // Four tokens per pass: each weight super-block is decoded once into
            // registers and multiplied with all four; the rest in one pass of as
            // many. The first pass over the row asks for its bytes ahead.
            macro_rules! pass {
                ($k:literal) => {{
                    let ys = tokens::<_, $k>(blocks, *per_row, t);
                    let sums = dot_q8k_tokens::<$k>(dtype, row, ys, t == t0);
                    out[t - t0..t - t0 + $k].copy_from_slice(&sums);
                }};
            }
            in_passes!(t, end, pass);
        }
        Quants::Q8Groups { .. } | Quants::Q8KTokens { .. } => {
            unreachable!("AVX-512 layouts are built only for the AVX-512 kernels")
        }
    }
}
