//! FFT convolution ([`crate::kernels::fft`]) of all three passes: spectra
//! of every input, weight and grad_output plane involved, products summed
//! in the frequency domain in a fixed order, one inverse transform per
//! result plane.

use crate::error::Result;
use crate::kernels::fft::{fft_len, mul_acc, Fft2};
use crate::memory;
use crate::shape::ConvGeometry;
use rayon::prelude::*;
use realfft::num_complex::Complex;

/// Spectra (complex values) allowed in all: 8 Mi = the 64 MiB scratch cap.
const MAX_COMPLEX: usize = 8 << 20;

/// The FFT buffer: large enough that no kept output wraps around.
fn size(g: &ConvGeometry) -> (usize, usize) {
    (
        fft_len((g.oh + g.kh - 1).max(g.h + g.pt)),
        fft_len((g.ow + g.kw - 1).max(g.w + g.pl)),
    )
}

/// Spectra one pass holds at once for `g` (the largest of the three), not
/// counting one accumulator per thread (checked when they are made).
fn spectra(g: &ConvGeometry) -> Option<usize> {
    let (p, q) = size(g);
    let per = (q / 2 + 1).checked_mul(p)?;
    let planes = g.n * g.c_in + g.n * g.c_out + g.c_out * g.c_in;
    per.checked_mul(planes)
}

/// Whether FFTs should beat direct multiply-adds on `g`: a rough count
/// of FFT flops (`P Q log2(P Q)` per plane transformed, a complex
/// multiply-add per product element) times 4 against `g.macs()`. The
/// factor is calibrated on image_31x31 only (loaded box, 2 threads:
/// direct fwd 27.6 / bwd 52.1 ms -> FFT 2.95 / 3.87 ms, model ratio 3.3);
/// resnet, lenet and 3x3 image layers come out far on the direct side.
pub(super) fn pays(g: &ConvGeometry) -> bool {
    let (p, q) = size(g);
    let pq = (p * q) as f64;
    let planes = (g.n * g.c_in + g.c_in * g.c_out + g.n * g.c_out) as f64;
    let products = (g.n * g.c_in * g.c_out) as f64 * pq * 2.0;
    let cost = planes * pq * pq.log2() + products;
    cost * 4.0 < g.macs() as f64
}

/// Whether the FFT path computes `g` (any pass): stride 1, dilation 1, one
/// group, spectra under the cap.
pub(super) fn check(g: &ConvGeometry) -> std::result::Result<(), &'static str> {
    if (g.sh, g.sw, g.dh, g.dw) != (1, 1, 1, 1) {
        return Err("needs stride 1 and dilation 1");
    }
    if g.groups != 1 {
        return Err("needs one group");
    }
    if spectra(g).is_none_or(|s| s > MAX_COMPLEX) {
        return Err("needs spectra under its 64 MiB scratch cap");
    }
    Ok(())
}

/// Spectra of `planes` consecutive `[sh, sw]` planes of `src`, placed at `at`.
fn transform(
    f: &Fft2,
    src: &[f32],
    planes: usize,
    shape: (usize, usize),
    at: (usize, usize),
) -> Result<Vec<Complex<f32>>> {
    let len = f.spectrum_len();
    memory::check_f32("conv2d", planes.saturating_mul(len).saturating_mul(2))?;
    let mut out = vec![Complex::new(0.0, 0.0); planes * len];
    let plane = shape.0 * shape.1;
    for (i, spec) in out.chunks_exact_mut(len).enumerate() {
        f.forward(&src[i * plane..][..plane], shape, at, spec);
    }
    Ok(out)
}

/// For each result plane `i` of `dst` (`[dh, dw]` each): the inverse of
/// `sum_j a[ai(i, j)] * b[bi(i, j)]` (conjugating `b` when `conj`),
/// cropped at `at`, added to the plane. Each plane sums its terms in
/// order, whichever thread computes it.
fn products(
    f: &Fft2,
    dst: &mut [f32],
    (dh, dw): (usize, usize),
    at: (usize, usize),
    terms: usize,
    a: &[Complex<f32>],
    b: &[Complex<f32>],
    idx: impl Fn(usize, usize) -> (usize, usize) + Sync,
    conj: bool,
) -> Result<()> {
    let len = f.spectrum_len();
    let threads = crate::parallel::threads();
    memory::check_f32("conv2d", threads.saturating_mul(len).saturating_mul(2))?;
    dst.par_chunks_mut(dh * dw).enumerate().for_each_init(
        || vec![Complex::new(0.0, 0.0); len],
        |acc, (i, plane)| {
            acc.fill(Complex::new(0.0, 0.0));
            for j in 0..terms {
                let (ia, ib) = idx(i, j);
                mul_acc(acc, &a[ia * len..][..len], &b[ib * len..][..len], conj);
            }
            f.inverse_add(acc, at, (dh, dw), plane);
        },
    );
    Ok(())
}

/// `out` (zeroed) = the convolution `g` of `input` with `weight`.
pub(super) fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let (p, q) = size(g);
    let f = Fft2::new(p, q);
    let x = transform(&f, input, g.n * g.c_in, (g.h, g.w), (g.pt, g.pl))?;
    let w = transform(&f, weight, g.c_out * g.c_in, (g.kh, g.kw), (0, 0))?;
    let (cin, cout) = (g.c_in, g.c_out);
    // out[n, co] = sum_ci corr(x[n, ci], w[co, ci]).
    products(
        &f,
        out,
        (g.oh, g.ow),
        (0, 0),
        cin,
        &x,
        &w,
        |i, ci| ((i / cout) * cin + ci, (i % cout) * cin + ci),
        true,
    )
}

/// `grad_input` (zeroed) += the input gradient.
pub(super) fn backward_input(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) -> Result<()> {
    let (p, q) = size(g);
    let f = Fft2::new(p, q);
    let gy = transform(&f, grad_output, g.n * g.c_out, (g.oh, g.ow), (0, 0))?;
    let w = transform(&f, weight, g.c_out * g.c_in, (g.kh, g.kw), (0, 0))?;
    let (cin, cout) = (g.c_in, g.c_out);
    // grad_input[n, ci] = sum_co gy[n, co] (full convolution) w[co, ci].
    products(
        &f,
        grad_input,
        (g.h, g.w),
        (g.pt, g.pl),
        cout,
        &gy,
        &w,
        |i, co| ((i / cin) * cout + co, co * cin + i % cin),
        false,
    )
}

/// `grad_weight` (zeroed) += the weight gradient.
pub(super) fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
) -> Result<()> {
    let (p, q) = size(g);
    let f = Fft2::new(p, q);
    let x = transform(&f, input, g.n * g.c_in, (g.h, g.w), (g.pt, g.pl))?;
    let gy = transform(&f, grad_output, g.n * g.c_out, (g.oh, g.ow), (0, 0))?;
    let (cin, cout) = (g.c_in, g.c_out);
    // grad_weight[co, ci] = sum_n corr(x[n, ci], gy[n, co]).
    products(
        &f,
        grad_weight,
        (g.kh, g.kw),
        (0, 0),
        g.n,
        &x,
        &gy,
        |i, n| (n * cin + i % cin, n * cout + i / cin),
        true,
    )
}
