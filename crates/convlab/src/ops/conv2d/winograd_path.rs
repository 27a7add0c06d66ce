//! Winograd F(4x4, 3x3) ([`crate::kernels::winograd`]): the forward pass
//! and the input gradient (the forward of the flipped, transposed weight on
//! grad_output), over blocks of whole tile rows run as rayon tasks. A task
//! transforms its block's input once, then per panel of output channels
//! runs the 36 GEMMs and the output transform while the panel's products
//! are in cache. The filter is transformed once per call when tasks share
//! it, else per panel inside each task (resnet_3x3_512: 37.7 MB of
//! transformed filter never written out).
//!
//! Few tiles and many channels (resnet_3x3_256) take a point-major order
//! instead: each of the 36 products runs over all the task's panels while
//! that point's slice of V stays in L2, so blocks can hold every tile and
//! the tile kernel runs wide, and each panel's transformed filter is read
//! once rather than once per block.

use super::*;
use crate::kernels::flat::tile_shape;
use crate::kernels::ukernel::{self, Init, Tile};
use crate::kernels::winograd::{
    filter_panel, filter_xi_stride, grad_output_block, grad_output_scratch_len, input_block,
    input_scratch_len, output_block, output_scratch_len, tiles, transpose_tiles, weight_out,
    Strides, WeightView,
};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// One task's scratch: transformed input, products, a filter chunk, and
/// the transforms' row buffers.
struct TaskBufs {
    v: memory::Scratch,
    m: memory::Scratch,
    u: memory::Scratch,
    sin: memory::Scratch,
    sout: memory::Scratch,
}

/// Transformed input floats per block: about 1 MiB, so a block's `V` and
/// a panel's products stay in L2.
const BLOCK_FLOATS: usize = 1 << 18;

/// A point-major block's V per point at most this many floats (128 KiB).
const POINT_FLOATS: usize = 1 << 15;

/// Transformed filters above this many floats are made per panel inside
/// each task instead of once per call (16 MiB).
const SHARED_FILTER_FLOATS: usize = 4 << 20;

/// How the images of a Winograd layer lie in its tensors: plainly, or as
/// the phase images of a layer dilated by `(dh, dw)`. Image `i` of the
/// undilated layer on phases is then phase `(r, s) = (p / dw, p % dw)`,
/// `p = i % (dh * dw)`, of image `i / (dh * dw)`: its pixel `(y, x)` is
/// pixel `(y * dh + r, x * dw + s)` of the dilated layer's tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    pub dh: usize,
    pub dw: usize,
}

impl Phases {
    /// Plain images.
    pub const NONE: Phases = Phases { dh: 1, dw: 1 };
}

/// Where the images of the geometry a kernel runs on lie in the tensors.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Phase images per tensor image (`dh * dw`, or `dh` with pairs).
    per_image: usize,
    dh: usize,
    dw: usize,
    /// Column phases side by side in one image (dilation 2 across).
    pair: bool,
    /// Widths of the tensors' rows, input and output.
    in_w: usize,
    out_w: usize,
    /// Zero columns between the two phases of a pair, input and output.
    in_gap: usize,
    out_gap: usize,
}

/// The geometry to run for the layer `g` laid out by `phases`, and where
/// its images lie. A dilation of 2 across runs each row's two column
/// phases side by side as one image, `off` columns apart (whole tiles,
/// with room for both phases' padding between): resnet-like 28-pixel
/// phase rows then fill 15 of a vector's 16 tile lanes in the transforms'
/// column splits instead of 7, and each row is read and written once.
fn layout(g: &ConvGeometry, phases: Phases) -> (ConvGeometry, Layout) {
    let (dh, dw) = (phases.dh, phases.dw);
    let plain = Layout {
        per_image: dh * dw,
        dh,
        dw,
        pair: false,
        in_w: g.w * dw,
        out_w: g.ow * dw,
        in_gap: 0,
        out_gap: 0,
    };
    if dw != 2 || g.kw != 3 || g.sw != 1 || g.dw != 1 {
        return (*g, plain);
    }
    // Right padding of the phase layer: ow = w + pl + pr - 2.
    let pr = (g.ow + 2).saturating_sub(g.w + g.pl);
    let off = (g.w + g.pl).max(g.w + pr).max(g.ow).next_multiple_of(4);
    let pg = ConvGeometry {
        n: g.n / 2,
        w: off + g.w,
        ow: off + g.ow,
        ..*g
    };
    let pair = Layout {
        per_image: dh,
        pair: true,
        in_gap: off - g.w,
        out_gap: off - g.ow,
        ..plain
    };
    (pg, pair)
}

