//! Modules against PyTorch (`tests/fixtures/gen_modules.py`): a network
//! with BatchNorm 2d and 1d, Dropout, torchvision-style residual blocks, a
//! concatenation block and nested names, loaded strictly from PyTorch's
//! state dict, gives PyTorch's eval output and every eval gradient; one
//! training forward (dropout p=0) gives its output, loss, gradients and
//! running statistics; `Display` prints what PyTorch's `print(model)` does.
//! BatchNorm on its own: forward and every gradient in train and eval mode,
//! momentum None, affine False, track_running_stats False, 1d on 2-D and
//! 3-D input. Tolerance: `max|ours - ref| / max(1, max|ref|) <= 1e-4`.

use convlab::autograd::Var;
use convlab::io::{self, LoadOptions};
use convlab::nn::*;
use convlab::{Result, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("CONVLAB_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"));
    dir.join(name)
}

struct Io {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Io {
    fn load() -> Io {
        let (t, meta) =
            io::load_safetensors_with_metadata(&fixture("modules_io.safetensors")).unwrap();
        Io {
            tensors: t.into_iter().collect(),
            meta,
        }
    }
    fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no '{name}'"))
    }
    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[track_caller]
fn close(what: &str, ours: &Tensor, want: &Tensor) {
    assert_eq!(ours.shape(), want.shape(), "{what}: shape");
    let scale = want.data().iter().fold(1f32, |m, v| m.max(v.abs()));
    let err = ours.max_abs_diff(want).unwrap() / scale;
    assert!(err <= 1e-4, "{what}: relative error {err}");
}

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
) -> Result<Conv2d> {
    Conv2d::zeroed(
        Conv2dConfig::new(cin, cout, k)
            .stride(stride)
            .padding(pad)
            .bias(bias),
    )
}

/// torchvision's BasicBlock as a Residual.
fn block(cin: usize, cout: usize, stride: usize) -> Result<Residual> {
    let body = Sequential::new()
        .push_named("conv1", conv(cin, cout, 3, stride, 1, false)?)?
        .push_named("bn1", BatchNorm2d::new(cout))?
        .push_named("relu", ReLU)?
        .push_named("conv2", conv(cout, cout, 3, 1, 1, false)?)?
        .push_named("bn2", BatchNorm2d::new(cout))?;
    let mut b = Residual::new(body).post(ReLU)?.named("Block");
    if stride != 1 || cin != cout {
        let down = Sequential::new()
            .push(conv(cin, cout, 1, stride, 0, false)?)
            .push(BatchNorm2d::new(cout));
        b = b.shortcut("downsample", down)?;
    }
    Ok(b)
}

/// The network of gen_modules.py, built without a generator.
fn network(p1: f64, p2: f64) -> Result<Sequential> {
    let stem = Sequential::new()
        .push(conv(3, 8, 3, 1, 1, false)?)
        .push(BatchNorm2d::new(8))
        .push(ReLU)
        .push(MaxPool2d::new(2));
    let layer1 = Sequential::new()
        .push(block(8, 8, 1)?)
        .push(block(8, 16, 2)?);
    let branch2 = Sequential::new()
        .push(conv(16, 4, 1, 1, 0, false)?)
        .push(BatchNorm2d::new(4))
        .push(ReLU)
        .push(conv(4, 8, 3, 1, 1, true)?);
    let mix = Concat::new()
        .branch("branch1", conv(16, 8, 1, 1, 0, true)?)?
        .branch("branch2", branch2)?
        .named("Mix");
    let head = Sequential::new()
        .push(Flatten)
        .push(Dropout::with_seed(p1, 1)?)
        .push(Linear::zeroed(16, 32, true)?)
        .push(BatchNorm1d::new(32))
        .push(ReLU)
        .push(Dropout::with_seed(p2, 2)?)
        .push(Linear::zeroed(32, 5, true)?);
    Sequential::new()
        .push_named("stem", stem)?
        .push_named("layer1", layer1)?
        .push_named("mix", mix)?
        .push_named("pool", AdaptiveAvgPool2d::new(1))?
        .push_named("head", head)
}

