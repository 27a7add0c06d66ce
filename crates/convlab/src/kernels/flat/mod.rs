//! Implicit-GEMM convolution on flattened, zero-padded phase images.
//!
//! The input of one image is copied once into zero-padded *phase images*:
//! for stride `(sh, sw)`, phase `(ry, rx)` holds the padded input's rows
//! `ry, ry + sh, ...` and columns `rx, rx + sw, ...`, in rows `wq` floats
//! long. Output `(oy, ox)` is given the flat index `p = oy * wq + ox`; tap
//! `(ci, ky, kx)` then reads phase `((ky*dh) % sh, (kx*dw) % sw)` of
//! channel `ci` at `p + (ky*dh / sh) * wq + kx*dw / sw` — a fixed offset
//! for every output. So each tap is a contiguous row of the virtual im2col
//! matrix, read in place: the convolution is the GEMM
//! `out[co][p] = sum_k W[co][k] * X[off[k] + p]` ([`FlatGemm`]), run by
//! the crate-private `ukernel` tile with B's rows given by the offset table.
//!
//! The price: the `wq - ow` columns past each output row are computed and
//! dropped (3% on 56x56 3x3 layers, 13% on 14x14). Strides cost nothing
//! extra (each phase is dense), dilation only wider rows. A 1x1, stride-1,
//! unpadded convolution reads the input itself (no copy, no dropped columns).
//!
//! The input gradient is the same GEMM on the zero-padded grad_output
//! ([`GradInputPlan`]): input phase `(ry, rx)` receives exactly the taps
//! whose offsets fall in that phase, each a fixed shift of grad_output
//! (stride 1 is the one-phase case: the transposed convolution). The
//! weight gradient reads the same packed input rows, reducing over flat
//! columns ([`weight_grad_rows`]).

mod grad;

pub use grad::*;

use super::isa::dispatch_isa;
use super::simd::{dispatch_simd, stream_fence, Simd};
use super::ukernel::{self, Init, Tile};
use crate::shape::ConvGeometry;
use std::mem::MaybeUninit;

/// Where each tap of a convolution reads, on the flattened phase images.
#[derive(Clone, Debug)]
pub struct FlatGeom {
    /// Phases in use, `(ry, rx)`, in storage order.
    pub phases: Vec<(usize, usize)>,
    /// Rows and row length of one phase image of one channel.
    pub hq: usize,
    pub wq: usize,
    /// The input is read in place (1x1, stride 1, no padding).
    pub in_place: bool,
    /// Flat outputs per image and group: `oh * wq`.
    pub np: usize,
    /// Offsets of the taps `k = (ci, ky, kx)` of one group (weight order),
    /// from that group's first channel.
    pub offs: Vec<usize>,
}

impl FlatGeom {
    /// The layout for `g`.
    pub fn new(g: &ConvGeometry) -> FlatGeom {
        let (sh, sw, dh, dw) = (g.sh, g.sw, g.dh, g.dw);
        let in_place = g.kh == 1
            && g.kw == 1
            && sh == 1
            && sw == 1
            && g.pt == 0
            && g.pl == 0
            && g.oh == g.h
            && g.ow == g.w;
        let (hq, wq) = if in_place {
            (g.h, g.w)
        } else {
            // One spare row: the dropped columns of the last output row
            // read past the last needed row.
            (g.oh + (g.kh - 1) * dh / sh + 1, g.ow + (g.kw - 1) * dw / sw)
        };
        let mut phases = Vec::new();
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let ph = ((ky * dh) % sh, (kx * dw) % sw);
                if !phases.contains(&ph) {
                    phases.push(ph);
                }
            }
        }
        phases.sort_unstable();
        let plane = hq * wq;
        let mut offs = Vec::with_capacity(g.cin_g() * g.kh * g.kw);
        for ci in 0..g.cin_g() {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let ph = ((ky * dh) % sh, (kx * dw) % sw);
                    let slot = phases.iter().position(|&p| p == ph).unwrap_or(0);
                    offs.push((slot * g.c_in + ci) * plane + (ky * dh / sh) * wq + (kx * dw / sw));
                }
            }
        }
        FlatGeom {
            phases,
            hq,
            wq,
            in_place,
            np: g.oh * wq,
            offs,
        }
    }

    /// Floats of one channel's phase image.
    pub fn plane(&self) -> usize {
        self.hq * self.wq
    }

    /// Floats of one packed image (all phases and channels), not counting
    /// [`slack`].
    pub fn image_len(&self, g: &ConvGeometry) -> usize {
        if self.in_place {
            g.c_in * g.h * g.w
        } else {
            self.phases.len() * g.c_in * self.plane()
        }
    }

    /// The forward GEMM of one group.
    pub fn gemm<'a>(&'a self, g: &ConvGeometry, nb: usize) -> FlatGemm<'a> {
        FlatGemm {
            m: g.cout_g(),
            offs: &self.offs,
            np: self.np,
            wq: self.wq,
            cols: (0, g.ow),
            in_place: self.in_place,
            chunk: taps_per_chunk(g.kh * g.kw, g.kh, nb),
        }
    }
}

