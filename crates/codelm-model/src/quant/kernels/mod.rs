//! Dot-product kernels: weight rows (any [`GgmlType`]) against one matmul's
//! [`Activations`].
//!
//! Which kernel multiplies a storage type on this CPU has one answer,
//! [`Kernel::select`]: a table from (storage type, the CPU features `isa::features` detected),
//! in the spirit of llama.cpp's per-type function table (`codelm models info`
//! prints it). The activations are quantized and laid out for that kernel
//! ([`Activations::quantize`]), and [`dot_rows`] runs the kernel they were laid
//! out for. One file per instruction set:
//!
//! | module | holds |
//! | --- | --- |
//! | `acts` | activation quantization (Q8_0, Q8_K) and the AVX-512 layouts |
//! | `portable` | the reference for every type, in plain Rust |
//! | `neon` | the reference's exact integer sums on aarch64 |
//! | `avx2` | AVX2+FMA+F16C (and AVX-VNNI) kernels |
//! | `avx512` | AVX-512 VNNI kernels of Q4_0/Q5_0/Q8_0, float rows, the tile transpose |
//! | `kquant512` | AVX-512 VNNI kernels of Q4_K/Q5_K/Q6_K |
//!
//! `Invariant:` each kernel fixes one order of float operations per (row,
//! token), written out by its one-row function ([`dot`]), which all of its
//! tilings follow, so a token's result never depends on how many tokens or rows
//! share the call (`tests::dot_rows_matches_scalar_dots_for_every_tiling`).
//!
//! Adding a storage type or an ISA is a row in [`Kernel::select`], a module (or
//! functions in one) for the arithmetic, and an arm in [`dot_rows`] and [`dot`]
//! where the kernel has tilings of its own; the tests run every kernel at every
//! level the CPU has.

mod acts;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod kquant512;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod portable;
#[cfg(test)]
mod tests;

pub use acts::{group_lane, Activations, BlockQ8, BlockQ8K, GroupQ8, Quants, TokenGroup};

use super::blocks::GgmlType;
use crate::isa::{self, Features, Isa};

/// The kernel family that multiplies one storage type on this CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kernel {
    /// The portable reference, in plain Rust.
    Portable,
    /// The portable reference with its exact integer sums on NEON (aarch64).
    Neon,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// AVX2 with AVX-VNNI's 256-bit `vpdpbusd` (Q4_0/Q5_0/Q8_0 with many tokens).
    AvxVnni,
    /// AVX-512 float rows, eight tokens per pass (one token takes AVX2's chains).
    Avx512,
    /// AVX-512 VNNI: Q4_0/Q5_0/Q8_0 (`avx512`) and the k-quants (`kquant512`).
    Avx512Vnni,
}

impl Kernel {
    /// The kernel for `dtype` on this CPU (capped per thread in tests).
    pub fn select(dtype: GgmlType) -> Kernel {
        Kernel::select_for(dtype, isa::features())
    }

    /// The table: the kernel for `dtype` given `features`.
    pub(crate) fn select_for(dtype: GgmlType, features: Features) -> Kernel {
        use GgmlType::*;
        let level = features.level;
        match dtype {
            F32 | F16 | BF16 => match level {
                Isa::Avx512 => Kernel::Avx512,
                Isa::Avx2 => Kernel::Avx2,
                Isa::Portable => Kernel::Portable,
            },
            Q4_0 | Q5_0 | Q8_0 => match level {
                Isa::Avx512 => Kernel::Avx512Vnni,
                Isa::Avx2 if features.avx_vnni => Kernel::AvxVnni,
                Isa::Avx2 => Kernel::Avx2,
                Isa::Portable if cfg!(target_arch = "aarch64") => Kernel::Neon,
                Isa::Portable => Kernel::Portable,
            },
            Q4_K | Q5_K | Q6_K => match level {
                Isa::Avx512 => Kernel::Avx512Vnni,
                Isa::Avx2 => Kernel::Avx2,
                Isa::Portable if cfg!(target_arch = "aarch64") => Kernel::Neon,
                Isa::Portable => Kernel::Portable,
            },
            // No vector kernels: no model file we run stores weights in these.
            Q4_1 | Q5_1 => Kernel::Portable,
        }
    }