fn labels(io: &Io) -> Vec<usize> {
    io.get("labels")
        .data()
        .iter()
        .map(|&v| v as usize)
        .collect()
}

#[test]
fn display_is_pytorchs_print() {
    let io = Io::load();
    assert_eq!(network(0.5, 0.2).unwrap().to_string(), io.meta["repr"]);
}

#[test]
fn pytorch_state_dict_loads_strictly_and_gives_eval_output_and_gradients() {
    for file in ["modules_model.safetensors", "modules_model.pth"] {
        eval_output_and_gradients_from(file);
    }
}

/// The fixture network loaded strictly from `file` (safetensors or
/// `torch.save`, the same weights): PyTorch's eval output and gradients.
fn eval_output_and_gradients_from(file: &str) {
    let io = Io::load();
    let mut net = network(0.5, 0.2).unwrap();
    io::load_state_dict(&fixture(file), &net).unwrap();
    // The int64 counter came through.
    let buffers = net.named_buffers();
    assert_eq!(buffers[2].0, "stem.1.num_batches_tracked");
    assert_eq!(buffers[2].1.count_value(), Some(7));
    net.eval();
    let x = Var::param(io.get("input").clone());
    let y = net.forward(&x).unwrap();
    close("eval output", &y.tensor(), io.get("eval.output"));
    let loss = y.cross_entropy(&labels(&io)).unwrap();
    close("eval loss", &loss.tensor(), io.get("eval.loss"));
    loss.backward().unwrap();
    close(
        "eval input grad",
        &x.grad().unwrap(),
        io.get("eval.grad.input"),
    );
    let params = net.named_parameters();
    assert_eq!(params.len(), 31);
    for (name, p) in params {
        close(
            &name,
            &p.grad().unwrap(),
            io.get(&format!("eval.grad.{name}")),
        );
    }
    // Eval mode changed no statistic.
    assert_eq!(net.named_buffers()[2].1.count_value(), Some(7));
}

#[test]
fn one_training_forward_matches_outputs_gradients_and_running_stats() {
    let io = Io::load();
    let mut net = network(0.0, 0.0).unwrap();
    io::load_state_dict(&fixture("modules_model.safetensors"), &net).unwrap();
    net.train();
    let x = Var::param(io.get("input").clone());
    let y = net.forward(&x).unwrap();
    close("train output", &y.tensor(), io.get("train.output"));
    let loss = y.cross_entropy(&labels(&io)).unwrap();
    close("train loss", &loss.tensor(), io.get("train.loss"));
    loss.backward().unwrap();
    close(
        "train input grad",
        &x.grad().unwrap(),
        io.get("train.grad.input"),
    );
    for (name, p) in net.named_parameters() {
        close(
            &name,
            &p.grad().unwrap(),
            io.get(&format!("train.grad.{name}")),
        );
    }
    let buffers = net.named_buffers();
    assert_eq!(buffers.len(), 24);
    for (name, b) in buffers {
        close(&name, &b.tensor(), io.get(&format!("train.buffer.{name}")));
        if b.is_count() {
            assert_eq!(b.count_value(), Some(8), "{name}");
        }
    }
}

