//! Implicit GEMM on flattened phase images ([`crate::kernels::flat`]), all
//! three passes: inputs are copied once into zero-padded (phase) planes,
//! the weight into tile panels, and rayon tasks run blocks of flat columns,
//! each block through every result row while its input columns are in
//! cache.

use super::*;
use crate::kernels::flat::{
    gemm_blocks, gemm_rows, pack_grad_output, pack_grad_output_rows, pack_image, pack_panels,
    slack, tile_shape, weight_grad_rows, Dest, FlatGemm, FlatGeom, GradInputPlan,
};
use crate::kernels::ukernel;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Packed planes per batch of images are capped at this many floats (48
/// MiB, the rest of the 64 MiB scratch cap left for panels and tasks).
const PACK_FLOATS: usize = 12 << 20;

/// Forward outputs from this many bytes are stored around the caches
/// (8 MiB: four times this machine's L2, so the lines would be evicted
/// unread anyway).
pub(super) const STREAM_MIN_BYTES: usize = 8 << 20;

/// Whether the flat kernels handle `g`: every non-empty geometry.
pub fn applies(g: &ConvGeometry) -> bool {
    g.n > 0 && g.c_in > 0 && g.c_out > 0 && g.oh > 0 && g.ow > 0 && g.h > 0 && g.w > 0
}

/// Threads to use for `g`: rayon's, or 1 for small convolutions.
fn threads(g: &ConvGeometry) -> usize {
    if super::parallel(g) {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// Run `f` on every item, on rayon when `threads > 1`, with one scratch
/// value per thread from `init`.
fn for_each<T: Sync, S>(
    threads: usize,
    items: &[T],
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, &T) + Sync + Send,
) {
    if threads > 1 {
        items.par_iter().for_each_init(init, f);
    } else {
        let mut s = init();
        items.iter().for_each(|t| f(&mut s, t));
    }
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

/// `out` (`[n, c_out, oh, ow]`, every element written) = conv(input,
/// weight) + bias.
pub fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    // Small planes with many dropped flat columns: images in vector lanes.
    if super::lanes_path::pays(g) {
        return super::lanes_path::forward(g, input, weight, bias, out);
    }
    let fg = FlatGeom::new(g);
    let (cin_g, cout_g, groups) = (g.cin_g(), g.cout_g(), g.groups);
    let k = fg.offs.len();
    let (mr, nv) = tile_shape(cout_g, fg.np);
    let nb = nv * ukernel::menu().lanes;
    let fm = fg.gemm(g, nb);
    let blocks = fg.np.div_ceil(nb);
    let plane_out = g.oh * g.ow;
    debug_assert_eq!(out.len(), g.n * g.c_out * plane_out);
    // Rows of whole vectors (the stem's 112 columns of 115) are written
    // straight to the output by [`gemm_rows`]; tasks then split rows.
    let by_rows = !fg.in_place && fg.wq > g.ow && g.ow % ukernel::menu().lanes == 0;
    // Outputs far larger than L2 are stored around the caches: writing
    // the stem's 12.8 MB through them first read every line in
    // (`convlab bench` medians 4.40 -> 4.00 ms at two threads, 14
    // interleaved rounds; 7.01 -> 6.69 at one).
    let vec_bytes = 4 * ukernel::menu().lanes;
    let stream = by_rows
        && out.len().saturating_mul(4) >= STREAM_MIN_BYTES
        && (out.as_ptr() as usize).is_multiple_of(vec_bytes)
        && (4 * plane_out).is_multiple_of(vec_bytes)
        && (4 * g.ow).is_multiple_of(vec_bytes);
    let units = if by_rows { g.oh } else { blocks };

    let mut panels = memory::Scratch::take(OP, weight.len())?;
    for grp in 0..groups {
        let rows = &weight[grp * cout_g * k..][..cout_g * k];
        pack_panels(k, rows, mr, &mut panels[grp * cout_g * k..][..cout_g * k]);
    }
    let image_len = fg.image_len(g);
    let per_batch = if fg.in_place {
        g.n
    } else {
        images_per_batch(g.n, image_len)
    };
    let mut packed = if fg.in_place {
        None
    } else {
        Some(packed_buffer(OP, per_batch, image_len, slack(nb, fg.wq))?)
    };
    let threads = threads(g);
    let out_ptr = Shared(out.as_mut_ptr() as *mut f32);
    let tail_len = if fg.in_place { k * nb } else { 0 };

    let mut n0 = 0;
    while n0 < g.n {
        let n1 = (n0 + per_batch).min(g.n);
        let x: &[f32] = match &mut packed {
            None => input,
            Some(p) => {
                pack_batch(g, &fg, input, (n0, n1), image_len, threads, p);
                &p[..]
            }
        };
        let per_task = blocks_per_task(threads, (n1 - n0) * groups, units);
        let tasks: Vec<(usize, usize, usize)> = (n0..n1)
            .flat_map(|n| {
                (0..groups)
                    .flat_map(move |grp| (0..units).step_by(per_task).map(move |b0| (n, grp, b0)))
            })
            .collect();
        let (fm, panels) = (&fm, &panels);
        for_each(
            threads,
            &tasks,
            || {
                (
                    memory::Scratch::prechecked(cout_g * nb),
                    memory::Scratch::prechecked(tail_len),
                )
            },
            |bufs, &(n, grp, b0)| {
                let img = if fg.in_place { n } else { n - n0 };
                let base = img * image_len + grp * cin_g * fg.plane();
                let dst = Dest {
                    // SAFETY: planes (n, grp*cout_g ..) lie inside `out`.
                    ptr: unsafe { out_ptr.get().add((n * g.c_out + grp * cout_g) * plane_out) },
                    plane: plane_out,
                    row: g.ow,
                    col: 1,
                };
                let b = bias.map_or(&[][..], |b| &b[grp * cout_g..][..cout_g]);
                let panels = &panels[grp * cout_g * k..][..cout_g * k];
                let units = (b0, (b0 + per_task).min(units));
                if by_rows {
                    // SAFETY: `x` holds the packed images; tasks write
                    // disjoint rows of `out`.
                    unsafe {
                        gemm_rows(
                            fm,
                            x.as_ptr().add(base),
                            panels,
                            b,
                            (mr, nv),
                            units,
                            dst,
                            stream,
                        )
                    };
                    return;
                }
                // SAFETY: `x` holds the packed images plus `slack` floats,
                // or the input itself (in place: the tail block is copied);
                // tasks write disjoint blocks of columns of `out`.
                unsafe {
                    gemm_blocks(
                        fm,
                        x.as_ptr().add(base),
                        x.len() - base,
                        panels,
                        b,
                        (mr, nv),
                        units,
                        dst,
                        &mut bufs.0,
                        &mut bufs.1,
                    )
                };
            },
        );
        n0 = n1;
    }
    Ok(())
}

/// `grad_input` (zeroed, `[n, c_in, h, w]`) = conv's input gradient: per
/// input phase, a flat GEMM of the flipped taps over the zero-padded
/// grad_output (see [`GradInputPlan`]).
pub fn backward_input(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward";
    let plan = GradInputPlan::new(g);
    if plan.phases.is_empty() {
        // No tap reaches a real input position: the gradient is zero.
        return Ok(());
    }
    let (cin_g, cout_g, groups) = (g.cin_g(), g.cout_g(), g.groups);
    let lanes = ukernel::menu().lanes;
    let gplane = plan.plane();
    let threads = threads(g);

    // Per phase: offsets, tile shape and packed weights of every group.
    struct Phase {
        offs: Vec<usize>,
        mr: usize,
        nv: usize,
        np: usize,
        panels: Vec<f32>,
        dst0: usize,
    }
    let mut phases = Vec::with_capacity(plan.phases.len());
    for ph in &plan.phases {
        let offs = plan.offsets(g, ph);
        let np = (ph.rows.1 - ph.rows.0) * plan.wg;
        let (mr, nv) = tile_shape(cin_g, np);
        let k = offs.len();
        memory::check_f32(OP, groups.saturating_mul(cin_g).saturating_mul(k))?;
        let mut panels = vec![0.0; groups * cin_g * k];
        for grp in 0..groups {
            let a = plan.weights(g, ph, grp, weight);
            pack_panels(k, &a, mr, &mut panels[grp * cin_g * k..][..cin_g * k]);
        }
        // Input position of the phase's first kept result.
        let dst0 = (g.sh * ph.rows.0 + ph.ry - g.pt) * g.w + (g.sw * ph.cols.0 + ph.rx - g.pl);
        phases.push(Phase {
            offs,
            mr,
            nv,
            np,
            panels,
            dst0,
        });
    }
    let max_nb = phases.iter().map(|p| p.nv * lanes).max().unwrap_or(lanes);

    let image_len = g.c_out * gplane;
    let per_batch = images_per_batch(g.n, image_len);
    let len = per_batch
        .saturating_mul(image_len)
        .saturating_add(slack(max_nb, plan.wg));
    let mut packed = memory::Scratch::take(OP, len)?;
    let gin = Shared(grad_input.as_mut_ptr());
    let plane_in = g.h * g.w;
    let plane_out = g.oh * g.ow;
    let mut n0 = 0;
    while n0 < g.n {
        let n1 = (n0 + per_batch).min(g.n);
        let planes: Vec<(usize, usize)> = (n0..n1)
            .flat_map(|n| (0..g.c_out).map(move |c| (n, c)))
            .collect();
        let dst = Shared(packed.as_mut_ptr());
        let plan_r = &plan;
        for_each(
            threads,
            &planes,
            || (),
            |_, &(n, c)| {
                // SAFETY: each job writes only plane (n - n0, c) of `packed`,
                // which is not otherwise borrowed meanwhile.
                let d = unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.get().add(((n - n0) * g.c_out + c) * gplane),
                        gplane,
                    )
                };
                pack_grad_output(
                    g,
                    plan_r,
                    &grad_output[(n * g.c_out + c) * plane_out..][..plane_out],
                    d,
                );
            },
        );
        let x: &[f32] = &packed;
        let mut tasks = Vec::new();
        for (pi, ph) in phases.iter().enumerate() {
            let blocks = ph.np.div_ceil(ph.nv * lanes);
            let per_task = blocks_per_task(threads, (n1 - n0) * groups * phases.len(), blocks);
            for n in n0..n1 {
                for grp in 0..groups {
                    for b0 in (0..blocks).step_by(per_task) {
                        tasks.push((pi, n, grp, b0, (b0 + per_task).min(blocks)));
                    }
                }
            }
        }
        let (phases_r, plan_r) = (&phases, &plan);
        for_each(
            threads,
            &tasks,
            || memory::Scratch::prechecked(cin_g * max_nb),
            |scratch, &(pi, n, grp, b0, b1)| {
                let (ph, info) = (&phases_r[pi], &plan_r.phases[pi]);
                let k = ph.offs.len();
                let fm = FlatGemm {
                    m: cin_g,
                    offs: &ph.offs,
                    np: ph.np,
                    wq: plan_r.wg,
                    cols: info.cols,
                    in_place: false,
                    chunk: crate::kernels::flat::taps_per_chunk(info.taps.len(), 1, ph.nv * lanes),
                };
                let base = ((n - n0) * g.c_out + grp * cout_g) * gplane;
                let dst = Dest {
                    // SAFETY: planes (n, grp*cin_g ..) lie inside grad_input.
                    ptr: unsafe {
                        gin.get()
                            .add((n * g.c_in + grp * cin_g) * plane_in + ph.dst0)
                    },
                    plane: plane_in,
                    row: g.sh * g.w,
                    col: g.sw,
                };
                // SAFETY: `x` holds the padded grad_output planes plus
                // `slack`; the phase's kept results are its own input
                // positions, and tasks write disjoint blocks of them.
                unsafe {
                    gemm_blocks(
                        &fm,
                        x.as_ptr().add(base),
                        x.len() - base,
                        &ph.panels[grp * cin_g * k..][..cin_g * k],
                        &[],
                        (ph.mr, ph.nv),
                        (b0, b1),
                        dst,
                        scratch,
                        &mut [],
                    )
                };
            },
        );
        n0 = n1;
    }
    Ok(())
}

