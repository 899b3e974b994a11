//! AVX-512 kernels for the k-quants Q4_K, Q5_K and Q6_K.
//!
//! A weight row is first decoded into [`Unpacked`] super-blocks, a layout shared by
//! all three types: 256 unsigned quants in the order of the activations, the scales,
//! the weights of the activations' 16-element sums ("mins"), and two float
//! factors. Every kernel computes, per super-block and token, two exact integers
//!
//! ```text
//! S = Σ_groups scale_g · Σ_{k in g} q_k · y_k        M = Σ_{j<16} mins_j · bsums_j
//! ```
//!
//! and then, in super-block order, the same float operations:
//! `acc = fma(f32(S), d·dy, acc)`, `accm = fma(f32(M), dm·dy, accm)`, result
//! `acc − accm`. So a token's result is bit-identical whichever kernel computed it:
//!
//! - [`dot_row`], one packed row against one token (a decode step): vector lanes
//!   run along the row, and `S`, `M` are horizontal sums of exact lanes.
//! - `dot_group`, four rows against sixteen tokens (prefill): lanes are tokens
//!   ([`TokenGroup`], transposed once per matmul), each weight's four quants are
//!   broadcast, and one `vpdpbusd` does 64 multiply-adds of one row for sixteen
//!   tokens; the group scale is applied once per group (`vpmulld`).
//! - `dot_rows_in_lanes`, sixteen rows against fewer than sixteen tokens (a
//!   batched decode step, or the tokens left over from full groups): the same
//!   with rows and tokens swapped. Sixteen rows' super-block is interleaved
//!   (`Sixteen`) so that one vector holds four quants of each row, and each
//!   token's four activations are broadcast; no lane is padding.
//!
//! Q4_K and Q5_K (whose fifth bits make quants up to 31): groups are their
//! 32-element sub-blocks, `dm` is `dmin`, and each min weighs the two 16-sums of
//! its sub-block. Q6_K: groups are 16 elements, quants are
//! stored as `q + 32`, so `dm = 32·d` and the mins are the scales themselves.

use std::arch::x86_64::*;

use super::acts::{BlockQ8K, TokenGroup};
use super::avx512::transpose16;
use crate::quant::blocks::{scales_mins_k4, GgmlType, QK_K};

/// One k-quant super-block, decoded for the kernels below.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct Unpacked {
    /// Unsigned quants, element order.
    q: [u8; QK_K],
    /// Weights of the activations' sixteen 16-element sums.
    mins: [i16; 16],
    /// The scale of each quant group (eight 32-element groups for Q4_K, sixteen
    /// 16-element ones for Q6_K).
    group_scales: [i32; 16],
    /// Scale of the quant sum.
    d: f32,
    /// Scale of the min sum, subtracted.
    dm: f32,
}

impl Unpacked {
    const ZERO: Unpacked = Unpacked {
        q: [0; QK_K],
        mins: [0; 16],
        group_scales: [0; 16],
        d: 0.0,
        dm: 0.0,
    };
}

/// `vpermw` indices that spread eight (Q4_K) or sixteen (Q6_K) i16 scales over a
/// chunk's 32 `vpmaddubsw` lanes: lane `i` of chunk `c` covers elements
/// `64c + 2i` and `64c + 2i + 1`, so Q4_K's 32-element sub-block is `2c + i / 16`
/// and Q6_K's 16-element group is `4c + i / 8`.
const fn scale_index(group: usize) -> [[i16; 32]; 4] {
    let mut idx = [[0i16; 32]; 4];
    let mut c = 0;
    while c < 4 {
        let mut i = 0;
        while i < 32 {
            idx[c][i] = ((64 * c + 2 * i) / group) as i16;
            i += 1;
        }
        c += 1;
    }
    idx
}
const Q4K_SCALE_INDEX: [[i16; 32]; 4] = scale_index(32);
const Q6K_SCALE_INDEX: [[i16; 32]; 4] = scale_index(16);

/// Rows per pass of a decode step.
const DECODE_ROWS: usize = 2;

