//! Max pooling with indices over windows that lie wholly inside the input
//! (no padding, dilation 1, no ceil-mode overhang), the common
//! `MaxPool2d(k)` of CNNs, and `AvgPool2d(2)`.

use crate::kernels::isa::{isa, Isa};
use std::mem::MaybeUninit;

// The reference loop (`testing::pool`) works out each window's clipped
// extent first; here every window is a plain `kh x kw` block, so the loop
// is straight slice reads with selects instead of branches.

/// Max pooling of `planes` planes of `h x w` into `oh x ow` outputs and the
/// flat in-plane index of each maximum. Same rule as PyTorch's
/// `(val > maxval) || isnan(val)` scanned row by row: the first of equal
/// maxima wins, and the last NaN.
///
/// The caller guarantees `(oh - 1) * sh + kh <= h` and
/// `(ow - 1) * sw + kw <= w` (checked in debug builds).
pub(crate) fn max_pool2d_inside(
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
        if isa() == Isa::Avx512 {
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
pub(crate) fn avg_pool2d_2x2s2_supported() -> bool {
    cfg!(target_arch = "x86_64") && isa() == Isa::Avx512
}

/// `AvgPool2d(2)` (stride 2, no padding, windows inside the plane) of
/// `planes` planes of `h x w` into `oh x ow`, every window sum times
/// `scale`; `false` (nothing written) when this CPU lacks AVX-512, and the
/// caller takes the generic two-pass loop. Each output row is two row
/// loads, one add, and one even/odd permute pair per 16 outputs: the
/// generic loop's per-row setup cost more than the arithmetic on LeNet's
/// 28x28 planes (about 80 cycles per 14-output row).
pub(crate) fn avg_pool2d_2x2s2(
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
    if isa() == Isa::Avx512 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::pool::MaxPool2dParams;
    use crate::testing::pool::max_pool_reference;

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
            let (oh, ow) = (g.height().out, g.width().out);
            let n = planes * oh * ow;
            let (mut o1, mut i1) = (vec![0.0; n], vec![0; n]);
            let (mut o2, mut i2) = (vec![0.0; n], vec![0; n]);
            max_pool_reference(&g, &x, &mut o1, &mut i1);
            max_pool2d_inside(
                planes,
                (h, w),
                (oh, ow),
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
