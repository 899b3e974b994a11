//! The portable reference kernels, in plain Rust: what every other kernel is
//! tested against. Each states its float operations per (row, token); the exact
//! integer sums of Q4_0/Q5_0/Q8_0 and the k-quants run on NEON on aarch64
//! (`super::neon`), which is exact, so the results are the same there.

use half::{bf16, f16};

use super::acts::{Activations, BlockQ8, BlockQ8K, Quants};
use crate::quant::blocks::{f16_at, kquant_ints, scale_min_k4, GgmlType, QK_K};

/// One weight row · token `t` of `acts`, in the reference arithmetic of
/// `dtype`.
pub fn dot(dtype: GgmlType, row: &[u8], acts: &Activations, t: usize) -> f32 {
    match &acts.quants {
        Quants::F32 { .. } => dot_float(dtype, row, acts.floats(t)),
        Quants::Q8 { .. } | Quants::Q8Groups { .. } => dot_q8(dtype, row, acts.q8(t)),
        Quants::Q8K { .. } | Quants::Q8KTokens { .. } => dot_q8k(dtype, row, acts.q8k(t)),
    }
}

/// Float weight row (F32, F16, BF16) · float activations, in element order.
pub fn dot_float(dtype: GgmlType, row: &[u8], xs: &[f32]) -> f32 {
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

/// Unpacks one legacy block into signed quants and returns `(d, m)`; `m` is 0 for
/// the types without a min.
pub(super) fn unpack_legacy(dtype: GgmlType, b: &[u8], q: &mut [i32; 32]) -> (f32, f32) {
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
/// and Q8_0 runs on NEON (`neon::legacy_sumi`); it is exact, so the result is the
/// same.
pub fn dot_q8(dtype: GgmlType, row: &[u8], ys: &[BlockQ8]) -> f32 {
    let mut q = [0i32; 32];
    let mut acc = 0.0f32;
    for (b, y) in row.chunks_exact(dtype.block_bytes()).zip(ys) {
        #[cfg(target_arch = "aarch64")]
        let (d, m, sumi) = if matches!(dtype, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0) {
            // SAFETY: NEON is part of the aarch64 baseline. These types have no min.
            (f16_at(b, 0), 0.0, unsafe {
                super::neon::legacy_sumi(dtype, b, y)
            })
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
pub(super) fn legacy_sumi(q: &[i32; 32], y: &BlockQ8) -> i32 {
    q.iter().zip(&y.qs).map(|(&a, &b)| a * b as i32).sum()
}

/// The portable reference for the k-quants: per super-block, the exact integers
/// `(sumi, summ)` (`kquant_sums`), then the same float operations. On aarch64
/// the integers come from NEON (`neon::kquant_sums`), with the same result.
pub fn dot_q8k(dtype: GgmlType, row: &[u8], ys: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    #[cfg(not(target_arch = "aarch64"))]
    let mut q = [0i32; QK_K];
    for (b, y) in row.chunks_exact(dtype.block_bytes()).zip(ys) {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is part of the aarch64 baseline.
        let (sumi, summ) = unsafe { super::neon::kquant_sums(dtype, b, y) };
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
pub(super) fn kquant_sums(
    dtype: GgmlType,
    b: &[u8],
    y: &BlockQ8K,
    q: &mut [i32; QK_K],
) -> (i32, i32) {
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
