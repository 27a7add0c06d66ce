//! The input and weight gradients on flattened phase images: the input
//! gradient as flat GEMMs per input phase on zero-padded grad_output planes
//! ([`GradInputPlan`]), the weight gradient as a reduction over flat columns
//! ([`weight_grad_rows`]).

use super::super::simd::{dispatch_simd, Simd};
use super::super::ukernel::{self, Init, Tile};
use crate::shape::ConvGeometry;

/// One phase of the input gradient: input rows `sh*a + ry - pt` for `a` in
/// `rows`, columns `sw*b + rx - pl` for `b` in `cols`, fed by `taps`.
#[derive(Clone, Debug)]
pub struct GradPhase {
    pub ry: usize,
    pub rx: usize,
    /// `(ky, kx)` with `(ky*dh) % sh == ry` and `(kx*dw) % sw == rx`.
    pub taps: Vec<(usize, usize)>,
    pub rows: (usize, usize),
    pub cols: (usize, usize),
}

/// The input gradient as flat GEMMs on zero-padded grad_output planes
/// `gyp[a'][b'] = grad_output[a' - qh][b' - qw]` of `hg x wg` floats: phase
/// result `(a, b)` sums `w[co][ci][ky][kx] * gyp[co][a + qh - ky*dh/sh][b +
/// qw - kx*dw/sw]` over its taps.
#[derive(Clone, Debug)]
pub struct GradInputPlan {
    pub qh: usize,
    pub qw: usize,
    pub hg: usize,
    pub wg: usize,
    pub phases: Vec<GradPhase>,
}

impl GradInputPlan {
    /// The plan for `g`; phases without taps (their input positions get a
    /// zero gradient) are left out.
    pub fn new(g: &ConvGeometry) -> GradInputPlan {
        let (sh, sw, dh, dw) = (g.sh, g.sw, g.dh, g.dw);
        let qh = (g.kh - 1) * dh / sh;
        let qw = (g.kw - 1) * dw / sw;
        let mut phases = Vec::new();
        for ry in 0..sh {
            for rx in 0..sw {
                let mut taps = Vec::new();
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        if (ky * dh) % sh == ry && (kx * dw) % sw == rx {
                            taps.push((ky, kx));
                        }
                    }
                }
                let rows = (
                    g.pt.saturating_sub(ry).div_ceil(sh),
                    (g.h + g.pt).saturating_sub(ry).div_ceil(sh),
                );
                let cols = (
                    g.pl.saturating_sub(rx).div_ceil(sw),
                    (g.w + g.pl).saturating_sub(rx).div_ceil(sw),
                );
                if !taps.is_empty() && rows.0 < rows.1 && cols.0 < cols.1 {
                    phases.push(GradPhase {
                        ry,
                        rx,
                        taps,
                        rows,
                        cols,
                    });
                }
            }
        }
        let max_a = phases.iter().map(|p| p.rows.1).max().unwrap_or(0);
        let max_b = phases.iter().map(|p| p.cols.1).max().unwrap_or(0);
        // Two spare rows: the last flat row's dropped columns read on.
        GradInputPlan {
            qh,
            qw,
            hg: max_a + qh + 2,
            wg: max_b + qw,
            phases,
        }
    }

    /// Floats of one padded grad_output plane.
    pub fn plane(&self) -> usize {
        self.hg * self.wg
    }

    /// Tap offsets of `phase` for `cout_g` channels (`k = (co, tap)`), from
    /// the group's first padded plane, counted from flat row `rows.0`.
    pub fn offsets(&self, g: &ConvGeometry, phase: &GradPhase) -> Vec<usize> {
        let mut offs = Vec::with_capacity(g.cout_g() * phase.taps.len());
        for co in 0..g.cout_g() {
            for &(ky, kx) in &phase.taps {
                let dy = self.qh - ky * g.dh / g.sh;
                let dx = self.qw - kx * g.dw / g.sw;
                offs.push(co * self.plane() + (phase.rows.0 + dy) * self.wg + dx);
            }
        }
        offs
    }

    /// A of `phase` for group `grp`: `[cin_g, cout_g * taps]` rows.
    pub fn weights(
        &self,
        g: &ConvGeometry,
        phase: &GradPhase,
        grp: usize,
        weight: &[f32],
    ) -> Vec<f32> {
        let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.kh * g.kw);
        let t = phase.taps.len();
        let mut a = vec![0.0; cin_g * cout_g * t];
        for ci in 0..cin_g {
            for co in 0..cout_g {
                let w = &weight[((grp * cout_g + co) * cin_g + ci) * kk..][..kk];
                for (j, &(ky, kx)) in phase.taps.iter().enumerate() {
                    a[(ci * cout_g + co) * t + j] = w[ky * g.kw + kx];
                }
            }
        }
        a
    }
}

