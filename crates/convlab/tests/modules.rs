//! Modules as a user builds and serves them: shared across threads
//! (`Send + Sync`, bit-identical outputs), train/eval recursively, frozen
//! layers, errors naming the layer, nested names from user modules,
//! Dropout's scaling and gradient, Residual and Concat gradients against
//! finite differences.

use convlab::autograd::{no_grad, Var};
use convlab::nn::*;
use convlab::{seeded_rng, Error, Result, Tensor};
use std::sync::Arc;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn every_public_layer_is_send_and_sync() {
    assert_send_sync::<Var>();
    assert_send_sync::<Buffer>();
    assert_send_sync::<Conv2d>();
    assert_send_sync::<ConvTranspose2d>();
    assert_send_sync::<Linear>();
    assert_send_sync::<BatchNorm>();
    assert_send_sync::<Dropout>();
    assert_send_sync::<Dropout2d>();
    assert_send_sync::<ReLU>();
    assert_send_sync::<Sigmoid>();
    assert_send_sync::<Tanh>();
    assert_send_sync::<Flatten>();
    assert_send_sync::<Identity>();
    assert_send_sync::<MaxPool2d>();
    assert_send_sync::<AvgPool2d>();
    assert_send_sync::<AdaptiveAvgPool2d>();
    assert_send_sync::<AdaptiveMaxPool2d>();
    assert_send_sync::<Sequential>();
    assert_send_sync::<Residual>();
    assert_send_sync::<Concat>();
    assert_send_sync::<Box<dyn Module>>();
    assert_send_sync::<Arc<dyn Module>>();
    assert_send_sync::<convlab::optim::Sgd>();
    assert_send_sync::<convlab::optim::Adam>();
    assert_send_sync::<convlab::optim::AdamW>();
    // The rest of the layers, every rank.
    use convlab::nn as n;
    assert_send_sync::<n::Conv1d>();
    assert_send_sync::<n::ConvTranspose1d>();
    assert_send_sync::<n::Conv3d>();
    assert_send_sync::<n::ConvTranspose3d>();
    assert_send_sync::<n::BatchNorm1d>();
    assert_send_sync::<n::BatchNorm2d>();
    assert_send_sync::<n::MaxPool1d>();
    assert_send_sync::<n::MaxPool3d>();
    assert_send_sync::<n::AvgPool1d>();
    assert_send_sync::<n::AvgPool3d>();
    assert_send_sync::<n::LPPool1d>();
    assert_send_sync::<n::LPPool2d>();
    assert_send_sync::<n::LPPool3d>();
    assert_send_sync::<n::AdaptiveAvgPool1d>();
    assert_send_sync::<n::AdaptiveAvgPool3d>();
    assert_send_sync::<n::AdaptiveMaxPool1d>();
    assert_send_sync::<n::AdaptiveMaxPool3d>();
    assert_send_sync::<n::MaxUnpool1d>();
    assert_send_sync::<n::MaxUnpool2d>();
    assert_send_sync::<n::MaxUnpool3d>();
    assert_send_sync::<n::FractionalMaxPool2d>();
    assert_send_sync::<n::FractionalMaxPool3d>();
    assert_send_sync::<n::Upsample>();
    assert_send_sync::<n::PixelShuffle>();
    assert_send_sync::<n::PixelUnshuffle>();
    assert_send_sync::<n::ChannelShuffle>();
    assert_send_sync::<n::ZeroPad2d>();
    assert_send_sync::<n::ConstantPad1d>();
    assert_send_sync::<n::ReflectionPad3d>();
    assert_send_sync::<n::ReplicationPad2d>();
    assert_send_sync::<n::CircularPad1d>();
}

