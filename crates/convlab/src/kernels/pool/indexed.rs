//! Max pooling with the index of each maximum, over any windows (padded,
//! dilated, adaptive, fractional) of a plane of up to three axes.

use crate::shape::AxisWindow;

/// PyTorch's scan: a later tap wins if it is greater or NaN, so the first
/// of equal maxima wins, and the last NaN.
#[inline(always)]
fn take(v: f32, best: f32) -> bool {
    (v > best) | v.is_nan()
}

/// Max pooling of one plane `x` of `len = [d, h, w]` over the windows
/// `wins` (depth, rows, columns; taps `dil` apart) into `out` and the flat
/// in-plane index `(z * h + y) * w + x` of each maximum, in output order.
/// Every window must hold at least one tap.
pub(crate) fn max_pool_indexed_plane(
    len: [usize; 3],
    dil: [usize; 3],
    wins: [&[AxisWindow]; 3],
    x: &[f32],
    out: &mut [f32],
    idx: &mut [usize],
) {
    let [_, h, w] = len;
    let [dz, dy, dx] = dil;
    let [deps, rows, cols] = wins;
    debug_assert_eq!(out.len(), deps.len() * rows.len() * cols.len());
    let mut o = 0;
    for dep in deps {
        for row in rows {
            for col in cols {
                let first = (dep.start * h + row.start) * w + col.start;
                let (mut best, mut best_at) = (f32::NEG_INFINITY, first);
                for a in 0..dep.count {
                    let z = dep.start + a * dz;
                    for b in 0..row.count {
                        let line = (z * h + row.start + b * dy) * w;
                        for c in 0..col.count {
                            let at = line + col.start + c * dx;
                            let v = x[at];
                            // Selects, not a branch: which tap wins is
                            // data dependent.
                            let t = take(v, best);
                            best = if t { v } else { best };
                            best_at = if t { at } else { best_at };
                        }
                    }
                }
                out[o] = best;
                idx[o] = best_at;
                o += 1;
            }
        }
    }
}
