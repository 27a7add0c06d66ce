//! The networks of `convlab::models` against torchvision
//! (`tests/fixtures/gen_models.py`): state_dict names and shapes exactly
//! torchvision's; seeded weights saved by PyTorch load strictly and give
//! PyTorch's eval-mode logits; the large networks, with weights and input
//! from a formula both sides compute, give PyTorch's logits; the folded
//! inference copy agrees with the unfolded model.

mod common;

use common::{fixture_dir, rel_err, TOL};
use convlab::autograd::{no_grad, Var};
use convlab::io;
use convlab::models::{fold_conv_bn, Arch, Init, ModelConfig, ResNetBlock, ResNetConfig};
use convlab::nn::{Module, Sequential};
use convlab::Tensor;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

fn dir() -> std::path::PathBuf {
    fixture_dir().join("models")
}

fn io_tensors() -> HashMap<String, Tensor> {
    io::load_safetensors(&dir().join("io.safetensors"))
        .expect("io.safetensors")
        .into_iter()
        .collect()
}

fn torchvision_names(case: &str) -> Vec<(String, Vec<usize>)> {
    let text = std::fs::read_to_string(dir().join("names.json")).expect("names.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    v[case]
        .as_array()
        .unwrap_or_else(|| panic!("no case {case}"))
        .iter()
        .map(|e| {
            let shape = e[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize);
            (e[0].as_str().unwrap().to_string(), shape.collect())
        })
        .collect()
}

/// Asserts `model`'s state dict has torchvision's names and shapes, in order.
fn assert_names(case: &str, model: &dyn Module) {
    let ours: Vec<(String, Vec<usize>)> = io::state_dict(model)
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    let theirs = torchvision_names(case);
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{case}: number of state_dict entries"
    );
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o, t, "{case}: state_dict entry");
    }
}

fn eval_forward(model: &dyn Module, x: &Tensor) -> Tensor {
    no_grad(|| model.forward(&Var::new(x.clone())))
        .expect("forward")
        .tensor()
}

/// `max|ours - ref| / max(1, max|ref|)` within the fixtures' tolerance.
fn assert_logits(what: &str, ours: &Tensor, reference: &Tensor) {
    let e = rel_err(ours, reference);
    assert!(e <= TOL, "{what}: relative error {e:e} over {TOL:e}");
}

/// The formula of gen_models.py, for one state_dict entry.
fn formula_tensor(name: &str, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut h: u32 = 0x811C_9DC5;
    for b in name.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    let p = (h % 10007) as f64 / 100.0;
    let leaf = name.rsplit('.').next().unwrap();
    let fan_in = if n == 0 { 1 } else { n / shape[0] };
    let data = (0..n)
        .map(|i| {
            let s = (0.37 * i as f64 + p).sin();
            (match leaf {
                "running_mean" | "bias" => 0.1 * s,
                "running_var" => 1.0 + 0.5 * s * s,
                _ if shape.len() == 1 => 1.0 + 0.2 * s,
                _ => s * (4.0 / fan_in as f64).sqrt(),
            }) as f32
        })
        .collect();
    Tensor::from_vec(data, shape).unwrap()
}

fn formula_input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| (0.013 * i as f64 + 0.5).sin() as f32)
        .collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// `model` with the formula's weights (its counters kept).
fn load_formula(config: &ModelConfig, model: &dyn Module) {
    let sd: Vec<(String, Tensor)> = io::state_dict(model)
        .into_iter()
        .map(|(n, t)| {
            if n.ends_with("num_batches_tracked") {
                (n, t)
            } else {
                let f = formula_tensor(&n, t.shape());
                (n, f)
            }
        })
        .collect();
    config
        .load(model, &sd)
        .expect("strict load of the formula weights");
}

/// Builds `config`, checks its names against torchvision's, loads the
/// formula weights and compares the logits of the model and of its folded
/// copy with PyTorch's.
fn formula_case(case: &str, config: ModelConfig, input: &[usize]) {
    let mut model = config.build(Init::Zeros).unwrap();
    assert_names(case, &model);
    load_formula(&config, &model);
    model.eval();
    let x = formula_input(input);
    let want = &io_tensors()[&format!("{case}.logits")];
    assert_logits(case, &eval_forward(&model, &x), want);
    let folded = config.fold(&model).unwrap();
    assert_logits(&format!("{case} folded"), &eval_forward(&folded, &x), want);
}

