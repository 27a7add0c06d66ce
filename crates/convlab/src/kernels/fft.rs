//! 2-D real FFTs for convolutions with large kernels (image_31x31: 961 taps
//! per output). By the convolution theorem a cross-correlation is a
//! pointwise product of spectra, `corr(x, w) = IFFT(X · conj(W))`, so the
//! cost per plane is a few `P Q log(P Q)` transforms instead of
//! `oh ow kh kw` multiply-adds (the approach of scipy's `fftconvolve`;
//! Mathieu, Henaff & LeCun, "Fast Training of Convolutional Networks
//! through FFTs", ICLR 2014, for the three passes of a layer).
//!
//! A plane is embedded at an offset in a zero `P x Q` buffer with `P, Q`
//! 5-smooth (fast mixed-radix sizes) and large enough that the circular
//! wrap-around never reaches a kept output. Rows go through a real FFT
//! (`realfft`, `Q/2 + 1` complex values each), columns through complex FFTs
//! (`rustfft`); spectra are stored column-major, `[Q/2 + 1][P]`, so both
//! passes run on contiguous slices.

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// The smallest `m >= n` with no prime factor above 5, or `usize::MAX`
/// when no such `m` fits in `usize`.
///
/// Walks the `3^b 5^c` products and doubles each up to `n`: a few hundred
/// steps for any `n`. Counting up from `n` instead took minutes when a huge
/// padding made `n` about 2^41 (5-smooth numbers are sparse up there).
pub fn fft_len(n: usize) -> usize {
    let n = n.max(1);
    let mut best = usize::MAX;
    let mut p5 = 1usize;
    loop {
        let mut p35 = p5;
        loop {
            let mut m = p35;
            while m < n {
                match m.checked_mul(2) {
                    Some(v) => m = v,
                    None => break,
                }
            }
            if m >= n {
                best = best.min(m);
            }
            match p35.checked_mul(3) {
                Some(v) if p35 < n => p35 = v,
                _ => break,
            }
        }
        match p5.checked_mul(5) {
            Some(v) if p5 < n => p5 = v,
            _ => return best,
        }
    }
}

/// Planned transforms of one `P x Q` size.
pub struct Fft2 {
    pub p: usize,
    pub q: usize,
    /// `Q/2 + 1`: complex values per row spectrum.
    pub qc: usize,
    r2c: Arc<dyn RealToComplex<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    col_fwd: Arc<dyn Fft<f32>>,
    col_inv: Arc<dyn Fft<f32>>,
}

impl Fft2 {
    /// Plan the transforms of a `p x q` buffer.
    pub fn new(p: usize, q: usize) -> Fft2 {
        let mut rp = RealFftPlanner::<f32>::new();
        let mut cp = FftPlanner::<f32>::new();
        Fft2 {
            p,
            q,
            qc: q / 2 + 1,
            r2c: rp.plan_fft_forward(q),
            c2r: rp.plan_fft_inverse(q),
            col_fwd: cp.plan_fft_forward(p),
            col_inv: cp.plan_fft_inverse(p),
        }
    }

    /// Complex values of one spectrum.
    pub fn spectrum_len(&self) -> usize {
        self.qc * self.p
    }

    /// The spectrum of the `[sh, sw]` plane `src` placed with its corner at
    /// `(r0, c0)` in a zero `P x Q` buffer (`r0 + sh <= P`, `c0 + sw <= Q`).
    /// Rows, then columns, are split over rayon.
    pub fn forward(
        &self,
        src: &[f32],
        (sh, sw): (usize, usize),
        (r0, c0): (usize, usize),
        spec: &mut [Complex<f32>],
    ) {
        debug_assert!(r0 + sh <= self.p && c0 + sw <= self.q);
        debug_assert_eq!(spec.len(), self.spectrum_len());
        let (p, q, qc) = (self.p, self.q, self.qc);
        let zero = Complex::new(0.0, 0.0);
        let mut rows = vec![zero; sh * qc];
        rows.par_chunks_mut(qc).enumerate().for_each_init(
            || (vec![0.0f32; q], vec![zero; self.r2c.get_scratch_len()]),
            |(real, scratch), (r, out)| {
                real.fill(0.0);
                real[c0..c0 + sw].copy_from_slice(&src[r * sw..][..sw]);
                // Lengths match the plan, so the transform cannot fail.
                let _ = self.r2c.process_with_scratch(real, out, scratch);
            },
        );
        let rows = &rows;
        spec.par_chunks_mut(p).enumerate().for_each_init(
            || vec![zero; self.col_fwd.get_inplace_scratch_len()],
            |scratch, (j, col)| {
                col.fill(zero);
                for r in 0..sh {
                    col[r0 + r] = rows[r * qc + j];
                }
                self.col_fwd.process_with_scratch(col, scratch);
            },
        );
    }