impl Layout {
    /// Offset of plane `(img, c)` of a tensor of `channels` channels and
    /// rows `w` wide whose phase planes are `h` rows high.
    fn offset(self, img: usize, c: usize, channels: usize, h: usize, w: usize) -> usize {
        let (i, p) = (img / self.per_image, img % self.per_image);
        let (r, s) = if self.pair {
            (p, 0)
        } else {
            (p / self.dw, p % self.dw)
        };
        ((i * channels + c) * h * self.dh + r) * w + s
    }

    /// Input plane `(img, c)` of `channels` channels and its strides.
    fn input(self, img: usize, c: usize, channels: usize, h: usize) -> (usize, Strides) {
        (
            self.offset(img, c, channels, h, self.in_w),
            self.strides(self.in_w, self.in_gap),
        )
    }

    /// Output plane `(img, c)` of `channels` channels and its strides.
    fn output(self, img: usize, c: usize, channels: usize, h: usize) -> (usize, Strides) {
        (
            self.offset(img, c, channels, h, self.out_w),
            self.strides(self.out_w, self.out_gap),
        )
    }

    fn strides(self, w: usize, gap: usize) -> Strides {
        Strides {
            row: self.dh * w,
            col: if self.pair { 1 } else { self.dw },
            gap,
        }
    }
}

