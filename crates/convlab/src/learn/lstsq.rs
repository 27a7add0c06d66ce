//! The kernel learning loss solved exactly: least squares on the Gram
//! matrix of the input's patches.
//!
//! With `A` the unfolded input (one row per output pixel: its window, plus a
//! 1 for the bias), the loss `|Aθ - y|²` is least at the solution of the
//! normal equations `AᵀA θ = Aᵀy`. `AᵀA` has one row and column per
//! kernel tap: 9 for a 3x3 kernel, however large the image. Its entries are
//! sums of products of two shifted copies of the input over a window, read
//! here from one table of running sums per shift, so building it costs
//! `(2kh - 1) kw` passes over the image, not one per pair of taps.
//!
//! The system is solved through the eigendecomposition of `AᵀA` (scaled to
//! a unit diagonal first, which makes the bias's column comparable to the
//! taps'): the condition number comes with it, and a singular system (a
//! constant image, fewer windows than taps) gets the least-squares solution
//! of least norm instead of a failure, as NumPy's `lstsq` gives.

use super::{check_problem, flip, KernelMode, LearnOptions};
use crate::error::{Error, Result};
use crate::memory;
use crate::ops;
use crate::tensor::Tensor;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Unknowns (taps plus bias) [`least_squares_kernel`] solves for at most:
/// a 32x32 kernel. The eigendecomposition costs about `4n³` flops (a
/// second here at this size) and the Gram matrix `8n²` bytes.
pub const MAX_UNKNOWNS: usize = 1025;

/// The least-squares kernel of a pair, from [`least_squares_kernel`].
#[derive(Clone, Debug, PartialEq)]
pub struct LeastSquares {
    /// The kernel, `[kh, kw]`.
    pub kernel: Tensor,
    /// The bias, when one was learned.
    pub bias: Option<f32>,
    /// The summed squared error of `kernel` (and `bias`) on the pair, as
    /// gradient descent measures it.
    pub loss: f32,
    /// `λmax / λmin` of the loss's Hessian `2AᵀA`: about how many plain
    /// gradient steps at the safe rate reduce the slowest error component
    /// e-fold. Infinite when the system is singular.
    pub condition_number: f64,
    /// The rank of `AᵀA` that the solve used (eigenvalues below
    /// `n · ε · λmax` of the scaled matrix count as zero).
    pub rank: usize,
    /// Unknowns solved for: `kh * kw`, plus 1 with a bias.
    pub unknowns: usize,
}

