//! `conv3d` and `conv_transpose3d`: PyTorch's `F.conv3d` and
//! `F.conv_transpose3d` on `[N, C, D, H, W]` (or unbatched `[C, D, H, W]`),
//! with their backward passes.
//!
//! A 3-D convolution runs as one 2-D convolution over the depth unfolded
//! into channels: output slice `od` reads input slices
//! `od * sd - pad_front + k * dd` for the `kd` depth taps `k`, so the `kd`
//! slices of every output slice are gathered side by side as channels
//! (`[N * D_out, groups * kd * C_in / groups, H, W]`, zeros where a tap
//! falls in the depth padding), the weight's depth taps become channels
//! too (`[C_out, kd * C_in / groups, kh, kw]`), and [`conv2d`] computes the
//! whole layer in one call, with every 2-D algorithm the dispatcher has
//! (Winograd for 3x3x3, implicit GEMM, im2col ...). The gather is an
//! im2col along depth only: `kd` times the input, against `kd * kh * kw`
//! times for a full vol2col. The backward runs [`conv2d_backward`] on the
//! same operands and folds the gathered input's gradient back onto the
//! depth slices (the gather's adjoint, summed in tap order). The
//! transposed convolution is the same pair of maps the other way round:
//! [`conv_transpose2d`] on the depth slices, the result folded along depth.

use super::conv2d::{conv2d, conv2d_backward, Conv2dGrads, Conv2dParams};
use super::conv_transpose2d::{conv_transpose2d, conv_transpose2d_backward, ConvTranspose2dParams};
use super::pad::{pad, pad_backward, PadMode};
use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::parallel;
use crate::shape::{conv_out_len, Padding, PaddingMode, Pair};
use crate::tensor::Tensor;

/// The padding of a 3-D convolution: PyTorch's `int`, `(d, h, w)`,
/// `'same'` or `'valid'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding3d {
    /// This many on both sides of depth, height and width.
    Sides([usize; 3]),
    /// Output as large as the input (stride 1 only); an odd total goes one
    /// more to the back, bottom and right, as PyTorch does.
    Same,
    /// No padding (the default, as `padding=0`).
    Valid,
}

impl From<usize> for Padding3d {
    fn from(p: usize) -> Self {
        Padding3d::Sides([p; 3])
    }
}
impl From<[usize; 3]> for Padding3d {
    fn from(p: [usize; 3]) -> Self {
        Padding3d::Sides(p)
    }
}
impl From<(usize, usize, usize)> for Padding3d {
    fn from((d, h, w): (usize, usize, usize)) -> Self {
        Padding3d::Sides([d, h, w])
    }
}

/// Three sizes, depth, height and width: `2` means `[2, 2, 2]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Triple(pub [usize; 3]);

impl From<usize> for Triple {
    fn from(v: usize) -> Self {
        Triple([v; 3])
    }
}
impl From<[usize; 3]> for Triple {
    fn from(v: [usize; 3]) -> Self {
        Triple(v)
    }
}
impl From<(usize, usize, usize)> for Triple {
    fn from((d, h, w): (usize, usize, usize)) -> Self {
        Triple([d, h, w])
    }
}

impl std::fmt::Display for Triple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [d, h, w] = self.0;
        write!(f, "({d}, {h}, {w})")
    }
}

/// Parameters of [`conv3d`], with PyTorch's defaults (stride 1, padding 0,
/// dilation 1, groups 1, zeros padding).
///
/// ```
/// use convlab::ops::Conv3dParams;
/// let p = Conv3dParams::new().stride((1, 2, 2)).padding(1);
/// assert_eq!(p.stride.0, [1, 2, 2]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dParams {
    pub stride: Triple,
    pub padding: Padding3d,
    pub dilation: Triple,
    pub groups: usize,
    pub padding_mode: PaddingMode,
}

impl Default for Conv3dParams {
    fn default() -> Self {
        Conv3dParams {
            stride: Triple([1; 3]),
            padding: Padding3d::Valid,
            dilation: Triple([1; 3]),
            groups: 1,
            padding_mode: PaddingMode::Zeros,
        }
    }
}

