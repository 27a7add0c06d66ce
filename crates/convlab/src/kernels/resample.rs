//! The two passes of a separable resampling (interpolate's every mode and
//! their backward passes), on raw slices. A band matrix maps `in` to `out`
//! indices along one axis: output `i` is `Σ_k weights[i * taps + k] *
//! x[start[i] + k]`.
//!
//! - [`rows`] resamples along the contiguous axis, row by row.
//! - [`cols`] resamples along an outer axis: each output row is a weighted
//!   sum of whole input rows, a multiply-add over contiguous floats.
//!
//! Both only gather (a backward pass runs them on the transposed matrix),
//! so every output is a fixed-order sum whatever the threading.

use super::isa::{dispatch_isa, madd};

/// A band matrix as the passes read it (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Band<'a> {
    pub start: &'a [usize],
    pub weights: &'a [f32],
    pub taps: usize,
}

// Inlined into each ISA's entry, so `mul_add` compiles to an FMA
// instruction there rather than a call to libm's `fmaf`.
#[inline(always)]
fn rows_body<const FMA: bool>(band: Band, x: &[f32], in_w: usize, y: &mut [f32], out_w: usize) {
    let Band {
        start,
        weights,
        taps,
    } = band;
    debug_assert_eq!(start.len(), out_w);
    debug_assert_eq!(weights.len(), out_w * taps);
    if in_w == 0 || out_w == 0 {
        return;
    }
    for (src, dst) in x.chunks_exact(in_w).zip(y.chunks_exact_mut(out_w)) {
        match taps {
            1 => {
                for ((d, &s), &w) in dst.iter_mut().zip(start).zip(weights) {
                    *d = w * src[s];
                }
            }
            2 => {
                for ((d, &s), w) in dst.iter_mut().zip(start).zip(weights.chunks_exact(2)) {
                    let p = &src[s..s + 2];
                    *d = madd::<FMA>(w[1], p[1], w[0] * p[0]);
                }
            }
            4 => {
                for ((d, &s), w) in dst.iter_mut().zip(start).zip(weights.chunks_exact(4)) {
                    let p = &src[s..s + 4];
                    let a = madd::<FMA>(w[1], p[1], w[0] * p[0]);
                    let b = madd::<FMA>(w[3], p[3], w[2] * p[2]);
                    *d = a + b;
                }
            }
            _ => {
                for ((d, &s), w) in dst.iter_mut().zip(start).zip(weights.chunks_exact(taps)) {
                    let p = &src[s..s + taps];
                    *d = w
                        .iter()
                        .zip(p)
                        .fold(0.0, |acc, (&w, &v)| madd::<FMA>(w, v, acc));
                }
            }
        }
    }
}

dispatch_isa! {
    /// Resample every row of `x` (rows of `in_w` floats) into the rows of
    /// `y` (`out_w` floats each, as many rows) with `band`.
    pub(crate) fn rows(band: Band, x: &[f32], in_w: usize, y: &mut [f32], out_w: usize) => rows_body
}

#[inline(always)]
fn cols_body<const FMA: bool>(band: Band, x: &[f32], inner: usize, y: &mut [f32]) {
    let Band {
        start,
        weights,
        taps,
    } = band;
    if inner == 0 {
        return;
    }
    for (i, dst) in y.chunks_exact_mut(inner).enumerate() {
        let w = &weights[i * taps..(i + 1) * taps];
        let row = |k: usize| &x[(start[i] + k) * inner..(start[i] + k + 1) * inner];
        match taps {
            1 => {
                let (w0, r0) = (w[0], row(0));
                dst.iter_mut().zip(r0).for_each(|(d, &a)| *d = w0 * a);
            }
            2 => {
                let (w0, w1, r0, r1) = (w[0], w[1], row(0), row(1));
                for ((d, &a), &b) in dst.iter_mut().zip(r0).zip(r1) {
                    *d = madd::<FMA>(w1, b, w0 * a);
                }
            }
            _ => {
                let (w0, r0) = (w[0], row(0));
                dst.iter_mut().zip(r0).for_each(|(d, &a)| *d = w0 * a);
                for (k, &wk) in w.iter().enumerate().skip(1) {
                    if wk == 0.0 {
                        continue;
                    }
                    for (d, &a) in dst.iter_mut().zip(row(k)) {
                        *d = madd::<FMA>(wk, a, *d);
                    }
                }
            }
        }
    }
}

dispatch_isa! {
    /// Resample `x`, `[in_len, inner]` row-major, along its first axis into
    /// `y`, `[out_len, inner]`, with `band` (`out_len` bands).
    pub(crate) fn cols(band: Band, x: &[f32], inner: usize, y: &mut [f32]) => cols_body
}
