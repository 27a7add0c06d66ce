//! Indexing, slicing and slice assignment: PyTorch's `x[...]` and
//! `x[...] = v`, written with Rust ranges.
//!
//! The forms an index takes are described on [`Tensor::index`]; every form resolves to a [`View`] (offset, shape, strides) that is read
//! or written by the one strided copy in `view.rs`.

use super::dim::{contiguous_strides, resolve_dim, resolve_position, IntoDim};
use super::view::View;
use super::{broadcast_shape, Tensor};
use crate::error::{Dims, Error, Result};
use crate::memory;
use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

/// A slice of one dimension, Python's `start:end:step`: bounds may be
/// negative (counted from the end) or absent, and are clamped to the
/// dimension; the step is positive. Built from any Rust range.
///
/// ```
/// use convlab::{tensor::Slice, Tensor};
/// let x = Tensor::arange(10.0)?;
/// assert_eq!(x.index(Slice::from(1..).step(3))?.data(), &[1., 4., 7.]);
/// assert_eq!(x.index(-3..)?.data(), &[7., 8., 9.]);
/// assert_eq!(x.index(Slice::new(None, Some(-7), 1))?.data(), &[0., 1., 2.]);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    start: Option<i128>,
    end: Option<i128>,
    step: usize,
}

impl Slice {
    /// Python's `slice(start, end, step)`; `None` is an open end.
    pub fn new(start: Option<isize>, end: Option<isize>, step: usize) -> Slice {
        Slice {
            start: start.map(|s| s as i128),
            end: end.map(|e| e as i128),
            step,
        }
    }

    /// The whole dimension, `:`.
    pub fn full() -> Slice {
        Slice {
            start: None,
            end: None,
            step: 1,
        }
    }

    /// The same bounds with every `step`-th position (`::step`; a step of 0
    /// is an error when the slice is used, as in PyTorch).
    pub fn step(self, step: usize) -> Slice {
        Slice { step, ..self }
    }

    /// `(start, len, step)` along a dimension of `size`.
    fn resolve(self, op: &'static str, size: usize) -> Result<(usize, usize, usize)> {
        if self.step == 0 {
            return Err(Error::param(op, "step", "0 is invalid: must be positive"));
        }
        let s = size as i128;
        let clamp = |v: i128| (if v < 0 { v + s } else { v }).clamp(0, s);
        let start = self.start.map_or(0, clamp);
        let end = self.end.map_or(s, clamp);
        let len = if end > start {
            (end - start + self.step as i128 - 1) / self.step as i128
        } else {
            0
        };
        Ok((start as usize, len as usize, self.step))
    }
}

impl<T: IntoDim> From<Range<T>> for Slice {
    fn from(r: Range<T>) -> Slice {
        Slice {
            start: Some(r.start.to_i128()),
            end: Some(r.end.to_i128()),
            step: 1,
        }
    }
}

impl<T: IntoDim> From<RangeFrom<T>> for Slice {
    fn from(r: RangeFrom<T>) -> Slice {
        Slice {
            start: Some(r.start.to_i128()),
            end: None,
            step: 1,
        }
    }
}

impl<T: IntoDim> From<RangeTo<T>> for Slice {
    fn from(r: RangeTo<T>) -> Slice {
        Slice {
            start: None,
            end: Some(r.end.to_i128()),
            step: 1,
        }
    }
}

/// Inclusive ends: `..=-1` is the whole dimension, as `a..=b` reads.
fn inclusive_end(end: i128) -> Option<i128> {
    (end != -1).then_some(end + 1)
}

impl<T: IntoDim> From<RangeInclusive<T>> for Slice {
    fn from(r: RangeInclusive<T>) -> Slice {
        Slice {
            start: Some(r.start().to_i128()),
            end: inclusive_end(r.end().to_i128()),
            step: 1,
        }
    }
}

impl<T: IntoDim> From<RangeToInclusive<T>> for Slice {
    fn from(r: RangeToInclusive<T>) -> Slice {
        Slice {
            start: None,
            end: inclusive_end(r.end.to_i128()),
            step: 1,
        }
    }
}

impl From<RangeFull> for Slice {
    fn from(_: RangeFull) -> Slice {
        Slice::full()
    }
}

/// One entry of an index: a position (drops its dimension) or a [`Slice`]
/// (keeps it). Made from integers, ranges and slices by `From`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idx {
    /// One position; negative counts from the end.
    At(i128),
    /// A slice of the dimension.
    Slice(Slice),
}

macro_rules! idx_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Idx {
            fn from(i: $t) -> Idx {
                Idx::At(i as i128)
            }
        }
    )*};
}
idx_from_int!(usize, isize, i32, i64);