    /// Inverse of [`Fft2::forward`] (consuming `spec`), scaled by
    /// `1 / (P Q)`: rows `r0 .. r0 + dh`, columns `c0 .. c0 + dw` are added
    /// to the `[dh, dw]` plane `dst`.
    pub fn inverse_add(
        &self,
        spec: &mut [Complex<f32>],
        (r0, c0): (usize, usize),
        (dh, dw): (usize, usize),
        dst: &mut [f32],
    ) {
        debug_assert!(r0 + dh <= self.p && c0 + dw <= self.q);
        let (p, q, qc) = (self.p, self.q, self.qc);
        let zero = Complex::new(0.0, 0.0);
        spec.par_chunks_mut(p).for_each_init(
            || vec![zero; self.col_inv.get_inplace_scratch_len()],
            |scratch, col| self.col_inv.process_with_scratch(col, scratch),
        );
        let spec = &*spec;
        let scale = 1.0 / (p as f32 * q as f32);
        dst[..dh * dw].par_chunks_mut(dw).enumerate().for_each_init(
            || {
                (
                    vec![zero; qc],
                    vec![0.0f32; q],
                    vec![zero; self.c2r.get_scratch_len()],
                )
            },
            |(row, real, scratch), (r, d)| {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = spec[j * p + r0 + r];
                }
                // The spectrum of a real signal: the imaginary parts of the
                // DC (and, for even Q, Nyquist) terms are rounding noise.
                row[0].im = 0.0;
                if q % 2 == 0 {
                    row[qc - 1].im = 0.0;
                }
                let _ = self.c2r.process_with_scratch(row, real, scratch);
                for (d, v) in d.iter_mut().zip(&real[c0..c0 + dw]) {
                    *d += v * scale;
                }
            },
        );
    }
}

/// `acc += a * b` (or `a * conj(b)`), elementwise over spectra.
pub fn mul_acc(acc: &mut [Complex<f32>], a: &[Complex<f32>], b: &[Complex<f32>], conj_b: bool) {
    if conj_b {
        for ((o, x), y) in acc.iter_mut().zip(a).zip(b) {
            *o += x * y.conj();
        }
    } else {
        for ((o, x), y) in acc.iter_mut().zip(a).zip(b) {
            *o += x * y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_5_smooth() {
        assert_eq!(fft_len(542), 576);
        assert_eq!(fft_len(7), 8);
        assert_eq!(fft_len(1), 1);
        assert_eq!(fft_len(31), 32);
        // Against counting up, and far from the small sizes.
        for n in 0..5000usize {
            let slow = (n.max(1)..)
                .find(|&m| {
                    let mut r = m;
                    for p in [2, 3, 5] {
                        while r % p == 0 {
                            r /= p;
                        }
                    }
                    r == 1
                })
                .unwrap();
            assert_eq!(fft_len(n), slow, "n {n}");
        }
        assert_eq!(fft_len((1 << 41) + 4), 2_201_506_283_520);
        assert_eq!(fft_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn round_trip() {
        let f = Fft2::new(12, 10);
        let src: Vec<f32> = (0..6 * 7).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut spec = vec![Complex::new(0.0, 0.0); f.spectrum_len()];
        f.forward(&src, (6, 7), (2, 3), &mut spec);
        let mut back = vec![0.0; 6 * 7];
        f.inverse_add(&mut spec, (2, 3), (6, 7), &mut back);
        for (a, b) in src.iter().zip(&back) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
    }
}
