//! Learning-rate schedules with PyTorch's recursive ("chainable") rules:
//! each `step()` derives the new rate from the optimizer's current one, as
//! `torch.optim.lr_scheduler` does, so the trajectories agree to rounding.
//!
//! ```
//! use convlab::{autograd::Var, optim::*, Tensor};
//! let w = Var::param(Tensor::ones(&[1])?);
//! let mut opt = Sgd::new(vec![w], 0.1)?;
//! let mut sched = StepLR::new(&opt, 2, 0.5)?;
//! let mut lrs = vec![];
//! for _epoch in 0..5 {
//!     // ... train one epoch with opt ...
//!     sched.step(&mut opt)?;
//!     lrs.push(opt.lr());
//! }
//! assert_eq!(lrs, [0.1, 0.05, 0.05, 0.025, 0.025]);
//! # Ok::<(), convlab::Error>(())
//! ```

use super::{py, Optimizer};
use crate::error::{Error, Result};

/// A learning-rate schedule, stepped once per epoch after the optimizer.
pub trait LrScheduler {
    /// Advance one epoch and set the optimizer's learning rate.
    ///
    /// # Errors
    /// [`Error::Param`] when the new rate is invalid for the optimizer.
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()>;
    /// Epochs stepped so far (PyTorch's `last_epoch`).
    fn last_epoch(&self) -> usize;
}

/// `torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma=0.1)`:
/// the rate is multiplied by `gamma` every `step_size` epochs.
pub struct StepLR {
    step_size: usize,
    gamma: f64,
    last_epoch: usize,
}

impl StepLR {
    /// A schedule for `opt` (its current rate is the base rate).
    ///
    /// # Errors
    /// [`Error::Param`] for a zero `step_size` or a negative or non-finite
    /// `gamma`.
    pub fn new(_opt: &dyn Optimizer, step_size: usize, gamma: f64) -> Result<StepLR> {
        if step_size == 0 {
            return Err(Error::param("StepLR", "step_size", "must be at least 1"));
        }
        if !(gamma.is_finite() && gamma >= 0.0) {
            return Err(Error::param(
                "StepLR",
                "gamma",
                format!("{} must be finite and non-negative", py(gamma)),
            ));
        }
        Ok(StepLR {
            step_size,
            gamma,
            last_epoch: 0,
        })
    }
}

impl LrScheduler for StepLR {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let epoch = self.last_epoch + 1;
        if epoch % self.step_size == 0 {
            opt.set_lr(opt.lr() * self.gamma)?;
        }
        self.last_epoch = epoch;
        Ok(())
    }
    fn last_epoch(&self) -> usize {
        self.last_epoch
    }
}

/// `torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max,
/// eta_min=0)`: the rate follows half a cosine from the base rate down to
/// `eta_min` over `t_max` epochs (then back up, as PyTorch's does).
pub struct CosineAnnealingLR {
    base_lr: f64,
    t_max: usize,
    eta_min: f64,
    last_epoch: usize,
}

impl CosineAnnealingLR {
    /// A schedule for `opt` (its current rate is the base rate).
    ///
    /// # Errors
    /// [`Error::Param`] for a zero `t_max` or a negative or non-finite
    /// `eta_min`.
    pub fn new(opt: &dyn Optimizer, t_max: usize, eta_min: f64) -> Result<CosineAnnealingLR> {
        if t_max == 0 {
            return Err(Error::param(
                "CosineAnnealingLR",
                "T_max",
                "must be at least 1",
            ));
        }
        if !(eta_min.is_finite() && eta_min >= 0.0) {
            return Err(Error::param(
                "CosineAnnealingLR",
                "eta_min",
                format!("{} must be finite and non-negative", py(eta_min)),
            ));
        }
        Ok(CosineAnnealingLR {
            base_lr: opt.lr(),
            t_max,
            eta_min,
            last_epoch: 0,
        })
    }
}

impl LrScheduler for CosineAnnealingLR {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        use std::f64::consts::PI;
        let epoch = self.last_epoch + 1;
        let (e, t) = (epoch as f64, self.t_max as f64);
        let (lr, eta) = (opt.lr(), self.eta_min);
        // PyTorch's get_lr(): at each trough (epoch = T_max + 1 mod 2 T_max)
        // start the rising half; elsewhere scale the distance to eta_min by
        // the ratio of successive cosines.
        let new = if epoch > self.t_max && (epoch - 1 - self.t_max) % (2 * self.t_max) == 0 {
            lr + (self.base_lr - eta) * (1.0 - (PI / t).cos()) / 2.0
        } else {
            (1.0 + (PI * e / t).cos()) / (1.0 + (PI * (e - 1.0) / t).cos()) * (lr - eta) + eta
        };
        opt.set_lr(new)?;
        self.last_epoch += 1;
        Ok(())
    }
    fn last_epoch(&self) -> usize {
        self.last_epoch
    }
}
