//! Activations: one matmul's input rows, quantized once into the weight type's
//! companion format (Q8_0 blocks of 32 for the legacy types, Q8_K blocks of 256
//! with 16-element sums for the k-quants, as llama.cpp does; float rows take the
//! floats as they are), and laid out for the kernel that will multiply them.
//!
//! The layouts only the AVX-512 kernels read ([`GroupQ8`], [`TokenGroup`]) are
//! built only for them: [`Quants`] says which layout a matmul's activations have,
//! and [`Activations::kernel`] which kernel will read them.

use half::f16;
use rayon::prelude::*;

use super::Kernel;
use crate::quant::blocks::{GgmlType, QK_K};

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

/// The activations of one matmul, laid out for the kernel that multiplies them
/// ([`Kernel::select`] for the weight type on this CPU).
pub struct Activations<'a> {
    /// The kernel these are laid out for; [`super::dot_rows`] runs it.
    pub kernel: Kernel,
    /// Tokens.
    pub n: usize,
    /// The values, in the weight type's companion format.
    pub quants: Quants<'a>,
}

/// Activations in the format a weight type multiplies with, `n` tokens of them.
pub enum Quants<'a> {
    /// Plain floats for float weights, `cols` per token.
    F32 {
        /// `(n, cols)`.
        xs: &'a [f32],
        /// Floats per token.
        cols: usize,
    },
    /// Q8_0 blocks for the 32-element types.
    Q8 {
        /// `(n, per_row)`.
        blocks: Vec<BlockQ8>,
        /// Blocks per token.
        per_row: usize,
    },
    /// Q8_0 blocks, and the same quants in [`GroupQ8`]s: the layout of the
    /// AVX-512 kernels of Q4_0, Q5_0 and Q8_0.
    Q8Groups {
        /// `(n, per_row)`.
        blocks: Vec<BlockQ8>,
        /// Blocks per token.
        per_row: usize,
        /// `(n, groups_per_row)`.
        groups: Vec<GroupQ8>,
        /// `per_row / 16`, rounded up.
        groups_per_row: usize,
    },
    /// Q8_K blocks for the k-quants.
    Q8K {
        /// `(n, per_row)`.
        blocks: Vec<BlockQ8K>,
        /// Blocks per token.
        per_row: usize,
    },
    /// Q8_K blocks, and each full group of sixteen tokens transposed into
    /// [`TokenGroup`]s: the layout of the AVX-512 k-quant kernels (which take the
    /// tokens after the last full group from `blocks`).
    Q8KTokens {
        /// `(n, per_row)`.
        blocks: Vec<BlockQ8K>,
        /// Blocks per token.
        per_row: usize,
        /// `(n / 16, per_row)`, group-major.
        token_groups: Vec<TokenGroup>,
    },
}

