//! `nn.Conv3d` and `nn.ConvTranspose3d`: the volume convolution layers,
//! weights as PyTorch stores them, over [`Var::conv3d`] and
//! [`Var::conv_transpose3d`].

use super::layers::{
    check_conv_layer, init_tensor, padding_mode_repr, weight_and_bias, Init, NoRng,
};
use super::{display_from_describe, Module};
use crate::autograd::Var;
use crate::error::Result;
use crate::ops::{Conv3dParams, ConvTranspose3dParams, Padding3d, Triple};
use crate::shape::PaddingMode;
use rand::Rng;

/// Options of [`Conv3d`], mirroring `nn.Conv3d(in_channels, out_channels,
/// kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
/// padding_mode='zeros')`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel depth, height and width.
    pub kernel_size: Triple,
    /// Stride, padding, dilation, groups and padding mode.
    pub params: Conv3dParams,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

impl Conv3dConfig {
    /// `nn.Conv3d(in_channels, out_channels, kernel_size)` with defaults.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl Into<Triple>) -> Self {
        Conv3dConfig {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into(),
            params: Conv3dParams::default(),
            bias: true,
        }
    }
    /// Set the stride.
    pub fn stride(mut self, s: impl Into<Triple>) -> Self {
        self.params.stride = s.into();
        self
    }
    /// Set the padding (`1`, `(1, 2, 2)`, `Padding3d::Same`).
    pub fn padding(mut self, p: impl Into<Padding3d>) -> Self {
        self.params.padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: impl Into<Triple>) -> Self {
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

/// `nn.Conv3d`: weight `[out, in / groups, kd, kh, kw]`, optional bias
/// `[out]`.
///
/// ```
/// use convlab::nn::{Conv3d, Conv3dConfig, Module};
/// use convlab::{autograd::Var, seeded_rng, Tensor};
/// let conv = Conv3d::new(Conv3dConfig::new(3, 8, 3).padding(1), &mut seeded_rng(0))?;
/// assert_eq!(
///     conv.describe(),
///     "Conv3d(3, 8, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))"
/// );
/// let y = conv.forward(&Var::new(Tensor::ones(&[1, 3, 4, 8, 8])?))?;
/// assert_eq!(y.shape(), [1, 8, 4, 8, 8]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct Conv3d {
    /// `[out_channels, in_channels / groups, kd, kh, kw]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// The options the layer was built with.
    pub config: Conv3dConfig,
}

impl Conv3d {
    /// A layer initialised as PyTorch does, from `rng`.
    ///
    /// # Errors
    /// Zero channels or kernel, or groups that do not divide both channel
    /// counts.
    pub fn new(config: Conv3dConfig, rng: &mut impl Rng) -> Result<Conv3d> {
        Conv3d::build(config, Init::Default(rng))
    }

    /// A layer with zero weights, for weights that will be loaded.
    ///
    /// # Errors
    /// As [`Conv3d::new`].
    #[doc(alias = "skip_init")]
    pub fn zeroed(config: Conv3dConfig) -> Result<Conv3d> {
        Conv3d::build(config, Init::<NoRng>::Zeros)
    }

    fn build<R: Rng>(config: Conv3dConfig, mut init: Init<'_, R>) -> Result<Conv3d> {
        let c = &config;
        let [kd, kh, kw] = c.kernel_size.0;
        let channels = [c.in_channels, c.out_channels];
        let smallest = kd.min(kh).min(kw);
        check_conv_layer(
            "Conv3d",
            channels,
            c.params.groups,
            smallest,
            &c.kernel_size.to_string(),
        )?;
        let shape = [c.out_channels, c.in_channels / c.params.groups, kd, kh, kw];
        let fan_in = shape[1] * kd * kh * kw;
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
        Ok(Conv3d {
            weight,
            bias,
            config,
        })
    }
}

