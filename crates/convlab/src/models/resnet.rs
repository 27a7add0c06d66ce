//! torchvision's ResNet (v1.5: a Bottleneck strides in its 3x3
//! convolution): `conv1`, `bn1`, max pooling, four stages `layer1` ...
//! `layer4` of residual blocks (`layer2.0.downsample.0/1` where the shape
//! changes), global average pooling and `fc`.

use super::build::Builder;
use super::{join, Init};
use crate::error::{Error, Result};
use crate::nn::{
    AdaptiveAvgPool2d, Conv2dConfig, Flatten, MaxPool2d, Module, ReLU, Residual, Sequential,
};
use crate::ops::MaxPool2dParams;

/// The residual block a ResNet is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResNetBlock {
    /// Two 3x3 convolutions (ResNet-18/34).
    Basic,
    /// 1x1, 3x3, 1x1 convolutions, four times wider out than in
    /// (ResNet-50/101/152).
    Bottleneck,
}

impl ResNetBlock {
    fn expansion(self) -> usize {
        match self {
            ResNetBlock::Basic => 1,
            ResNetBlock::Bottleneck => 4,
        }
    }
}

/// A ResNet: torchvision's `ResNet(block, layers, num_classes)`, plus the
/// channel count of the first stage (`width`, 64 in torchvision's; the
/// stages have `width`, `2 width`, `4 width`, `8 width`), so narrow
/// networks with torchvision's names can be built for tests and small data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResNetConfig {
    /// The block type.
    pub block: ResNetBlock,
    /// Blocks per stage.
    pub layers: [usize; 4],
    /// Outputs of `fc`.
    pub num_classes: usize,
    /// Channels of the stem and the first stage.
    pub width: usize,
}

impl ResNetConfig {
    /// torchvision's `resnet18(num_classes=k)`.
    pub fn resnet18(num_classes: usize) -> ResNetConfig {
        ResNetConfig {
            block: ResNetBlock::Basic,
            layers: [2, 2, 2, 2],
            num_classes,
            width: 64,
        }
    }

    /// torchvision's `resnet50(num_classes=k)`.
    pub fn resnet50(num_classes: usize) -> ResNetConfig {
        ResNetConfig {
            block: ResNetBlock::Bottleneck,
            layers: [3, 4, 6, 3],
            num_classes,
            width: 64,
        }
    }

    /// The network in training mode, weights as `init` says.
    ///
    /// # Errors
    /// [`Error::Param`] for a zero width, block count or class count.
    pub fn build(&self, init: Init) -> Result<Sequential> {
        match init {
            Init::Zeros => build(&Builder::zeros(), self),
            Init::Seed(seed) => build(&Builder::random(seed), self),
        }
    }

    /// An eval-mode copy of `model` (a network of this configuration) with
    /// every BatchNorm folded into the convolution before it.
    ///
    /// # Errors
    /// As [`super::ModelConfig::fold`].
    pub fn fold(&self, model: &dyn Module) -> Result<Sequential> {
        let state = crate::io::state_dict(model);
        let mut net = Builder::folded(state).fold_all(|b| build(b, self))?;
        net.eval();
        Ok(net)
    }
}

const EPS: f64 = 1e-5;

pub(crate) fn build(b: &Builder, c: &ResNetConfig) -> Result<Sequential> {
    if c.width == 0 || c.num_classes == 0 || c.layers.contains(&0) {
        return Err(Error::param(
            "ResNet",
            "config",
            format!(
                "width {}, layers {:?} and num_classes {} must all be positive",
                c.width, c.layers, c.num_classes
            ),
        ));
    }
    let w = c.width;
    let mut net = b.conv_bn(
        Sequential::new(),
        "",
        ("conv1", "bn1"),
        Conv2dConfig::new(3, w, 7).stride(2).padding(3).bias(false),
        EPS,
    )?;
    net = net.push_named("relu", ReLU)?.push_named(
        "maxpool",
        MaxPool2d::with(MaxPool2dParams::new(3).stride(2).padding(1)),
    )?;
    let mut inplanes = w;
    for (stage, &blocks) in c.layers.iter().enumerate() {
        let planes = w << stage;
        let name = format!("layer{}", stage + 1);
        let mut layer = Sequential::new();
        for i in 0..blocks {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let prefix = format!("{name}.{i}");
            layer.push_boxed(Box::new(block(
                b, c.block, &prefix, inplanes, planes, stride,
            )?));
            inplanes = planes * c.block.expansion();
        }
        net = net.push_named(&name, layer)?;
    }
    net.push_named("avgpool", AdaptiveAvgPool2d::new(1))?
        .push_named("flatten", Flatten)?
        .push_named("fc", b.linear("fc", inplanes, c.num_classes)?)
}

/// One `BasicBlock` or `Bottleneck` named `prefix`.
fn block(
    b: &Builder,
    kind: ResNetBlock,
    prefix: &str,
    inplanes: usize,
    planes: usize,
    stride: usize,
) -> Result<Residual> {
    let conv = |cin, cout, k: usize, s: usize| {
        Conv2dConfig::new(cin, cout, k)
            .stride(s)
            .padding(k / 2)
            .bias(false)
    };
    let out = planes * kind.expansion();
    let (body, type_name) = match kind {
        ResNetBlock::Basic => {
            let s = b.conv_bn(
                Sequential::new(),
                prefix,
                ("conv1", "bn1"),
                conv(inplanes, planes, 3, stride),
                EPS,
            )?;
            let s = s.push_named("relu", ReLU)?;
            (
                b.conv_bn(s, prefix, ("conv2", "bn2"), conv(planes, planes, 3, 1), EPS)?,
                "BasicBlock",
            )
        }
        ResNetBlock::Bottleneck => {
            let s = b.conv_bn(
                Sequential::new(),
                prefix,
                ("conv1", "bn1"),
                conv(inplanes, planes, 1, 1),
                EPS,
            )?;
            let s = s.push_named("relu", ReLU)?;
            let s = b.conv_bn(
                s,
                prefix,
                ("conv2", "bn2"),
                conv(planes, planes, 3, stride),
                EPS,
            )?;
            // torchvision's Bottleneck applies its one `relu` module three
            // times; a second name for it holds no state.
            let s = s.push_named("relu2", ReLU)?;
            (
                b.conv_bn(s, prefix, ("conv3", "bn3"), conv(planes, out, 1, 1), EPS)?,
                "Bottleneck",
            )
        }
    };
    let mut res = Residual::new(body);
    if stride != 1 || inplanes != out {
        let ds = b.conv_bn(
            Sequential::new(),
            &join(prefix, "downsample"),
            ("0", "1"),
            conv(inplanes, out, 1, stride),
            EPS,
        )?;
        res = res.shortcut("downsample", ds)?;
    }
    Ok(res.post(ReLU)?.named(type_name))
}
