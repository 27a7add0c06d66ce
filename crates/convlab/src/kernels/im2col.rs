//! im2col / col2im over a band of output rows, so the column buffer stays
//! within a scratch cap however large the image or kernel is.
//!
//! Column layout (PyTorch's `F.unfold` order): row `(c * kh + ki) * kw + kj`,
//! column `(oy - row0) * ow + ox`, value
//! `input[c, oy*sh - pt + ki*dh, ox*sw - pl + kj*dw]` (zero outside).

use crate::shape::ConvGeometry;

/// Input row/column of output coordinate `o` and kernel tap `k`, or `None`
/// in the padding.
#[inline(always)]
fn src(o: usize, k: usize, s: usize, d: usize, pad: usize, len: usize) -> Option<usize> {
    let i = (o * s + k * d).wrapping_sub(pad);
    (i < len).then_some(i)
}

/// Fill `cols` (`[channels*kh*kw, rows*ow]`) from `input` (`[channels, h, w]`)
/// for output rows `row0 .. row0 + rows`.
pub fn im2col(
    g: &ConvGeometry,
    channels: usize,
    input: &[f32],
    row0: usize,
    rows: usize,
    cols: &mut [f32],
) {
    let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow);
    let band = rows * ow;
    debug_assert!(input.len() >= channels * h * w);
    debug_assert!(cols.len() >= channels * kh * kw * band);
    for c in 0..channels {
        let plane = &input[c * h * w..(c + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (c * kh + ki) * kw + kj;
                let dst = &mut cols[row * band..(row + 1) * band];
                for r in 0..rows {
                    let out = &mut dst[r * ow..(r + 1) * ow];
                    let Some(iy) = src(row0 + r, ki, g.sh, g.dh, g.pt, h) else {
                        out.fill(0.0);
                        continue;
                    };
                    let line = &plane[iy * w..(iy + 1) * w];
                    if g.sw == 1 {
                        // Contiguous run: zeros, a copied slice, zeros.
                        let start = (kj * g.dw) as isize - g.pl as isize;
                        for (ox, o) in out.iter_mut().enumerate() {
                            let ix = start + ox as isize;
                            *o = if ix >= 0 && (ix as usize) < w {
                                line[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    } else {
                        for (ox, o) in out.iter_mut().enumerate() {
                            *o = match src(ox, kj, g.sw, g.dw, g.pl, w) {
                                Some(ix) => line[ix],
                                None => 0.0,
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Add `cols` (`[channels*kh*kw, rows*ow]`, the gradient of the columns of
/// output rows `row0 .. row0 + rows`) back into `grad_input` (`[channels, h, w]`).
pub fn col2im(
    g: &ConvGeometry,
    channels: usize,
    cols: &[f32],
    row0: usize,
    rows: usize,
    grad_input: &mut [f32],
) {
    let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow);
    let band = rows * ow;
    debug_assert!(grad_input.len() >= channels * h * w);
    debug_assert!(cols.len() >= channels * kh * kw * band);
    for c in 0..channels {
        let plane = &mut grad_input[c * h * w..(c + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (c * kh + ki) * kw + kj;
                let srcrow = &cols[row * band..(row + 1) * band];
                for r in 0..rows {
                    let Some(iy) = src(row0 + r, ki, g.sh, g.dh, g.pt, h) else {
                        continue;
                    };
                    let line = &mut plane[iy * w..(iy + 1) * w];
                    for (ox, &v) in srcrow[r * ow..(r + 1) * ow].iter().enumerate() {
                        if let Some(ix) = src(ox, kj, g.sw, g.dw, g.pl, w) {
                            line[ix] += v;
                        }
                    }
                }
            }
        }
    }
}
