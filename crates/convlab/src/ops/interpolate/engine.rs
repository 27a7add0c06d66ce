//! The driver of a separable resampling: one band matrix per spatial axis
//! applied to every plane, the passes in the order that moves the fewest
//! floats, the planes split over rayon's pool.
//!
//! A backward pass is the same driver on the transposed matrices: every
//! output is then a gather in a fixed order, deterministic at any thread
//! count.

use super::taps::AxisTaps;
use crate::error::{numel_or_err, Result};
use crate::kernels::resample::{cols, rows, Band};
use crate::memory::{self, Scratch};
use rayon::prelude::*;

/// A separable resampling of planes of shape `in_dims` to `out_dims`.
pub(crate) struct Separable {
    in_dims: Vec<usize>,
    out_dims: Vec<usize>,
    /// The non-identity axes, each with its matrix, in the order they run.
    passes: Vec<(usize, AxisTaps)>,
}

/// The spatial shape after `passes` of `order` ran on `dims`.
fn after(dims: &[usize], passes: &[(usize, AxisTaps)]) -> Vec<usize> {
    let mut d = dims.to_vec();
    for (a, t) in passes {
        d[*a] = t.out_len;
    }
    d
}

/// Multiply-adds of running `passes` in this order on one plane; a pass
/// along the contiguous axis gathers and counts double.
fn cost(dims: &[usize], passes: &[(usize, AxisTaps)]) -> usize {
    let last = dims.len() - 1;
    let mut d = dims.to_vec();
    let mut total = 0;
    for (a, t) in passes {
        d[*a] = t.out_len;
        let outputs: usize = d.iter().product();
        total += outputs * t.taps * if *a == last { 2 } else { 1 };
    }
    total
}

/// Every order of `items` (at most 3 axes: 6 orders).
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first.clone());
            out.push(p);
        }
    }
    out
}

impl Separable {
    /// The resampling of `in_dims` by `axes` (one per spatial axis; `None`
    /// or an identity matrix leaves the axis as it is).
    pub fn new(in_dims: &[usize], axes: Vec<Option<AxisTaps>>) -> Separable {
        let passes: Vec<(usize, AxisTaps)> = axes
            .into_iter()
            .enumerate()
            .filter_map(|(a, t)| t.filter(|t| !t.is_identity()).map(|t| (a, t)))
            .collect();
        let out_dims = after(in_dims, &passes);
        let best = permutations(&passes)
            .into_iter()
            .min_by_key(|p| cost(in_dims, p))
            .unwrap_or_default();
        Separable {
            in_dims: in_dims.to_vec(),
            out_dims,
            passes: best,
        }
    }

    /// The adjoint resampling (out_dims to in_dims): the backward pass.
    pub fn transpose(&self) -> Separable {
        let axes = (0..self.in_dims.len())
            .map(|a| {
                self.passes
                    .iter()
                    .find(|(b, _)| *b == a)
                    .map(|(_, t)| t.transpose())
            })
            .collect();
        Separable::new(&self.out_dims, axes)
    }

    /// The spatial shape of the result.
    pub fn out_dims(&self) -> &[usize] {
        &self.out_dims
    }

    /// Floats of scratch one plane needs: the largest intermediate.
    fn scratch_len(&self) -> usize {
        let mut d = self.in_dims.clone();
        let mut most = 0;
        for (a, t) in &self.passes {
            d[*a] = t.out_len;
            most = most.max(d.iter().product());
        }
        most
    }

    /// One pass of `taps` along axis `axis` from `x` (spatial shape `dims`)
    /// into `y`.
    fn pass(&self, axis: usize, taps: &AxisTaps, dims: &[usize], x: &[f32], y: &mut [f32]) {
        let band = Band {
            start: &taps.start,
            weights: &taps.weights,
            taps: taps.taps,
        };
        let inner: usize = dims[axis + 1..].iter().product();
        let outer: usize = dims[..axis].iter().product();
        if axis == dims.len() - 1 {
            rows(band, x, taps.in_len, y, taps.out_len);
            return;
        }
        let (xs, ys) = (taps.in_len * inner, taps.out_len * inner);
        for (xb, yb) in x.chunks_exact(xs).zip(y.chunks_exact_mut(ys)).take(outer) {
            cols(band, xb, inner, yb);
        }
    }

    /// Resample one plane `x` into `y` using the two scratch buffers.
    fn plane(&self, x: &[f32], y: &mut [f32], s0: &mut [f32], s1: &mut [f32]) {
        let n = self.passes.len();
        if n == 0 {
            y.copy_from_slice(x);
            return;
        }
        let mut dims = self.in_dims.clone();
        for (p, (axis, taps)) in self.passes.iter().enumerate() {
            let mut next = dims.clone();
            next[*axis] = taps.out_len;
            let out_len: usize = next.iter().product();
            let in_len: usize = dims.iter().product();
            // Passes alternate between the scratch buffers; the first reads
            // the input, the last writes the output.
            let (src, dst): (&[f32], &mut [f32]) = match (p == 0, p + 1 == n, p % 2 == 0) {
                (true, true, _) => (x, &mut *y),
                (true, false, _) => (x, &mut s0[..out_len]),
                (false, true, true) => (&s1[..in_len], &mut *y),
                (false, true, false) => (&s0[..in_len], &mut *y),
                (false, false, true) => (&s1[..in_len], &mut s0[..out_len]),
                (false, false, false) => (&s0[..in_len], &mut s1[..out_len]),
            };
            self.pass(*axis, taps, &dims, src, dst);
            dims = next;
        }
    }

    /// Resample `planes` planes of `x`.
    pub fn run(&self, op: &'static str, x: &[f32], planes: usize) -> Result<Vec<f32>> {
        let in_plane: usize = self.in_dims.iter().product();
        let out_plane = numel_or_err(op, &self.out_dims)?;
        let total = numel_or_err(op, &[planes, out_plane])?;
        // Zeroed by each task for its own planes just before it writes
        // them: a zero-fill of the whole output up front was a
        // single-threaded pass of page faults (40% of a 2x bilinear
        // upsampling of 4x64x112x112).
        let mut out = memory::uninit_f32(op, total)?;
        if total == 0 {
            return Ok(Vec::new());
        }
        let scratch = self.scratch_len();
        memory::check_f32(op, scratch.saturating_mul(2))?;
        let work = |xs: &[f32], ys: &mut [std::mem::MaybeUninit<f32>]| {
            let ys = memory::zero_fill(ys);
            let mut s0 = Scratch::prechecked(scratch);
            let mut s1 = Scratch::prechecked(scratch);
            for (xp, yp) in xs
                .chunks_exact(in_plane)
                .zip(ys.chunks_exact_mut(out_plane))
            {
                self.plane(xp, yp, &mut s0, &mut s1);
            }
        };
        match planes_per_task(total + x.len(), planes) {
            None => work(x, &mut out),
            Some(per) => x
                .par_chunks(per * in_plane)
                .zip(out.par_chunks_mut(per * out_plane))
                .for_each(|(xs, ys)| work(xs, ys)),
        }
        // SAFETY: every chunk went through `zero_fill` in `work`.
        Ok(unsafe { memory::assume_written(out) })
    }
}

/// Planes per rayon task for `floats` read and written, or `None` to stay
/// on the calling thread (entering the pool from outside costs about 14 us).
fn planes_per_task(floats: usize, planes: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    let min = if crate::ops::on_pool_worker() {
        1 << 14
    } else {
        1 << 17
    };
    (threads > 1 && planes > 1 && floats >= min).then(|| planes.div_ceil(threads * 4).max(1))
}
