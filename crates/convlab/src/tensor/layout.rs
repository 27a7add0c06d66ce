//! Ops that move values without computing on them: `permute`, `transpose`,
//! `unsqueeze`, `squeeze`, `flatten`, `expand`, `split_with_sizes`, with
//! PyTorch's names and rules. Each returns a new contiguous tensor (convlab
//! tensors own their values; there are no aliasing views).
//!
//! ```
//! use convlab::Tensor;
//! let x = Tensor::zeros(&[2, 3, 4, 5])?;          // N, C, H, W
//! assert_eq!(x.permute(&[0, 2, 3, 1])?.shape(), &[2, 4, 5, 3]);
//! assert_eq!(x.flatten(1, -1)?.shape(), &[2, 60]);
//! assert_eq!(x.unsqueeze(0)?.squeeze_dim(0)?.shape(), x.shape());
//! # Ok::<(), convlab::Error>(())
//! ```

use super::dim::{contiguous_strides, resolve_dim, resolve_dim_in, IntoDim};
use super::view::View;
use super::Tensor;
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;

impl Tensor {
    /// The dimensions reordered: dimension `i` of the result is dimension
    /// `dims[i]` of `self`, PyTorch's `permute`.
    ///
    /// # Errors
    /// `dims` is not a permutation of `0..ndim` (negative entries count from
    /// the end).
    pub fn permute<D: IntoDim>(&self, dims: &[D]) -> Result<Tensor> {
        let perm = resolve_permutation("permute", &self.shape, dims)?;
        Ok(self.permuted(&perm))
    }

    /// `self` with dimensions `perm` (a checked permutation) reordered.
    pub(crate) fn permuted(&self, perm: &[usize]) -> Tensor {
        let strides = contiguous_strides(&self.shape);
        let view = View {
            offset: 0,
            shape: perm.iter().map(|&d| self.shape[d]).collect(),
            strides: perm.iter().map(|&d| strides[d]).collect(),
        };
        self.gather_view(&view)
    }

    /// Dimensions `dim0` and `dim1` swapped, PyTorch's `transpose`.
    ///
    /// ```
    /// use convlab::Tensor;
    /// let x = Tensor::arange(6.0)?.reshape(&[2, 3])?;
    /// assert_eq!(x.transpose(0, 1)?, x.t()?);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    ///
    /// # Errors
    /// A dimension out of range.
    pub fn transpose(&self, dim0: impl IntoDim, dim1: impl IntoDim) -> Result<Tensor> {
        let perm = transpose_permutation("transpose", &self.shape, dim0, dim1)?;
        Ok(self.permuted(&perm))
    }

    /// A new dimension of size 1 at `dim` (`-1` appends), PyTorch's
    /// `unsqueeze`.
    ///
    /// # Errors
    /// `dim` outside `-(ndim + 1)..=ndim`.
    pub fn unsqueeze(&self, dim: impl IntoDim) -> Result<Tensor> {
        let shape = unsqueezed_shape(&self.shape, dim)?;
        Ok(Tensor {
            shape,
            data: self.data.clone(),
        })
    }

    /// Every dimension of size 1 removed, PyTorch's `squeeze()`.
    pub fn squeeze(&self) -> Tensor {
        Tensor {
            shape: self.shape.iter().copied().filter(|&d| d != 1).collect(),
            data: self.data.clone(),
        }
    }

    /// Dimension `dim` removed if its size is 1 (otherwise the same shape),
    /// PyTorch's `squeeze(dim)`.
    ///
    /// # Errors
    /// A dimension out of range.
    pub fn squeeze_dim(&self, dim: impl IntoDim) -> Result<Tensor> {
        let shape = squeezed_shape("squeeze", &self.shape, dim)?;
        Ok(Tensor {
            shape,
            data: self.data.clone(),
        })
    }

    /// Dimensions `start_dim..=end_dim` merged into one, PyTorch's
    /// `flatten(start_dim, end_dim)` (`x.flatten(0, -1)` is 1-D; a rank-0
    /// tensor becomes `[1]`).
    ///
    /// # Errors
    /// A dimension out of range, or `start_dim` after `end_dim`.
    pub fn flatten(&self, start_dim: impl IntoDim, end_dim: impl IntoDim) -> Result<Tensor> {
        let shape = flattened_shape(&self.shape, start_dim, end_dim)?;
        Ok(Tensor {
            shape,
            data: self.data.clone(),
        })
    }

