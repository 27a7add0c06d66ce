//! Winograd minimal filtering F(4x4, 3x3) for 3x3, stride-1, dilation-1,
//! ungrouped convolutions (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", CVPR 2016).
//!
//! Each 4x4 output tile is `A^T [ (G g G^T) ⊙ (B^T d B) ] A` for the 6x6
//! input patch `d` at the tile; summed over input channels, the elementwise
//! product becomes 36 independent matrix products
//! `M[e] [c_out, T] = U[e] [c_out, c_in] @ V[e] [c_in, T]` over a block of `T`
//! tiles: 36 multiplies per 16 outputs per channel pair instead of 144
//! (2.25x fewer than direct/im2col before transform overheads).
//!
//! Layouts: `U [36][c_out][c_in]`, `V [36][c_in][T]`, `M [36][c_out][T]`,
//! so each GEMM reads and writes dense matrices. (`[c][36][T]` layouts, one
//! contiguous chunk per channel task, made `V[e]` rows 36*T apart: a page
//! per row, and resnet_3x3_64 fwd 5.8 -> 7.1 ms with the AVX-512 kernel.)
//! The transforms of one channel get its 36 rows as slices.
//!
//! Accuracy: F(4,3)'s transforms have coefficients up to 5 (B), 1/24 (G) and
//! 8 (A), so rounding grows faster than for F(2,3). Measured normalized max
//! error against the f64 reference (`ops::conv2d` test
//! `winograd_error_on_wide_channels`): forward 3.7e-6 at 64 input channels,
//! 7.3e-6 at 256, 1.1e-5 at 512; input gradient 1.3e-6..3.3e-6 — all under
//! the fixtures' 1e-4, so F(4,3) is kept over F(2,3).
//!
//! The transforms are vectorised over 16 tiles at a time ([`LANES`]), in
//! fixed-size arrays the compiler turns into AVX-512/AVX2 vectors under the
//! runtime ISA dispatch of [`super::isa`].

use super::isa::{dispatch_isa, madd};
use crate::shape::ConvGeometry;

/// Tiles transformed together (one AVX-512 vector).
pub const LANES: usize = 16;
type Lane = [f32; LANES];

/// Whether the Winograd kernel handles `g`: 3x3, stride 1, dilation 1, one
/// group, non-empty.
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

/// Floats of the transformed filter `U`.
pub fn filter_len(g: &ConvGeometry) -> usize {
    36 * g.c_out * g.c_in
}

/// Scratch floats one thread needs for [`winograd_input_tf`] or
/// [`winograd_output_tf`]: six zero-padded input rows of a tile row.
pub fn winograd_workspace_len(g: &ConvGeometry) -> usize {
    let (_, tw, _) = tiles(g);
    6 * (4 * tw.next_multiple_of(LANES) + 2)
}

#[inline(always)]
fn zero() -> Lane {
    [0.0; LANES]
}

/// `B^T d` for the six lanes `d` (one column of six patch rows, or one row
/// of six patch columns).
#[inline(always)]
fn bt<const FMA: bool>(d: &[Lane; 6]) -> [Lane; 6] {
    let mut o = [zero(); 6];
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4, d5) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]);
        o[0][l] = madd::<FMA>(4.0, d0, madd::<FMA>(-5.0, d2, d4));
        o[1][l] = madd::<FMA>(-4.0, d1 + d2, d3 + d4);
        o[2][l] = madd::<FMA>(4.0, d1 - d2, d4 - d3);
        o[3][l] = madd::<FMA>(2.0, d3 - d1, d4 - d2);
        o[4][l] = madd::<FMA>(2.0, d1 - d3, d4 - d2);
        o[5][l] = madd::<FMA>(4.0, d1, madd::<FMA>(-5.0, d3, d5));
    }
    o
}

/// `A^T m` for six lanes: four outputs.
#[inline(always)]
fn at<const FMA: bool>(m: &[Lane; 6]) -> [Lane; 4] {
    let mut o = [zero(); 4];
    for l in 0..LANES {
        let (m0, m1, m2, m3, m4, m5) = (m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]);
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        o[0][l] = m0 + s12 + s34;
        o[1][l] = madd::<FMA>(2.0, d34, d12);
        o[2][l] = madd::<FMA>(4.0, s34, s12);
        o[3][l] = madd::<FMA>(8.0, d34, d12) + m5;
    }
    o
}

