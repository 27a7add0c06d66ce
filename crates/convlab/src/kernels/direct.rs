//! Direct convolution vectorised along the output width, for layers with
//! few input channels per group: depthwise (`groups == C_in`), single-channel
//! images, LeNet's first layer. im2col would copy every input value `kh*kw`
//! times to then multiply with a matrix of one or a few rows; here each
//! output row block is accumulated in registers over all taps.
//!
//! Horizontal stride must be 1 (rows are contiguous slices); any vertical
//! stride, dilation, padding and groups. Sums run in f32 in the same tap
//! order for every output element; the weight gradient sums each output
//! row's dot product in f32 and the rows into f64.

use std::mem::MaybeUninit;

use super::isa::{dispatch_isa, madd};
use super::simd::{dispatch_simd, Simd};
use crate::shape::ConvGeometry;

/// Whether [`conv2d_direct_rows`] handles `g`.
pub fn direct_applies(g: &ConvGeometry) -> bool {
    // Empty planes have nothing to compute, and the row loops split by
    // width (`chunks_exact(0)` panics): found by the `ops` fuzz target.
    g.sw == 1 && g.h > 0 && g.w > 0 && g.oh > 0 && g.ow > 0 && workspace_fits(g)
}

/// Whether [`direct_workspace_len`]'s padded lines can be sized at all: a
/// dilation near `usize::MAX / 2` made their length wrap around to a few
/// floats, and the row loop then sliced past them.
fn workspace_fits(g: &ConvGeometry) -> bool {
    (g.kw - 1)
        .checked_mul(g.dw)
        .zip(g.ow.checked_next_multiple_of(16))
        .and_then(|(span, owr)| span.checked_add(owr)?.checked_add(16))
        .and_then(|lp| lp.checked_mul(g.cin_g().checked_mul(g.kh)?.checked_add(4)?))
        .is_some()
}

/// The output columns `[lo, hi)` whose taps all land inside the input row.
#[inline(always)]
fn interior(g: &ConvGeometry) -> (usize, usize) {
    let lo = g.pl.min(g.ow);
    let span = (g.kw - 1) * g.dw;
    // ox + span - pl < w  <=>  ox < w + pl - span
    let hi = (g.w + g.pl).saturating_sub(span).min(g.ow).max(lo);
    (lo, hi)
}

/// Whether output rows are computed from zero-padded copies of their input
/// lines: when more than 1/8 of the columns would need bounds checks
/// (lenet_c1: 4 of 28), else in-place lines and a checked edge.
#[inline(always)]
fn padded_lines(g: &ConvGeometry) -> bool {
    let (lo, hi) = interior(g);
    (g.ow - (hi - lo)) * 8 > g.ow || hi - lo < 8
}

/// Scratch floats [`conv2d_direct_rows`] needs for `g`: zero-padded copies
/// of the `cin_g * kh` input lines one output row reads, and one output row;
/// none when rows are read in place (image_3x3_1080p: 31 KB zeroed per
/// rayon task saved).
pub fn direct_workspace_len(g: &ConvGeometry) -> usize {
    if is_3x3_one_channel(g) {
        return 4 * line_len_3x3(g);
    }
    if !padded_lines(g) {
        return 0;
    }
    let owr = g.ow.next_multiple_of(8);
    let span = (g.kw - 1) * g.dw;
    g.cin_g() * g.kh * (owr + span) + owr
}

