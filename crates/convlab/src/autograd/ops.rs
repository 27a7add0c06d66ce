//! Differentiable ops on [`Var`]: each computes its value with a functional
//! op and records the gradient closure right below it.

use super::Var;
use crate::error::{Dims, Error, Result};
use crate::ops::pool::OutputSize;
use crate::ops::{
    self, AvgPool2dParams, Conv2dParams, ConvTranspose2dParams, MaxPool2dParams, UnfoldParams,
};
use crate::shape::{PaddingMode, Pair};
use crate::tensor::Tensor;

impl Var {
    /// `self + other` (broadcasting).
    pub fn add(&self, other: &Var) -> Result<Var> {
        let (sa, sb) = (self.shape(), other.shape());
        let y = self.value().add(&other.value())?;
        Ok(Var::from_op(y, "Add", &[self, other], move |g| {
            Ok(vec![Some(g.sum_to_shape(&sa)?), Some(g.sum_to_shape(&sb)?)])
        }))
    }

    /// `self - other` (broadcasting).
    pub fn sub(&self, other: &Var) -> Result<Var> {
        let (sa, sb) = (self.shape(), other.shape());
        let y = self.value().sub(&other.value())?;
        Ok(Var::from_op(y, "Sub", &[self, other], move |g| {
            Ok(vec![
                Some(g.sum_to_shape(&sa)?),
                Some(g.scale(-1.0).sum_to_shape(&sb)?),
            ])
        }))
    }

    /// `self * other` elementwise (broadcasting).
    pub fn mul(&self, other: &Var) -> Result<Var> {
        let (a, b) = (self.value(), other.value());
        let y = a.mul(&b)?;
        Ok(Var::from_op(y, "Mul", &[self, other], move |g| {
            Ok(vec![
                Some(g.mul(&b)?.sum_to_shape(a.shape())?),
                Some(g.mul(&a)?.sum_to_shape(b.shape())?),
            ])
        }))
    }

    /// `self / other` elementwise (broadcasting).
    pub fn div(&self, other: &Var) -> Result<Var> {
        let (a, b) = (self.value(), other.value());
        let y = a.div(&b)?;
        Ok(Var::from_op(y, "Div", &[self, other], move |g| {
            let ga = g.div(&b)?.sum_to_shape(a.shape())?;
            // d(a/b)/db = -a / b^2
            let gb = g
                .mul(&a)?
                .div(&b.mul(&b)?)?
                .scale(-1.0)
                .sum_to_shape(b.shape())?;
            Ok(vec![Some(ga), Some(gb)])
        }))
    }

    /// `-self`.
    pub fn neg(&self) -> Result<Var> {
        self.scale(-1.0)
    }

    /// `self * s` for a constant `s`.
    pub fn scale(&self, s: f32) -> Result<Var> {
        let y = self.value().scale(s);
        Ok(Var::from_op(y, "Mul", &[self], move |g| {
            Ok(vec![Some(g.scale(s))])
        }))
    }

    /// `self + s` for a constant `s`.
    pub fn add_scalar(&self, s: f32) -> Result<Var> {
        let y = self.value().map(|v| v + s);
        Ok(Var::from_op(y, "Add", &[self], |g| {
            Ok(vec![Some(g.clone())])
        }))
    }

    /// `self ** p` elementwise.
    pub fn pow(&self, p: f32) -> Result<Var> {
        let x = self.value();
        let y = x.map(|v| v.powf(p));
        Ok(Var::from_op(y, "Pow", &[self], move |g| {
            Ok(vec![Some(g.mul(&x.map(|v| p * v.powf(p - 1.0)))?)])
        }))
    }

    /// `self ** 2` elementwise.
    pub fn square(&self) -> Result<Var> {
        let x = self.value();
        let y = x.map(|v| v * v);
        Ok(Var::from_op(y, "Pow", &[self], move |g| {
            Ok(vec![Some(g.mul(&x.scale(2.0))?)])
        }))
    }