/// `G g` for three lanes: six outputs.
#[inline(always)]
fn gt<const FMA: bool>(g: &[Lane; 3]) -> [Lane; 6] {
    let mut o = [zero(); 6];
    for l in 0..LANES {
        let (g0, g1, g2) = (g[0][l], g[1][l], g[2][l]);
        o[0][l] = g0 * 0.25;
        o[1][l] = (g0 + g1 + g2) * (-1.0 / 6.0);
        o[2][l] = (g0 - g1 + g2) * (-1.0 / 6.0);
        o[3][l] = madd::<FMA>(
            1.0 / 24.0,
            g0,
            madd::<FMA>(1.0 / 12.0, g1, g2 * (1.0 / 6.0)),
        );
        o[4][l] = madd::<FMA>(
            1.0 / 24.0,
            g0,
            madd::<FMA>(-1.0 / 12.0, g1, g2 * (1.0 / 6.0)),
        );
        o[5][l] = g2;
    }
    o
}

#[inline(always)]
fn filter_body<const FMA: bool>(c_in: usize, w_co: &[f32], u_rows: &mut [&mut [f32]]) {
    debug_assert_eq!(w_co.len(), c_in * 9);
    debug_assert_eq!(u_rows.len(), 36);
    let mut c0 = 0;
    while c0 < c_in {
        let len = LANES.min(c_in - c0);
        let mut g = [[zero(); 3]; 3]; // g[row][col][lane]
        for l in 0..len {
            let w = &w_co[(c0 + l) * 9..][..9];
            for r in 0..3 {
                for c in 0..3 {
                    g[r][c][l] = w[r * 3 + c];
                }
            }
        }
        // Columns first: gc[c] = G g[:, c] (six rows), then rows.
        let gc: [[Lane; 6]; 3] = [
            gt::<FMA>(&[g[0][0], g[1][0], g[2][0]]),
            gt::<FMA>(&[g[0][1], g[1][1], g[2][1]]),
            gt::<FMA>(&[g[0][2], g[1][2], g[2][2]]),
        ];
        for i in 0..6 {
            let row = gt::<FMA>(&[gc[0][i], gc[1][i], gc[2][i]]);
            for j in 0..6 {
                u_rows[i * 6 + j][c0..][..len].copy_from_slice(&row[j][..len]);
            }
        }
        c0 += len;
    }
}

dispatch_isa! {
    /// The filter transform `G g G^T` of one output channel: `w_co` is its
    /// `[c_in, 3, 3]` weight, `u_rows[e]` its row `U[e][co]` (`c_in` long).
    pub fn winograd_filter_tf(c_in: usize, w_co: &[f32], u_rows: &mut [&mut [f32]]) => filter_body
}