#[inline(always)]
fn rows_body<const FMA: bool>(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    row0: usize,
    out: &mut [MaybeUninit<f32>],
    scratch: &mut [f32],
) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let (h, w, ow, kh, kw) = (g.h, g.w, g.ow, g.kh, g.kw);
    let (lo, hi) = interior(g);
    let padded = padded_lines(g);
    let owr = ow.next_multiple_of(8);
    let lp = owr + (kw - 1) * g.dw;
    let (lines, tmp) = scratch.split_at_mut(if padded { cin_g * kh * lp } else { 0 });
    debug_assert!(!padded || tmp.len() >= owr);
    for (r, orow) in out.chunks_exact_mut(ow).enumerate() {
        let r = row0 + r;
        let oy = r % g.oh;
        let co = (r / g.oh) % g.c_out;
        let n = r / (g.oh * g.c_out);
        let grp = co / cout_g;
        let x = &input[(n * g.c_in + grp * cin_g) * h * w..][..cin_g * h * w];
        let wt = &weight[co * cin_g * kh * kw..][..cin_g * kh * kw];
        let iy_of = |ki: usize| {
            (oy * g.sh + ki * g.dh)
                .checked_sub(g.pt)
                .filter(|&iy| iy < h)
        };
        if padded {
            // Line (ci, ki) at padded column p holds input column p - pl.
            for ci in 0..cin_g {
                for ki in 0..kh {
                    let dst = &mut lines[(ci * kh + ki) * lp..][..lp];
                    dst.fill(0.0);
                    if let Some(iy) = iy_of(ki) {
                        let src = &x[(ci * h + iy) * w..][..w];
                        let a = g.pl.min(lp);
                        let len = w.min(lp - a);
                        dst[a..a + len].copy_from_slice(&src[..len]);
                    }
                }
            }
            let line = |ci: usize, ki: usize| Some(&lines[(ci * kh + ki) * lp..][..lp]);
            let row = crate::memory::as_uninit(&mut tmp[..owr]);
            if owr >= 64 {
                blocks::<FMA, 64>(g, wt, line, 0, 0, owr, row);
            } else if owr >= 16 {
                blocks::<FMA, 16>(g, wt, line, 0, 0, owr, row);
            } else {
                blocks::<FMA, 8>(g, wt, line, 0, 0, owr, row);
            }
            write_all(orow, &tmp[..ow]);
            continue;
        }
        for ox in (0..lo).chain(hi..ow) {
            orow[ox].write(edge::<FMA>(g, x, wt, oy, ox));
        }
        let line = |ci: usize, ki: usize| iy_of(ki).map(|iy| &x[(ci * h + iy) * w..][..w]);
        // Register blocks of 64 or 16 columns; a last block may overlap the
        // one before (it writes, not adds).
        if hi - lo >= 64 {
            blocks::<FMA, 64>(g, wt, line, g.pl, lo, hi, orow);
        } else if hi - lo >= 16 {
            blocks::<FMA, 16>(g, wt, line, g.pl, lo, hi, orow);
        } else {
            blocks::<FMA, 8>(g, wt, line, g.pl, lo, hi, orow);
        }
    }
}

/// Output `(oy, ox)` of one plane, taps bounds-checked (edge columns). A
/// function, not a closure: closures do not inherit the caller's
/// `target_feature`s, and this one called a software `fmaf` per tap
/// (mobilenet_dw_3x3: 12% of the samples).
#[inline(always)]
fn edge<const FMA: bool>(g: &ConvGeometry, x: &[f32], wt: &[f32], oy: usize, ox: usize) -> f32 {
    let (h, w, kh, kw) = (g.h, g.w, g.kh, g.kw);
    let mut acc = 0.0f32;
    for ci in 0..g.cin_g() {
        for ki in 0..kh {
            let Some(iy) = (oy * g.sh + ki * g.dh)
                .checked_sub(g.pt)
                .filter(|&iy| iy < h)
            else {
                continue;
            };
            let line = &x[(ci * h + iy) * w..][..w];
            for kj in 0..kw {
                if let Some(ix) = (ox + kj * g.dw).checked_sub(g.pl).filter(|&ix| ix < w) {
                    acc = madd::<FMA>(wt[(ci * kh + ki) * kw + kj], line[ix], acc);
                }
            }
        }
    }
    acc
}

