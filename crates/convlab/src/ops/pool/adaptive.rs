//! Adaptive pooling over one, two or three spatial axes (PyTorch's
//! `F.adaptive_avg_pool1d/2d/3d` and `F.adaptive_max_pool1d/2d/3d`): the
//! caller fixes the output size and the windows follow from it, as in
//! NiN's and ResNet's global average pooling.
//!
//! Output row `i` of `oh` pools input rows `floor(i*H/oh) .. ceil((i+1)*H/oh)`
//! ([`crate::shape::adaptive_window`]), so bins may overlap by one row when
//! `oh` does not divide `H`.
//!
//! ```
//! use convlab::{ops::pool::adaptive_avg_pool2d, Tensor};
//! let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
//! let y = adaptive_avg_pool2d(&x, 1)?;
//! assert_eq!((y.shape(), y.data()), (&[1, 1, 1, 1][..], &[7.5][..]));
//! # Ok::<(), convlab::Error>(())
//! ```

use super::avg::{avg_backward, avg_forward, AvgScales};
use super::max::{max_indexed, scatter_max_grad};
use super::params::{AvgDivisor, OutputSize};
use super::{drive, split_input, PlaneWindows};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::kernels::pool as k;
use crate::memory::{assume_written, uninit_f32};
use crate::shape::{adaptive_window, AxisWindow};
use crate::tensor::Tensor;

/// The validated geometry of an adaptive pooling over `rank` spatial axes:
/// `planes x len` in, `planes x out` out (lengths of depth, height, width;
/// 1 for the axes below the rank). An output length may be 0 (an empty
/// output, as in PyTorch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveGeometry {
    /// `false` for an input without the batch axis (then `n == 1`).
    pub batched: bool,
    pub n: usize,
    pub c: usize,
    /// The number of spatial axes, 1 to 3.
    pub rank: usize,
    /// Input lengths: depth, height, width.
    pub len: [usize; 3],
    /// Output lengths: depth, height, width.
    pub out: [usize; 3],
}

impl AdaptiveGeometry {
    /// Validate an input shape and an output size (`rank` lengths) for `op`.
    ///
    /// # Errors
    /// An input that is not `rank + 1` or `rank + 2`-D with non-empty
    /// channels and spatial axes; sizes that overflow.
    pub fn new(
        op: &'static str,
        input_shape: &[usize],
        rank: usize,
        output_size: &[usize],
    ) -> Result<Self> {
        debug_assert_eq!(output_size.len(), rank);
        let (batched, n, c, len) = split_input(op, "input", input_shape, rank)?;
        let mut out = [1; 3];
        out[3 - rank..].copy_from_slice(output_size);
        let g = AdaptiveGeometry {
            batched,
            n,
            c,
            rank,
            len,
            out,
        };
        let numel = numel_or_err(op, &g.out_shape())?;
        // The output and the per-axis bin tables (one entry per output
        // length, whatever the batch) are allocated from these sizes.
        let bins = out.iter().try_fold(0usize, |a, &o| a.checked_add(o));
        let table_bytes = bins.and_then(|b| b.checked_mul(std::mem::size_of::<AxisWindow>()));
        crate::memory::check_f32(op, numel)?;
        crate::memory::check_bytes(op, table_bytes.unwrap_or(usize::MAX))?;
        Ok(g)
    }
    /// Number of planes (`n * c`).
    pub fn planes(&self) -> usize {
        self.n * self.c
    }
    /// The output shape, of the input's rank.
    pub fn out_shape(&self) -> Vec<usize> {
        let lead = if self.batched {
            vec![self.n, self.c]
        } else {
            vec![self.c]
        };
        lead.into_iter()
            .chain(self.out[3 - self.rank..].iter().copied())
            .collect()
    }
    /// The bins of axis `a` (0 depth, 1 height, 2 width).
    pub fn windows(&self, a: usize) -> Vec<AxisWindow> {
        (0..self.out[a])
            .map(|i| adaptive_window(i, self.out[a], self.len[a]))
            .collect()
    }
    /// Every output is the mean (or max) of a whole plane.
    fn global(&self) -> bool {
        self.out == [1; 3]
    }
    fn plane_windows(&self) -> PlaneWindows {
        PlaneWindows {
            len: self.len,
            wins: [self.windows(0), self.windows(1), self.windows(2)],
            dilation: [1; 3],
            width_kernel: k::IRREGULAR,
        }
    }
}