impl Conv3dParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the stride (`2` or `(1, 2, 2)`).
    pub fn stride(mut self, s: impl Into<Triple>) -> Self {
        self.stride = s.into();
        self
    }
    /// Set the padding (`1`, `(1, 2, 2)`, `Padding3d::Same`).
    pub fn padding(mut self, p: impl Into<Padding3d>) -> Self {
        self.padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: impl Into<Triple>) -> Self {
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

/// Parameters of [`conv_transpose3d`], with PyTorch's defaults (stride 1,
/// padding 0, output_padding 0, dilation 1, groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose3dParams {
    pub stride: Triple,
    pub padding: Triple,
    pub output_padding: Triple,
    pub dilation: Triple,
    pub groups: usize,
}

impl Default for ConvTranspose3dParams {
    fn default() -> Self {
        ConvTranspose3dParams {
            stride: Triple([1; 3]),
            padding: Triple([0; 3]),
            output_padding: Triple([0; 3]),
            dilation: Triple([1; 3]),
            groups: 1,
        }
    }
}

impl ConvTranspose3dParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the stride.
    pub fn stride(mut self, s: impl Into<Triple>) -> Self {
        self.stride = s.into();
        self
    }
    /// Set the padding (removed from both sides of the full output).
    pub fn padding(mut self, p: impl Into<Triple>) -> Self {
        self.padding = p.into();
        self
    }
    /// Set the extra size added to one side of the output.
    pub fn output_padding(mut self, p: impl Into<Triple>) -> Self {
        self.output_padding = p.into();
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, d: impl Into<Triple>) -> Self {
        self.dilation = d.into();
        self
    }
    /// Set the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

const FORWARD_LAYOUT: &str = "(C_out, C_in / groups, kD, kH, kW)";
const TRANSPOSED_LAYOUT: &str = "(C_in, C_out / groups, kD, kH, kW)";

/// `[N, C, D, H, W]` or `[C, D, H, W]` as five dims, and whether the input
/// was unbatched.
fn dims5(op: &'static str, what: &str, x: &Tensor) -> Result<([usize; 5], bool)> {
    match *x.shape() {
        [n, c, d, h, w] => Ok(([n, c, d, h, w], false)),
        [c, d, h, w] => Ok(([1, c, d, h, w], true)),
        _ => Err(Error::shape(
            op,
            format!(
                "{what} must be 4-D (C, D, H, W) or 5-D (N, C, D, H, W) but has shape {}",
                Dims(x.shape())
            ),
        )),
    }
}

fn weight5(op: &'static str, layout: &str, w: &Tensor) -> Result<[usize; 5]> {
    match *w.shape() {
        [a, b, kd, kh, kw] => Ok([a, b, kd, kh, kw]),
        _ => Err(Error::shape(
            op,
            format!(
                "weight must be 5-D {layout} but has shape {}",
                Dims(w.shape())
            ),
        )),
    }
}

fn check_positive3(op: &'static str, name: &'static str, v: Triple) -> Result<()> {
    if v.0.contains(&0) {
        return Err(Error::param(
            op,
            name,
            format!("must be positive on every axis, got {v}"),
        ));
    }
    Ok(())
}

fn check_groups(op: &'static str, groups: usize, channels: usize, what: &str) -> Result<()> {
    if groups == 0 {
        return Err(Error::param(op, "groups", "must be positive, got 0"));
    }
    if channels % groups != 0 {
        return Err(Error::param(
            op,
            "groups",
            format!("{what} {channels} is not divisible by groups {groups}"),
        ));
    }
    Ok(())
}

/// The depth axis of a convolution: `count` slices of `kd` taps each,
/// slice `o` reading (or, transposed, writing) slices
/// `o * stride - front + k * dilation` of a `depth`-deep volume.
#[derive(Clone, Copy, Debug)]
struct DepthTaps {
    depth: usize,
    count: usize,
    kd: usize,
    stride: usize,
    dilation: usize,
    front: usize,
}

