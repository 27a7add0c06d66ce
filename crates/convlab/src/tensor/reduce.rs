//! Reductions and normalisations along one dimension: `argmax`, `argmin`,
//! `max_dim`, `min_dim`, `max`, `min`, `mean_dim`, `softmax`,
//! `log_softmax`, with PyTorch's rules (ties go to the first position; a
//! NaN is the maximum and the minimum, so it propagates).
//!
//! A dimension splits a row-major tensor into `outer` blocks of `len x
//! inner` values; every op here walks a block's `len` positions once with
//! `inner` running lanes, so a reduction over dimension 1 of `[N, C, H, W]`
//! reads memory in order.
//!
//! ```
//! use convlab::Tensor;
//! let x = Tensor::from_rows(&[[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])?;
//! let p = x.softmax(-1)?;
//! assert!((p.get(&[1, 0])? - 1.0 / 3.0).abs() < 1e-7);
//! let (values, indices) = x.max_dim(1, false)?;
//! assert_eq!((values.data(), indices.data()), (&[3.0, 1.0][..], &[2, 0][..]));
//! # Ok::<(), convlab::Error>(())
//! ```

use super::dim::{resolve_dim, split_at_dim, IntoDim};
use super::indices::IndexTensor;
use super::Tensor;
use crate::error::{Dims, Error, Result};

/// `v` replaces `best` as the maximum: larger, or the first NaN.
fn greater(v: f32, best: f32) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

/// `v` replaces `best` as the minimum: smaller, or the first NaN.
fn less(v: f32, best: f32) -> bool {
    v < best || (v.is_nan() && !best.is_nan())
}

/// A dimension resolved for a reduction: its position, `(outer, len,
/// inner)` (all 1 for a rank-0 tensor) and the result's shape.
struct Reduction {
    dim: usize,
    outer: usize,
    len: usize,
    inner: usize,
    out_shape: Vec<usize>,
}

fn reduction(
    op: &'static str,
    shape: &[usize],
    dim: impl IntoDim,
    keepdim: bool,
) -> Result<Reduction> {
    let d = resolve_dim(op, dim, shape)?;
    let mut out_shape = shape.to_vec();
    if !shape.is_empty() {
        if keepdim {
            out_shape[d] = 1;
        } else {
            out_shape.remove(d);
        }
    }
    let (outer, len, inner) = if shape.contains(&0) || shape.is_empty() {
        (0, shape.get(d).copied().unwrap_or(1), 0)
    } else {
        split_at_dim(shape, d)
    };
    Ok(Reduction {
        dim: d,
        outer,
        len,
        inner,
        out_shape,
    })
}

impl Tensor {
    /// The position of the largest value along `dim` (the first of equal
    /// ones; a NaN counts as the largest), PyTorch's `argmax(dim, keepdim)`.
    ///
    /// # Errors
    /// A dimension out of range, or one of size 0.
    pub fn argmax(&self, dim: impl IntoDim, keepdim: bool) -> Result<IndexTensor> {
        Ok(self.extreme("argmax", dim, keepdim, greater)?.1)
    }

    /// The position of the smallest value along `dim` (the first of equal
    /// ones; a NaN counts as the smallest), PyTorch's `argmin(dim, keepdim)`.
    ///
    /// # Errors
    /// A dimension out of range, or one of size 0.
    pub fn argmin(&self, dim: impl IntoDim, keepdim: bool) -> Result<IndexTensor> {
        Ok(self.extreme("argmin", dim, keepdim, less)?.1)
    }

    /// The largest values along `dim` and their positions, PyTorch's
    /// `torch.max(x, dim, keepdim)` (`values`, `indices`).
    ///
    /// # Errors
    /// A dimension out of range, or one of size 0.
    pub fn max_dim(&self, dim: impl IntoDim, keepdim: bool) -> Result<(Tensor, IndexTensor)> {
        self.extreme("max", dim, keepdim, greater)
    }

    /// The smallest values along `dim` and their positions, PyTorch's
    /// `torch.min(x, dim, keepdim)`.
    ///
    /// # Errors
    /// A dimension out of range, or one of size 0.
    pub fn min_dim(&self, dim: impl IntoDim, keepdim: bool) -> Result<(Tensor, IndexTensor)> {
        self.extreme("min", dim, keepdim, less)
    }

