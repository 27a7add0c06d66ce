//! The Winograd weight gradient's transforms: the grad_output transform
//! (`A h A^T`), the tile-major transpose of the input transform, and `G^T S
//! G` per filter.

use super::super::simd::{dispatch_simd, Simd};
use super::{gather_row, row_len, tiles, zero_span, Strides};
use crate::shape::ConvGeometry;

// Weight gradient: F(3x3, 4x4), the transpose of F(4x4, 3x3). Over one 4x4
// output tile the gradient of the 3x3 weight is `G^T [(A h A^T) ⊙ (B^T d
// B)] G` for the grad_output tile `h` and input patch `d`; summed over
// tiles, `S[xi] [m, k] = Y[xi] [m, T] @ V[xi]^T [T, k]` (36 GEMMs) and one
// `G^T S G` per filter at the end.

/// `A h` for four vectors: six outputs.
#[inline(always)]
unsafe fn a6<S: Simd>(h: [S::V; 4]) -> [S::V; 6] {
    // SAFETY: arithmetic only, under the caller's target features.
    unsafe {
        let e = S::add(h[0], h[2]);
        let od = S::add(h[1], h[3]);
        let e4 = S::fma(S::splat(4.0), h[2], h[0]);
        let od2 = S::fma(S::splat(4.0), h[3], h[1]);
        let two = S::splat(2.0);
        [
            h[0],
            S::add(e, od),
            S::sub(e, od),
            S::fma(two, od2, e4),
            S::sub(e4, S::mul(two, od2)),
            h[3],
        ]
    }
}

/// `G^T s` for six vectors: three outputs.
#[inline(always)]
pub(super) unsafe fn gt3<S: Simd>(s: [S::V; 6]) -> [S::V; 3] {
    // SAFETY: arithmetic only, under the caller's target features.
    unsafe {
        let p12 = S::add(s[1], s[2]);
        let m12 = S::sub(s[2], s[1]);
        let p34 = S::add(s[3], s[4]);
        let m34 = S::sub(s[3], s[4]);
        let sixth = S::splat(1.0 / 6.0);
        [
            S::fma(
                S::splat(0.25),
                s[0],
                S::fma(S::splat(-1.0 / 6.0), p12, S::mul(S::splat(1.0 / 24.0), p34)),
            ),
            S::fma(sixth, m12, S::mul(S::splat(1.0 / 12.0), m34)),
            S::fma(sixth, S::sub(p34, p12), s[5]),
        ]
    }
}

/// Scratch floats `grad_output_block` needs.
pub fn grad_output_scratch_len(g: &ConvGeometry, rows: usize, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    4 * row_len(tw, lanes) + 16 * (rows * tw + 2 * lanes)
}

#[inline(always)]
unsafe fn grad_output_body<S: Simd>(
    g: &ConvGeometry,
    plane: &dyn Fn(usize) -> *const f32,
    strides: Strides,
    (r0, r1): (usize, usize),
    y: *mut f32,
    xi_stride: usize,
    scratch: &mut [f32],
) {
    let (th, tw, _) = tiles(g);
    let lanes = S::LANES;
    let wp = row_len(tw, lanes);
    let ldh = (r1 - r0) * tw + 2 * lanes;
    let (rows, h) = scratch.split_at_mut(4 * wp);
    let (oh, ow) = (g.oh, g.ow);
    // Row floats the tile split below reads.
    let need = (4 * tw.next_multiple_of(lanes)).min(wp);
    // SAFETY (whole body): `plane(img)` points at this channel's `[oh, ow]`
    // grad_output plane laid out by `strides` (caller); the row buffers
    // are inside `scratch` (sized by `grad_output_scratch_len`), `y` holds
    // 36 rows of the block's tiles rounded up to whole vectors,
    // `xi_stride` apart.
    unsafe {
        for r in r0..r1 {
            let (img, ty) = (r / th, r % th);
            let gy = plane(img);
            let t0 = (r - r0) * tw;
            for i in 0..4 {
                // The tile row's grad_output row, zero past the plane, split
                // into its tiles' four columns.
                let row = &mut rows[i * wp..][..wp];
                let oy = 4 * ty + i;
                if oy < oh {
                    gather_row::<S>(gy.add(oy * strides.row), strides, row.as_mut_ptr(), ow);
                    zero_span::<S>(row, ow, need);
                } else {
                    zero_span::<S>(row, 0, need);
                }
                let mut tx = 0;
                while tx < tw {
                    let hp = h.as_mut_ptr();
                    let at = |j: usize| hp.add((i * 4 + j) * ldh + t0 + tx);
                    S::deinterleave4(row.as_ptr().add(4 * tx), [at(0), at(1), at(2), at(3)]);
                    tx += lanes;
                }
            }
        }
        // Y = A h A^T, 16 tiles per vector: down the columns, then across.
        let nt = (r1 - r0) * tw;
        let mut t = 0;
        while t < nt {
            let mut cols = [[S::zero(); 6]; 4];
            for (j, col) in cols.iter_mut().enumerate() {
                *col = a6::<S>(std::array::from_fn(|i| {
                    S::load(h.as_ptr().add((i * 4 + j) * ldh + t))
                }));
            }
            for i in 0..6 {
                let row = a6::<S>(std::array::from_fn(|j| cols[j][i]));
                for (k, v) in row.into_iter().enumerate() {
                    S::store(y.add((i * 6 + k) * xi_stride + t), v);
                }
            }
            t += lanes;
        }
    }
}

