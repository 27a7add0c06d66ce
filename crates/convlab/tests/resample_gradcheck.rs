//! Central finite differences against every analytic gradient of the
//! resampling, rearrangement and padding ops, in every mode: the loss is
//! `sum(op(x) * g)` for a fixed random `g`.

mod common;

use common::{check_gradient, dot, rand_tensor};
use convlab::ops::*;

fn interpolate_case(what: &str, shape: &[usize], p: &InterpolateParams) {
    let x = rand_tensor(shape, 3);
    let y = interpolate(&x, p).unwrap();
    let g = rand_tensor(y.shape(), 4);
    let gx = interpolate_backward(&g, shape, p).unwrap();
    check_gradient(what, &x, &gx, 1e-2, 1e-3, |x| {
        dot(&interpolate(x, p).unwrap(), &g)
    });
}

#[test]
fn interpolate_every_mode() {
    use InterpolateMode::*;
    for (mode, shape, size) in [
        (Nearest, vec![1, 2, 5], vec![8]),
        (NearestExact, vec![1, 1, 4, 5], vec![7, 3]),
        (Nearest, vec![1, 1, 2, 3, 4], vec![3, 5, 2]),
        (Area, vec![2, 1, 7, 5], vec![3, 4]),
        (Area, vec![1, 1, 3, 5, 4], vec![2, 3, 3]),
        (Linear, vec![2, 1, 6], vec![11]),
        (Bilinear, vec![1, 2, 4, 5], vec![7, 3]),
        (Bicubic, vec![1, 1, 5, 4], vec![8, 6]),
        (Trilinear, vec![1, 1, 3, 4, 3], vec![5, 2, 4]),
    ] {
        for align in [None, Some(true)] {
            let mut p = InterpolateParams::new(mode).size(size.clone());
            if align.is_some() && !matches!(mode, Nearest | NearestExact | Area) {
                p = p.align_corners(true);
            }
            interpolate_case(&format!("{mode:?} {align:?}"), &shape, &p);
        }
    }
}

#[test]
fn interpolate_scales_and_antialias() {
    use InterpolateMode::*;
    let cases = [
        InterpolateParams::new(Bilinear).scale_factor([1.7, 0.6]),
        InterpolateParams::new(Bicubic)
            .scale_factor(0.45)
            .recompute_scale_factor(true),
        InterpolateParams::new(Bilinear)
            .size([4, 3])
            .antialias(true),
        InterpolateParams::new(Bicubic).size([3, 7]).antialias(true),
        InterpolateParams::new(Bicubic)
            .size([5, 4])
            .antialias(true)
            .align_corners(true),
        InterpolateParams::new(Nearest).scale_factor([1.1, 2.1]),
    ];
    for p in cases {
        interpolate_case(&format!("{p:?}"), &[1, 2, 9, 8], &p);
    }
}

#[test]
fn pad_every_mode() {
    let cases: [(&[usize], &[i64], PadMode); 7] = [
        (&[2, 3, 5], &[2, -1, 1, 0, 0, 1], PadMode::Constant(0.7)),
        (&[2, 5], &[3, 4], PadMode::Reflect),
        (&[1, 2, 4, 5], &[2, -1, 3, 1], PadMode::Reflect),
        (&[2, 3, 3, 4], &[-3, 4, 2, 0], PadMode::Replicate),
        (&[1, 1, 3, 3, 4], &[1, 1, 2, 1, 1, 2], PadMode::Replicate),
        (&[2, 4, 5], &[-1, 3, 2, -1], PadMode::Circular),
        (&[1, 2, 3, 4, 3], &[1, 2, 3, 1, 2, 0], PadMode::Circular),
    ];
    for (shape, pads, mode) in cases {
        let x = rand_tensor(shape, 5);
        let y = pad(&x, pads, mode).unwrap();
        let g = rand_tensor(y.shape(), 6);
        let gx = pad_backward(&g, shape, pads, mode).unwrap();
        check_gradient(
            &format!("pad {pads:?} {mode:?}"),
            &x,
            &gx,
            1e-2,
            1e-3,
            |x| dot(&pad(x, pads, mode).unwrap(), &g),
        );
    }
}
