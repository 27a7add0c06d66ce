//! Batch normalisation and constant masks (dropout) on [`Var`], with their
//! gradients. The channel dimension is dimension 1 of `[N, C, ...]`; every
//! per-channel sum runs in f64 over the channel's values in memory order,
//! so results do not depend on the thread count.

use super::Var;
use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::Arc;

/// Inputs at least this large normalise their planes in parallel (each
/// plane is written by one task; the statistics are per channel, summed in
/// one fixed order).
const PARALLEL_MIN: usize = 1 << 16;

/// What a training-mode batch norm returns besides its output: the batch
/// statistics, for the running averages.
pub struct BatchStats {
    /// Per-channel mean of the batch.
    pub mean: Vec<f64>,
    /// Per-channel unbiased variance (divided by `count - 1`), the value
    /// PyTorch folds into `running_var`.
    pub var_unbiased: Vec<f64>,
}

/// `[N, C, rest...]` as `(N, C, S)` with `S` the product of `rest`.
fn ncs(op: &'static str, shape: &[usize], channels: usize) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 || shape[1] != channels {
        return Err(Error::shape(
            op,
            format!(
                "expected input of shape [N, {channels}, ...], got {}",
                Dims(shape)
            ),
        ));
    }
    let s = shape[2..].iter().product::<usize>();
    Ok((shape[0], shape[1], s))
}

/// Per-channel values in a channel's order: plane `n` of channel `c` is
/// `data[(n * C + c) * S..][..S]`.
fn channel_sum(
    data: &[f32],
    n: usize,
    c_count: usize,
    s: usize,
    c: usize,
    f: impl Fn(f32) -> f64,
) -> f64 {
    let mut acc = 0.0f64;
    for i in 0..n {
        let start = (i * c_count + c) * s;
        acc += data[start..start + s].iter().map(|&v| f(v)).sum::<f64>();
    }
    acc
}

/// For each plane `(n, c)` of `out` (same layout as the input), run
/// `f(c, plane_index, plane)`; in parallel for large inputs.
fn for_planes(
    out: &mut [f32],
    s: usize,
    c_count: usize,
    f: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    if s == 0 {
        return;
    }
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(s)
            .enumerate()
            .for_each(|(i, plane)| f(i % c_count, i, plane));
    } else {
        out.chunks_mut(s)
            .enumerate()
            .for_each(|(i, plane)| f(i % c_count, i, plane));
    }
}

fn check_affine(
    op: &'static str,
    what: &str,
    v: Option<&Var>,
    c: usize,
) -> Result<Option<Arc<Tensor>>> {
    let Some(v) = v else { return Ok(None) };
    let t = v.value();
    if t.shape() != [c] {
        return Err(Error::shape(
            op,
            format!(
                "{what} has shape {} but the input has {c} channels",
                Dims(t.shape())
            ),
        ));
    }
    Ok(Some(t))
}

fn at(t: &Option<Arc<Tensor>>, c: usize, default: f32) -> f64 {
    t.as_ref().map_or(default, |t| t.data()[c]) as f64
}

impl Var {
    /// Batch normalisation with the batch's own statistics (PyTorch's
    /// `F.batch_norm(..., training=True)`): per channel `c` of `[N, C, ...]`,
    /// `y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c` with the
    /// biased variance. Returns the output and the statistics for running
    /// averages. Differentiable in the input, weight and bias.
    ///
    /// # Errors
    /// [`Error::Shape`] for an input without a channel dimension of `C =
    /// weight.len()`... or with one value per channel (PyTorch: "Expected
    /// more than 1 value per channel when training").
    pub fn batch_norm_train(
        &self,
        channels: usize,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f64,
    ) -> Result<(Var, BatchStats)> {
        const OP: &str = "batch_norm";
        let x = self.value();
        let (n, c_count, s) = ncs(OP, x.shape(), channels)?;
        let m = n * s;
        if m <= 1 {
            return Err(Error::shape(
                OP,
                format!(
                    "expected more than 1 value per channel when training, got input size {}",
                    Dims(x.shape())
                ),
            ));
        }
        let gamma = check_affine(OP, "weight", weight, c_count)?;
        let beta = check_affine(OP, "bias", bias, c_count)?;
        let xd = x.data();
        let stats: Vec<(f64, f64)> = (0..c_count)
            .map(|c| {
                let mean = channel_sum(xd, n, c_count, s, c, |v| v as f64) / m as f64;
                let sq = channel_sum(xd, n, c_count, s, c, |v| {
                    let d = v as f64 - mean;
                    d * d
                });
                (mean, sq)
            })
            .collect();
        let mean: Vec<f64> = stats.iter().map(|s| s.0).collect();
        let invstd: Vec<f64> = stats
            .iter()
            .map(|&(_, sq)| 1.0 / (sq / m as f64 + eps).sqrt())
            .collect();
        let mut y = (*x).clone();
        for_planes(y.data_mut(), s, c_count, |c, _, plane| {
            let (mu, is) = (mean[c], invstd[c]);
            let (g, b) = (at(&gamma, c, 1.0), at(&beta, c, 0.0));
            plane
                .iter_mut()
                .for_each(|v| *v = (((*v as f64 - mu) * is) * g + b) as f32);
        });
        let out_stats = BatchStats {
            mean: mean.clone(),
            var_unbiased: stats.iter().map(|&(_, sq)| sq / (m - 1) as f64).collect(),
        };
        let (need_w, need_b) = (weight.is_some(), bias.is_some());
        let mut parents = vec![self];
        parents.extend(weight);
        parents.extend(bias);
        let out = Var::from_op(y, "NativeBatchNorm", &parents, move |g| {
            let gd = g.data();
            let xd = x.data();
            // Per channel: sum(g) and sum(g * xhat).
            let sums: Vec<(f64, f64)> = (0..c_count)
                .map(|c| {
                    let (mu, is) = (mean[c], invstd[c]);
                    let mut sg = 0.0f64;
                    let mut sgx = 0.0f64;
                    for i in 0..n {
                        let start = (i * c_count + c) * s;
                        for (gv, xv) in gd[start..start + s].iter().zip(&xd[start..start + s]) {
                            sg += *gv as f64;
                            sgx += *gv as f64 * ((*xv as f64 - mu) * is);
                        }
                    }
                    (sg, sgx)
                })
                .collect();
            let mut gx = g.clone();
            for_planes(gx.data_mut(), s, c_count, |c, i, plane| {
                let (mu, is) = (mean[c], invstd[c]);
                let (sg, sgx) = (sums[c].0 / m as f64, sums[c].1 / m as f64);
                let k = at(&gamma, c, 1.0) * is;
                let xs = &xd[i * s..(i + 1) * s];
                plane.iter_mut().zip(xs).for_each(|(gv, &xv)| {
                    let xhat = (xv as f64 - mu) * is;
                    *gv = (k * (*gv as f64 - sg - xhat * sgx)) as f32;
                });
            });
            let mut grads = vec![Some(gx)];
            if need_w {
                let gw: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
                grads.push(Some(Tensor::from_vec(gw, &[c_count])?));
            }
            if need_b {
                let gb: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
                grads.push(Some(Tensor::from_vec(gb, &[c_count])?));
            }
            Ok(grads)
        });
        Ok((out, out_stats))
    }

