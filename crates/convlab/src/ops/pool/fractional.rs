//! Fractional max pooling over two or three spatial axes
//! (`F.fractional_max_pool2d/3d`, Graham 2014): windows of a fixed size
//! whose starts follow a pseudo-random sequence, one per plane, drawn from
//! `_random_samples` (one uniform value in `[0, 1)` per plane and axis).
//!
//! PyTorch's interval rule, in f32 as it computes it: for output `i <
//! out - 1` along an axis of length `len` with pool size `k` and sample
//! `u`, `alpha = (len - k) / (out - 1)` and the window starts at
//! `int((i + u) * alpha) - int(u * alpha)`; the last window starts at
//! `len - k`. In 2-D `u[0]` drives the width and `u[1]` the height; in 3-D
//! `u[0], u[1], u[2]` drive depth, height and width.

use super::max::scatter_max_grad;
use super::params::Spatial;
use super::{drive, split_input, zeros_index};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::kernels::pool as k;
use crate::memory;
use crate::shape::AxisWindow;
use crate::tensor::{Rng64, Tensor};

/// Op names by spatial rank (2 and 3), for errors.
const NAMES: [&str; 3] = ["", "fractional_max_pool2d", "fractional_max_pool3d"];
const BACKWARD: [&str; 3] = [
    "",
    "fractional_max_pool2d_backward",
    "fractional_max_pool3d_backward",
];

/// How the output size of a fractional max pooling is given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FractionalOutput<const N: usize> {
    /// The output lengths.
    Size(Spatial<N>),
    /// A fraction of the input lengths: `int(len * ratio)` per axis.
    Ratio([f64; N]),
}

/// Parameters of fractional max pooling over `N` (2 or 3) spatial axes
/// (`F.fractional_max_pool2d/3d`); PyTorch requires an output size or an
/// output ratio, which [`FractionalOutput`] makes one of.
///
/// ```
/// use convlab::ops::pool::FractionalMaxPool2dParams;
/// let p = FractionalMaxPool2dParams::with_output_ratio(3, [0.5, 0.5]);
/// assert_eq!(p.output_lengths("f", &[1, 1, 9, 8])?, [4, 4]);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FractionalMaxPoolParams<const N: usize> {
    /// Window size.
    pub kernel_size: Spatial<N>,
    /// The output lengths or ratios.
    pub output: FractionalOutput<N>,
}

/// [`FractionalMaxPoolParams`] of `F.fractional_max_pool2d`.
pub type FractionalMaxPool2dParams = FractionalMaxPoolParams<2>;
/// [`FractionalMaxPoolParams`] of `F.fractional_max_pool3d`.
pub type FractionalMaxPool3dParams = FractionalMaxPoolParams<3>;

impl<const N: usize> FractionalMaxPoolParams<N> {
    /// `kernel_size` windows giving an output of `output_size`.
    pub fn with_output_size(
        kernel_size: impl Into<Spatial<N>>,
        output_size: impl Into<Spatial<N>>,
    ) -> Self {
        FractionalMaxPoolParams {
            kernel_size: kernel_size.into(),
            output: FractionalOutput::Size(output_size.into()),
        }
    }
    /// `kernel_size` windows giving an output of `int(len * ratio)`.
    pub fn with_output_ratio(kernel_size: impl Into<Spatial<N>>, output_ratio: [f64; N]) -> Self {
        FractionalMaxPoolParams {
            kernel_size: kernel_size.into(),
            output: FractionalOutput::Ratio(output_ratio),
        }
    }

