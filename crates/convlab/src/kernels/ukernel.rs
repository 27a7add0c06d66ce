//! The register-blocked multiply-add tile every GEMM-shaped kernel of
//! convlab runs on (implicit-GEMM convolution, Winograd's batched products,
//! weight gradients):
//!
//! ```text
//! C[r][j] (+)= sum_{k < K} A(k, r) * B(k, j)      r < MR, j < NV * LANES
//! ```
//!
//! `MR x NV` vectors of accumulators stay in registers for the whole `K`
//! loop; each step loads `NV` vectors of B's row `k` and broadcasts `MR`
//! values of A. B's rows are found through an offset table
//! (`B(k, j) = b[b_off[k] + j]`), which is what makes convolution an
//! *implicit* GEMM: row `k` of the virtual im2col matrix is the padded input
//! shifted by tap `k`, read in place.
//!
//! A is either packed (`A(k, r) = a[k * lda + r]`, weights laid out once
//! per call, `lda >= MR`) or read through per-row offsets (`A(k, r) =
//! a[a_off[r] + k]`, e.g. the input rows of a weight gradient).
//!
//! Shapes per ISA ([`Menu`]): 24 accumulators of 16 lanes on AVX-512
//! (6x4, 8x3, 12x2, 24x1 vectors), 12 of 8 lanes on AVX2 (6x2, 12x1), fewer
//! on portable code. Rows past `MR` reuse the same code with a smaller
//! `MR` (tails); columns are always whole vectors (callers pad).

use super::simd::{dispatch_simd, Simd};

/// How C's tile starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Init {
    /// From zero (C is overwritten).
    Zero,
    /// From C's current values (C += A B).
    Load,
    /// Row `r` from `bias[r]` (a pointer to at least `MR` floats).
    Bias(*const f32),
}

/// Operands of one tile. Raw pointers: the callers index virtual matrices
/// (shifted views of padded images) that no slice type describes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    /// Steps of the reduction.
    pub k: usize,
    /// A: packed `[k][lda]` (first `mr` of each row used) when `a_off` is
    /// null, else rows at `a + a_off[r]`.
    pub a: *const f32,
    pub lda: usize,
    pub a_off: *const usize,
    /// B row `k` starts at `b + b_off[k]`.
    pub b: *const f32,
    pub b_off: *const usize,
    /// C row `r` starts at `c + r * ldc`.
    pub c: *mut f32,
    pub ldc: usize,
    pub init: Init,
    /// Store C around the caches, for results no one reads soon (a large
    /// output written straight from the tile). Needs C and `ldc` aligned to
    /// whole vectors, and a [`super::simd::stream_fence`] before the
    /// results are handed on.
    pub stream: bool,
}

#[inline(always)]
unsafe fn tile_body<S: Simd, const MR: usize, const NV: usize, const PACKED: bool>(t: &Tile) {
    // SAFETY (whole body): the caller of `run` guarantees that every element
    // A(k, r), B(k, j) and C[r][j] addressed below is in bounds (r < MR,
    // j < NV * LANES, k < t.k) and that C does not alias A or B.
    unsafe {
        let mut acc = [[S::zero(); NV]; MR];
        match t.init {
            Init::Zero => {}
            Init::Load => {
                for (r, row) in acc.iter_mut().enumerate() {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = S::load(t.c.add(r * t.ldc + v * S::LANES));
                    }
                }
            }
            Init::Bias(bias) => {
                for (r, row) in acc.iter_mut().enumerate() {
                    let b = S::splat(*bias.add(r));
                    row.iter_mut().for_each(|x| *x = b);
                }
            }
        }
        let mut a_rows = [t.a; MR];
        if !PACKED {
            for (r, p) in a_rows.iter_mut().enumerate() {
                *p = t.a.add(*t.a_off.add(r));
            }
        }
        for k in 0..t.k {
            let row = t.b.add(*t.b_off.add(k));
            let mut bv = [S::zero(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = S::load(row.add(v * S::LANES));
            }
            for r in 0..MR {
                let a = if PACKED {
                    *t.a.add(k * t.lda + r)
                } else {
                    *a_rows[r].add(k)
                };
                let av = S::splat(a);
                for v in 0..NV {
                    acc[r][v] = S::fma(av, bv[v], acc[r][v]);
                }
            }
        }
        // One branch around whole loops: a test per store made
        // resnet_1x1_s2's forward (reductions of 64) 1.7x slower.
        if t.stream {
            for (r, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    S::stream(t.c.add(r * t.ldc + v * S::LANES), *x);
                }
            }
        } else {
            for (r, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    S::store(t.c.add(r * t.ldc + v * S::LANES), *x);
                }
            }
        }
    }
}

