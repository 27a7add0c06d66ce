//! conv1d and conv_transpose1d against PyTorch (`tests/fixtures/conv1d.json`,
//! from `gen_conv1d.py`): forward and every gradient of 15 cases (strides,
//! dilation, groups, `'same'`, unbatched input, the three non-zero padding
//! modes, a 41-tap kernel), under every algorithm that can compute each
//! pass (the recorder asserts it ran) and as dispatched, through the
//! functional ops and through autograd; and the 9 calls PyTorch refuses
//! are errors naming the 1-D op.

mod common;

use common::{assert_close, fixture_dir, forced};
use convlab::autograd::Var;
use convlab::ops::{
    conv1d, conv1d_backward, conv_transpose1d, conv_transpose1d_backward, Conv1dParams, ConvAlgo,
    ConvTranspose1dParams, Padding1d,
};
use convlab::{PaddingMode, Tensor};
use serde_json::Value;

fn tensor(v: &Value, shape: &Value) -> Tensor {
    let data: Vec<f32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let shape: Vec<usize> = shape
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    Tensor::from_vec(data, &shape).unwrap()
}

fn vector(v: &Value) -> Option<Tensor> {
    let a = v.as_array()?;
    Some(tensor(v, &Value::from(vec![a.len()])))
}

fn int(p: &Value, key: &str, default: usize) -> usize {
    p.get(key)
        .and_then(Value::as_u64)
        .map_or(default, |v| v as usize)
}

fn conv_params(p: &Value) -> Conv1dParams {
    let padding = match p.get("padding") {
        Some(Value::String(s)) if s == "same" => Padding1d::Same,
        Some(Value::String(s)) if s == "valid" => Padding1d::Valid,
        Some(v) => Padding1d::Both(v.as_u64().unwrap() as usize),
        None => Padding1d::Valid,
    };
    let mode = match p.get("padding_mode").and_then(Value::as_str) {
        Some("reflect") => PaddingMode::Reflect,
        Some("replicate") => PaddingMode::Replicate,
        Some("circular") => PaddingMode::Circular,
        _ => PaddingMode::Zeros,
    };
    Conv1dParams::new()
        .stride(int(p, "stride", 1))
        .padding(padding)
        .dilation(int(p, "dilation", 1))
        .groups(int(p, "groups", 1))
        .padding_mode(mode)
}

fn transpose_params(p: &Value) -> ConvTranspose1dParams {
    ConvTranspose1dParams::new()
        .stride(int(p, "stride", 1))
        .padding(int(p, "padding", 0))
        .output_padding(int(p, "output_padding", 0))
        .dilation(int(p, "dilation", 1))
        .groups(int(p, "groups", 1))
}

fn fixtures() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("conv1d.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_case_matches_pytorch_under_every_algorithm() {
    let f = fixtures();
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    let mut runs = 0;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let x = tensor(&c["x"], &c["x_shape"]);
        let w = tensor(&c["w"], &c["w_shape"]);
        let b = vector(&c["bias"]);
        let go = tensor(&c["grad_output"], &c["y_shape"]);
        let (want_y, want_gx) = (
            tensor(&c["y"], &c["y_shape"]),
            tensor(&c["grad_x"], &c["x_shape"]),
        );
        let want_gw = tensor(&c["grad_w"], &c["w_shape"]);
        let want_gb = vector(&c["grad_b"]);
        let transposed = c["op"] == "conv_transpose1d";
        for algo in std::iter::once(ConvAlgo::Auto).chain(ConvAlgo::ALL) {
            let what = |part: &str| format!("{name} {part} ({})", algo.name());
            let forward = forced(algo, || {
                if transposed {
                    conv_transpose1d(&x, &w, b.as_ref(), &transpose_params(&c["params"]))
                } else {
                    conv1d(&x, &w, b.as_ref(), &conv_params(&c["params"]))
                }
            });
            if let Some(y) = forward {
                assert_close(&what("forward"), &y, &want_y);
                runs += 1;
            }
            let grads = forced(algo, || {
                if transposed {
                    let p = transpose_params(&c["params"]);
                    conv_transpose1d_backward(&x, &w, b.is_some(), &go, &p)
                } else {
                    conv1d_backward(&x, &w, b.is_some(), &go, &conv_params(&c["params"]))
                }
            });
            if let Some(g) = grads {
                assert_close(&what("grad_input"), &g.grad_input, &want_gx);
                assert_close(&what("grad_weight"), &g.grad_weight, &want_gw);
                if let (Some(ours), Some(want)) = (&g.grad_bias, &want_gb) {
                    assert_close(&what("grad_bias"), ours, want);
                }
                runs += 1;
            }
        }
        // Through autograd, as dispatched.
        let (xv, wv) = (Var::param(x.clone()), Var::param(w.clone()));
        let bv = b.clone().map(Var::param);
        let y = if transposed {
            xv.conv_transpose1d(&wv, bv.as_ref(), &transpose_params(&c["params"]))
        } else {
            xv.conv1d(&wv, bv.as_ref(), &conv_params(&c["params"]))
        }
        .unwrap();
        y.backward_with(go.clone()).unwrap();
        assert_close(
            &format!("{name} autograd input"),
            &xv.grad().unwrap(),
            &want_gx,
        );
        assert_close(
            &format!("{name} autograd weight"),
            &wv.grad().unwrap(),
            &want_gw,
        );
        if let (Some(bv), Some(want)) = (&bv, &want_gb) {
            assert_close(&format!("{name} autograd bias"), &bv.grad().unwrap(), want);
        }
    }
    assert!(runs > 100, "only {runs} forced runs");
}

