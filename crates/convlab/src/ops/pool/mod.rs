//! Pooling (D2L 6.5) over one, two or three spatial axes, exact to
//! PyTorch's CPU kernels: max pooling (with `return_indices`), average,
//! power-average (Lp) and adaptive pooling, max unpooling and fractional
//! max pooling, each forward and backward side by side.
//!
//! ```
//! use convlab::{ops::pool::{max_pool2d, max_pool3d, MaxPool2dParams, MaxPool3dParams}, Tensor};
//! let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
//! let y = max_pool2d(&x, &MaxPool2dParams::new(3).padding(1).stride(2))?;
//! assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0]);
//! let v = Tensor::arange(64.0)?.reshape(&[1, 4, 4, 4])?; // (C, D, H, W)
//! let y = max_pool3d(&v, &MaxPool3dParams::new(2))?;
//! assert_eq!(y.data(), &[21.0, 23.0, 29.0, 31.0, 53.0, 55.0, 61.0, 63.0]);
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! Each op has a generic form over the rank (`max_pool::<N>`, taking
//! [`MaxPoolParams<N>`]) and PyTorch's names (`max_pool1d`, `max_pool2d`,
//! `max_pool3d`). Parameters are signed ([`Spatial`], [`OutputSize`]) and
//! validated once, into a [`PoolGeometry`] (a 2-D pooling is the 3-D one
//! with a unit depth) or an [`AdaptiveGeometry`]; the drivers and kernels
//! below trust it. The definitions every fast path is tested against are
//! the plain loops of `convlab::testing::pool`.
//!
//! - [`params`]: the parameter types and their validation;
//! - [`max`], [`avg`], [`lp`], [`adaptive`], [`unpool`], [`fractional`]:
//!   the ops;
//! - `drive`: how planes are split over threads (the one place that does).

pub mod adaptive;
pub mod avg;
mod drive;
pub mod fractional;
pub mod lp;
pub mod max;
pub mod params;
pub mod unpool;

pub use adaptive::{
    adaptive_avg_pool, adaptive_avg_pool1d, adaptive_avg_pool1d_backward, adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward, adaptive_avg_pool3d, adaptive_avg_pool3d_backward,
    adaptive_avg_pool_backward, adaptive_max_pool, adaptive_max_pool1d,
    adaptive_max_pool1d_backward, adaptive_max_pool2d, adaptive_max_pool2d_backward,
    adaptive_max_pool3d, adaptive_max_pool3d_backward, adaptive_max_pool_backward,
    AdaptiveGeometry,
};
pub use avg::{
    avg_pool, avg_pool1d, avg_pool1d_backward, avg_pool2d, avg_pool2d_backward, avg_pool3d,
    avg_pool3d_backward, avg_pool_backward,
};
pub use fractional::{
    fractional_max_pool, fractional_max_pool2d, fractional_max_pool2d_backward,
    fractional_max_pool3d, fractional_max_pool3d_backward, fractional_max_pool_backward,
    fractional_random_samples, FractionalMaxPool2dParams, FractionalMaxPool3dParams,
    FractionalMaxPoolParams, FractionalOutput,
};
pub use lp::{
    lp_pool, lp_pool1d, lp_pool1d_backward, lp_pool2d, lp_pool2d_backward, lp_pool3d,
    lp_pool3d_backward, lp_pool_backward, LpPool1dParams, LpPool2dParams, LpPool3dParams,
    LpPoolParams,
};
pub use max::{
    max_pool, max_pool1d, max_pool1d_backward, max_pool1d_with_indices, max_pool2d,
    max_pool2d_backward, max_pool2d_with_indices, max_pool3d, max_pool3d_backward,
    max_pool3d_with_indices, max_pool_backward, max_pool_with_indices,
};
pub use params::{
    AvgDivisor, AvgPool1dParams, AvgPool2dParams, AvgPool3dParams, AvgPoolParams, IntoDivisor,
    MaxPool1dParams, MaxPool2dParams, MaxPool3dParams, MaxPoolParams, OutputSize, PoolInt, Spatial,
};
pub use unpool::{
    max_unpool, max_unpool1d, max_unpool1d_backward, max_unpool2d, max_unpool2d_backward,
    max_unpool3d, max_unpool3d_backward, max_unpool_backward, MaxUnpool1dParams, MaxUnpool2dParams,
    MaxUnpool3dParams, MaxUnpoolParams,
};

pub use crate::shape::{AxisWindow, PoolAxis, PoolGeometry};

use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::shape::{pool_out_len, spatial_axis_names};

/// A pooling input of `rank` spatial axes split into `(batched, n, c,
/// spatial)`, `spatial` padded with leading 1s to three axes. PyTorch
/// takes `(N, C, *spatial)` or an unbatched `(C, *spatial)`; only the
/// batch may be empty.
pub(crate) fn split_input(
    op: &'static str,
    what: &str,
    shape: &[usize],
    rank: usize,
) -> Result<(bool, usize, usize, [usize; 3])> {
    debug_assert!((1..=3).contains(&rank));
    let (batched, n, rest) = if shape.len() == rank + 2 {
        (true, shape[0], &shape[1..])
    } else if shape.len() == rank + 1 {
        (false, 1, shape)
    } else {
        let names = ["L", "H, W", "D, H, W"][rank - 1];
        return Err(Error::shape(
            op,
            format!(
                "{what} must be {}-D (C, {names}) or {}-D (N, C, {names}) but has shape {}",
                rank + 1,
                rank + 2,
                Dims(shape)
            ),
        ));
    };
    if rest.contains(&0) {
        return Err(Error::shape(
            op,
            format!(
                "{what} of shape {} is empty: only the batch dimension may be 0",
                Dims(shape)
            ),
        ));
    }
    // Shapes given to a backward are user input, not an existing tensor.
    numel_or_err(op, shape)?;
    let mut spatial = [1; 3];
    spatial[3 - rank..].copy_from_slice(&rest[1..]);
    Ok((batched, n, rest[0], spatial))
}

/// `[n, c, h, w]`, or `[c, h, w]` for an unbatched tensor.
pub(crate) fn batch_shape(batched: bool, n: usize, c: usize, h: usize, w: usize) -> Vec<usize> {
    if batched {
        vec![n, c, h, w]
    } else {
        vec![c, h, w]
    }
}

/// The validated geometry of a pooling over the last `rank` axes of
/// `input_shape`; `k, s, p, d` hold one value per spatial axis (the last
/// `rank` of three are used), kernel, stride and dilation at least 1.
/// PyTorch's `pool2d_shape_check` compares the padding with the raw kernel
/// (`k/2`), not the dilated one, so the same padding is accepted or
/// refused here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pool_geometry(
    op: &'static str,
    input_shape: &[usize],
    rank: usize,
    k: [usize; 3],
    s: [usize; 3],
    p: [usize; 3],
    d: [usize; 3],
    ceil_mode: bool,
) -> Result<PoolGeometry> {
    let axes = 3 - rank..3;
    if axes.clone().any(|a| p[a] > k[a] / 2) {
        return Err(Error::param(
            op,
            "padding",
            format!(
                "{} must be at most half the kernel size {}",
                show(&p[axes.clone()]),
                show(&k[axes.clone()])
            ),
        ));
    }
    let (batched, n, c, len) = split_input(op, "input", input_shape, rank)?;
    let mut g = PoolGeometry {
        batched,
        n,
        c,
        rank,
        axes: [crate::shape::PoolAxis::UNIT; 3],
    };
    for (a, name) in axes.zip(spatial_axis_names(rank)) {
        let out = pool_out_len(op, name, len[a], k[a], s[a], p[a], d[a], ceil_mode)?;
        g.axes[a] = PoolAxis {
            len: len[a],
            out,
            kernel: k[a],
            stride: s[a],
            padding: p[a],
            dilation: d[a],
        };
    }
    numel_or_err(op, &g.out_shape())?;
    Ok(g)
}

