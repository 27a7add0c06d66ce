//! torchvision's GoogLeNet (Inception v1) without auxiliary heads: `conv1`
//! ... `conv3` and nine Inception blocks (`inception3a.branch2.1.conv`),
//! each convolution a `BasicConv2d` (convolution, BatchNorm with eps 0.001,
//! ReLU), global average pooling, dropout and `fc`.

use super::build::Builder;
use super::join;
use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::nn::{
    AdaptiveAvgPool2d, Concat, Conv2dConfig, Dropout, Flatten, MaxPool2d, Module, ReLU, Sequential,
};
use crate::ops::{Conv2dParams, MaxPool2dParams};
use crate::tensor::Tensor;

const EPS: f64 = 1e-3;

/// `BasicConv2d(cin, cout, kernel_size=k, padding=p)` named `path`.
fn basic(
    b: &Builder,
    path: &str,
    cin: usize,
    cout: usize,
    k: usize,
    s: usize,
    p: usize,
) -> Result<Sequential> {
    let seq = b.conv_bn(
        Sequential::new(),
        path,
        ("conv", "bn"),
        Conv2dConfig::new(cin, cout, k)
            .stride(s)
            .padding(p)
            .bias(false),
        EPS,
    )?;
    seq.push_named("relu", ReLU)
}

/// `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`; the
/// "5x5" branch uses a 3x3 kernel, as torchvision's does.
fn inception(b: &Builder, name: &str, cin: usize, ch: [usize; 6]) -> Result<Concat> {
    let p = |branch: &str, i: usize| format!("{name}.{branch}.{i}");
    let branch2 = Sequential::new()
        .push(basic(b, &p("branch2", 0), cin, ch[1], 1, 1, 0)?)
        .push(basic(b, &p("branch2", 1), ch[1], ch[2], 3, 1, 1)?);
    let branch3 = Sequential::new()
        .push(basic(b, &p("branch3", 0), cin, ch[3], 1, 1, 0)?)
        .push(basic(b, &p("branch3", 1), ch[3], ch[4], 3, 1, 1)?);
    let branch4 = Sequential::new()
        .push(MaxPool2d::with(
            MaxPool2dParams::new(3).stride(1).padding(1).ceil_mode(true),
        ))
        .push(basic(b, &p("branch4", 1), cin, ch[5], 1, 1, 0)?);
    Ok(Concat::new()
        .branch(
            "branch1",
            basic(b, &join(name, "branch1"), cin, ch[0], 1, 1, 0)?,
        )?
        .branch("branch2", branch2)?
        .branch("branch3", branch3)?
        .branch("branch4", branch4)?
        .named("Inception"))
}

/// Max pooling with torchvision's `ceil_mode=True`.
fn pool(k: usize) -> MaxPool2d {
    MaxPool2d::with(MaxPool2dParams::new(k).stride(2).ceil_mode(true))
}

pub(crate) fn build(b: &Builder, num_classes: usize, transform_input: bool) -> Result<Sequential> {
    let mut net = Sequential::new();
    if transform_input {
        net = net.push_named("transform_input", TransformInput::new()?)?;
    }
    net = net
        .push_named("conv1", basic(b, "conv1", 3, 64, 7, 2, 3)?)?
        .push_named("maxpool1", pool(3))?
        .push_named("conv2", basic(b, "conv2", 64, 64, 1, 1, 0)?)?
        .push_named("conv3", basic(b, "conv3", 64, 192, 3, 1, 1)?)?
        .push_named("maxpool2", pool(3))?;
    let blocks: [(&str, usize, [usize; 6]); 9] = [
        ("inception3a", 192, [64, 96, 128, 16, 32, 32]),
        ("inception3b", 256, [128, 128, 192, 32, 96, 64]),
        ("inception4a", 480, [192, 96, 208, 16, 48, 64]),
        ("inception4b", 512, [160, 112, 224, 24, 64, 64]),
        ("inception4c", 512, [128, 128, 256, 24, 64, 64]),
        ("inception4d", 512, [112, 144, 288, 32, 64, 64]),
        ("inception4e", 528, [256, 160, 320, 32, 128, 128]),
        ("inception5a", 832, [256, 160, 320, 32, 128, 128]),
        ("inception5b", 832, [384, 192, 384, 48, 128, 128]),
    ];
    for (name, cin, ch) in blocks {
        net = net.push_named(name, inception(b, name, cin, ch)?)?;
        match name {
            "inception3b" => net = net.push_named("maxpool3", pool(3))?,
            "inception4e" => net = net.push_named("maxpool4", pool(2))?,
            _ => {}
        }
    }
    net.push_named("avgpool", AdaptiveAvgPool2d::new(1))?
        .push_named("flatten", Flatten)?
        .push_named("dropout", Dropout::with_seed(0.2, 0)?)?
        .push_named("fc", b.linear("fc", 1024, num_classes)?)
}

/// GoogLeNet's `transform_input`: an input normalised with ImageNet's mean
/// and std is re-normalised to mean 0.5, std 0.5 per channel (what the
/// published weights were trained on). No parameters.
pub struct TransformInput {
    weight: Var,
    bias: Var,
}

impl TransformInput {
    /// The fixed per-channel affine map torchvision applies.
    ///
    /// # Errors
    /// None in practice (the tensors are fixed and small).
    pub fn new() -> Result<TransformInput> {
        let mean = [0.485f64, 0.456, 0.406];
        let std = [0.229f64, 0.224, 0.225];
        let scale: Vec<f32> = std.iter().map(|s| (s / 0.5) as f32).collect();
        let shift: Vec<f32> = mean.iter().map(|m| ((m - 0.5) / 0.5) as f32).collect();
        Ok(TransformInput {
            weight: Var::new(Tensor::from_vec(scale, &[3, 1, 1, 1])?),
            bias: Var::new(Tensor::from_vec(shift, &[3])?),
        })
    }
}

impl Module for TransformInput {
    fn forward(&self, input: &Var) -> Result<Var> {
        let shape = input.shape();
        if shape.len() != 4 || shape[1] != 3 {
            return Err(Error::shape(
                "TransformInput",
                format!("expected [N, 3, H, W], got {}", Dims(&shape)),
            ));
        }
        // A 1x1 depthwise convolution is the per-channel `x * s + t`.
        let params = Conv2dParams::default().groups(3);
        input.conv2d(&self.weight, Some(&self.bias), &params)
    }
    fn describe(&self) -> String {
        "TransformInput()".to_string()
    }
}