/// Floats past the last packed image that whole-vector reads of `nb`
/// columns may touch, for flat rows of `wq`.
pub fn slack(nb: usize, wq: usize) -> usize {
    nb + wq
}

/// `dst[i] = 0.0` for every element.
#[inline(always)]
fn zero_uninit(dst: &mut [MaybeUninit<f32>]) {
    for d in dst {
        d.write(0.0);
    }
}

#[inline(always)]
fn pack_body<const FMA: bool>(
    g: &ConvGeometry,
    fg: &FlatGeom,
    src: &[f32],
    c0: usize,
    c1: usize,
    dst: &mut [MaybeUninit<f32>],
) {
    let (h, w, wq, plane, sw) = (g.h, g.w, fg.wq, fg.plane(), g.sw);
    #[cfg(target_arch = "x86_64")]
    let avx512 = super::isa::isa() == super::isa::Isa::Avx512;
    for (slot, &(ry, rx)) in fg.phases.iter().enumerate() {
        // Padded column b of this phase is input column rx + sw*b - pl.
        let b_lo = g.pl.saturating_sub(rx).div_ceil(sw).min(wq);
        let b_hi = (w + g.pl).saturating_sub(rx).div_ceil(sw).clamp(b_lo, wq);
        for c in c0..c1 {
            let x = &src[c * h * w..][..h * w];
            let d = &mut dst[(slot * g.c_in + c) * plane..][..plane];
            for (a, row) in d.chunks_exact_mut(wq).enumerate() {
                let y = ry + g.sh * a;
                if y < g.pt || y - g.pt >= h || b_lo == b_hi {
                    zero_uninit(row);
                    continue;
                }
                let src_row = &x[(y - g.pt) * w..][..w];
                zero_uninit(&mut row[..b_lo]);
                zero_uninit(&mut row[b_hi..]);
                let x0 = rx + sw * b_lo - g.pl;
                let out = &mut row[b_lo..b_hi];
                if sw == 1 {
                    let from = &src_row[x0..x0 + out.len()];
                    // SAFETY: `from` and `out` have the same length and do
                    // not overlap; MaybeUninit<f32> has f32's layout.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            from.as_ptr(),
                            out.as_mut_ptr() as *mut f32,
                            from.len(),
                        )
                    };
                } else {
                    let s = &src_row[x0..];
                    #[cfg(target_arch = "x86_64")]
                    if sw == 2 && avx512 {
                        // SAFETY: AVX-512F was detected.
                        unsafe { every_second_avx512(s, out) };
                        continue;
                    }
                    // Fixed-size chunks so the strided gather becomes
                    // vector shuffles (compiled per ISA).
                    let mut j = 0;
                    if sw == 2 {
                        while j + 16 <= out.len() && 2 * j + 32 <= s.len() {
                            let from: &[f32; 32] = s[2 * j..][..32].try_into().unwrap();
                            for i in 0..16 {
                                out[j + i].write(from[2 * i]);
                            }
                            j += 16;
                        }
                    }
                    for (jj, v) in out.iter_mut().enumerate().skip(j) {
                        v.write(s[jj * sw]);
                    }
                }
            }
        }
    }
}