/// Columns `[lo, hi)` (`hi - lo >= B`) of one output row in blocks of `B`
/// accumulated in registers over every tap; tap `(ci, ki, kj)` of column
/// `ox` reads `line(ci, ki)[ox + kj*dw - sub]` (`None`: a zero row).
#[inline(always)]
fn blocks<'a, const FMA: bool, const B: usize>(
    g: &ConvGeometry,
    wt: &[f32],
    line: impl Fn(usize, usize) -> Option<&'a [f32]>,
    sub: usize,
    lo: usize,
    hi: usize,
    orow: &mut [MaybeUninit<f32>],
) {
    let (kh, kw) = (g.kh, g.kw);
    let mut x0 = lo;
    while x0 < hi {
        let start = x0.min(hi - B);
        let mut acc = [0.0f32; B];
        for ci in 0..g.cin_g() {
            for ki in 0..kh {
                let Some(line) = line(ci, ki) else { continue };
                let wr = &wt[(ci * kh + ki) * kw..][..kw];
                for (kj, &wv) in wr.iter().enumerate() {
                    let s = &line[start + kj * g.dw - sub..][..B];
                    for i in 0..B {
                        acc[i] = madd::<FMA>(wv, s[i], acc[i]);
                    }
                }
            }
        }
        write_all(&mut orow[start..start + B], &acc);
        x0 = start + B;
    }
}

/// `dst[i] = src[i]`, into memory that may be uninitialised.
#[inline(always)]
fn write_all(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        d.write(v);
    }
}

dispatch_isa! {
    /// [`conv2d_direct_rows`] for any geometry it takes.
    fn direct_rows_any(
        g: &ConvGeometry,
        input: &[f32],
        weight: &[f32],
        row0: usize,
        out: &mut [MaybeUninit<f32>],
        scratch: &mut [f32],
    ) => rows_body
}

/// Output rows `row0 .. row0 + out.len() / ow` (rows counted over the
/// whole `[n, c_out, oh]` output) of the convolution `g` (`sw == 1`);
/// `scratch` holds at least [`direct_workspace_len`] floats. Every element
/// of `out` is written (never read), so it may start uninitialised: a
/// 1080p output then costs no zero-fill.
pub fn conv2d_direct_rows(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    row0: usize,
    out: &mut [MaybeUninit<f32>],
    scratch: &mut [f32],
) {
    if is_3x3_one_channel(g) {
        debug_assert!(scratch.len() >= 4 * line_len_3x3(g));
        debug_assert!(out.len() % g.ow == 0);
        // SAFETY: rows `row0 ..` of the output exist (out.len() / ow of
        // them), scratch holds four padded lines; the geometry is checked.
        unsafe { rows_3x3(g, input, weight, row0, out, scratch) };
        return;
    }
    direct_rows_any(g, input, weight, row0, out, scratch)
}

// ---------------------------------------------------------------------------
// 3x3, stride 1, one input channel per group: depthwise layers (MobileNet)
// and single-channel image filters. The generic loop above spent more on
// per-tap bookkeeping (bounds, slices, dynamic kernel sizes) than on its
// four multiply-adds per tap: mobilenet_dw_3x3 ran at 20 GFLOP/s a core.

/// Whether `g` takes [`rows_3x3`].
fn is_3x3_one_channel(g: &ConvGeometry) -> bool {
    (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1) && g.cin_g() == 1
}

/// Floats of one zero-padded input line of [`rows_3x3`]: the output width
/// in whole 16-float vectors, the two extra taps, and zeros to the next
/// vector (so that every vector load of a line is inside it).
fn line_len_3x3(g: &ConvGeometry) -> usize {
    g.ow.next_multiple_of(16) + 16
}

/// Vectors of columns per block of [`rows_3x3`].
const BLOCK_3X3: usize = 4;

/// Output row `row` (counted over `[n, c_out, oh]`) and, when the next
/// row is in the same plane and below `end`, the one after it: a pair.
struct Rows3x3 {
    /// The output channel.
    co: usize,
    pair: bool,
    /// The lines the row (or pair) reads, see [`lines_3x3`].
    lines: [*const f32; 4],
}

