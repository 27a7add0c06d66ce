//! Dimension and position arguments as PyTorch reads them: `-1` is the last.
//!
//! Every tensor op that takes a dimension takes `impl IntoDim`, so both
//! `x.softmax(1)` and `x.softmax(-1)` read as in PyTorch, and a `usize`
//! computed by the caller passes unchanged.

use crate::error::{Dims, Error, Result};

/// An integer naming a dimension (or a position along one); negative values
/// count from the end, as in PyTorch. Implemented for `usize`, `isize`,
/// `i32` and `i64`; an integer literal is an `i32`.
pub trait IntoDim: Copy {
    /// The value as an `i128`, which holds every `usize` and `i64` exactly.
    fn to_i128(self) -> i128;
}

macro_rules! into_dim {
    ($($t:ty),*) => {$(
        impl IntoDim for $t {
            fn to_i128(self) -> i128 {
                self as i128
            }
        }
    )*};
}
into_dim!(usize, isize, i32, i64);

/// `dim` resolved for a tensor of `shape` (valid: `-ndim..ndim`; a rank-0
/// tensor accepts `0` and `-1`, as PyTorch does).
pub(crate) fn resolve_dim(op: &'static str, dim: impl IntoDim, shape: &[usize]) -> Result<usize> {
    resolve_dim_in(op, "dim", dim, shape, shape.len().max(1))
}

/// `dim` resolved against `rank` positions (`unsqueeze` and `stack` insert a
/// dimension, so they accept one more than the tensor has).
pub(crate) fn resolve_dim_in(
    op: &'static str,
    param: &'static str,
    dim: impl IntoDim,
    shape: &[usize],
    rank: usize,
) -> Result<usize> {
    let d = dim.to_i128();
    let r = rank as i128;
    let resolved = if d < 0 { d + r } else { d };
    if (0..r).contains(&resolved) {
        return Ok(resolved as usize);
    }
    Err(Error::param(
        op,
        param,
        format!(
            "{d} is out of range for shape {} (expected to be in range of [{}, {}])",
            Dims(shape),
            -r,
            r - 1
        ),
    ))
}

/// Position `index` along a dimension of `size` (valid: `-size..size`).
pub(crate) fn resolve_position(
    op: &'static str,
    index: i128,
    dim: usize,
    size: usize,
) -> Result<usize> {
    let s = size as i128;
    let resolved = if index < 0 { index + s } else { index };
    if (0..s).contains(&resolved) {
        return Ok(resolved as usize);
    }
    Err(Error::param(
        op,
        "index",
        format!("{index} is out of bounds for dimension {dim} with size {size}"),
    ))
}

/// `(outer, len, inner)`: the products of the dimensions before `dim`, its
/// size, and the product after it. For a tensor with elements only (with a
/// zero-size dimension the products can overflow; callers return early).
pub(crate) fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    debug_assert!(shape.iter().all(|&d| d > 0));
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

/// Row-major strides of `shape`. Saturating: only a zero-element shape can
/// overflow, and no element of one is ever addressed.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut s = 1usize;
    for d in (0..shape.len()).rev() {
        strides[d] = s;
        s = s.saturating_mul(shape[d]);
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_dims_count_from_the_end() {
        assert_eq!(resolve_dim("t", -1, &[2, 3]).unwrap(), 1);
        assert_eq!(resolve_dim("t", -2, &[2, 3]).unwrap(), 0);
        assert_eq!(resolve_dim("t", 1usize, &[2, 3]).unwrap(), 1);
        assert_eq!(resolve_dim("t", 0, &[]).unwrap(), 0);
        assert_eq!(resolve_dim("t", -1, &[]).unwrap(), 0);
        let e = resolve_dim("softmax", 2, &[2, 3]).unwrap_err().to_string();
        assert_eq!(
            e,
            "softmax: dim 2 is out of range for shape [2, 3] (expected to be in range of [-2, 1])"
        );
        assert!(resolve_dim("t", -3, &[2, 3]).is_err());
        assert!(resolve_dim("t", usize::MAX, &[2, 3]).is_err());
        assert!(resolve_dim("t", i64::MIN, &[2, 3]).is_err());
    }

    #[test]
    fn positions() {
        assert_eq!(resolve_position("t", -1, 0, 4).unwrap(), 3);
        assert_eq!(
            resolve_position("index", 4, 1, 4).unwrap_err().to_string(),
            "index: index 4 is out of bounds for dimension 1 with size 4"
        );
        assert!(resolve_position("t", 0, 0, 0).is_err());
    }
}