/// The runs of tiles of block `[t0, t1)` that lie in one tile row, as
/// `(img, ty, tx_lo, tx_hi, offset)`; `offset` counts from `t0`. (An
/// iterator, not a closure-taking helper: closures do not inherit the
/// `target_feature`s of the function they are written in, and the bodies
/// here must compile with AVX-512 / FMA.)
#[inline(always)]
fn segments(
    g: &ConvGeometry,
    t0: usize,
    t1: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> {
    let (th, tw, _) = tiles(g);
    let mut t = t0;
    std::iter::from_fn(move || {
        if t >= t1 {
            return None;
        }
        let (row, tx) = (t / tw, t % tw);
        let hi = (tw - tx).min(t1 - t) + tx;
        let seg = (row / th, row % th, tx, hi, t - t0);
        t += hi - tx;
        Some(seg)
    })
}

#[inline(always)]
fn input_body<const FMA: bool>(
    g: &ConvGeometry,
    input: &[f32],
    c: usize,
    t0: usize,
    t1: usize,
    v_rows: &mut [&mut [f32]],
    scratch: &mut [f32],
) {
    debug_assert!(v_rows.len() == 36 && v_rows[0].len() >= t1 - t0);
    let (h, w) = (g.h, g.w);
    for (img, ty, tx0, tx1, off) in segments(g, t0, t1) {
        let x = &input[(img * g.c_in + c) * h * w..][..h * w];
        let n_t = tx1 - tx0;
        let wp = 4 * n_t.next_multiple_of(LANES) + 2;
        // rows[i][p] = x[4*ty + i - pt][4*tx0 + p - pl], zero outside.
        let rows = &mut scratch[..6 * wp];
        let col0 = (4 * tx0) as isize - g.pl as isize;
        for i in 0..6 {
            let dst = &mut rows[i * wp..][..wp];
            dst.fill(0.0);
            let Some(iy) = (4 * ty + i).checked_sub(g.pt).filter(|&iy| iy < h) else {
                continue;
            };
            let src = &x[iy * w..][..w];
            // p in [lo, hi) maps to column col0 + p in [0, w).
            let lo = (-col0).max(0) as usize;
            let hi = ((w as isize - col0).max(0) as usize).min(wp);
            if lo < hi {
                let s = (col0 + lo as isize) as usize;
                dst[lo..hi].copy_from_slice(&src[s..s + hi - lo]);
            }
        }
        let mut j0 = 0;
        while j0 < n_t {
            let len = LANES.min(n_t - j0);
            // d[i][k][l] = patch element (i, k) of tile j0 + l.
            let mut d = [[zero(); 6]; 6];
            for i in 0..6 {
                let r = &rows[i * wp + 4 * j0..][..4 * LANES + 2];
                for l in 0..LANES {
                    for k in 0..6 {
                        d[i][k][l] = r[4 * l + k];
                    }
                }
            }
            // Columns: c[k] = B^T d[:, k]; then rows.
            let mut cols = [[zero(); 6]; 6]; // cols[k][i]
            for k in 0..6 {
                cols[k] = bt::<FMA>(&[d[0][k], d[1][k], d[2][k], d[3][k], d[4][k], d[5][k]]);
            }
            for i in 0..6 {
                let row = bt::<FMA>(&[
                    cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i],
                ]);
                for (k, lane) in row.iter().enumerate() {
                    v_rows[i * 6 + k][off + j0..][..len].copy_from_slice(&lane[..len]);
                }
            }
            j0 += len;
        }
    }
}

dispatch_isa! {
    /// The input transform `B^T d B` of channel `c` for tiles `[t0, t1)`
    /// (counted over the whole batch) into `v_rows[e]`, the row `V[e][c]`
    /// (at least `t1 - t0` long); `scratch` holds
    /// [`winograd_workspace_len`] floats.
    pub fn winograd_input_tf(
        g: &ConvGeometry,
        input: &[f32],
        c: usize,
        t0: usize,
        t1: usize,
        v_rows: &mut [&mut [f32]],
        scratch: &mut [f32],
    ) => input_body
}

#[inline(always)]
fn output_segments<const FMA: bool>(
    g: &ConvGeometry,
    m_rows: &[&[f32]],
    t0: usize,
    t1: usize,
    img0: usize,
    planes: &mut [&mut [f32]],
) {
    debug_assert!(m_rows.len() == 36 && m_rows[0].len() >= t1 - t0);
    let (oh, ow) = (g.oh, g.ow);
    for (img, ty, tx0, tx1, off) in segments(g, t0, t1) {
        let plane = &mut *planes[img - img0];
        let n_t = tx1 - tx0;
        let mut j0 = 0;
        while j0 < n_t {
            let len = LANES.min(n_t - j0);
            // rowt[i][j] = A^T applied along the row i of m (over k).
            let mut rowt = [[zero(); 4]; 6];
            for i in 0..6 {
                let mut m = [zero(); 6];
                for k in 0..6 {
                    m[k][..len].copy_from_slice(&m_rows[i * 6 + k][off + j0..][..len]);
                }
                rowt[i] = at::<FMA>(&m);
            }
            for j in 0..4 {
                let y = at::<FMA>(&[
                    rowt[0][j], rowt[1][j], rowt[2][j], rowt[3][j], rowt[4][j], rowt[5][j],
                ]);
                for (a, lane) in y.iter().enumerate() {
                    let oy = 4 * ty + a;
                    if oy >= oh {
                        break;
                    }
                    let orow = &mut plane[oy * ow..][..ow];
                    for l in 0..len {
                        let ox = 4 * (tx0 + j0 + l) + j;
                        if ox < ow {
                            orow[ox] = lane[l];
                        }
                    }
                }
            }
            j0 += len;
        }
    }
}

