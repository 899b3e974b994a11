//! GGML storage types: block layouts, reference dequantization and simple
//! quantizers (used to write test models and to check kernels).
//!
//! Layouts follow ggml's `block_*` structs byte for byte. The quantizers here are
//! deliberately simple (round to nearest with per-block absmax scales); they produce
//! valid blocks of every type, which is all tests and tiny fixtures need.

use half::{bf16, f16};

/// Elements per k-quant super-block.
pub const QK_K: usize = 256;

/// A tensor storage type, numbered as in GGML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 4-bit, blocks of 32, scale only.
    Q4_0,
    /// 4-bit, blocks of 32, scale and min.
    Q4_1,
    /// 5-bit, blocks of 32, scale only.
    Q5_0,
    /// 5-bit, blocks of 32, scale and min.
    Q5_1,
    /// 8-bit, blocks of 32.
    Q8_0,
    /// 4-bit k-quant, super-blocks of 256.
    Q4_K,
    /// 5-bit k-quant, super-blocks of 256.
    Q5_K,
    /// 6-bit k-quant, super-blocks of 256.
    Q6_K,
}

impl GgmlType {
    /// The type for a GGML type id, if we support it.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// The GGML type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// A readable name for any GGML type id, supported or not.
    pub fn name_of_id(id: u32) -> String {
        let known = [
            (9, "Q8_1"),
            (10, "Q2_K"),
            (11, "Q3_K"),
            (15, "Q8_K"),
            (16, "IQ2_XXS"),
            (17, "IQ2_XS"),
            (18, "IQ3_XXS"),
            (19, "IQ1_S"),
            (20, "IQ4_NL"),
            (21, "IQ3_S"),
            (22, "IQ2_S"),
            (23, "IQ4_XS"),
            (29, "IQ1_M"),
            (34, "TQ1_0"),
            (35, "TQ2_0"),
        ];
        match GgmlType::from_id(id) {
            Some(t) => t.name().to_string(),
            None => match known.iter().find(|(k, _)| *k == id) {
                Some((_, name)) => format!("{name} (id {id})"),
                None => format!("unknown type id {id}"),
            },
        }
    }

    /// The type's name as GGML spells it.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                32
            }
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4_K => 144,
            GgmlType::Q5_K => 176,
            GgmlType::Q6_K => 210,
        }
    }
}

#[inline]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Decodes the 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K super-block.
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// All eight `(scale, min)` pairs of a Q4_K/Q5_K block's 12 scale bytes at once,
/// as [`scale_min_k4`] gives them one by one: a few word operations instead of
/// eight byte-wise decodes (the layout packs the high bits of the last four into
/// the top two bits of the first eight bytes).
#[inline]
pub(crate) fn scales_mins_k4(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let scales_lo = w0 & LOW6;
    let scales_hi = (w2 & LOW4) | (((w0 >> 6) & LOW2) << 4);
    let mins_lo = w1 & LOW6;
    let mins_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & LOW2) << 4);
    let join = |lo: u32, hi: u32| (u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes();
    (join(scales_lo, scales_hi), join(mins_lo, mins_hi))
}

/// Dequantizes `bytes` (whole blocks) into `out`.
///
/// # Panics
/// If `out.len()` does not equal the number of elements the bytes encode.
pub fn dequantize(dtype: GgmlType, bytes: &[u8], out: &mut [f32]) {
    let bs = dtype.block_size();
    let bb = dtype.block_bytes();
    assert_eq!(bytes.len() / bb * bs, out.len());
    for (block, y) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bs)) {
        dequantize_block(dtype, block, y);
    }
}

