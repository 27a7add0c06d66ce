//! The functional ops with torch.nn.functional's names, argument order and
//! defaults, and their backward passes (`*_backward`, gradient first).
//!
//! Each binding is the same few lines: arguments converted (arrays copied
//! while the GIL is held, sizes checked against the op's name), one
//! library call in [`run`] (GIL released; on the thread pool when the
//! work would split), the result handed to NumPy without a copy. Adding an
//! op is one such function plus its line in [`register`].

use crate::convert::{
    indices_from_python, indices_to_numpy, padding_mode, shape_arg, to_numpy, Array, Ints,
    OutputSize, PaddingArg,
};
use crate::run::{run, CONV_SPLIT_MACS, ELEMS_SPLIT};
use convlab::ops::{
    self, AvgPool2dParams, Conv2dParams, ConvTranspose2dParams, MaxPool2dParams, UnfoldParams,
};
use convlab::{PaddingMode, Tensor};
use numpy::PyArrayDyn;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

type F32Array<'py> = Bound<'py, PyArrayDyn<f32>>;

/// Whether a convolution of `input` with `weight` is big enough to split:
/// its multiply-adds at stride 1 (an upper bound), the library's measure.
fn conv_splits(input: &Tensor, weight: &Tensor) -> bool {
    let per_position: u128 = weight.shape().iter().skip(1).map(|&d| d as u128).product();
    let c_out = weight.shape().first().copied().unwrap_or(1) as u128;
    let positions =
        input.numel() as u128 / input.shape().get(1).copied().unwrap_or(1).max(1) as u128;
    positions * c_out * per_position >= CONV_SPLIT_MACS
}

fn elems_split(t: &Tensor) -> bool {
    t.numel() >= ELEMS_SPLIT
}

/// An optional gradient as an array or `None`.
fn opt_numpy(py: Python<'_>, t: Option<Tensor>) -> PyResult<Option<F32Array<'_>>> {
    t.map(|t| to_numpy(py, t)).transpose()
}

fn conv_params(
    op: &str,
    stride: &Ints,
    padding: &PaddingArg,
    dilation: &Ints,
    groups: i64,
    mode: &str,
) -> PyResult<Conv2dParams> {
    Ok(Conv2dParams::new()
        .stride(stride.pair(op, "stride", 0)?)
        .padding(padding.resolve(op)?)
        .dilation(dilation.pair(op, "dilation", 0)?)
        .groups(non_negative(op, "groups", groups)?)
        .padding_mode(padding_mode(op, mode)?))
}

fn non_negative(op: &str, name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v)
        .map_err(|_| PyValueError::new_err(format!("{op}: {name} must be non-negative, got {v}")))
}

/// 2-D convolution (cross-correlation), `torch.nn.functional.conv2d`.
/// `padding_mode` (keyword only, convlab's) pads with `"reflect"`,
/// `"replicate"` or `"circular"` values instead of zeros, as
/// `torch.nn.Conv2d(padding_mode=...)` does.
#[pyfunction]
#[pyo3(
    signature = (input, weight, bias=None, stride=Ints::both(1), padding=PaddingArg::zero(), dilation=Ints::both(1), groups=1, *, padding_mode="zeros"),
    text_signature = "(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode='zeros')"
)]
fn conv2d<'py>(
    py: Python<'py>,
    input: Array,
    weight: Array,
    bias: Option<Array>,
    stride: Ints,
    padding: PaddingArg,
    dilation: Ints,
    groups: i64,
    padding_mode: &str,
) -> PyResult<F32Array<'py>> {
    let p = conv_params("conv2d", &stride, &padding, &dilation, groups, padding_mode)?;
    let (x, w, b) = (input.0, weight.0, bias.map(|b| b.0));
    let y = run(py, conv_splits(&x, &w), || {
        ops::conv2d(&x, &w, b.as_ref(), &p)
    })?;
    to_numpy(py, y)
}

