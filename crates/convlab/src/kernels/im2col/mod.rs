//! im2col / col2im over a band of output rows, so the column buffer stays
//! within a scratch cap however large the image or kernel is.
//!
//! Column layout (PyTorch's `F.unfold` order): row `(c * kh + ki) * kw + kj`,
//! column `(oy - row0) * ow + ox`, value
//! `input[c, oy*sh - pt + ki*dh, ox*sw - pl + kj*dw]` (zero outside).

mod batched;

pub use batched::{col2im_batched, im2col_batched};
use batched::{gather, with_table};

use super::simd::{dispatch_simd, Simd};
use crate::shape::ConvGeometry;

/// Input row/column of output coordinate `o` and kernel tap `k`, or `None`
/// in the padding.
#[inline(always)]
pub(super) fn src(o: usize, k: usize, s: usize, d: usize, pad: usize, len: usize) -> Option<usize> {
    let i = (o * s + k * d).wrapping_sub(pad);
    (i < len).then_some(i)
}
/// For stride 1 along a row: the outputs `lo..hi` whose input column
/// `ox + offset - pad` lies in `0..w`, and the input column of `lo`. The
/// per-element test this replaces cost 20 % of a digits training run.
#[inline(always)]
fn run(ow: usize, w: usize, offset: usize, pad: usize) -> (usize, usize, usize) {
    let lo = pad.saturating_sub(offset).min(ow);
    // ox + offset - pad < w  <=>  ox < w + pad - offset
    let hi = (w + pad).saturating_sub(offset).min(ow).max(lo);
    // An empty run may have lo clamped to ow below pad - offset.
    let first = if hi > lo { lo + offset - pad } else { 0 };
    (lo, hi, first)
}

