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
//! The rooms, each depending only on those before it: kernels (raw slice
//! loops, crate-private) → drivers (which algorithm runs each pass, and how
//! it is split over threads; crate-private) → [`ops`] (checked functional
//! ops, forward and backward) → [`autograd`] → [`nn`] / [`optim`] → [`io`].
//! [`parallel`] holds the threading policy, `testing` the reference loops
//! every algorithm is tested against.
//!
//! Coming from PyTorch: [`from_pytorch`] writes the book's LeNet both ways,
//! loads a PyTorch checkpoint and serves a model from threads.
//!
//! # Threads
//!
//! Models are `Send + Sync`: share one as `Arc<M>` and run `forward` from
//! any thread. `train()`/`eval()` take `&mut self` (switch before sharing);
//! in eval mode a forward pass changes nothing, so every thread gets the
//! bits one thread would; in train mode BatchNorm's running statistics
//! update under a lock and Dropout draws each call's mask from its seed and
//! a call counter. [`autograd::no_grad`] is per thread. Details in
//! [`nn`] and [`from_pytorch`].

pub mod autograd;
pub mod data;
pub(crate) mod drivers;
pub mod env;
pub mod error;
pub mod filters;
pub mod io;
pub(crate) mod kernels;
pub mod learn;
pub mod memory;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod parallel;
pub mod receptive_field;
pub mod shape;
pub mod tensor;
#[doc(hidden)]
pub mod testing;
pub mod tour;

#[doc = include_str!("../../../docs/FROM_PYTORCH.md")]
pub mod from_pytorch {}

/// The `rand` crate convlab's generators and `impl Rng` arguments come
/// from (0.8), so a program can name its traits without depending on a
/// matching version itself: `use convlab::rand::{Rng, SeedableRng}`.
pub use rand;

pub use error::{Error, Result};
pub use shape::{Padding, PaddingMode, Pair};
pub use tensor::{format_tensor, seeded_rng, Rng64, Tensor};
