//! The filter's row kernels compiled twice: for the baseline x86-64 (SSE2, 4 float lanes)
//! and for AVX2 (8 lanes), picked at run time. The build targets the baseline so the binary
//! runs on any x86-64; most machines it runs on have AVX2, and these loops vectorise to
//! twice the width there.
//!
//! Only the vector width changes: no fused multiply-add, no reordered sums, so both versions
//! give the same bits (the tests run whichever the machine has).

/// `kernel! { fn name(args) { body } }` defines `name` that runs `body` compiled for AVX2
/// when the CPU has it, else for the baseline. `body` is inlined into both versions, and so
/// is what it calls when that is marked `#[inline(always)]`.
macro_rules! kernel {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if !$crate::temporal::simd::baseline_forced()
                    && std::arch::is_x86_feature_detected!("avx2")
                {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(super) use kernel;

/// Tests can run the baseline versions on a machine with AVX2, to check both give the same.
#[cfg(test)]
pub(super) static FORCE_BASELINE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
#[inline(always)]
pub(super) fn baseline_forced() -> bool {
    FORCE_BASELINE.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(test))]
#[inline(always)]
pub(super) fn baseline_forced() -> bool {
    false
}

/// Whether hand-written AVX2 code (`super::gather`) may run: the CPU has it and no test forced
/// the baseline.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn avx2() -> bool {
    !baseline_forced() && std::arch::is_x86_feature_detected!("avx2")
}