    /// The values repeated along dimensions of size 1 (and new leading
    /// dimensions) to `shape`, PyTorch's `expand`; `usize::MAX` keeps a
    /// dimension's size, like `-1` in PyTorch. The result is a copy.
    ///
    /// ```
    /// use convlab::Tensor;
    /// let b = Tensor::from_slice(&[1.0, 2.0], &[2, 1])?;
    /// assert_eq!(b.expand(&[2, 3])?.data(), &[1., 1., 1., 2., 2., 2.]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    ///
    /// # Errors
    /// Fewer dimensions than `self`, a size other than 1 that differs, a
    /// result over the memory limit.
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        let shape = expanded_shape("expand", &self.shape, shape)?;
        let n = numel_or_err("expand", &shape)?;
        memory::check_f32("expand", n)?;
        Ok(self.gather_view(&self.broadcast_view(&shape)))
    }

    /// [`Tensor::expand`] under its NumPy name, `torch.broadcast_to`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        self.expand(shape).map_err(|e| e.with_op("broadcast_to"))
    }

    /// Reading `self` as if broadcast to `target` (which it broadcasts to).
    pub(crate) fn broadcast_view(&self, target: &[usize]) -> View {
        let strides = contiguous_strides(&self.shape);
        let lead = target.len() - self.shape.len();
        View {
            offset: 0,
            shape: target.to_vec(),
            strides: (0..target.len())
                .map(|d| match d.checked_sub(lead) {
                    Some(s) if self.shape[s] != 1 => strides[s],
                    _ => 0,
                })
                .collect(),
        }
    }

    /// Consecutive pieces of dimension `dim` with the given sizes, PyTorch's
    /// `split_with_sizes` (`torch.split` with a list).
    ///
    /// ```
    /// use convlab::Tensor;
    /// let x = Tensor::arange(5.0)?;
    /// let parts = x.split_with_sizes(&[2, 3], 0)?;
    /// assert_eq!(parts[1].data(), &[2., 3., 4.]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    ///
    /// # Errors
    /// A dimension out of range, sizes that do not add up to the dimension.
    pub fn split_with_sizes(&self, sizes: &[usize], dim: impl IntoDim) -> Result<Vec<Tensor>> {
        let op = "split_with_sizes";
        let d = check_split_sizes(&self.shape, sizes, dim)?;
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &len in sizes {
            let spec = super::index::narrow_spec(op, &self.shape, d, start, len)?;
            let view = super::index::index_view(op, &self.shape, &spec)?;
            out.push(self.gather_view(&view));
            start += len;
        }
        Ok(out)
    }
}

/// The dimension `split_with_sizes` splits, checked with the sizes.
pub(crate) fn check_split_sizes(
    shape: &[usize],
    sizes: &[usize],
    dim: impl IntoDim,
) -> Result<usize> {
    let op = "split_with_sizes";
    let d = resolve_dim(op, dim, shape)?;
    if shape.is_empty() {
        return Err(Error::shape(op, "cannot be applied to a 0-dim tensor"));
    }
    let total = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s));
    if total != Some(shape[d]) {
        return Err(Error::param(
            op,
            "split_sizes",
            format!(
                "{} must sum exactly to {} (the size of dimension {d} of shape {})",
                Dims(sizes),
                shape[d],
                Dims(shape)
            ),
        ));
    }
    Ok(d)
}

/// `dims` checked to be a permutation of `shape`'s dimensions.
pub(crate) fn resolve_permutation<D: IntoDim>(
    op: &'static str,
    shape: &[usize],
    dims: &[D],
) -> Result<Vec<usize>> {
    let shown = || {
        let v: Vec<String> = dims.iter().map(|d| d.to_i128().to_string()).collect();
        format!("[{}]", v.join(", "))
    };
    if dims.len() != shape.len() {
        return Err(Error::param(
            op,
            "dims",
            format!(
                "{} has {} entries but the tensor of shape {} has {} dimensions",
                shown(),
                dims.len(),
                Dims(shape),
                shape.len()
            ),
        ));
    }
    let mut seen = vec![false; shape.len()];
    let mut perm = Vec::with_capacity(dims.len());
    for &d in dims {
        let r = resolve_dim_in(op, "dims", d, shape, shape.len())?;
        if std::mem::replace(&mut seen[r], true) {
            return Err(Error::param(
                op,
                "dims",
                format!("{} repeats dimension {r} (shape {})", shown(), Dims(shape)),
            ));
        }
        perm.push(r);
    }
    Ok(perm)
}

