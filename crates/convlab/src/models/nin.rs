//! The book's Network in Network (*Dive into Deep Learning* 7.3): four NiN
//! blocks (a convolution and two 1x1 convolutions, each with ReLU), max
//! pooling between them, global average pooling instead of dense layers;
//! names `0.0.weight` ... `7.4.bias` as the book's `nn.Sequential`.

use super::build::Builder;
use crate::error::Result;
use crate::nn::{AdaptiveAvgPool2d, Conv2dConfig, Dropout, Flatten, MaxPool2d, ReLU, Sequential};
use crate::ops::MaxPool2dParams;

/// `nin_block(out_channels, kernel_size, strides, padding)` after `index`.
fn block(
    b: &Builder,
    index: usize,
    (cin, cout): (usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<Sequential> {
    let p = |i: usize| format!("{index}.{i}");
    Ok(Sequential::new()
        .push(
            b.conv(
                &p(0),
                Conv2dConfig::new(cin, cout, kernel)
                    .stride(stride)
                    .padding(padding),
            )?,
        )
        .push(ReLU)
        .push(b.conv(&p(2), Conv2dConfig::new(cout, cout, 1))?)
        .push(ReLU)
        .push(b.conv(&p(4), Conv2dConfig::new(cout, cout, 1))?)
        .push(ReLU))
}

pub(crate) fn build(b: &Builder, num_classes: usize) -> Result<Sequential> {
    let pool = || MaxPool2d::with(MaxPool2dParams::new(3).stride(2));
    Ok(Sequential::new()
        .push(block(b, 0, (1, 96), 11, 4, 0)?)
        .push(pool())
        .push(block(b, 2, (96, 256), 5, 1, 2)?)
        .push(pool())
        .push(block(b, 4, (256, 384), 3, 1, 1)?)
        .push(pool())
        .push(Dropout::with_seed(0.5, 0)?)
        .push(block(b, 7, (384, num_classes), 3, 1, 1)?)
        .push(AdaptiveAvgPool2d::new(1))
        .push(Flatten))
}
