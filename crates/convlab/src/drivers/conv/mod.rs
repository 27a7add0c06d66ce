//! The convolution drivers: the three passes of a convolution on a
//! validated geometry ([`forward`], [`backward_input`], [`backward_weight`]),
//! each asking the dispatcher ([`dispatch`]) which algorithm computes it and
//! running that algorithm's driver: one file per code path, each a plan
//! (what to block, split and share, built from the geometry and the thread
//! count) and an executor over the kernels.
//!
//! `conv_transpose2d` reuses the same three with roles swapped: its forward
//! is a convolution's input gradient, its input gradient a convolution's
//! forward.

pub(crate) mod context;
pub(crate) mod dispatch;

mod batched;
mod dilation;
mod direct;
mod fft;
mod im2col;
mod implicit_gemm;
mod lanes;
mod separable;
mod winograd;
mod winograd_s2;

use crate::error::{Error, Result};
use crate::memory;
use crate::shape::ConvGeometry;
pub(crate) use dispatch::ConvPass;
use dispatch::{ConvAlgo, Values};
use std::mem::MaybeUninit;

/// What the caller asked for: the op and its pass, for the recorders and
/// for errors (conv_transpose2d's forward runs a convolution's input
/// gradient).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    pub op: &'static str,
    pub pass: ConvPass,
}

/// The floats of a buffer whose every element has been written.
///
/// # Safety
/// Every element of `buf` is initialised.
unsafe fn written(buf: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: initialised (the caller), and `MaybeUninit<f32>` has f32's
    // layout.
    unsafe { &mut *(buf as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `out` (`[n, c_out, oh, ow]`, every element written) = the convolution
/// `g` of `input` with `weight`, plus `bias` (`[c_out]`) when given.
pub(crate) fn forward(
    call: Call,
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let fused = if g.c_in == 0 || g.h == 0 || g.w == 0 {
        // Every tap reads padding (or there is no channel): zeros.
        memory::zero_fill(out);
        false
    } else {
        let values = Values::new(Some(weight), [input, weight]);
        let algo = dispatch::select(call, g, ConvPass::Forward, &values)?;
        context::record(call.op, call.pass, algo);
        run_forward(algo, g, input, weight, bias, out)?
    };
    if let (false, Some(b)) = (fused, bias) {
        // SAFETY: every element of `out` was written above.
        add_bias(g, b, unsafe { written(out) });
    }
    Ok(())
}

/// Run `algo`'s forward; whether it added the bias itself.
fn run_forward(
    algo: ConvAlgo,
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) -> Result<bool> {
    use winograd::{Order, WeightView};
    match algo {
        // Bias fused into the first pass of the tile kernel.
        ConvAlgo::ImplicitGemm => {
            implicit_gemm::forward(g, input, weight, bias, out)?;
            return Ok(true);
        }
        ConvAlgo::ImplicitGemmLanes => {
            lanes::forward(g, input, weight, bias, out)?;
            return Ok(true);
        }
        ConvAlgo::Direct => direct::forward(g, input, weight, out)?,
        ConvAlgo::Winograd | ConvAlgo::WinogradPointMajor => {
            let view = WeightView::forward(g.c_in);
            let order = Order::of(algo);
            winograd::forward(g, ConvPass::Forward, order, input, weight, view, out)?
        }
        ConvAlgo::WinogradStride2F3x4 | ConvAlgo::WinogradStride2F4x2 => {
            winograd_s2::forward(g, input, weight, out)?
        }
        ConvAlgo::Separable => separable::forward(g, input, weight, out)?,
        // The rest accumulate into a zeroed output.
        ConvAlgo::Reference => {
            crate::testing::conv::forward(g, input, weight, memory::zero_fill(out))
        }
        ConvAlgo::Im2col => im2col::forward(g, input, weight, memory::zero_fill(out))?,
        ConvAlgo::Im2colBatched => batched::forward(g, input, weight, memory::zero_fill(out))?,
        ConvAlgo::Fft => fft::forward(g, input, weight, memory::zero_fill(out))?,
        ConvAlgo::Auto => return Err(not_dispatched(algo)),
    }
    Ok(false)
}

/// An algorithm the dispatcher never returns for this pass.
fn not_dispatched(algo: ConvAlgo) -> Error {
    Error::param(
        "conv2d",
        "algorithm",
        format!("{} was not dispatched", algo.name()),
    )
}

/// `grad_input` (`[n, c_in, h, w]`, every element written) = the input
/// gradient of the convolution `g` for `grad_output`.
pub(crate) fn backward_input(
    call: Call,
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [MaybeUninit<f32>],
) -> Result<()> {
    use winograd::{Order, WeightView};
    if grad_input.is_empty() {
        return Ok(());
    }
    if g.c_out == 0 || g.oh == 0 || g.ow == 0 {
        memory::zero_fill(grad_input);
        return Ok(());
    }
    let values = Values::new(Some(weight), [grad_output, weight]);
    let algo = dispatch::select(call, g, ConvPass::InputGrad, &values)?;
    context::record(call.op, call.pass, algo);
    let t = transposed(g);
    match (algo, t) {
        (ConvAlgo::Direct, Some(t)) => {
            let wt = flip_weight(g, weight)?;
            direct::forward(&t, grad_output, &wt, grad_input)?;
        }
        (ConvAlgo::Separable, Some(t)) => {
            separable::backward_input(g, &t, weight, grad_output, grad_input)?
        }
        (ConvAlgo::Winograd | ConvAlgo::WinogradPointMajor, _) => {
            let view = WeightView::input_grad(g.c_in);
            winograd::forward(
                g,
                ConvPass::InputGrad,
                Order::of(algo),
                grad_output,
                weight,
                view,
                grad_input,
            )?
        }
        (ConvAlgo::Reference, _) => crate::testing::conv::backward_input(
            g,
            weight,
            grad_output,
            memory::zero_fill(grad_input),
        ),
        // The rest accumulate into a zeroed gradient.
        (ConvAlgo::Im2col, _) => {
            im2col::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))?
        }
        (ConvAlgo::Im2colBatched, _) => {
            batched::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))?
        }
        (ConvAlgo::ImplicitGemm, _) => {
            implicit_gemm::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))?
        }
        (ConvAlgo::Fft, _) => {
            fft::backward_input(g, weight, grad_output, memory::zero_fill(grad_input))?
        }
        (other, _) => return Err(not_dispatched(other)),
    }
    Ok(())
}

