//! Global average pooling (`adaptive_avg_pool2d(x, 1)`): one mean per
//! plane, and its gradient.

use crate::kernels::isa::{dispatch_isa, isa, Isa};
use std::mem::MaybeUninit;

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

/// How many leading planes of `x` (`planes` of `hw` floats)
/// [`global_avg_pool_planes`] takes one at a time before its 16-plane
/// groups start: the AVX-512 kernels need a 64-byte aligned start, which
/// an odd plane size reaches after a few planes (fewer than 16). 0 when the
/// groups start at the first plane or there are none. Splitting the planes
/// after this many, into whole groups of 16, runs every plane on the path
/// the unsplit call runs it on.
pub(crate) fn global_avg_aligned_start(hw: usize, x: &[f32], planes: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if hw > 0 && hw <= GLOBAL_SMALL_PLANE && isa() == Isa::Avx512 {
        let lead = (x.as_ptr() as usize % 64) / 4;
        return (0..16.min(planes))
            .find(|s| (lead + s * hw) % 16 == 0)
            .filter(|&s| s > 0 && x.as_ptr() as usize % 4 == 0)
            .unwrap_or(0);
    }
    let _ = (hw, x, planes);
    0
}

/// The mean of each `hw`-float plane of `x` into `out` (one per plane).
pub(crate) fn global_avg_pool_planes(hw: usize, x: &[f32], out: &mut [f32]) {
    debug_assert!(x.len() >= out.len() * hw);
    #[cfg(target_arch = "x86_64")]
    if hw > 0 && hw <= GLOBAL_SMALL_PLANE && isa() == Isa::Avx512 {
        // The unrolled kernels need a 64-byte aligned start. With an odd
        // plane size a few leading planes (fewer than 16) reach one; they
        // take the plane-by-plane loop.
        let s = global_avg_aligned_start(hw, x, out.len());
        if s > 0 {
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
    pub(crate) fn global_avg_pool_backward_planes(
        hw: usize,
        grad_output: &[f32],
        grad_input: &mut [MaybeUninit<f32>],
    ) => spread_body
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