/// How far ahead of the block being decoded [`unpack_row`] prefetches.
const PREFETCH_AHEAD: usize = 2048;
/// How far ahead the same block is also asked for into L2: L1 can track only a
/// few misses in flight, L2 more, and a decode step is waiting on memory
/// (1.5B decode +8%; anywhere from 8 to 64 KiB measured the same).
const FAR_AHEAD: usize = 16384;

/// Decodes a Q4_K, Q5_K or Q6_K row into `out`, one [`Unpacked`] per super-block.
///
/// # Safety
/// The CPU must have [`crate::isa::Isa::Avx512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn unpack_row(dtype: GgmlType, row: &[u8], out: &mut Vec<Unpacked>) {
    let bb = dtype.block_bytes();
    // Every field of every block is overwritten below.
    out.resize(row.len() / bb, Unpacked::ZERO);
    for (b, u) in row.chunks_exact(bb).zip(out.iter_mut()) {
        prefetch_ahead::<false>(b);
        match dtype {
            GgmlType::Q4_K | GgmlType::Q5_K => unpack_k4(dtype, b, u),
            _ => unpack_q6k(b, u),
        }
    }
}

/// Q4_K and Q5_K: the quants (see `avx2::k4_quants`), scales, mins and factors.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn unpack_k4(dtype: GgmlType, b: &[u8], u: &mut Unpacked) {
    for c in 0..4 {
        let (lo, hi) = super::avx2::k4_quants(dtype, b, c);
        let q = u.q.as_mut_ptr().add(64 * c);
        _mm256_store_si256(q as *mut __m256i, lo);
        _mm256_store_si256(q.add(32) as *mut __m256i, hi);
    }
    let (sc, mins) = scales_mins_k4(&b[4..16]);
    for (g, &s) in u.group_scales.iter_mut().zip(&sc) {
        *g = s as i32;
    }
    // Each min weighs the two 16-sums of its 32-element sub-block.
    let m = _mm_set_epi64x(0, i64::from_le_bytes(mins));
    _mm256_store_si256(
        u.mins.as_mut_ptr() as *mut __m256i,
        _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)),
    );
    u.d = super::avx2::f16_at(b, 0);
    u.dm = super::avx2::f16_at(b, 2);
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn unpack_q6k(b: &[u8], u: &mut Unpacked) {
    for half in 0..2 {
        for (g, q) in super::avx2::q6k_quants(b, half).iter().enumerate() {
            _mm256_store_si256(
                u.q.as_mut_ptr().add(128 * half + 32 * g) as *mut __m256i,
                *q,
            );
        }
    }
    let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.as_ptr().add(192) as *const __m128i));
    _mm256_store_si256(u.mins.as_mut_ptr() as *mut __m256i, sc);
    for (g, &s) in u.group_scales.iter_mut().zip(&b[192..208]) {
        *g = s as i8 as i32;
    }
    let d = super::avx2::f16_at(b, 208);
    u.d = d;
    u.dm = 32.0 * d;
}

/// One packed row · one token (a decode step), straight from the packed blocks:
/// the same `S`, `M` and float operations as every kernel here, without
/// writing the decoded row out.
///
/// # Safety
/// The CPU must have [`crate::isa::Isa::Avx512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_row(dtype: GgmlType, row: &[u8], ys: &[BlockQ8K]) -> f32 {
    dot_packed_rows::<1>(dtype, [row], ys)[0]
}