impl Module for Conv3d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.conv3d(&self.weight, self.bias.as_ref(), &self.config.params)
    }
    fn own_parameters(&self) -> Vec<(String, Var)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn describe(&self) -> String {
        let c = &self.config;
        let p = &c.params;
        let mut s = format!(
            "Conv3d({}, {}, kernel_size={}, stride={}",
            c.in_channels, c.out_channels, c.kernel_size, p.stride
        );
        match p.padding {
            Padding3d::Sides([0, 0, 0]) | Padding3d::Valid => {}
            Padding3d::Sides(sides) => s += &format!(", padding={}", Triple(sides)),
            Padding3d::Same => s += ", padding=same",
        }
        if p.dilation != Triple([1; 3]) {
            s += &format!(", dilation={}", p.dilation);
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

display_from_describe!(Conv3d);

/// Options of [`ConvTranspose3d`], mirroring `nn.ConvTranspose3d(
/// in_channels, out_channels, kernel_size, stride=1, padding=0,
/// output_padding=0, groups=1, bias=True, dilation=1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose3dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel depth, height and width.
    pub kernel_size: Triple,
    /// Stride, padding, output padding, dilation and groups.
    pub params: ConvTranspose3dParams,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

impl ConvTranspose3dConfig {
    /// `nn.ConvTranspose3d(in_channels, out_channels, kernel_size)` with
    /// defaults.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl Into<Triple>) -> Self {
        ConvTranspose3dConfig {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into(),
            params: ConvTranspose3dParams::default(),
            bias: true,
        }
    }
    /// Set the stride.
    pub fn stride(mut self, s: impl Into<Triple>) -> Self {
        self.params.stride = s.into();
        self
    }
    /// Set the padding.
    pub fn padding(mut self, p: impl Into<Triple>) -> Self {
        self.params.padding = p.into();
        self
    }
    /// Set the output padding.
    pub fn output_padding(mut self, p: impl Into<Triple>) -> Self {
        self.params.output_padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: impl Into<Triple>) -> Self {
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
}

/// `nn.ConvTranspose3d`: weight `[in, out / groups, kd, kh, kw]`, optional
/// bias `[out]`.
///
/// ```
/// use convlab::nn::{ConvTranspose3d, ConvTranspose3dConfig, Module};
/// use convlab::{autograd::Var, seeded_rng, Tensor};
/// let up = ConvTranspose3dConfig::new(8, 4, 2).stride(2);
/// let up = ConvTranspose3d::new(up, &mut seeded_rng(0))?;
/// assert_eq!(up.describe(), "ConvTranspose3d(8, 4, kernel_size=(2, 2, 2), stride=(2, 2, 2))");
/// let y = up.forward(&Var::new(Tensor::ones(&[1, 8, 2, 3, 3])?))?;
/// assert_eq!(y.shape(), [1, 4, 4, 6, 6]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct ConvTranspose3d {
    /// `[in_channels, out_channels / groups, kd, kh, kw]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// The options the layer was built with.
    pub config: ConvTranspose3dConfig,
}

impl ConvTranspose3d {
    /// A layer initialised as PyTorch does (fan_in = out / groups * kd * kh
    /// * kw, from the weight's second dimension), from `rng`.
    ///
    /// # Errors
    /// Zero channels or kernel, or groups that do not divide both channel
    /// counts.
    pub fn new(config: ConvTranspose3dConfig, rng: &mut impl Rng) -> Result<ConvTranspose3d> {
        ConvTranspose3d::build(config, Init::Default(rng))
    }

    /// A layer with zero weights, for weights that will be loaded.
    ///
    /// # Errors
    /// As [`ConvTranspose3d::new`].
    #[doc(alias = "skip_init")]
    pub fn zeroed(config: ConvTranspose3dConfig) -> Result<ConvTranspose3d> {
        ConvTranspose3d::build(config, Init::<NoRng>::Zeros)
    }

    fn build<R: Rng>(
        config: ConvTranspose3dConfig,
        mut init: Init<'_, R>,
    ) -> Result<ConvTranspose3d> {
        let c = &config;
        let [kd, kh, kw] = c.kernel_size.0;
        let channels = [c.in_channels, c.out_channels];
        let smallest = kd.min(kh).min(kw);
        let shown = c.kernel_size.to_string();
        check_conv_layer(
            "ConvTranspose3d",
            channels,
            c.params.groups,
            smallest,
            &shown,
        )?;
        let shape = [c.in_channels, c.out_channels / c.params.groups, kd, kh, kw];
        let fan_in = shape[1] * kd * kh * kw;
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
        Ok(ConvTranspose3d {
            weight,
            bias,
            config,
        })
    }
}

impl Module for ConvTranspose3d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.conv_transpose3d(&self.weight, self.bias.as_ref(), &self.config.params)
    }
    fn own_parameters(&self) -> Vec<(String, Var)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn describe(&self) -> String {
        let c = &self.config;
        let p = &c.params;
        let mut s = format!(
            "ConvTranspose3d({}, {}, kernel_size={}, stride={}",
            c.in_channels, c.out_channels, c.kernel_size, p.stride
        );
        if p.padding != Triple([0; 3]) {
            s += &format!(", padding={}", p.padding);
        }
        if p.dilation != Triple([1; 3]) {
            s += &format!(", dilation={}", p.dilation);
        }
        if p.output_padding != Triple([0; 3]) {
            s += &format!(", output_padding={}", p.output_padding);
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

display_from_describe!(ConvTranspose3d);
