//! `conv_transpose2d`: PyTorch's `F.conv_transpose2d`, the adjoint of
//! `conv2d` with respect to its input. It reuses conv2d's kernels with roles
//! swapped: this op's forward is conv2d's input gradient, its input gradient
//! is conv2d's forward, and its weight gradient is conv2d's weight gradient
//! with input and output exchanged.
//!
//! Layouts: input `[N, C_in, H, W]` (or `[C_in, H, W]`), weight
//! `[C_in, C_out / groups, kh, kw]`, bias `[C_out]`.

use super::conv2d::{batched_dims, check_groups, check_weight, conv2d_backward_bias, Conv2dGrads};
use crate::drivers::conv::{self as driver, add_bias, Call, ConvPass};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::shape::{conv_transpose_out_len, ConvGeometry, Pair};
use crate::tensor::Tensor;

/// Parameters of [`conv_transpose2d`], PyTorch's defaults: stride 1,
/// padding 0, output_padding 0, dilation 1, groups 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    pub stride: Pair,
    pub padding: Pair,
    pub output_padding: Pair,
    pub dilation: Pair,
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        ConvTranspose2dParams {
            stride: Pair(1, 1),
            padding: Pair(0, 0),
            output_padding: Pair(0, 0),
            dilation: Pair(1, 1),
            groups: 1,
        }
    }
}

impl ConvTranspose2dParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the stride.
    pub fn stride(mut self, s: impl Into<Pair>) -> Self {
        self.stride = s.into();
        self
    }
    /// Set the padding (removed from each side of the full output).
    pub fn padding(mut self, p: impl Into<Pair>) -> Self {
        self.padding = p.into();
        self
    }
    /// Set the extra size added to one side of the output.
    pub fn output_padding(mut self, p: impl Into<Pair>) -> Self {
        self.output_padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: impl Into<Pair>) -> Self {
        self.dilation = d.into();
        self
    }
    /// Set the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

struct Plan {
    /// The conv2d whose input gradient this op is: its "input" is our output.
    geom: ConvGeometry,
    unbatched: bool,
}

impl Plan {
    fn output_shape(&self) -> Vec<usize> {
        let g = &self.geom;
        if self.unbatched {
            vec![g.c_in, g.h, g.w]
        } else {
            vec![g.n, g.c_in, g.h, g.w]
        }
    }
    fn input_shape(&self) -> Vec<usize> {
        let g = &self.geom;
        if self.unbatched {
            vec![g.c_out, g.oh, g.ow]
        } else {
            vec![g.n, g.c_out, g.oh, g.ow]
        }
    }
}

fn plan(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    p: &ConvTranspose2dParams,
) -> Result<Plan> {
    const OP: &str = "conv_transpose2d";
    let ([n, c_in, h, w], unbatched) = batched_dims(OP, input)?;
    let [wc_in, cout_g, kh, kw] = check_weight(
        OP,
        weight,
        "C_in, C_out/groups, kh, kw",
        p.stride,
        p.dilation,
    )?;
    check_groups(OP, p.groups, c_in, "input channels")?;
    if wc_in != c_in {
        return Err(Error::shape(
            OP,
            format!(
                "input has {c_in} channels but weight {} expects {wc_in}",
                Dims(weight)
            ),
        ));
    }
    let c_out = cout_g
        .checked_mul(p.groups)
        .ok_or_else(|| Error::too_large(OP, "channels overflow"))?;
    if let Some(b) = bias {
        if b != [c_out] {
            return Err(Error::shape(
                OP,
                format!(
                    "bias has shape {} but weight {} with groups={} gives {c_out} output channels",
                    Dims(b),
                    Dims(weight),
                    p.groups
                ),
            ));
        }
    }
    let (s, d, op) = (p.stride, p.dilation, p.output_padding);
    if !(op.0 < s.0 || op.0 < d.0) || !(op.1 < s.1 || op.1 < d.1) {
        return Err(Error::param(
            OP,
            "output_padding",
            format!("{op} must be smaller than either stride {s} or dilation {d}"),
        ));
    }
    let oh = conv_transpose_out_len(OP, "height", h, kh, s.0, p.padding.0, d.0, op.0)?;
    let ow = conv_transpose_out_len(OP, "width", w, kw, s.1, p.padding.1, d.1, op.1)?;
    numel_or_err(OP, &[n, c_out, oh, ow])?;
    Ok(Plan {
        geom: ConvGeometry {
            n,
            c_in: c_out,
            h: oh,
            w: ow,
            c_out: c_in,
            kh,
            kw,
            groups: p.groups,
            sh: s.0,
            sw: s.1,
            dh: d.0,
            dw: d.1,
            pt: p.padding.0,
            pl: p.padding.1,
            oh: h,
            ow: w,
        },
        unbatched,
    })
}