/// `out[j] = s[2 * j]` for every `j` (`s` holds at least `2 * out.len() -
/// 1` floats): 16 outputs per two masked loads and one permute, the row's
/// end included. The portable loop's scalar tail (12 of a stride-2 layer's
/// 28 columns per row) made packing 11 % of resnet_3x3_s2_128's forward.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn every_second_avx512(s: &[f32], out: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    debug_assert!(out.is_empty() || 2 * out.len() - 1 <= s.len());
    let evens: [i32; 16] = std::array::from_fn(|j| 2 * j as i32);
    let mask = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as __mmask16 };
    // SAFETY: loads keep lanes below `s.len()` (masked-off lanes do not
    // fault; the second load's address may lie past `s`, hence
    // `wrapping_add`), stores keep lanes below `out.len()`.
    unsafe {
        let ev = _mm512_loadu_si512(evens.as_ptr().cast());
        let src = s.as_ptr();
        let dst = out.as_mut_ptr().cast::<f32>();
        let mut j = 0;
        while j < out.len() {
            let avail = s.len() - 2 * j;
            let lo = _mm512_maskz_loadu_ps(mask(avail), src.add(2 * j));
            let hi =
                _mm512_maskz_loadu_ps(mask(avail.saturating_sub(16)), src.wrapping_add(2 * j + 16));
            let v = _mm512_permutex2var_ps(lo, ev, hi);
            _mm512_mask_storeu_ps(dst.add(j), mask(out.len() - j), v);
            j += 16;
        }
    }
}

dispatch_isa! {
    /// Copy channels `[c0, c1)` of one `[c_in, h, w]` input image into its
    /// packed phase images `dst` ([`FlatGeom::image_len`] floats), zeros in
    /// the padding: every element of those channels' planes is written.
    pub fn pack_image(
        g: &ConvGeometry,
        fg: &FlatGeom,
        src: &[f32],
        c0: usize,
        c1: usize,
        dst: &mut [MaybeUninit<f32>],
    ) => pack_body
}

/// Pack a `[m, k]` row-major matrix into panels of `mr` rows: panel `i`
/// holds rows `i*mr ..` as `[k][rows]` (the last panel may have fewer
/// rows), the layout the `ukernel` tile broadcasts from.
pub fn pack_panels(k: usize, rows: &[f32], mr: usize, dst: &mut [f32]) {
    let m = rows.len() / k.max(1);
    let mut at = 0;
    let mut r0 = 0;
    while r0 < m {
        let pr = mr.min(m - r0);
        for kk in 0..k {
            for r in 0..pr {
                dst[at + kk * pr + r] = rows[(r0 + r) * k + kk];
            }
        }
        at += k * pr;
        r0 += pr;
    }
}

/// [`pack_panels`] of the `[m, k]` matrix whose transpose `cols` is
/// (`[k, m]` row-major): each panel row of `kk` is a contiguous run of
/// `cols`, so no transposed copy is made first (a scalar transpose of the
/// input gradient's weight, strided stores, was 9% of a resnet18 training
/// step).
pub fn pack_panels_of_transpose(k: usize, cols: &[f32], mr: usize, dst: &mut [f32]) {
    let m = cols.len() / k.max(1);
    let mut at = 0;
    let mut r0 = 0;
    while r0 < m {
        let pr = mr.min(m - r0);
        for kk in 0..k {
            dst[at + kk * pr..][..pr].copy_from_slice(&cols[kk * m + r0..][..pr]);
        }
        at += k * pr;
        r0 += pr;
    }
}

/// The tile shape for a GEMM with `m` rows and `cols` columns on this
/// CPU: `(mr, nv)` minimising a rough cycle count (FMAs at two per cycle,
/// or loads at 2.5 per cycle when a thin tile is load-bound), counting the
/// columns computed past `cols` to fill whole tiles.
pub fn tile_shape(m: usize, cols: usize) -> (usize, usize) {
    let menu = ukernel::menu();
    let mut best = (f64::MAX, 1, 1);
    for nv in 1..=menu.max_nv {
        let mr = menu.max_mr(nv);
        let nb = nv * menu.lanes;
        let blocks = cols.div_ceil(nb) as f64;
        let mut cycles = 0.0;
        let mut r0 = 0;
        while r0 < m {
            let pr = mr.min(m - r0) as f64;
            let fma = pr * nv as f64 / 2.0;
            let loads = (pr + nv as f64 + 1.0) / 2.5;
            cycles += fma.max(loads) + 0.5;
            r0 += mr;
        }
        let cost = cycles * blocks;
        if cost < best.0 {
            best = (cost, mr, nv);
        }
    }
    (best.1, best.2)
}

