//! The tensor ops of [`crate::tensor`] on [`Var`], with their gradients:
//! indexing, slicing, `index_put`, `permute` and the other layout ops,
//! `cat` / `stack`, reductions along a dimension, `softmax`. Each computes
//! its value with the `Tensor` op and records the gradient right below.
//! Backward closures capture only owned values (shapes, views, indices,
//! tensors).
//!
//! ```
//! use convlab::{autograd::Var, Tensor};
//! let x = Var::param(Tensor::arange(6.0)?.reshape(&[2, 3])?);
//! let y = x.index((.., 1..))?.softmax(-1)?.index((.., 0))?.sum()?;
//! y.backward()?;
//! assert_eq!(x.grad().unwrap().get(&[0, 0])?, 0.0); // column 0 was not used
//! # Ok::<(), convlab::Error>(())
//! ```

mod operators;

use super::Var;
use crate::error::Result;
use crate::tensor::dim::{resolve_dim, resolve_dim_in, IntoDim};
use crate::tensor::index::{
    index_view, narrow_spec, region_values, slice_spec, Idx, IndexSpec, Slice,
};
use crate::tensor::layout::{
    check_split_sizes, flattened_shape, resolve_permutation, squeezed_shape, transpose_permutation,
    unsqueezed_shape,
};
use crate::tensor::reduce::{extreme_all_backward, extreme_dim_backward, normalize_backward};
use crate::tensor::{IndexTensor, PutValue, Tensor};

impl Var {
    /// The values at `spec`, PyTorch's `x[spec]`; see
    /// [`Tensor::index`] for the forms an index takes. The gradient flows
    /// back into the selected positions.
    pub fn index(&self, spec: impl IndexSpec) -> Result<Var> {
        self.index_entries("index", "Select", &spec.into_indices())
    }

    /// `length` positions of `dim` from `start`, PyTorch's `narrow`.
    pub fn narrow(&self, dim: impl IntoDim, start: impl IntoDim, length: usize) -> Result<Var> {
        let spec = narrow_spec("narrow", &self.shape(), dim, start, length)?;
        self.index_entries("narrow", "Slice", &spec)
    }

    /// A slice of one dimension (`x.slice(1, 2..6)` is `x[:, 2:6]`).
    pub fn slice(&self, dim: impl IntoDim, slice: impl Into<Slice>) -> Result<Var> {
        let spec = slice_spec("slice", &self.shape(), dim, slice.into())?;
        self.index_entries("slice", "Slice", &spec)
    }

    fn index_entries(&self, op: &'static str, name: &'static str, spec: &[Idx]) -> Result<Var> {
        let shape = self.shape();
        let view = index_view(op, &shape, spec)?;
        let y = self.value().gather_view(&view);
        Ok(Var::from_op(y, name, &[self], move |g| {
            let mut gx = Tensor::zeros(&shape)?;
            view.scatter(gx.data_mut(), g.data());
            Ok(vec![Some(gx)])
        }))
    }

    /// The positions `indices` of `dim`, PyTorch's `index_select`; a
    /// position picked twice gets both gradients.
    pub fn index_select(&self, dim: impl IntoDim, indices: &[usize]) -> Result<Var> {
        let shape = self.shape();
        let d = resolve_dim("index_select", dim, &shape)?;
        let y = self.value().index_select(d, indices)?;
        let indices = indices.to_vec();
        Ok(Var::from_op(y, "IndexSelect", &[self], move |g| {
            Ok(vec![Some(Tensor::index_select_backward(
                g, &shape, d, &indices,
            )?)])
        }))
    }

