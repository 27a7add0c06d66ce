//! A stride-1 convolution dilated by `(dh, dw)` is `dh * dw` undilated
//! convolutions: output phase `(r, s)` — rows `r, r + dh, ...`, columns
//! `s, s + dw, ...` — reads only input phase `(r, s)`, through the same
//! kernel packed tight, with the padding divided by the dilation. Seen as
//! extra images of the batch, the phases let a dilated layer run on the
//! undilated fast paths (Winograd for dilated 3x3 layers), which read and
//! write the phases in place ([`super::winograd::Phases`]): splitting the
//! tensors into phase tensors and merging them back cost 10-12 % of
//! dilated_3x3_d2's forward each.

use crate::shape::ConvGeometry;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{conv2d, conv2d_backward, force_conv_algo, Conv2dParams, ConvAlgo};
    use crate::Tensor;

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
