//! [`Adam`] and [`AdamW`]: one update rule, with the weight decay added to
//! the gradient (Adam's L2) or applied to the weights (AdamW's decoupled).

use super::{
    check_lr, check_non_negative, check_params, check_state_tensor, parse_state_key, py, Optimizer,
};
use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The largest step count a checkpoint may hold: counts are saved as f32,
/// which holds every integer up to 2^24 (16.8 million steps) exactly.
const MAX_STEP: f32 = 16_777_216.0;

/// State and rule shared by Adam and AdamW, PyTorch's single-tensor
/// implementation in its order: `m = lerp(m, g, 1 - beta1)`,
/// `v = beta2 * v + (1 - beta2) * g^2`, `p -= lr / (1 - beta1^t) * m /
/// (sqrt(v) / sqrt(1 - beta2^t) + eps)`; scalars computed in f64 as Python
/// computes them, then applied in f32.
struct Core {
    op: &'static str,
    params: Vec<Var>,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    step: u64,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
}

impl Core {
    fn new(
        op: &'static str,
        params: Vec<Var>,
        lr: f64,
        weight_decay: f64,
        decoupled: bool,
    ) -> Result<Core> {
        check_lr(op, lr)?;
        check_params(op, &params)?;
        let n = params.len();
        Ok(Core {
            op,
            params,
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            decoupled,
            step: 0,
            m: vec![None; n],
            v: vec![None; n],
        })
    }

    fn set_betas(&mut self, b1: f64, b2: f64) -> Result<()> {
        for (i, b) in [b1, b2].into_iter().enumerate() {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::param(
                    self.op,
                    "betas",
                    format!("invalid beta parameter at index {i}: {}", py(b)),
                ));
            }
        }
        self.betas = (b1, b2);
        Ok(())
    }

    fn step(&mut self) -> Result<()> {
        self.step += 1;
        let t = self.step as f64;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powf(t);
        let bc2_sqrt = (1.0 - b2.powf(t)).sqrt();
        let step_size = (self.lr / bc1) as f32;
        let (bc2_sqrt, eps) = (bc2_sqrt as f32, self.eps as f32);
        let (one_b1, b2f, one_b2) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32);
        let wd = self.weight_decay as f32;
        let decay = (1.0 - self.lr * self.weight_decay) as f32;
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = p.grad() else { continue };
            let shape = p.shape();
            let m = match &mut self.m[i] {
                Some(m) => m,
                slot => slot.insert(Tensor::zeros(&shape)?),
            };
            let v = match &mut self.v[i] {
                Some(v) => v,
                slot => slot.insert(Tensor::zeros(&shape)?),
            };
            let decoupled = self.decoupled;
            p.update(|w| {
                let (md, vd) = (m.data_mut(), v.data_mut());
                for (j, wj) in w.data_mut().iter_mut().enumerate() {
                    let mut gj = g.data()[j];
                    if wd != 0.0 {
                        if decoupled {
                            *wj *= decay;
                        } else {
                            gj += wd * *wj;
                        }
                    }
                    md[j] += (gj - md[j]) * one_b1; // lerp, as torch's exp_avg.lerp_
                    vd[j] = vd[j] * b2f + one_b2 * gj * gj;
                    let denom = vd[j].sqrt() / bc2_sqrt + eps;
                    *wj -= step_size * (md[j] / denom);
                }
            });
        }
        Ok(())
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
        let op = self.op;
        let n = self.params.len();
        let (mut m, mut v) = (vec![None; n], vec![None; n]);
        let mut step = None;
        for (name, t) in state {
            let twice = || Error::param(op, "state", format!("'{name}' is given twice"));
            if name == "step" {
                let s = match t.data() {
                    [s] => *s,
                    _ => return Err(Error::param(op, "state", "'step' must hold one value")),
                };
                // An f32 cast to u64 saturates: 1e30 would become u64::MAX
                // and the bias corrections nonsense. Refuse instead.
                if !(s.is_finite() && s >= 0.0 && s.fract() == 0.0 && s <= MAX_STEP) {
                    return Err(Error::param(
                        op,
                        "state",
                        format!("'step' is {s}, not an integer in [0, 2^24]"),
                    ));
                }
                if step.replace(s as u64).is_some() {
                    return Err(twice());
                }
            } else if name.ends_with(".exp_avg") {
                let i = parse_state_key(op, name, "exp_avg", n)?;
                check_state_tensor(op, name, t, &self.params[i])?;
                if m[i].replace(t.clone()).is_some() {
                    return Err(twice());
                }
            } else {
                let i = parse_state_key(op, name, "exp_avg_sq", n)?;
                check_state_tensor(op, name, t, &self.params[i])?;
                if t.data().iter().any(|&x| x < 0.0) {
                    return Err(Error::param(
                        op,
                        "state",
                        format!("'{name}' holds a negative second moment"),
                    ));
                }
                if v[i].replace(t.clone()).is_some() {
                    return Err(twice());
                }
            }
        }
        if m.iter().zip(&v).any(|(a, b)| a.is_some() != b.is_some()) {
            return Err(Error::param(
                op,
                "state",
                "every parameter needs both exp_avg and exp_avg_sq, or neither",
            ));
        }
        let step = step.unwrap_or(0);
        if step == 0 && m.iter().any(Option::is_some) {
            return Err(Error::param(
                op,
                "state",
                "moments without a step count (step 0)",
            ));
        }
        self.step = step;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