/// `grad_weight` (`[c_out, cin_g, kh, kw]`) += conv's weight gradient:
/// `sum_p X[off_k + p] * grad_output[p]` over the flat columns of every
/// image, in per-thread accumulators summed in a fixed order.
pub fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward";
    let fg = FlatGeom::new(g);
    let (cin_g, cout_g, groups) = (g.cin_g(), g.cout_g(), g.groups);
    let k = fg.offs.len();
    let lanes = ukernel::menu().lanes;
    let ld = cout_g.next_multiple_of(lanes);
    let threads = threads(g);
    let image_len = fg.image_len(g);
    let per_batch = if fg.in_place {
        g.n
    } else {
        images_per_batch(g.n, image_len)
    };
    let mut packed = if fg.in_place {
        None
    } else {
        Some(packed_buffer(OP, per_batch, image_len, 0)?)
    };
    let acc_len = groups * k * ld;
    memory::check_f32(OP, acc_len.saturating_mul(threads + 1))?;
    let rows_len = fg.np.saturating_mul(ld);
    memory::check_f32(OP, rows_len.saturating_mul(threads))?;
    let plane_out = g.oh * g.ow;
    let mut totals: Vec<Vec<f32>> = Vec::new();
    let mut n0 = 0;
    while n0 < g.n {
        let n1 = (n0 + per_batch).min(g.n);
        let x: &[f32] = match &mut packed {
            None => input,
            Some(p) => {
                pack_batch(g, &fg, input, (n0, n1), image_len, threads, p);
                &p[..]
            }
        };
        // One task per (image, group): each packs its grad_output rows.
        let tasks: Vec<(usize, usize)> = (n0..n1)
            .flat_map(|n| (0..groups).map(move |grp| (n, grp)))
            .collect();
        let chunks: Vec<&[(usize, usize)]> =
            tasks.chunks(tasks.len().div_ceil(threads).max(1)).collect();
        let fg_r = &fg;
        // The sums leave the task as a plain vector, the scratch stays in
        // the worker's pool (a scratch dropped on another thread lands in
        // that thread's pool, and the worker allocates afresh next call).
        let run = |part: &&[(usize, usize)]| -> Vec<f32> {
            let mut acc = vec![0.0f32; acc_len];
            let mut rows = memory::Scratch::prechecked(rows_len);
            for &(n, grp) in part.iter() {
                let gy =
                    &grad_output[(n * g.c_out + grp * cout_g) * plane_out..][..cout_g * plane_out];
                pack_grad_output_rows(cout_g, g.oh, g.ow, fg_r.wq, gy, ld, &mut rows[..rows_len]);
                let img = if fg_r.in_place { n } else { n - n0 };
                let base = img * image_len + grp * cin_g * fg_r.plane();
                // SAFETY: X is read one float per (tap, column < np), all
                // inside the (packed) image; `rows` holds np rows.
                unsafe {
                    weight_grad_rows(
                        &fg_r.offs,
                        x.as_ptr().add(base),
                        &rows,
                        ld,
                        fg_r.np,
                        &mut acc[grp * k * ld..][..k * ld],
                    )
                };
            }
            acc
        };
        let parts: Vec<Vec<f32>> = if threads > 1 {
            chunks.par_iter().map(run).collect()
        } else {
            chunks.iter().map(run).collect()
        };
        totals.extend(parts);
        n0 = n1;
    }
    // Sum the accumulators in order and transpose [grp][k][co] -> [co][k].
    let mut sum = vec![0.0f32; acc_len];
    for t in &totals {
        sum.iter_mut().zip(t.iter()).for_each(|(s, v)| *s += v);
    }
    for grp in 0..groups {
        for co in 0..cout_g {
            let gw = &mut grad_weight[(grp * cout_g + co) * k..][..k];
            for (kk, v) in gw.iter_mut().enumerate() {
                *v += sum[(grp * k + kk) * ld + co];
            }
        }
    }
    Ok(())
}
