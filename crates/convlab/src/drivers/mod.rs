//! The driver layer, between the checked ops and the raw kernels: for each
//! family of ops, which algorithm computes each pass (the dispatcher), how
//! it is blocked and split over threads (a plan), and the loop that runs
//! the kernels (an executor). Drivers take validated geometries and own
//! their scratch; unsafe code stays here and in the kernels.

pub(crate) mod conv;
