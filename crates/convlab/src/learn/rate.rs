//! The learning rates at which plain gradient descent on the kernel
//! learning loss is stable, from the largest eigenvalue of its Hessian.

use super::{check_problem, OptimizerKind};
use crate::error::Result;
use crate::ops::{self, Conv2dParams};
use crate::shape::Pair;
use crate::tensor::Tensor;

/// The largest eigenvalue of the loss's Hessian `H = 2·AᵀA` (see the module
/// docs), by power iteration, matrix-free: `A·v = corr2d(x, v) + v_b` and
/// `Aᵀ·r = (corr2d's weight gradient for r, sum(r))`, so each iteration costs
/// two small convolutions and nothing of size `L x kh·kw` is stored.
///
/// # Errors
/// `x` not 2-D; a kernel size of zero or larger than `x`.
pub fn hessian_max_eigenvalue(x: &Tensor, kernel_size: Pair, bias: bool) -> Result<f64> {
    const OP: &str = "max_stable_lr";
    let (oh, ow) = check_problem(OP, x, kernel_size)?;
    let (kh, kw) = (kernel_size.h(), kernel_size.w());
    let x4 = x.reshape(&[1, 1, x.shape()[0], x.shape()[1]])?;
    let w_shape = [1, 1, kh, kw];
    let p = Conv2dParams::new();
    let n = kh * kw + usize::from(bias);
    // A fixed positive start keeps the result reproducible. For an image
    // with no negative pixels AᵀA is entrywise non-negative, so (Perron–
    // Frobenius) its top eigenvector can be taken non-negative and a positive
    // start has a component along it; the ramp (not a constant) also avoids
    // exact orthogonality in the symmetric cases of signed images.
    let mut v: Vec<f64> = (0..n).map(|i| 1.0 + 0.37 * i as f64 / n as f64).collect();
    let mut lambda = 0.0f64;
    // The Rayleigh quotient's error shrinks like (λ2/λ1)^(2k); 1e-7 relative
    // is below f32 resolution of the convolutions themselves.
    for _ in 0..1000 {
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Ok(0.0);
        }
        v.iter_mut().for_each(|a| *a /= norm);
        let kv: Vec<f32> = v[..kh * kw].iter().map(|&a| a as f32).collect();
        let mut av = ops::conv2d(&x4, &Tensor::from_vec(kv, &w_shape)?, None, &p)
            .map_err(|e| e.with_op(OP))?;
        if bias {
            let vb = v[kh * kw] as f32;
            av.data_mut().iter_mut().for_each(|a| *a += vb);
        }
        let gw = ops::conv2d_backward_weight(&x4, &w_shape, &av, &p).map_err(|e| e.with_op(OP))?;
        let mut hv: Vec<f64> = gw.data().iter().map(|&g| 2.0 * g as f64).collect();
        if bias {
            hv.push(2.0 * av.data().iter().map(|&a| a as f64).sum::<f64>());
        }
        debug_assert_eq!(av.numel(), oh * ow);
        let next: f64 = v.iter().zip(&hv).map(|(a, b)| a * b).sum();
        let done = (next - lambda).abs() <= 1e-7 * next.abs();
        lambda = next;
        v = hv;
        if done {
            break;
        }
    }
    Ok(lambda)
}

/// The learning rates below which plain gradient descent on the kernel
/// learning loss converges from every start: `2/λmax(H)` (see the module
/// docs). `f32::INFINITY` when the loss does not depend on the parameters
/// (an all-zero input without bias).
///
/// ```
/// use convlab::{learn::max_stable_lr, Tensor};
/// // A constant image: H = 2·AᵀA with A all ones (7 rows, 2 columns),
/// // λmax = 2 * 7 * 2 = 28, so lr < 2/28.
/// let x = Tensor::ones(&[1, 8])?;
/// let b = max_stable_lr(&x, (1, 2).into(), false)?;
/// assert!((b - 2.0 / 28.0).abs() < 1e-6);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// `x` not 2-D; a kernel size of zero or larger than `x`.
pub fn max_stable_lr(x: &Tensor, kernel_size: Pair, bias: bool) -> Result<f32> {
    let lambda = hessian_max_eigenvalue(x, kernel_size, bias)?;
    Ok(if lambda > 0.0 {
        (2.0 / lambda) as f32
    } else {
        f32::INFINITY
    })
}

/// The learning rate [`LearningRate::Auto`](super::LearningRate::Auto) picks.
///
/// - Plain SGD: `1/λmax`, half the stability bound. It is the classic `1/L`
///   step for an `L`-smooth loss: it removes the stiffest error component
///   in one step, every other component shrinks by `(1 - λ/λmax)²` per step
///   without oscillating, and it stays stable even if `λmax` were
///   underestimated by up to 2×.
/// - Adam: `0.05`. Adam's steps are about `lr` per coordinate whatever the
///   gradient's scale, so the curvature says nothing about them; kernels
///   that map images to edge maps have entries of order 1, which 0.05
///   reaches in a few tens of steps without large overshoots.
///
/// # Errors
/// As [`max_stable_lr`].
pub fn auto_lr(x: &Tensor, kernel_size: Pair, bias: bool, optimizer: OptimizerKind) -> Result<f32> {
    match optimizer {
        OptimizerKind::Sgd => {
            let bound = max_stable_lr(x, kernel_size, bias)?;
            // An input of zeros: any rate is stable and none helps; use the book's.
            Ok(if bound.is_finite() { bound / 2.0 } else { 0.03 })
        }
        OptimizerKind::Adam => Ok(0.05),
    }
}
