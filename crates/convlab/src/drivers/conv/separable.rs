//! Separable filters ([`crate::kernels::separable`]): layers where every
//! output plane reads one input plane (single-channel images, depthwise)
//! and every filter is an outer product `col * row^T` run as two 1-D
//! passes. The one algorithm that applies by the weight's values, not only
//! its shape: a filter that is not rank one (within float rounding) cannot
//! take it.
//!
//! The forward pass and, at stride 1, the input gradient (the forward of
//! the flipped filters over grad_output, themselves separable). The
//! weight gradient of a separable filter is a general `kh x kw` matrix
//! and takes another algorithm.

use super::ConvPass;
use crate::error::{Error, Result};
use crate::kernels::separable::{col_pass, input_rows, line_len, row_pass};
use crate::memory;
use crate::parallel;
use crate::shape::ConvGeometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Largest deviation from the outer product, relative to the filter's
/// largest tap, that still counts as rank one: a few float roundings, so
/// the two passes agree with the direct sum to about 1e-6.
const RANK_ONE_TOL: f64 = 1e-6;

/// Row-pass floats a task aims to keep (256 KiB, in L2): its band of
/// output rows reads the row pass of `(rows - 1) * sh + (kh - 1) * dh + 1`
/// input rows.
const BAND_FLOATS: usize = 1 << 16;

/// Each output channel's filter as `col` (`kh` taps) times `row` (`kw`).
#[derive(Clone, Debug, PartialEq)]
struct Factors {
    /// `[c_out][kh]`.
    pub col: Vec<f32>,
    /// `[c_out][kw]`.
    pub row: Vec<f32>,
}

impl Factors {
    /// The factors of the filters rotated by 180 degrees (reversed taps).
    pub fn flipped(&self, kh: usize, kw: usize) -> Factors {
        let rev = |v: &[f32], k: usize| -> Vec<f32> {
            v.chunks_exact(k)
                .flat_map(|c| c.iter().rev().copied())
                .collect()
        };
        Factors {
            col: rev(&self.col, kh),
            row: rev(&self.row, kw),
        }
    }
}

/// The factors of one `kh x kw` filter, or `None` when it is not rank one
/// or holds a non-finite tap.
fn rank_one(w: &[f32], kh: usize, kw: usize) -> Option<(Vec<f32>, Vec<f32>)> {
    debug_assert_eq!(w.len(), kh * kw);
    if w.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Pivot on the largest tap: its row and column carry the factors.
    let (at, &big) = w
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
    if big == 0.0 {
        return Some((vec![0.0; kh], vec![0.0; kw]));
    }
    let (p, q) = (at / kw, at % kw);
    let col: Vec<f32> = (0..kh).map(|i| w[i * kw + q]).collect();
    let row: Vec<f32> = (0..kw)
        .map(|j| (w[p * kw + j] as f64 / big as f64) as f32)
        .collect();
    let tol = RANK_ONE_TOL * big.abs() as f64;
    let fits = (0..kh).all(|i| {
        (0..kw).all(|j| (w[i * kw + j] as f64 - col[i] as f64 * row[j] as f64).abs() <= tol)
    });
    fits.then_some((col, row))
}

/// Whether the separable passes compute pass `pass` of `g` with this
/// weight: one input and one output plane per group, a kernel of more than
/// one tap each way, every filter rank one; the input gradient at stride 1
/// with padding within the dilated kernel.
pub(super) fn check(
    g: &ConvGeometry,
    pass: ConvPass,
    weight: Option<&[f32]>,
) -> std::result::Result<(), &'static str> {
    if pass == ConvPass::WeightGrad {
        return Err("has no weight gradient");
    }
    if g.cin_g() != 1 || g.cout_g() != 1 {
        return Err("needs one input and one output channel per group");
    }
    if g.kh < 2 || g.kw < 2 {
        return Err("needs a kernel of two or more taps each way");
    }
    if pass == ConvPass::InputGrad && super::transposed(g).is_none() {
        return Err("needs stride 1 and padding within the dilated kernel for the input gradient");
    }
    match weight {
        Some(w) if factors(g, w).is_some() => Ok(()),
        _ => Err("needs every filter to be an outer product (rank one)"),
    }
}

/// The factors of every filter of `weight`, or `None` when one is not
/// rank one.
fn factors(g: &ConvGeometry, weight: &[f32]) -> Option<Factors> {
    let taps = g.kh * g.kw;
    let mut f = Factors {
        col: Vec::with_capacity(g.c_out * g.kh),
        row: Vec::with_capacity(g.c_out * g.kw),
    };
    for filter in weight.chunks_exact(taps) {
        let (col, row) = rank_one(filter, g.kh, g.kw)?;
        f.col.extend(col);
        f.row.extend(row);
    }
    Some(f)
}

/// [`factors`] for a weight the dispatcher found separable.
fn factors_of(g: &ConvGeometry, weight: &[f32]) -> Result<Factors> {
    factors(g, weight)
        .ok_or_else(|| Error::param("conv2d", "algorithm", "separable: a filter is not rank one"))
}

