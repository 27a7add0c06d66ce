//! `nn.Conv1d` and `nn.ConvTranspose1d`: the 1-D convolution layers,
//! weights as PyTorch stores them, over [`Var::conv1d`] and
//! [`Var::conv_transpose1d`].

use super::layers::{
    check_conv_layer, init_tensor, padding_mode_repr, weight_and_bias, Init, NoRng,
};
use super::{display_from_describe, Module};
use crate::autograd::Var;
use crate::error::Result;
use crate::ops::{Conv1dParams, ConvTranspose1dParams, Padding1d};
use crate::shape::PaddingMode;
use rand::Rng;

/// Options of [`Conv1d`], mirroring `nn.Conv1d(in_channels, out_channels,
/// kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
/// padding_mode='zeros')`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel length.
    pub kernel_size: usize,
    /// Stride, padding, dilation, groups and padding mode.
    pub params: Conv1dParams,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

impl Conv1dConfig {
    /// `nn.Conv1d(in_channels, out_channels, kernel_size)` with defaults.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Conv1dConfig {
            in_channels,
            out_channels,
            kernel_size,
            params: Conv1dParams::default(),
            bias: true,
        }
    }
    /// Set the stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.params.stride = s;
        self
    }
    /// Set the padding (`2`, `Padding1d::Same`).
    pub fn padding(mut self, p: impl Into<Padding1d>) -> Self {
        self.params.padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: usize) -> Self {
        self.params.dilation = d;
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

/// `nn.Conv1d`: weight `[out, in / groups, k]`, optional bias `[out]`.
///
/// ```
/// use convlab::nn::{Conv1d, Conv1dConfig, Module};
/// use convlab::{autograd::Var, seeded_rng, Tensor};
/// let conv = Conv1d::new(Conv1dConfig::new(8, 16, 9).padding(4), &mut seeded_rng(0))?;
/// assert_eq!(conv.describe(), "Conv1d(8, 16, kernel_size=(9,), stride=(1,), padding=(4,))");
/// let y = conv.forward(&Var::new(Tensor::ones(&[2, 8, 100])?))?;
/// assert_eq!(y.shape(), [2, 16, 100]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct Conv1d {
    /// `[out_channels, in_channels / groups, kernel_size]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// The options the layer was built with.
    pub config: Conv1dConfig,
}

impl Conv1d {
    /// A layer initialised as PyTorch does, from `rng`.
    ///
    /// # Errors
    /// Zero channels or kernel, or groups that do not divide both channel
    /// counts.
    pub fn new(config: Conv1dConfig, rng: &mut impl Rng) -> Result<Conv1d> {
        Conv1d::build(config, Init::Default(rng))
    }

    /// A layer with zero weights, for weights that will be loaded.
    ///
    /// # Errors
    /// As [`Conv1d::new`].
    #[doc(alias = "skip_init")]
    pub fn zeroed(config: Conv1dConfig) -> Result<Conv1d> {
        Conv1d::build(config, Init::<NoRng>::Zeros)
    }

    fn build<R: Rng>(config: Conv1dConfig, mut init: Init<'_, R>) -> Result<Conv1d> {
        let c = &config;
        let channels = [c.in_channels, c.out_channels];
        let shown = c.kernel_size.to_string();
        check_conv_layer("Conv1d", channels, c.params.groups, c.kernel_size, &shown)?;
        let g = c.params.groups;
        let shape = [c.out_channels, c.in_channels / g, c.kernel_size];
        let fan_in = shape[1] * shape[2];
        let weight = Var::param(init_tensor(&shape, fan_in, &mut init)?);
        let bias = if c.bias {
            Some(Var::param(init_tensor(
                &[c.out_channels],
                fan_in,
                &mut init,
            )?))
        } else {
            None
        };
        Ok(Conv1d {
            weight,
            bias,
            config,
        })
    }
}

impl Module for Conv1d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.conv1d(&self.weight, self.bias.as_ref(), &self.config.params)
    }
    fn own_parameters(&self) -> Vec<(String, Var)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn describe(&self) -> String {
        let c = &self.config;
        let p = &c.params;
        let mut s = format!(
            "Conv1d({}, {}, kernel_size=({},), stride=({},)",
            c.in_channels, c.out_channels, c.kernel_size, p.stride
        );
        match p.padding {
            Padding1d::Both(0) | Padding1d::Valid => {}
            Padding1d::Both(n) => s += &format!(", padding=({n},)"),
            Padding1d::Same => s += ", padding=same",
        }
        if p.dilation != 1 {
            s += &format!(", dilation=({},)", p.dilation);
        }
        if p.groups != 1 {
            s += &format!(", groups={}", p.groups);
        }
        if !c.bias {
            s += ", bias=False";
        }
        s + padding_mode_repr(p.padding_mode) + ")"
    }
}

