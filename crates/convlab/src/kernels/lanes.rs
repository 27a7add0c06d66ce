//! Images in vector lanes: a batch of `LANES` images packed so that one
//! vector holds one pixel of every image (`[c][y][x][image]`). A stride-1
//! convolution on that layout is an implicit GEMM whose columns are whole
//! output pixels, so no column is computed to be dropped (the flat layout
//! computes `ow + kw - 1` columns per output row: 14 for 10 in LeNet's
//! second layer).

use super::simd::Simd;

/// Floats per vector of the packing: the tile kernel's lane count.
pub fn lanes() -> usize {
    super::ukernel::menu().lanes
}

#[inline(always)]
unsafe fn pack_body<S: Simd>(
    input: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    i0: usize,
    (hp, wp, top, left): (usize, usize, usize, usize),
    dst: &mut [f32],
) {
    let l = S::LANES;
    debug_assert!(dst.len() >= c * hp * wp * l);
    dst[..c * hp * wp * l].fill(0.0);
    let zero = [0.0f32; 16];
    let mut edge = [[0.0f32; 16]; 16];
    let mut block = [0.0f32; 256];
    let images = n.saturating_sub(i0).min(l);
    let plane = h * w;
    // Input rows that land inside the padded plane, and their columns.
    let (rows, cols) = (
        h.min(hp.saturating_sub(top)),
        w.min(wp.saturating_sub(left)),
    );
    // SAFETY (whole body): row pointers address `l` floats inside `input`
    // (a short tail is copied into `edge` first) or `zero`; each transpose
    // writes `l * l` floats, of `block` or of `l` whole pixels of `dst` at
    // (ci, y + top, x0 + left); copies write `valid * l` floats there, all
    // inside the plane.
    unsafe {
        for ci in 0..c {
            for y in 0..rows {
                let mut x0 = 0;
                while x0 < cols {
                    let valid = (cols - x0).min(l);
                    let mut ptrs = [zero.as_ptr(); 16];
                    for (i, p) in ptrs.iter_mut().enumerate().take(images) {
                        let src = input.as_ptr().add(((i0 + i) * c + ci) * plane + y * w + x0);
                        *p = if valid == l {
                            src
                        } else {
                            edge[i] = [0.0; 16];
                            std::ptr::copy_nonoverlapping(src, edge[i].as_mut_ptr(), valid);
                            edge[i].as_ptr()
                        };
                    }
                    let at = ((ci * hp + y + top) * wp + x0 + left) * l;
                    if valid == l {
                        // A whole block: `l` consecutive pixels of `dst`.
                        S::transpose(&ptrs[..l], dst.as_mut_ptr().add(at));
                    } else {
                        S::transpose(&ptrs[..l], block.as_mut_ptr());
                        dst[at..at + valid * l].copy_from_slice(&block[..valid * l]);
                    }
                    x0 += valid;
                }
            }
        }
    }
}

super::simd::dispatch_simd! {
    /// Pack images `[i0, i0 + LANES)` of `input` (`[n, c, h, w]`; lanes past
    /// image `n` are zero) into `dst` as `[c][hp][wp][LANES]`, input pixel
    /// `(y, x)` at `(y + top, x + left)` and zeros around it (pixels that
    /// fall outside `hp x wp` are dropped).
    ///
    /// # Safety
    /// `input` holds `n` images of `c * h * w` floats; `i0 < n`; `dst`
    /// holds `c * hp * wp * lanes()` floats.
    pub unsafe fn pack_images(
        input: &[f32],
        shape: (usize, usize, usize, usize),
        i0: usize,
        padded: (usize, usize, usize, usize),
        dst: &mut [f32],
    ) => pack_body
}

#[inline(always)]
unsafe fn unpack_body<S: Simd>(
    src: &[f32],
    (n, c, plane): (usize, usize, usize),
    i0: usize,
    out: *mut f32,
) {
    let l = S::LANES;
    let images = n.saturating_sub(i0).min(l);
    let zero = [0.0f32; 16];
    let mut block = [0.0f32; 256];
    // SAFETY (whole body): row pointers address `l` floats of `src`
    // (pixel `p0 + j` of channel `co`) or `zero`; each image's copy writes
    // `valid` floats of its own plane in `out`.
    unsafe {
        for co in 0..c {
            let mut p0 = 0;
            while p0 < plane {
                let valid = (plane - p0).min(l);
                let mut ptrs = [zero.as_ptr(); 16];
                for (j, p) in ptrs.iter_mut().enumerate().take(valid) {
                    *p = src.as_ptr().add((co * plane + p0 + j) * l);
                }
                S::transpose(&ptrs[..l], block.as_mut_ptr());
                for i in 0..images {
                    let dst = out.add(((i0 + i) * c + co) * plane + p0);
                    S::store_n(dst, S::load(block.as_ptr().add(i * l)), valid);
                }
                p0 += valid;
            }
        }
    }
}

super::simd::dispatch_simd! {
    /// Unpack `src` (`[c][plane][LANES]`, images `[i0, i0 + LANES)` in the
    /// lanes) into `out` (`[n, c, plane]`), writing every element of the
    /// planes of images `i0 .. min(i0 + LANES, n)`.
    ///
    /// # Safety
    /// `src` holds `c * plane * lanes()` floats; `out` points at `n * c *
    /// plane` writable floats; `i0 < n`.
    pub unsafe fn unpack_images(
        src: &[f32],
        shape: (usize, usize, usize),
        i0: usize,
        out: *mut f32,
    ) => unpack_body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing then unpacking gives the images back, past a partial last
    /// batch, with the padding zero.
    #[test]
    fn pack_and_unpack_round_trip() {
        let l = lanes();
        let (n, c, h, w) = (l + 3, 2, 5, 19);
        let input: Vec<f32> = (0..n * c * h * w).map(|i| i as f32 + 1.0).collect();
        let (hp, wp, top, left) = (h + 3, w + 2, 2, 1);
        let mut back = vec![f32::NAN; n * c * h * w];
        for i0 in (0..n).step_by(l) {
            let mut packed = vec![f32::NAN; c * hp * wp * l];
            // SAFETY: shapes as documented.
            unsafe { pack_images(&input, (n, c, h, w), i0, (hp, wp, top, left), &mut packed) };
            for ci in 0..c {
                for y in 0..hp {
                    for x in 0..wp {
                        for lane in 0..l {
                            let got = packed[((ci * hp + y) * wp + x) * l + lane];
                            let (img, inside) = (i0 + lane, y >= top && x >= left);
                            let want = if img < n && inside && y - top < h && x - left < w {
                                input[((img * c + ci) * h + y - top) * w + x - left]
                            } else {
                                0.0
                            };
                            assert_eq!(got, want, "i0 {i0} c {ci} y {y} x {x} lane {lane}");
                        }
                    }
                }
            }
            // Unpack the interior as if it were an output of h x w pixels.
            let mut inner = vec![0.0; c * h * w * l];
            for ci in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let from = ((ci * hp + y + top) * wp + x + left) * l;
                        let to = ((ci * h + y) * w + x) * l;
                        inner[to..to + l].copy_from_slice(&packed[from..from + l]);
                    }
                }
            }
            // SAFETY: `back` holds n images of c * h * w floats.
            unsafe { unpack_images(&inner, (n, c, h * w), i0, back.as_mut_ptr()) };
        }
        assert_eq!(back, input);
    }
}
