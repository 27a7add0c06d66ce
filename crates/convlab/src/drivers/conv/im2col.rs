//! im2col + GEMM (the `gemm` crate) over bands of output rows, all three
//! passes. Units (image, group) are split over rayon threads, each with
//! its own column buffer and a one-thread GEMM, or run one at a time with
//! the GEMM's own threads. Band sizes and the parts of the weight
//! gradient's sum are fixed by the geometry alone, so the thread count
//! changes the schedule, never a result.

use crate::error::{Error, Result};
use crate::kernels::gemm::{sgemm_strided_par, MatRef};
use crate::kernels::im2col::{col2im, im2col};
use crate::memory;
use crate::parallel;
use crate::shape::ConvGeometry;
use rayon::prelude::*;

/// Column floats per buffer at most (8 Mi floats = 32 MiB): half the 64
/// MiB scratch cap, so that two threads' buffers fit it.
const COLUMN_FLOATS: usize = 8 << 20;

/// Column floats per forward band (512 KiB): half of a Zen 4 core's L2,
/// a quarter of the Xeon's this was first measured on, so the GEMM reads
/// each band from L2 right after im2col wrote it instead of from L3 when
/// the whole image is one band.
const FORWARD_BAND_FLOATS: usize = 128 << 10;

/// Weights up to this many floats sum their gradient over images in
/// [`parallel::REDUCTION_PARTS`] accumulators; larger ones thread their
/// GEMMs.
const SMALL_WEIGHT: usize = 1 << 16;

/// How one im2col pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Im2colPlan {
    /// Units split over threads, each with a column buffer and one-thread
    /// GEMMs (else one unit at a time, GEMMs threaded).
    pub par_units: bool,
    pub threads: usize,
    /// A 1x1, stride-1, unpadded layer: the input is already the column
    /// matrix.
    pub pointwise: bool,
    /// Output rows per band, and floats of one column buffer.
    pub rows: usize,
    pub len: usize,
}

impl Im2colPlan {
    /// The plan of `g`'s forward (`forward`) or backward passes on
    /// `threads` threads.
    pub fn new(g: &ConvGeometry, forward: bool, threads: usize) -> Result<Im2colPlan> {
        let units = g.n * g.groups;
        let big = g.macs() >= parallel::SPLIT_MIN_MACS;
        let par_units = units >= 2 && big && threads > 1;
        let pointwise = is_pointwise(g);
        let (rows, len) = if pointwise {
            (g.oh, 0)
        } else if forward && units >= 2 && big {
            forward_band(g)?
        } else {
            band(g, COLUMN_FLOATS)?
        };
        Ok(Im2colPlan {
            par_units,
            threads: if par_units { threads } else { 1 },
            pointwise,
            rows,
            len,
        })
    }

    /// Floats of the column buffers held at once.
    pub fn workspace_len(&self) -> usize {
        self.len.saturating_mul(self.threads)
    }
}

/// A 1x1, stride-1, unpadded convolution needs no columns: the input is
/// already the `[C_in/groups, H*W]` matrix.
fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kh == 1
        && g.kw == 1
        && g.sh == 1
        && g.sw == 1
        && g.pt == 0
        && g.pl == 0
        && g.oh == g.h
        && g.ow == g.w
}

/// Output rows per band and the column buffer length for them, for a
/// buffer of at most `budget` floats.
fn band(g: &ConvGeometry, budget: usize) -> Result<(usize, usize)> {
    let k = g.cin_g() * g.kh * g.kw;
    let per_row = k.saturating_mul(g.ow).max(1);
    let rows = (budget / per_row).clamp(1, g.oh.max(1));
    let len = per_row
        .checked_mul(rows)
        .ok_or_else(|| Error::too_large("conv2d", "column buffer overflows"))?;
    Ok((rows, len))
}

