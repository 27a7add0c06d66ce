//! Average pooling over one, two or three spatial axes
//! (`F.avg_pool1d/2d/3d`) and its backward.

use super::params::{AvgDivisor, AvgPool1dParams, AvgPool2dParams, AvgPool3dParams, AvgPoolParams};
use super::{check_grad_output, drive, PlaneWindows};
use crate::error::{numel_or_err, Result};
use crate::kernels::pool as k;
use crate::memory::{self, assume_written, uninit_f32};
use crate::shape::{AxisWindow, PoolAxis, PoolGeometry};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// Op names by spatial rank, for errors.
pub(crate) const NAMES: [&str; 3] = ["avg_pool1d", "avg_pool2d", "avg_pool3d"];
const BACKWARD: [&str; 3] = [
    "avg_pool1d_backward",
    "avg_pool2d_backward",
    "avg_pool3d_backward",
];

/// Reciprocal divisors per output depth slice, row and column: every rule
/// is a product of one factor per axis (an override goes on the depth
/// axis). A per-output f64 division cost several ms of
/// avgpool_3x3_s1_p1's backward (loaded box).
pub(crate) struct AvgScales {
    pub depth: Vec<f32>,
    pub rows: Vec<f32>,
    pub cols: Vec<f32>,
}

impl AvgScales {
    pub(crate) fn new(pw: &PlaneWindows, rule: AvgDivisor) -> AvgScales {
        let axis = |wins: &[AxisWindow], first: bool| -> Vec<f32> {
            wins.iter()
                .map(|w| match rule {
                    AvgDivisor::Override(d) if first => (1.0 / d as f64) as f32,
                    AvgDivisor::Override(_) => 1.0,
                    AvgDivisor::IncludePad => (1.0 / w.padded_count as f64) as f32,
                    AvgDivisor::ExcludePad => (1.0 / w.count as f64) as f32,
                })
                .collect()
        };
        let [d, h, w] = &pw.wins;
        AvgScales {
            depth: axis(d, true),
            rows: axis(h, false),
            cols: axis(w, false),
        }
    }

    /// The row factors of each output depth slice, times its depth factor
    /// (exact in 2-D, whose one depth factor is 1 but for an override).
    fn rows_per_slice(&self) -> Vec<Vec<f32>> {
        let at = |ds: f32| self.rows.iter().map(|&r| ds * r).collect();
        self.depth.iter().map(|&ds| at(ds)).collect()
    }
}

/// Average pooling over the last `N` axes of `(N, C, *spatial)` or `(C,
/// *spatial)`: the mean of each window, divided as
/// [`AvgPoolParams::divisor`] says (PyTorch's `F.avg_pool1d/2d/3d`, which
/// [`avg_pool1d`], [`avg_pool2d`] and [`avg_pool3d`] name).
///
/// ```
/// use convlab::{ops::pool::{avg_pool, AvgPool2dParams}, Tensor};
/// let x = Tensor::arange(9.0)?.reshape(&[1, 1, 3, 3])?;
/// let y = avg_pool(&x, &AvgPool2dParams::new(2).stride(1))?;
/// assert_eq!(y.data(), &[2.0, 3.0, 5.0, 6.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`AvgPoolParams::geometry`].
pub fn avg_pool<const N: usize>(input: &Tensor, p: &AvgPoolParams<N>) -> Result<Tensor> {
    let op = NAMES[N - 1];
    let g = p.geometry(op, input.shape())?;
    avg_pool_forward(op, &g, p.divisor(), input)
}

/// Gradient of [`avg_pool`] with respect to its input: each `grad_output`
/// value, divided by its window's divisor, is added to every input element
/// of the window.
///
/// # Errors
/// Those of [`avg_pool`] for `input_shape`, and a `grad_output` whose
/// shape is not the forward output shape.
pub fn avg_pool_backward<const N: usize>(
    input_shape: &[usize],
    grad_output: &Tensor,
    p: &AvgPoolParams<N>,
) -> Result<Tensor> {
    let op = BACKWARD[N - 1];
    let g = p.geometry(op, input_shape)?;
    avg_pool_grad(op, &g, p.divisor(), grad_output)
}