impl From<Slice> for Idx {
    fn from(s: Slice) -> Idx {
        Idx::Slice(s)
    }
}

macro_rules! idx_from_range {
    ($($r:ident),*) => {$(
        impl<T: IntoDim> From<$r<T>> for Idx {
            fn from(r: $r<T>) -> Idx {
                Idx::Slice(r.into())
            }
        }
    )*};
}
idx_from_range!(Range, RangeFrom, RangeTo, RangeInclusive, RangeToInclusive);

impl From<RangeFull> for Idx {
    fn from(_: RangeFull) -> Idx {
        Idx::Slice(Slice::full())
    }
}

/// Anything that indexes a tensor: one [`Idx`]-like entry (`2`, `1..3`,
/// `..`), a tuple of up to six of them (`(.., 2..6)`), or a `Vec<Idx>` /
/// `&[Idx]` built at run time.
pub trait IndexSpec {
    /// The entries, one per leading dimension.
    fn into_indices(self) -> Vec<Idx>;
}

impl<T: Into<Idx>> IndexSpec for T {
    fn into_indices(self) -> Vec<Idx> {
        vec![self.into()]
    }
}

impl IndexSpec for Vec<Idx> {
    fn into_indices(self) -> Vec<Idx> {
        self
    }
}

impl IndexSpec for &[Idx] {
    fn into_indices(self) -> Vec<Idx> {
        self.to_vec()
    }
}

macro_rules! index_spec_tuple {
    ($($name:ident),+) => {
        impl<$($name: Into<Idx>),+> IndexSpec for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_indices(self) -> Vec<Idx> {
                let ($($name,)+) = self;
                vec![$($name.into()),+]
            }
        }
    };
}
index_spec_tuple!(A);
index_spec_tuple!(A, B);
index_spec_tuple!(A, B, C);
index_spec_tuple!(A, B, C, D);
index_spec_tuple!(A, B, C, D, E);
index_spec_tuple!(A, B, C, D, E, F);

/// The value written by [`Tensor::index_put_`]: a number, or a tensor that
/// broadcasts to the indexed region.
#[derive(Clone, Copy, Debug)]
pub enum PutValue<'a> {
    /// Every position gets this number.
    Scalar(f32),
    /// Broadcast to the region's shape.
    Tensor(&'a Tensor),
}

impl From<f32> for PutValue<'_> {
    fn from(v: f32) -> Self {
        PutValue::Scalar(v)
    }
}

impl<'a> From<&'a Tensor> for PutValue<'a> {
    fn from(t: &'a Tensor) -> Self {
        PutValue::Tensor(t)
    }
}

/// The view an index selects from a contiguous tensor of `shape`.
pub(crate) fn index_view(op: &'static str, shape: &[usize], spec: &[Idx]) -> Result<View> {
    if spec.len() > shape.len() {
        return Err(Error::shape(
            op,
            format!(
                "too many indices for tensor of dimension {} (shape {}): {} given",
                shape.len(),
                Dims(shape),
                spec.len()
            ),
        ));
    }
    let strides = contiguous_strides(shape);
    let mut view = View {
        offset: 0,
        shape: Vec::with_capacity(shape.len()),
        strides: Vec::with_capacity(shape.len()),
    };
    for (d, (&size, &stride)) in shape.iter().zip(&strides).enumerate() {
        match spec.get(d).copied().unwrap_or(Idx::Slice(Slice::full())) {
            Idx::At(i) => {
                let i = resolve_position(op, i, d, size)?;
                view.offset = view.offset.saturating_add(i.saturating_mul(stride));
            }
            Idx::Slice(s) => {
                let (start, len, step) = s.resolve(op, size)?;
                view.offset = view.offset.saturating_add(start.saturating_mul(stride));
                view.shape.push(len);
                view.strides.push(step.saturating_mul(stride));
            }
        }
    }
    Ok(view)
}

