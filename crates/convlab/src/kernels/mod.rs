//! Raw f32 slice kernels: no shapes to validate, no allocation policy.
//!
//! Everything here assumes its caller (the `ops` room) already checked the
//! geometry; violations are bugs and are caught by `debug_assert!` only.

pub mod direct;
pub mod fft;
pub mod flat;
pub mod gemm;
pub mod im2col;
pub mod isa;
pub mod lanes;
pub mod pool;
pub(crate) mod resample;
pub mod separable;
pub(crate) mod simd;
pub(crate) mod ukernel;
pub mod winograd;
pub mod winograd_s2;
