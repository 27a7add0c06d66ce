//! Winograd F(3x3, 4x4) for stride-2 forwards with kernels of up to 8 taps
//! per axis (ResNet's 7x7 stem).
//!
//! A stride-2 convolution is a stride-1 one over the input's four phases
//! (even or odd rows times even or odd columns) taken as channels, each
//! with its share of the kernel's taps: a 7x7 kernel leaves at most four
//! per axis in every phase. Those 4x4 phase kernels run as F(3x3, 4x4),
//! the transpose of the F(4x4, 3x3) in [`super::winograd`] (same points,
//! same input transform `B^T`): 36 products give a 3x3 output tile, where
//! the phase kernels take 4 x 16 = 64 multiplies per output and the 7x7
//! kernel 49. The phases are read in place from the input, every second
//! float of a row, so no phase tensor is made.
//!
//! Over one tile, `Y = G^T [(A h A^T) ⊙ (B^T d B)] G` for a 4x4 phase
//! kernel `h` and 6x6 phase patch `d`, summed over the reduction channels
//! (input channel times phase) in the transformed domain: 36 GEMMs.

use super::simd::{dispatch_simd, Simd};
use super::winograd::{bt, gt3, zero_span};
use crate::shape::ConvGeometry;

/// Most transformed-filter floats (64 MiB) for which [`applies`] holds: the
/// filter is transformed once per call and read by every task.
const MAX_FILTER_FLOATS: usize = 16 << 20;

/// Where the taps of one axis of a stride-2 kernel land in the phases:
/// `(pad, taps)`. Tap `t` reads input `2 * o + t - p` for output `o`: phase
/// `(t - p) mod 2`, at offset `(t - p) div 2 + pad` of a phase kernel that
/// reads phase samples `o - pad ..= o - pad + taps - 1`.
pub fn phase_taps(k: usize, p: usize) -> (usize, usize) {
    let pad = p.div_ceil(2);
    let last = (k as isize - 1 - p as isize).div_euclid(2) + pad as isize;
    (pad, (last + 1).max(0) as usize)
}

/// Whether F(3x3, 4x4) on the phases handles `g`: stride 2, dilation 1,
/// one group, at most four taps per phase and axis, non-empty, and a
/// transformed filter under [`MAX_FILTER_FLOATS`].
pub fn applies(g: &ConvGeometry) -> bool {
    g.sh == 2
        && g.sw == 2
        && g.dh == 1
        && g.dw == 1
        && g.groups == 1
        && g.c_in > 0
        && g.c_out > 0
        && g.oh > 0
        && g.ow > 0
        && phase_taps(g.kh, g.pt).1 <= 4
        && phase_taps(g.kw, g.pl).1 <= 4
        && 36usize
            .checked_mul(4 * g.c_in)
            .and_then(|x| x.checked_mul(g.c_out))
            .is_some_and(|x| x <= MAX_FILTER_FLOATS)
}

/// Tiles of `g`: `(tiles per column, tiles per row, total over the batch)`.
pub fn tiles(g: &ConvGeometry) -> (usize, usize, usize) {
    let (th, tw) = (g.oh.div_ceil(3), g.ow.div_ceil(3));
    (th, tw, g.n * th * tw)
}

/// Floats between the 36 products' blocks of the transformed filter.
pub fn filter_xi_stride(g: &ConvGeometry) -> usize {
    4 * g.c_in * g.c_out
}