/// `out` (`[n, c_out, oh, ow]`, every element written) = the convolution
/// `g` of `input` with `weight` seen through `view` (the forward weight, or
/// the flipped one for an input gradient). With `phases` other than
/// [`Phases::NONE`], `g` is the undilated layer on phase images and
/// `input` and `out` are the dilated layer's tensors, read and written in
/// place.
pub fn forward(
    g: &ConvGeometry,
    phases: Phases,
    input: &[f32],
    weight: &[f32],
    view: WeightView,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    let (g, lay) = layout(g, phases);
    let g = &g;
    let (cin, cout) = (g.c_in, g.c_out);
    let (th, tw, _) = tiles(g);
    let lanes = ukernel::menu().lanes;
    let rows_total = g.n * th;
    let unshared = 36usize.saturating_mul(cin).saturating_mul(cout) > SHARED_FILTER_FLOATS;
    let (block_rows, by_point) = blocking(g, lanes);
    let blocks = rows_total.div_ceil(block_rows);
    let tbp = (block_rows * tw).next_multiple_of(lanes);
    let (mut mr, nv) = tile_shape(cout, tbp);
    // Thin tiles take panels of whole vectors of rows, so that each row
    // of the filter transform's output fills its cache lines and no lanes
    // are computed for nothing: resnet_3x3_512's 24-row panels (a vector
    // and a half) made its filter transform 1.4x slower and its forward
    // 1.27x (2.95 -> 2.32 ms, best of 8 paired); the tile kernel runs
    // 16 rows as fast as 24.
    if nv == 1 && mr > lanes {
        mr = mr / lanes * lanes;
    }
    // Point-major panels are transform units of whole vectors of rows,
    // run as several tiles of `mr` rows (6-row panels left 10 of the
    // filter transform's 16 lanes idle).
    let pw = if by_point {
        (1..=lanes)
            .map(|i| i * mr)
            .find(|w| w % lanes == 0)
            .unwrap_or(mr)
    } else {
        mr
    };
    let threads = if super::parallel(g) {
        rayon::current_num_threads()
    } else {
        1
    };
    // Point-major: one group per thread, each reading its slab of the
    // transformed filter alone, the slabs equal in rows (whole vectors):
    // 48-row panels dealt out by count gave resnet_3x3_256's threads 144
    // and 112 rows.
    let slab = if by_point {
        let groups = threads.div_ceil(blocks).clamp(1, cout.div_ceil(lanes));
        cout.div_ceil(groups).next_multiple_of(lanes)
    } else {
        cout
    };
    let panels: Vec<(usize, usize)> = (0..cout)
        .step_by(slab)
        .flat_map(|s0| {
            let s1 = (s0 + slab).min(cout);
            (s0..s1).step_by(pw).map(move |m0| (m0, pw.min(s1 - m0)))
        })
        .collect();
    // Split panels over tasks when there are fewer blocks than threads.
    let per_group = if by_point {
        slab.div_ceil(pw)
    } else {
        let groups = if blocks >= 2 * threads {
            1
        } else {
            (2 * threads).div_ceil(blocks).min(panels.len())
        };
        panels.len().div_ceil(groups)
    };
    let groups = panels.len().div_ceil(per_group);
    let tasks: Vec<(usize, usize)> = (0..blocks)
        .flat_map(|b| (0..panels.len()).step_by(per_group).map(move |p| (b, p)))
        .collect();

    // Shared transformed filters, panel after panel, when every task would
    // otherwise transform the same ones.
    let ulen_panel = |pr: usize| 36 * filter_xi_stride(cin, pr);
    let shared_len = 36usize.saturating_mul(cin * cout + 16 * panels.len());
    let share = !unshared && tasks.len() > panels.len().div_ceil(per_group);
    // A point-major task transforms its own panels' filters when no other
    // task reads them.
    let own_u = by_point && !share;
    let mut shared_u = memory::Scratch::prechecked(0);
    let mut panel_at = Vec::with_capacity(panels.len());
    {
        let mut at = 0;
        for &(_, pr) in &panels {
            panel_at.push(at);
            at += ulen_panel(pr);
        }
    }
    if share {
        // Every float a GEMM reads is written by its panel's transform.
        shared_u = memory::Scratch::take(OP, shared_len)?;
        let dst = Shared(shared_u.as_mut_ptr());
        let work: Vec<usize> = (0..panels.len()).collect();
        let make = |&p: &usize| {
            let (m0, pr) = panels[p];
            // SAFETY: panel p alone writes its floats [panel_at[p], +
            // ulen_panel(pr)), inside `shared_u`.
            let u = unsafe {
                std::slice::from_raw_parts_mut(dst.get().add(panel_at[p]), ulen_panel(pr))
            };
            // SAFETY: the view maps into `weight`; u holds the panel.
            unsafe { filter_panel(weight, view, (m0, pr), (0, cin), u) };
        };
        if threads > 1 {
            work.par_iter().for_each(make);
        } else {
            work.iter().for_each(make);
        }
    }
    let b_off: Vec<usize> = (0..cin).map(|c| c * tbp).collect();
    let vlen = 36 * cin * tbp;
    let group_rows = (per_group * pw).min(cout);
    let mlen = 36 * if by_point { group_rows } else { mr } * tbp;
    let in_len = input_scratch_len(g, block_rows, lanes);
    // Blocks shared by several tasks (panels split into groups) have their
    // input transformed once, before the tasks, channels split over
    // threads: resnet_3x3_512's four tasks each transformed the same 16
    // tiles (19 % of its forward).
    let share_v = groups > 1;
    let mut shared_v = memory::Scratch::prechecked(0);
    if share_v {
        shared_v = memory::Scratch::take(OP, blocks.saturating_mul(vlen))?;
        let dst = Shared(shared_v.as_mut_ptr());
        let per = cin.div_ceil(2 * threads).max(1);
        let work: Vec<(usize, usize)> = (0..blocks)
            .flat_map(|b| (0..cin).step_by(per).map(move |c| (b, c)))
            .collect();
        let make = |sin: &mut memory::Scratch, &(blk, c0): &(usize, usize)| {
            let r0 = blk * block_rows;
            let r1 = (r0 + block_rows).min(rows_total);
            let cs = (c0, (c0 + per).min(cin));
            // SAFETY: block blk's V holds 36 rows of cin * tbp floats, of
            // which these channels are written by this task alone.
            unsafe {
                transform_input(
                    g,
                    lay,
                    input,
                    (r0, r1),
                    cs,
                    tbp,
                    dst.get().add(blk * vlen),
                    sin,
                )
            };
        };
        let take = || memory::Scratch::prechecked(in_len);
        if threads > 1 {
            work.par_iter().for_each_init(take, make);
        } else {
            let mut sin = take();
            work.iter().for_each(|w| make(&mut sin, w));
        }
    }
    let vlen_task = if share_v { 0 } else { vlen };
    // Input channels per filter chunk: about 32 Ki transformed floats.
    let kc = ((1usize << 15) / (36 * mr)).clamp(16, cin.max(16)) / 16 * 16;
    let ulen = if share {
        0
    } else if own_u {
        36 * filter_xi_stride(cin, group_rows) + 36 * 16 * per_group
    } else {
        36 * filter_xi_stride(kc.min(cin), mr)
    };
    let out_len = output_scratch_len(g, block_rows, lanes);
    memory::check_f32(
        OP,
        (vlen_task + mlen + ulen + in_len + out_len).saturating_mul(threads),
    )?;
    let out_ptr = Shared(out.as_mut_ptr() as *mut f32);
    let (shared_u, panels, panel_at, b_off) = (&shared_u, &panels, &panel_at, &b_off);
    let shared_v = &shared_v;
    // The output transform of output channels [c0, c0 + rows) for tile
    // rows [r0, r1), from M[xi][r] rows of the block's tiles (rows * tbp
    // floats apart).
    let write_out = |m: &[f32], (c0, rows): (usize, usize), (r0, r1), sout: &mut [f32]| {
        for r in 0..rows {
            let co = c0 + r;
            let plane = |img: usize| {
                // SAFETY: plane (img, co) lies inside `out`; only this task
                // writes its rows of tile rows [r0, r1).
                unsafe { out_ptr.get().add(lay.output(img, co, cout, g.oh).0) }
            };
            let out_strides = lay.output(0, co, cout, g.oh).1;
            // SAFETY: M holds 36 such rows for each r; the planes are this
            // task's to write.
            unsafe {
                output_block(
                    g,
                    m[r * tbp..].as_ptr(),
                    rows * tbp,
                    (r0, r1),
                    &plane,
                    out_strides,
                    sout,
                )
            };
        }
    };
    let run = |bufs: &mut TaskBufs, &(blk, p0): &(usize, usize)| {
        let TaskBufs { v, m, u, sin, sout } = bufs;
        let r0 = blk * block_rows;
        let r1 = (r0 + block_rows).min(rows_total);
        let nt = ((r1 - r0) * tw).next_multiple_of(lanes);
        let v: &[f32] = if share_v {
            &shared_v[blk * vlen..][..vlen]
        } else {
            // SAFETY: v holds 36 rows of cin * tbp floats; the task owns it.
            unsafe { transform_input(g, lay, input, (r0, r1), (0, cin), tbp, v.as_mut_ptr(), sin) };
            &v[..]
        };
        let group = &panels[p0..(p0 + per_group).min(panels.len())];
        if by_point {
            // The group's transformed filters, panel after panel: its own,
            // or its slice of the shared ones.
            let base = panel_at[p0];
            if own_u {
                for (&(m0, pr), &at) in group.iter().zip(&panel_at[p0..]) {
                    let u = &mut u[at - base..][..ulen_panel(pr)];
                    // SAFETY: the view maps into `weight`; u holds the panel.
                    unsafe { filter_panel(weight, view, (m0, pr), (0, cin), u) };
                }
            }
            let ug: &[f32] = if own_u { u } else { &shared_u[base..] };
            let (g0, rows) = (group[0].0, group.iter().map(|&(_, pr)| pr).sum::<usize>());
            for xi in 0..36 {
                for (&(m0, pr), &at) in group.iter().zip(&panel_at[p0..]) {
                    let up = &ug[at - base + xi * filter_xi_stride(cin, pr)..];
                    for r in (0..pr).step_by(mr) {
                        let mut cb = 0;
                        while cb < nt {
                            let nvb = nv.min((nt - cb) / lanes);
                            let t = Tile {
                                k: cin,
                                a: up[r..].as_ptr(),
                                lda: pr,
                                a_off: std::ptr::null(),
                                b: v[xi * cin * tbp + cb..].as_ptr(),
                                b_off: b_off.as_ptr(),
                                c: m[(xi * rows + m0 - g0 + r) * tbp + cb..].as_mut_ptr(),
                                ldc: tbp,
                                stream: false,
                                init: Init::Zero,
                            };
                            // SAFETY: A is rows [r, r + mr) of the panel's
                            // [cin][pr] block for xi; B rows ci * tbp + cb ..
                            // + nvb*lanes <= tbp lie in V[xi]; C rows of
                            // M[xi] (rows * tbp floats) hold tbp floats.
                            unsafe { ukernel::run(mr.min(pr - r), nvb, &t) };
                            cb += nvb * lanes;
                        }
                    }
                }
            }
            write_out(m, (g0, rows), (r0, r1), sout);
            return;
        }
        for &(m0, pr) in group {
            // Unshared filters are transformed a chunk of input channels at
            // a time into a buffer that stays in L2, each chunk's products
            // accumulated into M: writing a whole 512-channel panel (1.2 MB)
            // per panel cost more than its GEMMs.
            let mut k0 = 0;
            while k0 < cin {
                let k1 = if share { cin } else { (k0 + kc).min(cin) };
                let (up, xs): (&[f32], usize) = if share {
                    let p = m0 / mr;
                    (
                        &shared_u[panel_at[p]..][..ulen_panel(pr)],
                        filter_xi_stride(cin, pr),
                    )
                } else {
                    // SAFETY: the view maps into `weight`; u holds a chunk.
                    unsafe { filter_panel(weight, view, (m0, pr), (k0, k1), u) };
                    (&u[..], filter_xi_stride(k1 - k0, pr))
                };
                for xi in 0..36 {
                    let mut cb = 0;
                    while cb < nt {
                        let nvb = nv.min((nt - cb) / lanes);
                        let t = Tile {
                            k: k1 - k0,
                            a: up[xi * xs..].as_ptr(),
                            lda: pr,
                            a_off: std::ptr::null(),
                            b: v[(xi * cin + k0) * tbp + cb..].as_ptr(),
                            b_off: b_off.as_ptr(),
                            c: m[xi * pr * tbp + cb..].as_mut_ptr(),
                            ldc: tbp,
                            stream: false,
                            init: if k0 == 0 { Init::Zero } else { Init::Load },
                        };
                        // SAFETY: A is the chunk's [k][pr] block for xi; B rows
                        // (k0 + ci) * tbp + cb .. + nvb*lanes <= tbp lie in
                        // V[xi]; C rows r < pr of M[xi] hold tbp floats.
                        unsafe { ukernel::run(pr, nvb, &t) };
                        cb += nvb * lanes;
                    }
                }
                k0 = k1;
            }
            write_out(m, (m0, pr), (r0, r1), sout);
        }
    };
    // Pooled scratch (stale contents: every kernel writes before it reads).
    let take = memory::Scratch::prechecked;
    let init = || TaskBufs {
        v: take(vlen_task),
        m: take(mlen),
        u: take(ulen),
        sin: take(in_len),
        sout: take(out_len),
    };
    if threads > 1 {
        tasks.par_iter().for_each_init(init, run);
    } else {
        let mut bufs = init();
        tasks.iter().for_each(|t| run(&mut bufs, t));
    }
    Ok(())
}