macro_rules! adam_like {
    ($t:ident) => {
        impl $t {
            /// Set the moment decay rates (PyTorch's `betas`).
            ///
            /// # Errors
            /// [`Error::Param`] "invalid beta parameter at index i" when a
            /// beta is not in `[0, 1)`.
            pub fn betas(mut self, b1: impl Into<f64>, b2: impl Into<f64>) -> Result<Self> {
                self.0.set_betas(b1.into(), b2.into())?;
                Ok(self)
            }
            /// Set the denominator's epsilon.
            ///
            /// # Errors
            /// [`Error::Param`] when negative or not finite.
            pub fn eps(mut self, eps: impl Into<f64>) -> Result<Self> {
                let eps = eps.into();
                check_non_negative(self.0.op, "eps", "epsilon", eps)?;
                self.0.eps = eps;
                Ok(self)
            }
            /// Set the weight decay.
            ///
            /// # Errors
            /// [`Error::Param`] when negative or not finite.
            pub fn weight_decay(mut self, wd: impl Into<f64>) -> Result<Self> {
                let wd = wd.into();
                check_non_negative(self.0.op, "weight_decay", "weight_decay", wd)?;
                self.0.weight_decay = wd;
                Ok(self)
            }
            /// The steps taken so far.
            pub fn steps(&self) -> u64 {
                self.0.step
            }
        }

        impl Optimizer for $t {
            fn step(&mut self) -> Result<()> {
                self.0.step()
            }
            fn zero_grad(&self) {
                self.0.params.iter().for_each(Var::zero_grad);
            }
            fn lr(&self) -> f64 {
                self.0.lr
            }
            fn set_lr(&mut self, lr: f64) -> Result<()> {
                check_lr(self.0.op, lr)?;
                self.0.lr = lr;
                Ok(())
            }
            fn state(&self) -> Vec<(String, Tensor)> {
                self.0.state()
            }
            fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
                self.0.load_state(state)
            }
        }
    };
}

/// Adam, `torch.optim.Adam` with its defaults (betas 0.9, 0.999, eps 1e-8,
/// no weight decay); weight decay is added to the gradient (L2).
///
/// ```
/// use convlab::{autograd::Var, optim::{Adam, Optimizer}, Tensor};
/// let w = Var::param(Tensor::from_slice(&[1.0, -2.0], &[2])?);
/// let mut opt = Adam::new(vec![w.clone()], 0.01)?;
/// w.square()?.sum()?.backward()?;
/// opt.step()?; // the first step moves each weight by lr against its gradient's sign
/// assert!((w.tensor().data()[0] - 0.99).abs() < 1e-6);
/// assert!(Adam::new(vec![w], 0.01)?.betas(2.0, 0.999).is_err());
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct Adam(Core);