/// Copy one `[oh, ow]` grad_output plane into its zero-padded `[hg, wg]`
/// plane.
pub fn pack_grad_output(g: &ConvGeometry, plan: &GradInputPlan, src: &[f32], dst: &mut [f32]) {
    let (oh, ow, wg) = (g.oh, g.ow, plan.wg);
    let keep = ow.min(wg.saturating_sub(plan.qw));
    for (a, row) in dst.chunks_exact_mut(wg).enumerate() {
        match a.checked_sub(plan.qh).filter(|&y| y < oh) {
            Some(y) => {
                row[..plan.qw].fill(0.0);
                row[plan.qw..plan.qw + keep].copy_from_slice(&src[y * ow..][..keep]);
                row[plan.qw + keep..].fill(0.0);
            }
            None => row.fill(0.0),
        }
    }
}

/// Transpose one group's grad_output planes (`[cout_g, oh, ow]`, planes
/// `oh*ow` apart) into flat rows `dst[p][co]` (`ld` floats each, `p = oy *
/// wq + ox`), zero at dropped columns and past `cout_g`.
pub fn pack_grad_output_rows(
    cout_g: usize,
    oh: usize,
    ow: usize,
    wq: usize,
    src: &[f32],
    ld: usize,
    dst: &mut [f32],
) {
    assert!(src.len() >= cout_g * oh * ow && dst.len() >= oh * wq * ld);
    assert!(ow <= wq && cout_g <= ld);
    // SAFETY: the sizes asserted above are all the body reads and writes.
    unsafe { grad_output_rows(cout_g, oh, ow, wq, src, ld, dst) }
}

/// [`pack_grad_output_rows`] in `LANES x LANES` block transposes: a
/// block of `LANES` columns of `LANES` channels becomes `LANES` row
/// pieces. Partial blocks (a row's last columns, the last channels) read
/// their rows through copies and store only their lanes. The scalar
/// transpose this replaces (one float stored per channel and column) was
/// 8 % of resnet_3x3_s2_128's backward; in-process interleaved A/Bs on
/// Zen 4, best of 30-40: the stem's backward 25.2 -> 22.8 ms on one
/// thread and 13.6 -> 11.7 on two, bottleneck_1x1's 9.45 -> 8.85 and 4.74
/// -> 4.36, resnet_3x3_s2_128's 11.1 -> 10.4-10.6 on one thread.
#[inline(always)]
unsafe fn grad_output_rows_body<S: Simd>(
    cout_g: usize,
    oh: usize,
    ow: usize,
    wq: usize,
    src: &[f32],
    ld: usize,
    dst: &mut [f32],
) {
    let l = S::LANES;
    let plane = oh * ow;
    let zero = [0.0f32; 16];
    let mut edge = [[0.0f32; 16]; 16];
    let mut block = [0.0f32; 256];
    // SAFETY (whole body): reads stay in the `cout_g` planes of `src` (row
    // pieces of `l` floats only where `l` columns remain; else `edge`);
    // writes stay in the `oh * wq` rows of `dst`, `m <= ld - co0` lanes
    // each (the caller's sizes).
    unsafe {
        for oy in 0..oh {
            let rows = &mut dst[oy * wq * ld..][..wq * ld];
            rows[ow * ld..].fill(0.0);
            let mut ox0 = 0;
            while ox0 < ow {
                let n = l.min(ow - ox0);
                let mut co0 = 0;
                while co0 < cout_g {
                    let m = l.min(cout_g - co0);
                    let mut ptrs = [zero.as_ptr(); 16];
                    for (i, p) in ptrs.iter_mut().enumerate().take(m) {
                        let at = src.as_ptr().add((co0 + i) * plane + oy * ow + ox0);
                        *p = if n == l {
                            at
                        } else {
                            std::ptr::copy_nonoverlapping(at, edge[i].as_mut_ptr(), n);
                            edge[i].as_ptr()
                        };
                    }
                    S::transpose(&ptrs[..l], block.as_mut_ptr());
                    for i in 0..n {
                        let v = S::load(block.as_ptr().add(i * l));
                        S::store_n(rows.as_mut_ptr().add((ox0 + i) * ld + co0), v, m);
                    }
                    co0 += m;
                }
                if ld > cout_g {
                    for i in 0..n {
                        rows[(ox0 + i) * ld + cout_g..][..ld - cout_g].fill(0.0);
                    }
                }
                ox0 += n;
            }
        }
    }
}