impl<'a> Activations<'a> {
    /// Quantizes `xs (n, cols)` for multiplication with weights of type `dtype` by
    /// the kernel this CPU runs for it.
    pub fn quantize(dtype: GgmlType, xs: &'a [f32], n: usize, cols: usize) -> Self {
        let kernel = Kernel::select(dtype);
        assert_eq!(xs.len(), n * cols);
        let quants = match dtype {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Quants::F32 { xs, cols },
            // Many rows (a prefill) are quantized in parallel; blocks are independent.
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                let blocks: Vec<BlockQ8> = if n >= 16 {
                    xs.par_chunks_exact(32).map(quantize_q8).collect()
                } else {
                    xs.chunks_exact(32).map(quantize_q8).collect()
                };
                let per_row = cols / 32;
                match unsigned_offset(dtype) {
                    Some(offset) if kernel == Kernel::Avx512Vnni && per_row > 0 => {
                        let groups_per_row = per_row.div_ceil(16);
                        let mut groups = vec![GROUP_ZERO; n * groups_per_row];
                        let fill = |(ys, out): (&[BlockQ8], &mut [GroupQ8])| {
                            groups_from_blocks(offset, ys, out)
                        };
                        if n >= 16 {
                            blocks
                                .par_chunks_exact(per_row)
                                .zip(groups.par_chunks_exact_mut(groups_per_row))
                                .for_each(fill);
                        } else {
                            blocks
                                .chunks_exact(per_row)
                                .zip(groups.chunks_exact_mut(groups_per_row))
                                .for_each(fill);
                        }
                        Quants::Q8Groups {
                            blocks,
                            per_row,
                            groups,
                            groups_per_row,
                        }
                    }
                    _ => Quants::Q8 { blocks, per_row },
                }
            }
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                let wide = kernel == Kernel::Avx512Vnni;
                #[cfg(target_arch = "x86_64")]
                let quantize: fn(&[f32]) -> BlockQ8K = if wide {
                    // SAFETY: the kernel is selected only where its features were detected.
                    |x| unsafe { super::kquant512::quantize(x) }
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
                if wide {
                    // Full groups of sixteen tokens; the kernels take the rest (fewer
                    // than sixteen) with rows in vector lanes, which pads nothing.
                    let token_groups = TokenGroup::transpose(&blocks, n / 16, per_row);
                    Quants::Q8KTokens {
                        blocks,
                        per_row,
                        token_groups,
                    }
                } else {
                    Quants::Q8K { blocks, per_row }
                }
            }
        };
        Activations { kernel, n, quants }
    }

    /// Token `t`'s floats (float weights only).
    pub fn floats(&self, t: usize) -> &[f32] {
        match &self.quants {
            Quants::F32 { xs, cols } => &xs[t * cols..(t + 1) * cols],
            _ => unreachable!("not float activations"),
        }
    }

    /// Token `t`'s Q8_0 blocks (the 32-element types only).
    pub fn q8(&self, t: usize) -> &[BlockQ8] {
        match &self.quants {
            Quants::Q8 { blocks, per_row }
            | Quants::Q8Groups {
                blocks, per_row, ..
            } => &blocks[t * per_row..(t + 1) * per_row],
            _ => unreachable!("not Q8_0 activations"),
        }
    }

    /// Token `t`'s Q8_K blocks (the k-quants only).
    pub fn q8k(&self, t: usize) -> &[BlockQ8K] {
        match &self.quants {
            Quants::Q8K { blocks, per_row }
            | Quants::Q8KTokens {
                blocks, per_row, ..
            } => &blocks[t * per_row..(t + 1) * per_row],
            _ => unreachable!("not Q8_K activations"),
        }
    }

    /// Bytes of one token's activations.
    pub(crate) fn token_bytes(&self) -> usize {
        match &self.quants {
            Quants::F32 { cols, .. } => cols * 4,
            Quants::Q8 { per_row, .. } | Quants::Q8Groups { per_row, .. } => {
                per_row * std::mem::size_of::<BlockQ8>()
            }
            Quants::Q8K { per_row, .. } | Quants::Q8KTokens { per_row, .. } => {
                per_row * std::mem::size_of::<BlockQ8K>()
            }
        }
    }
}

pub(super) const GROUP_ZERO: GroupQ8 = GroupQ8 {
    qs: [[0; 64]; 8],
    corr: [0; 16],
    d: [0.0; 16],
};

/// The offset that makes a weight quant unsigned for `vpdpbusd`, for the types
/// with AVX-512 kernels.
pub(super) fn unsigned_offset(dtype: GgmlType) -> Option<i32> {
    match dtype {
        GgmlType::Q4_0 => Some(8),
        GgmlType::Q5_0 => Some(16),
        GgmlType::Q8_0 => Some(128),
        _ => None,
    }
}

/// One token's Q8_0 blocks as [`GroupQ8`]s (`out.len() == ys.len().div_ceil(16)`).
pub(super) fn groups_from_blocks(offset: i32, ys: &[BlockQ8], out: &mut [GroupQ8]) {
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
pub(super) fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

pub(super) fn quantize_q8(x: &[f32]) -> BlockQ8 {
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

pub(super) fn quantize_q8k(x: &[f32]) -> BlockQ8K {
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