/// conv, BN, ReLU, pool, dropout, linear — with trained-looking statistics.
fn served_net() -> Sequential {
    let mut rng = seeded_rng(5);
    let net = Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(3, 8, 3).padding(1), &mut rng).unwrap())
        .push(BatchNorm2d::new(8))
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(Flatten)
        .push(Dropout::new(0.5, &mut rng).unwrap())
        .push(Linear::new(8 * 4 * 4, 10, &mut rng).unwrap());
    // A few training forwards give the BatchNorm real running statistics.
    for _ in 0..3 {
        let x = Var::new(Tensor::randn(&[4, 3, 8, 8], &mut rng).unwrap());
        net.forward(&x).unwrap();
    }
    net
}

#[test]
fn one_shared_model_gives_identical_outputs_on_eight_threads() {
    let mut net = served_net();
    net.eval();
    let net = Arc::new(net);
    let mut rng = seeded_rng(9);
    let inputs: Vec<Tensor> = (0..8)
        .map(|_| Tensor::randn(&[2, 3, 8, 8], &mut rng).unwrap())
        .collect();
    let alone: Vec<Tensor> = inputs
        .iter()
        .map(|x| {
            no_grad(|| net.forward(&Var::new(x.clone())))
                .unwrap()
                .tensor()
        })
        .collect();
    let handles: Vec<_> = inputs
        .into_iter()
        .map(|x| {
            let net = Arc::clone(&net);
            std::thread::spawn(move || {
                // Each thread runs its input several times, with and
                // without a graph, while the others run theirs.
                let mut outs = Vec::new();
                for round in 0..4 {
                    let v = Var::new(x.clone());
                    let y = if round % 2 == 0 {
                        no_grad(|| net.forward(&v)).unwrap()
                    } else {
                        net.forward(&v).unwrap()
                    };
                    outs.push(y.tensor());
                }
                outs
            })
        })
        .collect();
    for (h, want) in handles.into_iter().zip(&alone) {
        for got in h.join().unwrap() {
            let same = got
                .data()
                .iter()
                .zip(want.data())
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "a thread's output differs from one thread's");
        }
    }
    // And through rayon's pool.
    use rayon::prelude::*;
    let par: Vec<Tensor> = (0..8)
        .into_par_iter()
        .map(|i| {
            let x = Tensor::randn(&[2, 3, 8, 8], &mut seeded_rng(100 + i)).unwrap();
            net.forward(&Var::new(x)).unwrap().tensor()
        })
        .collect();
    for (i, got) in par.iter().enumerate() {
        let x = Tensor::randn(&[2, 3, 8, 8], &mut seeded_rng(100 + i as u64)).unwrap();
        assert_eq!(got, &net.forward(&Var::new(x)).unwrap().tensor());
    }
}

#[test]
fn training_on_threads_updates_running_stats_once_per_forward() {
    let net = Arc::new(
        Sequential::new()
            .push(Linear::zeroed(3, 4, true).unwrap())
            .push(BatchNorm1d::new(4)),
    );
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let net = Arc::clone(&net);
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let x = Tensor::randn(&[6, 3], &mut seeded_rng(i)).unwrap();
                    let y = net.forward(&Var::new(x)).unwrap();
                    y.sum().unwrap().backward().unwrap();
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(net.named_buffers()[2].1.count_value(), Some(40));
    // Every pass's gradient reached the shared bias; each is zero (a
    // per-channel shift does not move BatchNorm's output), so is the sum.
    let gb = net.named_parameters()[1].1.grad().unwrap();
    assert!(gb.data().iter().all(|&g| g.abs() < 1e-3), "{gb:?}");
}

#[test]
fn train_and_eval_reach_every_nested_layer() {
    let mut rng = seeded_rng(0);
    let inner = Sequential::new().push(Dropout::new(0.5, &mut rng).unwrap());
    let mut net = Sequential::new()
        .push_named(
            "features",
            Sequential::new().push(BatchNorm1d::new(4)).push(inner),
        )
        .unwrap();
    let x = Var::new(Tensor::randn(&[8, 4], &mut rng).unwrap());
    let train_out = net.forward(&x).unwrap().tensor();
    net.eval();
    let a = net.forward(&x).unwrap().tensor();
    let b = net.forward(&x).unwrap().tensor();
    assert_eq!(a, b, "eval mode is deterministic");
    assert_ne!(a, train_out);
    // Eval mode used the running statistics: one batch moved them 10 %.
    let bn_only = Sequential::new().push(BatchNorm1d::new(4));
    io_copy(&net, &bn_only);
    let mut bn_only = bn_only;
    bn_only.eval();
    assert_eq!(bn_only.forward(&x).unwrap().tensor(), a);
    net.train();
    assert_ne!(net.forward(&x).unwrap().tensor(), a);
}