/// The tile shapes of one ISA: for `nv` vectors of columns, at most
/// `max_mr(nv)` rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Menu {
    /// Floats per vector.
    pub lanes: usize,
    /// The largest `nv` offered.
    pub max_nv: usize,
}

impl Menu {
    /// Rows of the full tile for `nv` vectors of columns.
    pub fn max_mr(&self, nv: usize) -> usize {
        match (self.lanes, nv) {
            (16, 1) => 24,
            (16, 2) => 12,
            (16, 3) => 8,
            (16, 4) => 6,
            (_, 1) => 12,
            _ => 6,
        }
    }
}

/// The tile menu of this CPU.
pub(crate) fn menu() -> Menu {
    match super::isa::isa() {
        super::isa::Isa::Avx512 => Menu {
            lanes: 16,
            max_nv: 4,
        },
        super::isa::Isa::Avx2Fma => Menu {
            lanes: 8,
            max_nv: 2,
        },
        super::isa::Isa::Scalar => Menu {
            lanes: 8,
            max_nv: 2,
        },
    }
}

macro_rules! by_mr {
    ($s:ty, $nv:literal, $packed:literal, $mr:expr, $t:expr, [$($m:literal)*]) => {
        match $mr {
            $($m => tile_body::<$s, $m, $nv, $packed>($t),)*
            _ => unreachable!("tile rows {} over the menu", $mr),
        }
    };
}

#[inline(always)]
unsafe fn run_body<S: Simd>(mr: usize, nv: usize, t: &Tile) {
    // SAFETY: forwarded from `run`'s contract; (mr, nv) is on the menu.
    unsafe {
        if t.a_off.is_null() {
            match nv {
                1 => {
                    by_mr!(S, 1, true, mr, t, [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24])
                }
                2 => by_mr!(S, 2, true, mr, t, [1 2 3 4 5 6 7 8 9 10 11 12]),
                3 => by_mr!(S, 3, true, mr, t, [1 2 3 4 5 6 7 8]),
                4 => by_mr!(S, 4, true, mr, t, [1 2 3 4 5 6]),
                _ => unreachable!("tile columns {nv} over the menu"),
            }
        } else {
            match nv {
                1 => by_mr!(S, 1, false, mr, t, [1 2 3 4 5 6]),
                2 => by_mr!(S, 2, false, mr, t, [1 2 3 4 5 6]),
                3 => by_mr!(S, 3, false, mr, t, [1 2 3 4 5 6]),
                4 => by_mr!(S, 4, false, mr, t, [1 2 3 4 5 6]),
                _ => unreachable!("tile columns {nv} over the menu"),
            }
        }
    }
}

