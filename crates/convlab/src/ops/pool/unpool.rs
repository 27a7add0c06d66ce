//! Max unpooling over one, two or three spatial axes
//! (`F.max_unpool1d/2d/3d`): each input value written at its index in a
//! zeroed output plane, the partial inverse of max pooling. Its gradient
//! gathers `grad_output` at the indices.

use super::params::Spatial;
use super::{drive, show, split_input};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory::{self, assume_written, uninit_f32};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// Op names by spatial rank, for errors.
const NAMES: [&str; 3] = ["max_unpool1d", "max_unpool2d", "max_unpool3d"];
const BACKWARD: [&str; 3] = [
    "max_unpool1d_backward",
    "max_unpool2d_backward",
    "max_unpool3d_backward",
];

/// Parameters of max unpooling over `N` spatial axes
/// (`nn.MaxUnpool1d/2d/3d`): those of the max pooling it inverts, which
/// give the default output size `(in - 1) * stride - 2 * padding + kernel`.
///
/// ```
/// use convlab::ops::pool::MaxUnpool2dParams;
/// let p = MaxUnpool2dParams::new(2);
/// assert_eq!(p.output_lengths("max_unpool2d", &[1, 1, 3, 4], None)?, [6, 8]);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxUnpoolParams<const N: usize> {
    /// The pooling's window size.
    pub kernel_size: Spatial<N>,
    /// The pooling's stride; `None` means `kernel_size`.
    pub stride: Option<Spatial<N>>,
    /// The pooling's padding (PyTorch takes any value here).
    pub padding: Spatial<N>,
}

/// [`MaxUnpoolParams`] of `F.max_unpool1d`.
pub type MaxUnpool1dParams = MaxUnpoolParams<1>;
/// [`MaxUnpoolParams`] of `F.max_unpool2d`.
pub type MaxUnpool2dParams = MaxUnpoolParams<2>;
/// [`MaxUnpoolParams`] of `F.max_unpool3d`.
pub type MaxUnpool3dParams = MaxUnpoolParams<3>;

impl<const N: usize> MaxUnpoolParams<N> {
    /// A `kernel_size` window, stride = kernel, padding 0.
    pub fn new(kernel_size: impl Into<Spatial<N>>) -> Self {
        MaxUnpoolParams {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: Spatial([0; N]),
        }
    }
    /// Set the stride.
    pub fn stride(mut self, stride: impl Into<Spatial<N>>) -> Self {
        self.stride = Some(stride.into());
        self
    }
    /// Set the padding.
    pub fn padding(mut self, padding: impl Into<Spatial<N>>) -> Self {
        self.padding = padding.into();
        self
    }

    /// The output's spatial lengths for an input of `input_shape`: the
    /// default, or `output_size` (`N` lengths, or `N + 2` of which the last
    /// `N` count), which PyTorch accepts strictly between `default -
    /// stride` and `default + stride` on each axis.
    ///
    /// # Errors
    /// A kernel or stride below 1; an input of another rank or with an
    /// empty non-batch axis; an `output_size` of another length or out of
    /// range; a negative or overflowing length.
    pub fn output_lengths(
        &self,
        op: &'static str,
        input_shape: &[usize],
        output_size: Option<&[i64]>,
    ) -> Result<[usize; N]> {
        let k = self.kernel_size.axes(op, "kernel_size", 1, 1)?;
        let s = match self.stride {
            Some(s) => s.axes(op, "stride", 1, 1)?,
            None => k,
        };
        let (_, _, _, len) = split_input(op, "input", input_shape, N)?;
        let mut default = [0i128; N];
        for (a, d) in default.iter_mut().enumerate() {
            let axis = 3 - N + a;
            *d = (len[axis] as i128 - 1) * s[axis] as i128 - 2 * self.padding.0[a] as i128
                + k[axis] as i128;
        }
        let wanted: Vec<i128> = match output_size {
            None => default.to_vec(),
            Some(size) => {
                let size = match size.len() {
                    n if n == N => size,
                    n if n == N + 2 => &size[2..],
                    n => {
                        return Err(Error::param(
                            op,
                            "output_size",
                            format!("has {n} elements: must have {N} or {}", N + 2),
                        ))
                    }
                };
                for (a, (&v, &d)) in size.iter().zip(&default).enumerate() {
                    let stride = s[3 - N + a] as i128;
                    if !(d - stride < v as i128 && (v as i128) < d + stride) {
                        return Err(Error::param(
                            op,
                            "output_size",
                            format!(
                                "{} is invalid: dim {a} must be between {} and {} (exclusive)",
                                show(size),
                                d - stride,
                                d + stride
                            ),
                        ));
                    }
                }
                size.iter().map(|&v| v as i128).collect()
            }
        };
        let mut out = [0; N];
        for (o, &v) in out.iter_mut().zip(&wanted) {
            *o = usize::try_from(v).map_err(|_| {
                Error::shape(
                    op,
                    format!(
                        "output size {} for input {} is invalid: lengths must be non-negative and fit in memory",
                        show(&wanted),
                        Dims(input_shape)
                    ),
                )
            })?;
        }
        Ok(out)
    }
}