#[test]
fn saved_state_dict_round_trips_with_int64_counters() {
    let net = network(0.5, 0.2).unwrap();
    io::load_state_dict(&fixture("modules_model.safetensors"), &net).unwrap();
    let bytes = io::state_dict_to_bytes(&net).unwrap();
    let back = io::safetensors_from_bytes(&bytes).unwrap();
    let want = io::load_safetensors(&fixture("modules_model.safetensors")).unwrap();
    assert_eq!(back, want);
    // A prefixed copy loads through the prefix, and a model missing a
    // layer reports the layer's keys when not strict.
    let prefixed = io::state_dict_with_prefix(&net, "module.");
    let other = network(0.5, 0.2).unwrap();
    io::load_state_dict_with(&other, &prefixed, &LoadOptions::strict().prefix("module.")).unwrap();
    assert_eq!(io::state_dict(&other), io::state_dict(&net));
    let e = io::load_state_dict_from(&other, &prefixed)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing keys 'stem.0.weight'") && e.contains("and 50 more"),
        "{e}"
    );
    let partial: Vec<(String, Tensor)> = io::state_dict(&net)
        .into_iter()
        .filter(|(n, _)| !n.starts_with("mix."))
        .collect();
    let r = io::load_state_dict_with(&other, &partial, &LoadOptions::non_strict()).unwrap();
    assert_eq!(r.missing_keys.len(), 10);
    assert!(r.missing_keys.iter().all(|k| k.starts_with("mix.branch")));
    assert!(r.unexpected_keys.is_empty());
}

/// Replays one BatchNorm case of the fixture on `layer`.
fn bn_case(io: &Io, name: &str, mut layer: BatchNorm, train: bool) {
    let init: Vec<(String, Tensor)> = io
        .tensors
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&format!("bn.{name}.init."))
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect();
    io::load_state_dict_from(&layer, &init).unwrap();
    if train {
        layer.train();
    } else {
        layer.eval();
    }
    let mut step = 0;
    while io.has(&format!("bn.{name}.{step}.input")) {
        let p = format!("bn.{name}.{step}");
        layer.zero_grad();
        let x = Var::param(io.get(&format!("{p}.input")).clone());
        let y = layer.forward(&x).unwrap();
        close(
            &format!("{p} output"),
            &y.tensor(),
            io.get(&format!("{p}.output")),
        );
        let g = io.get(&format!("{p}.grad_output")).clone();
        y.backward_with(g).unwrap();
        close(
            &format!("{p} grad_input"),
            &x.grad().unwrap(),
            io.get(&format!("{p}.grad_input")),
        );
        if let (Some(w), Some(b)) = (&layer.weight, &layer.bias) {
            close(
                &format!("{p} grad_weight"),
                &w.grad().unwrap(),
                io.get(&format!("{p}.grad_weight")),
            );
            close(
                &format!("{p} grad_bias"),
                &b.grad().unwrap(),
                io.get(&format!("{p}.grad_bias")),
            );
        }
        for (n, t) in io::state_dict(&layer) {
            close(&format!("{p} {n}"), &t, io.get(&format!("{p}.state.{n}")));
        }
        step += 1;
    }
    assert!(step > 0, "no steps for {name}");
}

#[test]
fn batch_norm_matches_pytorch_in_every_mode() {
    let io = Io::load();
    let cfg = BatchNormConfig::new;
    bn_case(&io, "bn2d_train", BatchNorm2d::new(3), true);
    bn_case(&io, "bn2d_eval", BatchNorm2d::new(3), false);
    bn_case(
        &io,
        "bn2d_cumulative",
        BatchNorm2d::with(cfg(2).momentum(None)).unwrap(),
        true,
    );
    bn_case(
        &io,
        "bn2d_no_affine",
        BatchNorm2d::with(cfg(2).affine(false).eps(1e-3)).unwrap(),
        true,
    );
    bn_case(
        &io,
        "bn2d_no_stats_eval",
        BatchNorm2d::with(cfg(2).track_running_stats(false)).unwrap(),
        false,
    );
    bn_case(
        &io,
        "bn1d_2d_train",
        BatchNorm1d::with(cfg(5).momentum(Some(0.3))).unwrap(),
        true,
    );
    bn_case(&io, "bn1d_3d_train", BatchNorm1d::new(4), true);
    bn_case(&io, "bn1d_3d_eval", BatchNorm1d::new(4), false);
}