/// The [`Rows3x3`] from output row `row` (rows below `end`), with the 3 or
/// 4 zero-padded lines it reads, in four slots of [`line_len_3x3`] floats
/// at `base`: line `i`, column `p` holds input row `oy + i - pt`, column
/// `p - pl` of the row's input plane, zero outside. Input row `j` lives in
/// slot `j % 4`, and `held` remembers what each slot holds, so a pair of
/// rows after another copies only its two new lines.
///
/// # Safety
/// `base` holds four lines; `row < end <= n * c_out * oh`.
#[inline(always)]
unsafe fn lines_3x3<S: Simd>(
    g: &ConvGeometry,
    input: &[f32],
    (row, end): (usize, usize),
    base: *mut f32,
    held: &mut [usize; 4],
) -> Rows3x3 {
    let (oy, plane) = (row % g.oh, row / g.oh);
    let (co, n) = (plane % g.c_out, plane / g.c_out);
    let pair = oy + 1 < g.oh && row + 1 < end;
    let count = if pair { 4 } else { 3 };
    let x = &input[(n * g.c_in + co / g.cout_g()) * g.h * g.w..][..g.h * g.w];
    let (h, w, lp) = (g.h, g.w, line_len_3x3(g));
    let mut lines = [base.cast_const(); 4];
    // SAFETY: slots are inside `base` (caller); rows `iy < h` of `x`.
    unsafe {
        for (i, l) in lines.iter_mut().enumerate().take(count) {
            let slot = (oy + i) % 4;
            *l = base.add(slot * lp);
            let key = plane * (g.oh + 3) + oy + i;
            if held[slot] == key {
                continue;
            }
            held[slot] = key;
            let line = std::slice::from_raw_parts_mut(base.add(slot * lp), lp);
            let Some(iy) = (oy + i).checked_sub(g.pt).filter(|&iy| iy < h) else {
                line.fill(0.0);
                continue;
            };
            let a = g.pl.min(lp);
            let len = w.min(lp - a);
            line[..a].fill(0.0);
            S::copy_n(x.as_ptr().add(iy * w), line.as_mut_ptr().add(a), len);
            line[a + len..].fill(0.0);
        }
    }
    Rows3x3 { co, pair, lines }
}

/// Columns `c .. c + B * lanes` of one output row (two when `PAIR`) from
/// the padded lines (`PAIR`: four, rows 0-2 for the first output row and
/// 1-3 for the second), taps in row-major order; the last `n` columns
/// stored are `min(n, B * lanes)`.
#[inline(always)]
unsafe fn block_3x3<S: Simd, const PAIR: bool, const B: usize>(
    lines: &[*const f32; 4],
    c: usize,
    wv: &[S::V; 9],
    (y0, y1): (*mut f32, *mut f32),
    n: usize,
) {
    let lanes = S::LANES;
    // SAFETY: the caller's (see `rows_3x3_body`).
    unsafe {
        let mut a0 = [S::zero(); B];
        let mut a1 = [S::zero(); B];
        for (i, &line) in lines.iter().enumerate().take(if PAIR { 4 } else { 3 }) {
            for kj in 0..3 {
                for b in 0..B {
                    let v = S::load(line.add(c + b * lanes + kj));
                    if i < 3 {
                        a0[b] = S::fma(wv[i * 3 + kj], v, a0[b]);
                    }
                    if PAIR && i >= 1 {
                        a1[b] = S::fma(wv[(i - 1) * 3 + kj], v, a1[b]);
                    }
                }
            }
        }
        for b in 0..B {
            let m = n.saturating_sub(b * lanes).min(lanes);
            if m == lanes {
                S::store(y0.add(c + b * lanes), a0[b]);
                if PAIR {
                    S::store(y1.add(c + b * lanes), a1[b]);
                }
            } else if m > 0 {
                S::store_n(y0.add(c + b * lanes), a0[b], m);
                if PAIR {
                    S::store_n(y1.add(c + b * lanes), a1[b], m);
                }
            }
        }
    }
}