/// The gradients of [`conv2d`] for `grad_output`: `(grad_input,
/// grad_weight, grad_bias)`, each `None` where `output_mask` is false.
#[pyfunction]
#[pyo3(
    signature = (grad_output, input, weight, stride=Ints::both(1), padding=PaddingArg::zero(), dilation=Ints::both(1), groups=1, *, padding_mode="zeros", output_mask=(true, true, true)),
    text_signature = "(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, *, padding_mode='zeros', output_mask=(True, True, True))"
)]
fn conv2d_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input: Array,
    weight: Array,
    stride: Ints,
    padding: PaddingArg,
    dilation: Ints,
    groups: i64,
    padding_mode: &str,
    output_mask: (bool, bool, bool),
) -> PyResult<Bound<'py, PyTuple>> {
    let op = "conv2d_backward";
    let p = conv_params(op, &stride, &padding, &dilation, groups, padding_mode)?;
    let (go, x, w) = (grad_output.0, input.0, weight.0);
    let (want_x, want_w, want_b) = output_mask;
    let (gx, gw, gb) = run(py, conv_splits(&x, &w), || {
        let gb = if want_b {
            Some(ops::conv2d_backward_bias(&go)?)
        } else {
            None
        };
        Ok(match (want_x, want_w) {
            (true, true) => {
                let g = ops::conv2d_backward(&x, &w, false, &go, &p)?;
                (Some(g.grad_input), Some(g.grad_weight), gb)
            }
            (true, false) => (
                Some(ops::conv2d_backward_input(x.shape(), &w, &go, &p)?),
                None,
                gb,
            ),
            (false, true) => (
                None,
                Some(ops::conv2d_backward_weight(&x, w.shape(), &go, &p)?),
                gb,
            ),
            (false, false) => (None, None, gb),
        })
    })?;
    PyTuple::new(
        py,
        [opt_numpy(py, gx)?, opt_numpy(py, gw)?, opt_numpy(py, gb)?],
    )
}

fn transpose_params(
    op: &str,
    stride: &Ints,
    padding: &Ints,
    output_padding: &Ints,
    groups: i64,
    dilation: &Ints,
) -> PyResult<ConvTranspose2dParams> {
    Ok(ConvTranspose2dParams::new()
        .stride(stride.pair(op, "stride", 0)?)
        .padding(padding.pair(op, "padding", 0)?)
        .output_padding(output_padding.pair(op, "output_padding", 0)?)
        .groups(non_negative(op, "groups", groups)?)
        .dilation(dilation.pair(op, "dilation", 0)?))
}

/// Transposed convolution, `torch.nn.functional.conv_transpose2d` (note
/// PyTorch's order: `groups` before `dilation`).
#[pyfunction]
#[pyo3(
    signature = (input, weight, bias=None, stride=Ints::both(1), padding=Ints::both(0), output_padding=Ints::both(0), groups=1, dilation=Ints::both(1)),
    text_signature = "(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1)"
)]
fn conv_transpose2d<'py>(
    py: Python<'py>,
    input: Array,
    weight: Array,
    bias: Option<Array>,
    stride: Ints,
    padding: Ints,
    output_padding: Ints,
    groups: i64,
    dilation: Ints,
) -> PyResult<F32Array<'py>> {
    let op = "conv_transpose2d";
    let p = transpose_params(op, &stride, &padding, &output_padding, groups, &dilation)?;
    let (x, w, b) = (input.0, weight.0, bias.map(|b| b.0));
    let y = run(py, conv_splits(&x, &w), || {
        ops::conv_transpose2d(&x, &w, b.as_ref(), &p)
    })?;
    to_numpy(py, y)
}

/// The gradients of [`conv_transpose2d`]: `(grad_input, grad_weight,
/// grad_bias)`, each `None` where `output_mask` is false.
#[pyfunction]
#[pyo3(
    signature = (grad_output, input, weight, stride=Ints::both(1), padding=Ints::both(0), output_padding=Ints::both(0), groups=1, dilation=Ints::both(1), *, output_mask=(true, true, true)),
    text_signature = "(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *, output_mask=(True, True, True))"
)]
fn conv_transpose2d_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input: Array,
    weight: Array,
    stride: Ints,
    padding: Ints,
    output_padding: Ints,
    groups: i64,
    dilation: Ints,
    output_mask: (bool, bool, bool),
) -> PyResult<Bound<'py, PyTuple>> {
    let op = "conv_transpose2d_backward";
    let p = transpose_params(op, &stride, &padding, &output_padding, groups, &dilation)?;
    let (go, x, w) = (grad_output.0, input.0, weight.0);
    let g = run(py, conv_splits(&go, &w), || {
        ops::conv_transpose2d_backward(&x, &w, output_mask.2, &go, &p)
    })?;
    let (want_x, want_w, _) = output_mask;
    PyTuple::new(
        py,
        [
            opt_numpy(py, want_x.then_some(g.grad_input))?,
            opt_numpy(py, want_w.then_some(g.grad_weight))?,
            opt_numpy(py, g.grad_bias)?,
        ],
    )
}

