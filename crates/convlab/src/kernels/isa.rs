//! Runtime CPU-feature detection, done once and cached (gemm/faer style):
//! kernels compile one generic body under several `target_feature` sets and
//! pick the best one the running CPU has.

use std::sync::OnceLock;

/// The instruction sets convlab's own kernels are specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 with AVX-512F (and FMA).
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2Fma,
    /// Anything else: portable code, no fused multiply-add.
    Scalar,
}

/// The best instruction set of this CPU (detected on first call).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(detect)
}

/// The detected ISA, lowered by `CONVLAB_ISA=avx2|scalar` (or the older
/// `CONVLAB_NO_SIMD`) so that tests can run every code path on one machine.
/// A request above what the CPU has gives the CPU's best; a malformed value
/// also runs the CPU's best here, and is reported by the memory guard (see
/// [`crate::env`]).
#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use crate::env::IsaRequest;
    let cpu = if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
        Isa::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Isa::Avx2Fma
    } else {
        Isa::Scalar
    };
    match crate::env::isa() {
        Ok(Some(IsaRequest::Scalar)) => Isa::Scalar,
        Ok(Some(IsaRequest::Avx2)) if cpu != Isa::Scalar => Isa::Avx2Fma,
        _ => cpu,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Scalar
}

/// `a * b + c`, fused when `FMA` (the caller compiled with the `fma`
/// feature), else a plain multiply and add (a libm `fmaf` call would be slow).
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Define `$name(args) -> ret` that calls `$body::<FMA>(args)` compiled for
/// the detected instruction set.
macro_rules! dispatch_isa {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                match $crate::kernels::isa::isa() {
                    // SAFETY: `isa()` returned Avx512 only after detecting
                    // avx512f and fma (which implies avx2) on this CPU.
                    $crate::kernels::isa::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: detected avx2 and fma on this CPU.
                    $crate::kernels::isa::Isa::Avx2Fma => return unsafe { avx2($($arg),*) },
                    $crate::kernels::isa::Isa::Scalar => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use dispatch_isa;