    /// The output's spatial lengths for an input of `input_shape`.
    ///
    /// # Errors
    /// A kernel below 1; an input of another rank or with an empty
    /// non-batch axis; a negative output length; a pool too large for the
    /// input (2-D: `out + k - 1 > len`; 3-D, as PyTorch: `out + k - 1 >=
    /// len`).
    pub fn output_lengths(&self, op: &'static str, input_shape: &[usize]) -> Result<[usize; N]> {
        let kernel = self.kernel_size.axes(op, "kernel_size", 1, 1)?;
        let (_, _, _, len) = split_input(op, "input", input_shape, N)?;
        let mut out = [0usize; N];
        let names = crate::shape::spatial_axis_names(N);
        for a in 0..N {
            let (len, k) = (len[3 - N + a], kernel[3 - N + a]);
            let v: i128 = match self.output {
                FractionalOutput::Size(s) => s.0[a] as i128,
                // Python's int(): toward zero; saturating for huge ratios.
                FractionalOutput::Ratio(r) => (len as f64 * r[a]) as i128,
            };
            out[a] = usize::try_from(v).map_err(|_| {
                Error::param(
                    op,
                    "output_size",
                    format!(
                        "{v} along the {} is invalid: must be non-negative",
                        names[a]
                    ),
                )
            })?;
            let reach = out[a] as u128 + k as u128 - 1;
            let too_large = if N == 2 {
                reach > len as u128
            } else {
                reach >= len as u128
            };
            if out[a] > 0 && too_large {
                return Err(Error::param(
                    op,
                    "kernel_size",
                    format!(
                        "{k} is too large relative to the input {} {len} for an output {} of {}",
                        names[a], names[a], out[a]
                    ),
                ));
            }
        }
        Ok(out)
    }
}

/// PyTorch's window starts along one axis (see the module docs), each
/// checked to leave the window inside the input.
fn intervals(
    op: &'static str,
    u: f32,
    len: usize,
    out: usize,
    k: usize,
) -> Result<Vec<AxisWindow>> {
    let mut starts = vec![0i64; out];
    if out > 1 {
        let alpha = (len - k) as f32 / (out - 1) as f32;
        let base = (u * alpha) as i64;
        for (i, s) in starts.iter_mut().take(out - 1).enumerate() {
            *s = ((i as f32 + u) * alpha) as i64 - base;
        }
    }
    if let Some(last) = starts.last_mut() {
        *last = (len - k) as i64;
    }
    starts
        .into_iter()
        .map(|s| match usize::try_from(s) {
            Ok(s) if s + k <= len => Ok(AxisWindow::span(s, k)),
            _ => Err(Error::param(
                op,
                "_random_samples",
                format!("value {u} puts a window at {s}, outside the input of length {len}"),
            )),
        })
        .collect()
}

/// Fractional max pooling over the last `N` (2 or 3) axes of `(N, C,
/// *spatial)` or `(C, *spatial)` (PyTorch's `F.fractional_max_pool2d/3d`
/// with `return_indices=True`): the maximum of each window and its flat
/// index in the input plane, windows placed by `random_samples` of shape
/// `[n, C, N]` (`n` at least the batch, 1 for an unbatched input; see
/// [`fractional_random_samples`]). NaN and ties as [`super::max_pool`].
///
/// ```
/// use convlab::{ops::pool::{fractional_max_pool, FractionalMaxPool2dParams}, Tensor};
/// let x = Tensor::arange(25.0)?.reshape(&[1, 1, 5, 5])?;
/// let u = Tensor::full(&[1, 1, 2], 0.5)?;
/// let p = FractionalMaxPool2dParams::with_output_size(2, 3);
/// let (y, idx) = fractional_max_pool(&x, &p, &u)?;
/// assert_eq!(y.data(), &[6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0]);
/// assert_eq!(idx[4], 18);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`FractionalMaxPoolParams::output_lengths`]; `random_samples` of
/// the wrong shape, or a sample that puts a window outside the input.
pub fn fractional_max_pool<const N: usize>(
    input: &Tensor,
    p: &FractionalMaxPoolParams<N>,
    random_samples: &Tensor,
) -> Result<(Tensor, Vec<usize>)> {
    const { assert!(N == 2 || N == 3, "fractional max pooling is 2-D or 3-D") };
    let op = NAMES[N - 1];
    let out = p.output_lengths(op, input.shape())?;
    let (batched, n, c, len) = split_input(op, "input", input.shape(), N)?;
    let ss = random_samples.shape();
    // PyTorch: `size(0)` at least the batch (1 unbatched), so an empty
    // batch takes samples of an empty batch too, as it draws them.
    if ss.len() != 3 || ss[1] != c || ss[2] != N || ss[0] < n {
        return Err(Error::shape(
            op,
            format!(
                "_random_samples of shape {} does not fit input {}: expected [{}, {c}, {N}] (a batch of at least the input's)",
                Dims(ss),
                Dims(input.shape()),
                n
            ),
        ));
    }
    let kernel = p.kernel_size.axes(op, "kernel_size", 1, 1)?;
    let mut full = [1usize; 3];
    full[3 - N..].copy_from_slice(&out);
    let lead = if batched { vec![n, c] } else { vec![c] };
    let shape: Vec<usize> = lead.into_iter().chain(out).collect();
    let numel = numel_or_err(op, &shape)?;
    let mut values = memory::zeros_f32(op, numel)?;
    let mut indices = zeros_index(op, numel)?;
    // Every plane's windows first (errors surface before any work).
    let mut wins = Vec::with_capacity(n * c);
    for plane in 0..n * c {
        let u = &random_samples.data()[plane * N..][..N];
        let mut axes: [Vec<AxisWindow>; 3] = [vec![AxisWindow::span(0, 1)], vec![], vec![]];
        // 2-D: u[0] drives the width, u[1] the height; 3-D: in axis order.
        for a in 3 - N..3 {
            let sample = if N == 2 { u[2 - a] } else { u[a] };
            axes[a] = intervals(op, sample, len[a], full[a], kernel[a])?;
        }
        wins.push(axes);
    }
    if numel > 0 {
        let plane: usize = len.iter().product();
        drive::for_planes_indexed(
            input.data(),
            plane,
            &mut values,
            &mut indices,
            numel / (n * c),
            0,
            |plane, x, y, idx, _| {
                let w = &wins[plane];
                k::max_pool_indexed_plane(len, [1; 3], [&w[0], &w[1], &w[2]], x, y, idx)
            },
        );
    }
    Ok((Tensor::from_vec(values, &shape)?, indices))
}

