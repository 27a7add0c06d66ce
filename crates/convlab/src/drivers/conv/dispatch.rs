//! The dispatcher: the one place that decides which algorithm computes each
//! pass of a convolution. [`check`] says whether an algorithm can compute a
//! pass at all (and why not); [`choose`] picks the fastest that can, by
//! rules each of which cites the measurement that set it; [`select`]
//! returns the forced algorithm instead when a test or benchmark forced one,
//! or an error when it cannot compute the pass. Everything below (the
//! drivers and kernels) runs what it is given.

use super::context;
use super::{batched, dilation, direct, fft, lanes, separable, winograd};
use super::{winograd_s2, Call};
use crate::error::{Error, Result};
use crate::kernels::finite;
use crate::shape::ConvGeometry;
use std::cell::OnceCell;

/// The convolution algorithms, one per code path; forced with
/// [`force_conv_algo`](crate::ops::force_conv_algo), observed with
/// [`record_conv_algos`](crate::ops::record_conv_algos).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConvAlgo {
    /// Let the dispatcher choose (what [`force_conv_algo`](crate::ops::force_conv_algo)
    /// with `Auto` restores).
    Auto,
    /// The plain loops that define the convolution, in f64 (slow; the
    /// oracle). Every pass.
    Reference,
    /// im2col over bands of output rows, then one `gemm` crate call per
    /// image and group (col2im for the input gradient). Every pass.
    Im2col,
    /// im2col of a whole batch of small planes side by side, one GEMM on
    /// the tile kernel for all images (one group, two or more images,
    /// output planes of at most 256 pixels). Forward and input gradient.
    Im2colBatched,
    /// Implicit GEMM on flattened, zero-padded phase images: register tiles
    /// read the input in place through a table of tap offsets. Every pass,
    /// any stride, dilation, padding and groups.
    ImplicitGemm,
    /// Implicit GEMM with a batch of images packed one per vector lane, so
    /// no column is computed to be dropped (one group, stride 1, at least a
    /// vector of images). Forward only.
    ImplicitGemmLanes,
    /// Direct loops vectorised along the output width (horizontal stride
    /// 1; the input gradient needs stride 1 both ways): depthwise and
    /// single-channel layers. Every pass.
    Direct,
    /// 2-D real FFTs (stride 1, dilation 1, one group, spectra under the
    /// scratch cap). Every pass.
    Fft,
    /// Winograd F(4x4, 3x3) (3x3, stride 1, one group; dilated layers run
    /// undilated on their dilation phases), blocks of tiles run panel of
    /// output channels by panel. Every pass: the input gradient is the
    /// same transform on the flipped, transposed weight, the weight
    /// gradient F(3x3, 4x4).
    Winograd,
    /// Winograd F(4x4, 3x3) with each of the 36 products run over all of a
    /// task's output channels in turn (few tiles of many channels).
    /// Forward and input gradient.
    WinogradPointMajor,
    /// Winograd F(3x3, 4x4) over the four phases of a stride-2 input
    /// (phase kernels of 3 or 4 taps a side: kernels up to 8x8, the 7x7
    /// stem). Forward only.
    WinogradStride2F3x4,
    /// Winograd F(4x4, 2x2) over the four phases of a stride-2 input
    /// (phase kernels of 1 or 2 taps a side: kernels up to 4x4). Forward
    /// only.
    WinogradStride2F4x2,
    /// Two 1-D passes for filters that are outer products (Gaussian, box,
    /// Sobel) in layers of one input and one output plane per group: the
    /// forward and, at stride 1, the input gradient. Chosen on the weight's
    /// values.
    Separable,
}

impl ConvAlgo {
    /// Every algorithm a test can force (all but [`ConvAlgo::Auto`]).
    pub const ALL: [ConvAlgo; 12] = [
        ConvAlgo::Reference,
        ConvAlgo::Im2col,
        ConvAlgo::Im2colBatched,
        ConvAlgo::ImplicitGemm,
        ConvAlgo::ImplicitGemmLanes,
        ConvAlgo::Direct,
        ConvAlgo::Fft,
        ConvAlgo::Winograd,
        ConvAlgo::WinogradPointMajor,
        ConvAlgo::WinogradStride2F3x4,
        ConvAlgo::WinogradStride2F4x2,
        ConvAlgo::Separable,
    ];

