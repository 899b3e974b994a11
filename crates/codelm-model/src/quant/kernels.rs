//! Dot-product kernels: weight rows (any [`GgmlType`]) against quantized activations.
//!
//! Activations are quantized once per matmul: Q8_0 (blocks of 32) for the legacy
//! types and Q8_K (blocks of 256 with 16-element sums) for the k-quants, so the
//! inner loops are integer multiply-adds (float rows take float activations). Each
//! kernel has a portable version, which is the reference (its exact integer sums
//! run on NEON on aarch64, module `neon`), and on x86-64 faster ones chosen at run
//! time: AVX2+FMA for Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K and the float types; AVX-512
//! VNNI for Q4_0, Q5_0 and Q8_0 (module `avx512`) and Q4_K, Q5_K, Q6_K (module
//! `kquant512`), preferred where the CPU has them. Each of those modules states the
//! one arithmetic all of its tilings share, so that a token's result never depends
//! on how many tokens share the call.

use half::{bf16, f16};
use rayon::prelude::*;

use super::blocks::{f16_at, kquant_ints, scale_min_k4, GgmlType, QK_K};
#[cfg(target_arch = "x86_64")]
use crate::isa::{self, Isa};

#[cfg(target_arch = "x86_64")]
mod kquant512;

/// Writes a band's `tile` (its weight rows × `n` tokens, row-major) into `out`
/// (tokens × `stride` outputs) at columns from `start`: `out[t * stride + start +
/// r] = tile[r * n + t]`, in 16 × 16 squares so that both sides touch only sixteen
/// cache lines at a time; with AVX-512, each square of sixteen rows is one
/// [`transpose16`].
///
/// # Safety
/// `out` must be valid for writes at all those indices, and no other thread may
/// access them meanwhile.
pub unsafe fn scatter_tile(tile: &[f32], n: usize, out: *mut f32, stride: usize, start: usize) {
    let n_rows = tile.len() / n.max(1);
    #[cfg(target_arch = "x86_64")]
    let wide = has_avx512();
    for t0 in (0..n).step_by(16) {
        let tokens = (n - t0).min(16);
        for r0 in (0..n_rows).step_by(16) {
            #[cfg(target_arch = "x86_64")]
            if wide && r0 + 16 <= n_rows {
                // SAFETY: AVX-512F was detected; the square is inside `tile`, and
                // the caller vouches for `out`.
                unsafe { scatter_square(tile, n, out, stride, start, (t0, r0, tokens)) };
                continue;
            }
            for t in t0..t0 + tokens {
                for r in r0..(r0 + 16).min(n_rows) {
                    // SAFETY: the caller vouches for `out` at these indices.
                    unsafe { *out.add(t * stride + start + r) = tile[r * n + t] };
                }
            }
        }
    }
}

/// One square of [`scatter_tile`]: sixteen rows, `tokens` (at most sixteen) tokens.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scatter_square(
    tile: &[f32],
    n: usize,
    out: *mut f32,
    stride: usize,
    start: usize,
    (t0, r0, tokens): (usize, usize, usize),
) {
    use std::arch::x86_64::*;
    let mask = ((1u32 << tokens) - 1) as u16;
    let rows: [__m512i; 16] = std::array::from_fn(|i| {
        let row = &tile[(r0 + i) * n + t0..][..tokens];
        _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, row.as_ptr()))
    });
    for (j, col) in transpose16(rows).iter().enumerate().take(tokens) {
        _mm512_storeu_ps(
            out.add((t0 + j) * stride + start + r0),
            _mm512_castsi512_ps(*col),
        );
    }
}

/// Lane `i` of `out[j]` is lane `j` of `rows[i]`: a 16 × 16 transpose of dwords
/// (pairs of dwords, pairs of qwords, then 128-bit lanes).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(rows: [std::arch::x86_64::__m512i; 16]) -> [std::arch::x86_64::__m512i; 16] {
    use std::arch::x86_64::*;
    // a[2k], a[2k + 1]: rows 2k and 2k + 1, columns 4L, 4L + 1 (4L + 2, 4L + 3)
    // of each 128-bit lane L, interleaved.
    let a: [__m512i; 16] = std::array::from_fn(|i| {
        let (x, y) = (rows[i & !1], rows[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(x, y)
        } else {
            _mm512_unpackhi_epi32(x, y)
        }
    });
    // b[4m + c]: rows 4m..4m + 4 of column 4L + c in 128-bit lane L.
    let b: [__m512i; 16] = std::array::from_fn(|i| {
        let (m, c) = (i / 4, i % 4);
        let (x, y) = (a[4 * m + c / 2], a[4 * m + 2 + c / 2]);
        if c % 2 == 0 {
            _mm512_unpacklo_epi64(x, y)
        } else {
            _mm512_unpackhi_epi64(x, y)
        }
    });
    // Column 4L + c gathers lane L of b[c], b[4 + c], b[8 + c], b[12 + c].
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let p0 = _mm512_shuffle_i32x4::<0x44>(b[c], b[4 + c]);
        let p1 = _mm512_shuffle_i32x4::<0xEE>(b[c], b[4 + c]);
        let q0 = _mm512_shuffle_i32x4::<0x44>(b[8 + c], b[12 + c]);
        let q1 = _mm512_shuffle_i32x4::<0xEE>(b[8 + c], b[12 + c]);
        out[c] = _mm512_shuffle_i32x4::<0x88>(p0, q0);
        out[4 + c] = _mm512_shuffle_i32x4::<0xDD>(p0, q0);
        out[8 + c] = _mm512_shuffle_i32x4::<0x88>(p1, q1);
        out[12 + c] = _mm512_shuffle_i32x4::<0xDD>(p1, q1);
    }
    out
}

/// One Q8_0 activation block.
#[derive(Clone, Copy)]
pub struct BlockQ8 {
    /// Scale.
    pub d: f32,
    /// `d · Σ qs`, used by the types with a min.
    pub sum: f32,
    /// Quants.
    pub qs: [i8; 32],
}

/// One Q8_K activation block.
#[derive(Clone, Copy)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sums of each 16 quants.
    pub bsums: [i16; 16],
}

/// Q8_K activations of sixteen tokens for one super-block, transposed so that
/// vector lane `t` holds token `t` (the AVX-512 k-quant prefill kernel's layout).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct TokenGroup {
    /// `qs[k][t]`: token `t`'s quants `4k..4k + 4`, as the bytes of one i32.
    pub qs: [[i32; 16]; 64],
    /// `bsums[p][t]`: token `t`'s 16-sums `2p` and `2p + 1`, as two i16 in one i32.
    pub bsums: [[i32; 16]; 8],
    /// `d[t]`: token `t`'s scale.
    pub d: [f32; 16],
}

impl TokenGroup {
    /// Transposes the first `16 * n_groups` tokens of `blocks` (`per_row` blocks
    /// per token) into `n_groups * per_row` groups, group-major.
    fn transpose(blocks: &[BlockQ8K], n_groups: usize, per_row: usize) -> Vec<TokenGroup> {
        let mut groups = Vec::with_capacity(n_groups * per_row);
        for g in 0..n_groups {
            for i in 0..per_row {
                let mut group = TokenGroup {
                    qs: [[0; 16]; 64],
                    bsums: [[0; 16]; 8],
                    d: [0.0; 16],
                };
                for t in 0..16 {
                    let b = &blocks[(16 * g + t) * per_row + i];
                    for (k, q) in b.qs.chunks_exact(4).enumerate() {
                        group.qs[k][t] =
                            i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]);
                    }
                    for (p, s) in b.bsums.chunks_exact(2).enumerate() {
                        group.bsums[p][t] =
                            (s[0] as u16 as u32 | ((s[1] as u16 as u32) << 16)) as i32;
                    }
                    group.d[t] = b.d;
                }
                groups.push(group);
            }
        }
        groups
    }
}

/// Q8_0 activations of one token for sixteen consecutive blocks (a group), laid
/// out for the AVX-512 kernels of Q4_0/Q5_0/Q8_0; blocks past the row are zeros.
///
/// The group's blocks form two octets `o` (blocks `8o..8o + 8`): vector `4o + q`
/// of `qs` holds, in its eight-byte chunk `i`, quants `8q..8q + 8` of block
/// `8o + i`. Those kernels multiply unsigned weights `w + offset` (`offset` = 8,
/// 16, 128 for Q4_0, Q5_0, Q8_0) with `vpdpbusd`; `corr` removes the offset again.
/// Per-block values are in lane order ([`group_lane`]).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct GroupQ8 {
    /// Quants, in the layout above.
    pub qs: [[i8; 64]; 8],
    /// `−offset · Σ qs` of each block.
    pub corr: [i32; 16],
    /// Each block's scale.
    pub d: [f32; 16],
}

/// The vector lane of block `j` of a group (`0..16`) in the AVX-512 Q4_0/Q5_0/Q8_0
/// kernels: block `8o + 2c + e` is lane `4c + 2o + e`, where their `vpdpbusd`
/// sums land once both octets' lane pairs are added.
pub const fn group_lane(j: usize) -> usize {
    let (o, i) = (j / 8, j % 8);
    4 * (i / 2) + 2 * o + i % 2
}

/// The activations of one matmul, in the format the weight type multiplies with.
pub enum Activations<'a> {
    /// Plain floats, for float weights: `(n, cols)`.
    F32(&'a [f32], usize),
    /// Q8_0 blocks: `(n, cols / 32)`, and, where the AVX-512 kernels of Q4_0, Q5_0
    /// and Q8_0 run, the same quants in groups of sixteen blocks:
    /// `(n, cols / 32 / 16 rounded up)` (empty otherwise).
    Q8(Vec<BlockQ8>, usize, Vec<GroupQ8>),
    /// Q8_K blocks: `(n, cols / 256)`, and, where the AVX-512 k-quant kernels run,
    /// the tokens in transposed groups of sixteen (empty otherwise).
    Q8K(Vec<BlockQ8K>, usize, Vec<TokenGroup>),
}

impl<'a> Activations<'a> {
    /// Quantizes `xs (n, cols)` for multiplication with weights of type `dtype`.
    pub fn quantize(dtype: GgmlType, xs: &'a [f32], n: usize, cols: usize) -> Self {
        match dtype {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Activations::F32(xs, cols),
            // Many rows (a prefill) are quantized in parallel; blocks are independent.
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                let blocks: Vec<BlockQ8> = if n >= 16 {
                    xs.par_chunks_exact(32).map(quantize_q8).collect()
                } else {
                    xs.chunks_exact(32).map(quantize_q8).collect()
                };
                let per_row = cols / 32;
                let mut groups = Vec::new();
                if has_avx512() && per_row > 0 {
                    if let Some(offset) = unsigned_offset(dtype) {
                        let per_groups = per_row.div_ceil(16);
                        groups = vec![GROUP_ZERO; n * per_groups];
                        let fill = |(ys, out): (&[BlockQ8], &mut [GroupQ8])| {
                            groups_from_blocks(offset, ys, out)
                        };
                        if n >= 16 {
                            blocks
                                .par_chunks_exact(per_row)
                                .zip(groups.par_chunks_exact_mut(per_groups))
                                .for_each(fill);
                        } else {
                            blocks
                                .chunks_exact(per_row)
                                .zip(groups.chunks_exact_mut(per_groups))
                                .for_each(fill);
                        }
                    }
                }
                Activations::Q8(blocks, per_row, groups)
            }
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                #[cfg(target_arch = "x86_64")]
                let quantize: fn(&[f32]) -> BlockQ8K = if kquant512::available() {
                    // SAFETY: the AVX-512 features were detected at run time.
                    |x| unsafe { kquant512::quantize(x) }
                } else {
                    quantize_q8k
                };
                #[cfg(not(target_arch = "x86_64"))]
                let quantize = quantize_q8k;
                let blocks: Vec<BlockQ8K> = if n >= 16 {
                    xs.par_chunks_exact(QK_K).map(quantize).collect()
                } else {
                    xs.chunks_exact(QK_K).map(quantize).collect()
                };
                let per_row = cols / QK_K;
                // Full groups of sixteen tokens; the kernels take the rest (fewer
                // than sixteen) with rows in vector lanes, which pads nothing.
                #[cfg(target_arch = "x86_64")]
                let n_groups = if kquant512::available() { n / 16 } else { 0 };
                #[cfg(not(target_arch = "x86_64"))]
                let n_groups = 0;
                let groups = TokenGroup::transpose(&blocks, n_groups, per_row);
                Activations::Q8K(blocks, per_row, groups)
            }
        }
    }
}

