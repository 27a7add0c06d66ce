//! The plan of a Winograd F(4x4, 3x3) forward (or input gradient): how
//! tile rows are blocked, how output channels are cut into panels and the
//! panels grouped into tasks, and what is transformed once and shared.
//! Built from the geometry, the order and the thread count alone; the
//! thread count changes the grouping, never a sum (each output is one
//! tile kernel's sum over the input channels in order).

use super::{Layout, Order, BLOCK_FLOATS, POINT_FLOATS, SHARED_FILTER_FLOATS};
use crate::kernels::flat::tile_shape;
use crate::kernels::winograd::{
    filter_xi_stride, input_scratch_len, output_scratch_len, tiles, WeightView,
};
use crate::shape::ConvGeometry;

/// How one Winograd forward runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ForwardPlan {
    /// The layer run (on phase images when dilated) and its layout.
    pub g: ConvGeometry,
    pub lay: Layout,
    pub view: WeightView,
    pub point_major: bool,
    pub threads: usize,
    pub lanes: usize,
    /// Tile rows per block, blocks, and all tile rows of the batch.
    pub block_rows: usize,
    pub blocks: usize,
    pub rows_total: usize,
    /// Tiles per block padded to whole vectors.
    pub tbp: usize,
    /// Tile kernel rows and vectors.
    pub mr: usize,
    pub nv: usize,
    /// Panels of output channels `(first, rows)`, and where each panel's
    /// transformed filter starts in the shared buffer.
    pub panels: Vec<(usize, usize)>,
    pub panel_at: Vec<usize>,
    /// Panels per task, and the tasks `(block, first panel)`.
    pub per_group: usize,
    pub tasks: Vec<(usize, usize)>,
    /// Filters transformed once, before the tasks, and shared.
    pub share_u: bool,
    /// Point-major tasks transform their own panels' filters.
    pub own_u: bool,
    /// Inputs transformed once per block, before the tasks, and shared.
    pub share_v: bool,
    /// Input channels per filter chunk (filters transformed in each task).
    pub kc: usize,
    /// Scratch floats per task: V (0 when shared), M, U, the input and
    /// output transforms' rows; shared filter and input floats.
    pub vlen_task: usize,
    pub mlen: usize,
    pub ulen: usize,
    pub in_len: usize,
    pub out_len: usize,
    pub shared_u_len: usize,
    pub shared_v_len: usize,
}

impl ForwardPlan {
    /// The plan for the layer `g` laid out by `lay`, its weight seen
    /// through `view`, in `order`, on `threads` threads of `lanes`-wide
    /// vectors.
    pub fn new(
        g: &ConvGeometry,
        lay: Layout,
        view: WeightView,
        order: Order,
        threads: usize,
        lanes: usize,
    ) -> ForwardPlan {
        let (cin, cout) = (g.c_in, g.c_out);
        let (th, tw, _) = tiles(g);
        let rows_total = g.n * th;
        let point_major = order == Order::PointMajor;
        let block_rows = if point_major {
            point_block_rows(g, lanes)
        } else {
            panel_block_rows(g, lanes)
        };
        let blocks = rows_total.div_ceil(block_rows);
        let tbp = (block_rows * tw).next_multiple_of(lanes);
        let (mut mr, nv) = tile_shape(cout, tbp);
        // Thin tiles take panels of whole vectors of rows, so that each row
        // of the filter transform's output fills its cache lines and no
        // lanes are computed for nothing: resnet_3x3_512's 24-row panels (a
        // vector and a half) made its filter transform 1.4x slower and its
        // forward 1.27x (2.95 -> 2.32 ms, best of 8 paired); the tile
        // kernel runs 16 rows as fast as 24.
        if nv == 1 && mr > lanes {
            mr = mr / lanes * lanes;
        }
        // Point-major panels are transform units of whole vectors of rows,
        // run as several tiles of `mr` rows (6-row panels left 10 of the
        // filter transform's 16 lanes idle).
        let pw = if point_major {
            (1..=lanes)
                .map(|i| i * mr)
                .find(|w| w % lanes == 0)
                .unwrap_or(mr)
        } else {
            mr
        };
        let (panels, per_group) = panels(cout, blocks, pw, point_major, threads, lanes);
        let groups = panels.len().div_ceil(per_group);
        let tasks: Vec<(usize, usize)> = (0..blocks)
            .flat_map(|b| (0..panels.len()).step_by(per_group).map(move |p| (b, p)))
            .collect();
        let ulen_panel = |pr: usize| 36 * filter_xi_stride(cin, pr);
        let panel_at = panels
            .iter()
            .scan(0, |at, &(_, pr)| {
                let here = *at;
                *at += ulen_panel(pr);
                Some(here)
            })
            .collect();
        // Shared transformed filters, panel after panel, when every task
        // would otherwise transform the same ones.
        let share_u = shareable(g) && tasks.len() > groups;
        // Blocks shared by several tasks (panels split into groups) have
        // their input transformed once, before the tasks, channels split
        // over threads: resnet_3x3_512's four tasks each transformed the
        // same 16 tiles (19 % of its forward).
        let share_v = groups > 1;
        let vlen = 36 * cin * tbp;
        let group_rows = (per_group * pw).min(cout);
        // Input channels per filter chunk: about 32 Ki transformed floats.
        let kc = ((1usize << 15) / (36 * mr)).clamp(16, cin.max(16)) / 16 * 16;
        let own_u = point_major && !share_u;
        let ulen = if share_u {
            0
        } else if own_u {
            36 * filter_xi_stride(cin, group_rows) + 36 * 16 * per_group
        } else {
            36 * filter_xi_stride(kc.min(cin), mr)
        };
        ForwardPlan {
            g: *g,
            lay,
            view,
            point_major,
            threads,
            lanes,
            block_rows,
            blocks,
            rows_total,
            tbp,
            mr,
            nv,
            panel_at,
            per_group,
            tasks,
            share_u,
            own_u,
            share_v,
            kc,
            vlen_task: if share_v { 0 } else { vlen },
            mlen: 36 * if point_major { group_rows } else { mr } * tbp,
            ulen,
            in_len: input_scratch_len(g, block_rows, lanes),
            out_len: output_scratch_len(g, block_rows, lanes),
            shared_u_len: if share_u {
                36usize.saturating_mul(cin * cout + 16 * panels.len())
            } else {
                0
            },
            shared_v_len: if share_v {
                blocks.saturating_mul(vlen)
            } else {
                0
            },
            panels,
        }
    }