#[test]
fn what_pytorch_refuses_is_an_error_naming_the_op() {
    let f = fixtures();
    let errors = f["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 9);
    for e in errors {
        let name = e["name"].as_str().unwrap();
        let shape = |k: &str| -> Vec<usize> {
            e[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect()
        };
        let (x, w) = (
            Tensor::zeros(&shape("x_shape")).unwrap(),
            Tensor::zeros(&shape("w_shape")).unwrap(),
        );
        let (r, op) = if e["op"] == "conv_transpose1d" {
            let p = transpose_params(&e["params"]);
            (conv_transpose1d(&x, &w, None, &p), "conv_transpose1d")
        } else {
            let p = e["params"].clone();
            // stride 0 cannot come through `int`'s default: set it here.
            let mut params = conv_params(&p);
            if p.get("stride").and_then(Value::as_u64) == Some(0) {
                params = params.stride(0);
            }
            (conv1d(&x, &w, None, &params), "conv1d")
        };
        let msg = match r {
            Ok(y) => panic!(
                "{name}: accepted, gave {:?} (torch: {})",
                y.shape(),
                e["torch"]
            ),
            Err(err) => err.to_string(),
        };
        assert!(msg.starts_with(op), "{name}: {msg}");
        assert!(!msg.contains('\n'), "{name}: {msg}");
    }
}

/// `nn.Conv1d`: PyTorch's repr and state-dict names, PyTorch's weight
/// shape, the functional op's result, `Send + Sync`.
#[test]
fn the_conv1d_layer_is_pytorchs() {
    use convlab::nn::{Conv1d, Conv1dConfig, Module};
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Conv1d>();
    let mut rng = convlab::seeded_rng(3);
    let conv = Conv1d::new(Conv1dConfig::new(8, 16, 9).padding(4), &mut rng).unwrap();
    assert_eq!(
        conv.to_string(),
        "Conv1d(8, 16, kernel_size=(9,), stride=(1,), padding=(4,))"
    );
    let odd = Conv1dConfig::new(4, 4, 3)
        .padding(Padding1d::Same)
        .dilation(2)
        .groups(2)
        .bias(false)
        .padding_mode(PaddingMode::Reflect);
    assert_eq!(
        Conv1d::zeroed(odd).unwrap().describe(),
        "Conv1d(4, 4, kernel_size=(3,), stride=(1,), padding=same, dilation=(2,), groups=2, \
         bias=False, padding_mode=reflect)"
    );
    let names: Vec<String> = conv
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["weight", "bias"]);
    assert_eq!(conv.weight.shape(), [16, 8, 9]);
    let x = common::rand_tensor(&[2, 8, 50], 4);
    let y = conv.forward(&Var::new(x.clone())).unwrap().tensor();
    let want = conv1d(
        &x,
        &conv.weight.tensor(),
        Some(&conv.bias.as_ref().unwrap().tensor()),
        &conv.config.params,
    )
    .unwrap();
    assert_eq!(y, want);
    assert!(Conv1d::zeroed(Conv1dConfig::new(3, 4, 3).groups(2)).is_err());
}

/// `nn.ConvTranspose1d`: PyTorch's reprs (printed by torch 2.15 for the
/// same arguments), weight shape, the functional op's result.
#[test]
fn the_conv_transpose1d_layer_is_pytorchs() {
    use convlab::nn::{ConvTranspose1d, ConvTranspose1dConfig, Module};
    let mut rng = convlab::seeded_rng(5);
    let up = ConvTranspose1d::new(ConvTranspose1dConfig::new(8, 4, 4).stride(2), &mut rng).unwrap();
    assert_eq!(
        up.to_string(),
        "ConvTranspose1d(8, 4, kernel_size=(4,), stride=(2,))"
    );
    let odd = ConvTranspose1dConfig::new(4, 6, 3)
        .stride(2)
        .padding(1)
        .output_padding(1)
        .groups(2)
        .dilation(2)
        .bias(false);
    let odd = ConvTranspose1d::new(odd, &mut rng).unwrap();
    assert_eq!(
        odd.describe(),
        "ConvTranspose1d(4, 6, kernel_size=(3,), stride=(2,), padding=(1,), dilation=(2,), \
         output_padding=(1,), groups=2, bias=False)"
    );
    assert_eq!(odd.weight.shape(), [4, 3, 3]);
    let x = common::rand_tensor(&[2, 4, 9], 6);
    let y = odd.forward(&Var::new(x.clone())).unwrap().tensor();
    let want = conv_transpose1d(&x, &odd.weight.tensor(), None, &odd.config.params).unwrap();
    assert_eq!(y, want);
    assert!(ConvTranspose1d::zeroed(ConvTranspose1dConfig::new(3, 4, 3).groups(2)).is_err());
}