    /// `exp(self)` elementwise.
    pub fn exp(&self) -> Result<Var> {
        let y = self.value().map(f32::exp);
        let out = y.clone();
        Ok(Var::from_op(y, "Exp", &[self], move |g| {
            Ok(vec![Some(g.mul(&out)?)])
        }))
    }

    /// Natural log elementwise.
    pub fn log(&self) -> Result<Var> {
        let x = self.value();
        let y = x.map(f32::ln);
        Ok(Var::from_op(y, "Log", &[self], move |g| {
            Ok(vec![Some(g.div(&x)?)])
        }))
    }

    /// The sum of all values (a scalar).
    pub fn sum(&self) -> Result<Var> {
        let shape = self.shape();
        let y = self.value().sum();
        Ok(Var::from_op(y, "Sum", &[self], move |g| {
            Ok(vec![Some(Tensor::full(&shape, g.item()?)?)])
        }))
    }

    /// The mean of all values (a scalar).
    pub fn mean(&self) -> Result<Var> {
        let shape = self.shape();
        let n = self.value().numel() as f32;
        let y = self.value().mean();
        Ok(Var::from_op(y, "Mean", &[self], move |g| {
            Ok(vec![Some(Tensor::full(&shape, g.item()? / n)?)])
        }))
    }

    /// The same values in a new shape (`usize::MAX` for one inferred dimension).
    pub fn reshape(&self, shape: &[usize]) -> Result<Var> {
        let old = self.shape();
        let y = self.value().reshape(shape)?;
        Ok(Var::from_op(y, "View", &[self], move |g| {
            Ok(vec![Some(g.reshape(&old)?)])
        }))
    }

    /// Flatten all dimensions after the first: `[N, ...] -> [N, prod(...)]`
    /// (`nn.Flatten()`'s `start_dim=1`). A 0-d or 1-d input has no
    /// dimension 1 and is an error, as in PyTorch.
    pub fn flatten(&self) -> Result<Var> {
        let shape = self.shape();
        if shape.len() < 2 {
            return Err(Error::shape(
                "flatten",
                format!(
                    "dimension 1 is out of range for a {}-d input of shape {} (start_dim=1 needs at least 2 dimensions)",
                    shape.len(),
                    Dims(&shape)
                ),
            ));
        }
        let rest = shape[1..].iter().product::<usize>();
        self.reshape(&[shape[0], rest])
    }