/// One output row (two when `PAIR`) in blocks of [`BLOCK_3X3`] vectors,
/// then single vectors, the last one partial.
#[inline(always)]
unsafe fn row_3x3<S: Simd, const PAIR: bool>(
    lines: &[*const f32; 4],
    ow: usize,
    wv: &[S::V; 9],
    y: (*mut f32, *mut f32),
) {
    let lanes = S::LANES;
    let mut c = 0;
    // SAFETY: the caller's (see `rows_3x3_body`).
    unsafe {
        while c + BLOCK_3X3 * lanes <= ow {
            block_3x3::<S, PAIR, BLOCK_3X3>(lines, c, wv, y, ow - c);
            c += BLOCK_3X3 * lanes;
        }
        while c < ow {
            block_3x3::<S, PAIR, 1>(lines, c, wv, y, ow - c);
            c += lanes;
        }
    }
}

#[inline(always)]
unsafe fn rows_3x3_body<S: Simd>(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    row0: usize,
    out: &mut [MaybeUninit<f32>],
    scratch: &mut [f32],
) {
    let ow = g.ow;
    let rows = out.len() / ow;
    let out = out.as_mut_ptr().cast::<f32>();
    let base = scratch.as_mut_ptr();
    // Which padded input row each of the four line slots holds (plane
    // times `oh + 3` plus row): consecutive pairs share two lines.
    let mut held = [usize::MAX; 4];
    // SAFETY (whole body): input planes and weights are indexed inside
    // their tensors (geometry checked by the caller); every line load is
    // inside a line of `scratch` (columns below ow rounded up to a vector,
    // plus 2 <= 16); stores keep columns below ow of rows `r < rows` of
    // `out`.
    unsafe {
        let mut r = 0;
        while r < rows {
            // Two output rows share the four input lines they read.
            let Rows3x3 { co, pair, lines } =
                lines_3x3::<S>(g, input, (row0 + r, row0 + rows), base, &mut held);
            let wt = &weight[co * 9..][..9];
            let wv: [S::V; 9] = std::array::from_fn(|t| S::splat(wt[t]));
            let y = (out.add(r * ow), out.add((r + 1) * ow));
            if pair {
                row_3x3::<S, true>(&lines, ow, &wv, y);
                r += 2;
            } else {
                row_3x3::<S, false>(&lines, ow, &wv, y);
                r += 1;
            }
        }
    }
}

dispatch_simd! {
    /// See [`rows_3x3_body`]: [`conv2d_direct_rows`] for 3x3 stride-1
    /// layers with one input channel per group, a pair of output rows at a
    /// time from four zero-padded input lines, in vectors of columns.
    ///
    /// # Safety
    /// `g` is such a layer, `out` holds whole output rows from `row0`,
    /// `scratch` at least `4 * line_len_3x3(g)` floats.
    unsafe fn rows_3x3(
        g: &ConvGeometry,
        input: &[f32],
        weight: &[f32],
        row0: usize,
        out: &mut [MaybeUninit<f32>],
        scratch: &mut [f32],
    ) => rows_3x3_body
}

