//! The resampling layers and their autograd ops: `nn.Upsample`,
//! `PixelShuffle`, `PixelUnshuffle`, `ChannelShuffle` and the padding
//! layers print as PyTorch's (reprs taken from torch 2.15), compute what
//! the functional op computes, and every gradient `Var::interpolate`,
//! `pad`, the shuffles, `grid_sample` and `affine_grid` record matches
//! central finite differences.

mod common;

use common::{check_gradient, rand_tensor};
use convlab::autograd::Var;
use convlab::nn::*;
use convlab::ops::{
    self, GridSampleMode, GridSamplePadding, GridSampleParams, InterpolateMode, InterpolateParams,
    PadMode,
};
use convlab::Tensor;

#[test]
fn layers_print_as_pytorch() {
    let cases: Vec<(Box<dyn Module>, &str)> = vec![
        (Box::new(ZeroPad2d::new(1)), "ZeroPad2d((1, 1, 1, 1))"),
        (Box::new(ZeroPad1d::new([1, 2])), "ZeroPad1d((1, 2))"),
        (
            Box::new(ConstantPad2d::new([1, 0, 0, 2], 3.5)),
            "ConstantPad2d(padding=(1, 0, 0, 2), value=3.5)",
        ),
        (
            Box::new(ConstantPad1d::new(2, 0.0)),
            "ConstantPad1d(padding=(2, 2), value=0.0)",
        ),
        (
            Box::new(ReflectionPad2d::new(1)),
            "ReflectionPad2d((1, 1, 1, 1))",
        ),
        (
            Box::new(ReplicationPad3d::new(2)),
            "ReplicationPad3d((2, 2, 2, 2, 2, 2))",
        ),
        (Box::new(CircularPad1d::new(1)), "CircularPad1d((1, 1))"),
        (
            Box::new(Upsample::scale_factor(2.0, InterpolateMode::Nearest)),
            "Upsample(scale_factor=2.0, mode='nearest')",
        ),
        (
            Box::new(Upsample::size([4, 4], InterpolateMode::Bilinear)),
            "Upsample(size=(4, 4), mode='bilinear')",
        ),
        (
            Box::new(Upsample::size(4, InterpolateMode::Nearest)),
            "Upsample(size=4, mode='nearest')",
        ),
        (
            Box::new(Upsample::scale_factor([2.0, 3.0], InterpolateMode::Nearest)),
            "Upsample(scale_factor=(2.0, 3.0), mode='nearest')",
        ),
        (
            Box::new(PixelShuffle::new(2)),
            "PixelShuffle(upscale_factor=2)",
        ),
        (
            Box::new(PixelUnshuffle::new(2)),
            "PixelUnshuffle(downscale_factor=2)",
        ),
        (Box::new(ChannelShuffle::new(2)), "ChannelShuffle(groups=2)"),
    ];
    for (layer, want) in cases {
        assert_eq!(layer.describe(), want);
    }
}

#[test]
fn layers_compute_the_functional_ops_and_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Upsample>();
    send_sync::<PixelShuffle>();
    send_sync::<ReflectionPad2d>();
    send_sync::<ConstantPad3d>();
    let x = rand_tensor(&[2, 8, 5, 6], 1);
    let v = Var::new(x.clone());
    let same = |layer: &dyn Module, want: Tensor| {
        assert_eq!(
            layer.forward(&v).unwrap().tensor(),
            want,
            "{}",
            layer.describe()
        );
    };
    let bilinear = InterpolateParams::new(InterpolateMode::Bilinear).size([7, 9]);
    same(
        &Upsample::with(bilinear.clone()),
        ops::interpolate(&x, &bilinear).unwrap(),
    );
    same(&PixelShuffle::new(2), ops::pixel_shuffle(&x, 2).unwrap());
    same(
        &ChannelShuffle::new(4),
        ops::channel_shuffle(&x, 4).unwrap(),
    );
    same(
        &ReflectionPad2d::new([2, 1, 0, 3]),
        ops::pad(&x, &[2, 1, 0, 3], PadMode::Reflect).unwrap(),
    );
    same(
        &ConstantPad1d::new(-1, 7.0),
        ops::pad(&x, &[-1, -1], PadMode::Constant(7.0)).unwrap(),
    );
    same(
        &ZeroPad3d::new(1),
        ops::pad(&x, &[1; 6], PadMode::Constant(0.0)).unwrap(),
    );
    let even = rand_tensor(&[1, 2, 4, 6], 2);
    assert_eq!(
        PixelUnshuffle::new(2)
            .forward(&Var::new(even.clone()))
            .unwrap()
            .tensor(),
        ops::pixel_unshuffle(&even, 2).unwrap()
    );
    // Sizes are checked when the layer runs, with the op's error.
    let e = ReflectionPad2d::new(9).forward(&v).unwrap_err().to_string();
    assert!(e.contains("pad"), "{e}");
}