/// The permutation swapping `dim0` and `dim1` (the identity on a rank-0
/// tensor, as PyTorch's `transpose(0, 0)`).
pub(crate) fn transpose_permutation(
    op: &'static str,
    shape: &[usize],
    dim0: impl IntoDim,
    dim1: impl IntoDim,
) -> Result<Vec<usize>> {
    let a = resolve_dim(op, dim0, shape)?;
    let b = resolve_dim(op, dim1, shape)?;
    let mut perm: Vec<usize> = (0..shape.len()).collect();
    if !shape.is_empty() {
        perm.swap(a, b);
    }
    Ok(perm)
}

pub(crate) fn unsqueezed_shape(shape: &[usize], dim: impl IntoDim) -> Result<Vec<usize>> {
    let d = resolve_dim_in("unsqueeze", "dim", dim, shape, shape.len() + 1)?;
    let mut out = shape.to_vec();
    out.insert(d, 1);
    Ok(out)
}

pub(crate) fn squeezed_shape(
    op: &'static str,
    shape: &[usize],
    dim: impl IntoDim,
) -> Result<Vec<usize>> {
    let d = resolve_dim(op, dim, shape)?;
    let mut out = shape.to_vec();
    if out.get(d) == Some(&1) {
        out.remove(d);
    }
    Ok(out)
}

pub(crate) fn flattened_shape(
    shape: &[usize],
    start_dim: impl IntoDim,
    end_dim: impl IntoDim,
) -> Result<Vec<usize>> {
    let op = "flatten";
    let s = resolve_dim_in(op, "start_dim", start_dim, shape, shape.len().max(1))?;
    let e = resolve_dim_in(op, "end_dim", end_dim, shape, shape.len().max(1))?;
    if s > e {
        return Err(Error::param(
            op,
            "start_dim",
            format!("{s} comes after end_dim {e} (shape {})", Dims(shape)),
        ));
    }
    if shape.is_empty() {
        return Ok(vec![1]);
    }
    let merged = numel_or_err(op, &shape[s..=e])?;
    let mut out = shape[..s].to_vec();
    out.push(merged);
    out.extend_from_slice(&shape[e + 1..]);
    Ok(out)
}

/// `target` checked against `shape` by `expand`'s rules, with `usize::MAX`
/// entries replaced by the existing size.
pub(crate) fn expanded_shape(
    op: &'static str,
    shape: &[usize],
    target: &[usize],
) -> Result<Vec<usize>> {
    let shown = || {
        let v: Vec<String> = target
            .iter()
            .map(|&d| {
                if d == usize::MAX {
                    "-1".to_string()
                } else {
                    d.to_string()
                }
            })
            .collect();
        format!("[{}]", v.join(", "))
    };
    let Some(lead) = target.len().checked_sub(shape.len()) else {
        return Err(Error::shape(
            op,
            format!(
                "the number of sizes provided ({}) must be greater or equal to the number of dimensions in the tensor ({}): target {} for shape {}",
                target.len(),
                shape.len(),
                shown(),
                Dims(shape)
            ),
        ));
    };
    let mut out = Vec::with_capacity(target.len());
    for (d, &t) in target.iter().enumerate() {
        let have = d.checked_sub(lead).map(|s| shape[s]);
        let size = match (have, t) {
            (None, usize::MAX) => {
                return Err(Error::param(
                    op,
                    "size",
                    format!(
                        "-1 is not allowed in a leading, non-existing dimension {d}: target {} for shape {}",
                        shown(),
                        Dims(shape)
                    ),
                ))
            }
            (None, t) => t,
            (Some(h), usize::MAX) => h,
            (Some(h), t) if h == t || h == 1 => t,
            (Some(h), t) => {
                return Err(Error::shape(
                    op,
                    format!(
                        "the expanded size {t} must match the existing size {h} at non-singleton dimension {d}: target {} for shape {}",
                        shown(),
                        Dims(shape)
                    ),
                ))
            }
        };
        out.push(size);
    }
    Ok(out)
}