/// `grad_weight` (`[c_out, c_in / groups, kh, kw]`, every element written)
/// = the weight gradient of the convolution `g` for `input` and
/// `grad_output`.
pub(crate) fn backward_weight(
    call: Call,
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [MaybeUninit<f32>],
) -> Result<()> {
    if grad_weight.is_empty() {
        return Ok(());
    }
    if g.n == 0 || g.oh == 0 || g.ow == 0 || g.h == 0 || g.w == 0 {
        memory::zero_fill(grad_weight);
        return Ok(());
    }
    let values = Values::new(None, [input, grad_output]);
    let algo = dispatch::select(call, g, ConvPass::WeightGrad, &values)?;
    context::record(call.op, call.pass, algo);
    if algo == ConvAlgo::Winograd {
        // Writes each filter's gradient once.
        return winograd::backward_weight(g, input, grad_output, grad_weight);
    }
    // The rest add into a zeroed gradient.
    let gw = memory::zero_fill(grad_weight);
    match algo {
        ConvAlgo::Reference => crate::testing::conv::backward_weight(g, input, grad_output, gw),
        ConvAlgo::Im2col => im2col::backward_weight(g, input, grad_output, gw)?,
        ConvAlgo::ImplicitGemm => implicit_gemm::backward_weight(g, input, grad_output, gw)?,
        ConvAlgo::Direct => direct::backward_weight(g, input, grad_output, gw)?,
        ConvAlgo::Fft => fft::backward_weight(g, input, grad_output, gw)?,
        other => return Err(not_dispatched(other)),
    }
    Ok(())
}

/// `a` and `b` side by side on the pool, each under the convolution
/// settings (forced algorithm, recorders) of the calling thread: either
/// may run on another thread.
pub(crate) fn join_passes<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    let (ca, cb) = (context::Carried::capture(), context::Carried::capture());
    crate::parallel::join(move || ca.run(a), move || cb.run(b))
}

/// Run `f` (an op's whole body, `macs` multiply-adds) where convlab's
/// parallel regions belong (see [`crate::parallel::install`]), under the
/// calling thread's convolution settings. Work too small to split
/// ([`crate::parallel::SPLIT_MIN_MACS`]) runs right here: handing it to
/// the pool from another thread (a Python binding's) cost 25 us a call
/// against 1.4 us for the chapter's 6x8 edge detection.
pub(crate) fn in_pool<R: Send>(macs: u128, f: impl FnOnce() -> R + Send) -> R {
    if macs < crate::parallel::SPLIT_MIN_MACS {
        return f();
    }
    let carried = context::Carried::capture();
    crate::parallel::install(move || carried.run(f))
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
fn flip_weight(g: &ConvGeometry, weight: &[f32]) -> Result<Vec<f32>> {
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

/// `out[n, co, ..] += bias[co]` for an output of `g`'s shape.
pub(crate) fn add_bias(g: &ConvGeometry, bias: &[f32], out: &mut [f32]) {
    let plane = g.oh * g.ow;
    if plane == 0 || g.c_out == 0 {
        return;
    }
    for (i, chunk) in out.chunks_mut(plane).enumerate() {
        let b = bias[i % g.c_out];
        chunk.iter_mut().for_each(|v| *v += b);
    }
}
