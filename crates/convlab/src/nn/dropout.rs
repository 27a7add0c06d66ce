//! `nn.Dropout` and `nn.Dropout2d`: seeded masks with inverted scaling.

use super::{display_from_describe, Module};
use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::tensor::{Rng64, Tensor};
use rand::{Rng, RngCore, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn check_p(op: &'static str, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::param(
            op,
            "p",
            format!("dropout probability has to be between 0 and 1, but got {p}"),
        ));
    }
    Ok(())
}

/// The randomness of a dropout layer: a seed, and a counter of training
/// calls. Call `k` draws its mask from ChaCha8 seeded with `seed` on stream
/// `k`, so masks depend only on the seed and the call's number, never on
/// which thread runs it or what else drew numbers before.
struct Masks {
    seed: u64,
    calls: AtomicU64,
}

impl Masks {
    fn new(seed: u64) -> Masks {
        Masks {
            seed,
            calls: AtomicU64::new(0),
        }
    }

    /// `count` values, each `0` with probability `p` and `1 / (1 - p)`
    /// otherwise (`0` everywhere for `p = 1`), in a tensor of `shape`.
    fn draw(&self, p: f64, shape: &[usize]) -> Result<Tensor> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng64::seed_from_u64(self.seed);
        rng.set_stream(call);
        let keep = if p >= 1.0 {
            0.0
        } else {
            (1.0 / (1.0 - p)) as f32
        };
        let mut mask = Tensor::zeros(shape)?;
        for v in mask.data_mut() {
            // A 53-bit uniform in [0, 1): kept when at least p (probability 1 - p).
            let u = rng.gen::<f64>();
            *v = if u >= p { keep } else { 0.0 };
        }
        Ok(mask)
    }
}

/// `nn.Dropout(p=0.5)`: in training mode each element is zeroed with
/// probability `p` and the rest scaled by `1 / (1 - p)`; in eval mode the
/// input passes through.
///
/// Masks come from the layer's seed and a count of its training calls
/// (see the thread notes in [`crate::nn`]): two layers built from one
/// generator get different seeds, and a run replays exactly from the same
/// seed. [`Dropout::calls`] and [`Dropout::set_calls`] let a checkpoint
/// resume the sequence.
///
/// ```
/// use convlab::{nn::*, autograd::Var, seeded_rng, Tensor};
/// let mut drop = Dropout::new(0.5, &mut seeded_rng(0))?;
/// let x = Var::new(Tensor::ones(&[1000])?);
/// let y = drop.forward(&x)?.tensor();
/// assert!(y.data().iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.eval();
/// assert_eq!(drop.forward(&x)?.tensor(), x.tensor());
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct Dropout {
    p: f64,
    masks: Masks,
    training: AtomicBool,
}

impl Dropout {
    /// A dropout layer in training mode whose seed is drawn from `rng`.
    ///
    /// # Errors
    /// [`Error::Param`] when `p` is not in `[0, 1]` (PyTorch's message).
    pub fn new(p: f64, rng: &mut impl RngCore) -> Result<Dropout> {
        Dropout::with_seed(p, rng.next_u64())
    }

