//! Pooling planes as two passes: reduce the window's rows elementwise along
//! the whole input width (vectorised, no index bookkeeping), then reduce
//! each output's columns in that one row. `kh*w + kw*ow` operations per
//! output row instead of `kh*kw*ow`, the first term in SIMD registers.
//! Any kernel, stride, padding and dilation; windows come precomputed.

use crate::kernels::isa::dispatch_isa;
use crate::shape::AxisWindow;
use std::mem::MaybeUninit;

/// `kernel_stride_pad` for windows that are not one kernel sliding at one
/// stride (adaptive and fractional bins): every column takes the generic
/// loop over its window.
pub(crate) const IRREGULAR: (usize, usize, usize) = (0, 1, 0);

/// PyTorch's max: a NaN anywhere in the window wins.
#[inline(always)]
fn nan_max(acc: f32, v: f32) -> f32 {
    if v > acc || v.is_nan() {
        v
    } else {
        acc
    }
}

/// The output columns `[lo, hi)` whose windows hold all `k` taps, at
/// `ox * s - p ..` (dilation 1), along an axis of length `len`.
fn whole_columns(ow: usize, len: usize, k: usize, s: usize, p: usize) -> (usize, usize) {
    let lo = p.div_ceil(s).min(ow);
    // ox * s - p + k <= len  <=>  ox <= (len + p - k) / s
    let hi = match (len + p).checked_sub(k) {
        Some(m) => (m / s + 1).min(ow),
        None => 0,
    };
    (lo, hi.max(lo))
}

/// Whole windows of the common `(kw, sw)` shapes of CNN pooling layers:
/// `out[i] = f(f(tmp[base + i*sw], ..), tmp[base + i*sw + kw - 1])`, folded
/// left to right as the generic loop does; `false` for other shapes. Plain
/// index loops over pre-cut slices, so LLVM vectorises the stride-2 reads
/// with permutes (as a loop over `[f32; K]` windows it did not). `post(i,
/// v)` finishes output `i` in the same pass (the average's scale).
#[inline(always)]
fn fold_row(
    (kw, sw): (usize, usize),
    tmp: &[f32],
    base: usize,
    out: &mut [MaybeUninit<f32>],
    f: impl Fn(f32, f32) -> f32,
    post: impl Fn(usize, f32) -> f32,
) -> bool {
    let n = out.len();
    let t = &tmp[base..];
    match (kw, sw) {
        (2, 2) => {
            let t = &t[..2 * n];
            for i in 0..n {
                out[i] = MaybeUninit::new(post(i, f(t[2 * i], t[2 * i + 1])));
            }
        }
        (3, 2) => {
            let t = &t[..2 * n + 1];
            for i in 0..n {
                out[i] = MaybeUninit::new(post(i, f(f(t[2 * i], t[2 * i + 1]), t[2 * i + 2])));
            }
        }
        (3, 1) => {
            let t = &t[..n + 2];
            for i in 0..n {
                out[i] = MaybeUninit::new(post(i, f(f(t[i], t[i + 1]), t[i + 2])));
            }
        }
        (2, 1) => {
            let t = &t[..n + 1];
            for i in 0..n {
                out[i] = MaybeUninit::new(post(i, f(t[i], t[i + 1])));
            }
        }
        _ => return false,
    }
    true
}

/// `tmp[i] = f(..f(x[r0][i], x[r1][i]).., x[rn][i])` over the `count >= 1`
/// input rows `start, start + step, ..` of width `w`: one pass for the
/// common 2- and 3-row windows.
#[inline(always)]
fn reduce_rows(
    x: &[f32],
    w: usize,
    (start, count, step): (usize, usize, usize),
    tmp: &mut [f32],
    f: impl Fn(f32, f32) -> f32,
) {
    let line = |a: usize| &x[(start + a * step) * w..][..w];
    let tmp = &mut tmp[..w];
    match count {
        2 => {
            let (l0, l1) = (line(0), line(1));
            for i in 0..w {
                tmp[i] = f(l0[i], l1[i]);
            }
        }
        3 => {
            let (l0, l1, l2) = (line(0), line(1), line(2));
            for i in 0..w {
                tmp[i] = f(f(l0[i], l1[i]), l2[i]);
            }
        }
        _ => {
            tmp.copy_from_slice(line(0));
            for a in 1..count {
                for (t, &v) in tmp.iter_mut().zip(line(a)) {
                    *t = f(*t, v);
                }
            }
        }
    }
}

