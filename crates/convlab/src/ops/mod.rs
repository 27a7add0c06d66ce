//! Checked, shaped functional ops. Each file holds one op family: its
//! parameters and validation and the forward and backward passes side by
//! side; convolutions hand their validated geometry to the drivers, which
//! pick and run an algorithm per pass ([`ConvAlgo`]). The plain loops every
//! fast path is tested against live in `convlab::testing`.
//!
//! Gradients follow one convention: `*_backward` returns the gradient of
//! `sum(output * grad_output)` with respect to each input.

pub mod conv1d;
pub mod conv2d;
pub mod conv3d;
pub mod conv_transpose2d;
pub mod corr2d;
pub mod grid_sample;
pub mod interpolate;
pub mod linear;
pub mod pad;
pub mod pool;
pub mod shuffle;
pub mod unfold;

pub use conv1d::{
    conv1d, conv1d_backward, conv_transpose1d, conv_transpose1d_backward, Conv1dParams,
    ConvTranspose1dParams, Padding1d,
};
pub use conv2d::{
    conv2d, conv2d_backward, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight,
    Conv2dGrads, Conv2dParams,
};
pub use conv3d::{
    conv3d, conv3d_backward, conv_transpose3d, conv_transpose3d_backward, Conv3dParams,
    ConvTranspose3dParams, Padding3d, Triple,
};
pub use conv_transpose2d::{conv_transpose2d, conv_transpose2d_backward, ConvTranspose2dParams};
pub use corr2d::{convolve2d, corr2d, corr2d_backward};
pub use grid_sample::{
    affine_grid, affine_grid_backward, grid_sample, grid_sample_backward, GridSampleMode,
    GridSamplePadding, GridSampleParams,
};
pub use interpolate::{
    interpolate, interpolate_backward, InterpolateMode, InterpolateParams, PerAxis,
};
pub use linear::{linear, linear_backward};
pub use pad::{pad, pad2d, pad2d_backward, pad_backward, PadMode};
pub use pool::{
    adaptive_avg_pool1d, adaptive_avg_pool1d_backward, adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward, adaptive_avg_pool3d, adaptive_avg_pool3d_backward,
    adaptive_max_pool1d, adaptive_max_pool1d_backward, adaptive_max_pool2d,
    adaptive_max_pool2d_backward, adaptive_max_pool3d, adaptive_max_pool3d_backward, avg_pool1d,
    avg_pool1d_backward, avg_pool2d, avg_pool2d_backward, avg_pool3d, avg_pool3d_backward,
    fractional_max_pool2d, fractional_max_pool2d_backward, fractional_max_pool3d,
    fractional_max_pool3d_backward, lp_pool1d, lp_pool1d_backward, lp_pool2d, lp_pool2d_backward,
    lp_pool3d, lp_pool3d_backward, max_pool1d, max_pool1d_backward, max_pool1d_with_indices,
    max_pool2d, max_pool2d_backward, max_pool2d_with_indices, max_pool3d, max_pool3d_backward,
    max_pool3d_with_indices, max_unpool1d, max_unpool1d_backward, max_unpool2d,
    max_unpool2d_backward, max_unpool3d, max_unpool3d_backward, AvgDivisor, AvgPool1dParams,
    AvgPool2dParams, AvgPool3dParams, FractionalMaxPool2dParams, FractionalMaxPool3dParams,
    LpPool1dParams, LpPool2dParams, LpPool3dParams, MaxPool1dParams, MaxPool2dParams,
    MaxPool3dParams, MaxUnpool1dParams, MaxUnpool2dParams, MaxUnpool3dParams, PoolGeometry,
};
pub use shuffle::{
    channel_shuffle, channel_shuffle_backward, pixel_shuffle, pixel_shuffle_backward,
    pixel_unshuffle, pixel_unshuffle_backward,
};
pub use unfold::{fold, fold_backward, unfold, unfold_backward, UnfoldParams};

pub use crate::drivers::conv::context::{
    exact_algorithms_enabled, force_conv_algo, record_conv_algos, use_exact_algorithms,
    AlgoRecorder, ConvRecord, ForcedAlgo,
};
pub use crate::drivers::conv::dispatch::{ConvAlgo, ConvPass};

pub(crate) use crate::parallel::on_pool_worker;
