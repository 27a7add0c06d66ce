//! The parameter types of the pools, for one, two or three spatial axes.
//!
//! PyTorch validates values a `usize` cannot hold: a negative padding, a
//! zero or negative stride, `divisor_override=0`, a negative output size.
//! So sizes are signed ([`Spatial`], [`OutputSize`]) and validated when an
//! op runs, into a [`PoolGeometry`]: what
//! PyTorch refuses is an error naming the same condition, and what a
//! Python binding passes (Python ints) needs no conversion first.

use super::{pool_geometry, show};
use crate::error::{Error, Result};
use crate::shape::{Pair, PoolGeometry};

/// An integer a pooling size can be built from (`i32` for literals, `i64`
/// from Python, `usize` from shapes).
pub trait PoolInt: Copy {
    /// The value as `i64`; a `usize` above `i64::MAX` saturates (and is
    /// then refused as too large).
    fn to_i64(self) -> i64;
}

impl PoolInt for i32 {
    fn to_i64(self) -> i64 {
        self.into()
    }
}
impl PoolInt for i64 {
    fn to_i64(self) -> i64 {
        self
    }
}
impl PoolInt for usize {
    fn to_i64(self) -> i64 {
        i64::try_from(self).unwrap_or(i64::MAX)
    }
}

/// One signed value per spatial axis (depth, height, width; the last `N`
/// of them): a kernel size, stride, padding or dilation as PyTorch takes
/// it, one int for every axis (`3`) or one per axis (`(3, 2)`, `[3, 2]`).
///
/// ```
/// use convlab::ops::pool::Spatial;
/// assert_eq!(Spatial::<2>::from(3), Spatial([3, 3]));
/// assert_eq!(Spatial::<3>::from((1, 2, 2)), Spatial([1, 2, 2]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spatial<const N: usize>(pub [i64; N]);

impl<const N: usize> std::fmt::Display for Spatial<N> {
    /// `3` when every axis is equal, else `(3, 2)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&show(&self.0))
    }
}

impl<const N: usize, T: PoolInt> From<T> for Spatial<N> {
    fn from(v: T) -> Self {
        Spatial([v.to_i64(); N])
    }
}
impl<const N: usize, T: PoolInt> From<[T; N]> for Spatial<N> {
    fn from(v: [T; N]) -> Self {
        Spatial(v.map(PoolInt::to_i64))
    }
}
impl<T: PoolInt> From<(T, T)> for Spatial<2> {
    fn from((a, b): (T, T)) -> Self {
        Spatial([a.to_i64(), b.to_i64()])
    }
}
impl<T: PoolInt> From<(T, T, T)> for Spatial<3> {
    fn from((a, b, c): (T, T, T)) -> Self {
        Spatial([a.to_i64(), b.to_i64(), c.to_i64()])
    }
}
impl From<Pair> for Spatial<2> {
    fn from(p: Pair) -> Self {
        Spatial([p.0, p.1].map(PoolInt::to_i64))
    }
}

impl<const N: usize> Spatial<N> {
    /// The values as three axes (depth, height, width), `fill` for the
    /// axes below the rank, each at least `min` or an error naming `op`,
    /// `param` and the condition.
    pub(crate) fn axes(
        self,
        op: &'static str,
        param: &'static str,
        min: i64,
        fill: usize,
    ) -> Result<[usize; 3]> {
        if self.0.iter().any(|&v| v < min) {
            let rule = if min == 0 {
                "must be non-negative"
            } else {
                "must be at least 1"
            };
            return Err(Error::param(
                op,
                param,
                format!("{self} is invalid: {rule}"),
            ));
        }
        let mut out = [fill; 3];
        for (o, &v) in out[3 - N..].iter_mut().zip(&self.0) {
            // Non-negative i64 fits in usize on the 64-bit targets convlab
            // builds for; saturate elsewhere (then refused as too large).
            *o = usize::try_from(v).unwrap_or(usize::MAX);
        }
        Ok(out)
    }
}

/// An adaptive pool's output size: one length per spatial axis, `None`
/// keeping the input's length on that axis (PyTorch's `None` entries).
///
/// ```
/// use convlab::ops::pool::OutputSize;
/// assert_eq!(OutputSize::<2>::from(7), OutputSize([Some(7), Some(7)]));
/// assert_eq!(OutputSize::<2>::from([None, Some(7)]), OutputSize([None, Some(7)]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutputSize<const N: usize>(pub [Option<i64>; N]);

