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

/// A grid of shape `gs` for input `xs` whose pixel coordinates lie 0.15 to
/// 0.85 past an integer, from two pixels before the input to two after:
/// away from every kink of the weights (pixel boundaries, borders,
/// reflection edges), where finite differences would straddle two pieces.
fn grid_away_from_kinks(xs: &[usize], gs: &[usize], align: bool) -> convlab::Tensor {
    let r = gs[gs.len() - 1];
    let u = rand_tensor(gs, 8);
    let v = rand_tensor(gs, 9);
    let data: Vec<f32> = u
        .data()
        .iter()
        .zip(v.data())
        .enumerate()
        .map(|(i, (&a, &b))| {
            let size = xs[xs.len() - 1 - i % r] as f32;
            let whole = ((a + 1.0) / 2.0 * (size + 4.0)).floor() - 2.0;
            let pix = whole + 0.5 + 0.35 * b;
            if align {
                2.0 * pix / (size - 1.0) - 1.0
            } else {
                (2.0 * pix + 1.0) / size - 1.0
            }
        })
        .collect();
    convlab::Tensor::from_vec(data, gs).unwrap()
}

#[test]
fn grid_sample_input_and_grid() {
    for mode in [
        GridSampleMode::Bilinear,
        GridSampleMode::Bicubic,
        GridSampleMode::Nearest,
    ] {
        for padding in [
            GridSamplePadding::Zeros,
            GridSamplePadding::Border,
            GridSamplePadding::Reflection,
        ] {
            for align in [false, true] {
                for rank in [4usize, 5] {
                    let p = GridSampleParams::default()
                        .mode(mode)
                        .padding_mode(padding)
                        .align_corners(align);
                    let (xs, gs): (&[usize], &[usize]) = if rank == 4 {
                        (&[1, 2, 4, 5], &[1, 3, 2, 2])
                    } else {
                        (&[1, 2, 3, 4, 3], &[1, 2, 2, 1, 3])
                    };
                    let x = rand_tensor(xs, 7);
                    let grid = grid_away_from_kinks(xs, gs, align);
                    let y = grid_sample(&x, &grid, &p).unwrap();
                    let g = rand_tensor(y.shape(), 9);
                    let (gx, gg) = grid_sample_backward(&x, &grid, &g, &p).unwrap();
                    let what = format!("{mode:?} {padding:?} align={align} rank {rank}");
                    check_gradient(&format!("{what} input"), &x, &gx, 1e-2, 1e-3, |x| {
                        dot(&grid_sample(x, &grid, &p).unwrap(), &g)
                    });
                    check_gradient(&format!("{what} grid"), &grid, &gg, 1e-3, 2e-2, |gr| {
                        dot(&grid_sample(&x, gr, &p).unwrap(), &g)
                    });
                }
            }
        }
    }
}

#[test]
fn affine_grid_theta() {
    for (theta_shape, size) in [
        (vec![2, 2, 3], vec![2, 1, 4, 5]),
        (vec![1, 3, 4], vec![1, 2, 3, 2, 4]),
    ] {
        for align in [false, true] {
            let theta = rand_tensor(&theta_shape, 10);
            let y = affine_grid(&theta, &size, align).unwrap();
            let g = rand_tensor(y.shape(), 11);
            let gt = affine_grid_backward(&g, &size, align).unwrap();
            check_gradient(
                &format!("affine_grid {size:?} {align}"),
                &theta,
                &gt,
                1e-2,
                1e-3,
                |t| dot(&affine_grid(t, &size, align).unwrap(), &g),
            );
        }
    }
}

#[test]
fn shuffles() {
    let x = rand_tensor(&[2, 8, 3, 2], 12);
    let y = pixel_shuffle(&x, 2).unwrap();
    let g = rand_tensor(y.shape(), 13);
    let gx = pixel_shuffle_backward(&g, 2).unwrap();
    check_gradient("pixel_shuffle", &x, &gx, 1e-2, 1e-3, |x| {
        dot(&pixel_shuffle(x, 2).unwrap(), &g)
    });
    let gx = pixel_unshuffle_backward(&x, 2).unwrap();
    let y = pixel_unshuffle(&gx, 2).unwrap();
    assert_eq!(y, x);
    let gu = pixel_unshuffle_backward(&rand_tensor(&[2, 8, 3, 2], 14), 2).unwrap();
    check_gradient("pixel_unshuffle", &gx, &gu, 1e-2, 1e-3, |v| {
        dot(
            &pixel_unshuffle(v, 2).unwrap(),
            &rand_tensor(&[2, 8, 3, 2], 14),
        )
    });
    let s = channel_shuffle(&x, 4).unwrap();
    let g = rand_tensor(s.shape(), 15);
    let gx = channel_shuffle_backward(&g, 4).unwrap();
    check_gradient("channel_shuffle", &x, &gx, 1e-2, 1e-3, |x| {
        dot(&channel_shuffle(x, 4).unwrap(), &g)
    });
}