display_from_describe!(Conv1d);

/// Options of [`ConvTranspose1d`], mirroring `nn.ConvTranspose1d(
/// in_channels, out_channels, kernel_size, stride=1, padding=0,
/// output_padding=0, groups=1, bias=True, dilation=1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose1dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel length.
    pub kernel_size: usize,
    /// Stride, padding, output padding, dilation and groups.
    pub params: ConvTranspose1dParams,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

impl ConvTranspose1dConfig {
    /// `nn.ConvTranspose1d(in_channels, out_channels, kernel_size)` with
    /// defaults.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        ConvTranspose1dConfig {
            in_channels,
            out_channels,
            kernel_size,
            params: ConvTranspose1dParams::default(),
            bias: true,
        }
    }
    /// Set the stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.params.stride = s;
        self
    }
    /// Set the padding.
    pub fn padding(mut self, p: usize) -> Self {
        self.params.padding = p;
        self
    }
    /// Set the output padding.
    pub fn output_padding(mut self, p: usize) -> Self {
        self.params.output_padding = p;
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: usize) -> Self {
        self.params.dilation = d;
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
}

/// `nn.ConvTranspose1d`: weight `[in, out / groups, k]`, optional bias
/// `[out]`.
///
/// ```
/// use convlab::nn::{ConvTranspose1d, ConvTranspose1dConfig, Module};
/// use convlab::{autograd::Var, seeded_rng, Tensor};
/// let up = ConvTranspose1d::new(ConvTranspose1dConfig::new(8, 4, 4).stride(2), &mut seeded_rng(0))?;
/// assert_eq!(up.describe(), "ConvTranspose1d(8, 4, kernel_size=(4,), stride=(2,))");
/// let y = up.forward(&Var::new(Tensor::ones(&[1, 8, 10])?))?;
/// assert_eq!(y.shape(), [1, 4, 22]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct ConvTranspose1d {
    /// `[in_channels, out_channels / groups, kernel_size]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// The options the layer was built with.
    pub config: ConvTranspose1dConfig,
}

impl ConvTranspose1d {
    /// A layer initialised as PyTorch does (fan_in = out / groups * k, from
    /// the weight's second dimension), from `rng`.
    ///
    /// # Errors
    /// Zero channels or kernel, or groups that do not divide both channel
    /// counts.
    pub fn new(config: ConvTranspose1dConfig, rng: &mut impl Rng) -> Result<ConvTranspose1d> {
        ConvTranspose1d::build(config, Init::Default(rng))
    }

    /// A layer with zero weights, for weights that will be loaded.
    ///
    /// # Errors
    /// As [`ConvTranspose1d::new`].
    #[doc(alias = "skip_init")]
    pub fn zeroed(config: ConvTranspose1dConfig) -> Result<ConvTranspose1d> {
        ConvTranspose1d::build(config, Init::<NoRng>::Zeros)
    }

    fn build<R: Rng>(
        config: ConvTranspose1dConfig,
        mut init: Init<'_, R>,
    ) -> Result<ConvTranspose1d> {
        let c = &config;
        let channels = [c.in_channels, c.out_channels];
        let shown = c.kernel_size.to_string();
        let g = c.params.groups;
        check_conv_layer("ConvTranspose1d", channels, g, c.kernel_size, &shown)?;
        let shape = [c.in_channels, c.out_channels / g, c.kernel_size];
        let fan_in = shape[1] * shape[2];
        let weight = Var::param(init_tensor(&shape, fan_in, &mut init)?);
        let bias = if c.bias {
            Some(Var::param(init_tensor(
                &[c.out_channels],
                fan_in,
                &mut init,
            )?))
        } else {
            None
        };
        Ok(ConvTranspose1d {
            weight,
            bias,
            config,
        })
    }
}

impl Module for ConvTranspose1d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.conv_transpose1d(&self.weight, self.bias.as_ref(), &self.config.params)
    }
    fn own_parameters(&self) -> Vec<(String, Var)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn describe(&self) -> String {
        let c = &self.config;
        let p = &c.params;
        let mut s = format!(
            "ConvTranspose1d({}, {}, kernel_size=({},), stride=({},)",
            c.in_channels, c.out_channels, c.kernel_size, p.stride
        );
        if p.padding != 0 {
            s += &format!(", padding=({},)", p.padding);
        }
        if p.dilation != 1 {
            s += &format!(", dilation=({},)", p.dilation);
        }
        if p.output_padding != 0 {
            s += &format!(", output_padding=({},)", p.output_padding);
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

display_from_describe!(ConvTranspose1d);