/// `out` (every element written) = the convolution `g` of `input` with
/// `weight`, every filter of which is rank one.
pub(super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    passes(g, input, &factors_of(g, weight)?, out)
}

/// `grad_input` (every element written) = the input gradient of `g`: the
/// forward of its transposed convolution `t` with the flipped factors.
pub(super) fn backward_input(
    g: &ConvGeometry,
    t: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [MaybeUninit<f32>],
) -> Result<()> {
    let f = factors_of(g, weight)?.flipped(g.kh, g.kw);
    passes(t, grad_output, &f, grad_input)
}

/// `out` (`[n, c_out, oh, ow]`, every element written) = conv(input,
/// weight) for a weight of factors `f`, over tasks of (plane, band of
/// output rows).
fn passes(
    g: &ConvGeometry,
    input: &[f32],
    f: &Factors,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    const OP: &str = "conv2d";
    let span = (g.kh - 1) * g.dh + 1;
    // Bands of at least four kernel heights, so the rows the row pass
    // repeats between bands stay under a quarter (image_31x31-sized
    // kernels on a 1080p plane: 4 output rows per L2-sized band made the
    // row pass 8.5x its work).
    let fits = (BAND_FLOATS / g.ow).saturating_sub(span) / g.sh + 1;
    let band = fits.max(4 * (span - 1) / g.sh).clamp(1, g.oh);
    let t_len = ((band - 1) * g.sh + span).saturating_mul(g.ow);
    let l_len = line_len(g);
    let threads = parallel::threads_for(g.macs());
    memory::check_f32(OP, (t_len + l_len).saturating_mul(threads))?;
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let bands = g.oh.div_ceil(band);
    let run = |bufs: &mut (memory::Scratch, memory::Scratch),
               (i, o): (usize, &mut [MaybeUninit<f32>])| {
        let (plane, b) = (i / bands, i % bands);
        let co = plane % g.c_out;
        // One input plane per output plane: channel co of the same image.
        let x = &input[plane * plane_in..][..plane_in];
        let oy0 = b * band;
        let oy1 = (oy0 + band).min(g.oh);
        let rows = input_rows(g, (oy0, oy1));
        let (t, line) = (&mut bufs.0, &mut bufs.1);
        // SAFETY: x is the plane, t holds the band's rows of the row pass
        // (at most t_len floats), line holds line_len(g) floats; the
        // column pass reads only rows the row pass wrote.
        unsafe {
            row_pass(g, x, &f.row[co * g.kw..][..g.kw], rows, t, line);
            col_pass(g, t, rows.0, &f.col[co * g.kh..][..g.kh], (oy0, oy1), o);
        }
    };
    let take = || {
        (
            memory::Scratch::prechecked(t_len),
            memory::Scratch::prechecked(l_len),
        )
    };
    // Chunks of one band each, in (plane, band) order.
    let chunks = out
        .chunks_mut(plane_out)
        .flat_map(|p| p.chunks_mut(band * g.ow))
        .enumerate();
    if threads > 1 {
        let chunks: Vec<_> = chunks.collect();
        chunks.into_par_iter().for_each_init(take, run);
    } else {
        let mut bufs = take();
        chunks.for_each(|c| run(&mut bufs, c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::dispatch::{check as algo_check, choose, ConvAlgo, Values};
    use super::*;
    use crate::ops::Conv2dParams;

    fn geometry(input: [usize; 4], weight: [usize; 4], p: &Conv2dParams) -> ConvGeometry {
        crate::ops::conv2d::plan(&input, &weight, None, p)
            .unwrap()
            .geom
    }

    /// The two passes against the reference loops, forward and stride-1
    /// input gradient, on shapes with padding beyond the kernel, strides,
    /// dilation, partial vectors, and a plane of several bands over two
    /// threads (6.8 M multiply-adds).
    #[test]
    fn both_passes_equal_the_reference() {
        // (n, c, h, w, kh, kw, stride, dilation, padding)
        let cases: [[usize; 9]; 6] = [
            [1, 1, 5, 7, 3, 3, 1, 1, 1],
            [2, 3, 17, 33, 3, 2, 1, 2, 3],
            [1, 2, 9, 40, 5, 4, 2, 1, 0],
            [1, 1, 6, 5, 2, 7, 1, 1, 4],
            [2, 2, 31, 19, 4, 3, 3, 2, 2],
            [1, 2, 450, 301, 5, 5, 1, 1, 2],
        ];
        for [n, c, h, w, kh, kw, s, d, p] in cases {
            let params = Conv2dParams::new()
                .stride(s)
                .dilation(d)
                .padding(p)
                .groups(c);
            let g = geometry([n, c, h, w], [c, 1, kh, kw], &params);
            let wave = |i: usize, k: f32| ((i as f32 * k).sin() * 1.5).round() / 2.0 + 0.25;
            let weight: Vec<f32> = (0..c * kh * kw)
                .map(|i| wave(i / kw + 1, 0.7) * wave(i % kw + i / (kh * kw) * kw, 1.3))
                .collect();
            let x: Vec<f32> = (0..n * c * h * w).map(|i| wave(i, 0.37)).collect();
            assert_eq!(check(&g, ConvPass::Forward, Some(&weight)), Ok(()));
            let numel = n * c * g.oh * g.ow;
            let mut out = vec![MaybeUninit::new(f32::NAN); numel];
            forward(&g, &x, &weight, &mut out).unwrap();
            let mut want = vec![0.0; numel];
            crate::testing::conv::forward(&g, &x, &weight, &mut want);
            for (i, (o, r)) in out.iter().zip(&want).enumerate() {
                // SAFETY: initialised above (and written by forward).
                let o = unsafe { o.assume_init() };
                assert!(
                    (o - r).abs() <= 1e-5 * r.abs().max(1.0),
                    "{:?} out[{i}] {o} vs {r}",
                    (n, c, h, w, kh, kw, s, d, p)
                );
            }
            // Stride 1 and padding within the dilated kernel: a forward.
            let gin = check(&g, ConvPass::InputGrad, Some(&weight)).is_ok();
            assert_eq!(gin, s == 1 && p <= d * (kh.min(kw) - 1));
            if let (true, Some(t)) = (gin, super::super::transposed(&g)) {
                let gy: Vec<f32> = (0..numel).map(|i| wave(i, 0.91)).collect();
                let mut gx = vec![MaybeUninit::new(f32::NAN); n * c * h * w];
                backward_input(&g, &t, &weight, &gy, &mut gx).unwrap();
                let mut want = vec![0.0; n * c * h * w];
                crate::testing::conv::backward_input(&g, &weight, &gy, &mut want);
                for (i, (o, r)) in gx.iter().zip(&want).enumerate() {
                    // SAFETY: initialised above.
                    let o = unsafe { o.assume_init() };
                    assert!(
                        (o - r).abs() <= 1e-5 * r.abs().max(1.0),
                        "grad_input[{i}] {o} vs {r}"
                    );
                }
            }
        }
    }

    /// Chosen from 5x5 up (3x3 runs faster direct), only when every filter
    /// is rank one; applicable (forced) to any rank-one filters.
    #[test]
    fn chosen_from_5x5_and_only_for_rank_one_filters() {
        let geom = |k: usize| {
            geometry(
                [1, 2, 8, 8],
                [2, 1, k, k],
                &Conv2dParams::new().padding(k / 2).groups(2),
            )
        };
        let outer = |v: &[f32]| -> Vec<f32> {
            let one: Vec<f32> = v
                .iter()
                .flat_map(|a| v.iter().map(move |b| a * b))
                .collect();
            one.iter().chain(&one).copied().collect()
        };
        let (sobel, binomial) = (outer(&[1.0, 0.0, -1.0]), outer(&[1.0, 4.0, 6.0, 4.0, 1.0]));
        let mut laplace = sobel.clone();
        laplace[13] = -4.0;
        let pick = |k: usize, w: &[f32]| choose(&geom(k), ConvPass::Forward, &Values::of_weight(w));
        assert_eq!(pick(5, &binomial), ConvAlgo::Separable);
        assert_eq!(pick(3, &sobel), ConvAlgo::Direct);
        assert_eq!(pick(3, &laplace), ConvAlgo::Direct);
        let forced = |k: usize, w: &[f32], pass| {
            algo_check(ConvAlgo::Separable, &geom(k), pass, &Values::of_weight(w))
        };
        assert_eq!(forced(3, &sobel, ConvPass::Forward), Ok(()));
        assert_eq!(forced(3, &sobel, ConvPass::InputGrad), Ok(()));
        assert!(forced(3, &laplace, ConvPass::Forward).is_err());
        assert!(forced(3, &sobel, ConvPass::WeightGrad).is_err());
    }

    #[test]
    fn outer_products_factor_and_others_do_not() {
        let (col, row) = ([1.0f32, 2.0, 1.0], [-1.0f32, 0.0, 1.0, 0.5]);
        let w: Vec<f32> = col
            .iter()
            .flat_map(|c| row.iter().map(move |r| c * r))
            .collect();
        let (fc, fr) = rank_one(&w, 3, 4).expect("an outer product is rank one");
        for i in 0..3 {
            for j in 0..4 {
                assert!((fc[i] * fr[j] - w[i * 4 + j]).abs() < 1e-6);
            }
        }
        let mut bumped = w.clone();
        bumped[5] += 1e-3;
        assert_eq!(rank_one(&bumped, 3, 4), None);
        let mut nan = w;
        nan[0] = f32::NAN;
        assert_eq!(rank_one(&nan, 3, 4), None);
        assert_eq!(
            rank_one(&[0.0; 6], 2, 3),
            Some((vec![0.0; 2], vec![0.0; 3]))
        );
    }
}