/// `sum(f(x) * r)` for a fixed random `r`, in f64.
fn weighted(y: &Tensor, r: &Tensor) -> f64 {
    common::dot(y, r)
}

/// Checks the gradient `f` records for its input against finite
/// differences of `sum(f(x) * r)`.
fn check(what: &str, x: &Tensor, f: impl Fn(&Var) -> convlab::Result<Var>) {
    check_eps(what, x, 1e-2, f)
}

/// [`check`] with step `eps` (grid coordinates need small steps: 0.01 of
/// the grid is 0.03 pixels, enough to cross a pixel edge).
fn check_eps(what: &str, x: &Tensor, eps: f32, f: impl Fn(&Var) -> convlab::Result<Var>) {
    let v = Var::param(x.clone());
    let y = f(&v).unwrap();
    let r = rand_tensor(&y.shape(), 77);
    y.mul(&Var::new(r.clone()))
        .unwrap()
        .sum()
        .unwrap()
        .backward()
        .unwrap();
    let analytic = v.grad().expect("a gradient");
    check_gradient(what, x, &analytic, eps, 2e-3, |xp| {
        weighted(&f(&Var::new(xp.clone())).unwrap().tensor(), &r)
    });
}

#[test]
fn every_recorded_gradient_matches_finite_differences() {
    let x = rand_tensor(&[1, 2, 4, 5], 3);
    for (mode, size) in [
        (InterpolateMode::Bilinear, vec![7, 3]),
        (InterpolateMode::Bicubic, vec![6, 8]),
        (InterpolateMode::Nearest, vec![8, 10]),
        (InterpolateMode::Area, vec![2, 2]),
    ] {
        let p = InterpolateParams::new(mode).size(size);
        check(&format!("interpolate {}", mode.name()), &x, |v| {
            v.interpolate(&p)
        });
    }
    let aa = InterpolateParams::new(InterpolateMode::Bilinear)
        .size([2, 3])
        .antialias(true);
    check("interpolate antialias", &x, |v| v.interpolate(&aa));
    for mode in [
        PadMode::Constant(1.5),
        PadMode::Reflect,
        PadMode::Replicate,
        PadMode::Circular,
    ] {
        check(&format!("pad {mode:?}"), &x, |v| {
            v.pad(&[2, 1, -1, 3], mode)
        });
    }
    let c4 = rand_tensor(&[1, 4, 3, 2], 4);
    check("pixel_shuffle", &c4, |v| v.pixel_shuffle(2));
    check("pixel_unshuffle", &rand_tensor(&[1, 2, 4, 6], 5), |v| {
        v.pixel_unshuffle(2)
    });
    check("channel_shuffle", &c4, |v| v.channel_shuffle(2));

    // grid_sample: both the input and the grid (kept off pixel centres and
    // edges, where bilinear sampling has kinks).
    let grid = Tensor::from_vec(
        (0..2 * 3 * 4 * 2)
            .map(|i| ((i * 37 % 23) as f32 / 23.0 - 0.5) * 1.6 + 0.013)
            .collect(),
        &[2, 3, 4, 2],
    )
    .unwrap();
    let input = rand_tensor(&[2, 3, 5, 6], 6);
    for mode in [GridSampleMode::Bilinear, GridSampleMode::Bicubic] {
        for padding in [GridSamplePadding::Zeros, GridSamplePadding::Border] {
            let p = GridSampleParams::default().mode(mode).padding_mode(padding);
            let g = Var::new(grid.clone());
            check(
                &format!("grid_sample input {mode:?} {padding:?}"),
                &input,
                |v| v.grid_sample(&g, &p),
            );
            let xin = Var::new(input.clone());
            check_eps(
                &format!("grid_sample grid {mode:?} {padding:?}"),
                &grid,
                1e-3,
                |v| xin.grid_sample(v, &p),
            );
        }
    }
    let theta = rand_tensor(&[2, 2, 3], 7);
    check("affine_grid", &theta, |v| {
        v.affine_grid(&[2, 1, 4, 5], false)
    });
}
