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
pub mod linear;
pub mod pad;
pub mod pool;
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
pub use linear::{linear, linear_backward};
pub use pad::{pad2d, pad2d_backward};
pub use pool::{
    avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_with_indices,
    AvgDivisor, AvgPool2dParams, MaxPool2dParams, PoolGeometry,
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
    /// Winograd F(4x4, 3x3) (3x3, stride 1, dilation 1, one group; else
    /// im2col): the forward pass, the input gradient (the same transform on
    /// the flipped, transposed weight) and the weight gradient (F(3x3, 4x4)).
    Winograd,
    /// 2-D real FFTs (stride 1, dilation 1, one group, spectra under the
    /// scratch cap; else im2col): all three passes.
    Fft,
    /// Implicit GEMM on flattened, zero-padded phase images (any stride,
    /// dilation, padding and groups): register-blocked tiles read the
    /// input in place through a table of tap offsets.
    ImplicitGemm,
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
        }
    }

    /// Every algorithm a test can force.
    pub const ALL: [ConvAlgo; 6] = [
        ConvAlgo::Reference,
        ConvAlgo::Im2col,
        ConvAlgo::Direct,
        ConvAlgo::Winograd,
        ConvAlgo::Fft,
        ConvAlgo::ImplicitGemm,
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

/// The algorithm for geometry `g`: the forced one, or the dispatcher's choice.
pub(crate) fn conv_algo(g: &ConvGeometry) -> ConvAlgo {
    match FORCED.with(|f| f.get()) {
        ConvAlgo::Auto => choose(g),
        forced => forced,
    }
}

/// The dispatcher: the one place that picks an algorithm by shape.
fn choose(g: &ConvGeometry) -> ConvAlgo {
    // Large kernels: FFTs when their rough flop count is well under the
    // direct multiply-adds (see `fft_path::pays`; image_31x31 fwd 27.6 ->
    // 2.95 ms, bwd 52.1 -> 3.87 ms).
    if conv2d::fft_path::applies(g) && conv2d::fft_path::pays(g) {
        return ConvAlgo::Fft;
    }
    // One input channel per group and few outputs per group: im2col would
    // copy each input value kh*kw times for a GEMM with 1..8 rows.
    // mobilenet_dw_3x3 fwd 11.0 ms im2col -> 1.55 ms direct; image_3x3_1080p
    // 49.5 -> 5.7 ms (loaded box) — keep.
    if crate::kernels::direct::direct_applies(g) && g.cin_g() == 1 && g.cout_g() <= 8 {
        return ConvAlgo::Direct;
    }
    // Winograd F(4x4, 3x3) when the batched GEMMs are wide enough to pay for
    // transforming the filter (36 * c_in * c_out floats, rewritten per call):
    // at least 64 tiles. Loaded box, 2 threads, im2col -> winograd fwd:
    // resnet_3x3_64 18.3 -> 6.1 ms, _128 12.2 -> 5.8, _256 10.7 -> 7.8;
    // resnet_3x3_512 (16 tiles) 11.9 -> 29.3 — keep im2col there.
    // Planes under 8x8 fill a fraction of the transforms' 16 lanes (one
    // tile per row): the digits net's 16->32 layer on 360 4x4 images took
    // 5.1 ms on Winograd against 0.97 ms on im2col (1 thread).
    if crate::kernels::winograd::winograd_applies(g)
        && g.oh >= 8
        && g.ow >= 8
        && g.cin_g() >= 16
        && g.cout_g() >= 16
        && crate::kernels::winograd::tiles(g).2 >= 64
    {
        return ConvAlgo::Winograd;
    }
    ConvAlgo::Im2col
}
