//! Adam (PyTorch's defaults, lr 0.01) and SGD with momentum replay
//! PyTorch's trajectory on a tiny conv + linear net from
//! `tests/fixtures/adam_trajectory.json` (made by `gen_adam_trajectory.py`
//! there): after each of 6 steps, every parameter within 1e-5 of PyTorch's,
//! relative to the tensor's largest value, and the loss within 1e-5 relative.

use convlab::autograd::Var;
use convlab::nn::{Conv2d, Conv2dConfig, Flatten, Linear, Module, ReLU, Sequential};
use convlab::optim::{Adam, Optimizer, Sgd};
use convlab::{seeded_rng, Tensor};
use serde_json::Value;
use std::collections::HashMap;

fn fixture() -> Value {
    let dir = std::env::var_os("CONVLAB_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
        });
    let text = std::fs::read_to_string(dir.join("adam_trajectory.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(data, &shape).unwrap()
}

fn net() -> Sequential {
    let mut rng = seeded_rng(0);
    Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(1, 2, 3).padding(1), &mut rng).unwrap())
        .push(ReLU)
        .push(Flatten)
        .push(Linear::new(32, 3, &mut rng).unwrap())
}

/// max |a - b| / max |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b.data().iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.max_abs_diff(b).unwrap() / scale
}

#[test]
fn adam_and_sgd_momentum_follow_pytorch() {
    let doc = fixture();
    let x = Var::new(tensor(&doc["input"]));
    let labels: Vec<usize> = doc["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap() as usize)
        .collect();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let name = run["optimizer"].as_str().unwrap();
        let model = net();
        for (n, p) in model.named_parameters() {
            p.set_value(tensor(&doc["init"][n.as_str()])).unwrap();
        }
        let params = model.parameters();
        let mut opt: Box<dyn Optimizer> = match name {
            "adam" => Box::new(Adam::new(params, 0.01).unwrap()),
            "sgd_momentum" => Box::new(Sgd::new(params, 0.1).unwrap().momentum(0.9).unwrap()),
            other => panic!("unknown optimizer {other}"),
        };
        let steps = run["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 6);
        for (i, step) in steps.iter().enumerate() {
            let loss = model.forward(&x).unwrap().cross_entropy(&labels).unwrap();
            opt.zero_grad();
            loss.backward().unwrap();
            opt.step().unwrap();
            let want_loss = step["loss"].as_f64().unwrap() as f32;
            let got_loss = loss.item().unwrap();
            assert!(
                (got_loss - want_loss).abs() <= 1e-5 * want_loss.abs(),
                "{name} step {i}: loss {got_loss} vs PyTorch {want_loss}"
            );
            let params: HashMap<String, Var> = model.named_parameters().into_iter().collect();
            let want = step["params"].as_object().unwrap();
            assert_eq!(want.len(), params.len());
            for (n, w) in want {
                let e = rel_err(&params[n].tensor(), &tensor(w));
                assert!(
                    e <= 1e-5,
                    "{name} step {i}: {n} differs by {e:e} (relative)"
                );
            }
        }
    }
}
