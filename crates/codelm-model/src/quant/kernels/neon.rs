//! NEON integer dots for aarch64 (NEON is part of its baseline): the exact sums
//! of the portable reference, from 16-byte vectors (`smull` pairs accumulated
//! with `sadalp`), so the reference's float operations give the same bits.

use std::arch::aarch64::*;

use super::acts::{BlockQ8, BlockQ8K};
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

/// [`super::portable::kquant_sums`] of one Q4_K, Q5_K or Q6_K block.
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
                        let bit = |k: usize| vandq_u8(vtstq_u8(*qh, vdupq_n_u8(1 << k)), sixteen);
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