fn max_pool_params(
    op: &str,
    kernel_size: &Ints,
    stride: Option<&Ints>,
    padding: &Ints,
    dilation: &Ints,
    ceil_mode: bool,
) -> PyResult<MaxPool2dParams> {
    let mut p = MaxPool2dParams::new(kernel_size.pair(op, "kernel_size", 0)?)
        .padding(padding.pair(op, "padding", 0)?)
        .dilation(dilation.pair(op, "dilation", 0)?)
        .ceil_mode(ceil_mode);
    if let Some(s) = stride.filter(|s| !s.is_empty()) {
        p = p.stride(s.pair(op, "stride", 0)?);
    }
    Ok(p)
}

/// Max pooling, `torch.nn.functional.max_pool2d`; with `return_indices`,
/// `(output, indices)` with PyTorch's flat `h * W + w` int64 indices.
#[pyfunction]
#[pyo3(
    signature = (input, kernel_size, stride=None, padding=Ints::both(0), dilation=Ints::both(1), ceil_mode=false, return_indices=false),
    text_signature = "(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False)"
)]
fn max_pool2d<'py>(
    py: Python<'py>,
    input: Array,
    kernel_size: Ints,
    stride: Option<Ints>,
    padding: Ints,
    dilation: Ints,
    ceil_mode: bool,
    return_indices: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let op = "max_pool2d";
    let p = max_pool_params(
        op,
        &kernel_size,
        stride.as_ref(),
        &padding,
        &dilation,
        ceil_mode,
    )?;
    let x = input.0;
    if return_indices {
        let (y, idx) = run(py, elems_split(&x), || ops::max_pool2d_with_indices(&x, &p))?;
        let shape = y.shape().to_vec();
        let pair = (to_numpy(py, y)?, indices_to_numpy(py, idx, &shape)?);
        return Ok(pair.into_pyobject(py)?.into_any());
    }
    let y = run(py, elems_split(&x), || ops::max_pool2d(&x, &p))?;
    Ok(to_numpy(py, y)?.into_any())
}

/// The gradient of [`max_pool2d`]: `grad_output` added at each window's
/// maximum (`indices` from `return_indices=True`).
#[pyfunction]
#[pyo3(signature = (grad_output, input_shape, indices))]
fn max_pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input_shape: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
) -> PyResult<F32Array<'py>> {
    let op = "max_pool2d_backward";
    let shape = shape_arg(op, input_shape)?;
    let idx = indices_from_python(op, indices)?;
    let go = grad_output.0;
    let gx = run(py, elems_split(&go), || {
        ops::max_pool2d_backward(&shape, &idx, &go)
    })?;
    to_numpy(py, gx)
}

fn avg_pool_params(
    op: &str,
    kernel_size: &Ints,
    stride: Option<&Ints>,
    padding: &Ints,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<AvgPool2dParams> {
    let mut p = AvgPool2dParams::new(kernel_size.pair(op, "kernel_size", 0)?)
        .padding(padding.pair(op, "padding", 0)?)
        .ceil_mode(ceil_mode)
        .count_include_pad(count_include_pad);
    if let Some(s) = stride.filter(|s| !s.is_empty()) {
        p = p.stride(s.pair(op, "stride", 0)?);
    }
    if let Some(d) = divisor_override {
        p = p.divisor_override(non_negative(op, "divisor_override", d)?);
    }
    Ok(p)
}

/// Average pooling, `torch.nn.functional.avg_pool2d`.
#[pyfunction]
#[pyo3(
    signature = (input, kernel_size, stride=None, padding=Ints::both(0), ceil_mode=false, count_include_pad=true, divisor_override=None),
    text_signature = "(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None)"
)]
fn avg_pool2d<'py>(
    py: Python<'py>,
    input: Array,
    kernel_size: Ints,
    stride: Option<Ints>,
    padding: Ints,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<F32Array<'py>> {
    let p = avg_pool_params(
        "avg_pool2d",
        &kernel_size,
        stride.as_ref(),
        &padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )?;
    let x = input.0;
    let y = run(py, elems_split(&x), || ops::avg_pool2d(&x, &p))?;
    to_numpy(py, y)
}