    /// Whether every output is a plain sum of its window's products (in
    /// f32; [`ConvAlgo::Reference`] in f64), so that its rounding error
    /// depends only on the values in its window: the im2col, implicit GEMM
    /// and direct families. Winograd's tile transforms, FFTs and the
    /// separable passes are not exact; see
    /// [`use_exact_algorithms`](crate::ops::use_exact_algorithms).
    pub fn is_exact(self) -> bool {
        matches!(
            self,
            ConvAlgo::Reference
                | ConvAlgo::Im2col
                | ConvAlgo::Im2colBatched
                | ConvAlgo::ImplicitGemm
                | ConvAlgo::ImplicitGemmLanes
                | ConvAlgo::Direct
        )
    }

    /// The lower-case name used by `convlab bench --algo` and in errors.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Auto => "auto",
            ConvAlgo::Reference => "reference",
            ConvAlgo::Im2col => "im2col",
            ConvAlgo::Im2colBatched => "im2col-batched",
            ConvAlgo::ImplicitGemm => "implicit-gemm",
            ConvAlgo::ImplicitGemmLanes => "implicit-gemm-lanes",
            ConvAlgo::Direct => "direct",
            ConvAlgo::Fft => "fft",
            ConvAlgo::Winograd => "winograd",
            ConvAlgo::WinogradPointMajor => "winograd-point-major",
            ConvAlgo::WinogradStride2F3x4 => "winograd-s2-f3x4",
            ConvAlgo::WinogradStride2F4x2 => "winograd-s2-f4x2",
            ConvAlgo::Separable => "separable",
        }
    }
}

/// The passes of a convolution, which the dispatcher chooses for
/// separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvPass {
    /// The output.
    Forward,
    /// The gradient with respect to the input.
    InputGrad,
    /// The gradient with respect to the weight.
    WeightGrad,
}

impl ConvPass {
    /// The three passes.
    pub const ALL: [ConvPass; 3] = [ConvPass::Forward, ConvPass::InputGrad, ConvPass::WeightGrad];

    /// `"forward"`, `"input gradient"`, `"weight gradient"`.
    pub fn name(self) -> &'static str {
        match self {
            ConvPass::Forward => "forward",
            ConvPass::InputGrad => "input gradient",
            ConvPass::WeightGrad => "weight gradient",
        }
    }
}

/// The operands' values, for the rules that look at more than shapes:
/// separable filters are found in the weight, and algorithms that mix
/// values across windows need finite operands.
#[derive(Debug, Default)]
pub(crate) struct Values<'a> {
    /// The weight, `[c_out, c_in / groups, kh, kw]`.
    pub weight: Option<&'a [f32]>,
    /// The pass's two data operands (forward: input, weight; input
    /// gradient: grad_output, weight; weight gradient: input,
    /// grad_output), each scanned for NaN and infinity at most once, and
    /// only when an algorithm that mixes windows is considered.
    operands: [&'a [f32]; 2],
    finite: [OnceCell<bool>; 2],
}

impl<'a> Values<'a> {
    /// The values of a pass: its `weight` (when it reads one) and its two
    /// operands.
    pub fn new(weight: Option<&'a [f32]>, operands: [&'a [f32]; 2]) -> Values<'a> {
        Values {
            weight,
            operands,
            finite: Default::default(),
        }
    }

    /// Just a weight (the operands count as finite).
    #[cfg(test)]
    pub fn of_weight(weight: &'a [f32]) -> Values<'a> {
        Values::new(Some(weight), [&[], &[]])
    }

    /// Whether the operands `mask` names (bit 0: the first, bit 1: the
    /// second) are free of NaN and infinity.
    fn finite(&self, mask: u8) -> bool {
        (0..2)
            .all(|i| mask & (1 << i) == 0 || *self.finite[i].get_or_init(|| scan(self.operands[i])))
    }
}

