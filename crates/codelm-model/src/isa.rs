//! The instruction-set levels that the hand-written kernels (`quant::kernels`,
//! `ops`) dispatch between, and, in tests, a per-thread cap on them, so that one
//! machine with AVX-512 also runs the AVX2 and the portable paths.

/// Instruction-set levels, lowest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Isa {
    /// No vector extension the kernels use (only tests cap the kernels here).
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
    Avx2,
    Avx512,
}

#[cfg(test)]
thread_local! {
    /// The widest level the kernels may use on this thread.
    static CAP: std::cell::Cell<Isa> = const { std::cell::Cell::new(Isa::Avx512) };
}

/// Whether the kernels may use `isa` on this thread, if the CPU has it (always,
/// outside the tests).
#[inline]
pub(crate) fn allowed(isa: Isa) -> bool {
    #[cfg(test)]
    {
        CAP.with(|cap| cap.get()) >= isa
    }
    #[cfg(not(test))]
    {
        let _ = isa;
        true
    }
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
