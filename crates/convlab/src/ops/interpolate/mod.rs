//! Resizing with PyTorch's `F.interpolate`: 3-D, 4-D and 5-D inputs
//! (`[N, C, W]`, `[N, C, H, W]`, `[N, C, D, H, W]`), modes nearest,
//! nearest-exact, linear, bilinear, bicubic, trilinear and area, `size` or
//! per-axis `scale_factor`, `align_corners`, `recompute_scale_factor` and
//! `antialias` (bilinear and bicubic), forward and backward.
//!
//! Every mode is separable: a band matrix per spatial axis (`taps.rs`, with
//! PyTorch's float32 index arithmetic) applied axis by axis (`engine.rs`).
//! The backward pass applies the transposed matrices.
//!
//! ```
//! use convlab::{ops::{interpolate, InterpolateMode, InterpolateParams}, Tensor};
//! let x = Tensor::from_slice(&[1.0, 3.0], &[1, 1, 2])?;
//! let p = InterpolateParams::new(InterpolateMode::Linear).scale_factor(2.0);
//! assert_eq!(interpolate(&x, &p)?.data(), &[1.0, 1.5, 2.5, 3.0]);
//! # Ok::<(), convlab::Error>(())
//! ```

mod engine;
pub(crate) mod taps;

use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use engine::Separable;
use taps::{AaFilter, AxisRule, RuleKind};

/// `F.interpolate`'s `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpolateMode {
    /// `'nearest'`: `floor(i * in / out)`, PyTorch's legacy rule (as
    /// OpenCV's `INTER_NEAREST`).
    Nearest,
    /// `'nearest-exact'`: the nearest centre, `floor((i + 0.5) * in / out)`
    /// (as Pillow and scikit-image).
    NearestExact,
    /// `'linear'`, 3-D input only.
    Linear,
    /// `'bilinear'`, 4-D input only.
    Bilinear,
    /// `'bicubic'` (`A = -0.75`; with antialias Pillow's `a = -0.5`), 4-D
    /// input only.
    Bicubic,
    /// `'trilinear'`, 5-D input only.
    Trilinear,
    /// `'area'`: adaptive average pooling to the output size.
    Area,
}

impl InterpolateMode {
    /// PyTorch's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            InterpolateMode::Nearest => "nearest",
            InterpolateMode::NearestExact => "nearest-exact",
            InterpolateMode::Linear => "linear",
            InterpolateMode::Bilinear => "bilinear",
            InterpolateMode::Bicubic => "bicubic",
            InterpolateMode::Trilinear => "trilinear",
            InterpolateMode::Area => "area",
        }
    }

    /// The one input rank a mode accepts, if it is tied to one.
    fn rank(self) -> Option<usize> {
        match self {
            InterpolateMode::Linear => Some(3),
            InterpolateMode::Bilinear | InterpolateMode::Bicubic => Some(4),
            InterpolateMode::Trilinear => Some(5),
            _ => None,
        }
    }

    /// Whether `align_corners` means something for the mode.
    fn interpolating(self) -> bool {
        self.rank().is_some()
    }
}

impl std::str::FromStr for InterpolateMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<InterpolateMode> {
        Ok(match s {
            "nearest" => InterpolateMode::Nearest,
            "nearest-exact" => InterpolateMode::NearestExact,
            "linear" => InterpolateMode::Linear,
            "bilinear" => InterpolateMode::Bilinear,
            "bicubic" => InterpolateMode::Bicubic,
            "trilinear" => InterpolateMode::Trilinear,
            "area" => InterpolateMode::Area,
            other => {
                return Err(Error::param(
                    "interpolate",
                    "mode",
                    format!("'{other}' is not one of nearest, nearest-exact, linear, bilinear, bicubic, trilinear, area"),
                ))
            }
        })
    }
}

/// One value for every spatial axis, or one per axis (PyTorch's `int` or
/// `tuple` for `size` and `scale_factor`).
#[derive(Clone, Debug, PartialEq)]
pub enum PerAxis<T> {
    /// The same value on every axis.
    Same(T),
    /// One value per spatial axis, outermost first (`(H, W)`).
    Each(Vec<T>),
}

