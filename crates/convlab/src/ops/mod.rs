//! Checked, shaped functional ops. Each file holds one op family: its
//! parameters and validation, the forward and backward passes side by side,
//! and the plain reference loop every fast path is tested against.
//!
//! Gradients follow one convention: `*_backward` returns the gradient of
//! `sum(output * grad_output)` with respect to each input.

pub mod adaptive_pool;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod corr2d;
pub mod grid_sample;
pub mod interpolate;
pub mod linear;
pub mod pad;
pub mod pool;
pub mod shuffle;
pub mod unfold;

pub use adaptive_pool::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
};

pub use conv2d::{
    conv2d, conv2d_backward, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight,
    Conv2dGrads, Conv2dParams,
};
pub use conv_transpose2d::{conv_transpose2d, conv_transpose2d_backward, ConvTranspose2dParams};
pub use corr2d::{convolve2d, corr2d, corr2d_backward};
pub use grid_sample::{
    affine_grid, affine_grid_backward, grid_sample, grid_sample_backward, GridSampleMode,
    GridSamplePadding, GridSampleParams,
};
pub use interpolate::{
    interpolate, interpolate_backward, InterpolateMode, InterpolateParams, PerAxis,
};
pub use linear::{linear, linear_backward};
pub use pad::{pad, pad2d, pad2d_backward, pad_backward, PadMode};
pub use pool::{
    avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_with_indices,
    AvgDivisor, AvgPool2dParams, MaxPool2dParams, PoolGeometry,
};
pub use shuffle::{
    channel_shuffle, channel_shuffle_backward, pixel_shuffle, pixel_shuffle_backward,
    pixel_unshuffle, pixel_unshuffle_backward,
};
pub use unfold::{fold, fold_backward, unfold, unfold_backward, UnfoldParams};

use crate::shape::ConvGeometry;
use std::cell::Cell;

/// The convolution algorithms the dispatcher can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Let the dispatcher choose by shape.
    Auto,
    /// The plain reference loops (slow; the oracle).
    Reference,
    /// im2col over bands of output rows, then GEMM.
    Im2col,
    /// Direct loops vectorised along the output width (horizontal stride 1;
    /// else im2col): depthwise and single-channel layers.
    Direct,
    /// Winograd F(4x4, 3x3) (3x3, stride 1, dilation 1, one group): the
    /// forward pass, the input gradient (the same transform on the flipped,
    /// transposed weight) and the weight gradient (F(3x3, 4x4)); and Winograd
    /// on the four phases of stride-2 forwards (one group, dilation 1),
    /// F(3x3, 4x4) for kernels up to 8x8 (7x7 stems) and F(4x4, 2x2) up
    /// to 4x4. Else im2col.
    Winograd,
    /// 2-D real FFTs (stride 1, dilation 1, one group, spectra under the
    /// scratch cap; else im2col): all three passes.
    Fft,
    /// Implicit GEMM on flattened, zero-padded phase images (any stride,
    /// dilation, padding and groups): register-blocked tiles read the
    /// input in place through a table of tap offsets. Stride-1 forwards of
    /// small planes whose flat rows would drop many columns pack a batch
    /// of images one per vector lane instead.
    ImplicitGemm,
    /// Two 1-D passes, along rows then down columns, for filters that are
    /// outer products (Gaussian, box, Sobel) in layers of one input and
    /// one output plane per group: the forward pass and the stride-1 input
    /// gradient. The one choice made on the weight's values: other filters
    /// and shapes take the dispatcher's path (forced: im2col).
    Separable,
}

impl ConvAlgo {
    /// The lower-case name used by `convlab bench --algo`.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Auto => "auto",
            ConvAlgo::Reference => "reference",
            ConvAlgo::Im2col => "im2col",
            ConvAlgo::Direct => "direct",
            ConvAlgo::Winograd => "winograd",
            ConvAlgo::Fft => "fft",
            ConvAlgo::ImplicitGemm => "implicit-gemm",
            ConvAlgo::Separable => "separable",
        }
    }

    /// Every algorithm a test can force.
    pub const ALL: [ConvAlgo; 7] = [
        ConvAlgo::Reference,
        ConvAlgo::Im2col,
        ConvAlgo::Direct,
        ConvAlgo::Winograd,
        ConvAlgo::Fft,
        ConvAlgo::ImplicitGemm,
        ConvAlgo::Separable,
    ];
}