impl<const N: usize, T: PoolInt> From<T> for OutputSize<N> {
    fn from(v: T) -> Self {
        OutputSize([Some(v.to_i64()); N])
    }
}
impl<const N: usize, T: PoolInt> From<[T; N]> for OutputSize<N> {
    fn from(v: [T; N]) -> Self {
        OutputSize(v.map(|v| Some(v.to_i64())))
    }
}
impl<const N: usize, T: PoolInt> From<[Option<T>; N]> for OutputSize<N> {
    fn from(v: [Option<T>; N]) -> Self {
        OutputSize(v.map(|v| v.map(PoolInt::to_i64)))
    }
}
impl<T: PoolInt> From<(T, T)> for OutputSize<2> {
    fn from((a, b): (T, T)) -> Self {
        OutputSize([Some(a.to_i64()), Some(b.to_i64())])
    }
}
impl<T: PoolInt> From<(T, T, T)> for OutputSize<3> {
    fn from((a, b, c): (T, T, T)) -> Self {
        OutputSize([a, b, c].map(|v| Some(v.to_i64())))
    }
}
impl From<Pair> for OutputSize<2> {
    fn from(p: Pair) -> Self {
        OutputSize([Some(p.0.to_i64()), Some(p.1.to_i64())])
    }
}

impl<const N: usize> std::fmt::Display for OutputSize<N> {
    /// PyTorch's repr: `7`, `(5, 7)`, `(None, 7)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: Vec<String> = self
            .0
            .iter()
            .map(|v| v.map_or("None".into(), |v| v.to_string()))
            .collect();
        f.write_str(&show(&v))
    }
}

impl<const N: usize> OutputSize<N> {
    /// The lengths for an input whose last `N` spatial lengths are
    /// `input`: `None` keeps the input's length.
    ///
    /// # Errors
    /// A negative length.
    pub fn resolve(&self, op: &'static str, input: &[usize]) -> Result<[usize; N]> {
        debug_assert_eq!(input.len(), N);
        let mut out = [0; N];
        for ((o, v), &len) in out.iter_mut().zip(&self.0).zip(input) {
            *o = match *v {
                None => len,
                Some(v) => usize::try_from(v).map_err(|_| {
                    Error::param(
                        op,
                        "output_size",
                        format!(
                            "{self} is invalid: its elements must be greater than or equal to 0"
                        ),
                    )
                })?,
            };
        }
        Ok(out)
    }
}

/// A divisor override as PyTorch takes it: an int, or none
/// (`divisor_override(3)`, `divisor_override(Some(3))`,
/// `divisor_override(None::<i64>)`).
pub trait IntoDivisor {
    /// The divisor, if any.
    fn into_divisor(self) -> Option<i64>;
}
impl<T: PoolInt> IntoDivisor for T {
    fn into_divisor(self) -> Option<i64> {
        Some(self.to_i64())
    }
}
impl<T: PoolInt> IntoDivisor for Option<T> {
    fn into_divisor(self) -> Option<i64> {
        self.map(PoolInt::to_i64)
    }
}

/// Parameters of max pooling over `N` spatial axes (`nn.MaxPool1d/2d/3d`).
///
/// ```
/// use convlab::ops::pool::{MaxPool2dParams, Spatial};
/// let p = MaxPool2dParams::new((2, 3)).stride((2, 3)).padding((0, 1));
/// assert_eq!(p.stride, Some(Spatial([2, 3])));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPoolParams<const N: usize> {
    /// Window size.
    pub kernel_size: Spatial<N>,
    /// Step between windows; `None` means `kernel_size` (PyTorch's default).
    pub stride: Option<Spatial<N>>,
    /// Implicit `-inf` padding on both sides; at most half the kernel size.
    pub padding: Spatial<N>,
    /// Spacing between the taps of a window.
    pub dilation: Spatial<N>,
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

/// [`MaxPoolParams`] of `F.max_pool1d`.
pub type MaxPool1dParams = MaxPoolParams<1>;
/// [`MaxPoolParams`] of `F.max_pool2d`.
pub type MaxPool2dParams = MaxPoolParams<2>;
/// [`MaxPoolParams`] of `F.max_pool3d`.
pub type MaxPool3dParams = MaxPoolParams<3>;

