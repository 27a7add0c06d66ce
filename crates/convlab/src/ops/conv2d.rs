//! `conv2d`: PyTorch's `F.conv2d` (cross-correlation) with stride, padding
//! (sides, `"same"`, `"valid"`), dilation, groups, bias and padding modes;
//! forward, backward and the reference loops, in that order.
//!
//! Layouts: input `[N, C_in, H, W]` (or unbatched `[C_in, H, W]`), weight
//! `[C_out, C_in / groups, kh, kw]`, bias `[C_out]`, output `[N, C_out, oh, ow]`.

use super::pad::{pad2d, pad2d_backward};
use crate::drivers::conv::{self as driver, Call, ConvPass};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::shape::{check_positive, conv_out_len, ConvGeometry, Padding, PaddingMode, Pair};
use crate::tensor::Tensor;

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
/// the wrong size, a zero stride or dilation, a kernel larger than the
/// padded input, or an algorithm forced with
/// [`force_conv_algo`](crate::ops::force_conv_algo) that cannot compute it.
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
    const OP: &str = "conv2d";
    let plan = plan(input.shape(), weight.shape(), bias.map(|b| b.shape()), p)?;
    let g = plan.geom;
    driver::in_pool(g.macs(), || {
        let x = kernel_input(&plan, input)?;
        let numel = numel_or_err(OP, &[g.n, g.c_out, g.oh, g.ow])?;
        let mut buf = memory::uninit_f32(OP, numel)?;
        let call = Call {
            op: OP,
            pass: ConvPass::Forward,
        };
        let bias = bias.map(|b| b.data());
        driver::forward(call, &g, x.data(), weight.data(), bias, &mut buf)?;
        // SAFETY: the driver writes every element of `buf`.
        let out = unsafe { memory::assume_written(buf) };
        Tensor::from_vec(out, &plan.output_shape())
    })
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
    // The forward's multiply-adds, from the shapes alone (a plan costs as
    // much as d2l_edge's whole backward); bad shapes fail in either pass.
    let macs =
        grad_output.numel() as u128 * weight.shape().iter().skip(1).product::<usize>() as u128;
    driver::in_pool(macs, || {
        let input_grad = || conv2d_backward_input(input.shape(), weight, grad_output, p);
        let weight_grad = || conv2d_backward_weight(input, weight.shape(), grad_output, p);
        let (grad_input, grad_weight) = if crate::parallel::threads_for(macs) > 1 {
            driver::join_passes(input_grad, weight_grad)
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
///
/// # Errors
/// As [`conv2d`]'s, and a `grad_output` of another shape than the output.
pub fn conv2d_backward_input(
    input_shape: &[usize],
    weight: &Tensor,
    grad_output: &Tensor,
    p: &Conv2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward";
    let plan = plan(input_shape, weight.shape(), None, p)?;
    check_grad_output(&plan, grad_output, OP)?;
    let g = plan.geom;
    driver::in_pool(g.macs(), || {
        let mut buf = memory::uninit_f32(OP, numel_or_err(OP, &[g.n, g.c_in, g.h, g.w])?)?;
        let call = Call {
            op: OP,
            pass: ConvPass::InputGrad,
        };
        driver::backward_input(call, &g, weight.data(), grad_output.data(), &mut buf)?;
        // SAFETY: the driver writes every element of `buf`.
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
    })
}

/// The gradient of [`conv2d`] with respect to its weight.
///
/// # Errors
/// As [`conv2d`]'s, and a `grad_output` of another shape than the output.
pub fn conv2d_backward_weight(
    input: &Tensor,
    weight_shape: &[usize],
    grad_output: &Tensor,
    p: &Conv2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward";
    let plan = plan(input.shape(), weight_shape, None, p)?;
    check_grad_output(&plan, grad_output, OP)?;
    let g = plan.geom;
    driver::in_pool(g.macs(), || {
        let x = kernel_input(&plan, input)?;
        let mut buf = memory::uninit_f32(OP, numel_or_err(OP, weight_shape)?)?;
        let call = Call {
            op: OP,
            pass: ConvPass::WeightGrad,
        };
        driver::backward_weight(call, &g, x.data(), grad_output.data(), &mut buf)?;
        // SAFETY: the driver writes every element of `buf`.
        let gw = unsafe { memory::assume_written(buf) };
        Tensor::from_vec(gw, weight_shape)
    })
}

/// The gradient of a convolution's bias: `grad_output` summed over all but
/// the channel dimension.
pub fn conv2d_backward_bias(grad_output: &Tensor) -> Result<Tensor> {
    let ([n, c, h, w], _) = batched_dims("conv2d_backward", grad_output.shape())?;
    let go = grad_output.data();
    // An empty gradient may have huge planes (an empty batch with a 2^40
    // padding); a non-empty one holds h * w values, so this cannot overflow.
    let plane = if go.is_empty() { 0 } else { h * w };
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