#[inline(always)]
fn max_body<const FMA: bool>(
    w: usize,
    (kw, sw, pw): (usize, usize, usize),
    dh: usize,
    dw: usize,
    rows: &[AxisWindow],
    cols: &[AxisWindow],
    x: &[f32],
    out: &mut [MaybeUninit<f32>],
    tmp: &mut [f32],
) {
    let ow = cols.len();
    let tmp = &mut tmp[..w];
    let (lo, hi) = if dw == 1 {
        whole_columns(ow, w, kw, sw, pw)
    } else {
        (0, 0)
    };
    for (r, orow) in rows.iter().zip(out.chunks_exact_mut(ow)) {
        // Every max-pool window holds an input element (checked by the
        // geometry), so the first row starts the maxima.
        reduce_rows(x, w, (r.start, r.count, dh), tmp, nan_max);
        let whole = lo < hi
            && fold_row(
                (kw, sw),
                tmp,
                lo * sw - pw,
                &mut orow[lo..hi],
                nan_max,
                |_, v| v,
            );
        // The columns the specialised pass did not write: only the edges.
        let (lo, hi) = if whole { (lo, hi) } else { (0, 0) };
        for ox in (0..lo).chain(hi..ow) {
            let (o, c) = (&mut orow[ox], &cols[ox]);
            let mut best = f32::NEG_INFINITY;
            for b in 0..c.count {
                best = nan_max(best, tmp[c.start + b * dw]);
            }
            *o = MaybeUninit::new(best);
        }
    }
}

dispatch_isa! {
    /// Max pooling of one `h x w` plane `x` into `out` (`rows.len() x
    /// cols.len()`); `tmp` holds at least `w` floats. Every window must hold
    /// at least one input element. `kernel_stride_pad` is `(kw, sw, pw)`:
    /// whole windows of common shapes take a specialised (vectorised) pass.
    /// Every element of `out` is written.
    pub(crate) fn max_pool2d_plane(
        w: usize,
        kernel_stride_pad: (usize, usize, usize),
        dh: usize,
        dw: usize,
        rows: &[AxisWindow],
        cols: &[AxisWindow],
        x: &[f32],
        out: &mut [MaybeUninit<f32>],
        tmp: &mut [f32],
    ) => max_body
}

#[inline(always)]
fn sum_body<const FMA: bool>(
    w: usize,
    (kw, sw, pw): (usize, usize, usize),
    rows: &[AxisWindow],
    cols: &[AxisWindow],
    row_scale: &[f32],
    col_scale: &[f32],
    x: &[f32],
    out: &mut [MaybeUninit<f32>],
    tmp: &mut [f32],
) {
    let ow = cols.len();
    let tmp = &mut tmp[..w];
    let (lo, hi) = whole_columns(ow, w, kw, sw, pw);
    for ((r, orow), &rs) in rows.iter().zip(out.chunks_exact_mut(ow)).zip(row_scale) {
        if r.count == 0 {
            orow.fill(MaybeUninit::new(0.0));
            continue;
        }
        reduce_rows(x, w, (r.start, r.count, 1), tmp, |a, b| a + b);
        let whole = lo < hi && {
            let cs = &col_scale[lo..hi];
            fold_row(
                (kw, sw),
                tmp,
                lo * sw - pw,
                &mut orow[lo..hi],
                |a, b| a + b,
                |i, v| v * rs * cs[i],
            )
        };
        let (lo, hi) = if whole { (lo, hi) } else { (0, 0) };
        for ox in (0..lo).chain(hi..ow) {
            let (o, c, cs) = (&mut orow[ox], &cols[ox], col_scale[ox]);
            if c.count == 0 {
                *o = MaybeUninit::new(0.0);
                continue;
            }
            let s: f32 = tmp[c.start..c.start + c.count].iter().sum();
            *o = MaybeUninit::new(s * rs * cs);
        }
    }
}

