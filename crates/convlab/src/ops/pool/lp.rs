//! Power-average pooling over one, two or three spatial axes
//! (`F.lp_pool1d/2d/3d`), by PyTorch's definition:
//! `(sign(a) * relu(|a|) * k)^(1/p)` with `a = avg_pool(x^p)` (no padding,
//! `count_include_pad`) and `k` the kernel's number of taps, so `y =
//! (sum x^p)^(1/p)` over whole windows. `p = inf` is the max of `|x|`,
//! `p = -inf` the min of `|x|`.

use super::avg::{avg_backward, avg_forward, AvgScales};
use super::max::{max_pool_indexed, max_pool_values, scatter_max_grad};
use super::params::{AvgDivisor, AvgPoolParams, MaxPoolParams, Spatial};
use super::{check_grad_output, PlaneWindows};
use crate::error::{numel_or_err, Error, Result};
use crate::memory::{assume_written, uninit_f32};
use crate::shape::PoolGeometry;
use crate::tensor::Tensor;

/// Op names by spatial rank, for errors.
const NAMES: [&str; 3] = ["lp_pool1d", "lp_pool2d", "lp_pool3d"];
const BACKWARD: [&str; 3] = [
    "lp_pool1d_backward",
    "lp_pool2d_backward",
    "lp_pool3d_backward",
];

/// Parameters of power-average pooling over `N` spatial axes
/// (`nn.LPPool1d/2d/3d`).
///
/// ```
/// use convlab::ops::pool::LpPool2dParams;
/// let p = LpPool2dParams::new(2.0, 3).stride(2).ceil_mode(true);
/// assert_eq!(p.norm_type, 2.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LpPoolParams<const N: usize> {
    /// The power `p` (not 0; `±inf` pool `|x|` by max and min).
    pub norm_type: f64,
    /// Window size.
    pub kernel_size: Spatial<N>,
    /// Step between windows; `None` means `kernel_size` (PyTorch's default).
    pub stride: Option<Spatial<N>>,
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

/// [`LpPoolParams`] of `F.lp_pool1d`.
pub type LpPool1dParams = LpPoolParams<1>;
/// [`LpPoolParams`] of `F.lp_pool2d`.
pub type LpPool2dParams = LpPoolParams<2>;
/// [`LpPoolParams`] of `F.lp_pool3d`.
pub type LpPool3dParams = LpPoolParams<3>;

impl<const N: usize> LpPoolParams<N> {
    /// Power `norm_type` over `kernel_size` windows, stride = kernel,
    /// floor mode (PyTorch's defaults).
    pub fn new(norm_type: f64, kernel_size: impl Into<Spatial<N>>) -> Self {
        LpPoolParams {
            norm_type,
            kernel_size: kernel_size.into(),
            stride: None,
            ceil_mode: false,
        }
    }
    /// Set the stride.
    pub fn stride(mut self, stride: impl Into<Spatial<N>>) -> Self {
        self.stride = Some(stride.into());
        self
    }
    /// Set `ceil_mode`.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// The average pooling the power-average runs on.
    fn avg(&self) -> AvgPoolParams<N> {
        let mut p = AvgPoolParams::new(self.kernel_size).ceil_mode(self.ceil_mode);
        p.stride = self.stride;
        p
    }

    /// The max pooling of `|x|` that `p = ±inf` runs on.
    fn max(&self) -> MaxPoolParams<N> {
        let mut p = MaxPoolParams::new(self.kernel_size).ceil_mode(self.ceil_mode);
        p.stride = self.stride;
        p
    }

    /// The validated geometry for an input of `input_shape`.
    ///
    /// # Errors
    /// A `norm_type` of 0, and those of [`AvgPoolParams::geometry`].
    pub fn geometry(&self, op: &'static str, input_shape: &[usize]) -> Result<PoolGeometry> {
        if self.norm_type == 0.0 {
            return Err(Error::param(
                op,
                "norm_type",
                "0 is invalid: must be a non-zero value",
            ));
        }
        if self.norm_type.is_infinite() {
            self.max().geometry(op, input_shape)
        } else {
            self.avg().geometry(op, input_shape)
        }
    }
}