macro_rules! per_axis_from {
    ($($t:ty),*) => {$(
        impl From<$t> for PerAxis<$t> {
            fn from(v: $t) -> Self { PerAxis::Same(v) }
        }
        impl From<Vec<$t>> for PerAxis<$t> {
            fn from(v: Vec<$t>) -> Self { PerAxis::Each(v) }
        }
        impl From<&[$t]> for PerAxis<$t> {
            fn from(v: &[$t]) -> Self { PerAxis::Each(v.to_vec()) }
        }
        impl<const N: usize> From<[$t; N]> for PerAxis<$t> {
            fn from(v: [$t; N]) -> Self { PerAxis::Each(v.to_vec()) }
        }
    )*};
}
per_axis_from!(usize, f64);

impl<T: Copy + std::fmt::Debug> PerAxis<T> {
    /// The value of each of `dims` axes, or `None` when the count differs.
    fn expand(&self, dims: usize) -> Option<Vec<T>> {
        match self {
            PerAxis::Same(v) => Some(vec![*v; dims]),
            PerAxis::Each(v) if v.len() == dims => Some(v.clone()),
            PerAxis::Each(_) => None,
        }
    }
}

/// The options of `F.interpolate(input, size=None, scale_factor=None,
/// mode='nearest', align_corners=None, recompute_scale_factor=None,
/// antialias=False)`.
#[derive(Clone, Debug, PartialEq)]
pub struct InterpolateParams {
    /// The output's spatial size (exactly one of `size` and `scale_factor`).
    pub size: Option<PerAxis<usize>>,
    /// Output size = `floor(input size * scale_factor)`; the interpolation
    /// uses the factor itself unless `recompute_scale_factor`.
    pub scale_factor: Option<PerAxis<f64>>,
    pub mode: InterpolateMode,
    /// `None` is PyTorch's default (false for the interpolating modes; the
    /// other modes refuse any value).
    pub align_corners: Option<bool>,
    /// Interpolate with `input / output` sizes rather than the factor.
    pub recompute_scale_factor: Option<bool>,
    /// Low-pass filter when shrinking (bilinear and bicubic, 4-D input).
    pub antialias: bool,
}

impl InterpolateParams {
    /// `mode` with PyTorch's defaults; set `size` or `scale_factor` next.
    pub fn new(mode: InterpolateMode) -> Self {
        InterpolateParams {
            size: None,
            scale_factor: None,
            mode,
            align_corners: None,
            recompute_scale_factor: None,
            antialias: false,
        }
    }
    /// Set the output size (one value for every axis, or one per axis).
    pub fn size(mut self, size: impl Into<PerAxis<usize>>) -> Self {
        self.size = Some(size.into());
        self
    }
    /// Set the scale factor (one value for every axis, or one per axis).
    pub fn scale_factor(mut self, scale: impl Into<PerAxis<f64>>) -> Self {
        self.scale_factor = Some(scale.into());
        self
    }
    /// Set `align_corners`.
    pub fn align_corners(mut self, align: bool) -> Self {
        self.align_corners = Some(align);
        self
    }
    /// Set `recompute_scale_factor`.
    pub fn recompute_scale_factor(mut self, recompute: bool) -> Self {
        self.recompute_scale_factor = Some(recompute);
        self
    }
    /// Set `antialias`.
    pub fn antialias(mut self, antialias: bool) -> Self {
        self.antialias = antialias;
        self
    }
}

/// A validated interpolation: the planes, the spatial sizes in and out,
/// and the scale factor each axis interpolates with (`None`: the sizes).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub planes: usize,
    pub in_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
    pub scales: Vec<Option<f64>>,
    pub mode: InterpolateMode,
    pub align_corners: bool,
    pub antialias: bool,
}

/// Labels of the spatial axes in PyTorch's messages.
fn axis_labels(n: usize) -> &'static [&'static str] {
    match n {
        1 => &["W"],
        2 => &["H", "W"],
        _ => &["D", "H", "W"],
    }
}

