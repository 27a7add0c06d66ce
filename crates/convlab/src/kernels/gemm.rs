//! Matrix multiply on the `gemm` crate (runtime AVX-512 / AVX2+FMA / scalar
//! dispatch), with row-major or transposed operands.

/// How an operand is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The `[rows, cols]` matrix is stored row-major.
    RowMajor,
    /// The `[rows, cols]` matrix is stored as its transpose (`[cols, rows]` row-major).
    Transposed,
}

/// Below this many multiply-adds a single thread is faster than waking rayon.
const PARALLEL_MIN_FLOPS: usize = 1 << 20;

/// `c[m, n] (+)= a[m, k] @ b[k, n]`; `accumulate` adds to `c` instead of
/// overwriting it. Slices must hold exactly the matrices described.
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_layout: Layout,
    b: &[f32],
    b_layout: Layout,
    c: &mut [f32],
    accumulate: bool,
) {
    debug_assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = match a_layout {
        Layout::RowMajor => (k as isize, 1),
        Layout::Transposed => (1, m as isize),
    };
    let (b_rs, b_cs) = match b_layout {
        Layout::RowMajor => (n as isize, 1),
        Layout::Transposed => (1, k as isize),
    };
    let work = m.saturating_mul(n).saturating_mul(k);
    let threads = rayon::current_num_threads();
    let par = if work >= PARALLEL_MIN_FLOPS && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slices hold m*k, k*n and m*n values (asserted above in debug,
    // guaranteed by the callers' shape checks), and the strides describe
    // exactly those row-major or transposed matrices, so every access gemm
    // makes is in bounds; `c` does not alias `a` or `b` (&mut borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
        c
    }

    fn transpose(r: usize, c: usize, x: &[f32]) -> Vec<f32> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = x[i * c + j];
            }
        }
        t
    }

    #[test]
    fn matches_naive_in_every_layout() {
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 65, 63), (2, 0, 3)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32) - 5.0).collect();
            let want = naive(m, k, n, &a, &b);
            let at = transpose(m, k, &a);
            let bt = transpose(k, n, &b);
            for (aa, al) in [(&a, Layout::RowMajor), (&at, Layout::Transposed)] {
                for (bb, bl) in [(&b, Layout::RowMajor), (&bt, Layout::Transposed)] {
                    let mut c = vec![1.0; m * n];
                    sgemm(m, k, n, aa, al, bb, bl, &mut c, false);
                    assert_eq!(c, want, "{m}x{k}x{n} {al:?} {bl:?}");
                    let mut c2 = vec![1.0; m * n];
                    sgemm(m, k, n, aa, al, bb, bl, &mut c2, true);
                    let want2: Vec<f32> = want.iter().map(|v| v + 1.0).collect();
                    assert_eq!(c2, want2);
                }
            }
        }
    }
}