dispatch_simd! {
    /// Run one `mr x nv`-vector tile (see the module docs).
    ///
    /// # Safety
    /// `nv <= menu().max_nv`, `1 <= mr <= menu().max_mr(nv)` (at most 6
    /// when `a_off` is not null); every A, B and C element the tile
    /// addresses is in bounds, and C overlaps neither A nor B.
    pub(crate) unsafe fn run(mr: usize, nv: usize, t: &Tile) => run_body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile shape on the menu against a plain loop, packed and
    /// through row offsets, from zero, from C and from a bias, stored
    /// through the caches and around them.
    #[test]
    fn tiles_match_plain_loops() {
        let m = menu();
        for nv in 1..=m.max_nv {
            let cols = nv * m.lanes;
            for packed in [true, false] {
                let max_mr = if packed {
                    m.max_mr(nv)
                } else {
                    6.min(m.max_mr(nv))
                };
                for mr in 1..=max_mr {
                    let k = 7;
                    // B: k rows of `cols`, 3 floats apart more than needed,
                    // visited in a scrambled order.
                    let ldb = cols + 3;
                    let b: Vec<f32> = (0..k * ldb)
                        .map(|i| ((i * 37 % 101) as f32) * 0.01 - 0.5)
                        .collect();
                    let order: Vec<usize> = (0..k).map(|i| (i * 3) % k).collect();
                    let b_off: Vec<usize> = order.iter().map(|&i| i * ldb).collect();
                    // A(k, r) both packed and as rows.
                    let av = |kk: usize, r: usize| ((kk * 13 + r * 7) % 17) as f32 * 0.1 - 0.8;
                    let a_packed: Vec<f32> = (0..k * mr).map(|i| av(i / mr, i % mr)).collect();
                    let a_rows: Vec<f32> = (0..mr * (k + 2))
                        .map(|i| av(i % (k + 2), i / (k + 2)))
                        .collect();
                    let a_off: Vec<usize> = (0..mr).map(|r| r * (k + 2)).collect();
                    let bias: Vec<f32> = (0..mr).map(|r| r as f32 * 0.25).collect();
                    let inits = [Init::Zero, Init::Load, Init::Bias(bias.as_ptr())];
                    for (init, stream) in inits.into_iter().flat_map(|i| [(i, false), (i, true)]) {
                        // Streaming stores need rows on vector boundaries.
                        let ldc = if stream { cols + m.lanes } else { cols + 1 };
                        let start: Vec<f32> = (0..mr * ldc).map(|i| (i % 5) as f32).collect();
                        let mut buf = vec![0.0f32; mr * ldc + 16];
                        let at = buf.as_ptr().align_offset(64);
                        let c = &mut buf[at..at + mr * ldc];
                        c.copy_from_slice(&start);
                        let t = Tile {
                            k,
                            a: if packed {
                                a_packed.as_ptr()
                            } else {
                                a_rows.as_ptr()
                            },
                            lda: mr,
                            a_off: if packed {
                                std::ptr::null()
                            } else {
                                a_off.as_ptr()
                            },
                            b: b.as_ptr(),
                            b_off: b_off.as_ptr(),
                            c: c.as_mut_ptr(),
                            ldc,
                            stream,
                            init,
                        };
                        // SAFETY: every index the tile addresses lies in the
                        // buffers above (mr rows, cols columns, k steps); C
                        // and ldc are whole vectors when streaming.
                        unsafe { run(mr, nv, &t) };
                        super::super::simd::stream_fence();
                        for r in 0..mr {
                            for j in 0..cols {
                                let mut want = match init {
                                    Init::Zero => 0.0f64,
                                    Init::Load => start[r * ldc + j] as f64,
                                    Init::Bias(_) => bias[r] as f64,
                                };
                                for kk in 0..k {
                                    want += av(kk, r) as f64 * b[b_off[kk] + j] as f64;
                                }
                                let got = c[r * ldc + j] as f64;
                                assert!((got - want).abs() < 1e-4, "mr {mr} nv {nv} packed {packed} {init:?} stream {stream} ({r},{j}): {got} vs {want}");
                            }
                            // The column past the tile is untouched.
                            assert_eq!(c[r * ldc + cols], start[r * ldc + cols]);
                        }
                    }
                }
            }
        }
    }
}