dispatch_isa! {
    /// The output transform `A^T m A` of one output channel for tiles
    /// `[t0, t1)`: `m_rows[e]` is the row `M[e][co]`; the 4x4
    /// tiles (clipped at the right and bottom edges) are written into
    /// `planes[img - img0]`, this channel's `[oh, ow]` output plane in image
    /// `img` (`img0`: the image of tile `t0`).
    pub fn winograd_output_tf(
        g: &ConvGeometry,
        m_rows: &[&[f32]],
        t0: usize,
        t1: usize,
        img0: usize,
        planes: &mut [&mut [f32]],
    ) => output_segments
}

// ---------------------------------------------------------------------------
// Weight gradient. Over one 4x4 output tile, the weight gradient is the
// correlation of the 6x6 input patch `d` with the 4x4 grad_output tile `h`,
// a 3x3 result: F(3x3, 4x4) on the same six points. Transposing F(4,3)
// (y = A^T[(G g) ⊙ (B^T d)], so z_k = d/dg_k (h . y)) gives
// z = G^T [ (A h) ⊙ (B^T d) ]: the input transform is the forward's, the
// grad_output tile goes through A (6x4), the result through G^T (3x6).

/// `A h` for four lanes: six outputs.
#[inline(always)]
fn a6<const FMA: bool>(h: &[Lane; 4]) -> [Lane; 6] {
    let mut o = [zero(); 6];
    for l in 0..LANES {
        let (h0, h1, h2, h3) = (h[0][l], h[1][l], h[2][l], h[3][l]);
        let (e, od) = (h0 + h2, h1 + h3);
        let (e4, od2) = (madd::<FMA>(4.0, h2, h0), madd::<FMA>(4.0, h3, h1));
        o[0][l] = h0;
        o[1][l] = e + od;
        o[2][l] = e - od;
        o[3][l] = madd::<FMA>(2.0, od2, e4);
        o[4][l] = madd::<FMA>(-2.0, od2, e4);
        o[5][l] = h3;
    }
    o
}

/// `G^T s` for six lanes: three outputs.
#[inline(always)]
fn gt3<const FMA: bool>(s: &[Lane; 6]) -> [Lane; 3] {
    let mut o = [zero(); 3];
    for l in 0..LANES {
        let (s0, s1, s2, s3, s4, s5) = (s[0][l], s[1][l], s[2][l], s[3][l], s[4][l], s[5][l]);
        let (p12, m12, p34, m34) = (s1 + s2, s2 - s1, s3 + s4, s3 - s4);
        o[0][l] = madd::<FMA>(0.25, s0, madd::<FMA>(-1.0 / 6.0, p12, p34 * (1.0 / 24.0)));
        o[1][l] = madd::<FMA>(1.0 / 6.0, m12, m34 * (1.0 / 12.0));
        o[2][l] = madd::<FMA>(1.0 / 6.0, p34 - p12, s5);
    }
    o
}

#[inline(always)]
fn grad_output_body<const FMA: bool>(
    g: &ConvGeometry,
    grad_output: &[f32],
    co: usize,
    t0: usize,
    t1: usize,
    y_rows: &mut [&mut [f32]],
    scratch: &mut [f32],
) {
    debug_assert!(y_rows.len() == 36 && y_rows[0].len() >= t1 - t0);
    let (oh, ow) = (g.oh, g.ow);
    for (img, ty, tx0, tx1, off) in segments(g, t0, t1) {
        let gy = &grad_output[(img * g.c_out + co) * oh * ow..][..oh * ow];
        let n_t = tx1 - tx0;
        let wp = 4 * n_t.next_multiple_of(LANES) + 2;
        let rows = &mut scratch[..4 * wp];
        for i in 0..4 {
            let dst = &mut rows[i * wp..][..wp];
            dst.fill(0.0);
            let oy = 4 * ty + i;
            if oy < oh {
                let a = 4 * tx0;
                let len = (ow - a).min(4 * n_t);
                dst[..len].copy_from_slice(&gy[oy * ow + a..][..len]);
            }
        }
        let mut j0 = 0;
        while j0 < n_t {
            let len = LANES.min(n_t - j0);
            let mut h = [[zero(); 4]; 4]; // h[i][k][l]
            for i in 0..4 {
                let r = &rows[i * wp + 4 * j0..][..4 * LANES];
                for l in 0..LANES {
                    for k in 0..4 {
                        h[i][k][l] = r[4 * l + k];
                    }
                }
            }
            let mut cols = [[zero(); 6]; 4]; // cols[k][i]
            for k in 0..4 {
                cols[k] = a6::<FMA>(&[h[0][k], h[1][k], h[2][k], h[3][k]]);
            }
            for i in 0..6 {
                let row = a6::<FMA>(&[cols[0][i], cols[1][i], cols[2][i], cols[3][i]]);
                for (k, lane) in row.iter().enumerate() {
                    y_rows[i * 6 + k][off + j0..][..len].copy_from_slice(&lane[..len]);
                }
            }
            j0 += len;
        }
    }
}

