//! [`Buffer`]: module state that is saved with the parameters but not
//! trained (BatchNorm's running statistics and batch counter).

use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A one-element tensor holding a non-negative integer, as a count.
fn count_of(value: &Tensor) -> Result<i64> {
    if value.numel() != 1 {
        return Err(Error::shape(
            "load_state_dict",
            format!(
                "a counter holds one value, not shape {}",
                Dims(value.shape())
            ),
        ));
    }
    let v = value.data()[0];
    // i64::MAX as f32 rounds up to 2^63, which does not fit.
    if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 9.223_372e18) {
        return Err(Error::param(
            "load_state_dict",
            "num_batches_tracked",
            format!("{v} is not a non-negative integer"),
        ));
    }
    Ok(v as i64)
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Float(Arc<Tensor>),
    /// A 0-d integer, PyTorch's int64 `num_batches_tracked`: kept exact
    /// past 2^24, where an f32 would stop counting.
    Count(i64),
}

/// A shared handle to a buffer: cloning it shares the value, so the handle
/// a state dict holds and the one the layer holds see the same state.
/// Float buffers hold a tensor; count buffers a 0-d int64 (saved as I64).
///
/// ```
/// use convlab::{nn::Buffer, Tensor};
/// let b = Buffer::count(3);
/// assert_eq!(b.tensor().item()?, 3.0);
/// b.set(&Tensor::scalar(7.0))?;
/// assert_eq!(b.count_value(), Some(7));
/// assert!(b.set(&Tensor::scalar(0.5)).is_err()); // not an integer
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Buffer(Arc<RwLock<Value>>);

impl Buffer {
    /// A float buffer holding `value`.
    pub fn float(value: Tensor) -> Buffer {
        Buffer(Arc::new(RwLock::new(Value::Float(Arc::new(value)))))
    }

    /// A 0-d integer buffer (a counter) holding `n`.
    pub fn count(n: i64) -> Buffer {
        Buffer(Arc::new(RwLock::new(Value::Count(n))))
    }

    /// Whether this is a counter (saved as int64).
    pub fn is_count(&self) -> bool {
        matches!(*self.read(), Value::Count(_))
    }

    /// The counter's value, or `None` for a float buffer.
    pub fn count_value(&self) -> Option<i64> {
        match *self.read() {
            Value::Count(n) => Some(n),
            Value::Float(_) => None,
        }
    }

    /// The value as an f32 tensor (a counter as a 0-d tensor, rounded to
    /// the nearest f32 above 2^24).
    pub fn tensor(&self) -> Tensor {
        match &*self.read() {
            Value::Float(t) => (**t).clone(),
            Value::Count(n) => Tensor::scalar(*n as f32),
        }
    }

    /// The value of a float buffer without a copy (`None` for a counter).
    pub fn shared(&self) -> Option<Arc<Tensor>> {
        match &*self.read() {
            Value::Float(t) => Some(t.clone()),
            Value::Count(_) => None,
        }
    }

    /// The shape: a counter is 0-d.
    pub fn shape(&self) -> Vec<usize> {
        match &*self.read() {
            Value::Float(t) => t.shape().to_vec(),
            Value::Count(_) => Vec::new(),
        }
    }

    /// Whether [`Buffer::set`] would accept `value`: a float buffer takes a
    /// tensor of its shape, a counter a one-element tensor holding a
    /// finite, non-negative integer.
    ///
    /// # Errors
    /// [`Error::Shape`] on another shape, [`Error::Param`] for a counter
    /// value that is not a non-negative integer.
    pub fn check(&self, value: &Tensor) -> Result<()> {
        match &*self.read() {
            Value::Float(t) if t.shape() != value.shape() => Err(Error::shape(
                "load_state_dict",
                format!(
                    "buffer has shape {} but the new value {}",
                    Dims(t.shape()),
                    Dims(value.shape())
                ),
            )),
            Value::Float(_) => Ok(()),
            Value::Count(_) => count_of(value).map(|_| ()),
        }
    }

    /// Replace the value (loading a state dict); see [`Buffer::check`].
    ///
    /// # Errors
    /// As [`Buffer::check`]; nothing changes then.
    pub fn set(&self, value: &Tensor) -> Result<()> {
        self.check(value)?;
        match &mut *self.write() {
            Value::Float(t) => *t = Arc::new(value.clone()),
            Value::Count(n) => *n = count_of(value)?,
        }
        Ok(())
    }

    /// Whether `self` and `other` share one value.
    pub fn same(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    fn read(&self) -> RwLockReadGuard<'_, Value> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Value> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Change a float buffer in place (running statistics); copies only
    /// when a reader still holds the old value.
    pub(crate) fn update_float(&self, f: impl FnOnce(&mut Tensor)) {
        if let Value::Float(t) = &mut *self.write() {
            f(Arc::make_mut(t));
        }
    }

    /// Add one to a counter and return the new count.
    pub(crate) fn increment(&self) -> i64 {
        match &mut *self.write() {
            Value::Count(n) => {
                *n = n.saturating_add(1);
                *n
            }
            Value::Float(_) => 0,
        }
    }
}
