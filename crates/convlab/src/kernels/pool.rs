//! Pooling planes as two passes: reduce the window's rows elementwise along
//! the whole input width (vectorised, no index bookkeeping), then reduce
//! each output's columns in that one row. `kh*w + kw*ow` operations per
//! output row instead of `kh*kw*ow`, the first term in SIMD registers.
//! Any kernel, stride, padding and dilation; windows come precomputed.

//!
//! With indices (for backward), windows wholly inside the input take
//! [`max_pool2d_inside`]: plain slice reads with selects, no clipping.

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

// ---------------------------------------------------------------------------
// Max pooling over windows that lie wholly inside the input (no padding,
// dilation 1, no ceil-mode overhang): the common `MaxPool2d(k)` of CNNs.
// The reference loop (`ops::pool::reference`) works out each window's
// clipped extent first; here every window is a plain `kh x kw` block, so
// the loop is straight slice reads with selects instead of branches.

/// Max pooling of `planes` planes of `h x w` into `oh x ow` outputs and the
/// flat in-plane index of each maximum. Same rule as PyTorch's
/// `(val > maxval) || isnan(val)` scanned row by row: the first of equal
/// maxima wins, and the last NaN.
///
/// The caller guarantees `(oh - 1) * sh + kh <= h` and
/// `(ow - 1) * sw + kw <= w` (checked in debug builds).
pub fn max_pool2d_inside(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    input: &[f32],
    output: &mut [f32],
    indices: &mut [usize],
) {
    debug_assert!(oh == 0 || (oh - 1) * sh + kh <= h);
    debug_assert!(ow == 0 || (ow - 1) * sw + kw <= w);
    debug_assert!(input.len() >= planes * h * w);
    debug_assert!(output.len() >= planes * oh * ow && indices.len() >= planes * oh * ow);
    let (hw, ohw) = (h * w, oh * ow);
    if (kh, kw, sh, sw) == (2, 2, 2, 2) {
        max_pool2d_2x2s2(planes, (h, w), (oh, ow), input, output, indices);
        return;
    }
    for p in 0..planes {
        let x = &input[p * hw..(p + 1) * hw];
        let out = &mut output[p * ohw..(p + 1) * ohw];
        let idx = &mut indices[p * ohw..(p + 1) * ohw];
        for oy in 0..oh {
            for ox in 0..ow {
                let origin = oy * sh * w + ox * sw;
                let mut best = f32::NEG_INFINITY;
                let mut best_at = origin;
                for a in 0..kh {
                    let row = origin + a * w;
                    for (b, &v) in x[row..row + kw].iter().enumerate() {
                        // Selects, not a branch (`|` does not short-circuit):
                        // which value wins is data dependent, and the
                        // mispredicted branch made this loop as slow as the
                        // reference one.
                        let take = (v > best) | v.is_nan();
                        best = if take { v } else { best };
                        best_at = if take { row + b } else { best_at };
                    }
                }
                out[oy * ow + ox] = best;
                idx[oy * ow + ox] = best_at;
            }
        }
    }
}

/// The `MaxPool2d(2)` case: four loads per output, no inner loops.
fn max_pool2d_2x2s2(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    input: &[f32],
    output: &mut [f32],
    indices: &mut [usize],
) {
    let (hw, ohw) = (h * w, oh * ow);
    for p in 0..planes {
        let x = &input[p * hw..(p + 1) * hw];
        for oy in 0..oh {
            let i0 = 2 * oy * w;
            let (r0, r1) = (&x[i0..i0 + 2 * ow], &x[i0 + w..i0 + w + 2 * ow]);
            let o = &mut output[p * ohw + oy * ow..][..ow];
            let ix = &mut indices[p * ohw + oy * ow..][..ow];
            for ox in 0..ow {
                // Starting from the first tap equals starting from -inf: it
                // is taken unless it is -inf, and then its index is kept.
                let mut best = r0[2 * ox];
                let mut at = i0 + 2 * ox;
                for (v, i) in [
                    (r0[2 * ox + 1], i0 + 2 * ox + 1),
                    (r1[2 * ox], i0 + w + 2 * ox),
                    (r1[2 * ox + 1], i0 + w + 2 * ox + 1),
                ] {
                    let take = (v > best) | v.is_nan();
                    best = if take { v } else { best };
                    at = if take { i } else { at };
                }
                o[ox] = best;
                ix[ox] = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::pool::{reference, MaxPool2dParams};

    /// Against the reference loop, with ties and NaNs in the windows.
    #[test]
    fn matches_reference_with_ties_and_nans() {
        for (h, w, k, s) in [
            (4, 4, 2, 2),
            (5, 7, 2, 2),
            (8, 6, 2, 2),
            (2, 2, 2, 2),
            (6, 5, 3, 1),
            (7, 7, 3, 2),
            (3, 3, 3, 3),
        ] {
            let planes = 3;
            let x: Vec<f32> = (0..planes * h * w)
                .map(|i| match i % 11 {
                    4 => f32::NAN,
                    7 | 8 => 2.0,
                    r => (r as f32) * 0.3 - 1.0,
                })
                .collect();
            let g = MaxPool2dParams::new(k)
                .stride(s)
                .geometry("t", &[planes, h, w])
                .unwrap();
            let n = planes * g.oh * g.ow;
            let (mut o1, mut i1) = (vec![0.0; n], vec![0; n]);
            let (mut o2, mut i2) = (vec![0.0; n], vec![0; n]);
            reference::max_pool2d_reference(&g, &x, &mut o1, &mut i1);
            max_pool2d_inside(
                planes,
                (h, w),
                (g.oh, g.ow),
                (k, k),
                (s, s),
                &x,
                &mut o2,
                &mut i2,
            );
            assert_eq!(i1, i2, "{h}x{w} k{k} s{s}");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&o1), bits(&o2));
        }
    }
}
