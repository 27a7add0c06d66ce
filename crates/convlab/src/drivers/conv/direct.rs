//! The direct kernels ([`crate::kernels::direct`]), split over rayon by
//! output rows (forward) or, for the weight gradient, over a fixed number
//! of row ranges whose f64 sums are added in order.

use super::{transposed, ConvPass};
use crate::error::Result;
use crate::kernels::direct::{
    conv2d_direct_rows, conv2d_direct_weight_rows, direct_applies, direct_workspace_len,
};
use crate::memory;
use crate::parallel;
use crate::shape::ConvGeometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Whether the direct kernels compute pass `pass` of `g`.
pub(super) fn check(g: &ConvGeometry, pass: ConvPass) -> std::result::Result<(), &'static str> {
    let g = match pass {
        ConvPass::InputGrad => transposed(g)
            .ok_or("needs stride 1 and padding within the dilated kernel for the input gradient")?,
        _ => *g,
    };
    if !direct_applies(&g) {
        return Err("needs a horizontal stride of 1");
    }
    Ok(())
}

/// Writes every element of `out` (`n * c_out * oh * ow` floats).
pub(super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    let len = direct_workspace_len(g);
    let threads = parallel::threads_for(g.macs());
    if threads == 1 {
        let mut scratch = memory::zeros_f32("conv2d", len)?;
        conv2d_direct_rows(g, input, weight, 0, out, &mut scratch);
        return Ok(());
    }
    memory::check_f32("conv2d", len.saturating_mul(threads))?;
    let rows = g.n * g.c_out * g.oh;
    let per_task = rows.div_ceil(threads * 8).max(1);
    out.par_chunks_mut(per_task * g.ow)
        .enumerate()
        .for_each_init(
            || vec![0.0; len],
            |scratch, (i, o)| conv2d_direct_rows(g, input, weight, i * per_task, o, scratch),
        );
    Ok(())
}

/// `grad_weight += ` the weight gradient: the output rows `(n, co, oy)`
/// cut into [`parallel::reduction_parts`] (fewer when the weight is
/// large), each summed into its own f64 accumulator, the parts added in
/// order: the same bits at any thread count.
pub(super) fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
) -> Result<()> {
    let rows = g.n * g.c_out * g.oh;
    let wl = grad_weight.len();
    // Wide layers (forced) keep the accumulators to about 4 Mi doubles;
    // work that never splits over threads is one part (four parts' buffers
    // doubled the cost of d2l_edge's 0.6 us backward). Both depend on the
    // geometry alone.
    let most = if g.macs() < parallel::SPLIT_MIN_MACS {
        1
    } else {
        parallel::REDUCTION_PARTS
    };
    let parts = parallel::parts_of(rows, most.min((1 << 22) / wl.max(1)));
    memory::check_f32("conv2d_backward", wl.saturating_mul(2 * (parts.len() + 1)))?;
    let threads = parallel::threads_for(g.macs());
    let sums = parallel::map_collect(threads, &parts, |&(r0, r1)| {
        let mut acc = vec![0.0f64; wl];
        conv2d_direct_weight_rows(g, input, grad_output, r0, r1, &mut acc);
        acc
    });
    let mut total = vec![0.0f64; wl];
    for part in &sums {
        total.iter_mut().zip(part).for_each(|(t, v)| *t += v);
    }
    for (gw, t) in grad_weight.iter_mut().zip(total) {
        *gw += t as f32;
    }
    Ok(())
}
