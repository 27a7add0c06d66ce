//! Max pooling over one, two or three spatial axes (`F.max_pool1d/2d/3d`,
//! with `return_indices`) and its backward, a scatter-add through the
//! indices.

use super::params::{MaxPool1dParams, MaxPool2dParams, MaxPool3dParams, MaxPoolParams};
use super::{drive, split_input, zeros_index, PlaneWindows};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::kernels::pool as k;
use crate::memory::{self, assume_written, uninit_f32};
use crate::shape::{PoolAxis, PoolGeometry};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// Op names by spatial rank, for errors.
pub(crate) const NAMES: [&str; 3] = ["max_pool1d", "max_pool2d", "max_pool3d"];
const BACKWARD: [&str; 3] = [
    "max_pool1d_backward",
    "max_pool2d_backward",
    "max_pool3d_backward",
];

/// PyTorch returns -inf and an index outside the input for a window whose
/// dilated taps all fall in the padding or past the end (e.g. length 2,
/// kernel 2, dilation 3, padding 1: taps at -1 and 2). Its backward then
/// writes out of bounds, so convlab refuses instead. With padding <= k/2
/// a window's first tap at or after 0 lies below `d`, so only `d > len`
/// can leave a window empty; the kernel then nearly spans the padded input
/// and `out` is tiny, so this loop is short even for a huge given shape.
pub(crate) fn check_windows_hold_input(op: &'static str, g: &PoolGeometry) -> Result<()> {
    if g.planes() == 0 {
        return Ok(());
    }
    let names = crate::shape::spatial_axis_names(g.rank);
    for (a, name) in g.axes[3 - g.rank..].iter().zip(names) {
        if a.dilation <= a.len {
            continue;
        }
        if let Some(o) = (0..a.out).find(|&o| a.window(o).count == 0) {
            return Err(Error::shape(
                op,
                format!(
                    "window {o} along the {name} holds no input element (input {name} {}, kernel {}, stride {}, padding {}, dilation {})",
                    a.len, a.kernel, a.stride, a.padding, a.dilation
                ),
            ));
        }
    }
    Ok(())
}

/// Max pooling over the last `N` axes of `(N, C, *spatial)` or `(C,
/// *spatial)`: the largest value of each window (PyTorch's
/// `F.max_pool1d/2d/3d`, which [`max_pool1d`], [`max_pool2d`] and
/// [`max_pool3d`] name). The output has the input's rank.
///
/// A NaN in a window wins (the last NaN, as PyTorch's
/// `if (val > maxval) || isnan(val)`); among equal maxima the first wins.
///
/// ```
/// use convlab::{ops::pool::{max_pool, MaxPool2dParams}, Tensor};
/// let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
/// let y = max_pool(&x, &MaxPool2dParams::new(3).padding(1).stride(2))?;
/// assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`MaxPoolParams::geometry`]. Unlike PyTorch, a window that holds no
/// input element at all (only possible with dilation larger than the input)
/// is an error rather than `-inf` with an out-of-range index.
pub fn max_pool<const N: usize>(input: &Tensor, p: &MaxPoolParams<N>) -> Result<Tensor> {
    let op = NAMES[N - 1];
    let g = p.geometry(op, input.shape())?;
    max_pool_values(op, &g, input)
}

/// [`max_pool`] and, for each output element, the flat index of its
/// maximum in the input plane (`(d * H + h) * W + w`), PyTorch's
/// `return_indices=True`.
///
/// ```
/// use convlab::{ops::pool::{max_pool_with_indices, MaxPool2dParams}, Tensor};
/// let x = Tensor::arange(9.0)?.reshape(&[1, 3, 3])?;
/// let (y, idx) = max_pool_with_indices(&x, &MaxPool2dParams::new(2).stride(1))?;
/// assert_eq!(y.data(), &[4.0, 5.0, 7.0, 8.0]);
/// assert_eq!(idx, vec![4, 5, 7, 8]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`max_pool`].
pub fn max_pool_with_indices<const N: usize>(
    input: &Tensor,
    p: &MaxPoolParams<N>,
) -> Result<(Tensor, Vec<usize>)> {
    let op = NAMES[N - 1];
    let g = p.geometry(op, input.shape())?;
    max_pool_indexed(op, &g, input)
}

/// Gradient of [`max_pool`] with respect to its input: each `grad_output`
/// value is added at its window's maximum (`indices` from
/// [`max_pool_with_indices`]); overlapping windows accumulate.
///
/// # Errors
/// `input_shape` not of rank `N + 1` or `N + 2`; `grad_output` of another
/// rank, batch or channel count; `indices` of the wrong length or pointing
/// outside a plane.
pub fn max_pool_backward<const N: usize>(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    scatter_max_grad(BACKWARD[N - 1], N, input_shape, indices, grad_output)
}

