//! The layers with weights (`Conv2d`, `ConvTranspose2d`, `Linear`) and the
//! stateless ones (activations, `Flatten`, `Identity`).

use super::{display_from_describe, Module};
use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::ops::{Conv2dParams, ConvTranspose2dParams};
use crate::shape::{Padding, PaddingMode, Pair};
use crate::tensor::Tensor;
use rand::Rng;

/// How a layer's weights start.
pub(super) enum Init<'a, R: Rng> {
    /// PyTorch's default, drawn from the generator.
    Default(&'a mut R),
    /// Zeros, for a layer whose weights will be loaded.
    Zeros,
}

/// `U(-bound, bound)` with `bound = 1/sqrt(fan_in)`: PyTorch's default for
/// both weight and bias of conv and linear layers (`kaiming_uniform_(a=√5)`),
/// or zeros.
pub(super) fn init_tensor<R: Rng>(
    shape: &[usize],
    fan_in: usize,
    init: &mut Init<'_, R>,
) -> Result<Tensor> {
    match init {
        Init::Zeros => Tensor::zeros(shape),
        Init::Default(rng) => {
            let bound = if fan_in == 0 {
                0.0
            } else {
                1.0 / (fan_in as f32).sqrt()
            };
            Tensor::uniform(shape, -bound, bound, *rng)
        }
    }
}

/// The placeholder generator type of `Init::Zeros`, which draws nothing.
pub(super) type NoRng = rand::rngs::mock::StepRng;

/// Options of [`Conv2d`], mirroring `nn.Conv2d(in_channels, out_channels,
/// kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
/// padding_mode='zeros')`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel_size: Pair,
    /// Stride, padding, dilation, groups and padding mode.
    pub params: Conv2dParams,
    /// Whether the layer adds a bias.
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
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// The options the layer was built with.
    pub config: Conv2dConfig,
}

impl Conv2d {
    /// A layer initialised as PyTorch does, from `rng`.
    ///
    /// # Errors
    /// Zero channels or kernel, or groups that do not divide both channel counts.
    pub fn new(config: Conv2dConfig, rng: &mut impl Rng) -> Result<Conv2d> {
        Conv2d::build(config, Init::Default(rng))
    }

    /// A layer with zero weights, for weights that will be loaded (no
    /// generator needed; PyTorch's `skip_init`).
    ///
    /// # Errors
    /// As [`Conv2d::new`].
    #[doc(alias = "skip_init")]
    pub fn zeroed(config: Conv2dConfig) -> Result<Conv2d> {
        Conv2d::build(config, Init::<NoRng>::Zeros)
    }

    fn build<R: Rng>(config: Conv2dConfig, mut init: Init<'_, R>) -> Result<Conv2d> {
        let c = &config;
        let kernel = c.kernel_size.0.min(c.kernel_size.1);
        let shown = c.kernel_size.to_string();
        check_conv_layer(
            "Conv2d",
            [c.in_channels, c.out_channels],
            c.params.groups,
            kernel,
            &shown,
        )?;
        let g = c.params.groups;
        let shape = [
            c.out_channels,
            c.in_channels / g,
            c.kernel_size.0,
            c.kernel_size.1,
        ];
        let fan_in = shape[1] * shape[2] * shape[3];
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
    fn own_parameters(&self) -> Vec<(String, Var)> {
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
            Padding::Same => s += ", padding=same",
            // The default (PyTorch's padding=0 prints nothing either).
            Padding::Valid => {}
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
        s + padding_mode_repr(p.padding_mode) + ")"
    }
}

/// What every convolution layer's constructor checks, as PyTorch's do:
/// `groups` divides both channel counts, and channels and the kernel
/// (`kernel`: its smallest extent, `shown` as the user wrote it) are
/// positive.
pub(super) fn check_conv_layer(
    op: &'static str,
    [in_channels, out_channels]: [usize; 2],
    groups: usize,
    kernel: usize,
    shown: &str,
) -> Result<()> {
    let g = groups;
    if g == 0 || in_channels % g != 0 || out_channels % g != 0 {
        return Err(Error::param(
            op,
            "groups",
            format!("{g} must divide in_channels {in_channels} and out_channels {out_channels}"),
        ));
    }
    if in_channels == 0 || out_channels == 0 || kernel == 0 {
        return Err(Error::param(
            op,
            "kernel_size",
            format!(
                "channels ({in_channels}, {out_channels}) and kernel_size {shown} must be positive"
            ),
        ));
    }
    Ok(())
}

/// The `, padding_mode=...` part of a convolution layer's repr (none for
/// zeros, PyTorch's default).
pub(super) fn padding_mode_repr(mode: PaddingMode) -> &'static str {
    match mode {
        PaddingMode::Zeros => "",
        PaddingMode::Reflect => ", padding_mode=reflect",
        PaddingMode::Replicate => ", padding_mode=replicate",
        PaddingMode::Circular => ", padding_mode=circular",
    }
}

/// `[("weight", w), ("bias", b)]`, PyTorch's order, without a missing bias.
pub(super) fn weight_and_bias(weight: &Var, bias: &Option<Var>) -> Vec<(String, Var)> {
    std::iter::once(("weight".to_string(), weight.clone()))
        .chain(bias.iter().map(|b| ("bias".to_string(), b.clone())))
        .collect()
}

fn pair_py(p: Pair) -> String {
    format!("({}, {})", p.0, p.1)
}