dispatch_simd! {
    /// See [`grad_output_rows_body`].
    ///
    /// # Safety
    /// `src` holds `cout_g` planes of `oh * ow` floats, `dst` `oh * wq`
    /// rows of `ld` floats; `ow <= wq`, `cout_g <= ld`.
    unsafe fn grad_output_rows(
        cout_g: usize,
        oh: usize,
        ow: usize,
        wq: usize,
        src: &[f32],
        ld: usize,
        dst: &mut [f32],
    ) => grad_output_rows_body
}

/// Weight gradient of one group over the `np` flat columns of one image:
/// `acc[k][co] += sum_p X[offs[k] + p] * gy[p][co]` (`acc` rows `ld` apart,
/// `ld` a multiple of the vector width covering `cout_g`), with `x` the
/// group's packed input (read one float at a time, never past column
/// `np`) and `gy` from [`pack_grad_output_rows`].
///
/// # Safety
/// Every `x[offs[k] + p]` (p < np) is readable.
pub unsafe fn weight_grad_rows(
    offs: &[usize],
    x: *const f32,
    gy: &[f32],
    ld: usize,
    np: usize,
    acc: &mut [f32],
) {
    debug_assert!(gy.len() >= np * ld);
    let (p0, p1) = (0, np);
    let menu = ukernel::menu();
    let lanes = menu.lanes;
    let vecs = ld / lanes;
    let k = offs.len();
    // Flat columns per pass: the gy rows of one pass stay in L2 while
    // every tap panel reads them.
    const PC: usize = 256;
    let table: Vec<usize> = (0..PC).map(|i| i * ld).collect();
    let mut pc0 = p0;
    while pc0 < p1 {
        let pc1 = (pc0 + PC).min(p1);
        let mut v0 = 0;
        while v0 < vecs {
            let nv = menu.max_nv.min(vecs - v0);
            let full = menu.max_mr(nv).min(6);
            let mut r0 = 0;
            while r0 < k {
                let mr = full.min(k - r0);
                let t = Tile {
                    k: pc1 - pc0,
                    // SAFETY: column pc0 of X (caller's contract).
                    a: unsafe { x.add(pc0) },
                    lda: 0,
                    a_off: offs[r0..].as_ptr(),
                    b: gy[pc0 * ld + v0 * lanes..].as_ptr(),
                    b_off: table.as_ptr(),
                    c: acc[r0 * ld + v0 * lanes..].as_mut_ptr(),
                    ldc: ld,
                    stream: false,
                    init: Init::Load,
                };
                // SAFETY: rows r0..r0+mr of X at columns pc0..pc1 and gy
                // rows pc0..pc1 are readable (caller's contract); acc has
                // k rows of ld floats.
                unsafe { ukernel::run(mr, nv, &t) };
                r0 += mr;
            }
            v0 += nv;
        }
        pc0 = pc1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block transposes against the definition, on shapes with partial
    /// blocks of columns and of channels, padded rows and dropped columns.
    #[test]
    fn grad_output_rows_match_the_definition() {
        for (cout_g, oh, ow, wq, ld) in [
            (21, 3, 19, 22, 32),
            (16, 2, 16, 16, 16),
            (5, 4, 7, 9, 8),
            (128, 2, 28, 29, 128),
            (1, 1, 1, 1, 16),
        ] {
            let src: Vec<f32> = (0..cout_g * oh * ow).map(|i| i as f32 + 1.0).collect();
            let mut dst = vec![f32::NAN; oh * wq * ld];
            pack_grad_output_rows(cout_g, oh, ow, wq, &src, ld, &mut dst);
            for oy in 0..oh {
                for ox in 0..wq {
                    for co in 0..ld {
                        let want = if ox < ow && co < cout_g {
                            src[co * oh * ow + oy * ow + ox]
                        } else {
                            0.0
                        };
                        let got = dst[(oy * wq + ox) * ld + co];
                        assert_eq!(
                            got, want,
                            "{cout_g} {oh} {ow} {wq} {ld} at ({oy}, {ox}, {co})"
                        );
                    }
                }
            }
        }
    }
}
