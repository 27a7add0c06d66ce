//! The 1-D and 3-D convolutions on [`Var`]s: each forward runs the op of
//! [`crate::ops`] and records that op's backward (all three gradients).

use super::Var;
use crate::error::Result;
use crate::ops::{
    self, Conv1dParams, Conv2dGrads, Conv3dParams, ConvTranspose1dParams, ConvTranspose3dParams,
};
use crate::tensor::Tensor;

/// The backward of a convolution: its three gradients in parent order.
type ConvBackward<P> = fn(&Tensor, &Tensor, bool, &Tensor, &P) -> Result<Conv2dGrads>;

impl Var {
    /// A convolution op `forward` of `self`, `weight` and `bias` recorded
    /// with `backward` (PyTorch's node `name`).
    fn convolution<P: Copy + Send + Sync + 'static>(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        p: &P,
        name: &'static str,
        forward: fn(&Tensor, &Tensor, Option<&Tensor>, &P) -> Result<Tensor>,
        backward: ConvBackward<P>,
    ) -> Result<Var> {
        let p = *p;
        let (x, w) = (self.value(), weight.value());
        let y = forward(&x, &w, bias.map(|b| b.value()).as_deref(), &p)?;
        let with_bias = bias.is_some();
        let mut parents = vec![self, weight];
        parents.extend(bias);
        Ok(Var::from_op(y, name, &parents, move |g| {
            let gr = backward(&x, &w, with_bias, g, &p)?;
            Ok(vec![
                Some(gr.grad_input),
                Some(gr.grad_weight),
                gr.grad_bias,
            ])
        }))
    }

    /// `F.conv1d(self, weight, bias)` (see [`ops::conv1d`]), differentiable
    /// in all three.
    pub fn conv1d(&self, weight: &Var, bias: Option<&Var>, p: &Conv1dParams) -> Result<Var> {
        self.convolution(
            weight,
            bias,
            p,
            "Convolution",
            ops::conv1d,
            ops::conv1d_backward,
        )
    }

    /// `F.conv_transpose1d(self, weight, bias)` (see
    /// [`ops::conv_transpose1d`]), differentiable in all three.
    pub fn conv_transpose1d(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        p: &ConvTranspose1dParams,
    ) -> Result<Var> {
        self.convolution(
            weight,
            bias,
            p,
            "ConvolutionTranspose",
            ops::conv_transpose1d,
            ops::conv_transpose1d_backward,
        )
    }

    /// `F.conv3d(self, weight, bias)` (see [`ops::conv3d`]), differentiable
    /// in all three.
    ///
    /// ```
    /// use convlab::autograd::Var;
    /// use convlab::ops::Conv3dParams;
    /// use convlab::Tensor;
    /// let x = Var::param(Tensor::ones(&[1, 1, 3, 3, 3])?);
    /// let w = Var::param(Tensor::ones(&[1, 1, 2, 2, 2])?);
    /// let y = x.conv3d(&w, None, &Conv3dParams::new())?;
    /// y.sum()?.backward()?;
    /// assert_eq!(w.grad().unwrap().data(), &[8.0; 8]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    pub fn conv3d(&self, weight: &Var, bias: Option<&Var>, p: &Conv3dParams) -> Result<Var> {
        self.convolution(
            weight,
            bias,
            p,
            "Convolution",
            ops::conv3d,
            ops::conv3d_backward,
        )
    }

    /// `F.conv_transpose3d(self, weight, bias)` (see
    /// [`ops::conv_transpose3d`]), differentiable in all three.
    pub fn conv_transpose3d(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        p: &ConvTranspose3dParams,
    ) -> Result<Var> {
        self.convolution(
            weight,
            bias,
            p,
            "ConvolutionTranspose",
            ops::conv_transpose3d,
            ops::conv_transpose3d_backward,
        )
    }
}
