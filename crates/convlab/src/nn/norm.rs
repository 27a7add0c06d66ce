//! `nn.BatchNorm1d` and `nn.BatchNorm2d`: one type, [`BatchNorm`], built
//! by either name, with PyTorch's parameters, buffers and update rule.

use super::{display_from_describe, Buffer, Module};
use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Options of a batch norm layer, mirroring `nn.BatchNorm2d(num_features,
/// eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Channels `C` of the `[N, C, ...]` input.
    pub num_features: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Weight of a new batch in the running averages; `None` for the
    /// cumulative average (each batch weighs `1 / num_batches_tracked`).
    pub momentum: Option<f64>,
    /// Whether the layer has a learnable `weight` and `bias`.
    pub affine: bool,
    /// Whether the layer keeps running statistics (and uses them in eval
    /// mode); without them, eval mode normalises with batch statistics.
    pub track_running_stats: bool,
}

impl BatchNormConfig {
    /// PyTorch's defaults for `num_features` channels.
    pub fn new(num_features: usize) -> BatchNormConfig {
        BatchNormConfig {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
    /// Set `eps`.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Set `momentum` (`None`: cumulative average).
    pub fn momentum(mut self, momentum: Option<f64>) -> Self {
        self.momentum = momentum;
        self
    }
    /// Set `affine`.
    pub fn affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }
    /// Set `track_running_stats`.
    pub fn track_running_stats(mut self, track: bool) -> Self {
        self.track_running_stats = track;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rank {
    /// `[N, C]` or `[N, C, L]`.
    One,
    /// `[N, C, H, W]`.
    Two,
}

/// A batch norm layer: `BatchNorm1d` or `BatchNorm2d`, which differ only in
/// the input ranks they accept and their name.
///
/// Parameters `weight` (ones) and `bias` (zeros) when affine; buffers
/// `running_mean` (zeros), `running_var` (ones) and `num_batches_tracked`
/// (an int64 count) when tracking running statistics, in PyTorch's
/// `state_dict` order. In training mode the output uses the batch's mean
/// and biased variance, and the running averages take the batch's mean and
/// unbiased variance with weight `momentum`; in eval mode the running
/// statistics normalise.
///
/// ```
/// use convlab::{nn::*, autograd::Var, Tensor};
/// let mut bn = BatchNorm2d::new(2);
/// let x = Var::new(Tensor::arange(8.0)?.reshape(&[2, 2, 1, 2])?);
/// let y = bn.forward(&x)?; // training mode: zero mean per channel
/// assert!(y.tensor().data()[..2].iter().all(|v| *v < 0.0));
/// let running = bn.running_mean.as_ref().unwrap().tensor();
/// assert_eq!(running.data(), &[0.25, 0.45]); // 0.1 * batch mean [2.5, 4.5]
/// bn.eval();
/// assert_eq!(
///     bn.to_string(),
///     "BatchNorm2d(2, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"
/// );
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct BatchNorm {
    /// `[C]` scale, when affine.
    pub weight: Option<Var>,
    /// `[C]` shift, when affine.
    pub bias: Option<Var>,
    /// `[C]` running mean, when tracking statistics.
    pub running_mean: Option<Buffer>,
    /// `[C]` running (unbiased) variance, when tracking statistics.
    pub running_var: Option<Buffer>,
    /// Training batches seen, when tracking statistics.
    pub num_batches_tracked: Option<Buffer>,
    /// The options the layer was built with.
    pub config: BatchNormConfig,
    rank: Rank,
    training: AtomicBool,
    /// Held across one update of the three buffers, so concurrent
    /// training forwards update them one after the other, never mixed.
    update: Mutex<()>,
}

/// `nn.BatchNorm1d`: builds a [`BatchNorm`] over `[N, C]` or `[N, C, L]`.
pub enum BatchNorm1d {}

/// `nn.BatchNorm2d`: builds a [`BatchNorm`] over `[N, C, H, W]`.
pub enum BatchNorm2d {}