impl Tensor {
    /// The values at `spec`, PyTorch's `x[spec]` (a copy);
    /// [`Tensor::index_put_`] writes `x[spec] = v`.
    ///
    /// An index is a tuple with one entry per leading dimension (missing
    /// trailing entries mean the whole dimension, as in PyTorch): an integer
    /// picks one position and drops the dimension, a range keeps a slice of it,
    /// `..` keeps all of it, and [`Slice::step`] adds a stride. Negative
    /// integers count from the end; slice bounds are clamped to the dimension,
    /// as in Python.
    ///
    /// | PyTorch | convlab |
    /// |---|---|
    /// | `X[1:3]` / `X[1:3, :]` | `x.index(1..3)?` / `x.index((1..3, ..))?` |
    /// | `X[:, 2:6] = 0` | `x.index_put_((.., 2..6), 0.0)?` |
    /// | `X[-1]` | `x.index(-1)?` |
    /// | `X[::2, 1]` | `x.index((Slice::full().step(2), 1))?` |
    /// | `X[:, 1:3] = Y` | `x.index_put_((.., 1..3), &y)?` |
    /// | `X.narrow(0, 1, 2)` | `x.narrow(0, 1, 2)?` |
    /// | `X.index_select(1, idx)` | `x.index_select(1, &[2, 0])?` |
    ///
    /// ```
    /// use convlab::Tensor;
    /// // The book's X = torch.ones((6, 8)); X[:, 2:6] = 0
    /// let mut x = Tensor::ones(&[6, 8])?;
    /// x.index_put_((.., 2..6), 0.0)?;
    /// assert_eq!(x.index(0)?.data(), &[1., 1., 0., 0., 0., 0., 1., 1.]);
    /// assert_eq!(x.index((1..3, ..))?.shape(), &[2, 8]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    ///
    /// # Errors
    /// More entries than dimensions, a position out of bounds, a step of 0.
    pub fn index(&self, spec: impl IndexSpec) -> Result<Tensor> {
        let view = index_view("index", &self.shape, &spec.into_indices())?;
        Ok(self.gather_view(&view))
    }

    /// Write `value` (a number, or a tensor broadcasting to the region) into
    /// the positions `spec` selects: PyTorch's `x[spec] = value`.
    ///
    /// ```
    /// use convlab::Tensor;
    /// let mut x = Tensor::zeros(&[2, 3])?;
    /// x.index_put_((.., 1..), &Tensor::from_rows(&[[1.0, 2.0]])?)?;
    /// assert_eq!(x.data(), &[0., 1., 2., 0., 1., 2.]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::index`], and a value that does not broadcast to the region.
    pub fn index_put_<'a>(
        &mut self,
        spec: impl IndexSpec,
        value: impl Into<PutValue<'a>>,
    ) -> Result<()> {
        let view = index_view("index_put_", &self.shape, &spec.into_indices())?;
        let values = region_values("index_put_", &view.shape, value.into())?;
        view.scatter(&mut self.data, &values);
        Ok(())
    }

    /// Set every value to `value` (PyTorch's `fill_`).
    pub fn fill_(&mut self, value: f32) {
        self.data.fill(value);
    }

    /// `length` positions of dimension `dim` from `start` (negative counts
    /// from the end), PyTorch's `narrow`; the dimension is kept.
    ///
    /// # Errors
    /// A `dim` out of range, a `start` out of bounds, `start + length` past
    /// the end.
    pub fn narrow(&self, dim: impl IntoDim, start: impl IntoDim, length: usize) -> Result<Tensor> {
        let spec = narrow_spec("narrow", &self.shape, dim, start, length)?;
        let view = index_view("narrow", &self.shape, &spec)?;
        Ok(self.gather_view(&view))
    }

    /// A slice of one dimension: `x.slice(1, 2..6)` is PyTorch's
    /// `x[:, 2:6]`; any range, or a [`Slice`] with a step.
    ///
    /// # Errors
    /// A `dim` out of range, a step of 0.
    pub fn slice(&self, dim: impl IntoDim, slice: impl Into<Slice>) -> Result<Tensor> {
        let spec = slice_spec("slice", &self.shape, dim, slice.into())?;
        let view = index_view("slice", &self.shape, &spec)?;
        Ok(self.gather_view(&view))
    }

    /// The positions `indices` of dimension `dim`, in that order (repeats
    /// allowed), PyTorch's `index_select`.
    ///
    /// ```
    /// use convlab::Tensor;
    /// let x = Tensor::arange(6.0)?.reshape(&[2, 3])?;
    /// assert_eq!(x.index_select(1, &[2, 0])?.data(), &[2., 0., 5., 3.]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    ///
    /// # Errors
    /// A `dim` out of range, an index past the dimension's size.
    pub fn index_select(&self, dim: impl IntoDim, indices: &[usize]) -> Result<Tensor> {
        let op = "index_select";
        let dim = resolve_dim(op, dim, &self.shape)?;
        if self.shape.is_empty() {
            return Err(Error::shape(op, "cannot be applied to a 0-dim tensor"));
        }
        let size = self.shape[dim];
        if let Some(&bad) = indices.iter().find(|&&i| i >= size) {
            return Err(Error::param(
                op,
                "index",
                format!(
                    "{bad} is out of bounds for dimension {dim} with size {size} (shape {})",
                    Dims(&self.shape)
                ),
            ));
        }
        let mut shape = self.shape.clone();
        shape[dim] = indices.len();
        let n = crate::error::numel_or_err(op, &shape)?;
        memory::check_f32(op, n)?;
        let mut data = Vec::with_capacity(n);
        if n > 0 {
            let (outer, _, inner) = super::dim::split_at_dim(&self.shape, dim);
            for o in 0..outer {
                for &i in indices {
                    let at = (o * size + i) * inner;
                    data.extend_from_slice(&self.data[at..at + inner]);
                }
            }
        }
        Tensor::from_vec(data, &shape)
    }

    /// The adjoint of [`Tensor::index_select`]: `grad` (the selection's
    /// shape) added into zeros of `shape` at the selected positions.
    pub(crate) fn index_select_backward(
        grad: &Tensor,
        shape: &[usize],
        dim: usize,
        indices: &[usize],
    ) -> Result<Tensor> {
        let mut out = Tensor::zeros(shape)?;
        if grad.numel() == 0 || out.numel() == 0 {
            return Ok(out);
        }
        let (outer, size, inner) = super::dim::split_at_dim(shape, dim);
        let mut src = grad.data.chunks_exact(inner);
        for o in 0..outer {
            for &i in indices {
                let at = (o * size + i) * inner;
                if let Some(row) = src.next() {
                    out.data[at..at + inner]
                        .iter_mut()
                        .zip(row)
                        .for_each(|(d, s)| *d += s);
                }
            }
        }
        Ok(out)
    }

    /// The values of `view` (which lies inside `self`) as a new tensor.
    pub(crate) fn gather_view(&self, view: &View) -> Tensor {
        Tensor {
            shape: view.shape.clone(),
            data: view.gather(&self.data),
        }
    }
}