/// [`dot_row`] for `R` rows at once: their blocks are interleaved, so that more
/// independent loads are in flight while a decode step waits on memory.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_packed_rows<const R: usize>(
    dtype: GgmlType,
    rows: [&[u8]; R],
    ys: &[BlockQ8K],
) -> [f32; R] {
    let bb = dtype.block_bytes();
    let (mut acc, mut accm) = ([0.0f32; R], [0.0f32; R]);
    for (i, y) in ys.iter().enumerate().take(rows[0].len() / bb) {
        for r in 0..R {
            let b = &rows[r][i * bb..(i + 1) * bb];
            prefetch_ahead::<true>(b);
            let (s, m, d, dm) = match dtype {
                GgmlType::Q4_K => q4k_sums(b, y),
                GgmlType::Q5_K => q5k_sums(b, y),
                _ => q6k_sums(b, y),
            };
            acc[r] = (s as f32).mul_add(d * y.d, acc[r]);
            accm[r] = (m as f32).mul_add(dm * y.d, accm[r]);
        }
    }
    std::array::from_fn(|r| acc[r] - accm[r])
}

/// `(S, M, d, dm)` of one packed Q4_K block and one token.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4k_sums(b: &[u8], y: &BlockQ8K) -> (i32, i32, f32, f32) {
    let (sc, mins) = scales_mins_k4(&b[4..16]);
    let sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(0, i64::from_le_bytes(sc))));
    // Both halves of a vector get the chunk's 32 bytes; the upper half is shifted
    // to its high nibbles.
    let shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    let low4 = _mm512_set1_epi8(0xF);
    let mut sumi = [_mm512_setzero_si512(); 2];
    for (c, idx) in Q4K_SCALE_INDEX.iter().enumerate() {
        let raw = _mm256_loadu_si256(b.as_ptr().add(16 + 32 * c) as *const __m256i);
        let w = _mm512_and_si512(_mm512_srlv_epi16(_mm512_broadcast_i64x4(raw), shift), low4);
        let yq = _mm512_loadu_si512(y.qs.as_ptr().add(64 * c) as *const __m512i);
        let scales =
            _mm512_permutexvar_epi16(_mm512_loadu_si512(idx.as_ptr() as *const __m512i), sc);
        sumi[c & 1] = _mm512_dpwssd_epi32(sumi[c & 1], _mm512_maddubs_epi16(w, yq), scales);
    }
    let m = _mm_set_epi64x(0, i64::from_le_bytes(mins));
    let mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
    (
        _mm512_reduce_add_epi32(_mm512_add_epi32(sumi[0], sumi[1])),
        bsums_dot(y, mins),
        super::avx2::f16_at(b, 0),
        super::avx2::f16_at(b, 2),
    )
}

/// `(S, M, d, dm)` of one packed Q5_K block and one token, through an unpacked
/// copy (no model we ship uses Q5_K; the sums are exact either way).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q5k_sums(b: &[u8], y: &BlockQ8K) -> (i32, i32, f32, f32) {
    let mut u = Unpacked::ZERO;
    unpack_k4(GgmlType::Q5_K, b, &mut u);
    // The eight group scales as i16, spread over each chunk's lanes as in `q4k_sums`.
    let sc = _mm512_castsi256_si512(_mm512_cvtepi32_epi16(_mm512_loadu_si512(
        u.group_scales.as_ptr() as *const __m512i,
    )));
    let mut sumi = [_mm512_setzero_si512(); 2];
    for (c, idx) in Q4K_SCALE_INDEX.iter().enumerate() {
        let w = _mm512_load_si512(u.q.as_ptr().add(64 * c) as *const __m512i);
        let s = _mm512_permutexvar_epi16(_mm512_loadu_si512(idx.as_ptr() as *const __m512i), sc);
        let yq = _mm512_loadu_si512(y.qs.as_ptr().add(64 * c) as *const __m512i);
        sumi[c & 1] = _mm512_dpwssd_epi32(sumi[c & 1], _mm512_maddubs_epi16(w, yq), s);
    }
    let mins = _mm256_load_si256(u.mins.as_ptr() as *const __m256i);
    (
        _mm512_reduce_add_epi32(_mm512_add_epi32(sumi[0], sumi[1])),
        bsums_dot(y, mins),
        u.d,
        u.dm,
    )
}

