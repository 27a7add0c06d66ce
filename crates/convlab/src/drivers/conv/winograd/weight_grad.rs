//! The Winograd weight gradient by F(3x3, 4x4): per block of tiles the
//! input transform (transposed to tile-major rows) and the grad_output
//! transform, then `S[xi] += Y[xi] V[xi]^T` on the tile kernel, and `G^T S
//! G` per filter at the end.

use super::{layout, Layout, Phases, BLOCK_FLOATS};
use crate::error::Result;
use crate::kernels::ukernel::{self, Init, Tile};
use crate::kernels::winograd::{
    grad_output_block, grad_output_scratch_len, input_block, input_scratch_len, tiles,
    transpose_tiles, weight_out,
};
use crate::memory;
use crate::parallel;
use crate::shape::ConvGeometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Accumulators of the 36 products at most this many floats (4 MiB) are
/// summed over blocks of tiles, in [`parallel::REDUCTION_PARTS`] parts;
/// larger ones (wide layers) take all tiles in one block, split over
/// output channels.
const SHARED_S_FLOATS: usize = 1 << 20;

/// Whether the weight gradient handles the layer `g` laid out by `phases`:
/// a shape where either its accumulators or its one block of all tiles
/// stay small.
pub(super) fn applies(g: &ConvGeometry, phases: Phases) -> bool {
    let (g, _) = layout(g, phases);
    let lanes = ukernel::menu().lanes;
    let (_, _, total) = tiles(&g);
    let s = 36 * g.c_out * g.c_in.next_multiple_of(lanes);
    let all = 36 * total.next_multiple_of(lanes) * (g.c_in.next_multiple_of(lanes) + g.c_out);
    s <= SHARED_S_FLOATS || all <= 4 * SHARED_S_FLOATS
}

/// How one Winograd weight gradient runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct WeightGradPlan {
    pub g: ConvGeometry,
    pub lay: Layout,
    pub threads: usize,
    pub lanes: usize,
    /// Blocks summed into per-part accumulators (else one block of every
    /// tile, split over output channels).
    pub by_blocks: bool,
    pub block_rows: usize,
    pub blocks: usize,
    pub rows_total: usize,
    /// Tiles per block padded to whole vectors; input channels padded.
    pub tbp: usize,
    pub cinp: usize,
    /// Row length of V^T.
    pub ldv: usize,
    /// Floats of S, and of one task's buffers.
    pub s_len: usize,
    pub vlen: usize,
    pub vtlen: usize,
    pub ylen: usize,
    pub in_len: usize,
    pub gy_len: usize,
}

impl WeightGradPlan {
    /// The plan for the layer `g` laid out by `phases`.
    pub fn new(g: &ConvGeometry, phases: Phases, threads: usize, lanes: usize) -> WeightGradPlan {
        let (g, lay) = layout(g, phases);
        let (cin, cout) = (g.c_in, g.c_out);
        let (th, tw, _) = tiles(&g);
        let cinp = cin.next_multiple_of(lanes);
        let rows_total = g.n * th;
        let s_len = 36 * cout * cinp;
        let by_blocks = s_len <= SHARED_S_FLOATS;
        let block_rows = if by_blocks {
            let per_row = 36 * (cinp + cout) * tw;
            // Every block loads and stores all of S once. Past 1 MiB of S
            // (resnet_3x3_128: 2.3 MB) those passes cost more than V and Y
            // spilling from L2, so blocks are four times larger: 7 blocks
            // of 28 tiles became 2 of 112 and 84, the weight gradient 2.66
            // -> 2.27 ms (best of 6 paired runs; resnet_3x3_64's 0.6 MB S
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
        let tbp = (block_rows * tw).next_multiple_of(lanes);
        // Rows of V^T one cache line longer than the channels: at 256
        // channels, 1 KiB rows put a 64-row block's lines in a quarter of
        // the L1 sets (half of resnet_3x3_256's weight-gradient time was in
        // loads).
        let ldv = cinp + 16;
        WeightGradPlan {
            lay,
            threads,
            lanes,
            by_blocks,
            block_rows,
            blocks: rows_total.div_ceil(block_rows),
            rows_total,
            tbp,
            cinp,
            ldv,
            s_len,
            vlen: 36 * cin * tbp,
            vtlen: 36 * tbp * ldv,
            ylen: 36 * cout * tbp,
            in_len: input_scratch_len(&g, block_rows, lanes),
            gy_len: grad_output_scratch_len(&g, block_rows, lanes),
            g,
        }
    }

    /// Floats the pass holds at once: every part's accumulator and buffers.
    pub fn workspace_len(&self) -> usize {
        let s_task = self.s_len.max(36 * 6 * self.cinp);
        let bufs = self.vlen + self.vtlen + self.ylen + self.in_len + self.gy_len;
        let tasks = self.threads.max(parallel::REDUCTION_PARTS) + 1;
        (bufs + s_task).saturating_mul(tasks)
    }
}

/// One task's scratch (pooled: stale contents, every kernel writes before
/// it reads).
struct GradBufs {
    v: memory::Scratch,
    vt: memory::Scratch,
    y: memory::Scratch,
    sin: memory::Scratch,
    sy: memory::Scratch,
}

impl GradBufs {
    fn new(p: &WeightGradPlan) -> GradBufs {
        let take = memory::Scratch::prechecked;
        GradBufs {
            v: take(p.vlen),
            vt: take(p.vtlen),
            y: take(p.ylen),
            sin: take(p.in_len),
            sy: take(p.gy_len),
        }
    }
}

/// `grad_weight` (`[c_out, c_in, 3, 3]`, every element written once) = the
/// weight gradient of the layer `g` laid out by `phases`.
pub(super) fn run(
    g: &ConvGeometry,
    phases: Phases,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [MaybeUninit<f32>],
) -> Result<()> {
    let threads = parallel::threads_for(g.macs());
    let plan = WeightGradPlan::new(g, phases, threads, ukernel::menu().lanes);
    memory::check_f32("conv2d_backward", plan.workspace_len())?;
    let ops = Operands {
        plan: &plan,
        input,
        grad_output,
        b_off: (0..plan.tbp).map(|t| t * plan.ldv).collect(),
    };
    if plan.by_blocks {
        ops.by_blocks(grad_weight);
    } else {
        ops.by_channels(grad_weight);
    }
    Ok(())
}

struct Operands<'a> {
    plan: &'a WeightGradPlan,
    input: &'a [f32],
    grad_output: &'a [f32],
    /// `B` row offsets of the tile kernel: tile `t` at `t * ldv`.
    b_off: Vec<usize>,
}