/// The transformed filter `A h A^T` of every phase kernel `h`, packed for
/// [`super::ukernel`]: `u[xi * filter_xi_stride(g) + (4 c + ph) * c_out +
/// m]` for input channel `c`, phase `ph = 2 * row phase + column phase`
/// and output channel `m`, the A of product `xi` a dense `[4 c_in][c_out]`
/// block. `weight` is `[c_out, c_in, kh, kw]`; `u` holds `36 *
/// filter_xi_stride(g)` floats.
pub fn filter(g: &ConvGeometry, weight: &[f32], u: &mut [f32]) {
    // Rows of A: the points 0, 1, -1, 2, -2 and infinity, as in the F(4x4,
    // 3x3) output transform. Computed in f64 and rounded once.
    const A: [[f64; 4]; 6] = [
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 1.0],
        [1.0, -1.0, 1.0, -1.0],
        [1.0, 2.0, 4.0, 8.0],
        [1.0, -2.0, 4.0, -8.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let (ptop, _) = phase_taps(g.kh, g.pt);
    let (pleft, _) = phase_taps(g.kw, g.pl);
    let xs = filter_xi_stride(g);
    debug_assert!(u.len() >= 36 * xs && weight.len() >= g.c_out * g.c_in * g.kh * g.kw);
    let place = |t: usize, p: usize, pad: usize| {
        let q = t as isize - p as isize;
        (
            q.rem_euclid(2) as usize,
            (q.div_euclid(2) + pad as isize) as usize,
        )
    };
    for m in 0..g.c_out {
        for c in 0..g.c_in {
            let mut h = [[[0.0f64; 4]; 4]; 4];
            let taps = &weight[(m * g.c_in + c) * g.kh * g.kw..][..g.kh * g.kw];
            for ky in 0..g.kh {
                let (r, b) = place(ky, g.pt, ptop);
                for kx in 0..g.kw {
                    let (s, bx) = place(kx, g.pl, pleft);
                    h[2 * r + s][b][bx] = f64::from(taps[ky * g.kw + kx]);
                }
            }
            for (ph, h) in h.iter().enumerate() {
                // t = A h, then A h A^T.
                let mut t = [[0.0f64; 4]; 6];
                for (ti, a) in t.iter_mut().zip(&A) {
                    for (bx, x) in ti.iter_mut().enumerate() {
                        *x = (0..4).map(|b| a[b] * h[b][bx]).sum();
                    }
                }
                let at = (4 * c + ph) * g.c_out + m;
                for (i, ti) in t.iter().enumerate() {
                    for (j, a) in A.iter().enumerate() {
                        let v: f64 = (0..4).map(|bx| ti[bx] * a[bx]).sum();
                        u[(6 * i + j) * xs + at] = v as f32;
                    }
                }
            }
        }
    }
}

/// Tiles rounded up to whole vectors of `lanes`.
fn tiles_padded(tw: usize, lanes: usize) -> usize {
    tw.next_multiple_of(lanes)
}

/// Floats of a phase row buffer: 3 per tile, 3 of overlap, and room for
/// whole-vector reads past the end.
fn row_len(tw: usize, lanes: usize) -> usize {
    3 * tiles_padded(tw, lanes) + 4 * lanes
}

/// Scratch floats [`input_block`] needs for `rows` tile rows.
pub fn input_scratch_len(g: &ConvGeometry, rows: usize, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    12 * row_len(tw, lanes) + 36 * (rows * tw + 2 * lanes)
}

/// Scratch floats [`output_block`] needs for `rows` tile rows.
pub fn output_scratch_len(g: &ConvGeometry, rows: usize, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    9 * (rows * tw + 2 * lanes) + row_len(tw, lanes)
}

#[inline(always)]
unsafe fn input_body<S: Simd>(
    g: &ConvGeometry,
    plane: &dyn Fn(usize) -> *const f32,
    (r0, r1): (usize, usize),
    v: *mut f32,
    phase_stride: usize,
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
    let (ptop, _) = phase_taps(g.kh, g.pt);
    let (pleft, _) = phase_taps(g.kw, g.pl);
    // Row floats the vertical transform reads (whole vectors).
    let need = (3 * tw + 3).next_multiple_of(lanes).min(wp);
    let nt = (r1 - r0) * tw;
    // SAFETY (whole body): `plane(img)` points at the channel's `[h, w]`
    // plane in image `img` (caller); row slices lie inside `scratch` (sized
    // by `input_scratch_len`); `v` holds, for each of the 4 phases (
    // `phase_stride` apart), 36 rows (`xi_stride` apart) of `nt` tiles
    // rounded up to whole vectors.
    unsafe {
        for ph in 0..4 {
            let (r, s) = (ph / 2, ph % 2);
            // Phase columns in the plane: input columns s, s + 2, ...
            let nx = w.saturating_sub(s).div_ceil(2);
            for row in r0..r1 {
                let (img, ty) = (row / th, row % th);
                let x = plane(img);
                // pr[i][q] = phase (r, s) at (3 ty + i - ptop, q - pleft),
                // zero outside, for the q < need that the transform reads.
                for i in 0..6 {
                    let buf = &mut pr[i * wp..][..wp];
                    let iy = (3 * ty + i)
                        .checked_sub(ptop)
                        .map(|y| 2 * y + r)
                        .filter(|&iy| iy < h);
                    let Some(iy) = iy else {
                        zero_span::<S>(buf, 0, need);
                        continue;
                    };
                    let lo = pleft.min(wp);
                    let n = nx.min(wp - lo);
                    zero_span::<S>(buf, 0, lo);
                    let src = x.add(iy * w + s);
                    let mut q = 0;
                    while q < n {
                        // Reads 2k - 1 floats: the last is column s + 2 (n
                        // - 1) < w.
                        let k = lanes.min(n - q);
                        S::store_n(
                            buf.as_mut_ptr().add(lo + q),
                            S::load_evens_n(src.add(2 * q), k),
                            k,
                        );
                        q += k;
                    }
                    zero_span::<S>(buf, lo + n, need);
                }
                // tr[j] = B^T down the six rows, along x.
                let mut q = 0;
                while q < need {
                    let rows: [S::V; 6] =
                        std::array::from_fn(|i| S::load(pr.as_ptr().add(i * wp + q)));
                    for (j, val) in bt::<S>(rows).into_iter().enumerate() {
                        S::store(tr.as_mut_ptr().add(j * wp + q), val);
                    }
                    q += lanes;
                }
                // d[j][k][t] = tr[j][3 tx + k] for this row's tiles t.
                // Later rows overwrite the whole-vector spill of earlier
                // ones.
                let t0 = (row - r0) * tw;
                for j in 0..6 {
                    let src = tr.as_ptr().add(j * wp);
                    let dj = d.as_mut_ptr().add(j * 6 * ldd + t0);
                    let mut tx = 0;
                    while tx < tw {
                        let at = |k: usize| dj.add(k * ldd + tx);
                        S::deinterleave3_6(
                            src.add(3 * tx),
                            [at(0), at(1), at(2), at(3), at(4), at(5)],
                        );
                        tx += lanes;
                    }
                }
            }
            // V[6j + k'] = B^T across d[j][0..6], a vector of tiles at once.
            let vp = v.add(ph * phase_stride);
            let mut t = 0;
            while t < nt {
                for j in 0..6 {
                    let dk: [S::V; 6] =
                        std::array::from_fn(|k| S::load(d.as_ptr().add((j * 6 + k) * ldd + t)));
                    for (k, val) in bt::<S>(dk).into_iter().enumerate() {
                        S::store(vp.add((j * 6 + k) * xi_stride + t), val);
                    }
                }
                t += lanes;
            }
        }
    }
}

dispatch_simd! {
    /// The input transform of one input channel for tile rows `[r0, r1)`
    /// (tile row `r` is row `r % th` of image `r / th`): its four phases'
    /// `v[ph * phase_stride + xi * xi_stride + t]` for the block's tiles
    /// `t` (numbered from the block's first, rounded up to whole vectors).
    /// `plane(img)` gives the channel's dense `[h, w]` plane in image
    /// `img`; `scratch` holds [`input_scratch_len`] floats.
    ///
    /// # Safety
    /// As described: every plane readable; `v` writable for 4 phases of 36
    /// rows of `(r1 - r0) * tw` rounded up to whole vectors.
    pub(crate) unsafe fn input_block(
        g: &ConvGeometry,
        plane: &dyn Fn(usize) -> *const f32,
        rows: (usize, usize),
        v: *mut f32,
        phase_stride: usize,
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
    stream: bool,
    scratch: &mut [f32],
) {
    let (th, tw, _) = tiles(g);
    let lanes = S::LANES;
    let lde = (r1 - r0) * tw + 2 * lanes;
    let (e, rest) = scratch.split_at_mut(9 * lde);
    let row = &mut rest[..row_len(tw, lanes)];
    let (oh, ow) = (g.oh, g.ow);
    // SAFETY (whole body): `m` holds 36 rows (`xi_stride` apart) of the
    // block's tiles rounded up to whole vectors; `e` and `row` lie inside
    // `scratch`; `plane(img)` points at this channel's `[oh, ow]` output
    // plane, written only inside it.
    unsafe {
        let nt = (r1 - r0) * tw;
        let mut t = 0;
        while t < nt {
            // G^T down the six rows of each column, then across columns.
            let mut cols = [[S::zero(); 3]; 6];
            for (k, col) in cols.iter_mut().enumerate() {
                let mk: [S::V; 6] =
                    std::array::from_fn(|j| S::load(m.add((j * 6 + k) * xi_stride + t)));
                *col = gt3::<S>(mk);
            }
            for a in 0..3 {
                let y = gt3::<S>(std::array::from_fn(|k| cols[k][a]));
                for (b, val) in y.into_iter().enumerate() {
                    S::store(e.as_mut_ptr().add((a * 3 + b) * lde + t), val);
                }
            }
            t += lanes;
        }
        for r in r0..r1 {
            let (img, ty) = (r / th, r % th);
            let out = plane(img);
            let t0 = (r - r0) * tw;
            for a in 0..3 {
                let oy = 3 * ty + a;
                if oy >= oh {
                    break;
                }
                // Interleave the three columns of this row's tiles, then
                // copy the columns inside the plane.
                let mut tx = 0;
                while tx < tw {
                    let src = |b: usize| e.as_ptr().add((a * 3 + b) * lde + t0 + tx);
                    S::interleave3([src(0), src(1), src(2)], row.as_mut_ptr().add(3 * tx));
                    tx += lanes;
                }
                let dst = out.add(oy * ow);
                if stream && (dst as usize) % 64 == 0 {
                    let mut q = 0;
                    while q + lanes <= ow {
                        S::stream(dst.add(q), S::load(row.as_ptr().add(q)));
                        q += lanes;
                    }
                    if q < ow {
                        S::store_n(dst.add(q), S::load(row.as_ptr().add(q)), ow - q);
                    }
                } else {
                    S::copy_n(row.as_ptr(), dst, ow);
                }
            }
        }
    }
}

dispatch_simd! {
    /// The output transform of one output channel for tile rows `[r0,
    /// r1)`: `m[xi * xi_stride + t]` are its 36 transformed rows; the 3x3
    /// tiles, clipped at the plane's right and bottom edges, are written to
    /// `plane(img)`, the channel's dense `[oh, ow]` plane in image `img`.
    /// `scratch` holds [`output_scratch_len`] floats.
    ///
    /// # Safety
    /// As described; no other thread writes those output pixels meanwhile.
    pub(crate) unsafe fn output_block(
        g: &ConvGeometry,
        m: *const f32,
        xi_stride: usize,
        rows: (usize, usize),
        plane: &dyn Fn(usize) -> *mut f32,
        stream: bool,
        scratch: &mut [f32],
    ) => output_body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(always)]
    unsafe fn round_trip_body<S: Simd>(src: *const f32, cols: *mut f32, row: *mut f32) {
        // SAFETY: src holds 51 floats, cols 6 x 16, row 48 (caller).
        unsafe {
            let at = |k: usize| cols.add(16 * k);
            S::deinterleave3_6(src, [at(0), at(1), at(2), at(3), at(4), at(5)]);
            S::interleave3([at(0), at(1), at(2)], row);
        }
    }
    dispatch_simd! {
        unsafe fn round_trip(src: *const f32, cols: *mut f32, row: *mut f32) => round_trip_body
    }

    /// The stride-3 windows of a row, column by column, and the three
    /// columns woven back into the row: against their definitions, with
    /// nothing written past the vectors (run under each ISA by CI).
    #[test]
    fn stride_three_windows_match_their_definition() {
        let lanes = super::super::ukernel::menu().lanes;
        let src: Vec<f32> = (0..3 * lanes + 3).map(|i| i as f32).collect();
        let mut cols = vec![f32::NAN; 6 * 16 + 16];
        let mut row = vec![f32::NAN; 48 + 16];
        // SAFETY: src holds 3 * lanes + 3 floats, cols 6 rows of 16, row 48.
        unsafe { round_trip(src.as_ptr(), cols.as_mut_ptr(), row.as_mut_ptr()) };
        for k in 0..6 {
            for l in 0..16 {
                let got = cols[16 * k + l];
                if l < lanes {
                    assert_eq!(got, (3 * l + k) as f32, "column {k} lane {l}");
                } else {
                    assert!(got.is_nan(), "column {k} wrote lane {l}");
                }
            }
        }
        for (i, &x) in row.iter().enumerate() {
            if i < 3 * lanes {
                assert_eq!(x, i as f32, "row float {i}");
            } else {
                assert!(x.is_nan(), "row wrote {i}");
            }
        }
    }

    #[test]
    fn phase_taps_cover_each_kernel_tap_once() {
        // Every (kernel, padding) pair: each tap lands at an offset inside
        // its phase kernel, and the span is as tight as the taps allow.
        for k in 1..=9 {
            for p in 0..=5 {
                let (pad, taps) = phase_taps(k, p);
                let offsets: Vec<isize> = (0..k)
                    .map(|t| (t as isize - p as isize).div_euclid(2) + pad as isize)
                    .collect();
                assert!(
                    offsets.iter().all(|&o| o >= 0 && (o as usize) < taps),
                    "k {k} p {p}"
                );
                assert_eq!(offsets.iter().min(), Some(&0), "k {k} p {p}");
                assert_eq!(
                    *offsets.iter().max().unwrap() as usize,
                    taps - 1,
                    "k {k} p {p}"
                );
            }
        }
        assert_eq!(phase_taps(7, 3), (2, 4));
        assert_eq!(phase_taps(3, 1), (1, 2));
    }
}
