//! Resampling and rearrangement with their gradients: `F.interpolate`,
//! `F.pad`, the pixel and channel shuffles, `F.grid_sample` and
//! `F.affine_grid` on [`Var`]s. Each forward runs the op of
//! [`crate::ops`] and records that op's backward.

use super::Var;
use crate::error::Result;
use crate::ops::{self, GridSampleParams, InterpolateParams, PadMode};

impl Var {
    /// `F.interpolate` (see [`ops::interpolate`]), differentiable in the
    /// input.
    ///
    /// ```
    /// use convlab::autograd::Var;
    /// use convlab::ops::{InterpolateMode, InterpolateParams};
    /// use convlab::Tensor;
    /// let x = Var::param(Tensor::ones(&[1, 1, 2, 2])?);
    /// let p = InterpolateParams::new(InterpolateMode::Bilinear).scale_factor(2.0);
    /// let y = x.interpolate(&p)?;
    /// assert_eq!(y.shape(), [1, 1, 4, 4]);
    /// y.sum()?.backward()?;
    /// assert_eq!(x.grad().unwrap().data(), &[4.0; 4]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    pub fn interpolate(&self, params: &InterpolateParams) -> Result<Var> {
        let shape = self.shape();
        let y = ops::interpolate(&self.value(), params)?;
        let p = params.clone();
        Ok(Var::from_op(y, "UpsampleBackward", &[self], move |g| {
            Ok(vec![Some(ops::interpolate_backward(g, &shape, &p)?)])
        }))
    }

    /// `F.pad(input, pad, mode, value)` (see [`ops::pad`]): `pad` lists
    /// (before, after) pairs from the last axis inwards; negative values
    /// crop.
    pub fn pad(&self, pad: &[i64], mode: PadMode) -> Result<Var> {
        let shape = self.shape();
        let y = ops::pad(&self.value(), pad, mode)?;
        let pad = pad.to_vec();
        Ok(Var::from_op(y, "PadBackward", &[self], move |g| {
            Ok(vec![Some(ops::pad_backward(g, &shape, &pad, mode)?)])
        }))
    }

    /// `F.pixel_shuffle` (see [`ops::pixel_shuffle`]).
    pub fn pixel_shuffle(&self, upscale_factor: usize) -> Result<Var> {
        let y = ops::pixel_shuffle(&self.value(), upscale_factor)?;
        Ok(Var::from_op(y, "PixelShuffleBackward", &[self], move |g| {
            Ok(vec![Some(ops::pixel_shuffle_backward(g, upscale_factor)?)])
        }))
    }

    /// `F.pixel_unshuffle` (see [`ops::pixel_unshuffle`]).
    pub fn pixel_unshuffle(&self, downscale_factor: usize) -> Result<Var> {
        let y = ops::pixel_unshuffle(&self.value(), downscale_factor)?;
        Ok(Var::from_op(
            y,
            "PixelUnshuffleBackward",
            &[self],
            move |g| {
                Ok(vec![Some(ops::pixel_unshuffle_backward(
                    g,
                    downscale_factor,
                )?)])
            },
        ))
    }

    /// `F.channel_shuffle` (see [`ops::channel_shuffle`]).
    pub fn channel_shuffle(&self, groups: usize) -> Result<Var> {
        let y = ops::channel_shuffle(&self.value(), groups)?;
        Ok(Var::from_op(
            y,
            "ChannelShuffleBackward",
            &[self],
            move |g| Ok(vec![Some(ops::channel_shuffle_backward(g, groups)?)]),
        ))
    }

    /// `F.grid_sample(self, grid, ...)` (see [`ops::grid_sample`]),
    /// differentiable in the input and in the grid.
    pub fn grid_sample(&self, grid: &Var, params: &GridSampleParams) -> Result<Var> {
        let (x, gr) = (self.value(), grid.value());
        let y = ops::grid_sample(&x, &gr, params)?;
        let p = *params;
        Ok(Var::from_op(
            y,
            "GridSamplerBackward",
            &[self, grid],
            move |g| {
                let (gx, ggrid) = ops::grid_sample_backward(&x, &gr, g, &p)?;
                Ok(vec![Some(gx), Some(ggrid)])
            },
        ))
    }

    /// `F.affine_grid(self, size, align_corners)` with `self` the batch of
    /// affine matrices `theta` (see [`ops::affine_grid`]).
    pub fn affine_grid(&self, size: &[usize], align_corners: bool) -> Result<Var> {
        let y = ops::affine_grid(&self.value(), size, align_corners)?;
        let size = size.to_vec();
        Ok(Var::from_op(
            y,
            "AffineGridGeneratorBackward",
            &[self],
            move |g| {
                Ok(vec![Some(ops::affine_grid_backward(
                    g,
                    &size,
                    align_corners,
                )?)])
            },
        ))
    }
}