/// `(S, M, d, dm)` of one packed Q6_K block and one token.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q6k_sums(b: &[u8], y: &BlockQ8K) -> (i32, i32, f32, f32) {
    let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.as_ptr().add(192) as *const __m128i));
    let sc512 = _mm512_castsi256_si512(sc);
    let mut sumi = [_mm512_setzero_si512(); 2];
    for half in 0..2 {
        let q = super::avx2::q6k_quants(b, half);
        for pair in 0..2 {
            let c = 2 * half + pair;
            let w = _mm512_inserti64x4(_mm512_castsi256_si512(q[2 * pair]), q[2 * pair + 1], 1);
            let yq = _mm512_loadu_si512(y.qs.as_ptr().add(64 * c) as *const __m512i);
            let idx = _mm512_loadu_si512(Q6K_SCALE_INDEX[c].as_ptr() as *const __m512i);
            let scales = _mm512_permutexvar_epi16(idx, sc512);
            sumi[pair] = _mm512_dpwssd_epi32(sumi[pair], _mm512_maddubs_epi16(w, yq), scales);
        }
    }
    let d = super::avx2::f16_at(b, 208);
    (
        _mm512_reduce_add_epi32(_mm512_add_epi32(sumi[0], sumi[1])),
        bsums_dot(y, sc),
        d,
        32.0 * d,
    )
}

/// `M`: the token's sixteen 16-sums · the block's sixteen min weights, exact.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn bsums_dot(y: &BlockQ8K, mins: __m256i) -> i32 {
    let bsums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
    _mm512_reduce_add_epi32(_mm512_zextsi256_si512(_mm256_madd_epi16(bsums, mins)))
}

/// Asks for the bytes [`PREFETCH_AHEAD`] past block `b` (past the row: the next
/// row of the band), and with `FAR` (a decode step, which waits on memory) those
/// [`FAR_AHEAD`] past it into L2; a prefetch never faults.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn prefetch_ahead<const FAR: bool>(b: &[u8]) {
    for line in (0..b.len()).step_by(64) {
        _mm_prefetch::<_MM_HINT_T0>(b.as_ptr().wrapping_add(PREFETCH_AHEAD + line) as *const i8);
        if FAR {
            _mm_prefetch::<_MM_HINT_T1>(b.as_ptr().wrapping_add(FAR_AHEAD + line) as *const i8);
        }
    }
}

/// Four (or `R`) unpacked rows · one [`TokenGroup`] of sixteen tokens: lane `t` of
/// result `r` is row `r` · token `t`. `K` is the number of four-quant steps per
/// scale group: 8 for Q4_K and Q5_K, 4 for Q6_K.
///
/// # Safety
/// The CPU must have [`crate::isa::Isa::Avx512`], and every row must hold `acts.len()` blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_group<const R: usize, const K: usize>(
    rows: [&[Unpacked]; R],
    acts: &[TokenGroup],
    prefetch: &[u8],
) -> [__m512; R] {
    let mut acc = [_mm512_setzero_ps(); R];
    let mut accm = [_mm512_setzero_ps(); R];
    // `prefetch` (the packed rows decoded next) is requested a slice per block,
    // spread over the multiplies so that memory works while they run.
    let slice = prefetch.len().div_ceil(acts.len().max(1));
    for (i, a) in acts.iter().enumerate() {
        for line in (i * slice..((i + 1) * slice).min(prefetch.len())).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(prefetch.as_ptr().add(line) as *const i8);
        }
        let u: [&Unpacked; R] = std::array::from_fn(|r| rows[r].get_unchecked(i));
        let mut s = [_mm512_setzero_si512(); R];
        for g in 0..64 / K {
            // Two chains per row so that the multiply-adds' latency overlaps.
            let mut isum = [[_mm512_setzero_si512(); R]; 2];
            for k in 0..K {
                let step = g * K + k;
                let y = _mm512_load_si512(a.qs[step].as_ptr() as *const __m512i);
                for r in 0..R {
                    let q = (u[r].q.as_ptr().add(4 * step) as *const i32).read_unaligned();
                    isum[k & 1][r] = _mm512_dpbusd_epi32(isum[k & 1][r], _mm512_set1_epi32(q), y);
                }
            }
            for r in 0..R {
                let total = _mm512_add_epi32(isum[0][r], isum[1][r]);
                let scale = _mm512_set1_epi32(u[r].group_scales[g]);
                s[r] = _mm512_add_epi32(s[r], _mm512_mullo_epi32(total, scale));
            }
        }
        let mut m = [_mm512_setzero_si512(); R];
        for p in 0..8 {
            let bsums = _mm512_load_si512(a.bsums[p].as_ptr() as *const __m512i);
            for r in 0..R {
                let pair = (u[r].mins.as_ptr().add(2 * p) as *const i32).read_unaligned();
                m[r] = _mm512_dpwssd_epi32(m[r], _mm512_set1_epi32(pair), bsums);
            }
        }
        let dy = _mm512_load_ps(a.d.as_ptr());
        for r in 0..R {
            let d = _mm512_mul_ps(_mm512_set1_ps(u[r].d), dy);
            let dm = _mm512_mul_ps(_mm512_set1_ps(u[r].dm), dy);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), d, acc[r]);
            accm[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m[r]), dm, accm[r]);
        }
    }
    std::array::from_fn(|r| _mm512_sub_ps(acc[r], accm[r]))
}

