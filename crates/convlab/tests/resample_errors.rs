//! PyTorch's error conditions of the resampling, rearrangement and padding
//! ops: each is a one-line error naming the op and the parameter or shapes
//! (PyTorch raises on every one of these calls).

mod common;

use common::expect_err;
use convlab::ops::*;
use convlab::Tensor;

fn z(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape).unwrap()
}

#[test]
fn interpolate_errors() {
    use InterpolateMode::*;
    let x4 = z(&[1, 2, 4, 4]);
    let p = InterpolateParams::new;
    expect_err(
        interpolate(&z(&[4, 4]), &p(Nearest).size(2)),
        &["interpolate", "3-D, 4-D and 5-D", "[4, 4]"],
    );
    expect_err(
        interpolate(&x4, &p(Nearest).size(2).align_corners(false)),
        &["align_corners", "nearest"],
    );
    expect_err(
        interpolate(&x4, &p(Area).size(2).align_corners(true)),
        &["align_corners", "area"],
    );
    expect_err(
        interpolate(&x4, &p(Bilinear).size(2).scale_factor(2.0)),
        &["size", "scale_factor"],
    );
    expect_err(
        interpolate(&x4, &p(Bilinear)),
        &["size", "scale_factor", "must be set"],
    );
    expect_err(
        interpolate(&x4, &p(Bilinear).size([2, 2, 2])),
        &["size", "one value per spatial dimension"],
    );
    expect_err(
        interpolate(&x4, &p(Bilinear).scale_factor([2.0])),
        &["scale_factor", "[1, 2, 4, 4]"],
    );
    expect_err(
        interpolate(&x4, &p(Bilinear).size(2).recompute_scale_factor(true)),
        &["recompute_scale_factor", "explicit size"],
    );
    expect_err(
        interpolate(&x4, &p(Nearest).size(2).antialias(true)),
        &["antialias", "nearest"],
    );
    expect_err(
        interpolate(&z(&[1, 1, 2, 2, 2]), &p(Trilinear).size(2).antialias(true)),
        &["antialias", "5-D"],
    );
    expect_err(
        interpolate(&z(&[1, 2, 4]), &p(Bilinear).size(2)),
        &["bilinear", "4-D"],
    );
    expect_err(interpolate(&x4, &p(Linear).size(2)), &["linear", "3-D"]);
    expect_err(
        interpolate(&x4, &p(Trilinear).size(2)),
        &["trilinear", "5-D"],
    );
    expect_err(
        interpolate(&x4, &p(Bicubic).size([0, 3])),
        &["greater than 0", "H: 0, W: 3"],
    );
    expect_err(
        interpolate(&z(&[1, 2, 0, 4]), &p(Nearest).size(3)),
        &["greater than 0", "H: 0"],
    );
    expect_err(
        interpolate(&z(&[1, 0, 4, 4]), &p(Nearest).size(3)),
        &["non-empty", "[1, 0, 4, 4]"],
    );
    expect_err(
        interpolate(&x4, &p(Nearest).scale_factor(0.1)),
        &["greater than 0"],
    );
    expect_err(
        interpolate(&x4, &p(Nearest).scale_factor(-2.0)),
        &["greater than 0"],
    );
    expect_err(
        interpolate(&x4, &p(Nearest).scale_factor(f64::NAN)),
        &["scale_factor", "finite"],
    );
    expect_err(
        interpolate(&x4, &p(Nearest).scale_factor(f64::INFINITY)),
        &["scale_factor", "finite"],
    );
    expect_err(
        interpolate_backward(&z(&[1, 2, 3, 3]), &[1, 2, 4, 4], &p(Bilinear).size(2)),
        &[
            "interpolate_backward",
            "grad_output",
            "[1, 2, 3, 3]",
            "[1, 2, 2, 2]",
        ],
    );
    expect_err("cubic".parse::<InterpolateMode>(), &["mode", "'cubic'"]);
}

#[test]
fn pad_errors() {
    let x = z(&[1, 2, 3, 3]);
    let c = PadMode::Constant(0.0);
    expect_err(pad(&x, &[1, 1, 1], c), &["pad", "divisible by 2"]);
    expect_err(
        pad(&z(&[3]), &[1, 1, 1, 1], c),
        &["pad", "two times the input dimension", "length 4"],
    );
    expect_err(pad(&x, &[-2, -2], c), &["pad", "negative", "dimension 3"]);
    let x3 = z(&[2, 3, 3]);
    expect_err(
        pad(&x3, &[3, 1], PadMode::Reflect),
        &["reflect", "(3, 1)", "dimension 2", "[2, 3, 3]"],
    );
    expect_err(
        pad(&x3, &[4, 0], PadMode::Circular),
        &["circular", "more than once"],
    );
    expect_err(
        pad(&z(&[1, 1, 4]), &[-3, 2], PadMode::Circular),
        &["circular", "cropped size is 1"],
    );
    expect_err(
        pad(&z(&[3]), &[1, 1], PadMode::Reflect),
        &["reflect", "1-D input"],
    );
    expect_err(
        pad(&x, &[1, 1, 1, 1, 1, 1, 1, 1], PadMode::Replicate),
        &["length 8", "replicate"],
    );
    expect_err(
        pad(&z(&[2, 3, 3]), &[1, 1, 1, 1, 1, 1], PadMode::Reflect),
        &["length 6", "3-D input"],
    );
    expect_err(
        pad(&z(&[1, 0, 3]), &[1, 1], PadMode::Reflect),
        &["reflect", "non-zero", "[1, 0, 3]"],
    );
    expect_err(
        pad(&z(&[1, 3, 3]), &[-2, -1], PadMode::Replicate),
        &["replicate", "at least 1"],
    );
    expect_err(
        pad_backward(&z(&[1, 2, 3, 4]), &[1, 2, 3, 3], &[1, 1], c),
        &[
            "pad_backward",
            "grad_output",
            "[1, 2, 3, 4]",
            "[1, 2, 3, 5]",
        ],
    );
}