/// The forward's band for several units: [`FORWARD_BAND_FLOATS`],
/// preferring a band width that is a multiple of 16 floats so that the
/// GEMM's column panels end on cache lines. Of the suite's layers only
/// stride-2 ones on im2col had more. In-process interleaved A/Bs, best of
/// 50-60 reps, on Zen 4: resnet_3x3_s2_128 (ow 28, 8-row bands) 5.23 ->
/// 5.13 ms on one thread, 2.70 -> 2.67 on two, medians 5.82 -> 5.58 and
/// 3.04 -> 2.91 (on the Xeon: 3.92-4.10 -> 3.62 on one); 4 x 64 x 112 x
/// 112 -> 64 stride 2 (ow 56, 4 rows) 13.2 -> 11.7 and 7.25 -> 5.93 (Xeon,
/// one thread: 11.0 -> 9.0). A unit alone with a threaded GEMM keeps its
/// wide band.
fn forward_band(g: &ConvGeometry) -> Result<(usize, usize)> {
    let (rows, len) = band(g, COLUMN_FLOATS)?;
    let per_row = (g.cin_g() * g.kh * g.kw).saturating_mul(g.ow);
    if per_row == 0 || len == 0 {
        return Ok((rows, len));
    }
    let budget = (FORWARD_BAND_FLOATS / per_row).max(1);
    let aligned = (1..=budget).rev().find(|r| (r * g.ow) % 16 == 0);
    let r = aligned.unwrap_or(budget).min(rows);
    Ok((r, per_row * r))
}

/// Run `unit(index, chunk, cols, gemm_parallel)` over the `chunk`-sized
/// pieces of `dst`: on rayon with a column buffer per thread and
/// single-threaded GEMMs, or in turn with one buffer and parallel GEMMs.
fn for_each_unit(
    plan: &Im2colPlan,
    dst: &mut [f32],
    chunk: usize,
    unit: impl Fn(usize, &mut [f32], &mut [f32], bool) + Sync,
) {
    if plan.par_units {
        dst.par_chunks_mut(chunk).enumerate().for_each_init(
            || memory::Scratch::prechecked(plan.len),
            |cols, (u, d)| unit(u, d, cols, false),
        );
    } else {
        let mut cols = memory::Scratch::prechecked(plan.len);
        for (u, d) in dst.chunks_mut(chunk).enumerate() {
            unit(u, d, &mut cols, true);
        }
    }
}

/// Forward of one image-group unit: `y [cout_g, ohw] = W_g [cout_g, k] @
/// cols [k, ohw]`, band by band.
fn forward_unit(
    g: &ConvGeometry,
    plan: &Im2colPlan,
    x: &[f32],
    wt: &[f32],
    y: &mut [f32],
    cols: &mut [f32],
    par: bool,
) {
    let k = g.cin_g() * g.kh * g.kw;
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let cout_g = g.cout_g();
    let wt = MatRef {
        data: wt,
        rs: k,
        cs: 1,
    };
    if plan.pointwise {
        let b = MatRef {
            data: x,
            rs: hw,
            cs: 1,
        };
        sgemm_strided_par(cout_g, k, ohw, wt, b, y, ohw, false, par);
        return;
    }
    let mut r0 = 0;
    while r0 < g.oh {
        let rr = plan.rows.min(g.oh - r0);
        let width = rr * g.ow;
        im2col(g, g.cin_g(), x, r0, rr, cols);
        let b = MatRef {
            data: &cols[..k * width],
            rs: width,
            cs: 1,
        };
        let y = &mut y[r0 * g.ow..];
        sgemm_strided_par(cout_g, k, width, wt, b, y, ohw, false, par);
        r0 += rr;
    }
}

