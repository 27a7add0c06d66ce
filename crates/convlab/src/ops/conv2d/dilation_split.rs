//! A stride-1 convolution dilated by `(dh, dw)` is `dh * dw` undilated
//! convolutions: output phase `(r, s)` — rows `r, r + dh, ...`, columns
//! `s, s + dw, ...` — reads only input phase `(r, s)`, through the same
//! kernel packed tight, with the padding divided by the dilation. Seen as
//! extra images of the batch, the phases let a dilated layer run on the
//! undilated fast paths (Winograd for dilated 3x3 layers). The forward and
//! the input gradient read and write the phases in place
//! ([`super::winograd_path::Phases`]); the weight gradient splits its two
//! operands into phase tensors first ([`to_phases`]).

use super::*;
use crate::kernels::simd::{dispatch_simd, Simd};
use rayon::prelude::*;

/// The undilated geometry on phase images, when `g` splits evenly: stride
/// 1, and every extent and padding a multiple of the dilation.
pub(crate) fn split(g: &ConvGeometry) -> Option<ConvGeometry> {
    let (dh, dw) = (g.dh, g.dw);
    if (dh == 1 && dw == 1) || g.sh != 1 || g.sw != 1 {
        return None;
    }
    let even = g.h % dh == 0
        && g.w % dw == 0
        && g.oh % dh == 0
        && g.ow % dw == 0
        && g.pt % dh == 0
        && g.pl % dw == 0;
    if !even {
        return None;
    }
    let s = ConvGeometry {
        n: g.n.checked_mul(dh * dw)?,
        h: g.h / dh,
        w: g.w / dw,
        dh: 1,
        dw: 1,
        pt: g.pt / dh,
        pl: g.pl / dw,
        oh: g.oh / dh,
        ow: g.ow / dw,
        ..*g
    };
    // Bottom and right padding then divide too (output size minus the
    // rest), and every phase read lands where the dilated one did.
    Some(s)
}

/// Split one `[h, w]` plane into its `dh * dw` phases, phase `(r, s)` of
/// it to `dst[r * dw + s]` (`h/dh * w/dw` floats each, every one written).
#[inline(always)]
unsafe fn split_body<S: Simd>(
    plane: &[f32],
    (h, w): (usize, usize),
    (dh, dw): (usize, usize),
    dst: &mut [&mut [MaybeUninit<f32>]],
) {
    let (hp, wp) = (h / dh, w / dw);
    let lanes = S::LANES;
    for r in 0..dh {
        for a in 0..hp {
            let row = &plane[(a * dh + r) * w..][..w];
            let mut b = 0;
            if dw == 2 {
                // Both column phases of a row in one pass of permutes.
                let (d0, d1) = dst[r * 2..r * 2 + 2].split_at_mut(1);
                let (e, o) = (d0[0][a * wp..].as_mut_ptr(), d1[0][a * wp..].as_mut_ptr());
                while b + lanes <= wp {
                    // SAFETY: columns 2b .. 2b + 2*lanes <= w of the row are
                    // read; b + lanes <= wp of each phase row written.
                    unsafe {
                        S::deinterleave2(
                            row.as_ptr().add(2 * b),
                            e.add(b) as *mut f32,
                            o.add(b) as *mut f32,
                        )
                    };
                    b += lanes;
                }
                if b < wp {
                    // The last partial vector through zero-padded copies,
                    // copied in vectors: `memcpy` calls and a scalar loop
                    // here were 12 % of dilated_3x3_d2's forward (28-float
                    // phase rows: one vector and a 12-float tail).
                    let n = wp - b;
                    let mut t = [0.0f32; 64];
                    let (te, to) = t.split_at_mut(32);
                    // SAFETY: columns 2b .. 2wp of the row are read, t holds
                    // 2*lanes floats per half; b + n = wp of each phase row.
                    unsafe {
                        S::copy_n(row.as_ptr().add(2 * b), te.as_mut_ptr(), 2 * n);
                        S::deinterleave2(te.as_ptr(), to.as_mut_ptr(), to.as_mut_ptr().add(16));
                        S::copy_n(to.as_ptr(), e.add(b) as *mut f32, n);
                        S::copy_n(to.as_ptr().add(16), o.add(b) as *mut f32, n);
                    }
                    b = wp;
                }
            }
            for s in 0..dw {
                let d = &mut dst[r * dw + s][a * wp..][..wp];
                for bb in b..wp {
                    d[bb].write(row[bb * dw + s]);
                }
            }
        }
    }
}

