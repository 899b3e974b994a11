//! The kernels' tests: every kernel at every level this CPU has.

use super::acts::{quantize_q8k, round_even, unsigned_offset};
use super::portable::unpack_legacy;
use super::*;
use crate::quant::blocks::{dequantize, quantize_row, QK_K};

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

use crate::isa::{self, at_every_level, Isa};

/// The cap of [`at_every_level`] reaches this module's dispatch: no kernel above
/// the cap is selected, and the activations are laid out for the selected one.
#[test]
fn capped_levels_take_the_lower_paths() {
    at_every_level(|isa| {
        for dtype in ALL {
            let kernel = Kernel::select(dtype);
            let needs = match kernel {
                Kernel::Portable | Kernel::Neon => Isa::Portable,
                Kernel::Avx2 | Kernel::AvxVnni => Isa::Avx2,
                Kernel::Avx512 | Kernel::Avx512Vnni => Isa::Avx512,
            };
            assert!(needs <= isa, "{isa:?} {dtype:?}: {kernel:?}");
            let x = random(512, 1, 1.0);
            assert_eq!(Activations::quantize(dtype, &x, 1, 512).kernel, kernel);
        }
    });
}

/// The table on a CPU with every level gives each type its widest kernel.
#[test]
fn the_table_picks_the_widest_kernel() {
    use crate::isa::Features;
    let at = |level, avx_vnni| Features { level, avx_vnni };
    let pick = |dtype, f| Kernel::select_for(dtype, f).name();
    assert_eq!(pick(GgmlType::Q5_0, at(Isa::Avx512, true)), "avx512-vnni");
    assert_eq!(pick(GgmlType::Q5_0, at(Isa::Avx2, true)), "avx2-vnni");
    assert_eq!(pick(GgmlType::Q5_0, at(Isa::Avx2, false)), "avx2");
    assert_eq!(pick(GgmlType::Q6_K, at(Isa::Avx2, true)), "avx2");
    assert_eq!(pick(GgmlType::Q4_K, at(Isa::Avx512, true)), "avx512-vnni");
    assert_eq!(pick(GgmlType::F16, at(Isa::Avx512, false)), "avx512");
    assert_eq!(pick(GgmlType::Q4_1, at(Isa::Avx512, true)), "portable");
    let portable = if cfg!(target_arch = "aarch64") {
        "neon"
    } else {
        "portable"
    };
    assert_eq!(pick(GgmlType::Q8_0, at(Isa::Portable, false)), portable);
    assert_eq!(pick(GgmlType::BF16, at(Isa::Portable, false)), "portable");
}

const ALL: [GgmlType; 11] = TYPES;

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
            let kernel = acts.kernel;
            for (name, got) in [
                ("portable", portable::dot(dtype, &bytes, &acts, 0)),
                (kernel.name(), dot(dtype, &bytes, &acts, 0)),
            ] {
                let norm: f32 = wd.iter().map(|v| v.abs()).sum::<f32>() + 1e-6;
                let err = (got - reference).abs() / norm;
                assert!(
                    err < 0.01,
                    "{isa:?} {dtype:?} cols={cols} scale={scale} {name}: {got} vs {reference}"
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
            // Where AVX-512 runs, this test covers its kernels and their layouts.
            let wide = acts.kernel == Kernel::Avx512Vnni;
            match &acts.quants {
                Quants::Q8Groups { .. } => assert!(wide && unsigned_offset(dtype).is_some()),
                Quants::Q8KTokens { .. } => assert!(wide),
                Quants::Q8 { .. } => assert!(!wide || unsigned_offset(dtype).is_none()),
                Quants::Q8K { .. } => assert!(!wide, "{isa:?} {dtype:?}"),
                Quants::F32 { .. } => {}
            }
            let mut tile = vec![0f32; n_rows * n];
            dot_rows(dtype, row_bytes, &rows, &acts, &mut tile);
            for r in 0..n_rows {
                let row = &rows[r * row_bytes..(r + 1) * row_bytes];
                for t in 0..n {
                    let expected = portable::dot(dtype, row, &acts, t);
                    let got = tile[r * n + t];
                    let fast = dot(dtype, row, &acts, t);
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
    if Kernel::select(GgmlType::Q8_0) != Kernel::Avx512Vnni {
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
            let got = dot(dtype, &row, &acts, 0);
            let want = canonical(dtype, &row, acts.q8(0));
            assert_eq!(got.to_bits(), want.to_bits(), "{dtype:?} cols={cols}");
        }
    }
}

/// The NEON integer sums equal the plain ones on every block, including extreme
/// quants (all bits set, or none).
#[test]
#[cfg(target_arch = "aarch64")]
fn neon_integer_sums_equal_plain_ones() {
    use super::portable::{kquant_sums, legacy_sumi};
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
                match &acts.quants {
                    Quants::Q8 { blocks: ys, .. } => {
                        let mut q = [0i32; 32];
                        unpack_legacy(dtype, b, &mut q);
                        let neon = unsafe { neon::legacy_sumi(dtype, b, &ys[i]) };
                        assert_eq!(neon, legacy_sumi(&q, &ys[i]), "{dtype:?} block {i}");
                    }
                    Quants::Q8K { blocks: ys, .. } => {
                        let mut q = [0i32; QK_K];
                        let plain = kquant_sums(dtype, b, &ys[i], &mut q);
                        let neon = unsafe { neon::kquant_sums(dtype, b, &ys[i]) };
                        assert_eq!(neon, plain, "{dtype:?} block {i}");
                    }
                    _ => unreachable!(),
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
    if Kernel::select(GgmlType::Q4_K) != Kernel::Avx512Vnni {
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
    if !isa::features().has(Isa::Avx2) {
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
        let acts = Activations::quantize(dtype, &x, 1, cols);
        let (a, b) = (
            portable::dot(dtype, &bytes, &acts, 0),
            dot(dtype, &bytes, &acts, 0),
        );
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "{isa:?} {dtype:?}: scalar {a} fast {b}"
        );
    }
}