/// PyTorch's `F.max_pool1d` on `(N, C, L)` or `(C, L)`: [`max_pool`].
///
/// # Errors
/// See [`max_pool`].
pub fn max_pool1d(input: &Tensor, p: &MaxPool1dParams) -> Result<Tensor> {
    max_pool(input, p)
}
/// PyTorch's `F.max_pool2d` on `(N, C, H, W)` or `(C, H, W)`: [`max_pool`].
///
/// ```
/// use convlab::{ops::pool::{max_pool2d, MaxPool2dParams}, Tensor};
/// let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
/// let y = max_pool2d(&x, &MaxPool2dParams::new(3).padding(1).stride(2))?;
/// assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`max_pool`].
pub fn max_pool2d(input: &Tensor, p: &MaxPool2dParams) -> Result<Tensor> {
    max_pool(input, p)
}
/// PyTorch's `F.max_pool3d` on `(N, C, D, H, W)` or `(C, D, H, W)`:
/// [`max_pool`].
///
/// # Errors
/// See [`max_pool`].
pub fn max_pool3d(input: &Tensor, p: &MaxPool3dParams) -> Result<Tensor> {
    max_pool(input, p)
}
/// `F.max_pool1d(..., return_indices=True)`: [`max_pool_with_indices`].
///
/// # Errors
/// See [`max_pool`].
pub fn max_pool1d_with_indices(
    input: &Tensor,
    p: &MaxPool1dParams,
) -> Result<(Tensor, Vec<usize>)> {
    max_pool_with_indices(input, p)
}
/// `F.max_pool2d(..., return_indices=True)`: [`max_pool_with_indices`].
///
/// # Errors
/// See [`max_pool`].
pub fn max_pool2d_with_indices(
    input: &Tensor,
    p: &MaxPool2dParams,
) -> Result<(Tensor, Vec<usize>)> {
    max_pool_with_indices(input, p)
}
/// `F.max_pool3d(..., return_indices=True)`: [`max_pool_with_indices`].
///
/// # Errors
/// See [`max_pool`].
pub fn max_pool3d_with_indices(
    input: &Tensor,
    p: &MaxPool3dParams,
) -> Result<(Tensor, Vec<usize>)> {
    max_pool_with_indices(input, p)
}
/// Gradient of [`max_pool1d`]: [`max_pool_backward`].
///
/// # Errors
/// See [`max_pool_backward`].
pub fn max_pool1d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    max_pool_backward::<1>(input_shape, indices, grad_output)
}
/// Gradient of [`max_pool2d`]: [`max_pool_backward`].
///
/// # Errors
/// See [`max_pool_backward`].
pub fn max_pool2d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    max_pool_backward::<2>(input_shape, indices, grad_output)
}
/// Gradient of [`max_pool3d`]: [`max_pool_backward`].
///
/// # Errors
/// See [`max_pool_backward`].
pub fn max_pool3d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    max_pool_backward::<3>(input_shape, indices, grad_output)
}

/// Max pooling without indices (forward only: maxpool_3x3_s2_p1 took 22 ms
/// with them, before the two-pass kernel).
pub(crate) fn max_pool_values(
    op: &'static str,
    g: &PoolGeometry,
    input: &Tensor,
) -> Result<Tensor> {
    max_values(op, &PlaneWindows::of(g), &g.out_shape(), input)
}

/// The two-pass plane kernel on each output depth slice, whose depth taps
/// are first reduced into one slice when there are several.
pub(crate) fn max_values(
    op: &'static str,
    pw: &PlaneWindows,
    shape: &[usize],
    input: &Tensor,
) -> Result<Tensor> {
    let mut out = uninit_f32(op, numel_or_err(op, shape)?)?;
    let [deps, rows, cols] = &pw.wins;
    let (hw, ohw, w) = (pw.slice_len(), pw.out_slice_len(), pw.len[2]);
    let [dz, dy, dx] = pw.dilation;
    let depth_buf = if deps.iter().any(|d| d.count > 1) {
        hw
    } else {
        0
    };
    if !out.is_empty() {
        let kernel = |x: &[f32], y: &mut [MaybeUninit<f32>], scratch: &mut [f32]| {
            let (tmp, slice) = scratch.split_at_mut(w);
            for (dep, y) in deps.iter().zip(y.chunks_exact_mut(ohw)) {
                let src = if dep.count == 1 {
                    &x[dep.start * hw..][..hw]
                } else {
                    k::max_slices(hw, (dep.start, dep.count, dz), x, slice);
                    &slice[..hw]
                };
                k::max_pool2d_plane(w, pw.width_kernel, dy, dx, rows, cols, src, y, tmp);
            }
        };
        let (plane, out_plane) = (pw.plane_len(), pw.out_plane_len());
        drive::for_planes(
            input.data(),
            plane,
            &mut out,
            out_plane,
            w + depth_buf,
            kernel,
        );
    }
    // SAFETY: `max_pool2d_plane` writes every element of the output slice
    // it is given; the slices cover each plane, the planes cover `out`.
    Tensor::from_vec(unsafe { assume_written(out) }, shape)
}