fn sizes_text(sizes: &[usize]) -> String {
    let labels = axis_labels(sizes.len());
    let parts: Vec<String> = labels
        .iter()
        .zip(sizes)
        .map(|(l, s)| format!("{l}: {s}"))
        .collect();
    parts.join(", ")
}

/// F.interpolate's checks, in PyTorch's order; on success, the plan.
pub(crate) fn plan(op: &'static str, shape: &[usize], p: &InterpolateParams) -> Result<Plan> {
    let rank = shape.len();
    let mode = p.mode;
    if !(3..=5).contains(&rank) {
        return Err(Error::shape(
            op,
            format!(
                "only 3-D, 4-D and 5-D inputs ([N, C, spatial...]) are supported, got input of shape {}",
                Dims(shape)
            ),
        ));
    }
    if !mode.interpolating() && p.align_corners.is_some() {
        return Err(Error::param(
            op,
            "align_corners",
            format!(
                "can only be set with the interpolating modes linear, bilinear, bicubic and trilinear, not '{}'",
                mode.name()
            ),
        ));
    }
    let dims = rank - 2;
    let in_dims = &shape[2..];
    let (out_dims, scales) = match (&p.size, &p.scale_factor) {
        (Some(_), Some(_)) => {
            return Err(Error::param(
                op,
                "size",
                "and scale_factor are both set: only one of them can be",
            ))
        }
        (None, None) => return Err(Error::param(op, "size", "or scale_factor must be set")),
        (Some(size), None) => {
            if p.recompute_scale_factor == Some(true) {
                return Err(Error::param(
                    op,
                    "recompute_scale_factor",
                    "is not meaningful with an explicit size",
                ));
            }
            let out = size.expand(dims).ok_or_else(|| {
                Error::param(
                    op,
                    "size",
                    format!(
                        "{size:?} must have one value per spatial dimension of input {} ({dims})",
                        Dims(shape)
                    ),
                )
            })?;
            (out, vec![None; dims])
        }
        (None, Some(scale)) => {
            let s = scale.expand(dims).ok_or_else(|| {
                Error::param(
                    op,
                    "scale_factor",
                    format!(
                        "{scale:?} must have one value per spatial dimension of input {} ({dims})",
                        Dims(shape)
                    ),
                )
            })?;
            let mut out = Vec::with_capacity(dims);
            for (&n, &f) in in_dims.iter().zip(&s) {
                let v = (n as f64 * f).trunc();
                if !v.is_finite() || v.abs() >= 9.0e18 {
                    return Err(Error::param(
                        op,
                        "scale_factor",
                        format!(
                            "{f} gives an output size {} that is not a finite integer",
                            n as f64 * f
                        ),
                    ));
                }
                // A negative size fails the positive-size check below.
                out.push(if v < 0.0 { 0 } else { v as usize });
            }
            let recompute = p.recompute_scale_factor == Some(true) || mode == InterpolateMode::Area;
            let used = s.iter().map(|&f| (!recompute).then_some(f)).collect();
            (out, used)
        }
    };
    if p.antialias
        && !(matches!(mode, InterpolateMode::Bilinear | InterpolateMode::Bicubic) && rank == 4)
    {
        return Err(Error::param(
            op,
            "antialias",
            format!(
                "is restricted to the bilinear and bicubic modes and a 4-D input, got mode '{}' and a {rank}-D input",
                mode.name()
            ),
        ));
    }
    if let Some(want) = mode.rank() {
        if want != rank {
            return Err(Error::shape(
                op,
                format!(
                    "got a {rank}-D input {} but mode '{}' needs a {want}-D input",
                    Dims(shape),
                    mode.name()
                ),
            ));
        }
    }
    if in_dims.contains(&0) || out_dims.contains(&0) {
        return Err(Error::shape(
            op,
            format!(
                "input and output sizes should be greater than 0, but got input ({}) and output ({})",
                sizes_text(in_dims),
                sizes_text(&out_dims)
            ),
        ));
    }
    if shape[1] == 0 {
        return Err(Error::shape(
            op,
            format!(
                "expects a non-empty {rank}-D input (only the batch may be 0), got {}",
                Dims(shape)
            ),
        ));
    }
    let mut out_shape = shape[..2].to_vec();
    out_shape.extend_from_slice(&out_dims);
    crate::error::numel_or_err(op, &out_shape)?;
    Ok(Plan {
        planes: shape[0] * shape[1],
        in_shape: shape.to_vec(),
        out_shape,
        scales,
        mode,
        align_corners: p.align_corners.unwrap_or(false),
        antialias: p.antialias,
    })
}

