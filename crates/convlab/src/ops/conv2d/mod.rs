//! `conv2d`: PyTorch's `F.conv2d` (cross-correlation) with stride, padding
//! (sides, `"same"`, `"valid"`), dilation, groups, bias and padding modes;
//! forward, backward and the reference loops, in that order.
//!
//! Layouts: input `[N, C_in, H, W]` (or unbatched `[C_in, H, W]`), weight
//! `[C_out, C_in / groups, kh, kw]`, bias `[C_out]`, output `[N, C_out, oh, ow]`.

use super::pad::{pad2d, pad2d_backward};
use super::{conv_algo, ConvAlgo, Pass};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::kernels::direct::direct_applies;
use crate::kernels::gemm::MatRef;
use crate::kernels::im2col::{col2im, im2col};
use crate::kernels::winograd::winograd_applies;
use crate::memory;
use crate::shape::{check_positive, conv_out_len, ConvGeometry, Padding, PaddingMode, Pair};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;
use winograd_path::Phases;

/// Parameters of [`conv2d`], with PyTorch's defaults (stride 1, padding 0,
/// dilation 1, groups 1, zeros padding).
///
/// ```
/// use convlab::ops::Conv2dParams;
/// let p = Conv2dParams::default().stride(2).padding((1, 2)).groups(4);
/// assert_eq!(p.groups, 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub stride: Pair,
    pub padding: Padding,
    pub dilation: Pair,
    pub groups: usize,
    pub padding_mode: PaddingMode,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: Pair(1, 1),
            padding: Padding::Valid,
            dilation: Pair(1, 1),
            groups: 1,
            padding_mode: PaddingMode::Zeros,
        }
    }
}

impl Conv2dParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the stride (`2` or `(2, 1)`).
    pub fn stride(mut self, s: impl Into<Pair>) -> Self {
        self.stride = s.into();
        self
    }
    /// Set the padding (`1`, `(1, 2)`, `[t, b, l, r]`, `Padding::Same`).
    pub fn padding(mut self, p: impl Into<Padding>) -> Self {
        self.padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: impl Into<Pair>) -> Self {
        self.dilation = d.into();
        self
    }
    /// Set the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Set how padded values are made.
    pub fn padding_mode(mut self, m: PaddingMode) -> Self {
        self.padding_mode = m;
        self
    }
}

/// Gradients of a convolution: of `sum(output * grad_output)` with respect
/// to each input.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dGrads {
    pub grad_input: Tensor,
    pub grad_weight: Tensor,
    pub grad_bias: Option<Tensor>,
}

/// A validated convolution: its geometry on the (possibly pre-padded) input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub geom: ConvGeometry,
    /// `[top, bottom, left, right]`.
    pub pads: [usize; 4],
    pub mode: PaddingMode,
    /// The caller gave `[C, H, W]`.
    pub unbatched: bool,
}

impl Plan {
    /// Non-zero padding modes pad explicitly first, then convolve unpadded.
    fn pre_padded(&self) -> bool {
        self.mode != PaddingMode::Zeros && self.pads != [0; 4]
    }

    /// The shape the caller sees for the output.
    pub fn output_shape(&self) -> Vec<usize> {
        let g = &self.geom;
        if self.unbatched {
            vec![g.c_out, g.oh, g.ow]
        } else {
            vec![g.n, g.c_out, g.oh, g.ow]
        }
    }
}

/// The 4-D view of a `[C, H, W]` or `[N, C, H, W]` input.
pub(crate) fn batched_dims(op: &'static str, shape: &[usize]) -> Result<([usize; 4], bool)> {
    match *shape {
        [n, c, h, w] => Ok(([n, c, h, w], false)),
        [c, h, w] => Ok(([1, c, h, w], true)),
        _ => Err(Error::shape(
            op,
            format!(
                "input must be 3-D (C, H, W) or 4-D (N, C, H, W) but has shape {}",
                Dims(shape)
            ),
        )),
    }
}

/// The checks conv2d and conv_transpose2d share: a 4-D weight (dimensions
/// named by `layout`) with a non-empty kernel, and positive stride and
/// dilation. Returns the weight's dimensions.
pub(crate) fn check_weight(
    op: &'static str,
    weight: &[usize],
    layout: &str,
    stride: Pair,
    dilation: Pair,
) -> Result<[usize; 4]> {
    let [a, b, kh, kw] = match *weight {
        [a, b, c, d] => [a, b, c, d],
        _ => {
            return Err(Error::shape(
                op,
                format!(
                    "weight must be 4-D ({layout}) but has shape {}",
                    Dims(weight)
                ),
            ))
        }
    };
    check_positive(op, "stride", stride)?;
    check_positive(op, "dilation", dilation)?;
    if kh == 0 || kw == 0 {
        return Err(Error::shape(
            op,
            format!("weight {} has an empty kernel", Dims(weight)),
        ));
    }
    Ok([a, b, kh, kw])
}

/// Check the channel bookkeeping shared by conv2d and conv_transpose2d.
pub(crate) fn check_groups(
    op: &'static str,
    groups: usize,
    channels: usize,
    channels_name: &str,
) -> Result<()> {
    if groups == 0 {
        return Err(Error::param(
            op,
            "groups",
            "0 is invalid: must be at least 1",
        ));
    }
    if channels % groups != 0 {
        return Err(Error::param(
            op,
            "groups",
            format!("{groups} must divide the {channels_name} {channels}"),
        ));
    }
    Ok(())
}

pub(crate) fn plan(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    p: &Conv2dParams,
) -> Result<Plan> {
    const OP: &str = "conv2d";
    let ([n, c_in, h, w], unbatched) = batched_dims(OP, input)?;
    let [c_out, cin_g, kh, kw] = check_weight(
        OP,
        weight,
        "C_out, C_in/groups, kh, kw",
        p.stride,
        p.dilation,
    )?;
    let g = p.groups;
    if g == 0 {
        return Err(Error::param(
            OP,
            "groups",
            "0 is invalid: must be at least 1",
        ));
    }
    let expected = cin_g
        .checked_mul(g)
        .ok_or_else(|| Error::too_large(OP, "channels overflow"))?;
    if c_in != expected {
        return Err(Error::shape(
            OP,
            format!(
                "input has {c_in} channels but weight {} with groups={g} expects {expected}",
                Dims(weight)
            ),
        ));
    }
    check_groups(OP, g, c_out, "output channels")?;
    if let Some(b) = bias {
        if b != [c_out] {
            return Err(Error::shape(
                OP,
                format!(
                    "bias has shape {} but weight {} has {c_out} output channels",
                    Dims(b),
                    Dims(weight)
                ),
            ));
        }
    }
    let pads = p.padding.resolve(OP, Pair(kh, kw), p.dilation, p.stride)?;
    let [pt, pb, pl, pr] = pads;
    let oh = conv_out_len(OP, "height", h, kh, p.stride.0, pt, pb, p.dilation.0)?;
    let ow = conv_out_len(OP, "width", w, kw, p.stride.1, pl, pr, p.dilation.1)?;
    numel_or_err(OP, &[n, c_out, oh, ow])?;
    let mut geom = ConvGeometry {
        n,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        groups: g,
        sh: p.stride.0,
        sw: p.stride.1,
        dh: p.dilation.0,
        dw: p.dilation.1,
        pt,
        pl,
        oh,
        ow,
    };
    let plan = Plan {
        geom,
        pads,
        mode: p.padding_mode,
        unbatched,
    };
    if plan.pre_padded() {
        super::pad::check(OP, &[h, w], pads, plan.mode)?;
        // The kernel then sees the explicitly padded input and no padding.
        geom.h += pt + pb;
        geom.w += pl + pr;
        geom.pt = 0;
        geom.pl = 0;
        return Ok(Plan { geom, ..plan });
    }
    Ok(plan)
}

