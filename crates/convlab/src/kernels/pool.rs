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
        #[cfg(target_arch = "x86_64")]
        if super::isa::isa() == super::isa::Isa::Avx512 {
            // SAFETY: AVX-512F was detected; the bounds above hold.
            unsafe { max_2x2s2_avx512(planes, (h, w), (oh, ow), input, output, indices) };
            return;
        }
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

/// Where a block of 16 outputs of `MaxPool2d(2)` finds its taps: four
/// 16-float loads (offsets from the block's base), and per output the
/// position of its top-left tap in those 64 floats and its in-plane index
/// relative to the block's.
#[cfg(target_arch = "x86_64")]
struct Block2x2 {
    loads: [usize; 4],
    top_left: [u32; 16],
    plane_index: [u32; 16],
}

/// `MaxPool2d(2)` with indices, 16 outputs per step: the four taps of 16
/// windows are picked out of 64 loaded floats with permutes, compared with
/// masks and their in-plane indices widened to `usize`. The digits net's
/// pools (planes of 8x8 and 4x4) ran the scalar loop at 2-3 ns per output
/// (13 % of a training run). Shapes it does not cover (odd sides, rows
/// that neither divide nor are multiples of 16 outputs) take the scalar loop.
///
/// # Safety
/// The CPU has AVX-512F; `input`, `output` and `indices` hold `planes`
/// planes of `h x w` and `oh x ow` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_2x2s2_avx512(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    input: &[f32],
    output: &mut [f32],
    indices: &mut [usize],
) {
    let ohw = oh * ow;
    let total = planes * ohw;
    let lanes = |f: &dyn Fn(usize) -> usize| -> [u32; 16] { std::array::from_fn(|j| f(j) as u32) };
    let even = h == 2 * oh && w == 2 * ow && ohw > 0;
    // Runs of 16 outputs over whole rows (and whole planes, or a whole number
    // of 16-output blocks per plane): every block reads 64 floats from 64*b.
    if even && 16 % ow == 0 && (ohw % 16 == 0 || 16 % ohw == 0) {
        let blk = Block2x2 {
            loads: [0, 16, 32, 48],
            top_left: lanes(&|j| 4 * j - 2 * (j % ow)),
            plane_index: lanes(&|j| 4 * (j % ohw) - 2 * (j % ow)),
        };
        let blocks = total / 16;
        for b in 0..blocks {
            let o0 = 16 * b;
            let plane_base = if ohw % 16 == 0 { 4 * (o0 % ohw) } else { 0 };
            // SAFETY: block b reads input[64b .. 64b + 64] (the inputs of
            // outputs o0..o0+16, h = 2*oh and w = 2*ow) and writes 16 outputs.
            unsafe { block_2x2(&blk, w, input, 64 * b, plane_base, output, indices, o0) };
        }
        // The rest starts on a plane boundary (16 is a multiple of ohw here,
        // or there is no rest): in-plane indices need no offset.
        let done = blocks * 16 / ohw;
        max_pool2d_2x2s2(
            planes - done,
            (h, w),
            (oh, ow),
            &input[done * h * w..],
            &mut output[done * ohw..],
            &mut indices[done * ohw..],
        );
        return;
    }
    // Rows of a multiple of 16 outputs: blocks along each row.
    if even && ow % 16 == 0 {
        let blk = Block2x2 {
            loads: [0, 16, w, w + 16],
            top_left: lanes(&|j| 2 * j),
            plane_index: lanes(&|j| 2 * j),
        };
        for p in 0..planes {
            for oy in 0..oh {
                for ox0 in (0..ow).step_by(16) {
                    let at = 2 * oy * w + 2 * ox0;
                    let o0 = p * ohw + oy * ow + ox0;
                    // SAFETY: reads two 32-float runs of rows 2*oy and
                    // 2*oy+1 of plane p; writes outputs o0..o0+16 of its row.
                    unsafe { block_2x2(&blk, w, input, p * h * w + at, at, output, indices, o0) };
                }
            }
        }
        return;
    }
    max_pool2d_2x2s2(planes, (h, w), (oh, ow), input, output, indices);
}