/// Transposed convolution, PyTorch's `F.conv_transpose2d`.
///
/// ```
/// use convlab::{ops::{conv_transpose2d, ConvTranspose2dParams}, Tensor};
/// let x = Tensor::from_slice(&[0.0, 1.0, 2.0, 3.0], &[1, 1, 2, 2])?;
/// let k = Tensor::from_slice(&[0.0, 1.0, 2.0, 3.0], &[1, 1, 2, 2])?;
/// let y = conv_transpose2d(&x, &k, None, &ConvTranspose2dParams::new())?;
/// assert_eq!(y.data(), &[0., 0., 1., 0., 4., 6., 4., 12., 9.]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn conv_transpose2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTranspose2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d";
    let plan = plan(input.shape(), weight.shape(), bias.map(|b| b.shape()), p)?;
    let g = plan.geom;
    driver::in_pool(g.macs(), || {
        let n_out = numel_or_err(OP, &[g.n, g.c_in, g.h, g.w])?;
        let mut buf = memory::uninit_f32(OP, n_out)?;
        let call = Call {
            op: OP,
            pass: ConvPass::Forward,
        };
        driver::backward_input(call, &g, weight.data(), input.data(), &mut buf)?;
        // SAFETY: the driver writes every element of `buf`.
        let mut out = unsafe { memory::assume_written(buf) };
        if let Some(b) = bias {
            // Bias is per output channel of this op, i.e. per conv2d *input*
            // channel.
            let tg = ConvGeometry {
                c_out: g.c_in,
                oh: g.h,
                ow: g.w,
                ..g
            };
            add_bias(&tg, b.data(), &mut out);
        }
        Tensor::from_vec(out, &plan.output_shape())
    })
}

/// All gradients of [`conv_transpose2d`] (`grad_bias` when `with_bias`).
pub fn conv_transpose2d_backward(
    input: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    grad_output: &Tensor,
    p: &ConvTranspose2dParams,
) -> Result<Conv2dGrads> {
    const OP: &str = "conv_transpose2d_backward";
    let plan = plan(input.shape(), weight.shape(), None, p)?;
    let want = plan.output_shape();
    if grad_output.shape() != want.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_output has shape {} but the output has shape {}",
                Dims(grad_output.shape()),
                Dims(&want)
            ),
        ));
    }
    let g = plan.geom;
    driver::in_pool(g.macs(), || {
        let input_grad = || -> Result<Vec<f32>> {
            let mut buf = memory::uninit_f32(OP, input.numel())?;
            let call = Call {
                op: OP,
                pass: ConvPass::InputGrad,
            };
            driver::forward(call, &g, grad_output.data(), weight.data(), None, &mut buf)?;
            // SAFETY: the driver writes every element of `buf`.
            Ok(unsafe { memory::assume_written(buf) })
        };
        let weight_grad = || -> Result<Vec<f32>> {
            let mut buf = memory::uninit_f32(OP, weight.numel())?;
            let call = Call {
                op: OP,
                pass: ConvPass::WeightGrad,
            };
            // This op's input plays the convolution's grad_output.
            driver::backward_weight(call, &g, grad_output.data(), input.data(), &mut buf)?;
            // SAFETY: the driver writes every element of `buf`.
            Ok(unsafe { memory::assume_written(buf) })
        };
        // Side by side when large, as in conv2d_backward.
        let (gin, gw) = if crate::parallel::threads_for(g.macs()) > 1 {
            driver::join_passes(input_grad, weight_grad)
        } else {
            (input_grad(), weight_grad())
        };
        Ok(Conv2dGrads {
            grad_input: Tensor::from_vec(gin?, &plan.input_shape())?,
            grad_weight: Tensor::from_vec(gw?, weight.shape())?,
            grad_bias: if with_bias {
                Some(conv2d_backward_bias(grad_output)?)
            } else {
                None
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_padding_must_be_small() {
        let x = Tensor::zeros(&[1, 2, 3, 3]).unwrap();
        let w = Tensor::zeros(&[2, 1, 3, 3]).unwrap();
        let e = conv_transpose2d(
            &x,
            &w,
            None,
            &ConvTranspose2dParams::new().output_padding(1),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "conv_transpose2d: output_padding 1 must be smaller than either stride 1 or dilation 1"
        );
    }

    #[test]
    fn stride2_shape() {
        let x = Tensor::zeros(&[1, 2, 3, 3]).unwrap();
        let w = Tensor::zeros(&[2, 4, 3, 3]).unwrap();
        let p = ConvTranspose2dParams::new()
            .stride(2)
            .padding(1)
            .output_padding(1);
        let y = conv_transpose2d(&x, &w, None, &p).unwrap();
        assert_eq!(y.shape(), &[1, 4, 6, 6]);
    }
}
