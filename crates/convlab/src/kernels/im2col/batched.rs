//! im2col and col2im of a whole batch of small planes through gather
//! tables built once per geometry (CNNs on 8x8 to 28x28 images).

use super::super::isa::{isa, Isa};
use super::src;
use crate::shape::ConvGeometry;

/// Most taps a gather table may hold (16 KiB).
const TABLE: usize = 4096;

/// What a gather table depends on: the geometry's spatial fields and the band.
type TableKey = [usize; 13];

fn table_key(g: &ConvGeometry, row0: usize, rows: usize) -> TableKey {
    [
        g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.ow, row0, rows,
    ]
}

thread_local! {
    /// The last table built on this thread: a convolution calls im2col once
    /// per image with the same geometry, so the table is built once per
    /// batch instead of once per image (5 % of a digits run otherwise).
    static TABLE_CACHE: std::cell::RefCell<(Option<TableKey>, Vec<u32>)> =
        const { std::cell::RefCell::new((None, Vec::new())) };
}

/// Run `f` with the gather table of this band, or return `false` when the
/// band is too large for one.
pub(super) fn with_table(
    g: &ConvGeometry,
    row0: usize,
    rows: usize,
    f: impl FnOnce(&[u32]),
) -> bool {
    TABLE_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let key = table_key(g, row0, rows);
        if c.0 != Some(key) {
            c.0 = None;
            if !fill_table(g, row0, rows, &mut c.1) {
                return false;
            }
            c.0 = Some(key);
        }
        f(&c.1);
        true
    })
}

/// For small planes (CNNs on 8x8 to 28x28 images), one channel's columns
/// as a gather table: entry `(ki * kw + kj) * band + r * ow + ox` is the
/// in-plane index of that tap, or `h * w` (out of range: a zero) in the
/// padding. Every channel then reuses it in a tight loop; per-row copies of
/// 4 to 8 values cost more in bookkeeping than in copying (im2col and col2im
/// were a quarter of a digits training run). Returns `false`, leaving the
/// table unused, when it would not fit.
fn fill_table(g: &ConvGeometry, row0: usize, rows: usize, table: &mut Vec<u32>) -> bool {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let taps = g.kh * g.kw * rows * ow;
    if taps > TABLE || h * w >= u32::MAX as usize {
        return false;
    }
    let outside = (h * w) as u32;
    table.resize(taps, 0);
    let mut t = 0;
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            for r in 0..rows {
                let iy = src(row0 + r, ki, g.sh, g.dh, g.pt, h);
                for ox in 0..ow {
                    table[t] = match (iy, src(ox, kj, g.sw, g.dw, g.pl, w)) {
                        (Some(iy), Some(ix)) => (iy * w + ix) as u32,
                        _ => outside,
                    };
                    t += 1;
                }
            }
        }
    }
    true
}

/// `dst[t] = plane[table[t]]`, or 0 where the index is past the plane.
pub(super) fn gather(plane: &[f32], table: &[u32], dst: &mut [f32]) {
    let dst = &mut dst[..table.len()];
    #[cfg(target_arch = "x86_64")]
    if isa() == Isa::Avx512 && plane.len() <= i32::MAX as usize {
        // SAFETY: AVX-512F was detected; the plane fits i32 offsets.
        unsafe { gather_avx512(plane, table, dst) };
        return;
    }
    for (o, &i) in dst.iter_mut().zip(table) {
        *o = plane.get(i as usize).copied().unwrap_or(0.0);
    }
}

/// A 16-lane mask of the first `lanes` (at most 16) lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first_lanes(lanes: usize) -> u16 {
    (0xffff_u32 >> (16 - lanes.min(16))) as u16
}

/// [`gather`] with masked hardware gathers, 16 taps per instruction: the
/// scalar loop's bounds test per tap was a sixth of a digits training run.
///
/// # Safety
/// The CPU has AVX-512F; `plane.len() <= i32::MAX`; `dst.len() == table.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_avx512(plane: &[f32], table: &[u32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let limit = _mm512_set1_epi32(plane.len() as i32);
    let n = table.len();
    let mut t = 0;
    while t < n {
        let lanes = (n - t).min(16);
        let live: __mmask16 = first_lanes(lanes);
        // SAFETY: lanes past `n` are masked off for the load, the gather
        // and the store; gathered lanes are masked to indices below
        // plane.len(), so every read is inside `plane`.
        unsafe {
            let idx = _mm512_maskz_loadu_epi32(live, table.as_ptr().add(t).cast());
            let inside = _mm512_mask_cmplt_epu32_mask(live, idx, limit);
            let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), inside, idx, plane.as_ptr());
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(t), live, v);
        }
        t += lanes;
    }
}

/// Batched columns for small planes: image `img`'s columns of every output
/// row go to columns `img * ohw ..` of `cols`, whose rows are `ld` floats
/// apart (`ld >= images * ohw`). One GEMM then covers the whole batch: on
/// 4x4 planes (the digits net), a GEMM per image cost more in setup than
/// in arithmetic. Uses the gather table; returns `false` (nothing written)
/// when the plane is too large for one.
pub fn im2col_batched(
    g: &ConvGeometry,
    channels: usize,
    input: &[f32],
    images: usize,
    cols: &mut [f32],
    ld: usize,
) -> bool {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    debug_assert!(ld >= images * ohw);
    with_table(g, 0, g.oh, |table| {
        for img in 0..images {
            for c in 0..channels {
                let plane = &input[(img * channels + c) * hw..][..hw];
                for t in 0..kk {
                    let row = (c * kk + t) * ld + img * ohw;
                    gather(
                        plane,
                        &table[t * ohw..(t + 1) * ohw],
                        &mut cols[row..row + ohw],
                    );
                }
            }
        }
    })
}