/// `torch.sign`: 1, -1, or 0 (NaN stays NaN).
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else if v.is_nan() {
        v
    } else {
        0.0
    }
}

/// `f(a, b)` elementwise over two tensors of `a`'s shape.
fn zip_with(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32) -> Result<Tensor> {
    debug_assert_eq!(a.numel(), b.numel());
    let data = a.data().iter().zip(b.data()).map(|(&x, &y)| f(x, y));
    Tensor::from_vec(data.collect(), a.shape())
}

/// The window's number of taps, PyTorch's `kd * kh * kw` factor.
fn taps(g: &PoolGeometry) -> f32 {
    g.axes.iter().map(|a| a.kernel as f32).product()
}

/// Power-average pooling over the last `N` axes of `(N, C, *spatial)` or
/// `(C, *spatial)` (PyTorch's `F.lp_pool1d/2d/3d`, which [`lp_pool1d`],
/// [`lp_pool2d`] and [`lp_pool3d`] name). Computed in f32 as PyTorch
/// does: a negative `x^p` sum gives NaN for a fractional `1/p`.
///
/// ```
/// use convlab::{ops::pool::{lp_pool, LpPool1dParams}, Tensor};
/// let x = Tensor::from_slice(&[3.0, 4.0, 6.0, 8.0], &[1, 1, 4])?;
/// let y = lp_pool(&x, &LpPool1dParams::new(2.0, 2))?;
/// assert_eq!(y.data(), &[5.0, 10.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`LpPoolParams::geometry`].
pub fn lp_pool<const N: usize>(input: &Tensor, p: &LpPoolParams<N>) -> Result<Tensor> {
    let op = NAMES[N - 1];
    let g = p.geometry(op, input.shape())?;
    let abs = || input.map(f32::abs);
    if p.norm_type == f64::INFINITY {
        return max_pool_values(op, &g, &abs());
    }
    if p.norm_type == f64::NEG_INFINITY {
        return Ok(max_pool_values(op, &g, &abs().map(|v| -v))?.map(|v| -v));
    }
    let (a, _) = power_average(op, &g, p.norm_type, input)?;
    let (k, inv_p) = (taps(&g), (1.0 / p.norm_type) as f32);
    Ok(a.map(|a| (sign(a) * a.abs() * k).powf(inv_p)))
}

/// `avg_pool(x^p)` with `count_include_pad` and its windows (`x^p` in f32).
fn power_average(
    op: &'static str,
    g: &PoolGeometry,
    norm_type: f64,
    input: &Tensor,
) -> Result<(Tensor, PlaneWindows)> {
    let pw = PlaneWindows::of(g);
    let exp = norm_type as f32;
    let powered = input.map(|v| v.powf(exp));
    let shape = g.out_shape();
    let mut out = uninit_f32(op, numel_or_err(op, &shape)?)?;
    let scales = AvgScales::new(&pw, AvgDivisor::IncludePad);
    avg_forward(&pw, &scales, powered.data(), &mut out);
    // SAFETY: `avg_forward` writes every output element.
    let a = Tensor::from_vec(unsafe { assume_written(out) }, &shape)?;
    Ok((a, pw))
}

