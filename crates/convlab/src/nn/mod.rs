//! Layers with PyTorch's names, defaults and initialisation, and the
//! [`Module`] trait that ties them together.
//!
//! ```
//! use convlab::{nn::*, autograd::Var, seeded_rng, Tensor};
//! let mut rng = seeded_rng(0);
//! let net = Sequential::new()
//!     .push(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng)?)
//!     .push(ReLU)
//!     .push(Flatten)
//!     .push(Linear::new(4 * 8 * 8, 10, &mut rng)?);
//! let y = net.forward(&Var::new(Tensor::zeros(&[2, 1, 8, 8])?))?;
//! assert_eq!(y.shape(), vec![2, 10]);
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
//! # Ok::<(), convlab::Error>(())
//! ```

mod pool;

pub use pool::{
    AdaptiveAvgPool, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool,
    AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool, AvgPool1d, AvgPool2d,
    AvgPool3d, FractionalMaxPool, FractionalMaxPool2d, FractionalMaxPool3d, LPPool, LPPool1d,
    LPPool2d, LPPool3d, MaxPool, MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool, MaxUnpool1d,
    MaxUnpool2d, MaxUnpool3d,
};

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::ops::{Conv2dParams, ConvTranspose2dParams};
use crate::shape::{Padding, PaddingMode, Pair};
use crate::tensor::Tensor;
use rand::Rng;

/// A layer or network: a forward function and named parameters.
pub trait Module {
    /// Apply the module to `input`.
    fn forward(&self, input: &Var) -> Result<Var>;

    /// Parameters with PyTorch's `state_dict` names (`weight`, `bias`,
    /// `0.weight` inside a [`Sequential`]).
    fn named_parameters(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// The parameters, in `named_parameters` order.
    fn parameters(&self) -> Vec<Var> {
        self.named_parameters()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Forget every parameter's gradient.
    fn zero_grad(&self) {
        self.parameters().iter().for_each(Var::zero_grad);
    }

    /// A one-line description, PyTorch style (`Conv2d(1, 16, kernel_size=(3, 3), ...)`).
    fn describe(&self) -> String;
}

/// `U(-bound, bound)` with `bound = 1/sqrt(fan_in)`: PyTorch's default for
/// both weight and bias of conv and linear layers (`kaiming_uniform_(a=√5)`).
fn uniform_init(shape: &[usize], fan_in: usize, rng: &mut impl Rng) -> Result<Tensor> {
    let bound = if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f32).sqrt()
    };
    Tensor::uniform(shape, -bound, bound, rng)
}

/// Options of [`Conv2d`], mirroring `nn.Conv2d(in_channels, out_channels,
/// kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
/// padding_mode='zeros')`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: Pair,
    pub params: Conv2dParams,
    pub bias: bool,
}

impl Conv2dConfig {
    /// `nn.Conv2d(in_channels, out_channels, kernel_size)` with defaults.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl Into<Pair>) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into(),
            params: Conv2dParams::default(),
            bias: true,
        }
    }
    /// Set the stride.
    pub fn stride(mut self, s: impl Into<Pair>) -> Self {
        self.params.stride = s.into();
        self
    }
    /// Set the padding.
    pub fn padding(mut self, p: impl Into<Padding>) -> Self {
        self.params.padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: impl Into<Pair>) -> Self {
        self.params.dilation = d.into();
        self
    }
    /// Set the groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.params.groups = g;
        self
    }
    /// Whether the layer has a bias.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }
    /// Set the padding mode.
    pub fn padding_mode(mut self, m: PaddingMode) -> Self {
        self.params.padding_mode = m;
        self
    }
}

/// `nn.Conv2d`: weight `[out, in/groups, kh, kw]`, optional bias `[out]`.
pub struct Conv2d {
    pub weight: Var,
    pub bias: Option<Var>,
    pub config: Conv2dConfig,
}

