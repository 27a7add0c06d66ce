//! Winograd F(4x4, 3x3) ([`crate::kernels::winograd`]): the forward pass
//! and the input gradient (the forward of the flipped, transposed weight on
//! grad_output), over blocks of whole tile rows run as rayon tasks. A task
//! transforms its block's input once, then per panel of output channels
//! runs the 36 GEMMs and the output transform while the panel's products
//! are in cache. The filter is transformed once per call when tasks share
//! it, else per panel inside each task (resnet_3x3_512: 37.7 MB of
//! transformed filter never written out).
//!
//! Few tiles and many channels (resnet_3x3_256) take a point-major order
//! instead: each of the 36 products runs over all the task's panels while
//! that point's slice of V stays in L2, so blocks can hold every tile and
//! the tile kernel runs wide, and each panel's transformed filter is read
//! once rather than once per block.

mod forward;
mod plan;
mod weight_grad;

use super::{dilation, transposed, ConvAlgo, ConvPass};
use crate::error::Result;
use crate::kernels::ukernel;
pub(super) use crate::kernels::winograd::WeightView;
use crate::kernels::winograd::{input_block, winograd_applies, Strides};
use crate::parallel;
use crate::shape::ConvGeometry;
use std::mem::MaybeUninit;

/// Transformed input floats per block: about 1 MiB, so a block's `V` and
/// a panel's products stay in L2.
const BLOCK_FLOATS: usize = 1 << 18;

/// A point-major block's V per point at most this many floats (128 KiB).
const POINT_FLOATS: usize = 1 << 15;

/// Transformed filters above this many floats are made per panel inside
/// each task instead of once per call (16 MiB).
const SHARED_FILTER_FLOATS: usize = 4 << 20;

/// How the images of a Winograd layer lie in its tensors: plainly, or as
/// the phase images of a layer dilated by `(dh, dw)`. Image `i` of the
/// undilated layer on phases is then phase `(r, s) = (p / dw, p % dw)`,
/// `p = i % (dh * dw)`, of image `i / (dh * dw)`: its pixel `(y, x)` is
/// pixel `(y * dh + r, x * dw + s)` of the dilated layer's tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Phases {
    pub dh: usize,
    pub dw: usize,
}

impl Phases {
    /// Plain images.
    pub const NONE: Phases = Phases { dh: 1, dw: 1 };
}

/// Where the images of the geometry a kernel runs on lie in the tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// Phase images per tensor image (`dh * dw`, or `dh` with pairs).
    per_image: usize,
    dh: usize,
    dw: usize,
    /// Column phases side by side in one image (dilation 2 across).
    pair: bool,
    /// Widths of the tensors' rows, input and output.
    in_w: usize,
    out_w: usize,
    /// Zero columns between the two phases of a pair, input and output.
    in_gap: usize,
    out_gap: usize,
}

/// The geometry to run for the layer `g` laid out by `phases`, and where
/// its images lie. A dilation of 2 across runs each row's two column
/// phases side by side as one image, `off` columns apart (whole tiles,
/// with room for both phases' padding between): resnet-like 28-pixel
/// phase rows then fill 15 of a vector's 16 tile lanes in the transforms'
/// column splits instead of 7, and each row is read and written once.
fn layout(g: &ConvGeometry, phases: Phases) -> (ConvGeometry, Layout) {
    let (dh, dw) = (phases.dh, phases.dw);
    let plain = Layout {
        per_image: dh * dw,
        dh,
        dw,
        pair: false,
        in_w: g.w * dw,
        out_w: g.ow * dw,
        in_gap: 0,
        out_gap: 0,
    };
    if dw != 2 || g.kw != 3 || g.sw != 1 || g.dw != 1 {
        return (*g, plain);
    }
    // Right padding of the phase layer: ow = w + pl + pr - 2.
    let pr = (g.ow + 2).saturating_sub(g.w + g.pl);
    // At least one zero column between the phases of the input and of the
    // output: the kernels tell a pair by its gap (`Strides::gap > 0`), so a
    // phase row whose padding and width left none (an unpadded input 4 or
    // 8 wide; an input gradient's output 4 or 8 wide) was read as a plain
    // row.
    let off = (g.w + g.pl)
        .max(g.w + pr)
        .max(g.w.max(g.ow) + 1)
        .next_multiple_of(4);
    let pg = ConvGeometry {
        n: g.n / 2,
        w: off + g.w,
        ow: off + g.ow,
        ..*g
    };
    let pair = Layout {
        per_image: dh,
        pair: true,
        in_gap: off - g.w,
        out_gap: off - g.ow,
        ..plain
    };
    (pg, pair)
}