/// The gradient of [`avg_pool2d`] for an input of `input_shape`.
#[pyfunction]
#[pyo3(
    signature = (grad_output, input_shape, kernel_size, stride=None, padding=Ints::both(0), ceil_mode=false, count_include_pad=true, divisor_override=None),
    text_signature = "(grad_output, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None)"
)]
fn avg_pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input_shape: &Bound<'py, PyAny>,
    kernel_size: Ints,
    stride: Option<Ints>,
    padding: Ints,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<F32Array<'py>> {
    let op = "avg_pool2d_backward";
    let p = avg_pool_params(
        op,
        &kernel_size,
        stride.as_ref(),
        &padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )?;
    let shape = shape_arg(op, input_shape)?;
    let go = grad_output.0;
    let gx = run(py, elems_split(&go), || {
        ops::avg_pool2d_backward(&shape, &go, &p)
    })?;
    to_numpy(py, gx)
}

/// Adaptive average pooling, `torch.nn.functional.adaptive_avg_pool2d`
/// (`None` in `output_size` keeps that side of the input).
#[pyfunction]
#[pyo3(signature = (input, output_size))]
fn adaptive_avg_pool2d<'py>(
    py: Python<'py>,
    input: Array,
    output_size: OutputSize,
) -> PyResult<F32Array<'py>> {
    let x = input.0;
    let size = output_size.resolve("adaptive_avg_pool2d", x.shape())?;
    let y = run(py, elems_split(&x), || ops::adaptive_avg_pool2d(&x, size))?;
    to_numpy(py, y)
}

/// The gradient of [`adaptive_avg_pool2d`] for an input of `input_shape`.
#[pyfunction]
#[pyo3(signature = (grad_output, input_shape))]
fn adaptive_avg_pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input_shape: &Bound<'py, PyAny>,
) -> PyResult<F32Array<'py>> {
    let shape = shape_arg("adaptive_avg_pool2d_backward", input_shape)?;
    let go = grad_output.0;
    let gx = run(py, elems_split(&go), || {
        ops::adaptive_avg_pool2d_backward(&shape, &go)
    })?;
    to_numpy(py, gx)
}

/// Adaptive max pooling, `torch.nn.functional.adaptive_max_pool2d`; with
/// `return_indices`, `(output, indices)`.
#[pyfunction]
#[pyo3(
    signature = (input, output_size, return_indices=false),
    text_signature = "(input, output_size, return_indices=False)"
)]
fn adaptive_max_pool2d<'py>(
    py: Python<'py>,
    input: Array,
    output_size: OutputSize,
    return_indices: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let x = input.0;
    let size = output_size.resolve("adaptive_max_pool2d", x.shape())?;
    let (y, idx) = run(py, elems_split(&x), || ops::adaptive_max_pool2d(&x, size))?;
    if return_indices {
        let shape = y.shape().to_vec();
        let pair = (to_numpy(py, y)?, indices_to_numpy(py, idx, &shape)?);
        return Ok(pair.into_pyobject(py)?.into_any());
    }
    Ok(to_numpy(py, y)?.into_any())
}

/// The gradient of [`adaptive_max_pool2d`] through its `indices`.
#[pyfunction]
#[pyo3(signature = (grad_output, input_shape, indices))]
fn adaptive_max_pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input_shape: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
) -> PyResult<F32Array<'py>> {
    let op = "adaptive_max_pool2d_backward";
    let shape = shape_arg(op, input_shape)?;
    let idx = indices_from_python(op, indices)?;
    let go = grad_output.0;
    let gx = run(py, elems_split(&go), || {
        ops::adaptive_max_pool2d_backward(&shape, &idx, &go)
    })?;
    to_numpy(py, gx)
}

fn unfold_params(
    op: &str,
    kernel_size: &Ints,
    dilation: &Ints,
    padding: &Ints,
    stride: &Ints,
) -> PyResult<UnfoldParams> {
    Ok(UnfoldParams::new(kernel_size.pair(op, "kernel_size", 0)?)
        .dilation(dilation.pair(op, "dilation", 0)?)
        .padding(padding.pair(op, "padding", 0)?)
        .stride(stride.pair(op, "stride", 0)?))
}

