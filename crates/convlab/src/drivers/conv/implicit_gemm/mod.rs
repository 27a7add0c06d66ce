//! Implicit GEMM on flattened phase images ([`crate::kernels::flat`]), all
//! three passes: inputs are copied once into zero-padded (phase) planes,
//! the weight into tile panels, and rayon tasks run blocks of flat columns,
//! each block through every result row while its input columns are in
//! cache. One file per pass, each a plan built from the geometry and the
//! thread count, and its executor.

mod forward;
mod input_grad;
mod weight_grad;

pub(super) use forward::{forward, STREAM_MIN_BYTES};
pub(super) use input_grad::backward_input;
pub(super) use weight_grad::backward_weight;

use crate::error::Result;
use crate::kernels::flat::{pack_image, FlatGeom};
use crate::memory;
use crate::parallel::{self, for_each, Shared};
use crate::shape::ConvGeometry;
use std::mem::MaybeUninit;

/// Packed planes per batch of images are capped at this many floats (48
/// MiB, the rest of the 64 MiB scratch cap left for panels and tasks).
const PACK_FLOATS: usize = 12 << 20;

/// Threads to use for `g`: the pool's, or 1 for small convolutions.
fn threads(g: &ConvGeometry) -> usize {
    parallel::threads_for(g.macs())
}

/// Blocks per task so that `units` units of `blocks` blocks give about
/// four tasks per thread.
fn blocks_per_task(threads: usize, units: usize, blocks: usize) -> usize {
    if threads <= 1 {
        return blocks.max(1);
    }
    blocks.div_ceil((threads * 4).div_ceil(units.max(1))).max(1)
}

/// Images per batch whose packed planes (`per_image` floats) fit the cap.
fn images_per_batch(n: usize, per_image: usize) -> usize {
    (PACK_FLOATS / per_image.max(1)).clamp(1, n.max(1))
}

/// A packed-planes buffer from the scratch pool: `images` images of
/// `image_len` floats (written by [`pack_batch`] before any read), then
/// `slack` zeros.
fn packed_buffer(
    op: &'static str,
    images: usize,
    image_len: usize,
    slack: usize,
) -> Result<memory::Scratch> {
    let body = images.saturating_mul(image_len);
    let mut buf = memory::Scratch::take(op, body.saturating_add(slack))?;
    buf[body..body + slack].fill(0.0);
    Ok(buf)
}

/// Pack images `[n0, n1)` of `input` into `packed` (one image every
/// `image_len` floats), split over (image, channel chunk).
fn pack_batch(
    g: &ConvGeometry,
    fg: &FlatGeom,
    input: &[f32],
    (n0, n1): (usize, usize),
    image_len: usize,
    threads: usize,
    packed: &mut [f32],
) {
    let chunk = g.c_in.div_ceil(threads * 2).max(1);
    let jobs: Vec<(usize, usize)> = (n0..n1)
        .flat_map(|n| (0..g.c_in).step_by(chunk).map(move |c| (n, c)))
        .collect();
    let dst = Shared(packed.as_mut_ptr());
    let img_in = g.c_in * g.h * g.w;
    for_each(
        threads,
        &jobs,
        || (),
        |_, &(n, c0)| {
            // SAFETY: each job writes only channels [c0, c1) (disjoint planes)
            // of image n - n0 of `packed`, which is not otherwise borrowed
            // meanwhile.
            let img = unsafe {
                std::slice::from_raw_parts_mut(
                    dst.get().add((n - n0) * image_len) as *mut MaybeUninit<f32>,
                    image_len,
                )
            };
            pack_image(
                g,
                fg,
                &input[n * img_in..][..img_in],
                c0,
                (c0 + chunk).min(g.c_in),
                img,
            );
        },
    );
}