/// Taps per pass over the result rows: whole channels (`taps` each,
/// reading `rows` input rows) whose rows for one block of `nb` columns
/// take about 40 KiB. Smaller chunks, to keep the rows in L1 while the
/// weight panels stream past, measured no faster on resnet_3x3_64 (and
/// slower below 20 KiB), so this only splits very deep reductions.
pub fn taps_per_chunk(taps: usize, rows: usize, nb: usize) -> usize {
    const BUDGET: usize = 40 << 10;
    let per_channel = rows * (nb + 16) * 4;
    let channels = (BUDGET / per_channel.max(1)).max(1);
    channels * taps
}

/// One GEMM over flat columns: `C[r][p] = sum_k A[r][k] * X[offs[k] + p]`
/// for `r < m`, `p < np`; of each flat row of `wq` columns, columns
/// `[cols.0, cols.1)` are kept.
#[derive(Clone, Copy, Debug)]
pub struct FlatGemm<'a> {
    pub m: usize,
    pub offs: &'a [usize],
    pub np: usize,
    pub wq: usize,
    pub cols: (usize, usize),
    /// X has no readable slack past its end: the last block is copied.
    pub in_place: bool,
    /// Taps per pass over the rows (see [`taps_per_chunk`]).
    pub chunk: usize,
}

/// Where kept results go: `(r, a, b)` (row, flat row, flat column) to
/// `ptr + r*plane + a*row + (b - cols.0)*col`. Tasks writing other blocks
/// share the buffer, hence a pointer.
#[derive(Clone, Copy, Debug)]
pub struct Dest {
    pub ptr: *mut f32,
    pub plane: usize,
    pub row: usize,
    pub col: usize,
}

/// `C[r][..nv vectors] = bias[r] + sum_k A[r][k] * B[k]` for every result
/// row `r < fm.m` on the tile kernel: panels of `mr` rows (A packed by
/// [`pack_panels`]), taps in chunks of `fm.chunk` (later chunks add to what
/// the first wrote); B row `k` at `b + b_off[k]`, C row `r` at `c + r *
/// ldc`; `bias` one value per row, or empty. With `stream` the last chunk
/// stores around the caches.
///
/// # Safety
/// Every B row is readable for `nv` vectors, every C row writable (and
/// aligned to whole vectors when streaming).
#[allow(clippy::too_many_arguments)]
unsafe fn panel_products(
    fm: &FlatGemm<'_>,
    panels: &[f32],
    bias: &[f32],
    (mr, nv): (usize, usize),
    b: *const f32,
    b_off: &[usize],
    (c, ldc): (*mut f32, usize),
    stream: bool,
) {
    let k = fm.offs.len();
    let mut k0 = 0;
    while k0 < k {
        let k1 = (k0 + fm.chunk).min(k);
        let (mut r0, mut at) = (0, 0);
        while r0 < fm.m {
            let pr = mr.min(fm.m - r0);
            let t = Tile {
                k: k1 - k0,
                a: panels[at + k0 * pr..at + k1 * pr].as_ptr(),
                lda: pr,
                a_off: std::ptr::null(),
                b,
                b_off: b_off[k0..k1].as_ptr(),
                // SAFETY: row r0 < m of C (caller).
                c: unsafe { c.add(r0 * ldc) },
                ldc,
                stream: stream && k1 == k,
                init: if k0 > 0 {
                    Init::Load
                } else if bias.is_empty() {
                    Init::Zero
                } else {
                    Init::Bias(bias[r0..].as_ptr())
                },
            };
            // SAFETY: the panel holds k*pr floats; B and C as the caller
            // guarantees; C is written by the first chunk before later
            // chunks load it.
            unsafe { ukernel::run(pr, nv, &t) };
            at += k * pr;
            r0 += pr;
        }
        k0 = k1;
    }
}