/// Op names by spatial rank, for errors.
const AVG: [&str; 3] = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
];
const AVG_BACKWARD: [&str; 3] = [
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_backward",
];
const MAX: [&str; 3] = [
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
];
const MAX_BACKWARD: [&str; 3] = [
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d_backward",
];

/// The geometry of an adaptive pooling of `input_shape` to `output_size`.
fn geometry<const N: usize>(
    op: &'static str,
    input_shape: &[usize],
    output_size: OutputSize<N>,
) -> Result<AdaptiveGeometry> {
    let (_, _, _, len) = split_input(op, "input", input_shape, N)?;
    let out = output_size.resolve(op, &len[3 - N..])?;
    AdaptiveGeometry::new(op, input_shape, N, &out)
}

/// Adaptive average pooling over the last `N` axes of `(N, C, *spatial)`
/// or `(C, *spatial)`: the mean of each of `output_size` bins (PyTorch's
/// `F.adaptive_avg_pool1d/2d/3d`).
///
/// ```
/// use convlab::{ops::pool::adaptive_avg_pool, Tensor};
/// let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
/// let y = adaptive_avg_pool::<2>(&x, [None, Some(1)])?;
/// assert_eq!(y.shape(), &[1, 1, 4, 1]);
/// assert_eq!(y.data(), &[1.5, 5.5, 9.5, 13.5]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`AdaptiveGeometry::new`]; a negative output length.
pub fn adaptive_avg_pool<const N: usize>(
    input: &Tensor,
    output_size: impl Into<OutputSize<N>>,
) -> Result<Tensor> {
    let op = AVG[N - 1];
    let g = geometry(op, input.shape(), output_size.into())?;
    adaptive_avg_forward(op, &g, input)
}

/// Gradient of [`adaptive_avg_pool`]; the output size is read from
/// `grad_output`'s spatial axes.
///
/// # Errors
/// `input_shape` invalid, or `grad_output` of another rank, batch or
/// channels.
pub fn adaptive_avg_pool_backward<const N: usize>(
    input_shape: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    let op = AVG_BACKWARD[N - 1];
    let g = geometry_from_grad(op, N, input_shape, grad_output)?;
    adaptive_avg_backward(op, &g, input_shape, grad_output)
}

/// Adaptive max pooling (PyTorch's `F.adaptive_max_pool1d/2d/3d(...,
/// return_indices=True)`): the maximum of each bin and its flat index in
/// the input plane. NaN wins and the first maximum wins ties, as in
/// [`super::max_pool`].
///
/// ```
/// use convlab::{ops::pool::adaptive_max_pool, Tensor};
/// let x = Tensor::arange(9.0)?.reshape(&[1, 3, 3])?;
/// let (y, idx) = adaptive_max_pool::<2>(&x, 2)?;
/// assert_eq!(y.data(), &[4.0, 5.0, 7.0, 8.0]);
/// assert_eq!(idx, vec![4, 5, 7, 8]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`AdaptiveGeometry::new`]; a negative output length. An output
/// length of 0 gives an empty output.
pub fn adaptive_max_pool<const N: usize>(
    input: &Tensor,
    output_size: impl Into<OutputSize<N>>,
) -> Result<(Tensor, Vec<usize>)> {
    let op = MAX[N - 1];
    let g = geometry(op, input.shape(), output_size.into())?;
    max_indexed(op, &g.plane_windows(), &g.out_shape(), input)
}

