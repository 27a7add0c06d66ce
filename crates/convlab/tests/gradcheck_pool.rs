//! Finite-difference gradient checks for every pooling / unfold backward,
//! over one, two and three spatial axes.
//!
//! For a random `g`, `L(x) = sum(f(x) * g)` has gradient `backward(g)`. Each
//! input element is nudged by `±eps` and `(L(x+) - L(x-)) / (x+ - x-)` (in
//! f64, from the f32 forward) is compared with the analytic gradient within
//! `1e-3 * max(1, |analytic|)`. These ops are piecewise linear, so the only
//! error is f32 rounding of the few outputs `x[i]` touches (~1e-7 each,
//! divided by `2 * eps`): 1e-3 leaves a wide margin yet catches a gradient
//! that is off by 1% (checked by mutating the backward by hand; 1e-2 did not).
//!
//! Shapes and parameters are drawn at random (seeded); configurations the
//! forward rejects are skipped, and each test asserts that enough were run.
//! Max pooling uses a shuffled ramp with spacing 0.1 so that `eps = 1e-2`
//! never changes which element wins a window.

use convlab::ops::pool::*;
use convlab::ops::{self, AvgPool2dParams, MaxPool2dParams, UnfoldParams};
use convlab::{seeded_rng, Rng64, Tensor};
use rand::seq::SliceRandom;
use rand::Rng;

const EPS: f32 = 1e-2;
const RTOL: f64 = 1e-3;

/// `sum(y * g)` in f64.
fn dot(y: &Tensor, g: &Tensor) -> f64 {
    y.data()
        .iter()
        .zip(g.data())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central differences of `x -> sum(forward(x) * g)` against `analytic`.
fn gradcheck(
    name: &str,
    x: &Tensor,
    g: &Tensor,
    analytic: &Tensor,
    forward: impl Fn(&Tensor) -> Tensor,
) -> Result<(), String> {
    if analytic.shape() != x.shape() {
        return Err(format!(
            "{name}: gradient shape {:?} but input {:?}",
            analytic.shape(),
            x.shape()
        ));
    }
    let mut xp = x.clone();
    for i in 0..x.numel() {
        let v = x.data()[i];
        let (hi, lo) = (v + EPS, v - EPS);
        xp.data_mut()[i] = hi;
        let l_hi = dot(&forward(&xp), g);
        xp.data_mut()[i] = lo;
        let l_lo = dot(&forward(&xp), g);
        xp.data_mut()[i] = v;
        let numeric = (l_hi - l_lo) / (hi as f64 - lo as f64);
        let a = analytic.data()[i] as f64;
        if (numeric - a).abs() > RTOL * a.abs().max(1.0) {
            return Err(format!(
                "{name}: d/dx[{i}] numeric {numeric:.6} vs analytic {a:.6} (input shape {:?})",
                x.shape()
            ));
        }
    }
    Ok(())
}

/// `[n, c, h, w]` or, one time in four, the unbatched `[c, h, w]`.
fn random_shape(rng: &mut Rng64, max_hw: usize) -> Vec<usize> {
    let (c, h, w) = (
        rng.gen_range(1..=2),
        rng.gen_range(1..=max_hw),
        rng.gen_range(1..=max_hw),
    );
    if rng.gen_bool(0.25) {
        vec![c, h, w]
    } else {
        vec![rng.gen_range(1..=2), c, h, w]
    }
}

/// Distinct values `0, 0.1, 0.2, ...` shuffled, shifted to mean ~0.
fn separated(shape: &[usize], rng: &mut Rng64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.1).collect();
    v.shuffle(rng);
    Tensor::from_vec(v, shape).unwrap()
}

fn pair(rng: &mut Rng64, lo: usize, hi: usize) -> (usize, usize) {
    (rng.gen_range(lo..=hi), rng.gen_range(lo..=hi))
}