#[test]
fn grid_sample_errors() {
    let p = GridSampleParams::default();
    expect_err(
        grid_sample(&z(&[1, 1, 4]), &z(&[1, 2, 1]), &p),
        &["grid_sample", "4-D or 5-D", "[1, 1, 4]"],
    );
    expect_err(
        grid_sample(&z(&[1, 1, 4, 4]), &z(&[1, 2, 2, 2, 3]), &p),
        &["grid_sample", "same rank", "[1, 2, 2, 2, 3]"],
    );
    expect_err(
        grid_sample(&z(&[2, 1, 4, 4]), &z(&[1, 2, 2, 2]), &p),
        &["batch", "[2, 1, 4, 4]", "[1, 2, 2, 2]"],
    );
    expect_err(
        grid_sample(&z(&[1, 1, 4, 4]), &z(&[1, 2, 2, 3]), &p),
        &["last dimension to be 2", "[1, 2, 2, 3]"],
    );
    expect_err(
        grid_sample(&z(&[1, 1, 0, 4]), &z(&[1, 2, 2, 2]), &p),
        &["non-empty spatial", "[1, 1, 0, 4]"],
    );
    // 5-D bicubic is tricubic, as in torch 2.15 (resample_opinfo.rs checks
    // its values): no error.
    assert!(grid_sample(
        &z(&[1, 1, 2, 2, 2]),
        &z(&[1, 1, 1, 1, 3]),
        &p.mode(GridSampleMode::Bicubic),
    )
    .is_ok());
    expect_err(
        grid_sample_backward(&z(&[1, 1, 4, 4]), &z(&[1, 2, 2, 2]), &z(&[1, 1, 2, 3]), &p),
        &[
            "grid_sample_backward",
            "grad_output",
            "[1, 1, 2, 3]",
            "[1, 1, 2, 2]",
        ],
    );
}

#[test]
fn affine_grid_errors() {
    expect_err(
        affine_grid(&z(&[1, 2, 3]), &[1, 1, 4], false),
        &["affine_grid", "size", "4-D or 5-D"],
    );
    expect_err(
        affine_grid(&z(&[1, 2, 3]), &[1, 1, 2, 2, 2], false),
        &["affine_grid", "[N, 3, 4]", "[1, 2, 3]"],
    );
    expect_err(
        affine_grid(&z(&[2, 2, 3]), &[1, 1, 4, 4], false),
        &["affine_grid", "[2, 2, 3]", "[1, 1, 4, 4]"],
    );
    expect_err(
        affine_grid(&z(&[1, 2, 3]), &[1, 1, 0, 4], false),
        &["size", "positive"],
    );
    expect_err(
        affine_grid_backward(&z(&[1, 4, 4, 3]), &[1, 1, 4, 4], false),
        &["affine_grid_backward", "grad_grid", "[1, 4, 4, 2]"],
    );
}

#[test]
fn shuffle_errors() {
    expect_err(
        pixel_shuffle(&z(&[4, 2]), 2),
        &["pixel_shuffle", "at least 3 dimensions", "[4, 2]"],
    );
    expect_err(
        pixel_shuffle(&z(&[1, 6, 2, 2]), 2),
        &["pixel_shuffle", "divisible by upscale_factor^2 = 4", "6"],
    );
    expect_err(
        pixel_shuffle(&z(&[1, 4, 2, 2]), 0),
        &["upscale_factor", "positive"],
    );
    expect_err(
        pixel_unshuffle(&z(&[1, 1, 4, 3]), 2),
        &["pixel_unshuffle", "width", "downscale_factor 2"],
    );
    expect_err(
        channel_shuffle(&z(&[1, 6]), 2),
        &["channel_shuffle", "more than 2 dimensions", "[1, 6]"],
    );
    expect_err(
        channel_shuffle(&z(&[1, 6, 2]), 4),
        &["channel_shuffle", "groups = 4", "[1, 6, 2]"],
    );
    expect_err(channel_shuffle(&z(&[1, 6, 2]), 0), &["groups", "positive"]);
}
