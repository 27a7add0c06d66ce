//! Optimizers with PyTorch's update rules: [`Sgd`] (momentum, dampening,
//! Nesterov, weight decay) and [`Adam`].

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// One optimisation step over a fixed set of parameters.
pub trait Optimizer {
    /// Update every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;
    /// Forget every parameter's gradient.
    fn zero_grad(&self);
    /// The learning rate.
    fn lr(&self) -> f32;
    /// Change the learning rate.
    fn set_lr(&mut self, lr: f32);
    /// The optimizer's per-parameter state (momentum buffers, moments),
    /// by parameter index, for checkpoints.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restore the state produced by [`Optimizer::state`].
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;
}

fn check_lr(op: &'static str, lr: f32) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(Error::param(
            op,
            "lr",
            format!("{lr} is invalid: must be finite and non-negative"),
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
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: bool,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(params: Vec<Var>, lr: f32) -> Result<Sgd> {
        check_lr("SGD", lr)?;
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
    pub fn momentum(mut self, m: f32) -> Self {
        self.momentum = m;
        self
    }
    /// Set the dampening of the momentum.
    pub fn dampening(mut self, d: f32) -> Self {
        self.dampening = d;
        self
    }
    /// Set the L2 weight decay.
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Use Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        for (p, buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            let Some(mut g) = p.grad() else { continue };
            if self.weight_decay != 0.0 {
                let wd = self.weight_decay;
                g = g.zip_broadcast("sgd", &p.value(), |g, w| g + wd * w)?;
            }
            if self.momentum != 0.0 {
                let (m, damp) = (self.momentum, self.dampening);
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
            let lr = self.lr;
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
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
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
            check_state_shape("SGD", name, t, &self.params[i])?;
            buffers[i] = Some(t.clone());
        }
        self.buffers = buffers;
        Ok(())
    }
}

fn parse_state_key(op: &'static str, name: &str, field: &str, n: usize) -> Result<usize> {
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

fn check_state_shape(op: &'static str, name: &str, t: &Tensor, p: &Var) -> Result<()> {
    if t.shape() != p.shape().as_slice() {
        return Err(Error::shape(
            op,
            format!(
                "state '{name}' has shape {} but its parameter has shape {}",
                crate::error::Dims(t.shape()),
                crate::error::Dims(&p.shape())
            ),
        ));
    }
    Ok(())
}

/// Adam, `torch.optim.Adam` with its defaults (betas 0.9, 0.999, eps 1e-8,
/// no weight decay), computed in the same order as PyTorch's
/// single-tensor implementation.
pub struct Adam {
    params: Vec<Var>,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step: u64,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
}

impl Adam {
    /// Adam with learning rate `lr` (PyTorch's default is 1e-3).
    pub fn new(params: Vec<Var>, lr: f32) -> Result<Adam> {
        check_lr("Adam", lr)?;
        let n = params.len();
        Ok(Adam {
            params,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            step: 0,
            m: vec![None; n],
            v: vec![None; n],
        })
    }
    /// Set the moment decay rates.
    pub fn betas(mut self, b1: f32, b2: f32) -> Self {
        self.beta1 = b1;
        self.beta2 = b2;
        self
    }
    /// Set the denominator's epsilon.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }
    /// Set the L2 weight decay (added to the gradient, as `Adam`, not `AdamW`).
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2, eps, lr, wd) = (self.beta1, self.beta2, self.eps, self.lr, self.weight_decay);
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let step_size = lr / bc1;
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = p.grad() else { continue };
            let w = p.tensor();
            let n = w.numel();
            let m = self.m[i].get_or_insert_with(|| {
                Tensor::from_vec(vec![0.0; n], w.shape()).expect("same shape")
            });
            let v = self.v[i].get_or_insert_with(|| {
                Tensor::from_vec(vec![0.0; n], w.shape()).expect("same shape")
            });
            let mut neww = w.clone();
            for j in 0..n {
                let gj = g.data()[j] + wd * w.data()[j];
                let mj = &mut m.data_mut()[j];
                *mj += (gj - *mj) * (1.0 - b1); // lerp, as torch's exp_avg.lerp_
                let vj = &mut v.data_mut()[j];
                *vj = *vj * b2 + (1.0 - b2) * gj * gj;
                let denom = vj.sqrt() / bc2_sqrt + eps;
                neww.data_mut()[j] -= step_size * (*mj / denom);
            }
            p.set_value(neww)?;
        }
        Ok(())
    }
    fn zero_grad(&self) {
        self.params.iter().for_each(Var::zero_grad);
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut s = vec![("step".to_string(), Tensor::scalar(self.step as f32))];
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            if let (Some(m), Some(v)) = (m, v) {
                s.push((format!("{i}.exp_avg"), m.clone()));
                s.push((format!("{i}.exp_avg_sq"), v.clone()));
            }
        }
        s
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let n = self.params.len();
        let (mut m, mut v) = (vec![None; n], vec![None; n]);
        let mut step = 0;
        for (name, t) in state {
            if name == "step" {
                step = t.item()? as u64;
            } else if name.ends_with(".exp_avg") {
                let i = parse_state_key("Adam", name, "exp_avg", n)?;
                check_state_shape("Adam", name, t, &self.params[i])?;
                m[i] = Some(t.clone());
            } else {
                let i = parse_state_key("Adam", name, "exp_avg_sq", n)?;
                check_state_shape("Adam", name, t, &self.params[i])?;
                v[i] = Some(t.clone());
            }
        }
        self.step = step;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_momentum_matches_pytorch_rule() {
        // p=1, grad = 2p each step, lr .1, momentum .9:
        // step1: buf=2, p=0.8; step2: g=1.6, buf=.9*2+1.6=3.4, p=0.8-.34=0.46
        let w = Var::param(Tensor::from_slice(&[1.0], &[1]).unwrap());
        let mut opt = Sgd::new(vec![w.clone()], 0.1).unwrap().momentum(0.9);
        for _ in 0..2 {
            opt.zero_grad();
            w.square().unwrap().sum().unwrap().backward().unwrap();
            opt.step().unwrap();
        }
        assert!((w.item().unwrap() - 0.46).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction the first Adam step is lr * sign(grad).
        let w = Var::param(Tensor::from_slice(&[1.0, -2.0], &[2]).unwrap());
        let mut opt = Adam::new(vec![w.clone()], 0.01).unwrap();
        w.square().unwrap().sum().unwrap().backward().unwrap();
        opt.step().unwrap();
        let v = w.tensor();
        assert!((v.data()[0] - 0.99).abs() < 1e-6 && (v.data()[1] + 1.99).abs() < 1e-6);
    }

    #[test]
    fn negative_lr_is_an_error() {
        assert!(Sgd::new(vec![], -1.0).is_err());
        assert!(Adam::new(vec![], f32::NAN).is_err());
    }
}
