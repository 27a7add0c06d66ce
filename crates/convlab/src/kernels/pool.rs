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
use std::mem::MaybeUninit;

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
    pub fn max_pool2d_plane(
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
    pub fn avg_pool2d_plane(
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

/// Whether [`avg_pool2d_2x2s2`] runs on this CPU (it needs AVX-512).
pub fn avg_pool2d_2x2s2_supported() -> bool {
    cfg!(target_arch = "x86_64") && super::isa::isa() == super::isa::Isa::Avx512
}

/// `AvgPool2d(2)` (stride 2, no padding, windows inside the plane) of
/// `planes` planes of `h x w` into `oh x ow`, every window sum times
/// `scale`; `false` (nothing written) when this CPU lacks AVX-512, and the
/// caller takes the generic two-pass loop. Each output row is two row
/// loads, one add, and one even/odd permute pair per 16 outputs: the
/// generic loop's per-row setup cost more than the arithmetic on LeNet's
/// 28x28 planes (about 80 cycles per 14-output row).
pub fn avg_pool2d_2x2s2(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    scale: f32,
    input: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> bool {
    debug_assert!(2 * oh <= h && 2 * ow <= w);
    debug_assert!(input.len() >= planes * h * w && out.len() >= planes * oh * ow);
    #[cfg(target_arch = "x86_64")]
    if super::isa::isa() == super::isa::Isa::Avx512 {
        // SAFETY: AVX-512F was detected; the bounds above hold.
        unsafe { avg_2x2s2_avx512(planes, (h, w), (oh, ow), scale, input, out) };
        return true;
    }
    let _ = (planes, h, w, oh, ow, scale, input, out);
    false
}

/// See [`avg_pool2d_2x2s2`].
///
/// # Safety
/// AVX-512F; `2 * oh <= h`, `2 * ow <= w`, `input` holds `planes` planes of
/// `h x w` and `out` of `oh x ow`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avg_2x2s2_avx512(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    scale: f32,
    input: &[f32],
    out: &mut [MaybeUninit<f32>],
) {
    use std::arch::x86_64::*;
    let evens: [i32; 16] = std::array::from_fn(|j| 2 * j as i32);
    let odds: [i32; 16] = std::array::from_fn(|j| 2 * j as i32 + 1);
    let mask = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as __mmask16 };
    // SAFETY (whole body): every masked load keeps lanes of rows `2*oy` and
    // `2*oy + 1` up to column `2*ox0 + 2*n <= 2*ow <= w` of an input plane
    // (masked-off lanes do not fault; the upper half's address may lie past
    // the row, hence `wrapping_add`); every masked store keeps outputs
    // `ox0 .. ox0 + n` of output row `oy`.
    unsafe {
        let (ev, od) = (
            _mm512_loadu_si512(evens.as_ptr().cast()),
            _mm512_loadu_si512(odds.as_ptr().cast()),
        );
        let s = _mm512_set1_ps(scale);
        for p in 0..planes {
            let x = input.as_ptr().add(p * h * w);
            let y = out.as_mut_ptr().add(p * oh * ow).cast::<f32>();
            for oy in 0..oh {
                let (r0, r1) = (x.add(2 * oy * w), x.add((2 * oy + 1) * w));
                for ox0 in (0..ow).step_by(16) {
                    let n = (ow - ox0).min(16);
                    let (m_lo, m_hi) = (mask(2 * n), mask((2 * n).saturating_sub(16)));
                    let at = 2 * ox0;
                    let lo = _mm512_add_ps(
                        _mm512_maskz_loadu_ps(m_lo, r0.add(at)),
                        _mm512_maskz_loadu_ps(m_lo, r1.add(at)),
                    );
                    let hi = _mm512_add_ps(
                        _mm512_maskz_loadu_ps(m_hi, r0.wrapping_add(at + 16)),
                        _mm512_maskz_loadu_ps(m_hi, r1.wrapping_add(at + 16)),
                    );
                    let sum = _mm512_add_ps(
                        _mm512_permutex2var_ps(lo, ev, hi),
                        _mm512_permutex2var_ps(lo, od, hi),
                    );
                    _mm512_mask_storeu_ps(y.add(oy * ow + ox0), mask(n), _mm512_mul_ps(sum, s));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Global average pooling (`adaptive_avg_pool2d(x, 1)`): one mean per plane.
// ResNet's 7x7 planes are 49 floats, so the cost is the per-plane reduction,
// not memory: 16 f32 lanes, a tree fold of the lanes, no per-plane setup.

/// Elements summed in f32 lanes before the partial sum moves to f64, so a
/// huge plane keeps the reference loop's (f64) accuracy.
const GLOBAL_BLOCK: usize = 4096;

/// The sum of 16 lanes as a tree. `black_box` keeps LLVM from fusing the
/// fold into the loop above, which it then ran as eight 2-lane sums
/// (global_avgpool: 10.4 -> 8.1 us, one thread).
#[inline(always)]
fn fold16(a: [f32; 16]) -> f32 {
    let a = std::hint::black_box(a);
    let a8: [f32; 8] = std::array::from_fn(|i| a[i] + a[i + 8]);
    let a4: [f32; 4] = std::array::from_fn(|i| a8[i] + a8[i + 4]);
    (a4[0] + a4[2]) + (a4[1] + a4[3])
}

#[inline(always)]
fn global_avg_body<const FMA: bool>(hw: usize, x: &[f32], out: &mut [f32]) {
    let inv = 1.0 / hw as f64;
    for (plane, o) in x.chunks_exact(hw).zip(out.iter_mut()) {
        let mut total = 0.0f64;
        for block in plane.chunks(GLOBAL_BLOCK) {
            let chunks = block.chunks_exact(16);
            // The tail summed apart: adding it into the lanes made the
            // compiler keep them on the stack (store-forwarding stalls).
            let tail: f32 = chunks.remainder().iter().sum();
            let mut acc = [0.0f32; 16];
            for c in chunks {
                let c: &[f32; 16] = c.try_into().expect("chunks_exact(16)");
                acc = std::array::from_fn(|i| acc[i] + c[i]);
            }
            let s = fold16(acc);
            total += (s + tail) as f64;
        }
        *o = (total * inv) as f32;
    }
}

dispatch_isa! {
    /// The mean of each `hw`-float plane of `x` into `out`, one plane at a time.
    fn global_avg_pool_rows(hw: usize, x: &[f32], out: &mut [f32]) => global_avg_body
}

/// Planes up to this many floats take the 16-planes-at-a-time AVX-512 path
/// (summing in f32 is exact enough there; bigger planes keep the f64 blocks).
const GLOBAL_SMALL_PLANE: usize = 256;

/// The mean of each `hw`-float plane of `x` into `out` (one per plane).
pub fn global_avg_pool_planes(hw: usize, x: &[f32], out: &mut [f32]) {
    debug_assert!(x.len() >= out.len() * hw);
    #[cfg(target_arch = "x86_64")]
    if hw > 0 && hw <= GLOBAL_SMALL_PLANE && super::isa::isa() == super::isa::Isa::Avx512 {
        // The unrolled kernels need a 64-byte aligned start. With an odd
        // plane size a few leading planes (fewer than 16) reach one; they
        // take the plane-by-plane loop.
        let lead = (x.as_ptr() as usize % 64) / 4;
        let skip = (0..16.min(out.len()))
            .find(|s| (lead + s * hw) % 16 == 0)
            .filter(|&s| s > 0 && x.as_ptr() as usize % 4 == 0);
        if let Some(s) = skip {
            global_avg_pool_rows(hw, &x[..s * hw], &mut out[..s]);
            global_avg_pool_planes(hw, &x[s * hw..], &mut out[s..]);
            return;
        }
        let done = out.len() / 16 * 16;
        let aligned = x.as_ptr() as usize % 64 == 0;
        // SAFETY: AVX-512F was detected; `x` holds `out.len()` planes of
        // `hw`; the unrolled kernels' `x` is 64-byte aligned.
        unsafe {
            let (x, o) = (&x[..done * hw], &mut out[..done]);
            match hw {
                16 if aligned => global_avg_unrolled::<16>(x, o),
                25 if aligned => global_avg_unrolled::<25>(x, o),
                36 if aligned => global_avg_unrolled::<36>(x, o),
                49 if aligned => global_avg_unrolled::<49>(x, o),
                64 if aligned => global_avg_unrolled::<64>(x, o),
                100 if aligned => global_avg_unrolled::<100>(x, o),
                196 if aligned => global_avg_unrolled::<196>(x, o),
                _ => global_avg_16_planes_avx512(hw, x, o),
            }
        }
        global_avg_pool_rows(hw, &x[done * hw..], &mut out[done..]);
        return;
    }
    global_avg_pool_rows(hw, x, out);
}

/// Sixteen small planes per step: each plane is summed into one vector
/// (full loads plus a masked tail), then the sixteen vectors are folded
/// together in a tree of unpacks and block shuffles whose result has plane
/// `i`'s sum in lane `i`. That is 30 shuffles per 16 planes where a
/// horizontal sum per plane takes 4 each plus a scalar store (ResNet's
/// 2048 planes of 49 floats were bound by the per-plane fold).
///
/// # Safety
/// The CPU has AVX-512F; `out.len()` is a multiple of 16, `x` holds
/// `out.len()` planes of `hw` floats, `0 < hw <= GLOBAL_SMALL_PLANE`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn global_avg_16_planes_avx512(hw: usize, x: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let inv = _mm512_set1_ps(1.0 / hw as f32);
    // Planes of 49 floats start anywhere in a cache line, and unaligned
    // loads straddling two lines cost a third of the time (7x7 planes
    // 7.6 us, 6x8 4.6), so every load is 64-byte aligned and masked to its
    // plane. A group spans 16 * hw floats, a whole number of vectors, so
    // each of the 16 planes has the same offset and masks in every group.
    let lead0 = (x.as_ptr() as usize % 64) / 4;
    let vectors = (0..16)
        .map(|i| ((lead0 + i * hw) % 16 + hw).div_ceil(16))
        .max()
        .unwrap_or(0);
    let mut start = [0usize; 16];
    let mut masks = [[0 as __mmask16; 17]; 16];
    for i in 0..16 {
        let lead = (lead0 + i * hw) % 16;
        start[i] = lead0 + i * hw - lead;
        for (k, m) in masks[i][..vectors].iter_mut().enumerate() {
            let lanes = |to: usize| -> u32 {
                let to = to.saturating_sub(16 * k).min(16);
                ((1u64 << to) - 1) as u32
            };
            *m = (lanes(lead + hw) & !lanes(lead)) as __mmask16;
        }
    }
    // SAFETY (whole loop): every lane a mask keeps lies in plane
    // `g * 16 + i` inside `x`; masked-off lanes are neither read nor fault,
    // so the aligned addresses may lie outside `x` (`wrapping_` arithmetic).
    // Plain loops over register arrays: closures (`array::from_fn`) would
    // pass `__m512` through functions compiled without AVX-512.
    unsafe {
        let zero = _mm512_setzero_ps();
        for (g, o) in out.chunks_exact_mut(16).enumerate() {
            let base = x.as_ptr().wrapping_add(g * 16 * hw).wrapping_sub(lead0);
            let mut v = [zero; 16];
            for k in 0..vectors {
                for i in 0..16 {
                    let p = base.wrapping_add(start[i] + 16 * k);
                    v[i] = _mm512_add_ps(v[i], _mm512_maskz_load_ps(masks[i][k], p));
                }
            }
            let sums = fold_16_sums(&v);
            _mm512_storeu_ps(o.as_mut_ptr(), _mm512_mul_ps(sums, inv));
        }
    }
}

/// Sixteen planes of `HW` floats per step from a 64-byte aligned `x`, every
/// vector loaded once and plain: a group of 16 planes is `HW` whole
/// vectors, and a vector holding the end of plane `i` and the start of
/// `i + 1` is split by one mask, the rest carried into the next plane. The
/// plane layout is known at compile time, so the loops unroll into
/// straight code with the 16 sums in registers (ResNet's 7x7 planes: 49
/// loads per 16 planes instead of 64 masked loads and their 64 masks).
///
/// # Safety
/// The CPU has AVX-512F; `x` is 64-byte aligned and holds `out.len()`
/// planes of `HW` floats; `out.len()` is a multiple of 16; `HW >= 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn global_avg_unrolled<const HW: usize>(x: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    const { assert!(HW >= 16) };
    let inv = _mm512_set1_ps(1.0 / HW as f32);
    for (g, o) in out.chunks_exact_mut(16).enumerate() {
        // SAFETY: the group's 16 planes are `HW` aligned vectors in `x`.
        unsafe {
            let base = x.as_ptr().add(g * 16 * HW);
            let mut carry = _mm512_setzero_ps();
            let mut v = [carry; 16];
            macro_rules! planes {
                ($($i:literal)*) => { $( v[$i] = unrolled_plane::<HW, $i>(base, &mut carry); )* };
            }
            planes!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            _mm512_storeu_ps(o.as_mut_ptr(), _mm512_mul_ps(fold_16_sums(&v), inv));
        }
    }
}

/// The lanes of plane `I` of a group (see [`global_avg_unrolled`]): `carry`
/// (its part of the vector it shares with plane `I - 1`) plus its whole
/// vectors plus its part of the vector it shares with plane `I + 1`, whose
/// other lanes become the new `carry`.
///
/// # Safety
/// `base` is a group of 16 planes of `HW` floats, 64-byte aligned, and
/// `carry` holds plane `I`'s lanes of the vector it shares with plane
/// `I - 1` (zero if none).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn unrolled_plane<const HW: usize, const I: usize>(
    base: *const f32,
    carry: &mut std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let (start, end) = (I * HW, (I + 1) * HW);
    let mut acc = *carry;
    // SAFETY: vectors `start.div_ceil(16) .. end / 16` lie inside plane
    // `I`; a shared last vector (`end % 16 != 0`, so `I < 15`) lies inside
    // the group, which ends on a vector boundary.
    unsafe {
        for k in start.div_ceil(16)..end / 16 {
            acc = _mm512_add_ps(acc, _mm512_load_ps(base.add(16 * k)));
        }
        if end % 16 == 0 {
            *carry = _mm512_setzero_ps();
        } else {
            let shared = _mm512_load_ps(base.add(16 * (end / 16)));
            let mine = ((1u32 << (end % 16)) - 1) as __mmask16;
            acc = _mm512_mask_add_ps(acc, mine, acc, shared);
            *carry = _mm512_maskz_mov_ps(!mine, shared);
        }
    }
    acc
}

/// Sixteen vectors to one whose lane `i` is the sum of `v[i]`'s lanes: a
/// tree of unpacks and block shuffles (30 shuffles, 15 adds).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn fold_16_sums(v: &[std::arch::x86_64::__m512; 16]) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    // Pairs: each lane now holds a partial sum of one of two planes.
    let mut t = [zero; 8];
    for (i, t) in t.iter_mut().enumerate() {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        *t = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    // Quads: each 128-bit block holds planes 4i..4i+4 in order.
    let mut u = [zero; 4];
    for (i, u) in u.iter_mut().enumerate() {
        let (a, b) = (_mm512_castps_pd(t[2 * i]), _mm512_castps_pd(t[2 * i + 1]));
        // 64-bit unpacks move pairs of floats; the add is in f32.
        *u = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
        );
    }
    // Eights: blocks 0 and 1 hold planes 8i..8i+4, 2 and 3 the next four.
    let mut w = [zero; 2];
    for (i, w) in w.iter_mut().enumerate() {
        let (a, b) = (u[2 * i], u[2 * i + 1]);
        *w = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        );
    }
    _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b10_00_10_00>(w[0], w[1]),
        _mm512_shuffle_f32x4::<0b11_01_11_01>(w[0], w[1]),
    )
}

