//! The implicit GEMM forward: `out[co][p] = bias[co] + sum_k W[co][k] *
//! X[off_k + p]` over the flat columns of each image and group.

use super::{blocks_per_task, images_per_batch, pack_batch, packed_buffer, threads};
use crate::error::Result;
use crate::kernels::flat::{
    gemm_blocks, gemm_rows, pack_panels, slack, tile_shape, Dest, FlatGeom,
};
use crate::kernels::ukernel;
use crate::memory;
use crate::parallel::{for_each, Shared};
use crate::shape::ConvGeometry;
use std::mem::MaybeUninit;

/// Forward outputs from this many bytes are stored around the caches
/// (8 MiB: four times the bench machine's L2, so the lines would be
/// evicted unread anyway).
pub(in super::super) const STREAM_MIN_BYTES: usize = 8 << 20;

/// How the forward of one geometry runs.
#[derive(Clone, Debug)]
pub(super) struct ForwardPlan {
    pub fg: FlatGeom,
    /// Tile rows and vectors.
    pub mr: usize,
    pub nv: usize,
    /// Rows of whole vectors (the stem's 112 columns of 115) are written
    /// straight to the output by `gemm_rows`, tasks splitting rows; else
    /// blocks of `nv` vectors of flat columns, tasks splitting blocks.
    pub by_rows: bool,
    /// The output is stored around the caches (whatever its alignment:
    /// see `gemm_rows`).
    pub stream: bool,
    /// Rows (by rows) or blocks per image and group.
    pub units: usize,
    /// Images packed at once (all when read in place).
    pub per_batch: usize,
    /// Floats of one packed image.
    pub image_len: usize,
    pub threads: usize,
}

impl ForwardPlan {
    /// The plan for `g` on `threads` threads.
    pub fn new(g: &ConvGeometry, threads: usize) -> ForwardPlan {
        let fg = FlatGeom::new(g);
        let lanes = ukernel::menu().lanes;
        let (mr, nv) = tile_shape(g.cout_g(), fg.np);
        let blocks = fg.np.div_ceil(nv * lanes);
        let plane_out = g.oh * g.ow;
        let by_rows = !fg.in_place && fg.wq > g.ow && g.ow % lanes == 0;
        // Outputs far larger than L2 are stored around the caches: writing
        // the stem's 12.8 MB through them first read every line in
        // (`convlab bench` medians 4.40 -> 4.00 ms at two threads, 14
        // interleaved rounds; 7.01 -> 6.69 at one).
        let stream = by_rows && (g.n * g.c_out * plane_out).saturating_mul(4) >= STREAM_MIN_BYTES;
        let image_len = fg.image_len(g);
        let per_batch = if fg.in_place {
            g.n
        } else {
            images_per_batch(g.n, image_len)
        };
        ForwardPlan {
            mr,
            nv,
            by_rows,
            stream,
            units: if by_rows { g.oh } else { blocks },
            per_batch,
            image_len,
            threads,
            fg,
        }
    }

    /// Flat columns per block.
    fn nb(&self) -> usize {
        self.nv * ukernel::menu().lanes
    }

    /// Tasks of the images `[n0, n1)`: `(image, group, first unit)`, each
    /// running `per_task` units (the second value).
    fn tasks(&self, g: &ConvGeometry, (n0, n1): (usize, usize)) -> (Vec<[usize; 3]>, usize) {
        let per_task = blocks_per_task(self.threads, (n1 - n0) * g.groups, self.units);
        let tasks = (n0..n1)
            .flat_map(|n| {
                (0..g.groups).flat_map(move |grp| {
                    (0..self.units)
                        .step_by(per_task)
                        .map(move |u0| [n, grp, u0])
                })
            })
            .collect();
        (tasks, per_task)
    }

    /// Floats of a task's result buffer: a block's results, or a flat
    /// row's on their way to a misaligned streamed output.
    fn scratch_len(&self, g: &ConvGeometry) -> usize {
        g.cout_g() * self.nb().max(if self.by_rows { g.ow } else { 0 })
    }

    /// Floats the pass holds at once: packed panels, packed images and
    /// each thread's result and tail buffers.
    pub fn workspace_len(&self, g: &ConvGeometry) -> usize {
        let packed = if self.fg.in_place {
            0
        } else {
            self.per_batch * self.image_len + slack(self.nb(), self.fg.wq)
        };
        let tail = if self.fg.in_place {
            self.fg.offs.len() * self.nb()
        } else {
            0
        };
        let weight = g.c_out * self.fg.offs.len();
        weight + packed + self.threads * (self.scratch_len(g) + tail)
    }
}

