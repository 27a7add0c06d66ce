//! Unit tests of learn/mod.rs.

use super::*;
use crate::ops;
use serde_json::Value;

fn run(name: &str) -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/training.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
        .clone()
}

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Vec<f32>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    Tensor::from_rows(&rows).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn rel(a: f32, b: f32) -> f32 {
    (a - b).abs() / b.abs().max(1e-6)
}

fn fixture_opts(r: &Value) -> LearnOptions {
    let mut o = LearnOptions::new((1, 2))
        .init(matrix(&r["w0"]))
        .lr(LearningRate::Fixed(r["lr"].as_f64().unwrap() as f32))
        .steps(r["steps"].as_u64().unwrap() as usize);
    if let Some(b0) = r.get("b0") {
        o = o.bias(true).init_bias(floats(b0)[0]);
    }
    o
}

#[test]
fn edge_1x2_reproduces_pytorch() {
    for name in ["edge_1x2", "edge_1x2_bias"] {
        let r = run(name);
        let mut seen = Vec::new();
        let rep = learn_kernel(
            &matrix(&r["X"]),
            &matrix(&r["Y"]),
            &fixture_opts(&r),
            |s, l| seen.push((s, l)),
        )
        .unwrap();
        let want = floats(&r["losses"]);
        assert_eq!(rep.losses.len(), want.len(), "{name}");
        for (got, want) in rep.losses.iter().zip(&want) {
            assert!(rel(*got, *want) <= 1e-4, "{name}: loss {got} vs {want}");
        }
        assert_eq!(seen.len(), want.len());
        assert_eq!(seen[3], (3, rep.losses[3]));
        for (g, e) in rep.kernel.data().iter().zip(&floats(&r["w_final"][0])) {
            assert!(rel(*g, *e) <= 1e-4, "{name}: weight {g} vs {e}");
        }
        if let Some(bf) = r.get("b_final") {
            let (b, e) = (rep.bias.unwrap(), floats(bf)[0]);
            assert!((b - e).abs() <= 1e-6, "{name}: bias {b} vs {e}");
        }
        assert_eq!(rep.outcome, Outcome::Finished, "{name}");
    }
}

#[test]
fn diverging_lr_is_reported_with_the_stable_bound() {
    let r = run("diverging_lr");
    let (x, y) = (matrix(&r["X"]), matrix(&r["Y"]));
    let rep = learn_kernel(&x, &y, &fixture_opts(&r), |_, _| {}).unwrap();
    // The losses up to detection are PyTorch's.
    let want = floats(&r["losses"]);
    assert_eq!(rep.losses.len(), 3);
    for (got, want) in rep.losses.iter().zip(&want) {
        assert!(rel(*got, *want) <= 1e-3, "loss {got} vs {want}");
    }
    // X has 6 rows of 1 1 1 0 1 1 1 1: AᵀA = 6·[[6, 5], [5, 6]], whose top
    // eigenvalue is 66, so λmax(H) = 132 and the bound is 2/132.
    let bound = max_stable_lr(&x, (1, 2).into(), false).unwrap();
    assert!(rel(bound, 2.0 / 132.0) < 1e-5, "bound {bound}");
    match &rep.outcome {
        Outcome::Diverged {
            step,
            from_step,
            stable_below,
            lr,
            ..
        } => {
            assert_eq!((*step, *from_step), (2, 0));
            assert_eq!(*lr, 0.03);
            assert!(rel(stable_below.unwrap(), bound) < 1e-6);
        }
        o => panic!("expected Diverged, got {o:?}"),
    }
    assert_eq!(
        rep.outcome.to_string(),
        "lr 0.03 diverges here (loss 40.7 → 2535 in 2 steps); stable below 0.0151; try --lr auto"
    );

    // The bound is sharp: 2% below it converges, 2% above it diverges.
    let below = fixture_opts(&r)
        .lr(LearningRate::Fixed(0.98 * bound))
        .steps(400);
    let rep = learn_kernel(&x, &y, &below, |_, _| {}).unwrap();
    assert_eq!(rep.outcome, Outcome::Finished);
    assert!(*rep.losses.last().unwrap() < 1e-6 * rep.losses[0]);
    let above = below.clone().lr(LearningRate::Fixed(1.02 * bound));
    let rep = learn_kernel(&x, &y, &above, |_, _| {}).unwrap();
    assert!(
        matches!(rep.outcome, Outcome::Diverged { .. }),
        "{:?}",
        rep.outcome
    );

    // lr auto converges on the same problem.
    let auto = fixture_opts(&r).lr(LearningRate::Auto).steps(100);
    let rep = learn_kernel(&x, &y, &auto, |_, _| {}).unwrap();
    assert!(rel(rep.lr, 1.0 / 132.0) < 1e-5);
    assert!(rep.losses[99] < 1e-6, "{:?}", rep.losses);
    assert!((rep.kernel.data()[0] + 1.0).abs() < 1e-3);
    assert!((rep.kernel.data()[1] - 1.0).abs() < 1e-3);
}

#[test]
fn bias_bound_includes_the_ones_column() {
    // With a bias, A gains a ones column: for the constant image above
    // AᵀA = 7·ones(3, 3), λmax(H) = 2 * 7 * 3 = 42.
    let x = Tensor::ones(&[1, 8]).unwrap();
    let b = max_stable_lr(&x, (1, 2).into(), true).unwrap();
    assert!(rel(b, 2.0 / 42.0) < 1e-5, "{b}");
    assert_eq!(
        max_stable_lr(&Tensor::zeros(&[3, 3]).unwrap(), (2, 2).into(), false).unwrap(),
        f32::INFINITY
    );
}