impl BatchNorm1d {
    /// `nn.BatchNorm1d(num_features)` with PyTorch's defaults.
    // A name to build by, as PyTorch spells it; the layer is one `BatchNorm` type.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(num_features: usize) -> BatchNorm {
        BatchNorm::build(BatchNormConfig::new(num_features), Rank::One)
    }
    /// `nn.BatchNorm1d` with explicit options.
    ///
    /// # Errors
    /// As [`BatchNorm::check`].
    pub fn with(config: BatchNormConfig) -> Result<BatchNorm> {
        BatchNorm::check(&config)?;
        Ok(BatchNorm::build(config, Rank::One))
    }
}

impl BatchNorm2d {
    /// `nn.BatchNorm2d(num_features)` with PyTorch's defaults.
    // A name to build by, as PyTorch spells it; the layer is one `BatchNorm` type.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(num_features: usize) -> BatchNorm {
        BatchNorm::build(BatchNormConfig::new(num_features), Rank::Two)
    }
    /// `nn.BatchNorm2d` with explicit options.
    ///
    /// # Errors
    /// As [`BatchNorm::check`].
    pub fn with(config: BatchNormConfig) -> Result<BatchNorm> {
        BatchNorm::check(&config)?;
        Ok(BatchNorm::build(config, Rank::Two))
    }
}

fn filled(n: usize, v: f32) -> Tensor {
    Tensor::from_vec(vec![v; n], &[n]).unwrap_or_else(|_| Tensor::scalar(v))
}

impl BatchNorm {
    /// Refuses options PyTorch would fail on at the first forward:
    /// a negative or non-finite `eps`, a non-finite `momentum`.
    ///
    /// # Errors
    /// [`Error::Param`] naming the option.
    pub fn check(config: &BatchNormConfig) -> Result<()> {
        if !(config.eps.is_finite() && config.eps >= 0.0) {
            return Err(Error::param(
                "BatchNorm",
                "eps",
                format!("{} must be finite and non-negative", config.eps),
            ));
        }
        if let Some(m) = config.momentum {
            if !m.is_finite() {
                return Err(Error::param(
                    "BatchNorm",
                    "momentum",
                    format!("{m} must be finite"),
                ));
            }
        }
        Ok(())
    }

    fn build(config: BatchNormConfig, rank: Rank) -> BatchNorm {
        let c = config.num_features;
        let (weight, bias) = if config.affine {
            (
                Some(Var::param(filled(c, 1.0))),
                Some(Var::param(filled(c, 0.0))),
            )
        } else {
            (None, None)
        };
        let (running_mean, running_var, num_batches_tracked) = if config.track_running_stats {
            (
                Some(Buffer::float(filled(c, 0.0))),
                Some(Buffer::float(filled(c, 1.0))),
                Some(Buffer::count(0)),
            )
        } else {
            (None, None, None)
        };
        BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            config,
            rank,
            training: AtomicBool::new(true),
            update: Mutex::new(()),
        }
    }

    /// Whether the layer is in training mode (the default, as in PyTorch).
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    fn name(&self) -> &'static str {
        match self.rank {
            Rank::One => "BatchNorm1d",
            Rank::Two => "BatchNorm2d",
        }
    }

    fn check_rank(&self, shape: &[usize]) -> Result<()> {
        let ok = match self.rank {
            Rank::One => shape.len() == 2 || shape.len() == 3,
            Rank::Two => shape.len() == 4,
        };
        if !ok {
            let want = match self.rank {
                Rank::One => "2D or 3D",
                Rank::Two => "4D",
            };
            return Err(Error::shape(
                self.name(),
                format!(
                    "expected {want} input (got {}D input of shape {})",
                    shape.len(),
                    Dims(shape)
                ),
            ));
        }
        if shape[1] != self.config.num_features {
            return Err(Error::shape(
                self.name(),
                format!(
                    "input {} has {} channels but the layer has num_features={}",
                    Dims(shape),
                    shape[1],
                    self.config.num_features
                ),
            ));
        }
        Ok(())
    }

    /// Folds one batch's statistics into the running averages, PyTorch's
    /// rule: `running = (1 - f) * running + f * batch` with `f = momentum`,
    /// or `1 / num_batches_tracked` for the cumulative average.
    fn update_running(&self, mean: &[f64], var_unbiased: &[f64]) {
        let (Some(rm), Some(rv), Some(count)) = (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) else {
            return;
        };
        let _one_at_a_time = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let batches = count.increment();
        let f = match self.config.momentum {
            Some(m) => m,
            None => 1.0 / batches.max(1) as f64,
        };
        let fold = |buf: &Buffer, batch: &[f64]| {
            buf.update_float(|t| {
                t.data_mut()
                    .iter_mut()
                    .zip(batch)
                    .for_each(|(r, &b)| *r = ((1.0 - f) * *r as f64 + f * b) as f32)
            })
        };
        fold(rm, mean);
        fold(rv, var_unbiased);
    }
}