/// Sliding blocks as columns (im2col), `torch.nn.functional.unfold`.
#[pyfunction]
#[pyo3(
    signature = (input, kernel_size, dilation=Ints::both(1), padding=Ints::both(0), stride=Ints::both(1)),
    text_signature = "(input, kernel_size, dilation=1, padding=0, stride=1)"
)]
fn unfold<'py>(
    py: Python<'py>,
    input: Array,
    kernel_size: Ints,
    dilation: Ints,
    padding: Ints,
    stride: Ints,
) -> PyResult<F32Array<'py>> {
    let p = unfold_params("unfold", &kernel_size, &dilation, &padding, &stride)?;
    let x = input.0;
    let y = run(py, elems_split(&x), || ops::unfold(&x, &p))?;
    to_numpy(py, y)
}

/// The gradient of [`unfold`] for an input of `input_shape` (a fold).
#[pyfunction]
#[pyo3(
    signature = (grad_output, input_shape, kernel_size, dilation=Ints::both(1), padding=Ints::both(0), stride=Ints::both(1)),
    text_signature = "(grad_output, input_shape, kernel_size, dilation=1, padding=0, stride=1)"
)]
fn unfold_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input_shape: &Bound<'py, PyAny>,
    kernel_size: Ints,
    dilation: Ints,
    padding: Ints,
    stride: Ints,
) -> PyResult<F32Array<'py>> {
    let op = "unfold_backward";
    let p = unfold_params(op, &kernel_size, &dilation, &padding, &stride)?;
    let shape = shape_arg(op, input_shape)?;
    let go = grad_output.0;
    let gx = run(py, elems_split(&go), || {
        ops::unfold_backward(&shape, &go, &p)
    })?;
    to_numpy(py, gx)
}

/// Columns summed back into an image (col2im), `torch.nn.functional.fold`.
#[pyfunction]
#[pyo3(
    signature = (input, output_size, kernel_size, dilation=Ints::both(1), padding=Ints::both(0), stride=Ints::both(1)),
    text_signature = "(input, output_size, kernel_size, dilation=1, padding=0, stride=1)"
)]
fn fold<'py>(
    py: Python<'py>,
    input: Array,
    output_size: Ints,
    kernel_size: Ints,
    dilation: Ints,
    padding: Ints,
    stride: Ints,
) -> PyResult<F32Array<'py>> {
    let op = "fold";
    let p = unfold_params(op, &kernel_size, &dilation, &padding, &stride)?;
    let size = output_size.pair(op, "output_size", 0)?;
    let x = input.0;
    let y = run(py, elems_split(&x), || ops::fold(&x, size, &p))?;
    to_numpy(py, y)
}

/// The gradient of [`fold`] (an unfold of `grad_output`).
#[pyfunction]
#[pyo3(
    signature = (grad_output, kernel_size, dilation=Ints::both(1), padding=Ints::both(0), stride=Ints::both(1)),
    text_signature = "(grad_output, kernel_size, dilation=1, padding=0, stride=1)"
)]
fn fold_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    kernel_size: Ints,
    dilation: Ints,
    padding: Ints,
    stride: Ints,
) -> PyResult<F32Array<'py>> {
    let p = unfold_params("fold_backward", &kernel_size, &dilation, &padding, &stride)?;
    let go = grad_output.0;
    let gx = run(py, elems_split(&go), || ops::fold_backward(&go, &p))?;
    to_numpy(py, gx)
}

/// PyTorch's `F.pad` arguments for the last two dimensions: `pad` is
/// `(left, right)` or `(left, right, top, bottom)`; `mode` one of
/// `"constant"` (zeros; `value` must be 0 or None), `"reflect"`,
/// `"replicate"`, `"circular"`. Returns `[top, bottom, left, right]`.
fn pad_args(
    op: &str,
    pad: &Ints,
    mode: &str,
    value: Option<f64>,
) -> PyResult<([usize; 4], PaddingMode)> {
    let mode = match mode {
        "constant" => {
            if value.is_some_and(|v| v != 0.0) {
                return Err(PyValueError::new_err(format!(
                    "{op}: value {} is not supported: convlab pads with zeros only",
                    value.unwrap_or(0.0)
                )));
            }
            PaddingMode::Zeros
        }
        "zeros" => PaddingMode::Zeros,
        other => padding_mode(op, other).map_err(|_| {
            PyValueError::new_err(format!(
                "{op}: mode '{other}' is invalid: expected 'constant', 'reflect', 'replicate' or 'circular'"
            ))
        })?,
    };
    let side = |v: i64| -> PyResult<usize> {
        usize::try_from(v).map_err(|_| {
            PyValueError::new_err(format!(
                "{op}: pad must be non-negative (cropping is not supported), got {v}"
            ))
        })
    };
    let sides = match pad.values() {
        [l, r] => [0, 0, side(*l)?, side(*r)?],
        [l, r, t, b] => [side(*t)?, side(*b)?, side(*l)?, side(*r)?],
        other => {
            return Err(PyValueError::new_err(format!(
                "{op}: pad must have 2 or 4 values (the last one or two dimensions), got {}",
                other.len()
            )))
        }
    };
    Ok((sides, mode))
}

