//! im2col for a whole batch of small planes at once: the columns of every
//! image side by side (`[K, n * oh*ow]`), so each pass is one GEMM on the
//! tile kernel instead of a `gemm` crate call per image. On the digits
//! net's 4x4 planes (N = 16 columns per image) the per-call setup cost
//! more than the arithmetic.

use super::ConvPass;
use crate::error::{Error, Result};
use crate::kernels::flat::{pack_panels, pack_panels_of_transpose, tile_shape};
use crate::kernels::im2col::{col2im_batched, im2col_batched};
use crate::kernels::ukernel::{self, Init, Tile};
use crate::memory;
use crate::parallel;
use crate::shape::ConvGeometry;
use rayon::prelude::*;

/// Output planes at most this large are batched (above, one image's
/// columns already make a GEMM wide enough).
const MAX_PLANE: usize = 256;

/// Column floats of one batched pass at most (16 MiB).
const MAX_COLS: usize = 4 << 20;

/// Whether the batched passes compute pass `pass` of `g`: the forward or
/// input gradient of one group over several images of small planes, with
/// few enough taps per plane for a gather table and columns under the cap.
pub(super) fn check(g: &ConvGeometry, pass: ConvPass) -> std::result::Result<(), &'static str> {
    if pass == ConvPass::WeightGrad {
        return Err("has no weight gradient");
    }
    let k = g.c_in * g.kh * g.kw;
    let p = g.oh * g.ow;
    if g.groups != 1 || g.n < 2 {
        return Err("needs one group and two or more images");
    }
    if p > MAX_PLANE || g.kh * g.kw * p > 4096 || g.h * g.w >= u32::MAX as usize {
        return Err("needs output planes of at most 256 pixels and 4096 taps");
    }
    if k.saturating_mul(p).saturating_mul(g.n) > MAX_COLS {
        return Err("needs columns under its 16 MiB cap");
    }
    Ok(())
}

/// The gather tables cover every geometry [`check`] accepts; a `false`
/// from the kernels is a bug.
fn table_missing() -> Error {
    Error::param("conv2d", "algorithm", "im2col-batched: no gather table")
}