#[test]
fn convolution_mode_learns_the_flipped_kernel() {
    let r = run("edge_1x2");
    let (x, y) = (matrix(&r["X"]), matrix(&r["Y"]));
    let corr = learn_kernel(&x, &y, &fixture_opts(&r), |_, _| {}).unwrap();
    let conv_opts = fixture_opts(&r)
        .init(flip(&matrix(&r["w0"])).unwrap())
        .mode(KernelMode::Convolution);
    let conv = learn_kernel(&x, &y, &conv_opts, |_, _| {}).unwrap();
    assert_eq!(conv.losses, corr.losses);
    assert_eq!(conv.kernel, flip(&corr.kernel).unwrap());
    let back = ops::convolve2d(&x, &conv.kernel).unwrap();
    assert!(
        back.max_abs_diff(&ops::corr2d(&x, &corr.kernel).unwrap())
            .unwrap()
            == 0.0
    );
}

#[test]
fn adam_and_random_init_learn_the_edge_kernel() {
    let r = run("edge_1x2");
    let (x, y) = (matrix(&r["X"]), matrix(&r["Y"]));
    let opts = LearnOptions::new((1, 2))
        .optimizer(OptimizerKind::Adam)
        .lr(LearningRate::Auto)
        .steps(300)
        .seed(7);
    let rep = learn_kernel(&x, &y, &opts, |_, _| {}).unwrap();
    assert_eq!(rep.lr, 0.05);
    assert!(matches!(rep.outcome, Outcome::Finished));
    assert!(rep.losses[299] < 1e-2 * rep.losses[0], "{:?}", rep.losses);
    let early = opts.clone().steps(1000).stop_below(1e-3);
    let rep = learn_kernel(&x, &y, &early, |_, _| {}).unwrap();
    assert!(matches!(rep.outcome, Outcome::Converged { step } if step < 999));
}

#[test]
fn bad_inputs_are_errors() {
    let x = Tensor::ones(&[6, 8]).unwrap();
    let y = Tensor::zeros(&[6, 7]).unwrap();
    let o = LearnOptions::new((1, 2));
    let e = |r: Result<LearnReport>| r.unwrap_err().to_string();
    assert_eq!(
        e(learn_kernel(
            &x,
            &Tensor::zeros(&[6, 8]).unwrap(),
            &o,
            |_, _| {}
        )),
        "learn_kernel: target has shape [6, 8] but a 1x2 kernel on input [6, 8] gives [6, 7]"
    );
    assert_eq!(
        e(learn_kernel(
            &x.reshape(&[1, 1, 6, 8]).unwrap(),
            &y,
            &o,
            |_, _| {}
        )),
        "learn_kernel: expected a 2-D matrix but got shape [1, 1, 6, 8]"
    );
    assert_eq!(
        e(learn_kernel(&x, &y, &o.clone().steps(0), |_, _| {})),
        "learn_kernel: steps 0 is invalid: must be at least 1"
    );
    assert!(e(learn_kernel(
        &x,
        &y,
        &o.clone().init(Tensor::zeros(&[2, 1]).unwrap()),
        |_, _| {}
    ))
    .contains("initial kernel has shape [2, 1]"));
    assert!(e(learn_kernel(
        &x,
        &y,
        &o.clone().lr(LearningRate::Fixed(f32::NAN)),
        |_, _| {}
    ))
    .contains("lr invalid learning rate: nan"));
    assert!(
        e(learn_kernel(&x, &y, &LearnOptions::new((7, 2)), |_, _| {}))
            .contains("larger than the input")
    );
    assert!(
        e(learn_kernel(&x, &y, &LearnOptions::new((0, 2)), |_, _| {}))
            .contains("kernel_size (0, 2) is invalid")
    );
}

#[test]
fn divergence_rule() {
    // A converging run with an Adam-like bump is not divergence.
    assert_eq!(divergence(&[10.0, 5.0, 6.0, 7.0]), None);
    // Fast: above the start, rising twice, ×10.
    assert_eq!(divergence(&[10.0, 50.0, 120.0]), Some((0, 10.0)));
    // Rising twice but only ×2.4: not yet.
    assert_eq!(divergence(&[10.0, 11.0, 24.0]), None);
    // Slow: ten rises in a row above the start.
    let slow: Vec<f32> = (0..12).map(|i| 10.0 * 1.05f32.powi(i)).collect();
    assert_eq!(divergence(&slow[..10]), None);
    assert_eq!(divergence(&slow[..11]), Some((0, 10.0)));
    assert_eq!(divergence(&[1.0, f32::NAN]), Some((0, 1.0)));
}

#[test]
fn significant_digits() {
    assert_eq!(fmt_sig(40.679996, Round::Nearest), "40.7");
    assert_eq!(fmt_sig(2534.5535, Round::Nearest), "2535");
    assert_eq!(fmt_sig(0.015151, Round::Down), "0.0151");
    assert_eq!(fmt_sig(0.03, Round::Nearest), "0.03");
    assert_eq!(fmt_sig(0.0151999, Round::Down), "0.0151");
}