impl DepthTaps {
    /// The volume slice tap `k` of slice `o` lies on, if inside.
    fn source(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation)
            .checked_sub(self.front)
            .filter(|&d| d < self.depth)
    }
}

/// Copies of contiguous `plane`-long runs, from `[n, a, b, plane]` to
/// `[n, b, a, plane]`, on the pool.
fn swap_middle(
    op: &'static str,
    x: &[f32],
    [_, a, b]: [usize; 3],
    plane: usize,
) -> Result<Vec<f32>> {
    let mut out = memory::zeros_f32(op, x.len())?;
    let threads = parallel::threads_above(x.len() as u128, 1 << 16);
    parallel::for_each_chunk(threads, &mut out, a * plane, |row, out| {
        let (i, j) = (row / b, row % b);
        for (k, o) in out.chunks_exact_mut(plane).enumerate() {
            let at = ((i * a + k) * b + j) * plane;
            o.copy_from_slice(&x[at..at + plane]);
        }
    });
    Ok(out)
}

/// The depth-unfolded input: `x` (`[n, C, depth, plane]`, `C = groups *
/// cg`) as `[n * count, groups, kd, cg, plane]`, zeros for taps in the
/// padding.
fn unfold_depth(
    op: &'static str,
    x: &[f32],
    [n, groups, cg]: [usize; 3],
    t: &DepthTaps,
    plane: usize,
) -> Result<Vec<f32>> {
    let len = numel_or_err(op, &[n, t.count, groups, t.kd, cg, plane])?;
    let mut out = memory::zeros_f32(op, len)?;
    let row_len = groups * t.kd * cg * plane;
    let threads = parallel::threads_above(len as u128, 1 << 16);
    parallel::for_each_chunk(threads, &mut out, row_len, |row, out| {
        let (i, o) = (row / t.count, row % t.count);
        for (gk, chunk) in out.chunks_exact_mut(cg * plane).enumerate() {
            let (g, k) = (gk / t.kd, gk % t.kd);
            let Some(d) = t.source(o, k) else { continue };
            for (c, o) in chunk.chunks_exact_mut(plane).enumerate() {
                let at = (((i * groups + g) * cg + c) * t.depth + d) * plane;
                o.copy_from_slice(&x[at..at + plane]);
            }
        }
    });
    Ok(out)
}

/// The adjoint of [`unfold_depth`]: `u` (`[n * count, groups, kd, cg,
/// plane]`) summed onto `[n, groups * cg, depth, plane]`, each slice's
/// taps added in slice-then-tap order (the same order at any thread
/// count).
fn fold_depth(
    op: &'static str,
    u: &[f32],
    [n, groups, cg]: [usize; 3],
    t: &DepthTaps,
    plane: usize,
) -> Result<Vec<f32>> {
    let len = numel_or_err(op, &[n, groups * cg, t.depth, plane])?;
    let mut out = memory::zeros_f32(op, len)?;
    let threads = parallel::threads_above(u.len() as u128, 1 << 16);
    parallel::for_each_chunk(threads, &mut out, t.depth * plane, |pc, out| {
        let (i, ch) = (pc / (groups * cg), pc % (groups * cg));
        let (g, c) = (ch / cg, ch % cg);
        for o in 0..t.count {
            for k in 0..t.kd {
                let Some(d) = t.source(o, k) else { continue };
                let at = ((((i * t.count + o) * groups + g) * t.kd + k) * cg + c) * plane;
                let dst = &mut out[d * plane..(d + 1) * plane];
                for (y, v) in dst.iter_mut().zip(&u[at..at + plane]) {
                    *y += v;
                }
            }
        }
    });
    Ok(out)
}