/// Copies `features.0.*` of `from` into `0.*` of `to`.
fn io_copy(from: &Sequential, to: &Sequential) {
    let sd: Vec<(String, Tensor)> = convlab::io::state_dict(from)
        .into_iter()
        .filter_map(|(n, t)| n.strip_prefix("features.").map(|n| (n.to_string(), t)))
        .collect();
    convlab::io::load_state_dict_from(to, &sd).unwrap();
}

#[test]
fn frozen_layers_get_no_gradient_and_keep_their_weights() {
    let mut rng = seeded_rng(1);
    let net = Sequential::new()
        .push(Linear::new(4, 4, &mut rng).unwrap())
        .push(ReLU)
        .push(Linear::new(4, 2, &mut rng).unwrap());
    net.children()[0].1.requires_grad_(false);
    let params = net.parameters();
    let frozen = params[0].tensor();
    let mut opt = convlab::optim::Sgd::new(params.clone(), 0.1).unwrap();
    let x = Var::new(Tensor::randn(&[3, 4], &mut rng).unwrap());
    net.forward(&x).unwrap().sum().unwrap().backward().unwrap();
    assert!(params[0].grad().is_none() && params[1].grad().is_none());
    assert!(params[2].grad().is_some());
    use convlab::optim::Optimizer;
    opt.step().unwrap();
    assert_eq!(params[0].tensor(), frozen);
    net.requires_grad_(true);
    assert!(net.parameters().iter().all(Var::requires_grad));
    // Only leaves can be frozen.
    let y = params[0].scale(2.0).unwrap();
    assert!(y.requires_grad_(false).is_err());
}

#[test]
fn errors_inside_containers_name_the_layer() {
    let mut rng = seeded_rng(0);
    let lenet = Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(1, 6, 5).padding(2), &mut rng).unwrap())
        .push(Sigmoid)
        .push(Conv2d::new(Conv2dConfig::new(6, 16, 5), &mut rng).unwrap());
    let x = Var::new(Tensor::zeros(&[1, 1, 4, 4]).unwrap());
    let e = lenet.forward(&x).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("2 (Conv2d(6, 16, kernel_size=(5, 5), ...)): conv2d: "),
        "{e}"
    );
    assert!(matches!(e.root(), Error::Shape { op: "conv2d", .. }));
    let outer = Sequential::new().push_named("features", lenet).unwrap();
    let e = outer.forward(&x).unwrap_err().to_string();
    assert!(
        e.starts_with("features.2 (Conv2d(6, 16, kernel_size=(5, 5), ...)): conv2d: "),
        "{e}"
    );
    assert!(!e.contains('\n'));
}

/// A user module exposing nested names by listing its children.
struct Stage {
    conv: Conv2d,
    bn: BatchNorm,
    blocks: Sequential,
}

impl Module for Stage {
    fn forward(&self, x: &Var) -> Result<Var> {
        let y = forward_child("conv", &self.conv, x)?;
        let y = forward_child("bn", &self.bn, &y)?;
        forward_child("blocks", &self.blocks, &y)
    }
    fn describe(&self) -> String {
        describe_children("Stage", self)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("conv".into(), &self.conv),
            ("bn".into(), &self.bn),
            ("blocks".into(), &self.blocks),
        ]
    }
}