/// The `A` operand of [`gemm`], `[m, k]`, as it is stored.
#[derive(Clone, Copy)]
enum AMatrix<'a> {
    /// Row-major `[m, k]`.
    Rows(&'a [f32]),
    /// Its transpose, row-major `[k, m]`.
    Transposed(&'a [f32]),
}

/// `C [m, np] = A [m, k] @ B [k, np]` on the tile kernel: `B` rows `ldb`
/// apart, `C` rows `ldc` apart (`np` rounded up to whole vectors must fit
/// both).
fn gemm(
    m: usize,
    k: usize,
    np: usize,
    a: AMatrix,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) -> Result<()> {
    let lanes = ukernel::menu().lanes;
    let (mr, nv) = tile_shape(m, np);
    let mut panels = memory::Scratch::take("conv2d", m * k)?;
    match a {
        AMatrix::Rows(a) => pack_panels(k, &a[..m * k], mr, &mut panels),
        AMatrix::Transposed(a) => pack_panels_of_transpose(k, &a[..m * k], mr, &mut panels),
    }
    let b_off: Vec<usize> = (0..k).map(|kk| kk * ldb).collect();
    let nb = nv * lanes;
    let mut j = 0;
    while j < np {
        let nvb = nv.min((np - j).div_ceil(lanes));
        let (mut r0, mut at) = (0, 0);
        while r0 < m {
            let pr = mr.min(m - r0);
            let t = Tile {
                k,
                a: panels[at..].as_ptr(),
                lda: pr,
                a_off: std::ptr::null(),
                b: b[j..].as_ptr(),
                b_off: b_off.as_ptr(),
                c: c[r0 * ldc + j..].as_mut_ptr(),
                ldc,
                stream: false,
                init: Init::Zero,
            };
            // SAFETY: the panel holds k*pr floats; B rows hold j + nvb *
            // lanes <= ldb floats; C rows r0..r0+pr hold as many.
            unsafe { ukernel::run(pr, nvb, &t) };
            at += k * pr;
            r0 += pr;
        }
        j += nb;
    }
    Ok(())
}

/// `[n, c, p]` to `[c, n * p]` rows `ld` apart.
fn to_columns(src: &[f32], n: usize, c: usize, p: usize, dst: &mut [f32], ld: usize) {
    for img in 0..n {
        for ch in 0..c {
            dst[ch * ld + img * p..][..p].copy_from_slice(&src[(img * c + ch) * p..][..p]);
        }
    }
}

/// `ld` for `np` columns: whole vectors, plus one cache line so that rows
/// 4 KiB apart do not share L1 sets.
fn row_len(np: usize) -> usize {
    np.next_multiple_of(ukernel::menu().lanes) + 16
}

/// Image ranges for the threads: one per thread when the pass is worth
/// splitting, else the whole batch. Each image's results are computed by
/// the same operations in the same order however the batch is split.
fn image_parts(g: &ConvGeometry) -> usize {
    parallel::threads_above(g.macs(), parallel::BATCH_SPLIT_MIN_MACS).min(g.n)
}

/// `out` = conv(input, weight), split over threads by images when large
/// enough (the digits net's test pass: 360 images).
pub(super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let (x_img, y_img) = (g.c_in * g.h * g.w, g.c_out * g.oh * g.ow);
    let done = over_images(g, (input, x_img), (out, y_img), |part, x, y| {
        forward_images(part, x, weight, y)
    })?;
    done.then_some(()).ok_or_else(table_missing)
}

/// Run `f` on the whole batch, or on one range of images per thread when
/// [`image_parts`] says so: `src` and `dst` hold `src_img` and `dst_img`
/// floats per image. Every part has the same planes, so the gather table
/// applies to all or none: the result is `f`'s.
fn over_images(
    g: &ConvGeometry,
    (src, src_img): (&[f32], usize),
    (dst, dst_img): (&mut [f32], usize),
    f: impl Fn(&ConvGeometry, &[f32], &mut [f32]) -> Result<bool> + Sync,
) -> Result<bool> {
    let parts = image_parts(g);
    if parts <= 1 {
        return f(g, src, dst);
    }
    let per = g.n.div_ceil(parts);
    let done: Result<Vec<bool>> = src
        .par_chunks(per * src_img)
        .zip(dst.par_chunks_mut(per * dst_img))
        .map(|(s, d)| {
            let part = ConvGeometry {
                n: d.len() / dst_img,
                ..*g
            };
            f(&part, s, d)
        })
        .collect();
    Ok(done?.iter().all(|&ok| ok))
}

/// [`forward`] on the calling thread: `Y [c_out, n*p] = W [c_out, K] @ cols`.
fn forward_images(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [f32],
) -> Result<bool> {
    let (p, k) = (g.oh * g.ow, g.c_in * g.kh * g.kw);
    let np = g.n * p;
    let ld = row_len(np);
    let mut cols = memory::Scratch::take("conv2d", k * ld)?;
    if !im2col_batched(g, g.c_in, input, g.n, &mut cols, ld) {
        return Ok(false);
    }
    let mut y = memory::Scratch::take("conv2d", g.c_out * ld)?;
    gemm(g.c_out, k, np, AMatrix::Rows(weight), &cols, ld, &mut y, ld)?;
    for img in 0..g.n {
        for co in 0..g.c_out {
            out[(img * g.c_out + co) * p..][..p].copy_from_slice(&y[co * ld + img * p..][..p]);
        }
    }
    Ok(true)
}

/// `grad_input` (zeroed) += conv's input gradient: `dcols [K, n*p] = W^T @
/// dY`, then the batched col2im.
pub(super) fn backward_input(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) -> Result<()> {
    let (x_img, y_img) = (g.c_in * g.h * g.w, g.c_out * g.oh * g.ow);
    let done = over_images(
        g,
        (grad_output, y_img),
        (grad_input, x_img),
        |part, gy, gx| backward_input_images(part, weight, gy, gx),
    )?;
    done.then_some(()).ok_or_else(table_missing)
}

/// [`backward_input`] on the calling thread: `dcols [K, n p] = W^T gy`,
/// `W^T` packed straight from the weight (`[c_out, K]`).
fn backward_input_images(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) -> Result<bool> {
    let (p, k) = (g.oh * g.ow, g.c_in * g.kh * g.kw);
    let np = g.n * p;
    let ld = row_len(np);
    let mut gy = memory::Scratch::take("conv2d_backward", g.c_out * ld)?;
    to_columns(grad_output, g.n, g.c_out, p, &mut gy, ld);
    let mut dcols = memory::Scratch::take("conv2d_backward", k * ld)?;
    gemm(
        k,
        g.c_out,
        np,
        AMatrix::Transposed(weight),
        &gy,
        ld,
        &mut dcols,
        ld,
    )?;
    Ok(col2im_batched(g, g.c_in, &dcols, ld, g.n, grad_input))
}
