//! The CPU features the hand-written kernels use, detected in one place.
//!
//! Every dispatch in the crate (`quant::kernels`, `ops`) reads [`features`]: one
//! value, detected once per process, that the tests can cap per thread so that one
//! machine with AVX-512 also runs the AVX2 and the portable paths
//! ([`at_every_level`]). Which kernel a storage type gets is then a table lookup
//! (`quant::kernels::Kernel::select`), printable with `codelm models info`.
//!
//! The levels are deliberately coarse. [`Isa::Avx512`] means the AVX-512 of Ice
//! Lake, Sapphire Rapids and Zen 4 (F, BW, VL, VNNI, VBMI, BITALG), which every
//! AVX-512 kernel here may assume; a CPU with only some of it (Skylake-X,
//! Cascade Lake) runs the AVX2 kernels, so no kernel needs its own test of a
//! feature subset.

use std::sync::OnceLock;

/// Instruction-set levels, lowest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Isa {
    /// No vector extension the kernels use (aarch64's NEON is part of its
    /// baseline, so the portable code uses it there without a level).
    Portable,
    /// AVX2, FMA and F16C (Haswell, Zen 1 and later).
    Avx2,
    /// AVX-512 F, BW, VL, VNNI, VBMI and BITALG (Ice Lake, Zen 4 and later).
    Avx512,
}

/// What the kernels may use on this thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Features {
    /// The widest level.
    pub level: Isa,
    /// AVX-VNNI (`vpdpbusd` on 256-bit vectors without AVX-512: Alder Lake and
    /// later client CPUs, Zen 5); only meaningful with [`Isa::Avx2`] or above.
    pub avx_vnni: bool,
}

impl Features {
    /// The features by name, widest level last: `["avx2", "avx-vnni"]`.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.has(Isa::Avx2) {
            names.push("avx2+fma+f16c");
        }
        if self.avx_vnni {
            names.push("avx-vnni");
        }
        if self.has(Isa::Avx512) {
            names.push("avx512 (f, bw, vl, vnni, vbmi, bitalg)");
        }
        if names.is_empty() {
            names.push(if cfg!(target_arch = "aarch64") {
                "neon"
            } else {
                "none"
            });
        }
        names
    }

    /// Whether the kernels may use `isa`.
    #[inline]
    pub fn has(self, isa: Isa) -> bool {
        self.level >= isa
    }
}

/// The features of this CPU, capped on this thread in tests.
#[inline]
pub fn features() -> Features {
    static DETECTED: OnceLock<Features> = OnceLock::new();
    let detected = *DETECTED.get_or_init(detect);
    #[cfg(test)]
    {
        let cap = CAP.with(|cap| cap.get());
        Features {
            level: detected.level.min(cap),
            avx_vnni: detected.avx_vnni && cap >= Isa::Avx2,
        }
    }
    #[cfg(not(test))]
    detected
}

/// The detected features, capped by `CODELM_ISA` (`portable`, `avx2`, `avx512`)
/// where it is set: so a benchmark on an AVX-512 machine can measure the AVX2
/// kernels, as `bench/inference.sh` does with `CODELM_ISA=avx2`.
fn detect() -> Features {
    let found = detect_cpu();
    let cap = match std::env::var("CODELM_ISA").as_deref() {
        Err(_) | Ok("") => return found,
        Ok("portable") => Isa::Portable,
        Ok("avx2") => Isa::Avx2,
        Ok("avx512") => Isa::Avx512,
        Ok(other) => {
            eprintln!("codelm: ignoring CODELM_ISA={other:?} (expected portable, avx2 or avx512)");
            return found;
        }
    };
    Features {
        level: found.level.min(cap),
        avx_vnni: found.avx_vnni && cap >= Isa::Avx2,
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_cpu() -> Features {
    use std::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma") && has!("f16c");
    let avx512 = avx2
        && has!("avx512f")
        && has!("avx512bw")
        && has!("avx512vl")
        && has!("avx512vnni")
        && has!("avx512vbmi")
        && has!("avx512bitalg");
    let level = match (avx512, avx2) {
        (true, _) => Isa::Avx512,
        (false, true) => Isa::Avx2,
        _ => Isa::Portable,
    };
    Features {
        level,
        avx_vnni: avx2 && has!("avxvnni"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_cpu() -> Features {
    Features {
        level: Isa::Portable,
        avx_vnni: false,
    }
}

#[cfg(test)]
thread_local! {
    /// The widest level the kernels may use on this thread.
    static CAP: std::cell::Cell<Isa> = const { std::cell::Cell::new(Isa::Avx512) };
}

/// Runs `f` at every level, lowest first, with the kernels capped at that level
/// on this thread (where the CPU lacks a level, the next lower one's paths run
/// again).
#[cfg(test)]
pub(crate) fn at_every_level(f: fn(Isa)) {
    for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
        CAP.with(|cap| cap.set(isa));
        f(isa);
    }
    CAP.with(|cap| cap.set(Isa::Avx512));
}
