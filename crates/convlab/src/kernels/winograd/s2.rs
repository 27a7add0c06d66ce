//! Winograd on the four phases of stride-2 forwards: F(3x3, 4x4) for
//! kernels of up to 8 taps per axis (ResNet's 7x7 stem), F(4x4, 2x2) for
//! kernels of up to 4 (ResNet's 3x3 stride-2 layers).
//!
//! A stride-2 convolution is a stride-1 one over the input's four phases
//! (even or odd rows times even or odd columns) taken as channels, each
//! with its share of the kernel's taps: a 7x7 kernel leaves at most four
//! per axis in every phase, a 3x3 kernel at most two. The phase kernels run
//! as one Winograd layer with four reduction channels per input channel
//! ([`Tiling`]): F(3x3, 4x4) is the transpose of the F(4x4, 3x3) in
//! [`super`] (same points, same input transform `B^T`), 36
//! products per 3x3 tile where the 7x7 kernel takes 49 multiplies per
//! output; F(4x4, 2x2) takes 25 products per 4x4 tile where the 3x3 kernel
//! takes 9 per output. The phases are read in place from the input, every
//! second float of a row, so no phase tensor is made.
//!
//! Over one tile, `Y = A^T [(G h G^T) ⊙ (B^T d B)] A` for a phase kernel
//! `h` and phase patch `d`, summed over the reduction channels in the
//! transformed domain: one GEMM per point of the tile.

use super::super::simd::{dispatch_simd, Simd};
use super::weight_grad::gt3;
use super::{bt, zero_span};
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

/// The Winograd tiling of a stride-2 layer's phase kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiling {
    /// F(4x4, 2x2) on points 0, 1, -1, 2 and infinity: phase kernels of at
    /// most 2x2 (3x3 and 4x4 kernels).
    F4x2,
    /// F(3x3, 4x4) on points 0, 1, -1, 2, -2 and infinity: phase kernels of
    /// at most 4x4 (kernels up to 8x8).
    F3x4,
}

impl Tiling {
    /// The tiling for `g`'s phase kernels, if they are at most 4x4.
    pub fn of(g: &ConvGeometry) -> Option<Tiling> {
        let taps = phase_taps(g.kh, g.pt).1.max(phase_taps(g.kw, g.pl).1);
        match taps {
            0 => None,
            1..=2 => Some(Tiling::F4x2),
            3..=4 => Some(Tiling::F3x4),
            _ => None,
        }
    }
    /// Outputs per tile side.
    pub fn step(self) -> usize {
        match self {
            Tiling::F4x2 => 4,
            Tiling::F3x4 => 3,
        }
    }
    /// Phase-kernel taps per side (smaller phase kernels are zero-padded).
    pub fn taps(self) -> usize {
        match self {
            Tiling::F4x2 => 2,
            Tiling::F3x4 => 4,
        }
    }
    /// Input samples per tile side: `step + taps - 1`.
    pub fn side(self) -> usize {
        self.step() + self.taps() - 1
    }
    /// Products (GEMMs) per tile: `side` squared.
    pub fn points(self) -> usize {
        self.side() * self.side()
    }
}

/// Whether Winograd on the phases handles `g`: stride 2, dilation 1, one
/// group, phase kernels of at most 4x4 ([`Tiling::of`]), non-empty, and a
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
        && Tiling::of(g).is_some_and(|t| {
            t.points()
                .checked_mul(4 * g.c_in)
                .and_then(|x| x.checked_mul(g.c_out))
                .is_some_and(|x| x <= MAX_FILTER_FLOATS)
        })
}

/// The tiling of a geometry [`applies`] holds for.
fn tiling(g: &ConvGeometry) -> Tiling {
    Tiling::of(g).unwrap_or(Tiling::F3x4)
}

/// Tiles of `g`: `(tiles per column, tiles per row, total over the batch)`.
pub fn tiles(g: &ConvGeometry) -> (usize, usize, usize) {
    let step = tiling(g).step();
    let (th, tw) = (g.oh.div_ceil(step), g.ow.div_ceil(step));
    (th, tw, g.n * th * tw)
}