#[inline(always)]
fn weight_body<const FMA: bool>(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    r0: usize,
    r1: usize,
    acc: &mut [f64],
) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let (h, w, oh, ow, kh, kw) = (g.h, g.w, g.oh, g.ow, g.kh, g.kw);
    debug_assert_eq!(acc.len(), g.c_out * cin_g * kh * kw);
    // Zero-padded copies: the grad_output row to whole 16-lane chunks, and
    // each input row shifted by `pl` so every tap's dot product runs over
    // the same chunks with no bounds or tail (zeros contribute nothing).
    // Scalar tails were most of mobilenet_dw_3x3's weight gradient (CPU ms
    // per fwd+bwd, 1 thread: 10.5 -> 6.0; lenet_c1 9.0 -> 6.2). Long rows
    // skip the copies (image_3x3_1080p: 5.8 -> 7.0 with them).
    let padded = ow < 256;
    let owr = ow.next_multiple_of(16);
    // Outputs in whole 16-lane chunks.
    let whole = ow / 16 * 16;
    let span = (kw - 1) * g.dw;
    let mut gyp_buf = vec![0.0f32; if padded { owr } else { 0 }];
    let mut xp = vec![0.0f32; if padded { owr + span } else { 0 }];
    // Padded rows keep each tap's sum in 16 f32 lanes across the rows of a
    // plane, folded into `acc` when the plane changes or every FLUSH_ROWS
    // rows: a horizontal sum per tap and row was most of the work
    // (mobilenet_dw_3x3: 112-float rows, 7 multiply-adds per 16 adds).
    const FLUSH_ROWS: usize = 64;
    let taps_per_co = cin_g * kh * kw;
    let mut part = vec![[0.0f32; 16]; if padded { taps_per_co } else { 0 }];
    let mut part_of: Option<usize> = None;
    let mut part_rows = 0;
    let flush = |part: &mut [[f32; 16]], co: usize, acc: &mut [f64]| {
        let taps = &mut acc[co * taps_per_co..][..taps_per_co];
        for (t, lanes) in taps.iter_mut().zip(part.iter_mut()) {
            *t += lanes.iter().map(|&v| v as f64).sum::<f64>();
            *lanes = [0.0; 16];
        }
    };
    for r in r0..r1 {
        // Output row (n, co, oy): every tap's dot product with it, while
        // the row is in L1.
        let oy = r % oh;
        let co = (r / oh) % g.c_out;
        let n = r / (oh * g.c_out);
        if padded {
            if part_of.is_some_and(|p| p != r / oh) || part_rows == FLUSH_ROWS {
                let done = part_of.map_or(0, |p| p % g.c_out);
                flush(&mut part, done, acc);
                part_rows = 0;
            }
            part_of = Some(r / oh);
            part_rows += 1;
        }
        let gyp: &[f32] = if padded {
            gyp_buf[..ow].copy_from_slice(&grad_output[r * ow..][..ow]);
            &gyp_buf
        } else {
            &grad_output[r * ow..][..ow]
        };
        let grp = co / cout_g;
        for ci in 0..cin_g {
            let x = &input[(n * g.c_in + grp * cin_g + ci) * h * w..][..h * w];
            for ki in 0..kh {
                let Some(iy) = (oy * g.sh + ki * g.dh)
                    .checked_sub(g.pt)
                    .filter(|&iy| iy < h)
                else {
                    continue;
                };
                let tap0 = ((co * cin_g + ci) * kh + ki) * kw;
                let taps = &mut acc[tap0..tap0 + kw];
                if !padded {
                    let xr = &x[iy * w..][..w];
                    for (kj, t) in taps.iter_mut().enumerate() {
                        let off = kj * g.dw;
                        // ix = ox + off - pl in [0, w).
                        let lo = g.pl.saturating_sub(off).min(ow);
                        let hi = (w + g.pl).saturating_sub(off).min(ow).max(lo);
                        let b = &xr[(lo + off).saturating_sub(g.pl).min(w)..];
                        *t += dot::<FMA>(&gyp[lo..hi], b) as f64;
                    }
                    continue;
                }
                // xp[p] = x[iy][p - pl] for p - pl in [0, w), else 0.
                let lo = g.pl.min(xp.len());
                let len = w.min(xp.len() - lo);
                xp[..lo].fill(0.0);
                xp[lo..lo + len].copy_from_slice(&x[iy * w..][..len]);
                xp[lo + len..].fill(0.0);
                let row0 = (ci * kh + ki) * kw;
                for (kj, lanes) in part[row0..row0 + kw].iter_mut().enumerate() {
                    let xk = &xp[kj * g.dw..];
                    dot_lanes::<FMA>(&gyp[..whole], xk, lanes);
                    if whole < ow {
                        // The last chunk's inputs past the row's outputs are
                        // zeroed, not just its gradients: 0 * NaN would
                        // carry an input NaN into a tap that never reads it.
                        let mut tail = [0.0f32; 16];
                        tail[..ow - whole].copy_from_slice(&xk[whole..ow]);
                        dot_lanes::<FMA>(&gyp[whole..whole + 16], &tail, lanes);
                    }
                }
            }
        }
    }
    if let Some(p) = part_of {
        flush(&mut part, p % g.c_out, acc);
    }
}

