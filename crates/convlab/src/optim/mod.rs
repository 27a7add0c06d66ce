//! Optimizers with PyTorch's update rules — [`Sgd`] (momentum, dampening,
//! Nesterov, weight decay), [`Adam`] and [`AdamW`] — and learning-rate
//! schedules ([`StepLR`], [`CosineAnnealingLR`]).
//!
//! Hyperparameters are checked when they are set, as PyTorch checks them
//! when an optimizer is built, with its messages: a NaN learning rate, a
//! beta outside `[0, 1)`, Nesterov without momentum, an empty or repeated
//! parameter list are errors, never a silently broken run.
//!
//! ```
//! use convlab::{autograd::Var, optim::{Optimizer, Sgd}, Tensor};
//! let w = Var::param(Tensor::ones(&[2])?);
//! let opt = Sgd::new(vec![w.clone()], 0.1)?.momentum(0.9)?.nesterov(true)?;
//! assert_eq!(opt.lr(), 0.1);
//! let e = Sgd::new(vec![w], f64::NAN).err().unwrap();
//! assert_eq!(e.to_string(), "SGD: lr invalid learning rate: nan");
//! # Ok::<(), convlab::Error>(())
//! ```

mod adam;
mod schedule;

pub use adam::{Adam, AdamW};
pub use schedule::{CosineAnnealingLR, LrScheduler, StepLR};

use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;

/// One optimisation step over a fixed set of parameters.
pub trait Optimizer: Send {
    /// Update every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;
    /// Forget every parameter's gradient.
    fn zero_grad(&self);
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Change the learning rate (schedules do).
    ///
    /// # Errors
    /// [`Error::Param`] for a negative or non-finite rate; the rate is
    /// unchanged then.
    fn set_lr(&mut self, lr: f64) -> Result<()>;
    /// The optimizer's state (momentum buffers, moments, step count) by
    /// parameter index, for checkpoints.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restore the state produced by [`Optimizer::state`].
    ///
    /// # Errors
    /// [`Error::Param`] for an unknown entry, a non-finite value or a step
    /// count that is not a non-negative integer; [`Error::Shape`] when a
    /// buffer's shape differs from its parameter's. Nothing changes then.
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;
}

/// A float as Python prints it in PyTorch's messages: `2.0`, `nan`, `-inf`.
pub(crate) fn py(v: f64) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if v == v.trunc() && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// PyTorch's "Invalid learning rate" check, which also refuses NaN and
/// infinity.
pub(crate) fn check_lr(op: &'static str, lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(Error::param(
            op,
            "lr",
            format!("invalid learning rate: {}", py(lr)),
        ));
    }
    Ok(())
}

/// A finite, non-negative hyperparameter (`momentum`, `weight_decay`,
/// `eps`), with PyTorch's "Invalid ... value" message.
pub(crate) fn check_non_negative(
    op: &'static str,
    param: &'static str,
    what: &str,
    v: f64,
) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::param(
            op,
            param,
            format!("invalid {what} value: {}", py(v)),
        ));
    }
    Ok(())
}

/// PyTorch's "optimizer got an empty parameter list", and a parameter
/// given twice (it would be updated twice per step).
pub(crate) fn check_params(op: &'static str, params: &[Var]) -> Result<()> {
    if params.is_empty() {
        return Err(Error::param(
            op,
            "params",
            "optimizer got an empty parameter list",
        ));
    }
    let mut ids: Vec<(usize, usize)> = params
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id(), i))
        .collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0].0 == w[1].0) {
        let (a, b) = (w[0].1.min(w[1].1), w[0].1.max(w[1].1));
        return Err(Error::param(
            op,
            "params",
            format!("parameters {a} and {b} are the same tensor: a parameter may appear only once"),
        ));
    }
    Ok(())
}

/// `"{i}.{field}"` -> `i`, for a state entry of parameter `i` of `n`.
pub(crate) fn parse_state_key(
    op: &'static str,
    name: &str,
    field: &str,
    n: usize,
) -> Result<usize> {
    name.strip_suffix(&format!(".{field}"))
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|&i| i < n)
        .ok_or_else(|| {
            Error::param(
                op,
                "state",
                format!("unexpected entry '{name}' for {n} parameters"),
            )
        })
}

