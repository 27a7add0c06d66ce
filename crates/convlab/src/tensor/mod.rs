//! The f32 tensor: a row-major buffer and a shape, of any rank.
//!
//! Tensors are plain values (cloning copies the data). Every constructor and
//! operation whose result size depends on its input returns a [`Result`], so a
//! wrong shape or an impossible size is an error, never a panic.
//!
//! ```
//! use convlab::Tensor;
//! let x = Tensor::arange(4.0)?.reshape(&[2, 2])?;
//! assert_eq!(x.to_string(), "tensor([[0., 1.],\n        [2., 3.]])");
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! Beside the constructors and elementwise arithmetic: indexing and slice
//! assignment ([`Tensor::index`] lists the forms: `x.index_put_((.., 2..6),
//! 0.0)?` is the book's `X[:, 2:6] = 0`), moving dimensions ([`Tensor::permute`],
//! [`Tensor::transpose`], [`Tensor::unsqueeze`], [`Tensor::flatten`], ...),
//! reductions along a dimension ([`Tensor::argmax`], [`Tensor::max_dim`],
//! [`Tensor::softmax`], ...) and operators. Dimensions are [`IntoDim`]: `-1`
//! is the last, as in PyTorch. [`crate::autograd::Var`] has the same ops,
//! with their gradients.
//!
//! # Operators
//!
//! `+ - * /` between two tensors broadcast as [`Tensor::add`] does and
//! return `Result<Tensor>`, as the methods do: shapes that do not broadcast
//! are an error value, never a panic, and `?` takes the tensor out. The
//! `Result` may stay on either side of the next operator, so a chain needs
//! one `?`; Rust's orphan rule leaves out `Result` with `Result` (`(&a *
//! &b)? + (&c * &d)`) and `Result` with a number. With an `f32` on either
//! side an operator cannot fail and returns a `Tensor`; so do unary `-` and
//! `+= -= *= /=` by an `f32`. `Var` has the same operators, recorded in the
//! graph.
//!
//! ```
//! use convlab::Tensor;
//! let x = Tensor::from_rows(&[[1.0, 2.0], [3.0, 4.0]])?;
//! let b = Tensor::from_slice(&[10.0, 20.0], &[2])?;
//! let y = (&x * 2.0 + &b - &x)?;            // [[11, 22], [13, 24]]
//! assert_eq!(y.data(), &[11., 22., 13., 24.]);
//! assert_eq!((-&x).data(), &[-1., -2., -3., -4.]);
//! assert!((&x + &Tensor::zeros(&[3])?).is_err()); // [2, 2] and [3]
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{checked_numel, numel_or_err, Dims, Error, Result};
use crate::kernels;
use crate::memory;
use rand::Rng;

mod arith;
pub(crate) mod dim;
pub(crate) mod index;
mod indices;
pub(crate) mod layout;
mod print;
pub(crate) mod reduce;
pub(crate) mod view;

pub use dim::IntoDim;
pub use index::{Idx, IndexSpec, PutValue, Slice};
pub use indices::IndexTensor;
pub use print::format_tensor;

/// An f32 tensor, row-major (C order), of any rank (rank 0 is a scalar).
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// The seeded random generator convlab uses everywhere (ChaCha8: portable,
/// reproducible across platforms, and its state can be saved).
pub type Rng64 = rand_chacha::ChaCha8Rng;

/// A [`Rng64`] seeded with `seed`.
pub fn seeded_rng(seed: u64) -> Rng64 {
    use rand::SeedableRng;
    Rng64::seed_from_u64(seed)
}