/// Run flat blocks `[blk0, blk1)` (of `nv` vectors each) of `fm`: `x` is
/// the start of X with `x_len` readable floats (at least [`slack`] past
/// the last column any tap reads, unless `fm.in_place`: then the last
/// block is copied to `tail`); `panels` is A packed by [`pack_panels`]
/// with `mr`; `bias` one value per row, or empty. `scratch` holds
/// `fm.m * nv * lanes` floats and `tail` `K * nv * lanes` (in place only).
///
/// # Safety
/// `x` addresses every float the taps read for these blocks, as described;
/// `dst` addresses every kept result, and no other thread writes them
/// meanwhile.
pub unsafe fn gemm_blocks(
    fm: &FlatGemm<'_>,
    x: *const f32,
    x_len: usize,
    panels: &[f32],
    bias: &[f32],
    (mr, nv): (usize, usize),
    (blk0, blk1): (usize, usize),
    dst: Dest,
    scratch: &mut [f32],
    tail: &mut [f32],
) {
    let lanes = ukernel::menu().lanes;
    let nb = nv * lanes;
    let k = fm.offs.len();
    let (m, wq) = (fm.m, fm.wq);
    let (lo, hi) = fm.cols;
    debug_assert!(scratch.len() >= m * nb);
    let tail_offs: Vec<usize> = if fm.in_place {
        (0..k).map(|kk| kk * nb).collect()
    } else {
        Vec::new()
    };
    // Results written in place when every column is kept and contiguous.
    let dense = lo == 0 && hi == wq && dst.col == 1 && dst.row == wq;
    for blk in blk0..blk1 {
        let p0 = blk * nb;
        let valid = nb.min(fm.np - p0);
        let (b, b_off): (*const f32, &[usize]) = if fm.in_place && valid < nb {
            // The in-place input has no slack past its end: copy the
            // last block's columns, zero-padded.
            for kk in 0..k {
                let row = &mut tail[kk * nb..][..nb];
                let start = fm.offs[kk] + p0;
                let avail = valid.min(x_len.saturating_sub(start));
                // SAFETY: `start + avail <= x_len` floats are readable at x.
                let src = unsafe { std::slice::from_raw_parts(x.add(start), avail) };
                row[..avail].copy_from_slice(src);
                row[avail..].fill(0.0);
            }
            (tail.as_ptr(), &tail_offs)
        } else {
            // SAFETY: p0 < np: inside X (the caller's contract).
            (unsafe { x.add(p0) }, fm.offs)
        };
        let direct = dense && valid == nb;
        let (c0, ldc) = if direct {
            // SAFETY: flat column p0 + nb <= np lies in every row's plane.
            (unsafe { dst.ptr.add(p0) }, dst.plane)
        } else {
            (scratch.as_mut_ptr(), nb)
        };
        // SAFETY: the panels hold k*mr floats per panel; B's rows are
        // readable for nb floats (caller's contract, or the tail copy); C is
        // `scratch` (m*nb floats) or m rows of nb floats at p0 of the
        // destination planes (direct).
        unsafe { panel_products(fm, panels, bias, (mr, nv), b, b_off, (c0, ldc), false) };
        if !direct {
            // SAFETY: every kept (r, a, b) is addressed by `dst` (caller).
            unsafe { copy_out(&scratch[..m * nb], nb, m, p0, valid, wq, (lo, hi), dst) };
        }
    }
}

