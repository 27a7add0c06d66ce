//! Stride-2 forwards on Winograd over the input's four phases
//! ([`crate::kernels::winograd_s2`]): F(3x3, 4x4) for ResNet's 7x7 stem,
//! F(4x4, 2x2) for its 3x3 stride-2 layers. The filter is transformed once
//! per call; blocks of whole tile rows run as rayon tasks, each
//! transforming its block's input (every input channel's four phases, read
//! in place) and then, per panel of output channels, running one GEMM per
//! point of the tile (36 or 25) and the output transform while the panel's
//! products are in cache.

use super::*;
use crate::kernels::flat::tile_shape;
use crate::kernels::ukernel::{self, Init, Tile};
use crate::kernels::winograd_s2::{
    filter, filter_xi_stride, input_block, input_scratch_len, output_block, output_scratch_len,
    tiles, Tiling,
};
use rayon::prelude::*;

/// Tiles per block: the block's transformed input (36 x 4 c_in x tiles)
/// and a panel's products stay in L2 for the stem's 3 channels.
const BLOCK_TILES: usize = 256;

/// Floats of a point-major block's transformed input and products (2 MiB).
const POINT_MAJOR_FLOATS: usize = 1 << 19;

/// One task's scratch: transformed input, products, and the transforms'
/// row buffers.
struct TaskBufs {
    v: memory::Scratch,
    m: memory::Scratch,
    sin: memory::Scratch,
    sout: memory::Scratch,
}