/// Fill `cols` (`[channels*kh*kw, rows*ow]`) from `input` (`[channels, h, w]`)
/// for output rows `row0 .. row0 + rows`.
pub fn im2col(
    g: &ConvGeometry,
    channels: usize,
    input: &[f32],
    row0: usize,
    rows: usize,
    cols: &mut [f32],
) {
    let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow);
    let band = rows * ow;
    debug_assert!(input.len() >= channels * h * w);
    debug_assert!(cols.len() >= channels * kh * kw * band);
    if g.sw == 2 && g.dw == 1 {
        let mut rowbuf = vec![0.0; stride_two_scratch_len(g)];
        // SAFETY: the buffers hold what the body reads and writes (sizes
        // asserted above and by `stride_two_scratch_len`).
        unsafe { im2col_stride_two(g, channels, input, row0, rows, cols, &mut rowbuf) };
        return;
    }
    let taps = kh * kw * band;
    let hw = h * w;
    let gathered = with_table(g, row0, rows, |table| {
        for c in 0..channels {
            gather(
                &input[c * hw..(c + 1) * hw],
                table,
                &mut cols[c * taps..(c + 1) * taps],
            );
        }
    });
    if gathered {
        return;
    }
    for c in 0..channels {
        let plane = &input[c * h * w..(c + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (c * kh + ki) * kw + kj;
                let dst = &mut cols[row * band..(row + 1) * band];
                for r in 0..rows {
                    let out = &mut dst[r * ow..(r + 1) * ow];
                    let Some(iy) = src(row0 + r, ki, g.sh, g.dh, g.pt, h) else {
                        out.fill(0.0);
                        continue;
                    };
                    let line = &plane[iy * w..(iy + 1) * w];
                    if g.sw == 1 {
                        // Contiguous run: zeros, a copied slice, zeros.
                        let (lo, hi, first) = run(ow, w, kj * g.dw, g.pl);
                        out[..lo].fill(0.0);
                        // A loop, not copy_from_slice: runs are as short as
                        // 4 values, where a memmove call costs more than the copy.
                        for (o, &v) in out[lo..hi].iter_mut().zip(&line[first..]) {
                            *o = v;
                        }
                        out[hi..].fill(0.0);
                    } else {
                        for (ox, o) in out.iter_mut().enumerate() {
                            *o = match src(ox, kj, g.sw, g.dw, g.pl, w) {
                                Some(ix) => line[ix],
                                None => 0.0,
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Add `cols` (`[channels*kh*kw, rows*ow]`, the gradient of the columns of
/// output rows `row0 .. row0 + rows`) back into `grad_input` (`[channels, h, w]`).
pub fn col2im(
    g: &ConvGeometry,
    channels: usize,
    cols: &[f32],
    row0: usize,
    rows: usize,
    grad_input: &mut [f32],
) {
    let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow);
    let band = rows * ow;
    debug_assert!(grad_input.len() >= channels * h * w);
    debug_assert!(cols.len() >= channels * kh * kw * band);
    if g.sw == 2 && g.dw == 1 {
        let mut rowbuf = vec![0.0; stride_two_scratch_len(g)];
        // SAFETY: the buffers hold what the body reads and writes (sizes
        // asserted above and by `stride_two_scratch_len`).
        unsafe { col2im_stride_two(g, channels, cols, row0, rows, grad_input, &mut rowbuf) };
        return;
    }
    let taps = kh * kw * band;
    let hw = h * w;
    let scattered = with_table(g, row0, rows, |table| {
        for c in 0..channels {
            let plane = &mut grad_input[c * hw..(c + 1) * hw];
            let src = &cols[c * taps..(c + 1) * taps];
            for (&v, &i) in src.iter().zip(table) {
                if let Some(d) = plane.get_mut(i as usize) {
                    *d += v;
                }
            }
        }
    });
    if scattered {
        return;
    }
    for c in 0..channels {
        let plane = &mut grad_input[c * h * w..(c + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (c * kh + ki) * kw + kj;
                let srcrow = &cols[row * band..(row + 1) * band];
                for r in 0..rows {
                    let Some(iy) = src(row0 + r, ki, g.sh, g.dh, g.pt, h) else {
                        continue;
                    };
                    let line = &mut plane[iy * w..(iy + 1) * w];
                    if g.sw == 1 {
                        let (lo, hi, first) = run(ow, w, kj * g.dw, g.pl);
                        let dst = &mut line[first..first + (hi - lo)];
                        let src = &srcrow[r * ow + lo..r * ow + hi];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                        continue;
                    }
                    for (ox, &v) in srcrow[r * ow..(r + 1) * ow].iter().enumerate() {
                        if let Some(ix) = src(ox, kj, g.sw, g.dw, g.pl, w) {
                            line[ix] += v;
                        }
                    }
                }
            }
        }
    }
}

/// im2col for stride 2 along W (no dilation along W), the mirror of
/// [`col2im_stride_two_body`]: each input row is zero-padded and split
/// into its even and odd padded columns once, and tap `kj`'s row of
/// columns is the even (or odd) half shifted by `kj / 2`. The per-element
/// gather this replaces was a quarter of resnet_3x3_s2_128's forward on
/// im2col.
#[inline(always)]
unsafe fn im2col_stride_two_body<S: Simd>(
    g: &ConvGeometry,
    channels: usize,
    input: &[f32],
    row0: usize,
    rows: usize,
    cols: &mut [f32],
    scratch: &mut [f32],
) {
    let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow);
    let band = rows * ow;
    let lanes = S::LANES;
    let StrideTwoRows {
        half,
        even,
        odd,
        padded,
        real: n,
    } = stride_two_rows(g, scratch);
    // The padding columns stay zero: rows only ever write [pl, pl + n).
    padded.fill(0.0);
    let at = |c: usize, ki: usize, kj: usize, r: usize| ((c * kh + ki) * kw + kj) * band + r * ow;
    // Which input row each (tap row, band row) reads, the same for every
    // channel: the pairs in the padding, and the others as (input row, tap
    // row, band row) in input-row order (a 1x1 kernel at stride 2 skips
    // every other row).
    let mut reads = Vec::with_capacity(kh * rows);
    let mut pads = Vec::new();
    for ki in 0..kh {
        for r in 0..rows {
            match src(row0 + r, ki, g.sh, g.dh, g.pt, h) {
                Some(iy) => reads.push((iy, ki, r)),
                None => pads.push((ki, r)),
            }
        }
    }
    reads.sort_by_key(|&(iy, _, _)| iy);
    // Vector copies throughout, as in the other row kernels (a `memcpy`
    // call per row of a few dozen floats).
    for c in 0..channels {
        for &(ki, r) in &pads {
            for kj in 0..kw {
                cols[at(c, ki, kj, r)..][..ow].fill(0.0);
            }
        }
        // Each input row once, in order (the streaming reads the hardware
        // prefetches best), split into even and odd columns once for every
        // tap row that reads it: walking (tap row, output row) instead
        // split rows up to twice and read the plane out of order, and the
        // input's loads were a third of this kernel.
        for same_row in reads.chunk_by(|a, b| a.0 == b.0) {
            let iy = same_row[0].0;
            let line = &input[(c * h + iy) * w..][..w];
            // The next channel's row, a channel of rows ahead: the planes
            // sit 12 KiB and more apart, past what the hardware prefetcher
            // follows (resnet_3x3_s2_128 forward, interleaved in-process
            // A/B, one thread: best 4.87-5.12 -> 4.72-4.82 ms).
            if c + 1 < channels {
                let next = &input[((c + 1) * h + iy) * w..][..w];
                for j in (0..w).step_by(16) {
                    // SAFETY: j < w floats of `next`.
                    unsafe { S::prefetch(next.as_ptr().add(j)) };
                }
            }
            // SAFETY: n <= w floats of `line`, and pl + n <= 2 * half
            // of `padded`.
            unsafe { S::copy_n(line.as_ptr(), padded.as_mut_ptr().add(g.pl), n) };
            let mut m = 0;
            while m < half {
                // SAFETY: 2 * lanes floats of `padded` (2 * half long)
                // at 2 m, and `m + lanes <= half` of each half.
                unsafe {
                    S::deinterleave2(
                        padded.as_ptr().add(2 * m),
                        even.as_mut_ptr().add(m),
                        odd.as_mut_ptr().add(m),
                    )
                };
                m += lanes;
            }
            for &(_, ki, r) in same_row {
                for kj in 0..kw {
                    let from = if kj % 2 == 0 { &even[..] } else { &odd[..] };
                    let to = &mut cols[at(c, ki, kj, r)..][..ow];
                    // SAFETY: kj / 2 + ow <= half floats of `from`, ow of `to`.
                    unsafe { S::copy_n(from.as_ptr().add(kj / 2), to.as_mut_ptr(), ow) };
                }
            }
        }
    }
}

dispatch_simd! {
    /// See [`im2col_stride_two_body`]; `scratch` holds
    /// [`stride_two_scratch_len`] floats.
    ///
    /// # Safety
    /// `g.sw == 2`, `g.dw == 1`; `input` and `cols` as for [`im2col`].
    unsafe fn im2col_stride_two(
        g: &ConvGeometry,
        channels: usize,
        input: &[f32],
        row0: usize,
        rows: usize,
        cols: &mut [f32],
        scratch: &mut [f32],
    ) => im2col_stride_two_body
}

/// Padded even (or odd) positions of one input row for the stride-2 kernels:
/// `ow + kw / 2` of them, rounded up to whole vectors, and a vector more
/// so that a tap's last (partial) vector fits whatever its shift.
fn stride_two_half(g: &ConvGeometry) -> usize {
    (g.ow + g.kw / 2 + 1).next_multiple_of(16) + 16
}

/// Floats of scratch the stride-2 kernels take: the even and odd halves
/// and the whole padded row.
fn stride_two_scratch_len(g: &ConvGeometry) -> usize {
    4 * stride_two_half(g)
}

/// The row buffers of the stride-2 kernels, carved from their scratch.
struct StrideTwoRows<'a> {
    /// Floats per half.
    half: usize,
    /// Padded columns `2 m` and `2 m + 1` of a row.
    even: &'a mut [f32],
    odd: &'a mut [f32],
    /// The padded row, `2 * half` floats: input column `ix` is padded
    /// column `ix + pl`.
    padded: &'a mut [f32],
    /// Input columns that fall inside `padded` (the rest are never read
    /// or reached by a tap).
    real: usize,
}

fn stride_two_rows<'a>(g: &ConvGeometry, scratch: &'a mut [f32]) -> StrideTwoRows<'a> {
    let half = stride_two_half(g);
    let (halves, padded) = scratch[..4 * half].split_at_mut(2 * half);
    let (even, odd) = halves.split_at_mut(half);
    StrideTwoRows {
        half,
        even,
        odd,
        padded,
        real: g.w.min((2 * half).saturating_sub(g.pl)),
    }
}

/// col2im for stride 2 along W (no dilation along W), one input row at a
/// time: tap `kj` of output column `ox` lands on padded column `2 ox + kj`,
/// so the even taps of a kernel row sum into the even padded columns and
/// the odd taps into the odd ones, each a shifted vector add; the two
/// halves are then interleaved and added to the row. The per-element
/// scatter this replaces was a quarter of resnet_3x3_s2_128's input
/// gradient.
#[inline(always)]
unsafe fn col2im_stride_two_body<S: Simd>(
    g: &ConvGeometry,
    channels: usize,
    cols: &[f32],
    row0: usize,
    rows: usize,
    grad_input: &mut [f32],
    scratch: &mut [f32],
) {
    let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow);
    let band = rows * ow;
    let lanes = S::LANES;
    let StrideTwoRows {
        half,
        even,
        odd,
        padded,
        real: hi,
    } = stride_two_rows(g, scratch);
    for c in 0..channels {
        for ki in 0..kh {
            for r in 0..rows {
                let Some(iy) = src(row0 + r, ki, g.sh, g.dh, g.pt, h) else {
                    continue;
                };
                even.fill(0.0);
                odd.fill(0.0);
                for kj in 0..kw {
                    let at = ((c * kh + ki) * kw + kj) * band + r * ow;
                    let from = &cols[at..at + ow];
                    let to = if kj % 2 == 0 {
                        &mut even[..]
                    } else {
                        &mut odd[..]
                    };
                    let to = &mut to[kj / 2..];
                    let mut x = 0;
                    // SAFETY: `from` is read below `ow` (the last vector
                    // through `load_n`); `to` holds `ow` rounded up to
                    // whole vectors (the zeros past `ow` add nothing).
                    unsafe {
                        while x < ow {
                            let f = if x + lanes <= ow {
                                S::load(from.as_ptr().add(x))
                            } else {
                                S::load_n(from.as_ptr().add(x), ow - x)
                            };
                            let v = S::add(S::load(to.as_ptr().add(x)), f);
                            S::store(to.as_mut_ptr().add(x), v);
                            x += lanes;
                        }
                    }
                }
                let mut m = 0;
                while m < half {
                    // SAFETY: `m + lanes <= half` floats of each half, and
                    // 2 * lanes floats of `padded` (2 * half long) at 2 m.
                    unsafe {
                        S::interleave2(
                            even.as_ptr().add(m),
                            odd.as_ptr().add(m),
                            padded.as_mut_ptr().add(2 * m),
                        )
                    };
                    m += lanes;
                }
                let line = &mut grad_input[(c * h + iy) * w..][..w];
                // Columns below `pl` are padding: input column 0 is padded
                // column `pl`.
                let from = &padded[g.pl..];
                let mut x = 0;
                // SAFETY: `line` is read and written below `hi <= w` (the
                // last vector through `load_n` / `store_n`), `padded` below
                // `hi + pl <= 2 * half`.
                unsafe {
                    while x < hi {
                        let n = lanes.min(hi - x);
                        let v = S::add(
                            S::load_n(line.as_ptr().add(x), n),
                            S::load_n(from.as_ptr().add(x), n),
                        );
                        if n == lanes {
                            S::store(line.as_mut_ptr().add(x), v);
                        } else {
                            S::store_n(line.as_mut_ptr().add(x), v, n);
                        }
                        x += lanes;
                    }
                }
            }
        }
    }
}

dispatch_simd! {
    /// See [`col2im_stride_two_body`]; `scratch` holds
    /// [`stride_two_scratch_len`] floats.
    ///
    /// # Safety
    /// `g.sw == 2`, `g.dw == 1`; `cols` and `grad_input` as for [`col2im`].
    unsafe fn col2im_stride_two(
        g: &ConvGeometry,
        channels: usize,
        cols: &[f32],
        row0: usize,
        rows: usize,
        grad_input: &mut [f32],
        scratch: &mut [f32],
    ) => col2im_stride_two_body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stride 2 along W (the even/odd halves of a row) against the
    /// per-element definition: kernels of one to seven taps, padding, rows
    /// of stride 1 and 2 with dilation, bands that start past row 0 (and
    /// short ones in the middle), and
    /// rows long enough for whole vectors and their tails.
    #[test]
    fn stride_two_im2col_and_col2im_match_the_definition() {
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 9) as f32 / (1u32 << 23) as f32) - 0.5
        };
        for (h, w, kh, kw, sh, dh, pt, pl) in [
            (7, 7, 3, 3, 2, 1, 1, 1),
            (56, 56, 3, 3, 2, 1, 1, 1),
            (9, 40, 1, 1, 2, 1, 0, 0),
            (11, 37, 2, 2, 1, 2, 1, 0),
            (13, 70, 7, 7, 2, 1, 3, 3),
            (5, 3, 3, 4, 1, 1, 2, 2),
            (6, 100, 3, 5, 2, 2, 2, 0),
        ] {
            let oh = (h + 2 * pt - dh * (kh - 1) - 1) / sh + 1;
            let ow = (w + 2 * pl - (kw - 1) - 1) / 2 + 1;
            let g = ConvGeometry {
                n: 1,
                c_in: 2,
                h,
                w,
                c_out: 1,
                kh,
                kw,
                groups: 1,
                sh,
                sw: 2,
                dh,
                dw: 1,
                pt,
                pl,
                oh,
                ow,
            };
            for (row0, rows) in [
                (0, oh),
                (oh / 2, oh - oh / 2),
                (oh / 3, (oh - oh / 3).min(2)),
            ] {
                let band = rows * ow;
                let cols: Vec<f32> = (0..2 * kh * kw * band).map(|_| next()).collect();
                let start: Vec<f32> = (0..2 * h * w).map(|_| next()).collect();
                // im2col: every column is its input element or zero.
                let mut gathered = vec![f32::NAN; cols.len()];
                im2col(&g, 2, &start, row0, rows, &mut gathered);
                for c in 0..2 {
                    for ki in 0..kh {
                        for kj in 0..kw {
                            for r in 0..rows {
                                for ox in 0..ow {
                                    let iy = ((row0 + r) * sh + ki * dh) as isize - pt as isize;
                                    let ix = (ox * 2 + kj) as isize - pl as isize;
                                    let want = if (0..h as isize).contains(&iy)
                                        && (0..w as isize).contains(&ix)
                                    {
                                        start[(c * h + iy as usize) * w + ix as usize]
                                    } else {
                                        0.0
                                    };
                                    let got =
                                        gathered[((c * kh + ki) * kw + kj) * band + r * ow + ox];
                                    assert_eq!(got, want, "im2col h {h} w {w} k {kh}x{kw} pl {pl} ({c},{ki},{kj},{r},{ox})");
                                }
                            }
                        }
                    }
                }
                let mut got = start.clone();
                col2im(&g, 2, &cols, row0, rows, &mut got);
                let mut want: Vec<f64> = start.iter().map(|&v| v as f64).collect();
                for c in 0..2 {
                    for ki in 0..kh {
                        for kj in 0..kw {
                            for r in 0..rows {
                                for ox in 0..ow {
                                    let iy = ((row0 + r) * sh + ki * dh) as isize - pt as isize;
                                    let ix = (ox * 2 + kj) as isize - pl as isize;
                                    if (0..h as isize).contains(&iy)
                                        && (0..w as isize).contains(&ix)
                                    {
                                        want[(c * h + iy as usize) * w + ix as usize] += cols
                                            [((c * kh + ki) * kw + kj) * band + r * ow + ox]
                                            as f64;
                                    }
                                }
                            }
                        }
                    }
                }
                for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a as f64 - b).abs() < 1e-5,
                        "h {h} w {w} k {kh}x{kw} pl {pl} rows {row0}+{rows} at {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// The per-element definition, through the gather table and the per-row
    /// runs, for every stride-1 corner: padding wider
    /// than the output, dilated taps past the input, kernels wider than it.
    #[test]
    fn stride_one_runs_match_the_definition() {
        for (w, kw, dw, pl, pr) in [
            (5, 3, 1, 1, 1),
            (4, 3, 2, 3, 3),
            (1, 3, 1, 2, 2),
            (6, 1, 1, 0, 0),
            (3, 5, 1, 4, 0),
            (2, 2, 3, 4, 5),
            // Too many taps for the gather table: the per-row runs.
            (1500, 3, 1, 1, 1),
            (700, 5, 2, 4, 5),
        ] {
            let ow = w + pl + pr - (dw * (kw - 1) + 1) + 1;
            let g = ConvGeometry {
                n: 1,
                c_in: 2,
                h: 2,
                w,
                c_out: 1,
                kh: 1,
                kw,
                groups: 1,
                sh: 1,
                sw: 1,
                dh: 1,
                dw,
                pt: 0,
                pl,
                oh: 2,
                ow,
            };
            let input: Vec<f32> = (0..2 * 2 * w).map(|i| i as f32 + 1.0).collect();
            let mut cols = vec![f32::NAN; 2 * kw * 2 * ow];
            im2col(&g, 2, &input, 0, 2, &mut cols);
            let mut back = vec![0.0; input.len()];
            col2im(&g, 2, &cols, 0, 2, &mut back);
            let mut want_back = vec![0.0; input.len()];
            for c in 0..2 {
                for kj in 0..kw {
                    for r in 0..2 {
                        for ox in 0..ow {
                            let ix = (ox + kj * dw) as isize - pl as isize;
                            let at = (c * 2 + r) * w;
                            let want = if (0..w as isize).contains(&ix) {
                                want_back[at + ix as usize] += input[at + ix as usize];
                                input[at + ix as usize]
                            } else {
                                0.0
                            };
                            let got = cols[(c * kw + kj) * 2 * ow + r * ow + ox];
                            assert_eq!(got, want, "w {w} kw {kw} dw {dw} pl {pl} ox {ox}");
                        }
                    }
                }
            }
            assert_eq!(back, want_back, "col2im w {w} kw {kw} dw {dw} pl {pl}");
        }
    }
}
