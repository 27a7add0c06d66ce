//! Weight initialisation as `torch.nn.init`: the same bounds, standard
//! deviations, fans and gains (the random numbers are convlab's generator's,
//! not PyTorch's). Each function replaces a parameter's value in place.
//!
//! ```
//! use convlab::{nn::{init, Conv2d, Conv2dConfig}, seeded_rng};
//! let mut rng = seeded_rng(0);
//! let conv = Conv2d::zeroed(Conv2dConfig::new(16, 32, 3))?;
//! init::kaiming_normal(&conv.weight, 0.0, init::FanMode::FanOut, init::Nonlinearity::ReLU, &mut rng)?;
//! init::zeros(conv.bias.as_ref().unwrap())?;
//! let std = (2.0f32 / (32.0 * 9.0)).sqrt(); // gain sqrt(2) over fan_out
//! let w = conv.weight.tensor();
//! let sd = (w.data().iter().map(|v| v * v).sum::<f32>() / w.numel() as f32).sqrt();
//! assert!((sd / std - 1.0).abs() < 0.1);
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use rand::Rng;

/// The activation a gain is computed for (`torch.nn.init.calculate_gain`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Linear and convolution layers without an activation: gain 1.
    Linear,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain sqrt(2).
    ReLU,
    /// Leaky ReLU with this negative slope: gain sqrt(2 / (1 + slope^2)).
    LeakyReLU(f32),
    /// SELU: gain 3/4.
    Selu,
}

/// Which fan a Kaiming initialisation keeps the variance of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// The forward pass's (`mode='fan_in'`, the default).
    FanIn,
    /// The backward pass's (`mode='fan_out'`).
    FanOut,
}

/// The recommended gain for `nonlinearity`, `torch.nn.init.calculate_gain`.
pub fn calculate_gain(nonlinearity: Nonlinearity) -> f32 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::ReLU => 2f32.sqrt(),
        Nonlinearity::LeakyReLU(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight of `shape`: `shape[1]` and `shape[0]`
/// times the receptive field (the product of the remaining dimensions).
///
/// # Errors
/// [`Error::Shape`] for fewer than two dimensions, as PyTorch.
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::shape(
            "init",
            format!(
                "fan in and fan out can not be computed for tensor with fewer than 2 dimensions (shape {})",
                Dims(shape)
            ),
        ));
    }
    let field: usize = shape[2..].iter().product();
    Ok((shape[1] * field, shape[0] * field))
}

fn fill(var: &Var, t: Tensor) -> Result<()> {
    var.set_value(t).map_err(|e| e.with_op("init"))
}

/// Values from `U(low, high)`.
///
/// # Errors
/// [`Error::Autograd`] for a variable made by an op.
pub fn uniform(var: &Var, low: f32, high: f32, rng: &mut impl Rng) -> Result<()> {
    fill(var, Tensor::uniform(&var.shape(), low, high, rng)?)
}

/// Values from `N(mean, std^2)`.
///
/// # Errors
/// As [`uniform`].
pub fn normal(var: &Var, mean: f32, std: f32, rng: &mut impl Rng) -> Result<()> {
    let t = Tensor::randn(&var.shape(), rng)?.map(|v| mean + std * v);
    fill(var, t)
}

/// Every value `value`.
///
/// # Errors
/// As [`uniform`].
pub fn constant(var: &Var, value: f32) -> Result<()> {
    fill(var, Tensor::full(&var.shape(), value)?)
}

/// Zeros.
///
/// # Errors
/// As [`uniform`].
pub fn zeros(var: &Var) -> Result<()> {
    constant(var, 0.0)
}

/// Ones.
///
/// # Errors
/// As [`uniform`].
pub fn ones(var: &Var) -> Result<()> {
    constant(var, 1.0)
}

/// Glorot uniform: `U(-a, a)` with `a = gain * sqrt(6 / (fan_in + fan_out))`.
///
/// # Errors
/// As [`fans`] and [`uniform`].
#[doc(alias = "xavier_uniform_")]
pub fn xavier_uniform(var: &Var, gain: f32, rng: &mut impl Rng) -> Result<()> {
    let (fan_in, fan_out) = fans(&var.shape())?;
    let std = gain * (2.0 / (fan_in + fan_out).max(1) as f32).sqrt();
    let a = 3f32.sqrt() * std;
    uniform(var, -a, a, rng)
}