    /// Matrix product (2-D, or batched 3-D).
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        let (a, b) = (self.value(), other.value());
        let y = a.matmul(&b)?;
        Ok(Var::from_op(y, "Mm", &[self, other], move |g| {
            let (ga, gb) = if a.ndim() == 2 {
                (g.matmul(&b.t()?)?, a.t()?.matmul(g)?)
            } else {
                (
                    g.matmul(&transpose_last(&b)?)?,
                    transpose_last(&a)?.matmul(g)?,
                )
            };
            Ok(vec![Some(ga), Some(gb)])
        }))
    }

    /// `F.linear`: `self [N, in] @ weight^T + bias`, weight `[out, in]`
    /// (see [`ops::linear()`]); no transposed copies forward or backward.
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Result<Var> {
        let (x, w) = (self.value(), weight.value());
        let y = ops::linear(&x, &w, bias.map(|b| b.value()).as_deref())?;
        let with_bias = bias.is_some();
        let mut parents = vec![self, weight];
        parents.extend(bias);
        Ok(Var::from_op(y, "Addmm", &parents, move |g| {
            let (gx, gw, gb) = ops::linear_backward(&x, &w, with_bias, g)?;
            Ok(vec![Some(gx), Some(gw), gb])
        }))
    }

    /// Transpose of a matrix.
    pub fn t(&self) -> Result<Var> {
        let y = self.value().t()?;
        Ok(Var::from_op(y, "T", &[self], |g| Ok(vec![Some(g.t()?)])))
    }

    /// `max(0, x)` elementwise.
    pub fn relu(&self) -> Result<Var> {
        let x = self.value();
        let y = x.map(|v| if v > 0.0 { v } else { 0.0 });
        Ok(Var::from_op(y, "Relu", &[self], move |g| {
            Ok(vec![Some(g.zip_broadcast("relu", &x, |g, v| {
                if v > 0.0 {
                    g
                } else {
                    0.0
                }
            })?)])
        }))
    }

    /// `1 / (1 + exp(-x))` elementwise.
    pub fn sigmoid(&self) -> Result<Var> {
        let y = self.value().map(|v| 1.0 / (1.0 + (-v).exp()));
        let out = y.clone();
        Ok(Var::from_op(y, "Sigmoid", &[self], move |g| {
            Ok(vec![Some(g.zip_broadcast("sigmoid", &out, |g, s| {
                g * s * (1.0 - s)
            })?)])
        }))
    }

    /// `tanh(x)` elementwise.
    pub fn tanh(&self) -> Result<Var> {
        let y = self.value().map(f32::tanh);
        let out = y.clone();
        Ok(Var::from_op(y, "Tanh", &[self], move |g| {
            Ok(vec![Some(
                g.zip_broadcast("tanh", &out, |g, t| g * (1.0 - t * t))?,
            )])
        }))
    }

    /// Log-softmax over the last dimension of a `[N, K]` matrix (stable:
    /// the row maximum is subtracted first).
    pub fn log_softmax(&self) -> Result<Var> {
        let mut y = self.tensor();
        let [n, k] = y.dims2("log_softmax")?;
        for row in y.data_mut().chunks_mut(k.max(1)).take(n) {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
            row.iter_mut().for_each(|v| *v -= lse);
        }
        let out = y.clone();
        Ok(Var::from_op(y, "LogSoftmax", &[self], move |g| {
            // d/dx = g - softmax * sum(g) per row.
            let mut gx = g.clone();
            for (grow, orow) in gx
                .data_mut()
                .chunks_mut(k.max(1))
                .zip(out.data().chunks(k.max(1)))
            {
                let s: f32 = grow.iter().sum();
                grow.iter_mut()
                    .zip(orow)
                    .for_each(|(gv, o)| *gv -= o.exp() * s);
            }
            Ok(vec![Some(gx)])
        }))
    }

    /// Mean cross-entropy of `[N, K]` logits against class `labels`,
    /// PyTorch's `F.cross_entropy` with mean reduction.
    pub fn cross_entropy(&self, labels: &[usize]) -> Result<Var> {
        let [n, k] = self.value().dims2("cross_entropy")?;
        if labels.len() != n {
            return Err(Error::shape(
                "cross_entropy",
                format!(
                    "{} labels for logits of shape {}",
                    labels.len(),
                    Dims(&[n, k])
                ),
            ));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
            return Err(Error::param(
                "cross_entropy",
                "labels",
                format!("label {bad} is out of range for {k} classes"),
            ));
        }
        let mut onehot = Tensor::zeros(&[n, k])?;
        for (i, &l) in labels.iter().enumerate() {
            onehot.data_mut()[i * k + l] = -1.0 / n as f32;
        }
        self.log_softmax()?.mul(&Var::new(onehot))?.sum()
    }

    /// Mean squared error against `target`, PyTorch's `F.mse_loss`.
    pub fn mse_loss(&self, target: &Var) -> Result<Var> {
        if self.shape() != target.shape() {
            return Err(Error::shape(
                "mse_loss",
                format!(
                    "input {} and target {} differ",
                    Dims(&self.shape()),
                    Dims(&target.shape())
                ),
            ));
        }
        self.sub(target)?.square()?.mean()
    }

    /// 2-D convolution (see [`ops::conv2d()`]), differentiable in input,
    /// weight and bias.
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, p: &Conv2dParams) -> Result<Var> {
        let p = *p;
        let (x, w) = (self.value(), weight.value());
        let y = ops::conv2d(&x, &w, bias.map(|b| b.value()).as_deref(), &p)?;
        let (need_x, need_w) = (self.requires_grad(), weight.requires_grad());
        let need_b = bias.is_some_and(|b| b.requires_grad());
        let mut parents = vec![self, weight];
        parents.extend(bias);
        Ok(Var::from_op(y, "Convolution", &parents, move |g| {
            if need_x && need_w {
                // Both at once (side by side on large layers).
                let grads = ops::conv2d_backward(&x, &w, need_b, g, &p)?;
                return Ok(vec![
                    Some(grads.grad_input),
                    Some(grads.grad_weight),
                    grads.grad_bias,
                ]);
            }
            let gx = need_x
                .then(|| ops::conv2d_backward_input(x.shape(), &w, g, &p))
                .transpose()?;
            let gw = need_w
                .then(|| ops::conv2d_backward_weight(&x, w.shape(), g, &p))
                .transpose()?;
            let gb = need_b.then(|| ops::conv2d_backward_bias(g)).transpose()?;
            Ok(vec![gx, gw, gb])
        }))
    }

    /// Transposed convolution (see [`ops::conv_transpose2d()`]).
    pub fn conv_transpose2d(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        p: &ConvTranspose2dParams,
    ) -> Result<Var> {
        let p = *p;
        let (x, w) = (self.value(), weight.value());
        let y = ops::conv_transpose2d(&x, &w, bias.map(|b| b.value()).as_deref(), &p)?;
        let with_bias = bias.is_some();
        let mut parents = vec![self, weight];
        parents.extend(bias);
        Ok(Var::from_op(
            y,
            "ConvolutionTranspose",
            &parents,
            move |g| {
                let gr = ops::conv_transpose2d_backward(&x, &w, with_bias, g, &p)?;
                Ok(vec![
                    Some(gr.grad_input),
                    Some(gr.grad_weight),
                    gr.grad_bias,
                ])
            },
        ))
    }

    /// The chapter's `corr2d` on matrices, differentiable in both.
    pub fn corr2d(&self, kernel: &Var) -> Result<Var> {
        let (x, k) = (self.value(), kernel.value());
        let y = ops::corr2d(&x, &k)?;
        Ok(Var::from_op(y, "Corr2d", &[self, kernel], move |g| {
            let (gx, gk) = ops::corr2d_backward(&x, &k, g)?;
            Ok(vec![Some(gx), Some(gk)])
        }))
    }

    /// Pad the last two dimensions (see [`ops::pad2d`]).
    pub fn pad2d(&self, pads: [usize; 4], mode: PaddingMode) -> Result<Var> {
        let shape = self.shape();
        let y = ops::pad2d(&self.value(), pads, mode)?;
        Ok(Var::from_op(y, "Pad", &[self], move |g| {
            Ok(vec![Some(ops::pad2d_backward(g, &shape, pads, mode)?)])
        }))
    }

    /// Max pooling (see [`ops::max_pool2d`]); the argmax indices are kept
    /// only when a gradient will be needed.
    pub fn max_pool2d(&self, p: &MaxPool2dParams) -> Result<Var> {
        if !(self.requires_grad() && super::is_grad_enabled()) {
            return Ok(Var::new(ops::max_pool2d(&self.value(), p)?));
        }
        let shape = self.shape();
        let (y, idx) = ops::max_pool2d_with_indices(&self.value(), p)?;
        Ok(Var::from_op(y, "MaxPool2DWithIndices", &[self], move |g| {
            Ok(vec![Some(ops::max_pool2d_backward(&shape, &idx, g)?)])
        }))
    }

    /// Average pooling (see [`ops::avg_pool2d`]).
    pub fn avg_pool2d(&self, p: &AvgPool2dParams) -> Result<Var> {
        let p = *p;
        let shape = self.shape();
        let y = ops::avg_pool2d(&self.value(), &p)?;
        Ok(Var::from_op(y, "AvgPool2D", &[self], move |g| {
            Ok(vec![Some(ops::avg_pool2d_backward(&shape, g, &p)?)])
        }))
    }

    /// Adaptive average pooling to `output_size`.
    pub fn adaptive_avg_pool2d(&self, output_size: impl Into<OutputSize<2>>) -> Result<Var> {
        let shape = self.shape();
        let y = ops::adaptive_avg_pool2d(&self.value(), output_size)?;
        Ok(Var::from_op(y, "AdaptiveAvgPool2D", &[self], move |g| {
            Ok(vec![Some(ops::adaptive_avg_pool2d_backward(&shape, g)?)])
        }))
    }

    /// Adaptive max pooling to `output_size`.
    pub fn adaptive_max_pool2d(&self, output_size: impl Into<OutputSize<2>>) -> Result<Var> {
        let shape = self.shape();
        let (y, idx) = ops::adaptive_max_pool2d(&self.value(), output_size)?;
        Ok(Var::from_op(y, "AdaptiveMaxPool2D", &[self], move |g| {
            Ok(vec![Some(ops::adaptive_max_pool2d_backward(
                &shape, &idx, g,
            )?)])
        }))
    }

    /// im2col (see [`ops::unfold()`]): `[N, C, H, W] -> [N, C*kh*kw, L]`.
    pub fn unfold(&self, p: &UnfoldParams) -> Result<Var> {
        let p = *p;
        let shape = self.shape();
        let y = ops::unfold(&self.value(), &p)?;
        Ok(Var::from_op(y, "Im2Col", &[self], move |g| {
            Ok(vec![Some(ops::unfold_backward(&shape, g, &p)?)])
        }))
    }

    /// col2im (see [`ops::fold`]): `[N, C*kh*kw, L] -> [N, C, H, W]`.
    pub fn fold(&self, output_size: impl Into<Pair>, p: &UnfoldParams) -> Result<Var> {
        let p = *p;
        let y = ops::fold(&self.value(), output_size, &p)?;
        Ok(Var::from_op(y, "Col2Im", &[self], move |g| {
            Ok(vec![Some(ops::fold_backward(g, &p)?)])
        }))
    }
}

