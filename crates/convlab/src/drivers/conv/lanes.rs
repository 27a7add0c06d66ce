//! The implicit GEMM forward of stride-1 layers with small planes, on
//! batches of images packed one per vector lane
//! ([`crate::kernels::lanes`]): each tile column is one output pixel of
//! `LANES` images, so no column is computed to be dropped. The flat layout
//! computes `ow + (kw - 1) * dw` columns per output row instead: LeNet's
//! second layer (5x5 on 14x14) 14 for 10.

use super::ConvPass;
use crate::error::Result;
use crate::kernels::flat::pack_panels;
use crate::kernels::lanes::{lanes, pack_images, unpack_images};
use crate::kernels::ukernel::{self, Init, Tile};
use crate::memory;
use crate::parallel::{self, Shared};
use crate::shape::ConvGeometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Packed floats (inputs and outputs of all batches) at most (16 MiB).
const MAX_PACKED: usize = 4 << 20;

/// The padded plane the taps read: `(hp, wp)`.
fn padded(g: &ConvGeometry) -> (usize, usize) {
    (g.oh + g.dh * (g.kh - 1), g.ow + g.dw * (g.kw - 1))
}

/// Packed floats per batch: `(input, output)`.
fn packed_lens(g: &ConvGeometry) -> (usize, usize) {
    let (hp, wp) = padded(g);
    let l = lanes();
    (g.c_in * hp * wp * l, g.c_out * g.oh * g.ow * l)
}

/// Whether the lanes kernel computes pass `pass` of `g`: the forward of a
/// one-group, stride-1 layer of at least a vector of images, with packed
/// buffers under the cap.
pub(super) fn check(g: &ConvGeometry, pass: ConvPass) -> std::result::Result<(), &'static str> {
    if pass != ConvPass::Forward {
        return Err("computes the forward pass only");
    }
    if g.groups != 1 || (g.sh, g.sw) != (1, 1) {
        return Err("needs one group and stride 1");
    }
    if g.n < lanes() {
        return Err("needs at least a vector of images (16 with AVX-512, 8 otherwise)");
    }
    let (i, o) = packed_lens(g);
    if (i + o).saturating_mul(g.n.div_ceil(lanes())) > MAX_PACKED {
        return Err("needs packed images under its 16 MiB cap");
    }
    Ok(())
}

/// Whether images in lanes should beat flat rows on `g`: planes of at most
/// 256 pixels of which the flat layout would drop over 15 % of the
/// columns (lenet_c2: 10 of 14 kept).
pub(super) fn pays(g: &ConvGeometry) -> bool {
    let kept = g.ow as f64 / (g.ow + (g.kw - 1) * g.dw) as f64;
    g.oh * g.ow <= 256 && kept < 0.85
}

/// `out` (`[n, c_out, oh, ow]`, every element written) = conv(input,
/// weight) + bias, for a geometry [`check`] accepts.
pub(super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    let l = lanes();
    let menu = ukernel::menu();
    let mr = menu.max_mr(menu.max_nv);
    let k = g.c_in * g.kh * g.kw;
    let (hp, wp) = padded(g);
    let (in_len, out_len) = packed_lens(g);
    let batches = g.n.div_ceil(l);
    let mut buf = memory::Scratch::take(
        OP,
        weight
            .len()
            .saturating_add((in_len + out_len).saturating_mul(batches)),
    )?;
    let (panels, rest) = buf.split_at_mut(weight.len());
    pack_panels(k, weight, mr, panels);
    let (packed_in, rest) = rest.split_at_mut(in_len * batches);
    let packed_out = &mut rest[..out_len * batches];
    let b_off: Vec<usize> = (0..g.c_in)
        .flat_map(|ci| {
            (0..g.kh)
                .flat_map(move |ky| (0..g.kw).map(move |kx| (ci * hp + ky * g.dh) * wp + kx * g.dw))
        })
        .map(|pixel| pixel * l)
        .collect();
    let split = parallel::threads_for(g.macs()) > 1;

    let pack = |(b, dst): (usize, &mut [f32])| {
        // SAFETY: `input` holds n images of c_in * h * w floats; b * l < n;
        // `dst` is one batch's `in_len` floats.
        unsafe {
            pack_images(
                input,
                (g.n, g.c_in, g.h, g.w),
                b * l,
                (hp, wp, g.pt, g.pl),
                dst,
            )
        }
    };
    if split {
        packed_in.par_chunks_mut(in_len).enumerate().for_each(pack);
    } else {
        packed_in.chunks_mut(in_len).enumerate().for_each(pack);
    }

    // Output columns per tile: the row split into near-equal blocks of at
    // most `max_nv` pixels (10 -> 4, 3, 3).
    let blocks = g.ow.div_ceil(menu.max_nv);
    let plane_out = g.oh * g.ow;
    let dst = Shared(packed_out.as_mut_ptr());
    let (packed_in, panels, b_off) = (&*packed_in, &*panels, &b_off);
    let row = |&(b, y): &(usize, usize)| {
        let src = &packed_in[b * in_len + y * wp * l..];
        let mut x0 = 0;
        for blk in 0..blocks {
            let nv = g.ow / blocks + usize::from(blk < g.ow % blocks);
            let (mut m0, mut at) = (0, 0);
            while m0 < g.c_out {
                let pr = mr.min(g.c_out - m0);
                let t = Tile {
                    k,
                    a: panels[at..].as_ptr(),
                    lda: pr,
                    a_off: std::ptr::null(),
                    b: src[x0 * l..].as_ptr(),
                    b_off: b_off.as_ptr(),
                    // SAFETY: pixel (y, x0) of channel m0 in batch b's output.
                    c: unsafe {
                        dst.get()
                            .add(b * out_len + (m0 * plane_out + y * g.ow + x0) * l)
                    },
                    ldc: plane_out * l,
                    stream: false,
                    init: bias.map_or(Init::Zero, |bias| Init::Bias(bias[m0..].as_ptr())),
                };
                // SAFETY: A is panel m0's [k][pr] block; B row `kk` reads
                // pixels x0 .. x0 + nv of a tap's shifted row, inside the
                // padded plane (x0 + nv <= ow, the tap's shift <= wp - ow);
                // C rows are this task's pixels of channels m0 .. m0 + pr.
                unsafe { ukernel::run(pr, nv, &t) };
                at += k * pr;
                m0 += pr;
            }
            x0 += nv;
        }
    };
    let rows: Vec<(usize, usize)> = (0..batches)
        .flat_map(|b| (0..g.oh).map(move |y| (b, y)))
        .collect();
    if split {
        rows.par_iter().for_each(row);
    } else {
        rows.iter().for_each(row);
    }

    let out_ptr = Shared(out.as_mut_ptr() as *mut f32);
    let unpack = |(b, src): (usize, &[f32])| {
        // SAFETY: `out` holds n images of c_out * plane_out floats; each
        // batch writes only its own images' planes.
        unsafe { unpack_images(src, (g.n, g.c_out, plane_out), b * l, out_ptr.get()) }
    };
    let packed_out: &[f32] = packed_out;
    if split {
        packed_out.par_chunks(out_len).enumerate().for_each(unpack);
    } else {
        packed_out.chunks(out_len).enumerate().for_each(unpack);
    }
    Ok(())
}