    /// Batch normalisation with given statistics (PyTorch's `F.batch_norm`
    /// in eval mode with running statistics): per channel,
    /// `y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c`.
    /// Differentiable in the input, weight and bias.
    ///
    /// # Errors
    /// [`Error::Shape`] when the statistics, weight or bias do not have one
    /// value per channel of the `[N, C, ...]` input.
    pub fn batch_norm_eval(
        &self,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f64,
    ) -> Result<Var> {
        const OP: &str = "batch_norm";
        let x = self.value();
        let channels = mean.numel();
        let (_, c_count, s) = ncs(OP, x.shape(), channels)?;
        if mean.shape() != [c_count] || var.shape() != [c_count] {
            return Err(Error::shape(
                OP,
                format!(
                    "running_mean {} and running_var {} must have {c_count} elements",
                    Dims(mean.shape()),
                    Dims(var.shape())
                ),
            ));
        }
        let gamma = check_affine(OP, "weight", weight, c_count)?;
        let beta = check_affine(OP, "bias", bias, c_count)?;
        let mu: Vec<f64> = mean.data().iter().map(|&v| v as f64).collect();
        let invstd: Vec<f64> = var
            .data()
            .iter()
            .map(|&v| 1.0 / (v as f64 + eps).sqrt())
            .collect();
        let mut y = (*x).clone();
        for_planes(y.data_mut(), s, c_count, |c, _, plane| {
            let (g, b) = (at(&gamma, c, 1.0), at(&beta, c, 0.0));
            plane
                .iter_mut()
                .for_each(|v| *v = (((*v as f64 - mu[c]) * invstd[c]) * g + b) as f32);
        });
        let (need_w, need_b) = (weight.is_some(), bias.is_some());
        let mut parents = vec![self];
        parents.extend(weight);
        parents.extend(bias);
        Ok(Var::from_op(y, "NativeBatchNorm", &parents, move |g| {
            let gd = g.data();
            let xd = x.data();
            let n = if s == 0 || c_count == 0 {
                0
            } else {
                gd.len() / (s * c_count)
            };
            let mut gx = g.clone();
            for_planes(gx.data_mut(), s, c_count, |c, _, plane| {
                let k = at(&gamma, c, 1.0) * invstd[c];
                plane.iter_mut().for_each(|v| *v = (*v as f64 * k) as f32);
            });
            let mut grads = vec![Some(gx)];
            if need_w {
                let gw: Vec<f32> = (0..c_count)
                    .map(|c| {
                        let mut acc = 0.0f64;
                        for i in 0..n {
                            let start = (i * c_count + c) * s;
                            for (gv, xv) in gd[start..start + s].iter().zip(&xd[start..start + s]) {
                                acc += *gv as f64 * ((*xv as f64 - mu[c]) * invstd[c]);
                            }
                        }
                        acc as f32
                    })
                    .collect();
                grads.push(Some(Tensor::from_vec(gw, &[c_count])?));
            }
            if need_b {
                let gb: Vec<f32> = (0..c_count)
                    .map(|c| channel_sum(gd, n, c_count, s, c, |v| v as f64) as f32)
                    .collect();
                grads.push(Some(Tensor::from_vec(gb, &[c_count])?));
            }
            Ok(grads)
        }))
    }

    /// `self * mask` for a constant `mask` that broadcasts to `self`'s shape
    /// (dropout: the mask holds `0` or `1 / (1 - p)`); the gradient is
    /// `grad * mask`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `mask` does not broadcast to `self`'s shape.
    pub fn mul_mask(&self, mask: Tensor) -> Result<Var> {
        let x = self.value();
        let y = x.zip_broadcast("dropout", &mask, |a, b| a * b)?;
        if y.shape() != x.shape() {
            return Err(Error::shape(
                "dropout",
                format!(
                    "mask {} does not broadcast to the input {}",
                    Dims(mask.shape()),
                    Dims(x.shape())
                ),
            ));
        }
        Ok(Var::from_op(y, "NativeDropout", &[self], move |g| {
            Ok(vec![Some(g.zip_broadcast("dropout", &mask, |a, b| a * b)?)])
        }))
    }
}
