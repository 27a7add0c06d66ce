//! `conv1d` and `conv_transpose1d`: PyTorch's `F.conv1d` and
//! `F.conv_transpose1d` on `[N, C, L]` (or unbatched `[C, L]`), with their
//! backward passes. A 1-D convolution is a 2-D one of height 1, so each
//! runs as [`conv2d`] / [`conv_transpose2d`] on the operands reshaped to
//! `[N, C, 1, L]` (one copy of each input; results are reshaped in place)
//! and the same dispatcher picks among every 2-D algorithm that applies
//! to one-row planes; errors name the 1-D op.

use super::conv2d::{conv2d, conv2d_backward, Conv2dGrads, Conv2dParams};
use super::conv_transpose2d::{conv_transpose2d, conv_transpose2d_backward, ConvTranspose2dParams};
use crate::error::{Dims, Error, Result};
use crate::shape::{Padding, PaddingMode, Pair};
use crate::tensor::Tensor;

/// The padding of a 1-D convolution: PyTorch's `int`, `'same'` or
/// `'valid'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding1d {
    /// This many on each end.
    Both(usize),
    /// Output as long as the input (stride 1 only).
    Same,
    /// No padding (the default, as `padding=0`).
    Valid,
}

impl From<usize> for Padding1d {
    fn from(p: usize) -> Self {
        Padding1d::Both(p)
    }
}

/// Parameters of [`conv1d`], with PyTorch's defaults (stride 1, padding 0,
/// dilation 1, groups 1, zeros padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dParams {
    pub stride: usize,
    pub padding: Padding1d,
    pub dilation: usize,
    pub groups: usize,
    pub padding_mode: PaddingMode,
}

impl Default for Conv1dParams {
    fn default() -> Self {
        Conv1dParams {
            stride: 1,
            padding: Padding1d::Valid,
            dilation: 1,
            groups: 1,
            padding_mode: PaddingMode::Zeros,
        }
    }
}

impl Conv1dParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    /// Set the padding (`2`, `Padding1d::Same`).
    pub fn padding(mut self, p: impl Into<Padding1d>) -> Self {
        self.padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }
    /// Set the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Set how padded values are made.
    pub fn padding_mode(mut self, m: PaddingMode) -> Self {
        self.padding_mode = m;
        self
    }

    fn as_2d(&self) -> Conv2dParams {
        Conv2dParams {
            stride: Pair(1, self.stride),
            padding: match self.padding {
                Padding1d::Both(p) => Padding::sides(0, 0, p, p),
                Padding1d::Same => Padding::Same,
                Padding1d::Valid => Padding::Valid,
            },
            dilation: Pair(1, self.dilation),
            groups: self.groups,
            padding_mode: self.padding_mode,
        }
    }
}

/// Parameters of [`conv_transpose1d`], with PyTorch's defaults (stride 1,
/// padding 0, output_padding 0, dilation 1, groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose1dParams {
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for ConvTranspose1dParams {
    fn default() -> Self {
        ConvTranspose1dParams {
            stride: 1,
            padding: 0,
            output_padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl ConvTranspose1dParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    /// Set the padding (removed from each end of the full output).
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }
    /// Set the extra length added to one end of the output.
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = p;
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }
    /// Set the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    fn as_2d(&self) -> ConvTranspose2dParams {
        ConvTranspose2dParams {
            stride: Pair(1, self.stride),
            padding: Pair(0, self.padding),
            output_padding: Pair(0, self.output_padding),
            dilation: Pair(1, self.dilation),
            groups: self.groups,
        }
    }
}

/// The weight layouts errors name.
const FORWARD_LAYOUT: &str = "(C_out, C_in / groups, K)";
const TRANSPOSED_LAYOUT: &str = "(C_in, C_out / groups, K)";

/// `[N, C, L]` or `[C, L]` reshaped to `[N, C, 1, L]`, and whether the
/// input was unbatched.
fn input_view(op: &'static str, what: &str, x: &Tensor) -> Result<(Tensor, bool)> {
    let (shape, unbatched) = match *x.shape() {
        [n, c, l] => (vec![n, c, 1, l], false),
        [c, l] => (vec![1, c, 1, l], true),
        _ => {
            return Err(Error::shape(
                op,
                format!(
                    "{what} must be 2-D (C, L) or 3-D (N, C, L) but has shape {}",
                    Dims(x.shape())
                ),
            ))
        }
    };
    Ok((x.reshape(&shape)?, unbatched))
}

/// A 3-D weight `[A, B, K]` as `[A, B, 1, K]`.
fn weight_view(op: &'static str, layout: &str, w: &Tensor) -> Result<Tensor> {
    match *w.shape() {
        [a, b, k] => w.reshape(&[a, b, 1, k]),
        _ => Err(Error::shape(
            op,
            format!(
                "weight must be 3-D {layout} but has shape {}",
                Dims(w.shape())
            ),
        )),
    }
}

