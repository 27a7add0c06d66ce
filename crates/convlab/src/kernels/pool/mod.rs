//! Pooling kernels on raw plane slices. Windows come precomputed
//! ([`crate::shape::AxisWindow`]) and trusted; nothing here validates.
//!
//! - [`two_pass`]: any window (kernel, stride, padding, dilation, adaptive
//!   bins): reduce the window's rows elementwise along the whole input
//!   width (vectorised, no index bookkeeping), then each output's columns
//!   in that one row; max and average, and the average's backward.
//! - [`indexed`]: max pooling with the index of each maximum, any window.
//! - [`inside`]: max pooling with indices over windows wholly inside the
//!   input, and `AvgPool2d(2)`, on AVX-512 where it pays.
//! - [`global`]: one mean per plane (global average pooling) and its
//!   gradient.

pub(crate) mod global;
pub(crate) mod indexed;
pub(crate) mod inside;
pub(crate) mod two_pass;

pub(crate) use global::{
    global_avg_aligned_start, global_avg_pool_backward_planes, global_avg_pool_planes,
};
pub(crate) use indexed::max_pool_indexed_plane;
pub(crate) use inside::{avg_pool2d_2x2s2, avg_pool2d_2x2s2_supported, max_pool2d_inside};
pub(crate) use two_pass::{
    avg_pool2d_backward_plane, avg_pool2d_plane, max_pool2d_plane, max_slices, sum_slices,
    IRREGULAR,
};
