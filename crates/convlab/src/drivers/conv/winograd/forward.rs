//! The executor of a [`ForwardPlan`]: the shared transforms first (filters
//! panel by panel, inputs block by block), then the tasks. A task takes its
//! block's transformed input and, per panel of output channels, runs the 36
//! GEMMs and the output transform while the panel's products are in cache
//! (panel-major); or each of the 36 products over all of its panels in turn
//! while that point's slice of V stays in L2 (point-major).

use super::plan::ForwardPlan;
use super::transform_input;
use crate::error::Result;
use crate::kernels::ukernel::{self, Init, Tile};
use crate::kernels::winograd::{filter_panel, filter_xi_stride, output_block};
use crate::memory;
use crate::parallel::{for_each, Shared};
use std::mem::MaybeUninit;

/// One task's scratch: transformed input, products, a filter chunk, and
/// the transforms' row buffers (pooled: stale contents, every kernel
/// writes before it reads).
struct TaskBufs {
    v: memory::Scratch,
    m: memory::Scratch,
    u: memory::Scratch,
    sin: memory::Scratch,
    sout: memory::Scratch,
}

/// What every task reads.
struct Shares<'a> {
    plan: &'a ForwardPlan,
    input: &'a [f32],
    weight: &'a [f32],
    /// Transformed filters (when shared) and inputs (when shared).
    u: &'a [f32],
    v: &'a [f32],
    /// `B` row offsets of the tile kernel: channel `c` at `c * tbp`.
    b_off: &'a [usize],
    out: Shared<f32>,
}

/// `out` (every element written) = the plan's convolution of `input` with
/// `weight`.
pub(super) fn run(
    plan: &ForwardPlan,
    input: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    memory::check_f32(OP, plan.workspace_len())?;
    let mut shared_u = memory::Scratch::prechecked(plan.shared_u_len);
    if plan.share_u {
        transform_filters(plan, weight, &mut shared_u);
    }
    let mut shared_v = memory::Scratch::prechecked(plan.shared_v_len);
    if plan.share_v {
        transform_inputs(plan, input, &mut shared_v);
    }
    let b_off: Vec<usize> = (0..plan.g.c_in).map(|c| c * plan.tbp).collect();
    let shares = Shares {
        plan,
        input,
        weight,
        u: &shared_u,
        v: &shared_v,
        b_off: &b_off,
        out: Shared(out.as_mut_ptr() as *mut f32),
    };
    let take = memory::Scratch::prechecked;
    let init = || TaskBufs {
        v: take(plan.vlen_task),
        m: take(plan.mlen),
        u: take(plan.ulen),
        sin: take(plan.in_len),
        sout: take(plan.out_len),
    };
    for_each(plan.threads, &plan.tasks, init, |bufs, &task| {
        shares.task(bufs, task)
    });
    Ok(())
}

/// Every panel's transformed filter into `u`, panels split over threads.
/// Every float a GEMM reads is written by its panel's transform.
fn transform_filters(plan: &ForwardPlan, weight: &[f32], u: &mut [f32]) {
    let cin = plan.g.c_in;
    let dst = Shared(u.as_mut_ptr());
    let work: Vec<usize> = (0..plan.panels.len()).collect();
    for_each(
        plan.threads,
        &work,
        || (),
        |_, &p| {
            let (m0, pr) = plan.panels[p];
            let len = 36 * filter_xi_stride(cin, pr);
            // SAFETY: panel p alone writes its floats [panel_at[p], + len),
            // inside `u` (the plan's shared filter length).
            let u = unsafe { std::slice::from_raw_parts_mut(dst.get().add(plan.panel_at[p]), len) };
            // SAFETY: the view maps into `weight`; u holds the panel.
            unsafe { filter_panel(weight, plan.view, (m0, pr), (0, cin), u) };
        },
    );
}