/// Values of the spatial axes as PyTorch prints them: `3` when all are
/// equal, else `(3, 2)`.
pub(crate) fn show<T: PartialEq + std::fmt::Display>(v: &[T]) -> String {
    match v {
        [first, rest @ ..] if rest.iter().all(|x| x == first) => first.to_string(),
        _ => format!(
            "({})",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A `grad_output` of the forward output's shape, or an error naming both.
pub(crate) fn check_grad_output(
    op: &'static str,
    input_shape: &[usize],
    expected: &[usize],
    grad_output: &crate::tensor::Tensor,
) -> Result<()> {
    if grad_output.shape() != expected {
        return Err(Error::shape(
            op,
            format!(
                "grad_output has shape {} but the output for input shape {} is {}",
                Dims(grad_output.shape()),
                Dims(input_shape),
                Dims(expected)
            ),
        ));
    }
    Ok(())
}

/// `zeros_f32` for index buffers: a `usize` costs as much as
/// `size_of::<usize>() / 4` f32 values under the memory limit.
pub(crate) fn zeros_index(op: &'static str, elems: usize) -> Result<Vec<usize>> {
    let as_f32 = elems
        .checked_mul(std::mem::size_of::<usize>() / 4)
        .ok_or_else(|| Error::too_large(op, format!("{elems} indices overflow usize bytes")))?;
    memory::check_f32(op, as_f32)?;
    Ok(vec![0; elems])
}

/// The windows of one plane along its three axes (depth, rows, columns),
/// however they were made (a sliding kernel, adaptive or fractional bins):
/// what the plane drivers and kernels run on.
pub(crate) struct PlaneWindows {
    /// Input lengths: depth, height, width.
    pub len: [usize; 3],
    /// The windows of each axis, in output order.
    pub wins: [Vec<AxisWindow>; 3],
    /// The spacing of the taps along each axis.
    pub dilation: [usize; 3],
    /// `(kernel, stride, padding)` of the width axis when its windows are
    /// one kernel sliding at one stride, else `kernels::pool::IRREGULAR`:
    /// whole windows of common shapes take a specialised pass.
    pub width_kernel: (usize, usize, usize),
}

impl PlaneWindows {
    /// The windows of a sliding-window pooling.
    pub fn of(g: &PoolGeometry) -> PlaneWindows {
        let [d, h, w] = g.axes;
        PlaneWindows {
            len: [d.len, h.len, w.len],
            wins: [d.windows(), h.windows(), w.windows()],
            dilation: [d.dilation, h.dilation, w.dilation],
            width_kernel: (w.kernel, w.stride, w.padding),
        }
    }
    /// Input elements per plane.
    pub fn plane_len(&self) -> usize {
        self.len.iter().product()
    }
    /// Output elements per plane.
    pub fn out_plane_len(&self) -> usize {
        self.wins.iter().map(Vec::len).product()
    }
    /// Input elements per depth slice.
    pub fn slice_len(&self) -> usize {
        self.len[1] * self.len[2]
    }
    /// Output elements per depth slice.
    pub fn out_slice_len(&self) -> usize {
        self.wins[1].len() * self.wins[2].len()
    }
}

#[cfg(test)]
mod tests;
