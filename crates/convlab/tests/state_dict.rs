//! PyTorch state_dict round trips: the fixture network built in convlab,
//! loaded from `torch_model.safetensors` (written by
//! `safetensors.torch.save_file(net.state_dict())`), reproduces PyTorch's
//! output; saving and reloading keeps every weight bit for bit.
//!
//! ```python
//! net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
//!                     nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), nn.Sigmoid(),
//!                     nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(32, 5))
//! ```

use convlab::autograd::Var;
use convlab::io::{load_safetensors, load_state_dict, save_state_dict, state_dict};
use convlab::nn::*;
use convlab::ops::AvgPool2dParams;
use convlab::{seeded_rng, Tensor};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn torch_net(seed: u64) -> Sequential {
    let mut rng = seeded_rng(seed);
    Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(3, 8, 3).padding(1), &mut rng).unwrap())
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(
            Conv2d::new(
                Conv2dConfig::new(8, 8, 3).stride(2).padding(1).groups(2),
                &mut rng,
            )
            .unwrap(),
        )
        .push(Sigmoid)
        .push(AvgPool2d::with(AvgPool2dParams::new(2).ceil_mode(true)))
        .push(Flatten)
        .push(Linear::new(32, 5, &mut rng).unwrap())
}

fn io_tensor(name: &str) -> Tensor {
    load_safetensors(&fixture("torch_model_io.safetensors"))
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1
}

#[test]
fn pytorch_weights_reproduce_pytorch_output() {
    let net = torch_net(0);
    let x = Var::new(io_tensor("input"));
    let before = net.forward(&x).unwrap().tensor();
    load_state_dict(&fixture("torch_model.safetensors"), &net).unwrap();
    let y = net.forward(&x).unwrap().tensor();
    let want = io_tensor("output");
    assert_eq!(y.shape(), &[2, 5]);
    let err = y.max_abs_diff(&want).unwrap();
    assert!(err <= 1e-5, "max abs error {err}");
    // The check can fail: random weights are far from PyTorch's output.
    assert!(before.max_abs_diff(&want).unwrap() > 1e-2);
}

#[test]
fn save_then_load_gives_identical_weights() {
    let dir = std::env::temp_dir().join(format!("convlab-state-dict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.safetensors");
    let a = torch_net(1);
    save_state_dict(&path, &a).unwrap();
    let b = torch_net(2);
    assert_ne!(state_dict(&a), state_dict(&b));
    load_state_dict(&path, &b).unwrap();
    let (sa, sb) = (state_dict(&a), state_dict(&b));
    assert_eq!(sa, sb);
    let names: Vec<&str> = sa.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mismatched_model_names_key_and_shapes() {
    // Conv2d(3, 8, 5) instead of 3x3 in the first layer.
    let mut rng = seeded_rng(0);
    let net = Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(3, 8, 5).padding(2), &mut rng).unwrap())
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(
            Conv2d::new(
                Conv2dConfig::new(8, 8, 3).stride(2).padding(1).groups(2),
                &mut rng,
            )
            .unwrap(),
        )
        .push(Sigmoid)
        .push(AvgPool2d::with(AvgPool2dParams::new(2).ceil_mode(true)))
        .push(Flatten)
        .push(Linear::new(32, 5, &mut rng).unwrap());
    let e = load_state_dict(&fixture("torch_model.safetensors"), &net)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'0.weight' has shape [8, 3, 3, 3] in the file but [8, 3, 5, 5] in the model"),
        "{e}"
    );
    // A model without the last layer: unexpected keys.
    let short = Sequential::new().push(Conv2d::new(Conv2dConfig::new(3, 8, 3), &mut rng).unwrap());
    let e = load_state_dict(&fixture("torch_model.safetensors"), &short)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unexpected keys '3.bias', '3.weight', '7.bias', '7.weight'"),
        "{e}"
    );
}
