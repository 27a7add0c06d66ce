//! Rearrangements of channels and pixels: PyTorch's `F.pixel_shuffle`
//! (sub-pixel convolution's upsampling), `F.pixel_unshuffle` (its inverse)
//! and `F.channel_shuffle` (ShuffleNet's mixing of grouped channels), with
//! their gradients, which are the inverse permutations.
//!
//! ```
//! use convlab::{ops::{pixel_shuffle, pixel_unshuffle}, Tensor};
//! let x = Tensor::arange(8.0)?.reshape(&[1, 4, 1, 2])?;
//! let y = pixel_shuffle(&x, 2)?;
//! assert_eq!(y.shape(), &[1, 1, 2, 4]);
//! assert_eq!(y.data(), &[0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
//! assert_eq!(pixel_unshuffle(&y, 2)?, x);
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{checked_numel, numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Below this many floats a permutation stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 17;

/// The `[.., C, H, W]` split of a pixel (un)shuffle's input: the leading
/// batch count and the last three sizes.
fn split3(op: &'static str, shape: &[usize]) -> Result<(usize, usize, usize, usize)> {
    if shape.len() < 3 {
        return Err(Error::shape(
            op,
            format!(
                "expects an input of at least 3 dimensions ([.., C, H, W]), got {} of {} dimension(s)",
                Dims(shape),
                shape.len()
            ),
        ));
    }
    let r = shape.len();
    // An overflowing product means another axis is empty: nothing to move.
    let batch = checked_numel(&shape[..r - 3]).unwrap_or(0);
    Ok((batch, shape[r - 3], shape[r - 2], shape[r - 1]))
}

/// Copy `src` to `dst` as `blocks` independent blocks (of `src.len() /
/// blocks` and `dst.len() / blocks` floats), each by `block`.
fn by_blocks(
    src: &[f32],
    dst: &mut [f32],
    blocks: usize,
    block: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    if blocks == 0 || dst.is_empty() {
        return;
    }
    let (si, di) = (src.len() / blocks, dst.len() / blocks);
    if dst.len() < PARALLEL_MIN || blocks == 1 {
        for (s, d) in src.chunks_exact(si).zip(dst.chunks_exact_mut(di)) {
            block(s, d);
        }
    } else {
        src.par_chunks_exact(si)
            .zip(dst.par_chunks_exact_mut(di))
            .for_each(|(s, d)| block(s, d));
    }
}

/// One image of a pixel shuffle by `r`: `[c*r*r, h, w]` to `[c, h*r, w*r]`
/// when `up`, the inverse when not.
fn shuffle_image(x: &[f32], y: &mut [f32], c: usize, h: usize, w: usize, r: usize, up: bool) {
    // (ch, i, j, row, col) of the small image <-> (ch, row*r+i, col*r+j).
    let (wr, hw) = (w * r, h * w);
    for ch in 0..c {
        for row in 0..h {
            for i in 0..r {
                let big = ((ch * h + row) * r + i) * wr;
                for j in 0..r {
                    let small = ((ch * r + i) * r + j) * hw + row * w;
                    for col in 0..w {
                        let (b, s) = (big + col * r + j, small + col);
                        if up {
                            y[b] = x[s];
                        } else {
                            y[s] = x[b];
                        }
                    }
                }
            }
        }
    }
}

fn pixel_shuffle_impl(op: &'static str, input: &Tensor, r: usize, up: bool) -> Result<Tensor> {
    let (batch, c, h, w) = split3(op, input.shape())?;
    let what = if up {
        "upscale_factor"
    } else {
        "downscale_factor"
    };
    if r == 0 {
        return Err(Error::param(op, what, "must be positive, got 0"));
    }
    let rr = r
        .checked_mul(r)
        .ok_or_else(|| Error::param(op, what, format!("{r} overflows when squared")))?;
    let mut out_shape = input.shape().to_vec();
    let n = out_shape.len();
    if up {
        if c % rr != 0 {
            return Err(Error::shape(
                op,
                format!(
                    "expects the channel dimension of input {} to be divisible by upscale_factor^2 = {rr}, but it is {c}",
                    Dims(input.shape())
                ),
            ));
        }
        out_shape[n - 3] = c / rr;
        out_shape[n - 2] = h
            .checked_mul(r)
            .ok_or_else(|| Error::too_large(op, "output height overflows"))?;
        out_shape[n - 1] = w
            .checked_mul(r)
            .ok_or_else(|| Error::too_large(op, "output width overflows"))?;
    } else {
        for (size, name) in [(h, "height"), (w, "width")] {
            if size % r != 0 {
                return Err(Error::shape(
                    op,
                    format!(
                        "expects the {name} of input {} to be divisible by downscale_factor {r}, but it is {size}",
                        Dims(input.shape())
                    ),
                ));
            }
        }
        out_shape[n - 3] = c
            .checked_mul(rr)
            .ok_or_else(|| Error::too_large(op, "output channels overflow"))?;
        out_shape[n - 2] = h / r;
        out_shape[n - 1] = w / r;
    }
    let mut out = memory::zeros_f32(op, numel_or_err(op, &out_shape)?)?;
    // The small image's sizes: the output's when shuffling up.
    let (sc, sh, sw) = if up {
        (c / rr, h, w)
    } else {
        (c, h / r, w / r)
    };
    by_blocks(input.data(), &mut out, batch, |x, y| {
        shuffle_image(x, y, sc, sh, sw, r, up)
    });
    Tensor::from_vec(out, &out_shape)
}

/// PyTorch's `F.pixel_shuffle`: `[.., C*r*r, H, W]` to `[.., C, H*r, W*r]`,
/// channel `c*r*r + i*r + j` becoming the pixels at offset `(i, j)`.
///
/// # Errors
/// Fewer than 3 dimensions, `r == 0`, or channels not divisible by `r*r`.
pub fn pixel_shuffle(input: &Tensor, upscale_factor: usize) -> Result<Tensor> {
    pixel_shuffle_impl("pixel_shuffle", input, upscale_factor, true)
}

/// PyTorch's `F.pixel_unshuffle`, the inverse of [`pixel_shuffle`]:
/// `[.., C, H*r, W*r]` to `[.., C*r*r, H, W]`.
///
/// # Errors
/// Fewer than 3 dimensions, `r == 0`, or a height or width not divisible
/// by `r`.
pub fn pixel_unshuffle(input: &Tensor, downscale_factor: usize) -> Result<Tensor> {
    pixel_shuffle_impl("pixel_unshuffle", input, downscale_factor, false)
}

/// The gradient of [`pixel_shuffle`]: the inverse permutation of
/// `grad_output`.
pub fn pixel_shuffle_backward(grad_output: &Tensor, upscale_factor: usize) -> Result<Tensor> {
    pixel_shuffle_impl("pixel_shuffle_backward", grad_output, upscale_factor, false)
}

/// The gradient of [`pixel_unshuffle`]: the inverse permutation of
/// `grad_output`.
pub fn pixel_unshuffle_backward(grad_output: &Tensor, downscale_factor: usize) -> Result<Tensor> {
    pixel_shuffle_impl(
        "pixel_unshuffle_backward",
        grad_output,
        downscale_factor,
        true,
    )
}

/// PyTorch's `F.channel_shuffle`: the channels of `[N, C, *]` seen as
/// `[groups, C / groups]` and transposed, so output channel `k * groups + g`
/// is input channel `g * (C / groups) + k`.
///
/// # Errors
/// Fewer than 3 dimensions, `groups == 0`, or channels not divisible by
/// `groups`.
///
/// ```
/// use convlab::{ops::channel_shuffle, Tensor};
/// let x = Tensor::arange(6.0)?.reshape(&[1, 6, 1])?;
/// assert_eq!(channel_shuffle(&x, 2)?.data(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn channel_shuffle(input: &Tensor, groups: usize) -> Result<Tensor> {
    channel_shuffle_impl("channel_shuffle", input, groups, false)
}