/// A `[N, C, 1, L]` result back in the caller's rank.
fn output_of(y: Tensor, unbatched: bool) -> Result<Tensor> {
    let s = y.shape().to_vec();
    if unbatched {
        y.into_shape(&[s[1], s[3]])
    } else {
        y.into_shape(&[s[0], s[1], s[3]])
    }
}

fn grads_of(g: Conv2dGrads, unbatched: bool) -> Result<Conv2dGrads> {
    let w = g.grad_weight.shape().to_vec();
    Ok(Conv2dGrads {
        grad_input: output_of(g.grad_input, unbatched)?,
        grad_weight: g.grad_weight.into_shape(&[w[0], w[1], w[3]])?,
        grad_bias: g.grad_bias,
    })
}

/// A 1-D forward through its 2-D form: `input` and `weight` (laid out as
/// `layout` says) reshaped to height 1, `run` on them, errors relabelled
/// `op`, the result back in the caller's rank.
fn forward_1d(
    op: &'static str,
    layout: &str,
    input: &Tensor,
    weight: &Tensor,
    run: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (x, unbatched) = input_view(op, "input", input)?;
    let w = weight_view(op, layout, weight)?;
    output_of(run(&x, &w).map_err(|e| e.with_op(op))?, unbatched)
}

/// A 1-D backward through its 2-D form, as [`forward_1d`], with
/// `grad_output` reshaped too and the gradients reshaped back.
fn backward_1d(
    op: &'static str,
    layout: &str,
    [input, weight, grad_output]: [&Tensor; 3],
    run: impl FnOnce(&Tensor, &Tensor, &Tensor) -> Result<Conv2dGrads>,
) -> Result<Conv2dGrads> {
    let (x, unbatched) = input_view(op, "input", input)?;
    let w = weight_view(op, layout, weight)?;
    let (go, _) = input_view(op, "grad_output", grad_output)?;
    grads_of(run(&x, &w, &go).map_err(|e| e.with_op(op))?, unbatched)
}

/// 1-D cross-correlation, as `torch.nn.functional.conv1d`: input
/// `[N, C_in, L]` (or `[C_in, L]`), weight `[C_out, C_in / groups, K]`,
/// bias `[C_out]`.
///
/// ```
/// use convlab::ops::{conv1d, Conv1dParams};
/// use convlab::Tensor;
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 4])?;
/// let w = Tensor::from_vec(vec![1.0, -1.0], &[1, 1, 2])?;
/// let y = conv1d(&x, &w, None, &Conv1dParams::new())?;
/// assert_eq!(y.data(), &[-1.0, -1.0, -1.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// As `F.conv1d`: ranks, channel counts against groups, a kernel longer
/// than the padded input, zero stride or dilation, `'same'` with a stride.
pub fn conv1d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv1dParams,
) -> Result<Tensor> {
    forward_1d("conv1d", FORWARD_LAYOUT, input, weight, |x, w| {
        conv2d(x, w, bias, &p.as_2d())
    })
}

/// All three gradients of [`conv1d`] (`grad_bias` when `with_bias`), in the
/// 1-D shapes.
pub fn conv1d_backward(
    input: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    grad_output: &Tensor,
    p: &Conv1dParams,
) -> Result<Conv2dGrads> {
    let operands = [input, weight, grad_output];
    backward_1d("conv1d_backward", FORWARD_LAYOUT, operands, |x, w, go| {
        conv2d_backward(x, w, with_bias, go, &p.as_2d())
    })
}

/// The transposed 1-D convolution, as `torch.nn.functional.conv_transpose1d`:
/// input `[N, C_in, L]` (or `[C_in, L]`), weight `[C_in, C_out / groups, K]`.
pub fn conv_transpose1d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTranspose1dParams,
) -> Result<Tensor> {
    forward_1d(
        "conv_transpose1d",
        TRANSPOSED_LAYOUT,
        input,
        weight,
        |x, w| conv_transpose2d(x, w, bias, &p.as_2d()),
    )
}

/// All three gradients of [`conv_transpose1d`], in the 1-D shapes.
pub fn conv_transpose1d_backward(
    input: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    grad_output: &Tensor,
    p: &ConvTranspose1dParams,
) -> Result<Conv2dGrads> {
    let operands = [input, weight, grad_output];
    backward_1d(
        "conv_transpose1d_backward",
        TRANSPOSED_LAYOUT,
        operands,
        |x, w, go| conv_transpose2d_backward(x, w, with_bias, go, &p.as_2d()),
    )
}