dispatch_isa! {
    /// Average pooling (dilation 1) of one plane: window sums in f32 times
    /// `row_scale[oy] * col_scale[ox]` (the reciprocal divisor, which is a
    /// product of a row and a column factor); `tmp` holds `w` floats.
    /// `kernel_stride_pad` is `(kw, sw, pw)`, as for [`max_pool2d_plane`].
    /// Every element of `out` is written.
    pub(crate) fn avg_pool2d_plane(
        w: usize,
        kernel_stride_pad: (usize, usize, usize),
        rows: &[AxisWindow],
        cols: &[AxisWindow],
        row_scale: &[f32],
        col_scale: &[f32],
        x: &[f32],
        out: &mut [MaybeUninit<f32>],
        tmp: &mut [f32],
    ) => sum_body
}

#[inline(always)]
fn avg_back_body<const FMA: bool>(
    w: usize,
    (z0, nz, hw): (usize, usize, usize),
    rows: &[AxisWindow],
    cols: &[AxisWindow],
    row_scale: &[f32],
    col_scale: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
    tmp: &mut [f32],
) {
    let ow = cols.len();
    let tmp = &mut tmp[..w];
    for ((r, gyrow), &rs) in rows.iter().zip(grad_output.chunks_exact(ow)).zip(row_scale) {
        if r.count == 0 {
            continue;
        }
        tmp.fill(0.0);
        for ((&gy, c), &cs) in gyrow.iter().zip(cols).zip(col_scale) {
            if c.count == 0 {
                continue;
            }
            let share = gy * rs * cs;
            for t in &mut tmp[c.start..c.start + c.count] {
                *t += share;
            }
        }
        for z in z0..z0 + nz {
            for row in r.start..r.start + r.count {
                let line = &mut grad_input[z * hw + row * w..][..w];
                for (gx, &t) in line.iter_mut().zip(tmp.iter()) {
                    *gx += t;
                }
            }
        }
    }
}

dispatch_isa! {
    /// Gradient of [`avg_pool2d_plane`] for one output plane: each
    /// output's share spread along its columns in one row, then that row
    /// added to the window's input rows (vectorised) in each of the `nz`
    /// input slices `z0..` of `hw` floats (a 3-D window's depth taps; one
    /// slice in 2-D); `grad_input` zeroed by the caller.
    pub(crate) fn avg_pool2d_backward_plane(
        w: usize,
        depth_slices: (usize, usize, usize),
        rows: &[AxisWindow],
        cols: &[AxisWindow],
        row_scale: &[f32],
        col_scale: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
        tmp: &mut [f32],
    ) => avg_back_body
}
#[inline(always)]
fn max_slices_body<const FMA: bool>(
    len: usize,
    slices: (usize, usize, usize),
    x: &[f32],
    out: &mut [f32],
) {
    reduce_rows(x, len, slices, out, nan_max);
}

dispatch_isa! {
    /// `out[i] = max(x[s0][i], x[s1][i], ..)` over the `count >= 1` slices
    /// `start, start + step, ..` of `len` floats of `x` (a 3-D window's
    /// depth taps), NaN winning as in PyTorch; `out` holds `len` floats.
    pub(crate) fn max_slices(
        len: usize,
        start_count_step: (usize, usize, usize),
        x: &[f32],
        out: &mut [f32],
    ) => max_slices_body
}

#[inline(always)]
fn sum_slices_body<const FMA: bool>(
    len: usize,
    slices: (usize, usize, usize),
    x: &[f32],
    out: &mut [f32],
) {
    reduce_rows(x, len, slices, out, |a, b| a + b);
}

dispatch_isa! {
    /// `out[i] = x[s0][i] + x[s1][i] + ..` over the `count >= 1` slices
    /// `start, start + step, ..` of `len` floats of `x`, summed in order;
    /// `out` holds `len` floats.
    pub(crate) fn sum_slices(
        len: usize,
        start_count_step: (usize, usize, usize),
        x: &[f32],
        out: &mut [f32],
    ) => sum_slices_body
}