/// The kernel `w` (and bias `b`, with `opts.bias`) that minimises
/// `sum((corr2d(x, w) + b - y)^2)` — or, with [`KernelMode::Convolution`],
/// the true convolution's — solved exactly rather than by gradient descent.
/// Only `kernel_size`, `bias` and `mode` of `opts` are used.
///
/// ```
/// use convlab::learn::{least_squares_kernel, LearnOptions};
/// use convlab::{ops, seeded_rng, Tensor};
/// let x = Tensor::rand(&[40, 50], &mut seeded_rng(1))?;
/// let k = Tensor::from_rows(&[[0.5, -1.0, 0.25], [2.0, 0.0, -0.75], [1.0, 0.3, -2.0]])?;
/// let y = ops::corr2d(&x, &k)?;
/// let fit = least_squares_kernel(&x, &y, &LearnOptions::new(3))?;
/// assert!(fit.kernel.max_abs_diff(&k)? < 1e-4);
/// assert!(fit.condition_number > 1.0 && fit.rank == 9);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// As [`super::learn_kernel`] for the shapes and values of `x` and `y`;
/// more than [`MAX_UNKNOWNS`] unknowns; the memory limit.
pub fn least_squares_kernel(x: &Tensor, y: &Tensor, opts: &LearnOptions) -> Result<LeastSquares> {
    const OP: &str = "least_squares_kernel";
    let (oh, ow) = check_problem(OP, x, opts.kernel_size)?;
    super::check_target(OP, x, y, opts.kernel_size, (oh, ow))?;
    super::check_finite(OP, x, y)?;
    let (kh, kw) = (opts.kernel_size.h(), opts.kernel_size.w());
    let taps = kh * kw;
    let n = taps + usize::from(opts.bias);
    if n > MAX_UNKNOWNS {
        return Err(Error::param(
            OP,
            "kernel_size",
            format!(
                "{kh}x{kw}{} has {n} unknowns, more than the {MAX_UNKNOWNS} a least-squares solve takes; use gradient descent",
                if opts.bias { " with bias" } else { "" }
            ),
        ));
    }
    let [h, w] = x.dims2(OP)?;
    // Gram matrix and eigenvectors (f64), one table of running sums.
    memory::check_f32_total(
        OP,
        &[
            ("Gram matrix", 2 * n * n),
            ("eigenvectors", 2 * n * n),
            ("running sums", 2 * (h + 1) * (w + 1)),
        ],
    )?;
    let (gram, rhs) = normal_equations(x, y, (kh, kw), opts.bias);
    let (theta, condition_number, rank) = solve(gram, rhs);
    let mut kernel =
        Tensor::from_vec(theta[..taps].iter().map(|&v| v as f32).collect(), &[kh, kw])?;
    let bias = opts.bias.then(|| theta[taps] as f32);
    let loss = loss_of(x, y, &kernel, bias)?;
    if opts.mode == KernelMode::Convolution {
        kernel = flip(&kernel)?;
    }
    Ok(LeastSquares {
        kernel,
        bias,
        loss,
        condition_number,
        rank,
        unknowns: n,
    })
}

/// `sum((corr2d(x, k) + b - y)^2)`, in f64 over the f32 residuals.
fn loss_of(x: &Tensor, y: &Tensor, k: &Tensor, b: Option<f32>) -> Result<f32> {
    let out = ops::corr2d(x, k)?;
    let b = b.unwrap_or(0.0);
    let sum: f64 = out
        .data()
        .iter()
        .zip(y.data())
        .map(|(&o, &t)| {
            let r = f64::from(o + b - t);
            r * r
        })
        .sum();
    Ok(sum as f32)
}

/// `AᵀA` and `Aᵀy` for a `(kh, kw)` kernel on `x` (`y` is the target),
/// taps in row-major order, then the bias.
fn normal_equations(
    x: &Tensor,
    y: &Tensor,
    (kh, kw): (usize, usize),
    bias: bool,
) -> (DMatrix<f64>, DVector<f64>) {
    let [h, w] = [x.shape()[0], x.shape()[1]];
    let (oh, ow) = (h - kh + 1, w - kw + 1);
    let xd = x.data();
    let taps = kh * kw;
    let n = taps + usize::from(bias);
    let mut gram = DMatrix::<f64>::zeros(n, n);
    // Running sums `s[(r, c)]` of `x[r][c] * x[r + du][c + dv]` over rows
    // below r and columns left of c; a window's sum is four lookups.
    let stride = w + 1;
    let mut sums = vec![0.0f64; (h + 1) * stride];
    let window = |s: &[f64], (r0, c0): (usize, usize)| {
        s[(r0 + oh) * stride + c0 + ow] - s[r0 * stride + c0 + ow] - s[(r0 + oh) * stride + c0]
            + s[r0 * stride + c0]
    };
    for du in 0..kh {
        for dv in -(kw as isize - 1)..kw as isize {
            if du == 0 && dv < 0 {
                continue; // the lower triangle: the transposed shift
            }
            let product = |r: usize, c: usize| {
                let c2 = c as isize + dv;
                if r + du >= h || c2 < 0 || c2 >= w as isize {
                    return 0.0;
                }
                f64::from(xd[r * w + c]) * f64::from(xd[(r + du) * w + c2 as usize])
            };
            fill_running_sums(&mut sums, h, w, product);
            for u in 0..kh - du {
                for v in 0..kw {
                    let v2 = v as isize + dv;
                    if v2 < 0 || v2 >= kw as isize {
                        continue;
                    }
                    let (a, b) = (u * kw + v, (u + du) * kw + v2 as usize);
                    let g = window(&sums, (u, v));
                    gram[(a, b)] = g;
                    gram[(b, a)] = g;
                }
            }
        }
    }
    let mut rhs = DVector::<f64>::zeros(n);
    let yd = y.data();
    for u in 0..kh {
        for v in 0..kw {
            rhs[u * kw + v] = (0..oh)
                .map(|i| {
                    let xr = &xd[(i + u) * w + v..][..ow];
                    let yr = &yd[i * ow..][..ow];
                    xr.iter()
                        .zip(yr)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum::<f64>()
                })
                .sum();
        }
    }
    if bias {
        fill_running_sums(&mut sums, h, w, |r, c| f64::from(xd[r * w + c]));
        for u in 0..kh {
            for v in 0..kw {
                let g = window(&sums, (u, v));
                gram[(u * kw + v, taps)] = g;
                gram[(taps, u * kw + v)] = g;
            }
        }
        gram[(taps, taps)] = (oh * ow) as f64;
        rhs[taps] = yd.iter().map(|&v| f64::from(v)).sum();
    }
    (gram, rhs)
}