/// PyTorch's `F.avg_pool1d` on `(N, C, L)` or `(C, L)`: [`avg_pool`].
///
/// # Errors
/// See [`avg_pool`].
pub fn avg_pool1d(input: &Tensor, p: &AvgPool1dParams) -> Result<Tensor> {
    avg_pool(input, p)
}
/// PyTorch's `F.avg_pool2d` on `(N, C, H, W)` or `(C, H, W)`: [`avg_pool`].
///
/// ```
/// use convlab::{ops::pool::{avg_pool2d, AvgPool2dParams}, Tensor};
/// let x = Tensor::arange(9.0)?.reshape(&[1, 1, 3, 3])?;
/// let y = avg_pool2d(&x, &AvgPool2dParams::new(2).stride(1))?;
/// assert_eq!(y.data(), &[2.0, 3.0, 5.0, 6.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`avg_pool`].
pub fn avg_pool2d(input: &Tensor, p: &AvgPool2dParams) -> Result<Tensor> {
    avg_pool(input, p)
}
/// PyTorch's `F.avg_pool3d` on `(N, C, D, H, W)` or `(C, D, H, W)`:
/// [`avg_pool`].
///
/// # Errors
/// See [`avg_pool`].
pub fn avg_pool3d(input: &Tensor, p: &AvgPool3dParams) -> Result<Tensor> {
    avg_pool(input, p)
}
/// Gradient of [`avg_pool1d`]: [`avg_pool_backward`].
///
/// # Errors
/// See [`avg_pool_backward`].
pub fn avg_pool1d_backward(
    input_shape: &[usize],
    grad_output: &Tensor,
    p: &AvgPool1dParams,
) -> Result<Tensor> {
    avg_pool_backward(input_shape, grad_output, p)
}
/// Gradient of [`avg_pool2d`]: [`avg_pool_backward`].
///
/// # Errors
/// See [`avg_pool_backward`].
pub fn avg_pool2d_backward(
    input_shape: &[usize],
    grad_output: &Tensor,
    p: &AvgPool2dParams,
) -> Result<Tensor> {
    avg_pool_backward(input_shape, grad_output, p)
}
/// Gradient of [`avg_pool3d`]: [`avg_pool_backward`].
///
/// # Errors
/// See [`avg_pool_backward`].
pub fn avg_pool3d_backward(
    input_shape: &[usize],
    grad_output: &Tensor,
    p: &AvgPool3dParams,
) -> Result<Tensor> {
    avg_pool_backward(input_shape, grad_output, p)
}

/// Average pooling of any rank: `AvgPool2d(2)`'s own kernel where it
/// applies, else [`avg_forward`].
pub(crate) fn avg_pool_forward(
    op: &'static str,
    g: &PoolGeometry,
    rule: AvgDivisor,
    input: &Tensor,
) -> Result<Tensor> {
    let pw = PlaneWindows::of(g);
    let scales = AvgScales::new(&pw, rule);
    let shape = g.out_shape();
    let mut out = uninit_f32(op, numel_or_err(op, &shape)?)?;
    if avg_2x2s2(g, &scales, input.data(), &mut out) {
        // SAFETY: `avg_2x2s2` returned true: it wrote every output plane.
        return Tensor::from_vec(unsafe { assume_written(out) }, &shape);
    }
    avg_forward(&pw, &scales, input.data(), &mut out);
    // SAFETY: `avg_forward` writes every output element.
    Tensor::from_vec(unsafe { assume_written(out) }, &shape)
}

/// The two-pass plane kernel on each output depth slice, whose depth taps
/// are first summed into one slice when there are several; writes every
/// element of `out`.
pub(crate) fn avg_forward(
    pw: &PlaneWindows,
    scales: &AvgScales,
    input: &[f32],
    out: &mut [MaybeUninit<f32>],
) {
    if out.is_empty() {
        return;
    }
    let [deps, rows, cols] = &pw.wins;
    let row_scales = scales.rows_per_slice();
    let (hw, ohw, w) = (pw.slice_len(), pw.out_slice_len(), pw.len[2]);
    let depth_buf = if deps.iter().any(|d| d.count > 1) {
        hw
    } else {
        0
    };
    let kernel = |x: &[f32], y: &mut [MaybeUninit<f32>], scratch: &mut [f32]| {
        let (tmp, slice) = scratch.split_at_mut(w);
        for ((y, dep), rs) in y.chunks_exact_mut(ohw).zip(deps).zip(&row_scales) {
            let src = match dep.count {
                0 => {
                    y.fill(MaybeUninit::new(0.0));
                    continue;
                }
                1 => &x[dep.start * hw..][..hw],
                count => {
                    k::sum_slices(hw, (dep.start, count, 1), x, slice);
                    &slice[..hw]
                }
            };
            let cs = &scales.cols;
            k::avg_pool2d_plane(w, pw.width_kernel, rows, cols, rs, cs, src, y, tmp);
        }
    };
    let (plane, out_plane) = (pw.plane_len(), pw.out_plane_len());
    drive::for_planes(input, plane, out, out_plane, w + depth_buf, kernel);
}