/// `nn.ConvTranspose2d`: weight `[in, out/groups, kh, kw]`, optional bias `[out]`.
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels / groups, kh, kw]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// Stride, padding, output padding, dilation and groups.
    pub params: ConvTranspose2dParams,
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
}

impl ConvTranspose2d {
    /// `nn.ConvTranspose2d(in, out, kernel_size, ...)`, initialised as PyTorch
    /// (fan_in = out/groups * kh * kw, from the weight's second dimension).
    ///
    /// # Errors
    /// Groups that do not divide both channel counts.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Into<Pair>,
        params: ConvTranspose2dParams,
        bias: bool,
        rng: &mut impl Rng,
    ) -> Result<ConvTranspose2d> {
        let k = kernel_size.into();
        Self::build(
            [in_channels, out_channels],
            k,
            params,
            bias,
            Init::Default(rng),
        )
    }

    /// A layer with zero weights, for weights that will be loaded.
    ///
    /// # Errors
    /// As [`ConvTranspose2d::new`].
    #[doc(alias = "skip_init")]
    pub fn zeroed(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Into<Pair>,
        params: ConvTranspose2dParams,
        bias: bool,
    ) -> Result<ConvTranspose2d> {
        let k = kernel_size.into();
        Self::build(
            [in_channels, out_channels],
            k,
            params,
            bias,
            Init::<NoRng>::Zeros,
        )
    }

    fn build<R: Rng>(
        [in_channels, out_channels]: [usize; 2],
        k: Pair,
        params: ConvTranspose2dParams,
        bias: bool,
        mut init: Init<'_, R>,
    ) -> Result<ConvTranspose2d> {
        let g = params.groups;
        let channels = [in_channels, out_channels];
        check_conv_layer("ConvTranspose2d", channels, g, k.0.min(k.1), &k.to_string())?;
        let shape = [in_channels, out_channels / g, k.0, k.1];
        let fan_in = shape[1] * k.0 * k.1;
        Ok(ConvTranspose2d {
            weight: Var::param(init_tensor(&shape, fan_in, &mut init)?),
            bias: if bias {
                Some(Var::param(init_tensor(&[out_channels], fan_in, &mut init)?))
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
    fn own_parameters(&self) -> Vec<(String, Var)> {
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
    /// `[out_features, in_features]`.
    pub weight: Var,
    /// `[out_features]`, when the layer has a bias.
    pub bias: Option<Var>,
}

impl Linear {
    /// `nn.Linear(in_features, out_features)`, initialised as PyTorch.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when the weight does not fit in memory.
    pub fn new(in_features: usize, out_features: usize, rng: &mut impl Rng) -> Result<Linear> {
        Linear::with_bias(in_features, out_features, true, rng)
    }

    /// `nn.Linear(in_features, out_features, bias=bias)`, initialised as PyTorch.
    ///
    /// # Errors
    /// As [`Linear::new`].
    pub fn with_bias(
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut impl Rng,
    ) -> Result<Linear> {
        Linear::build(in_features, out_features, bias, Init::Default(rng))
    }

    /// A layer with zero weights, for weights that will be loaded.
    ///
    /// # Errors
    /// As [`Linear::new`].
    #[doc(alias = "skip_init")]
    pub fn zeroed(in_features: usize, out_features: usize, bias: bool) -> Result<Linear> {
        Linear::build(in_features, out_features, bias, Init::<NoRng>::Zeros)
    }

    fn build<R: Rng>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        mut init: Init<'_, R>,
    ) -> Result<Linear> {
        let weight = Var::param(init_tensor(
            &[out_features, in_features],
            in_features,
            &mut init,
        )?);
        let bias = if bias {
            Some(Var::param(init_tensor(
                &[out_features],
                in_features,
                &mut init,
            )?))
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.linear(&self.weight, self.bias.as_ref())
    }
    fn own_parameters(&self) -> Vec<(String, Var)> {
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

/// `nn.Flatten()`: `[N, ...] -> [N, prod(...)]`; a 0-d or 1-d input is an
/// error, as in PyTorch (it has no dimension 1 to start from).
pub struct Flatten;
impl Module for Flatten {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.flatten()
    }
    fn describe(&self) -> String {
        "Flatten(start_dim=1, end_dim=-1)".into()
    }
}

/// `nn.Identity`: returns its input (a placeholder, e.g. for a removed
/// classifier head or a residual block's shortcut).
pub struct Identity;
impl Module for Identity {
    fn forward(&self, input: &Var) -> Result<Var> {
        Ok(input.clone())
    }
    fn describe(&self) -> String {
        "Identity()".into()
    }
}

display_from_describe!(
    Conv2d,
    ConvTranspose2d,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
    Flatten,
    Identity
);

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
        assert!(Conv2d::zeroed(Conv2dConfig::new(4, 6, 3).groups(4)).is_err());
    }

    #[test]
    fn zeroed_layers_have_pytorch_shapes() {
        let c = Conv2d::zeroed(Conv2dConfig::new(3, 8, 5).bias(false)).unwrap();
        assert_eq!(
            (c.weight.shape(), c.bias.is_none()),
            (vec![8, 3, 5, 5], true)
        );
        assert!(c.weight.tensor().data().iter().all(|&v| v == 0.0));
        let l = Linear::zeroed(7, 2, true).unwrap();
        assert_eq!(l.weight.shape(), vec![2, 7]);
        assert_eq!(l.bias.unwrap().shape(), vec![2]);
        assert_eq!(
            Linear::zeroed(7, 2, false).unwrap().to_string(),
            "Linear(in_features=7, out_features=2, bias=False)"
        );
    }
}
