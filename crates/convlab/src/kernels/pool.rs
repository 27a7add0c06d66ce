//! Pooling planes as two passes: reduce the window's rows elementwise along
//! the whole input width (vectorised, no index bookkeeping), then reduce
//! each output's columns in that one row. `kh*w + kw*ow` operations per
//! output row instead of `kh*kw*ow`, the first term in SIMD registers.
//! Any kernel, stride, padding and dilation; windows come precomputed.

use super::isa::dispatch_isa;
use crate::ops::pool::reference::AxisWindow;

/// PyTorch's max: a NaN anywhere in the window wins.
#[inline(always)]
fn nan_max(acc: f32, v: f32) -> f32 {
    if v > acc || v.is_nan() {
        v
    } else {
        acc
    }
}

#[inline(always)]
fn max_body<const FMA: bool>(
    w: usize,
    dh: usize,
    dw: usize,
    rows: &[AxisWindow],
    cols: &[AxisWindow],
    x: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) {
    let ow = cols.len();
    let tmp = &mut tmp[..w];
    for (r, orow) in rows.iter().zip(out.chunks_exact_mut(ow)) {
        tmp.fill(f32::NEG_INFINITY);
        for a in 0..r.count {
            let line = &x[(r.start + a * dh) * w..][..w];
            for (t, &v) in tmp.iter_mut().zip(line) {
                *t = nan_max(*t, v);
            }
        }
        for (o, c) in orow.iter_mut().zip(cols) {
            let mut best = f32::NEG_INFINITY;
            for b in 0..c.count {
                best = nan_max(best, tmp[c.start + b * dw]);
            }
            *o = best;
        }
    }
}

dispatch_isa! {
    /// Max pooling of one `h x w` plane `x` into `out` (`rows.len() x
    /// cols.len()`); `tmp` holds at least `w` floats. Every window must hold
    /// at least one input element.
    pub fn max_pool2d_plane(
        w: usize,
        dh: usize,
        dw: usize,
        rows: &[AxisWindow],
        cols: &[AxisWindow],
        x: &[f32],
        out: &mut [f32],
        tmp: &mut [f32],
    ) => max_body
}

#[inline(always)]
fn sum_body<const FMA: bool>(
    w: usize,
    rows: &[AxisWindow],
    cols: &[AxisWindow],
    row_scale: &[f32],
    col_scale: &[f32],
    x: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) {
    let ow = cols.len();
    let tmp = &mut tmp[..w];
    for ((r, orow), &rs) in rows.iter().zip(out.chunks_exact_mut(ow)).zip(row_scale) {
        tmp.fill(0.0);
        for row in r.start..r.start + r.count {
            let line = &x[row * w..][..w];
            for (t, &v) in tmp.iter_mut().zip(line) {
                *t += v;
            }
        }
        for ((o, c), &cs) in orow.iter_mut().zip(cols).zip(col_scale) {
            if r.count == 0 || c.count == 0 {
                *o = 0.0;
                continue;
            }
            let s: f32 = tmp[c.start..c.start + c.count].iter().sum();
            *o = s * rs * cs;
        }
    }
}

dispatch_isa! {
    /// Average pooling (dilation 1) of one plane: window sums in f32 times
    /// `row_scale[oy] * col_scale[ox]` (the reciprocal divisor, which is a
    /// product of a row and a column factor); `tmp` holds `w` floats.
    pub fn avg_pool2d_plane(
        w: usize,
        rows: &[AxisWindow],
        cols: &[AxisWindow],
        row_scale: &[f32],
    col_scale: &[f32],
        x: &[f32],
        out: &mut [f32],
        tmp: &mut [f32],
    ) => sum_body
}

#[inline(always)]
fn avg_back_body<const FMA: bool>(
    w: usize,
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
        for row in r.start..r.start + r.count {
            for (gx, &t) in grad_input[row * w..][..w].iter_mut().zip(tmp.iter()) {
                *gx += t;
            }
        }
    }
}

dispatch_isa! {
    /// Gradient of [`avg_pool2d_plane`] for one plane: each output's share
    /// spread along its columns in one row, then that row added to the
    /// window's input rows (vectorised); `grad_input` zeroed by the caller.
    pub fn avg_pool2d_backward_plane(
        w: usize,
        rows: &[AxisWindow],
        cols: &[AxisWindow],
        row_scale: &[f32],
    col_scale: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
        tmp: &mut [f32],
    ) => avg_back_body
}