/// The input as the kernels see it: explicitly padded for non-zero modes,
/// else borrowed (a clone cost image_3x3_1080p an 8 MB copy per call).
fn kernel_input<'a>(plan: &Plan, input: &'a Tensor) -> Result<std::borrow::Cow<'a, Tensor>> {
    if plan.pre_padded() {
        Ok(std::borrow::Cow::Owned(pad2d(input, plan.pads, plan.mode)?))
    } else {
        Ok(std::borrow::Cow::Borrowed(input))
    }
}

/// 2-D convolution (cross-correlation, as in deep learning), PyTorch's `F.conv2d`.
///
/// # Errors
/// A wrong rank, channels that do not match the weight and groups, a bias of
/// the wrong size, a zero stride or dilation, or a kernel larger than the
/// padded input.
///
/// ```
/// use convlab::{ops::{conv2d, Conv2dParams}, Tensor};
/// let x = Tensor::ones(&[1, 1, 8, 8])?;
/// let w = Tensor::ones(&[1, 1, 3, 3])?;
/// let y = conv2d(&x, &w, None, &Conv2dParams::new().padding(1).stride(2))?;
/// assert_eq!(y.shape(), &[1, 1, 4, 4]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv2dParams,
) -> Result<Tensor> {
    let plan = plan(input.shape(), weight.shape(), bias.map(|b| b.shape()), p)?;
    let g = plan.geom;
    let x = kernel_input(&plan, input)?;
    let numel = numel_or_err("conv2d", &[g.n, g.c_out, g.oh, g.ow])?;
    let mut buf = memory::uninit_f32("conv2d", numel)?;
    if numel > 0
        && conv_algo(&g, Pass::Forward) == ConvAlgo::ImplicitGemm
        && flat_path::applies(&g)
        && winograd_split(&g, Pass::Forward).is_none()
        && separable_path::factors(&g, weight.data(), Pass::Forward).is_none()
    {
        // Bias fused into the kernel's first pass.
        flat_path::forward(
            &g,
            x.data(),
            weight.data(),
            bias.map(|b| b.data()),
            &mut buf,
        )?;
        // SAFETY: flat_path::forward writes every element of `buf`.
        let out = unsafe { memory::assume_written(buf) };
        return Tensor::from_vec(out, &plan.output_shape());
    }
    forward_geom(&g, x.data(), weight.data(), &mut buf)?;
    // SAFETY: forward_geom writes every element of `buf`.
    let mut out = unsafe { memory::assume_written(buf) };
    if let Some(b) = bias {
        add_bias(&g, b.data(), &mut out);
    }
    Tensor::from_vec(out, &plan.output_shape())
}

/// All three gradients of [`conv2d`] (`grad_bias` when `with_bias`).
///
/// Layers large enough to split over threads compute the input and the
/// weight gradient side by side, each split further: neither alone scales
/// to two threads on the deep layers (`convlab bench` medians over 4
/// interleaved rounds: resnet_3x3_256's backward 7.96 -> 5.26 ms, _512
/// 8.59 -> 7.50, bottleneck_1x1 6.59 -> 5.68; no case slower beyond
/// noise).
pub fn conv2d_backward(
    input: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    grad_output: &Tensor,
    p: &Conv2dParams,
) -> Result<Conv2dGrads> {
    let input_grad = || conv2d_backward_input(input.shape(), weight, grad_output, p);
    let weight_grad = || conv2d_backward_weight(input, weight.shape(), grad_output, p);
    // The forward's multiply-adds, from the shapes alone (a plan costs as
    // much as d2l_edge's whole backward); bad shapes fail in either pass.
    let macs =
        grad_output.numel() as u128 * weight.shape().iter().skip(1).product::<usize>() as u128;
    let (grad_input, grad_weight) = if splits(macs) {
        super::join_forced(input_grad, weight_grad)
    } else {
        (input_grad(), weight_grad())
    };
    Ok(Conv2dGrads {
        grad_input: grad_input?,
        grad_weight: grad_weight?,
        grad_bias: if with_bias {
            Some(conv2d_backward_bias(grad_output)?)
        } else {
            None
        },
    })
}

fn check_grad_output(plan: &Plan, grad_output: &Tensor, op: &'static str) -> Result<()> {
    let want = plan.output_shape();
    if grad_output.shape() != want.as_slice() {
        return Err(Error::shape(
            op,
            format!(
                "grad_output has shape {} but the output has shape {}",
                Dims(grad_output.shape()),
                Dims(&want)
            ),
        ));
    }
    Ok(())
}

/// The gradient of [`conv2d`] with respect to its input.
pub fn conv2d_backward_input(
    input_shape: &[usize],
    weight: &Tensor,
    grad_output: &Tensor,
    p: &Conv2dParams,
) -> Result<Tensor> {
    let plan = plan(input_shape, weight.shape(), None, p)?;
    check_grad_output(&plan, grad_output, "conv2d_backward")?;
    let g = plan.geom;
    let mut buf = memory::uninit_f32(
        "conv2d_backward",
        numel_or_err("conv2d_backward", &[g.n, g.c_in, g.h, g.w])?,
    )?;
    backward_input_geom(&g, weight.data(), grad_output.data(), &mut buf)?;
    // SAFETY: backward_input_geom writes every element of `buf`.
    let gin = unsafe { memory::assume_written(buf) };
    if plan.pre_padded() {
        let padded_shape: Vec<usize> = if plan.unbatched {
            vec![g.c_in, g.h, g.w]
        } else {
            vec![g.n, g.c_in, g.h, g.w]
        };
        let gp = Tensor::from_vec(gin, &padded_shape)?;
        return pad2d_backward(&gp, input_shape, plan.pads, plan.mode);
    }
    Tensor::from_vec(gin, input_shape)
}

/// The gradient of [`conv2d`] with respect to its weight.
pub fn conv2d_backward_weight(
    input: &Tensor,
    weight_shape: &[usize],
    grad_output: &Tensor,
    p: &Conv2dParams,
) -> Result<Tensor> {
    let plan = plan(input.shape(), weight_shape, None, p)?;
    check_grad_output(&plan, grad_output, "conv2d_backward")?;
    let g = plan.geom;
    let x = kernel_input(&plan, input)?;
    let mut buf = memory::uninit_f32(
        "conv2d_backward",
        numel_or_err("conv2d_backward", weight_shape)?,
    )?;
    backward_weight_geom(&g, x.data(), grad_output.data(), &mut buf)?;
    // SAFETY: backward_weight_geom writes every element of `buf`.
    let gw = unsafe { memory::assume_written(buf) };
    Tensor::from_vec(gw, weight_shape)
}