/// `lanes[i] += sum_c a[16c + i] * b[16c + i]`, `a.len()` a multiple of 16
/// (`b` at least as long).
#[inline(always)]
fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32], lanes: &mut [f32; 16]) {
    let b = &b[..a.len()];
    let mut l = *lanes;
    for (xa, xb) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for i in 0..16 {
            l[i] = madd::<FMA>(xa[i], xb[i], l[i]);
        }
    }
    *lanes = l;
}

/// `sum a[i] * b[i]` over `a` (`b` at least as long) in 16 f32 lanes, then
/// a scalar tail.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let mut lanes = [0.0f32; 16];
    let (ca, ta) = a.split_at(a.len() / 16 * 16);
    let (cb, tb) = b.split_at(ca.len());
    for (xa, xb) in ca.chunks_exact(16).zip(cb.chunks_exact(16)) {
        for i in 0..16 {
            lanes[i] = madd::<FMA>(xa[i], xb[i], lanes[i]);
        }
    }
    let mut s: f32 = lanes.iter().sum();
    for (&p, &q) in ta.iter().zip(tb) {
        s = madd::<FMA>(p, q, s);
    }
    s
}

dispatch_isa! {
    /// [`conv2d_direct_weight_rows`] for any geometry it takes.
    fn weight_rows_any(
        g: &ConvGeometry,
        input: &[f32],
        grad_output: &[f32],
        r0: usize,
        r1: usize,
        acc: &mut [f64],
    ) => weight_body
}

/// Adds to `acc` (f64, one per weight element) the weight-gradient
/// contributions of output rows `[r0, r1)` (a row is `(n, co, oy)`) of the
/// convolution `g` (`sw == 1`). One pass over the output rows computing
/// every tap (rather than one pass per weight row) reads `grad_output`
/// once: image_3x3_1080p weight gradient 9 full-image passes -> 1.
pub fn conv2d_direct_weight_rows(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    r0: usize,
    r1: usize,
    acc: &mut [f64],
) {
    if is_3x3_one_channel(g) && g.ow < 256 {
        debug_assert!(r1 <= g.n * g.c_out * g.oh && acc.len() == g.c_out * 9);
        // SAFETY: the rows exist in `grad_output`, the geometry is checked.
        unsafe { weight_rows_3x3(g, input, grad_output, r0, r1, acc) };
        return;
    }
    weight_rows_any(g, input, grad_output, r0, r1, acc)
}

/// Output rows folded into `acc` at most this many at a time (each tap's
/// sum stays in f32 lanes until then).
const FLUSH_ROWS_3X3: usize = 64;

/// A whole vector at `p`, or its first `n` floats and zeros.
#[inline(always)]
unsafe fn load_upto<S: Simd>(p: *const f32, n: usize) -> S::V {
    // SAFETY: the caller guarantees min(n, LANES) floats at p.
    unsafe {
        if n >= S::LANES {
            S::load(p)
        } else {
            S::load_n(p, n)
        }
    }
}

/// Fold each tap's lanes in `part` (output channel `plane % c_out`'s) into
/// `acc` in f64 and zero them; nothing for `plane == usize::MAX`.
#[inline(always)]
unsafe fn flush_3x3<S: Simd>(
    g: &ConvGeometry,
    part: &mut [S::V; 9],
    plane: usize,
    acc: &mut [f64],
) {
    if plane == usize::MAX {
        return;
    }
    let co = plane % g.c_out;
    for (t, p) in part.iter_mut().enumerate() {
        let mut lanes = [0.0f32; 16];
        // SAFETY: lanes holds LANES <= 16 floats.
        unsafe {
            S::store(lanes.as_mut_ptr(), *p);
            *p = S::zero();
        }
        acc[co * 9 + t] += lanes[..S::LANES].iter().map(|&v| v as f64).sum::<f64>();
    }
}