/// Swap the last two dimensions of a 3-D tensor.
fn transpose_last(t: &Tensor) -> Result<Tensor> {
    let (b, m, n) = match *t.shape() {
        [b, m, n] => (b, m, n),
        _ => {
            return Err(Error::shape(
                "matmul",
                format!("expected a 3-D tensor, got {}", Dims(t.shape())),
            ))
        }
    };
    let mut out = vec![0.0; b * m * n];
    let d = t.data();
    for i in 0..b {
        for r in 0..m {
            for c in 0..n {
                out[(i * n + c) * m + r] = d[(i * m + r) * n + c];
            }
        }
    }
    Tensor::from_vec(out, &[b, n, m])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_input_accumulates() {
        let x = Var::param(Tensor::from_slice(&[3.0], &[1]).unwrap());
        let y = x.mul(&x).unwrap().add(&x).unwrap().sum().unwrap(); // x^2 + x
        y.backward().unwrap();
        assert_eq!(x.grad().unwrap().data(), &[7.0]);
    }

    #[test]
    fn no_grad_records_nothing() {
        let x = Var::param(Tensor::ones(&[2]).unwrap());
        let y = super::super::no_grad(|| x.scale(2.0).unwrap());
        assert!(!y.requires_grad());
        assert!(y.sum().unwrap().backward().is_err());
    }

    #[test]
    fn cross_entropy_matches_hand_value() {
        // logits [0, ln 3] for label 1: -log(3/4)
        let z = Var::param(Tensor::from_rows(&[[0.0, 3f32.ln()]]).unwrap());
        let l = z.cross_entropy(&[1]).unwrap();
        assert!((l.item().unwrap() - (4f32 / 3.0).ln()).abs() < 1e-6);
        l.backward().unwrap();
        let g = z.grad().unwrap();
        assert!((g.data()[0] - 0.25).abs() < 1e-6 && (g.data()[1] + 0.25).abs() < 1e-6);
    }

    #[test]
    fn printing_shows_grad_state() {
        let w = Var::param(Tensor::from_rows(&[[1.0, -1.0]]).unwrap());
        assert_eq!(w.to_string(), "tensor([[ 1., -1.]], requires_grad=True)");
        let y = w.scale(2.0).unwrap();
        assert_eq!(
            y.to_string(),
            "tensor([[ 2., -2.]], grad_fn=<MulBackward0>)"
        );
    }
}
