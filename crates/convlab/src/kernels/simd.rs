//! A minimal SIMD vocabulary for the register-blocked kernels
//! ([`super::ukernel`], [`super::flat`], [`super::winograd`]): one body is
//! written against [`Simd`] and compiled three times, for AVX-512 (16
//! lanes), AVX2+FMA (8 lanes) and portable code (8 lanes in an array),
//! then picked at run time from [`super::isa::isa`].
//!
//! Every method is `unsafe` and `#[inline(always)]`: the AVX variants may
//! only run inside a function compiled with (and a CPU that has) their
//! target features, and they must inline into it to become single
//! instructions.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One SIMD instruction set: a vector type of `LANES` floats and the few
/// operations the kernels need. Loads and stores are unaligned.
pub(crate) trait Simd: Copy + 'static {
    /// Floats per vector.
    const LANES: usize;
    /// The vector register type.
    type V: Copy;
    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` floats to `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`, fused where the ISA has it.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
}

/// x86-64 AVX-512F: 16 lanes in a zmm register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at p.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable floats at p.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
}

/// x86-64 AVX2 with FMA: 8 lanes in a ymm register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats at p.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable floats at p.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
}

/// Portable code: 8 lanes in an array (the compiler's baseline vectors).
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    const LANES: usize = 8;
    type V = [f32; 8];
    #[inline(always)]
    unsafe fn zero() -> [f32; 8] {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 8] {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 8] {
        // SAFETY: the caller guarantees 8 readable floats at p.
        unsafe { (p as *const [f32; 8]).read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 8]) {
        // SAFETY: the caller guarantees 8 writable floats at p.
        unsafe { (p as *mut [f32; 8]).write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn fma(a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        // A plain multiply and add: without an `fma` target feature,
        // `mul_add` is a slow libm call.
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
}

/// Define `$name(args) -> ret` that runs `$body::<S>(args)` with `S` the
/// best [`Simd`] of this CPU, compiled with its target features.
macro_rules! dispatch_simd {
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$m])*
        $vis unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: forwarded from the caller of the outer function.
                    unsafe { $body::<$crate::kernels::simd::Avx512>($($arg),*) }
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: forwarded from the caller of the outer function.
                    unsafe { $body::<$crate::kernels::simd::Avx2>($($arg),*) }
                }
                match $crate::kernels::isa::isa() {
                    // SAFETY: `isa()` returned Avx512 only after detecting
                    // avx512f and fma (which imply avx2) on this CPU; the
                    // rest is the caller's contract.
                    $crate::kernels::isa::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: detected avx2 and fma on this CPU.
                    $crate::kernels::isa::Isa::Avx2Fma => return unsafe { avx2($($arg),*) },
                    $crate::kernels::isa::Isa::Scalar => {}
                }
            }
            // SAFETY: the caller's contract.
            unsafe { $body::<$crate::kernels::simd::Portable>($($arg),*) }
        }
    };
}
pub(crate) use dispatch_simd;
