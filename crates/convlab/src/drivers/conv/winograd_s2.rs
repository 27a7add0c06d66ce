//! Stride-2 forwards on Winograd over the input's four phases
//! ([`crate::kernels::winograd::s2`]): F(3x3, 4x4) for ResNet's 7x7 stem,
//! F(4x4, 2x2) for its 3x3 stride-2 layers. The filter is transformed once
//! per call; blocks of whole tile rows run as rayon tasks, each
//! transforming its block's input (every input channel's four phases, read
//! in place) and then, per panel of output channels, running one GEMM per
//! point of the tile (36 or 25) and the output transform while the panel's
//! products are in cache.

use super::ConvPass;
use crate::error::Result;
use crate::kernels::flat::tile_shape;
use crate::kernels::ukernel::{self, Init, Tile};
pub(super) use crate::kernels::winograd::s2::Tiling;
use crate::kernels::winograd::s2::{
    applies, filter, filter_xi_stride, input_block, input_scratch_len, output_block,
    output_scratch_len, phase_taps, tiles,
};
use crate::memory;
use crate::parallel::{self, Shared};
use crate::shape::ConvGeometry;
use std::mem::MaybeUninit;

/// Whether Winograd on the phases with `tiling` computes pass `pass` of
/// `g`: the forward of a stride-2, undilated, one-group layer whose phase
/// kernels `tiling` takes (see [`Tiling::of`]), its transformed filter
/// under the cap.
pub(super) fn check(
    g: &ConvGeometry,
    pass: ConvPass,
    tiling: Tiling,
) -> std::result::Result<(), &'static str> {
    if pass != ConvPass::Forward {
        return Err("computes the forward pass only");
    }
    if (g.sh, g.sw, g.dh, g.dw, g.groups) != (2, 2, 1, 1, 1) {
        return Err("needs stride 2, dilation 1 and one group");
    }
    if Tiling::of(g) != Some(tiling) {
        return Err(match tiling {
            Tiling::F3x4 => "needs phase kernels of 3 or 4 taps a side (kernels of 5 to 8)",
            Tiling::F4x2 => "needs phase kernels of 1 or 2 taps a side (kernels up to 4)",
        });
    }
    if !applies(g) {
        return Err("needs a transformed filter under its 64 MiB cap");
    }
    Ok(())
}

/// Whether `g` is a stride-2 layer whose phase kernels are 4x4 (7x7
/// kernels padded by 3, the ResNet stem), for the dispatcher's rule.
pub(super) fn fills_4x4(g: &ConvGeometry) -> bool {
    applies(g) && phase_taps(g.kh, g.pt).1 == 4 && phase_taps(g.kw, g.pl).1 == 4
}

/// Tiles per block: the block's transformed input (36 x 4 c_in x tiles)
/// and a panel's products stay in L2 for the stem's 3 channels.
const BLOCK_TILES: usize = 256;

/// Floats of a point-major block's transformed input and products (2 MiB).
const POINT_MAJOR_FLOATS: usize = 1 << 19;

/// How one stride-2 Winograd forward runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stride2Plan {
    pub threads: usize,
    pub lanes: usize,
    /// Products per tile (36 or 25) and reduction channels (4 per input
    /// channel: its phases).
    pub points: usize,
    pub k4: usize,
    /// Each product over every output channel in turn (else panel by
    /// panel).
    pub point_major: bool,
    pub block_rows: usize,
    pub blocks: usize,
    pub rows_total: usize,
    /// Tiles per tile row, and per block padded to whole vectors.
    pub tw: usize,
    pub tbp: usize,
    pub mr: usize,
    pub nv: usize,
    /// Floats between the transformed filter's, input's and products'
    /// blocks of one point.
    pub xs: usize,
    pub vxs: usize,
    /// Output channels per product group: all (point-major) or a panel.
    pub group: usize,
    /// Scratch floats per task.
    pub vlen: usize,
    pub mlen: usize,
    pub in_len: usize,
    pub out_len: usize,
    /// Outputs far larger than L2 are stored around the caches (the
    /// stem's 12.8 MB: `convlab bench` best of 4 at one thread 6.02 ->
    /// 5.20 ms).
    pub stream: bool,
}

