//! Resampling and rearrangement layers with PyTorch's names:
//! `nn.Upsample`, `nn.PixelShuffle`, `nn.PixelUnshuffle`,
//! `nn.ChannelShuffle` and the padding layers (`ZeroPad1d/2d/3d`,
//! `ConstantPad*`, `ReflectionPad*`, `ReplicationPad*`, `CircularPad*`).
//! No parameters; each describes itself in PyTorch's repr. Sizes are
//! checked when the layer runs, with the op's errors.

use super::{display_from_describe, Module};
use crate::autograd::Var;
use crate::error::Result;
use crate::ops::{InterpolateMode, InterpolateParams, PadMode, PerAxis};

/// A Python tuple of the values: `(1,)`, `(1, 1, 2, 0)`.
fn py_tuple<T: std::fmt::Debug>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    if items.len() == 1 {
        format!("({},)", items[0])
    } else {
        format!("({})", items.join(", "))
    }
}

fn per_axis<T: std::fmt::Debug>(v: &PerAxis<T>) -> String {
    match v {
        PerAxis::Same(x) => format!("{x:?}"),
        PerAxis::Each(xs) => py_tuple(xs),
    }
}

/// `nn.Upsample(size=None, scale_factor=None, mode='nearest',
/// align_corners=None, recompute_scale_factor=None)`: `F.interpolate` as
/// a layer.
///
/// ```
/// use convlab::{autograd::Var, nn::{Module, Upsample}, ops::InterpolateMode, Tensor};
/// let up = Upsample::scale_factor(2.0, InterpolateMode::Nearest);
/// assert_eq!(up.describe(), "Upsample(scale_factor=2.0, mode='nearest')");
/// let y = up.forward(&Var::new(Tensor::ones(&[1, 3, 4, 4])?))?;
/// assert_eq!(y.shape(), [1, 3, 8, 8]);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    /// What `F.interpolate` is called with.
    pub params: InterpolateParams,
}

impl Upsample {
    /// Resample to `size` (one value for every spatial axis, or one each).
    pub fn size(size: impl Into<PerAxis<usize>>, mode: InterpolateMode) -> Self {
        Upsample {
            params: InterpolateParams::new(mode).size(size),
        }
    }
    /// Resample by `scale` (one value for every spatial axis, or one each).
    pub fn scale_factor(scale: impl Into<PerAxis<f64>>, mode: InterpolateMode) -> Self {
        Upsample {
            params: InterpolateParams::new(mode).scale_factor(scale),
        }
    }
    /// Any of `F.interpolate`'s options.
    pub fn with(params: InterpolateParams) -> Self {
        Upsample { params }
    }
}

impl Module for Upsample {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.interpolate(&self.params)
    }
    fn describe(&self) -> String {
        let p = &self.params;
        let what = match (&p.scale_factor, &p.size) {
            (Some(s), _) => format!("scale_factor={}", per_axis(s)),
            (None, Some(s)) => format!("size={}", per_axis(s)),
            (None, None) => "size=None".into(),
        };
        format!("Upsample({what}, mode='{}')", p.mode.name())
    }
}

/// `nn.PixelShuffle(upscale_factor)`: `[N, C r², H, W] -> [N, C, H r, W r]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelShuffle {
    /// `r`.
    pub upscale_factor: usize,
}

impl PixelShuffle {
    /// A pixel shuffle by `upscale_factor`.
    pub fn new(upscale_factor: usize) -> Self {
        PixelShuffle { upscale_factor }
    }
}

impl Module for PixelShuffle {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.pixel_shuffle(self.upscale_factor)
    }
    fn describe(&self) -> String {
        format!("PixelShuffle(upscale_factor={})", self.upscale_factor)
    }
}

/// `nn.PixelUnshuffle(downscale_factor)`: the inverse of [`PixelShuffle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelUnshuffle {
    /// `r`.
    pub downscale_factor: usize,
}

impl PixelUnshuffle {
    /// A pixel unshuffle by `downscale_factor`.
    pub fn new(downscale_factor: usize) -> Self {
        PixelUnshuffle { downscale_factor }
    }
}

impl Module for PixelUnshuffle {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.pixel_unshuffle(self.downscale_factor)
    }
    fn describe(&self) -> String {
        format!("PixelUnshuffle(downscale_factor={})", self.downscale_factor)
    }
}

/// `nn.ChannelShuffle(groups)`: ShuffleNet's channel interleaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelShuffle {
    /// The groups the channels are split into.
    pub groups: usize,
}

impl ChannelShuffle {
    /// A channel shuffle over `groups` groups.
    pub fn new(groups: usize) -> Self {
        ChannelShuffle { groups }
    }
}

impl Module for ChannelShuffle {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.channel_shuffle(self.groups)
    }
    fn describe(&self) -> String {
        format!("ChannelShuffle(groups={})", self.groups)
    }
}