/// `out` (zeroed) = conv(input, weight).
pub(super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let k = cin_g * g.kh * g.kw;
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let plan = Im2colPlan::new(g, true, parallel::threads())?;
    memory::check_f32("conv2d", plan.workspace_len())?;
    let unit = |u: usize, y: &mut [f32], cols: &mut [f32], par: bool| {
        let (n, grp) = (u / g.groups, u % g.groups);
        let x = &input[(n * g.c_in + grp * cin_g) * hw..][..cin_g * hw];
        let wt = &weight[grp * cout_g * k..][..cout_g * k];
        forward_unit(g, &plan, x, wt, y, cols, par);
    };
    for_each_unit(&plan, out, cout_g * ohw, unit);
    Ok(())
}

/// `grad_input` (zeroed) += conv's input gradient: per unit and band,
/// `cols = W^T @ grad_output`, then col2im.
pub(super) fn backward_input(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) -> Result<()> {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let k = cin_g * g.kh * g.kw;
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let plan = Im2colPlan::new(g, false, parallel::threads())?;
    memory::check_f32("conv2d_backward", plan.workspace_len())?;
    let unit = |u: usize, gx: &mut [f32], cols: &mut [f32], par: bool| {
        let (n, grp) = (u / g.groups, u % g.groups);
        // W^T: [k, cout_g] view of the [cout_g, k] weight.
        let wt = MatRef {
            data: &weight[grp * cout_g * k..][..cout_g * k],
            rs: 1,
            cs: k,
        };
        let gy = &grad_output[(n * g.c_out + grp * cout_g) * ohw..][..cout_g * ohw];
        if plan.pointwise {
            let b = MatRef {
                data: gy,
                rs: ohw,
                cs: 1,
            };
            sgemm_strided_par(k, cout_g, ohw, wt, b, gx, hw, true, par);
            return;
        }
        let mut r0 = 0;
        while r0 < g.oh {
            let rr = plan.rows.min(g.oh - r0);
            let width = rr * g.ow;
            let b = MatRef {
                data: &gy[r0 * g.ow..],
                rs: ohw,
                cs: 1,
            };
            sgemm_strided_par(k, cout_g, width, wt, b, cols, width, false, par);
            col2im(g, cin_g, cols, r0, rr, gx);
            r0 += rr;
        }
    };
    for_each_unit(&plan, grad_input, cin_g * hw, unit);
    Ok(())
}

/// `grad_weight[grp] += gy [cout_g, ohw] @ cols^T [ohw, k]` for image `n`,
/// band by band.
fn weight_unit(
    g: &ConvGeometry,
    plan: &Im2colPlan,
    (input, grad_output): (&[f32], &[f32]),
    (n, grp): (usize, usize),
    gw: &mut [f32],
    cols: &mut [f32],
    par: bool,
) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let k = cin_g * g.kh * g.kw;
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let x = &input[(n * g.c_in + grp * cin_g) * hw..][..cin_g * hw];
    let gy = &grad_output[(n * g.c_out + grp * cout_g) * ohw..][..cout_g * ohw];
    if plan.pointwise {
        let a = MatRef {
            data: gy,
            rs: ohw,
            cs: 1,
        };
        let b = MatRef {
            data: x,
            rs: 1,
            cs: hw,
        };
        sgemm_strided_par(cout_g, ohw, k, a, b, gw, k, true, par);
        return;
    }
    let mut r0 = 0;
    while r0 < g.oh {
        let rr = plan.rows.min(g.oh - r0);
        let width = rr * g.ow;
        im2col(g, cin_g, x, r0, rr, cols);
        let a = MatRef {
            data: &gy[r0 * g.ow..],
            rs: ohw,
            cs: 1,
        };
        let b = MatRef {
            data: &cols[..k * width],
            rs: 1,
            cs: width,
        };
        sgemm_strided_par(cout_g, width, k, a, b, gw, k, true, par);
        r0 += rr;
    }
}