/// Tile rows per block of [`forward`], and whether its blocks run
/// point-major.
fn blocking(g: &ConvGeometry, lanes: usize) -> (usize, bool) {
    let (cin, cout) = (g.c_in, g.c_out);
    let (th, tw, _) = tiles(g);
    let rows_total = g.n * th;
    // Tile rows per block, by a cost in units of one tile's 36 products:
    // the block's tiles padded to whole vectors over the tile kernel's
    // efficiency at that width (thin tiles are load-bound), doubled when
    // the block's V outgrows L2 (every panel reads it again), plus per
    // block the filter transform (unshared) or its reload from L3 (shared,
    // over L2). resnet_3x3_256 took 16-tile blocks before (no padding, but
    // 65% kernels and four reloads of a 9.4 MB filter).
    let per_row = 36 * cin * tw;
    let max_rows = (4 * BLOCK_FLOATS / per_row.max(1)).clamp(1, rows_total);
    let unshared = 36usize.saturating_mul(cin).saturating_mul(cout) > SHARED_FILTER_FLOATS;
    let per_block = if unshared {
        12.0
    } else if 36 * cin * cout > BLOCK_FLOATS {
        8.0
    } else {
        1.0
    };
    let efficiency = |cols: usize| match tile_shape(cout, cols).1 {
        1 => 0.65,
        2 => 0.85,
        3 => 0.95,
        _ => 1.0,
    };
    let cost = |r: usize| -> f64 {
        let (full, rest) = (rows_total / r, rows_total % r);
        let block = |rows: usize| {
            let p = (rows * tw).next_multiple_of(lanes);
            let spill = if 36 * cin * p > BLOCK_FLOATS {
                2.0
            } else {
                1.0
            };
            p as f64 * spill / efficiency(p) + per_block
        };
        full as f64 * block(r) + if rest > 0 { block(rest) } else { 0.0 }
    };
    let block_rows = (1..=max_rows)
        .rev()
        .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
        .unwrap_or(1);
    // Point-major when the panel-major blocks above would run the thin
    // (one-vector) tile kernel but a block whose V per point stays in L2
    // is wide enough for a wider one: resnet_3x3_256 (16-tile blocks, each
    // re-reading the 9.4 MB transformed filter, against one block of 64
    // tiles) forward 3.35 -> 2.97 ms at two threads (medians of 16
    // interleaved rounds), no change at one thread.
    let width = |rows: usize| (rows * tw).next_multiple_of(lanes);
    let point_rows = (1..=rows_total)
        .rev()
        .find(|&r| cin * width(r) <= POINT_FLOATS)
        .unwrap_or(1);
    let by_point = !unshared
        && tile_shape(cout, width(block_rows)).1 == 1
        && tile_shape(cout, width(point_rows)).1 >= 2;
    (if by_point { point_rows } else { block_rows }, by_point)
}

