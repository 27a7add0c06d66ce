//! The chapter's "learning a kernel" runs from `training.json`, reproduced
//! with `Conv2d` + autograd + `Sgd`: every loss and the final parameters
//! within 1e-4 relative (1e-3 on the diverging run's losses).

use convlab::autograd::Var;
use convlab::nn::{Conv2d, Conv2dConfig, Module};
use convlab::optim::{Optimizer, Sgd};
use convlab::{seeded_rng, Tensor};
use serde_json::Value;

fn fixtures() -> std::path::PathBuf {
    std::env::var_os("CONVLAB_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
        })
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

#[test]
fn training_runs_reproduce_pytorch() {
    let text = std::fs::read_to_string(fixtures().join("training.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert!(!runs.is_empty());
    for run in runs {
        let name = run["name"].as_str().unwrap();
        let x = matrix(&run["X"]);
        let y = matrix(&run["Y"]);
        let w0 = matrix(&run["w0"]);
        let (h, w) = (x.shape()[0], x.shape()[1]);
        let has_bias = run.get("b0").is_some();
        let mut rng = seeded_rng(0);
        let cfg = Conv2dConfig::new(1, 1, (w0.shape()[0], w0.shape()[1])).bias(has_bias);
        let conv = Conv2d::new(cfg, &mut rng).unwrap();
        conv.weight
            .set_value(w0.reshape(&[1, 1, w0.shape()[0], w0.shape()[1]]).unwrap())
            .unwrap();
        if let Some(b0) = run.get("b0") {
            conv.bias
                .as_ref()
                .unwrap()
                .set_value(Tensor::from_vec(floats(b0), &[1]).unwrap())
                .unwrap();
        }
        let lr = run["lr"].as_f64().unwrap() as f32;
        let mut opt = Sgd::new(conv.parameters(), lr).unwrap();
        let xv = Var::new(x.reshape(&[1, 1, h, w]).unwrap());
        let yv = Var::new(y.reshape(&[1, 1, y.shape()[0], y.shape()[1]]).unwrap());
        let want = floats(&run["losses"]);
        let tol = if name == "diverging_lr" { 1e-3 } else { 1e-4 };
        for (step, &want_loss) in want.iter().enumerate() {
            opt.zero_grad();
            let loss = conv
                .forward(&xv)
                .unwrap()
                .sub(&yv)
                .unwrap()
                .square()
                .unwrap()
                .sum()
                .unwrap();
            let got = loss.item().unwrap();
            assert!(
                rel(got, want_loss) <= tol,
                "{name} step {step}: loss {got} vs {want_loss}"
            );
            loss.backward().unwrap();
            opt.step().unwrap();
        }
        let wf = floats(&run["w_final"][0]);
        let got_w = conv.weight.tensor();
        for (g, e) in got_w.data().iter().zip(&wf) {
            assert!(rel(*g, *e) <= 1e-4, "{name}: weight {g} vs {e}");
        }
        if let Some(bf) = run.get("b_final") {
            let b = conv.bias.as_ref().unwrap().item().unwrap();
            let e = floats(bf)[0];
            // b_final is ~3e-3: relative 1e-4 of the parameter scale.
            assert!(
                (b - e).abs() <= 1e-4 * e.abs().max(1e-2),
                "{name}: bias {b} vs {e}"
            );
        }
    }
}