dispatch_simd! {
    unsafe fn split_plane(
        plane: &[f32],
        size: (usize, usize),
        dil: (usize, usize),
        dst: &mut [&mut [MaybeUninit<f32>]],
    ) => split_body
}

/// `[n, c, h, w]` planes to phase images `[n, dh, dw, c, h/dh, w/dw]`.
pub(crate) fn to_phases(
    src: &[f32],
    n: usize,
    c: usize,
    (h, w): (usize, usize),
    (dh, dw): (usize, usize),
) -> Result<Vec<f32>> {
    let mut out = memory::uninit_f32("conv2d", src.len())?;
    let pp = (h / dh) * (w / dw);
    let dst = Shared(out.as_mut_ptr());
    (0..n * c).into_par_iter().for_each(|i| {
        let (img, ch) = (i / c, i % c);
        let mut phases: Vec<&mut [MaybeUninit<f32>]> = (0..dh * dw)
            .map(|rs| {
                // SAFETY: phase plane (img, rs, ch) lies inside `out` and
                // belongs to this task alone.
                unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.get().add(((img * dh * dw + rs) * c + ch) * pp),
                        pp,
                    )
                }
            })
            .collect();
        // SAFETY: the plane and its phases have the sizes split_body reads
        // and writes.
        unsafe { split_plane(&src[i * h * w..][..h * w], (h, w), (dh, dw), &mut phases) };
    });
    // SAFETY: every phase plane of every (img, ch) was written in full.
    Ok(unsafe { memory::assume_written(out) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{force_conv_algo, ConvAlgo};

    /// A dilated layer through its phases (forced Winograd) against the
    /// reference loops, all three passes, with channel counts that Winograd
    /// takes and uneven phase sizes.
    #[test]
    fn split_matches_the_reference() {
        let mut rng = crate::seeded_rng(3);
        for &(dil, pad, h, w) in &[(2, 2, 12, 10), (3, 3, 9, 12), (2, 4, 8, 8)] {
            let x = Tensor::randn(&[2, 16, h, w], &mut rng).unwrap();
            let wt = Tensor::randn(&[16, 16, 3, 3], &mut rng).unwrap();
            let p = Conv2dParams::new().padding(pad).dilation(dil);
            let run = |algo| {
                let _f = force_conv_algo(algo);
                let y = conv2d(&x, &wt, None, &p).unwrap();
                let g = conv2d_backward(&x, &wt, false, &y, &p).unwrap();
                (y, g.grad_input, g.grad_weight)
            };
            let (y, gx, gw) = run(ConvAlgo::Winograd);
            let (yr, gxr, gwr) = run(ConvAlgo::Reference);
            for (a, b, what) in [
                (&y, &yr, "output"),
                (&gx, &gxr, "grad_input"),
                (&gw, &gwr, "grad_weight"),
            ] {
                let scale = b.data().iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                let err = a
                    .data()
                    .iter()
                    .zip(b.data())
                    .fold(0.0f32, |m, (u, v)| m.max((u - v).abs()));
                assert!(
                    err / scale < 1e-4,
                    "dilation {dil} pad {pad} {h}x{w} {what}: {err} / {scale}"
                );
            }
        }
    }

    #[test]
    fn uneven_shapes_do_not_split() {
        let g = |h: usize, pt: usize| ConvGeometry {
            n: 1,
            c_in: 1,
            h,
            w: 8,
            c_out: 1,
            kh: 3,
            kw: 3,
            groups: 1,
            sh: 1,
            sw: 1,
            dh: 2,
            dw: 2,
            pt,
            pl: 2,
            oh: h + 2 * pt - 4,
            ow: 8,
        };
        assert!(split(&g(8, 2)).is_some());
        assert!(split(&g(9, 2)).is_none(), "odd height");
        assert!(split(&g(8, 1)).is_none(), "odd padding");
    }
}
