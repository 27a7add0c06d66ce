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

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A `[rows, cols]` matrix stored with `layout`, rows `ld` apart
    /// (`ld` = cols for a dense row-major matrix).
    pub fn new(data: &'a [f32], layout: Layout, ld: usize) -> MatRef<'a> {
        match layout {
            Layout::RowMajor => MatRef {
                data,
                rs: ld,
                cs: 1,
            },
            Layout::Transposed => MatRef {
                data,
                rs: 1,
                cs: ld,
            },
        }
    }
}

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
    let a = match a_layout {
        Layout::RowMajor => MatRef::new(a, a_layout, k),
        Layout::Transposed => MatRef::new(a, a_layout, m),
    };
    let b = match b_layout {
        Layout::RowMajor => MatRef::new(b, b_layout, n),
        Layout::Transposed => MatRef::new(b, b_layout, k),
    };
    sgemm_strided(m, k, n, a, b, c, n, accumulate);
}

/// `c[m, n] (+)= a[m, k] @ b[k, n]` on strided views; `c` is row-major with
/// rows `ldc` apart. Every element the views describe must be in bounds.
pub fn sgemm_strided(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    sgemm_strided_par(m, k, n, a, b, c, ldc, accumulate, true);
}

/// [`sgemm_strided`], on the calling thread only unless `allow_parallel`
/// (callers that already split the work over rayon pass `false`).
pub fn sgemm_strided_par(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    allow_parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(c.len() >= (m - 1) * ldc + n);
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    debug_assert!(a.data.len() > (m - 1) * a.rs + (k - 1) * a.cs);
    debug_assert!(b.data.len() > (k - 1) * b.rs + (n - 1) * b.cs);
    let work = m.saturating_mul(n).saturating_mul(k);
    let threads = crate::parallel::threads();
    let par = if allow_parallel && work >= crate::parallel::GEMM_SPLIT_MIN_FLOPS && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: callers guarantee (checked in debug builds above) that every
    // element the (rows, strides) views address lies inside its slice, so all
    // of gemm's reads and writes are in bounds; `c` cannot alias `a` or `b`
    // because it is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
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