/// The adjoint of [`im2col_batched`]: add the batched columns back into
/// `grad_input` (`[images, channels, h, w]`). Returns `false` (nothing
/// added) when the plane is too large for a gather table.
pub fn col2im_batched(
    g: &ConvGeometry,
    channels: usize,
    cols: &[f32],
    ld: usize,
    images: usize,
    grad_input: &mut [f32],
) -> bool {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    #[cfg(target_arch = "x86_64")]
    if isa() == Isa::Avx512
        && with_inverse_table(g, |inv| {
            for img in 0..images {
                for c in 0..channels {
                    let plane = &mut grad_input[(img * channels + c) * hw..][..hw];
                    let rows = &cols[c * kk * ld + img * ohw..];
                    // SAFETY: AVX-512F was detected; tap `t`'s row starts
                    // `t * ld` floats into `rows` and holds `ohw` floats
                    // (`ld >= images * ohw`); `inv` holds `kk * hw` entries.
                    unsafe { col2im_gather_avx512(rows, ld, ohw, inv, kk, plane) };
                }
            }
        })
    {
        return true;
    }
    with_table(g, 0, g.oh, |table| {
        for img in 0..images {
            for c in 0..channels {
                let plane = &mut grad_input[(img * channels + c) * hw..][..hw];
                for t in 0..kk {
                    let row = &cols[(c * kk + t) * ld + img * ohw..][..ohw];
                    for (&v, &i) in row.iter().zip(&table[t * ohw..(t + 1) * ohw]) {
                        if let Some(d) = plane.get_mut(i as usize) {
                            *d += v;
                        }
                    }
                }
            }
        }
    })
}

/// Most entries of an inverse gather table (64 KiB).
const INVERSE_TABLE: usize = 16384;

thread_local! {
    /// The last inverse table built on this thread (see [`with_inverse_table`]).
    static INVERSE_CACHE: std::cell::RefCell<(Option<TableKey>, Vec<u32>)> =
        const { std::cell::RefCell::new((None, Vec::new())) };
}

/// Run `f` with the inverse of the whole-plane gather table: entry
/// `t * h*w + i` is the output position whose tap `t` reads input `i`, or
/// `oh*ow` (none). A tap reads each input at most once (the map from
/// outputs is injective for any stride and dilation), so col2im becomes a
/// gather per tap instead of a scatter. Returns `false` when too large.
fn with_inverse_table(g: &ConvGeometry, f: impl FnOnce(&[u32])) -> bool {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    if kk.saturating_mul(hw) > INVERSE_TABLE || ohw >= u32::MAX as usize {
        return false;
    }
    let mut forward = Vec::new();
    INVERSE_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let key = table_key(g, 0, g.oh);
        if c.0 != Some(key) {
            c.0 = None;
            if !fill_table(g, 0, g.oh, &mut forward) {
                return false;
            }
            c.1.clear();
            c.1.resize(kk * hw, ohw as u32);
            for t in 0..kk {
                for (o, &i) in forward[t * ohw..(t + 1) * ohw].iter().enumerate() {
                    if (i as usize) < hw {
                        c.1[t * hw + i as usize] = o as u32;
                    }
                }
            }
            c.0 = Some(key);
        }
        f(&c.1);
        true
    })
}

/// One plane of [`col2im_batched`] by gathers: for 16 inputs at a time, the
/// sum over taps of `rows[t * ld + inv[t * hw + i]]`, added to `plane`.
/// The scalar scatter it replaces cost an eighth of a digits training run.
///
/// # Safety
/// The CPU has AVX-512F; `rows` holds `(kk - 1) * ld + ohw` floats;
/// `inv.len() >= kk * plane.len()` with entries `<= ohw`; `ohw <= i32::MAX`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn col2im_gather_avx512(
    rows: &[f32],
    ld: usize,
    ohw: usize,
    inv: &[u32],
    kk: usize,
    plane: &mut [f32],
) {
    use std::arch::x86_64::*;
    let hw = plane.len();
    let limit = _mm512_set1_epi32(ohw as i32);
    let mut i = 0;
    while i < hw {
        let lanes = (hw - i).min(16);
        let live: __mmask16 = first_lanes(lanes);
        // SAFETY: lanes past `hw` are masked off throughout; gathered lanes
        // have indices below `ohw`, inside tap `t`'s row of `rows`.
        unsafe {
            let mut acc = _mm512_maskz_loadu_ps(live, plane.as_ptr().add(i));
            for t in 0..kk {
                let idx = _mm512_maskz_loadu_epi32(live, inv.as_ptr().add(t * hw + i).cast());
                let hit = _mm512_mask_cmplt_epu32_mask(live, idx, limit);
                let row = rows.as_ptr().add(t * ld);
                let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), hit, idx, row);
                acc = _mm512_add_ps(acc, v);
            }
            _mm512_mask_storeu_ps(plane.as_mut_ptr().add(i), live, acc);
        }
        i += lanes;
    }
}
