//! The pooling family on [`Var`] for any spatial rank: each op computes its
//! value with the functional op and records its gradient right below.
//! (`max_pool2d`, `avg_pool2d` and the 2-D adaptive pools are in `ops.rs`.)

use super::Var;
use crate::error::Result;
use crate::ops::pool::{
    self, AvgPoolParams, FractionalMaxPoolParams, LpPoolParams, MaxPoolParams, MaxUnpoolParams,
    OutputSize,
};
use crate::tensor::Tensor;

/// Autograd names by rank, as PyTorch's `grad_fn`s.
const MAX: [&str; 3] = [
    "MaxPool1DWithIndices",
    "MaxPool2DWithIndices",
    "MaxPool3DWithIndices",
];
const AVG: [&str; 3] = ["AvgPool1D", "AvgPool2D", "AvgPool3D"];
const ADAPTIVE_AVG: [&str; 3] = [
    "AdaptiveAvgPool1D",
    "AdaptiveAvgPool2D",
    "AdaptiveAvgPool3D",
];
const ADAPTIVE_MAX: [&str; 3] = [
    "AdaptiveMaxPool1D",
    "AdaptiveMaxPool2D",
    "AdaptiveMaxPool3D",
];
const UNPOOL: [&str; 3] = ["MaxUnpool1D", "MaxUnpool2D", "MaxUnpool3D"];

impl Var {
    /// Max pooling over the last `N` axes (see [`pool::max_pool`]); the
    /// argmax indices are kept only when a gradient will be needed.
    pub fn max_pool<const N: usize>(&self, p: &MaxPoolParams<N>) -> Result<Var> {
        if !(self.requires_grad() && super::is_grad_enabled()) {
            return Ok(Var::new(pool::max_pool(&self.value(), p)?));
        }
        Ok(self.max_pool_with_indices(p)?.0)
    }

    /// [`Var::max_pool`] and the flat in-plane index of each maximum
    /// (PyTorch's `return_indices=True`, e.g. for [`Var::max_unpool`]).
    pub fn max_pool_with_indices<const N: usize>(
        &self,
        p: &MaxPoolParams<N>,
    ) -> Result<(Var, Vec<usize>)> {
        let shape = self.shape();
        let (y, idx) = pool::max_pool_with_indices(&self.value(), p)?;
        let kept = idx.clone();
        let y = Var::from_op(y, MAX[N - 1], &[self], move |g| {
            Ok(vec![Some(pool::max_pool_backward::<N>(&shape, &kept, g)?)])
        });
        Ok((y, idx))
    }

    /// Average pooling over the last `N` axes (see [`pool::avg_pool`]).
    pub fn avg_pool<const N: usize>(&self, p: &AvgPoolParams<N>) -> Result<Var> {
        let (p, shape) = (*p, self.shape());
        let y = pool::avg_pool(&self.value(), &p)?;
        Ok(Var::from_op(y, AVG[N - 1], &[self], move |g| {
            Ok(vec![Some(pool::avg_pool_backward(&shape, g, &p)?)])
        }))
    }

    /// Power-average pooling over the last `N` axes (see
    /// [`pool::lp_pool`]); the input is kept for the gradient.
    pub fn lp_pool<const N: usize>(&self, p: &LpPoolParams<N>) -> Result<Var> {
        let (p, x) = (*p, self.tensor());
        let y = pool::lp_pool(&x, &p)?;
        Ok(Var::from_op(y, "LPPool", &[self], move |g| {
            Ok(vec![Some(pool::lp_pool_backward(&x, g, &p)?)])
        }))
    }

    /// Adaptive average pooling of the last `N` axes to `output_size`
    /// (see [`pool::adaptive_avg_pool`]).
    pub fn adaptive_avg_pool<const N: usize>(
        &self,
        output_size: impl Into<OutputSize<N>>,
    ) -> Result<Var> {
        let shape = self.shape();
        let y = pool::adaptive_avg_pool(&self.value(), output_size)?;
        Ok(Var::from_op(y, ADAPTIVE_AVG[N - 1], &[self], move |g| {
            Ok(vec![Some(pool::adaptive_avg_pool_backward::<N>(
                &shape, g,
            )?)])
        }))
    }

    /// Adaptive max pooling of the last `N` axes to `output_size` (see
    /// [`pool::adaptive_max_pool`]).
    pub fn adaptive_max_pool<const N: usize>(
        &self,
        output_size: impl Into<OutputSize<N>>,
    ) -> Result<Var> {
        Ok(self.adaptive_max_pool_with_indices(output_size)?.0)
    }

    /// [`Var::adaptive_max_pool`] and the flat in-plane index of each maximum.
    pub fn adaptive_max_pool_with_indices<const N: usize>(
        &self,
        output_size: impl Into<OutputSize<N>>,
    ) -> Result<(Var, Vec<usize>)> {
        let shape = self.shape();
        let (y, idx) = pool::adaptive_max_pool(&self.value(), output_size)?;
        let kept = idx.clone();
        let y = Var::from_op(y, ADAPTIVE_MAX[N - 1], &[self], move |g| {
            Ok(vec![Some(pool::adaptive_max_pool_backward::<N>(
                &shape, &kept, g,
            )?)])
        });
        Ok((y, idx))
    }

    /// Max unpooling over the last `N` axes (see [`pool::max_unpool`]);
    /// `indices` are not differentiated, as in PyTorch.
    pub fn max_unpool<const N: usize>(
        &self,
        indices: &[usize],
        p: &MaxUnpoolParams<N>,
        output_size: Option<&[i64]>,
    ) -> Result<Var> {
        let shape = self.shape();
        let y = pool::max_unpool(&self.value(), indices, p, output_size)?;
        let idx = indices.to_vec();
        Ok(Var::from_op(y, UNPOOL[N - 1], &[self], move |g| {
            Ok(vec![Some(pool::max_unpool_backward::<N>(&shape, &idx, g)?)])
        }))
    }

    /// Fractional max pooling over the last `N` (2 or 3) axes with windows
    /// placed by `random_samples` (see [`pool::fractional_max_pool`]), and
    /// the flat in-plane index of each maximum.
    pub fn fractional_max_pool<const N: usize>(
        &self,
        p: &FractionalMaxPoolParams<N>,
        random_samples: &Tensor,
    ) -> Result<(Var, Vec<usize>)> {
        let shape = self.shape();
        let (y, idx) = pool::fractional_max_pool(&self.value(), p, random_samples)?;
        let kept = idx.clone();
        let y = Var::from_op(y, "FractionalMaxPool", &[self], move |g| {
            Ok(vec![Some(pool::fractional_max_pool_backward::<N>(
                &shape, &kept, g,
            )?)])
        });
        Ok((y, idx))
    }
}