/// `tile[r * n + t] = row r · token t` for a band of Q4_K, Q5_K or Q6_K rows: sixteen
/// tokens at a time from `groups` (which cover the first `16 * groups.len() /
/// per_row` tokens), the rest from `blocks`: one token straight from the packed
/// rows, more through `dot_rows_in_lanes`.
///
/// # Safety
/// The CPU must have [`crate::isa::Isa::Avx512`].
///
/// # Panics
/// If the slices do not have the shapes above.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_rows(
    dtype: GgmlType,
    row_bytes: usize,
    rows: &[u8],
    blocks: &[BlockQ8K],
    groups: &[TokenGroup],
    per_row: usize,
    tile: &mut [f32],
) {
    let n_rows = rows.len() / row_bytes;
    let n = tile.len() / n_rows.max(1);
    assert!(per_row * dtype.block_bytes() == row_bytes && blocks.len() == n * per_row);
    let n_groups = groups.len() / per_row;
    assert!(16 * n_groups <= n);
    let row = |r: usize| &rows[r * row_bytes..(r + 1) * row_bytes];
    let mut unpacked: [Vec<Unpacked>; 4] = Default::default();
    // Groups in blocks whose activations (1 MiB) stay in L2 while the band's rows
    // pass over them, four rows at a time; each block decodes every row once.
    let block = (1024 * 1024 / (per_row * std::mem::size_of::<TokenGroup>())).max(1);
    for g0 in (0..n_groups).step_by(block) {
        let g1 = (g0 + block).min(n_groups);
        for r0 in (0..n_rows).step_by(4) {
            let rr = (n_rows - r0).min(4);
            for (i, u) in unpacked.iter_mut().enumerate().take(rr) {
                unpack_row(dtype, row(r0 + i), u);
            }
            // The next four rows, requested during this block's first group.
            let next = &rows
                [((r0 + 4) * row_bytes).min(rows.len())..((r0 + 8) * row_bytes).min(rows.len())];
            for g in g0..g1 {
                let acts = &groups[g * per_row..(g + 1) * per_row];
                let next = if g == g0 { next } else { &[] };
                let mut sums = [_mm512_setzero_ps(); 4];
                // Steps of four quants per scale group: 8 for Q4_K and Q5_K.
                match (dtype != GgmlType::Q6_K, rr) {
                    (true, 4) => {
                        sums =
                            dot_group::<4, 8>(std::array::from_fn(|r| &unpacked[r][..]), acts, next)
                    }
                    (false, 4) => {
                        sums =
                            dot_group::<4, 4>(std::array::from_fn(|r| &unpacked[r][..]), acts, next)
                    }
                    (true, _) => {
                        for r in 0..rr {
                            sums[r] = dot_group::<1, 8>([&unpacked[r]], acts, &[])[0];
                        }
                    }
                    (false, _) => {
                        for r in 0..rr {
                            sums[r] = dot_group::<1, 4>([&unpacked[r]], acts, &[])[0];
                        }
                    }
                }
                for (r, sum) in sums.iter().enumerate().take(rr) {
                    let out = &mut tile[(r0 + r) * n + 16 * g..][..16];
                    _mm512_storeu_ps(out.as_mut_ptr(), *sum);
                }
            }
        }
    }
    let done = 16 * n_groups;
    if done + 1 == n {
        let ys = &blocks[done * per_row..];
        let mut r = 0;
        while r + DECODE_ROWS <= n_rows {
            let sums =
                dot_packed_rows::<DECODE_ROWS>(dtype, std::array::from_fn(|i| row(r + i)), ys);
            for (i, sum) in sums.iter().enumerate() {
                tile[(r + i) * n + done] = *sum;
            }
            r += DECODE_ROWS;
        }
        for r in r..n_rows {
            tile[r * n + done] = dot_row(dtype, row(r), ys);
        }
    } else if done < n {
        dot_rows_in_lanes(dtype, row_bytes, rows, blocks, per_row, done, tile);
    }
}

