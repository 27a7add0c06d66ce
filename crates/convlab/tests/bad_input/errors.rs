//! The common mistakes, one test per op family: the exact message, which
//! names the op, the parameter and the shapes.

use super::z;
use crate::common::expect_err;
use convlab::autograd::Var;
use convlab::ops::*;
use convlab::{Padding, PaddingMode, Tensor};

#[test]
fn conv2d_errors() {
    let p = Conv2dParams::new();
    expect_err(
        conv2d(&z(&[1, 8, 5, 5]), &z(&[4, 4, 3, 3]), None, &p),
        &["conv2d: input has 8 channels but weight [4, 4, 3, 3] with groups=1 expects 4"],
    );
    // The chapter's mistake: a 2-D kernel or a 5-D input.
    expect_err(
        conv2d(&z(&[1, 1, 6, 8]), &z(&[1, 2]), None, &p),
        &["conv2d", "weight must be 4-D", "[1, 2]"],
    );
    expect_err(
        conv2d(&z(&[1, 1, 1, 6, 8]), &z(&[1, 1, 1, 2]), None, &p),
        &[
            "conv2d",
            "input must be 3-D (C, H, W) or 4-D",
            "[1, 1, 1, 6, 8]",
        ],
    );
    expect_err(
        conv2d(&z(&[1, 1, 2, 2]), &z(&[1, 1, 3, 3]), None, &p),
        &["conv2d: kernel height 3 is larger than the padded input height 2"],
    );
    expect_err(
        conv2d(
            &z(&[1, 1, 4, 4]),
            &z(&[1, 1, 3, 3]),
            None,
            &p.stride((1, 0)),
        ),
        &["conv2d: stride (1, 0) is invalid: must be at least 1"],
    );
    expect_err(
        conv2d(&z(&[1, 1, 4, 4]), &z(&[1, 1, 3, 3]), None, &p.dilation(0)),
        &["conv2d: dilation 0 is invalid"],
    );
    expect_err(
        conv2d(&z(&[1, 6, 4, 4]), &z(&[4, 2, 3, 3]), None, &p.groups(3)),
        &["conv2d: groups 3 must divide the output channels 4"],
    );
    expect_err(
        conv2d(&z(&[1, 6, 4, 4]), &z(&[6, 2, 3, 3]), None, &p.groups(0)),
        &["conv2d: groups 0 is invalid"],
    );
    expect_err(
        conv2d(&z(&[1, 2, 4, 4]), &z(&[3, 2, 3, 3]), Some(&z(&[2])), &p),
        &["conv2d: bias has shape [2] but weight [3, 2, 3, 3] has 3 output channels"],
    );
    expect_err(
        conv2d(
            &z(&[1, 1, 4, 4]),
            &z(&[1, 1, 3, 3]),
            None,
            &p.padding(Padding::Same).stride(2),
        ),
        &["conv2d: padding 'same' is not supported for strided convolutions"],
    );
    expect_err(
        conv2d(
            &z(&[1, 1, 4, 4]),
            &z(&[1, 1, 3, 3]),
            None,
            &p.padding(4).padding_mode(PaddingMode::Reflect),
        ),
        &["padding", "reflect", "4x4"],
    );
    expect_err(
        conv2d(&z(&[1, 1, 4, 4]), &z(&[1, 1, 0, 3]), None, &p),
        &["conv2d", "empty kernel"],
    );
    let grad = z(&[1, 1, 3, 3]);
    expect_err(
        conv2d_backward(&z(&[1, 1, 4, 4]), &z(&[1, 1, 3, 3]), false, &grad, &p),
        &["grad_output has shape [1, 1, 3, 3] but the output has shape [1, 1, 2, 2]"],
    );
}

#[test]
fn overflowing_sizes_are_errors_not_aborts() {
    // A dilation whose effective kernel overflows usize.
    let p = Conv2dParams::new().dilation(usize::MAX);
    expect_err(
        conv2d(&z(&[1, 1, 4, 4]), &z(&[1, 1, 3, 3]), None, &p),
        &["conv2d", "overflows"],
    );
    // Padding that overflows the padded size.
    let p = Conv2dParams::new().padding(usize::MAX);
    expect_err(
        conv2d(&z(&[1, 1, 4, 4]), &z(&[1, 1, 3, 3]), None, &p),
        &["conv2d", "overflows"],
    );
    // Shapes whose element count overflows.
    expect_err(
        Tensor::zeros(&[usize::MAX, 2]),
        &["more elements than fit in memory"],
    );
    // A 100000x100000 output is refused by the memory guard, before allocating.
    let _lock = super::limit_lock();
    convlab::memory::set_max_bytes(1 << 30);
    let p = Conv2dParams::new().padding(50_000);
    expect_err(
        conv2d(&z(&[1, 1, 1, 1]), &z(&[1, 1, 1, 1]), None, &p),
        &["conv2d", "memory limit"],
    );
    convlab::memory::set_max_bytes(0);
}

#[test]
fn conv_transpose2d_errors() {
    let p = ConvTranspose2dParams::new();
    expect_err(
        conv_transpose2d(&z(&[1, 3, 4, 4]), &z(&[2, 2, 3, 3]), None, &p),
        &["conv_transpose2d: input has 3 channels but weight [2, 2, 3, 3] expects 2"],
    );
    expect_err(
        conv_transpose2d(
            &z(&[1, 2, 4, 4]),
            &z(&[2, 2, 3, 3]),
            None,
            &p.stride(2).output_padding(2),
        ),
        &["conv_transpose2d: output_padding 2 must be smaller than either stride 2 or dilation 1"],
    );
    expect_err(
        conv_transpose2d(&z(&[1, 2, 1, 1]), &z(&[2, 2, 1, 1]), None, &p.padding(1)),
        &["conv_transpose2d: output height would be -1"],
    );
    expect_err(
        conv_transpose2d(&z(&[1, 3, 4, 4]), &z(&[3, 2, 3, 3]), None, &p.groups(2)),
        &["conv_transpose2d: groups 2 must divide the input channels 3"],
    );
}

#[test]
fn tensor_and_autograd_errors() {
    expect_err(
        Tensor::from_vec(vec![1.0; 5], &[2, 3]),
        &["tensor: shape [2, 3] needs 6 values but 5 were given"],
    );
    expect_err(
        z(&[2, 3]).matmul(&z(&[2, 3])),
        &["matmul: shapes [2, 3] and [2, 3] cannot be multiplied"],
    );
    expect_err(
        z(&[2, 3]).add(&z(&[4])),
        &["add: shapes [2, 3] and [4] do not broadcast"],
    );
    expect_err(
        z(&[2, 3]).reshape(&[4, 2]),
        &["reshape: shape [4, 2] is invalid for input of size 6"],
    );
    expect_err(
        z(&[2, 3, 4]).t(),
        &["t: expected a 2-D matrix but got shape [2, 3, 4]"],
    );
    expect_err(
        corr2d(&z(&[1, 1, 6, 8]), &z(&[1, 2])),
        &["corr2d: expected a 2-D matrix but got shape [1, 1, 6, 8]"],
    );
    let v = Var::param(z(&[2, 2]));
    expect_err(v.backward(), &["backward", "scalar outputs", "[2, 2]"]);
    expect_err(
        Var::param(z(&[2, 3])).cross_entropy(&[0, 5]),
        &["cross_entropy", "label 5 is out of range for 3 classes"],
    );
    expect_err(v.set_value(z(&[3])), &["set_value", "[3]", "[2, 2]"]);
}