/// A `[a, b, kd, kh, kw]` weight as the 2-D `[a, kd * b, kh, kw]` one the
/// unfolded depth needs (tap-major channels), and back.
fn weight_to_2d(op: &'static str, w: &Tensor) -> Result<Tensor> {
    let [a, b, kd, kh, kw] = *w.shape() else {
        unreachable!("checked 5-D")
    };
    let data = swap_middle(op, w.data(), [a, b, kd], kh * kw)?;
    Tensor::from_vec(data, &[a, kd * b, kh, kw])
}

fn weight_from_2d(op: &'static str, w2: Tensor, [a, b, kd, kh, kw]: [usize; 5]) -> Result<Tensor> {
    let data = swap_middle(op, w2.data(), [a, kd, b], kh * kw)?;
    Tensor::from_vec(data, &[a, b, kd, kh, kw])
}

/// A validated 3-D convolution: the 2-D layer on the unfolded depth.
struct Plan {
    /// Input dims after explicit (non-zero mode) padding.
    x: [usize; 5],
    unbatched: bool,
    w: [usize; 5],
    taps: DepthTaps,
    /// Output height and width.
    out_hw: [usize; 2],
    p2: Conv2dParams,
    /// Sides padded explicitly first (non-zero padding modes), as
    /// `F.pad`'s list (width first).
    pre_pad: Option<[i64; 6]>,
}

/// Resolve `p` into `[front, back, top, bottom, left, right]`.
fn resolve_padding(op: &'static str, p: &Conv3dParams, k: [usize; 3]) -> Result<[usize; 6]> {
    match p.padding {
        Padding3d::Valid => Ok([0; 6]),
        Padding3d::Sides([d, h, w]) => Ok([d, d, h, h, w, w]),
        Padding3d::Same => {
            if p.stride.0 != [1; 3] {
                return Err(Error::param(
                    op,
                    "padding",
                    format!(
                        "'same' is not supported for strided convolutions (stride {})",
                        p.stride
                    ),
                ));
            }
            let mut out = [0; 6];
            for a in 0..3 {
                let total = p.dilation.0[a]
                    .checked_mul(k[a].saturating_sub(1))
                    .ok_or_else(|| Error::too_large(op, "dilation * kernel overflows"))?;
                out[2 * a] = total / 2;
                out[2 * a + 1] = total - total / 2;
            }
            Ok(out)
        }
    }
}

fn plan(op: &'static str, input: &Tensor, weight: &Tensor, p: &Conv3dParams) -> Result<Plan> {
    let (x, unbatched) = dims5(op, "input", input)?;
    let w = weight5(op, FORWARD_LAYOUT, weight)?;
    check_positive3(op, "stride", p.stride)?;
    check_positive3(op, "dilation", p.dilation)?;
    check_groups(op, p.groups, w[0], "out_channels")?;
    if w[1].checked_mul(p.groups) != Some(x[1]) {
        return Err(Error::shape(
            op,
            format!(
                "weight of shape {} with groups {} expects {} input channels, but the input {} has {}",
                Dims(weight.shape()),
                p.groups,
                w[1].saturating_mul(p.groups),
                Dims(input.shape()),
                x[1]
            ),
        ));
    }
    let pads = resolve_padding(op, p, [w[2], w[3], w[4]])?;
    let mut out = [0; 3];
    for a in 0..3 {
        out[a] = conv_out_len(
            op,
            ["depth", "height", "width"][a],
            x[2 + a],
            w[2 + a],
            p.stride.0[a],
            pads[2 * a],
            pads[2 * a + 1],
            p.dilation.0[a],
        )?;
    }
    let explicit = p.padding_mode != PaddingMode::Zeros && pads != [0; 6];
    let (xd, pre_pad, hw_pads, front) = if explicit {
        let padded = [0, 1, 2].map(|a| x[2 + a] + pads[2 * a] + pads[2 * a + 1]);
        let list = [pads[4], pads[5], pads[2], pads[3], pads[0], pads[1]].map(|v| v as i64);
        (
            [x[0], x[1], padded[0], padded[1], padded[2]],
            Some(list),
            [0; 4],
            0,
        )
    } else {
        (x, None, [pads[2], pads[3], pads[4], pads[5]], pads[0])
    };
    Ok(Plan {
        x: xd,
        unbatched,
        w,
        taps: DepthTaps {
            depth: xd[2],
            count: out[0],
            kd: w[2],
            stride: p.stride.0[0],
            dilation: p.dilation.0[0],
            front,
        },
        out_hw: [out[1], out[2]],
        p2: Conv2dParams {
            stride: Pair(p.stride.0[1], p.stride.0[2]),
            padding: Padding::sides(hw_pads[0], hw_pads[1], hw_pads[2], hw_pads[3]),
            dilation: Pair(p.dilation.0[1], p.dilation.0[2]),
            groups: p.groups,
            padding_mode: PaddingMode::Zeros,
        },
        pre_pad,
    })
}