    /// The kernel's name, as `codelm models info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Neon => "neon",
            Kernel::Avx2 => "avx2",
            Kernel::AvxVnni => "avx2-vnni",
            Kernel::Avx512 => "avx512",
            Kernel::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// The storage types that have kernels, in the order `codelm models info` lists
/// them.
pub const TYPES: [GgmlType; 11] = [
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

/// The kernel of every storage type in [`TYPES`] on this CPU, as `codelm models
/// info` prints it.
pub fn table() -> Vec<(GgmlType, Kernel)> {
    TYPES.iter().map(|&t| (t, Kernel::select(t))).collect()
}

/// One weight row · token `t` of `acts`, in the arithmetic of the kernel the
/// activations were laid out for: what every tiling of that kernel gives for
/// (row, token), bit for bit.
pub fn dot(dtype: GgmlType, row: &[u8], acts: &Activations, t: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a kernel is selected only where its features were detected, and
    // activations are laid out for the kernel named in them.
    unsafe {
        match (acts.kernel, &acts.quants) {
            (Kernel::Avx2 | Kernel::AvxVnni | Kernel::Avx512, Quants::F32 { .. }) => {
                return avx2::dot_float(dtype, row, acts.floats(t));
            }
            (Kernel::Avx2 | Kernel::AvxVnni, Quants::Q8 { .. }) => {
                return avx2::dot_q8(dtype, row, acts.q8(t));
            }
            (Kernel::Avx2, Quants::Q8K { .. }) => return avx2::dot_q8k(dtype, row, acts.q8k(t)),
            (
                Kernel::Avx512Vnni,
                Quants::Q8Groups {
                    groups,
                    groups_per_row,
                    ..
                },
            ) => {
                let ys = &groups[t * groups_per_row..(t + 1) * groups_per_row];
                return avx512::dot_packed_rows(dtype, [row], ys)[0];
            }
            (Kernel::Avx512Vnni, Quants::Q8KTokens { .. }) => {
                return kquant512::dot_row(dtype, row, acts.q8k(t));
            }
            _ => {}
        }
    }
    portable::dot(dtype, row, acts, t)
}

/// `tile[r * n + t] = dot(weight row r, token t)` for every row in `rows` and every
/// token of `acts`, by the kernel the activations were laid out for.
pub fn dot_rows(
    dtype: GgmlType,
    row_bytes: usize,
    rows: &[u8],
    acts: &Activations,
    tile: &mut [f32],
) {
    let n = acts.n;
    assert_eq!(tile.len(), rows.len() / row_bytes * n);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a kernel is selected only where its features were detected, and
    // activations are laid out for the kernel named in them.
    unsafe {
        match (acts.kernel, &acts.quants) {
            (
                Kernel::Avx512Vnni,
                Quants::Q8Groups {
                    groups,
                    groups_per_row,
                    ..
                },
            ) => {
                return avx512::dot_rows(dtype, row_bytes, rows, groups, *groups_per_row, n, tile);
            }
            (
                Kernel::Avx512Vnni,
                Quants::Q8KTokens {
                    blocks,
                    per_row,
                    token_groups,
                },
            ) => {
                return kquant512::dot_rows(
                    dtype,
                    row_bytes,
                    rows,
                    blocks,
                    token_groups,
                    *per_row,
                    tile,
                );
            }
            (Kernel::Avx2 | Kernel::AvxVnni, Quants::Q8 { .. }) if n == 1 => {
                return avx2::legacy_one_token(dtype, row_bytes, rows, acts.q8(0), tile);
            }
            _ => {}
        }
    }
    // Tokens in blocks whose activations (512 KiB) stay in L2 while every row of
    // the band passes over them; with all tokens at once a long prefill streamed
    // them from L3 once per weight row. Bigger blocks decode each row less often.
    let block_tokens = (512 * 1024 / acts.token_bytes().max(1)).clamp(8, n.max(8)) / 8 * 8;
    #[cfg(target_arch = "x86_64")]
    let mut unpacked = avx2::Unpacked::default();
    for t0 in (0..n).step_by(block_tokens) {
        let t1 = (t0 + block_tokens).min(n);
        for (r, row) in rows.chunks_exact(row_bytes).enumerate() {
            let out = &mut tile[r * n + t0..r * n + t1];
            match acts.kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 | Kernel::AvxVnni | Kernel::Avx512 => {
                    // SAFETY: as above.
                    unsafe { avx2::row_tokens(dtype, row, acts, t0..t1, out, &mut unpacked) }
                }
                _ => {
                    for (t, o) in (t0..t1).zip(out) {
                        *o = dot(dtype, row, acts, t);
                    }
                }
            }
        }
    }
}

/// Writes a band's `tile` (its weight rows × `n` tokens, row-major) into `out`
/// (tokens × `stride` outputs) at columns from `start`: `out[t * stride + start +
/// r] = tile[r * n + t]`, in 16 × 16 squares so that both sides touch only sixteen
/// cache lines at a time; with AVX-512, each square of sixteen rows is one
/// 16 × 16 transpose in registers.
///
/// # Safety
/// `out` must be valid for writes at all those indices, and no other thread may
/// access them meanwhile.
pub unsafe fn scatter_tile(tile: &[f32], n: usize, out: *mut f32, stride: usize, start: usize) {
    let n_rows = tile.len() / n.max(1);
    #[cfg(target_arch = "x86_64")]
    let wide = isa::features().has(Isa::Avx512);
    for t0 in (0..n).step_by(16) {
        let tokens = (n - t0).min(16);
        for r0 in (0..n_rows).step_by(16) {
            #[cfg(target_arch = "x86_64")]
            if wide && r0 + 16 <= n_rows {
                // SAFETY: AVX-512 was detected; the square is inside `tile`, and
                // the caller vouches for `out`.
                unsafe { avx512::scatter_square(tile, n, out, stride, start, (t0, r0, tokens)) };
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