#[inline(always)]
fn spread_body<const FMA: bool>(
    hw: usize,
    grad_output: &[f32],
    grad_input: &mut [MaybeUninit<f32>],
) {
    let inv = hw as f64;
    for (plane, &g) in grad_input.chunks_exact_mut(hw).zip(grad_output) {
        plane.fill(MaybeUninit::new((g as f64 / inv) as f32));
    }
}

dispatch_isa! {
    /// Gradient of [`global_avg_pool_planes`]: every element of plane `p` of
    /// `grad_input` is written (not added) with `grad_output[p] / hw`.
    pub fn global_avg_pool_backward_planes(
        hw: usize,
        grad_output: &[f32],
        grad_input: &mut [MaybeUninit<f32>],
    ) => spread_body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::pool::{reference, MaxPool2dParams};

    /// Global average pooling at every start alignment, so each plane size
    /// with an unrolled kernel runs it (from an aligned start, or after a
    /// few leading planes for odd sizes) and the masked one, and plane
    /// counts off multiples of 16 take the rest loop.
    #[test]
    fn global_average_at_every_alignment() {
        let mut rng = crate::seeded_rng(7);
        for hw in [16, 25, 36, 49, 64, 100, 196, 9, 50, 255] {
            for planes in [16, 48, 53] {
                let data = crate::Tensor::randn(&[planes * hw + 16], &mut rng).unwrap();
                let lead = (16 - (data.data().as_ptr() as usize % 64) / 4) % 16;
                for offset in 0..16 {
                    let x = &data.data()[(lead + offset) % 16..][..planes * hw];
                    let mut got = vec![f32::NAN; planes];
                    global_avg_pool_planes(hw, x, &mut got);
                    for (p, got) in got.iter().enumerate() {
                        let plane = &x[p * hw..][..hw];
                        let want = plane.iter().map(|&v| v as f64).sum::<f64>() / hw as f64;
                        assert!(
                            (*got as f64 - want).abs() <= 1e-5,
                            "hw {hw}, planes {planes}, offset {offset}, plane {p}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

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