/// Sixteen rows' super-block, interleaved for [`dot_sixteen`]: lane `r` of every
/// vector belongs to row `r`.
#[repr(C, align(64))]
struct Sixteen {
    /// Step `k`: quants `4k..4k + 4` of each row.
    q: [[u8; 64]; 64],
    /// Group `g`'s scale of each row.
    group_scales: [[i32; 16]; 16],
    /// Pair `p` of min weights (`2p` and `2p + 1`, two i16) of each row.
    mins: [[i32; 16]; 8],
    d: [f32; 16],
    dm: [f32; 16],
}

/// Interleaves one super-block of sixteen unpacked rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn interleave(u: &[Unpacked; 16], six: &mut Sixteen) {
    for c in 0..4 {
        let rows = std::array::from_fn(|r| {
            _mm512_load_si512(u[r].q.as_ptr().add(64 * c) as *const __m512i)
        });
        for (j, col) in transpose16(rows).iter().enumerate() {
            _mm512_store_si512(six.q[16 * c + j].as_mut_ptr() as *mut __m512i, *col);
        }
    }
    let scales = transpose16(std::array::from_fn(|r| {
        _mm512_loadu_si512(u[r].group_scales.as_ptr() as *const __m512i)
    }));
    for (g, col) in scales.iter().enumerate() {
        _mm512_store_si512(six.group_scales[g].as_mut_ptr() as *mut __m512i, *col);
    }
    let mins = transpose16(std::array::from_fn(|r| {
        _mm512_zextsi256_si512(_mm256_loadu_si256(u[r].mins.as_ptr() as *const __m256i))
    }));
    for (p, col) in mins.iter().enumerate().take(8) {
        _mm512_store_si512(six.mins[p].as_mut_ptr() as *mut __m512i, *col);
    }
    six.d = std::array::from_fn(|r| u[r].d);
    six.dm = std::array::from_fn(|r| u[r].dm);
}

