//! Helpers shared by the integration tests: random tensors, the fixtures'
//! error measure, the fixture directory, error-message checks and central
//! finite differences. Each test file takes what it needs with
//! `mod common;` (items a file does not use are allowed to be dead).
#![allow(dead_code)]

use convlab::{seeded_rng, Tensor};
use std::path::PathBuf;

/// The fixtures' tolerance on [`rel_err`] (tests/fixtures/README.md).
pub const TOL: f32 = 1e-4;

/// A tensor of `shape` with values uniform in [-1, 1), from `seed`.
pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed)).expect("a test shape")
}

/// `max|ours - reference| / max(1, max|reference|)`, the fixtures' measure.
/// Panics when the shapes differ.
pub fn rel_err(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.shape(), reference.shape(), "shapes differ");
    let scale = reference.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
    ours.max_abs_diff(reference).expect("same shapes") / scale
}

/// Asserts `rel_err(ours, reference) <= TOL`, naming `what` when it is not.
pub fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
    let e = rel_err(ours, reference);
    assert!(e <= TOL, "{what}: relative error {e:e} over {TOL:e}");
}

/// `sum(a * b)` in f64.
pub fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum()
}

/// The fixture directory: `$CONVLAB_FIXTURES` when set, else the
/// repository's `tests/fixtures`.
pub fn fixture_dir() -> PathBuf {
    match std::env::var_os("CONVLAB_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"),
    }
}

/// Asserts that `r` is an error whose one-line message contains every one
/// of `fragments`.
pub fn expect_err<T: std::fmt::Debug>(r: convlab::Result<T>, fragments: &[&str]) {
    let msg = match r {
        Ok(v) => panic!("expected an error containing {fragments:?}, got Ok({v:?})"),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
    for f in fragments {
        assert!(msg.contains(f), "error {msg:?} does not contain {f:?}");
    }
}

/// Checks `analytic`, the gradient of `loss` at `x`, against central
/// differences with step `eps`: every element within `tol` times the
/// largest analytic magnitude (at least 1).
pub fn check_gradient(
    what: &str,
    x: &Tensor,
    analytic: &Tensor,
    eps: f32,
    tol: f64,
    loss: impl Fn(&Tensor) -> f64,
) {
    assert_eq!(x.shape(), analytic.shape(), "{what}: gradient shape");
    let scale = analytic
        .data()
        .iter()
        .fold(1.0f64, |m, v| m.max(v.abs() as f64));
    for i in 0..x.numel() {
        let mut xp = x.clone();
        xp.data_mut()[i] += eps;
        let mut xm = x.clone();
        xm.data_mut()[i] -= eps;
        let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps as f64);
        let an = analytic.data()[i] as f64;
        assert!(
            (fd - an).abs() <= tol * scale,
            "{what}[{i}]: finite difference {fd} vs analytic {an}"
        );
    }
}

/// `f`'s result with `algo` forced, when `algo` computed every convolution
/// pass `f` ran: the recorder saw at least one pass, each computed by
/// `algo` (any algorithm for `ConvAlgo::Auto`). `None` when the op reported
/// that a forced `algo` cannot compute a pass. Panics on any other error,
/// and when another algorithm ran.
pub fn forced<T>(
    algo: convlab::ops::ConvAlgo,
    f: impl FnOnce() -> convlab::Result<T>,
) -> Option<T> {
    use convlab::ops::{force_conv_algo, record_conv_algos, ConvAlgo};
    let _forced = force_conv_algo(algo);
    let recorder = record_conv_algos();
    match f() {
        Ok(v) => {
            let records = recorder.take();
            let others: Vec<_> = records
                .iter()
                .filter(|r| algo != ConvAlgo::Auto && r.algo != algo)
                .collect();
            assert!(
                others.is_empty(),
                "{} forced, but ran {others:?}",
                algo.name()
            );
            Some(v)
        }
        Err(convlab::Error::Param {
            param: "algorithm",
            msg,
            ..
        }) if algo != ConvAlgo::Auto => {
            assert!(msg.contains(algo.name()), "{msg}");
            None
        }
        Err(e) => panic!("{}: {e}", algo.name()),
    }
}