/// Every block's transformed input into `v`, channels split over threads.
fn transform_inputs(plan: &ForwardPlan, input: &[f32], v: &mut [f32]) {
    let cin = plan.g.c_in;
    let dst = Shared(v.as_mut_ptr());
    let per = cin.div_ceil(2 * plan.threads).max(1);
    let work: Vec<(usize, usize)> = (0..plan.blocks)
        .flat_map(|b| (0..cin).step_by(per).map(move |c| (b, c)))
        .collect();
    let vlen = plan.vlen();
    for_each(
        plan.threads,
        &work,
        || memory::Scratch::prechecked(plan.in_len),
        |sin, &(blk, c0)| {
            let r0 = blk * plan.block_rows;
            let r1 = (r0 + plan.block_rows).min(plan.rows_total);
            let cs = (c0, (c0 + per).min(cin));
            // SAFETY: block blk's V holds 36 rows of cin * tbp floats, of
            // which these channels are written by this task alone.
            unsafe {
                transform_input(
                    &plan.g,
                    plan.lay,
                    input,
                    (r0, r1),
                    cs,
                    plan.tbp,
                    dst.get().add(blk * vlen),
                    sin,
                )
            };
        },
    );
}

impl Shares<'_> {
    /// Block `blk`, the panel group starting at panel `p0`.
    fn task(&self, bufs: &mut TaskBufs, (blk, p0): (usize, usize)) {
        let plan = self.plan;
        let TaskBufs { v, m, u, sin, sout } = bufs;
        let r0 = blk * plan.block_rows;
        let r1 = (r0 + plan.block_rows).min(plan.rows_total);
        let vlen = plan.vlen();
        let v: &[f32] = if plan.share_v {
            &self.v[blk * vlen..][..vlen]
        } else {
            let (g, cin) = (&plan.g, plan.g.c_in);
            // SAFETY: v holds 36 rows of cin * tbp floats; the task owns it.
            unsafe {
                transform_input(
                    g,
                    plan.lay,
                    self.input,
                    (r0, r1),
                    (0, cin),
                    plan.tbp,
                    v.as_mut_ptr(),
                    sin,
                )
            };
            &v[..]
        };
        let group = p0..(p0 + plan.per_group).min(plan.panels.len());
        if plan.point_major {
            self.point_major(v, m, u, group, (r0, r1), sout);
        } else {
            self.panel_major(v, m, u, group, (r0, r1), sout);
        }
    }

    /// Panel after panel: its 36 GEMMs, then its output transform.
    /// Unshared filters are transformed a chunk of input channels at a time
    /// into a buffer that stays in L2, each chunk's products accumulated
    /// into M: writing a whole 512-channel panel (1.2 MB) per panel cost
    /// more than its GEMMs.
    fn panel_major(
        &self,
        v: &[f32],
        m: &mut [f32],
        u: &mut [f32],
        group: std::ops::Range<usize>,
        (r0, r1): (usize, usize),
        sout: &mut [f32],
    ) {
        let plan = self.plan;
        let (cin, tbp, lanes) = (plan.g.c_in, plan.tbp, plan.lanes);
        let nt = ((r1 - r0) * (plan.g.ow.div_ceil(4))).next_multiple_of(lanes);
        for p in group {
            let (m0, pr) = plan.panels[p];
            let mut k0 = 0;
            while k0 < cin {
                let k1 = if plan.share_u {
                    cin
                } else {
                    (k0 + plan.kc).min(cin)
                };
                let (up, xs): (&[f32], usize) = if plan.share_u {
                    let len = 36 * filter_xi_stride(cin, pr);
                    (
                        &self.u[plan.panel_at[p]..][..len],
                        filter_xi_stride(cin, pr),
                    )
                } else {
                    // SAFETY: the view maps into `weight`; u holds a chunk.
                    unsafe { filter_panel(self.weight, plan.view, (m0, pr), (k0, k1), u) };
                    (&u[..], filter_xi_stride(k1 - k0, pr))
                };
                for xi in 0..36 {
                    let mut cb = 0;
                    while cb < nt {
                        let nvb = plan.nv.min((nt - cb) / lanes);
                        let t = Tile {
                            k: k1 - k0,
                            a: up[xi * xs..].as_ptr(),
                            lda: pr,
                            a_off: std::ptr::null(),
                            b: v[(xi * cin + k0) * tbp + cb..].as_ptr(),
                            b_off: self.b_off.as_ptr(),
                            c: m[xi * pr * tbp + cb..].as_mut_ptr(),
                            ldc: tbp,
                            stream: false,
                            init: if k0 == 0 { Init::Zero } else { Init::Load },
                        };
                        // SAFETY: A is the chunk's [k][pr] block for xi; B
                        // rows (k0 + ci) * tbp + cb .. + nvb*lanes <= tbp
                        // lie in V[xi]; C rows r < pr of M[xi] hold tbp
                        // floats.
                        unsafe { ukernel::run(pr, nvb, &t) };
                        cb += nvb * lanes;
                    }
                }
                k0 = k1;
            }
            self.write_out(m, (m0, pr), (r0, r1), sout);
        }
    }

    /// Point-major: the group's transformed filters (its own, or its slice
    /// of the shared ones), then each of the 36 products over every panel
    /// in turn, then the output transform of all the group's channels.
    fn point_major(
        &self,
        v: &[f32],
        m: &mut [f32],
        u: &mut [f32],
        group: std::ops::Range<usize>,
        (r0, r1): (usize, usize),
        sout: &mut [f32],
    ) {
        let plan = self.plan;
        let (cin, tbp, lanes, mr) = (plan.g.c_in, plan.tbp, plan.lanes, plan.mr);
        let nt = ((r1 - r0) * (plan.g.ow.div_ceil(4))).next_multiple_of(lanes);
        let base = plan.panel_at[group.start];
        let panels = &plan.panels[group.clone()];
        let panel_at = &plan.panel_at[group];
        if plan.own_u {
            for (&(m0, pr), &at) in panels.iter().zip(panel_at) {
                let u = &mut u[at - base..][..36 * filter_xi_stride(cin, pr)];
                // SAFETY: the view maps into `weight`; u holds the panel.
                unsafe { filter_panel(self.weight, plan.view, (m0, pr), (0, cin), u) };
            }
        }
        let ug: &[f32] = if plan.own_u { u } else { &self.u[base..] };
        let g0 = panels[0].0;
        let rows: usize = panels.iter().map(|&(_, pr)| pr).sum();
        for xi in 0..36 {
            for (&(m0, pr), &at) in panels.iter().zip(panel_at) {
                let up = &ug[at - base + xi * filter_xi_stride(cin, pr)..];
                for r in (0..pr).step_by(mr) {
                    let mut cb = 0;
                    while cb < nt {
                        let nvb = plan.nv.min((nt - cb) / lanes);
                        let t = Tile {
                            k: cin,
                            a: up[r..].as_ptr(),
                            lda: pr,
                            a_off: std::ptr::null(),
                            b: v[xi * cin * tbp + cb..].as_ptr(),
                            b_off: self.b_off.as_ptr(),
                            c: m[(xi * rows + m0 - g0 + r) * tbp + cb..].as_mut_ptr(),
                            ldc: tbp,
                            stream: false,
                            init: Init::Zero,
                        };
                        // SAFETY: A is rows [r, r + mr) of the panel's
                        // [cin][pr] block for xi; B rows ci * tbp + cb .. +
                        // nvb*lanes <= tbp lie in V[xi]; C rows of M[xi]
                        // (rows * tbp floats) hold tbp floats.
                        unsafe { ukernel::run(mr.min(pr - r), nvb, &t) };
                        cb += nvb * lanes;
                    }
                }
            }
        }
        self.write_out(m, (g0, rows), (r0, r1), sout);
    }

    /// The output transform of output channels `[c0, c0 + rows)` for tile
    /// rows `[r0, r1)`, from `M[xi][r]` rows of the block's tiles (`rows *
    /// tbp` floats apart).
    fn write_out(
        &self,
        m: &[f32],
        (c0, rows): (usize, usize),
        (r0, r1): (usize, usize),
        sout: &mut [f32],
    ) {
        let plan = self.plan;
        let (g, lay, tbp) = (&plan.g, plan.lay, plan.tbp);
        for r in 0..rows {
            let co = c0 + r;
            let plane = |img: usize| {
                // SAFETY: plane (img, co) lies inside `out`; only this task
                // writes its rows of tile rows [r0, r1).
                unsafe { self.out.get().add(lay.output(img, co, g.c_out, g.oh).0) }
            };
            let out_strides = lay.output(0, co, g.c_out, g.oh).1;
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
    }
}