/// `grad_weight` (zeroed) += conv's weight gradient. Each group's images
/// are summed in order; a small one-group weight (the digits net's 16 ->
/// 32 layer: 4608 floats) sums fixed ranges of images into accumulators of
/// their own, added in order (its GEMMs are too small to thread).
pub(super) fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward";
    let wlen = g.cout_g() * g.cin_g() * g.kh * g.kw;
    let plan = Im2colPlan::new(g, false, parallel::threads())?;
    memory::check_f32(OP, plan.workspace_len())?;
    let ops = (input, grad_output);
    if g.groups == 1 && wlen <= SMALL_WEIGHT {
        let parts = parallel::reduction_parts(g.n);
        memory::check_f32(OP, wlen.saturating_mul(parts.len()))?;
        // Parts on threads with one-thread GEMMs, or in turn with the
        // GEMMs threaded (a single image: the GEMM's threads).
        let gemm_par = !plan.par_units;
        let sums = parallel::map_collect(plan.threads, &parts, |&(n0, n1)| {
            let mut gw = vec![0.0; wlen];
            let mut cols = memory::Scratch::prechecked(plan.len);
            for n in n0..n1 {
                weight_unit(g, &plan, ops, (n, 0), &mut gw, &mut cols, gemm_par);
            }
            gw
        });
        for part in &sums {
            grad_weight.iter_mut().zip(part).for_each(|(d, s)| *d += s);
        }
    } else if plan.par_units && g.groups >= 2 {
        // Disjoint weight slices per group; images summed inside.
        // Per-thread accumulators over images measured slower than the
        // GEMM's own threads (resnet_3x3_512 bwd 41 vs 32 ms, loaded box).
        grad_weight.par_chunks_mut(wlen).enumerate().for_each_init(
            || memory::Scratch::prechecked(plan.len),
            |cols, (grp, gw)| {
                for n in 0..g.n {
                    weight_unit(g, &plan, ops, (n, grp), gw, cols, false);
                }
            },
        );
    } else {
        let mut cols = memory::Scratch::prechecked(plan.len);
        for n in 0..g.n {
            for (grp, gw) in grad_weight.chunks_mut(wlen).enumerate() {
                weight_unit(g, &plan, ops, (n, grp), gw, &mut cols, true);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{conv2d::plan as conv_plan, Conv2dParams};

    fn geometry(n: usize, c: usize, side: usize, cout: usize, k: usize, s: usize) -> ConvGeometry {
        let p = Conv2dParams::new().padding(k / 2).stride(s);
        conv_plan(&[n, c, side, side], &[cout, c, k, k], None, &p)
            .unwrap()
            .geom
    }

    /// The plans of the suite's im2col layers: bands fixed by the
    /// geometry (the same at one, two and seven threads), L2-sized for
    /// the forward of several large units, whole planes for the rest.
    #[test]
    fn bands_depend_on_the_geometry_only() {
        // (layer, forward) -> (pointwise, rows, len)
        let cases = [
            (geometry(4, 64, 56, 128, 3, 2), true, (false, 8, 129024)),
            (geometry(4, 64, 56, 128, 3, 2), false, (false, 28, 451584)),
            (geometry(4, 64, 56, 128, 1, 2), true, (false, 28, 50176)),
            (geometry(4, 256, 56, 64, 1, 1), false, (true, 56, 0)),
            (geometry(64, 1, 28, 6, 5, 1), false, (false, 28, 19600)),
            (geometry(1, 3, 1080, 8, 3, 1), false, (false, 287, 8368920)),
        ];
        for (g, fwd, want) in cases {
            for threads in [1, 2, 7] {
                let p = Im2colPlan::new(&g, fwd, threads).unwrap();
                let got = (p.pointwise, p.rows, p.len);
                println!("{:?} fwd {fwd}: {got:?}", (g.n, g.c_in, g.h, g.c_out, g.kh));
                assert_eq!(got, want, "{g:?} forward {fwd} on {threads} threads");
                let split = g.n * g.groups >= 2 && g.macs() >= parallel::SPLIT_MIN_MACS;
                assert_eq!(p.par_units, split && threads > 1);
            }
        }
    }
}