#[test]
fn user_modules_give_nested_names_display_and_modes() {
    let mut rng = seeded_rng(2);
    let stage = Stage {
        conv: Conv2d::new(Conv2dConfig::new(2, 4, 1).bias(false), &mut rng).unwrap(),
        bn: BatchNorm2d::new(4),
        blocks: Sequential::new().push(Residual::new(
            Sequential::new()
                .push_named("bn1", BatchNorm2d::new(4))
                .unwrap(),
        )),
    };
    let mut net = Sequential::new().push_named("layer1", stage).unwrap();
    let sd: Vec<String> = convlab::io::state_dict(&net)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        sd,
        [
            "layer1.conv.weight",
            "layer1.bn.weight",
            "layer1.bn.bias",
            "layer1.bn.running_mean",
            "layer1.bn.running_var",
            "layer1.bn.num_batches_tracked",
            "layer1.blocks.0.bn1.weight",
            "layer1.blocks.0.bn1.bias",
            "layer1.blocks.0.bn1.running_mean",
            "layer1.blocks.0.bn1.running_var",
            "layer1.blocks.0.bn1.num_batches_tracked",
        ]
    );
    assert_eq!(
        net.to_string(),
        "Sequential(\n  (layer1): Stage(\n    (conv): Conv2d(2, 4, kernel_size=(1, 1), stride=(1, 1), bias=False)\n    \
         (bn): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)\n    \
         (blocks): Sequential(\n      (0): Residual(\n        (bn1): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)\n      )\n    )\n  )\n)"
    );
    net.eval();
    let x = Var::new(Tensor::ones(&[2, 2, 3, 3]).unwrap());
    net.forward(&x).unwrap();
    assert!(net
        .named_buffers()
        .iter()
        .filter(|(_, b)| b.is_count())
        .all(|(_, b)| b.count_value() == Some(0)));
    net.train();
    net.forward(&x).unwrap();
    assert!(net
        .named_buffers()
        .iter()
        .filter(|(_, b)| b.is_count())
        .all(|(_, b)| b.count_value() == Some(1)));
}

#[test]
fn names_pytorch_refuses_are_refused() {
    assert!(Sequential::new().push_named("a.b", ReLU).is_err());
    assert!(Sequential::new().push_named("", ReLU).is_err());
    let e = Sequential::new()
        .push_named("relu", ReLU)
        .unwrap()
        .push_named("relu", Tanh)
        .err()
        .unwrap();
    assert!(e.to_string().contains("already named 'relu'"), "{e}");
    let bn = Residual::new(Sequential::new()).post(BatchNorm2d::new(2));
    assert!(bn.is_err());
}

#[test]
fn flatten_of_a_vector_is_an_error_as_in_pytorch() {
    let v = Var::new(Tensor::ones(&[3]).unwrap());
    let e = Flatten.forward(&v).unwrap_err().to_string();
    assert!(e.contains("dimension 1 is out of range"), "{e}");
    let m = Var::new(Tensor::ones(&[2, 3, 4]).unwrap());
    assert_eq!(Flatten.forward(&m).unwrap().shape(), vec![2, 12]);
    assert_eq!(Identity.forward(&m).unwrap().tensor(), m.tensor());
}

#[test]
fn dropout_scales_kept_values_and_masks_the_gradient() {
    let drop = Dropout::with_seed(0.25, 11).unwrap();
    let x = Var::param(Tensor::randn(&[40, 50], &mut seeded_rng(3)).unwrap());
    let y = drop.forward(&x).unwrap();
    let g = Tensor::randn(&[40, 50], &mut seeded_rng(4)).unwrap();
    y.backward_with(g.clone()).unwrap();
    let (xs, ys, gx) = (x.tensor(), y.tensor(), x.grad().unwrap());
    let mut kept = 0;
    for i in 0..xs.numel() {
        let (xv, yv, gv, gi) = (xs.data()[i], ys.data()[i], gx.data()[i], g.data()[i]);
        if yv == 0.0 && xv != 0.0 {
            assert_eq!(gv, 0.0);
        } else {
            kept += 1;
            assert!((yv - xv / 0.75).abs() <= 1e-6 * xv.abs().max(1.0));
            assert!((gv - gi / 0.75).abs() <= 1e-6 * gi.abs().max(1.0));
        }
    }
    // 2000 draws at 0.75: within 5 standard deviations (19.4).
    assert!((kept as f64 - 1500.0).abs() < 97.0, "{kept}");

    let drop2 = Dropout2d::with_seed(0.5, 12).unwrap();
    let x = Var::param(Tensor::ones(&[4, 6, 3, 3]).unwrap());
    let y = drop2.forward(&x).unwrap();
    y.sum().unwrap().backward().unwrap();
    let (ys, gx) = (y.tensor(), x.grad().unwrap());
    for (plane, gplane) in ys.data().chunks(9).zip(gx.data().chunks(9)) {
        assert!(plane.iter().all(|&v| v == plane[0]) && (plane[0] == 0.0 || plane[0] == 2.0));
        assert_eq!(plane, gplane);
    }
}

