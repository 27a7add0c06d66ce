//! A tensor description from `data.pkl` made into a convlab tensor: its
//! storage record, sizes, strides and offset checked against each other
//! before anything is allocated, then the values gathered and converted to
//! f32 as the safetensors reader converts them.

use super::archive::Archive;
use super::bad;
use super::globals::dtype_name;
use super::pickle::{Storage, TensorView};
use crate::error::{Dims, Result};
use crate::io::dtype;
use crate::memory;
use crate::tensor::Tensor;

const OP: &str = "pth";

/// Builds the tensor `view` of `storage`. `held` counts the f32 values the
/// reader has allocated so far, so the memory limit bounds the whole state
/// dict and not only each tensor.
pub(super) fn materialize(
    archive: &mut Archive<'_>,
    storage: &Storage,
    view: &TensorView,
    held: &mut usize,
) -> Result<Tensor> {
    let elem = storage.elem;
    let dtype = dtype_name(elem);
    let esize = elem.size();
    let data = archive.storage(&storage.key)?;
    let declared = storage
        .numel
        .checked_mul(esize as u64)
        .filter(|&b| b == data.len() as u64)
        .ok_or_else(|| {
            bad(format!(
                "storage '{}' holds {} bytes, not the {} {dtype} values ({} bytes each) data.pkl declares",
                storage.key.escape_debug(),
                data.len(),
                storage.numel,
                esize
            ))
        })?;
    // `declared` equals the record's length, so every storage index below
    // fits in usize.
    let storage_numel = declared as usize / esize;

    let too_big = || {
        bad(format!(
            "size {} has more elements than fit in memory",
            U64s(&view.size)
        ))
    };
    let shape: Vec<usize> = view
        .size
        .iter()
        .map(|&s| usize::try_from(s).map_err(|_| too_big()))
        .collect::<Result<_>>()?;
    let numel = shape
        .iter()
        .try_fold(1usize, |n, &s| n.checked_mul(s))
        .ok_or_else(too_big)?;
    if numel == 0 {
        // No element is read, so PyTorch checks neither offset nor strides.
        return Tensor::from_vec(Vec::new(), &shape);
    }

    // The last element the view reads: offset + sum((size - 1) * stride).
    let last = view
        .size
        .iter()
        .zip(&view.stride)
        .try_fold(view.offset, |acc, (&n, &st)| {
            (n - 1).checked_mul(st).and_then(|x| acc.checked_add(x))
        });
    if last.is_none_or(|l| l >= storage_numel as u64) {
        return Err(bad(format!(
            "size {} with stride {} from storage offset {} reaches past the end of storage '{}' ({} {dtype} values)",
            Dims(&shape),
            U64s(&view.stride),
            view.offset,
            storage.key.escape_debug(),
            storage_numel
        )));
    }

    let grown = held.checked_add(numel).ok_or_else(too_big)?;
    memory::check_f32(OP, grown)?;
    let offset = view.offset as usize; // <= last < storage_numel
                                       // Dimensions of size 1 do not move through the storage; without them a
                                       // view with any element has at most 64 dimensions.
    let dims: Vec<(usize, usize)> = shape
        .iter()
        .zip(&view.stride)
        .filter(|(&n, _)| n > 1)
        .map(|(&n, &st)| (n, st as usize)) // st * (n - 1) <= last: fits
        .collect();
    let values = if is_contiguous(&dims) {
        let start = offset * esize;
        dtype::to_f32(
            OP,
            elem,
            archive.big_endian(),
            &data[start..start + numel * esize],
        )?
    } else {
        // The gathered bytes are held beside the values for a moment.
        memory::check_f32(OP, grown.saturating_add((numel * esize).div_ceil(4)))?;
        let bytes = gather(data, esize, offset, &dims, numel);
        dtype::to_f32(OP, elem, archive.big_endian(), &bytes)?
    };
    *held = grown;
    Tensor::from_vec(values, &shape)
}

/// Whether the strides are row-major for these sizes (dims of size 1 already
/// dropped).
fn is_contiguous(dims: &[(usize, usize)]) -> bool {
    let mut expected = 1usize;
    for &(n, st) in dims.iter().rev() {
        if st != expected {
            return false;
        }
        expected *= n;
    }
    true
}

/// The bytes of a strided view in row-major order: a saved `x.t()`, an
/// expanded (stride 0) tensor, a column of a matrix.
fn gather(
    data: &[u8],
    esize: usize,
    offset: usize,
    dims: &[(usize, usize)],
    numel: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(numel * esize);
    let mut index = vec![0usize; dims.len()];
    let mut pos = offset;
    'elements: loop {
        out.extend_from_slice(&data[pos * esize..(pos + 1) * esize]);
        // Odometer step from the last dimension; `pos` stays at most `last`
        // plus one stride, far from overflow.
        let mut d = dims.len();
        loop {
            if d == 0 {
                break 'elements;
            }
            d -= 1;
            let (n, st) = dims[d];
            index[d] += 1;
            pos += st;
            if index[d] < n {
                break;
            }
            index[d] = 0;
            pos -= st * n;
        }
    }
    out
}

/// A list of u64 for a message, like [`Dims`].
struct U64s<'a>(&'a [u64]);

impl std::fmt::Display for U64s<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_follows_strides() {
        // A 2x3 row-major matrix of bytes 0..6, read transposed (3x2).
        let data: Vec<u8> = (0..6).collect();
        assert_eq!(
            gather(&data, 1, 0, &[(3, 1), (2, 3)], 6),
            [0, 3, 1, 4, 2, 5]
        );
        // Stride 0: an expanded row.
        assert_eq!(gather(&data, 1, 1, &[(2, 0), (2, 1)], 4), [1, 2, 1, 2]);
        // Two-byte elements, a column from offset 1.
        assert_eq!(gather(&data, 2, 1, &[(2, 1)], 2), [2, 3, 4, 5]);
        assert!(is_contiguous(&[(2, 3), (3, 1)]));
        assert!(!is_contiguous(&[(3, 1), (2, 3)]));
        assert!(is_contiguous(&[]));
    }
}