/// Run flat rows `[a0, a1)` of `fm` with every result written straight to
/// `dst`, for layers whose kept width `fm.cols.1 - fm.cols.0` is a whole
/// number of vectors and whose `dst` rows are contiguous (`dst.col == 1`):
/// each row's kept columns in pieces of `nv` vectors (the last one
/// narrower), the tile kernel storing into the output planes. Blocks over
/// the flat columns instead straddle rows, so their results went through
/// a copy (15 % of resnet_stem_7x7_s2's forward) and the dropped columns
/// were computed too.
///
/// With `stream` the results are stored around the caches (outputs far
/// larger than L2, read by no one soon: the stem's 12.8 MB), then fenced:
/// by the tile kernel when `dst`'s planes and rows start on whole vectors,
/// else each flat row through `scratch` (`fm.m` rows of the kept width,
/// in L1) and a copy that streams every whole cache line, whatever the
/// allocator gave.
///
/// # Safety
/// As for [`gemm_blocks`], not in place: `x` addresses every float the taps
/// read for these rows (the packed planes); streaming, `scratch` holds
/// `fm.m * (fm.cols.1 - fm.cols.0)` floats.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_rows(
    fm: &FlatGemm<'_>,
    x: *const f32,
    panels: &[f32],
    bias: &[f32],
    (mr, nv): (usize, usize),
    (a0, a1): (usize, usize),
    dst: Dest,
    stream: bool,
    scratch: &mut [f32],
) {
    let lanes = ukernel::menu().lanes;
    let (lo, hi) = fm.cols;
    let width = hi - lo;
    debug_assert!(!fm.in_place && dst.col == 1 && width % lanes == 0);
    let aligned =
        (dst.ptr as usize) % (4 * lanes) == 0 && dst.plane % lanes == 0 && dst.row % lanes == 0;
    let direct = !stream || aligned;
    debug_assert!(direct || scratch.len() >= fm.m * width);
    for a in a0..a1 {
        let (c, ldc) = if direct {
            // SAFETY: row a of every plane of `dst` (caller).
            (unsafe { dst.ptr.add(a * dst.row) }, dst.plane)
        } else {
            (scratch.as_mut_ptr(), width)
        };
        let mut c0 = 0;
        while c0 < width {
            let nvp = nv.min((width - c0) / lanes);
            // SAFETY: flat column a * wq + lo + c0 of X, B's rows reading
            // kept columns of row a only; C is the results (r, a, lo + c0..)
            // of `dst`, nvp vectors inside row a of each plane, or the same
            // columns of `scratch`'s rows.
            unsafe {
                panel_products(
                    fm,
                    panels,
                    bias,
                    (mr, nvp),
                    x.add(a * fm.wq + lo + c0),
                    fm.offs,
                    (c.add(c0), ldc),
                    stream && direct,
                )
            };
            c0 += nvp * lanes;
        }
        if !direct {
            for r in 0..fm.m {
                // SAFETY: scratch row r holds `width` results of flat row a;
                // row a of plane r of `dst` holds as many (caller).
                unsafe {
                    stream_row(
                        scratch[r * width..].as_ptr(),
                        dst.ptr.add(r * dst.plane + a * dst.row),
                        width,
                    )
                };
            }
        }
    }
    if stream {
        stream_fence();
    }
}

#[inline(always)]
unsafe fn stream_row_body<S: Simd>(src: *const f32, dst: *mut f32, n: usize) {
    // SAFETY: forwarded from `stream_row`'s contract.
    unsafe { S::stream_n(src, dst, n) }
}

dispatch_simd! {
    /// `n` floats from `src` to `dst` around the caches (see
    /// [`Simd::stream_n`]).
    ///
    /// # Safety
    /// `n` floats are readable at `src` and writable at `dst`, apart.
    unsafe fn stream_row(src: *const f32, dst: *mut f32, n: usize) => stream_row_body
}

/// Copy the kept columns of a block of results (`m` rows of `nb` floats
/// from flat column `p0`, `valid` of them real) to `dst`. Runs are at most
/// a flat row long (29 floats for a 56-wide stride-2 layer), so they are
/// copied in vectors: a `memcpy` call per run and row was 5 % of
/// resnet_3x3_s2_128's forward.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn copy_out_body<S: Simd>(
    src: &[f32],
    nb: usize,
    m: usize,
    p0: usize,
    valid: usize,
    wq: usize,
    (lo, hi): (usize, usize),
    dst: Dest,
) {
    let mut p = p0;
    while p < p0 + valid {
        let (a, b) = (p / wq, p % wq);
        let run = (wq - b).min(p0 + valid - p);
        let (s, e) = (b.max(lo), (b + run).min(hi));
        if s < e {
            for r in 0..m {
                let from = &src[r * nb + (p - b + s - p0)..][..e - s];
                // SAFETY: (r, a, s..e) are kept results (caller's contract).
                unsafe {
                    let to = dst
                        .ptr
                        .add(r * dst.plane + a * dst.row + (s - lo) * dst.col);
                    if dst.col == 1 {
                        S::copy_n(from.as_ptr(), to, e - s);
                    } else {
                        for (j, v) in from.iter().enumerate() {
                            *to.add(j * dst.col) = *v;
                        }
                    }
                }
            }
        }
        p += run;
    }
}

dispatch_simd! {
    /// See [`copy_out_body`].
    ///
    /// # Safety
    /// As for [`gemm_blocks`]' `dst`.
    unsafe fn copy_out(
        src: &[f32],
        nb: usize,
        m: usize,
        p0: usize,
        valid: usize,
        wq: usize,
        cols: (usize, usize),
        dst: Dest,
    ) => copy_out_body
}
