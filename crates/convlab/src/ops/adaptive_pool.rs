//! Adaptive pooling (PyTorch's `F.adaptive_avg_pool2d` and
//! `F.adaptive_max_pool2d`): the caller fixes the output size and the
//! windows follow from it, as in NiN's and ResNet's global average pooling.
//!
//! Output row `i` of `oh` pools input rows `floor(i*H/oh) .. ceil((i+1)*H/oh)`,
//! so bins may overlap by one row when `oh` does not divide `H`.
//!
//! ```
//! use convlab::{ops::adaptive_pool::adaptive_avg_pool2d, Tensor};
//! let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
//! let y = adaptive_avg_pool2d(&x, 1)?;
//! assert_eq!((y.shape(), y.data()), (&[1, 1, 1, 1][..], &[7.5][..]));
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{numel_or_err, Dims, Error, Result};
use crate::kernels::pool::{global_avg_pool_backward_planes, global_avg_pool_planes};
use crate::memory;
use crate::ops::pool::{
    assume_written, batch_shape, scatter_max_grad, split_input, uninit_f32, zeros_index,
};
use crate::shape::Pair;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// The validated geometry of an adaptive pooling: `planes x h x w` in,
/// `planes x oh x ow` out. `oh` or `ow` may be 0 (an empty output, as in
/// PyTorch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveGeometry {
    /// `false` for a 3-D `(C, H, W)` input (then `n == 1`).
    pub batched: bool,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

impl AdaptiveGeometry {
    /// Validate an input shape and output size for `op`.
    ///
    /// # Errors
    /// An input that is not 3-D/4-D with non-empty C, H, W; sizes that overflow.
    pub fn new(op: &'static str, input_shape: &[usize], output_size: Pair) -> Result<Self> {
        let (batched, n, c, h, w) = split_input(op, "input", input_shape)?;
        let Pair(oh, ow) = output_size;
        numel_or_err(op, &[n, c, oh, ow])?;
        Ok(AdaptiveGeometry {
            batched,
            n,
            c,
            h,
            w,
            oh,
            ow,
        })
    }
    /// Number of `H x W` planes.
    pub fn planes(&self) -> usize {
        self.n * self.c
    }
    /// The output shape, of the input's rank.
    pub fn out_shape(&self) -> Vec<usize> {
        batch_shape(self.batched, self.n, self.c, self.oh, self.ow)
    }
}

/// PyTorch's `F.adaptive_avg_pool2d`: the mean of each of `output_size` bins.
///
/// # Errors
/// See [`AdaptiveGeometry::new`].
pub fn adaptive_avg_pool2d(input: &Tensor, output_size: impl Into<Pair>) -> Result<Tensor> {
    const OP: &str = "adaptive_avg_pool2d";
    let g = AdaptiveGeometry::new(OP, input.shape(), output_size.into())?;
    let shape = g.out_shape();
    let mut out = memory::zeros_f32(OP, numel_or_err(OP, &shape)?)?;
    if (g.oh, g.ow) == (1, 1) {
        let hw = g.h * g.w;
        match planes_per_task(input.numel(), g.planes()) {
            None => global_avg_pool_planes(hw, input.data(), &mut out),
            Some(per) => input
                .data()
                .par_chunks(per * hw)
                .zip(out.par_chunks_mut(per))
                .for_each(|(x, o)| global_avg_pool_planes(hw, x, o)),
        }
    } else {
        reference::adaptive_avg_pool2d_reference(&g, input.data(), &mut out);
    }
    Tensor::from_vec(out, &shape)
}

/// Planes per rayon task for global pooling over `len` floats, or `None`
/// to stay on the calling thread. ResNet's 4x512x7x7 takes a few
/// microseconds on one core. From a pool worker, one task per thread keeps
/// each half in its core's L2 from call to call (forward 6.2 -> 4.4 us,
/// backward 10 -> 5.9 us, measured before the unrolled kernels). From any
/// other thread, entering the pool costs more than the whole op (an empty
/// `join` 14 us), so only inputs of 1 MiB or more are split, a few tasks
/// per thread for balance.
fn planes_per_task(len: usize, planes: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    let (min_len, tasks) = if super::on_pool_worker() {
        (1 << 14, threads)
    } else {
        (1 << 18, threads * 4)
    };
    // Whole groups of 16 planes per task keep an aligned input aligned
    // for each task's 16-plane kernel.
    (threads > 1 && len >= min_len).then(|| planes.div_ceil(tasks).next_multiple_of(16))
}

