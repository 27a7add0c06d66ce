//! Average pooling: `F.avg_pool2d` and its backward.

use super::{check_grad_output, drive, pool_geometry, PlaneWindows};
use crate::error::{numel_or_err, Error, Result};
use crate::kernels::pool as k;
use crate::memory::{self, assume_written, uninit_f32};
use crate::shape::{AxisWindow, Pair, PoolAxis, PoolGeometry};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// How [`avg_pool2d`] divides a window's sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvgDivisor {
    /// Always this number (`divisor_override`).
    Override(usize),
    /// The window size, counting padding but clipped to `input + padding` on
    /// the far side (`count_include_pad=True`, PyTorch's CPU rule).
    IncludePad,
    /// The number of input elements in the window (`count_include_pad=False`).
    ExcludePad,
}

/// Parameters of [`avg_pool2d`], PyTorch's `nn.AvgPool2d` arguments.
///
/// ```
/// use convlab::ops::pool::AvgPool2dParams;
/// let p = AvgPool2dParams::new(3).padding(1).count_include_pad(false).divisor_override(4);
/// assert_eq!(p.divisor_override, Some(4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2dParams {
    /// Window size `(kh, kw)`.
    pub kernel_size: Pair,
    /// Step between windows; `None` means `kernel_size` (PyTorch's default).
    pub stride: Option<Pair>,
    /// Implicit zero padding on both sides; at most half the kernel size.
    pub padding: Pair,
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
    /// Count padded zeros in the divisor (default `true`).
    pub count_include_pad: bool,
    /// Divide every window by this instead (must be at least 1).
    pub divisor_override: Option<usize>,
}

impl AvgPool2dParams {
    /// A `kernel_size` window with PyTorch's defaults: stride = kernel,
    /// padding 0, floor mode, `count_include_pad=true`, no divisor override.
    pub fn new(kernel_size: impl Into<Pair>) -> Self {
        AvgPool2dParams {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: Pair(0, 0),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
    /// Set the stride.
    pub fn stride(mut self, stride: impl Into<Pair>) -> Self {
        self.stride = Some(stride.into());
        self
    }
    /// Set the padding.
    pub fn padding(mut self, padding: impl Into<Pair>) -> Self {
        self.padding = padding.into();
        self
    }
    /// Set `ceil_mode`.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }
    /// Set `count_include_pad`.
    pub fn count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }
    /// Set (`3`, `Some(3)`) or clear (`None`) `divisor_override`.
    pub fn divisor_override(mut self, divisor: impl Into<Option<usize>>) -> Self {
        self.divisor_override = divisor.into();
        self
    }

    /// The divisor rule these parameters select.
    pub fn divisor(&self) -> AvgDivisor {
        match (self.divisor_override, self.count_include_pad) {
            (Some(d), _) => AvgDivisor::Override(d),
            (None, true) => AvgDivisor::IncludePad,
            (None, false) => AvgDivisor::ExcludePad,
        }
    }

    /// The validated geometry for an input of `input_shape`, with op name
    /// `op` in any error.
    ///
    /// # Errors
    /// As [`super::MaxPool2dParams::geometry`], and a `divisor_override` of 0.
    pub fn geometry(&self, op: &'static str, input_shape: &[usize]) -> Result<PoolGeometry> {
        if self.divisor_override == Some(0) {
            return Err(Error::param(
                op,
                "divisor_override",
                "0 is invalid: must be at least 1",
            ));
        }
        let three = |p: Pair| [1, p.0, p.1];
        let stride = self.stride.unwrap_or(self.kernel_size);
        pool_geometry(
            op,
            input_shape,
            2,
            three(self.kernel_size),
            three(stride),
            [0, self.padding.0, self.padding.1],
            [1; 3],
            self.ceil_mode,
        )
    }

    /// The output shape for an input of `input_shape`.
    pub fn out_dims(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry("avg_pool2d", input_shape)?.out_shape())
    }
}

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

/// PyTorch's `F.avg_pool2d`: the mean of each window, divided as
/// [`AvgPool2dParams::divisor`] says.
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
/// See [`AvgPool2dParams::geometry`].
pub fn avg_pool2d(input: &Tensor, p: &AvgPool2dParams) -> Result<Tensor> {
    const OP: &str = "avg_pool2d";
    let g = p.geometry(OP, input.shape())?;
    avg_pool_forward(OP, &g, p.divisor(), input)
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

/// Gradient of [`avg_pool2d`] with respect to its input: each
/// `grad_output` value, divided by its window's divisor, is added to every
/// input element of the window.
///
/// # Errors
/// Those of [`avg_pool2d`] for `input_shape`, and a `grad_output` whose
/// shape is not the forward output shape.
pub fn avg_pool2d_backward(
    input_shape: &[usize],
    grad_output: &Tensor,
    p: &AvgPool2dParams,
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d_backward";
    let g = p.geometry(OP, input_shape)?;
    avg_pool_backward(OP, &g, p.divisor(), grad_output)
}

/// The gradient of average pooling of any rank.
pub(crate) fn avg_pool_backward(
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