impl Layout {
    /// Offset of plane `(img, c)` of a tensor of `channels` channels and
    /// rows `w` wide whose phase planes are `h` rows high.
    fn offset(self, img: usize, c: usize, channels: usize, h: usize, w: usize) -> usize {
        let (i, p) = (img / self.per_image, img % self.per_image);
        let (r, s) = if self.pair {
            (p, 0)
        } else {
            (p / self.dw, p % self.dw)
        };
        ((i * channels + c) * h * self.dh + r) * w + s
    }

    /// Input plane `(img, c)` of `channels` channels and its strides.
    fn input(self, img: usize, c: usize, channels: usize, h: usize) -> (usize, Strides) {
        (
            self.offset(img, c, channels, h, self.in_w),
            self.strides(self.in_w, self.in_gap),
        )
    }

    /// Output plane `(img, c)` of `channels` channels and its strides.
    fn output(self, img: usize, c: usize, channels: usize, h: usize) -> (usize, Strides) {
        (
            self.offset(img, c, channels, h, self.out_w),
            self.strides(self.out_w, self.out_gap),
        )
    }

    fn strides(self, w: usize, gap: usize) -> Strides {
        Strides {
            row: self.dh * w,
            col: if self.pair { 1 } else { self.dw },
            gap,
        }
    }
}

/// The two orders of the forward's products (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    PanelMajor,
    PointMajor,
}

impl Order {
    /// The order of a Winograd algorithm.
    pub fn of(algo: ConvAlgo) -> Order {
        if algo == ConvAlgo::WinogradPointMajor {
            Order::PointMajor
        } else {
            Order::PanelMajor
        }
    }
}

/// Whether `g` is a layer F(4x4, 3x3) computes as it is: 3x3, stride 1,
/// dilation 1, one group.
pub(super) fn is_f4x3(g: &ConvGeometry) -> bool {
    winograd_applies(g)
}

/// The layer Winograd runs for pass `pass` of `g`, and where its images
/// lie: `g` itself, its undilated layer on dilation phases, or for the
/// input gradient the transposed (flipped-weight) convolution of either;
/// `None` when Winograd cannot compute the pass.
fn layer_of(g: &ConvGeometry, pass: ConvPass) -> Option<(ConvGeometry, Phases)> {
    let (s, phases) = if (g.dh, g.dw) == (1, 1) {
        (*g, Phases::NONE)
    } else {
        (dilation::split(g)?, Phases { dh: g.dh, dw: g.dw })
    };
    if !winograd_applies(&s) {
        return None;
    }
    match pass {
        ConvPass::Forward => Some((s, phases)),
        ConvPass::InputGrad => transposed(&s).filter(winograd_applies).map(|t| (t, phases)),
        ConvPass::WeightGrad => weight_grad::applies(&s, phases).then_some((s, phases)),
    }
}