/// Whether `x` is free of NaN and infinity, on the pool's threads for
/// large buffers. The scan reads about 100 GB/s from cache on one thread
/// (3.2 MB, resnet_3x3_64's input, in 33 us); halves run side by side
/// from 1 MB on, so it stays near 1% of the Winograd layers it guards
/// (resnet_3x3_64 forward 2.6 ms at two threads).
fn scan(x: &[f32]) -> bool {
    const SPLIT: usize = 1 << 18;
    if x.len() < SPLIT || crate::parallel::threads() < 2 {
        return finite::all_finite(x);
    }
    let (a, b) = x.split_at(x.len() / 2);
    let (fa, fb) = crate::parallel::join(|| scan(a), || scan(b));
    fa && fb
}

/// The operands (a mask for [`Values::finite`]) that `algo` needs free of
/// NaN and infinity to keep them local to the outputs whose window covers
/// them, as PyTorch does. Winograd transforms whole tiles (a NaN in a 6x6
/// input tile reaches all 16 outputs of the tile) and FFTs whole planes.
/// The implicit GEMM's weight gradient sums over the flat rows' dropped
/// columns too, whose zero gradients times a NaN of the input are NaN.
/// The weight is never scanned: a NaN there reaches every output of its
/// channel on every algorithm, and weights are large where inputs are
/// small (resnet_3x3_512: 9.4 MB against 0.4 MB).
fn needs_finite(algo: ConvAlgo, g: &ConvGeometry, pass: ConvPass) -> u8 {
    let mixes = matches!(
        algo,
        ConvAlgo::Fft
            | ConvAlgo::Winograd
            | ConvAlgo::WinogradPointMajor
            | ConvAlgo::WinogradStride2F3x4
            | ConvAlgo::WinogradStride2F4x2
    );
    match pass {
        ConvPass::Forward | ConvPass::InputGrad if mixes => 0b01,
        ConvPass::WeightGrad if mixes => 0b11,
        ConvPass::WeightGrad if algo == ConvAlgo::ImplicitGemm && g.kw > 1 => 0b01,
        _ => 0,
    }
}

/// Whether `algo` can compute pass `pass` of `g`, and if not why. `g` is a
/// validated geometry whose pass has a non-empty result and non-empty sums
/// (the drivers' entry points handle the rest without an algorithm).
pub(crate) fn check(
    algo: ConvAlgo,
    g: &ConvGeometry,
    pass: ConvPass,
    values: &Values,
) -> std::result::Result<(), &'static str> {
    let shape = match algo {
        ConvAlgo::Auto | ConvAlgo::Reference | ConvAlgo::Im2col | ConvAlgo::ImplicitGemm => Ok(()),
        ConvAlgo::Im2colBatched => batched::check(g, pass),
        ConvAlgo::ImplicitGemmLanes => lanes::check(g, pass),
        ConvAlgo::Direct => direct::check(g, pass),
        ConvAlgo::Fft => fft::check(g),
        ConvAlgo::Winograd => winograd::check(g, pass, winograd::Order::PanelMajor),
        ConvAlgo::WinogradPointMajor => winograd::check(g, pass, winograd::Order::PointMajor),
        ConvAlgo::WinogradStride2F3x4 => winograd_s2::check(g, pass, winograd_s2::Tiling::F3x4),
        ConvAlgo::WinogradStride2F4x2 => winograd_s2::check(g, pass, winograd_s2::Tiling::F4x2),
        ConvAlgo::Separable => separable::check(g, pass, values.weight),
    };
    shape?;
    if !algo.is_exact() && context::exact_algorithms_enabled() {
        return Err("is not exact, and use_exact_algorithms asks for exact algorithms only");
    }
    if !values.finite(needs_finite(algo, g, pass)) {
        return Err("mixes values across windows, and an operand holds NaN or infinity");
    }
    Ok(())
}

/// Whether `algo` can compute pass `pass` of `g` (see [`check`]).
pub(crate) fn applies(algo: ConvAlgo, g: &ConvGeometry, pass: ConvPass, values: &Values) -> bool {
    check(algo, g, pass, values).is_ok()
}