impl Adam {
    /// Adam with learning rate `lr` (PyTorch's default is 1e-3).
    ///
    /// # Errors
    /// [`Error::Param`] for an invalid rate, an empty parameter list or a
    /// parameter given twice.
    pub fn new(params: Vec<Var>, lr: impl Into<f64>) -> Result<Adam> {
        Ok(Adam(Core::new("Adam", params, lr.into(), 0.0, false)?))
    }
}

/// AdamW, `torch.optim.AdamW`: Adam with decoupled weight decay — each
/// step first shrinks the weights, `p *= 1 - lr * weight_decay` (default
/// weight decay 0.01), and the gradient is left alone.
pub struct AdamW(Core);

impl AdamW {
    /// AdamW with learning rate `lr` and PyTorch's defaults.
    ///
    /// # Errors
    /// As [`Adam::new`].
    pub fn new(params: Vec<Var>, lr: impl Into<f64>) -> Result<AdamW> {
        Ok(AdamW(Core::new("AdamW", params, lr.into(), 0.01, true)?))
    }
}

adam_like!(Adam);
adam_like!(AdamW);

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Var {
        Var::param(Tensor::from_slice(&[1.0, -2.0], &[2]).unwrap())
    }

    #[test]
    fn hyperparameters_are_checked() {
        let e = |r: Result<Adam>| r.err().unwrap().to_string();
        assert_eq!(
            e(Adam::new(vec![w()], 0.01).unwrap().betas(2.0, 0.5)),
            "Adam: betas invalid beta parameter at index 0: 2.0"
        );
        assert_eq!(
            e(Adam::new(vec![w()], 0.01).unwrap().betas(0.5, 1.0)),
            "Adam: betas invalid beta parameter at index 1: 1.0"
        );
        assert_eq!(
            e(Adam::new(vec![w()], 0.01).unwrap().eps(-1.0)),
            "Adam: eps invalid epsilon value: -1.0"
        );
        assert!(AdamW::new(vec![], 0.01).is_err());
        assert!(AdamW::new(vec![w()], 0.01)
            .unwrap()
            .weight_decay(f64::INFINITY)
            .is_err());
    }

    #[test]
    fn huge_or_fractional_step_counts_are_refused() {
        let p = w();
        let mut opt = Adam::new(vec![p.clone()], 0.01).unwrap();
        p.square().unwrap().sum().unwrap().backward().unwrap();
        opt.step().unwrap();
        let good = opt.state();
        for bad in [1e30, 2.5, -1.0, f32::NAN] {
            let mut s = good.clone();
            s[0].1 = Tensor::scalar(bad);
            let e = opt.load_state(&s).unwrap_err().to_string();
            assert!(e.contains("'step' is"), "{e}");
        }
        assert_eq!(opt.steps(), 1);
        let mut s = good.clone();
        s[2].1 = Tensor::from_slice(&[f32::INFINITY, 0.0], &[2]).unwrap();
        assert!(opt
            .load_state(&s)
            .unwrap_err()
            .to_string()
            .contains("non-finite"));
        opt.load_state(&good).unwrap();
    }

    #[test]
    fn adamw_decays_the_weights_not_the_gradient() {
        // With a zero gradient Adam's step is 0; AdamW still shrinks p.
        let p = Var::param(Tensor::from_slice(&[2.0], &[1]).unwrap());
        let mut opt = AdamW::new(vec![p.clone()], 0.1)
            .unwrap()
            .weight_decay(0.5)
            .unwrap();
        p.scale(0.0).unwrap().sum().unwrap().backward().unwrap();
        opt.step().unwrap();
        assert!((p.item().unwrap() - 2.0 * (1.0 - 0.05)).abs() < 1e-6);
    }
}
