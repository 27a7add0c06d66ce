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
    divisor: &dyn Fn(&AxisWindow, &AxisWindow) -> f64,
    x: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) {
    let ow = cols.len();
    let tmp = &mut tmp[..w];
    for (r, orow) in rows.iter().zip(out.chunks_exact_mut(ow)) {
        tmp.fill(0.0);
        for row in r.start..r.start + r.count {
            let line = &x[row * w..][..w];
            for (t, &v) in tmp.iter_mut().zip(line) {
                *t += v;
            }
        }
        for (o, c) in orow.iter_mut().zip(cols) {
            if r.count == 0 || c.count == 0 {
                *o = 0.0;
                continue;
            }
            let s: f32 = tmp[c.start..c.start + c.count].iter().sum();
            *o = (s as f64 / divisor(r, c)) as f32;
        }
    }
}

dispatch_isa! {
    /// Average pooling (dilation 1) of one plane: window sums in f32
    /// divided by `divisor(row_window, col_window)`; `tmp` holds `w` floats.
    pub fn avg_pool2d_plane(
        w: usize,
        rows: &[AxisWindow],
        cols: &[AxisWindow],
        divisor: &dyn Fn(&AxisWindow, &AxisWindow) -> f64,
        x: &[f32],
        out: &mut [f32],
        tmp: &mut [f32],
    ) => sum_body
}