/// The algorithm for pass `pass` of `g`: the one forced on this thread, or
/// [`choose`]'s. A forced algorithm that cannot compute the pass is an
/// error naming the op, the algorithm and why.
pub(crate) fn select(
    call: Call,
    g: &ConvGeometry,
    pass: ConvPass,
    values: &Values,
) -> Result<ConvAlgo> {
    match context::forced() {
        ConvAlgo::Auto => Ok(choose(g, pass, values)),
        forced => match check(forced, g, pass, values) {
            Ok(()) => Ok(forced),
            Err(why) => Err(Error::param(
                call.op,
                "algorithm",
                format!(
                    "{} (forced) cannot compute the {}: it {why}",
                    forced.name(),
                    call.pass.name()
                ),
            )),
        },
    }
}

/// Below this many multiply-adds fixed costs decide: the im2col path (one
/// GEMM call of the `gemm` crate) has the fewest. The digits net's first
/// layer (0.3 M) took 0.016 ms there against 0.044 ms on implicit GEMM.
const SMALL_MACS: u128 = 1 << 20;

/// The dispatcher's choice for pass `pass` of `g`: the one place an
/// algorithm is picked. Figures are 2-thread medians on the bench machine
/// (AVX-512) unless they say otherwise. The result always [`applies`],
/// and depends on the geometry, the pass, the operands' values, the
/// instruction set and [`use_exact_algorithms`](crate::ops::use_exact_algorithms)
/// only (never on the thread count).
pub(crate) fn choose(g: &ConvGeometry, pass: ConvPass, values: &Values) -> ConvAlgo {
    let exact = context::exact_algorithms_enabled();
    let fastest = choose_among(g, pass, values, exact);
    // NaN and infinity reach exactly the outputs whose window covers them
    // (as in PyTorch) only on algorithms that keep windows apart; the scan
    // that decides runs only when the fastest mixes them.
    if !values.finite(needs_finite(fastest, g, pass)) {
        return choose_among(g, pass, values, true);
    }
    fastest
}

/// [`choose`]'s rules, over the exact algorithms only when `exact`.
fn choose_among(g: &ConvGeometry, pass: ConvPass, values: &Values, exact: bool) -> ConvAlgo {
    if exact {
        return settle(g, pass, by_shape(g, pass, true), values);
    }
    // Separable filters from 5x5 up: on a 1080p plane (2 threads) 3x3 ran
    // 0.51-0.59 ms in two passes against 0.46-0.49 direct; 5x5 0.62-0.74
    // against 2.0 (`bench/separable.json`).
    if g.kh * g.kw >= 2 * (g.kh + g.kw) && applies(ConvAlgo::Separable, g, pass, values) {
        return ConvAlgo::Separable;
    }
    // A dilated stride-1 layer whose undilated phase layer would run on
    // Winograd runs there (dilated_3x3_d2: four 28x28 phases of each
    // 56x56 image, a resnet_3x3_64-like layer; forward 6.5 -> 4.6 ms).
    if let Some(s) = dilation::split(g) {
        if by_shape(&s, pass, false) == ConvAlgo::Winograd {
            if let Some(algo) = winograd_order(g, pass) {
                return algo;
            }
        }
    }
    settle(g, pass, by_shape(g, pass, false), values)
}