/// Sixteen interleaved rows' super-block · the `T` tokens' blocks `ys`: lane `r`
/// of `acc[t]` gains `f32(S)·d·dy` and of `accm[t]` `f32(M)·dm·dy`, for row `r`
/// and token `t`, the same operations as every other kernel here. `K` is the
/// number of four-quant steps per scale group: 8 for Q4_K and Q5_K, 4 for Q6_K.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_sixteen<const T: usize, const K: usize>(
    six: &Sixteen,
    ys: [&BlockQ8K; T],
    acc: &mut [__m512],
    accm: &mut [__m512],
) {
    let mut s = [_mm512_setzero_si512(); T];
    for g in 0..64 / K {
        // Two chains per token when there are few tokens, so that the
        // multiply-adds' latency overlaps; the sum is exact either way.
        let mut isum = [[_mm512_setzero_si512(); T]; 2];
        for k in 0..K {
            let step = g * K + k;
            let chain = if T < 5 { k & 1 } else { 0 };
            let w = _mm512_load_si512(six.q[step].as_ptr() as *const __m512i);
            for t in 0..T {
                let y = (ys[t].qs.as_ptr().add(4 * step) as *const i32).read_unaligned();
                isum[chain][t] = _mm512_dpbusd_epi32(isum[chain][t], w, _mm512_set1_epi32(y));
            }
        }
        let scale = _mm512_load_si512(six.group_scales[g].as_ptr() as *const __m512i);
        for t in 0..T {
            let total = _mm512_add_epi32(isum[0][t], isum[1][t]);
            s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(total, scale));
        }
    }
    let mut m = [_mm512_setzero_si512(); T];
    for p in 0..8 {
        let mins = _mm512_load_si512(six.mins[p].as_ptr() as *const __m512i);
        for t in 0..T {
            let pair = (ys[t].bsums.as_ptr().add(2 * p) as *const i32).read_unaligned();
            m[t] = _mm512_dpwssd_epi32(m[t], mins, _mm512_set1_epi32(pair));
        }
    }
    let (d, dm) = (
        _mm512_load_ps(six.d.as_ptr()),
        _mm512_load_ps(six.dm.as_ptr()),
    );
    for t in 0..T {
        let dy = _mm512_set1_ps(ys[t].d);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(d, dy), acc[t]);
        accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m[t]), _mm512_mul_ps(dm, dy), accm[t]);
    }
}

/// [`dot_sixteen`] for `T` tokens starting at token `t` of `blocks`, super-block `i`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_sixteen_at<const T: usize>(
    k4: bool,
    six: &Sixteen,
    blocks: &[BlockQ8K],
    (t, i, per_row): (usize, usize, usize),
    acc: &mut [__m512],
    accm: &mut [__m512],
) {
    let ys: [&BlockQ8K; T] = std::array::from_fn(|k| &blocks[(t + k) * per_row + i]);
    if k4 {
        dot_sixteen::<T, 8>(six, ys, acc, accm)
    } else {
        dot_sixteen::<T, 4>(six, ys, acc, accm)
    }
}

/// The most tokens [`dot_rows_in_lanes`] takes per pass over a super-block.
const LANE_TOKENS: usize = 8;

