//! The book's LeNet-5 (*Dive into Deep Learning* 6.6): two 5x5 convolutions
//! with sigmoid and 2x2 average pooling, three fully connected layers;
//! `0.weight` ... `11.bias` as the book's `nn.Sequential`.

use super::build::Builder;
use crate::error::Result;
use crate::nn::{AvgPool2d, Conv2dConfig, Flatten, Sequential, Sigmoid};
use crate::ops::AvgPool2dParams;

pub(crate) fn build(b: &Builder, num_classes: usize) -> Result<Sequential> {
    let pool = || AvgPool2d::with(AvgPool2dParams::new(2).stride(2));
    Ok(Sequential::new()
        .push(b.conv("0", Conv2dConfig::new(1, 6, 5).padding(2))?)
        .push(Sigmoid)
        .push(pool())
        .push(b.conv("3", Conv2dConfig::new(6, 16, 5))?)
        .push(Sigmoid)
        .push(pool())
        .push(Flatten)
        .push(b.linear("7", 16 * 5 * 5, 120)?)
        .push(Sigmoid)
        .push(b.linear("9", 120, 84)?)
        .push(Sigmoid)
        .push(b.linear("11", 84, num_classes)?))
}