impl Operands<'_> {
    /// Blocks cut into fixed parts, each summing its own S; the sums added
    /// in part order, then every filter finished.
    fn by_blocks(&self, grad_weight: &mut [MaybeUninit<f32>]) {
        let p = self.plan;
        let (cin, cout, cinp) = (p.g.c_in, p.g.c_out, p.cinp);
        let parts = parallel::reduction_parts(p.blocks);
        let sums = parallel::map_collect(p.threads, &parts, |&(b0, b1)| {
            let mut bufs = GradBufs::new(p);
            let mut s = vec![0.0f32; p.s_len];
            for blk in b0..b1 {
                let nt = self.transform(&mut bufs, blk);
                let (y, vt) = (&bufs.y[..], &bufs.vt[..]);
                self.products(y, vt, &mut s, nt, (0, cout), cout * cinp, blk == b0);
            }
            s
        });
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
        if p.threads > 1 {
            grad_weight
                .par_chunks_mut(cin * 9)
                .enumerate()
                .for_each(finish);
        } else {
            grad_weight.chunks_mut(cin * 9).enumerate().for_each(finish);
        }
    }

    /// One block of every tile, transformed once; output channels split
    /// over tasks, each summing and finishing its rows of S.
    fn by_channels(&self, grad_weight: &mut [MaybeUninit<f32>]) {
        let p = self.plan;
        let (cin, cout) = (p.g.c_in, p.g.c_out);
        let mut shared = GradBufs::new(p);
        let nt = self.transform(&mut shared, 0);
        let rows_per_task = 6 * cout.div_ceil(6 * p.threads).max(1);
        let shared = &shared;
        let run = |(i, dw): (usize, &mut [MaybeUninit<f32>])| {
            let start = i * rows_per_task;
            let end = (start + rows_per_task).min(cout);
            self.channel_rows(shared, nt, (start, end), dw);
        };
        let chunk = rows_per_task * cin * 9;
        if p.threads > 1 {
            grad_weight.par_chunks_mut(chunk).enumerate().for_each(run);
        } else {
            grad_weight.chunks_mut(chunk).enumerate().for_each(run);
        }
    }

    /// Output channels `[start, end)` of [`Operands::by_channels`]: a 6-row
    /// x 64-column tile of S for all 36 products at a time, finished (`G^T
    /// S G`) while in L1. Input channels outermost, so each block of V^T (36
    /// x tiles x 64) stays in L2 across the task's output channels; a pass
    /// over all of V^T per six rows streamed 100 MB from L3 at 512
    /// channels.
    fn channel_rows(
        &self,
        shared: &GradBufs,
        nt: usize,
        (start, end): (usize, usize),
        dw: &mut [MaybeUninit<f32>],
    ) {
        let p = self.plan;
        let (cin, cout, cinp, tbp, ldv, lanes) =
            (p.g.c_in, p.g.c_out, p.cinp, p.tbp, p.ldv, p.lanes);
        let menu = ukernel::menu();
        let cb = menu.max_nv * lanes;
        let mut s = memory::Scratch::prechecked(36 * 6 * cb);
        let offs: [usize; 6] = [0, tbp, 2 * tbp, 3 * tbp, 4 * tbp, 5 * tbp];
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
                        b_off: self.b_off.as_ptr(),
                        c: s[xi * 6 * width..].as_mut_ptr(),
                        ldc: width,
                        stream: false,
                        init: Init::Zero,
                    };
                    // SAFETY: Y rows co0..co0+mr hold nt tiles; V^T rows t <
                    // nt hold cinp >= c0 + width floats; S holds 36 blocks
                    // of 6 rows of width floats.
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
    }

    /// Transforms of block `blk`: V^T `[36][tiles][cinp]` and Y
    /// `[36][cout][tbp]`; the block's tiles.
    fn transform(&self, bufs: &mut GradBufs, blk: usize) -> usize {
        let p = self.plan;
        let (g, lay, tbp, ldv) = (&p.g, p.lay, p.tbp, p.ldv);
        let (cin, cout) = (g.c_in, g.c_out);
        let r0 = blk * p.block_rows;
        let r1 = (r0 + p.block_rows).min(p.rows_total);
        let nt = (r1 - r0) * g.ow.div_ceil(4);
        for c in 0..cin {
            let plane = |img: usize| self.input[lay.input(img, c, cin, g.h).0..].as_ptr();
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
            let plane = |img: usize| self.grad_output[lay.output(img, co, cout, g.oh).0..].as_ptr();
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
    }

    /// `S[xi][co - co0][..] (+)= Y[xi][co][t] V^T[xi][t][..]` for rows `[co0,
    /// co1)` into `s` (rows `cinp` apart, xi blocks `xs` apart), starting
    /// from zero when `first`.
    #[allow(clippy::too_many_arguments)]
    fn products(
        &self,
        y: &[f32],
        vt: &[f32],
        s: &mut [f32],
        nt: usize,
        (co0, co1): (usize, usize),
        xs: usize,
        first: bool,
    ) {
        let p = self.plan;
        let (cout, cinp, tbp, ldv, lanes) = (p.g.c_out, p.cinp, p.tbp, p.ldv, p.lanes);
        let menu = ukernel::menu();
        let offs: [usize; 6] = [0, tbp, 2 * tbp, 3 * tbp, 4 * tbp, 5 * tbp];
        let mut v0 = 0;
        while v0 < cinp / lanes {
            let nv = menu.max_nv.min(cinp / lanes - v0);
            let full = menu.max_mr(nv).min(6);
            // Product by product, so one B panel (the block's tiles by `nv`
            // vectors of V^T, 8 KiB at 32 tiles) stays in L1 across all
            // the rows of S; with the products innermost, all 36 panels
            // were read again from L2 for every 6 rows.
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
                        b_off: self.b_off.as_ptr(),
                        c: s[xi * xs + (r0 - co0) * cinp + v0 * lanes..].as_mut_ptr(),
                        ldc: cinp,
                        stream: false,
                        init: if first { Init::Zero } else { Init::Load },
                    };
                    // SAFETY: Y rows r0..r0+mr hold nt tiles; V^T rows t <
                    // nt hold cinp floats; C rows of S hold cinp floats.
                    unsafe { ukernel::run(mr, nv, &t) };
                    r0 += mr;
                }
            }
            v0 += nv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::layer;
    use super::*;

    /// The weight-gradient plans of the suite's Winograd layers with the
    /// 8-lane menu: blocks of tiles summed in parts for small S, one block
    /// split by channels for large; the same at any thread count.
    #[test]
    fn suite_layers_plan_as_measured() {
        let lanes = ukernel::menu().lanes;
        // (channels, side) -> (by blocks, block rows, blocks)
        let cases = [
            ((64, 56), (true, 4, 14)),
            ((128, 28), (true, 16, 2)),
            ((256, 14), (false, 16, 1)),
            ((512, 7), (false, 8, 1)),
        ];
        for ((c, side), want) in cases {
            let g = layer(4, c, side, c);
            for threads in [1, 2, 7] {
                let p = WeightGradPlan::new(&g, Phases::NONE, threads, lanes);
                let got = (p.by_blocks, p.block_rows, p.blocks);
                println!("{c}: {got:?}");
                if lanes == 8 {
                    assert_eq!(got, want, "{c} channels, {threads} threads");
                }
            }
        }
    }
}
