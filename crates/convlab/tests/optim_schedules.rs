//! Weight decay, AdamW and learning-rate schedules against PyTorch
//! (`tests/fixtures/optim_trajectories.json`, made by `gen_optim.py`):
//! SGD with Nesterov momentum and weight decay, SGD with dampening under
//! StepLR, Adam with L2 decay, AdamW under CosineAnnealingLR — after each
//! of 6 steps every parameter within 1e-5 of PyTorch's relative to the
//! tensor's largest value; the schedules' rates over 25 epochs within 1e-9.

use convlab::autograd::Var;
use convlab::nn::{Conv2d, Conv2dConfig, Flatten, Linear, Module, ReLU, Sequential};
use convlab::optim::{Adam, AdamW, CosineAnnealingLR, LrScheduler, Optimizer, Sgd, StepLR};
use convlab::{seeded_rng, Tensor};
use serde_json::Value;
use std::collections::HashMap;

fn fixture() -> Value {
    let dir = std::env::var_os("CONVLAB_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
        });
    let text = std::fs::read_to_string(dir.join("optim_trajectories.json")).unwrap();
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

fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b.data().iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.max_abs_diff(b).unwrap() / scale
}

type Make = fn(Vec<Var>) -> (Box<dyn Optimizer>, Option<Box<dyn LrScheduler>>);

fn setup(name: &str) -> Make {
    match name {
        "sgd_nesterov_wd" => |p| {
            let o = Sgd::new(p, 0.1)
                .and_then(|o| o.momentum(0.9))
                .and_then(|o| o.nesterov(true))
                .and_then(|o| o.weight_decay(0.05))
                .unwrap();
            (Box::new(o), None)
        },
        "sgd_dampening_steplr" => |p| {
            let o = Sgd::new(p, 0.2)
                .and_then(|o| o.momentum(0.5))
                .and_then(|o| o.dampening(0.3))
                .and_then(|o| o.weight_decay(0.01))
                .unwrap();
            let s = StepLR::new(&o, 2, 0.5).unwrap();
            (Box::new(o), Some(Box::new(s)))
        },
        "adam_wd" => |p| {
            let o = Adam::new(p, 0.01)
                .and_then(|o| o.betas(0.8, 0.99))
                .and_then(|o| o.eps(1e-6))
                .and_then(|o| o.weight_decay(0.1))
                .unwrap();
            (Box::new(o), None)
        },
        "adamw" => |p| {
            let o = AdamW::new(p, 0.02)
                .and_then(|o| o.weight_decay(0.3))
                .unwrap();
            let s = CosineAnnealingLR::new(&o, 4, 0.001).unwrap();
            (Box::new(o), Some(Box::new(s)))
        },
        other => panic!("unknown run {other}"),
    }
}

#[test]
fn optimizers_with_weight_decay_and_schedules_follow_pytorch() {
    let doc = fixture();
    let x = Var::new(tensor(&doc["input"]));
    let labels: Vec<usize> = doc["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap() as usize)
        .collect();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for run in runs {
        let name = run["name"].as_str().unwrap();
        let model = net();
        for (n, p) in model.named_parameters() {
            p.set_value(tensor(&doc["init"][n.as_str()])).unwrap();
        }
        let (mut opt, mut sched) = setup(name)(model.parameters());
        for (i, step) in run["steps"].as_array().unwrap().iter().enumerate() {
            let loss = model.forward(&x).unwrap().cross_entropy(&labels).unwrap();
            opt.zero_grad();
            loss.backward().unwrap();
            opt.step().unwrap();
            if let Some(s) = sched.as_mut() {
                s.step(opt.as_mut()).unwrap();
            }
            let want_loss = step["loss"].as_f64().unwrap();
            let got = loss.item().unwrap() as f64;
            assert!(
                (got - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0),
                "{name} step {i}: loss {got} vs {want_loss}"
            );
            let want_lr = step["lr"].as_f64().unwrap();
            assert!(
                (opt.lr() - want_lr).abs() <= 1e-12,
                "{name} step {i}: lr {} vs {want_lr}",
                opt.lr()
            );
            let params: HashMap<String, Var> = model.named_parameters().into_iter().collect();
            for (pname, want) in step["params"].as_object().unwrap() {
                let err = rel_err(&params[pname].tensor(), &tensor(want));
                assert!(err <= 1e-5, "{name} step {i}: {pname} relative error {err}");
            }
        }
    }
}

#[test]
fn schedules_give_pytorchs_rates() {
    let doc = fixture();
    let w = Var::param(Tensor::zeros(&[1]).unwrap());
    for (name, want) in doc["schedules"].as_object().unwrap() {
        let want: Vec<f64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let base = if name == "cosine_7_0.01" { 0.5 } else { 0.1 };
        let mut opt = Sgd::new(vec![w.clone()], base).unwrap();
        let mut sched: Box<dyn LrScheduler> = match name.as_str() {
            "step_3_0.1" => Box::new(StepLR::new(&opt, 3, 0.1).unwrap()),
            "step_1_0.9" => Box::new(StepLR::new(&opt, 1, 0.9).unwrap()),
            "cosine_10_0" => Box::new(CosineAnnealingLR::new(&opt, 10, 0.0).unwrap()),
            "cosine_7_0.01" => Box::new(CosineAnnealingLR::new(&opt, 7, 0.01).unwrap()),
            "cosine_1_0" => Box::new(CosineAnnealingLR::new(&opt, 1, 0.0).unwrap()),
            other => panic!("unknown schedule {other}"),
        };
        for (epoch, want) in want.iter().enumerate() {
            sched.step(&mut opt).unwrap();
            assert!(
                (opt.lr() - want).abs() <= 1e-9 * want.max(1e-3),
                "{name} epoch {}: {} vs {want}",
                epoch + 1,
                opt.lr()
            );
        }
        assert_eq!(sched.last_epoch(), want.len());
    }
}

#[test]
fn bad_schedules_are_errors() {
    let w = Var::param(Tensor::zeros(&[1]).unwrap());
    let opt = Sgd::new(vec![w], 0.1).unwrap();
    assert!(StepLR::new(&opt, 0, 0.1).is_err());
    assert!(StepLR::new(&opt, 1, f64::NAN).is_err());
    assert!(CosineAnnealingLR::new(&opt, 0, 0.0).is_err());
    assert!(CosineAnnealingLR::new(&opt, 5, -1.0).is_err());
}