impl Plan {
    fn dims(&self) -> [usize; 3] {
        [self.x[0], self.p2.groups, self.x[1] / self.p2.groups]
    }

    fn plane(&self) -> usize {
        self.x[3] * self.x[4]
    }

    /// The input, padded if the mode asks, depth-unfolded as a 2-D batch.
    fn unfolded_input(
        &self,
        op: &'static str,
        input: &Tensor,
        mode: PaddingMode,
    ) -> Result<Tensor> {
        let padded;
        let x = match self.pre_pad {
            Some(list) => {
                padded = pad(input, &list, pad_mode(mode))?;
                &padded
            }
            None => input,
        };
        let u = unfold_depth(op, x.data(), self.dims(), &self.taps, self.plane())?;
        let [n, c, _, h, w] = self.x;
        Tensor::from_vec(u, &[n * self.taps.count, self.taps.kd * c, h, w])
    }

    fn out_shape(&self) -> Vec<usize> {
        let [n, ..] = self.x;
        let dims = [self.w[0], self.taps.count, self.out_hw[0], self.out_hw[1]];
        if self.unbatched {
            dims.to_vec()
        } else {
            [&[n][..], &dims].concat()
        }
    }

    /// `[N, C_out, D_out, H_out, W_out]` (the caller's rank) from the 2-D
    /// `[N * D_out, C_out, H_out, W_out]`, and the other way.
    fn output_from_2d(&self, op: &'static str, y2: &Tensor) -> Result<Tensor> {
        let plane = self.out_hw[0] * self.out_hw[1];
        let d = swap_middle(
            op,
            y2.data(),
            [self.x[0], self.taps.count, self.w[0]],
            plane,
        )?;
        Tensor::from_vec(d, &self.out_shape())
    }

    fn output_to_2d(&self, op: &'static str, y: &Tensor) -> Result<Tensor> {
        let plane = self.out_hw[0] * self.out_hw[1];
        let (n, d, c) = (self.x[0], self.taps.count, self.w[0]);
        let data = swap_middle(op, y.data(), [n, c, d], plane)?;
        Tensor::from_vec(data, &[n * d, c, self.out_hw[0], self.out_hw[1]])
    }
}

fn pad_mode(m: PaddingMode) -> PadMode {
    match m {
        PaddingMode::Zeros => PadMode::Constant(0.0),
        PaddingMode::Reflect => PadMode::Reflect,
        PaddingMode::Replicate => PadMode::Replicate,
        PaddingMode::Circular => PadMode::Circular,
    }
}

fn check_bias(op: &'static str, bias: Option<&Tensor>, channels: usize) -> Result<()> {
    match bias {
        Some(b) if b.shape() != [channels] => Err(Error::shape(
            op,
            format!(
                "bias must have shape [{channels}] but has shape {}",
                Dims(b.shape())
            ),
        )),
        _ => Ok(()),
    }
}

fn check_grad_output(op: &'static str, go: &Tensor, want: &[usize]) -> Result<()> {
    if go.shape() != want {
        return Err(Error::shape(
            op,
            format!(
                "grad_output must have the output's shape {} but has shape {}",
                Dims(want),
                Dims(go.shape())
            ),
        ));
    }
    Ok(())
}

