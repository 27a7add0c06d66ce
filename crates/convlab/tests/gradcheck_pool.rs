//! Finite-difference gradient checks for every pooling / unfold backward.
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
