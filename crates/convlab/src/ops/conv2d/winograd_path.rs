//! Winograd F(4x4, 3x3) ([`crate::kernels::winograd`]): the forward pass
//! and the input gradient (the forward of the flipped, transposed weight on
//! grad_output), over blocks of whole tile rows run as rayon tasks. A task
//! transforms its block's input once, then per panel of output channels
//! runs the 36 GEMMs and the output transform while the panel's products
//! are in cache. The filter is transformed once per call when tasks share
//! it, else per panel inside each task (resnet_3x3_512: 37.7 MB of
//! transformed filter never written out).

use super::*;
use crate::kernels::flat::tile_shape;
use crate::kernels::gemm::sgemm_strided_par;
use crate::kernels::ukernel::{self, Init, Tile};
use crate::kernels::winograd::{
    filter_panel, filter_xi_stride, input_block, input_scratch_len, output_block,
    output_scratch_len, tiles, WeightView,
};
use crate::kernels::winograd_legacy::{
    winograd_grad_output_tf, winograd_input_tf, winograd_weight_out, winograd_workspace_len, LANES,
};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A pointer handed to rayon tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: only used to give tasks disjoint output planes or rows (see the
// SAFETY notes where it is dereferenced).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One task's scratch: transformed input, products, a filter chunk, and
/// the transforms' row buffers.
struct TaskBufs {
    v: Vec<f32>,
    m: Vec<f32>,
    u: Vec<f32>,
    sin: Vec<f32>,
    sout: Vec<f32>,
}

/// Transformed input floats per block: about 1 MiB, so a block's `V` and
/// a panel's products stay in L2.
const BLOCK_FLOATS: usize = 1 << 18;

/// Transformed filters above this many floats are made per panel inside
/// each task instead of once per call (16 MiB).
const SHARED_FILTER_FLOATS: usize = 4 << 20;

/// `out` (`[n, c_out, oh, ow]`, every element written) = the convolution
/// `g` of `input` with `weight` seen through `view` (the forward weight, or
/// the flipped one for an input gradient).
pub fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    view: WeightView,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    let (cin, cout) = (g.c_in, g.c_out);
    let (th, tw, _) = tiles(g);
    let lanes = ukernel::menu().lanes;
    let rows_total = g.n * th;
    // Tile rows per block: V of a block near BLOCK_FLOATS, whole vectors
    // of tiles where possible. A filter too large to share is transformed
    // once per block, so then one block holds every tile (up to 4x the
    // budget: resnet_3x3_512 fwd 10.8 -> ? ms).
    let per_row = 36 * cin * tw;
    let max_rows = (BLOCK_FLOATS / per_row.max(1)).clamp(1, rows_total);
    let unshared = 36usize.saturating_mul(cin).saturating_mul(cout) > SHARED_FILTER_FLOATS;
    let block_rows = if unshared && rows_total <= 4 * max_rows {
        rows_total
    } else {
        // Fewest padded tiles over all blocks; ties to larger blocks.
        let padded = |r: usize| {
            let full = rows_total / r;
            let rest = rows_total % r;
            full * (r * tw).next_multiple_of(lanes) + (rest * tw).next_multiple_of(lanes)
        };
        (1..=max_rows).rev().min_by_key(|&r| padded(r)).unwrap_or(1)
    };
    let blocks = rows_total.div_ceil(block_rows);
    let tbp = (block_rows * tw).next_multiple_of(lanes);
    let (mr, nv) = tile_shape(cout, tbp);
    let panels: Vec<(usize, usize)> = (0..cout)
        .step_by(mr)
        .map(|m0| (m0, mr.min(cout - m0)))
        .collect();
    let threads = if super::parallel(g) {
        rayon::current_num_threads()
    } else {
        1
    };
    // Split panels over tasks when there are fewer blocks than threads.
    let groups = if blocks >= 2 * threads {
        1
    } else {
        (2 * threads).div_ceil(blocks).min(panels.len())
    };
    let per_group = panels.len().div_ceil(groups);
    let tasks: Vec<(usize, usize)> = (0..blocks)
        .flat_map(|b| (0..panels.len()).step_by(per_group).map(move |p| (b, p)))
        .collect();

    // Shared transformed filters, panel after panel, when every task would
    // otherwise transform the same ones.
    let ulen_panel = |pr: usize| 36 * filter_xi_stride(cin, pr);
    let shared_len = 36usize.saturating_mul(cin * cout + 16 * panels.len());
    let share = !unshared && tasks.len() > panels.len().div_ceil(per_group);
    let mut shared_u = Vec::new();
    let mut panel_at = Vec::with_capacity(panels.len());
    {
        let mut at = 0;
        for &(_, pr) in &panels {
            panel_at.push(at);
            at += ulen_panel(pr);
        }
    }
    if share {
        shared_u = memory::zeros_f32(OP, shared_len)?;
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
    let mlen = 36 * mr * tbp;
    // Input channels per filter chunk: about 32 Ki transformed floats.
    let kc = ((1usize << 15) / (36 * mr)).clamp(16, cin.max(16)) / 16 * 16;
    let ulen = if share {
        0
    } else {
        36 * filter_xi_stride(kc.min(cin), mr)
    };
    let in_len = input_scratch_len(g, block_rows, lanes);
    let out_len = output_scratch_len(g, block_rows, lanes);
    memory::check_f32(
        OP,
        (vlen + mlen + ulen + in_len + out_len).saturating_mul(threads),
    )?;
    let plane_in = g.h * g.w;
    let plane_out = g.oh * g.ow;
    let out_ptr = Shared(out.as_mut_ptr() as *mut f32);
    let (shared_u, panels, panel_at, b_off) = (&shared_u, &panels, &panel_at, &b_off);
    let run = |bufs: &mut TaskBufs, &(blk, p0): &(usize, usize)| {
        let TaskBufs { v, m, u, sin, sout } = bufs;
        let r0 = blk * block_rows;
        let r1 = (r0 + block_rows).min(rows_total);
        let nt = ((r1 - r0) * tw).next_multiple_of(lanes);
        for c in 0..cin {
            let plane = |img: usize| input[(img * cin + c) * plane_in..].as_ptr();
            // SAFETY: planes of channel c exist for every image of the
            // block; v holds 36 rows of cin * tbp >= the block's tiles.
            unsafe {
                input_block(
                    g,
                    &plane,
                    (r0, r1),
                    v[c * tbp..].as_mut_ptr(),
                    cin * tbp,
                    sin,
                )
            };
        }
        for &(m0, pr) in &panels[p0..(p0 + per_group).min(panels.len())] {
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
            for r in 0..pr {
                let co = m0 + r;
                let plane = |img: usize| {
                    // SAFETY: plane (img, co) lies inside `out`; only this
                    // task writes its rows of tile rows [r0, r1).
                    unsafe { out_ptr.get().add((img * cout + co) * plane_out) }
                };
                // SAFETY: M[xi][r] rows hold the block's tiles (pr*tbp
                // apart); the planes are this task's to write.
                unsafe { output_block(g, m[r * tbp..].as_ptr(), pr * tbp, (r0, r1), &plane, sout) };
            }
        }
    };
    let init = || TaskBufs {
        v: vec![0.0f32; vlen],
        m: vec![0.0f32; mlen],
        u: vec![0.0f32; ulen],
        sin: vec![0.0f32; in_len],
        sout: vec![0.0f32; out_len],
    };
    if threads > 1 {
        tasks.par_iter().for_each_init(init, run);
    } else {
        let mut bufs = init();
        tasks.iter().for_each(|t| run(&mut bufs, t));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Weight gradient: F(3x3, 4x4) on the legacy transforms (36 GEMMs on the
// `gemm` crate, reducing over tiles).

/// A pointer shared by rayon tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct LegacyShared(*mut f32);
// SAFETY: only used to hand tasks disjoint parts of one buffer (see the
// SAFETY notes where it is dereferenced).
unsafe impl Send for LegacyShared {}
// SAFETY: as above.
unsafe impl Sync for LegacyShared {}

impl LegacyShared {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Tiles per block: `V` and `Y` of one block take about 8 MiB.
fn block_tiles(g: &ConvGeometry, total: usize) -> usize {
    let per_tile = 36 * (g.c_in + g.c_out);
    let tb = ((1usize << 21) / per_tile.max(1)).max(4 * LANES);
    tb.next_multiple_of(LANES).min(total).max(1)
}

/// The 36 rows `buf[e][i][..row]` of a `[36][rows][row]` buffer for one `i`.
///
/// # Safety
/// `buf` points to `36 * rows * row` floats, `i < rows`, and no other
/// live reference touches those 36 rows.
unsafe fn rows_of<'a>(buf: LegacyShared, rows: usize, row: usize, i: usize) -> Vec<&'a mut [f32]> {
    (0..36)
        .map(|e| {
            // SAFETY: row (e, i) lies inside the buffer and is not
            // aliased (the caller's contract).
            unsafe { std::slice::from_raw_parts_mut(buf.get().add((e * rows + i) * row), row) }
        })
        .collect()
}

/// `grad_weight` += the weight gradient by F(3x3, 4x4) over 4x4 output
/// tiles (see [`crate::kernels::winograd`]): per block of tiles, the
/// input and grad_output transforms, then
/// `S[e] [c_out, c_in] += Y[e] [c_out, T] @ V[e]^T` (36 GEMMs), and
/// finally `G^T S G` per output channel.
pub fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward";
    debug_assert!(winograd_applies(g));
    let (cin, cout) = (g.c_in, g.c_out);
    let (_, _, total) = tiles(g);
    let slen = numel_or_err(OP, &[36, cout, cin])?;
    let tb = block_tiles(g, total);
    let tbp = tb.next_multiple_of(LANES);
    let vlen = numel_or_err(OP, &[36, cin, tbp])?;
    let ylen = numel_or_err(OP, &[36, cout, tbp])?;
    memory::check_f32(OP, slen.saturating_add(vlen).saturating_add(ylen))?;
    let mut sm = memory::zeros_f32(OP, slen)?;
    let mut v = memory::zeros_f32(OP, vlen)?;
    let mut y = memory::zeros_f32(OP, ylen)?;
    let wl = winograd_workspace_len(g);
    let mut t0 = 0;
    while t0 < total {
        let t1 = (t0 + tb).min(total);
        let bl = (t1 - t0).next_multiple_of(LANES);
        let v_ptr = LegacyShared(v.as_mut_ptr());
        (0..cin).into_par_iter().for_each_init(
            || vec![0.0; wl],
            |s, c| {
                // SAFETY: `v` is [36][cin][bl] here (bl <= tbp); task c
                // alone writes rows (e, c); `v` is not otherwise
                // borrowed meanwhile.
                let mut rows = unsafe { rows_of(v_ptr, cin, bl, c) };
                winograd_input_tf(g, input, c, t0, t1, &mut rows, s);
            },
        );
        let y_ptr = LegacyShared(y.as_mut_ptr());
        (0..cout).into_par_iter().for_each_init(
            || vec![0.0; wl],
            |s, co| {
                // SAFETY: as for `v`, with `y` [36][cout][bl].
                let mut rows = unsafe { rows_of(y_ptr, cout, bl, co) };
                winograd_grad_output_tf(g, grad_output, co, t0, t1, &mut rows, s);
            },
        );
        let k = t1 - t0; // pad columns of V and Y are left out
        sm.par_chunks_mut(cout * cin)
            .zip(y[..36 * cout * bl].par_chunks(cout * bl))
            .zip(v[..36 * cin * bl].par_chunks(cin * bl))
            .for_each(|((s_e, y_e), v_e)| {
                let a = MatRef {
                    data: y_e,
                    rs: bl,
                    cs: 1,
                };
                let b = MatRef {
                    data: v_e,
                    rs: 1,
                    cs: bl,
                };
                sgemm_strided_par(cout, k, cin, a, b, s_e, cin, t0 > 0, false);
            });
        t0 = t1;
    }
    let sm = &sm;
    grad_weight
        .par_chunks_mut(cin * 9)
        .enumerate()
        .for_each(|(co, gw_co)| {
            let rows: Vec<&[f32]> = (0..36)
                .map(|e| &sm[(e * cout + co) * cin..][..cin])
                .collect();
            winograd_weight_out(cin, &rows, gw_co);
        });
    Ok(())
}
