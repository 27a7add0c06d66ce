//! Integer results (PyTorch's int64 tensors): the positions `argmax`,
//! `argmin`, `max_dim` and `min_dim` return.

use super::print::format_indices;
use super::Tensor;
use crate::error::{Dims, Error, Result};

/// Positions with a shape, as PyTorch's `argmax` returns an int64 tensor.
/// `data()` is row-major, so it compares directly with a label slice.
///
/// ```
/// use convlab::Tensor;
/// let logits = Tensor::from_rows(&[[0.1, 2.0, -1.0], [3.0, 0.0, 3.0]])?;
/// let pred = logits.argmax(1, false)?;
/// assert_eq!(pred.data(), &[1, 0]); // ties: the first, as PyTorch
/// assert_eq!(pred.to_string(), "tensor([1, 0])");
/// let correct = pred.data().iter().zip(&[1, 2]).filter(|(p, y)| p == y).count();
/// assert_eq!(correct, 1);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct IndexTensor {
    shape: Vec<usize>,
    data: Vec<usize>,
}

impl IndexTensor {
    /// Indices `data` with `shape`; errors when the sizes differ.
    pub fn from_vec(data: Vec<usize>, shape: &[usize]) -> Result<IndexTensor> {
        let n = crate::error::numel_or_err("index tensor", shape)?;
        if n != data.len() {
            return Err(Error::shape(
                "index tensor",
                format!(
                    "shape {} needs {n} values but {} were given",
                    Dims(shape),
                    data.len()
                ),
            ));
        }
        Ok(IndexTensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The values, row-major.
    pub fn data(&self) -> &[usize] {
        &self.data
    }

    /// The values, consuming the tensor.
    pub fn into_vec(self) -> Vec<usize> {
        self.data
    }

    /// The value of a one-element index tensor (PyTorch's `.item()`).
    pub fn item(&self) -> Result<usize> {
        match self.data[..] {
            [v] => Ok(v),
            _ => Err(Error::shape(
                "item",
                format!(
                    "a tensor of shape {} has {} values, not one",
                    Dims(&self.shape),
                    self.data.len()
                ),
            )),
        }
    }

    /// The indices as f32 values (PyTorch's `.float()`; exact below 2^24).
    pub fn to_tensor(&self) -> Tensor {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&i| i as f32).collect(),
        }
    }
}

impl std::fmt::Display for IndexTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_indices(&self.shape, &self.data))
    }
}

impl std::fmt::Debug for IndexTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings printed by PyTorch 2.x for int64 tensors of the same values.
    #[test]
    fn prints_as_int64() {
        let t = |d: Vec<usize>, s: &[usize]| IndexTensor::from_vec(d, s).unwrap().to_string();
        assert_eq!(t(vec![2, 0, 11], &[3]), "tensor([ 2,  0, 11])");
        assert_eq!(t(vec![3], &[]), "tensor(3)");
        assert_eq!(
            t(vec![0, 1, 2, 3], &[2, 2]),
            "tensor([[0, 1],\n        [2, 3]])"
        );
        assert_eq!(t(vec![], &[0]), "tensor([], dtype=torch.int64)");
        assert_eq!(
            t(vec![], &[2, 0]),
            "tensor([], size=(2, 0), dtype=torch.int64)"
        );
        let big: Vec<usize> = (0..2000).collect();
        assert_eq!(
            t(big, &[2000]),
            "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"
        );
    }

    #[test]
    fn item_and_sizes() {
        assert_eq!(IndexTensor::from_vec(vec![4], &[1]).unwrap().item(), Ok(4));
        assert!(IndexTensor::from_vec(vec![4, 5], &[2])
            .unwrap()
            .item()
            .is_err());
        assert!(IndexTensor::from_vec(vec![4], &[2]).is_err());
    }
}