/// The `padding` argument of the padding layers: one size for every side
/// (`int`), or PyTorch's tuple of (before, after) pairs from the last axis
/// inwards (`(left, right, top, bottom, front, back)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PadSides {
    /// The same size on each of the `2 N` sides.
    Same(i64),
    /// One size per side, last axis first.
    Each(Vec<i64>),
}

impl From<i64> for PadSides {
    fn from(v: i64) -> Self {
        PadSides::Same(v)
    }
}
impl From<Vec<i64>> for PadSides {
    fn from(v: Vec<i64>) -> Self {
        PadSides::Each(v)
    }
}
impl<const M: usize> From<[i64; M]> for PadSides {
    fn from(v: [i64; M]) -> Self {
        PadSides::Each(v.to_vec())
    }
}

impl PadSides {
    fn sides(self, n: usize) -> Vec<i64> {
        match self {
            PadSides::Same(v) => vec![v; 2 * n],
            PadSides::Each(v) => v,
        }
    }
}

macro_rules! pad_family {
    ($ty:ident, $torch:literal, $mode:expr, $a1:ident, $a2:ident, $a3:ident) => {
        #[doc = concat!("`nn.", $torch, "1d/2d/3d(padding)`: `F.pad` in ")]
        #[doc = concat!("that mode on the last `N` axes (`", stringify!($a2), " = ")]
        #[doc = concat!(stringify!($ty), "<2>`).")]
        #[derive(Clone, Debug, PartialEq)]
        pub struct $ty<const N: usize> {
            /// Side sizes, last axis first (negative sizes crop).
            pub padding: Vec<i64>,
        }

        #[doc = concat!("`nn.", $torch, "1d`.")]
        pub type $a1 = $ty<1>;
        #[doc = concat!("`nn.", $torch, "2d`.")]
        pub type $a2 = $ty<2>;
        #[doc = concat!("`nn.", $torch, "3d`.")]
        pub type $a3 = $ty<3>;

        impl<const N: usize> $ty<N> {
            /// Pad every side by `padding`, or each side by its own size.
            pub fn new(padding: impl Into<PadSides>) -> Self {
                $ty {
                    padding: padding.into().sides(N),
                }
            }
        }

        impl<const N: usize> Module for $ty<N> {
            fn forward(&self, input: &Var) -> Result<Var> {
                input.pad(&self.padding, $mode)
            }
            fn describe(&self) -> String {
                format!("{}{}d({})", $torch, N, py_tuple(&self.padding))
            }
        }
    };
}

pad_family!(
    ZeroPad,
    "ZeroPad",
    PadMode::Constant(0.0),
    ZeroPad1d,
    ZeroPad2d,
    ZeroPad3d
);
pad_family!(
    ReflectionPad,
    "ReflectionPad",
    PadMode::Reflect,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d
);
pad_family!(
    ReplicationPad,
    "ReplicationPad",
    PadMode::Replicate,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d
);
pad_family!(
    CircularPad,
    "CircularPad",
    PadMode::Circular,
    CircularPad1d,
    CircularPad2d,
    CircularPad3d
);

/// `nn.ConstantPad1d/2d/3d(padding, value)`: `F.pad` with a constant on
/// the last `N` axes.
///
/// ```
/// use convlab::{autograd::Var, nn::{ConstantPad2d, Module}, Tensor};
/// let pad = ConstantPad2d::new([1, 0, 0, 2], 3.5);
/// assert_eq!(pad.describe(), "ConstantPad2d(padding=(1, 0, 0, 2), value=3.5)");
/// let y = pad.forward(&Var::new(Tensor::ones(&[1, 2, 2])?))?;
/// assert_eq!(y.shape(), [1, 4, 3]);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantPad<const N: usize> {
    /// Side sizes, last axis first (negative sizes crop).
    pub padding: Vec<i64>,
    /// The fill value.
    pub value: f32,
}

/// `nn.ConstantPad1d`.
pub type ConstantPad1d = ConstantPad<1>;
/// `nn.ConstantPad2d`.
pub type ConstantPad2d = ConstantPad<2>;
/// `nn.ConstantPad3d`.
pub type ConstantPad3d = ConstantPad<3>;

impl<const N: usize> ConstantPad<N> {
    /// Pad by `padding` (every side, or each side) with `value`.
    pub fn new(padding: impl Into<PadSides>, value: f32) -> Self {
        ConstantPad {
            padding: padding.into().sides(N),
            value,
        }
    }
}

impl<const N: usize> Module for ConstantPad<N> {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.pad(&self.padding, PadMode::Constant(self.value))
    }
    fn describe(&self) -> String {
        format!(
            "ConstantPad{N}d(padding={}, value={:?})",
            py_tuple(&self.padding),
            self.value
        )
    }
}

display_from_describe!(
    Upsample,
    PixelShuffle,
    PixelUnshuffle,
    ChannelShuffle,
    ZeroPad1d,
    ZeroPad2d,
    ZeroPad3d,
    ConstantPad1d,
    ConstantPad2d,
    ConstantPad3d,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d,
    CircularPad1d,
    CircularPad2d,
    CircularPad3d,
);
