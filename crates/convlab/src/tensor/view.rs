//! Strided views of a row-major buffer: the one copy loop under slicing,
//! `permute`, `transpose` and `expand`.
//!
//! A view is an offset plus a shape and per-dimension strides into its
//! buffer (a stride of 0 repeats a value, as `expand` does). Views are read
//! into a new contiguous buffer ([`View::gather`]) or written through
//! ([`View::scatter`]); whole rows with stride 1 move as slices.

/// A strided window on a buffer. Built only by ops that have checked every
/// position it can address lies inside the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct View {
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

impl View {
    /// Elements the view covers (callers have checked it fits in memory).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The view's elements, row-major, as a new buffer.
    pub fn gather(&self, src: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.numel());
        self.for_each_row(|base, len, stride| {
            if stride == 1 {
                out.extend_from_slice(&src[base..base + len]);
            } else {
                out.extend((0..len).map(|k| src[base + k * stride]));
            }
        });
        out
    }

    /// Write `values` (row-major, the view's shape) into the view's
    /// positions of `dst`. Views made by indexing never address a position
    /// twice, so this is also the adjoint of [`View::gather`] on zeros.
    pub fn scatter(&self, dst: &mut [f32], values: &[f32]) {
        debug_assert_eq!(values.len(), self.numel());
        let mut next = 0;
        self.for_each_row(|base, len, stride| {
            let row = &values[next..next + len];
            next += len;
            if stride == 1 {
                dst[base..base + len].copy_from_slice(row);
            } else {
                for (k, &v) in row.iter().enumerate() {
                    dst[base + k * stride] = v;
                }
            }
        });
    }

    /// Calls `f(base, len, stride)` for every row along the last dimension,
    /// in row-major order (a rank-0 view is one row of one element). Nothing
    /// is called for an empty view.
    fn for_each_row(&self, mut f: impl FnMut(usize, usize, usize)) {
        let rank = self.shape.len();
        if self.shape.contains(&0) {
            return;
        }
        let (len, stride) = match rank {
            0 => (1, 0),
            _ => (self.shape[rank - 1], self.strides[rank - 1]),
        };
        let outer = rank.saturating_sub(1);
        let mut idx = vec![0usize; outer];
        let mut base = self.offset;
        loop {
            f(base, len, stride);
            // Odometer over the outer dimensions, moving `base` with it.
            let mut d = outer;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                base += self.strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                base -= self.strides[d] * self.shape[d];
                idx[d] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_transposed_and_repeated() {
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [[0,1,2],[3,4,5]]
        let t = View {
            offset: 0,
            shape: vec![3, 2],
            strides: vec![1, 3],
        };
        assert_eq!(t.gather(&src), [0., 3., 1., 4., 2., 5.]);
        let rep = View {
            offset: 1,
            shape: vec![2, 2],
            strides: vec![0, 3],
        };
        assert_eq!(rep.gather(&src), [1., 4., 1., 4.]);
        let scalar = View {
            offset: 5,
            shape: vec![],
            strides: vec![],
        };
        assert_eq!(scalar.gather(&src), [5.]);
        let empty = View {
            offset: 0,
            shape: vec![2, 0],
            strides: vec![3, 1],
        };
        assert!(empty.gather(&src).is_empty());
    }

    #[test]
    fn scatter_writes_rows_and_strides() {
        let mut dst = vec![0.0f32; 6];
        let cols = View {
            offset: 1,
            shape: vec![2, 2],
            strides: vec![3, 1],
        };
        cols.scatter(&mut dst, &[1., 2., 3., 4.]);
        assert_eq!(dst, [0., 1., 2., 0., 3., 4.]);
        let every_other = View {
            offset: 0,
            shape: vec![2, 2],
            strides: vec![3, 2],
        };
        every_other.scatter(&mut dst, &[5., 6., 7., 8.]);
        assert_eq!(dst, [5., 1., 6., 7., 3., 8.]);
    }
}