/// 3-D cross-correlation, as `torch.nn.functional.conv3d`: input
/// `[N, C_in, D, H, W]` (or `[C_in, D, H, W]`), weight
/// `[C_out, C_in / groups, kD, kH, kW]`, bias `[C_out]`.
///
/// ```
/// use convlab::ops::{conv3d, Conv3dParams};
/// use convlab::Tensor;
/// let x = Tensor::ones(&[1, 1, 3, 4, 4])?;
/// let w = Tensor::ones(&[2, 1, 2, 3, 3])?;
/// let y = conv3d(&x, &w, None, &Conv3dParams::new().padding((0, 1, 1)))?;
/// assert_eq!(y.shape(), &[1, 2, 2, 4, 4]);
/// assert_eq!(y.data()[5], 18.0); // an inside window: 2 * 3 * 3 ones
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// As `F.conv3d`: ranks, channel counts against groups, a kernel larger
/// than the padded input on any axis, zero stride or dilation, `'same'`
/// with a stride, a bias of the wrong shape.
pub fn conv3d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv3dParams,
) -> Result<Tensor> {
    const OP: &str = "conv3d";
    let plan = plan(OP, input, weight, p)?;
    check_bias(OP, bias, plan.w[0])?;
    memory::check_f32_total(
        OP,
        &[
            ("depth-unfolded input", unfolded_len(&plan)?),
            ("output", numel_or_err(OP, &plan.out_shape())?),
        ],
    )?;
    let u = plan.unfolded_input(OP, input, p.padding_mode)?;
    let w2 = weight_to_2d(OP, weight)?;
    let y2 = conv2d(&u, &w2, bias, &plan.p2).map_err(|e| e.with_op(OP))?;
    plan.output_from_2d(OP, &y2)
}

fn unfolded_len(plan: &Plan) -> Result<usize> {
    let [n, c, _, h, w] = plan.x;
    numel_or_err("conv3d", &[n, plan.taps.count, plan.taps.kd, c, h, w])
}

/// All three gradients of [`conv3d`] (`grad_bias` when `with_bias`), in
/// the 3-D shapes.
///
/// # Errors
/// The errors of [`conv3d`], or a `grad_output` not of the output's shape.
pub fn conv3d_backward(
    input: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    grad_output: &Tensor,
    p: &Conv3dParams,
) -> Result<Conv2dGrads> {
    const OP: &str = "conv3d_backward";
    let plan = plan(OP, input, weight, p)?;
    check_grad_output(OP, grad_output, &plan.out_shape())?;
    let u = plan.unfolded_input(OP, input, p.padding_mode)?;
    let w2 = weight_to_2d(OP, weight)?;
    let go2 = plan.output_to_2d(OP, grad_output)?;
    let g = conv2d_backward(&u, &w2, with_bias, &go2, &plan.p2).map_err(|e| e.with_op(OP))?;
    let gx = fold_depth(
        OP,
        g.grad_input.data(),
        plan.dims(),
        &plan.taps,
        plan.plane(),
    )?;
    let mut grad_input = Tensor::from_vec(gx, &plan.x)?;
    if let Some(list) = plan.pre_pad {
        let [n, c, ..] = plan.x;
        let (x5, _) = dims5(OP, "input", input)?;
        grad_input = pad_backward(
            &grad_input,
            &[n, c, x5[2], x5[3], x5[4]],
            &list,
            pad_mode(p.padding_mode),
        )?;
    }
    if plan.unbatched {
        grad_input = grad_input.into_shape(input.shape())?;
    }
    Ok(Conv2dGrads {
        grad_input,
        grad_weight: weight_from_2d(OP, g.grad_weight, plan.w)?,
        grad_bias: g.grad_bias,
    })
}

/// A validated transposed 3-D convolution: the 2-D transposed layer on the
/// input's depth slices, folded along depth onto the output.
struct TransposedPlan {
    x: [usize; 5],
    unbatched: bool,
    w: [usize; 5],
    /// Depth taps with the output as the volume and the input's slices as
    /// the unfolded ones.
    taps: DepthTaps,
    out: [usize; 3],
    p2: ConvTranspose2dParams,
}