/// Gradient of [`lp_pool`] with respect to its input, PyTorch's autograd
/// through its definition: the chain through `pow(1/p)`, the scale by
/// `k`, `sign(a) * relu(|a|)` (0 where `a` is 0: "if the sum of all
/// inputs to the power of p is zero, the gradient is set to zero"), the
/// average pooling and `pow(p)`. For `p = ±inf`, the max (or min) of
/// `|x|`'s gradient times `sign(x)`.
///
/// # Errors
/// Those of [`lp_pool`], and a `grad_output` of another shape than the
/// output.
pub fn lp_pool_backward<const N: usize>(
    input: &Tensor,
    grad_output: &Tensor,
    p: &LpPoolParams<N>,
) -> Result<Tensor> {
    let op = BACKWARD[N - 1];
    let g = p.geometry(op, input.shape())?;
    check_grad_output(op, input.shape(), &g.out_shape(), grad_output)?;
    if p.norm_type.is_infinite() {
        let abs = if p.norm_type > 0.0 {
            input.map(f32::abs)
        } else {
            input.map(|v| -v.abs())
        };
        let (_, idx) = max_pool_indexed(op, &g, &abs)?;
        let gx = scatter_max_grad(op, N, input.shape(), &idx, grad_output)?;
        return zip_with(&gx, input, |g, x| g * sign(x));
    }
    let (a, pw) = power_average(op, &g, p.norm_type, input)?;
    let (k, inv_p) = (taps(&g), 1.0 / p.norm_type);
    let (inv_p32, inv_p_minus_1) = (inv_p as f32, (inv_p - 1.0) as f32);
    // d/da of (sign(a) * relu(|a|) * k)^(1/p), for each output.
    let ga = zip_with(grad_output, &a, |gy, a| {
        let z = sign(a) * a.abs() * k;
        let gz = gy * (inv_p32 * z.powf(inv_p_minus_1));
        if a.abs() > 0.0 || a.is_nan() {
            gz * k * sign(a) * sign(a)
        } else {
            0.0
        }
    })?;
    let mut buf = uninit_f32(op, input.numel())?;
    let scales = AvgScales::new(&pw, AvgDivisor::IncludePad);
    avg_backward(&pw, &scales, ga.data(), &mut buf);
    // SAFETY: `avg_backward` writes every element.
    let gxp = Tensor::from_vec(unsafe { assume_written(buf) }, input.shape())?;
    let exp = p.norm_type as f32;
    let exp_minus_1 = (p.norm_type - 1.0) as f32;
    zip_with(&gxp, input, |g, x| g * (exp * x.powf(exp_minus_1)))
}

/// PyTorch's `F.lp_pool1d`: [`lp_pool`].
///
/// # Errors
/// See [`lp_pool`].
pub fn lp_pool1d(input: &Tensor, p: &LpPool1dParams) -> Result<Tensor> {
    lp_pool(input, p)
}
/// PyTorch's `F.lp_pool2d`: [`lp_pool`].
///
/// # Errors
/// See [`lp_pool`].
pub fn lp_pool2d(input: &Tensor, p: &LpPool2dParams) -> Result<Tensor> {
    lp_pool(input, p)
}
/// PyTorch's `F.lp_pool3d`: [`lp_pool`].
///
/// # Errors
/// See [`lp_pool`].
pub fn lp_pool3d(input: &Tensor, p: &LpPool3dParams) -> Result<Tensor> {
    lp_pool(input, p)
}
/// Gradient of [`lp_pool1d`]: [`lp_pool_backward`].
///
/// # Errors
/// See [`lp_pool_backward`].
pub fn lp_pool1d_backward(
    input: &Tensor,
    grad_output: &Tensor,
    p: &LpPool1dParams,
) -> Result<Tensor> {
    lp_pool_backward(input, grad_output, p)
}
/// Gradient of [`lp_pool2d`]: [`lp_pool_backward`].
///
/// # Errors
/// See [`lp_pool_backward`].
pub fn lp_pool2d_backward(
    input: &Tensor,
    grad_output: &Tensor,
    p: &LpPool2dParams,
) -> Result<Tensor> {
    lp_pool_backward(input, grad_output, p)
}
/// Gradient of [`lp_pool3d`]: [`lp_pool_backward`].
///
/// # Errors
/// See [`lp_pool_backward`].
pub fn lp_pool3d_backward(
    input: &Tensor,
    grad_output: &Tensor,
    p: &LpPool3dParams,
) -> Result<Tensor> {
    lp_pool_backward(input, grad_output, p)
}