/// A state buffer must have its parameter's shape and finite values.
pub(crate) fn check_state_tensor(op: &'static str, name: &str, t: &Tensor, p: &Var) -> Result<()> {
    if t.shape() != p.shape().as_slice() {
        return Err(Error::shape(
            op,
            format!(
                "state '{name}' has shape {} but its parameter has shape {}",
                Dims(t.shape()),
                Dims(&p.shape())
            ),
        ));
    }
    if t.data().iter().any(|v| !v.is_finite()) {
        return Err(Error::param(
            op,
            "state",
            format!("'{name}' holds a non-finite value"),
        ));
    }
    Ok(())
}

/// Stochastic gradient descent, `torch.optim.SGD`:
/// `g = grad + weight_decay * p`; with momentum `buf = momentum * buf +
/// (1 - dampening) * g` (`buf = g` on the first step) and `g = buf` (or
/// `g + momentum * buf` with Nesterov); then `p -= lr * g`.
///
/// ```
/// use convlab::{autograd::Var, optim::{Optimizer, Sgd}, Tensor};
/// let w = Var::param(Tensor::from_slice(&[1.0], &[1])?);
/// let mut opt = Sgd::new(vec![w.clone()], 0.1)?;
/// w.square()?.sum()?.backward()?;   // grad 2
/// opt.step()?;
/// assert!((w.item()? - 0.8).abs() < 1e-6);
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct Sgd {
    params: Vec<Var>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    ///
    /// # Errors
    /// [`Error::Param`] for an invalid rate, an empty parameter list or a
    /// parameter given twice.
    pub fn new(params: Vec<Var>, lr: impl Into<f64>) -> Result<Sgd> {
        let lr = lr.into();
        check_lr("SGD", lr)?;
        check_params("SGD", &params)?;
        let n = params.len();
        Ok(Sgd {
            params,
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            buffers: vec![None; n],
        })
    }
    /// Set the momentum factor.
    ///
    /// # Errors
    /// [`Error::Param`] when negative or not finite, or when Nesterov is on
    /// and the momentum becomes 0.
    pub fn momentum(mut self, m: impl Into<f64>) -> Result<Self> {
        self.momentum = m.into();
        check_non_negative("SGD", "momentum", "momentum", self.momentum)?;
        self.check_nesterov()?;
        Ok(self)
    }
    /// Set the dampening of the momentum.
    ///
    /// # Errors
    /// [`Error::Param`] when not finite, or non-zero with Nesterov on.
    pub fn dampening(mut self, d: impl Into<f64>) -> Result<Self> {
        self.dampening = d.into();
        if !self.dampening.is_finite() {
            return Err(Error::param(
                "SGD",
                "dampening",
                format!("invalid dampening value: {}", py(self.dampening)),
            ));
        }
        self.check_nesterov()?;
        Ok(self)
    }
    /// Set the L2 weight decay (added to the gradient).
    ///
    /// # Errors
    /// [`Error::Param`] when negative or not finite.
    pub fn weight_decay(mut self, wd: impl Into<f64>) -> Result<Self> {
        self.weight_decay = wd.into();
        check_non_negative("SGD", "weight_decay", "weight_decay", self.weight_decay)?;
        Ok(self)
    }
    /// Use Nesterov momentum (set the momentum first).
    ///
    /// # Errors
    /// [`Error::Param`] "Nesterov momentum requires a momentum and zero
    /// dampening", as PyTorch.
    pub fn nesterov(mut self, on: bool) -> Result<Self> {
        self.nesterov = on;
        self.check_nesterov()?;
        Ok(self)
    }
    fn check_nesterov(&self) -> Result<()> {
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::param(
                "SGD",
                "nesterov",
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let (m, damp) = (self.momentum as f32, self.dampening as f32);
        let (wd, lr) = (self.weight_decay as f32, self.lr as f32);
        for (p, buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            let Some(mut g) = p.grad() else { continue };
            if self.weight_decay != 0.0 {
                g = g.zip_broadcast("sgd", &p.value(), |g, w| g + wd * w)?;
            }
            if self.momentum != 0.0 {
                let b = match buf.take() {
                    None => g.clone(),
                    Some(b) => b.zip_broadcast("sgd", &g, |b, g| m * b + (1.0 - damp) * g)?,
                };
                g = if self.nesterov {
                    g.zip_broadcast("sgd", &b, |g, b| g + m * b)?
                } else {
                    b.clone()
                };
                *buf = Some(b);
            }
            p.update(|w| {
                w.data_mut()
                    .iter_mut()
                    .zip(g.data())
                    .for_each(|(w, g)| *w -= lr * g)
            });
        }
        Ok(())
    }
    fn zero_grad(&self) {
        self.params.iter().for_each(Var::zero_grad);
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr("SGD", lr)?;
        self.lr = lr;
        Ok(())
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        self.buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                b.as_ref()
                    .map(|b| (format!("{i}.momentum_buffer"), b.clone()))
            })
            .collect()
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut buffers = vec![None; self.params.len()];
        for (name, t) in state {
            let i = parse_state_key("SGD", name, "momentum_buffer", self.params.len())?;
            check_state_tensor("SGD", name, t, &self.params[i])?;
            if buffers[i].replace(t.clone()).is_some() {
                return Err(Error::param(
                    "SGD",
                    "state",
                    format!("'{name}' is given twice"),
                ));
            }
        }
        self.buffers = buffers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Var {
        Var::param(Tensor::from_slice(&[1.0], &[1]).unwrap())
    }

    #[test]
    fn sgd_momentum_matches_pytorch_rule() {
        // p=1, grad = 2p each step, lr .1, momentum .9:
        // step1: buf=2, p=0.8; step2: g=1.6, buf=.9*2+1.6=3.4, p=0.8-.34=0.46
        let w = w();
        let mut opt = Sgd::new(vec![w.clone()], 0.1)
            .unwrap()
            .momentum(0.9)
            .unwrap();
        for _ in 0..2 {
            opt.zero_grad();
            w.square().unwrap().sum().unwrap().backward().unwrap();
            opt.step().unwrap();
        }
        assert!((w.item().unwrap() - 0.46).abs() < 1e-6);
    }

    #[test]
    fn hyperparameters_are_checked_with_pytorchs_messages() {
        let e = |r: Result<Sgd>| r.err().unwrap().to_string();
        assert_eq!(
            e(Sgd::new(vec![w()], -1.0)),
            "SGD: lr invalid learning rate: -1.0"
        );
        assert_eq!(
            e(Sgd::new(vec![], 0.1)),
            "SGD: params optimizer got an empty parameter list"
        );
        let p = w();
        assert!(
            e(Sgd::new(vec![p.clone(), w(), p], 0.1)).contains("parameters 0 and 2 are the same")
        );
        assert_eq!(
            e(Sgd::new(vec![w()], 0.1).unwrap().momentum(f64::NAN)),
            "SGD: momentum invalid momentum value: nan"
        );
        assert_eq!(
            e(Sgd::new(vec![w()], 0.1).unwrap().nesterov(true)),
            "SGD: nesterov Nesterov momentum requires a momentum and zero dampening"
        );
        let e2 = Sgd::new(vec![w()], 0.1)
            .unwrap()
            .momentum(0.9)
            .unwrap()
            .nesterov(true)
            .unwrap()
            .dampening(0.1);
        assert!(e2.is_err());
        let mut opt = Sgd::new(vec![w()], 0.1).unwrap();
        assert!(opt.set_lr(f64::NAN).is_err());
        assert_eq!(opt.lr(), 0.1);
    }

    #[test]
    fn python_float_format() {
        assert_eq!(py(2.0), "2.0");
        assert_eq!(py(0.25), "0.25");
        assert_eq!(py(f64::NAN), "nan");
        assert_eq!(py(f64::NEG_INFINITY), "-inf");
    }
}
