//! The implicit GEMM weight gradient: `sum_p X[off_k + p] *
//! grad_output[p]` over the flat columns of every image, the (image, group)
//! pairs of each batch cut into a fixed number of parts whose sums are
//! added in order.

use super::{images_per_batch, pack_batch, packed_buffer, threads};
use crate::error::Result;
use crate::kernels::flat::{pack_grad_output_rows, weight_grad_rows, FlatGeom};
use crate::kernels::ukernel;
use crate::memory;
use crate::parallel;
use crate::shape::ConvGeometry;

/// How the weight gradient of one geometry runs.
#[derive(Clone, Debug)]
pub(super) struct WeightGradPlan {
    pub fg: FlatGeom,
    /// Floats per tap row of an accumulator (output channels, padded to
    /// whole vectors).
    pub ld: usize,
    /// Images packed at once (all when read in place).
    pub per_batch: usize,
    pub image_len: usize,
    /// Floats of one accumulator: `[group][tap][ld]`.
    pub acc_len: usize,
    /// Floats of one task's transposed grad_output rows.
    pub rows_len: usize,
    pub threads: usize,
}

impl WeightGradPlan {
    /// The plan for `g` on `threads` threads.
    pub fn new(g: &ConvGeometry, threads: usize) -> WeightGradPlan {
        let fg = FlatGeom::new(g);
        let lanes = ukernel::menu().lanes;
        let ld = g.cout_g().next_multiple_of(lanes);
        let image_len = fg.image_len(g);
        let per_batch = if fg.in_place {
            g.n
        } else {
            images_per_batch(g.n, image_len)
        };
        WeightGradPlan {
            ld,
            per_batch,
            image_len,
            acc_len: g.groups * fg.offs.len() * ld,
            rows_len: fg.np.saturating_mul(ld),
            threads,
            fg,
        }
    }

    /// The parts of the (image, group) pairs of images `[n0, n1)`: fixed by
    /// the geometry, whatever the thread count.
    pub fn parts(&self, g: &ConvGeometry, (n0, n1): (usize, usize)) -> Vec<(usize, usize)> {
        let pairs = (n1 - n0) * g.groups;
        parallel::reduction_parts(pairs)
            .into_iter()
            .map(|(a, b)| (n0 * g.groups + a, n0 * g.groups + b))
            .collect()
    }

    /// Floats the pass holds at once: packed images, the parts' and the
    /// running sums, each thread's grad_output rows.
    pub fn workspace_len(&self) -> usize {
        let packed = if self.fg.in_place {
            0
        } else {
            self.per_batch * self.image_len
        };
        packed + self.acc_len * (parallel::REDUCTION_PARTS + 1) + self.threads * self.rows_len
    }
}

/// `grad_weight` (`[c_out, cin_g, kh, kw]`) += conv's weight gradient.
pub(in super::super) fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward";
    let plan = WeightGradPlan::new(g, threads(g));
    memory::check_f32(OP, plan.workspace_len())?;
    let fg = &plan.fg;
    let mut packed = if fg.in_place {
        None
    } else {
        Some(packed_buffer(OP, plan.per_batch, plan.image_len, 0)?)
    };
    let mut sum = vec![0.0f32; plan.acc_len];
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
        let x_n0 = if fg.in_place { 0 } else { n0 };
        let parts = plan.parts(g, (n0, n1));
        let sums = parallel::map_collect(plan.threads, &parts, |&part| {
            part_sum(g, &plan, x, x_n0, grad_output, part)
        });
        for part in &sums {
            sum.iter_mut().zip(part).for_each(|(s, v)| *s += v);
        }
        n0 = n1;
    }
    // Transpose [grp][k][co] -> [co][k].
    let (cout_g, k, ld) = (g.cout_g(), fg.offs.len(), plan.ld);
    for grp in 0..g.groups {
        for co in 0..cout_g {
            let gw = &mut grad_weight[(grp * cout_g + co) * k..][..k];
            for (kk, v) in gw.iter_mut().enumerate() {
                *v += sum[(grp * k + kk) * ld + co];
            }
        }
    }
    Ok(())
}

/// The sum over the (image, group) pairs `[p0, p1)` (pair `i` is image `i
/// / groups`), in one accumulator. `x` holds images from `x_n0` on. The
/// sum leaves as a plain vector; the scratch stays in the worker's pool (a
/// scratch dropped on another thread lands in that thread's pool, and the
/// worker allocates afresh next call).
fn part_sum(
    g: &ConvGeometry,
    plan: &WeightGradPlan,
    x: &[f32],
    x_n0: usize,
    grad_output: &[f32],
    (p0, p1): (usize, usize),
) -> Vec<f32> {
    let fg = &plan.fg;
    let (cin_g, cout_g, k, ld) = (g.cin_g(), g.cout_g(), fg.offs.len(), plan.ld);
    let plane_out = g.oh * g.ow;
    let mut acc = vec![0.0f32; plan.acc_len];
    let mut rows = memory::Scratch::prechecked(plan.rows_len);
    for pair in p0..p1 {
        let (n, grp) = (pair / g.groups, pair % g.groups);
        let gy = &grad_output[(n * g.c_out + grp * cout_g) * plane_out..][..cout_g * plane_out];
        let rows = &mut rows[..plan.rows_len];
        pack_grad_output_rows(cout_g, g.oh, g.ow, fg.wq, gy, ld, rows);
        let base = (n - x_n0) * plan.image_len + grp * cin_g * fg.plane();
        // SAFETY: X is read one float per (tap, column < np), all inside
        // the (packed) image; `rows` holds np rows.
        unsafe {
            weight_grad_rows(
                &fg.offs,
                x.as_ptr().add(base),
                rows,
                ld,
                fg.np,
                &mut acc[grp * k * ld..][..k * ld],
            )
        };
    }
    acc
}
