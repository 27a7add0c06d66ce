//! Separable convolution of one plane: a kernel that is the outer product
//! `w[i][j] = col[i] * row[j]` (Gaussian and box blurs, Sobel and Scharr
//! derivatives) applied as a pass along each input row with `row`, then a
//! pass down the columns of that result with `col`. `kh + kw`
//! multiply-adds per output instead of `kh * kw`.
//!
//! Both passes are vectorised along the output width. Any stride,
//! dilation and zero padding; the horizontal pass is scalar when the
//! horizontal stride is above 1.

use std::mem::MaybeUninit;

use super::simd::{dispatch_simd, Simd};
use crate::shape::ConvGeometry;

/// Input rows `[lo, hi)` (unclamped: may lie in the padding) that output
/// rows `[oy0, oy1)` read, as signed offsets into the plane.
pub fn input_rows(g: &ConvGeometry, (oy0, oy1): (usize, usize)) -> (isize, isize) {
    let lo = (oy0 * g.sh) as isize - g.pt as isize;
    let hi = ((oy1 - 1) * g.sh + (g.kh - 1) * g.dh) as isize - g.pt as isize + 1;
    (lo, hi)
}

/// Floats of the zero-padded line buffer [`row_pass`] needs for `g`.
pub fn line_len(g: &ConvGeometry) -> usize {
    // Every tap of every output column, plus a vector of slack for the
    // last (partial) vector's loads.
    (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1 + 16
}

/// `n <= LANES` floats at `p`: a whole vector, or a partial one (the
/// portable partial load goes through a buffer).
///
/// # Safety
/// `n` floats are readable at `p`.
#[inline(always)]
unsafe fn load<S: Simd>(p: *const f32, n: usize) -> S::V {
    // SAFETY: the caller's contract.
    unsafe {
        if n == S::LANES {
            S::load(p)
        } else {
            S::load_n(p, n)
        }
    }
}

/// The first `n <= LANES` lanes of `v` to `p`, as [`load`].
///
/// # Safety
/// `n` floats are writable at `p`.
#[inline(always)]
unsafe fn store<S: Simd>(p: *mut f32, v: S::V, n: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        if n == S::LANES {
            S::store(p, v)
        } else {
            S::store_n(p, v, n)
        }
    }
}

#[inline(always)]
unsafe fn row_body<S: Simd>(
    g: &ConvGeometry,
    x: &[f32],
    row: &[f32],
    (lo, hi): (isize, isize),
    t: &mut [f32],
    line: &mut [f32],
) {
    let (w, ow) = (g.w, g.ow);
    let lanes = S::LANES;
    let len = line_len(g);
    debug_assert!(line.len() >= len && t.len() >= (hi - lo) as usize * ow);
    debug_assert_eq!(row.len(), g.kw);
    // line[q] = x[iy][q - pl], zero outside the row.
    let real = g.pl.min(len);
    let n = w.min(len - real);
    line[..real].fill(0.0);
    line[real + n..len].fill(0.0);
    for (r, iy) in (lo..hi).enumerate() {
        let dst = &mut t[r * ow..][..ow];
        if iy < 0 || iy as usize >= g.h {
            // Padding rows: the column pass skips them.
            continue;
        }
        let src = &x[iy as usize * w..][..w];
        line[real..real + n].copy_from_slice(&src[..n]);
        // SAFETY (both branches): every load reads at most `line_len`
        // floats of `line`, every store lands in `dst`.
        unsafe {
            if g.sw == 1 {
                // Four vectors per tap broadcast, then one at a time.
                let mut ox = 0;
                while ox + 4 * lanes <= ow {
                    let mut acc = [S::zero(); 4];
                    for (j, &rj) in row.iter().enumerate() {
                        let r = S::splat(rj);
                        let at = line.as_ptr().add(ox + j * g.dw);
                        for (v, a) in acc.iter_mut().enumerate() {
                            *a = S::fma(r, S::load(at.add(v * lanes)), *a);
                        }
                    }
                    for (v, a) in acc.into_iter().enumerate() {
                        S::store(dst.as_mut_ptr().add(ox + v * lanes), a);
                    }
                    ox += 4 * lanes;
                }
                while ox < ow {
                    let mut acc = S::zero();
                    for (j, &rj) in row.iter().enumerate() {
                        acc = S::fma(S::splat(rj), S::load(line.as_ptr().add(ox + j * g.dw)), acc);
                    }
                    store::<S>(dst.as_mut_ptr().add(ox), acc, (ow - ox).min(lanes));
                    ox += lanes;
                }
            } else {
                for (ox, d) in dst.iter_mut().enumerate() {
                    let base = ox * g.sw;
                    *d = row
                        .iter()
                        .enumerate()
                        .fold(0.0, |s, (j, &rj)| rj.mul_add(line[base + j * g.dw], s));
                }
            }
        }
    }
}

dispatch_simd! {
    /// The horizontal pass over input rows `[lo, hi)` of the plane `x`
    /// (`[h, w]`): `t[(iy - lo) * ow + ox] = sum_j row[j] * x[iy][ox * sw
    /// + j * dw - pl]` (zero outside the row). Rows outside the plane are
    /// left as they are. `line` holds [`line_len`] floats.
    ///
    /// # Safety
    /// None beyond the slice lengths, which are checked in debug builds:
    /// `x` holds the plane, `t` `(hi - lo) * ow` floats, `row` `kw`.
    pub unsafe fn row_pass(
        g: &ConvGeometry,
        x: &[f32],
        row: &[f32],
        rows: (isize, isize),
        t: &mut [f32],
        line: &mut [f32],
    ) => row_body
}