/// Whether Winograd in `order` computes pass `pass` of `g`.
pub(super) fn check(
    g: &ConvGeometry,
    pass: ConvPass,
    order: Order,
) -> std::result::Result<(), &'static str> {
    if (g.kh, g.kw, g.sh, g.sw, g.groups) != (3, 3, 1, 1, 1) {
        return Err("needs a 3x3 kernel, stride 1 and one group");
    }
    let Some((s, phases)) = layer_of(g, pass) else {
        return Err(match pass {
            _ if (g.dh, g.dw) != (1, 1) && dilation::split(g).is_none() => {
                "needs the sizes and padding of a dilated layer to be multiples of the dilation"
            }
            ConvPass::InputGrad => "needs padding within the kernel for the input gradient",
            _ => "needs a layer whose transforms fit its scratch caps",
        });
    };
    if order == Order::PointMajor {
        if pass == ConvPass::WeightGrad {
            return Err("has no weight gradient (Winograd's is panel by panel)");
        }
        if !plan::shareable(&layout(&s, phases).0) {
            return Err("needs a transformed filter under its 16 MiB cap");
        }
    }
    Ok(())
}

/// Whether pass `pass` of `g` (one Winograd computes) runs faster
/// point-major (see [`plan::prefers_point_major`]).
pub(super) fn prefers_point_major(g: &ConvGeometry, pass: ConvPass) -> bool {
    layer_of(g, pass).is_some_and(|(s, phases)| {
        plan::prefers_point_major(&layout(&s, phases).0, ukernel::menu().lanes)
    })
}

/// `out` (every element written) = pass `pass` (forward or input gradient)
/// of `g` by F(4x4, 3x3) in `order`: the convolution of `input` (the
/// input, or grad_output) with `weight` seen through `view` (the forward
/// weight, or the flipped one). A dilated `g` runs on its phases, read and
/// written in place.
pub(super) fn forward(
    g: &ConvGeometry,
    pass: ConvPass,
    order: Order,
    input: &[f32],
    weight: &[f32],
    view: WeightView,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    let Some((s, phases)) = layer_of(g, pass) else {
        return Err(super::not_dispatched(ConvAlgo::Winograd));
    };
    let (lg, lay) = layout(&s, phases);
    let threads = parallel::threads_for(lg.macs());
    let lanes = ukernel::menu().lanes;
    let plan = plan::ForwardPlan::new(&lg, lay, view, order, threads, lanes);
    forward::run(&plan, input, weight, out)
}

/// `grad_weight` (every element written) = the weight gradient of `g` by
/// F(3x3, 4x4), a dilated `g` on its phases.
pub(super) fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [MaybeUninit<f32>],
) -> Result<()> {
    let Some((s, phases)) = layer_of(g, ConvPass::WeightGrad) else {
        return Err(super::not_dispatched(ConvAlgo::Winograd));
    };
    weight_grad::run(&s, phases, input, grad_output, grad_weight)
}

/// The input transform of channels `[c0, c1)` of tile rows `[r0, r1)` into
/// `V` at `v`: 36 rows of `c_in * tbp` floats, channel `c` at `c * tbp`.
///
/// # Safety
/// `v` points at such a `V`; no one else writes those channels' floats.
unsafe fn transform_input(
    g: &ConvGeometry,
    lay: Layout,
    input: &[f32],
    rows: (usize, usize),
    (c0, c1): (usize, usize),
    tbp: usize,
    v: *mut f32,
    sin: &mut [f32],
) {
    let cin = g.c_in;
    for c in c0..c1 {
        let strides = lay.input(0, c, cin, g.h).1;
        let plane = |img: usize| input[lay.input(img, c, cin, g.h).0..].as_ptr();
        // SAFETY: planes of channel c exist for every image of the block;
        // the caller gives V.
        unsafe { input_block(g, &plane, strides, rows, v.add(c * tbp), cin * tbp, sin) };
    }
}

#[cfg(test)]
/// A 3x3, padding-1 layer of `n` images of `c` channels on `side` x `side`
/// planes into `cout` channels.
fn layer(n: usize, c: usize, side: usize, cout: usize) -> ConvGeometry {
    ConvGeometry {
        n,
        c_in: c,
        h: side,
        w: side,
        c_out: cout,
        kh: 3,
        kw: 3,
        groups: 1,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        pt: 1,
        pl: 1,
        oh: side,
        ow: side,
    }
}