/// `AvgPool2d(2)` with every window inside the input and one divisor for
/// all on [`k::avg_pool2d_2x2s2`], planes split over threads; `false`,
/// nothing written, for other shapes or without AVX-512.
fn avg_2x2s2(
    g: &PoolGeometry,
    scales: &AvgScales,
    input: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> bool {
    let [dp, hp, wp] = g.axes;
    let window = |a: &PoolAxis| (a.kernel, a.stride, a.padding) == (2, 2, 0) && 2 * a.out <= a.len;
    let uniform = |v: &[f32]| v.iter().all(|&s| s == v[0]);
    if dp != PoolAxis::UNIT
        || !window(&hp)
        || !window(&wp)
        || out.is_empty()
        || !uniform(&scales.rows)
        || !uniform(&scales.cols)
        || !k::avg_pool2d_2x2s2_supported()
    {
        return false;
    }
    let scale = scales.depth[0] * scales.rows[0] * scales.cols[0];
    let (hw, ohw) = (hp.len * wp.len, hp.out * wp.out);
    drive::for_plane_chunks(input, hw, out, ohw, |x, y| {
        // Cannot fail: AVX-512 was checked above.
        let (h, w, oh, ow) = (hp.len, wp.len, hp.out, wp.out);
        let done = k::avg_pool2d_2x2s2(y.len() / ohw, (h, w), (oh, ow), scale, x, y);
        debug_assert!(done);
    });
    true
}

/// The gradient of average pooling of any rank.
pub(crate) fn avg_pool_grad(
    op: &'static str,
    g: &PoolGeometry,
    rule: AvgDivisor,
    grad_output: &Tensor,
) -> Result<Tensor> {
    let input_shape = g.in_shape();
    check_grad_output(op, &input_shape, &g.out_shape(), grad_output)?;
    let pw = PlaneWindows::of(g);
    let mut grad_input = uninit_f32(op, numel_or_err(op, &input_shape)?)?;
    avg_backward(
        &pw,
        &AvgScales::new(&pw, rule),
        grad_output.data(),
        &mut grad_input,
    );
    // SAFETY: `avg_backward` writes every element.
    Tensor::from_vec(unsafe { assume_written(grad_input) }, &input_shape)
}

/// Per output depth slice, the two-pass backward adds each row of shares
/// into the window's rows of every depth tap; each grad_input plane is
/// zeroed first (in cache). Writes every element of `grad_input`.
pub(crate) fn avg_backward(
    pw: &PlaneWindows,
    scales: &AvgScales,
    grad_output: &[f32],
    grad_input: &mut [MaybeUninit<f32>],
) {
    if grad_output.is_empty() {
        memory::zero_fill(grad_input);
        return;
    }
    let [deps, rows, cols] = &pw.wins;
    let row_scales = scales.rows_per_slice();
    let (hw, ohw, w) = (pw.slice_len(), pw.out_slice_len(), pw.len[2]);
    let kernel = |gy: &[f32], gx: &mut [MaybeUninit<f32>], tmp: &mut [f32]| {
        let gx = memory::zero_fill(gx);
        for ((gy, dep), rs) in gy.chunks_exact(ohw).zip(deps).zip(&row_scales) {
            let (slices, cs) = ((dep.start, dep.count, hw), &scales.cols);
            k::avg_pool2d_backward_plane(w, slices, rows, cols, rs, cs, gy, gx, tmp);
        }
    };
    let (plane, out_plane) = (pw.plane_len(), pw.out_plane_len());
    drive::for_planes(grad_output, out_plane, grad_input, plane, w, kernel);
}
