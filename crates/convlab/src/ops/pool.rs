//! Max and average pooling (D2L 6.5), exact to PyTorch's CPU kernels:
//! `F.max_pool2d` (with `return_indices`) and `F.avg_pool2d`, forward and
//! backward side by side.
//!
//! ```
//! use convlab::{ops::pool::{max_pool2d, MaxPool2dParams}, Tensor};
//! let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
//! let y = max_pool2d(&x, &MaxPool2dParams::new(3).padding(1).stride(2))?;
//! assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0]);
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! Validation happens once here; the plain loops in [`reference`](mod@reference) trust the
//! [`PoolGeometry`] they are given. A fast kernel will slot in behind the same
//! public functions and be tested against those loops.

use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
pub(crate) use crate::memory::{assume_written, uninit_f32};
use crate::shape::{check_positive, pool_out_len, Pair};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// Parameters of [`max_pool2d`], PyTorch's `nn.MaxPool2d` arguments.
///
/// ```
/// use convlab::ops::pool::MaxPool2dParams;
/// let p = MaxPool2dParams::new((2, 3)).stride((2, 3)).padding((0, 1));
/// assert_eq!(p.stride, Some(convlab::Pair(2, 3)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2dParams {
    /// Window size `(kh, kw)`.
    pub kernel_size: Pair,
    /// Step between windows; `None` means `kernel_size` (PyTorch's default).
    pub stride: Option<Pair>,
    /// Implicit `-inf` padding on both sides; at most half the kernel size.
    pub padding: Pair,
    /// Spacing between the taps of a window.
    pub dilation: Pair,
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

