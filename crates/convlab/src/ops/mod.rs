//! Checked, shaped functional ops. Each file holds one op family: its
//! parameters and validation and the forward and backward passes side by
//! side; convolutions hand their validated geometry to the drivers, which
//! pick and run an algorithm per pass ([`ConvAlgo`]). The plain loops every
//! fast path is tested against live in `convlab::testing`.
//!
//! Gradients follow one convention: `*_backward` returns the gradient of
//! `sum(output * grad_output)` with respect to each input.

pub mod adaptive_pool;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod corr2d;
pub mod linear;
pub mod pad;
pub mod pool;
pub mod unfold;

pub use adaptive_pool::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
};

pub use conv2d::{
    conv2d, conv2d_backward, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight,
    Conv2dGrads, Conv2dParams,
};
pub use conv_transpose2d::{conv_transpose2d, conv_transpose2d_backward, ConvTranspose2dParams};
pub use corr2d::{convolve2d, corr2d, corr2d_backward};
pub use linear::{linear, linear_backward};
pub use pad::{pad2d, pad2d_backward};
pub use pool::{
    avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_with_indices,
    AvgDivisor, AvgPool2dParams, MaxPool2dParams, PoolGeometry,
};
pub use unfold::{fold, fold_backward, unfold, unfold_backward, UnfoldParams};

pub use crate::drivers::conv::context::{
    force_conv_algo, record_conv_algos, AlgoRecorder, ConvRecord, ForcedAlgo,
};
pub use crate::drivers::conv::dispatch::{ConvAlgo, ConvPass};

pub(crate) use crate::parallel::on_pool_worker;