/// The input transform of channels `[c0, c1)` of tile rows `[r0, r1)` into
/// `V` at `v`: 36 rows of `c_in * tbp` floats, channel `c` at `c * tbp`.
///
/// # Safety
/// `v` points at such a `V`; no one else writes those channels' floats.
unsafe fn transform_input(
    g: &ConvGeometry,
    lay: Layout,
    input: &[f32],
    rows: (usize, usize),
    (c0, c1): (usize, usize),
    tbp: usize,
    v: *mut f32,
    sin: &mut [f32],
) {
    let cin = g.c_in;
    for c in c0..c1 {
        let strides = lay.input(0, c, cin, g.h).1;
        let plane = |img: usize| input[lay.input(img, c, cin, g.h).0..].as_ptr();
        // SAFETY: planes of channel c exist for every image of the block;
        // the caller gives V.
        unsafe { input_block(g, &plane, strides, rows, v.add(c * tbp), cin * tbp, sin) };
    }
}

/// Accumulators of the weight gradient's 36 products at most this many
/// floats per thread (4 MiB) are kept per thread over blocks of tiles;
/// larger ones (wide layers) take all tiles in one block, split over
/// output channels.
const SHARED_S_FLOATS: usize = 1 << 20;

/// Whether [`backward_weight`] handles `g` laid out by `phases`: a shape where either its
/// per-thread accumulators or its one block of all tiles stay small.
pub fn weight_grad_applies(g: &ConvGeometry, phases: Phases) -> bool {
    let (g, _) = layout(g, phases);
    let lanes = ukernel::menu().lanes;
    let (_, _, total) = tiles(&g);
    let s = 36 * g.c_out * g.c_in.next_multiple_of(lanes);
    let all = 36 * total.next_multiple_of(lanes) * (g.c_in.next_multiple_of(lanes) + g.c_out);
    s <= SHARED_S_FLOATS || all <= 4 * SHARED_S_FLOATS
}