dispatch_simd! {
    /// The grad_output transform `A h A^T` of one output channel for tile
    /// rows `[r0, r1)`: `y[xi * xi_stride + t]` for the block's tiles (whole
    /// vectors; tiles past the plane's edge read zeros). `plane(img)` gives
    /// the channel's `[oh, ow]` grad_output plane, pixels placed by
    /// `strides`; `scratch` holds [`grad_output_scratch_len`] floats.
    ///
    /// # Safety
    /// As described.
    pub(crate) unsafe fn grad_output_block(
        g: &ConvGeometry,
        plane: &dyn Fn(usize) -> *const f32,
        strides: Strides,
        rows: (usize, usize),
        y: *mut f32,
        xi_stride: usize,
        scratch: &mut [f32],
    ) => grad_output_body
}

#[inline(always)]
unsafe fn transpose_body<S: Simd>(
    src: *const f32,
    rows: usize,
    ld_src: usize,
    cols: usize,
    dst: *mut f32,
    ld_dst: usize,
) {
    let lanes = S::LANES;
    let zero = [0.0f32; 16];
    // SAFETY: rows < `rows` of `src` hold `cols` rounded up to whole
    // vectors; `dst` holds `cols` rounded up rows of `ld_dst >= rows`
    // rounded up floats (caller).
    unsafe {
        let mut r0 = 0;
        while r0 < rows {
            let mut c0 = 0;
            while c0 < cols {
                let ptrs: [*const f32; 16] = std::array::from_fn(|i| {
                    if r0 + i < rows && i < lanes {
                        src.add((r0 + i) * ld_src + c0)
                    } else {
                        zero.as_ptr()
                    }
                });
                let mut block = [0.0f32; 256];
                S::transpose(&ptrs[..lanes], block.as_mut_ptr());
                for j in 0..lanes.min(cols - c0) {
                    std::ptr::copy_nonoverlapping(
                        block.as_ptr().add(j * lanes),
                        dst.add((c0 + j) * ld_dst + r0),
                        lanes,
                    );
                }
                c0 += lanes;
            }
            r0 += lanes;
        }
    }
}

dispatch_simd! {
    /// `dst[c * ld_dst + r] = src[r * ld_src + c]` for `r < rows`, `c <
    /// cols`, in whole vectors: rows past `rows` (up to a whole vector)
    /// are written as zeros.
    ///
    /// # Safety
    /// `src` rows readable for `cols` rounded up to 16; `dst` writable for
    /// `cols` rows of `ld_dst >= rows.next_multiple_of(16)`.
    pub(crate) unsafe fn transpose_tiles(
        src: *const f32,
        rows: usize,
        ld_src: usize,
        cols: usize,
        dst: *mut f32,
        ld_dst: usize,
    ) => transpose_body
}

#[inline(always)]
unsafe fn weight_out_body<S: Simd>(
    s: *const f32,
    xi_stride: usize,
    k: usize,
    dw: &mut [std::mem::MaybeUninit<f32>],
) {
    // (dw is overwritten: each filter's gradient is finished exactly once.)
    let lanes = S::LANES;
    debug_assert!(dw.len() >= k * 9);
    // SAFETY: `s` holds 36 rows of `k` rounded up to whole vectors,
    // `xi_stride` apart (caller); `dw` holds k * 9 floats.
    unsafe {
        let mut c0 = 0;
        while c0 < k {
            // Down the columns (over i), then across (over j).
            let mut t = [[S::zero(); 3]; 6];
            for (j, tj) in t.iter_mut().enumerate() {
                *tj = gt3::<S>(std::array::from_fn(|i| {
                    S::load(s.add((i * 6 + j) * xi_stride + c0))
                }));
            }
            // The nine tap vectors (one lane per input channel) become one
            // row of taps per channel: a block transpose, then one masked
            // store of nine floats per channel (144 scalar adds before).
            let mut taps = [[0.0f32; 16]; 16];
            for r in 0..3 {
                let z = gt3::<S>(std::array::from_fn(|j| t[j][r]));
                for (c, v) in z.into_iter().enumerate() {
                    S::store(taps[r * 3 + c].as_mut_ptr(), v);
                }
            }
            let d = (dw.as_mut_ptr() as *mut f32).add(c0 * 9);
            let count = lanes.min(k - c0);
            if lanes >= 9 {
                let rows: [*const f32; 16] = std::array::from_fn(|i| taps[i].as_ptr());
                let mut per_ci = [0.0f32; 256];
                S::transpose(&rows[..lanes], per_ci.as_mut_ptr());
                for l in 0..count {
                    S::store_n(d.add(l * 9), S::load(per_ci.as_ptr().add(l * lanes)), 9);
                }
            } else {
                for l in 0..count {
                    for (tap, row) in taps.iter().take(9).enumerate() {
                        *d.add(l * 9 + tap) = row[l];
                    }
                }
            }
            c0 += lanes;
        }
    }
}

dispatch_simd! {
    /// `dw[ci * 9 + tap] = (G^T S G)[tap]` for one output channel: `s[xi *
    /// xi_stride + ci]` are its 36 summed products with every input channel
    /// `ci < k`; `dw` is its `[k, 3, 3]` weight gradient (overwritten).
    ///
    /// # Safety
    /// `s` holds 36 rows of `k` rounded up to 16 floats, `xi_stride` apart.
    pub(crate) unsafe fn weight_out(
        s: *const f32,
        xi_stride: usize,
        k: usize,
        dw: &mut [std::mem::MaybeUninit<f32>],
    ) => weight_out_body
}
