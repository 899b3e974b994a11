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

/// Dot product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
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
    for (d, s) in dst.iter_mut().zip(src) {
        *d += scale * s;
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
    fn softmax_sums_to_one_and_survives_large_logits() {
        let mut xs = vec![1000.0, 1000.0, -1000.0];
        softmax(&mut xs);
        assert!((xs[0] - 0.5).abs() < 1e-6 && xs[2] == 0.0);
    }
}