/// `out` = the stride-2 convolution `g` (see
/// [`crate::kernels::winograd_s2::applies`]) of `input` with `weight`.
pub fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    let (th, tw, _) = tiles(g);
    let lanes = ukernel::menu().lanes;
    let (cin, cout) = (g.c_in, g.c_out);
    let k4 = 4 * cin;
    let rows_total = g.n * th;
    let points = Tiling::of(g).map_or(36, |t| t.points());
    // Deep reductions (3x3 stride-2 layers: 4 x 64 channels) run
    // point-major: each product over every output channel while that
    // point's slice of V stays in cache, in blocks whose V and products
    // fit L2 together, with as few idle tile lanes as allow. Panel-major
    // (the stem's 12 channels) re-reads the whole block's V per panel.
    let by_point = k4 >= 64;
    let block_rows = if by_point {
        let fits = |r: usize| {
            let tbp = (r * tw).next_multiple_of(lanes);
            points * (k4 + cout) * tbp <= POINT_MAJOR_FLOATS
        };
        let padded = |r: usize| {
            let (full, rest) = (rows_total / r, rows_total % r);
            full * (r * tw).next_multiple_of(lanes) + (rest * tw).next_multiple_of(lanes)
        };
        (1..=rows_total)
            .rev()
            .filter(|&r| r == 1 || fits(r))
            .min_by_key(|&r| padded(r))
            .unwrap_or(1)
    } else {
        (BLOCK_TILES / tw).clamp(1, rows_total)
    };
    let blocks = rows_total.div_ceil(block_rows);
    let tbp = (block_rows * tw).next_multiple_of(lanes);
    let (mr, nv) = tile_shape(cout, tbp);
    let xs = filter_xi_stride(g);
    let mut u = memory::Scratch::take(OP, points * xs)?;
    filter(g, weight, &mut u);
    // 16 spare floats per product block keep the rows a transform
    // reads or writes for one vector of tiles out of one L1 set (a block
    // of 12 x 256 or 8 x 256 floats is a whole number of 4 KiB pages).
    let vxs = k4 * tbp + 16;
    let vlen = points * vxs;
    // Output channels per product group: all (point-major) or a panel.
    let group = if by_point { cout } else { mr };
    let mxs = |rows: usize| rows * tbp + 16;
    let mlen = points * mxs(group);
    let in_len = input_scratch_len(g, block_rows, lanes);
    let out_len = output_scratch_len(g, block_rows, lanes);
    let threads = if super::parallel(g) {
        rayon::current_num_threads()
    } else {
        1
    };
    memory::check_f32(OP, (vlen + mlen + in_len + out_len).saturating_mul(threads))?;
    let b_off: Vec<usize> = (0..k4).map(|k| k * tbp).collect();
    let (u, b_off) = (&u[..], &b_off);
    let out_ptr = Shared(out.as_mut_ptr() as *mut f32);
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    // Outputs far larger than L2 are stored around the caches, row by row
    // where a row starts on a cache line (the stem's 12.8 MB: `convlab
    // bench` best of 4 at one thread 6.02 -> 5.20 ms).
    let stream = out.len().saturating_mul(4) >= flat_path::STREAM_MIN_BYTES;
    let run = |bufs: &mut TaskBufs, blk: usize| {
        let TaskBufs { v, m, sin, sout } = bufs;
        let r0 = blk * block_rows;
        let r1 = (r0 + block_rows).min(rows_total);
        let nt = ((r1 - r0) * tw).next_multiple_of(lanes);
        for c in 0..cin {
            let plane = |img: usize| input[(img * cin + c) * h * w..].as_ptr();
            // SAFETY: each plane is `[h, w]` inside `input`; v holds `points`
            // rows of k4 * tbp floats, this channel's phases at 4 c * tbp.
            unsafe {
                input_block(
                    g,
                    &plane,
                    (r0, r1),
                    v.as_mut_ptr().add(4 * c * tbp),
                    tbp,
                    vxs,
                    sin,
                )
            };
        }
        let mut g0 = 0;
        while g0 < cout {
            let rows = group.min(cout - g0);
            let mx = mxs(rows);
            for xi in 0..points {
                let mut m0 = g0;
                while m0 < g0 + rows {
                    let pr = mr.min(g0 + rows - m0);
                    let mut cb = 0;
                    while cb < nt {
                        let nvb = nv.min((nt - cb) / lanes);
                        let t = Tile {
                            k: k4,
                            a: u[xi * xs + m0..].as_ptr(),
                            lda: cout,
                            a_off: std::ptr::null(),
                            b: v[xi * vxs + cb..].as_ptr(),
                            b_off: b_off.as_ptr(),
                            c: m[xi * mx + (m0 - g0) * tbp + cb..].as_mut_ptr(),
                            ldc: tbp,
                            stream: false,
                            init: Init::Zero,
                        };
                        // SAFETY: A rows m0 .. m0 + pr of the [k4][cout]
                        // block for xi; B rows k * tbp + cb .. + nvb *
                        // lanes <= tbp lie in V[xi]; C rows of M[xi] (the
                        // group's rows, tbp floats each).
                        unsafe { ukernel::run(pr, nvb, &t) };
                        cb += nvb * lanes;
                    }
                    m0 += pr;
                }
            }
            for r in 0..rows {
                let co = g0 + r;
                let plane = |img: usize| {
                    // SAFETY: plane (img, co) lies inside `out`; only this
                    // task writes its tile rows.
                    unsafe { out_ptr.get().add((img * cout + co) * oh * ow) }
                };
                // SAFETY: M holds `points` rows (mx apart) of this
                // channel's tbp floats; the plane's rows are this task's.
                unsafe {
                    output_block(g, m[r * tbp..].as_ptr(), mx, (r0, r1), &plane, stream, sout)
                };
            }
            g0 += rows;
        }
        crate::kernels::simd::stream_fence();
    };
    // Pooled scratch (stale contents: every kernel writes before it reads).
    let take = memory::Scratch::prechecked;
    let init = || TaskBufs {
        v: take(vlen),
        m: take(mlen),
        sin: take(in_len),
        sout: take(out_len),
    };
    if threads > 1 {
        (0..blocks).into_par_iter().for_each_init(init, run);
    } else {
        let mut bufs = init();
        (0..blocks).for_each(|b| run(&mut bufs, b));
    }
    Ok(())
}
