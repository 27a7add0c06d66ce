//! Winograd minimal filtering F(4x4, 3x3) for 3x3, stride-1, dilation-1
//! layers (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", CVPR 2016).
//!
//! Each 4x4 output tile is `A^T [ sum_ci (G g G^T) ⊙ (B^T d B) ] A` for the
//! 6x6 input patch `d` at the tile: 36 products per 16 outputs per channel
//! pair instead of 144. Over a block of tiles the sums are 36 independent
//! GEMMs `M[xi] [m, T] = U[xi] [m, k] @ V[xi] [k, T]` (`k` input channels,
//! `m` output channels, `T` tiles), run by the crate-private `ukernel` tile.
//!
//! Layouts, all vectorised along the fastest index:
//! - `V [36][k][T]` per block of tiles — the input transform works on whole
//!   tile rows: `B^T` down the six input rows (along x, contiguous), a
//!   split of every row by position modulo 4 (vector permutes) so that each
//!   tile's six columns land in six arrays indexed by tile, then `B` across
//!   them, 16 tiles per vector;
//! - `U [36][k][mr]` per panel of `mr` output channels, transformed from the
//!   weight transposed to `[k][9][m]`, 16 output channels per vector;
//! - `M [36][mr][T]`, whose output transform mirrors the input's: `A^T`
//!   across the 36 rows, 16 tiles per vector, then the four columns of each
//!   tile interleaved back into output rows.
//!
//! Tiles are numbered across tile rows (and images) without gaps, so no
//! lane is wasted on planes narrower than 16 tiles.
//!
//! Accuracy: F(4,3)'s coefficients reach 5 (B), 1/24 (G) and 8 (A). Measured
//! normalised max error against the f64 reference (`ops::conv2d` test
//! `winograd_error_on_wide_channels`) stays under 2e-5 up to 512 channels,
//! against the fixtures' 1e-4.

pub mod s2;
mod weight_grad;

pub use weight_grad::*;

use super::simd::{dispatch_simd, Simd};
use crate::shape::ConvGeometry;

/// Whether Winograd F(4x4, 3x3) handles `g`: 3x3, stride 1, dilation 1,
/// one group, non-empty.
pub fn winograd_applies(g: &ConvGeometry) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.groups == 1
        && g.c_in > 0
        && g.c_out > 0
        && g.oh > 0
        && g.ow > 0
}

/// Tiles of `g`: `(tiles per column, tiles per row, total over the batch)`.
pub fn tiles(g: &ConvGeometry) -> (usize, usize, usize) {
    let (th, tw) = (g.oh.div_ceil(4), g.ow.div_ceil(4));
    (th, tw, g.n * th * tw)
}

/// Scratch floats `input_block` needs for `rows` tile rows of `g` with
/// `lanes`-wide vectors.
pub fn input_scratch_len(g: &ConvGeometry, rows: usize, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    let wp = row_len(tw, lanes);
    12 * wp + 36 * (rows * tw + 2 * lanes)
}

/// Scratch floats `output_block` needs.
pub fn output_scratch_len(g: &ConvGeometry, rows: usize, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    16 * (rows * tw + 2 * lanes) + 4 * row_len(tw, lanes)
}

/// Floats of a padded row of `tw` tiles: 4 per tile, 2 of overlap, and room
/// for whole-vector reads past the end.
fn row_len(tw: usize, lanes: usize) -> usize {
    (4 * tw + 2).next_multiple_of(lanes) + 4 * lanes
}

/// Where pixel `(y, x)` of a plane lies from the plane's pointer: at
/// `y * row + x * col`. Dense planes have `col == 1`; a dilation phase
/// read or written in place inside the dilated tensor has `col` equal to
/// the dilation. With `gap > 0` a row holds the two column phases of a
/// row dilated by 2 side by side (`col` is then 1): pixels `x < half` are
/// the even columns of the tensor's row, `half + gap + x` the odd ones and
/// the `gap` between zeros (`half` is the row's width less the gap, over
/// two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    pub row: usize,
    pub col: usize,
    pub gap: usize,
}

