//! Checked, shaped functional ops. Each file holds one op family: its
//! parameters and validation, the forward and backward passes side by side,
//! and the plain reference loop every fast path is tested against.

pub mod adaptive_pool;
pub mod pool;
pub mod unfold;

pub use adaptive_pool::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
};
pub use pool::{
    avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_with_indices,
    AvgDivisor, AvgPool2dParams, MaxPool2dParams, PoolGeometry,
};
pub use unfold::{fold, fold_backward, unfold, unfold_backward, UnfoldParams};