/// One block of 16 outputs (see [`Block2x2`]): loads at `base + loads[i]`,
/// outputs and indices at `o0..o0 + 16`, in-plane indices `plane_base +
/// plane_index[j]` plus the winning tap's offset (0, 1, w or w + 1).
///
/// # Safety
/// AVX-512F; `input[base + loads[i] .. + 16]` and `output/indices[o0 .. o0 + 16]` in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_2x2(
    blk: &Block2x2,
    w: usize,
    input: &[f32],
    base: usize,
    plane_base: usize,
    output: &mut [f32],
    indices: &mut [usize],
    o0: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(blk.loads.iter().all(|&l| base + l + 16 <= input.len()));
    debug_assert!(o0 + 16 <= output.len() && o0 + 16 <= indices.len());
    // SAFETY (whole body): the caller guarantees the loads and stores are in
    // bounds; permute indices are below 64 by construction of the tables.
    unsafe {
        let src = input.as_ptr().add(base);
        let z = blk.loads.map(|l| _mm512_loadu_ps(src.add(l)));
        let tl = _mm512_loadu_si512(blk.top_left.as_ptr().cast());
        let pick = |off: u32| {
            let at = _mm512_add_epi32(tl, _mm512_set1_epi32(off as i32));
            let high = _mm512_cmpge_epu32_mask(at, _mm512_set1_epi32(32));
            let lo = _mm512_permutex2var_ps(z[0], at, z[1]);
            let hi = _mm512_permutex2var_ps(z[2], at, z[3]);
            _mm512_mask_blend_ps(high, lo, hi)
        };
        // PyTorch's scan: a later tap wins if greater or NaN; as a tree
        // (see `keep`) this equals the sequential order t0, t1, b0, b1.
        let take = |a: __m512, b: __m512| {
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b, a) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b)
        };
        let w32 = w as u32;
        let (t0, t1, b0, b1) = (pick(0), pick(1), pick(w32), pick(w32 + 1));
        let (m_top, m_bottom) = (take(t0, t1), take(b0, b1));
        let top = _mm512_mask_blend_ps(m_top, t0, t1);
        let bottom = _mm512_mask_blend_ps(m_bottom, b0, b1);
        let m = take(top, bottom);
        let one = _mm512_set1_epi32(1);
        let top_off = _mm512_maskz_mov_epi32(m_top, one);
        let bottom_off = _mm512_add_epi32(
            _mm512_set1_epi32(w as i32),
            _mm512_maskz_mov_epi32(m_bottom, one),
        );
        let off = _mm512_mask_blend_epi32(m, top_off, bottom_off);
        let idx = _mm512_add_epi32(
            _mm512_add_epi32(
                _mm512_loadu_si512(blk.plane_index.as_ptr().cast()),
                _mm512_set1_epi32(plane_base as i32),
            ),
            off,
        );
        _mm512_storeu_ps(
            output.as_mut_ptr().add(o0),
            _mm512_mask_blend_ps(m, top, bottom),
        );
        let dst = indices.as_mut_ptr().add(o0).cast::<__m512i>();
        _mm512_storeu_si512(dst, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(idx)));
        _mm512_storeu_si512(
            dst.add(1),
            _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(idx)),
        );
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
            // 2x2 stride 2 through both block layouts of the AVX-512 path
            // (rows dividing 16 outputs, rows of 16 and 32) and its rest.
            (8, 8, 2, 2),
            (2, 2, 2, 2),
            (4, 64, 2, 2),
            (6, 32, 2, 2),
            (16, 16, 2, 2),
            (10, 10, 2, 2),
            (4, 4, 2, 2),
            (5, 7, 2, 2),
            (8, 6, 2, 2),
            (2, 2, 2, 2),
            (6, 5, 3, 1),
            (7, 7, 3, 2),
            (3, 3, 3, 3),
        ] {
            let planes = 7;
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