impl Stride2Plan {
    /// The plan for `g` (one [`check`] accepts) on `threads` threads.
    pub fn new(g: &ConvGeometry, threads: usize, lanes: usize) -> Stride2Plan {
        let (th, tw, _) = tiles(g);
        let (cin, cout) = (g.c_in, g.c_out);
        let k4 = 4 * cin;
        let rows_total = g.n * th;
        let points = Tiling::of(g).map_or(36, |t| t.points());
        // Deep reductions (3x3 stride-2 layers: 4 x 64 channels) run
        // point-major: each product over every output channel while that
        // point's slice of V stays in cache, in blocks whose V and products
        // fit L2 together, with as few idle tile lanes as allow.
        // Panel-major (the stem's 12 channels) re-reads the whole block's V
        // per panel.
        let point_major = k4 >= 64;
        let block_rows = if point_major {
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
        let tbp = (block_rows * tw).next_multiple_of(lanes);
        let (mr, nv) = tile_shape(cout, tbp);
        // 16 spare floats per product block keep the rows a transform
        // reads or writes for one vector of tiles out of one L1 set (a
        // block of 12 x 256 or 8 x 256 floats is a whole number of 4 KiB
        // pages).
        let vxs = k4 * tbp + 16;
        let group = if point_major { cout } else { mr };
        Stride2Plan {
            threads,
            lanes,
            points,
            k4,
            point_major,
            block_rows,
            blocks: rows_total.div_ceil(block_rows),
            rows_total,
            tw,
            tbp,
            mr,
            nv,
            xs: filter_xi_stride(g),
            vxs,
            group,
            vlen: points * vxs,
            mlen: points * (group * tbp + 16),
            in_len: input_scratch_len(g, block_rows, lanes),
            out_len: output_scratch_len(g, block_rows, lanes),
            stream: (g.n * g.c_out * g.oh * g.ow).saturating_mul(4)
                >= super::implicit_gemm::STREAM_MIN_BYTES,
        }
    }

    /// Floats between the product blocks of a group of `rows` channels.
    fn mxs(&self, rows: usize) -> usize {
        rows * self.tbp + 16
    }

    /// Floats the pass holds at once: the transformed filter and every
    /// thread's scratch.
    pub fn workspace_len(&self) -> usize {
        let task = self.vlen + self.mlen + self.in_len + self.out_len;
        (self.points * self.xs).saturating_add(task.saturating_mul(self.threads))
    }
}

/// One task's scratch (pooled: stale contents, every kernel writes before
/// it reads).
struct TaskBufs {
    v: memory::Scratch,
    m: memory::Scratch,
    sin: memory::Scratch,
    sout: memory::Scratch,
}

/// `out` (every element written) = the stride-2 convolution `g` (one
/// [`check`] accepts) of `input` with `weight`: the filter transformed
/// once, then blocks of whole tile rows as tasks.
pub(super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    let plan = Stride2Plan::new(g, parallel::threads_for(g.macs()), ukernel::menu().lanes);
    memory::check_f32(OP, plan.workspace_len())?;
    let mut u = memory::Scratch::prechecked(plan.points * plan.xs);
    filter(g, weight, &mut u);
    let b_off: Vec<usize> = (0..plan.k4).map(|k| k * plan.tbp).collect();
    let block = Block {
        g,
        plan: &plan,
        input,
        u: &u,
        b_off: &b_off,
        out: Shared(out.as_mut_ptr() as *mut f32),
    };
    let take = memory::Scratch::prechecked;
    let init = || TaskBufs {
        v: take(plan.vlen),
        m: take(plan.mlen),
        sin: take(plan.in_len),
        sout: take(plan.out_len),
    };
    let blocks: Vec<usize> = (0..plan.blocks).collect();
    parallel::for_each(plan.threads, &blocks, init, |bufs, &blk| {
        block.run(bufs, blk)
    });
    Ok(())
}

/// What every block's task reads.
struct Block<'a> {
    g: &'a ConvGeometry,
    plan: &'a Stride2Plan,
    input: &'a [f32],
    /// The transformed filter.
    u: &'a [f32],
    /// `B` row offsets: reduction channel `k` at `k * tbp`.
    b_off: &'a [usize],
    out: Shared<f32>,
}