dispatch_isa! {
    /// The grad_output transform `A h A^T` of output channel `co` for
    /// tiles `[t0, t1)` into `y_rows[e]` (the row `Y[e][co]`); `scratch`
    /// holds [`winograd_workspace_len`] floats.
    pub fn winograd_grad_output_tf(
        g: &ConvGeometry,
        grad_output: &[f32],
        co: usize,
        t0: usize,
        t1: usize,
        y_rows: &mut [&mut [f32]],
        scratch: &mut [f32],
    ) => grad_output_body
}

#[inline(always)]
fn weight_out_body<const FMA: bool>(c_in: usize, s_rows: &[&[f32]], gw_co: &mut [f32]) {
    debug_assert!(s_rows.len() == 36 && gw_co.len() == c_in * 9);
    let mut c0 = 0;
    while c0 < c_in {
        let len = LANES.min(c_in - c0);
        let mut sv = [[zero(); 6]; 6];
        for i in 0..6 {
            for j in 0..6 {
                sv[i][j][..len].copy_from_slice(&s_rows[i * 6 + j][c0..][..len]);
            }
        }
        // Columns: t[j] = G^T s[:, j] (three rows), then rows.
        let mut t = [[zero(); 3]; 6];
        for j in 0..6 {
            t[j] = gt3::<FMA>(&[sv[0][j], sv[1][j], sv[2][j], sv[3][j], sv[4][j], sv[5][j]]);
        }
        for r in 0..3 {
            let z = gt3::<FMA>(&[t[0][r], t[1][r], t[2][r], t[3][r], t[4][r], t[5][r]]);
            for (c, lane) in z.iter().enumerate() {
                for l in 0..len {
                    gw_co[(c0 + l) * 9 + r * 3 + c] += lane[l];
                }
            }
        }
        c0 += len;
    }
}

dispatch_isa! {
    /// `G^T S G` for output channel `co`: `s_rows[e]` is the row `S[e][co]`
    /// (`c_in` long), the 3x3 results are added to `gw_co` (`[c_in, 3, 3]`).
    pub fn winograd_weight_out(c_in: usize, s_rows: &[&[f32]], gw_co: &mut [f32]) => weight_out_body
}