    /// The largest value as a rank-0 tensor (NaN if any value is NaN),
    /// PyTorch's `x.max()`.
    ///
    /// # Errors
    /// An empty tensor.
    pub fn max(&self) -> Result<Tensor> {
        self.extreme_all("max", greater)
    }

    /// The smallest value as a rank-0 tensor (NaN if any value is NaN),
    /// PyTorch's `x.min()`.
    ///
    /// # Errors
    /// An empty tensor.
    pub fn min(&self) -> Result<Tensor> {
        self.extreme_all("min", less)
    }

    fn extreme_all(&self, op: &'static str, better: fn(f32, f32) -> bool) -> Result<Tensor> {
        let (&first, rest) = self.data.split_first().ok_or_else(|| {
            Error::shape(
                op,
                format!(
                    "the tensor of shape {} has no values; give a dim to reduce over",
                    Dims(&self.shape)
                ),
            )
        })?;
        let best = rest
            .iter()
            .fold(first, |b, &v| if better(v, b) { v } else { b });
        Ok(Tensor::scalar(best))
    }

    fn extreme(
        &self,
        op: &'static str,
        dim: impl IntoDim,
        keepdim: bool,
        better: fn(f32, f32) -> bool,
    ) -> Result<(Tensor, IndexTensor)> {
        let r = reduction(op, &self.shape, dim, keepdim)?;
        if r.len == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "expected reduction dim {} to have non-zero size (shape {})",
                    r.dim,
                    Dims(&self.shape)
                ),
            ));
        }
        let n = r.outer * r.inner;
        let (mut values, mut indices) = (Vec::with_capacity(n), Vec::with_capacity(n));
        if self.shape.is_empty() {
            values.push(self.data[0]);
            indices.push(0);
        }
        for block in self.data.chunks_exact(r.len * r.inner.max(1)).take(r.outer) {
            let start = values.len();
            values.extend_from_slice(&block[..r.inner]);
            indices.resize(start + r.inner, 0);
            let (best, at) = (&mut values[start..], &mut indices[start..]);
            for (k, row) in block.chunks_exact(r.inner).enumerate().skip(1) {
                for i in 0..r.inner {
                    if better(row[i], best[i]) {
                        best[i] = row[i];
                        at[i] = k;
                    }
                }
            }
        }
        Ok((
            Tensor::from_vec(values, &r.out_shape)?,
            IndexTensor::from_vec(indices, &r.out_shape)?,
        ))
    }

    /// The mean along `dim`, PyTorch's `mean(dim, keepdim)` (NaN over a
    /// dimension of size 0).
    ///
    /// # Errors
    /// A dimension out of range.
    pub fn mean_dim(&self, dim: impl IntoDim, keepdim: bool) -> Result<Tensor> {
        let r = reduction("mean", &self.shape, dim, keepdim)?;
        let sum = if self.shape.is_empty() {
            self.clone()
        } else {
            self.sum_dim(r.dim, keepdim)?
        };
        Ok(sum.scale(1.0 / r.len as f32))
    }

    /// `exp(x) / sum(exp(x))` along `dim`, PyTorch's `softmax(dim)`;
    /// stable (each lane's maximum is subtracted first).
    ///
    /// # Errors
    /// A dimension out of range.
    pub fn softmax(&self, dim: impl IntoDim) -> Result<Tensor> {
        self.normalize("softmax", dim, false)
    }

    /// `x - log(sum(exp(x)))` along `dim`, PyTorch's `log_softmax(dim)`;
    /// stable, and exact where `softmax` would round to 0.
    ///
    /// # Errors
    /// A dimension out of range.
    pub fn log_softmax(&self, dim: impl IntoDim) -> Result<Tensor> {
        self.normalize("log_softmax", dim, true)
    }

    fn normalize(&self, op: &'static str, dim: impl IntoDim, log: bool) -> Result<Tensor> {
        let r = reduction(op, &self.shape, dim, true)?;
        let mut out = self.clone();
        if out.data.is_empty() {
            return Ok(out);
        }
        let (len, inner) = (r.len, r.inner.max(1));
        let mut max = vec![0f32; inner];
        let mut sum = vec![0f64; inner];
        for block in out.data.chunks_exact_mut(len * inner) {
            max.fill(f32::NEG_INFINITY);
            for row in block.chunks_exact(inner) {
                max.iter_mut().zip(row).for_each(|(m, &v)| *m = m.max(v));
            }
            sum.fill(0.0);
            for row in block.chunks_exact(inner) {
                for ((s, &v), &m) in sum.iter_mut().zip(row).zip(&max) {
                    *s += ((v - m).exp()) as f64;
                }
            }
            for row in block.chunks_exact_mut(inner) {
                for ((v, &s), &m) in row.iter_mut().zip(&sum).zip(&max) {
                    // `x - (max + log(sum))`, grouped as PyTorch's kernel does.
                    *v = if log {
                        *v - (m + s.ln() as f32)
                    } else {
                        ((*v - m).exp() as f64 / s) as f32
                    };
                }
            }
        }
        Ok(out)
    }
}