/// `tile[r * n + t]` for every row of `rows` and tokens `t0..n` (fewer than
/// sixteen), sixteen rows at a time with the rows in vector lanes: each
/// super-block of sixteen rows is decoded, interleaved ([`Sixteen`]), then
/// multiplied by every token, whose four quants per step are broadcast. No lane
/// is wasted whatever the number of tokens.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_rows_in_lanes(
    dtype: GgmlType,
    row_bytes: usize,
    rows: &[u8],
    blocks: &[BlockQ8K],
    per_row: usize,
    t0: usize,
    tile: &mut [f32],
) {
    let bb = dtype.block_bytes();
    let n_rows = rows.len() / row_bytes;
    let n = tile.len() / n_rows.max(1);
    let m = n - t0;
    assert!(m <= 16 && blocks.len() == n * per_row);
    let k4 = dtype != GgmlType::Q6_K;
    let mut u = [Unpacked::ZERO; 16];
    let mut six = Sixteen {
        q: [[0; 64]; 64],
        group_scales: [[0; 16]; 16],
        mins: [[0; 16]; 8],
        d: [0.0; 16],
        dm: [0.0; 16],
    };
    for r0 in (0..n_rows).step_by(16) {
        let rr = (n_rows - r0).min(16);
        // Rows past the end stay zero.
        u[rr..].fill(Unpacked::ZERO);
        let mut acc = [_mm512_setzero_ps(); 16];
        let mut accm = [_mm512_setzero_ps(); 16];
        for i in 0..per_row {
            for (r, u) in u.iter_mut().enumerate().take(rr) {
                let at = (r0 + r) * row_bytes + i * bb;
                // Two super-blocks ahead in the row, or in the next sixteen rows.
                let ahead = if i + 2 < per_row {
                    at + 2 * bb
                } else {
                    at + 16 * row_bytes + 2 * bb - row_bytes
                };
                for line in (0..bb).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(
                        rows.as_ptr().wrapping_add(ahead + line) as *const i8
                    );
                }
                let b = &rows[at..at + bb];
                match dtype {
                    GgmlType::Q4_K | GgmlType::Q5_K => unpack_k4(dtype, b, u),
                    _ => unpack_q6k(b, u),
                }
            }
            interleave(&u, &mut six);
            // Passes of at most LANE_TOKENS tokens, as even as possible.
            let mut t = t0;
            while t < n {
                let passes = (n - t).div_ceil(LANE_TOKENS);
                let take = (n - t).div_ceil(passes);
                let (a, am) = (&mut acc[t - t0..], &mut accm[t - t0..]);
                let at = (t, i, per_row);
                match take {
                    1 => dot_sixteen_at::<1>(k4, &six, blocks, at, a, am),
                    2 => dot_sixteen_at::<2>(k4, &six, blocks, at, a, am),
                    3 => dot_sixteen_at::<3>(k4, &six, blocks, at, a, am),
                    4 => dot_sixteen_at::<4>(k4, &six, blocks, at, a, am),
                    5 => dot_sixteen_at::<5>(k4, &six, blocks, at, a, am),
                    6 => dot_sixteen_at::<6>(k4, &six, blocks, at, a, am),
                    7 => dot_sixteen_at::<7>(k4, &six, blocks, at, a, am),
                    _ => dot_sixteen_at::<8>(k4, &six, blocks, at, a, am),
                }
                t += take;
            }
        }
        for t in t0..n {
            let mut lanes = [0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), _mm512_sub_ps(acc[t - t0], accm[t - t0]));
            for (r, v) in lanes.iter().enumerate().take(rr) {
                tile[(r0 + r) * n + t] = *v;
            }
        }
    }
}

/// [`super::acts::quantize_q8k`] with AVX-512: the same quants, scale and sums for
/// finite inputs (the same float operations, vectorized).
///
/// # Safety
/// The CPU must have [`crate::isa::Isa::Avx512`].
///
/// # Panics
/// If `x` is not `QK_K` long.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn quantize(x: &[f32]) -> BlockQ8K {
    assert_eq!(x.len(), QK_K);
    let mut block = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; 16],
    };
    let v: [__m512; 16] = std::array::from_fn(|j| _mm512_loadu_ps(x.as_ptr().add(16 * j)));
    // NaN lanes lose every comparison, as in the scalar loop (`max` returns its
    // second operand when one is NaN).
    let amax = v.iter().fold(_mm512_setzero_ps(), |m, &v| {
        _mm512_max_ps(_mm512_abs_ps(v), m)
    });
    let amax = _mm512_reduce_max_ps(amax);
    if amax == 0.0 || amax.is_nan() {
        return block;
    }
    // The first element whose magnitude is the maximum, sign included.
    let first = v
        .iter()
        .enumerate()
        .find_map(|(j, &v)| {
            let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_abs_ps(v), _mm512_set1_ps(amax));
            (hit != 0).then(|| 16 * j + hit.trailing_zeros() as usize)
        })
        .expect("the maximum is one of the elements");
    let iscale = -127.0 / x[first];
    let magic = _mm512_set1_ps(12_582_912.0);
    for (j, &v) in v.iter().enumerate() {
        let r = _mm512_sub_ps(
            _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(iscale)), magic),
            magic,
        );
        let q = _mm512_min_epi32(_mm512_cvtps_epi32(r), _mm512_set1_epi32(127));
        _mm_storeu_si128(
            block.qs.as_mut_ptr().add(16 * j) as *mut __m128i,
            _mm512_cvtsepi32_epi8(q),
        );
        block.bsums[j] = _mm512_reduce_add_epi32(q) as i16;
    }
    block.d = 1.0 / iscale;
    block
}