impl Tensor {
    /// A tensor owning `data` with `shape`; errors when the sizes differ.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        let n = numel_or_err("tensor", shape)?;
        if n != data.len() {
            return Err(Error::shape(
                "tensor",
                format!(
                    "shape {} needs {n} values but {} were given",
                    Dims(shape),
                    data.len()
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor copied from `data` with `shape`.
    pub fn from_slice(data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor holding `v`.
    pub fn scalar(v: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![v],
        }
    }

    /// A matrix from rows of equal length.
    ///
    /// ```
    /// let k = convlab::Tensor::from_rows(&[[1.0, -1.0]])?;
    /// assert_eq!(k.shape(), &[1, 2]);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Tensor> {
        let h = rows.len();
        let w = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(h * w);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != w {
                return Err(Error::shape(
                    "tensor",
                    format!("row {i} has {} values but row 0 has {w}", r.len()),
                ));
            }
            data.extend_from_slice(r);
        }
        Tensor::from_vec(data, &[h, w])
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Result<Tensor> {
        let n = numel_or_err("tensor", shape)?;
        memory::check_f32("tensor", n)?;
        Ok(Tensor {
            shape: shape.to_vec(),
            data: vec![value; n],
        })
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: &[usize]) -> Result<Tensor> {
        Tensor::full(shape, 0.0)
    }

    /// Ones of `shape`.
    pub fn ones(shape: &[usize]) -> Result<Tensor> {
        Tensor::full(shape, 1.0)
    }

    /// `[0, 1, ..., end-1]` as a 1-D tensor, like `torch.arange(end)`.
    pub fn arange(end: f32) -> Result<Tensor> {
        Tensor::arange_step(0.0, end, 1.0)
    }

    /// `torch.arange(start, end, step)`.
    pub fn arange_step(start: f32, end: f32, step: f32) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::param(
                "arange",
                "step",
                format!("{step} must be finite and non-zero (start {start}, end {end})"),
            ));
        }
        let n = ((end - start) / step).ceil().max(0.0);
        if n > (usize::MAX / 8) as f32 {
            return Err(Error::too_large("arange", format!("{n} values")));
        }
        let n = n as usize;
        memory::check_f32("arange", n)?;
        let data = (0..n).map(|i| start + i as f32 * step).collect();
        Ok(Tensor {
            shape: vec![n],
            data,
        })
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize) -> Result<Tensor> {
        let mut t = Tensor::zeros(&[n, n])?;
        for i in 0..n {
            t.data[i * n + i] = 1.0;
        }
        Ok(t)
    }

    /// Uniform values in `[0, 1)` from `rng`, like `torch.rand`.
    pub fn rand(shape: &[usize], rng: &mut impl Rng) -> Result<Tensor> {
        let mut t = Tensor::zeros(shape)?;
        t.data.iter_mut().for_each(|v| *v = rng.gen::<f32>());
        Ok(t)
    }

    /// Uniform values in `[low, high)` from `rng`.
    pub fn uniform(shape: &[usize], low: f32, high: f32, rng: &mut impl Rng) -> Result<Tensor> {
        let mut t = Tensor::zeros(shape)?;
        t.data
            .iter_mut()
            .for_each(|v| *v = low + (high - low) * rng.gen::<f32>());
        Ok(t)
    }

    /// Standard normal values from `rng` (Box-Muller), like `torch.randn`.
    pub fn randn(shape: &[usize], rng: &mut impl Rng) -> Result<Tensor> {
        let mut t = Tensor::zeros(shape)?;
        for pair in t.data.chunks_mut(2) {
            let u1: f64 = 1.0 - rng.gen::<f64>();
            let u2: f64 = rng.gen::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let th = 2.0 * std::f64::consts::PI * u2;
            pair[0] = (r * th.cos()) as f32;
            if pair.len() > 1 {
                pair[1] = (r * th.sin()) as f32;
            }
        }
        Ok(t)
    }