    /// A dropout layer with an explicit seed.
    ///
    /// # Errors
    /// As [`Dropout::new`].
    pub fn with_seed(p: f64, seed: u64) -> Result<Dropout> {
        check_p("Dropout", p)?;
        Ok(Dropout {
            p,
            masks: Masks::new(seed),
            training: AtomicBool::new(true),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// How many masks the layer has drawn.
    pub fn calls(&self) -> u64 {
        self.masks.calls.load(Ordering::Relaxed)
    }

    /// Continue the mask sequence from call `calls` (resuming a run).
    pub fn set_calls(&self, calls: u64) {
        self.masks.calls.store(calls, Ordering::Relaxed);
    }
}

impl Module for Dropout {
    fn forward(&self, input: &Var) -> Result<Var> {
        if !self.is_training() || self.p == 0.0 {
            return Ok(input.clone());
        }
        let mask = self.masks.draw(self.p, &input.shape())?;
        input.mul_mask(mask)
    }
    fn set_own_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
    fn describe(&self) -> String {
        format!("Dropout(p={}, inplace=False)", py_prob(self.p))
    }
}

/// `nn.Dropout2d(p=0.5)`: zeroes whole channels. For `[N, C, H, W]` (and,
/// as PyTorch, `[N, C, L]`) input each `(n, c)` plane is dropped with
/// probability `p`, the rest scaled by `1 / (1 - p)`.
pub struct Dropout2d {
    p: f64,
    masks: Masks,
    training: AtomicBool,
}

impl Dropout2d {
    /// A channel dropout layer in training mode whose seed is drawn from `rng`.
    ///
    /// # Errors
    /// [`Error::Param`] when `p` is not in `[0, 1]`.
    pub fn new(p: f64, rng: &mut impl RngCore) -> Result<Dropout2d> {
        Dropout2d::with_seed(p, rng.next_u64())
    }

    /// A channel dropout layer with an explicit seed.
    ///
    /// # Errors
    /// As [`Dropout2d::new`].
    pub fn with_seed(p: f64, seed: u64) -> Result<Dropout2d> {
        check_p("Dropout2d", p)?;
        Ok(Dropout2d {
            p,
            masks: Masks::new(seed),
            training: AtomicBool::new(true),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// How many masks the layer has drawn.
    pub fn calls(&self) -> u64 {
        self.masks.calls.load(Ordering::Relaxed)
    }

    /// Continue the mask sequence from call `calls`.
    pub fn set_calls(&self, calls: u64) {
        self.masks.calls.store(calls, Ordering::Relaxed);
    }
}

impl Module for Dropout2d {
    fn forward(&self, input: &Var) -> Result<Var> {
        let shape = input.shape();
        if shape.len() != 3 && shape.len() != 4 {
            return Err(Error::shape(
                "Dropout2d",
                format!(
                    "expected a 3D or 4D input [N, C, ...], got {}",
                    Dims(&shape)
                ),
            ));
        }
        if !self.is_training() || self.p == 0.0 {
            return Ok(input.clone());
        }
        let mut mask_shape = vec![1; shape.len()];
        mask_shape[..2].copy_from_slice(&shape[..2]);
        let mask = self.masks.draw(self.p, &mask_shape)?;
        input.mul_mask(mask)
    }
    fn set_own_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
    fn describe(&self) -> String {
        format!("Dropout2d(p={}, inplace=False)", py_prob(self.p))
    }
}

/// A probability as Python prints a float (`0.5`, `0.0`, `1.0`).
fn py_prob(p: f64) -> String {
    if p == p.trunc() {
        format!("{p:.1}")
    } else {
        format!("{p}")
    }
}

display_from_describe!(Dropout, Dropout2d);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn probability_out_of_range_is_pytorchs_error() {
        let e = Dropout::with_seed(1.5, 0).err().unwrap().to_string();
        assert_eq!(
            e,
            "Dropout: p dropout probability has to be between 0 and 1, but got 1.5"
        );
        assert!(Dropout2d::with_seed(f64::NAN, 0).is_err());
    }

    #[test]
    fn masks_replay_from_seed_and_call_count() {
        let x = Var::new(Tensor::ones(&[64]).unwrap());
        let a = Dropout::with_seed(0.3, 9).unwrap();
        let b = Dropout::with_seed(0.3, 9).unwrap();
        let first = a.forward(&x).unwrap().tensor();
        assert_ne!(first, a.forward(&x).unwrap().tensor());
        assert_eq!(first, b.forward(&x).unwrap().tensor());
        b.set_calls(0);
        assert_eq!(first, b.forward(&x).unwrap().tensor());
        assert_eq!(b.calls(), 1);
        let c = Dropout::new(0.3, &mut seeded_rng(1)).unwrap();
        assert_ne!(first, c.forward(&x).unwrap().tensor());
    }

    #[test]
    fn p_one_zeroes_and_channel_masks_cover_planes() {
        let x = Var::new(Tensor::ones(&[2, 3, 2, 2]).unwrap());
        let y = Dropout::with_seed(1.0, 0).unwrap().forward(&x).unwrap();
        assert!(y.tensor().data().iter().all(|&v| v == 0.0));
        let y = Dropout2d::with_seed(0.5, 3)
            .unwrap()
            .forward(&x)
            .unwrap()
            .tensor();
        for plane in y.data().chunks(4) {
            assert!(plane.iter().all(|&v| v == plane[0]) && (plane[0] == 0.0 || plane[0] == 2.0));
        }
    }
}