impl Conv2d {
    /// A layer initialised as PyTorch does, from `rng`.
    ///
    /// # Errors
    /// Zero channels or kernel, or groups that do not divide both channel counts.
    pub fn new(config: Conv2dConfig, rng: &mut impl Rng) -> Result<Conv2d> {
        const OP: &str = "Conv2d";
        let c = &config;
        let g = c.params.groups;
        if g == 0 || c.in_channels % g != 0 || c.out_channels % g != 0 {
            return Err(Error::param(
                OP,
                "groups",
                format!(
                    "{g} must divide in_channels {} and out_channels {}",
                    c.in_channels, c.out_channels
                ),
            ));
        }
        if c.in_channels == 0 || c.out_channels == 0 || c.kernel_size.0 == 0 || c.kernel_size.1 == 0
        {
            return Err(Error::param(
                OP,
                "kernel_size",
                format!(
                    "channels ({}, {}) and kernel_size {} must be positive",
                    c.in_channels, c.out_channels, c.kernel_size
                ),
            ));
        }
        let shape = [
            c.out_channels,
            c.in_channels / g,
            c.kernel_size.0,
            c.kernel_size.1,
        ];
        let fan_in = shape[1] * shape[2] * shape[3];
        let weight = Var::param(uniform_init(&shape, fan_in, rng)?);
        let bias = if c.bias {
            Some(Var::param(uniform_init(&[c.out_channels], fan_in, rng)?))
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            config,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.conv2d(&self.weight, self.bias.as_ref(), &self.config.params)
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn describe(&self) -> String {
        let c = &self.config;
        let p = &c.params;
        let mut s = format!(
            "Conv2d({}, {}, kernel_size={}, stride={}",
            c.in_channels,
            c.out_channels,
            pair_py(c.kernel_size),
            pair_py(p.stride)
        );
        match p.padding {
            Padding::Sides {
                top,
                bottom,
                left,
                right,
            } if top == bottom && left == right => {
                if top + left > 0 {
                    s += &format!(", padding={}", pair_py(Pair(top, left)));
                }
            }
            other => s += &format!(", padding={other:?}"),
        }
        if p.dilation != Pair(1, 1) {
            s += &format!(", dilation={}", pair_py(p.dilation));
        }
        if p.groups != 1 {
            s += &format!(", groups={}", p.groups);
        }
        if !c.bias {
            s += ", bias=False";
        }
        s + ")"
    }
}

/// `[("weight", w), ("bias", b)]`, PyTorch's order, without a missing bias.
fn weight_and_bias(weight: &Var, bias: &Option<Var>) -> Vec<(String, Var)> {
    std::iter::once(("weight".to_string(), weight.clone()))
        .chain(bias.iter().map(|b| ("bias".to_string(), b.clone())))
        .collect()
}

fn pair_py(p: Pair) -> String {
    format!("({}, {})", p.0, p.1)
}

/// `nn.ConvTranspose2d`: weight `[in, out/groups, kh, kw]`, optional bias `[out]`.
pub struct ConvTranspose2d {
    pub weight: Var,
    pub bias: Option<Var>,
    pub params: ConvTranspose2dParams,
    pub in_channels: usize,
    pub out_channels: usize,
}

impl ConvTranspose2d {
    /// `nn.ConvTranspose2d(in, out, kernel_size, ...)`, initialised as PyTorch
    /// (fan_in = out/groups * kh * kw, from the weight's second dimension).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Into<Pair>,
        params: ConvTranspose2dParams,
        bias: bool,
        rng: &mut impl Rng,
    ) -> Result<ConvTranspose2d> {
        let k = kernel_size.into();
        let g = params.groups;
        if g == 0 || in_channels % g != 0 || out_channels % g != 0 {
            return Err(Error::param(
                "ConvTranspose2d",
                "groups",
                format!(
                    "{g} must divide in_channels {in_channels} and out_channels {out_channels}"
                ),
            ));
        }
        let shape = [in_channels, out_channels / g, k.0, k.1];
        let fan_in = shape[1] * k.0 * k.1;
        Ok(ConvTranspose2d {
            weight: Var::param(uniform_init(&shape, fan_in, rng)?),
            bias: if bias {
                Some(Var::param(uniform_init(&[out_channels], fan_in, rng)?))
            } else {
                None
            },
            params,
            in_channels,
            out_channels,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.conv_transpose2d(&self.weight, self.bias.as_ref(), &self.params)
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!(
            "ConvTranspose2d({}, {}, kernel_size=({}, {}), stride={})",
            self.in_channels,
            self.out_channels,
            s[2],
            s[3],
            pair_py(self.params.stride)
        )
    }
}

/// `nn.Linear`: `y = x @ weight.T + bias`, weight `[out, in]`.
pub struct Linear {
    pub weight: Var,
    pub bias: Option<Var>,
}

impl Linear {
    /// `nn.Linear(in_features, out_features)`, initialised as PyTorch.
    pub fn new(in_features: usize, out_features: usize, rng: &mut impl Rng) -> Result<Linear> {
        Ok(Linear {
            weight: Var::param(uniform_init(
                &[out_features, in_features],
                in_features,
                rng,
            )?),
            bias: Some(Var::param(uniform_init(&[out_features], in_features, rng)?)),
        })
    }
}

impl Module for Linear {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.linear(&self.weight, self.bias.as_ref())
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!(
            "Linear(in_features={}, out_features={}, bias={})",
            s[1],
            s[0],
            if self.bias.is_some() { "True" } else { "False" }
        )
    }
}

/// `nn.ReLU`.
pub struct ReLU;
impl Module for ReLU {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.relu()
    }
    fn describe(&self) -> String {
        "ReLU()".into()
    }
}

/// `nn.Sigmoid`.
pub struct Sigmoid;
impl Module for Sigmoid {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.sigmoid()
    }
    fn describe(&self) -> String {
        "Sigmoid()".into()
    }
}