/// Gradient of [`adaptive_max_pool`]: the scatter-add through `indices`
/// of [`super::max_pool_backward`].
///
/// # Errors
/// As [`super::max_pool_backward`].
pub fn adaptive_max_pool_backward<const N: usize>(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    scatter_max_grad(MAX_BACKWARD[N - 1], N, input_shape, indices, grad_output)
}

/// PyTorch's `F.adaptive_avg_pool1d`: [`adaptive_avg_pool`].
///
/// # Errors
/// See [`adaptive_avg_pool`].
pub fn adaptive_avg_pool1d(
    input: &Tensor,
    output_size: impl Into<OutputSize<1>>,
) -> Result<Tensor> {
    adaptive_avg_pool(input, output_size)
}
/// PyTorch's `F.adaptive_avg_pool2d`: [`adaptive_avg_pool`].
///
/// ```
/// use convlab::{ops::pool::adaptive_avg_pool2d, Tensor};
/// let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
/// let y = adaptive_avg_pool2d(&x, 1)?;
/// assert_eq!((y.shape(), y.data()), (&[1, 1, 1, 1][..], &[7.5][..]));
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`adaptive_avg_pool`].
pub fn adaptive_avg_pool2d(
    input: &Tensor,
    output_size: impl Into<OutputSize<2>>,
) -> Result<Tensor> {
    adaptive_avg_pool(input, output_size)
}
/// PyTorch's `F.adaptive_avg_pool3d`: [`adaptive_avg_pool`].
///
/// # Errors
/// See [`adaptive_avg_pool`].
pub fn adaptive_avg_pool3d(
    input: &Tensor,
    output_size: impl Into<OutputSize<3>>,
) -> Result<Tensor> {
    adaptive_avg_pool(input, output_size)
}
/// Gradient of [`adaptive_avg_pool1d`]: [`adaptive_avg_pool_backward`].
///
/// # Errors
/// See [`adaptive_avg_pool_backward`].
pub fn adaptive_avg_pool1d_backward(input_shape: &[usize], grad_output: &Tensor) -> Result<Tensor> {
    adaptive_avg_pool_backward::<1>(input_shape, grad_output)
}
/// Gradient of [`adaptive_avg_pool2d`]: [`adaptive_avg_pool_backward`].
///
/// # Errors
/// See [`adaptive_avg_pool_backward`].
pub fn adaptive_avg_pool2d_backward(input_shape: &[usize], grad_output: &Tensor) -> Result<Tensor> {
    adaptive_avg_pool_backward::<2>(input_shape, grad_output)
}
/// Gradient of [`adaptive_avg_pool3d`]: [`adaptive_avg_pool_backward`].
///
/// # Errors
/// See [`adaptive_avg_pool_backward`].
pub fn adaptive_avg_pool3d_backward(input_shape: &[usize], grad_output: &Tensor) -> Result<Tensor> {
    adaptive_avg_pool_backward::<3>(input_shape, grad_output)
}
/// PyTorch's `F.adaptive_max_pool1d(..., return_indices=True)`:
/// [`adaptive_max_pool`].
///
/// # Errors
/// See [`adaptive_max_pool`].
pub fn adaptive_max_pool1d(
    input: &Tensor,
    output_size: impl Into<OutputSize<1>>,
) -> Result<(Tensor, Vec<usize>)> {
    adaptive_max_pool(input, output_size)
}
/// PyTorch's `F.adaptive_max_pool2d(..., return_indices=True)`:
/// [`adaptive_max_pool`].
///
/// # Errors
/// See [`adaptive_max_pool`].
pub fn adaptive_max_pool2d(
    input: &Tensor,
    output_size: impl Into<OutputSize<2>>,
) -> Result<(Tensor, Vec<usize>)> {
    adaptive_max_pool(input, output_size)
}
/// PyTorch's `F.adaptive_max_pool3d(..., return_indices=True)`:
/// [`adaptive_max_pool`].
///
/// # Errors
/// See [`adaptive_max_pool`].
pub fn adaptive_max_pool3d(
    input: &Tensor,
    output_size: impl Into<OutputSize<3>>,
) -> Result<(Tensor, Vec<usize>)> {
    adaptive_max_pool(input, output_size)
}
/// Gradient of [`adaptive_max_pool1d`]: [`adaptive_max_pool_backward`].
///
/// # Errors
/// See [`adaptive_max_pool_backward`].
pub fn adaptive_max_pool1d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    adaptive_max_pool_backward::<1>(input_shape, indices, grad_output)
}
/// Gradient of [`adaptive_max_pool2d`]: [`adaptive_max_pool_backward`].
///
/// # Errors
/// See [`adaptive_max_pool_backward`].
pub fn adaptive_max_pool2d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    adaptive_max_pool_backward::<2>(input_shape, indices, grad_output)
}
/// Gradient of [`adaptive_max_pool3d`]: [`adaptive_max_pool_backward`].
///
/// # Errors
/// See [`adaptive_max_pool_backward`].
pub fn adaptive_max_pool3d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    adaptive_max_pool_backward::<3>(input_shape, indices, grad_output)
}