/// The rules on the shape alone, before [`settle`] picks among an
/// algorithm's variants (or falls back to im2col where the rule's
/// algorithm cannot compute the pass); without the FFT and Winograd rules
/// when `exact`.
fn by_shape(g: &ConvGeometry, pass: ConvPass, exact: bool) -> ConvAlgo {
    // Large kernels: FFTs when their rough flop count is well under the
    // direct multiply-adds (see `fft::pays`; image_31x31 fwd 27.6 ->
    // 2.95 ms, bwd 52.1 -> 3.87 ms).
    // FFTs cost at least 2 products per spectrum point and pair of planes,
    // and spectra are at least the output's size, so they never pay for
    // 8 taps or fewer (`4 * 2 < kh * kw`): the cheap test first, since
    // sizing the spectra was 1,800 instructions of d2l_edge's 0.6 us
    // backward.
    if !exact && g.kh * g.kw > 8 && fft::check(g).is_ok() && fft::pays(g) {
        return ConvAlgo::Fft;
    }
    // One input channel and one or two outputs per group (depthwise,
    // single-channel image filters): nothing for a GEMM to block; the
    // direct kernel runs along whole rows (mobilenet_dw_3x3 fwd 11.0 ms
    // im2col -> 1.55 ms direct). More outputs per group (LeNet's first
    // layer, 6) are a GEMM again: 0.62 ms direct -> 0.12 ms implicit.
    if g.sw == 1 && g.cin_g() == 1 && g.cout_g() <= 2 {
        return ConvAlgo::Direct;
    }
    // Winograd F(4x4, 3x3) with enough channels to amortise its transforms
    // (resnet 3x3 layers, 64..512 channels): 2.2x fewer multiplies, when
    // the 4x4 tiles are mostly inside the plane and there are a few per
    // image (the digits net's 4x4 planes, one tile each: 1.33 ms against
    // 0.64 ms on im2col; resnet_3x3_512's 7x7, four tiles at 77%: 4.5
    // against 6.6 ms).
    let (th, tw) = (g.oh.div_ceil(4), g.ow.div_ceil(4));
    if !exact
        && winograd::is_f4x3(g)
        && g.cin_g() >= 16
        && g.cout_g() >= 16
        && th * tw >= 4
        && (g.oh * g.ow * 10) >= 7 * 16 * th * tw
    {
        return ConvAlgo::Winograd;
    }
    // Stride-2 forwards whose phase kernels fill 4x4 (7x7 kernels, the
    // ResNet stem): Winograd F(3x3, 4x4) over the input's four phases, 64
    // products per 9 outputs and input channel where the kernel takes 49
    // per output (stem, `convlab bench` best of 4: 6.07 -> 5.19 ms at one
    // thread, medians of 6 at two 4.32 -> 3.24). 3x3 stride-2 layers on
    // F(4x4, 2x2) (100 products per 16 outputs against 144) measured
    // slower than im2col (resnet_3x3_s2_128, one thread: 5.6 against 4.0
    // ms) and are left to the rules below.
    if !exact
        && pass == ConvPass::Forward
        && winograd_s2::fills_4x4(g)
        && g.cout_g() >= 16
        && g.oh * g.ow >= 64
    {
        return ConvAlgo::WinogradStride2F3x4;
    }
    // Small work, or planes so small that a flat row is mostly padding
    // (the digits net's 4x4 planes: 0.087 ms on im2col, 0.114 on implicit).
    if g.macs() < SMALL_MACS || g.oh * g.ow < 64 {
        return ConvAlgo::Im2col;
    }
    let pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1;
    // Columns of the flat layout that are kept (the rest is wasted work).
    let kept = g.ow as f64 / (g.ow + (g.kw - 1) * g.dw / g.sw) as f64;
    let taps = g.cin_g() * g.kh * g.kw;
    match pass {
        // Stride-2 layers with deep reductions over several images or
        // output channels: the `gemm` crate on im2col columns (even/odd
        // row halves) beat the implicit GEMM's phase images in medians
        // of 6-10 paired rounds (resnet_3x3_s2_128 3.12 against 3.60 ms,
        // at 2 and 8 images alike; 128 -> 256 on 28x28 3.22 against 3.62;
        // 256 -> 512 on 14x14 5.05 against 5.71; 4x64x112x112 -> 64 6.75
        // against 8.36). One such image into 64 channels went the other
        // way (2.13 against 2.78), and the stem (147 taps) does too.
        ConvPass::Forward if g.sh == 2 && g.sw == 2 && taps >= 256 && g.n * g.cout_g() >= 256 => {
            ConvAlgo::Im2col
        }
        // Implicit GEMM reads the padded input in place: stem 8.2 -> 5.8
        // ms, lenet_c2 0.49 -> 0.26, dilated 6.5 -> 4.6 against im2col. A
        // pointwise layer's flat rows are its whole planes, dense vectors:
        // bottleneck_1x1 1.45 against 1.66 ms on the `gemm` crate, 4x64x56x56
        // -> 256 1.4-1.8 against 2.3. On 7x7 planes (512 -> 2048) the crate
        // packs better (2.9-3.2 against 3.1-4.0).
        ConvPass::Forward if !pointwise || g.oh * g.ow >= 196 => ConvAlgo::ImplicitGemm,
        // Stride 1 with several input channels: one flat phase (lenet_c2
        // 0.67 -> 0.57 ms). Strided input gradients have a phase per offset
        // and measured slower than col2im (resnet_3x3_s2 3.6 against 2.4).
        ConvPass::InputGrad if g.sh == 1 && g.sw == 1 && !pointwise && g.cin_g() >= 4 => {
            ConvAlgo::ImplicitGemm
        }
        // Deep reductions over nearly dense flat rows: stem 10.5 -> 7.4 ms,
        // resnet_3x3_s2 6.3 -> 3.1, dilated 7.7 -> 5.2. With few output
        // channels even dropped columns or a pointwise layer pay (lenet_c2,
        // 10 of 14 columns kept: 0.27-0.30 against 0.38-0.47 ms;
        // bottleneck_1x1, 256 -> 64: 1.7-1.9 against 2.0-2.2), but not with
        // more (4x64x56x56 -> 256 pointwise: 3.8-3.9 against 1.8 ms). Few
        // taps (LeNet's first layer, 25) favour im2col.
        ConvPass::WeightGrad
            if taps >= 128 && ((kept >= 0.85 && !pointwise) || g.cout_g() <= 64) =>
        {
            ConvAlgo::ImplicitGemm
        }
        _ => ConvAlgo::Im2col,
    }
}