/// One task's scratch for the weight gradient.
struct GradBufs {
    v: memory::Scratch,
    vt: memory::Scratch,
    y: memory::Scratch,
    sin: memory::Scratch,
    sy: memory::Scratch,
}

/// `grad_weight` (`[c_out, c_in, 3, 3]`) += the weight gradient by F(3x3,
/// 4x4): per block of tiles the input transform (transposed to tile-major
/// rows) and the grad_output transform, then `S[xi] += Y[xi] V[xi]^T` on
/// the tile kernel, and `G^T S G` per filter at the end.
pub fn backward_weight(
    g: &ConvGeometry,
    phases: Phases,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [MaybeUninit<f32>],
) -> Result<()> {
    // Each filter's gradient is finished (written) exactly once below.
    const OP: &str = "conv2d_backward";
    let (g, lay) = layout(g, phases);
    let g = &g;
    let (cin, cout) = (g.c_in, g.c_out);
    let (th, tw, total) = tiles(g);
    let lanes = ukernel::menu().lanes;
    let menu = ukernel::menu();
    let cinp = cin.next_multiple_of(lanes);
    let rows_total = g.n * th;
    let threads = if super::parallel(g) {
        rayon::current_num_threads()
    } else {
        1
    };
    let s_len = 36 * cout * cinp;
    // Per-thread accumulators over blocks, or one block split by channels.
    let per_thread = s_len <= SHARED_S_FLOATS;
    let block_rows = if per_thread {
        let per_row = 36 * (cinp + cout) * tw;
        // Every block loads and stores all of S once. Past 1 MiB of S
        // (resnet_3x3_128: 2.3 MB) those passes cost more than V and Y
        // spilling from L2, so blocks are four times larger: 7 blocks of
        // 28 tiles became 2 of 112 and 84, the weight gradient 2.66 ->
        // 2.27 ms (best of 6 paired runs; resnet_3x3_64's 0.6 MB S
        // measured 14 % slower that way).
        let budget = if s_len > BLOCK_FLOATS {
            4 * BLOCK_FLOATS
        } else {
            BLOCK_FLOATS
        };
        (budget / per_row.max(1)).clamp(1, rows_total)
    } else {
        rows_total
    };
    let blocks = rows_total.div_ceil(block_rows);
    let tbp = (block_rows * tw).next_multiple_of(lanes);
    let vlen = 36 * cin * tbp;
    // Rows of V^T one cache line longer than the channels: at 256
    // channels, 1 KiB rows put a 64-row block's lines in a quarter of the
    // L1 sets (half of resnet_3x3_256's weight-gradient time was in loads).
    let ldv = cinp + 16;
    let vtlen = 36 * tbp * ldv;
    let ylen = 36 * cout * tbp;
    let in_len = input_scratch_len(g, block_rows, lanes);
    let gy_len = grad_output_scratch_len(g, block_rows, lanes);
    let s_task = s_len.max(36 * 6 * cinp);
    memory::check_f32(
        OP,
        (vlen + vtlen + ylen + s_task + in_len + gy_len).saturating_mul(threads + 1),
    )?;
    let _ = total;

    // Transforms of one block: V^T [36][tiles][cinp] and Y [36][cout][tbp].
    let transform = |bufs: &mut GradBufs, blk: usize| -> usize {
        let r0 = blk * block_rows;
        let r1 = (r0 + block_rows).min(rows_total);
        let nt = (r1 - r0) * tw;
        for c in 0..cin {
            let plane = |img: usize| input[lay.input(img, c, cin, g.h).0..].as_ptr();
            // SAFETY: planes of channel c exist for every image; v holds 36
            // rows of cin * tbp.
            unsafe {
                input_block(
                    g,
                    &plane,
                    lay.input(0, c, cin, g.h).1,
                    (r0, r1),
                    bufs.v[c * tbp..].as_mut_ptr(),
                    cin * tbp,
                    &mut bufs.sin,
                )
            };
        }
        for xi in 0..36 {
            // SAFETY: V[xi] is [cin][tbp]; VT[xi] holds tbp rows of ldv.
            unsafe {
                transpose_tiles(
                    bufs.v[xi * cin * tbp..].as_ptr(),
                    cin,
                    tbp,
                    nt,
                    bufs.vt[xi * tbp * ldv..].as_mut_ptr(),
                    ldv,
                )
            };
        }
        for co in 0..cout {
            let plane = |img: usize| grad_output[lay.output(img, co, cout, g.oh).0..].as_ptr();
            // SAFETY: grad_output planes of channel co exist for every
            // image; y holds 36 rows of cout * tbp.
            unsafe {
                grad_output_block(
                    g,
                    &plane,
                    lay.output(0, co, cout, g.oh).1,
                    (r0, r1),
                    bufs.y[co * tbp..].as_mut_ptr(),
                    cout * tbp,
                    &mut bufs.sy,
                )
            };
        }
        nt
    };
    let b_off: Vec<usize> = (0..tbp).map(|t| t * ldv).collect();
    // S[xi][co - co0][..] (+)= Y[xi][co][t] V^T[xi][t][..] for rows
    // [co0, co1) into `s` (rows `cinp` apart, xi blocks `xs` apart).
    let products = |y: &[f32],
                    vt: &[f32],
                    s: &mut [f32],
                    nt: usize,
                    (co0, co1): (usize, usize),
                    xs: usize,
                    first: bool| {
        let offs: [usize; 6] = std::array::from_fn(|r| r * tbp);
        let mut v0 = 0;
        while v0 < cinp / lanes {
            let nv = menu.max_nv.min(cinp / lanes - v0);
            let full = menu.max_mr(nv).min(6);
            // Product by product, so one B panel (the block's tiles by
            // `nv` vectors of V^T, 8 KiB at 32 tiles) stays in L1 across
            // all the rows of S; with the products innermost, all 36
            // panels were read again from L2 for every 6 rows.
            for xi in 0..36 {
                let mut r0 = co0;
                while r0 < co1 {
                    let mr = full.min(co1 - r0);
                    let t = Tile {
                        k: nt,
                        a: y[(xi * cout + r0) * tbp..].as_ptr(),
                        lda: 0,
                        a_off: offs.as_ptr(),
                        b: vt[xi * tbp * ldv + v0 * lanes..].as_ptr(),
                        b_off: b_off.as_ptr(),
                        c: s[xi * xs + (r0 - co0) * cinp + v0 * lanes..].as_mut_ptr(),
                        ldc: cinp,
                        stream: false,
                        init: if first { Init::Zero } else { Init::Load },
                    };
                    // SAFETY: Y rows r0..r0+mr hold nt tiles; V^T rows t < nt
                    // hold cinp floats; C rows of S hold cinp floats.
                    unsafe { ukernel::run(mr, nv, &t) };
                    r0 += mr;
                }
            }
            v0 += nv;
        }
    };
    // Pooled scratch (stale contents: every kernel writes before it reads).
    let take = memory::Scratch::prechecked;
    let init = || GradBufs {
        v: take(vlen),
        vt: take(vtlen),
        y: take(ylen),
        sin: take(in_len),
        sy: take(gy_len),
    };
    if per_thread {
        // Blocks split over threads, each summing its own S; the sums are
        // added in thread order (deterministic for a given thread count).
        let parts: Vec<Vec<usize>> = (0..threads.min(blocks))
            .map(|t| (t..blocks).step_by(threads.min(blocks)).collect())
            .collect();
        let run = |part: &Vec<usize>| -> Vec<f32> {
            let mut bufs = init();
            let mut s = vec![0.0f32; s_len];
            debug_assert!(!part.is_empty());
            for (i, &blk) in part.iter().enumerate() {
                let nt = transform(&mut bufs, blk);
                products(
                    &bufs.y,
                    &bufs.vt,
                    &mut s,
                    nt,
                    (0, cout),
                    cout * cinp,
                    i == 0,
                );
            }
            s
        };
        let sums: Vec<Vec<f32>> = if threads > 1 {
            parts.par_iter().map(run).collect()
        } else {
            parts.iter().map(run).collect()
        };
        let mut s = sums[0].clone();
        for part in &sums[1..] {
            s.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        let s = &s;
        let finish = |(co, dw): (usize, &mut [MaybeUninit<f32>])| {
            // SAFETY: S[xi][co] rows hold cinp floats, cout * cinp apart;
            // dw is this filter row's cin * 9 floats.
            unsafe { weight_out(s[co * cinp..].as_ptr(), cout * cinp, cin, dw) };
        };
        if threads > 1 {
            grad_weight
                .par_chunks_mut(cin * 9)
                .enumerate()
                .for_each(finish);
        } else {
            grad_weight.chunks_mut(cin * 9).enumerate().for_each(finish);
        }
    } else {
        // One block of every tile, transformed once; output channels split
        // over tasks, each summing and finishing its rows of S.
        let mut shared = init();
        let nt = transform(&mut shared, 0);
        let rows_per_task = 6 * cout.div_ceil(6 * threads).max(1);
        let shared = &shared;
        let run = |(i, dw): (usize, &mut [MaybeUninit<f32>])| {
            // A 6-row x 64-column tile of S for all 36 products at a time,
            // finished (G^T S G) while in L1. Input channels outermost, so
            // each block of V^T (36 x tiles x 64) stays in L2 across the
            // task's output channels; a pass over all of V^T per six rows
            // streamed 100 MB from L3 at 512 channels.
            let cb = menu.max_nv * lanes;
            let mut s = take(36 * 6 * cb);
            let start = i * rows_per_task;
            let end = (start + rows_per_task).min(cout);
            let offs: [usize; 6] = std::array::from_fn(|r| r * tbp);
            let mut c0 = 0;
            while c0 < cin {
                let nv = menu.max_nv.min((cinp - c0) / lanes);
                let width = nv * lanes;
                let full = menu.max_mr(nv).min(6);
                let mut co0 = start;
                while co0 < end {
                    let mr = full.min(end - co0);
                    for xi in 0..36 {
                        let t = Tile {
                            k: nt,
                            a: shared.y[(xi * cout + co0) * tbp..].as_ptr(),
                            lda: 0,
                            a_off: offs.as_ptr(),
                            b: shared.vt[xi * tbp * ldv + c0..].as_ptr(),
                            b_off: b_off.as_ptr(),
                            c: s[xi * 6 * width..].as_mut_ptr(),
                            ldc: width,
                            stream: false,
                            init: Init::Zero,
                        };
                        // SAFETY: Y rows co0..co0+mr hold nt tiles; V^T rows
                        // t < nt hold cinp >= c0 + width floats; S holds
                        // 36 blocks of 6 rows of width floats.
                        unsafe { ukernel::run(mr, nv, &t) };
                    }
                    let k = width.min(cin - c0);
                    for r in 0..mr {
                        let row = co0 + r - start;
                        let dw = &mut dw[row * cin * 9 + c0 * 9..][..k * 9];
                        // SAFETY: row r of each product's block holds width
                        // floats, 6 * width apart.
                        unsafe { weight_out(s[r * width..].as_ptr(), 6 * width, k, dw) };
                    }
                    co0 += mr;
                }
                c0 += width;
            }
        };
        if threads > 1 {
            grad_weight
                .par_chunks_mut(rows_per_task * cin * 9)
                .enumerate()
                .for_each(run);
        } else {
            grad_weight
                .chunks_mut(rows_per_task * cin * 9)
                .enumerate()
                .for_each(run);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x3, padding-1 layer of `n` images of `c` channels on `side` x
    /// `side` planes into `cout` channels.
    fn layer(n: usize, c: usize, side: usize, cout: usize) -> ConvGeometry {
        ConvGeometry {
            n,
            c_in: c,
            h: side,
            w: side,
            c_out: cout,
            kh: 3,
            kw: 3,
            groups: 1,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 1,
            pl: 1,
            oh: side,
            ow: side,
        }
    }

    /// Which layers run point-major (with the AVX-512 menu the plan was
    /// measured on): the deep 14x14 ones whose panel-major blocks would be
    /// one vector of tiles wide, over all their tiles at once.
    #[test]
    fn point_major_takes_few_tiles_of_many_channels() {
        let lanes = ukernel::menu().lanes;
        if lanes != 16 {
            return;
        }
        assert_eq!(blocking(&layer(4, 256, 14, 256), lanes), (16, true));
        assert_eq!(blocking(&layer(8, 256, 14, 256), lanes), (32, true));
        // One image's 16 tiles are one vector either way.
        assert!(!blocking(&layer(1, 256, 14, 256), lanes).1);
        // The transformed filter is made per panel in each task.
        assert!(!blocking(&layer(4, 512, 7, 512), lanes).1);
        // Panel-major blocks already several vectors wide.
        assert!(!blocking(&layer(4, 128, 28, 128), lanes).1);
        assert!(!blocking(&layer(4, 64, 56, 64), lanes).1);
    }
}