#[test]
fn nin_matches_the_book() {
    formula_case("nin", ModelConfig::new(Arch::NiN), &[1, 1, 96, 96]);
}

#[test]
fn alexnet_matches_torchvision() {
    formula_case(
        "alexnet",
        ModelConfig::new(Arch::AlexNet).num_classes(10),
        &[1, 3, 64, 64],
    );
}

#[test]
fn vgg11_matches_torchvision() {
    formula_case(
        "vgg11",
        ModelConfig::new(Arch::Vgg11).num_classes(10),
        &[1, 3, 32, 32],
    );
}

#[test]
fn googlenet_matches_torchvision() {
    let config = ModelConfig::new(Arch::GoogLeNet).num_classes(10);
    formula_case("googlenet", config.clone(), &[2, 3, 64, 64]);
    formula_case(
        "googlenet_ti",
        config.transform_input(true),
        &[1, 3, 64, 64],
    );
}

#[test]
fn resnet18_matches_torchvision() {
    formula_case(
        "resnet18",
        ModelConfig::new(Arch::ResNet18).num_classes(10),
        &[2, 3, 64, 64],
    );
}

#[test]
fn resnet50_matches_torchvision() {
    formula_case(
        "resnet50",
        ModelConfig::new(Arch::ResNet50).num_classes(10),
        &[1, 3, 64, 64],
    );
}

#[test]
fn densenet121_matches_torchvision() {
    formula_case(
        "densenet121",
        ModelConfig::new(Arch::DenseNet121).num_classes(10),
        &[1, 3, 64, 64],
    );
}

/// A model of PyTorch's seeded weights from `{case}.safetensors`: strict
/// load, logits, folded logits.
fn real_case(case: &str, mut model: Sequential, fold: impl Fn(&Sequential) -> Sequential) {
    assert_names(case, &model);
    let weights = io::load_safetensors(&dir().join(format!("{case}.safetensors"))).unwrap();
    io::load_state_dict_from(&model, &weights).expect("strict load");
    model.eval();
    let t = io_tensors();
    let x = &t[&format!("{case}.input")];
    let want = &t[&format!("{case}.logits")];
    assert_logits(case, &eval_forward(&model, x), want);
    assert_logits(
        &format!("{case} folded"),
        &eval_forward(&fold(&model), x),
        want,
    );
}

#[test]
fn lenet_loads_pytorch_weights() {
    let config = ModelConfig::new(Arch::LeNet);
    real_case("lenet", config.build(Init::Zeros).unwrap(), |m| {
        config.fold(m).unwrap()
    });
}

#[test]
fn narrow_resnets_load_pytorch_weights() {
    for (case, config) in [
        (
            "resnet_narrow",
            ResNetConfig {
                width: 8,
                ..ResNetConfig::resnet18(10)
            },
        ),
        (
            "bottleneck_narrow",
            ResNetConfig {
                width: 4,
                ..ResNetConfig::resnet50(10)
            },
        ),
    ] {
        assert_eq!(
            config.block,
            if case == "resnet_narrow" {
                ResNetBlock::Basic
            } else {
                ResNetBlock::Bottleneck
            }
        );
        real_case(case, config.build(Init::Zeros).unwrap(), |m| {
            config.fold(m).unwrap()
        });
    }
}

#[test]
fn strict_loading_refuses_a_missing_key_and_accepts_googlenets_aux_heads() {
    let config = ModelConfig::new(Arch::LeNet);
    let model = config.build(Init::Zeros).unwrap();
    let mut weights = io::load_safetensors(&dir().join("lenet.safetensors")).unwrap();
    weights.retain(|(n, _)| n != "11.bias");
    let err = config.load(&model, &weights).unwrap_err().to_string();
    assert!(err.contains("11.bias"), "{err}");

    let config = ModelConfig::new(Arch::GoogLeNet).num_classes(10);
    let model = config.build(Init::Zeros).unwrap();
    let mut sd = io::state_dict(&model);
    sd.push((
        "aux1.conv.conv.weight".into(),
        Tensor::zeros(&[128, 512, 1, 1]).unwrap(),
    ));
    sd.push(("aux2.fc2.bias".into(), Tensor::zeros(&[10]).unwrap()));
    config.load(&model, &sd).expect("aux heads ignored");
    sd.push(("aux3.fc2.bias".into(), Tensor::zeros(&[10]).unwrap()));
    let err = config.load(&model, &sd).unwrap_err().to_string();
    assert!(err.contains("aux3.fc2.bias"), "{err}");
}

