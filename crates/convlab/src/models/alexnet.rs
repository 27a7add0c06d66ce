//! torchvision's AlexNet: five convolutions (`features.0` ... `features.10`),
//! adaptive average pooling to 6x6, three fully connected layers
//! (`classifier.1`, `.4`, `.6`) with dropout before the first two.

use super::build::Builder;
use crate::error::Result;
use crate::nn::{AdaptiveAvgPool2d, Conv2dConfig, Dropout, Flatten, MaxPool2d, ReLU, Sequential};
use crate::ops::MaxPool2dParams;

pub(crate) fn build(b: &Builder, num_classes: usize) -> Result<Sequential> {
    let pool = || MaxPool2d::with(MaxPool2dParams::new(3).stride(2));
    let conv = |i: usize, cin, cout, k: usize, s: usize, p: usize| {
        b.conv(
            &format!("features.{i}"),
            Conv2dConfig::new(cin, cout, k).stride(s).padding(p),
        )
    };
    let features = Sequential::new()
        .push(conv(0, 3, 64, 11, 4, 2)?)
        .push(ReLU)
        .push(pool())
        .push(conv(3, 64, 192, 5, 1, 2)?)
        .push(ReLU)
        .push(pool())
        .push(conv(6, 192, 384, 3, 1, 1)?)
        .push(ReLU)
        .push(conv(8, 384, 256, 3, 1, 1)?)
        .push(ReLU)
        .push(conv(10, 256, 256, 3, 1, 1)?)
        .push(ReLU)
        .push(pool());
    let classifier = Sequential::new()
        .push(Dropout::with_seed(0.5, 0)?)
        .push(b.linear("classifier.1", 256 * 6 * 6, 4096)?)
        .push(ReLU)
        .push(Dropout::with_seed(0.5, 1)?)
        .push(b.linear("classifier.4", 4096, 4096)?)
        .push(ReLU)
        .push(b.linear("classifier.6", 4096, num_classes)?);
    Sequential::new()
        .push_named("features", features)?
        .push_named("avgpool", AdaptiveAvgPool2d::new(6))?
        .push_named("flatten", Flatten)?
        .push_named("classifier", classifier)
}
