//! Explicit 2-D padding with PyTorch's modes (`F.pad` on the last two
//! dimensions), used by `conv2d`'s `padding_mode`, and its backward.

use crate::error::{Dims, Error, Result};
use crate::memory;
use crate::shape::PaddingMode;
use crate::tensor::Tensor;

/// Source index along one axis of length `len` for padded coordinate
/// `i - before`, or `None` where the padding is zero.
#[inline]
fn source(i: usize, before: usize, len: usize, mode: PaddingMode) -> Option<usize> {
    let j = i as isize - before as isize;
    let n = len as isize;
    let k = match mode {
        PaddingMode::Zeros => {
            if j < 0 || j >= n {
                return None;
            }
            j
        }
        PaddingMode::Reflect => {
            if j < 0 {
                -j
            } else if j >= n {
                2 * (n - 1) - j
            } else {
                j
            }
        }
        PaddingMode::Replicate => j.clamp(0, n - 1),
        PaddingMode::Circular => j.rem_euclid(n),
    };
    Some(k as usize)
}

/// Validate `[top, bottom, left, right]` against `[.., h, w]` for `mode`.
pub(crate) fn check(
    op: &'static str,
    shape: &[usize],
    pads: [usize; 4],
    mode: PaddingMode,
) -> Result<()> {
    if shape.len() < 2 {
        return Err(Error::shape(
            op,
            format!(
                "padding needs at least 2 dimensions, got shape {}",
                Dims(shape)
            ),
        ));
    }
    let h = shape[shape.len() - 2];
    let w = shape[shape.len() - 1];
    let [t, b, l, r] = pads;
    match mode {
        PaddingMode::Zeros => {}
        PaddingMode::Reflect => {
            if t.max(b) >= h || l.max(r) >= w {
                return Err(Error::param(
                    op,
                    "padding",
                    format!(
                        "({t}, {b}, {l}, {r}) with padding_mode='reflect' must be smaller than the input size {h}x{w}"
                    ),
                ));
            }
        }
        PaddingMode::Replicate => {
            if (h == 0 && t + b > 0) || (w == 0 && l + r > 0) {
                return Err(Error::param(
                    op,
                    "padding",
                    "padding_mode='replicate' needs a non-empty input",
                ));
            }
        }
        PaddingMode::Circular => {
            if t.max(b) > h || l.max(r) > w {
                return Err(Error::param(
                    op,
                    "padding",
                    format!(
                        "({t}, {b}, {l}, {r}) with padding_mode='circular' must be at most the input size {h}x{w}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn padded_shape(op: &'static str, shape: &[usize], pads: [usize; 4]) -> Result<Vec<usize>> {
    let mut out = shape.to_vec();
    let r = out.len();
    let grow = |a: usize, b: usize, c: usize| {
        a.checked_add(b)
            .and_then(|v| v.checked_add(c))
            .ok_or_else(|| Error::too_large(op, "padded size overflows"))
    };
    out[r - 2] = grow(out[r - 2], pads[0], pads[1])?;
    out[r - 1] = grow(out[r - 1], pads[2], pads[3])?;
    Ok(out)
}

/// Pad the last two dimensions by `[top, bottom, left, right]` with `mode`.
///
/// ```
/// use convlab::{ops::pad2d, PaddingMode, Tensor};
/// let x = Tensor::from_rows(&[[1.0, 2.0, 3.0]])?;
/// let y = pad2d(&x, [0, 0, 2, 1], PaddingMode::Reflect)?;
/// assert_eq!(y.data(), &[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn pad2d(input: &Tensor, pads: [usize; 4], mode: PaddingMode) -> Result<Tensor> {
    let op = "pad2d";
    check(op, input.shape(), pads, mode)?;
    let shape = padded_shape(op, input.shape(), pads)?;
    let r = shape.len();
    let (h, w) = (input.shape()[r - 2], input.shape()[r - 1]);
    let (ph, pw) = (shape[r - 2], shape[r - 1]);
    let n = crate::error::numel_or_err(op, &shape)?;
    let mut out = memory::zeros_f32(op, n)?;
    // No plane to fill: the column table below is as long as the padded
    // width, which a huge padding of an empty batch makes huge.
    if n == 0 {
        return Tensor::from_vec(out, &shape);
    }
    // Every dimension is non-zero now, so this product is at most `n`.
    let planes: usize = shape[..r - 2].iter().product();
    let src = input.data();
    let cols: Vec<Option<usize>> = (0..pw).map(|x| source(x, pads[2], w, mode)).collect();
    for p in 0..planes {
        for y in 0..ph {
            let Some(sy) = source(y, pads[0], h, mode) else {
                continue;
            };
            let line = &src[(p * h + sy) * w..(p * h + sy + 1) * w];
            let dst = &mut out[(p * ph + y) * pw..(p * ph + y + 1) * pw];
            for (d, c) in dst.iter_mut().zip(&cols) {
                if let Some(sx) = c {
                    *d = line[*sx];
                }
            }
        }
    }
    Tensor::from_vec(out, &shape)
}

/// The gradient of [`pad2d`]: every padded position adds its gradient back
/// to the input position it was copied from.
pub fn pad2d_backward(
    grad_output: &Tensor,
    input_shape: &[usize],
    pads: [usize; 4],
    mode: PaddingMode,
) -> Result<Tensor> {
    let op = "pad2d_backward";
    check(op, input_shape, pads, mode)?;
    let shape = padded_shape(op, input_shape, pads)?;
    if grad_output.shape() != shape.as_slice() {
        return Err(Error::shape(
            op,
            format!(
                "grad_output has shape {} but the padded input has shape {}",
                Dims(grad_output.shape()),
                Dims(&shape)
            ),
        ));
    }
    let r = shape.len();
    let (h, w) = (input_shape[r - 2], input_shape[r - 1]);
    let (ph, pw) = (shape[r - 2], shape[r - 1]);
    let mut out = Tensor::zeros(input_shape)?;
    // As in pad2d: no column table for an empty input or gradient.
    if out.numel() == 0 || grad_output.numel() == 0 {
        return Ok(out);
    }
    let planes: usize = shape[..r - 2].iter().product();
    let g = grad_output.data();
    let cols: Vec<Option<usize>> = (0..pw).map(|x| source(x, pads[2], w, mode)).collect();
    let dst = out.data_mut();
    for p in 0..planes {
        for y in 0..ph {
            let Some(sy) = source(y, pads[0], h, mode) else {
                continue;
            };
            let gl = &g[(p * ph + y) * pw..(p * ph + y + 1) * pw];
            let line = &mut dst[(p * h + sy) * w..(p * h + sy + 1) * w];
            for (v, c) in gl.iter().zip(&cols) {
                if let Some(sx) = c {
                    line[*sx] += v;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_match_pytorch_f_pad() {
        // F.pad(torch.arange(4.).view(1,1,1,4), (2,2,0,0), mode=...)
        let x = Tensor::arange(4.0).unwrap().reshape(&[1, 4]).unwrap();
        let p = |m| pad2d(&x, [0, 0, 2, 2], m).unwrap().into_vec();
        assert_eq!(p(PaddingMode::Zeros), [0., 0., 0., 1., 2., 3., 0., 0.]);
        assert_eq!(p(PaddingMode::Reflect), [2., 1., 0., 1., 2., 3., 2., 1.]);
        assert_eq!(p(PaddingMode::Replicate), [0., 0., 0., 1., 2., 3., 3., 3.]);
        assert_eq!(p(PaddingMode::Circular), [2., 3., 0., 1., 2., 3., 0., 1.]);
    }

    #[test]
    fn backward_is_the_adjoint() {
        let x = Tensor::arange(12.0).unwrap().reshape(&[3, 4]).unwrap();
        for m in [
            PaddingMode::Zeros,
            PaddingMode::Reflect,
            PaddingMode::Replicate,
            PaddingMode::Circular,
        ] {
            let pads = [2, 1, 3, 2];
            let y = pad2d(&x, pads, m).unwrap();
            let g = Tensor::arange_step(0.5, 0.5 + y.numel() as f32, 1.0)
                .unwrap()
                .reshape(y.shape())
                .unwrap();
            let gx = pad2d_backward(&g, x.shape(), pads, m).unwrap();
            // <pad(x), g> == <x, pad^T(g)>
            let lhs: f32 = y.data().iter().zip(g.data()).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.data().iter().zip(gx.data()).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-3, "{m:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn reflect_too_wide_is_an_error() {
        let x = Tensor::zeros(&[2, 2]).unwrap();
        let e = pad2d(&x, [0, 0, 2, 2], PaddingMode::Reflect).unwrap_err();
        assert!(e.to_string().contains("reflect"), "{e}");
    }
}