fn dequantize_block(dtype: GgmlType, b: &[u8], y: &mut [f32]) {
    match dtype {
        GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => y[0] = f16_at(b, 0),
        GgmlType::BF16 => y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        GgmlType::Q4_0 => {
            let d = f16_at(b, 0);
            for j in 0..16 {
                y[j] = ((b[2 + j] & 0xF) as i32 - 8) as f32 * d;
                y[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                y[j] = (b[4 + j] & 0xF) as f32 * d + m;
                y[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let has_min = dtype == GgmlType::Q5_1;
            let d = f16_at(b, 0);
            let (m, qh_at) = if has_min { (f16_at(b, 2), 4) } else { (0.0, 2) };
            let qh = u32::from_le_bytes([b[qh_at], b[qh_at + 1], b[qh_at + 2], b[qh_at + 3]]);
            let qs = &b[qh_at + 4..qh_at + 20];
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                let x0 = ((qs[j] & 0xF) as u32 | h0) as i32;
                let x1 = ((qs[j] >> 4) as u32 | h1) as i32;
                if has_min {
                    y[j] = x0 as f32 * d + m;
                    y[j + 16] = x1 as f32 * d + m;
                } else {
                    y[j] = (x0 - 16) as f32 * d;
                    y[j + 16] = (x1 - 16) as f32 * d;
                }
            }
        }
        GgmlType::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                y[j] = b[2 + j] as i8 as f32 * d;
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let mut q = [0i32; QK_K];
            kquant_ints(dtype, b, &mut q);
            for j in 0..8 {
                let (sc, m) = scale_min_k4(j, &b[4..16]);
                let (dj, minj) = (d * sc as f32, dmin * m as f32);
                for l in 0..32 {
                    y[32 * j + l] = dj * q[32 * j + l] as f32 - minj;
                }
            }
        }
        GgmlType::Q6_K => {
            let d = f16_at(b, 208);
            let mut q = [0i32; QK_K];
            kquant_ints(dtype, b, &mut q);
            for (j, sc) in b[192..208].iter().enumerate() {
                for l in 0..16 {
                    y[16 * j + l] = d * (*sc as i8) as f32 * q[16 * j + l] as f32;
                }
            }
        }
    }
}

/// The 256 quants of a Q4_K or Q5_K block (unsigned, `0..32`) or of a Q6_K block
/// (`−32..32`), in element order.
pub(crate) fn kquant_ints(dtype: GgmlType, b: &[u8], q: &mut [i32; QK_K]) {
    match dtype {
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let is_q5 = dtype == GgmlType::Q5_K;
            let (qh, ql) = if is_q5 {
                (&b[16..48], &b[48..176])
            } else {
                (&b[0..0], &b[16..144])
            };
            for chunk in 0..4 {
                for l in 0..32 {
                    let (mut lo, mut hi) = (
                        (ql[32 * chunk + l] & 0xF) as i32,
                        (ql[32 * chunk + l] >> 4) as i32,
                    );
                    if is_q5 {
                        lo += (((qh[l] >> (2 * chunk)) & 1) as i32) << 4;
                        hi += (((qh[l] >> (2 * chunk + 1)) & 1) as i32) << 4;
                    }
                    q[64 * chunk + l] = lo;
                    q[64 * chunk + 32 + l] = hi;
                }
            }
        }
        GgmlType::Q6_K => {
            let (ql, qh) = (&b[0..128], &b[128..192]);
            for half in 0..2 {
                let (ql, qh) = (&ql[64 * half..], &qh[32 * half..]);
                let q = &mut q[128 * half..];
                for l in 0..32 {
                    q[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    q[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                }
            }
        }
        _ => unreachable!("not a k-quant"),
    }
}

/// Quantizes `xs` (a multiple of the block size) into `dtype`'s encoding.
///
/// # Panics
/// If `xs.len()` is not a multiple of the type's block size.
pub fn quantize_row(dtype: GgmlType, xs: &[f32]) -> Vec<u8> {
    let bs = dtype.block_size();
    assert_eq!(xs.len() % bs, 0);
    let mut out = Vec::with_capacity(xs.len() / bs * dtype.block_bytes());
    for x in xs.chunks_exact(bs) {
        quantize_block(dtype, x, &mut out);
    }
    out
}

fn put_f16(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
}

fn amax_signed(x: &[f32]) -> f32 {
    // The value of largest magnitude, with its sign (ggml's convention for Q4_0/Q5_0).
    x.iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
}

fn quantize_block(dtype: GgmlType, x: &[f32], out: &mut Vec<u8>) {
    match dtype {
        GgmlType::F32 => out.extend_from_slice(&x[0].to_le_bytes()),
        GgmlType::F16 => put_f16(out, x[0]),
        GgmlType::BF16 => out.extend_from_slice(&bf16::from_f32(x[0]).to_le_bytes()),
        GgmlType::Q4_0 | GgmlType::Q5_0 => {
            let (levels, offset) = if dtype == GgmlType::Q4_0 {
                (15, 8.0)
            } else {
                (31, 16.0)
            };
            let d = amax_signed(x) / -offset;
            let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q: Vec<u8> = x
                .iter()
                .map(|&v| ((v * inv + offset + 0.5) as i32).clamp(0, levels) as u8)
                .collect();
            put_f16(out, d);
            if dtype == GgmlType::Q5_0 {
                let qh = (0..32).fold(0u32, |acc, j| acc | (((q[j] >> 4) as u32 & 1) << j));
                out.extend_from_slice(&qh.to_le_bytes());
            }
            for j in 0..16 {
                out.push((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
            }
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            let levels = if dtype == GgmlType::Q4_1 { 15 } else { 31 };
            let min = x.iter().copied().fold(f32::INFINITY, f32::min);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let d = (max - min) / levels as f32;
            let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q: Vec<u8> = x
                .iter()
                .map(|&v| (((v - min) * inv + 0.5) as i32).clamp(0, levels) as u8)
                .collect();
            put_f16(out, d);
            put_f16(out, min);
            if dtype == GgmlType::Q5_1 {
                let qh = (0..32).fold(0u32, |acc, j| acc | (((q[j] >> 4) as u32 & 1) << j));
                out.extend_from_slice(&qh.to_le_bytes());
            }
            for j in 0..16 {
                out.push((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
            }
        }
        GgmlType::Q8_0 => {
            let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
            put_f16(out, d);
            out.extend(x.iter().map(|&v| (v * inv).round() as i8 as u8));
        }
        GgmlType::Q4_K | GgmlType::Q5_K => quantize_q45k(dtype, x, out),
        GgmlType::Q6_K => quantize_q6k(x, out),
    }
}

fn quantize_q45k(dtype: GgmlType, x: &[f32], out: &mut Vec<u8>) {
    let is_q5 = dtype == GgmlType::Q5_K;
    let levels = if is_q5 { 31.0 } else { 15.0 };
    // Per sub-block of 32: scale s and offset o with x ≈ s·q − o, o ≥ 0.
    let mut s = [0f32; 8];
    let mut o = [0f32; 8];
    for j in 0..8 {
        let sub = &x[32 * j..32 * j + 32];
        let min = sub.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
        let max = sub.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        s[j] = (max - min) / levels;
        o[j] = -min;
    }
    let d = s.iter().copied().fold(0.0, f32::max) / 63.0;
    let dmin = o.iter().copied().fold(0.0, f32::max) / 63.0;
    // Round through f16 so quantization uses the scales the decoder will see.
    let d = f16::from_f32(d).to_f32();
    let dmin = f16::from_f32(dmin).to_f32();
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        sc[j] = if d > 0.0 {
            ((s[j] / d).round() as i32).clamp(0, 63) as u8
        } else {
            0
        };
        m[j] = if dmin > 0.0 {
            ((o[j] / dmin).round() as i32).clamp(0, 63) as u8
        } else {
            0
        };
    }
    let mut scales = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            scales[j] = sc[j];
            scales[j + 4] = m[j];
        } else {
            scales[j + 4] = (sc[j] & 0xF) | ((m[j] & 0xF) << 4);
            scales[j - 4] |= (sc[j] >> 4) << 6;
            scales[j] |= (m[j] >> 4) << 6;
        }
    }
    let mut q = [0u8; QK_K];
    for j in 0..8 {
        let step = d * sc[j] as f32;
        let off = dmin * m[j] as f32;
        for l in 0..32 {
            let v = x[32 * j + l] + off;
            q[32 * j + l] = if step > 0.0 {
                ((v / step).round() as i32).clamp(0, levels as i32) as u8
            } else {
                0
            };
        }
    }
    put_f16(out, d);
    put_f16(out, dmin);
    out.extend_from_slice(&scales);
    if is_q5 {
        let mut qh = [0u8; 32];
        for chunk in 0..4 {
            for l in 0..32 {
                qh[l] |= ((q[64 * chunk + l] >> 4) & 1) << (2 * chunk);
                qh[l] |= ((q[64 * chunk + 32 + l] >> 4) & 1) << (2 * chunk + 1);
            }
        }
        out.extend_from_slice(&qh);
    }
    for chunk in 0..4 {
        for l in 0..32 {
            out.push((q[64 * chunk + l] & 0xF) | ((q[64 * chunk + 32 + l] & 0xF) << 4));
        }
    }
}

fn quantize_q6k(x: &[f32], out: &mut Vec<u8>) {
    let mut s = [0f32; 16];
    for j in 0..16 {
        s[j] = x[16 * j..16 * j + 16]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()))
            / 31.0;
    }
    let d = f16::from_f32(s.iter().copied().fold(0.0, f32::max) / 127.0).to_f32();
    let mut sc = [0i8; 16];
    for j in 0..16 {
        sc[j] = if d > 0.0 {
            ((s[j] / d).round() as i32).clamp(-128, 127) as i8
        } else {
            0
        };
    }
    // q in [0, 63], value = d · sc · (q − 32).
    let mut q = [0u8; QK_K];
    for (idx, qv) in q.iter_mut().enumerate() {
        let step = d * sc[idx / 16] as f32;
        *qv = if step != 0.0 {
            ((x[idx] / step).round() as i32 + 32).clamp(0, 63) as u8
        } else {
            32
        };
    }
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for half in 0..2 {
        let q = &q[128 * half..];
        for l in 0..32 {
            let (q1, q2, q3, q4) = (q[l], q[l + 32], q[l + 64], q[l + 96]);
            ql[64 * half + l] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[64 * half + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[32 * half + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend(sc.iter().map(|&v| v as u8));
    put_f16(out, d);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn scales_mins_k4_equals_the_one_by_one_decode() {
        let mut state = 12345u64;
        for _ in 0..2000 {
            let q: Vec<u8> = (0..12)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 56) as u8
                })
                .collect();
            let (scales, mins) = scales_mins_k4(&q);
            for j in 0..8 {
                assert_eq!((scales[j], mins[j]), scale_min_k4(j, &q), "{q:?} j={j}");
            }
        }
    }

    #[test]
    fn round_trip_error_is_bounded_for_every_type() {
        let xs = random(512, 7);
        let cases = [
            (GgmlType::F32, 1e-7),
            (GgmlType::F16, 1e-3),
            (GgmlType::BF16, 1e-2),
            (GgmlType::Q8_0, 1e-2),
            (GgmlType::Q6_K, 0.04),
            (GgmlType::Q5_0, 0.05),
            (GgmlType::Q5_1, 0.05),
            (GgmlType::Q5_K, 0.06),
            (GgmlType::Q4_0, 0.13),
            (GgmlType::Q4_1, 0.1),
            (GgmlType::Q4_K, 0.12),
        ];
        for (dtype, tol) in cases {
            let bytes = quantize_row(dtype, &xs);
            assert_eq!(
                bytes.len(),
                xs.len() / dtype.block_size() * dtype.block_bytes()
            );
            let mut ys = vec![0f32; xs.len()];
            dequantize(dtype, &bytes, &mut ys);
            let err = xs
                .iter()
                .zip(&ys)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err <= tol, "{dtype:?}: max error {err} > {tol}");
        }
    }

    #[test]
    fn ids_round_trip() {
        for id in 0..40 {
            if let Some(t) = GgmlType::from_id(id) {
                assert_eq!(t.id(), id);
            }
        }
        assert_eq!(GgmlType::name_of_id(10), "Q2_K (id 10)");
    }
}