/// Max unpooling over the last `N` axes of `(N, C, *spatial)` or `(C,
/// *spatial)` (PyTorch's `F.max_unpool1d/2d/3d`): output plane values are
/// 0 but at `indices` (the flat in-plane positions max pooling returned,
/// one per input element), which receive the input values in order (a
/// repeated index keeps the last).
///
/// ```
/// use convlab::{ops::pool::{max_pool2d_with_indices, max_unpool, MaxPool2dParams, MaxUnpool2dParams}, Tensor};
/// let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
/// let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2))?;
/// let back = max_unpool(&y, &idx, &MaxUnpool2dParams::new(2), None)?;
/// assert_eq!(back.data()[5], 5.0);
/// assert_eq!(back.data()[4], 0.0);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`MaxUnpoolParams::output_lengths`]; `indices` of another length
/// than the input; an index outside the output plane.
pub fn max_unpool<const N: usize>(
    input: &Tensor,
    indices: &[usize],
    p: &MaxUnpoolParams<N>,
    output_size: Option<&[i64]>,
) -> Result<Tensor> {
    let op = NAMES[N - 1];
    let out = p.output_lengths(op, input.shape(), output_size)?;
    check_indices_len(op, input.shape(), indices.len())?;
    let rank = input.ndim() - N;
    let shape: Vec<usize> = input.shape()[..rank].iter().chain(&out).copied().collect();
    let (plane, out_plane) = (
        input.shape()[rank..].iter().product::<usize>(),
        out.iter().product::<usize>(),
    );
    let mut buf = uninit_f32(op, numel_or_err(op, &shape)?)?;
    let all_inside = if plane == 0 || out_plane == 0 || input.numel() == 0 {
        memory::zero_fill(&mut buf);
        input.numel() == 0
    } else {
        drive::all_plane_groups(
            &mut buf,
            out_plane,
            indices,
            input.data(),
            plane,
            |y, idx, x| unpool_planes(out_plane, plane, idx, x, y),
        )
    };
    if !all_inside {
        return Err(invalid_index(op, indices, out_plane, &out));
    }
    // SAFETY: every output plane was zeroed, by the fill above or by
    // `unpool_planes` (the groups cover the buffer).
    Tensor::from_vec(unsafe { assume_written(buf) }, &shape)
}

/// Gradient of [`max_unpool`] with respect to its input: each input
/// element's gradient is `grad_output` at its index in its plane.
///
/// # Errors
/// `input_shape` not of rank `N + 1` or `N + 2` (or with an empty
/// non-batch axis); `grad_output` of another rank, batch or channels;
/// `indices` of another length than the input; an index outside the
/// `grad_output` plane.
pub fn max_unpool_backward<const N: usize>(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    let op = BACKWARD[N - 1];
    let (batched, n, c, len) = split_input(op, "input_shape", input_shape, N)?;
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
    check_indices_len(op, input_shape, indices.len())?;
    let plane: usize = len.iter().product();
    let out_plane: usize = gs[lead.len()..].iter().product();
    let mut grad_input = memory::zeros_f32(op, numel_or_err(op, input_shape)?)?;
    let g = grad_output.data();
    let mut bad = None;
    for (p, (gx, idx)) in grad_input
        .chunks_exact_mut(plane)
        .zip(indices.chunks_exact(plane))
        .enumerate()
    {
        let gy = &g[p * out_plane..][..out_plane];
        for (v, &i) in gx.iter_mut().zip(idx) {
            match gy.get(i) {
                Some(&gv) => *v = gv,
                None => bad = bad.or(Some(i)),
            }
        }
    }
    if bad.is_some() {
        let out: Vec<usize> = gs[lead.len()..].to_vec();
        return Err(invalid_index(op, indices, out_plane, &out));
    }
    Tensor::from_vec(grad_input, input_shape)
}