/// `nn.Tanh`.
pub struct Tanh;
impl Module for Tanh {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.tanh()
    }
    fn describe(&self) -> String {
        "Tanh()".into()
    }
}

/// `nn.Flatten`: `[N, ...] -> [N, prod(...)]`.
pub struct Flatten;
impl Module for Flatten {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.flatten()
    }
    fn describe(&self) -> String {
        "Flatten(start_dim=1, end_dim=-1)".into()
    }
}

/// `nn.Sequential`: children applied in order; parameters named
/// `"{index}.{name}"` as in PyTorch's `state_dict`.
#[derive(Default)]
pub struct Sequential {
    children: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty sequence.
    pub fn new() -> Sequential {
        Sequential::default()
    }
    /// Append a child (builder style).
    pub fn push(mut self, m: impl Module + 'static) -> Sequential {
        self.children.push(Box::new(m));
        self
    }
    /// Append a boxed child.
    pub fn push_boxed(&mut self, m: Box<dyn Module>) {
        self.children.push(m);
    }
    /// The children.
    pub fn children(&self) -> &[Box<dyn Module>] {
        &self.children
    }
    /// The number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }
    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, input: &Var) -> Result<Var> {
        let mut x = input.clone();
        for c in &self.children {
            x = c.forward(&x)?;
        }
        Ok(x)
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.children
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                c.named_parameters()
                    .into_iter()
                    .map(move |(n, v)| (format!("{i}.{n}"), v))
            })
            .collect()
    }
    fn describe(&self) -> String {
        let mut s = String::from("Sequential(\n");
        for (i, c) in self.children.iter().enumerate() {
            s += &format!("  ({i}): {}\n", c.describe());
        }
        s + ")"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn conv_init_is_within_pytorch_bound() {
        let mut rng = seeded_rng(1);
        let c = Conv2d::new(Conv2dConfig::new(4, 8, 3).groups(2), &mut rng).unwrap();
        let bound = 1.0 / ((2 * 3 * 3) as f32).sqrt();
        let w = c.weight.tensor();
        assert_eq!(w.shape(), &[8, 2, 3, 3]);
        assert!(w.data().iter().all(|v| v.abs() <= bound));
        // Spread over most of the interval, not a constant.
        let max = w.data().iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!(max > 0.8 * bound);
    }

    #[test]
    fn bad_groups_is_an_error() {
        let mut rng = seeded_rng(1);
        let e = Conv2d::new(Conv2dConfig::new(4, 6, 3).groups(4), &mut rng)
            .err()
            .unwrap();
        assert!(e.to_string().contains("groups 4 must divide"), "{e}");
    }
}