/// The gradient of [`channel_shuffle`]: the inverse permutation (a
/// shuffle with `C / groups` groups) of `grad_output`.
pub fn channel_shuffle_backward(grad_output: &Tensor, groups: usize) -> Result<Tensor> {
    channel_shuffle_impl("channel_shuffle_backward", grad_output, groups, true)
}

fn channel_shuffle_impl(
    op: &'static str,
    input: &Tensor,
    groups: usize,
    inverse: bool,
) -> Result<Tensor> {
    let shape = input.shape();
    if shape.len() < 3 {
        return Err(Error::shape(
            op,
            format!(
                "expects an input of more than 2 dimensions, got {}",
                Dims(shape)
            ),
        ));
    }
    if groups == 0 {
        return Err(Error::param(op, "groups", "must be positive, got 0"));
    }
    let c = shape[1];
    if c % groups != 0 {
        return Err(Error::shape(
            op,
            format!(
                "the {c} channels of input {} are not divisible by groups = {groups}",
                Dims(shape)
            ),
        ));
    }
    let inner = checked_numel(&shape[2..]).unwrap_or(0);
    let (g, k) = if inverse {
        (c / groups, groups)
    } else {
        (groups, c / groups)
    };
    let mut out = memory::zeros_f32(op, input.numel())?;
    by_blocks(input.data(), &mut out, shape[0], |x, y| {
        for gi in 0..g {
            for ki in 0..k {
                let src = (gi * k + ki) * inner;
                let dst = (ki * g + gi) * inner;
                y[dst..dst + inner].copy_from_slice(&x[src..src + inner]);
            }
        }
    });
    Tensor::from_vec(out, shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_invert_each_other() {
        let x = Tensor::arange(2.0 * 18.0 * 4.0 * 5.0)
            .unwrap()
            .reshape(&[2, 18, 4, 5])
            .unwrap();
        let y = pixel_shuffle(&x, 3).unwrap();
        assert_eq!(y.shape(), &[2, 2, 12, 15]);
        assert_eq!(pixel_unshuffle(&y, 3).unwrap(), x);
        assert_eq!(pixel_shuffle_backward(&y, 3).unwrap(), x);
        let s = channel_shuffle(&x, 6).unwrap();
        assert_eq!(channel_shuffle_backward(&s, 6).unwrap(), x);
        assert_eq!(channel_shuffle(&s, 3).unwrap(), x);
    }

    #[test]
    fn pixel_shuffle_places_channels_as_pytorch() {
        // F.pixel_shuffle(torch.arange(8.).view(1, 4, 1, 2), 2)
        let x = Tensor::arange(8.0).unwrap().reshape(&[1, 4, 1, 2]).unwrap();
        let y = pixel_shuffle(&x, 2).unwrap();
        assert_eq!(y.data(), &[0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        // Unbatched and empty inputs, as PyTorch accepts them.
        let u = pixel_shuffle(&Tensor::zeros(&[4, 2, 2]).unwrap(), 2).unwrap();
        assert_eq!(u.shape(), &[1, 4, 4]);
        let e = pixel_shuffle(&Tensor::zeros(&[0, 4, 2, 2]).unwrap(), 2).unwrap();
        assert_eq!(e.shape(), &[0, 1, 4, 4]);
    }
}