fn transposed_plan(
    op: &'static str,
    input: &Tensor,
    weight: &Tensor,
    p: &ConvTranspose3dParams,
) -> Result<TransposedPlan> {
    let (x, unbatched) = dims5(op, "input", input)?;
    let w = weight5(op, TRANSPOSED_LAYOUT, weight)?;
    check_positive3(op, "stride", p.stride)?;
    check_positive3(op, "dilation", p.dilation)?;
    check_groups(op, p.groups, x[1], "in_channels")?;
    if w[0] != x[1] {
        return Err(Error::shape(
            op,
            format!(
                "weight of shape {} expects {} input channels, but the input {} has {}",
                Dims(weight.shape()),
                w[0],
                Dims(input.shape()),
                x[1]
            ),
        ));
    }
    let mut out = [0; 3];
    for a in 0..3 {
        let (s, d, pad, op_) = (
            p.stride.0[a],
            p.dilation.0[a],
            p.padding.0[a],
            p.output_padding.0[a],
        );
        if op_ >= s && op_ >= d {
            return Err(Error::param(
                op,
                "output_padding",
                format!(
                    "{} must be smaller than either stride {} or dilation {}",
                    p.output_padding, p.stride, p.dilation
                ),
            ));
        }
        let full = x[2 + a]
            .saturating_sub(1)
            .checked_mul(s)
            .and_then(|v| v.checked_add(d.checked_mul(w[2 + a].saturating_sub(1))?))
            .and_then(|v| v.checked_add(op_ + 1))
            .ok_or_else(|| Error::too_large(op, "output size overflows"))?;
        out[a] = full.checked_sub(2 * pad).filter(|&v| v > 0).ok_or_else(|| {
            Error::shape(
                op,
                format!(
                    "output {} would be empty: input {}, kernel {}, stride {}, padding {}, dilation {}, output_padding {}",
                    ["depth", "height", "width"][a],
                    Dims(input.shape()),
                    Dims(weight.shape()),
                    p.stride,
                    p.padding,
                    p.dilation,
                    p.output_padding
                ),
            )
        })?;
    }
    Ok(TransposedPlan {
        x,
        unbatched,
        w,
        taps: DepthTaps {
            depth: out[0],
            count: x[2],
            kd: w[2],
            stride: p.stride.0[0],
            dilation: p.dilation.0[0],
            front: p.padding.0[0],
        },
        out,
        p2: ConvTranspose2dParams {
            stride: Pair(p.stride.0[1], p.stride.0[2]),
            padding: Pair(p.padding.0[1], p.padding.0[2]),
            output_padding: Pair(p.output_padding.0[1], p.output_padding.0[2]),
            dilation: Pair(p.dilation.0[1], p.dilation.0[2]),
            groups: p.groups,
        },
    })
}

impl TransposedPlan {
    /// Output channels and the `[n, groups, C_out / groups]` the fold reads.
    fn dims(&self) -> [usize; 3] {
        [self.x[0], self.p2.groups, self.w[1]]
    }

    fn out_shape(&self) -> Vec<usize> {
        let [c, d, h, w] = [
            self.w[1] * self.p2.groups,
            self.out[0],
            self.out[1],
            self.out[2],
        ];
        if self.unbatched {
            vec![c, d, h, w]
        } else {
            vec![self.x[0], c, d, h, w]
        }
    }

    /// The input's depth slices as a 2-D batch `[N * D, C_in, H, W]`.
    fn input_slices(&self, op: &'static str, x: &[f32]) -> Result<Tensor> {
        let [n, c, d, h, w] = self.x;
        let data = swap_middle(op, x, [n, c, d], h * w)?;
        Tensor::from_vec(data, &[n * d, c, h, w])
    }
}