    /// `self` with the positions `spec` selects replaced by `value`
    /// (broadcast to them), out of place: PyTorch's `x.index_put(...)`, the
    /// differentiable form of `x[spec] = value`. Gradients flow to `self`
    /// outside the region and to `value` from inside it.
    ///
    /// ```
    /// use convlab::{autograd::Var, Tensor};
    /// let x = Var::param(Tensor::ones(&[2, 4])?);
    /// let v = Var::param(Tensor::scalar(5.0));
    /// let y = x.index_put((.., 1..3), &v)?;
    /// assert_eq!(y.value().data(), &[1., 5., 5., 1., 1., 5., 5., 1.]);
    /// y.sum()?.backward()?;
    /// assert_eq!(v.grad().unwrap().item()?, 4.0);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    pub fn index_put(&self, spec: impl IndexSpec, value: &Var) -> Result<Var> {
        let shape = self.shape();
        let view = index_view("index_put", &shape, &spec.into_indices())?;
        let vshape = value.shape();
        let values = region_values("index_put", &view.shape, PutValue::Tensor(&value.value()))?;
        let mut y = self.tensor();
        view.scatter(y.data_mut(), &values);
        Ok(Var::from_op(y, "IndexPut", &[self, value], move |g| {
            let mut gx = g.clone();
            let zeros = vec![0.0; view.numel()];
            view.scatter(gx.data_mut(), &zeros);
            let gv = g.gather_view(&view).sum_to_shape(&vshape)?;
            Ok(vec![Some(gx), Some(gv)])
        }))
    }

    /// The dimensions reordered, PyTorch's `permute`.
    pub fn permute<D: IntoDim>(&self, dims: &[D]) -> Result<Var> {
        let perm = resolve_permutation("permute", &self.shape(), dims)?;
        self.permuted("Permute", perm)
    }

    /// Dimensions `dim0` and `dim1` swapped, PyTorch's `transpose`.
    pub fn transpose(&self, dim0: impl IntoDim, dim1: impl IntoDim) -> Result<Var> {
        let perm = transpose_permutation("transpose", &self.shape(), dim0, dim1)?;
        self.permuted("Transpose", perm)
    }

    fn permuted(&self, name: &'static str, perm: Vec<usize>) -> Result<Var> {
        let y = self.value().permuted(&perm);
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(Var::from_op(y, name, &[self], move |g| {
            Ok(vec![Some(g.permuted(&inverse))])
        }))
    }

    /// A new dimension of size 1 at `dim`, PyTorch's `unsqueeze`.
    pub fn unsqueeze(&self, dim: impl IntoDim) -> Result<Var> {
        let shape = unsqueezed_shape(&self.shape(), dim)?;
        self.reshaped("Unsqueeze", &shape)
    }

    /// Every dimension of size 1 removed, PyTorch's `squeeze()`.
    pub fn squeeze(&self) -> Result<Var> {
        let shape: Vec<usize> = self.shape().into_iter().filter(|&d| d != 1).collect();
        self.reshaped("Squeeze", &shape)
    }

    /// Dimension `dim` removed if its size is 1, PyTorch's `squeeze(dim)`.
    pub fn squeeze_dim(&self, dim: impl IntoDim) -> Result<Var> {
        let shape = squeezed_shape("squeeze", &self.shape(), dim)?;
        self.reshaped("Squeeze", &shape)
    }

    /// Dimensions `start_dim..=end_dim` merged, PyTorch's
    /// `flatten(start_dim, end_dim)` (see [`Tensor::flatten`]).
    /// [`Var::flatten`] is `nn.Flatten`'s `flatten(1, -1)`.
    pub fn flatten_dims(&self, start_dim: impl IntoDim, end_dim: impl IntoDim) -> Result<Var> {
        let shape = flattened_shape(&self.shape(), start_dim, end_dim)?;
        self.reshaped("Flatten", &shape)
    }

    /// The same values under `shape` (same size), reshaped back for the
    /// gradient.
    fn reshaped(&self, name: &'static str, shape: &[usize]) -> Result<Var> {
        let old = self.shape();
        let y = Tensor::from_vec(self.value().data().to_vec(), shape)?;
        Ok(Var::from_op(y, name, &[self], move |g| {
            Ok(vec![Some(Tensor::from_vec(g.data().to_vec(), &old)?)])
        }))
    }

    /// The values repeated to `shape` (`usize::MAX` keeps a size), PyTorch's
    /// `expand`; the gradient sums over the repeats.
    pub fn expand(&self, shape: &[usize]) -> Result<Var> {
        let old = self.shape();
        let y = self.value().expand(shape)?;
        Ok(Var::from_op(y, "Expand", &[self], move |g| {
            Ok(vec![Some(g.sum_to_shape(&old)?)])
        }))
    }

    /// [`Var::expand`] under its NumPy name, `torch.broadcast_to`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Var> {
        self.expand(shape).map_err(|e| e.with_op("broadcast_to"))
    }

    /// Consecutive pieces of `dim` with the given sizes, PyTorch's
    /// `split_with_sizes`; each piece is differentiable.
    pub fn split_with_sizes(&self, sizes: &[usize], dim: impl IntoDim) -> Result<Vec<Var>> {
        let d = check_split_sizes(&self.shape(), sizes, dim)?;
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &len in sizes {
            out.push(self.narrow(d, start, len)?);
            start += len;
        }
        Ok(out)
    }

    /// Variables joined along an existing dimension, PyTorch's `torch.cat`;
    /// each gets its piece of the gradient.
    ///
    /// ```
    /// use convlab::{autograd::Var, Tensor};
    /// let a = Var::param(Tensor::ones(&[2, 1])?);
    /// let b = Var::param(Tensor::zeros(&[2, 3])?);
    /// let y = Var::cat(&[&a, &b], 1)?;
    /// assert_eq!(y.shape(), [2, 4]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    pub fn cat(vars: &[&Var], dim: impl IntoDim) -> Result<Var> {
        let values: Vec<Tensor> = vars.iter().map(|v| v.tensor()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let y = Tensor::cat(&refs, dim)?;
        let d = resolve_dim("cat", dim, values[0].shape())?;
        let sizes: Vec<usize> = values.iter().map(|t| t.shape()[d]).collect();
        Ok(Var::from_op(y, "Cat", vars, move |g| {
            Ok(g.split_with_sizes(&sizes, d)?
                .into_iter()
                .map(Some)
                .collect())
        }))
    }

    /// Equal-shaped variables joined along a new dimension, PyTorch's
    /// `torch.stack`.
    pub fn stack(vars: &[&Var], dim: impl IntoDim) -> Result<Var> {
        let values: Vec<Tensor> = vars.iter().map(|v| v.tensor()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let y = Tensor::stack(&refs, dim)?;
        let shape = values[0].shape().to_vec();
        let d = resolve_dim_in("stack", "dim", dim, &shape, shape.len() + 1)?;
        let sizes = vec![1; vars.len()];
        Ok(Var::from_op(y, "Stack", vars, move |g| {
            g.split_with_sizes(&sizes, d)?
                .into_iter()
                .map(|piece| Ok(Some(Tensor::from_vec(piece.into_vec(), &shape)?)))
                .collect()
        }))
    }

    /// The sum along `dim`, PyTorch's `sum(dim, keepdim)`.
    pub fn sum_dim(&self, dim: impl IntoDim, keepdim: bool) -> Result<Var> {
        self.reduce_dim("sum", "Sum", dim, keepdim, false)
    }

    /// The mean along `dim`, PyTorch's `mean(dim, keepdim)`.
    pub fn mean_dim(&self, dim: impl IntoDim, keepdim: bool) -> Result<Var> {
        self.reduce_dim("mean", "Mean", dim, keepdim, true)
    }

    fn reduce_dim(
        &self,
        op: &'static str,
        name: &'static str,
        dim: impl IntoDim,
        keepdim: bool,
        mean: bool,
    ) -> Result<Var> {
        let shape = self.shape();
        let d = resolve_dim(op, dim, &shape)?;
        let x = self.value();
        let (y, len) = match shape.get(d) {
            None => ((*x).clone(), 1),
            Some(&len) if mean => (x.mean_dim(d, keepdim)?, len),
            Some(&len) => (x.sum_dim(d, keepdim)?, len),
        };
        drop(x);
        let scale = if mean { 1.0 / len as f32 } else { 1.0 };
        Ok(Var::from_op(y, name, &[self], move |g| {
            let kept = match (keepdim, shape.is_empty()) {
                (false, false) => unsqueezed_shape(g.shape(), d)?,
                _ => g.shape().to_vec(),
            };
            let g = Tensor::from_vec(g.data().to_vec(), &kept)?;
            Ok(vec![Some(g.expand(&shape)?.scale(scale))])
        }))
    }

    /// The largest value (a scalar), PyTorch's `x.max()`; equal maxima
    /// share the gradient evenly, as in PyTorch.
    pub fn max(&self) -> Result<Var> {
        self.extreme_all(true)
    }

    /// The smallest value (a scalar), PyTorch's `x.min()`.
    pub fn min(&self) -> Result<Var> {
        self.extreme_all(false)
    }

    fn extreme_all(&self, max: bool) -> Result<Var> {
        let x = self.tensor();
        let y = if max { x.max()? } else { x.min()? };
        let best = y.item()?;
        let name = if max { "Max" } else { "Min" };
        Ok(Var::from_op(y, name, &[self], move |g| {
            Ok(vec![Some(extreme_all_backward(&x, best, g.item()?))])
        }))
    }

    /// The largest values along `dim` and their positions, PyTorch's
    /// `torch.max(x, dim, keepdim)`; the gradient goes to those positions.
    pub fn max_dim(&self, dim: impl IntoDim, keepdim: bool) -> Result<(Var, IndexTensor)> {
        self.extreme_dim(dim, keepdim, true)
    }

    /// The smallest values along `dim` and their positions, PyTorch's
    /// `torch.min(x, dim, keepdim)`.
    pub fn min_dim(&self, dim: impl IntoDim, keepdim: bool) -> Result<(Var, IndexTensor)> {
        self.extreme_dim(dim, keepdim, false)
    }

    fn extreme_dim(
        &self,
        dim: impl IntoDim,
        keepdim: bool,
        max: bool,
    ) -> Result<(Var, IndexTensor)> {
        let shape = self.shape();
        let (op, name) = if max { ("max", "Max") } else { ("min", "Min") };
        let d = resolve_dim(op, dim, &shape)?;
        let (y, idx) = if max {
            self.value().max_dim(d, keepdim)?
        } else {
            self.value().min_dim(d, keepdim)?
        };
        let at = idx.clone();
        let v = Var::from_op(y, name, &[self], move |g| {
            Ok(vec![Some(extreme_dim_backward(&shape, d, &at, g)?)])
        });
        Ok((v, idx))
    }

    /// [`Tensor::argmax`] of the value (not differentiable).
    pub fn argmax(&self, dim: impl IntoDim, keepdim: bool) -> Result<IndexTensor> {
        self.value().argmax(dim, keepdim)
    }

    /// [`Tensor::argmin`] of the value (not differentiable).
    pub fn argmin(&self, dim: impl IntoDim, keepdim: bool) -> Result<IndexTensor> {
        self.value().argmin(dim, keepdim)
    }

    /// Softmax along `dim`, PyTorch's `softmax(dim)` (stable).
    pub fn softmax(&self, dim: impl IntoDim) -> Result<Var> {
        self.normalized("softmax", "Softmax", dim, false)
    }

    /// Log-softmax along `dim`, PyTorch's `log_softmax(dim)` (stable; any
    /// rank). [`Var::log_softmax`] is the same over the last dimension of a
    /// matrix.
    pub fn log_softmax_dim(&self, dim: impl IntoDim) -> Result<Var> {
        self.normalized("log_softmax", "LogSoftmax", dim, true)
    }

    fn normalized(
        &self,
        op: &'static str,
        name: &'static str,
        dim: impl IntoDim,
        log: bool,
    ) -> Result<Var> {
        let d = resolve_dim(op, dim, &self.shape())?;
        let y = if log {
            self.value().log_softmax(d)?
        } else {
            self.value().softmax(d)?
        };
        let out = y.clone();
        Ok(Var::from_op(y, name, &[self], move |g| {
            Ok(vec![Some(normalize_backward(&out, g, d, log))])
        }))
    }
}