/// The algorithm that computes the pass for the family `by_shape` picked:
/// its variant for this shape, or the im2col family where the rule's
/// algorithm cannot compute this pass (or these values).
fn settle(g: &ConvGeometry, pass: ConvPass, algo: ConvAlgo, values: &Values) -> ConvAlgo {
    let usable = |a: ConvAlgo| applies(a, g, pass, values).then_some(a);
    let found = match algo {
        ConvAlgo::Winograd => winograd_order(g, pass),
        // Small planes of a batch with many dropped flat columns pack their
        // images one per vector lane instead (see `lanes::pays`).
        ConvAlgo::ImplicitGemm if lanes::pays(g) => {
            usable(ConvAlgo::ImplicitGemmLanes).or(usable(algo))
        }
        ConvAlgo::Im2col => None,
        other => usable(other),
    };
    found.unwrap_or_else(|| {
        // A batch of small planes: every image's columns side by side for
        // one GEMM on the tile kernel (the digits net's 4x4 planes, N = 16
        // columns per image: per-call setup of the `gemm` crate cost more
        // than the arithmetic).
        usable(ConvAlgo::Im2colBatched).unwrap_or(ConvAlgo::Im2col)
    })
}

/// Winograd in the order that suits pass `pass` of `g`, if Winograd can
/// compute it: point-major when panel-major blocks would run the thin
/// (one-vector) tile kernel but a block whose V per point stays in L2 is
/// wide enough for a wider one (resnet_3x3_256: 16-tile blocks, each
/// re-reading the 9.4 MB transformed filter, against one block of 64
/// tiles: forward 3.35 -> 2.97 ms at two threads, medians of 16
/// interleaved rounds, no change at one thread).
fn winograd_order(g: &ConvGeometry, pass: ConvPass) -> Option<ConvAlgo> {
    let none = Values::default();
    if !applies(ConvAlgo::Winograd, g, pass, &none) {
        return None;
    }
    let point = winograd::prefers_point_major(g, pass)
        && applies(ConvAlgo::WinogradPointMajor, g, pass, &none);
    Some(if point {
        ConvAlgo::WinogradPointMajor
    } else {
        ConvAlgo::Winograd
    })
}

#[cfg(test)]
#[path = "dispatch_table.rs"]
mod table;