/// Floats between the products' blocks of the transformed filter. The 16
/// spare floats keep the blocks' rows for one output channel out of one
/// L1 set (blocks of 4 x 64 x 128 floats are 128 KiB apart otherwise: the
/// transform ran 3x slower).
pub fn filter_xi_stride(g: &ConvGeometry) -> usize {
    4 * g.c_in * g.c_out + 16
}

/// The transformed filter `G h G^T` of every phase kernel `h`, packed for
/// [`super::super::ukernel`]: `u[xi * filter_xi_stride(g) + (4 c + ph) * c_out +
/// m]` for product `xi`, input channel `c`, phase `ph = 2 * row phase +
/// column phase` and output channel `m`, the A of product `xi` a dense
/// `[4 c_in][c_out]` block. `weight` is `[c_out, c_in, kh, kw]`; `u` holds
/// `points * filter_xi_stride(g)` floats.
pub fn filter(g: &ConvGeometry, weight: &[f32], u: &mut [f32]) {
    // G of each tiling, computed in f64 and rounded once. F(3x3, 4x4)'s is
    // the A of F(4x4, 3x3) (its points' powers 0..3).
    const G42: [[f64; 4]; 5] = [
        [0.5, 0.0, 0.0, 0.0],
        [-0.5, -0.5, 0.0, 0.0],
        [-1.0 / 6.0, 1.0 / 6.0, 0.0, 0.0],
        [1.0 / 6.0, 1.0 / 3.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
    ];
    const G34: [[f64; 4]; 6] = [
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 1.0],
        [1.0, -1.0, 1.0, -1.0],
        [1.0, 2.0, 4.0, 8.0],
        [1.0, -2.0, 4.0, -8.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    match tiling(g) {
        Tiling::F4x2 => filter_tiled::<5, 2>(g, weight, &G42, u),
        Tiling::F3x4 => filter_tiled::<6, 4>(g, weight, &G34, u),
    }
}

/// [`filter`] for tiles of `SIDE` points and phase kernels of `TAPS`.
fn filter_tiled<const SIDE: usize, const TAPS: usize>(
    g: &ConvGeometry,
    weight: &[f32],
    gm: &[[f64; 4]; SIDE],
    u: &mut [f32],
) {
    let (ptop, _) = phase_taps(g.kh, g.pt);
    let (pleft, _) = phase_taps(g.kw, g.pl);
    let xs = filter_xi_stride(g);
    debug_assert!(u.len() >= SIDE * SIDE * xs);
    debug_assert!(weight.len() >= g.c_out * g.c_in * g.kh * g.kw);
    // Each kernel tap's phase and place in its phase kernel.
    let place = |tap: usize, p: usize, pad: usize| {
        let q = tap as isize - p as isize;
        (
            q.rem_euclid(2) as usize,
            (q.div_euclid(2) + pad as isize) as usize,
        )
    };
    let taps: Vec<(usize, usize, usize, usize)> = (0..g.kh * g.kw)
        .map(|t| {
            let (r, b) = place(t / g.kw, g.pt, ptop);
            let (s, bx) = place(t % g.kw, g.pl, pleft);
            (t, 2 * r + s, b, bx)
        })
        .collect();
    // Output channels innermost: consecutive floats of `u`.
    for c in 0..g.c_in {
        for m in 0..g.c_out {
            let mut h = [[[0.0f64; TAPS]; TAPS]; 4];
            let w = &weight[(m * g.c_in + c) * g.kh * g.kw..][..g.kh * g.kw];
            for &(t, ph, b, bx) in &taps {
                h[ph][b][bx] = f64::from(w[t]);
            }
            for (ph, h) in h.iter().enumerate() {
                // G h, then G h G^T.
                let mut gh = [[0.0f64; TAPS]; SIDE];
                for (row, gr) in gh.iter_mut().zip(gm) {
                    for (bx, x) in row.iter_mut().enumerate() {
                        *x = (0..TAPS).map(|b| gr[b] * h[b][bx]).sum();
                    }
                }
                let at = (4 * c + ph) * g.c_out + m;
                for (i, row) in gh.iter().enumerate() {
                    for (j, gr) in gm.iter().enumerate() {
                        let v: f64 = (0..TAPS).map(|bx| row[bx] * gr[bx]).sum();
                        u[(SIDE * i + j) * xs + at] = v as f32;
                    }
                }
            }
        }
    }
}

/// `B^T d` of F(4x4, 2x2) for five vectors.
#[inline(always)]
unsafe fn bt5<S: Simd>(d: [S::V; 5]) -> [S::V; 5] {
    // SAFETY: arithmetic only, under the caller's target features.
    unsafe {
        let two = S::splat(2.0);
        let m31 = S::sub(d[3], d[1]);
        [
            S::fma(two, S::sub(d[0], d[2]), m31),
            S::sub(S::sub(d[3], d[2]), S::mul(two, d[1])),
            S::sub(S::fma(two, d[1], d[3]), S::mul(S::splat(3.0), d[2])),
            m31,
            S::fma(two, S::sub(d[1], d[3]), S::sub(d[4], d[2])),
        ]
    }
}

/// `A^T m` of F(4x4, 2x2) for five vectors: four outputs.
#[inline(always)]
unsafe fn at5<S: Simd>(m: [S::V; 5]) -> [S::V; 4] {
    // SAFETY: arithmetic only, under the caller's target features.
    unsafe {
        let s12 = S::add(m[1], m[2]);
        let d12 = S::sub(m[1], m[2]);
        [
            S::add(S::add(m[0], s12), m[3]),
            S::fma(S::splat(2.0), m[3], d12),
            S::fma(S::splat(4.0), m[3], s12),
            S::add(S::fma(S::splat(8.0), m[3], d12), m[4]),
        ]
    }
}

/// The first `M` of `N` vectors (the rest zero). A plain loop, inlined:
/// `array::from_fn` closures carrying vectors were left out of line in
/// other kernels, where the intrinsics then ran as calls.
#[inline(always)]
unsafe fn resize<S: Simd, const N: usize, const M: usize>(v: [S::V; N]) -> [S::V; M] {
    // SAFETY: `zero` only, under the caller's target features.
    let mut out = [unsafe { S::zero() }; M];
    for (o, x) in out.iter_mut().zip(v) {
        *o = x;
    }
    out
}

/// `B^T d` for `A` (5 or 6) vectors.
#[inline(always)]
unsafe fn bt_n<S: Simd, const A: usize>(d: [S::V; A]) -> [S::V; A] {
    // SAFETY: arithmetic only; each arm runs only for its `A`.
    unsafe {
        if A == 5 {
            resize::<S, 5, A>(bt5::<S>(resize::<S, A, 5>(d)))
        } else {
            resize::<S, 6, A>(bt::<S>(resize::<S, A, 6>(d)))
        }
    }
}

/// The output transform of `A` (5 or 6) vectors: `STEP` (4 or 3) outputs.
#[inline(always)]
unsafe fn out_n<S: Simd, const A: usize, const STEP: usize>(m: [S::V; A]) -> [S::V; STEP] {
    // SAFETY: arithmetic only; each arm runs only for its `A` and `STEP`.
    unsafe {
        if A == 5 {
            resize::<S, 4, STEP>(at5::<S>(resize::<S, A, 5>(m)))
        } else {
            resize::<S, 3, STEP>(gt3::<S>(resize::<S, A, 6>(m)))
        }
    }
}

/// Tiles rounded up to whole vectors of `lanes`.
fn tiles_padded(tw: usize, lanes: usize) -> usize {
    tw.next_multiple_of(lanes)
}

/// Floats of a phase row buffer: `step` per tile, the overlap, and room
/// for whole-vector reads past the end.
fn row_len(g: &ConvGeometry, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    4 * tiles_padded(tw, lanes) + 4 * lanes
}

/// Scratch floats [`input_block`] needs for `rows` tile rows.
pub fn input_scratch_len(g: &ConvGeometry, rows: usize, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    12 * row_len(g, lanes) + 36 * (rows * tw + 2 * lanes)
}

/// Scratch floats [`output_block`] needs for `rows` tile rows.
pub fn output_scratch_len(g: &ConvGeometry, rows: usize, lanes: usize) -> usize {
    let (_, tw, _) = tiles(g);
    16 * (rows * tw + 2 * lanes) + row_len(g, lanes)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn input_tiled<S: Simd, const STEP: usize, const A: usize>(
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
    let wp = row_len(g, lanes);
    let ldd = (r1 - r0) * tw + 2 * lanes;
    let (rows, rest) = scratch.split_at_mut(12 * wp);
    let (pr, tr) = rows.split_at_mut(6 * wp);
    let d = &mut rest[..36 * ldd];
    let (h, w) = (g.h, g.w);
    let (ptop, _) = phase_taps(g.kh, g.pt);
    let (pleft, _) = phase_taps(g.kw, g.pl);
    // Row floats the vertical transform reads (whole vectors).
    let need = (STEP * tw + A - STEP).next_multiple_of(lanes).min(wp);
    let nt = (r1 - r0) * tw;
    // SAFETY (whole body): `plane(img)` points at the channel's `[h, w]`
    // plane in image `img` (caller); row slices lie inside `scratch` (sized
    // by `input_scratch_len`); `v` holds, for each of the 4 phases
    // (`phase_stride` apart), A * A rows (`xi_stride` apart) of `nt` tiles
    // rounded up to whole vectors.
    unsafe {
        for ph in 0..4 {
            let (r, s) = (ph / 2, ph % 2);
            // Phase columns in the plane: input columns s, s + 2, ...
            let nx = w.saturating_sub(s).div_ceil(2);
            for row in r0..r1 {
                let (img, ty) = (row / th, row % th);
                let x = plane(img);
                // pr[i][q] = phase (r, s) at (STEP ty + i - ptop, q -
                // pleft), zero outside, for the q < need that the
                // transform reads.
                for i in 0..A {
                    let buf = &mut pr[i * wp..][..wp];
                    let iy = (STEP * ty + i)
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
                        let even = S::load_evens_n(src.add(2 * q), k);
                        S::store_n(buf.as_mut_ptr().add(lo + q), even, k);
                        q += k;
                    }
                    zero_span::<S>(buf, lo + n, need);
                }
                // tr[j] = B^T down the A rows, along x.
                let mut q = 0;
                while q < need {
                    let rows: [S::V; A] =
                        std::array::from_fn(|i| S::load(pr.as_ptr().add(i * wp + q)));
                    for (j, val) in bt_n::<S, A>(rows).into_iter().enumerate() {
                        S::store(tr.as_mut_ptr().add(j * wp + q), val);
                    }
                    q += lanes;
                }
                // d[j][k][t] = tr[j][STEP tx + k] for this row's tiles t
                // (rows 6 apart; F(4x4, 2x2) spills a sixth column into
                // the unused one). Later rows overwrite the whole-vector
                // spill of earlier ones.
                let t0 = (row - r0) * tw;
                for j in 0..A {
                    let src = tr.as_ptr().add(j * wp);
                    let dj = d.as_mut_ptr().add(j * 6 * ldd + t0);
                    let mut tx = 0;
                    while tx < tw {
                        let at = |k: usize| dj.add(k * ldd + tx);
                        let cols = [at(0), at(1), at(2), at(3), at(4), at(5)];
                        if STEP == 4 {
                            S::deinterleave4_6(src.add(4 * tx), cols);
                        } else {
                            S::deinterleave3_6(src.add(3 * tx), cols);
                        }
                        tx += lanes;
                    }
                }
            }
            // V[A j + k'] = B^T across d[j][0..A], a vector of tiles at once.
            let vp = v.add(ph * phase_stride);
            let mut t = 0;
            while t < nt {
                for j in 0..A {
                    let dk: [S::V; A] =
                        std::array::from_fn(|k| S::load(d.as_ptr().add((j * 6 + k) * ldd + t)));
                    for (k, val) in bt_n::<S, A>(dk).into_iter().enumerate() {
                        S::store(vp.add((j * A + k) * xi_stride + t), val);
                    }
                }
                t += lanes;
            }
        }
    }
}

#[inline(always)]
unsafe fn input_body<S: Simd>(
    g: &ConvGeometry,
    plane: &dyn Fn(usize) -> *const f32,
    rows: (usize, usize),
    v: *mut f32,
    phase_stride: usize,
    xi_stride: usize,
    scratch: &mut [f32],
) {
    // SAFETY: forwarded from `input_block`'s contract.
    unsafe {
        match tiling(g) {
            Tiling::F4x2 => {
                input_tiled::<S, 4, 5>(g, plane, rows, v, phase_stride, xi_stride, scratch)
            }
            Tiling::F3x4 => {
                input_tiled::<S, 3, 6>(g, plane, rows, v, phase_stride, xi_stride, scratch)
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
    /// As described: every plane readable; `v` writable for 4 phases of
    /// `points` rows of `(r1 - r0) * tw` rounded up to whole vectors.
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
#[allow(clippy::too_many_arguments)]
unsafe fn output_tiled<S: Simd, const STEP: usize, const A: usize>(
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
    let (e, rest) = scratch.split_at_mut(16 * lde);
    let row = &mut rest[..row_len(g, lanes)];
    let (oh, ow) = (g.oh, g.ow);
    // SAFETY (whole body): `m` holds A * A rows (`xi_stride` apart) of the
    // block's tiles rounded up to whole vectors; `e` and `row` lie inside
    // `scratch`; `plane(img)` points at this channel's `[oh, ow]` output
    // plane, written only inside it.
    unsafe {
        let nt = (r1 - r0) * tw;
        let mut t = 0;
        while t < nt {
            // The output transform down the rows of each column, then
            // across columns.
            let mut cols = [[S::zero(); STEP]; A];
            for (k, col) in cols.iter_mut().enumerate() {
                let mk: [S::V; A] =
                    std::array::from_fn(|j| S::load(m.add((j * A + k) * xi_stride + t)));
                *col = out_n::<S, A, STEP>(mk);
            }
            for a in 0..STEP {
                let y = out_n::<S, A, STEP>(std::array::from_fn(|k| cols[k][a]));
                for (b, val) in y.into_iter().enumerate() {
                    S::store(e.as_mut_ptr().add((a * STEP + b) * lde + t), val);
                }
            }
            t += lanes;
        }
        for r in r0..r1 {
            let (img, ty) = (r / th, r % th);
            let out = plane(img);
            let t0 = (r - r0) * tw;
            for a in 0..STEP {
                let oy = STEP * ty + a;
                if oy >= oh {
                    break;
                }
                // Interleave the columns of this row's tiles, then copy
                // the columns inside the plane.
                let mut tx = 0;
                while tx < tw {
                    let src = |b: usize| e.as_ptr().add((a * STEP + b) * lde + t0 + tx);
                    let dst = row.as_mut_ptr().add(STEP * tx);
                    if STEP == 4 {
                        S::interleave4([src(0), src(1), src(2), src(3)], dst);
                    } else {
                        S::interleave3([src(0), src(1), src(2)], dst);
                    }
                    tx += lanes;
                }
                let dst = out.add(oy * ow);
                if stream {
                    S::stream_n(row.as_ptr(), dst, ow);
                } else {
                    S::copy_n(row.as_ptr(), dst, ow);
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn output_body<S: Simd>(
    g: &ConvGeometry,
    m: *const f32,
    xi_stride: usize,
    rows: (usize, usize),
    plane: &dyn Fn(usize) -> *mut f32,
    stream: bool,
    scratch: &mut [f32],
) {
    // SAFETY: forwarded from `output_block`'s contract.
    unsafe {
        match tiling(g) {
            Tiling::F4x2 => output_tiled::<S, 4, 5>(g, m, xi_stride, rows, plane, stream, scratch),
            Tiling::F3x4 => output_tiled::<S, 3, 6>(g, m, xi_stride, rows, plane, stream, scratch),
        }
    }
}

dispatch_simd! {
    /// The output transform of one output channel for tile rows `[r0,
    /// r1)`: `m[xi * xi_stride + t]` are its transformed rows; the tiles,
    /// clipped at the plane's right and bottom edges, are written to
    /// `plane(img)`, the channel's dense `[oh, ow]` plane in image `img`.
    /// With `stream`, rows are stored around the caches, their whole cache
    /// lines streamed (the caller fences). `scratch` holds
    /// [`output_scratch_len`] floats.
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
        let lanes = crate::kernels::ukernel::menu().lanes;
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