/// Run `trials` random configurations; `one` returns `None` when the
/// forward rejected the configuration. At least `min_run` must run.
fn run_trials(
    seed: u64,
    trials: usize,
    min_run: usize,
    mut one: impl FnMut(&mut Rng64) -> Option<Result<(), String>>,
) {
    let mut rng = seeded_rng(seed);
    let (mut ran, mut failures) = (0, Vec::new());
    for _ in 0..trials {
        match one(&mut rng) {
            Some(Ok(())) => ran += 1,
            Some(Err(e)) => {
                ran += 1;
                failures.push(e)
            }
            None => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= min_run, "only {ran} of {trials} configurations ran");
}

#[test]
fn max_pool2d_backward_matches_finite_differences() {
    run_trials(1, 60, 30, |rng| {
        let shape = random_shape(rng, 7);
        let (kh, kw) = pair(rng, 1, 4);
        let p = MaxPool2dParams::new((kh, kw))
            .stride(pair(rng, 1, 3))
            .padding((rng.gen_range(0..=kh / 2), rng.gen_range(0..=kw / 2)))
            .dilation(pair(rng, 1, 2))
            .ceil_mode(rng.gen_bool(0.5));
        let x = separated(&shape, rng);
        let (y, idx) = ops::max_pool2d_with_indices(&x, &p).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = ops::max_pool2d_backward(x.shape(), &idx, &g).unwrap();
        Some(gradcheck(&format!("max_pool2d {p:?}"), &x, &g, &gx, |x| {
            ops::max_pool2d(x, &p).unwrap()
        }))
    });
}

#[test]
fn avg_pool2d_backward_matches_finite_differences() {
    run_trials(2, 80, 40, |rng| {
        let shape = random_shape(rng, 7);
        let (kh, kw) = pair(rng, 1, 4);
        let divisor = if rng.gen_bool(0.25) {
            Some(rng.gen_range(1..=5))
        } else {
            None
        };
        let p = AvgPool2dParams::new((kh, kw))
            .stride(pair(rng, 1, 3))
            .padding((rng.gen_range(0..=kh / 2), rng.gen_range(0..=kw / 2)))
            .ceil_mode(rng.gen_bool(0.5))
            .count_include_pad(rng.gen_bool(0.5))
            .divisor_override(divisor);
        let x = Tensor::randn(&shape, rng).unwrap();
        let y = ops::avg_pool2d(&x, &p).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = ops::avg_pool2d_backward(x.shape(), &g, &p).unwrap();
        Some(gradcheck(&format!("avg_pool2d {p:?}"), &x, &g, &gx, |x| {
            ops::avg_pool2d(x, &p).unwrap()
        }))
    });
}

#[test]
fn adaptive_avg_pool2d_backward_matches_finite_differences() {
    run_trials(3, 30, 30, |rng| {
        let shape = random_shape(rng, 7);
        // Output sizes above the input size too: bins then repeat elements.
        let out = pair(rng, 1, 8);
        let x = Tensor::randn(&shape, rng).unwrap();
        let y = ops::adaptive_avg_pool2d(&x, out).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = ops::adaptive_avg_pool2d_backward(x.shape(), &g).unwrap();
        Some(gradcheck(
            &format!("adaptive_avg_pool2d {out:?}"),
            &x,
            &g,
            &gx,
            |x| ops::adaptive_avg_pool2d(x, out).unwrap(),
        ))
    });
}

#[test]
fn adaptive_max_pool2d_backward_matches_finite_differences() {
    run_trials(4, 30, 30, |rng| {
        let shape = random_shape(rng, 7);
        let out = pair(rng, 1, 8);
        let x = separated(&shape, rng);
        let (y, idx) = ops::adaptive_max_pool2d(&x, out).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = ops::adaptive_max_pool2d_backward(x.shape(), &idx, &g).unwrap();
        Some(gradcheck(
            &format!("adaptive_max_pool2d {out:?}"),
            &x,
            &g,
            &gx,
            |x| ops::adaptive_max_pool2d(x, out).unwrap().0,
        ))
    });
}

fn random_unfold_params(rng: &mut Rng64) -> UnfoldParams {
    UnfoldParams::new(pair(rng, 1, 3))
        .stride(pair(rng, 1, 3))
        .padding(pair(rng, 0, 2))
        .dilation(pair(rng, 1, 2))
}

#[test]
fn unfold_backward_matches_finite_differences() {
    run_trials(5, 60, 30, |rng| {
        let shape = random_shape(rng, 6);
        let p = random_unfold_params(rng);
        let x = Tensor::randn(&shape, rng).unwrap();
        let y = ops::unfold(&x, &p).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = ops::unfold_backward(x.shape(), &g, &p).unwrap();
        Some(gradcheck(&format!("unfold {p:?}"), &x, &g, &gx, |x| {
            ops::unfold(x, &p).unwrap()
        }))
    });
}

#[test]
fn fold_backward_matches_finite_differences() {
    run_trials(6, 60, 30, |rng| {
        // Draw an image shape, derive the column shape from it by unfolding.
        let image = random_shape(rng, 6);
        let p = random_unfold_params(rng);
        let cols_shape = ops::unfold(&Tensor::zeros(&image).unwrap(), &p)
            .ok()?
            .shape()
            .to_vec();
        let size = (image[image.len() - 2], image[image.len() - 1]);
        let cols = Tensor::randn(&cols_shape, rng).unwrap();
        let y = ops::fold(&cols, size, &p).unwrap();
        assert_eq!(y.shape(), image.as_slice());
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gc = ops::fold_backward(&g, &p).unwrap();
        Some(gradcheck(&format!("fold {p:?}"), &cols, &g, &gc, |c| {
            ops::fold(c, size, &p).unwrap()
        }))
    });
}

/// `[n, c, *spatial]` with `rank` random spatial lengths in `1..=max_len`,
/// or, one time in four, unbatched.
fn random_nd_shape(rng: &mut Rng64, rank: usize, max_len: usize) -> Vec<usize> {
    let mut shape = random_shape(rng, 1);
    shape.truncate(shape.len() - 2);
    shape.extend((0..rank).map(|_| rng.gen_range(1..=max_len)));
    shape
}

fn spatial<const N: usize>(rng: &mut Rng64, lo: i64, hi: i64) -> [i64; N] {
    std::array::from_fn(|_| rng.gen_range(lo..=hi))
}

fn max_avg_lp_nd<const N: usize>(seed: u64, max_len: usize) {
    run_trials(seed, 40, 15, |rng| {
        let shape = random_nd_shape(rng, N, max_len);
        let k: [i64; N] = spatial(rng, 1, 3);
        let p = MaxPoolParams::<N>::new(k)
            .stride(spatial::<N>(rng, 1, 2))
            .padding(k.map(|k| rng.gen_range(0..=k / 2)))
            .dilation(spatial::<N>(rng, 1, 2))
            .ceil_mode(rng.gen_bool(0.5));
        let x = separated(&shape, rng);
        let (y, idx) = max_pool_with_indices(&x, &p).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = max_pool_backward::<N>(x.shape(), &idx, &g).unwrap();
        Some(gradcheck(&format!("max_pool {p:?}"), &x, &g, &gx, |x| {
            max_pool(x, &p).unwrap()
        }))
    });
    run_trials(seed + 100, 40, 15, |rng| {
        let shape = random_nd_shape(rng, N, max_len);
        let k: [i64; N] = spatial(rng, 1, 3);
        let divisor = rng.gen_bool(0.25).then(|| rng.gen_range(1..=5i64));
        let p = AvgPoolParams::<N>::new(k)
            .stride(spatial::<N>(rng, 1, 2))
            .padding(k.map(|k| rng.gen_range(0..=k / 2)))
            .ceil_mode(rng.gen_bool(0.5))
            .count_include_pad(rng.gen_bool(0.5))
            .divisor_override(divisor);
        let x = Tensor::randn(&shape, rng).unwrap();
        let y = avg_pool(&x, &p).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = avg_pool_backward(x.shape(), &g, &p).unwrap();
        Some(gradcheck(&format!("avg_pool {p:?}"), &x, &g, &gx, |x| {
            avg_pool(x, &p).unwrap()
        }))
    });
    // Power-average: smooth for inputs away from 0 (shifted to [0.5, 1.5]);
    // p = inf is the max of |x| (separated values keep the winner).
    run_trials(seed + 200, 40, 15, |rng| {
        let shape = random_nd_shape(rng, N, max_len);
        let norm = [1.0, 2.0, 3.0, 1.5, f64::INFINITY][rng.gen_range(0..5)];
        let p = LpPoolParams::<N>::new(norm, spatial::<N>(rng, 1, 3))
            .stride(spatial::<N>(rng, 1, 2))
            .ceil_mode(rng.gen_bool(0.5));
        let x = if norm.is_infinite() {
            // Positive, so that no two |x| tie.
            separated(&shape, rng).map(|v| v + 1000.0)
        } else {
            Tensor::rand(&shape, rng).unwrap().map(|v| v + 0.5)
        };
        let y = lp_pool(&x, &p).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = lp_pool_backward(&x, &g, &p).unwrap();
        Some(gradcheck(&format!("lp_pool {p:?}"), &x, &g, &gx, |x| {
            lp_pool(x, &p).unwrap()
        }))
    });
}

#[test]
fn pools_1d_backward_match_finite_differences() {
    max_avg_lp_nd::<1>(11, 12);
}

#[test]
fn pools_3d_backward_match_finite_differences() {
    max_avg_lp_nd::<3>(12, 4);
}

#[test]
fn adaptive_1d_3d_backward_match_finite_differences() {
    run_trials(13, 30, 30, |rng| {
        let shape = random_nd_shape(rng, 1, 9);
        let out = [rng.gen_range(1..=10usize)];
        let x = separated(&shape, rng);
        let (y, idx) = adaptive_max_pool::<1>(&x, out).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = adaptive_max_pool_backward::<1>(x.shape(), &idx, &g).unwrap();
        let ga = adaptive_avg_pool_backward::<1>(x.shape(), &g).unwrap();
        let r = gradcheck("adaptive_max_pool1d", &x, &g, &gx, |x| {
            adaptive_max_pool::<1>(x, out).unwrap().0
        });
        Some(r.and(gradcheck("adaptive_avg_pool1d", &x, &g, &ga, |x| {
            adaptive_avg_pool::<1>(x, out).unwrap()
        })))
    });
    run_trials(14, 20, 20, |rng| {
        let shape = random_nd_shape(rng, 3, 4);
        let out: [usize; 3] = std::array::from_fn(|_| rng.gen_range(1..=5));
        let x = separated(&shape, rng);
        let (y, idx) = adaptive_max_pool::<3>(&x, out).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = adaptive_max_pool_backward::<3>(x.shape(), &idx, &g).unwrap();
        let ga = adaptive_avg_pool_backward::<3>(x.shape(), &g).unwrap();
        let r = gradcheck("adaptive_max_pool3d", &x, &g, &gx, |x| {
            adaptive_max_pool::<3>(x, out).unwrap().0
        });
        Some(r.and(gradcheck("adaptive_avg_pool3d", &x, &g, &ga, |x| {
            adaptive_avg_pool::<3>(x, out).unwrap()
        })))
    });
}

#[test]
fn unpool_and_fractional_backward_match_finite_differences() {
    run_trials(15, 30, 20, |rng| {
        let shape = random_nd_shape(rng, 2, 8);
        let k = rng.gen_range(1..=3i64);
        let x = separated(&shape, rng);
        let (y, idx) = max_pool_with_indices(&x, &MaxPool2dParams::new(k)).ok()?;
        let up = MaxUnpool2dParams::new(k);
        // The indices refer to the pooled input's planes: its size.
        let size: Vec<i64> = shape[shape.len() - 2..].iter().map(|&v| v as i64).collect();
        let out = max_unpool(&y, &idx, &up, Some(&size)).unwrap();
        let g = Tensor::randn(out.shape(), rng).unwrap();
        let gy = max_unpool_backward::<2>(y.shape(), &idx, &g).unwrap();
        Some(gradcheck("max_unpool2d", &y, &g, &gy, |y| {
            max_unpool(y, &idx, &up, Some(&size)).unwrap()
        }))
    });
    run_trials(16, 60, 20, |rng| {
        let rank3 = rng.gen_bool(0.5);
        let shape = random_nd_shape(rng, if rank3 { 3 } else { 2 }, 7);
        let x = separated(&shape, rng);
        let n = if shape.len() == if rank3 { 5 } else { 4 } {
            shape[0]
        } else {
            1
        };
        let c = shape[shape.len() - if rank3 { 4 } else { 3 }];
        let pool = rng.gen_range(1..=2i64);
        let out = rng.gen_range(1..=3i64);
        let u = Tensor::rand(&[n, c, if rank3 { 3 } else { 2 }], rng).unwrap();
        let f = |x: &Tensor| -> convlab::Result<(Tensor, Vec<usize>)> {
            if rank3 {
                fractional_max_pool(
                    x,
                    &FractionalMaxPool3dParams::with_output_size(pool, out),
                    &u,
                )
            } else {
                fractional_max_pool(
                    x,
                    &FractionalMaxPool2dParams::with_output_size(pool, out),
                    &u,
                )
            }
        };
        let (y, idx) = f(&x).ok()?;
        let g = Tensor::randn(y.shape(), rng).unwrap();
        let gx = if rank3 {
            fractional_max_pool_backward::<3>(x.shape(), &idx, &g)
        } else {
            fractional_max_pool_backward::<2>(x.shape(), &idx, &g)
        }
        .unwrap();
        Some(gradcheck("fractional_max_pool", &x, &g, &gx, |x| {
            f(x).unwrap().0
        }))
    });
}