impl Block<'_> {
    /// Block `blk`: its input transform, then per group of output channels
    /// the products and the output transform.
    fn run(&self, bufs: &mut TaskBufs, blk: usize) {
        let (g, p) = (self.g, self.plan);
        let TaskBufs { v, m, sin, sout } = bufs;
        let r0 = blk * p.block_rows;
        let r1 = (r0 + p.block_rows).min(p.rows_total);
        for c in 0..g.c_in {
            let plane = |img: usize| self.input[(img * g.c_in + c) * g.h * g.w..].as_ptr();
            // SAFETY: each plane is `[h, w]` inside `input`; v holds `points`
            // rows of k4 * tbp floats, this channel's phases at 4 c * tbp.
            unsafe {
                input_block(
                    g,
                    &plane,
                    (r0, r1),
                    v.as_mut_ptr().add(4 * c * p.tbp),
                    p.tbp,
                    p.vxs,
                    sin,
                )
            };
        }
        let mut g0 = 0;
        while g0 < g.c_out {
            let rows = p.group.min(g.c_out - g0);
            self.products(v, m, (g0, rows), (r1 - r0) * p.tw);
            let mx = p.mxs(rows);
            for r in 0..rows {
                let co = g0 + r;
                let plane = |img: usize| {
                    // SAFETY: plane (img, co) lies inside `out`; only this
                    // task writes its tile rows.
                    unsafe { self.out.get().add((img * g.c_out + co) * g.oh * g.ow) }
                };
                // SAFETY: M holds `points` rows (mx apart) of this
                // channel's tbp floats; the plane's rows are this task's.
                unsafe {
                    output_block(
                        g,
                        m[r * p.tbp..].as_ptr(),
                        mx,
                        (r0, r1),
                        &plane,
                        p.stream,
                        sout,
                    )
                };
            }
            g0 += rows;
        }
        crate::kernels::simd::stream_fence();
    }

    /// `M[xi]` of output channels `[g0, g0 + rows)` for the block's `tiles`
    /// tiles: one GEMM per point.
    fn products(&self, v: &[f32], m: &mut [f32], (g0, rows): (usize, usize), tiles: usize) {
        let p = self.plan;
        let (lanes, tbp, cout) = (p.lanes, p.tbp, self.g.c_out);
        let nt = tiles.next_multiple_of(lanes);
        let mx = p.mxs(rows);
        for xi in 0..p.points {
            let mut m0 = g0;
            while m0 < g0 + rows {
                let pr = p.mr.min(g0 + rows - m0);
                let mut cb = 0;
                while cb < nt {
                    let nvb = p.nv.min((nt - cb) / lanes);
                    let t = Tile {
                        k: p.k4,
                        a: self.u[xi * p.xs + m0..].as_ptr(),
                        lda: cout,
                        a_off: std::ptr::null(),
                        b: v[xi * p.vxs + cb..].as_ptr(),
                        b_off: self.b_off.as_ptr(),
                        c: m[xi * mx + (m0 - g0) * tbp + cb..].as_mut_ptr(),
                        ldc: tbp,
                        stream: false,
                        init: Init::Zero,
                    };
                    // SAFETY: A rows m0 .. m0 + pr of the [k4][cout] block
                    // for xi; B rows k * tbp + cb .. + nvb * lanes <= tbp lie
                    // in V[xi]; C rows of M[xi] (the group's rows, tbp
                    // floats each).
                    unsafe { ukernel::run(pr, nvb, &t) };
                    cb += nvb * lanes;
                }
                m0 += pr;
            }
        }
    }
}