/// Gradient of [`adaptive_avg_pool2d`] with respect to its input; the output
/// size is read from `grad_output`'s last two dimensions.
///
/// # Errors
/// `input_shape` invalid, or `grad_output` of another rank, batch or channels.
pub fn adaptive_avg_pool2d_backward(input_shape: &[usize], grad_output: &Tensor) -> Result<Tensor> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    let g = geometry_from_grad(OP, input_shape, grad_output)?;
    if (g.oh, g.ow) == (1, 1) {
        let hw = g.h * g.w;
        let mut buf = uninit_f32(OP, numel_or_err(OP, input_shape)?)?;
        match planes_per_task(buf.len(), g.planes()) {
            None => global_avg_pool_backward_planes(hw, grad_output.data(), &mut buf),
            Some(per) => buf
                .par_chunks_mut(per * hw)
                .zip(grad_output.data().par_chunks(per))
                .for_each(|(gx, gy)| global_avg_pool_backward_planes(hw, gy, gx)),
        }
        // SAFETY: `buf` is `planes * hw` floats, and the kernel wrote all
        // `hw` of each plane (grad_output has one value per plane).
        return Tensor::from_vec(unsafe { assume_written(buf) }, input_shape);
    }
    let mut grad_input = memory::zeros_f32(OP, numel_or_err(OP, input_shape)?)?;
    reference::adaptive_avg_pool2d_backward_reference(&g, grad_output.data(), &mut grad_input);
    Tensor::from_vec(grad_input, input_shape)
}

/// PyTorch's `F.adaptive_max_pool2d(..., return_indices=True)`: the maximum
/// of each bin and its flat index `h * W + w` in the input plane. NaN wins
/// and the first maximum wins ties, as in [`crate::ops::pool::max_pool2d`].
///
/// ```
/// use convlab::{ops::adaptive_pool::adaptive_max_pool2d, Tensor};
/// let x = Tensor::arange(9.0)?.reshape(&[1, 3, 3])?;
/// let (y, idx) = adaptive_max_pool2d(&x, 2)?;
/// assert_eq!(y.data(), &[4.0, 5.0, 7.0, 8.0]);
/// assert_eq!(idx, vec![4, 5, 7, 8]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// See [`AdaptiveGeometry::new`]; an output size of 0 gives an empty output.
pub fn adaptive_max_pool2d(
    input: &Tensor,
    output_size: impl Into<Pair>,
) -> Result<(Tensor, Vec<usize>)> {
    const OP: &str = "adaptive_max_pool2d";
    let g = AdaptiveGeometry::new(OP, input.shape(), output_size.into())?;
    let shape = g.out_shape();
    let numel = numel_or_err(OP, &shape)?;
    let mut out = memory::zeros_f32(OP, numel)?;
    let mut indices = zeros_index(OP, numel)?;
    reference::adaptive_max_pool2d_reference(&g, input.data(), &mut out, &mut indices);
    Ok((Tensor::from_vec(out, &shape)?, indices))
}

/// Gradient of [`adaptive_max_pool2d`]: the same scatter-add through
/// `indices` as [`crate::ops::pool::max_pool2d_backward`].
///
/// # Errors
/// As [`crate::ops::pool::max_pool2d_backward`].
pub fn adaptive_max_pool2d_backward(
    input_shape: &[usize],
    indices: &[usize],
    grad_output: &Tensor,
) -> Result<Tensor> {
    scatter_max_grad(
        "adaptive_max_pool2d_backward",
        input_shape,
        indices,
        grad_output,
    )
}

fn geometry_from_grad(
    op: &'static str,
    input_shape: &[usize],
    grad_output: &Tensor,
) -> Result<AdaptiveGeometry> {
    let (batched, n, c, _, _) = split_input(op, "input_shape", input_shape)?;
    let gs = grad_output.shape();
    let out = match (batched, gs) {
        (true, [gn, gc, oh, ow]) if *gn == n && *gc == c => Some(Pair(*oh, *ow)),
        (false, [gc, oh, ow]) if *gc == c => Some(Pair(*oh, *ow)),
        _ => None,
    };
    let out = out.ok_or_else(|| {
        Error::shape(
            op,
            format!(
                "grad_output of shape {} does not match input shape {}: expected the same rank, batch and channels",
                Dims(gs),
                Dims(input_shape)
            ),
        )
    })?;
    AdaptiveGeometry::new(op, input_shape, out)
}

