//! torchvision's VGG without BatchNorm: 3x3 convolutions with ReLU and 2x2
//! max pooling (`features.N`), adaptive average pooling to 7x7, three fully
//! connected layers (`classifier.0`, `.3`, `.6`).

use super::build::Builder;
use crate::error::Result;
use crate::nn::{AdaptiveAvgPool2d, Conv2dConfig, Dropout, Flatten, MaxPool2d, ReLU, Sequential};
use crate::ops::MaxPool2dParams;

/// One entry of a VGG layer list: a 3x3 convolution to this many channels,
/// or a max pool (`None`).
pub(crate) type Layer = Option<usize>;

/// torchvision's configuration "A" (VGG-11).
pub(crate) const VGG11: [Layer; 13] = [
    Some(64),
    None,
    Some(128),
    None,
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    None,
];

pub(crate) fn build(b: &Builder, layers: &[Layer], num_classes: usize) -> Result<Sequential> {
    let mut features = Sequential::new();
    let mut cin = 3;
    for layer in layers {
        match *layer {
            Some(cout) => {
                let name = format!("features.{}", features.len());
                features = features
                    .push(b.conv(&name, Conv2dConfig::new(cin, cout, 3).padding(1))?)
                    .push(ReLU);
                cin = cout;
            }
            None => features = features.push(MaxPool2d::with(MaxPool2dParams::new(2).stride(2))),
        }
    }
    let classifier = Sequential::new()
        .push(b.linear("classifier.0", cin * 7 * 7, 4096)?)
        .push(ReLU)
        .push(Dropout::with_seed(0.5, 0)?)
        .push(b.linear("classifier.3", 4096, 4096)?)
        .push(ReLU)
        .push(Dropout::with_seed(0.5, 1)?)
        .push(b.linear("classifier.6", 4096, num_classes)?);
    Sequential::new()
        .push_named("features", features)?
        .push_named("avgpool", AdaptiveAvgPool2d::new(7))?
        .push_named("flatten", Flatten)?
        .push_named("classifier", classifier)
}