/// Adaptive average pooling of any rank: one mean per plane on the global
/// kernels, else the two-pass average over the bins.
pub(crate) fn adaptive_avg_forward(
    op: &'static str,
    g: &AdaptiveGeometry,
    input: &Tensor,
) -> Result<Tensor> {
    let shape = g.out_shape();
    let mut out = uninit_f32(op, numel_or_err(op, &shape)?)?;
    if g.global() {
        let plane: usize = g.len.iter().product();
        let out = crate::memory::zero_fill(&mut out);
        let lead = k::global_avg_aligned_start(plane, input.data(), g.planes());
        drive::for_global_groups(input.data(), plane, out, 1, lead, |x, y| {
            k::global_avg_pool_planes(plane, x, y)
        });
    } else {
        let pw = g.plane_windows();
        avg_forward(
            &pw,
            &AvgScales::new(&pw, AvgDivisor::ExcludePad),
            input.data(),
            &mut out,
        );
    }
    // SAFETY: written by the zero fill, or by `avg_forward` (every element).
    Tensor::from_vec(unsafe { assume_written(out) }, &shape)
}

/// The gradient of adaptive average pooling of any rank.
pub(crate) fn adaptive_avg_backward(
    op: &'static str,
    g: &AdaptiveGeometry,
    input_shape: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    let mut buf = uninit_f32(op, numel_or_err(op, input_shape)?)?;
    if g.global() {
        let plane: usize = g.len.iter().product();
        drive::for_global_groups(grad_output.data(), 1, &mut buf, plane, 0, |gy, gx| {
            k::global_avg_pool_backward_planes(plane, gy, gx)
        });
    } else {
        let pw = g.plane_windows();
        let scales = AvgScales::new(&pw, AvgDivisor::ExcludePad);
        avg_backward(&pw, &scales, grad_output.data(), &mut buf);
    }
    // SAFETY: the global kernel writes all `plane` values of each plane
    // (grad_output has one value per plane); `avg_backward` every element.
    Tensor::from_vec(unsafe { assume_written(buf) }, input_shape)
}

/// The geometry whose output is `grad_output`'s spatial shape.
pub(crate) fn geometry_from_grad(
    op: &'static str,
    rank: usize,
    input_shape: &[usize],
    grad_output: &Tensor,
) -> Result<AdaptiveGeometry> {
    let (batched, n, c, _) = split_input(op, "input_shape", input_shape, rank)?;
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
    AdaptiveGeometry::new(op, input_shape, rank, &gs[lead.len()..])
}