const GROUP_ZERO: GroupQ8 = GroupQ8 {
    qs: [[0; 64]; 8],
    corr: [0; 16],
    d: [0.0; 16],
};

/// The offset that makes a weight quant unsigned for `vpdpbusd`, for the types
/// with AVX-512 kernels.
fn unsigned_offset(dtype: GgmlType) -> Option<i32> {
    match dtype {
        GgmlType::Q4_0 => Some(8),
        GgmlType::Q5_0 => Some(16),
        GgmlType::Q8_0 => Some(128),
        _ => None,
    }
}

/// One token's Q8_0 blocks as [`GroupQ8`]s (`out.len() == ys.len().div_ceil(16)`).
fn groups_from_blocks(offset: i32, ys: &[BlockQ8], out: &mut [GroupQ8]) {
    for (group, out) in ys.chunks(16).zip(out) {
        *out = GROUP_ZERO;
        for (j, y) in group.iter().enumerate() {
            let (o, i) = (j / 8, j % 8);
            for q in 0..4 {
                out.qs[4 * o + q][8 * i..8 * i + 8].copy_from_slice(&y.qs[8 * q..8 * q + 8]);
            }
            let sum: i32 = y.qs.iter().map(|&q| q as i32).sum();
            out.corr[group_lane(j)] = -offset * sum;
            out.d[group_lane(j)] = y.d;
        }
    }
}

/// Rounds half to even, like `f32::round_ties_even`, for `|v| <= 2^22` (and NaN
/// stays NaN). Adding and subtracting 1.5·2^23 leaves no fraction bits, so the
/// hardware's round-to-nearest-even does the rounding; `round_ties_even` itself
/// is a libm call on baseline x86-64 and took 6% of a prefill.
#[inline(always)]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

fn quantize_q8(x: &[f32]) -> BlockQ8 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    // ggml multiplies by 127/amax (not 1/d); the last bit matters for ties.
    let inv = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; 32];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        // Ties to even, as ggml's x86 path (`_MM_ROUND_NEAREST`) rounds.
        *q = round_even(v * inv) as i8;
        sum += *q as i32;
    }
    // Round the scale through f16 as ggml's block_q8_0 does, so results match it.
    let d = f16::from_f32(d).to_f32();
    BlockQ8 {
        d,
        sum: d * sum as f32,
        qs,
    }
}

fn quantize_q8k(x: &[f32]) -> BlockQ8K {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let mut block = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; 16],
    };
    if amax == 0.0 {
        return block;
    }
    // ggml scales by the signed extreme (so it maps to -127) and rounds ties to even.
    let iscale = -127.0 / max;
    for (q, &v) in block.qs.iter_mut().zip(x) {
        *q = (round_even(iscale * v) as i32).min(127) as i8;
    }
    for (j, sum) in block.bsums.iter_mut().enumerate() {
        *sum = block.qs[16 * j..16 * j + 16]
            .iter()
            .map(|&q| q as i16)
            .sum();
    }
    block.d = 1.0 / iscale;
    block
}