/// `out` (`[n, c_out, oh, ow]`, every element written) = conv(input,
/// weight) + bias.
pub(in super::super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    let plan = ForwardPlan::new(g, threads(g));
    memory::check_f32(OP, plan.workspace_len(g))?;
    let fg = &plan.fg;
    let (cout_g, k) = (g.cout_g(), fg.offs.len());
    let mut panels = memory::Scratch::take(OP, weight.len())?;
    for grp in 0..g.groups {
        let rows = &weight[grp * cout_g * k..][..cout_g * k];
        pack_panels(
            k,
            rows,
            plan.mr,
            &mut panels[grp * cout_g * k..][..cout_g * k],
        );
    }
    let mut packed = if fg.in_place {
        None
    } else {
        let slack = slack(plan.nb(), fg.wq);
        Some(packed_buffer(OP, plan.per_batch, plan.image_len, slack)?)
    };
    let out = Shared(out.as_mut_ptr() as *mut f32);
    let mut n0 = 0;
    while n0 < g.n {
        let n1 = (n0 + plan.per_batch).min(g.n);
        let x: &[f32] = match &mut packed {
            None => input,
            Some(p) => {
                pack_batch(g, fg, input, (n0, n1), plan.image_len, plan.threads, p);
                &p[..]
            }
        };
        let batch = Batch {
            plan: &plan,
            g,
            x,
            n0,
            panels: &panels,
            bias,
            out,
        };
        let (tasks, per_task) = plan.tasks(g, (n0, n1));
        let tail_len = if fg.in_place { k * plan.nb() } else { 0 };
        let init = || {
            (
                memory::Scratch::prechecked(plan.scratch_len(g)),
                memory::Scratch::prechecked(tail_len),
            )
        };
        for_each(plan.threads, &tasks, init, |bufs, &task| {
            batch.run(task, per_task, bufs)
        });
        n0 = n1;
    }
    Ok(())
}

/// One batch of packed images and what its tasks share.
struct Batch<'a> {
    plan: &'a ForwardPlan,
    g: &'a ConvGeometry,
    /// The packed images (from image `n0`), or the input read in place.
    x: &'a [f32],
    n0: usize,
    panels: &'a [f32],
    bias: Option<&'a [f32]>,
    out: Shared<f32>,
}

impl Batch<'_> {
    /// Units `[u0, u0 + per_task)` of image `n`, group `grp`.
    fn run(
        &self,
        [n, grp, u0]: [usize; 3],
        per_task: usize,
        (scratch, tail): &mut (memory::Scratch, memory::Scratch),
    ) {
        let (plan, g) = (self.plan, self.g);
        let fg = &plan.fg;
        let (cin_g, cout_g, k) = (g.cin_g(), g.cout_g(), fg.offs.len());
        let plane_out = g.oh * g.ow;
        let img = if fg.in_place { n } else { n - self.n0 };
        let base = img * plan.image_len + grp * cin_g * fg.plane();
        let dst = Dest {
            // SAFETY: planes (n, grp*cout_g ..) lie inside `out`.
            ptr: unsafe { self.out.get().add((n * g.c_out + grp * cout_g) * plane_out) },
            plane: plane_out,
            row: g.ow,
            col: 1,
        };
        let b = self.bias.map_or(&[][..], |b| &b[grp * cout_g..][..cout_g]);
        let panels = &self.panels[grp * cout_g * k..][..cout_g * k];
        let units = (u0, (u0 + per_task).min(plan.units));
        let fm = fg.gemm(g, plan.nb());
        let x = self.x;
        if plan.by_rows {
            // SAFETY: `x` holds the packed images; tasks write disjoint
            // rows of `out`; `scratch` holds cout_g rows of ow floats.
            unsafe {
                gemm_rows(
                    &fm,
                    x.as_ptr().add(base),
                    panels,
                    b,
                    (plan.mr, plan.nv),
                    units,
                    dst,
                    plan.stream,
                    scratch,
                )
            };
            return;
        }
        // SAFETY: `x` holds the packed images plus `slack` floats, or the
        // input itself (in place: the tail block is copied); tasks write
        // disjoint blocks of columns of `out`.
        unsafe {
            gemm_blocks(
                &fm,
                x.as_ptr().add(base),
                x.len() - base,
                panels,
                b,
                (plan.mr, plan.nv),
                units,
                dst,
                scratch,
                tail,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{conv2d::plan as conv_plan, Conv2dParams};

    /// An output of 8 MiB (a stem-like 7x7 stride-2 layer on a 512x512
    /// image) is streamed around the caches wherever it starts: on a cache
    /// line (the tile kernel streams), or a few floats past one (rows go
    /// through the scratch): the same bits either way.
    #[test]
    fn streamed_output_is_the_same_at_any_alignment() {
        let p = Conv2dParams::new().stride(2).padding(3);
        let g = conv_plan(&[1, 3, 512, 512], &[32, 3, 7, 7], None, &p)
            .unwrap()
            .geom;
        let plan = ForwardPlan::new(&g, 1);
        assert!(plan.by_rows && plan.stream, "{plan:?}");
        let wave = |i: usize, k: f32| ((i as f32 * k).sin() * 8.0).round() / 8.0;
        let x: Vec<f32> = (0..3 * 512 * 512).map(|i| wave(i, 0.37)).collect();
        let w: Vec<f32> = (0..32 * 3 * 49).map(|i| wave(i, 1.3)).collect();
        let b: Vec<f32> = (0..32).map(|i| wave(i, 0.7)).collect();
        let len = 32 * 256 * 256;
        let mut buf = vec![MaybeUninit::new(f32::NAN); len + 32];
        let line = buf.as_ptr().align_offset(64);
        let mut first: Option<Vec<u32>> = None;
        for off in [0, 1, 4, 15] {
            let out = &mut buf[line + off..][..len];
            forward(&g, &x, &w, Some(&b), out).unwrap();
            // SAFETY: forward writes every element.
            let bits: Vec<u32> = out
                .iter()
                .map(|v| unsafe { v.assume_init() }.to_bits())
                .collect();
            match &first {
                None => first = Some(bits),
                Some(want) => assert!(bits == *want, "offset {off}"),
            }
        }
    }
}
