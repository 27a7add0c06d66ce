//! # convlab
//!
//! The convolution and pooling layers of convolutional neural networks
//! (*Dive into Deep Learning*, ch. 6.2–6.5), with PyTorch's semantics as the
//! contract: same shapes, same defaults, same numbers.
//!
//! ```
//! use convlab::{ops, Tensor};
//! let x = Tensor::arange(9.0)?.reshape(&[3, 3])?;
//! let k = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]])?;
//! let y = ops::corr2d(&x, &k)?;
//! assert_eq!(y.data(), &[19.0, 25.0, 37.0, 43.0]);
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! The rooms, each depending only on those before it:
//! [`kernels`] (raw slice loops) → [`ops`] (checked functional ops, forward
//! and backward, with reference loops) → [`autograd`] → [`nn`] / [`optim`] → [`io`].

pub mod autograd;
pub mod data;
pub mod error;
pub mod filters;
pub mod io;
pub mod kernels;
pub mod learn;
pub mod memory;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod receptive_field;
pub mod shape;
pub mod tensor;
#[doc(hidden)]
pub mod testing;
pub mod tour;

pub use error::{Error, Result};
pub use shape::{Padding, PaddingMode, Pair};
pub use tensor::{format_tensor, seeded_rng, Rng64, Tensor};