/// `sums[(r + 1) * (w + 1) + c + 1]` = the sum of `f` over rows `..=r` and
/// columns `..=c`; row 0 and column 0 are zeros.
fn fill_running_sums(sums: &mut [f64], h: usize, w: usize, f: impl Fn(usize, usize) -> f64) {
    let stride = w + 1;
    sums[..stride].fill(0.0);
    for r in 0..h {
        let mut row = 0.0;
        sums[(r + 1) * stride] = 0.0;
        for c in 0..w {
            row += f(r, c);
            sums[(r + 1) * stride + c + 1] = sums[r * stride + c + 1] + row;
        }
    }
}

/// The least-norm solution of `gram θ = rhs` (in the unit-diagonal
/// scaling), the condition number of `gram`, and the rank used.
fn solve(gram: DMatrix<f64>, rhs: DVector<f64>) -> (Vec<f64>, f64, usize) {
    let n = gram.nrows();
    // Condition number of the Hessian itself: what gradient descent sees.
    let plain = SymmetricEigen::new(gram.clone()).eigenvalues;
    let (lo, hi) = plain
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(l, h), &e| (l.min(e), h.max(e)));
    let condition_number = if lo > 0.0 && hi > 0.0 {
        hi / lo
    } else {
        f64::INFINITY
    };
    // A tap whose input window is all zeros has a zero column: it stays 0.
    let scale: Vec<f64> = (0..n)
        .map(|i| {
            let d = gram[(i, i)];
            if d > 0.0 {
                1.0 / d.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let scaled = DMatrix::from_fn(n, n, |i, j| gram[(i, j)] * scale[i] * scale[j]);
    let b = DVector::from_fn(n, |i, _| rhs[i] * scale[i]);
    let eig = SymmetricEigen::new(scaled);
    let top = eig.eigenvalues.iter().fold(0.0f64, |m, &e| m.max(e));
    let cutoff = top * n as f64 * f64::EPSILON;
    let mut z = DVector::<f64>::zeros(n);
    let mut rank = 0;
    for (k, &lambda) in eig.eigenvalues.iter().enumerate() {
        if lambda > cutoff {
            let v = eig.eigenvectors.column(k);
            z += v * (v.dot(&b) / lambda);
            rank += 1;
        }
    }
    let theta = (0..n).map(|i| z[i] * scale[i]).collect();
    let condition_number = if rank < n {
        f64::INFINITY
    } else {
        condition_number
    };
    (theta, condition_number, rank)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    /// `AᵀA` from the unfolded input, the definition.
    fn gram_by_definition(x: &Tensor, (kh, kw): (usize, usize), bias: bool) -> Vec<f64> {
        let [h, w] = x.dims2("t").unwrap();
        let (oh, ow) = (h - kh + 1, w - kw + 1);
        let n = kh * kw + usize::from(bias);
        let mut g = vec![0.0; n * n];
        for i in 0..oh {
            for j in 0..ow {
                let mut row: Vec<f64> = (0..kh * kw)
                    .map(|t| f64::from(x.data()[(i + t / kw) * w + j + t % kw]))
                    .collect();
                if bias {
                    row.push(1.0);
                }
                for a in 0..n {
                    for b in 0..n {
                        g[a * n + b] += row[a] * row[b];
                    }
                }
            }
        }
        g
    }

    #[test]
    fn gram_matrix_matches_its_definition() {
        let x = Tensor::uniform(&[7, 9], -1.0, 2.0, &mut seeded_rng(3)).unwrap();
        let y = Tensor::zeros(&[5, 6]).unwrap();
        for (k, bias) in [
            ((3, 4), true),
            ((3, 4), false),
            ((1, 1), true),
            ((7, 2), false),
        ] {
            let y = Tensor::zeros(&[7 - k.0 + 1, 9 - k.1 + 1]).unwrap();
            let (g, _) = normal_equations(&x, &y, k, bias);
            let want = gram_by_definition(&x, k, bias);
            let n = g.nrows();
            for a in 0..n {
                for b in 0..n {
                    let (got, want) = (g[(a, b)], want[a * n + b]);
                    assert!(
                        (got - want).abs() < 1e-9 * want.abs().max(1.0),
                        "{k:?} {a} {b}: {got} {want}"
                    );
                }
            }
        }
        drop(y);
    }

    #[test]
    fn a_singular_system_gets_the_least_norm_solution() {
        // A constant image: every window is the same, so only the sum of
        // the taps is determined; the least-norm kernel spreads it evenly.
        let x = Tensor::full(&[6, 6], 2.0).unwrap();
        let y = Tensor::full(&[5, 5], 8.0).unwrap();
        let fit = least_squares_kernel(&x, &y, &LearnOptions::new(2)).unwrap();
        assert_eq!(fit.rank, 1);
        assert!(fit.condition_number.is_infinite());
        for &v in fit.kernel.data() {
            assert!((v - 1.0).abs() < 1e-6, "{v}");
        }
        assert!(fit.loss < 1e-8, "{}", fit.loss);
        // All zeros: nothing is determined; the kernel is 0.
        let z = Tensor::zeros(&[4, 4]).unwrap();
        let fit = least_squares_kernel(
            &z,
            &Tensor::ones(&[3, 3]).unwrap(),
            &LearnOptions::new(2).bias(true),
        )
        .unwrap();
        assert_eq!(fit.kernel.data(), &[0.0; 4]);
        assert!((fit.bias.unwrap() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn convolution_mode_gives_the_flipped_kernel() {
        let x = Tensor::rand(&[12, 10], &mut seeded_rng(5)).unwrap();
        let k = Tensor::uniform(&[2, 3], -1.0, 1.0, &mut seeded_rng(6)).unwrap();
        let y = ops::convolve2d(&x, &k).unwrap();
        let opts = LearnOptions::new((2, 3)).mode(KernelMode::Convolution);
        let fit = least_squares_kernel(&x, &y, &opts).unwrap();
        assert!(fit.kernel.max_abs_diff(&k).unwrap() < 1e-4);
    }

    #[test]
    fn too_many_unknowns_is_an_error() {
        let x = Tensor::zeros(&[40, 40]).unwrap();
        let y = Tensor::zeros(&[8, 8]).unwrap();
        let e = least_squares_kernel(&x, &y, &LearnOptions::new(33)).unwrap_err();
        assert!(e.to_string().contains("1089 unknowns"), "{e}");
    }
}