#[test]
fn folding_a_state_dict_is_strict() {
    let config = ModelConfig::new(Arch::LeNet);
    let weights = io::load_safetensors(&dir().join("lenet.safetensors")).unwrap();
    let mut missing = weights.clone();
    missing.retain(|(n, _)| n != "3.weight");
    let err = config.fold_state_dict(missing).err().unwrap().to_string();
    assert!(err.contains("3.weight"), "{err}");
    let mut extra = weights.clone();
    extra.push(("12.bias".into(), Tensor::zeros(&[10]).unwrap()));
    let err = config.fold_state_dict(extra).err().unwrap().to_string();
    assert!(
        err.contains("unexpected") && err.contains("12.bias"),
        "{err}"
    );
    let mut wrong = weights.clone();
    for (n, t) in &mut wrong {
        if n == "0.weight" {
            *t = Tensor::zeros(&[6, 1, 3, 3]).unwrap();
        }
    }
    let err = config.fold_state_dict(wrong).err().unwrap().to_string();
    assert!(err.contains("0.weight"), "{err}");
    let t = io_tensors();
    let net = config.fold_state_dict(weights).unwrap();
    assert_logits(
        "lenet from its state dict",
        &eval_forward(&net, &t["lenet.input"]),
        &t["lenet.logits"],
    );
}

#[test]
fn folding_equals_batch_norm_after_the_convolution() {
    // One output channel per row: w * g / sqrt(v + eps), beta + (b - m) * g / sqrt(v + eps).
    let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2, 1, 1]).unwrap();
    let b = Tensor::from_vec(vec![0.5, -0.5], &[2]).unwrap();
    let g = Tensor::from_vec(vec![2.0, 0.5], &[2]).unwrap();
    let beta = Tensor::from_vec(vec![0.1, 0.2], &[2]).unwrap();
    let m = Tensor::from_vec(vec![1.0, -1.0], &[2]).unwrap();
    let v = Tensor::from_vec(vec![3.0, 0.0], &[2]).unwrap();
    let (fw, fb) = fold_conv_bn(&w, Some(&b), [&g, &beta, &m, &v], 1.0).unwrap();
    assert_eq!(fw.data(), &[1.0, 2.0, 1.5, 2.0]);
    assert_eq!(fb.data(), &[0.1 - 0.5, 0.2 + 0.25]);
    let bad = Tensor::zeros(&[3]).unwrap();
    assert!(fold_conv_bn(&w, None, [&bad, &beta, &m, &v], 1e-5).is_err());
}

#[test]
fn a_shared_model_gives_the_same_bits_on_every_thread() {
    let config = ResNetConfig {
        width: 8,
        ..ResNetConfig::resnet18(10)
    };
    let mut model = config.build(Init::Seed(3)).unwrap();
    model.eval();
    let model = Arc::new(config.fold(&model).unwrap());
    let x = formula_input(&[1, 3, 32, 32]);
    let one = eval_forward(&*model, &x);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (m, x) = (Arc::clone(&model), x.clone());
            std::thread::spawn(move || eval_forward(&*m, &x))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().data(), one.data());
    }
}

#[test]
fn architectures_parse_by_torchvision_name() {
    for arch in Arch::ALL {
        assert_eq!(arch.name().parse::<Arch>().unwrap(), arch);
    }
    let err = "resnet19".parse::<Arch>().unwrap_err().to_string();
    assert!(err.contains("resnet18"), "{err}");
    assert!(ModelConfig::new(Arch::LeNet)
        .num_classes(0)
        .build(Init::Zeros)
        .is_err());
}