/// Max pooling with indices: plain block reads for 2-D windows wholly
/// inside the input, else the indexed kernel on each plane.
pub(crate) fn max_pool_indexed(
    op: &'static str,
    g: &PoolGeometry,
    input: &Tensor,
) -> Result<(Tensor, Vec<usize>)> {
    let [dp, hp, wp] = g.axes;
    if dp == PoolAxis::UNIT && hp.windows_inside() && wp.windows_inside() {
        let shape = g.out_shape();
        let numel = numel_or_err(op, &shape)?;
        let mut out = memory::zeros_f32(op, numel)?;
        let mut indices = zeros_index(op, numel)?;
        k::max_pool2d_inside(
            g.planes(),
            (hp.len, wp.len),
            (hp.out, wp.out),
            (hp.kernel, wp.kernel),
            (hp.stride, wp.stride),
            input.data(),
            &mut out,
            &mut indices,
        );
        return Ok((Tensor::from_vec(out, &shape)?, indices));
    }
    max_indexed(op, &PlaneWindows::of(g), &g.out_shape(), input)
}

/// The indexed kernel on each plane, any windows.
pub(crate) fn max_indexed(
    op: &'static str,
    pw: &PlaneWindows,
    shape: &[usize],
    input: &Tensor,
) -> Result<(Tensor, Vec<usize>)> {
    let numel = numel_or_err(op, shape)?;
    let mut out = memory::zeros_f32(op, numel)?;
    let mut indices = zeros_index(op, numel)?;
    if numel > 0 {
        let wins = [&pw.wins[0][..], &pw.wins[1][..], &pw.wins[2][..]];
        drive::for_planes_indexed(
            input.data(),
            pw.plane_len(),
            &mut out,
            &mut indices,
            pw.out_plane_len(),
            0,
            |_, x, y, i, _| k::max_pool_indexed_plane(pw.len, pw.dilation, wins, x, y, i),
        );
    }
    Ok((Tensor::from_vec(out, shape)?, indices))
}

/// The max-pooling backward shared by every rank and by adaptive and
/// fractional max pooling: validate, then scatter-add through `indices`.
pub(crate) fn scatter_max_grad(
    op: &'static str,
    rank: usize,
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    let (batched, n, c, len) = split_input(op, "input_shape", input_shape, rank)?;
    let gs = grad_output.shape();
    let lead = if batched { vec![n, c] } else { vec![c] };
    if gs.len() != input_shape.len() || gs[..lead.len()] != lead[..] {
        return Err(Error::shape(
            op,
            format!(
                "grad_output of shape {} does not match input shape {}: expected the same rank, batch and channels",
                Dims(gs),
                Dims(input_shape)
            ),
        ));
    }
    if indices.len() != grad_output.numel() {
        return Err(Error::shape(
            op,
            format!(
                "{} indices given for grad_output of shape {} ({} values)",
                indices.len(),
                Dims(gs),
                grad_output.numel()
            ),
        ));
    }
    let plane: usize = len.iter().product();
    let out_plane: usize = gs[lead.len()..].iter().product();
    let mut buf = uninit_f32(op, numel_or_err(op, input_shape)?)?;
    // Each plane is zeroed just before its scatter (in cache, on the thread
    // that scatters) and indices are checked as they are used: one pass
    // over memory instead of a zero-fill, a validation scan and a scatter.
    let all_inside = if out_plane == 0 {
        memory::zero_fill(&mut buf);
        true
    } else {
        drive::all_plane_groups(
            &mut buf,
            plane,
            indices,
            grad_output.data(),
            out_plane,
            |gx, idx, gy| scatter_planes(plane, out_plane, idx, gy, gx),
        )
    };
    if !all_inside {
        let (at, bad) = indices
            .iter()
            .enumerate()
            .find(|(_, &i)| i >= plane)
            .map_or((0, 0), |(at, &i)| (at, i));
        let dims = len[3 - rank..]
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        return Err(Error::shape(
            op,
            format!(
                "index {bad} at grad_output position {at} is outside the {dims} input plane of shape {}",
                Dims(input_shape)
            ),
        ));
    }
    // SAFETY: every plane of `buf` was zeroed, by the fill above when there
    // are no outputs, else by `scatter_planes` (the groups cover `buf`:
    // `indices` and grad_output hold `planes * out_plane` values).
    Tensor::from_vec(unsafe { assume_written(buf) }, input_shape)
}

/// Zero each `plane`-float plane of `gx` and add grad_output plane `gy`
/// into it through `idx` (`out_plane` per plane), in order, as the
/// reference loop. `false` if an index is outside its plane (the planes
/// are then partly written, but all zeroed).
fn scatter_planes(
    plane: usize,
    out_plane: usize,
    idx: &[usize],
    gy: &[f32],
    gx: &mut [MaybeUninit<f32>],
) -> bool {
    let mut inside = true;
    for ((gx, idx), gy) in gx
        .chunks_exact_mut(plane)
        .zip(idx.chunks_exact(out_plane))
        .zip(gy.chunks_exact(out_plane))
    {
        let gx = memory::zero_fill(gx);
        for (&i, &g) in idx.iter().zip(gy) {
            match gx.get_mut(i) {
                Some(v) => *v += g,
                None => inside = false,
            }
        }
    }
    inside
}