/// PyTorch's "Expected shape of indices to be same as that of the input".
fn check_indices_len(op: &'static str, input_shape: &[usize], indices: usize) -> Result<()> {
    let numel = numel_or_err(op, input_shape)?;
    if indices != numel {
        return Err(Error::shape(
            op,
            format!(
                "{indices} indices given for input of shape {} ({numel} values): indices must have the input's shape",
                Dims(input_shape)
            ),
        ));
    }
    Ok(())
}

/// PyTorch's "Found an invalid max index".
fn invalid_index(op: &'static str, indices: &[usize], out_plane: usize, out: &[usize]) -> Error {
    let bad = indices
        .iter()
        .find(|&&i| i >= out_plane)
        .copied()
        .unwrap_or(0);
    let dims: Vec<String> = out.iter().map(|d| d.to_string()).collect();
    Error::shape(
        op,
        format!(
            "found an invalid max index {bad}: the output planes are of size {}",
            dims.join("x")
        ),
    )
}

/// Zero each `out_plane`-float plane of `y` and write input plane `x`
/// (`plane` values) at `idx`, in order; `false` if an index is outside
/// its plane.
fn unpool_planes(
    out_plane: usize,
    plane: usize,
    idx: &[usize],
    x: &[f32],
    y: &mut [MaybeUninit<f32>],
) -> bool {
    let mut inside = true;
    for ((y, idx), x) in y
        .chunks_exact_mut(out_plane)
        .zip(idx.chunks_exact(plane))
        .zip(x.chunks_exact(plane))
    {
        let y = memory::zero_fill(y);
        for (&i, &v) in idx.iter().zip(x) {
            match y.get_mut(i) {
                Some(o) => *o = v,
                None => inside = false,
            }
        }
    }
    inside
}

/// PyTorch's `F.max_unpool1d`: [`max_unpool`].
///
/// # Errors
/// See [`max_unpool`].
pub fn max_unpool1d(
    input: &Tensor,
    indices: &[usize],
    p: &MaxUnpool1dParams,
    output_size: Option<&[i64]>,
) -> Result<Tensor> {
    max_unpool(input, indices, p, output_size)
}
/// PyTorch's `F.max_unpool2d`: [`max_unpool`].
///
/// # Errors
/// See [`max_unpool`].
pub fn max_unpool2d(
    input: &Tensor,
    indices: &[usize],
    p: &MaxUnpool2dParams,
    output_size: Option<&[i64]>,
) -> Result<Tensor> {
    max_unpool(input, indices, p, output_size)
}
/// PyTorch's `F.max_unpool3d`: [`max_unpool`].
///
/// # Errors
/// See [`max_unpool`].
pub fn max_unpool3d(
    input: &Tensor,
    indices: &[usize],
    p: &MaxUnpool3dParams,
    output_size: Option<&[i64]>,
) -> Result<Tensor> {
    max_unpool(input, indices, p, output_size)
}
/// Gradient of [`max_unpool1d`]: [`max_unpool_backward`].
///
/// # Errors
/// See [`max_unpool_backward`].
pub fn max_unpool1d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    max_unpool_backward::<1>(input_shape, indices, grad_output)
}
/// Gradient of [`max_unpool2d`]: [`max_unpool_backward`].
///
/// # Errors
/// See [`max_unpool_backward`].
pub fn max_unpool2d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    max_unpool_backward::<2>(input_shape, indices, grad_output)
}
/// Gradient of [`max_unpool3d`]: [`max_unpool_backward`].
///
/// # Errors
/// See [`max_unpool_backward`].
pub fn max_unpool3d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    max_unpool_backward::<3>(input_shape, indices, grad_output)
}