#[inline(always)]
unsafe fn col_body<S: Simd>(
    g: &ConvGeometry,
    t: &[f32],
    t_lo: isize,
    col: &[f32],
    (oy0, oy1): (usize, usize),
    out: &mut [MaybeUninit<f32>],
) {
    let ow = g.ow;
    let lanes = S::LANES;
    debug_assert!(out.len() >= (oy1 - oy0) * ow);
    debug_assert_eq!(col.len(), g.kh);
    let mut taps: Vec<(f32, usize)> = Vec::with_capacity(g.kh);
    let mut oy = oy0;
    while oy < oy1 {
        // Four output rows at a time where they overlap tap for tap
        // (stride 1, dilation 1, all taps on real rows): each row of `t`
        // is loaded once for the four, not once per output row.
        let first = oy as isize - g.pt as isize;
        if g.sh == 1 && g.dh == 1 && oy + 4 <= oy1 && first >= 0 && first as usize + 3 + g.kh <= g.h
        {
            let base = (first - t_lo) as usize * ow;
            let dst = out[(oy - oy0) * ow..].as_mut_ptr() as *mut f32;
            // SAFETY: rows first .. first + kh + 3 of `t` hold `ow` floats
            // each (the row pass wrote them); `out` holds these four rows.
            unsafe { four_rows::<S>(t.as_ptr().add(base), ow, col, dst) };
            oy += 4;
            continue;
        }
        // The taps that land on real rows, by their row of `t`.
        taps.clear();
        for (i, &ci) in col.iter().enumerate() {
            let iy = (oy * g.sh + i * g.dh) as isize - g.pt as isize;
            if iy >= 0 && (iy as usize) < g.h {
                taps.push((ci, (iy - t_lo) as usize * ow));
            }
        }
        let dst = out[(oy - oy0) * ow..][..ow].as_mut_ptr() as *mut f32;
        let mut ox = 0;
        while ox < ow {
            let n = (ow - ox).min(lanes);
            // SAFETY: every tap's row of `t` holds `ow` floats (the row
            // pass wrote them); loads and stores cover `n` floats.
            unsafe {
                let mut acc = S::zero();
                for &(ci, at) in &taps {
                    acc = S::fma(S::splat(ci), load::<S>(t.as_ptr().add(at + ox), n), acc);
                }
                store::<S>(dst.add(ox), acc, n);
            }
            ox += lanes;
        }
        oy += 1;
    }
}

/// Four consecutive output rows of the vertical pass at stride 1 and
/// dilation 1: `dst[r][ox] = sum_i col[i] * t[r + i][ox]` (rows `ow`
/// floats apart in both).
///
/// # Safety
/// `t` holds `col.len() + 3` rows and `dst` four rows of `ow` floats.
#[inline(always)]
unsafe fn four_rows<S: Simd>(t: *const f32, ow: usize, col: &[f32], dst: *mut f32) {
    let kh = col.len();
    let lanes = S::LANES;
    let mut ox = 0;
    // Two vectors per row of `t` loaded, then one.
    while ox + 2 * lanes <= ow {
        // SAFETY: the caller's bounds.
        unsafe {
            let mut acc = [[S::zero(); 2]; 4];
            for q in 0..kh + 3 {
                let v = [
                    S::load(t.add(q * ow + ox)),
                    S::load(t.add(q * ow + ox + lanes)),
                ];
                for (r, a) in acc.iter_mut().enumerate() {
                    if let Some(&c) = q.checked_sub(r).and_then(|i| col.get(i)) {
                        let c = S::splat(c);
                        a[0] = S::fma(c, v[0], a[0]);
                        a[1] = S::fma(c, v[1], a[1]);
                    }
                }
            }
            for (r, a) in acc.into_iter().enumerate() {
                S::store(dst.add(r * ow + ox), a[0]);
                S::store(dst.add(r * ow + ox + lanes), a[1]);
            }
        }
        ox += 2 * lanes;
    }
    while ox < ow {
        let n = (ow - ox).min(lanes);
        // SAFETY: the caller's bounds; loads and stores cover `n` floats.
        unsafe {
            let mut acc = [S::zero(); 4];
            for q in 0..kh + 3 {
                let v = load::<S>(t.add(q * ow + ox), n);
                for (r, a) in acc.iter_mut().enumerate() {
                    if let Some(&c) = q.checked_sub(r).and_then(|i| col.get(i)) {
                        *a = S::fma(S::splat(c), v, *a);
                    }
                }
            }
            for (r, a) in acc.into_iter().enumerate() {
                store::<S>(dst.add(r * ow + ox), a, n);
            }
        }
        ox += lanes;
    }
}

dispatch_simd! {
    /// The vertical pass: output rows `[oy0, oy1)` of the plane into `out`
    /// (`(oy1 - oy0) * ow` floats, every one written): `out[oy][ox] =
    /// sum_i col[i] * t[oy * sh + i * dh - pt][ox]` over the taps on real
    /// input rows, where `t` holds the [`row_pass`] of input rows from
    /// `t_lo` on.
    ///
    /// # Safety
    /// `t` holds the row pass of every real input row these output rows
    /// read (rows from `t_lo`, `ow` floats apart).
    pub unsafe fn col_pass(
        g: &ConvGeometry,
        t: &[f32],
        t_lo: isize,
        col: &[f32],
        rows: (usize, usize),
        out: &mut [MaybeUninit<f32>],
    ) => col_body
}