/// Padding of the last two dimensions, `torch.nn.functional.pad` with a
/// pad of 2 or 4 non-negative sizes.
#[pyfunction]
#[pyo3(
    signature = (input, pad, mode="constant", value=None),
    text_signature = "(input, pad, mode='constant', value=None)"
)]
fn pad<'py>(
    py: Python<'py>,
    input: Array,
    pad: Ints,
    mode: &str,
    value: Option<f64>,
) -> PyResult<F32Array<'py>> {
    let (pads, mode) = pad_args("pad", &pad, mode, value)?;
    let x = input.0;
    let y = run(py, elems_split(&x), || ops::pad2d(&x, pads, mode))?;
    to_numpy(py, y)
}

/// The gradient of [`pad`] for an input of `input_shape`.
#[pyfunction]
#[pyo3(
    signature = (grad_output, input_shape, pad, mode="constant"),
    text_signature = "(grad_output, input_shape, pad, mode='constant')"
)]
fn pad_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    input_shape: &Bound<'py, PyAny>,
    pad: Ints,
    mode: &str,
) -> PyResult<F32Array<'py>> {
    let op = "pad_backward";
    let (pads, mode) = pad_args(op, &pad, mode, None)?;
    let shape = shape_arg(op, input_shape)?;
    let go = grad_output.0;
    let gx = run(py, elems_split(&go), || {
        ops::pad2d_backward(&go, &shape, pads, mode)
    })?;
    to_numpy(py, gx)
}

/// The chapter's `corr2d(X, K)`: 2-D cross-correlation of two matrices.
#[pyfunction]
fn corr2d<'py>(py: Python<'py>, x: Array, k: Array) -> PyResult<F32Array<'py>> {
    let (x, k) = (x.0, k.0);
    let y = run(py, conv_splits(&x, &k), || ops::corr2d(&x, &k))?;
    to_numpy(py, y)
}

/// The gradients `(grad_x, grad_k)` of [`corr2d`].
#[pyfunction]
fn corr2d_backward<'py>(
    py: Python<'py>,
    grad_output: Array,
    x: Array,
    k: Array,
) -> PyResult<(F32Array<'py>, F32Array<'py>)> {
    let (go, x, k) = (grad_output.0, x.0, k.0);
    let (gx, gk) = run(py, conv_splits(&x, &k), || {
        ops::corr2d_backward(&x, &k, &go)
    })?;
    Ok((to_numpy(py, gx)?, to_numpy(py, gk)?))
}

/// True 2-D convolution (the kernel flipped in both axes).
#[pyfunction]
fn convolve2d<'py>(py: Python<'py>, x: Array, k: Array) -> PyResult<F32Array<'py>> {
    let (x, k) = (x.0, k.0);
    let y = run(py, conv_splits(&x, &k), || ops::convolve2d(&x, &k))?;
    to_numpy(py, y)
}

/// `array` as PyTorch prints a tensor: `tensor([[19., 25.], [37., 43.]])`.
#[pyfunction]
fn format_tensor(array: Array) -> String {
    convlab::format_tensor(&array.0, "")
}

/// Adds every op to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv2d, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(conv_transpose2d, m)?)?;
    m.add_function(wrap_pyfunction!(conv_transpose2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(max_pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(max_pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(avg_pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(avg_pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_max_pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_max_pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(unfold, m)?)?;
    m.add_function(wrap_pyfunction!(unfold_backward, m)?)?;
    m.add_function(wrap_pyfunction!(fold, m)?)?;
    m.add_function(wrap_pyfunction!(fold_backward, m)?)?;
    m.add_function(wrap_pyfunction!(pad, m)?)?;
    m.add_function(wrap_pyfunction!(pad_backward, m)?)?;
    m.add_function(wrap_pyfunction!(corr2d, m)?)?;
    m.add_function(wrap_pyfunction!(corr2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(convolve2d, m)?)?;
    m.add_function(wrap_pyfunction!(format_tensor, m)?)?;
    Ok(())
}