/// Glorot normal: `N(0, std^2)` with `std = gain * sqrt(2 / (fan_in + fan_out))`.
///
/// # Errors
/// As [`fans`] and [`uniform`].
#[doc(alias = "xavier_normal_")]
pub fn xavier_normal(var: &Var, gain: f32, rng: &mut impl Rng) -> Result<()> {
    let (fan_in, fan_out) = fans(&var.shape())?;
    let std = gain * (2.0 / (fan_in + fan_out).max(1) as f32).sqrt();
    normal(var, 0.0, std, rng)
}

/// The standard deviation Kaiming initialisation aims for:
/// `gain / sqrt(fan)`, the gain of `nonlinearity` (with slope `a` for the
/// leaky ReLU PyTorch defaults to).
fn kaiming_std(var: &Var, mode: FanMode, nonlinearity: Nonlinearity) -> Result<f32> {
    let (fan_in, fan_out) = fans(&var.shape())?;
    let fan = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    if fan == 0 {
        return Err(Error::shape(
            "init",
            format!(
                "initializing a zero-element tensor of shape {} is a no-op",
                Dims(&var.shape())
            ),
        ));
    }
    Ok(calculate_gain(nonlinearity) / (fan as f32).sqrt())
}

/// The nonlinearity Kaiming uses: PyTorch's `nonlinearity='leaky_relu'`
/// default reads its slope from `a`.
fn with_slope(a: f32, nonlinearity: Nonlinearity) -> Nonlinearity {
    match nonlinearity {
        Nonlinearity::LeakyReLU(_) => Nonlinearity::LeakyReLU(a),
        other => other,
    }
}

/// He uniform: `U(-b, b)` with `b = gain * sqrt(3 / fan)`
/// (`kaiming_uniform_(tensor, a, mode, nonlinearity)`; `a` is the leaky
/// ReLU's slope when `nonlinearity` is [`Nonlinearity::LeakyReLU`]).
///
/// # Errors
/// As [`fans`] and [`uniform`].
#[doc(alias = "kaiming_uniform_")]
pub fn kaiming_uniform(
    var: &Var,
    a: f32,
    mode: FanMode,
    nonlinearity: Nonlinearity,
    rng: &mut impl Rng,
) -> Result<()> {
    let bound = 3f32.sqrt() * kaiming_std(var, mode, with_slope(a, nonlinearity))?;
    uniform(var, -bound, bound, rng)
}

/// He normal: `N(0, std^2)` with `std = gain / sqrt(fan)`
/// (`kaiming_normal_`; torchvision's ResNets use `mode='fan_out'`,
/// `nonlinearity='relu'`).
///
/// # Errors
/// As [`fans`] and [`uniform`].
#[doc(alias = "kaiming_normal_")]
pub fn kaiming_normal(
    var: &Var,
    a: f32,
    mode: FanMode,
    nonlinearity: Nonlinearity,
    rng: &mut impl Rng,
) -> Result<()> {
    let std = kaiming_std(var, mode, with_slope(a, nonlinearity))?;
    normal(var, 0.0, std, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn gains_and_fans_are_pytorchs() {
        assert_eq!(calculate_gain(Nonlinearity::Tanh), 5.0 / 3.0);
        assert!((calculate_gain(Nonlinearity::LeakyReLU(0.2)) - 1.386_750_5).abs() < 1e-6);
        assert_eq!(fans(&[32, 16, 3, 3]).unwrap(), (144, 288));
        assert_eq!(fans(&[10, 4]).unwrap(), (4, 10));
        assert!(fans(&[5]).unwrap_err().to_string().contains("fewer than 2"));
    }

    #[test]
    fn bounds_match_the_formulas() {
        let mut rng = seeded_rng(3);
        let w = Var::param(Tensor::zeros(&[64, 32, 3, 3]).unwrap());
        kaiming_uniform(
            &w,
            5f32.sqrt(),
            FanMode::FanIn,
            Nonlinearity::LeakyReLU(0.0),
            &mut rng,
        )
        .unwrap();
        // PyTorch's default conv init: bound 1 / sqrt(fan_in).
        let bound = 1.0 / (32.0f32 * 9.0).sqrt();
        let max = w.tensor().data().iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max <= bound && max > 0.99 * bound, "{max} {bound}");
        xavier_uniform(&w, 1.0, &mut rng).unwrap();
        let a = (6.0f32 / (288.0 + 576.0)).sqrt();
        let max = w.tensor().data().iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max <= a && max > 0.99 * a, "{max} {a}");
        ones(&w).unwrap();
        assert!(w.tensor().data().iter().all(|&v| v == 1.0));
    }
}