/// `m [c_out, width] = u [c_out, c_in] @ v [c_in, width]`, all dense
/// row-major, `width` a multiple of 16: one of the 36 Winograd GEMMs, on
/// the calling thread. An AVX-512 register-blocked kernel (12 rows x 32
/// columns of accumulators, `v` rows loaded, `u` elements broadcast) when
/// the CPU has it, else the `gemm` crate.
///
/// Why not the `gemm` crate everywhere: on stable Rust it runs its AVX2
/// (8-wide) kernels only; its AVX-512 ones need its `nightly` feature.
pub fn winograd_gemm(c_out: usize, c_in: usize, width: usize, u: &[f32], v: &[f32], m: &mut [f32]) {
    assert!(width % LANES == 0);
    assert!(u.len() >= c_out * c_in && v.len() >= c_in * width && m.len() >= c_out * width);
    #[cfg(target_arch = "x86_64")]
    if super::isa::isa() == super::isa::Isa::Avx512 {
        // SAFETY: AVX-512F was detected; the lengths asserted above cover
        // every element the kernel reads (u[co*c_in + p], v[p*width + j])
        // and writes (m[co*width + j]), and `m` is borrowed exclusively.
        unsafe {
            avx512::gemm(
                c_out,
                c_in,
                width,
                u.as_ptr(),
                c_in,
                v.as_ptr(),
                width,
                m.as_mut_ptr(),
                width,
            )
        };
        return;
    }
    use super::gemm::{sgemm_strided_par, MatRef};
    let a = MatRef {
        data: &u[..c_out * c_in],
        rs: c_in,
        cs: 1,
    };
    let b = MatRef {
        data: &v[..c_in * width],
        rs: width,
        cs: 1,
    };
    sgemm_strided_par(c_out, c_in, width, a, b, m, width, false, false);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    /// Rows of accumulators.
    const MR: usize = 12;

    /// `MR_` rows x `NV` vectors of 16 columns at `(co, j)`.
    #[inline(always)]
    unsafe fn block<const MR_: usize, const NV: usize>(
        c_in: usize,
        u: *const f32,
        u_rs: usize,
        v: *const f32,
        v_rs: usize,
        m: *mut f32,
        m_rs: usize,
    ) {
        // SAFETY (whole body): the caller passes pointers to the block's
        // first row/column; rows < MR_, columns < 16*NV, p < c_in are inside
        // the views the caller of `gemm` vouched for.
        //
        // Plain arrays rather than `core::arch` intrinsics (stable only
        // since Rust 1.89, above the MSRV): compiled under
        // `target_feature(enable = "avx512f")`, each `[f32; 16]` is one zmm
        // register and each inner loop one broadcast-FMA.
        unsafe {
            let mut acc = [[[0.0f32; 16]; NV]; MR_];
            for p in 0..c_in {
                let vp = v.add(p * v_rs);
                let mut b = [[0.0f32; 16]; NV];
                for (q, bq) in b.iter_mut().enumerate() {
                    *bq = *(vp.add(16 * q) as *const [f32; 16]);
                }
                for r in 0..MR_ {
                    let a = *u.add(r * u_rs + p);
                    for q in 0..NV {
                        for l in 0..16 {
                            acc[r][q][l] = a.mul_add(b[q][l], acc[r][q][l]);
                        }
                    }
                }
            }
            for r in 0..MR_ {
                for q in 0..NV {
                    *(m.add(r * m_rs + 16 * q) as *mut [f32; 16]) = acc[r][q];
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn rows<const NV: usize>(
        c_out: usize,
        c_in: usize,
        u: *const f32,
        u_rs: usize,
        v: *const f32,
        v_rs: usize,
        m: *mut f32,
        m_rs: usize,
    ) {
        // SAFETY: each call covers rows co..co+MR_ < c_out of the caller's views.
        unsafe {
            let mut co = 0;
            while co + MR <= c_out {
                block::<MR, NV>(
                    c_in,
                    u.add(co * u_rs),
                    u_rs,
                    v,
                    v_rs,
                    m.add(co * m_rs),
                    m_rs,
                );
                co += MR;
            }
            let (u, m) = (u.add(co * u_rs), m.add(co * m_rs));
            macro_rules! tail {
                ($($n:literal)*) => {
                    match c_out - co {
                        $($n => block::<$n, NV>(c_in, u, u_rs, v, v_rs, m, m_rs),)*
                        _ => {}
                    }
                };
            }
            tail!(1 2 3 4 5 6 7 8 9 10 11);
        }
    }

    /// See [`super::winograd_gemm`].
    ///
    /// # Safety
    /// AVX-512F available; every `u[co*u_rs + p]`, `v[p*v_rs + j]` readable
    /// and every `m[co*m_rs + j]` exclusively writable (co < c_out, p < c_in,
    /// j < width).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn gemm(
        c_out: usize,
        c_in: usize,
        width: usize,
        u: *const f32,
        u_rs: usize,
        v: *const f32,
        v_rs: usize,
        m: *mut f32,
        m_rs: usize,
    ) {
        // SAFETY: column panels j..j+32 (or +16) < width of the caller's views.
        unsafe {
            let mut j = 0;
            while j + 32 <= width {
                rows::<2>(c_out, c_in, u, u_rs, v.add(j), v_rs, m.add(j), m_rs);
                j += 32;
            }
            if j < width {
                rows::<1>(c_out, c_in, u, u_rs, v.add(j), v_rs, m.add(j), m_rs);
            }
        }
    }
}
