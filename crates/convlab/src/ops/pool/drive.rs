//! How pooling splits its work over threads: the one place in the pools
//! that calls rayon. Work is split by whole planes (global average
//! pooling: by whole groups of 16 planes from the first 64-byte aligned
//! one), and every plane is computed by the same code in the same order
//! whatever the split, so results are the same bits at any thread count.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many values per call (the larger side of the op) one thread
/// is faster.
const PARALLEL_MIN: usize = 1 << 16;

/// Whether a pool over `values` values is split over threads.
fn split(values: usize) -> bool {
    values >= PARALLEL_MIN && rayon::current_num_threads() > 1
}

/// Run `kernel(in_plane, out_plane, scratch)` on every plane: `input` in
/// planes of `in_len`, `output` in planes of `out_len` (both non-zero);
/// `scratch` holds `scratch_len` floats per thread, with stale contents.
pub(super) fn for_planes<O: Send>(
    input: &[f32],
    in_len: usize,
    output: &mut [O],
    out_len: usize,
    scratch_len: usize,
    kernel: impl Fn(&[f32], &mut [O], &mut [f32]) + Sync,
) {
    debug_assert!(in_len > 0 && out_len > 0);
    if !split(input.len().max(output.len())) {
        let mut scratch = vec![0.0; scratch_len];
        for (x, y) in input
            .chunks_exact(in_len)
            .zip(output.chunks_exact_mut(out_len))
        {
            kernel(x, y, &mut scratch);
        }
        return;
    }
    input
        .par_chunks_exact(in_len)
        .zip(output.par_chunks_exact_mut(out_len))
        .for_each_init(
            || vec![0.0; scratch_len],
            |scratch, (x, y)| kernel(x, y, scratch),
        );
}

/// Run `kernel(in_planes, out_planes)` on runs of whole planes, one run
/// per thread: for kernels that loop over planes themselves.
pub(super) fn for_plane_chunks<O: Send>(
    input: &[f32],
    in_len: usize,
    output: &mut [O],
    out_len: usize,
    kernel: impl Fn(&[f32], &mut [O]) + Sync,
) {
    debug_assert!(in_len > 0 && out_len > 0);
    if !split(input.len().max(output.len())) {
        return kernel(input, output);
    }
    let per = (output.len() / out_len).div_ceil(rayon::current_num_threads());
    input
        .par_chunks(per * in_len)
        .zip(output.par_chunks_mut(per * out_len))
        .for_each(|(x, y)| kernel(x, y));
}

/// [`for_planes`] with two outputs per plane (values and indices); the
/// kernel also gets the plane's number.
pub(super) fn for_planes_indexed(
    input: &[f32],
    in_len: usize,
    values: &mut [f32],
    indices: &mut [usize],
    out_len: usize,
    scratch_len: usize,
    kernel: impl Fn(usize, &[f32], &mut [f32], &mut [usize], &mut [f32]) + Sync,
) {
    debug_assert!(in_len > 0 && out_len > 0);
    if !split(input.len()) {
        let mut scratch = vec![0.0; scratch_len];
        let outs = values
            .chunks_exact_mut(out_len)
            .zip(indices.chunks_exact_mut(out_len));
        for (p, (x, (y, i))) in input.chunks_exact(in_len).zip(outs).enumerate() {
            kernel(p, x, y, i, &mut scratch);
        }
        return;
    }
    input
        .par_chunks_exact(in_len)
        .zip(values.par_chunks_exact_mut(out_len))
        .zip(indices.par_chunks_exact_mut(out_len))
        .enumerate()
        .for_each_init(
            || vec![0.0; scratch_len],
            |scratch, (p, ((x, y), i))| kernel(p, x, y, i, scratch),
        );
}

/// `all(kernel(out_planes, index_planes, value_planes))` over groups of
/// whole planes (`out_plane` values of `out`, `in_plane` indices and
/// values each), several groups per thread for balance: the scatters of
/// the max-pooling backward and of unpooling, `false` for an index
/// outside its plane.
pub(super) fn all_plane_groups(
    out: &mut [MaybeUninit<f32>],
    out_plane: usize,
    indices: &[usize],
    values: &[f32],
    in_plane: usize,
    kernel: impl Fn(&mut [MaybeUninit<f32>], &[usize], &[f32]) -> bool + Sync,
) -> bool {
    let planes = out.len() / out_plane.max(1);
    if planes < 2 || !split(out.len()) {
        return kernel(out, indices, values);
    }
    let per = planes.div_ceil(rayon::current_num_threads() * 4).max(1);
    out.par_chunks_mut(per * out_plane)
        .zip(indices.par_chunks(per * in_plane))
        .zip(values.par_chunks(per * in_plane))
        .map(|((y, i), v)| kernel(y, i, v))
        .reduce(|| true, |a, b| a & b)
}

/// Planes per task for global average pooling over `len` floats, or
/// `None` to stay on the calling thread. ResNet's 4x512x7x7 takes a few
/// microseconds on one core. From a pool worker, one task per thread keeps
/// each half in its core's L2 from call to call (forward 6.2 -> 4.4 us,
/// backward 10 -> 5.9 us, measured before the unrolled kernels). From any
/// other thread, entering the pool costs more than the whole op (an empty
/// `join` 14 us), so only inputs of 1 MiB or more are split, a few tasks
/// per thread for balance. Tasks hold whole groups of 16 planes, so each
/// starts where the unsplit loop would start a group.
fn global_planes_per_task(len: usize, planes: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    let (min_len, tasks) = if crate::ops::on_pool_worker() {
        (1 << 14, threads)
    } else {
        (1 << 18, threads * 4)
    };
    (threads > 1 && len >= min_len).then(|| planes.div_ceil(tasks).next_multiple_of(16))
}

/// Run `kernel(in_planes, out_planes)` for global pooling (`in_len` input
/// values per plane, `out_len` outputs per plane): the first `lead`
/// planes on the calling thread, the rest in tasks of whole groups of 16
/// planes. `lead` is where the kernel's 16-plane groups start (its aligned
/// start), so every plane takes the same path at any thread count.
pub(super) fn for_global_groups<I: Sync, O: Send>(
    input: &[I],
    in_len: usize,
    output: &mut [O],
    out_len: usize,
    lead: usize,
    kernel: impl Fn(&[I], &mut [O]) + Sync,
) {
    let planes = output.len() / out_len.max(1);
    let per = match global_planes_per_task(input.len().max(output.len()), planes) {
        Some(per) if lead < planes => per,
        _ => return kernel(input, output),
    };
    let (x0, x1) = input.split_at(lead * in_len);
    let (y0, y1) = output.split_at_mut(lead * out_len);
    kernel(x0, y0);
    x1.par_chunks(per * in_len)
        .zip(y1.par_chunks_mut(per * out_len))
        .for_each(|(x, y)| kernel(x, y));
}