    /// Floats of transformed input of one block (36 rows of `c_in * tbp`).
    pub fn vlen(&self) -> usize {
        36 * self.g.c_in * self.tbp
    }

    /// Floats the pass holds at once: the shared transforms and every
    /// thread's scratch.
    pub fn workspace_len(&self) -> usize {
        let task = self.vlen_task + self.mlen + self.ulen + self.in_len + self.out_len;
        self.shared_u_len
            .saturating_add(self.shared_v_len)
            .saturating_add(task.saturating_mul(self.threads))
    }
}

/// Panels of `pw` output channels of `cout`, and panels per task. Point-
/// major: one group per thread, each reading its slab of the transformed
/// filter alone, the slabs equal in rows (whole vectors): 48-row panels
/// dealt out by count gave resnet_3x3_256's threads 144 and 112 rows.
/// Panel-major: panels split over tasks when there are fewer blocks than
/// threads.
fn panels(
    cout: usize,
    blocks: usize,
    pw: usize,
    point_major: bool,
    threads: usize,
    lanes: usize,
) -> (Vec<(usize, usize)>, usize) {
    let slab = if point_major {
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
    let per_group = if point_major {
        slab.div_ceil(pw)
    } else {
        let groups = if blocks >= 2 * threads {
            1
        } else {
            (2 * threads).div_ceil(blocks).min(panels.len())
        };
        panels.len().div_ceil(groups)
    };
    (panels, per_group)
}

/// Tile rows per panel-major block, by a cost in units of one tile's 36
/// products: the block's tiles padded to whole vectors over the tile
/// kernel's efficiency at that width (thin tiles are load-bound), doubled
/// when the block's V outgrows L2 (every panel reads it again), plus per
/// block the filter transform (unshared) or its reload from L3 (shared,
/// over L2). resnet_3x3_256 took 16-tile blocks before (no padding, but
/// 65% kernels and four reloads of a 9.4 MB filter).
pub(super) fn panel_block_rows(g: &ConvGeometry, lanes: usize) -> usize {
    let (cin, cout) = (g.c_in, g.c_out);
    let (th, tw, _) = tiles(g);
    let rows_total = g.n * th;
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
    (1..=max_rows)
        .rev()
        .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
        .unwrap_or(1)
}

/// Tile rows per point-major block: as many as keep a block's V per point
/// under [`POINT_FLOATS`].
pub(super) fn point_block_rows(g: &ConvGeometry, lanes: usize) -> usize {
    let (th, tw, _) = tiles(g);
    let rows_total = g.n * th;
    (1..=rows_total)
        .rev()
        .find(|&r| g.c_in * (r * tw).next_multiple_of(lanes) <= POINT_FLOATS)
        .unwrap_or(1)
}

/// Whether the transformed filter of the layer `g` is small enough to be
/// made once and shared by every task (point-major needs it whole).
pub(super) fn shareable(g: &ConvGeometry) -> bool {
    36usize.saturating_mul(g.c_in).saturating_mul(g.c_out) <= SHARED_FILTER_FLOATS
}

/// Whether the layer `g` (as laid out) runs faster point-major: when the
/// panel-major blocks would run the thin (one-vector) tile kernel but a
/// point-major block is wide enough for a wider one, and the transformed
/// filter is small enough to share.
pub(super) fn prefers_point_major(g: &ConvGeometry, lanes: usize) -> bool {
    let (_, tw, _) = tiles(g);
    let width = |rows: usize| (rows * tw).next_multiple_of(lanes);
    shareable(g)
        && tile_shape(g.c_out, width(panel_block_rows(g, lanes))).1 == 1
        && tile_shape(g.c_out, width(point_block_rows(g, lanes))).1 >= 2
}

#[cfg(test)]
mod tests {
    use super::super::layer;
    use super::*;

    /// Which layers run point-major (with the AVX-512 menu the plan was
    /// measured on): the deep 14x14 ones whose panel-major blocks would be
    /// one vector of tiles wide, over all their tiles at once.
    #[test]
    fn point_major_takes_few_tiles_of_many_channels() {
        if crate::kernels::ukernel::menu().lanes != 16 {
            return;
        }
        let point = |g: &ConvGeometry| prefers_point_major(g, 16);
        assert!(point(&layer(4, 256, 14, 256)));
        assert_eq!(point_block_rows(&layer(4, 256, 14, 256), 16), 16);
        assert!(point(&layer(8, 256, 14, 256)));
        assert_eq!(point_block_rows(&layer(8, 256, 14, 256), 16), 32);
        // One image's 16 tiles are one vector either way.
        assert!(!point(&layer(1, 256, 14, 256)));
        // The transformed filter is made per panel in each task.
        assert!(!point(&layer(4, 512, 7, 512)));
        // Panel-major blocks already several vectors wide.
        assert!(!point(&layer(4, 128, 28, 128)));
        assert!(!point(&layer(4, 64, 56, 64)));
    }

    /// The plans of the suite's Winograd layers (resnet_3x3_64 .. 512) at
    /// one and two threads with the 8-lane menu (AVX2 and portable code):
    /// blocks, panels, tasks and what is shared. Every (block, panel) is
    /// covered by exactly one task, on every menu.
    #[test]
    fn suite_layers_plan_as_measured() {
        let pinned = crate::kernels::ukernel::menu().lanes == 8;
        // (layer, order, threads) -> (block rows, blocks, mr, panels,
        // tasks, share_u, share_v)
        type Pinned = (usize, usize, usize, usize, usize, bool, bool);
        let cases: [(ConvGeometry, Order, usize, Pinned); 8] = [
            (
                layer(4, 64, 56, 64),
                Order::PanelMajor,
                1,
                (8, 7, 6, 11, 7, true, false),
            ),
            (
                layer(4, 64, 56, 64),
                Order::PanelMajor,
                2,
                (8, 7, 6, 11, 7, true, false),
            ),
            (
                layer(4, 128, 28, 128),
                Order::PanelMajor,
                1,
                (8, 4, 8, 16, 4, true, false),
            ),
            (
                layer(4, 128, 28, 128),
                Order::PanelMajor,
                2,
                (8, 4, 8, 16, 4, true, false),
            ),
            (
                layer(4, 256, 14, 256),
                Order::PanelMajor,
                1,
                (4, 4, 6, 43, 4, true, false),
            ),
            (
                layer(4, 256, 14, 256),
                Order::PanelMajor,
                2,
                (4, 4, 6, 43, 4, true, false),
            ),
            (
                layer(4, 512, 7, 512),
                Order::PanelMajor,
                1,
                (4, 2, 8, 64, 2, false, false),
            ),
            (
                layer(4, 512, 7, 512),
                Order::PanelMajor,
                2,
                (4, 2, 8, 64, 4, false, true),
            ),
        ];
        for (g, order, threads, want) in cases {
            let p = ForwardPlan::new(
                &g,
                super::super::layout(&g, super::super::Phases::NONE).1,
                WeightView::forward(g.c_in),
                order,
                threads,
                crate::kernels::ukernel::menu().lanes,
            );
            let got = (
                p.block_rows,
                p.blocks,
                p.mr,
                p.panels.len(),
                p.tasks.len(),
                p.share_u,
                p.share_v,
            );
            println!("{} {order:?} {threads}: {got:?}", g.c_in);
            if pinned {
                assert_eq!(
                    got, want,
                    "{} channels, {order:?}, {threads} threads",
                    g.c_in
                );
            }
            let mut covered = vec![0; p.blocks * p.panels.len()];
            for &(b, p0) in &p.tasks {
                for q in p0..(p0 + p.per_group).min(p.panels.len()) {
                    covered[b * p.panels.len() + q] += 1;
                }
            }
            assert!(covered.iter().all(|&c| c == 1));
            // Panels cover the output channels in order.
            let mut next = 0;
            for &(m0, pr) in &p.panels {
                assert_eq!(m0, next);
                next += pr;
            }
            assert_eq!(next, g.c_out);
        }
    }
}