/// `dst[q]` = pixel `q` of a row laid out by `s` at `src`, for `q < n`
/// (reading no float past the row's last).
#[inline(always)]
unsafe fn gather_row<S: Simd>(src: *const f32, s: Strides, dst: *mut f32, n: usize) {
    // SAFETY: the caller guarantees the row's floats at src and n writable
    // at dst; the masked loads read 2k - 1 floats from their start.
    unsafe {
        if s.gap > 0 {
            let half = (n - s.gap) / 2;
            let mut q = 0;
            while q < half {
                let k = S::LANES.min(half - q);
                S::store_n(dst.add(q), S::load_evens_n(src.add(2 * q), k), k);
                let odd = S::load_evens_n(src.add(2 * q + 1), k);
                S::store_n(dst.add(half + s.gap + q), odd, k);
                q += k;
            }
            (half..half + s.gap).for_each(|q| *dst.add(q) = 0.0);
            return;
        }
        match s.col {
            1 => S::copy_n(src, dst, n),
            step => (0..n).for_each(|q| *dst.add(q) = *src.add(q * step)),
        }
    }
}

/// Pixel `q` of a row laid out by `s` at `dst` = `src[q]`, for `q < n`,
/// writing nothing else (the other phases' pixels between may belong to
/// another thread; a gap is not written).
#[inline(always)]
unsafe fn scatter_row<S: Simd>(src: *const f32, dst: *mut f32, s: Strides, n: usize) {
    // SAFETY: the caller guarantees n floats at src and the row's pixels
    // at dst.
    unsafe {
        if s.gap > 0 {
            let half = (n - s.gap) / 2;
            let mut q = 0;
            while q < half {
                let k = S::LANES.min(half - q);
                S::store_evens_n(dst.add(2 * q), S::load_n(src.add(q), k), k);
                let odd = S::load_n(src.add(half + s.gap + q), k);
                S::store_evens_n(dst.add(2 * q + 1), odd, k);
                q += k;
            }
            return;
        }
        match s.col {
            1 => S::copy_n(src, dst, n),
            step => (0..n).for_each(|q| *dst.add(q * step) = *src.add(q)),
        }
    }
}

/// Zero `row[from..to]` in whole vectors, which may run on to the next
/// vector boundary (never past `row`'s end): zeroing every padded row
/// whole was a third of the Winograd input transform's stores.
#[inline(always)]
pub(super) unsafe fn zero_span<S: Simd>(row: &mut [f32], from: usize, to: usize) {
    let mut q = from;
    while q < to {
        if q + S::LANES <= row.len() {
            // SAFETY: a whole vector inside `row`.
            unsafe { S::store(row.as_mut_ptr().add(q), S::zero()) };
            q += S::LANES;
        } else {
            row[q] = 0.0;
            q += 1;
        }
    }
}

/// `B^T d` for six vectors.
#[inline(always)]
pub(super) unsafe fn bt<S: Simd>(d: [S::V; 6]) -> [S::V; 6] {
    // SAFETY: arithmetic only, under the caller's target features.
    unsafe {
        let (four, five) = (S::splat(4.0), S::splat(5.0));
        let two = S::splat(2.0);
        let d12 = S::add(d[1], d[2]);
        let d34 = S::add(d[3], d[4]);
        let m12 = S::sub(d[1], d[2]);
        let m43 = S::sub(d[4], d[3]);
        let m31 = S::sub(d[3], d[1]);
        let m42 = S::sub(d[4], d[2]);
        [
            S::fma(four, d[0], S::sub(d[4], S::mul(five, d[2]))),
            S::sub(d34, S::mul(four, d12)),
            S::fma(four, m12, m43),
            S::fma(two, m31, m42),
            S::sub(m42, S::mul(two, m31)),
            S::fma(four, d[1], S::sub(d[5], S::mul(five, d[3]))),
        ]
    }
}

/// `A^T m` for six vectors: four outputs.
#[inline(always)]
unsafe fn at<S: Simd>(m: [S::V; 6]) -> [S::V; 4] {
    // SAFETY: arithmetic only, under the caller's target features.
    unsafe {
        let s12 = S::add(m[1], m[2]);
        let d12 = S::sub(m[1], m[2]);
        let s34 = S::add(m[3], m[4]);
        let d34 = S::sub(m[3], m[4]);
        [
            S::add(S::add(m[0], s12), s34),
            S::fma(S::splat(2.0), d34, d12),
            S::fma(S::splat(4.0), s34, s12),
            S::add(S::fma(S::splat(8.0), d34, d12), m[5]),
        ]
    }
}