/// The transposed 3-D convolution, as `torch.nn.functional.conv_transpose3d`:
/// input `[N, C_in, D, H, W]` (or `[C_in, D, H, W]`), weight
/// `[C_in, C_out / groups, kD, kH, kW]`, bias `[C_out]`.
///
/// ```
/// use convlab::ops::{conv_transpose3d, ConvTranspose3dParams};
/// use convlab::Tensor;
/// let x = Tensor::ones(&[1, 1, 2, 2, 2])?;
/// let w = Tensor::ones(&[1, 1, 2, 2, 2])?;
/// let y = conv_transpose3d(&x, &w, None, &ConvTranspose3dParams::new().stride(2))?;
/// assert_eq!(y.shape(), &[1, 1, 4, 4, 4]);
/// assert!(y.data().iter().all(|&v| v == 1.0));
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// As `F.conv_transpose3d`: ranks, channels against the weight and groups,
/// zero stride or dilation, an output padding not smaller than the stride
/// or the dilation, an empty output, a bias of the wrong shape.
pub fn conv_transpose3d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTranspose3dParams,
) -> Result<Tensor> {
    const OP: &str = "conv_transpose3d";
    let plan = transposed_plan(OP, input, weight, p)?;
    let cout = plan.w[1] * p.groups;
    check_bias(OP, bias, cout)?;
    let x2 = plan.input_slices(OP, input.data())?;
    let w2 = weight_to_2d(OP, weight)?;
    let y2 = conv_transpose2d(&x2, &w2, None, &plan.p2).map_err(|e| e.with_op(OP))?;
    let plane = plan.out[1] * plan.out[2];
    let mut y = fold_depth(OP, y2.data(), plan.dims(), &plan.taps, plane)?;
    if let Some(b) = bias {
        let block = plan.out[0] * plane;
        for (i, chunk) in y.chunks_exact_mut(block).enumerate() {
            let v = b.data()[i % cout];
            chunk.iter_mut().for_each(|y| *y += v);
        }
    }
    Tensor::from_vec(y, &plan.out_shape())
}

/// All three gradients of [`conv_transpose3d`], in the 3-D shapes.
///
/// # Errors
/// The errors of [`conv_transpose3d`], or a `grad_output` not of the
/// output's shape.
pub fn conv_transpose3d_backward(
    input: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    grad_output: &Tensor,
    p: &ConvTranspose3dParams,
) -> Result<Conv2dGrads> {
    const OP: &str = "conv_transpose3d_backward";
    let plan = transposed_plan(OP, input, weight, p)?;
    check_grad_output(OP, grad_output, &plan.out_shape())?;
    let x2 = plan.input_slices(OP, input.data())?;
    let w2 = weight_to_2d(OP, weight)?;
    let plane = plan.out[1] * plan.out[2];
    let gu = unfold_depth(OP, grad_output.data(), plan.dims(), &plan.taps, plane)?;
    let [n, _, d, ..] = plan.x;
    let gu = Tensor::from_vec(
        gu,
        &[
            n * d,
            plan.w[1] * p.groups * plan.w[2],
            plan.out[1],
            plan.out[2],
        ],
    )?;
    let g = conv_transpose2d_backward(&x2, &w2, false, &gu, &plan.p2).map_err(|e| e.with_op(OP))?;
    let [_, c, _, h, w] = plan.x;
    let gx = swap_middle(OP, g.grad_input.data(), [n, d, c], h * w)?;
    let grad_bias = if with_bias {
        let cout = plan.w[1] * p.groups;
        let block = plan.out[0] * plane;
        let mut sums = vec![0f64; cout];
        for (i, chunk) in grad_output.data().chunks_exact(block).enumerate() {
            sums[i % cout] += chunk.iter().map(|&v| f64::from(v)).sum::<f64>();
        }
        Some(Tensor::from_vec(
            sums.into_iter().map(|v| v as f32).collect(),
            &[cout],
        )?)
    } else {
        None
    };
    Ok(Conv2dGrads {
        grad_input: Tensor::from_vec(gx, input.shape())?,
        grad_weight: weight_from_2d(OP, g.grad_weight, plan.w)?,
        grad_bias,
    })
}