/// The gradient of a convolution's bias: `grad_output` summed over all but
/// the channel dimension.
pub fn conv2d_backward_bias(grad_output: &Tensor) -> Result<Tensor> {
    let ([n, c, h, w], _) = batched_dims("conv2d_backward", grad_output.shape())?;
    let go = grad_output.data();
    let plane = h * w;
    let mut gb = vec![0.0f64; c];
    for b in 0..n {
        for (ch, acc) in gb.iter_mut().enumerate() {
            *acc += sum_f64(&go[(b * c + ch) * plane..(b * c + ch + 1) * plane]);
        }
    }
    Tensor::from_vec(gb.into_iter().map(|v| v as f32).collect(), &[c])
}

/// The sum of `x` in f64, over eight independent lanes: one f64 chain was
/// latency-bound (3 % of a digits training run in the bias gradient).
fn sum_f64(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

pub(crate) fn add_bias(g: &ConvGeometry, bias: &[f32], out: &mut [f32]) {
    let plane = g.oh * g.ow;
    for (i, chunk) in out.chunks_mut(plane).enumerate() {
        let b = bias[i % g.c_out];
        chunk.iter_mut().for_each(|v| *v += b);
    }
}

// ---------------------------------------------------------------------------
// Dispatch on a validated geometry (shared with conv_transpose2d, whose
// forward is this convolution's input gradient and vice versa). A forced
// algorithm that does not apply to `g` falls back to im2col.

/// `out` = conv(input, weight) on a validated geometry.
pub(crate) fn forward_geom(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    // An empty batch or channel dimension: nothing to write, and no
    // algorithm's scratch sized by the (possibly huge) planes.
    if out.is_empty() {
        return Ok(());
    }
    if let Some(f) = separable_path::factors(g, weight, Pass::Forward) {
        return separable_path::forward(g, input, &f, out);
    }
    if let Some(s) = winograd_split(g, Pass::Forward) {
        let view = crate::kernels::winograd::WeightView::forward(g.c_in);
        return winograd_path::forward(&s, phases_of(g), input, weight, view, out);
    }
    match conv_algo(g, Pass::Forward) {
        ConvAlgo::Direct if direct_applies(g) => direct_path::forward(g, input, weight, out)?,
        ConvAlgo::Winograd if winograd_applies(g) => {
            let view = crate::kernels::winograd::WeightView::forward(g.c_in);
            winograd_path::forward(g, Phases::NONE, input, weight, view, out)?
        }
        ConvAlgo::Winograd if crate::kernels::winograd_s2::applies(g) => {
            winograd_s2_path::forward(g, input, weight, out)?
        }
        ConvAlgo::ImplicitGemm if flat_path::applies(g) => {
            flat_path::forward(g, input, weight, None, out)?
        }
        // The rest accumulate into a zeroed output.
        ConvAlgo::Reference => reference::forward(g, input, weight, memory::zero_fill(out)),
        ConvAlgo::Fft if fft_path::applies(g) => {
            fft_path::forward(g, input, weight, memory::zero_fill(out))?
        }
        _ => im2col_path::forward(g, input, weight, memory::zero_fill(out))?,
    }
    Ok(())
}

/// `grad_input` (`[n, c_in, h, w]`, every element written) = conv's input
/// gradient.
pub(crate) fn backward_input_geom(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [MaybeUninit<f32>],
) -> Result<()> {
    if grad_input.is_empty() || grad_output.is_empty() {
        memory::zero_fill(grad_input);
        return Ok(());
    }
    // Separable filters: the forward of the flipped factors.
    if let (Some(f), Some(t)) = (
        separable_path::factors(g, weight, Pass::InputGrad),
        transposed(g),
    ) {
        return separable_path::forward(&t, grad_output, &f.flipped(g.kh, g.kw), grad_input);
    }
    if let Some(t) = winograd_split(g, Pass::InputGrad)
        .and_then(|s| transposed(&s))
        .filter(winograd_applies)
    {
        let view = crate::kernels::winograd::WeightView::input_grad(g.c_in);
        return winograd_path::forward(&t, phases_of(g), grad_output, weight, view, grad_input);
    }
    // Stride-1 input gradients are forward convolutions of grad_output.
    let t = transposed(g);
    match (conv_algo(g, Pass::InputGrad), t) {
        (ConvAlgo::Direct, Some(t)) if direct_applies(&t) => {
            let wt = flip_weight(g, weight)?;
            direct_path::forward(&t, grad_output, &wt, grad_input)?;
        }
        (ConvAlgo::Winograd, Some(t)) if winograd_applies(&t) => {
            let view = crate::kernels::winograd::WeightView::input_grad(g.c_in);
            winograd_path::forward(&t, Phases::NONE, grad_output, weight, view, grad_input)?;
        }
        // The rest accumulate into a zeroed gradient.
        (ConvAlgo::Reference, _) => {
            reference::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))
        }
        (ConvAlgo::Fft, _) if fft_path::applies(g) => {
            fft_path::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))?
        }
        (ConvAlgo::ImplicitGemm, _) if flat_path::applies(g) => {
            flat_path::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))?
        }
        _ => im2col_path::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))?,
    }
    Ok(())
}

/// `grad_weight` (every element written) = conv's weight gradient.
pub(crate) fn backward_weight_geom(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [MaybeUninit<f32>],
) -> Result<()> {
    if grad_weight.is_empty() || input.is_empty() || grad_output.is_empty() {
        memory::zero_fill(grad_weight);
        return Ok(());
    }
    if let Some(s) = winograd_split(g, Pass::WeightGrad)
        .filter(|s| winograd_path::weight_grad_applies(s, phases_of(g)))
    {
        return winograd_path::backward_weight(&s, phases_of(g), input, grad_output, grad_weight);
    }
    // Every path but Winograd's (which writes each filter once) adds into
    // a zeroed gradient.
    match conv_algo(g, Pass::WeightGrad) {
        ConvAlgo::Winograd
            if winograd_applies(g) && winograd_path::weight_grad_applies(g, Phases::NONE) =>
        {
            winograd_path::backward_weight(g, Phases::NONE, input, grad_output, grad_weight)?
        }
        algo => {
            let gw = memory::zero_fill(grad_weight);
            match algo {
                ConvAlgo::Reference => reference::backward_weight(g, input, grad_output, gw),
                ConvAlgo::Direct if direct_applies(g) => {
                    direct_path::backward_weight(g, input, grad_output, gw)?
                }
                ConvAlgo::Fft if fft_path::applies(g) => {
                    fft_path::backward_weight(g, input, grad_output, gw)?
                }
                ConvAlgo::ImplicitGemm if flat_path::applies(g) => {
                    flat_path::backward_weight(g, input, grad_output, gw)?
                }
                _ => im2col_path::backward_weight(g, input, grad_output, gw)?,
            }
        }
    }
    Ok(())
}

/// The undilated phase-image geometry of a dilated `g` when its pass
/// would run on Winograd there (dilated_3x3_d2: four 28x28 phases of each
/// 56x56 image, a resnet_3x3_64-like layer).
fn winograd_split(g: &ConvGeometry, pass: Pass) -> Option<ConvGeometry> {
    let s = dilation_split::split(g)?;
    (conv_algo(&s, pass) == ConvAlgo::Winograd && winograd_applies(&s)).then_some(s)
}

/// The dilation of `g` as the phase layout its undilated phase layer
/// reads and writes in place.
fn phases_of(g: &ConvGeometry) -> Phases {
    Phases { dh: g.dh, dw: g.dw }
}