impl Plan {
    /// The rule of spatial axis `a`, `None` where it is left as it is.
    pub fn axis_rule(&self, a: usize) -> Option<AxisRule> {
        let (n, o, s) = (self.in_shape[a + 2], self.out_shape[a + 2], self.scales[a]);
        let kind = match (self.mode, self.antialias) {
            (InterpolateMode::Nearest, _) => RuleKind::Nearest {
                shortcuts: self.in_shape.len() == 4,
            },
            (InterpolateMode::NearestExact, _) => RuleKind::NearestExact,
            (InterpolateMode::Area, _) => RuleKind::Area,
            (InterpolateMode::Bilinear, true) => RuleKind::Antialiased(AaFilter::Triangle),
            (InterpolateMode::Bicubic, true) => RuleKind::Antialiased(AaFilter::Cubic),
            (InterpolateMode::Bicubic, false) => RuleKind::Cubic,
            _ => RuleKind::Linear,
        };
        AxisRule::new(kind, n, o, self.align_corners, s)
    }

    fn separable(&self) -> Separable {
        let axes = (0..self.in_shape.len() - 2)
            .map(|a| {
                let (n, o) = (self.in_shape[a + 2], self.out_shape[a + 2]);
                self.axis_rule(a).map(|r| r.taps(n, o))
            })
            .collect();
        Separable::new(&self.in_shape[2..], axes)
    }
}

/// PyTorch's `F.interpolate`.
///
/// # Errors
/// As PyTorch: a rank other than 3-5 or one the mode does not take; both
/// or neither of `size` and `scale_factor`, or a count that is not the
/// number of spatial axes; `align_corners` with nearest, nearest-exact or
/// area; `recompute_scale_factor` with a size; `antialias` outside
/// bilinear/bicubic on 4-D input; an empty channel or spatial axis, or an
/// output size below 1.
pub fn interpolate(input: &Tensor, params: &InterpolateParams) -> Result<Tensor> {
    const OP: &str = "interpolate";
    let plan = plan(OP, input.shape(), params)?;
    let out = plan.separable().run(OP, input.data(), plan.planes)?;
    Tensor::from_vec(out, &plan.out_shape)
}

/// The gradient of [`interpolate`] with respect to its input (of shape
/// `input_shape`): the transposed resampling of `grad_output`.
///
/// This is the exact adjoint of the forward pass. It differs from
/// PyTorch's only where PyTorch's backward kernels disagree with its
/// forward ones: a `scale_factor` that leaves an axis's size unchanged
/// (with `recompute_scale_factor` off), which PyTorch's 1-D and 3-D
/// nearest and its bicubic backward treat as a copy and its antialiased
/// backward as a resampling, while their forward passes do the opposite
/// (and likewise 1-D and 3-D nearest for a factor that doubles the size).
///
/// # Errors
/// The errors of [`interpolate`] for `input_shape`, or a `grad_output`
/// whose shape is not the output's.
pub fn interpolate_backward(
    grad_output: &Tensor,
    input_shape: &[usize],
    params: &InterpolateParams,
) -> Result<Tensor> {
    const OP: &str = "interpolate_backward";
    let plan = plan(OP, input_shape, params)?;
    if grad_output.shape() != plan.out_shape.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_output has shape {} but resizing input {} gives {}",
                Dims(grad_output.shape()),
                Dims(input_shape),
                Dims(&plan.out_shape)
            ),
        ));
    }
    let back = plan.separable().transpose();
    debug_assert_eq!(back.out_dims(), &input_shape[2..]);
    let gx = back.run(OP, grad_output.data(), plan.planes)?;
    Tensor::from_vec(gx, input_shape)
}