/// The gradient of `softmax` or `log_softmax` along `dim` (a checked
/// dimension of `y`), from its output `y` and `grad` of the same shape:
/// `y * (g - sum(g * y))`, or `g - exp(y) * sum(g)` for `log_softmax`.
pub(crate) fn normalize_backward(y: &Tensor, grad: &Tensor, dim: usize, log: bool) -> Tensor {
    let mut gx = grad.clone();
    if y.data.is_empty() {
        return gx;
    }
    let (_, len, inner) = if y.shape.is_empty() {
        (1, 1, 1)
    } else {
        split_at_dim(&y.shape, dim)
    };
    let mut acc = vec![0f64; inner];
    let blocks = gx
        .data
        .chunks_exact_mut(len * inner)
        .zip(y.data.chunks_exact(len * inner));
    for (gb, yb) in blocks {
        acc.fill(0.0);
        for (gr, yr) in gb.chunks_exact(inner).zip(yb.chunks_exact(inner)) {
            for ((a, &g), &yv) in acc.iter_mut().zip(gr).zip(yr) {
                *a += if log { g as f64 } else { (g * yv) as f64 };
            }
        }
        for (gr, yr) in gb.chunks_exact_mut(inner).zip(yb.chunks_exact(inner)) {
            for ((g, &a), &yv) in gr.iter_mut().zip(&acc).zip(yr) {
                *g = if log {
                    *g - yv.exp() * a as f32
                } else {
                    yv * (*g - a as f32)
                };
            }
        }
    }
    gx
}

/// The gradient of `max_dim` / `min_dim` on a tensor of `shape`: each
/// value of `grad` goes to the position `indices` picked.
pub(crate) fn extreme_dim_backward(
    shape: &[usize],
    dim: usize,
    indices: &IndexTensor,
    grad: &Tensor,
) -> Result<Tensor> {
    let mut out = Tensor::zeros(shape)?;
    if out.data.is_empty() {
        return Ok(out);
    }
    let (_, len, inner) = if shape.is_empty() {
        (1, 1, 1)
    } else {
        split_at_dim(shape, dim)
    };
    let lanes = grad
        .data
        .chunks_exact(inner)
        .zip(indices.data().chunks_exact(inner));
    for (block, (g, at)) in out.data.chunks_exact_mut(len * inner).zip(lanes) {
        for i in 0..inner {
            block[at[i] * inner + i] += g[i];
        }
    }
    Ok(out)
}

/// The gradient of `max()` / `min()` over all values: `grad` shared evenly
/// by the positions equal to the result `best` (PyTorch's rule for ties).
pub(crate) fn extreme_all_backward(x: &Tensor, best: f32, grad: f32) -> Tensor {
    let hit = |v: f32| v == best || (v.is_nan() && best.is_nan());
    let count = x.data.iter().filter(|&&v| hit(v)).count().max(1);
    let share = grad / count as f32;
    x.map(|v| if hit(v) { share } else { 0.0 })
}