    /// The shape, e.g. `[n, c, h, w]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The rank (number of dimensions).
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values, consuming the tensor.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.data.len() != 1 {
            return Err(Error::shape(
                "item",
                format!(
                    "a tensor of shape {} has {} values, not one",
                    Dims(&self.shape),
                    self.data.len()
                ),
            ));
        }
        Ok(self.data[0])
    }

    /// The value at a multi-index.
    pub fn get(&self, index: &[usize]) -> Result<f32> {
        if index.len() != self.shape.len() || index.iter().zip(&self.shape).any(|(i, d)| i >= d) {
            return Err(Error::shape(
                "get",
                format!(
                    "index {} is out of bounds for shape {}",
                    Dims(index),
                    Dims(&self.shape)
                ),
            ));
        }
        let mut off = 0;
        for (i, d) in index.iter().zip(&self.shape) {
            off = off * d + i;
        }
        Ok(self.data[off])
    }

    /// The same values with a new shape of the same size. One dimension may be
    /// given as `usize::MAX` to be inferred, like `-1` in PyTorch.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let shape = infer_shape("reshape", &self.shape, shape)?;
        Ok(Tensor {
            shape,
            data: self.data.clone(),
        })
    }

    /// Consuming reshape (no copy).
    pub fn into_shape(self, shape: &[usize]) -> Result<Tensor> {
        let shape = infer_shape("reshape", &self.shape, shape)?;
        Ok(Tensor {
            shape,
            data: self.data,
        })
    }

    /// The transpose of a matrix, like `X.t()`.
    pub fn t(&self) -> Result<Tensor> {
        let [h, w] = self.dims2("t")?;
        let mut out = vec![0.0; h * w];
        for i in 0..h {
            for j in 0..w {
                out[j * h + i] = self.data[i * w + j];
            }
        }
        Tensor::from_vec(out, &[w, h])
    }

    /// The shape as `[h, w]`, or an error naming `op` when the rank is not 2.
    pub fn dims2(&self, op: &'static str) -> Result<[usize; 2]> {
        match self.shape[..] {
            [h, w] => Ok([h, w]),
            _ => Err(Error::shape(
                op,
                format!("expected a 2-D matrix but got shape {}", Dims(&self.shape)),
            )),
        }
    }

    /// The shape as `[n, c, h, w]`, or an error naming `op` when the rank is not 4.
    pub fn dims4(&self, op: &'static str, what: &str) -> Result<[usize; 4]> {
        match self.shape[..] {
            [n, c, h, w] => Ok([n, c, h, w]),
            _ => Err(Error::shape(
                op,
                format!(
                    "{what} must be 4-D (N, C, H, W) but has shape {}",
                    Dims(&self.shape)
                ),
            )),
        }
    }

    /// Elementwise `f(x)`.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Tensor {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&x| f(x)).collect(),
        }
    }

    /// Elementwise `x * s`.
    pub fn scale(&self, s: f32) -> Tensor {
        self.map(|x| x * s)
    }

    /// Elementwise `self + other`, broadcasting as PyTorch does.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_broadcast("add", other, |a, b| a + b)
    }

    /// Elementwise `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_broadcast("sub", other, |a, b| a - b)
    }

    /// Elementwise `self * other`, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_broadcast("mul", other, |a, b| a * b)
    }

    /// Elementwise `self / other`, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_broadcast("div", other, |a, b| a / b)
    }

    /// `self += other` for equal shapes (the gradient accumulator's fast path).
    pub fn add_assign(&mut self, other: &Tensor) -> Result<()> {
        if self.shape != other.shape {
            return Err(Error::shape(
                "add_",
                format!(
                    "shapes {} and {} differ",
                    Dims(&self.shape),
                    Dims(&other.shape)
                ),
            ));
        }
        self.data
            .iter_mut()
            .zip(&other.data)
            .for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Elementwise binary op with NumPy/PyTorch broadcasting.
    pub fn zip_broadcast(
        &self,
        op: &'static str,
        other: &Tensor,
        f: impl Fn(f32, f32) -> f32,
    ) -> Result<Tensor> {
        if self.shape == other.shape {
            let data = self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect();
            return Ok(Tensor {
                shape: self.shape.clone(),
                data,
            });
        }
        let shape = broadcast_shape(op, &self.shape, &other.shape)?;
        let n = numel_or_err(op, &shape)?;
        memory::check_f32(op, n)?;
        let sa = broadcast_strides(&self.shape, &shape);
        let sb = broadcast_strides(&other.shape, &shape);
        let mut data = Vec::with_capacity(n);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            let (mut oa, mut ob) = (0, 0);
            for d in 0..shape.len() {
                oa += idx[d] * sa[d];
                ob += idx[d] * sb[d];
            }
            data.push(f(self.data[oa], other.data[ob]));
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(Tensor { shape, data })
    }

    /// Sum over `self`'s broadcast dimensions so the result has `shape`
    /// (the adjoint of broadcasting, used by autograd).
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape == shape {
            return Ok(self.clone());
        }
        let full = broadcast_shape("sum_to_shape", shape, &self.shape)?;
        if full != self.shape {
            return Err(Error::shape(
                "sum_to_shape",
                format!(
                    "{} does not broadcast to {}",
                    Dims(shape),
                    Dims(&self.shape)
                ),
            ));
        }
        let strides = broadcast_strides(shape, &self.shape);
        let mut out = Tensor::zeros(shape)?;
        let mut idx = vec![0usize; self.shape.len()];
        for &v in &self.data {
            let mut o = 0;
            for d in 0..idx.len() {
                o += idx[d] * strides[d];
            }
            out.data[o] += v;
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < self.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(out)
    }

    /// The sum of all values as a rank-0 tensor (accumulated in f64).
    pub fn sum(&self) -> Tensor {
        Tensor::scalar(self.data.iter().map(|&v| v as f64).sum::<f64>() as f32)
    }

    /// The mean of all values as a rank-0 tensor (NaN for an empty tensor, as PyTorch).
    pub fn mean(&self) -> Tensor {
        let s: f64 = self.data.iter().map(|&v| v as f64).sum();
        Tensor::scalar((s / self.data.len() as f64) as f32)
    }

    /// Sum over dimension `dim`, keeping it with size 1 when `keepdim`.
    pub fn sum_dim(&self, dim: usize, keepdim: bool) -> Result<Tensor> {
        if dim >= self.shape.len() {
            return Err(Error::param(
                "sum",
                "dim",
                format!("{dim} is out of range for shape {}", Dims(&self.shape)),
            ));
        }
        let mut shape = self.shape.clone();
        if keepdim {
            shape[dim] = 1;
        } else {
            shape.remove(dim);
        }
        // Summing away a zero dimension leaves zeros whose count may be
        // huge ([0, usize::MAX] over dim 0): checked, not computed as the
        // input's products.
        let mut out = memory::zeros_f32("sum", numel_or_err("sum", &shape)?)?;
        if self.data.is_empty() {
            return Tensor::from_vec(out, &shape);
        }
        // Every dimension is non-zero now: these products are at most numel.
        let outer: usize = self.shape[..dim].iter().product();
        let len = self.shape[dim];
        let inner: usize = self.shape[dim + 1..].iter().product();
        for o in 0..outer {
            for k in 0..len {
                let src = &self.data[(o * len + k) * inner..(o * len + k + 1) * inner];
                let dst = &mut out[o * inner..(o + 1) * inner];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
        Tensor::from_vec(out, &shape)
    }

    /// Matrix product of 2-D tensors (`[m, k] @ [k, n]`), or batched 3-D
    /// tensors (`[b, m, k] @ [b, k, n]`).
    ///
    /// ```
    /// use convlab::Tensor;
    /// let a = Tensor::from_rows(&[[1.0, 2.0], [3.0, 4.0]])?;
    /// assert_eq!(a.matmul(&Tensor::eye(2)?)?, a);
    /// # Ok::<(), convlab::Error>(())
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        let mismatch = || {
            Error::shape(
                "matmul",
                format!(
                    "shapes {} and {} cannot be multiplied",
                    Dims(&self.shape),
                    Dims(&other.shape)
                ),
            )
        };
        let (b, m, k, n) = match (&self.shape[..], &other.shape[..]) {
            ([m, k], [k2, n]) if k == k2 => (1, *m, *k, *n),
            ([b, m, k], [b2, k2, n]) if k == k2 && b == b2 => (*b, *m, *k, *n),
            _ => return Err(mismatch()),
        };
        let total = numel_or_err("matmul", &[b, m, n])?;
        let mut out = memory::zeros_f32("matmul", total)?;
        for i in 0..b {
            kernels::gemm::sgemm(
                m,
                k,
                n,
                &self.data[i * m * k..(i + 1) * m * k],
                kernels::gemm::Layout::RowMajor,
                &other.data[i * k * n..(i + 1) * k * n],
                kernels::gemm::Layout::RowMajor,
                &mut out[i * m * n..(i + 1) * m * n],
                false,
            );
        }
        let shape: Vec<usize> = if self.shape.len() == 2 {
            vec![m, n]
        } else {
            vec![b, m, n]
        };
        Tensor::from_vec(out, &shape)
    }

    /// Stack equal-shaped tensors along a new dimension `dim` (`-1`: a new
    /// last dimension), like `torch.stack`.
    pub fn stack(tensors: &[&Tensor], dim: impl IntoDim) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape("stack", "expects at least one tensor"))?;
        let dim = dim::resolve_dim_in("stack", "dim", dim, &first.shape, first.ndim() + 1)?;
        let unsq: Vec<Tensor> = tensors
            .iter()
            .map(|t| {
                let mut s = t.shape.clone();
                s.insert(dim.min(s.len()), 1);
                Tensor::from_vec(t.data.clone(), &s)
            })
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = unsq.iter().collect();
        Tensor::cat(&refs, dim)
    }

    /// Concatenate tensors along an existing dimension `dim` (negative
    /// counts from the end), like `torch.cat`.
    pub fn cat(tensors: &[&Tensor], dim: impl IntoDim) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape("cat", "expects at least one tensor"))?;
        if first.ndim() == 0 {
            return Err(Error::shape(
                "cat",
                "zero-dimensional tensors cannot be concatenated",
            ));
        }
        let dim = dim::resolve_dim("cat", dim, &first.shape)?;
        let mut total = 0usize;
        for t in tensors {
            let same_rest = t.ndim() == first.ndim()
                && t.shape
                    .iter()
                    .zip(&first.shape)
                    .enumerate()
                    .all(|(d, (a, b))| d == dim || a == b);
            if !same_rest {
                return Err(Error::shape(
                    "cat",
                    format!(
                        "shapes {} and {} differ outside dim {dim}",
                        Dims(&first.shape),
                        Dims(&t.shape)
                    ),
                ));
            }
            total = total
                .checked_add(t.shape[dim])
                .ok_or_else(|| Error::too_large("cat", "size overflows"))?;
        }
        let mut shape = first.shape.clone();
        shape[dim] = total;
        let n = numel_or_err("cat", &shape)?;
        memory::check_f32("cat", n)?;
        if n == 0 {
            // The products below can overflow for a zero-size dimension.
            return Tensor::from_vec(Vec::new(), &shape);
        }
        let outer: usize = shape[..dim].iter().product();
        let inner: usize = shape[dim + 1..].iter().product();
        let mut data = Vec::with_capacity(n);
        for o in 0..outer {
            for t in tensors {
                let chunk = t.shape[dim] * inner;
                data.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
            }
        }
        Tensor::from_vec(data, &shape)
    }

    /// The largest absolute elementwise difference (NaN where either is NaN).
    pub fn max_abs_diff(&self, other: &Tensor) -> Result<f32> {
        if self.shape != other.shape {
            return Err(Error::shape(
                "max_abs_diff",
                format!(
                    "shapes {} and {} differ",
                    Dims(&self.shape),
                    Dims(&other.shape)
                ),
            ));
        }
        let mut m = 0.0f32;
        for (a, b) in self.data.iter().zip(&other.data) {
            let d = (a - b).abs();
            if d.is_nan() {
                return Ok(f32::NAN);
            }
            m = m.max(d);
        }
        Ok(m)
    }

    /// `|self - other| <= atol + rtol * |other|` everywhere, like `torch.allclose`.
    pub fn allclose(&self, other: &Tensor, rtol: f32, atol: f32) -> bool {
        self.shape == other.shape
            && self
                .data
                .iter()
                .zip(&other.data)
                .all(|(a, b)| (a - b).abs() <= atol + rtol * b.abs())
    }

    /// A copy as an `ndarray` array of the same shape.
    pub fn to_ndarray(&self) -> ndarray::ArrayD<f32> {
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&self.shape), self.data.clone())
            .expect("a tensor's shape always matches its data")
    }

    /// A tensor copied from any `ndarray` array (any memory layout).
    pub fn from_ndarray<S, D>(a: &ndarray::ArrayBase<S, D>) -> Tensor
    where
        S: ndarray::Data<Elem = f32>,
        D: ndarray::Dimension,
    {
        Tensor {
            shape: a.shape().to_vec(),
            data: a.iter().copied().collect(),
        }
    }
}

