//! Rotary position embeddings with θ from the model file, linear and YaRN scaling.
//!
//! Two pairings exist: `Normal` rotates adjacent pairs `(2i, 2i+1)` (GGUF llama,
//! whose converter permutes Q/K rows), `Neox` rotates `(i, i + d/2)` (qwen2, and
//! every Hugging Face checkpoint). YaRN follows ggml's `rope_yarn`: a ramp between
//! interpolated and extrapolated angles over the correction dimensions, and a
//! magnitude scale of `1 + 0.1 ln(factor)`.

/// How pairs of dimensions are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs.
    Normal,
    /// Halves.
    Neox,
}

/// Context extension method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear {
        /// The factor.
        factor: f32,
    },
    /// YaRN.
    Yarn {
        /// The factor.
        factor: f32,
        /// The context the model was trained with before extension.
        original_context: usize,
    },
}

/// Precomputed per-dimension rotation parameters.
#[derive(Debug, Clone)]
pub struct Rope {
    style: RopeStyle,
    n_rot: usize,
    inv_freq: Vec<f32>,
    freq_scale: f32,
    ramp: Vec<f32>,
    mscale: f32,
}

impl Rope {
    /// Builds the rotation for `n_rot` rotated dimensions.
    pub fn new(style: RopeStyle, n_rot: usize, theta: f32, scaling: RopeScaling) -> Self {
        let inv_freq: Vec<f32> = (0..n_rot / 2)
            .map(|i| theta.powf(-2.0 * i as f32 / n_rot as f32))
            .collect();
        let (freq_scale, ramp, mscale) = match scaling {
            RopeScaling::None => (1.0, vec![0.0; n_rot / 2], 1.0),
            RopeScaling::Linear { factor } => (1.0 / factor, vec![0.0; n_rot / 2], 1.0),
            RopeScaling::Yarn {
                factor,
                original_context,
            } => {
                let corr_dim = |n_rotations: f32| {
                    n_rot as f32
                        * (original_context as f32 / (n_rotations * 2.0 * std::f32::consts::PI))
                            .ln()
                        / (2.0 * theta.ln())
                };
                let low = corr_dim(32.0).floor().max(0.0);
                let high = corr_dim(1.0).ceil().min(n_rot as f32 - 1.0);
                let ramp = (0..n_rot / 2)
                    .map(|i| {
                        let y = (i as f32 - low) / (high - low).max(0.001);
                        1.0 - y.clamp(0.0, 1.0)
                    })
                    .collect();
                (1.0 / factor, ramp, 1.0 + 0.1 * factor.ln())
            }
        };
        Rope {
            style,
            n_rot,
            inv_freq,
            freq_scale,
            ramp,
            mscale,
        }
    }

    /// Rotates every head of `x` (`n_heads * head_dim` values) for position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.n_rot / 2;
        let mut cos_sin = Vec::with_capacity(half);
        for i in 0..half {
            let extrap = pos as f32 * self.inv_freq[i];
            let interp = extrap * self.freq_scale;
            let mix = self.ramp[i];
            let angle = interp * (1.0 - mix) + extrap * mix;
            cos_sin.push((angle.cos() * self.mscale, angle.sin() * self.mscale));
        }
        for head in x.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cos_sin.iter().enumerate() {
                let (a, b) = match self.style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity_and_rotation_preserves_norm() {
        let rope = Rope::new(RopeStyle::Neox, 8, 10000.0, RopeScaling::None);
        let mut x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let orig = x.clone();
        rope.apply(&mut x, 8, 0);
        assert_eq!(x, orig);
        rope.apply(&mut x, 8, 17);
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!((norm(&x) - norm(&orig)).abs() < 1e-3);
    }

    #[test]
    fn linear_scaling_divides_positions() {
        let plain = Rope::new(RopeStyle::Normal, 4, 10000.0, RopeScaling::None);
        let linear = Rope::new(
            RopeStyle::Normal,
            4,
            10000.0,
            RopeScaling::Linear { factor: 4.0 },
        );
        let (mut a, mut b) = (vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 2.0, 3.0, 4.0]);
        plain.apply(&mut a, 4, 3);
        linear.apply(&mut b, 4, 12);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