/// The stride-1 convolution whose forward is `g`'s input gradient:
/// `grad_input = conv(grad_output, flipped and transposed weight)` with
/// padding `d*(k-1) - p` on each side, or `None` when `g` is strided or
/// padded beyond its dilated kernel.
pub(crate) fn transposed(g: &ConvGeometry) -> Option<ConvGeometry> {
    if g.sh != 1 || g.sw != 1 {
        return None;
    }
    Some(ConvGeometry {
        n: g.n,
        c_in: g.c_out,
        h: g.oh,
        w: g.ow,
        c_out: g.c_in,
        kh: g.kh,
        kw: g.kw,
        groups: g.groups,
        sh: 1,
        sw: 1,
        dh: g.dh,
        dw: g.dw,
        pt: (g.dh * (g.kh - 1)).checked_sub(g.pt)?,
        pl: (g.dw * (g.kw - 1)).checked_sub(g.pl)?,
        oh: g.h,
        ow: g.w,
    })
}

/// The weight of [`transposed`]: `[c_in, c_out/groups, kh, kw]` with
/// `w'[grp*cin_g + ci, co, ki, kj] = w[grp*cout_g + co, ci, kh-1-ki, kw-1-kj]`.
pub(crate) fn flip_weight(g: &ConvGeometry, weight: &[f32]) -> Result<Vec<f32>> {
    let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.kh * g.kw);
    let mut out = memory::zeros_f32("conv2d_backward", weight.len())?;
    for grp in 0..g.groups {
        for co in 0..cout_g {
            for ci in 0..cin_g {
                let src = &weight[((grp * cout_g + co) * cin_g + ci) * kk..][..kk];
                let dst = &mut out[((grp * cin_g + ci) * cout_g + co) * kk..][..kk];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
    Ok(out)
}

/// A pointer handed to rayon tasks that write disjoint parts of one buffer
/// (implicit GEMM, Winograd, the dilation split). `get` rather than the
/// field, so closures capture the whole (Send + Sync) value.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: only used to give tasks disjoint parts of one buffer (see the
// SAFETY notes where it is dereferenced).
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

mod batched_path;
mod dilation_split;
mod flat_path;
mod lanes_path;
mod separable_path;

/// Below this many multiply-adds an op runs on the calling thread: waking
/// rayon costs a few microseconds per region, and a training step of the
/// digits net (layers of 0.3 M and 2.4 M) has dozens of them. At 2^21 its
/// 20 epochs took 0.59-0.80 s on two threads, at 2^22 0.47-0.53 s (with
/// the GEMM wrapper's threshold raised alike).
const PARALLEL_MIN_MACS: u128 = 1 << 22;

/// Whether `g` is large enough to split over the pool's threads.
pub(crate) fn parallel(g: &ConvGeometry) -> bool {
    splits(g.macs())
}

/// Whether a convolution of `macs` multiply-adds splits over threads.
fn splits(macs: u128) -> bool {
    rayon::current_num_threads() > 1 && macs >= PARALLEL_MIN_MACS
}

/// The direct kernels of [`crate::kernels::direct`], split over rayon by
/// output rows (forward) or weight rows (weight gradient).
pub(crate) mod direct_path {
    use super::*;
    use crate::kernels::direct::{
        conv2d_direct_rows, conv2d_direct_weight_rows, direct_workspace_len,
    };
    use rayon::prelude::*;

    /// Writes every element of `out` (`n * c_out * oh * ow` floats).
    pub fn forward(
        g: &ConvGeometry,
        input: &[f32],
        weight: &[f32],
        out: &mut [std::mem::MaybeUninit<f32>],
    ) -> Result<()> {
        let len = direct_workspace_len(g);
        if !parallel(g) {
            let mut scratch = memory::zeros_f32("conv2d", len)?;
            conv2d_direct_rows(g, input, weight, 0, out, &mut scratch);
            return Ok(());
        }
        let threads = rayon::current_num_threads();
        memory::check_f32("conv2d", len.saturating_mul(threads))?;
        let rows = g.n * g.c_out * g.oh;
        let per_task = rows.div_ceil(threads * 8).max(1);
        out.par_chunks_mut(per_task * g.ow)
            .enumerate()
            .for_each_init(
                || vec![0.0; len],
                |scratch, (i, o)| conv2d_direct_rows(g, input, weight, i * per_task, o, scratch),
            );
        Ok(())
    }

    pub fn backward_weight(
        g: &ConvGeometry,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
    ) -> Result<()> {
        let rows = g.n * g.c_out * g.oh;
        let wl = grad_weight.len();
        let total = if !parallel(g) {
            let mut acc = vec![0.0f64; wl];
            conv2d_direct_weight_rows(g, input, grad_output, 0, rows, &mut acc);
            acc
        } else {
            // One f64 accumulator per task (a few per thread for balance),
            // fewer tasks when the weight is large (forced on wide layers).
            let threads = rayon::current_num_threads();
            let tasks = (threads * 4)
                .min((1 << 22) / wl.max(1))
                .clamp(1, rows.max(1));
            memory::check_f32("conv2d_backward", wl.saturating_mul(2 * (tasks + 1)))?;
            let chunk = rows.div_ceil(tasks).max(1);
            (0..rows.div_ceil(chunk))
                .into_par_iter()
                .map(|i| {
                    let mut acc = vec![0.0f64; wl];
                    let (r0, r1) = (i * chunk, ((i + 1) * chunk).min(rows));
                    conv2d_direct_weight_rows(g, input, grad_output, r0, r1, &mut acc);
                    acc
                })
                .reduce(
                    || vec![0.0f64; wl],
                    |mut a, b| {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                        a
                    },
                )
        };
        for (gw, t) in grad_weight.iter_mut().zip(total) {
            *gw += t as f32;
        }
        Ok(())
    }
}

/// FFT convolution ([`crate::kernels::fft`]) of all three passes: spectra
/// of every input, weight and grad_output plane involved, products summed
/// in the frequency domain, one inverse transform per result plane.
pub(crate) mod fft_path {
    use super::*;
    use crate::kernels::fft::{fft_len, mul_acc, Fft2};
    use rayon::prelude::*;
    use realfft::num_complex::Complex;

    /// Spectra (complex values) allowed in all: 8 Mi = the 64 MiB scratch cap.
    const MAX_COMPLEX: usize = 8 << 20;

    /// The FFT buffer: large enough that no kept output wraps around.
    fn size(g: &ConvGeometry) -> (usize, usize) {
        (
            fft_len((g.oh + g.kh - 1).max(g.h + g.pt)),
            fft_len((g.ow + g.kw - 1).max(g.w + g.pl)),
        )
    }

    /// Spectra one pass holds at once for `g` (the largest of the three).
    fn spectra(g: &ConvGeometry) -> Option<usize> {
        let (p, q) = size(g);
        let per = (q / 2 + 1).checked_mul(p)?;
        let planes = g.n * g.c_in + g.n * g.c_out + g.c_out * g.c_in + rayon::current_num_threads();
        per.checked_mul(planes)
    }

    /// Whether FFTs should beat direct multiply-adds on `g`: a rough count
    /// of FFT flops (`P Q log2(P Q)` per plane transformed, a complex
    /// multiply-add per product element) times 4 against `g.macs()`. The
    /// factor is calibrated on image_31x31 only (loaded box, 2 threads:
    /// direct fwd 27.6 / bwd 52.1 ms -> FFT 2.95 / 3.87 ms, model ratio 3.3);
    /// resnet, lenet and 3x3 image layers come out far on the direct side.
    pub fn pays(g: &ConvGeometry) -> bool {
        let (p, q) = size(g);
        let pq = (p * q) as f64;
        let planes = (g.n * g.c_in + g.c_in * g.c_out + g.n * g.c_out) as f64;
        let products = (g.n * g.c_in * g.c_out) as f64 * pq * 2.0;
        let cost = planes * pq * pq.log2() + products;
        cost * 4.0 < g.macs() as f64
    }

    /// Stride 1, dilation 1, one group, spectra under the cap.
    pub fn applies(g: &ConvGeometry) -> bool {
        g.sh == 1
            && g.sw == 1
            && g.dh == 1
            && g.dw == 1
            && g.groups == 1
            && g.oh > 0
            && g.ow > 0
            && spectra(g).is_some_and(|s| s <= MAX_COMPLEX)
    }

    /// Spectra of `planes` consecutive `[sh, sw]` planes of `src`, placed at `at`.
    fn transform(
        f: &Fft2,
        src: &[f32],
        planes: usize,
        shape: (usize, usize),
        at: (usize, usize),
    ) -> Result<Vec<Complex<f32>>> {
        let len = f.spectrum_len();
        memory::check_f32("conv2d", planes.saturating_mul(len).saturating_mul(2))?;
        let mut out = vec![Complex::new(0.0, 0.0); planes * len];
        let plane = shape.0 * shape.1;
        for (i, spec) in out.chunks_exact_mut(len).enumerate() {
            f.forward(&src[i * plane..][..plane], shape, at, spec);
        }
        Ok(out)
    }

    /// For each result plane `i` of `dst` (`[dh, dw]` each): the inverse of
    /// `sum_j a[ai(i, j)] * b[bi(i, j)]` (conjugating `b` when `conj`),
    /// cropped at `at`, added to the plane.
    fn products(
        f: &Fft2,
        dst: &mut [f32],
        (dh, dw): (usize, usize),
        at: (usize, usize),
        terms: usize,
        a: &[Complex<f32>],
        b: &[Complex<f32>],
        idx: impl Fn(usize, usize) -> (usize, usize) + Sync,
        conj: bool,
    ) {
        let len = f.spectrum_len();
        dst.par_chunks_mut(dh * dw).enumerate().for_each_init(
            || vec![Complex::new(0.0, 0.0); len],
            |acc, (i, plane)| {
                acc.fill(Complex::new(0.0, 0.0));
                for j in 0..terms {
                    let (ia, ib) = idx(i, j);
                    mul_acc(acc, &a[ia * len..][..len], &b[ib * len..][..len], conj);
                }
                f.inverse_add(acc, at, (dh, dw), plane);
            },
        );
    }

    pub fn forward(g: &ConvGeometry, input: &[f32], weight: &[f32], out: &mut [f32]) -> Result<()> {
        let (p, q) = size(g);
        let f = Fft2::new(p, q);
        let x = transform(&f, input, g.n * g.c_in, (g.h, g.w), (g.pt, g.pl))?;
        let w = transform(&f, weight, g.c_out * g.c_in, (g.kh, g.kw), (0, 0))?;
        let (cin, cout) = (g.c_in, g.c_out);
        // out[n, co] = sum_ci corr(x[n, ci], w[co, ci]).
        products(
            &f,
            out,
            (g.oh, g.ow),
            (0, 0),
            cin,
            &x,
            &w,
            |i, ci| ((i / cout) * cin + ci, (i % cout) * cin + ci),
            true,
        );
        Ok(())
    }

    pub fn backward_input(
        g: &ConvGeometry,
        weight: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) -> Result<()> {
        let (p, q) = size(g);
        let f = Fft2::new(p, q);
        let gy = transform(&f, grad_output, g.n * g.c_out, (g.oh, g.ow), (0, 0))?;
        let w = transform(&f, weight, g.c_out * g.c_in, (g.kh, g.kw), (0, 0))?;
        let (cin, cout) = (g.c_in, g.c_out);
        // grad_input[n, ci] = sum_co gy[n, co] (full convolution) w[co, ci].
        products(
            &f,
            grad_input,
            (g.h, g.w),
            (g.pt, g.pl),
            cout,
            &gy,
            &w,
            |i, co| ((i / cin) * cout + co, co * cin + i % cin),
            false,
        );
        Ok(())
    }

    pub fn backward_weight(
        g: &ConvGeometry,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
    ) -> Result<()> {
        let (p, q) = size(g);
        let f = Fft2::new(p, q);
        let x = transform(&f, input, g.n * g.c_in, (g.h, g.w), (g.pt, g.pl))?;
        let gy = transform(&f, grad_output, g.n * g.c_out, (g.oh, g.ow), (0, 0))?;
        let (cin, cout) = (g.c_in, g.c_out);
        // grad_weight[co, ci] = sum_n corr(x[n, ci], gy[n, co]).
        products(
            &f,
            grad_weight,
            (g.kh, g.kw),
            (0, 0),
            g.n,
            &x,
            &gy,
            |i, n| (n * cin + i % cin, n * cout + i / cin),
            true,
        );
        Ok(())
    }
}

mod winograd_path;
mod winograd_s2_path;

/// im2col + GEMM over bands of output rows sized so the column buffers stay
/// under [`im2col_path::SCRATCH_FLOATS`] in all. Images x groups are split
/// over rayon threads, each with its own column buffer and a one-thread
/// GEMM; a single image and group uses the GEMM's own threads instead.
pub(crate) mod im2col_path {
    use super::*;
    use crate::kernels::gemm::sgemm_strided_par;
    use rayon::prelude::*;

    /// 16 Mi floats = 64 MiB, the scratch cap (shared by all threads).
    pub const SCRATCH_FLOATS: usize = 16 << 20;

    /// Output rows per band and the column buffer length for them, for one
    /// of `threads` concurrent buffers.
    fn band(g: &ConvGeometry, threads: usize) -> Result<(usize, usize)> {
        let k = g.cin_g() * g.kh * g.kw;
        let per_row = k.saturating_mul(g.ow).max(1);
        let rows = (SCRATCH_FLOATS / threads.max(1) / per_row).clamp(1, g.oh.max(1));
        let len = per_row
            .checked_mul(rows)
            .ok_or_else(|| Error::too_large("conv2d", "column buffer overflows"))?;
        memory::check_f32("conv2d", len.saturating_mul(threads))?;
        Ok((rows, len))
    }

    /// Column floats per forward band (512 KiB): half of a Zen 4 core's L2,
    /// a quarter of the Xeon's this was first measured on, so the GEMM
    /// reads each band from L2 right after im2col wrote it instead of from
    /// L3 when the whole image is one band.
    const FORWARD_BAND_FLOATS: usize = 128 << 10;

    /// The forward's band (rows, buffer length) for units that each run on
    /// their own thread, cut from `band`'s scratch-cap size to
    /// [`FORWARD_BAND_FLOATS`], preferring a band width that is a multiple
    /// of 16 floats so that the GEMM's column panels end on cache lines.
    /// Of the suite's layers only stride-2 ones on im2col had more. In-process
    /// interleaved A/Bs, best of 50-60 reps, on Zen 4: resnet_3x3_s2_128
    /// (ow 28, 8-row bands) 5.23 -> 5.13 ms on one thread, 2.70 -> 2.67 on
    /// two, medians 5.82 -> 5.58 and 3.04 -> 2.91 (on the Xeon: 3.92-4.10
    /// -> 3.62 on one); 4 x 64 x 112 x 112 -> 64 stride 2 (ow 56, 4 rows)
    /// 13.2 -> 11.7 and 7.25 -> 5.93 (Xeon, one thread: 11.0 -> 9.0). A
    /// unit alone with a threaded GEMM keeps its wide band.
    fn forward_band(g: &ConvGeometry, par_units: bool, rows: usize, len: usize) -> (usize, usize) {
        let per_row = (g.cin_g() * g.kh * g.kw).saturating_mul(g.ow);
        if !par_units || per_row == 0 || len == 0 {
            return (rows, len);
        }
        let budget = (FORWARD_BAND_FLOATS / per_row).max(1);
        let aligned = (1..=budget).rev().find(|r| (r * g.ow) % 16 == 0);
        let r = aligned.unwrap_or(budget).min(rows);
        (r, per_row * r)
    }

    /// Weights up to this many floats get per-thread weight-gradient
    /// accumulators (see `backward_weight`); larger ones thread their GEMMs.
    const SMALL_WEIGHT: usize = 1 << 16;

    /// Threads to split `n` images over: rayon's, at most one per image.
    fn threads_for(n: usize) -> usize {
        rayon::current_num_threads().clamp(1, n.max(1))
    }

    /// A 1x1, stride-1, unpadded convolution needs no columns: the input is already
    /// the `[C_in/groups, H*W]` matrix.
    fn is_pointwise(g: &ConvGeometry) -> bool {
        g.kh == 1
            && g.kw == 1
            && g.sh == 1
            && g.sw == 1
            && g.pt == 0
            && g.pl == 0
            && g.oh == g.h
            && g.ow == g.w
    }

    /// How to split: over `n * groups` units on rayon (`true`), or one unit
    /// at a time with a parallel GEMM.
    fn split(g: &ConvGeometry) -> (bool, usize) {
        let threads = rayon::current_num_threads();
        let units = g.n * g.groups;
        if units >= 2 && parallel(g) {
            (true, threads)
        } else {
            (false, 1)
        }
    }

    /// The split (see [`split`]) with the output rows per band and the column
    /// buffer length of each concurrent unit (none for pointwise layers).
    fn plan_units(g: &ConvGeometry) -> Result<(bool, usize, usize)> {
        let (par_units, threads) = split(g);
        let (rows, len) = if is_pointwise(g) {
            (g.oh, 0)
        } else {
            band(g, threads)?
        };
        Ok((par_units, rows, len))
    }

    /// Run `unit(index, chunk, cols, gemm_parallel)` over the `chunk`-sized
    /// pieces of `dst`: on rayon with a column buffer per thread and
    /// single-threaded GEMMs, or in turn with one buffer and parallel GEMMs.
    fn for_each_unit(
        dst: &mut [f32],
        chunk: usize,
        par_units: bool,
        len: usize,
        unit: impl Fn(usize, &mut [f32], &mut [f32], bool) + Sync,
    ) {
        if par_units {
            dst.par_chunks_mut(chunk).enumerate().for_each_init(
                || memory::Scratch::prechecked(len),
                |cols, (u, d)| unit(u, d, cols, false),
            );
        } else {
            let mut cols = memory::Scratch::prechecked(len);
            for (u, d) in dst.chunks_mut(chunk).enumerate() {
                unit(u, d, &mut cols, true);
            }
        }
    }

    /// Forward of image-group unit: `y [cout_g, ohw] = W_g [cout_g, k] @ cols [k, ohw]`.
    fn forward_unit(
        g: &ConvGeometry,
        x: &[f32],
        wt: &[f32],
        y: &mut [f32],
        rows: usize,
        cols: &mut [f32],
        par: bool,
    ) {
        let k = g.cin_g() * g.kh * g.kw;
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        let cout_g = g.cout_g();
        let wt = MatRef {
            data: wt,
            rs: k,
            cs: 1,
        };
        if is_pointwise(g) {
            let b = MatRef {
                data: x,
                rs: hw,
                cs: 1,
            };
            sgemm_strided_par(cout_g, k, ohw, wt, b, y, ohw, false, par);
            return;
        }
        let mut r0 = 0;
        while r0 < g.oh {
            let rr = rows.min(g.oh - r0);
            let width = rr * g.ow;
            im2col(g, g.cin_g(), x, r0, rr, cols);
            let b = MatRef {
                data: &cols[..k * width],
                rs: width,
                cs: 1,
            };
            sgemm_strided_par(
                cout_g,
                k,
                width,
                wt,
                b,
                &mut y[r0 * g.ow..],
                ohw,
                false,
                par,
            );
            r0 += rr;
        }
    }

    pub fn forward(g: &ConvGeometry, input: &[f32], weight: &[f32], out: &mut [f32]) -> Result<()> {
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        let k = cin_g * g.kh * g.kw;
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        if cout_g * ohw == 0 {
            return Ok(()); // no output channels (or no input ones: zeros)
        }
        if super::batched_path::applies(g) && super::batched_path::forward(g, input, weight, out)? {
            return Ok(());
        }
        let (par_units, rows, len) = plan_units(g)?;
        let (rows, len) = forward_band(g, par_units, rows, len);
        let unit = |u: usize, y: &mut [f32], cols: &mut [f32], par: bool| {
            let (n, grp) = (u / g.groups, u % g.groups);
            let x = &input[(n * g.c_in + grp * cin_g) * hw..][..cin_g * hw];
            let wt = &weight[grp * cout_g * k..][..cout_g * k];
            forward_unit(g, x, wt, y, rows, cols, par);
        };
        for_each_unit(out, cout_g * ohw, par_units, len, unit);
        Ok(())
    }

    pub fn backward_input(
        g: &ConvGeometry,
        weight: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) -> Result<()> {
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        let k = cin_g * g.kh * g.kw;
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        if cin_g * hw == 0 {
            return Ok(());
        }
        if super::batched_path::applies(g)
            && super::batched_path::backward_input(g, weight, grad_output, grad_input)?
        {
            return Ok(());
        }
        let pointwise = is_pointwise(g);
        let (par_units, rows, len) = plan_units(g)?;
        let unit = |u: usize, gx: &mut [f32], cols: &mut [f32], par: bool| {
            let (n, grp) = (u / g.groups, u % g.groups);
            // W^T: [k, cout_g] view of the [cout_g, k] weight.
            let wt = MatRef {
                data: &weight[grp * cout_g * k..][..cout_g * k],
                rs: 1,
                cs: k,
            };
            let gy = &grad_output[(n * g.c_out + grp * cout_g) * ohw..][..cout_g * ohw];
            if pointwise {
                let b = MatRef {
                    data: gy,
                    rs: ohw,
                    cs: 1,
                };
                sgemm_strided_par(k, cout_g, ohw, wt, b, gx, hw, true, par);
                return;
            }
            let mut r0 = 0;
            while r0 < g.oh {
                let rr = rows.min(g.oh - r0);
                let width = rr * g.ow;
                let b = MatRef {
                    data: &gy[r0 * g.ow..],
                    rs: ohw,
                    cs: 1,
                };
                sgemm_strided_par(k, cout_g, width, wt, b, cols, width, false, par);
                col2im(g, cin_g, cols, r0, rr, gx);
                r0 += rr;
            }
        };
        for_each_unit(grad_input, cin_g * hw, par_units, len, unit);
        Ok(())
    }

    pub fn backward_weight(
        g: &ConvGeometry,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
    ) -> Result<()> {
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        let k = cin_g * g.kh * g.kw;
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        if cout_g * k == 0 {
            return Ok(());
        }
        let pointwise = is_pointwise(g);
        let (par_units, rows, len) = plan_units(g)?;
        // grad_weight[grp] += gy [cout_g, ohw] @ cols^T [ohw, k] for image n.
        let unit = |n: usize, grp: usize, gw: &mut [f32], cols: &mut [f32], par: bool| {
            let x = &input[(n * g.c_in + grp * cin_g) * hw..][..cin_g * hw];
            let gy = &grad_output[(n * g.c_out + grp * cout_g) * ohw..][..cout_g * ohw];
            if pointwise {
                let a = MatRef {
                    data: gy,
                    rs: ohw,
                    cs: 1,
                };
                let b = MatRef {
                    data: x,
                    rs: 1,
                    cs: hw,
                };
                sgemm_strided_par(cout_g, ohw, k, a, b, gw, k, true, par);
                return;
            }
            let mut r0 = 0;
            while r0 < g.oh {
                let rr = rows.min(g.oh - r0);
                let width = rr * g.ow;
                im2col(g, cin_g, x, r0, rr, cols);
                let a = MatRef {
                    data: &gy[r0 * g.ow..],
                    rs: ohw,
                    cs: 1,
                };
                let b = MatRef {
                    data: &cols[..k * width],
                    rs: 1,
                    cs: width,
                };
                sgemm_strided_par(cout_g, width, k, a, b, gw, k, true, par);
                r0 += rr;
            }
        };
        let wlen = cout_g * k;
        if par_units && g.groups >= 2 {
            // Disjoint weight slices per group; images summed inside.
            // Per-thread accumulators over images measured slower than the
            // GEMM's own threads (resnet_3x3_512 bwd 41 vs 32 ms, loaded box).
            grad_weight.par_chunks_mut(wlen).enumerate().for_each_init(
                || memory::Scratch::prechecked(len),
                |cols, (grp, gw)| {
                    for n in 0..g.n {
                        unit(n, grp, gw, cols, false);
                    }
                },
            );
        } else if par_units && g.groups == 1 && wlen <= SMALL_WEIGHT {
            // Small weights (the digits net's 16->32 layer: 4608 floats)
            // make GEMMs too small to thread: one fixed range of images per
            // thread, each into its own accumulator, added in order so the
            // sum does not depend on scheduling (resumed training runs must
            // end bit for bit where uninterrupted ones do).
            let parts = threads_for(g.n);
            memory::check_f32("conv2d", wlen.saturating_mul(parts))?;
            let mut partial = vec![0.0; parts * wlen];
            partial
                .par_chunks_mut(wlen)
                .enumerate()
                .for_each(|(t, gw)| {
                    let mut cols = memory::Scratch::prechecked(len);
                    for n in t * g.n / parts..(t + 1) * g.n / parts {
                        unit(n, 0, gw, &mut cols, false);
                    }
                });
            for part in partial.chunks_exact(wlen) {
                for (d, s) in grad_weight.iter_mut().zip(part) {
                    *d += s;
                }
            }
        } else {
            let mut cols = memory::Scratch::prechecked(len);
            for n in 0..g.n {
                for (grp, gw) in grad_weight.chunks_mut(wlen).enumerate() {
                    unit(n, grp, gw, &mut cols, true);
                }
            }
        }
        Ok(())
    }
}

/// The plain loops: the definition of the convolution, and the oracle every
/// fast path is tested against. Slow on purpose; do not optimise.
pub mod reference {
    use crate::shape::ConvGeometry;

    /// Input index along one axis for output `o`, tap `k`, or `None` in the padding.
    #[inline]
    fn at(o: usize, k: usize, s: usize, d: usize, pad: usize, len: usize) -> Option<usize> {
        let i = (o * s + k * d) as isize - pad as isize;
        (i >= 0 && (i as usize) < len).then_some(i as usize)
    }

    /// `out[n, co, oy, ox] = sum_{ci, ki, kj} input[n, grp*cin_g + ci, iy, ix] * weight[co, ci, ki, kj]`.
    pub fn forward(g: &ConvGeometry, input: &[f32], weight: &[f32], out: &mut [f32]) {
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        for n in 0..g.n {
            for co in 0..g.c_out {
                let grp = co / cout_g;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut acc = 0.0f64;
                        for ci in 0..cin_g {
                            let c = grp * cin_g + ci;
                            for ki in 0..g.kh {
                                let Some(iy) = at(oy, ki, g.sh, g.dh, g.pt, g.h) else {
                                    continue;
                                };
                                for kj in 0..g.kw {
                                    let Some(ix) = at(ox, kj, g.sw, g.dw, g.pl, g.w) else {
                                        continue;
                                    };
                                    let x = input[((n * g.c_in + c) * g.h + iy) * g.w + ix];
                                    let wv = weight[((co * cin_g + ci) * g.kh + ki) * g.kw + kj];
                                    acc += x as f64 * wv as f64;
                                }
                            }
                        }
                        out[((n * g.c_out + co) * g.oh + oy) * g.ow + ox] = acc as f32;
                    }
                }
            }
        }
    }

    /// Scatter every output gradient back through the same index map.
    pub fn backward_input(
        g: &ConvGeometry,
        weight: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) {
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        for n in 0..g.n {
            for co in 0..g.c_out {
                let grp = co / cout_g;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let go = grad_output[((n * g.c_out + co) * g.oh + oy) * g.ow + ox];
                        for ci in 0..cin_g {
                            let c = grp * cin_g + ci;
                            for ki in 0..g.kh {
                                let Some(iy) = at(oy, ki, g.sh, g.dh, g.pt, g.h) else {
                                    continue;
                                };
                                for kj in 0..g.kw {
                                    let Some(ix) = at(ox, kj, g.sw, g.dw, g.pl, g.w) else {
                                        continue;
                                    };
                                    grad_input[((n * g.c_in + c) * g.h + iy) * g.w + ix] +=
                                        go * weight[((co * cin_g + ci) * g.kh + ki) * g.kw + kj];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `grad_weight[co, ci, ki, kj] = sum_{n, oy, ox} grad_output[n, co, oy, ox] * input[n, c, iy, ix]`.
    pub fn backward_weight(
        g: &ConvGeometry,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
    ) {
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        for co in 0..g.c_out {
            let grp = co / cout_g;
            for ci in 0..cin_g {
                let c = grp * cin_g + ci;
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let mut acc = 0.0f64;
                        for n in 0..g.n {
                            for oy in 0..g.oh {
                                let Some(iy) = at(oy, ki, g.sh, g.dh, g.pt, g.h) else {
                                    continue;
                                };
                                for ox in 0..g.ow {
                                    let Some(ix) = at(ox, kj, g.sw, g.dw, g.pl, g.w) else {
                                        continue;
                                    };
                                    acc += grad_output[((n * g.c_out + co) * g.oh + oy) * g.ow + ox]
                                        as f64
                                        * input[((n * g.c_in + c) * g.h + iy) * g.w + ix] as f64;
                                }
                            }
                        }
                        grad_weight[((co * cin_g + ci) * g.kh + ki) * g.kw + kj] += acc as f32;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FFT rounding on a single-channel 31x31 kernel (the image_31x31 shape,
    /// smaller) and a few channels: every pass within the fixtures' 1e-4.
    #[test]
    fn fft_error_on_large_kernels() {
        use crate::ops::{force_conv_algo, ConvAlgo};
        let mut rng = crate::seeded_rng(11);
        for &(c_in, c_out, hw, k, pad) in &[(1, 1, 96, 31, 15), (3, 2, 40, 9, 2), (2, 3, 17, 5, 0)]
        {
            let x = Tensor::randn(&[2, c_in, hw, hw], &mut rng).unwrap();
            let w = Tensor::randn(&[c_out, c_in, k, k], &mut rng).unwrap();
            let p = Conv2dParams::new().padding(pad);
            let err = |a: &Tensor, b: &Tensor| {
                let scale = b
                    .data()
                    .iter()
                    .fold(1.0f64, |m, &v| m.max((v as f64).abs()));
                let d = a
                    .data()
                    .iter()
                    .zip(b.data())
                    .fold(0.0f64, |m, (&u, &v)| m.max((u as f64 - v as f64).abs()));
                d / scale
            };
            let run = |algo| {
                let _f = force_conv_algo(algo);
                let y = conv2d(&x, &w, None, &p).unwrap();
                let gx = conv2d_backward_input(x.shape(), &w, &y, &p).unwrap();
                let gw = conv2d_backward_weight(&x, w.shape(), &y, &p).unwrap();
                (y, gx, gw)
            };
            let (y, gx, gw) = run(ConvAlgo::Fft);
            let (yr, gxr, gwr) = run(ConvAlgo::Reference);
            let e = [err(&y, &yr), err(&gx, &gxr), err(&gw, &gwr)];
            println!(
                "fft c_in={c_in} k={k}: forward {:.2e}, grad_input {:.2e}, grad_weight {:.2e}",
                e[0], e[1], e[2]
            );
            assert!(e.iter().all(|&v| v < 1e-4), "{e:?}");
        }
    }

    /// F(4x4, 3x3) rounding at 64..512 input channels (the resnet widths):
    /// normalized max error of the forward and input gradient against the
    /// f64-accumulating reference, held to the fixtures' 1e-4.
    #[test]
    fn winograd_error_on_wide_channels() {
        use crate::ops::{force_conv_algo, ConvAlgo};
        let mut rng = crate::seeded_rng(7);
        for &(c_in, c_out, hw, pad) in &[
            (64, 8, 13, 1),
            (256, 8, 9, 1),
            (512, 4, 7, 1),
            (512, 3, 6, 0),
            // Wide enough for the weight gradient's one-block path, odd
            // channel counts for its edges.
            (200, 190, 6, 1),
        ] {
            let x = Tensor::randn(&[2, c_in, hw, hw], &mut rng).unwrap();
            let w = Tensor::randn(&[c_out, c_in, 3, 3], &mut rng).unwrap();
            let p = Conv2dParams::new().padding(pad);
            let err = |a: &Tensor, b: &Tensor| {
                let scale = b
                    .data()
                    .iter()
                    .fold(1.0f64, |m, &v| m.max((v as f64).abs()));
                let d = a
                    .data()
                    .iter()
                    .zip(b.data())
                    .fold(0.0f64, |m, (&u, &v)| m.max((u as f64 - v as f64).abs()));
                d / scale
            };
            let (y, gx) = {
                let _f = force_conv_algo(ConvAlgo::Winograd);
                let y = conv2d(&x, &w, None, &p).unwrap();
                let gx = conv2d_backward_input(x.shape(), &w, &y, &p).unwrap();
                (y, gx)
            };
            let _f = force_conv_algo(ConvAlgo::Reference);
            let y_ref = conv2d(&x, &w, None, &p).unwrap();
            let gx_ref = conv2d_backward_input(x.shape(), &w, &y, &p).unwrap();
            let gw_ref = conv2d_backward_weight(&x, w.shape(), &y, &p).unwrap();
            let gw = {
                let _f = force_conv_algo(ConvAlgo::Winograd);
                conv2d_backward_weight(&x, w.shape(), &y, &p).unwrap()
            };
            let (ey, egx, egw) = (err(&y, &y_ref), err(&gx, &gx_ref), err(&gw, &gw_ref));
            println!(
                "winograd c_in={c_in}: forward {ey:.2e}, grad_input {egx:.2e}, grad_weight {egw:.2e}"
            );
            assert!(
                ey < 1e-4 && egx < 1e-4 && egw < 1e-4,
                "c_in={c_in}: {ey:e} {egx:e} {egw:e}"
            );
        }
    }

    #[test]
    fn channel_mismatch_names_everything() {
        let x = Tensor::zeros(&[1, 8, 5, 5]).unwrap();
        let w = Tensor::zeros(&[4, 4, 3, 3]).unwrap();
        let e = conv2d(&x, &w, None, &Conv2dParams::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "conv2d: input has 8 channels but weight [4, 4, 3, 3] with groups=1 expects 4"
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        let x = Tensor::zeros(&[1, 4, 5, 5]).unwrap();
        let w = Tensor::zeros(&[6, 2, 3, 3]).unwrap();
        let e = |p: Conv2dParams| conv2d(&x, &w, None, &p).unwrap_err().to_string();
        assert_eq!(
            e(Conv2dParams::new().groups(2).stride(0)),
            "conv2d: stride 0 is invalid: must be at least 1"
        );
        assert!(e(Conv2dParams::new().groups(3)).contains("input has 4 channels"));
        assert!(e(Conv2dParams::new().groups(0)).contains("groups 0 is invalid"));
        let big = Tensor::zeros(&[6, 2, 7, 7]).unwrap();
        let msg = conv2d(&x, &big, None, &Conv2dParams::new().groups(2))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "conv2d: kernel height 7 is larger than the padded input height 5 (5 + padding 0+0)"
        );
        let e4 = conv2d(
            &Tensor::zeros(&[5, 5]).unwrap(),
            &w,
            None,
            &Conv2dParams::new(),
        )
        .unwrap_err();
        assert!(e4.to_string().contains("input must be 3-D"), "{e4}");
        let bias = Tensor::zeros(&[5]).unwrap();
        let e5 = conv2d(&x, &w, Some(&bias), &Conv2dParams::new().groups(2)).unwrap_err();
        assert!(e5.to_string().contains("bias has shape [5]"), "{e5}");
    }

    #[test]
    fn unbatched_input_keeps_rank() {
        let x = Tensor::ones(&[2, 4, 4]).unwrap();
        let w = Tensor::ones(&[3, 2, 3, 3]).unwrap();
        let y = conv2d(&x, &w, None, &Conv2dParams::new()).unwrap();
        assert_eq!(y.shape(), &[3, 2, 2]);
        assert!(y.data().iter().all(|&v| v == 18.0));
    }
}