impl From<ndarray::ArrayD<f32>> for Tensor {
    fn from(a: ndarray::ArrayD<f32>) -> Tensor {
        Tensor::from_ndarray(&a)
    }
}

impl From<&Tensor> for ndarray::ArrayD<f32> {
    fn from(t: &Tensor) -> Self {
        t.to_ndarray()
    }
}

/// The broadcast of two shapes, PyTorch's rules (align right, 1 stretches).
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let db = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(
                    op,
                    format!(
                        "shapes {} and {} do not broadcast (dimension {i}: {da} vs {db})",
                        Dims(a),
                        Dims(b)
                    ),
                ))
            }
        };
    }
    Ok(out)
}

/// Strides for reading `shape` as if broadcast to `target` (0 on stretched dims).
fn broadcast_strides(shape: &[usize], target: &[usize]) -> Vec<usize> {
    let off = target.len() - shape.len();
    let mut strides = vec![0; target.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        strides[i + off] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

fn infer_shape(op: &'static str, from: &[usize], to: &[usize]) -> Result<Vec<usize>> {
    let n = checked_numel(from).unwrap_or(usize::MAX);
    let unknown: Vec<usize> = (0..to.len()).filter(|&i| to[i] == usize::MAX).collect();
    let mut shape = to.to_vec();
    let bad = || {
        let shown: Vec<String> = to
            .iter()
            .map(|&d| {
                if d == usize::MAX {
                    "-1".into()
                } else {
                    d.to_string()
                }
            })
            .collect();
        Error::shape(
            op,
            format!(
                "shape [{}] is invalid for input of size {n} (shape {})",
                shown.join(", "),
                Dims(from)
            ),
        )
    };
    match unknown.len() {
        0 => {}
        1 => {
            let known: usize = to
                .iter()
                .filter(|&&d| d != usize::MAX)
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(bad)?;
            if known == 0 || n % known != 0 {
                return Err(bad());
            }
            shape[unknown[0]] = n / known;
        }
        _ => return Err(bad()),
    }
    if checked_numel(&shape) != Some(n) {
        return Err(bad());
    }
    Ok(shape)
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&print::format_tensor(self, ""))
    }
}