/// Central differences of `f(x) . g` against the analytic gradient.
fn check_gradient(x: &Tensor, f: impl Fn(&Var) -> Var) {
    let xv = Var::param(x.clone());
    let y = f(&xv);
    let g = Tensor::randn(&y.shape(), &mut seeded_rng(7)).unwrap();
    y.backward_with(g.clone()).unwrap();
    let analytic = xv.grad().unwrap();
    let dot = |t: &Tensor| -> f64 {
        t.data()
            .iter()
            .zip(g.data())
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    let h = 1e-2f32;
    for i in 0..x.numel() {
        let mut plus = x.clone();
        plus.data_mut()[i] += h;
        let mut minus = x.clone();
        minus.data_mut()[i] -= h;
        let fp = dot(&no_grad(|| f(&Var::new(plus))).tensor());
        let fm = dot(&no_grad(|| f(&Var::new(minus))).tensor());
        let numeric = (fp - fm) / (2.0 * h as f64);
        let a = analytic.data()[i] as f64;
        assert!(
            (a - numeric).abs() <= 2e-2 * numeric.abs().max(1.0),
            "element {i}: {a} vs {numeric}"
        );
    }
}

#[test]
fn residual_and_concat_gradients_match_finite_differences() {
    let mut rng = seeded_rng(8);
    let body = Sequential::new()
        .push_named(
            "conv1",
            Conv2d::new(Conv2dConfig::new(2, 2, 3).padding(1), &mut rng).unwrap(),
        )
        .unwrap()
        .push_named("tanh", Tanh)
        .unwrap();
    let res = Residual::new(body).post(Sigmoid).unwrap();
    let x = Tensor::randn(&[2, 2, 3, 3], &mut rng).unwrap();
    check_gradient(&x, |v| res.forward(v).unwrap());

    let cat = Concat::new()
        .input()
        .branch(
            "a",
            Conv2d::new(Conv2dConfig::new(2, 3, 1), &mut rng).unwrap(),
        )
        .unwrap()
        .inline(Sequential::new().push_named("t", Tanh).unwrap());
    let y = cat.forward(&Var::new(x.clone())).unwrap();
    assert_eq!(y.shape(), vec![2, 7, 3, 3]);
    check_gradient(&x, |v| cat.forward(v).unwrap());
    let names: Vec<String> = cat.children().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "t"]);
    // Parts that disagree outside the channels are an error.
    let bad = Concat::new()
        .input()
        .branch("pool", MaxPool2d::new(2))
        .unwrap();
    let e = bad
        .forward(&Var::new(Tensor::ones(&[1, 1, 4, 4]).unwrap()))
        .unwrap_err();
    assert!(
        e.to_string().contains("must match except in dimension 1"),
        "{e}"
    );
}

#[test]
fn batch_norm_gradients_match_finite_differences_in_both_modes() {
    let mut bn = BatchNorm2d::new(3);
    let x = Tensor::randn(&[2, 3, 2, 2], &mut seeded_rng(12)).unwrap();
    // Train mode: the statistics depend on x.
    check_gradient(&x, |v| bn.forward(v).unwrap());
    bn.eval();
    check_gradient(&x, |v| bn.forward(v).unwrap());
}
