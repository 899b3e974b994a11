//! AVX-512 kernels (VNNI `vpdpbusd`, VBMI `vpermb`/`vpermt2b`, BITALG
//! `vpshufbitqmb`) for Q4_0, Q5_0 and Q8_0 weights, float rows eight tokens at a
//! time, and the 16 × 16 transpose the tile scatter and `kquant512` use.
//!
//! Every path here (one token from the packed rows, many tokens from rows decoded
//! once, any remainder) computes one canonical arithmetic, so the result for
//! (row, token) does not depend on the tiling:
//! - blocks are taken sixteen at a time (a group); a row's last group is padded
//!   with blocks that add exactly nothing (their activations are zeros and their
//!   scales are masked to zeros, whatever bytes were read for them);
//! - per group, each block's exact integer dot `isum = Σ w · y`, in lane
//!   [`group_lane`] of one i32 × 16 vector (computed as `Σ (w + offset) · y`
//!   plus `corr`, see [`GroupQ8`]);
//! - `s = dx · dy` in f32, lane by lane (the weight and activation scale of the
//!   lane's block);
//! - `acc = fma(f32(isum), s, acc)`, from zero, groups in increasing order;
//! - the result is [`hsum`] of `acc`.
//!
//! So the float work is one fma per block, and the integer work is two chains of
//! four `vpdpbusd` per group, each lane summing eight products of one block.

use std::arch::x86_64::*;

use super::acts::GroupQ8;
use crate::isa::{self, Isa};
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
        super::avx2::hsum(sum) + super::portable::dot_float(dtype, &row[i * bb..], &xs[t][i..])
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
        let lane = super::acts::group_lane(j);
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
/// (lane [`super::acts::group_lane`]), corrected, converted, scaled and accumulated.
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
    (0..blocks.min(16)).fold(0, |m, j| m | 1 << super::acts::group_lane(j))
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
/// The CPU must have the features of [`Isa::Avx512`].
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
/// where the features of [`Isa::Avx512`] were detected.
pub fn dot_rows(
    dtype: GgmlType,
    row_bytes: usize,
    rows: &[u8],
    groups: &[GroupQ8],
    per_groups: usize,
    n: usize,
    tile: &mut [f32],
) {
    assert!(isa::features().has(Isa::Avx512));
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

/// One square of [`super::scatter_tile`]: sixteen rows, `tokens` (at most sixteen) tokens.
#[target_feature(enable = "avx512f")]
pub unsafe fn scatter_square(
    tile: &[f32],
    n: usize,
    out: *mut f32,
    stride: usize,
    start: usize,
    (t0, r0, tokens): (usize, usize, usize),
) {
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
#[inline]
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose16(rows: [__m512i; 16]) -> [__m512i; 16] {
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