/// The nine taps' products of one output row (two when `PAIR`, the second
/// reading lines 1-3) added into `part`, lanes past `ow` zeroed.
#[inline(always)]
unsafe fn weight_row_3x3<S: Simd, const PAIR: bool>(
    lines: &[*const f32; 4],
    (g0, g1): (*const f32, *const f32),
    ow: usize,
    part: &mut [S::V; 9],
) {
    let lanes = S::LANES;
    // SAFETY: the caller's (see `weight_rows_3x3_body`).
    unsafe {
        let mut c = 0;
        while c < ow {
            let n = (ow - c).min(lanes);
            let gv0 = load_upto::<S>(g0.add(c), n);
            let gv1 = if PAIR {
                load_upto::<S>(g1.add(c), n)
            } else {
                S::zero()
            };
            for (i, &line) in lines.iter().enumerate().take(if PAIR { 4 } else { 3 }) {
                for kj in 0..3 {
                    // Lanes past `ow` read zeros: an infinite input value
                    // there must not turn the sum into NaN.
                    let v = load_upto::<S>(line.add(c + kj), n);
                    if i < 3 {
                        part[i * 3 + kj] = S::fma(gv0, v, part[i * 3 + kj]);
                    }
                    if PAIR && i >= 1 {
                        part[(i - 1) * 3 + kj] = S::fma(gv1, v, part[(i - 1) * 3 + kj]);
                    }
                }
            }
            c += lanes;
        }
    }
}

#[inline(always)]
unsafe fn weight_rows_3x3_body<S: Simd>(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    r0: usize,
    r1: usize,
    acc: &mut [f64],
) {
    let ow = g.ow;
    let mut buf = vec![0.0f32; 4 * line_len_3x3(g)];
    let base = buf.as_mut_ptr();
    let mut held = [usize::MAX; 4];
    // SAFETY: arithmetic only.
    let mut part = [unsafe { S::zero() }; 9];
    let (mut part_plane, mut part_rows) = (usize::MAX, 0);
    // SAFETY (whole body): as in `rows_3x3_body` (lines of `buf`, input
    // planes, weights); grad_output rows `r < r1` exist, and loads past
    // `ow` in them are masked.
    unsafe {
        let mut r = r0;
        while r < r1 {
            let plane = r / g.oh;
            if plane != part_plane || part_rows >= FLUSH_ROWS_3X3 {
                flush_3x3::<S>(g, &mut part, part_plane, acc);
                (part_plane, part_rows) = (plane, 0);
            }
            let Rows3x3 { pair, lines, .. } = lines_3x3::<S>(g, input, (r, r1), base, &mut held);
            let gy = (
                grad_output.as_ptr().add(r * ow),
                grad_output.as_ptr().add((r + 1) * ow),
            );
            if pair {
                weight_row_3x3::<S, true>(&lines, gy, ow, &mut part);
                r += 2;
                part_rows += 2;
            } else {
                weight_row_3x3::<S, false>(&lines, gy, ow, &mut part);
                r += 1;
                part_rows += 1;
            }
        }
        flush_3x3::<S>(g, &mut part, part_plane, acc);
    }
}

dispatch_simd! {
    /// See [`weight_rows_3x3_body`]: [`conv2d_direct_weight_rows`] for the
    /// layers [`rows_3x3`] takes, two output rows per pass over four shared
    /// zero-padded input lines, each tap's sum in vector lanes.
    ///
    /// # Safety
    /// `g` is such a layer; rows `[r0, r1)` exist; `acc` holds `c_out * 9`.
    unsafe fn weight_rows_3x3(
        g: &ConvGeometry,
        input: &[f32],
        grad_output: &[f32],
        r0: usize,
        r1: usize,
        acc: &mut [f64],
    ) => weight_rows_3x3_body
}
