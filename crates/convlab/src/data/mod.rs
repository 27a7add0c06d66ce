//! Small real data sets for examples and end-to-end training, and the
//! seeded shuffling and batching a training loop needs.
//!
//! [`digits`]: the UCI handwritten digits (1797 images of 8x8 pixels), the
//! set `convlab train-digits` learns, embedded ([`Digits::bundled`]) or read
//! from a file.
//!
//! ```
//! use convlab::{data::{Batches, Digits}, seeded_rng};
//! let (train, _test) = Digits::bundled()?.split_every_fifth();
//! let mut rng = seeded_rng(0);
//! let mut seen = 0;
//! for idx in Batches::shuffled(train.len(), 32, &mut rng)? {
//!     let (x, labels) = train.batch(&idx)?; // x: [32, 1, 8, 8] (29 in the last batch)
//!     seen += labels.len();
//! }
//! assert_eq!(seen, 1437);
//! # Ok::<(), convlab::Error>(())
//! ```

pub mod digits;

pub use digits::Digits;

use crate::error::{Error, Result};
use rand::RngCore;

/// Shuffles `order` in place: Fisher–Yates from the last position down,
/// for `i` in `(1..n).rev()` swapping `i` with
/// `j = (next_u64() * (i + 1)) >> 64` (a 128-bit product; bias below
/// 2^-50 for n < 2^14). Written out
/// so that another implementation can reproduce an order exactly.
pub fn shuffle(order: &mut [usize], rng: &mut impl RngCore) {
    for i in (1..order.len()).rev() {
        let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
}

/// The index batches of one epoch, PyTorch's `DataLoader(batch_size,
/// shuffle, drop_last=False)` sampler: consecutive runs of `batch_size`
/// indices of `0..n` (in order, or in a [`shuffle`]d order), the last one
/// holding what remains.
#[derive(Clone, Debug)]
pub struct Batches {
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl Batches {
    /// `0..n` in order.
    ///
    /// # Errors
    /// [`Error::Param`] for a zero `batch_size`.
    pub fn sequential(n: usize, batch_size: usize) -> Result<Batches> {
        if batch_size == 0 {
            return Err(Error::param("Batches", "batch_size", "must be at least 1"));
        }
        // An index takes the room of two f32 values.
        crate::memory::check_f32("Batches", n.saturating_mul(2))?;
        Ok(Batches {
            order: (0..n).collect(),
            batch_size,
            next: 0,
        })
    }

    /// `0..n` in an order drawn from `rng` by [`shuffle`].
    ///
    /// # Errors
    /// As [`Batches::sequential`].
    pub fn shuffled(n: usize, batch_size: usize, rng: &mut impl RngCore) -> Result<Batches> {
        let mut b = Batches::sequential(n, batch_size)?;
        shuffle(&mut b.order, rng);
        Ok(b)
    }

    /// The whole epoch's order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The number of batches in the epoch.
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }
}

impl Iterator for Batches {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let batch = self.order[self.next..end].to_vec();
        self.next = end;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, &mut seeded_rng(3));
        shuffle(&mut b, &mut seeded_rng(3));
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn batches_cover_everything_once() {
        let b: Vec<Vec<usize>> = Batches::sequential(7, 3).unwrap().collect();
        assert_eq!(b, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        let s = Batches::shuffled(10, 4, &mut seeded_rng(1)).unwrap();
        assert_eq!(s.num_batches(), 3);
        let mut all: Vec<usize> = s.flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert!(Batches::sequential(3, 0).is_err());
    }
}