thread_local! {
    static FORCED: Cell<ConvAlgo> = const { Cell::new(ConvAlgo::Auto) };
}

/// Force every convolution run on this thread to use `algo` until the
/// returned guard is dropped (for tests and benchmarks).
///
/// ```
/// use convlab::ops::{force_conv_algo, ConvAlgo};
/// let _guard = force_conv_algo(ConvAlgo::Reference);
/// ```
pub fn force_conv_algo(algo: ConvAlgo) -> ForcedAlgo {
    let previous = FORCED.with(|f| f.replace(algo));
    ForcedAlgo { previous }
}

/// Restores the previous forced algorithm when dropped.
#[must_use = "the algorithm is forced only while the guard lives"]
pub struct ForcedAlgo {
    previous: ConvAlgo,
}

impl Drop for ForcedAlgo {
    fn drop(&mut self) {
        FORCED.with(|f| f.set(self.previous));
    }
}

/// Whether the calling thread is a worker of a rayon pool. From a worker a
/// parallel region is a push onto its own deque (an empty `join` 0.04 us
/// here); from any other thread rayon injects the job, wakes a worker and
/// blocks the caller until it is done (14 us on this VM), so ops of a few
/// microseconds split only when called from a worker.
pub(crate) fn on_pool_worker() -> bool {
    rayon::current_thread_index().is_some()
}

/// `a` and `b` side by side on the rayon pool, each under the algorithm
/// forced on the calling thread (the force is thread-local, and either
/// closure may run on another thread).
pub(crate) fn join_forced<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    let algo = forced_algo();
    rayon::join(
        move || {
            let _f = force_conv_algo(algo);
            a()
        },
        move || {
            let _f = force_conv_algo(algo);
            b()
        },
    )
}

/// The three passes of a convolution, which the dispatcher chooses for
/// separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

/// The algorithm forced on this thread ([`ConvAlgo::Auto`] when none).
pub(crate) fn forced_algo() -> ConvAlgo {
    FORCED.with(|f| f.get())
}

/// The algorithm for pass `pass` of geometry `g`: the forced one, or the
/// dispatcher's choice.
pub(crate) fn conv_algo(g: &ConvGeometry, pass: Pass) -> ConvAlgo {
    match forced_algo() {
        ConvAlgo::Auto => choose(g, pass),
        forced => forced,
    }
}

/// Below this many multiply-adds fixed costs decide: the im2col path (one
/// GEMM call of the `gemm` crate) has the fewest. The digits net's first
/// layer (0.3 M) took 0.016 ms there against 0.044 ms on implicit GEMM.
const SMALL_MACS: u128 = 1 << 20;

