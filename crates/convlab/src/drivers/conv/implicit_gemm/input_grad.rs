//! The implicit GEMM input gradient: per input phase, a flat GEMM of the
//! flipped taps over the zero-padded grad_output (see
//! [`GradInputPlan`]). Each input position belongs to one phase, so every
//! gradient element is one tile kernel's sum, whatever the split.

use super::{blocks_per_task, images_per_batch, threads};
use crate::error::Result;
use crate::kernels::flat::{
    gemm_blocks, pack_grad_output, pack_panels, slack, taps_per_chunk, tile_shape, Dest, FlatGemm,
    GradInputPlan,
};
use crate::kernels::ukernel;
use crate::memory;
use crate::parallel::{for_each, Shared};
use crate::shape::ConvGeometry;

/// One phase's GEMM: tap offsets, tile shape, packed weights of every
/// group, and where its first kept result lies in the input plane.
struct Phase {
    offs: Vec<usize>,
    mr: usize,
    nv: usize,
    np: usize,
    panels: Vec<f32>,
    dst0: usize,
}

/// How the input gradient of one geometry runs.
struct InputGradPlan {
    flat: GradInputPlan,
    phases: Vec<Phase>,
    /// Widest block of any phase, in floats.
    max_nb: usize,
    /// Images whose padded grad_output planes are made at once.
    per_batch: usize,
    threads: usize,
}

impl InputGradPlan {
    /// The plan for `g` on `threads` threads, with `weight` packed per
    /// phase.
    fn new(g: &ConvGeometry, weight: &[f32], threads: usize) -> Result<InputGradPlan> {
        const OP: &str = "conv2d_backward";
        let flat = GradInputPlan::new(g);
        let (cin_g, groups) = (g.cin_g(), g.groups);
        let lanes = ukernel::menu().lanes;
        let mut phases = Vec::with_capacity(flat.phases.len());
        for ph in &flat.phases {
            let offs = flat.offsets(g, ph);
            let np = (ph.rows.1 - ph.rows.0) * flat.wg;
            let (mr, nv) = tile_shape(cin_g, np);
            let k = offs.len();
            memory::check_f32(OP, groups.saturating_mul(cin_g).saturating_mul(k))?;
            let mut panels = vec![0.0; groups * cin_g * k];
            for grp in 0..groups {
                let a = flat.weights(g, ph, grp, weight);
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
        let per_batch = images_per_batch(g.n, g.c_out * flat.plane());
        Ok(InputGradPlan {
            flat,
            phases,
            max_nb,
            per_batch,
            threads,
        })
    }

    /// Floats of the padded grad_output planes of one batch.
    fn packed_len(&self, g: &ConvGeometry) -> usize {
        self.per_batch
            .saturating_mul(g.c_out * self.flat.plane())
            .saturating_add(slack(self.max_nb, self.flat.wg))
    }

    /// Tasks of the images `[n0, n1)`: `(phase, image, group, first block,
    /// end block)`.
    fn tasks(&self, g: &ConvGeometry, (n0, n1): (usize, usize)) -> Vec<[usize; 5]> {
        let lanes = ukernel::menu().lanes;
        let mut tasks = Vec::new();
        for (pi, ph) in self.phases.iter().enumerate() {
            let blocks = ph.np.div_ceil(ph.nv * lanes);
            let units = (n1 - n0) * g.groups * self.phases.len();
            let per_task = blocks_per_task(self.threads, units, blocks);
            for n in n0..n1 {
                for grp in 0..g.groups {
                    for b0 in (0..blocks).step_by(per_task) {
                        tasks.push([pi, n, grp, b0, (b0 + per_task).min(blocks)]);
                    }
                }
            }
        }
        tasks
    }
}

/// `grad_input` (zeroed, `[n, c_in, h, w]`) = conv's input gradient.
pub(in super::super) fn backward_input(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward";
    let plan = InputGradPlan::new(g, weight, threads(g))?;
    if plan.phases.is_empty() {
        // No tap reaches a real input position: the gradient is zero.
        return Ok(());
    }
    let mut packed = memory::Scratch::take(OP, plan.packed_len(g))?;
    let gin = Shared(grad_input.as_mut_ptr());
    let mut n0 = 0;
    while n0 < g.n {
        let n1 = (n0 + plan.per_batch).min(g.n);
        pad_grad_output(g, &plan, grad_output, (n0, n1), &mut packed);
        let x: &[f32] = &packed;
        let tasks = plan.tasks(g, (n0, n1));
        let init = || memory::Scratch::prechecked(g.cin_g() * plan.max_nb);
        for_each(plan.threads, &tasks, init, |scratch, &task| {
            run_task(g, &plan, x, n0, gin, task, scratch)
        });
        n0 = n1;
    }
    Ok(())
}

/// The padded grad_output planes of images `[n0, n1)` into `packed`, split
/// over planes.
fn pad_grad_output(
    g: &ConvGeometry,
    plan: &InputGradPlan,
    grad_output: &[f32],
    (n0, n1): (usize, usize),
    packed: &mut [f32],
) {
    let gplane = plan.flat.plane();
    let plane_out = g.oh * g.ow;
    let planes: Vec<(usize, usize)> = (n0..n1)
        .flat_map(|n| (0..g.c_out).map(move |c| (n, c)))
        .collect();
    let dst = Shared(packed.as_mut_ptr());
    for_each(
        plan.threads,
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
            let src = &grad_output[(n * g.c_out + c) * plane_out..][..plane_out];
            pack_grad_output(g, &plan.flat, src, d);
        },
    );
}

/// Blocks `[b0, b1)` of phase `pi` of image `n`, group `grp`.
fn run_task(
    g: &ConvGeometry,
    plan: &InputGradPlan,
    x: &[f32],
    n0: usize,
    gin: Shared<f32>,
    [pi, n, grp, b0, b1]: [usize; 5],
    scratch: &mut [f32],
) {
    let lanes = ukernel::menu().lanes;
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let (ph, info) = (&plan.phases[pi], &plan.flat.phases[pi]);
    let k = ph.offs.len();
    let fm = FlatGemm {
        m: cin_g,
        offs: &ph.offs,
        np: ph.np,
        wq: plan.flat.wg,
        cols: info.cols,
        in_place: false,
        chunk: taps_per_chunk(info.taps.len(), 1, ph.nv * lanes),
    };
    let base = ((n - n0) * g.c_out + grp * cout_g) * plan.flat.plane();
    let plane_in = g.h * g.w;
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
    // SAFETY: `x` holds the padded grad_output planes plus `slack`; the
    // phase's kept results are its own input positions, and tasks write
    // disjoint blocks of them.
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
}
