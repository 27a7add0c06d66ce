//! Raw f32 slice kernels, crate-private: no shapes to validate, no
//! allocation policy. One family per module, each compiled once per
//! instruction set through the `Simd` trait where it is vectorised.
//!
//! Everything here assumes its caller (the drivers, or an op for pooling)
//! already checked the geometry; violations are bugs and are caught by
//! `debug_assert!` only. Callers own the scratch (`*_scratch_len`,
//! `*_workspace_len` say how much).

pub mod direct;
pub mod fft;
pub(crate) mod finite;
pub mod flat;
pub mod gemm;
pub mod im2col;
pub mod isa;
pub mod lanes;
pub(crate) mod pool;
pub(crate) mod resample;
pub mod separable;
pub(crate) mod simd;
pub(crate) mod ukernel;
pub mod winograd;