/// The dispatcher: the one place that picks an algorithm by shape and pass.
/// Figures are 2-thread medians on this repo's bench machine (AVX-512).
/// Separable filters are picked ahead of it, on the weight's values
/// (`conv2d::separable_path::factors`).
fn choose(g: &ConvGeometry, pass: Pass) -> ConvAlgo {
    use crate::kernels::direct::direct_applies;
    use crate::kernels::winograd::winograd_applies;
    // Large kernels: FFTs when their rough flop count is well under the
    // direct multiply-adds (see `fft_path::pays`; image_31x31 fwd 27.6 ->
    // 2.95 ms, bwd 52.1 -> 3.87 ms).
    if conv2d::fft_path::applies(g) && conv2d::fft_path::pays(g) {
        return ConvAlgo::Fft;
    }
    // One input channel and one or two outputs per group (depthwise,
    // single-channel image filters): nothing for a GEMM to block; the
    // direct kernel runs along whole rows (mobilenet_dw_3x3 fwd 11.0 ms
    // im2col -> 1.55 ms direct). More outputs per group (LeNet's first
    // layer, 6) are a GEMM again: 0.62 ms direct -> 0.12 ms implicit.
    if direct_applies(g) && g.cin_g() == 1 && g.cout_g() <= 2 {
        return ConvAlgo::Direct;
    }
    // Winograd F(4x4, 3x3) with enough channels to amortise its transforms
    // (resnet 3x3 layers, 64..512 channels): 2.2x fewer multiplies, when
    // the 4x4 tiles are mostly inside the plane and there are a few per
    // image (the digits net's 4x4 planes, one tile each: 1.33 ms against
    // 0.64 ms on im2col; resnet_3x3_512's 7x7, four tiles at 77%: 4.5
    // against 6.6 ms).
    let (th, tw) = (g.oh.div_ceil(4), g.ow.div_ceil(4));
    if winograd_applies(g)
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
    if pass == Pass::Forward
        && crate::kernels::winograd_s2::applies(g)
        && crate::kernels::winograd_s2::phase_taps(g.kh, g.pt).1 == 4
        && crate::kernels::winograd_s2::phase_taps(g.kw, g.pl).1 == 4
        && g.cout_g() >= 16
        && g.oh * g.ow >= 64
    {
        return ConvAlgo::Winograd;
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
        Pass::Forward if g.sh == 2 && g.sw == 2 && taps >= 256 && g.n * g.cout_g() >= 256 => {
            ConvAlgo::Im2col
        }
        // Implicit GEMM reads the padded input in place: stem 8.2 -> 5.8
        // ms, lenet_c2 0.49 -> 0.26, dilated 6.5 -> 4.6 against im2col. A
        // pointwise layer's flat rows are its whole planes, dense vectors:
        // bottleneck_1x1 1.45 against 1.66 ms on the `gemm` crate, 4x64x56x56
        // -> 256 1.4-1.8 against 2.3. On 7x7 planes (512 -> 2048) the crate
        // packs better (2.9-3.2 against 3.1-4.0).
        Pass::Forward if !pointwise || g.oh * g.ow >= 196 => ConvAlgo::ImplicitGemm,
        // Stride 1 with several input channels: one flat phase (lenet_c2
        // 0.67 -> 0.57 ms). Strided input gradients have a phase per offset
        // and measured slower than col2im (resnet_3x3_s2 3.6 against 2.4).
        Pass::InputGrad if g.sh == 1 && g.sw == 1 && !pointwise && g.cin_g() >= 4 => {
            ConvAlgo::ImplicitGemm
        }
        // Deep reductions over nearly dense flat rows: stem 10.5 -> 7.4 ms,
        // resnet_3x3_s2 6.3 -> 3.1, dilated 7.7 -> 5.2. With few output
        // channels even dropped columns or a pointwise layer pay (lenet_c2,
        // 10 of 14 columns kept: 0.27-0.30 against 0.38-0.47 ms;
        // bottleneck_1x1, 256 -> 64: 1.7-1.9 against 2.0-2.2), but not with
        // more (4x64x56x56 -> 256 pointwise: 3.8-3.9 against 1.8 ms). Few
        // taps (LeNet's first layer, 25) favour im2col.
        Pass::WeightGrad if taps >= 128 && ((kept >= 0.85 && !pointwise) || g.cout_g() <= 64) => {
            ConvAlgo::ImplicitGemm
        }
        _ => ConvAlgo::Im2col,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// The second closure, stolen by the pool's other thread (the first
    /// waits until it starts), still runs under the caller's forced
    /// algorithm.
    #[test]
    fn join_forced_carries_the_force_to_other_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (a, b) = pool.install(|| {
            let _f = force_conv_algo(ConvAlgo::Fft);
            let started = AtomicBool::new(false);
            join_forced(
                || {
                    let t0 = Instant::now();
                    while !started.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(5)
                    {
                        std::hint::spin_loop();
                    }
                    (forced_algo(), std::thread::current().id())
                },
                || {
                    started.store(true, Ordering::Release);
                    (forced_algo(), std::thread::current().id())
                },
            )
        });
        assert_ne!(a.1, b.1, "the second closure ran on the first's thread");
        assert_eq!((a.0, b.0), (ConvAlgo::Fft, ConvAlgo::Fft));
    }
}