impl<const N: usize> MaxPoolParams<N> {
    /// A `kernel_size` window with PyTorch's defaults: stride = kernel,
    /// padding 0, dilation 1, floor mode.
    pub fn new(kernel_size: impl Into<Spatial<N>>) -> Self {
        MaxPoolParams {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: Spatial([0; N]),
            dilation: Spatial([1; N]),
            ceil_mode: false,
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
    /// Set the dilation.
    pub fn dilation(mut self, dilation: impl Into<Spatial<N>>) -> Self {
        self.dilation = dilation.into();
        self
    }
    /// Set `ceil_mode`.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// The validated geometry for an input of `input_shape` (`(N, C,
    /// *spatial)` or `(C, *spatial)`), with `op` in any error.
    ///
    /// # Errors
    /// A kernel, stride or dilation below 1; a negative padding or one
    /// above half the kernel; an input of another rank or with an empty
    /// non-batch axis; a kernel larger than the padded input; a window
    /// that holds no input element (see [`super::max_pool`]); sizes that
    /// overflow.
    pub fn geometry(&self, op: &'static str, input_shape: &[usize]) -> Result<PoolGeometry> {
        let k = self.kernel_size.axes(op, "kernel_size", 1, 1)?;
        let s = match self.stride {
            Some(s) => s.axes(op, "stride", 1, 1)?,
            None => k,
        };
        let p = self.padding.axes(op, "padding", 0, 0)?;
        let d = self.dilation.axes(op, "dilation", 1, 1)?;
        let g = pool_geometry(op, input_shape, N, k, s, p, d, self.ceil_mode)?;
        super::max::check_windows_hold_input(op, &g)?;
        Ok(g)
    }

    /// The output shape for an input of `input_shape`.
    ///
    /// # Errors
    /// See [`MaxPoolParams::geometry`].
    pub fn out_dims(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self
            .geometry(super::max::NAMES[N - 1], input_shape)?
            .out_shape())
    }
}

/// How average pooling divides a window's sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvgDivisor {
    /// Always this number (`divisor_override`; never 0, may be negative
    /// as in PyTorch).
    Override(i64),
    /// The window size, counting padding but clipped to `input + padding` on
    /// the far side (`count_include_pad=True`, PyTorch's CPU rule).
    IncludePad,
    /// The number of input elements in the window (`count_include_pad=False`).
    ExcludePad,
}

/// Parameters of average pooling over `N` spatial axes
/// (`nn.AvgPool1d/2d/3d`).
///
/// ```
/// use convlab::ops::pool::AvgPool2dParams;
/// let p = AvgPool2dParams::new(3).padding(1).count_include_pad(false).divisor_override(4);
/// assert_eq!(p.divisor_override, Some(4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPoolParams<const N: usize> {
    /// Window size.
    pub kernel_size: Spatial<N>,
    /// Step between windows; `None` means `kernel_size` (PyTorch's default).
    pub stride: Option<Spatial<N>>,
    /// Implicit zero padding on both sides; at most half the kernel size.
    pub padding: Spatial<N>,
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
    /// Count padded zeros in the divisor (default `true`).
    pub count_include_pad: bool,
    /// Divide every window by this instead (must not be 0).
    pub divisor_override: Option<i64>,
}

/// [`AvgPoolParams`] of `F.avg_pool1d` (which has no `divisor_override`).
pub type AvgPool1dParams = AvgPoolParams<1>;
/// [`AvgPoolParams`] of `F.avg_pool2d`.
pub type AvgPool2dParams = AvgPoolParams<2>;
/// [`AvgPoolParams`] of `F.avg_pool3d`.
pub type AvgPool3dParams = AvgPoolParams<3>;

impl<const N: usize> AvgPoolParams<N> {
    /// A `kernel_size` window with PyTorch's defaults: stride = kernel,
    /// padding 0, floor mode, `count_include_pad=true`, no divisor override.
    pub fn new(kernel_size: impl Into<Spatial<N>>) -> Self {
        AvgPoolParams {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: Spatial([0; N]),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
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
    /// Set (`3`, `Some(3)`) or clear (`None::<i64>`) `divisor_override`.
    pub fn divisor_override(mut self, divisor: impl IntoDivisor) -> Self {
        self.divisor_override = divisor.into_divisor();
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

    /// The validated geometry for an input of `input_shape`, with `op` in
    /// any error.
    ///
    /// # Errors
    /// As [`MaxPoolParams::geometry`], and a `divisor_override` of 0.
    pub fn geometry(&self, op: &'static str, input_shape: &[usize]) -> Result<PoolGeometry> {
        let k = self.kernel_size.axes(op, "kernel_size", 1, 1)?;
        let s = match self.stride {
            Some(s) => s.axes(op, "stride", 1, 1)?,
            None => k,
        };
        let p = self.padding.axes(op, "padding", 0, 0)?;
        if self.divisor_override == Some(0) {
            return Err(Error::param(
                op,
                "divisor_override",
                "0 is invalid: the divisor must not be zero",
            ));
        }
        pool_geometry(op, input_shape, N, k, s, p, [1; 3], self.ceil_mode)
    }

    /// The output shape for an input of `input_shape`.
    ///
    /// # Errors
    /// See [`AvgPoolParams::geometry`].
    pub fn out_dims(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self
            .geometry(super::avg::NAMES[N - 1], input_shape)?
            .out_shape())
    }
}