impl Module for BatchNorm {
    fn forward(&self, input: &Var) -> Result<Var> {
        self.check_rank(&input.shape())?;
        let c = self.config.num_features;
        let eps = self.config.eps;
        let (w, b) = (self.weight.as_ref(), self.bias.as_ref());
        let running = match (&self.running_mean, &self.running_var) {
            (Some(m), Some(v)) => m.shared().zip(v.shared()),
            _ => None,
        };
        match running {
            Some((mean, var)) if !self.is_training() => input
                .batch_norm_eval(&mean, &var, w, b, eps)
                .map_err(|e| e.with_op(self.name())),
            _ => {
                let (y, stats) = input
                    .batch_norm_train(c, w, b, eps)
                    .map_err(|e| e.with_op(self.name()))?;
                if self.is_training() {
                    self.update_running(&stats.mean, &stats.var_unbiased);
                }
                Ok(y)
            }
        }
    }

    fn own_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            out.push(("weight".to_string(), w.clone()));
            out.push(("bias".to_string(), b.clone()));
        }
        out
    }

    fn own_buffers(&self) -> Vec<(String, Buffer)> {
        let mut out = Vec::new();
        if let (Some(m), Some(v), Some(n)) = (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) {
            out.push(("running_mean".to_string(), m.clone()));
            out.push(("running_var".to_string(), v.clone()));
            out.push(("num_batches_tracked".to_string(), n.clone()));
        }
        out
    }

    fn set_own_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        let c = &self.config;
        let py = |b: bool| if b { "True" } else { "False" };
        let momentum = match c.momentum {
            Some(m) => py_float(m),
            None => "None".to_string(),
        };
        format!(
            "{}({}, eps={}, momentum={momentum}, affine={}, bias={}, track_running_stats={})",
            self.name(),
            c.num_features,
            py_float(c.eps),
            py(c.affine),
            py(c.affine),
            py(c.track_running_stats)
        )
    }
}

/// A float as Python's `repr` prints small ones: `1e-05`, `0.001`.
fn py_float(v: f64) -> String {
    let s = if v == v.trunc() && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    };
    if v != 0.0 && v.abs() < 1e-4 {
        let e = format!("{v:e}"); // "1e-5"
        if let Some((m, exp)) = e.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", exp),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
    }
    s
}

display_from_describe!(BatchNorm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(1e-3), "0.001");
        assert_eq!(py_float(2.5e-7), "2.5e-07");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(1.0), "1.0");
    }

    #[test]
    fn wrong_rank_and_channels_are_errors() {
        let bn = BatchNorm2d::new(4);
        let x = Var::new(Tensor::zeros(&[2, 4, 3]).unwrap());
        let e = bn.forward(&x).unwrap_err().to_string();
        assert_eq!(
            e,
            "BatchNorm2d: expected 4D input (got 3D input of shape [2, 4, 3])"
        );
        let x = Var::new(Tensor::zeros(&[2, 3, 3, 3]).unwrap());
        assert!(bn.forward(&x).is_err());
        let one = Var::new(Tensor::zeros(&[1, 4]).unwrap());
        let e = BatchNorm1d::new(4).forward(&one).unwrap_err().to_string();
        assert!(e.contains("more than 1 value per channel"), "{e}");
    }
}
