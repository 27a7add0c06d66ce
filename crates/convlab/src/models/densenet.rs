//! torchvision's DenseNet-121: a stem (`features.conv0`, `norm0`), four
//! dense blocks (`features.denseblock1.denselayer1.norm1` ...) in which each
//! layer's 32 new channels are concatenated to its input, transitions that
//! halve the channels and the resolution, `features.norm5`, ReLU, global
//! average pooling and `classifier`.

use super::build::Builder;
use super::join;
use crate::error::Result;
use crate::nn::{
    AdaptiveAvgPool2d, AvgPool2d, Concat, Conv2dConfig, Flatten, MaxPool2d, ReLU, Sequential,
};
use crate::ops::{AvgPool2dParams, MaxPool2dParams};

const EPS: f64 = 1e-5;
const GROWTH: usize = 32;
const BN_SIZE: usize = 4;
const BLOCKS: [usize; 4] = [6, 12, 24, 16];
const INIT_FEATURES: usize = 64;

/// `_DenseLayer`: BN-ReLU-1x1 conv-BN-ReLU-3x3 conv, concatenated to its
/// input. The BatchNorm after the 1x1 convolution folds into it.
fn dense_layer(b: &Builder, prefix: &str, cin: usize) -> Result<Concat> {
    let mid = BN_SIZE * GROWTH;
    let body = Sequential::new()
        .push_named("norm1", b.batch_norm(&join(prefix, "norm1"), cin, EPS)?)?
        .push_named("relu1", ReLU)?;
    let body = b.conv_bn(
        body,
        prefix,
        ("conv1", "norm2"),
        Conv2dConfig::new(cin, mid, 1).bias(false),
        EPS,
    )?;
    let body = body.push_named("relu2", ReLU)?.push_named(
        "conv2",
        b.conv(
            &join(prefix, "conv2"),
            Conv2dConfig::new(mid, GROWTH, 3).padding(1).bias(false),
        )?,
    )?;
    Ok(Concat::new().input().inline(body).named("_DenseLayer"))
}

pub(crate) fn build(b: &Builder, num_classes: usize) -> Result<Sequential> {
    let mut features = b.conv_bn(
        Sequential::new(),
        "features",
        ("conv0", "norm0"),
        Conv2dConfig::new(3, INIT_FEATURES, 7)
            .stride(2)
            .padding(3)
            .bias(false),
        EPS,
    )?;
    features = features.push_named("relu0", ReLU)?.push_named(
        "pool0",
        MaxPool2d::with(MaxPool2dParams::new(3).stride(2).padding(1)),
    )?;
    let mut c = INIT_FEATURES;
    for (i, &layers) in BLOCKS.iter().enumerate() {
        let block_name = format!("denseblock{}", i + 1);
        let mut block = Sequential::new();
        for l in 0..layers {
            let name = format!("denselayer{}", l + 1);
            let prefix = format!("features.{block_name}.{name}");
            block = block.push_named(&name, dense_layer(b, &prefix, c)?)?;
            c += GROWTH;
        }
        features = features.push_named(&block_name, block)?;
        if i + 1 < BLOCKS.len() {
            let name = format!("transition{}", i + 1);
            let prefix = format!("features.{name}");
            let t = Sequential::new()
                .push_named("norm", b.batch_norm(&join(&prefix, "norm"), c, EPS)?)?
                .push_named("relu", ReLU)?
                .push_named(
                    "conv",
                    b.conv(
                        &join(&prefix, "conv"),
                        Conv2dConfig::new(c, c / 2, 1).bias(false),
                    )?,
                )?
                .push_named("pool", AvgPool2d::with(AvgPool2dParams::new(2).stride(2)))?;
            features = features.push_named(&name, t)?;
            c /= 2;
        }
    }
    features = features.push_named("norm5", b.batch_norm("features.norm5", c, EPS)?)?;
    Sequential::new()
        .push_named("features", features)?
        .push_named("relu", ReLU)?
        .push_named("avgpool", AdaptiveAvgPool2d::new(1))?
        .push_named("flatten", Flatten)?
        .push_named("classifier", b.linear("classifier", c, num_classes)?)
}