/// The plain loops, trusted with a validated [`AdaptiveGeometry`].
pub mod reference {
    use super::AdaptiveGeometry;

    /// The input range `start..end` pooled by output position `i` of `out`
    /// along an axis of length `len`: PyTorch's `start_index` =
    /// `floor(i*len/out)` and `end_index` = `ceil((i+1)*len/out)`, in u128
    /// so `i * len` cannot overflow.
    pub fn bin(i: usize, out: usize, len: usize) -> (usize, usize) {
        let (i, out, len) = (i as u128, out as u128, len as u128);
        let start = i * len / out;
        let end = ((i + 1) * len).div_ceil(out);
        // Both are at most `len`.
        (start as usize, end as usize)
    }

    fn bins(out: usize, len: usize) -> Vec<(usize, usize)> {
        (0..out).map(|i| bin(i, out, len)).collect()
    }

    /// Mean of each bin (summed in f64).
    pub fn adaptive_avg_pool2d_reference(g: &AdaptiveGeometry, input: &[f32], output: &mut [f32]) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(input.len(), g.planes() * hw);
        debug_assert_eq!(output.len(), g.planes() * ohw);
        if output.is_empty() {
            return;
        }
        let (rows, cols) = (bins(g.oh, g.h), bins(g.ow, g.w));
        for plane in 0..g.planes() {
            let x = &input[plane * hw..(plane + 1) * hw];
            for (oy, &(h0, h1)) in rows.iter().enumerate() {
                for (ox, &(w0, w1)) in cols.iter().enumerate() {
                    let mut sum = 0.0f64;
                    for row in h0..h1 {
                        for &v in &x[row * g.w + w0..row * g.w + w1] {
                            sum += v as f64;
                        }
                    }
                    let count = ((h1 - h0) * (w1 - w0)) as f64;
                    output[plane * ohw + oy * g.ow + ox] = (sum / count) as f32;
                }
            }
        }
    }

    /// Gradient of [`adaptive_avg_pool2d_reference`] into a zeroed `grad_input`.
    pub fn adaptive_avg_pool2d_backward_reference(
        g: &AdaptiveGeometry,
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(grad_input.len(), g.planes() * hw);
        debug_assert_eq!(grad_output.len(), g.planes() * ohw);
        if grad_output.is_empty() {
            return;
        }
        let (rows, cols) = (bins(g.oh, g.h), bins(g.ow, g.w));
        for plane in 0..g.planes() {
            let gx = &mut grad_input[plane * hw..(plane + 1) * hw];
            for (oy, &(h0, h1)) in rows.iter().enumerate() {
                for (ox, &(w0, w1)) in cols.iter().enumerate() {
                    let count = ((h1 - h0) * (w1 - w0)) as f64;
                    let share = (grad_output[plane * ohw + oy * g.ow + ox] as f64 / count) as f32;
                    for row in h0..h1 {
                        for v in &mut gx[row * g.w + w0..row * g.w + w1] {
                            *v += share;
                        }
                    }
                }
            }
        }
    }

    /// Maximum of each bin and its flat index, PyTorch's
    /// `(val > maxval) || isnan(val)` rule.
    pub fn adaptive_max_pool2d_reference(
        g: &AdaptiveGeometry,
        input: &[f32],
        output: &mut [f32],
        indices: &mut [usize],
    ) {
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(input.len(), g.planes() * hw);
        debug_assert_eq!(output.len(), g.planes() * ohw);
        debug_assert_eq!(indices.len(), output.len());
        if output.is_empty() {
            return;
        }
        let (rows, cols) = (bins(g.oh, g.h), bins(g.ow, g.w));
        for plane in 0..g.planes() {
            let x = &input[plane * hw..(plane + 1) * hw];
            for (oy, &(h0, h1)) in rows.iter().enumerate() {
                for (ox, &(w0, w1)) in cols.iter().enumerate() {
                    let mut best = f32::NEG_INFINITY;
                    let mut best_at = h0 * g.w + w0;
                    for row in h0..h1 {
                        for at in row * g.w + w0..row * g.w + w1 {
                            let v = x[at];
                            if v > best || v.is_nan() {
                                best = v;
                                best_at = at;
                            }
                        }
                    }
                    let o = plane * ohw + oy * g.ow + ox;
                    output[o] = best;
                    indices[o] = best_at;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_pytorch_floor_and_ceil() {
        // H = 10, oh = 3: [0, 4), [3, 7), [6, 10) -- overlapping by one row.
        let b: Vec<_> = (0..3).map(|i| reference::bin(i, 3, 10)).collect();
        assert_eq!(b, vec![(0, 4), (3, 7), (6, 10)]);
        // Output larger than input: bins repeat rows.
        let b: Vec<_> = (0..4).map(|i| reference::bin(i, 4, 2)).collect();
        assert_eq!(b, vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
    }

    #[test]
    fn global_average_and_uneven_bins() {
        // PyTorch: F.adaptive_avg_pool2d(arange(12).reshape(1,1,3,4), (2, 3))
        // = [[2.5, 3.5, 4.5], [6.5, 7.5, 8.5]].
        let x = Tensor::arange(12.0)
            .unwrap()
            .reshape(&[1, 1, 3, 4])
            .unwrap();
        let y = adaptive_avg_pool2d(&x, (2, 3)).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 3]);
        assert_eq!(y.data(), &[2.5, 3.5, 4.5, 6.5, 7.5, 8.5]);
        let g = Tensor::ones(&[1, 1, 2, 3]).unwrap();
        let gx = adaptive_avg_pool2d_backward(x.shape(), &g).unwrap();
        // Row 1 is in both row bins; column 1 and 2 in two column bins each.
        assert_eq!(gx.data()[0], 0.25);
        assert_eq!(gx.data()[4 + 1], 1.0);
        let total: f32 = gx.data().iter().sum();
        assert!((total - 6.0).abs() < 1e-6, "each of 6 outputs spreads 1");
    }

    #[test]
    fn max_with_indices_and_backward() {
        let x = Tensor::arange(12.0).unwrap().reshape(&[3, 4]).unwrap();
        let x = x.reshape(&[1, 3, 4]).unwrap();
        let (y, idx) = adaptive_max_pool2d(&x, (2, 3)).unwrap();
        assert_eq!(y.shape(), &[1, 2, 3]);
        assert_eq!(y.data(), &[5.0, 6.0, 7.0, 9.0, 10.0, 11.0]);
        assert_eq!(idx, vec![5, 6, 7, 9, 10, 11]);
        let g = Tensor::ones(y.shape()).unwrap();
        let gx = adaptive_max_pool2d_backward(x.shape(), &idx, &g).unwrap();
        assert_eq!(gx.data()[5], 1.0);
        assert_eq!(gx.data()[0], 0.0);
        let x = Tensor::from_slice(&[1.0, f32::NAN, 2.0, 0.0], &[1, 1, 2, 2]).unwrap();
        let (y, idx) = adaptive_max_pool2d(&x, 1).unwrap();
        assert!(y.data()[0].is_nan());
        assert_eq!(idx, vec![1]);
    }

    #[test]
    fn zero_output_size_is_empty_like_pytorch() {
        let x = Tensor::ones(&[1, 1, 3, 3]).unwrap();
        assert_eq!(adaptive_avg_pool2d(&x, 0).unwrap().shape(), &[1, 1, 0, 0]);
        let (y, idx) = adaptive_max_pool2d(&x, (0, 2)).unwrap();
        assert_eq!((y.shape(), idx.len()), (&[1, 1, 0, 2][..], 0));
    }

    #[test]
    fn errors_name_op_and_shape() {
        let x = Tensor::ones(&[3, 3]).unwrap();
        let e = adaptive_avg_pool2d(&x, 1).unwrap_err().to_string();
        assert!(
            e.starts_with("adaptive_avg_pool2d:") && e.contains("[3, 3]"),
            "{e}"
        );
        let x = Tensor::ones(&[1, 1, 0, 3]).unwrap();
        let e = adaptive_max_pool2d(&x, 1).unwrap_err().to_string();
        assert!(
            e.starts_with("adaptive_max_pool2d:") && e.contains("[1, 1, 0, 3]"),
            "{e}"
        );
        let g = Tensor::ones(&[1, 2, 1, 1]).unwrap();
        let e = adaptive_avg_pool2d_backward(&[1, 1, 3, 3], &g)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("adaptive_avg_pool2d_backward:")
                && e.contains("[1, 2, 1, 1]")
                && e.contains("[1, 1, 3, 3]"),
            "{e}"
        );
        let e = adaptive_max_pool2d_backward(
            &[1, 1, 3, 3],
            &[9],
            &Tensor::ones(&[1, 1, 1, 1]).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("adaptive_max_pool2d_backward:") && e.contains("index 9"),
            "{e}"
        );
    }
}