/// The index entries of `narrow(dim, start, length)`.
pub(crate) fn narrow_spec(
    op: &'static str,
    shape: &[usize],
    dim: impl IntoDim,
    start: impl IntoDim,
    length: usize,
) -> Result<Vec<Idx>> {
    let d = resolve_dim(op, dim, shape)?;
    if shape.is_empty() {
        return Err(Error::shape(op, "cannot be applied to a 0-dim tensor"));
    }
    let size = shape[d];
    // `start == size` is allowed (an empty slice at the end), as in PyTorch.
    let start = match start.to_i128() {
        s if s == size as i128 => size,
        s => resolve_position(op, s, d, size).map_err(|_| {
            Error::param(
                op,
                "start",
                format!(
                    "{s} is out of range for dimension {d} of shape {}",
                    Dims(shape)
                ),
            )
        })?,
    };
    if length > size - start {
        return Err(Error::param(
            op,
            "length",
            format!(
                "start ({start}) + length ({length}) exceeds dimension {d} of size {size} (shape {})",
                Dims(shape)
            ),
        ));
    }
    Ok(slice_entries(
        d,
        Slice {
            start: Some(start as i128),
            end: Some((start + length) as i128),
            step: 1,
        },
    ))
}

/// The index entries of `slice(dim, slice)`.
pub(crate) fn slice_spec(
    op: &'static str,
    shape: &[usize],
    dim: impl IntoDim,
    slice: Slice,
) -> Result<Vec<Idx>> {
    let d = resolve_dim(op, dim, shape)?;
    if shape.is_empty() {
        return Err(Error::shape(op, "cannot be applied to a 0-dim tensor"));
    }
    Ok(slice_entries(d, slice))
}

fn slice_entries(dim: usize, slice: Slice) -> Vec<Idx> {
    let mut spec = vec![Idx::Slice(Slice::full()); dim];
    spec.push(Idx::Slice(slice));
    spec
}

/// `value` broadcast to a region of `shape`, row-major.
pub(crate) fn region_values(
    op: &'static str,
    shape: &[usize],
    value: PutValue<'_>,
) -> Result<Vec<f32>> {
    let n = crate::error::numel_or_err(op, shape)?;
    match value {
        PutValue::Scalar(v) => Ok(vec![v; n]),
        PutValue::Tensor(t) => {
            let full = broadcast_shape(op, shape, &t.shape)?;
            if full != shape {
                return Err(Error::shape(
                    op,
                    format!(
                        "shape mismatch: value tensor of shape {} cannot be broadcast to indexing result of shape {}",
                        Dims(&t.shape),
                        Dims(shape)
                    ),
                ));
            }
            Ok(t.broadcast_view(shape).gather(&t.data))
        }
    }
}