/// `G g` for three vectors: six outputs.
#[inline(always)]
unsafe fn gg<S: Simd>(g: [S::V; 3]) -> [S::V; 6] {
    // SAFETY: arithmetic only, under the caller's target features.
    unsafe {
        let s02 = S::add(g[0], g[2]);
        let sixth = S::splat(1.0 / 6.0);
        let g2_6 = S::mul(g[2], sixth);
        let g1_12 = S::mul(g[1], S::splat(1.0 / 12.0));
        let g0_24 = S::fma(g[0], S::splat(1.0 / 24.0), g2_6);
        [
            S::mul(g[0], S::splat(0.25)),
            S::mul(S::add(s02, g[1]), S::splat(-1.0 / 6.0)),
            S::mul(S::sub(s02, g[1]), S::splat(-1.0 / 6.0)),
            S::add(g0_24, g1_12),
            S::sub(g0_24, g1_12),
            g[2],
        ]
    }
}

/// Where a convolution's weight element `(k, tap, m)` (reduction channel,
/// tap `ky*3 + kx`, result channel) lies in a `[c_out, c_in, 3, 3]` weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightView {
    /// Floats between consecutive result channels.
    pub m_stride: usize,
    /// Floats between consecutive reduction channels.
    pub k_stride: usize,
    /// Taps reversed (`8 - tap`): the input gradient's flipped kernel.
    pub flip: bool,
}

impl WeightView {
    /// The forward convolution's view: `k` = input, `m` = output channel.
    pub fn forward(c_in: usize) -> WeightView {
        WeightView {
            m_stride: c_in * 9,
            k_stride: 9,
            flip: false,
        }
    }

    /// The input gradient's view (the transposed convolution run on
    /// grad_output): `k` = output, `m` = input channel, taps flipped.
    pub fn input_grad(c_in: usize) -> WeightView {
        WeightView {
            m_stride: 9,
            k_stride: c_in * 9,
            flip: true,
        }
    }
}

#[inline(always)]
unsafe fn filter_body<S: Simd>(
    w: &[f32],
    view: WeightView,
    (m0, pr): (usize, usize),
    (k0, k1): (usize, usize),
    u: &mut [f32],
) {
    let lanes = S::LANES;
    let stride = filter_xi_stride(k1 - k0, pr);
    debug_assert!(u.len() >= 36 * stride);
    // Taps of a batch of reduction channels, transposed so that each
    // (channel, tap) is one vector over result channels: a [lanes x lanes]
    // block transpose of consecutive weight floats instead of a gather per
    // tap (the gathers took a third of resnet_3x3_512's forward).
    let mut taps = [0.0f32; 16 * 16 * 9];
    let zero = [0.0f32; 16];
    let mut edge = [[0.0f32; 16]; 16];
    let end = w.as_ptr_range().end;
    // Channels per batch: `lanes` (forward: a row holds consecutive
    // channels' taps) or 1 (input gradient: a row holds one channel's taps).
    let batch = if view.flip { 1 } else { lanes };
    // SAFETY (whole body): every row read is `lanes` floats inside `w`
    // (rows that would run past its end are copied into `edge` first, lanes
    // past the panel read `zero`); stores write `n` lanes of row (xi, k -
    // k0) of `u`, inside the panel.
    unsafe {
        let mut c = 0;
        while c < pr {
            let n = (pr - c).min(lanes);
            let mut kb = k0;
            while kb < k1 {
                let kn = batch.min(k1 - kb);
                // Blocks of `lanes` floats per row covering the batch.
                let blocks = (kn * 9).div_ceil(lanes);
                for blk in 0..blocks {
                    let mut rows = [zero.as_ptr(); 16];
                    for (l, row) in rows.iter_mut().enumerate().take(n) {
                        let p = w
                            .as_ptr()
                            .add(kb * view.k_stride + (m0 + c + l) * view.m_stride + blk * lanes);
                        *row = if p.add(lanes) <= end {
                            p
                        } else {
                            let avail = end.offset_from(p).max(0) as usize;
                            edge[l] = [0.0; 16];
                            std::ptr::copy_nonoverlapping(
                                p,
                                edge[l].as_mut_ptr(),
                                avail.min(lanes),
                            );
                            edge[l].as_ptr()
                        };
                    }
                    S::transpose(&rows[..lanes], taps.as_mut_ptr().add(blk * lanes * lanes));
                }
                for kk in 0..kn {
                    // Plain loops, not `array::from_fn`: its closures,
                    // carrying vectors, were once left out of line (a code
                    // change elsewhere moved them to another codegen unit)
                    // and every intrinsic in them became a call
                    // (resnet_3x3_512 forward 3.6 -> 7.3 ms).
                    let mut t = [S::zero(); 9];
                    for (tap, v) in t.iter_mut().enumerate() {
                        let j = if view.flip { 8 - tap } else { kk * 9 + tap };
                        *v = S::load(taps.as_ptr().add(j * lanes));
                    }
                    // Columns: G applied down each of the three kernel columns.
                    let mut cols = [[S::zero(); 6]; 3];
                    for (x, col) in cols.iter_mut().enumerate() {
                        *col = gg::<S>([t[x], t[3 + x], t[6 + x]]);
                    }
                    let mut dst = u.as_mut_ptr().add((kb + kk - k0) * pr + c);
                    for i in 0..6 {
                        let row = gg::<S>([cols[0][i], cols[1][i], cols[2][i]]);
                        for v in row {
                            S::store_n(dst, v, n);
                            dst = dst.add(stride);
                        }
                    }
                }
                kb += kn;
            }
            c += lanes;
        }
    }
}