impl MaxPool2dParams {
    /// A `kernel_size` window with PyTorch's defaults: stride = kernel,
    /// padding 0, dilation 1, floor mode.
    pub fn new(kernel_size: impl Into<Pair>) -> Self {
        MaxPool2dParams {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: Pair(0, 0),
            dilation: Pair(1, 1),
            ceil_mode: false,
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
    /// Set the dilation.
    pub fn dilation(mut self, dilation: impl Into<Pair>) -> Self {
        self.dilation = dilation.into();
        self
    }
    /// Set `ceil_mode`.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// The validated geometry for an input of `input_shape` (`[N, C, H, W]`
    /// or `[C, H, W]`), with op name `op` in any error.
    ///
    /// # Errors
    /// Zero kernel, stride or dilation; padding above half the kernel; an
    /// input that is not 3-D/4-D; an empty output; a window that holds no
    /// input element (see [`max_pool2d`]); sizes that overflow.
    pub fn geometry(&self, op: &'static str, input_shape: &[usize]) -> Result<PoolGeometry> {
        let stride = self.stride.unwrap_or(self.kernel_size);
        let g = pool_geometry(
            op,
            input_shape,
            self.kernel_size,
            stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
        )?;
        // PyTorch returns -inf and an index outside the input for a window
        // whose dilated taps all fall in the padding or past the end (e.g.
        // H=2, kernel 2, dilation 3, padding 1: taps at -1 and 2). Its
        // backward then writes out of bounds, so convlab refuses instead.
        // With padding <= k/2 a window's first tap at or after 0 lies below
        // `d`, so only `d > len` can leave a window empty; the kernel then
        // nearly spans the padded input and `out` is tiny, so this loop is
        // short even for a huge user-given shape.
        if g.planes() > 0 {
            for (axis, len, out, k, s, p, d) in [
                ("height", g.h, g.oh, g.kh, g.sh, g.ph, g.dh),
                ("width", g.w, g.ow, g.kw, g.sw, g.pw, g.dw),
            ] {
                if d <= len {
                    continue;
                }
                for o in 0..out {
                    if reference::axis_window(o, len, k, s, p, d).count == 0 {
                        return Err(Error::shape(
                            op,
                            format!(
                                "window {o} along the {axis} holds no input element (input {axis} {len}, kernel {k}, stride {s}, padding {p}, dilation {d})"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(g)
    }

    /// The output shape for an input of `input_shape`.
    pub fn out_dims(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry("max_pool2d", input_shape)?.out_shape())
    }
}

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
    /// As [`MaxPool2dParams::geometry`], and a `divisor_override` of 0.
    pub fn geometry(&self, op: &'static str, input_shape: &[usize]) -> Result<PoolGeometry> {
        if self.divisor_override == Some(0) {
            return Err(Error::param(
                op,
                "divisor_override",
                "0 is invalid: must be at least 1",
            ));
        }
        let stride = self.stride.unwrap_or(self.kernel_size);
        pool_geometry(
            op,
            input_shape,
            self.kernel_size,
            stride,
            self.padding,
            Pair(1, 1),
            self.ceil_mode,
        )
    }

    /// The output shape for an input of `input_shape`.
    pub fn out_dims(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry("avg_pool2d", input_shape)?.out_shape())
    }
}

/// The validated geometry of one 2-D pooling. Kernels take this and trust
/// it: `oh, ow >= 1`, `h, w >= 1`, `c >= 1`, and every size product fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// `false` for a 3-D `(C, H, W)` input (then `n == 1`).
    pub batched: bool,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
}

impl PoolGeometry {
    /// Number of `H x W` planes (`n * c`).
    pub fn planes(&self) -> usize {
        self.n * self.c
    }
    /// The input shape, 3-D or 4-D as given.
    pub fn in_shape(&self) -> Vec<usize> {
        batch_shape(self.batched, self.n, self.c, self.h, self.w)
    }
    /// The output shape, of the same rank as the input.
    pub fn out_shape(&self) -> Vec<usize> {
        batch_shape(self.batched, self.n, self.c, self.oh, self.ow)
    }
}

/// `[n, c, h, w]`, or `[c, h, w]` for an unbatched tensor.
pub(crate) fn batch_shape(batched: bool, n: usize, c: usize, h: usize, w: usize) -> Vec<usize> {
    if batched {
        vec![n, c, h, w]
    } else {
        vec![c, h, w]
    }
}

/// A pooling input split into `(batched, n, c, h, w)`. PyTorch takes
/// `(N, C, H, W)` or an unbatched `(C, H, W)`; only the batch may be empty.
pub(crate) fn split_input(
    op: &'static str,
    what: &str,
    shape: &[usize],
) -> Result<(bool, usize, usize, usize, usize)> {
    let (batched, n, c, h, w) = match *shape {
        [c, h, w] => (false, 1, c, h, w),
        [n, c, h, w] => (true, n, c, h, w),
        _ => {
            return Err(Error::shape(
                op,
                format!(
                    "{what} must be 3-D (C, H, W) or 4-D (N, C, H, W) but has shape {}",
                    Dims(shape)
                ),
            ))
        }
    };
    if c == 0 || h == 0 || w == 0 {
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
    Ok((batched, n, c, h, w))
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

/// `buf` zeroed, as floats: zeroing a plane just before use keeps it in cache.
pub(crate) fn zeroed(buf: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    buf.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was written on the line above, and
    // `MaybeUninit<f32>` has the size and alignment of `f32`.
    unsafe { &mut *(buf as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

fn pool_geometry(
    op: &'static str,
    input_shape: &[usize],
    k: Pair,
    s: Pair,
    p: Pair,
    d: Pair,
    ceil_mode: bool,
) -> Result<PoolGeometry> {
    check_positive(op, "kernel_size", k)?;
    check_positive(op, "stride", s)?;
    check_positive(op, "dilation", d)?;
    // PyTorch's pool2d_shape_check compares with the raw kernel (kH/2), not
    // the dilated one, so the same padding is accepted or refused here.
    if p.0 > k.0 / 2 || p.1 > k.1 / 2 {
        return Err(Error::param(
            op,
            "padding",
            format!("{p} must be at most half the kernel size {k}"),
        ));
    }
    let (batched, n, c, h, w) = split_input(op, "input", input_shape)?;
    let oh = pool_out_len(op, "height", h, k.0, s.0, p.0, d.0, ceil_mode)?;
    let ow = pool_out_len(op, "width", w, k.1, s.1, p.1, d.1, ceil_mode)?;
    numel_or_err(op, &[n, c, oh, ow])?;
    Ok(PoolGeometry {
        batched,
        n,
        c,
        h,
        w,
        oh,
        ow,
        kh: k.0,
        kw: k.1,
        sh: s.0,
        sw: s.1,
        ph: p.0,
        pw: p.1,
        dh: d.0,
        dw: d.1,
    })
}

/// PyTorch's `F.max_pool2d`: the largest value of each window.
///
/// A NaN in a window wins (the last NaN, as PyTorch's
/// `if (val > maxval) || isnan(val)`); among equal maxima the first wins.
/// Input `[N, C, H, W]` or `[C, H, W]`; the output has the same rank.
///
/// # Errors
/// See [`MaxPool2dParams::geometry`]. Unlike PyTorch, a window that holds no
/// input element at all (only possible with dilation larger than the input)
/// is an error rather than `-inf` with an out-of-range index.
pub fn max_pool2d(input: &Tensor, p: &MaxPool2dParams) -> Result<Tensor> {
    const OP: &str = "max_pool2d";
    let g = p.geometry(OP, input.shape())?;
    let shape = g.out_shape();
    let mut out = uninit_f32(OP, numel_or_err(OP, &shape)?)?;
    // Forward only: no indices (maxpool_3x3_s2_p1 22 ms with them, see BENCHMARKS.md).
    fast::planes(&g, input.data(), &mut out, |rows, cols, x, y, tmp| {
        crate::kernels::pool::max_pool2d_plane(
            g.w,
            (g.kw, g.sw, g.pw),
            g.dh,
            g.dw,
            rows,
            cols,
            x,
            y,
            tmp,
        )
    });
    // SAFETY: `max_pool2d_plane` writes every element of each output plane
    // `fast::planes` gives it, and the planes cover `out`.
    Tensor::from_vec(unsafe { assume_written(out) }, &shape)
}

/// Plane-parallel drivers of the two-pass pooling kernels in
/// [`crate::kernels::pool`].
mod fast {
    use super::reference::{windows, AxisWindow};
    use super::{zeroed, AvgDivisor, PoolGeometry};
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// Reciprocal divisors per output row and column: every rule is a
    /// product of a row and a column factor. A per-output f64 division cost
    /// several ms of avgpool_3x3_s1_p1's backward (loaded box).
    pub fn avg_scales(g: &PoolGeometry, rule: AvgDivisor) -> (Vec<f32>, Vec<f32>) {
        let (rows, cols) = windows(g);
        let axis = |ws: &[AxisWindow], first: bool| -> Vec<f32> {
            ws.iter()
                .map(|a| match rule {
                    AvgDivisor::Override(d) if first => (1.0 / d as f64) as f32,
                    AvgDivisor::Override(_) => 1.0,
                    AvgDivisor::IncludePad => (1.0 / a.padded_count as f64) as f32,
                    AvgDivisor::ExcludePad => (1.0 / a.count as f64) as f32,
                })
                .collect()
        };
        (axis(&rows, true), axis(&cols, false))
    }

    /// Below this many input values per call a single thread is faster.
    const PARALLEL_MIN: usize = 1 << 16;

    /// Run `kernel(rows, cols, grad_output_plane, grad_input_plane, tmp)`
    /// on every plane, each grad_input plane zeroed (in cache) just before.
    pub fn planes_backward(
        g: &PoolGeometry,
        grad_output: &[f32],
        grad_input: &mut [MaybeUninit<f32>],
        kernel: impl Fn(&[AxisWindow], &[AxisWindow], &[f32], &mut [f32], &mut [f32]) + Sync,
    ) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        if grad_output.is_empty() || hw == 0 {
            zeroed(grad_input);
            return;
        }
        let (rows, cols) = windows(g);
        let one = |(gy, gx): (&[f32], &mut [MaybeUninit<f32>]), tmp: &mut Vec<f32>| {
            kernel(&rows, &cols, gy, zeroed(gx), tmp)
        };
        if grad_input.len() < PARALLEL_MIN || rayon::current_num_threads() == 1 {
            let mut tmp = vec![0.0; g.w];
            for pair in grad_output
                .chunks_exact(ohw)
                .zip(grad_input.chunks_exact_mut(hw))
            {
                one(pair, &mut tmp);
            }
        } else {
            grad_output
                .par_chunks_exact(ohw)
                .zip(grad_input.par_chunks_exact_mut(hw))
                .for_each_init(|| vec![0.0; g.w], |tmp, pair| one(pair, tmp));
        }
    }

    /// `AvgPool2d(2)` with every window inside the input and one divisor
    /// for all (so `rs[0] * cs[0]` is every output's scale) on
    /// [`crate::kernels::pool::avg_pool2d_2x2s2`], planes split over threads;
    /// `false`, nothing written, for other shapes or without AVX-512.
    pub fn avg_2x2s2(
        g: &PoolGeometry,
        rs: &[f32],
        cs: &[f32],
        input: &[f32],
        out: &mut [MaybeUninit<f32>],
    ) -> bool {
        let inside = (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (2, 2, 2, 2, 0, 0)
            && 2 * g.oh <= g.h
            && 2 * g.ow <= g.w;
        let uniform = |v: &[f32]| v.iter().all(|&s| s == v[0]);
        if !inside
            || out.is_empty()
            || !uniform(rs)
            || !uniform(cs)
            || !crate::kernels::pool::avg_pool2d_2x2s2_supported()
        {
            return false;
        }
        let (hw, ohw, scale) = (g.h * g.w, g.oh * g.ow, rs[0] * cs[0]);
        let run = |x: &[f32], y: &mut [MaybeUninit<f32>]| {
            crate::kernels::pool::avg_pool2d_2x2s2(
                y.len() / ohw,
                (g.h, g.w),
                (g.oh, g.ow),
                scale,
                x,
                y,
            )
        };
        let threads = rayon::current_num_threads();
        if input.len() < PARALLEL_MIN || threads == 1 {
            return run(input, out);
        }
        let per = g.planes().div_ceil(threads);
        input
            .par_chunks(per * hw)
            .zip(out.par_chunks_mut(per * ohw))
            .map(|(x, y)| run(x, y))
            .reduce(|| true, |a, b| a & b)
    }

    /// Run `kernel(rows, cols, plane_in, plane_out, tmp)` on every plane;
    /// the kernel writes all of its output plane.
    pub fn planes(
        g: &PoolGeometry,
        input: &[f32],
        out: &mut [MaybeUninit<f32>],
        kernel: impl Fn(&[AxisWindow], &[AxisWindow], &[f32], &mut [MaybeUninit<f32>], &mut [f32])
            + Sync,
    ) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        if out.is_empty() || hw == 0 {
            zeroed(out);
            return;
        }
        let (rows, cols) = windows(g);
        let one = |(x, y): (&[f32], &mut [MaybeUninit<f32>]), tmp: &mut Vec<f32>| {
            kernel(&rows, &cols, x, y, tmp)
        };
        if input.len() < PARALLEL_MIN || rayon::current_num_threads() == 1 {
            let mut tmp = vec![0.0; g.w];
            for pair in input.chunks_exact(hw).zip(out.chunks_exact_mut(ohw)) {
                one(pair, &mut tmp);
            }
        } else {
            input
                .par_chunks_exact(hw)
                .zip(out.par_chunks_exact_mut(ohw))
                .for_each_init(|| vec![0.0; g.w], |tmp, pair| one(pair, tmp));
        }
    }
}

/// [`max_pool2d`] and, for each output element, the flat index `h * W + w`
/// of its maximum in the input plane (PyTorch's `return_indices=True`).
///
/// ```
/// use convlab::{ops::pool::{max_pool2d_with_indices, MaxPool2dParams}, Tensor};
/// let x = Tensor::arange(9.0)?.reshape(&[1, 3, 3])?;
/// let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2).stride(1))?;
/// assert_eq!(y.data(), &[4.0, 5.0, 7.0, 8.0]);
/// assert_eq!(idx, vec![4, 5, 7, 8]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn max_pool2d_with_indices(
    input: &Tensor,
    p: &MaxPool2dParams,
) -> Result<(Tensor, Vec<usize>)> {
    const OP: &str = "max_pool2d";
    let g = p.geometry(OP, input.shape())?;
    let shape = g.out_shape();
    let numel = numel_or_err(OP, &shape)?;
    let mut out = memory::zeros_f32(OP, numel)?;
    let mut indices = zeros_index(OP, numel)?;
    if windows_inside(&g) {
        crate::kernels::pool::max_pool2d_inside(
            g.planes(),
            (g.h, g.w),
            (g.oh, g.ow),
            (g.kh, g.kw),
            (g.sh, g.sw),
            input.data(),
            &mut out,
            &mut indices,
        );
    } else {
        reference::max_pool2d_reference(&g, input.data(), &mut out, &mut indices);
    }
    Ok((Tensor::from_vec(out, &shape)?, indices))
}

/// Whether every window is a whole `kh x kw` block of the input (no padding,
/// dilation 1, no ceil-mode overhang), so the fast kernel applies.
fn windows_inside(g: &PoolGeometry) -> bool {
    g.ph == 0
        && g.pw == 0
        && g.dh == 1
        && g.dw == 1
        && (g.oh == 0 || (g.oh - 1) * g.sh + g.kh <= g.h)
        && (g.ow == 0 || (g.ow - 1) * g.sw + g.kw <= g.w)
}

/// Gradient of [`max_pool2d`] with respect to its input: each
/// `grad_output` value is added at its window's maximum (`indices` from
/// [`max_pool2d_with_indices`]); overlapping windows accumulate.
///
/// # Errors
/// `input_shape` not 3-D/4-D; `grad_output` of another rank, batch or
/// channel count; `indices` of the wrong length or pointing outside a plane.
pub fn max_pool2d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    scatter_max_grad("max_pool2d_backward", input_shape, indices, grad_output)
}

/// The max-pooling backward shared with adaptive max pooling: validate,
/// then scatter-add through `indices`.
pub(crate) fn scatter_max_grad(
    op: &'static str,
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    let (batched, n, c, h, w) = split_input(op, "input_shape", input_shape)?;
    let gs = grad_output.shape();
    let same_nc = match (batched, gs) {
        (true, [gn, gc, _, _]) => *gn == n && *gc == c,
        (false, [gc, _, _]) => *gc == c,
        _ => false,
    };
    if !same_nc {
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
    let hw = h * w;
    let ohw = gs[gs.len() - 2] * gs[gs.len() - 1];
    let planes = n * c;
    let mut buf = uninit_f32(op, numel_or_err(op, input_shape)?)?;
    // Each plane is zeroed just before its scatter (in cache, on the thread
    // that scatters) and indices are checked as they are used: one pass
    // over memory instead of a zero-fill, a validation scan and a scatter.
    let all_inside = if ohw == 0 {
        buf.iter_mut().for_each(|v| *v = MaybeUninit::new(0.0));
        true
    } else if planes >= 2 && buf.len() >= 1 << 16 {
        use rayon::prelude::*;
        let per = planes.div_ceil(rayon::current_num_threads() * 4).max(1);
        buf.par_chunks_mut(per * hw)
            .zip(indices.par_chunks(per * ohw))
            .zip(grad_output.data().par_chunks(per * ohw))
            .map(|((gx, idx), gy)| scatter_planes(hw, ohw, idx, gy, gx))
            .reduce(|| true, |a, b| a & b)
    } else {
        scatter_planes(hw, ohw, indices, grad_output.data(), &mut buf)
    };
    if !all_inside {
        let (at, bad) = indices
            .iter()
            .enumerate()
            .find(|(_, &i)| i >= hw)
            .map_or((0, 0), |(at, &i)| (at, i));
        return Err(Error::shape(
            op,
            format!(
                "index {bad} at grad_output position {at} is outside the {h}x{w} input plane of shape {}",
                Dims(input_shape)
            ),
        ));
    }
    // SAFETY: every `hw`-float plane of `buf` was zeroed, by the fill above
    // when there are no outputs, else by `scatter_planes` (the chunks cover
    // `buf`: `indices` and grad_output hold `planes * ohw` values).
    let grad_input = unsafe { assume_written(buf) };
    Tensor::from_vec(grad_input, input_shape)
}

/// Zero each `hw`-float plane of `gx` and add grad_output plane `gy` into
/// it through `idx` (`ohw` per plane), in order, as the reference loop.
/// `false` if an index is outside its plane (the planes are then partly
/// written, but all zeroed).
fn scatter_planes(
    hw: usize,
    ohw: usize,
    idx: &[usize],
    gy: &[f32],
    gx: &mut [MaybeUninit<f32>],
) -> bool {
    let mut inside = true;
    for ((plane, idx), gy) in gx
        .chunks_exact_mut(hw)
        .zip(idx.chunks_exact(ohw))
        .zip(gy.chunks_exact(ohw))
    {
        let plane = zeroed(plane);
        for (&i, &g) in idx.iter().zip(gy) {
            match plane.get_mut(i) {
                Some(v) => *v += g,
                None => inside = false,
            }
        }
    }
    inside
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
    let shape = g.out_shape();
    let mut out = uninit_f32(OP, numel_or_err(OP, &shape)?)?;
    let (rs, cs) = fast::avg_scales(&g, p.divisor());
    if fast::avg_2x2s2(&g, &rs, &cs, input.data(), &mut out) {
        // SAFETY: `avg_2x2s2` returned true: it wrote every output plane.
        return Tensor::from_vec(unsafe { assume_written(out) }, &shape);
    }
    fast::planes(&g, input.data(), &mut out, |rows, cols, x, y, tmp| {
        crate::kernels::pool::avg_pool2d_plane(
            g.w,
            (g.kw, g.sw, g.pw),
            rows,
            cols,
            &rs,
            &cs,
            x,
            y,
            tmp,
        )
    });
    // SAFETY: `avg_pool2d_plane` writes every element of each output plane
    // `fast::planes` gives it, and the planes cover `out`.
    Tensor::from_vec(unsafe { assume_written(out) }, &shape)
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
    let expected = g.out_shape();
    if grad_output.shape() != expected.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_output has shape {} but the output for input shape {} is {}",
                Dims(grad_output.shape()),
                Dims(input_shape),
                Dims(&expected)
            ),
        ));
    }
    let mut grad_input = uninit_f32(OP, numel_or_err(OP, input_shape)?)?;
    let (rs, cs) = fast::avg_scales(&g, p.divisor());
    fast::planes_backward(
        &g,
        grad_output.data(),
        &mut grad_input,
        |rows, cols, gy, gx, tmp| {
            crate::kernels::pool::avg_pool2d_backward_plane(g.w, rows, cols, &rs, &cs, gy, gx, tmp)
        },
    );
    // SAFETY: `fast::planes_backward` zeroes every grad_input plane (the
    // planes cover the buffer: grad_output has the forward output's shape).
    Tensor::from_vec(unsafe { assume_written(grad_input) }, input_shape)
}

/// The plain loops: the definition every fast kernel is tested against.
/// They trust their [`PoolGeometry`] (validated by the public ops) and
/// check buffer sizes with `debug_assert!` only.
pub mod reference {
    use super::{AvgDivisor, PoolGeometry};

    /// The taps of one pooling window along one axis that land in the input.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct AxisWindow {
        /// The first in-bounds input position (0 when `count == 0`).
        pub start: usize,
        /// How many taps `start, start + d, ...` are in bounds.
        pub count: usize,
        /// The window length PyTorch's `count_include_pad` divides by:
        /// `min(i0 + k, len + p) - i0` with `i0 = o*s - p`, i.e. padding
        /// counts but a ceil-mode window hanging past the right padding is
        /// clipped (dilation 1 only, as for average pooling).
        pub padded_count: usize,
    }

    /// Window `o` along an axis of length `len` (kernel `k`, stride `s`,
    /// padding `p`, dilation `d`). Computed in u128 so no product of
    /// user-given sizes can overflow.
    pub fn axis_window(o: usize, len: usize, k: usize, s: usize, p: usize, d: usize) -> AxisWindow {
        let (o, len, k, s, p, d) = (
            o as u128,
            len as u128,
            k as u128,
            s as u128,
            p as u128,
            d as u128,
        );
        // Positions are in padded coordinates: tap j sits at origin + j*d,
        // and the input occupies [p, p + len).
        let origin = o * s;
        let j_first = if origin >= p {
            0
        } else {
            (p - origin).div_ceil(d)
        };
        let j_end = if origin >= p + len {
            0
        } else {
            k.min((p + len - origin).div_ceil(d))
        };
        let count = j_end.saturating_sub(j_first);
        let start = if count > 0 {
            origin + j_first * d - p
        } else {
            0
        };
        let padded_count = (origin + k).min(len + 2 * p).saturating_sub(origin);
        // All three are at most `len` or `k`, both usize.
        AxisWindow {
            start: start as usize,
            count: count as usize,
            padded_count: padded_count as usize,
        }
    }

    /// The windows along height and width of `g`.
    pub fn windows(g: &PoolGeometry) -> (Vec<AxisWindow>, Vec<AxisWindow>) {
        let rows = (0..g.oh)
            .map(|o| axis_window(o, g.h, g.kh, g.sh, g.ph, g.dh))
            .collect();
        let cols = (0..g.ow)
            .map(|o| axis_window(o, g.w, g.kw, g.sw, g.pw, g.dw))
            .collect();
        (rows, cols)
    }

    /// Max pooling of `input` (`planes x h x w`) into `output` and `indices`
    /// (`planes x oh x ow`), PyTorch's `cpu_max_pool` loop.
    pub fn max_pool2d_reference(
        g: &PoolGeometry,
        input: &[f32],
        output: &mut [f32],
        indices: &mut [usize],
    ) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(input.len(), g.planes() * hw);
        debug_assert_eq!(output.len(), g.planes() * ohw);
        debug_assert_eq!(indices.len(), output.len());
        if output.is_empty() {
            return;
        }
        let (rows, cols) = windows(g);
        for plane in 0..g.planes() {
            let x = &input[plane * hw..(plane + 1) * hw];
            for (oy, r) in rows.iter().enumerate() {
                for (ox, c) in cols.iter().enumerate() {
                    let mut best = f32::NEG_INFINITY;
                    let mut best_at = r.start * g.w + c.start;
                    for a in 0..r.count {
                        let row = (r.start + a * g.dh) * g.w;
                        for b in 0..c.count {
                            let at = row + c.start + b * g.dw;
                            let v = x[at];
                            // PyTorch: `(val > maxval) || isnan(val)`.
                            if v > best || v.is_nan() {
                                best = v;
                                best_at = at;
                            }
                        }
                    }
                    let o = plane * ohw + oy * g.ow + ox;
                    output[o] = best;
                    indices[o] = best_at;
                }
            }
        }
    }

    /// Scatter-add `grad_output` (`planes x ohw`) into `grad_input`
    /// (`planes x hw`, zeroed by the caller) through `indices`, each `< hw`.
    pub fn max_pool2d_backward_reference(
        planes: usize,
        hw: usize,
        ohw: usize,
        indices: &[usize],
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) {
        debug_assert_eq!(grad_output.len(), planes * ohw);
        debug_assert_eq!(indices.len(), planes * ohw);
        debug_assert_eq!(grad_input.len(), planes * hw);
        for plane in 0..planes {
            let gx = &mut grad_input[plane * hw..(plane + 1) * hw];
            let range = plane * ohw..(plane + 1) * ohw;
            for (&i, &gy) in indices[range.clone()].iter().zip(&grad_output[range]) {
                gx[i] += gy;
            }
        }
    }

    /// The divisor of the window `(r, c)`.
    fn divisor(rule: AvgDivisor, r: &AxisWindow, c: &AxisWindow) -> f64 {
        match rule {
            AvgDivisor::Override(d) => d as f64,
            // f64: the product of two huge kernel sizes must not overflow.
            AvgDivisor::IncludePad => r.padded_count as f64 * c.padded_count as f64,
            AvgDivisor::ExcludePad => r.count as f64 * c.count as f64,
        }
    }

    /// Average pooling of `input` into `output`, PyTorch's `cpu_avg_pool`
    /// loop (summed in f64). A window without input elements gives 0.
    pub fn avg_pool2d_reference(
        g: &PoolGeometry,
        rule: AvgDivisor,
        input: &[f32],
        output: &mut [f32],
    ) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(input.len(), g.planes() * hw);
        debug_assert_eq!(output.len(), g.planes() * ohw);
        if output.is_empty() {
            return;
        }
        let (rows, cols) = windows(g);
        for plane in 0..g.planes() {
            let x = &input[plane * hw..(plane + 1) * hw];
            for (oy, r) in rows.iter().enumerate() {
                for (ox, c) in cols.iter().enumerate() {
                    let o = plane * ohw + oy * g.ow + ox;
                    if r.count == 0 || c.count == 0 {
                        output[o] = 0.0;
                        continue;
                    }
                    let mut sum = 0.0f64;
                    for row in r.start..r.start + r.count {
                        for &v in &x[row * g.w + c.start..row * g.w + c.start + c.count] {
                            sum += v as f64;
                        }
                    }
                    output[o] = (sum / divisor(rule, r, c)) as f32;
                }
            }
        }
    }

    /// Gradient of [`avg_pool2d_reference`]: `grad_input` (zeroed by the
    /// caller) receives each `grad_output / divisor` over its window.
    pub fn avg_pool2d_backward_reference(
        g: &PoolGeometry,
        rule: AvgDivisor,
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(grad_input.len(), g.planes() * hw);
        debug_assert_eq!(grad_output.len(), g.planes() * ohw);
        if grad_output.is_empty() {
            return;
        }
        let (rows, cols) = windows(g);
        for plane in 0..g.planes() {
            let gx = &mut grad_input[plane * hw..(plane + 1) * hw];
            for (oy, r) in rows.iter().enumerate() {
                for (ox, c) in cols.iter().enumerate() {
                    if r.count == 0 || c.count == 0 {
                        continue;
                    }
                    let gy = grad_output[plane * ohw + oy * g.ow + ox];
                    let share = (gy as f64 / divisor(rule, r, c)) as f32;
                    for row in r.start..r.start + r.count {
                        for v in &mut gx[row * g.w + c.start..row * g.w + c.start + c.count] {
                            *v += share;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape).unwrap()
    }

    fn arange(n: usize, shape: &[usize]) -> Tensor {
        Tensor::arange(n as f32).unwrap().reshape(shape).unwrap()
    }

    #[test]
    fn d2l_max_and_avg_2x2_on_3x3() {
        // D2L 6.5.1: pool2d(X, (2, 2)) with X = arange(9).reshape(3, 3).
        let x = arange(9, &[1, 1, 3, 3]);
        let y = max_pool2d(&x, &MaxPool2dParams::new(2).stride(1)).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(y.data(), &[4.0, 5.0, 7.0, 8.0]);
        let y = avg_pool2d(&x, &AvgPool2dParams::new(2).stride(1)).unwrap();
        assert_eq!(y.data(), &[2.0, 3.0, 5.0, 6.0]);
    }

    #[test]
    fn d2l_padding_and_stride() {
        // D2L 6.5.2: X = arange(16).reshape(1, 1, 4, 4).
        let x = arange(16, &[1, 1, 4, 4]);
        let y = max_pool2d(&x, &MaxPool2dParams::new(3)).unwrap();
        assert_eq!((y.shape(), y.data()), (&[1, 1, 1, 1][..], &[10.0][..]));
        let y = max_pool2d(&x, &MaxPool2dParams::new(3).padding(1).stride(2)).unwrap();
        assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0]);
        let p = MaxPool2dParams::new((2, 3)).stride((2, 3)).padding((0, 1));
        assert_eq!(max_pool2d(&x, &p).unwrap().data(), &[5.0, 7.0, 13.0, 15.0]);
        let p = MaxPool2dParams::new((2, 4)).padding((1, 2)).stride((2, 3));
        let y = max_pool2d(&x, &p).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 2]);
        assert_eq!(y.data(), &[1.0, 3.0, 9.0, 11.0, 13.0, 15.0]);
    }

    #[test]
    fn d2l_multiple_channels_and_unbatched_input() {
        // D2L 6.5.3: X = cat((X, X + 1), 1); pooling keeps the channels apart.
        let x = arange(16, &[1, 1, 4, 4]);
        let x2 = Tensor::cat(&[&x, &x.map(|v| v + 1.0)], 1).unwrap();
        let p = MaxPool2dParams::new(3).padding(1).stride(2);
        let y = max_pool2d(&x2, &p).unwrap();
        assert_eq!(y.shape(), &[1, 2, 2, 2]);
        assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0, 6.0, 8.0, 14.0, 16.0]);
        let y3 = max_pool2d(&x2.reshape(&[2, 4, 4]).unwrap(), &p).unwrap();
        assert_eq!(y3.shape(), &[2, 2, 2]);
        assert_eq!(y3.data(), y.data());
    }

    #[test]
    fn nan_wins_and_first_max_wins_ties() {
        // PyTorch: F.max_pool2d(x, 2, return_indices=True) on
        // [[1, nan], [nan, 0]] -> nan at index 2 (the last NaN), and on
        // [[3, 3], [1, 3]] -> 3 at index 0 (the first maximum).
        let x = t(&[1.0, f32::NAN, f32::NAN, 0.0], &[1, 1, 2, 2]);
        let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2)).unwrap();
        assert!(y.data()[0].is_nan());
        assert_eq!(idx, vec![2]);
        let x = t(&[3.0, 3.0, 1.0, 3.0], &[1, 1, 2, 2]);
        let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2)).unwrap();
        assert_eq!((y.data()[0], idx), (3.0, vec![0]));
        // All -inf: the value is -inf and the index the window's first element.
        let x = t(&[f32::NEG_INFINITY; 4], &[1, 1, 2, 2]);
        let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2)).unwrap();
        assert_eq!((y.data()[0], idx), (f32::NEG_INFINITY, vec![0]));
    }

    #[test]
    fn max_backward_scatters_and_accumulates_overlaps() {
        // Stride 1 windows on arange(9): the 8 at index 8 wins once, 4 once...
        let x = arange(9, &[1, 1, 3, 3]);
        let p = MaxPool2dParams::new(2).stride(1);
        let (y, idx) = max_pool2d_with_indices(&x, &p).unwrap();
        let g = t(&[1.0, 2.0, 3.0, 4.0], y.shape());
        let gx = max_pool2d_backward(x.shape(), &idx, &g).unwrap();
        assert_eq!(gx.data(), &[0., 0., 0., 0., 1., 2., 0., 3., 4.]);
        // A constant input: every window picks its first element, so the
        // centre (first of the bottom-right window) collects one gradient.
        let x = Tensor::ones(&[1, 1, 3, 3]).unwrap();
        let (_, idx) = max_pool2d_with_indices(&x, &p).unwrap();
        assert_eq!(idx, vec![0, 1, 3, 4]);
        let gx = max_pool2d_backward(x.shape(), &idx, &g).unwrap();
        assert_eq!(gx.data(), &[1., 2., 0., 3., 4., 0., 0., 0., 0.]);
    }

    #[test]
    fn ceil_mode_and_dilation_shapes_match_pytorch() {
        // PyTorch: MaxPool2d(3, 2, ceil_mode=True)(randn(1,1,6,6)).shape == (1,1,3,3);
        // on 2x2 it is 1x1 (the kernel overhangs); AvgPool2d the same gives 1.5
        // on arange(4) because the divisor is clipped to the 2x2 input.
        let x = arange(36, &[1, 1, 6, 6]);
        let y = max_pool2d(&x, &MaxPool2dParams::new(3).stride(2).ceil_mode(true)).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert_eq!(y.data()[8], 35.0);
        let x = arange(4, &[1, 1, 2, 2]);
        let y = max_pool2d(&x, &MaxPool2dParams::new(3).stride(2).ceil_mode(true)).unwrap();
        assert_eq!(y.data(), &[3.0]);
        let y = avg_pool2d(&x, &AvgPool2dParams::new(3).stride(2).ceil_mode(true)).unwrap();
        assert_eq!(y.data(), &[1.5]);
        // Dilation 2, kernel 2 on 4x4: taps (0, 2) and (1, 3).
        let x = arange(16, &[1, 1, 4, 4]);
        let y = max_pool2d(&x, &MaxPool2dParams::new(2).stride(1).dilation(2)).unwrap();
        assert_eq!(y.data(), &[10.0, 11.0, 14.0, 15.0]);
    }

    #[test]
    fn only_dilation_beyond_the_input_can_empty_a_window() {
        // The shortcut in `MaxPool2dParams::geometry` skips the empty-window
        // scan when d <= len; enumerate small geometries to back it.
        let mut empty_seen = 0;
        for len in 1..8 {
            for k in 1..5 {
                for s in 1..4 {
                    for p in 0..=k / 2 {
                        for d in 1..6 {
                            for ceil in [false, true] {
                                let Ok(out) = pool_out_len("t", "h", len, k, s, p, d, ceil) else {
                                    continue;
                                };
                                for o in 0..out {
                                    let win = reference::axis_window(o, len, k, s, p, d);
                                    if win.count == 0 {
                                        empty_seen += 1;
                                        assert!(d > len, "len {len} k {k} s {s} p {p} d {d}");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(empty_seen > 0, "the enumeration should reach empty windows");
    }

    #[test]
    fn avg_divisor_rules() {
        // PyTorch, x = ones(1,1,3,3), kernel 3, padding 1, stride 2 ->
        // include_pad: 4/9 corners; exclude_pad: 1; divisor_override=2: 2.
        let x = Tensor::ones(&[1, 1, 3, 3]).unwrap();
        let base = AvgPool2dParams::new(3).padding(1).stride(2);
        let y = avg_pool2d(&x, &base).unwrap();
        assert!(
            y.data().iter().all(|&v| (v - 4.0 / 9.0).abs() < 1e-7),
            "{y}"
        );
        let y = avg_pool2d(&x, &base.count_include_pad(false)).unwrap();
        assert_eq!(y.data(), &[1.0; 4]);
        let y = avg_pool2d(&x, &base.divisor_override(2)).unwrap();
        assert_eq!(y.data(), &[2.0; 4]);
        // Backward of the include-pad case: the centre is in all 4 windows.
        let gx =
            avg_pool2d_backward(x.shape(), &Tensor::ones(&[1, 1, 2, 2]).unwrap(), &base).unwrap();
        assert!((gx.data()[4] - 4.0 / 9.0).abs() < 1e-7);
        assert!((gx.data()[0] - 1.0 / 9.0).abs() < 1e-7);
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    fn assert_mentions(msg: &str, parts: &[&str]) {
        for p in parts {
            assert!(msg.contains(p), "'{msg}' does not mention '{p}'");
        }
    }

    #[test]
    fn bad_parameters_are_errors_naming_op_and_parameter() {
        let x = arange(16, &[1, 1, 4, 4]);
        let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(3).padding(3)));
        assert_eq!(
            e,
            "max_pool2d: padding 3 must be at most half the kernel size 3"
        );
        let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(0)));
        assert_mentions(&e, &["max_pool2d", "kernel_size 0", "at least 1"]);
        let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(2).stride((1, 0))));
        assert_mentions(&e, &["max_pool2d", "stride (1, 0)", "at least 1"]);
        let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(2).dilation(0)));
        assert_mentions(&e, &["max_pool2d", "dilation 0"]);
        let e = err_text(avg_pool2d(
            &x,
            &AvgPool2dParams::new((2, 4)).padding((1, 3)),
        ));
        assert_mentions(&e, &["avg_pool2d", "padding (1, 3)", "kernel size (2, 4)"]);
        let e = err_text(avg_pool2d(&x, &AvgPool2dParams::new(2).divisor_override(0)));
        assert_mentions(&e, &["avg_pool2d", "divisor_override", "0"]);
        let e = err_text(avg_pool2d(&x, &AvgPool2dParams::new(2).stride(0)));
        assert_mentions(&e, &["avg_pool2d", "stride 0"]);
    }

    #[test]
    fn bad_shapes_are_errors_naming_op_and_shape() {
        let x2 = arange(9, &[3, 3]);
        let e = err_text(max_pool2d(&x2, &MaxPool2dParams::new(2)));
        assert_mentions(&e, &["max_pool2d", "3-D", "4-D", "[3, 3]"]);
        let x5 = arange(9, &[1, 1, 1, 3, 3]);
        let e = err_text(avg_pool2d(&x5, &AvgPool2dParams::new(2)));
        assert_mentions(&e, &["avg_pool2d", "[1, 1, 1, 3, 3]"]);
        let empty = Tensor::zeros(&[1, 0, 3, 3]).unwrap();
        let e = err_text(max_pool2d(&empty, &MaxPool2dParams::new(2)));
        assert_mentions(&e, &["max_pool2d", "[1, 0, 3, 3]", "empty"]);
        // Kernel larger than the padded input.
        let x = arange(4, &[1, 1, 2, 2]);
        let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(3)));
        assert_mentions(
            &e,
            &["max_pool2d", "kernel height 3", "padded input height 2"],
        );
        // Dilation stepping over the whole input leaves a window empty.
        let x = arange(4, &[1, 1, 2, 2]);
        let p = MaxPool2dParams::new(2).stride(1).padding(1).dilation(3);
        let e = err_text(max_pool2d(&x, &p));
        assert_mentions(
            &e,
            &["max_pool2d", "window 0", "no input element", "dilation 3"],
        );
        // An empty batch is fine, as in PyTorch.
        let y = max_pool2d(
            &Tensor::zeros(&[0, 2, 4, 4]).unwrap(),
            &MaxPool2dParams::new(2),
        );
        assert_eq!(y.unwrap().shape(), &[0, 2, 2, 2]);
    }

    #[test]
    fn backward_shape_errors() {
        let x = arange(16, &[1, 1, 4, 4]);
        let p = MaxPool2dParams::new(2);
        let (y, idx) = max_pool2d_with_indices(&x, &p).unwrap();
        let e = err_text(max_pool2d_backward(&[1, 2, 4, 4], &idx, &y));
        assert_mentions(&e, &["max_pool2d_backward", "[1, 1, 2, 2]", "[1, 2, 4, 4]"]);
        let e = err_text(max_pool2d_backward(x.shape(), &idx[..3], &y));
        assert_mentions(&e, &["max_pool2d_backward", "3 indices", "[1, 1, 2, 2]"]);
        let e = err_text(max_pool2d_backward(x.shape(), &[0, 1, 2, 16], &y));
        assert_mentions(&e, &["max_pool2d_backward", "index 16", "4x4"]);
        let e = err_text(max_pool2d_backward(&[4, 4], &idx, &y));
        assert_mentions(&e, &["max_pool2d_backward", "input_shape", "[4, 4]"]);
        let e = err_text(max_pool2d_backward(&[usize::MAX, 2, 4, 4], &idx, &y));
        assert_mentions(&e, &["max_pool2d_backward"]);
        let ap = AvgPool2dParams::new(2);
        let g = Tensor::ones(&[1, 1, 3, 2]).unwrap();
        let e = err_text(avg_pool2d_backward(x.shape(), &g, &ap));
        assert_mentions(&e, &["avg_pool2d_backward", "[1, 1, 3, 2]", "[1, 1, 2, 2]"]);
    }
}