/// `tile[r * n + t] = dot(weight row r, activation row t)` for every row in `rows`.
pub fn dot_rows(
    dtype: GgmlType,
    row_bytes: usize,
    rows: &[u8],
    acts: &Activations,
    tile: &mut [f32],
) {
    let n_rows = rows.len() / row_bytes;
    let n = tile.len() / n_rows.max(1);
    let use_avx2 = has_avx2();
    #[cfg(target_arch = "x86_64")]
    let use_vnni = use_avx2 && std::is_x86_feature_detected!("avxvnni");
    #[cfg(target_arch = "x86_64")]
    if let Activations::Q8(_, per_row, groups) = acts {
        if !groups.is_empty() {
            // Built only where AVX-512 was detected and `dtype` has its kernels.
            let per_groups = per_row.div_ceil(16);
            avx512::dot_rows(dtype, row_bytes, rows, groups, per_groups, n, tile);
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    let (mut unpacked, mut scales): (Vec<i8>, Vec<f32>) = (Vec::new(), Vec::new());
    #[cfg(target_arch = "x86_64")]
    if let Activations::Q8K(blocks, per_row, groups) = acts {
        if matches!(dtype, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K)
            && kquant512::available()
        {
            // SAFETY: the AVX-512 features were detected at run time.
            unsafe {
                kquant512::dot_rows(dtype, row_bytes, rows, blocks, groups, *per_row, tile);
            }
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let (true, 1, Activations::Q8(ys, _, _)) = (use_avx2, n, acts) {
        if matches!(dtype, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0) {
            // One token: four rows per pass share each activation load and keep four
            // independent accumulator chains (and their loads) in flight.
            let mut groups = rows.chunks_exact(4 * row_bytes);
            for (g, group) in groups.by_ref().enumerate() {
                let four: [&[u8]; 4] =
                    std::array::from_fn(|i| &group[i * row_bytes..(i + 1) * row_bytes]);
                // SAFETY: AVX2, FMA and F16C were detected at run time.
                let sums = unsafe { avx2::dot_q8_x4(dtype, four, ys) };
                tile[4 * g..4 * g + 4].copy_from_slice(&sums);
            }
            let done = n_rows - groups.remainder().len() / row_bytes;
            for (r, row) in groups.remainder().chunks_exact(row_bytes).enumerate() {
                tile[done + r] = dot_q8(dtype, row, ys, true);
            }
            return;
        }
    }
    // Tokens in blocks whose activations (512 KiB) stay in L2 while every row of
    // the band passes over them; with all tokens at once a long prefill streamed
    // them from L3 once per weight row. Bigger blocks decode each row less often.
    let token_bytes = match acts {
        Activations::F32(_, cols) => cols * 4,
        Activations::Q8(_, per_row, _) => per_row * std::mem::size_of::<BlockQ8>(),
        Activations::Q8K(_, per_row, _) => per_row * std::mem::size_of::<BlockQ8K>(),
    };
    let block_tokens = (512 * 1024 / token_bytes.max(1)).clamp(8, n.max(8)) / 8 * 8;
    for t0 in (0..n).step_by(block_tokens) {
        let t1 = (t0 + block_tokens).min(n);
        for (r, row) in rows.chunks_exact(row_bytes).enumerate() {
            let out = &mut tile[r * n + t0..r * n + t1];
            match acts {
                Activations::F32(xs, cols) => {
                    let x = |t: usize| &xs[(t0 + t) * cols..(t0 + t + 1) * cols];
                    // Several tokens per pass over the row, the same arithmetic.
                    #[cfg(not(target_arch = "x86_64"))]
                    let t = 0;
                    #[cfg(target_arch = "x86_64")]
                    let mut t = 0;
                    #[cfg(target_arch = "x86_64")]
                    if use_avx2 {
                        // SAFETY: AVX2, FMA and F16C (and AVX-512F/VL for eight) were
                        // detected at run time.
                        unsafe {
                            if has_avx512() {
                                while t + 8 <= out.len() {
                                    let xs = std::array::from_fn(|k| x(t + k));
                                    let sums = avx512::dot_float_tokens::<8>(dtype, row, xs);
                                    out[t..t + 8].copy_from_slice(&sums);
                                    t += 8;
                                }
                            }
                            while t + 3 <= out.len() {
                                let xs = std::array::from_fn(|k| x(t + k));
                                let sums = avx2::dot_float_tokens::<3>(dtype, row, xs);
                                out[t..t + 3].copy_from_slice(&sums);
                                t += 3;
                            }
                        }
                    }
                    for (t, o) in out.iter_mut().enumerate().skip(t) {
                        *o = dot_float(dtype, row, x(t), use_avx2);
                    }
                }
                Activations::Q8(blocks, per_row, _) => {
                    #[cfg(target_arch = "x86_64")]
                    if use_avx2
                        && n > 1
                        && matches!(dtype, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0)
                    {
                        // Decode the weight row once, then reuse it for every token, four
                        // tokens per pass (independent accumulator chains).
                        // SAFETY: AVX2, FMA and F16C were detected at run time.
                        unsafe {
                            avx2::unpack_row(dtype, row, &mut unpacked, &mut scales);
                            let mut t = 0;
                            while t + 4 <= out.len() {
                                let ys: [&[BlockQ8]; 4] = std::array::from_fn(|i| {
                                    &blocks[(t0 + t + i) * per_row..(t0 + t + i + 1) * per_row]
                                });
                                let sums = if use_vnni {
                                    avx2::dot_unpacked_x4_vnni(&unpacked, &scales, ys)
                                } else {
                                    avx2::dot_unpacked_x4(&unpacked, &scales, ys)
                                };
                                out[t..t + 4].copy_from_slice(&sums);
                                t += 4;
                            }
                            for (t, o) in out.iter_mut().enumerate().skip(t) {
                                let ys = &blocks[(t0 + t) * per_row..(t0 + t + 1) * per_row];
                                *o = avx2::dot_unpacked(&unpacked, &scales, ys);
                            }
                        }
                        continue;
                    }
                    for (t, o) in out.iter_mut().enumerate() {
                        let ys = &blocks[(t0 + t) * per_row..(t0 + t + 1) * per_row];
                        *o = dot_q8(dtype, row, ys, use_avx2);
                    }
                }
                Activations::Q8K(blocks, per_row, _) => {
                    #[cfg(target_arch = "x86_64")]
                    if use_avx2 && matches!(dtype, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K)
                    {
                        // Four tokens per pass: each weight super-block is decoded once
                        // into registers and multiplied with all four.
                        let mut t = 0;
                        while t + 4 <= out.len() {
                            let ys: [&[BlockQ8K]; 4] = std::array::from_fn(|i| {
                                &blocks[(t0 + t + i) * per_row..(t0 + t + i + 1) * per_row]
                            });
                            // SAFETY: AVX2, FMA and F16C were detected at run time.
                            let sums = unsafe { avx2::dot_q8k_x4_tokens(dtype, row, ys) };
                            out[t..t + 4].copy_from_slice(&sums);
                            t += 4;
                        }
                        for (t, o) in out.iter_mut().enumerate().skip(t) {
                            let ys = &blocks[(t0 + t) * per_row..(t0 + t + 1) * per_row];
                            *o = dot_q8k(dtype, row, ys, true);
                        }
                        continue;
                    }
                    for (t, o) in out.iter_mut().enumerate() {
                        let ys = &blocks[(t0 + t) * per_row..(t0 + t + 1) * per_row];
                        *o = dot_q8k(dtype, row, ys, use_avx2);
                    }
                }
            }
        }
    }
}

/// What the k-quant AVX-512 kernels need (VNNI's `vpdpbusd`), plus VBMI (`vpermb`)
/// and BITALG (`vpshufbitqmb`): the kernels of [`avx512`]. (Cascade Lake has the
/// first without the others; Ice Lake and later, and Zen 4, have all.)
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kquant512::available()
            && std::is_x86_feature_detected!("avx512vbmi")
            && std::is_x86_feature_detected!("avx512bitalg")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa::allowed(Isa::Avx2)
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Float weight row (F32, F16, BF16) · float activations: with `fast` where AVX2,
/// FMA and F16C are present, four chains of eight lanes; else in element order.
/// Every tiling calls this per (row, token), so each gives the same bits.
fn dot_float(dtype: GgmlType, row: &[u8], xs: &[f32], fast: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if fast && has_avx2() {
        // SAFETY: AVX2, FMA and F16C were detected at run time.
        return unsafe { avx2::dot_float(dtype, row, xs) };
    }
    let _ = fast;
    dot_float_scalar(dtype, row, xs)
}

fn dot_float_scalar(dtype: GgmlType, row: &[u8], xs: &[f32]) -> f32 {
    match dtype {
        GgmlType::F32 => row
            .chunks_exact(4)
            .zip(xs)
            .map(|(b, x)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * x)
            .sum(),
        GgmlType::F16 => row
            .chunks_exact(2)
            .zip(xs)
            .map(|(b, x)| f16::from_le_bytes([b[0], b[1]]).to_f32() * x)
            .sum(),
        GgmlType::BF16 => row
            .chunks_exact(2)
            .zip(xs)
            .map(|(b, x)| bf16::from_le_bytes([b[0], b[1]]).to_f32() * x)
            .sum(),
        _ => unreachable!("float activations are only built for float weights"),
    }
}

/// Weight row (a legacy 32-block type) · Q8_0 activations.
///
/// With `use_avx2` on a machine with AVX-512, Q4_0/Q5_0/Q8_0 take the AVX-512
/// arithmetic, bit-identical to what [`dot_rows`] computes there.
pub fn dot_q8(dtype: GgmlType, row: &[u8], ys: &[BlockQ8], use_avx2: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if use_avx2 && has_avx512() && !ys.is_empty() {
        if let Some(offset) = unsigned_offset(dtype) {
            let mut groups = vec![GROUP_ZERO; ys.len().div_ceil(16)];
            groups_from_blocks(offset, ys, &mut groups);
            // SAFETY: the AVX-512 features were detected at run time.
            return unsafe { avx512::dot_packed_rows(dtype, [row], &groups)[0] };
        }
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2 && matches!(dtype, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0) {
        // SAFETY: AVX2, FMA and F16C were detected at run time.
        return unsafe { avx2::dot_q8(dtype, row, ys) };
    }
    let _ = use_avx2;
    dot_q8_scalar(dtype, row, ys)
}

/// Weight row (a k-quant) · Q8_K activations, with the fastest kernel this CPU
/// has when `fast` (AVX-512, then AVX2), else the scalar reference. The fast result
/// equals, bit for bit, what [`dot_rows`] gives for the same row and token.
pub fn dot_q8k(dtype: GgmlType, row: &[u8], ys: &[BlockQ8K], fast: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if fast && matches!(dtype, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K) {
        if kquant512::available() {
            // SAFETY: the AVX-512 features were detected at run time.
            return unsafe { kquant512::dot_row(dtype, row, ys) };
        }
        if has_avx2() {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe { avx2::dot_q8k(dtype, row, ys) };
        }
    }
    let _ = fast;
    dot_q8k_scalar(dtype, row, ys)
}

/// Unpacks one legacy block into signed quants and returns `(d, m)`; `m` is 0 for
/// the types without a min.
fn unpack_legacy(dtype: GgmlType, b: &[u8], q: &mut [i32; 32]) -> (f32, f32) {
    match dtype {
        GgmlType::Q8_0 => {
            for j in 0..32 {
                q[j] = b[2 + j] as i8 as i32;
            }
            (f16_at(b, 0), 0.0)
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let has_min = dtype == GgmlType::Q4_1;
            let (at, offset) = if has_min { (4, 0) } else { (2, 8) };
            for j in 0..16 {
                q[j] = (b[at + j] & 0xF) as i32 - offset;
                q[j + 16] = (b[at + j] >> 4) as i32 - offset;
            }
            (f16_at(b, 0), if has_min { f16_at(b, 2) } else { 0.0 })
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let has_min = dtype == GgmlType::Q5_1;
            let (at, offset) = if has_min { (4, 0) } else { (2, 16) };
            let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                q[j] = ((b[at + 4 + j] & 0xF) as u32 | h0) as i32 - offset;
                q[j + 16] = ((b[at + 4 + j] >> 4) as u32 | h1) as i32 - offset;
            }
            (f16_at(b, 0), if has_min { f16_at(b, 2) } else { 0.0 })
        }
        _ => unreachable!("not a legacy type"),
    }
}

/// The portable reference for the 32-element types: per block, the exact integer
/// dot, then `acc += d·dy·sumi + m·sum`. On aarch64 the integer dot of Q4_0, Q5_0
/// and Q8_0 runs on NEON ([`neon::legacy_sumi`]); it is exact, so the result is the
/// same.
fn dot_q8_scalar(dtype: GgmlType, row: &[u8], ys: &[BlockQ8]) -> f32 {
    let mut q = [0i32; 32];
    let mut acc = 0.0f32;
    for (b, y) in row.chunks_exact(dtype.block_bytes()).zip(ys) {
        #[cfg(target_arch = "aarch64")]
        let (d, m, sumi) = if matches!(dtype, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0) {
            // SAFETY: NEON is part of the aarch64 baseline. These types have no min.
            (f16_at(b, 0), 0.0, unsafe { neon::legacy_sumi(dtype, b, y) })
        } else {
            let (d, m) = unpack_legacy(dtype, b, &mut q);
            (d, m, legacy_sumi(&q, y))
        };
        #[cfg(not(target_arch = "aarch64"))]
        let (d, m, sumi) = {
            let (d, m) = unpack_legacy(dtype, b, &mut q);
            (d, m, legacy_sumi(&q, y))
        };
        acc += d * y.d * sumi as f32 + m * y.sum;
    }
    acc
}

/// `Σ q · y` of one unpacked legacy block.
fn legacy_sumi(q: &[i32; 32], y: &BlockQ8) -> i32 {
    q.iter().zip(&y.qs).map(|(&a, &b)| a * b as i32).sum()
}

/// The portable reference for the k-quants: per super-block, the exact integers
/// `(sumi, summ)` ([`kquant_sums`]), then the same float operations. On aarch64
/// the integers come from NEON ([`neon::kquant_sums`]), with the same result.
fn dot_q8k_scalar(dtype: GgmlType, row: &[u8], ys: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    #[cfg(not(target_arch = "aarch64"))]
    let mut q = [0i32; QK_K];
    for (b, y) in row.chunks_exact(dtype.block_bytes()).zip(ys) {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is part of the aarch64 baseline.
        let (sumi, summ) = unsafe { neon::kquant_sums(dtype, b, y) };
        #[cfg(not(target_arch = "aarch64"))]
        let (sumi, summ) = kquant_sums(dtype, b, y, &mut q);
        match dtype {
            GgmlType::Q4_K | GgmlType::Q5_K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                acc += d * y.d * sumi as f32 - dmin * y.d * summ as f32;
            }
            GgmlType::Q6_K => acc += f16_at(b, 208) * y.d * sumi as f32,
            _ => unreachable!("not a k-quant"),
        }
    }
    acc
}

/// `(Σ_groups scale · Σ q · y, Σ_sub-blocks min · bsums)` of one k-quant block and
/// one token (`summ` is 0 for Q6_K), in plain Rust (on aarch64, what the tests hold
/// the NEON version to).
#[cfg_attr(all(target_arch = "aarch64", not(test)), allow(dead_code))]
fn kquant_sums(dtype: GgmlType, b: &[u8], y: &BlockQ8K, q: &mut [i32; QK_K]) -> (i32, i32) {
    kquant_ints(dtype, b, q);
    let dot = |at: usize, n: usize| -> i32 { (at..at + n).map(|k| q[k] * y.qs[k] as i32).sum() };
    match dtype {
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let mut sumi = 0i32;
            let mut summ = 0i32;
            for j in 0..8 {
                let (sc, m) = scale_min_k4(j, &b[4..16]);
                sumi += sc as i32 * dot(32 * j, 32);
                summ += m as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32);
            }
            (sumi, summ)
        }
        _ => {
            let sumi = (0..16)
                .map(|j| (b[192 + j] as i8) as i32 * dot(16 * j, 16))
                .sum();
            (sumi, 0)
        }
    }
}

/// NEON integer dots for aarch64 (NEON is part of its baseline): the exact sums
/// of the portable reference, from 16-byte vectors (`smull` pairs accumulated
/// with `sadalp`), so the reference's float operations give the same bits.
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{BlockQ8, BlockQ8K};
    use crate::quant::blocks::{scales_mins_k4, GgmlType};

    /// Lane `j` holds bit `j % 8`: tests the bits of two bytes spread over 16 lanes.
    static BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

    /// `acc + Σ w · y` over sixteen signed bytes (products fit i16, pairs i32).
    #[inline]
    unsafe fn mul_acc(acc: int32x4_t, w: int8x16_t, y: int8x16_t) -> int32x4_t {
        let lo = vmull_s8(vget_low_s8(w), vget_low_s8(y));
        let hi = vmull_high_s8(w, y);
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }

    /// `Σ w · y` over sixteen signed bytes.
    #[inline]
    unsafe fn dot16(w: int8x16_t, y: *const i8) -> i32 {
        vaddvq_s32(mul_acc(vdupq_n_s32(0), w, vld1q_s8(y)))
    }

    /// 16 · (bit `j` of the 16-bit `bits`) in lane `j`.
    #[inline]
    unsafe fn fifth_bits(bits: u16) -> uint8x16_t {
        let v = vcombine_u8(vdup_n_u8(bits as u8), vdup_n_u8((bits >> 8) as u8));
        vandq_u8(vtstq_u8(v, vld1q_u8(BITS.as_ptr())), vdupq_n_u8(16))
    }

    /// `Σ q · y` of one Q4_0, Q5_0 or Q8_0 block.
    pub unsafe fn legacy_sumi(dtype: GgmlType, b: &[u8], y: &BlockQ8) -> i32 {
        assert!(b.len() >= dtype.block_bytes());
        let (w0, w1) = match dtype {
            GgmlType::Q8_0 => (
                vld1q_s8(b.as_ptr().add(2).cast()),
                vld1q_s8(b.as_ptr().add(18).cast()),
            ),
            GgmlType::Q4_0 => {
                let raw = vld1q_u8(b.as_ptr().add(2));
                let eight = vdupq_n_s8(8);
                (
                    vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0xF))), eight),
                    vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(raw)), eight),
                )
            }
            GgmlType::Q5_0 => {
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let raw = vld1q_u8(b.as_ptr().add(6));
                let lo = vorrq_u8(vandq_u8(raw, vdupq_n_u8(0xF)), fifth_bits(qh as u16));
                let hi = vorrq_u8(vshrq_n_u8::<4>(raw), fifth_bits((qh >> 16) as u16));
                let sixteen = vdupq_n_s8(16);
                (
                    vsubq_s8(vreinterpretq_s8_u8(lo), sixteen),
                    vsubq_s8(vreinterpretq_s8_u8(hi), sixteen),
                )
            }
            _ => unreachable!("no NEON kernel for {dtype:?}"),
        };
        let acc = mul_acc(vdupq_n_s32(0), w0, vld1q_s8(y.qs.as_ptr()));
        vaddvq_s32(mul_acc(acc, w1, vld1q_s8(y.qs.as_ptr().add(16))))
    }

    /// [`super::kquant_sums`] of one Q4_K, Q5_K or Q6_K block.
    pub unsafe fn kquant_sums(dtype: GgmlType, b: &[u8], y: &BlockQ8K) -> (i32, i32) {
        assert!(b.len() >= dtype.block_bytes());
        let ys = y.qs.as_ptr();
        let low4 = vdupq_n_u8(0xF);
        match dtype {
            GgmlType::Q4_K | GgmlType::Q5_K => {
                let is_q5 = dtype == GgmlType::Q5_K;
                let ql = b.as_ptr().add(if is_q5 { 48 } else { 16 });
                let qh = [vld1q_u8(b.as_ptr().add(16)), vld1q_u8(b.as_ptr().add(32))];
                let (sc, mins) = scales_mins_k4(&b[4..16]);
                let mut sumi = 0i32;
                for chunk in 0..4 {
                    let mut dots = [0i32; 2];
                    for (part, qh) in qh.iter().enumerate() {
                        let raw = vld1q_u8(ql.add(32 * chunk + 16 * part));
                        let mut lo = vandq_u8(raw, low4);
                        let mut hi = vshrq_n_u8::<4>(raw);
                        if is_q5 {
                            let sixteen = vdupq_n_u8(16);
                            let bit =
                                |k: usize| vandq_u8(vtstq_u8(*qh, vdupq_n_u8(1 << k)), sixteen);
                            lo = vorrq_u8(lo, bit(2 * chunk));
                            hi = vorrq_u8(hi, bit(2 * chunk + 1));
                        }
                        // Quants are at most 31: as signed bytes they are the same.
                        let at = 64 * chunk + 16 * part;
                        dots[0] += dot16(vreinterpretq_s8_u8(lo), ys.add(at));
                        dots[1] += dot16(vreinterpretq_s8_u8(hi), ys.add(at + 32));
                    }
                    sumi += sc[2 * chunk] as i32 * dots[0] + sc[2 * chunk + 1] as i32 * dots[1];
                }
                let summ = (0..8)
                    .map(|j| mins[j] as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32))
                    .sum();
                (sumi, summ)
            }
            GgmlType::Q6_K => {
                let sc = &b[192..208];
                let thirty_two = vdupq_n_s8(32);
                let three = vdupq_n_u8(3);
                let mut sumi = 0i32;
                for half in 0..2 {
                    let ql = b.as_ptr().add(64 * half);
                    let qh = b.as_ptr().add(128 + 32 * half);
                    for l in [0, 16] {
                        let (a, c, h) = (
                            vld1q_u8(ql.add(l)),
                            vld1q_u8(ql.add(l + 32)),
                            vld1q_u8(qh.add(l)),
                        );
                        let high = |shift: usize| {
                            let bits = match shift {
                                0 => h,
                                2 => vshrq_n_u8::<2>(h),
                                4 => vshrq_n_u8::<4>(h),
                                _ => vshrq_n_u8::<6>(h),
                            };
                            vshlq_n_u8::<4>(vandq_u8(bits, three))
                        };
                        let quants = [
                            vorrq_u8(vandq_u8(a, low4), high(0)),
                            vorrq_u8(vandq_u8(c, low4), high(2)),
                            vorrq_u8(vshrq_n_u8::<4>(a), high(4)),
                            vorrq_u8(vshrq_n_u8::<4>(c), high(6)),
                        ];
                        for (k, q) in quants.iter().enumerate() {
                            let at = 128 * half + l + 32 * k;
                            let w = vsubq_s8(vreinterpretq_s8_u8(*q), thirty_two);
                            sumi += (sc[at / 16] as i8) as i32 * dot16(w, ys.add(at));
                        }
                    }
                }
                (sumi, 0)
            }
            _ => unreachable!("no NEON kernel for {dtype:?}"),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BlockQ8, BlockQ8K};
    use crate::quant::blocks::{scale_min_k4, scales_mins_k4, GgmlType};

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

    /// [`super::dot_float`]: four chains of eight lanes over the 32-element
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
        total += super::dot_float_scalar(dtype, &row[i * bb..], &xs[i..]);
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
            hsum(sum) + super::dot_float_scalar(dtype, &row[i * bb..], &xs[t][i..])
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
        for (idx, b) in row.chunks_exact(dtype.block_bytes()).enumerate() {
            _mm256_storeu_si256(
                qs.as_mut_ptr().add(32 * idx) as *mut __m256i,
                legacy_quants(dtype, b),
            );
            scales.push(f16_at(b, 0));
        }
    }

    /// A row decoded by [`unpack_row`] · Q8_0 activations. Sums blocks in the same
    /// order as [`dot_q8`], so both give bit-identical results.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_unpacked(qs: &[i8], scales: &[f32], ys: &[BlockQ8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (j, (&scale, y)) in scales.iter().zip(ys).enumerate() {
            let qx = _mm256_loadu_si256(qs.as_ptr().add(32 * j) as *const __m256i);
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let d = _mm256_set1_ps(scale * y.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(qx, qy)), acc);
        }
        hsum(acc)
    }

    /// [`dot_unpacked`] for four tokens at once: each weight block is loaded once
    /// and its sign split reused. Per token the sums run in the same order, so the
    /// results are bit-identical to four [`dot_unpacked`] calls.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_unpacked_x4(qs: &[i8], scales: &[f32], ys: [&[BlockQ8]; 4]) -> [f32; 4] {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        for (j, &scale) in scales.iter().enumerate() {
            let qx = _mm256_loadu_si256(qs.as_ptr().add(32 * j) as *const __m256i);
            let ax = _mm256_sign_epi8(qx, qx);
            for (acc, ys) in acc.iter_mut().zip(&ys) {
                let y = &ys[j];
                let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                let dot =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx)), ones);
                let d = _mm256_set1_ps(scale * y.d);
                *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), *acc);
            }
        }
        acc.map(|a| hsum(a))
    }

    /// [`dot_unpacked_x4`] with AVX-VNNI: one `vpdpbusd` replaces the two
    /// multiply-adds. The products are exact integers either way, so the results
    /// are bit-identical.
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    pub unsafe fn dot_unpacked_x4_vnni(qs: &[i8], scales: &[f32], ys: [&[BlockQ8]; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (j, &scale) in scales.iter().enumerate() {
            let qx = _mm256_loadu_si256(qs.as_ptr().add(32 * j) as *const __m256i);
            let ax = _mm256_sign_epi8(qx, qx);
            for (acc, ys) in acc.iter_mut().zip(&ys) {
                let y = &ys[j];
                let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                let dot =
                    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax, _mm256_sign_epi8(qy, qx));
                let d = _mm256_set1_ps(scale * y.d);
                *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), *acc);
            }
        }
        acc.map(|a| hsum(a))
    }

    /// Four rows of a legacy type · one token's Q8_0 activations.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_x4(dtype: GgmlType, rows: [&[u8]; 4], ys: &[BlockQ8]) -> [f32; 4] {
        let bb = dtype.block_bytes();
        let mut acc = [_mm256_setzero_ps(); 4];
        for (j, y) in ys.iter().enumerate() {
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            for r in 0..4 {
                let b = rows[r].get_unchecked(j * bb..(j + 1) * bb);
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

    /// One Q4_K/Q6_K row · four tokens' Q8_K activations, bit-identical to four
    /// calls of [`dot_q8k`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8k_x4_tokens(dtype: GgmlType, row: &[u8], ys: [&[BlockQ8K]; 4]) -> [f32; 4] {
        let bb = dtype.block_bytes();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_min = [0.0f32; 4];
        for (i, b) in row.chunks_exact(bb).enumerate() {
            let y: [&BlockQ8K; 4] = std::array::from_fn(|t| ys[t].get_unchecked(i));
            let mut sumi = [_mm256_setzero_si256(); 4];
            let d;
            if dtype != GgmlType::Q6_K {
                d = f16_at(b, 0);
                let dmin = f16_at(b, 2);
                let (sc, mins) = scales_mins_k4(&b[4..16]);
                let pair_mins = min_pairs(mins);
                for t in 0..4 {
                    let summ = bsums_dot(&y[t].bsums, pair_mins);
                    acc_min[t] += (dmin * y[t].d) * summ as f32;
                }
                for chunk in 0..4 {
                    let (lo, hi) = k4_quants(dtype, b, chunk);
                    let s1 = _mm256_set1_epi16(sc[2 * chunk] as i16);
                    let s2 = _mm256_set1_epi16(sc[2 * chunk + 1] as i16);
                    for t in 0..4 {
                        let y_lo =
                            _mm256_loadu_si256(y[t].qs.as_ptr().add(64 * chunk) as *const __m256i);
                        let y_hi = _mm256_loadu_si256(
                            y[t].qs.as_ptr().add(64 * chunk + 32) as *const __m256i
                        );
                        let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y_lo), s1);
                        let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y_hi), s2);
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p_lo, p_hi));
                    }
                }
            } else {
                d = f16_at(b, 208);
                let sc = &b[192..208];
                let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
                for t in 0..4 {
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
                        for t in 0..4 {
                            let qy =
                                _mm256_loadu_si256(y[t].qs.as_ptr().add(pos) as *const __m256i);
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*q, qy), scale);
                            sumi[t] = _mm256_add_epi32(sumi[t], p);
                        }
                    }
                }
            }
            for t in 0..4 {
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

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8k(dtype: GgmlType, row: &[u8], ys: &[BlockQ8K]) -> f32 {
        let bb = dtype.block_bytes();
        let mut acc = _mm256_setzero_ps();
        let mut acc_min = 0.0f32;
        for (b, y) in row.chunks_exact(bb).zip(ys) {
            let mut sumi = _mm256_setzero_si256();
            let d;
            if dtype != GgmlType::Q6_K {
                d = f16_at(b, 0) * y.d;
                let dmin = f16_at(b, 2) * y.d;
                let scales = &b[4..16];
                let mut summ = 0i32;
                for chunk in 0..4 {
                    let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                    let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                    summ += m1 as i32 * (y.bsums[4 * chunk] as i32 + y.bsums[4 * chunk + 1] as i32);
                    summ +=
                        m2 as i32 * (y.bsums[4 * chunk + 2] as i32 + y.bsums[4 * chunk + 3] as i32);
                    let (lo, hi) = k4_quants(dtype, b, chunk);
                    let y_lo = _mm256_loadu_si256(y.qs.as_ptr().add(64 * chunk) as *const __m256i);
                    let y_hi =
                        _mm256_loadu_si256(y.qs.as_ptr().add(64 * chunk + 32) as *const __m256i);
                    let p_lo = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(lo, y_lo),
                        _mm256_set1_epi16(sc1 as i16),
                    );
                    let p_hi = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(hi, y_hi),
                        _mm256_set1_epi16(sc2 as i16),
                    );
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
                }
                acc_min += dmin * summ as f32;
            } else {
                // Q6_K: q in [0, 64); q·y − 32·Σy per 16 lanes with the 16-lane scale.
                d = f16_at(b, 208) * y.d;
                let sc = &b[192..208];
                let mut sum_bias = 0i32;
                for (&s, &bsum) in sc.iter().zip(&y.bsums) {
                    sum_bias += (s as i8) as i32 * bsum as i32;
                }
                acc_min += 32.0 * d * sum_bias as f32;
                for half in 0..2 {
                    let quants = q6k_quants(b, half);
                    for (group, q) in quants.iter().enumerate() {
                        let pos = 128 * half + 32 * group;
                        let qy = _mm256_loadu_si256(y.qs.as_ptr().add(pos) as *const __m256i);
                        let s0 = (sc[pos / 16] as i8) as i16;
                        let s1 = (sc[pos / 16 + 1] as i8) as i16;
                        let scale = _mm256_setr_epi16(
                            s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1,
                        );
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*q, qy), scale);
                        sumi = _mm256_add_epi32(sumi, p);
                    }
                }
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum(acc) - acc_min
    }
}