dispatch_simd! {
    /// The transformed filter `G g G^T` of result channels `[m0, m0 + pr)`
    /// and reduction channels `[k0, k1)` of the weight `w` seen through
    /// `view`, packed for [`super::ukernel`]: `u[xi * filter_xi_stride(k1 -
    /// k0, pr) + (k - k0) * pr + r]`, the A of product `xi` a dense
    /// `[k][pr]` block.
    ///
    /// # Safety
    /// Every element `view` maps those channels to lies in `w`; `u` holds
    /// `36 * filter_xi_stride(k1 - k0, pr)` floats.
    pub(crate) unsafe fn filter_panel(
        w: &[f32],
        view: WeightView,
        cols: (usize, usize),
        ks: (usize, usize),
        u: &mut [f32],
    ) => filter_body
}

/// Floats between the product blocks of a `filter_panel` of `k`
/// reduction channels and `pr` result channels. The 16 spare floats keep
/// the 36 rows one channel writes from sharing an L1 set: resnet_3x3_512's
/// blocks (512 x 24 floats) are exactly 48 KiB apart otherwise.
pub fn filter_xi_stride(k: usize, pr: usize) -> usize {
    k * pr + 16
}

#[inline(always)]
unsafe fn input_body<S: Simd>(
    g: &ConvGeometry,
    plane: &dyn Fn(usize) -> *const f32,
    strides: Strides,
    (r0, r1): (usize, usize),
    v: *mut f32,
    xi_stride: usize,
    scratch: &mut [f32],
) {
    let (th, tw, _) = tiles(g);
    let lanes = S::LANES;
    let wp = row_len(tw, lanes);
    let ldd = (r1 - r0) * tw + 2 * lanes;
    let (rows, rest) = scratch.split_at_mut(12 * wp);
    let (pr, tr) = rows.split_at_mut(6 * wp);
    let d = &mut rest[..36 * ldd];
    let (h, w) = (g.h, g.w);
    // Row floats the vertical transform reads (whole vectors).
    let need = (4 * tw + 2).next_multiple_of(lanes).min(wp);
    // SAFETY (whole body): `plane(img)` points at the image's `[h, w]`
    // plane laid out by `strides` (caller); every row slice below is
    // inside `scratch` (sized by `input_scratch_len`) or `v` (36 rows of
    // at least `(r1 - r0) * tw` rounded up to whole vectors, `xi_stride`
    // apart).
    unsafe {
        for r in r0..r1 {
            let (img, ty) = (r / th, r % th);
            let x = plane(img);
            if (strides.col > 1 || strides.gap > 0) && r + 1 < r1 {
                // Phase rows read in place are spread over a dilated
                // plane: ask for the next tile row's four new rows now.
                let (img, ty) = ((r + 1) / th, (r + 1) % th);
                let x = plane(img);
                for i in 2..6 {
                    if let Some(iy) = (4 * ty + i).checked_sub(g.pt).filter(|&iy| iy < h) {
                        let row = x.wrapping_add(iy * strides.row);
                        for q in (0..(w - strides.gap) * strides.col).step_by(16) {
                            S::prefetch(row.wrapping_add(q));
                        }
                    }
                }
            }
            // pr[i][q] = x[4ty + i - pt][q - pl], zero outside, for the
            // q < need that the transform below reads.
            for i in 0..6 {
                let row = &mut pr[i * wp..][..wp];
                let Some(iy) = (4 * ty + i).checked_sub(g.pt).filter(|&iy| iy < h) else {
                    zero_span::<S>(row, 0, need);
                    continue;
                };
                let lo = g.pl.min(wp);
                let n = w.min(wp - lo);
                zero_span::<S>(row, 0, lo);
                // Vector copies: a `memcpy` call per row of a few dozen
                // floats cost more than the copy (here and below).
                gather_row::<S>(
                    x.add(iy * strides.row),
                    strides,
                    row[lo..lo + n].as_mut_ptr(),
                    n,
                );
                zero_span::<S>(row, lo + n, need);
            }
            // tr[j] = B^T down the six rows, along x.
            let mut q = 0;
            while q < 4 * tw + 2 {
                let rows: [S::V; 6] = std::array::from_fn(|i| S::load(pr.as_ptr().add(i * wp + q)));
                for (j, val) in bt::<S>(rows).into_iter().enumerate() {
                    S::store(tr.as_mut_ptr().add(j * wp + q), val);
                }
                q += lanes;
            }
            // d[j][k][t] = tr[j][4 tx + k] for this row's tiles t. Later
            // rows overwrite the whole-vector spill of earlier ones.
            let t0 = (r - r0) * tw;
            for j in 0..6 {
                let src = tr.as_ptr().add(j * wp);
                let dj = d.as_mut_ptr().add(j * 6 * ldd + t0);
                let mut tx = 0;
                while tx < tw {
                    let at = |k: usize| dj.add(k * ldd + tx);
                    S::deinterleave4_6(src.add(4 * tx), [at(0), at(1), at(2), at(3), at(4), at(5)]);
                    tx += lanes;
                }
            }
        }
        // V[6j + k'] = B^T across d[j][0..6], 16 tiles per vector.
        let nt = (r1 - r0) * tw;
        let mut t = 0;
        while t < nt {
            for j in 0..6 {
                let dk: [S::V; 6] =
                    std::array::from_fn(|k| S::load(d.as_ptr().add((j * 6 + k) * ldd + t)));
                for (k, val) in bt::<S>(dk).into_iter().enumerate() {
                    S::store(v.add((j * 6 + k) * xi_stride + t), val);
                }
            }
            t += lanes;
        }
    }
}