/// Gradient of [`fractional_max_pool`]: the scatter-add through `indices`
/// of [`super::max_pool_backward`].
///
/// # Errors
/// As [`super::max_pool_backward`].
pub fn fractional_max_pool_backward<const N: usize>(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    scatter_max_grad(BACKWARD[N - 1], N, input_shape, indices, grad_output)
}

/// Samples for [`fractional_max_pool`] from `rng`, as PyTorch draws them
/// when `_random_samples` is not given: `[n, C, N]` uniform in `[0, 1)`
/// (`n` = 1 for an unbatched input).
///
/// # Errors
/// An input of another rank than `N + 1` or `N + 2`.
pub fn fractional_random_samples<const N: usize>(
    input_shape: &[usize],
    rng: &mut Rng64,
) -> Result<Tensor> {
    let (_, n, c, _) = split_input("fractional_random_samples", "input", input_shape, N)?;
    Tensor::rand(&[n, c, N], rng)
}

/// PyTorch's `F.fractional_max_pool2d(..., return_indices=True)`:
/// [`fractional_max_pool`].
///
/// # Errors
/// See [`fractional_max_pool`].
pub fn fractional_max_pool2d(
    input: &Tensor,
    p: &FractionalMaxPool2dParams,
    random_samples: &Tensor,
) -> Result<(Tensor, Vec<usize>)> {
    fractional_max_pool(input, p, random_samples)
}
/// PyTorch's `F.fractional_max_pool3d(..., return_indices=True)`:
/// [`fractional_max_pool`].
///
/// # Errors
/// See [`fractional_max_pool`].
pub fn fractional_max_pool3d(
    input: &Tensor,
    p: &FractionalMaxPool3dParams,
    random_samples: &Tensor,
) -> Result<(Tensor, Vec<usize>)> {
    fractional_max_pool(input, p, random_samples)
}
/// Gradient of [`fractional_max_pool2d`]: [`fractional_max_pool_backward`].
///
/// # Errors
/// See [`fractional_max_pool_backward`].
pub fn fractional_max_pool2d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    fractional_max_pool_backward::<2>(input_shape, indices, grad_output)
}
/// Gradient of [`fractional_max_pool3d`]: [`fractional_max_pool_backward`].
///
/// # Errors
/// See [`fractional_max_pool_backward`].
pub fn fractional_max_pool3d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    fractional_max_pool_backward::<3>(input_shape, indices, grad_output)
}