/// AVX-512 kernels (VNNI `vpdpbusd`, VBMI `vpermb`/`vpermt2b`, BITALG
/// `vpshufbitqmb`) for Q4_0, Q5_0 and Q8_0 weights.
///
/// Every path here (one token from the packed rows, many tokens from rows decoded
/// once, any remainder) computes one canonical arithmetic, so the result for
/// (row, token) does not depend on the tiling:
/// - blocks are taken sixteen at a time (a group); a row's last group is padded
///   with blocks that add exactly nothing (their activations are zeros and their
///   scales are masked to zeros, whatever bytes were read for them);
/// - per group, each block's exact integer dot `isum = Σ w · y`, in lane
///   [`group_lane`] of one i32 × 16 vector (computed as `Σ (w + offset) · y`
///   plus `corr`, see [`GroupQ8`]);
/// - `s = dx · dy` in f32, lane by lane (the weight and activation scale of the
///   lane's block);
/// - `acc = fma(f32(isum), s, acc)`, from zero, groups in increasing order;
/// - the result is [`hsum`] of `acc`.
///
/// So the float work is one fma per block, and the integer work is two chains of
/// four `vpdpbusd` per group, each lane summing eight products of one block.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::GroupQ8;
    use crate::quant::blocks::GgmlType;

    /// Sixteen weights of a float row from element `i`, as f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    unsafe fn float16(dtype: GgmlType, row: &[u8], i: usize) -> __m512 {
        match dtype {
            GgmlType::F32 => _mm512_loadu_ps(row.as_ptr().add(4 * i) as *const f32),
            GgmlType::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(row.as_ptr().add(2 * i).cast())),
            // A bf16 is the high half of an f32.
            _ => {
                let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(row.as_ptr().add(2 * i).cast()));
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))
            }
        }
    }

    /// `super::avx2::dot_float_tokens` with sixteen-lane vectors: lanes 0..8 and
    /// 8..16 of `acc[t][h]` are that function's chains `2h` and `2h + 1`, each
    /// element's product is added by the same `fma` into the same chain, and the
    /// chains are summed in the same order, so every result is bit-identical to
    /// `dot_float`'s.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    pub unsafe fn dot_float_tokens<const T: usize>(
        dtype: GgmlType,
        row: &[u8],
        xs: [&[f32]; T],
    ) -> [f32; T] {
        let n = xs[0].len();
        assert!(row.len() == n * dtype.block_bytes() && xs.iter().all(|x| x.len() == n));
        let mut acc = [[_mm512_setzero_ps(); 2]; T];
        let mut i = 0;
        while i + 32 <= n {
            for h in 0..2 {
                let w = float16(dtype, row, i + 16 * h);
                for (acc, x) in acc.iter_mut().zip(&xs) {
                    let x = _mm512_loadu_ps(x.as_ptr().add(i + 16 * h));
                    acc[h] = _mm512_fmadd_ps(w, x, acc[h]);
                }
            }
            i += 32;
        }
        // The 8-element rest goes into chain 0 alone.
        while i + 8 <= n {
            let w = _mm512_castps256_ps512(super::avx2::float8(dtype, row, i));
            for (acc, x) in acc.iter_mut().zip(&xs) {
                let x = _mm512_castps256_ps512(_mm256_loadu_ps(x.as_ptr().add(i)));
                acc[0] = _mm512_mask3_fmadd_ps(w, x, acc[0], 0x00FF);
            }
            i += 8;
        }
        let bb = dtype.block_bytes();
        let lo = |v: __m512| _mm512_castps512_ps256(v);
        let hi = |v: __m512| _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        std::array::from_fn(|t| {
            let [a, b] = acc[t];
            let sum = _mm256_add_ps(_mm256_add_ps(lo(a), hi(a)), _mm256_add_ps(lo(b), hi(b)));
            super::avx2::hsum(sum) + super::dot_float_scalar(dtype, &row[i * bb..], &xs[t][i..])
        })
    }

    const Q4: u8 = 0;
    const Q5: u8 = 1;
    const Q8: u8 = 2;

    /// Activation bytes per token block in [`dot_rows`]: the block stays in L2
    /// while every row of the band passes over it (each row is decoded once per
    /// block; 512 KiB measured ~4% faster than 128 KiB, with 2 MiB of L2 a core).
    const TOKEN_BLOCK_BYTES: usize = 512 * 1024;

    /// How far ahead (bytes) the one-token path prefetches each weight row: the
    /// hardware prefetchers alone left a decode at ~14 GB/s, this at ~16-17.
    const PREFETCH_AHEAD: usize = 4096;
    /// How far ahead a decode step also asks for rows into L2: more requests in
    /// flight than L1 alone can track (0.5B decode +14%).
    const FAR_AHEAD: usize = 16384;

    /// A weight group decoded once for many tokens: `u = w + offset` in the layout
    /// of [`GroupQ8::qs`], and the scales in lane order.
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    pub struct GroupW {
        u: [[u8; 64]; 8],
        d: [f32; 16],
    }

    const GROUP_W_ZERO: GroupW = GroupW {
        u: [[0; 64]; 8],
        d: [0.0; 16],
    };

    const fn block_bytes<const DT: u8>() -> usize {
        match DT {
            Q4 => 18,
            Q5 => 22,
            _ => 34,
        }
    }

    /// Bytes from a group's start that [`decode_group`] reads with unmasked loads.
    const fn window<const DT: u8>() -> usize {
        let bb = block_bytes::<DT>();
        // Octet 1's second half starts at block 12; its last load is 64 bytes from
        // 64 (Q8_0: 72) bytes after that.
        12 * bb + if DT == Q8 { 136 } else { 128 }
    }

    /// `vpermt2b` indices over the 128 bytes of a half-octet (blocks `4h..4h + 4`)
    /// loaded at its start: chunk `c` (16 bytes) takes the 16 bytes at
    /// `bb · c + at` (the nibbles of Q4_0/Q5_0; half a block's quants for Q8_0,
    /// whose second half is loaded 8 bytes later, hence `at = 18 - 8`).
    const fn chunk_index(bb: usize, at: usize) -> [u8; 64] {
        let mut idx = [0u8; 64];
        let mut j = 0;
        while j < 64 {
            idx[j] = (bb * (j / 16) + at + j % 16) as u8;
            j += 1;
        }
        idx
    }

    /// `vpermt2b` indices building a half-octet's part of the octet's "meta" vector,
    /// whose qword `i` holds block `i`'s `qh` (Q5_0) in bytes `0..4` and its f16
    /// scale in bytes `4..6`: the half `h` (blocks `4h..4h + 4`, loaded at their
    /// start) fills qwords `4h..4h + 4`.
    const fn meta_index(bb: usize, h: usize, qh: bool) -> [u8; 64] {
        let mut idx = [0u8; 64];
        let mut c = 0;
        while c < 4 {
            let q = 8 * (4 * h + c);
            let mut k = 0;
            while qh && k < 4 {
                idx[q + k] = (bb * c + 2 + k) as u8;
                k += 1;
            }
            idx[q + 4] = (bb * c) as u8;
            idx[q + 5] = (bb * c + 1) as u8;
            c += 1;
        }
        idx
    }

    const fn meta_tables(bb: usize, qh: bool) -> [[u8; 64]; 2] {
        [meta_index(bb, 0, qh), meta_index(bb, 1, qh)]
    }

    /// `vpermt2b` indices gathering a group's sixteen f16 scales, in lane order,
    /// from the meta vectors of its two octets.
    const fn scale_index() -> [u8; 64] {
        let mut idx = [0u8; 64];
        let mut j = 0;
        while j < 16 {
            let lane = super::group_lane(j);
            let at = 64 * (j / 8) + 8 * (j % 8) + 4;
            idx[2 * lane] = at as u8;
            idx[2 * lane + 1] = (at + 1) as u8;
            j += 1;
        }
        idx
    }

    /// `vpshufbitqmb` indices for output vector `q`: byte `j` (quant `8q + j % 8`
    /// of block `j / 8`) takes bit `8q + j % 8` of its block's `qh`.
    const fn qh_bits(q: usize) -> [u8; 64] {
        let mut idx = [0u8; 64];
        let mut j = 0;
        while j < 64 {
            idx[j] = (8 * q + j % 8) as u8;
            j += 1;
        }
        idx
    }

    static Q4_NIBBLES: [u8; 64] = chunk_index(18, 2);
    static Q5_NIBBLES: [u8; 64] = chunk_index(22, 6);
    static Q8_LOW: [u8; 64] = chunk_index(34, 2);
    static Q8_HIGH: [u8; 64] = chunk_index(34, 18 - 8);
    static Q4_META: [[u8; 64]; 2] = meta_tables(18, false);
    static Q5_META: [[u8; 64]; 2] = meta_tables(22, true);
    static Q8_META: [[u8; 64]; 2] = meta_tables(34, false);
    static SCALES: [u8; 64] = scale_index();
    static QH_BITS: [[u8; 64]; 4] = [qh_bits(0), qh_bits(1), qh_bits(2), qh_bits(3)];
    /// Qwords `0, 2, 4, 6` of one vector then of another (`vpermt2q`).
    static EVEN_QWORDS: [i64; 8] = [0, 2, 4, 6, 8, 10, 12, 14];
    static ODD_QWORDS: [i64; 8] = [1, 3, 5, 7, 9, 11, 13, 15];

    #[inline]
    fn byte_mask(n: usize) -> u64 {
        if n >= 64 {
            !0
        } else {
            (1u64 << n) - 1
        }
    }

    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn table(t: &[u8; 64]) -> __m512i {
        _mm512_loadu_si512(t.as_ptr().cast())
    }

    /// 64 bytes at `p + off`; unless `FULL`, only those before `p + avail` are read
    /// and the others are zeros.
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn load<const FULL: bool>(p: *const u8, off: usize, avail: usize) -> __m512i {
        if FULL {
            _mm512_loadu_si512(p.add(off).cast())
        } else {
            let mask = byte_mask(avail.saturating_sub(off));
            _mm512_maskz_loadu_epi8(mask, p.wrapping_add(off).cast())
        }
    }

    /// Decodes one octet (8 blocks of type `DT` at `p`, of which the bytes before
    /// `p + avail` exist unless `FULL`) into the four vectors of [`GroupQ8::qs`]
    /// layout (`u = w + offset`) and its meta vector (see [`meta_index`]).
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn decode_octet<const DT: u8, const FULL: bool>(
        p: *const u8,
        avail: usize,
    ) -> ([__m512i; 4], __m512i) {
        let half = 4 * block_bytes::<DT>();
        let (a0, a1) = (load::<FULL>(p, 0, avail), load::<FULL>(p, 64, avail));
        let (b0, b1) = (
            load::<FULL>(p, half, avail),
            load::<FULL>(p, half + 64, avail),
        );
        let meta = match DT {
            Q4 => &Q4_META,
            Q5 => &Q5_META,
            _ => &Q8_META,
        };
        // Each half fills its own qwords; the other half's are zeros.
        let low = 0x0000_0000_FFFF_FFFF;
        let meta = _mm512_or_si512(
            _mm512_maskz_permutex2var_epi8(low, a0, table(&meta[0]), a1),
            _mm512_maskz_permutex2var_epi8(!low, b0, table(&meta[1]), b1),
        );
        let even = _mm512_loadu_si512(EVEN_QWORDS.as_ptr().cast());
        let odd = _mm512_loadu_si512(ODD_QWORDS.as_ptr().cast());
        let u = if DT == Q8 {
            let (a8, a72) = (load::<FULL>(p, 8, avail), load::<FULL>(p, 72, avail));
            let (b8, b72) = (
                load::<FULL>(p, half + 8, avail),
                load::<FULL>(p, half + 72, avail),
            );
            let (low, high) = (table(&Q8_LOW), table(&Q8_HIGH));
            let lo_a = _mm512_permutex2var_epi8(a0, low, a1);
            let lo_b = _mm512_permutex2var_epi8(b0, low, b1);
            let hi_a = _mm512_permutex2var_epi8(a8, high, a72);
            let hi_b = _mm512_permutex2var_epi8(b8, high, b72);
            let flip = _mm512_set1_epi8(0x80u8 as i8);
            [
                _mm512_xor_si512(_mm512_permutex2var_epi64(lo_a, even, lo_b), flip),
                _mm512_xor_si512(_mm512_permutex2var_epi64(lo_a, odd, lo_b), flip),
                _mm512_xor_si512(_mm512_permutex2var_epi64(hi_a, even, hi_b), flip),
                _mm512_xor_si512(_mm512_permutex2var_epi64(hi_a, odd, hi_b), flip),
            ]
        } else {
            let nibbles = table(if DT == Q4 { &Q4_NIBBLES } else { &Q5_NIBBLES });
            let qa = _mm512_permutex2var_epi8(a0, nibbles, a1);
            let qb = _mm512_permutex2var_epi8(b0, nibbles, b1);
            // Qword `i` of `t0`/`t1`: block `i`'s quant bytes 0..8 / 8..16, whose low
            // nibbles are quants 0..8 / 8..16 and high nibbles 16..24 / 24..32.
            let t0 = _mm512_permutex2var_epi64(qa, even, qb);
            let t1 = _mm512_permutex2var_epi64(qa, odd, qb);
            let m = _mm512_set1_epi8(0xF);
            let mut u = [
                _mm512_and_si512(t0, m),
                _mm512_and_si512(t1, m),
                _mm512_and_si512(_mm512_srli_epi16::<4>(t0), m),
                _mm512_and_si512(_mm512_srli_epi16::<4>(t1), m),
            ];
            if DT == Q5 {
                let sixteen = _mm512_set1_epi8(16);
                for (q, u) in u.iter_mut().enumerate() {
                    let bits = _mm512_bitshuffle_epi64_mask(meta, table(&QH_BITS[q]));
                    *u = _mm512_mask_add_epi8(*u, bits, *u, sixteen);
                }
            }
            u
        };
        (u, meta)
    }

    /// Decodes the group at `p` (see [`decode_octet`]): its eight quant vectors and
    /// its scales in lane order.
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn decode_group<const DT: u8, const FULL: bool>(
        p: *const u8,
        avail: usize,
    ) -> ([__m512i; 8], __m512) {
        let octet = 8 * block_bytes::<DT>();
        let (lo, meta_lo) = decode_octet::<DT, FULL>(p, avail);
        let (hi, meta_hi) =
            decode_octet::<DT, FULL>(p.wrapping_add(octet), avail.saturating_sub(octet));
        (
            [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]],
            group_scales(meta_lo, meta_hi),
        )
    }

    /// A group's scales, in lane order, from its octets' meta vectors.
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn group_scales(lo: __m512i, hi: __m512i) -> __m512 {
        let scales = _mm512_permutex2var_epi8(lo, table(&SCALES), hi);
        _mm512_cvtph_ps(_mm512_castsi512_si256(scales))
    }

    /// One group of the canonical arithmetic: `acc + f32(isum) · (dx · dy)`.
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn group_step(acc: __m512, u: &[__m512i; 8], dx: __m512, y: &GroupQ8) -> __m512 {
        let mut isum = [_mm512_setzero_si512(); 2];
        for (v, u) in u.iter().enumerate() {
            let y = _mm512_load_si512(y.qs[v].as_ptr().cast());
            isum[v / 4] = _mm512_dpbusd_epi32(isum[v / 4], *u, y);
        }
        finish(acc, isum, dx, y)
    }

    /// The float part of a group: the two octets' lane pairs summed into blocks
    /// (lane [`super::group_lane`]), corrected, converted, scaled and accumulated.
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn finish(acc: __m512, isum: [__m512i; 2], dx: __m512, y: &GroupQ8) -> __m512 {
        // Octet lanes `2i, 2i + 1` hold block `i`: in each 128-bit chunk `c`, the
        // even and the odd lanes of both octets, added, are blocks `2c, 2c + 1` of
        // octet 0 then of octet 1.
        let (a, b) = (_mm512_castsi512_ps(isum[0]), _mm512_castsi512_ps(isum[1]));
        let even = _mm512_castps_si512(_mm512_shuffle_ps::<0b10_00_10_00>(a, b));
        let odd = _mm512_castps_si512(_mm512_shuffle_ps::<0b11_01_11_01>(a, b));
        let corr = _mm512_load_si512(y.corr.as_ptr().cast());
        let isum = _mm512_add_epi32(_mm512_add_epi32(even, odd), corr);
        let s = _mm512_mul_ps(dx, _mm512_load_ps(y.d.as_ptr()));
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), s, acc)
    }

    /// The one horizontal sum of every path: halves added, 16 → 8 → 4 → 2 → 1.
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn hsum(v: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        let s = _mm256_add_ps(lo, hi);
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Groups of a row of `len` bytes that [`decode_group`] may decode with
    /// unmasked loads.
    fn full_groups<const DT: u8>(len: usize, groups: usize) -> usize {
        let w = window::<DT>();
        if len >= w {
            ((len - w) / (16 * block_bytes::<DT>()) + 1).min(groups)
        } else {
            0
        }
    }

    /// The lanes of a group's first `blocks` blocks (all of them from 16 on).
    fn block_lanes(blocks: usize) -> u16 {
        (0..blocks.min(16)).fold(0, |m, j| m | 1 << super::group_lane(j))
    }

    /// `R` packed rows of `len` bytes · one token's groups, decoding the rows on the
    /// fly; with `ahead > 0` each row is prefetched that many bytes ahead.
    ///
    /// Each of `rows` starts at its row and may run on past it (to the end of the
    /// band of rows): groups are decoded with unmasked loads wherever those stay
    /// inside the slice. Blocks past the row then hold the next row's bytes; their
    /// activations are zeros and their scales are masked to zeros, so they add
    /// nothing, exactly as zero blocks would.
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn dot_packed<const DT: u8, const R: usize>(
        rows: [&[u8]; R],
        len: usize,
        ys: &[GroupQ8],
        ahead: usize,
    ) -> [f32; R] {
        let gb = 16 * block_bytes::<DT>();
        let n_blocks = len / block_bytes::<DT>();
        assert!(rows.iter().all(|r| r.len() >= len) && ys.len() == n_blocks.div_ceil(16));
        let reach = rows.iter().map(|r| r.len()).min().unwrap_or(0);
        let full = full_groups::<DT>(reach, ys.len());
        let mut acc = [_mm512_setzero_ps(); R];
        for (g, y) in ys.iter().enumerate() {
            let lanes = block_lanes(n_blocks - 16 * g);
            for r in 0..R {
                let at = rows[r].as_ptr().add(gb * g);
                let (u, dx) = if g < full {
                    if ahead > 0 {
                        for line in (0..gb).step_by(64) {
                            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(ahead + line).cast());
                            _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(FAR_AHEAD + line).cast());
                        }
                    }
                    decode_group::<DT, true>(at, 0)
                } else {
                    decode_group::<DT, false>(at, rows[r].len() - gb * g)
                };
                let dx = _mm512_maskz_mov_ps(lanes, dx);
                acc[r] = group_step(acc[r], &u, dx, y);
            }
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            out[r] = hsum(acc[r]);
        }
        out
    }

    /// Decodes a row of `len` bytes into [`GroupW`]s (`out.len()` = its block count
    /// / 16, rounded up); `row` may run on past it, as in [`dot_packed`].
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn unpack_row<const DT: u8>(row: &[u8], len: usize, out: &mut [GroupW]) {
        let gb = 16 * block_bytes::<DT>();
        let n_blocks = len / block_bytes::<DT>();
        assert!(row.len() >= len && out.len() == n_blocks.div_ceil(16));
        let full = full_groups::<DT>(row.len(), out.len());
        for (g, w) in out.iter_mut().enumerate() {
            let at = row.as_ptr().add(gb * g);
            let (u, dx) = if g < full {
                decode_group::<DT, true>(at, 0)
            } else {
                decode_group::<DT, false>(at, row.len() - gb * g)
            };
            for (v, u) in u.iter().enumerate() {
                _mm512_store_si512(w.u[v].as_mut_ptr().cast(), *u);
            }
            let dx = _mm512_maskz_mov_ps(block_lanes(n_blocks - 16 * g), dx);
            _mm512_store_ps(w.d.as_mut_ptr(), dx);
        }
    }

    /// `R` decoded rows · `T` tokens: each weight vector is loaded once for all
    /// tokens and each token vector once for all rows.
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn dot_unpacked<const R: usize, const T: usize, const PREFETCH: bool>(
        ws: [&[GroupW]; R],
        ys: [&[GroupQ8]; T],
        prefetch: &[u8],
    ) -> [[f32; T]; R] {
        let ng = ws[0].len();
        assert!(ws.iter().all(|w| w.len() == ng) && ys.iter().all(|y| y.len() == ng));
        let mut acc = [[_mm512_setzero_ps(); T]; R];
        // `prefetch` (the packed rows decoded next) is requested a slice per group,
        // spread over the multiplies so that memory works while they run.
        let slice = prefetch.len().div_ceil(ng.max(1));
        for g in 0..ng {
            // A separate instance: in the long prefill loops the prefetch code alone
            // cost 9% (register pressure of the tile).
            if PREFETCH {
                for line in (g * slice..((g + 1) * slice).min(prefetch.len())).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(prefetch.as_ptr().add(line).cast());
                    _mm_prefetch::<_MM_HINT_T1>(
                        prefetch.as_ptr().wrapping_add(line + FAR_AHEAD).cast(),
                    );
                }
            }
            let mut isum = [[[_mm512_setzero_si512(); 2]; T]; R];
            for v in 0..8 {
                let mut u = [_mm512_setzero_si512(); R];
                for r in 0..R {
                    u[r] = _mm512_load_si512(ws[r].get_unchecked(g).u[v].as_ptr().cast());
                }
                for t in 0..T {
                    let y = _mm512_load_si512(ys[t].get_unchecked(g).qs[v].as_ptr().cast());
                    for r in 0..R {
                        isum[r][t][v / 4] = _mm512_dpbusd_epi32(isum[r][t][v / 4], u[r], y);
                    }
                }
            }
            for r in 0..R {
                let dx = _mm512_load_ps(ws[r].get_unchecked(g).d.as_ptr());
                for t in 0..T {
                    acc[r][t] = finish(acc[r][t], isum[r][t], dx, ys[t].get_unchecked(g));
                }
            }
        }
        // Plain loops: closures over `acc` would keep it in memory, not registers.
        let mut out = [[0.0f32; T]; R];
        for r in 0..R {
            for t in 0..T {
                out[r][t] = hsum(acc[r][t]);
            }
        }
        out
    }

    /// `R` packed rows of type `dtype` · one token's groups.
    ///
    /// # Safety
    /// The CPU must have the features of [`super::has_avx512`].
    pub unsafe fn dot_packed_rows<const R: usize>(
        dtype: GgmlType,
        rows: [&[u8]; R],
        ys: &[GroupQ8],
    ) -> [f32; R] {
        match dtype {
            GgmlType::Q4_0 => dot_packed::<Q4, R>(rows, rows[0].len(), ys, 0),
            GgmlType::Q5_0 => dot_packed::<Q5, R>(rows, rows[0].len(), ys, 0),
            GgmlType::Q8_0 => dot_packed::<Q8, R>(rows, rows[0].len(), ys, 0),
            _ => unreachable!("no AVX-512 kernel for {dtype:?}"),
        }
    }

    /// [`super::dot_rows`] for Q4_0/Q5_0/Q8_0 rows and activation groups
    /// (`per_groups` per token); only called where the groups were built, which is
    /// where the features of [`super::has_avx512`] were detected.
    pub fn dot_rows(
        dtype: GgmlType,
        row_bytes: usize,
        rows: &[u8],
        groups: &[GroupQ8],
        per_groups: usize,
        n: usize,
        tile: &mut [f32],
    ) {
        assert!(super::has_avx512());
        // SAFETY: the features were detected at run time (asserted above).
        unsafe {
            match dtype {
                GgmlType::Q4_0 => rows_impl::<Q4>(row_bytes, rows, groups, per_groups, n, tile),
                GgmlType::Q5_0 => rows_impl::<Q5>(row_bytes, rows, groups, per_groups, n, tile),
                GgmlType::Q8_0 => rows_impl::<Q8>(row_bytes, rows, groups, per_groups, n, tile),
                _ => unreachable!("no AVX-512 kernel for {dtype:?}"),
            }
        }
    }

    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn rows_impl<const DT: u8>(
        row_bytes: usize,
        rows: &[u8],
        groups: &[GroupQ8],
        per_groups: usize,
        n: usize,
        tile: &mut [f32],
    ) {
        let n_rows = rows.len() / row_bytes;
        // Row `r` and the rest of the band after it (see [`dot_packed`]).
        let row = |r: usize| &rows[r * row_bytes..];
        if n == 1 {
            // One token: the weights are read once, so decode them straight from the
            // packed rows, four rows per pass (independent chains, shared loads of y).
            let mut r = 0;
            while r + 4 <= n_rows {
                let four = [row(r), row(r + 1), row(r + 2), row(r + 3)];
                let sums = dot_packed::<DT, 4>(four, row_bytes, groups, PREFETCH_AHEAD);
                tile[r..r + 4].copy_from_slice(&sums);
                r += 4;
            }
            for (r, out) in tile.iter_mut().enumerate().take(n_rows).skip(r) {
                *out = dot_packed::<DT, 1>([row(r)], row_bytes, groups, PREFETCH_AHEAD)[0];
            }
            return;
        }
        let token_bytes = (per_groups * std::mem::size_of::<GroupQ8>()).max(1);
        let block_tokens =
            (TOKEN_BLOCK_BYTES / token_bytes).clamp(TOKENS, n.max(TOKENS)) / TOKENS * TOKENS;
        let mut unpacked = Vec::new();
        for t0 in (0..n).step_by(block_tokens) {
            let tokens = t0..(t0 + block_tokens).min(n);
            // Rows `ROWS` at a time, each decoded once per token block.
            let mut r = 0;
            while r + ROWS <= n_rows {
                let group: [&[u8]; ROWS] = std::array::from_fn(|i| row(r + i));
                let next = &rows[((r + ROWS) * row_bytes).min(rows.len())
                    ..((r + 2 * ROWS) * row_bytes).min(rows.len())];
                row_group::<DT, ROWS>(
                    group,
                    row_bytes,
                    next,
                    r,
                    tokens.clone(),
                    groups,
                    per_groups,
                    n,
                    tile,
                    &mut unpacked,
                );
                r += ROWS;
            }
            for r in r..n_rows {
                row_group::<DT, 1>(
                    [row(r)],
                    row_bytes,
                    &[],
                    r,
                    tokens.clone(),
                    groups,
                    per_groups,
                    n,
                    tile,
                    &mut unpacked,
                );
            }
        }
    }

    /// Rows decoded together in [`rows_impl`]'s multi-token path.
    const ROWS: usize = 4;
    /// Tokens per pass over the decoded rows.
    const TOKENS: usize = 2;

    /// Rows `first..first + R` (`rows`, each running on to the band's end, of
    /// `row_bytes` bytes) · `tokens`, into `tile (row, n)`; `next`, the packed rows
    /// decoded after these, is requested from memory meanwhile.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bitalg,avx2,fma,f16c"
    )]
    unsafe fn row_group<const DT: u8, const R: usize>(
        rows: [&[u8]; R],
        row_bytes: usize,
        next: &[u8],
        first: usize,
        tokens: std::ops::Range<usize>,
        groups: &[GroupQ8],
        per_groups: usize,
        n: usize,
        tile: &mut [f32],
        unpacked: &mut Vec<GroupW>,
    ) {
        unpacked.clear();
        unpacked.resize(R * per_groups, GROUP_W_ZERO);
        for (row, out) in rows.iter().zip(unpacked.chunks_exact_mut(per_groups)) {
            unpack_row::<DT>(row, row_bytes, out);
        }
        let ws: [&[GroupW]; R] =
            std::array::from_fn(|i| &unpacked[i * per_groups..(i + 1) * per_groups]);
        let token = |t: usize| &groups[t * per_groups..(t + 1) * per_groups];
        let mut t = tokens.start;
        // Few tokens (a batch of decode steps) leave memory idle while they multiply:
        // their first pass requests the next rows. Many tokens hide it anyway.
        let mut next = if tokens.len() <= 16 { next } else { &[] };
        while t + TOKENS <= tokens.end {
            let ys: [&[GroupQ8]; TOKENS] = std::array::from_fn(|i| token(t + i));
            let sums = if next.is_empty() {
                dot_unpacked::<R, TOKENS, false>(ws, ys, &[])
            } else {
                dot_unpacked::<R, TOKENS, true>(ws, ys, std::mem::take(&mut next))
            };
            for (i, sums) in sums.iter().enumerate() {
                tile[(first + i) * n + t..(first + i) * n + t + TOKENS].copy_from_slice(sums);
            }
            t += TOKENS;
        }
        for t in t..tokens.end {
            let sums = if next.is_empty() {
                dot_unpacked::<R, 1, false>(ws, [token(t)], &[])
            } else {
                dot_unpacked::<R, 1, true>(ws, [token(t)], std::mem::take(&mut next))
            };
            for (i, sums) in sums.iter().enumerate() {
                tile[(first + i) * n + t] = sums[0];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::blocks::{dequantize, quantize_row};

    fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
            })
            .collect()
    }

    use crate::isa::{at_every_level, Isa};

    /// The cap of [`at_every_level`] reaches this module's dispatch.
    #[test]
    fn capped_levels_take_the_lower_paths() {
        at_every_level(|isa| {
            assert!(isa >= Isa::Avx512 || !has_avx512());
            assert!(isa >= Isa::Avx2 || !has_avx2());
        });
    }

    const ALL: [GgmlType; 11] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// Every kernel against the float dot of the dequantized weights, including
    /// extreme scales and odd block counts.
    #[test]
    fn kernels_match_dequantized_reference() {
        at_every_level(kernels_match_dequantized_reference_at);
    }

    fn kernels_match_dequantized_reference_at(isa: Isa) {
        for dtype in ALL {
            for (cols, scale) in [(256, 1.0), (768, 1e-3), (1280, 300.0), (512, 0.0)] {
                let w = random(cols, cols as u64 + 1, scale);
                let x = random(cols, 99, 1.0);
                let bytes = quantize_row(dtype, &w);
                let mut wd = vec![0f32; cols];
                dequantize(dtype, &bytes, &mut wd);
                let reference: f32 = wd.iter().zip(&x).map(|(a, b)| a * b).sum();
                let acts = Activations::quantize(dtype, &x, 1, cols);
                for use_avx2 in [false, has_avx2()] {
                    let got = match &acts {
                        Activations::F32(xs, _) => dot_float(dtype, &bytes, xs, use_avx2),
                        Activations::Q8(ys, ..) => dot_q8(dtype, &bytes, ys, use_avx2),
                        Activations::Q8K(ys, ..) => dot_q8k(dtype, &bytes, ys, use_avx2),
                    };
                    let norm: f32 = wd.iter().map(|v| v.abs()).sum::<f32>() + 1e-6;
                    let err = (got - reference).abs() / norm;
                    assert!(
                        err < 0.01,
                        "{isa:?} {dtype:?} cols={cols} scale={scale} avx2={use_avx2}: {got} vs {reference}"
                    );
                }
            }
        }
    }

    /// Every element of a band's tile lands at its (token, row) place of the output,
    /// and nothing else is written, for squares full and partial.
    #[test]
    fn scatter_tile_transposes_into_place() {
        at_every_level(scatter_tile_transposes_into_place_at);
    }

    fn scatter_tile_transposes_into_place_at(_: Isa) {
        for (n, n_rows) in [(1, 7), (10, 16), (16, 16), (33, 40), (48, 32)] {
            let (stride, start) = (n_rows + 21, 5);
            let tile: Vec<f32> = (0..n_rows * n).map(|i| i as f32).collect();
            let mut out = vec![-1f32; n * stride];
            // SAFETY: `out` holds every (token, start + row) place.
            unsafe { scatter_tile(&tile, n, out.as_mut_ptr(), stride, start) };
            for t in 0..n {
                for c in 0..stride {
                    let expected = match c.checked_sub(start) {
                        Some(r) if r < n_rows => tile[r * n + t],
                        _ => -1.0,
                    };
                    assert_eq!(
                        out[t * stride + c],
                        expected,
                        "n {n} rows {n_rows} t {t} c {c}"
                    );
                }
            }
        }
    }

    /// The tiled paths (four rows per pass for one token, decoded rows reused across
    /// tokens) against one scalar dot per (row, token), with a remainder of rows and,
    /// for the 32-blocks, block counts that end inside a group of sixteen or on one
    /// (the AVX-512 kernels take blocks sixteen at a time).
    #[test]
    fn dot_rows_matches_scalar_dots_for_every_tiling() {
        at_every_level(dot_rows_matches_scalar_dots_for_every_tiling_at);
    }

    fn dot_rows_matches_scalar_dots_for_every_tiling_at(isa: Isa) {
        // Sixteen rows and seven more: the k-quants' lane tiles take sixteen.
        let n_rows = 23;
        for (dtype, cols) in ALL.into_iter().flat_map(|dtype| {
            let all_cols: &[usize] = match dtype.block_size() {
                32 => &[32, 224, 512, 896, 1056],
                // Float rows: 32-element stretches, an 8-element rest, single ones.
                1 => &[512, 203],
                _ => &[512],
            };
            all_cols.iter().map(move |&cols| (dtype, cols))
        }) {
            let rows: Vec<u8> = (0..n_rows)
                .flat_map(|r| quantize_row(dtype, &random(cols, 40 + r as u64, 1.5)))
                .collect();
            let row_bytes = rows.len() / n_rows;
            // 300 tokens span several token blocks of `dot_rows` for every type; the
            // others end in a padded or a partial group of sixteen, or are fewer
            // than sixteen (one pass, or two, of the k-quants' lane tiles).
            for n in [1, 2, 3, 6, 10, 17, 20, 26, 300] {
                let x = random(n * cols, 77, 1.0);
                let acts = Activations::quantize(dtype, &x, n, cols);
                if let Activations::Q8(_, _, groups) = &acts {
                    // Where AVX-512 runs, this test covers its kernels.
                    let wide = has_avx512() && unsigned_offset(dtype).is_some();
                    assert_eq!(!groups.is_empty(), wide, "{isa:?} {dtype:?}");
                }
                let mut tile = vec![0f32; n_rows * n];
                dot_rows(dtype, row_bytes, &rows, &acts, &mut tile);
                for r in 0..n_rows {
                    let row = &rows[r * row_bytes..(r + 1) * row_bytes];
                    for t in 0..n {
                        let expected = match &acts {
                            Activations::F32(xs, _) => {
                                dot_float_scalar(dtype, row, &xs[t * cols..(t + 1) * cols])
                            }
                            Activations::Q8(ys, per, _) => {
                                dot_q8_scalar(dtype, row, &ys[t * per..(t + 1) * per])
                            }
                            Activations::Q8K(ys, per, _) => {
                                dot_q8k_scalar(dtype, row, &ys[t * per..(t + 1) * per])
                            }
                        };
                        let got = tile[r * n + t];
                        let fast = match &acts {
                            Activations::F32(xs, _) if has_avx2() => {
                                dot_float(dtype, row, &xs[t * cols..(t + 1) * cols], true)
                            }
                            Activations::Q8(ys, per, _) if has_avx2() => {
                                dot_q8(dtype, row, &ys[t * per..(t + 1) * per], true)
                            }
                            Activations::Q8K(ys, per, _) if has_avx2() => {
                                dot_q8k(dtype, row, &ys[t * per..(t + 1) * per], true)
                            }
                            _ => expected,
                        };
                        // Tiles must not change a single bit: batching is invisible.
                        assert_eq!(
                            got.to_bits(),
                            fast.to_bits(),
                            "{isa:?} {dtype:?} cols={cols} n={n} row {r} token {t}"
                        );
                        assert!(
                            (got - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                            "{isa:?} {dtype:?} cols={cols} n={n} row {r} token {t}: {got} vs {expected}"
                        );
                    }
                }
            }
        }
    }

    /// The AVX-512 Q4_0/Q5_0/Q8_0 kernels compute exactly the arithmetic their
    /// module states, written out here in scalar code: per-block integer dots, one
    /// fma per block into lane [`group_lane`], groups in order, then `hsum`'s tree.
    #[test]
    fn legacy_avx512_is_the_stated_arithmetic() {
        if !has_avx512() {
            return;
        }
        fn canonical(dtype: GgmlType, row: &[u8], ys: &[BlockQ8]) -> f32 {
            let mut acc = [0f32; 16];
            let mut q = [0i32; 32];
            let blocks = row.len() / dtype.block_bytes();
            for g in 0..blocks.div_ceil(16) {
                let mut lanes = [(0i32, 0f32); 16];
                for j in 0..16.min(blocks - 16 * g) {
                    let b = 16 * g + j;
                    let bytes = &row[b * dtype.block_bytes()..(b + 1) * dtype.block_bytes()];
                    let (d, _) = unpack_legacy(dtype, bytes, &mut q);
                    let isum = q.iter().zip(&ys[b].qs).map(|(&w, &y)| w * y as i32).sum();
                    lanes[group_lane(j)] = (isum, d * ys[b].d);
                }
                for (acc, (isum, s)) in acc.iter_mut().zip(lanes) {
                    *acc = (isum as f32).mul_add(s, *acc);
                }
            }
            let s8: Vec<f32> = (0..8).map(|i| acc[i] + acc[i + 8]).collect();
            let s4: Vec<f32> = (0..4).map(|i| s8[i] + s8[i + 4]).collect();
            let s2: Vec<f32> = (0..2).map(|i| s4[i] + s4[i + 2]).collect();
            s2[0] + s2[1]
        }
        for dtype in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            for (cols, scale) in [(32, 1.0), (512, 1e-3), (896, 40.0), (4864, 1.0)] {
                let row = quantize_row(dtype, &random(cols, cols as u64, scale));
                let x = random(cols, 3, 2.0);
                let acts = Activations::quantize(dtype, &x, 1, cols);
                let Activations::Q8(ys, ..) = &acts else {
                    unreachable!()
                };
                let got = dot_q8(dtype, &row, ys, true);
                let want = canonical(dtype, &row, ys);
                assert_eq!(got.to_bits(), want.to_bits(), "{dtype:?} cols={cols}");
            }
        }
    }

    /// The NEON integer sums equal the plain ones on every block, including extreme
    /// quants (all bits set, or none).
    #[test]
    #[cfg(target_arch = "aarch64")]
    fn neon_integer_sums_equal_plain_ones() {
        let types = [
            GgmlType::Q4_0,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ];
        for dtype in types {
            let cols = 4 * QK_K;
            let mut rows = vec![quantize_row(dtype, &random(cols, 11, 3.0))];
            // Random bytes make every bit pattern a weight can hold.
            let mut junk = quantize_row(dtype, &random(cols, 12, 1.0));
            for (i, b) in junk.iter_mut().enumerate() {
                *b = (i as u32).wrapping_mul(2654435761).rotate_left(7) as u8;
            }
            rows.push(junk);
            rows.push(vec![0xFF; rows[0].len()]);
            let x = random(cols, 13, 2.0);
            let acts = Activations::quantize(dtype, &x, 1, cols);
            for row in &rows {
                for (i, b) in row.chunks_exact(dtype.block_bytes()).enumerate() {
                    match &acts {
                        Activations::Q8(ys, ..) => {
                            let mut q = [0i32; 32];
                            unpack_legacy(dtype, b, &mut q);
                            let neon = unsafe { neon::legacy_sumi(dtype, b, &ys[i]) };
                            assert_eq!(neon, legacy_sumi(&q, &ys[i]), "{dtype:?} block {i}");
                        }
                        Activations::Q8K(ys, ..) => {
                            let mut q = [0i32; QK_K];
                            let plain = kquant_sums(dtype, b, &ys[i], &mut q);
                            let neon = unsafe { neon::kquant_sums(dtype, b, &ys[i]) };
                            assert_eq!(neon, plain, "{dtype:?} block {i}");
                        }
                        Activations::F32(..) => unreachable!(),
                    }
                }
            }
        }
    }

    /// The AVX-512 Q8_K quantizer gives the scalar one's quants, sums and scale,
    /// including ties between a value and its negation, half-way values and zeros.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_q8k_quantization_equals_scalar() {
        if !kquant512::available() {
            return;
        }
        let mut inputs: Vec<Vec<f32>> = (0..200)
            .map(|i| random(QK_K, 1000 + i, [1.0, 1e-6, 3e4][i as usize % 3]))
            .collect();
        inputs.push(vec![0.0; QK_K]);
        let mut tie = random(QK_K, 5, 1.0);
        (tie[17], tie[200]) = (-2.0, 2.0);
        inputs.push(tie);
        // Multiples of 1/254 of the maximum land exactly half-way between quants.
        inputs.push((0..QK_K).map(|i| (i as f32 - 128.0) / 254.0).collect());
        for x in inputs {
            let (a, b) = (quantize_q8k(&x), unsafe { kquant512::quantize(&x) });
            assert_eq!(a.qs, b.qs);
            assert_eq!(a.bsums, b.bsums);
            assert_eq!(a.d.to_bits(), b.d.to_bits());
        }
    }

    #[test]
    fn round_even_rounds_like_round_ties_even() {
        let mut values = vec![
            0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -127.5, 127.49999, -0.0,
        ];
        values.extend(random(10_000, 9, 130.0));
        values.extend((0..2000).map(|i| i as f32 * 0.125 - 125.0));
        for v in values {
            // Equal as numbers (the sign of a zero may differ; it quantizes to 0).
            assert_eq!(round_even(v), v.round_ties_even(), "{v}");
        }
        assert!(round_even(f32::NAN).is_nan());
    }

    #[test]
    fn avx2_equals_scalar_on_integer_paths() {
        at_every_level(avx2_equals_scalar_on_integer_paths_at);
    }

    fn avx2_equals_scalar_on_integer_paths_at(isa: Isa) {
        if !has_avx2() {
            return;
        }
        for dtype in [
            GgmlType::Q4_0,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ] {
            let cols = 1024;
            let bytes = quantize_row(dtype, &random(cols, 5, 2.0));
            let x = random(cols, 6, 3.0);
            let (a, b) = match Activations::quantize(dtype, &x, 1, cols) {
                Activations::Q8(ys, ..) => (
                    dot_q8(dtype, &bytes, &ys, false),
                    dot_q8(dtype, &bytes, &ys, true),
                ),
                Activations::Q8K(ys, ..) => (
                    dot_q8k(dtype, &bytes, &ys, false),
                    dot_q8k(dtype, &bytes, &ys, true),
                ),
                Activations::F32(..) => unreachable!(),
            };
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{isa:?} {dtype:?}: scalar {a} fast {b}"
            );
        }
    }
}