dispatch_simd! {
    /// The input transform of one channel for tile rows `[r0, r1)` (tile
    /// row `r` is row `r % th` of image `r / th`): `v[xi * xi_stride + t]`
    /// for the block's tiles `t` (numbered from the block's first, rounded
    /// up to whole vectors). `plane(img)` gives the channel's `[h, w]`
    /// plane in image `img`, pixels placed by `strides`; `scratch` holds
    /// [`input_scratch_len`] floats.
    ///
    /// # Safety
    /// As described: every plane readable, `v` writable for 36 rows of
    /// `(r1 - r0) * tw` rounded up to 16.
    pub(crate) unsafe fn input_block(
        g: &ConvGeometry,
        plane: &dyn Fn(usize) -> *const f32,
        strides: Strides,
        rows: (usize, usize),
        v: *mut f32,
        xi_stride: usize,
        scratch: &mut [f32],
    ) => input_body
}

#[inline(always)]
unsafe fn output_body<S: Simd>(
    g: &ConvGeometry,
    m: *const f32,
    xi_stride: usize,
    (r0, r1): (usize, usize),
    plane: &dyn Fn(usize) -> *mut f32,
    strides: Strides,
    scratch: &mut [f32],
) {
    let (th, tw, _) = tiles(g);
    let lanes = S::LANES;
    let lde = (r1 - r0) * tw + 2 * lanes;
    let (e, rest) = scratch.split_at_mut(16 * lde);
    let row = &mut rest[..4 * row_len(tw, lanes)];
    let (oh, ow) = (g.oh, g.ow);
    // SAFETY (whole body): `m` holds 36 rows (`xi_stride` apart) of the
    // block's tiles rounded up to whole vectors; `e` and `row` are inside
    // `scratch`; `plane(img)` points at this channel's `[oh, ow]` output
    // plane, written only inside it.
    unsafe {
        let nt = (r1 - r0) * tw;
        let mut t = 0;
        while t < nt {
            // A^T across the six rows of each column, then across columns.
            let mut cols = [[S::zero(); 4]; 6];
            for (k, col) in cols.iter_mut().enumerate() {
                let mk: [S::V; 6] =
                    std::array::from_fn(|j| S::load(m.add((j * 6 + k) * xi_stride + t)));
                *col = at::<S>(mk);
            }
            for a in 0..4 {
                let y = at::<S>(std::array::from_fn(|k| cols[k][a]));
                for (b, val) in y.into_iter().enumerate() {
                    S::store(e.as_mut_ptr().add((a * 4 + b) * lde + t), val);
                }
            }
            t += lanes;
        }
        for r in r0..r1 {
            let (img, ty) = (r / th, r % th);
            let out = plane(img);
            let t0 = (r - r0) * tw;
            for a in 0..4 {
                let oy = 4 * ty + a;
                if oy >= oh {
                    break;
                }
                // Interleave the four columns of this row's tiles, then
                // copy the columns inside the plane.
                let mut tx = 0;
                while tx < tw {
                    let src = |b: usize| e.as_ptr().add((a * 4 + b) * lde + t0 + tx);
                    S::interleave4(
                        [src(0), src(1), src(2), src(3)],
                        row.as_mut_ptr().add(4 * tx),
                    );
                    tx += lanes;
                }
                scatter_row::<S>(row.as_ptr(), out.add(oy * strides.row), strides, ow);
            }
        }
    }
}

dispatch_simd! {
    /// The output transform of one output channel for tile rows `[r0,
    /// r1)`: `m[xi * xi_stride + t]` are its 36 transformed rows; the 4x4
    /// tiles, clipped at the plane's right and bottom edges, are written to
    /// `plane(img)`, the channel's `[oh, ow]` plane in image `img`, pixels
    /// placed by `strides`. `scratch` holds [`output_scratch_len`] floats.
    ///
    /// # Safety
    /// As described; no other thread writes those output pixels meanwhile.
    pub(crate) unsafe fn output_block(
        g: &ConvGeometry,
        m: *const f32,
        xi_stride: usize,
        rows: (usize, usize),
        plane: &dyn Fn(usize) -> *mut f32,
        strides: Strides,
        scratch: &mut [f32],
    ) => output_body
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    dispatch_simd! {
        unsafe fn gather(src: *const f32, s: Strides, dst: *mut f32, n: usize) => gather_row
    }
    dispatch_simd! {
        unsafe fn scatter(src: *const f32, dst: *mut f32, s: Strides, n: usize) => scatter_row
    }

    /// Phase rows read and written in place: every strided float, and no
    /// float between them or past the row written.
    #[test]
    fn strided_rows_touch_only_their_floats() {
        for step in 1..=3 {
            for n in 1..=40 {
                let len = (n - 1) * step + 1;
                let src: Vec<f32> = (0..len).map(|i| i as f32).collect();
                let mut dst = vec![f32::NAN; n + 20];
                // SAFETY: src holds the n strided floats, dst n floats.
                let st = Strides {
                    row: 0,
                    col: step,
                    gap: 0,
                };
                unsafe { gather(src.as_ptr(), st, dst.as_mut_ptr(), n) };
                for (q, &x) in dst.iter().enumerate() {
                    if q < n {
                        assert_eq!(x, (q * step) as f32, "gather step {step} n {n} at {q}");
                    } else {
                        assert!(x.is_nan(), "gather step {step} n {n} wrote {q}");
                    }
                }
                let vals: Vec<f32> = (0..n).map(|q| q as f32 + 0.5).collect();
                let mut row = vec![f32::NAN; len + 40];
                // SAFETY: vals holds n floats, row the n strided ones.
                unsafe { scatter(vals.as_ptr(), row.as_mut_ptr(), st, n) };
                for (i, &x) in row.iter().enumerate() {
                    if i % step == 0 && i / step < n {
                        assert_eq!(
                            x,
                            (i / step) as f32 + 0.5,
                            "scatter step {step} n {n} at {i}"
                        );
                    } else {
                        assert!(x.is_nan(), "scatter step {step} n {n} wrote {i}");
                    }
                }
            }
        }
    }

    /// Rows holding two column phases side by side: the even floats of
    /// the row, the gap zeroed, the odd floats; written back, every float
    /// of the row and nothing past it.
    #[test]
    fn phase_pair_rows_round_trip() {
        for half in 1..=40 {
            for gap in [1, 2, 4, 7] {
                let n = 2 * half + gap;
                let st = Strides {
                    row: 0,
                    col: 1,
                    gap,
                };
                let src: Vec<f32> = (0..2 * half).map(|i| i as f32).collect();
                let mut dst = vec![f32::NAN; n + 20];
                // SAFETY: src holds the row's 2 * half floats, dst n.
                unsafe { gather(src.as_ptr(), st, dst.as_mut_ptr(), n) };
                for (q, &x) in dst.iter().enumerate() {
                    let want = if q < half {
                        (2 * q) as f32
                    } else if q < half + gap {
                        0.0
                    } else if q < n {
                        (2 * (q - half - gap) + 1) as f32
                    } else {
                        assert!(x.is_nan(), "gather half {half} gap {gap} wrote {q}");
                        continue;
                    };
                    assert_eq!(x, want, "gather half {half} gap {gap} at {q}");
                }
                let mut row = vec![f32::NAN; 2 * half + 40];
                // SAFETY: dst holds n floats, row the 2 * half pixels.
                unsafe { scatter(dst.as_ptr(), row.as_mut_ptr(), st, n) };
                for (i, &x) in row.iter().enumerate() {
                    if i < 2 * half {
                        assert_eq!(x, i as f32, "scatter half {half} gap {gap} at {i}");
                    } else {
                        assert!(x.is_nan(), "scatter half {half} gap {gap} wrote {i}");
                    }
                }
            }
        }
    }

    /// `G g G^T` of one 3x3 filter in f64.
    fn transform(g: &[f64; 9]) -> [f64; 36] {
        let gm = [
            [0.25, 0.0, 0.0],
            [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
            [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
            [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
            [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
            [0.0, 0.0, 1.0],
        ];
        let mut out = [0.0; 36];
        for i in 0..6 {
            for j in 0..6 {
                let mut s = 0.0;
                for a in 0..3 {
                    for b in 0..3 {
                        s += gm[i][a] * g[a * 3 + b] * gm[j][b];
                    }
                }
                out[i * 6 + j] = s;
            }
        }
        out
    }

    /// Every panel shape and both weight views against the f64 transform.
    #[test]
    fn filter_panels_match_the_definition() {
        let (c_in, c_out) = (21, 37);
        let w: Vec<f32> = (0..c_out * c_in * 9)
            .map(|i| ((i * 29 % 97) as f32) * 0.02 - 1.0)
            .collect();
        for flip in [false, true] {
            let (view, m_total, k_total) = if flip {
                (WeightView::input_grad(c_in), c_in, c_out)
            } else {
                (WeightView::forward(c_in), c_out, c_in)
            };
            for pr in [1, 5, 8, 13, 16, 24] {
                for (k0, k1) in [(0, k_total), (3, 19)] {
                    let m0 = m_total - pr.min(m_total);
                    let pr = pr.min(m_total);
                    let xs = filter_xi_stride(k1 - k0, pr);
                    let mut u = vec![f32::NAN; 36 * xs];
                    // SAFETY: the view maps inside `w`; u holds 36 * xs floats.
                    unsafe { filter_panel(&w, view, (m0, pr), (k0, k1), &mut u) };
                    for k in k0..k1 {
                        for r in 0..pr {
                            let m = m0 + r;
                            let (co, ci) = if flip { (k, m) } else { (m, k) };
                            let g: [f64; 9] = std::array::from_fn(|t| {
                                let t = if flip { 8 - t } else { t };
                                w[(co * c_in + ci) * 9 + t] as f64
                            });
                            let want = transform(&g);
                            for xi in 0..36 {
                                let got = u[xi * xs + (k - k0) * pr + r] as f64;
                                assert!(
                                    (got - want[xi]).abs() < 1e-5,
                                    "flip {flip} pr {pr} k {k} r {r} xi {xi}: {got} vs {}",
                                    want[xi]
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
