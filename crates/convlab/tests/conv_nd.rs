//! The 3-D convolutions against PyTorch, and PyTorch's own OpInfo inputs
//! for the 1-D and 3-D ones.
//!
//! `tests/fixtures/conv3d.json` (from `gen_conv3d.py`): 15 conv3d and
//! conv_transpose3d cases (strides, dilation, groups, `'same'` with even
//! kernels, unbatched input, the three non-zero padding modes, a layer
//! the 2-D Winograd path takes), forward and every gradient, under every
//! algorithm the inner 2-D convolution can run (the recorder asserts it
//! ran) and through autograd; the 10 calls PyTorch refuses.
//!
//! `tests/fixtures/conv_opinfo.json`: every float32 sample OpInfo has for
//! `nn.functional.conv1d`, `conv3d`, `conv_transpose1d` and
//! `conv_transpose3d` (50), forward and gradients as dispatched; of its
//! 20 error inputs, the 9 convlab's types can express are refused with a
//! one-line error naming the op (the other 11 need a second dtype or a
//! negative size, which `f32` tensors and `usize` parameters cannot hold).

mod common;

use common::{assert_close, dot, fixture_dir, forced, TOL};
use convlab::autograd::Var;
use convlab::ops::{
    conv1d, conv1d_backward, conv3d, conv3d_backward, conv_transpose1d, conv_transpose1d_backward,
    conv_transpose3d, conv_transpose3d_backward, Conv1dParams, Conv2dGrads, Conv3dParams, ConvAlgo,
    ConvTranspose1dParams, ConvTranspose3dParams, Padding1d, Padding3d, Triple,
};
use convlab::{PaddingMode, Tensor};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn tensor(v: &Value, shape: &Value) -> Tensor {
    Tensor::from_vec(floats(v), &dims(shape)).unwrap()
}

fn vector(v: &Value) -> Option<Tensor> {
    let data = floats(v.as_array().map(|_| v)?);
    let n = data.len();
    Some(Tensor::from_vec(data, &[n]).unwrap())
}

/// The gradient every fixture feeds back: `sin(0.37 i + 0.1)` as f32.
fn grad_output(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| (0.37 * i as f64 + 0.1).sin() as f32)
        .collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// A parameter of `rank` axes: an int for all, or a list (a one-element
/// list for all, as PyTorch expands it).
fn axes<const R: usize>(p: &Value, key: &str, default: usize) -> [usize; R] {
    match p.get(key) {
        None => [default; R],
        Some(Value::Array(a)) if a.len() == 1 => [a[0].as_u64().unwrap() as usize; R],
        Some(Value::Array(a)) => std::array::from_fn(|i| a[i].as_u64().unwrap() as usize),
        Some(v) => [v.as_u64().unwrap() as usize; R],
    }
}

fn padding_mode(p: &Value) -> PaddingMode {
    match p.get("padding_mode").and_then(Value::as_str) {
        Some("reflect") => PaddingMode::Reflect,
        Some("replicate") => PaddingMode::Replicate,
        Some("circular") => PaddingMode::Circular,
        _ => PaddingMode::Zeros,
    }
}

fn named_padding(p: &Value) -> Option<&str> {
    p.get("padding").and_then(Value::as_str)
}

fn conv3d_params(p: &Value) -> Conv3dParams {
    let padding = match named_padding(p) {
        Some("same") => Padding3d::Same,
        Some(_) => Padding3d::Valid,
        None => Padding3d::Sides(axes(p, "padding", 0)),
    };
    Conv3dParams::new()
        .stride(axes::<3>(p, "stride", 1))
        .padding(padding)
        .dilation(axes::<3>(p, "dilation", 1))
        .groups(axes::<1>(p, "groups", 1)[0])
        .padding_mode(padding_mode(p))
}

fn transpose3d_params(p: &Value) -> ConvTranspose3dParams {
    ConvTranspose3dParams::new()
        .stride(axes::<3>(p, "stride", 1))
        .padding(axes::<3>(p, "padding", 0))
        .output_padding(axes::<3>(p, "output_padding", 0))
        .dilation(axes::<3>(p, "dilation", 1))
        .groups(axes::<1>(p, "groups", 1)[0])
}

fn conv1d_params(p: &Value) -> Conv1dParams {
    let padding = match named_padding(p) {
        Some("same") => Padding1d::Same,
        Some(_) => Padding1d::Valid,
        None => Padding1d::Both(axes::<1>(p, "padding", 0)[0]),
    };
    Conv1dParams::new()
        .stride(axes::<1>(p, "stride", 1)[0])
        .padding(padding)
        .dilation(axes::<1>(p, "dilation", 1)[0])
        .groups(axes::<1>(p, "groups", 1)[0])
        .padding_mode(padding_mode(p))
}

fn transpose1d_params(p: &Value) -> ConvTranspose1dParams {
    ConvTranspose1dParams::new()
        .stride(axes::<1>(p, "stride", 1)[0])
        .padding(axes::<1>(p, "padding", 0)[0])
        .output_padding(axes::<1>(p, "output_padding", 0)[0])
        .dilation(axes::<1>(p, "dilation", 1)[0])
        .groups(axes::<1>(p, "groups", 1)[0])
}

/// One fixture case: its operands, params and what PyTorch computed.
struct Case<'a> {
    c: &'a Value,
    name: String,
    x: Tensor,
    w: Tensor,
    b: Option<Tensor>,
    go: Tensor,
}

impl<'a> Case<'a> {
    fn new(c: &'a Value) -> Self {
        Case {
            c,
            name: c["name"].as_str().unwrap().to_string(),
            x: tensor(&c["x"], &c["x_shape"]),
            w: tensor(&c["w"], &c["w_shape"]),
            b: vector(&c["bias"]),
            go: grad_output(&dims(&c["y_shape"])),
        }
    }

    fn op(&self) -> &str {
        self.c["op"].as_str().unwrap()
    }

    fn forward(&self) -> convlab::Result<Tensor> {
        let (x, w, b, p) = (&self.x, &self.w, self.b.as_ref(), &self.c["params"]);
        match self.op() {
            "conv1d" => conv1d(x, w, b, &conv1d_params(p)),
            "conv_transpose1d" => conv_transpose1d(x, w, b, &transpose1d_params(p)),
            "conv3d" => conv3d(x, w, b, &conv3d_params(p)),
            "conv_transpose3d" => conv_transpose3d(x, w, b, &transpose3d_params(p)),
            other => panic!("unknown op {other}"),
        }
    }

    fn backward(&self) -> convlab::Result<Conv2dGrads> {
        let (x, w, go, p) = (&self.x, &self.w, &self.go, &self.c["params"]);
        let bias = self.b.is_some();
        match self.op() {
            "conv1d" => conv1d_backward(x, w, bias, go, &conv1d_params(p)),
            "conv_transpose1d" => conv_transpose1d_backward(x, w, bias, go, &transpose1d_params(p)),
            "conv3d" => conv3d_backward(x, w, bias, go, &conv3d_params(p)),
            "conv_transpose3d" => conv_transpose3d_backward(x, w, bias, go, &transpose3d_params(p)),
            other => panic!("unknown op {other}"),
        }
    }

    fn autograd(&self) -> convlab::Result<(Tensor, Tensor, Option<Tensor>)> {
        let (xv, wv) = (Var::param(self.x.clone()), Var::param(self.w.clone()));
        let bv = self.b.clone().map(Var::param);
        let p = &self.c["params"];
        let y = match self.op() {
            "conv1d" => xv.conv1d(&wv, bv.as_ref(), &conv1d_params(p)),
            "conv_transpose1d" => xv.conv_transpose1d(&wv, bv.as_ref(), &transpose1d_params(p)),
            "conv3d" => xv.conv3d(&wv, bv.as_ref(), &conv3d_params(p)),
            "conv_transpose3d" => xv.conv_transpose3d(&wv, bv.as_ref(), &transpose3d_params(p)),
            other => panic!("unknown op {other}"),
        }?;
        y.backward_with(self.go.clone())?;
        Ok((
            xv.grad().unwrap(),
            wv.grad().unwrap(),
            bv.map(|b| b.grad().unwrap()),
        ))
    }

    /// `y` against PyTorch's: in full, or its strided sample and its dot
    /// with the fed-back gradient.
    fn check_output(&self, what: &str, y: &Tensor) {
        assert_eq!(y.shape(), dims(&self.c["y_shape"]), "{what}: shape");
        if self.c.get("y").is_some() {
            assert_close(what, y, &tensor(&self.c["y"], &self.c["y_shape"]));
            return;
        }
        let step = self.c["y_step"].as_u64().unwrap() as usize;
        let sample: Vec<f32> = y.data().iter().step_by(step).copied().collect();
        let n = sample.len();
        let want = vector(&self.c["y_sample"]).unwrap();
        assert_close(what, &Tensor::from_vec(sample, &[n]).unwrap(), &want);
        let (ours, theirs) = (dot(y, &self.go), self.c["y_dot"].as_f64().unwrap());
        let peak = want.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let scale = self.go.data().len() as f64 * f64::from(peak);
        assert!(
            (ours - theirs).abs() <= TOL as f64 * scale.max(1.0),
            "{what}: dot {ours} against {theirs}"
        );
    }

    fn check_grads(&self, what: &str, gx: &Tensor, gw: &Tensor, gb: Option<&Tensor>) {
        let c = self.c;
        assert_close(
            &format!("{what} grad_input"),
            gx,
            &tensor(&c["grad_x"], &c["x_shape"]),
        );
        assert_close(
            &format!("{what} grad_weight"),
            gw,
            &tensor(&c["grad_w"], &c["w_shape"]),
        );
        if let (Some(ours), Some(want)) = (gb, vector(&c["grad_b"])) {
            assert_close(&format!("{what} grad_bias"), ours, &want);
        }
    }
}

fn load(file: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_3d_case_matches_pytorch_under_every_algorithm() {
    let f = load("conv3d.json");
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    let mut runs = 0;
    for c in cases {
        let case = Case::new(c);
        for algo in std::iter::once(ConvAlgo::Auto).chain(ConvAlgo::ALL) {
            let what = |part: &str| format!("{} {part} ({})", case.name, algo.name());
            if let Some(y) = forced(algo, || case.forward()) {
                case.check_output(&what("forward"), &y);
                runs += 1;
            }
            if let Some(g) = forced(algo, || case.backward()) {
                case.check_grads(
                    &what("backward"),
                    &g.grad_input,
                    &g.grad_weight,
                    g.grad_bias.as_ref(),
                );
                runs += 1;
            }
        }
        let (gx, gw, gb) = case.autograd().unwrap();
        case.check_grads(&format!("{} autograd", case.name), &gx, &gw, gb.as_ref());
    }
    assert!(runs > 100, "only {runs} forced runs");
}

#[test]
fn what_pytorch_refuses_in_3d_is_an_error_naming_the_op() {
    let f = load("conv3d.json");
    let errors = f["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 10);
    for e in errors {
        assert_refused(e);
    }
}

/// The call `e` describes is an error: one line, naming its op.
fn assert_refused(e: &Value) {
    let name = e["name"].as_str().unwrap();
    let (x, w) = (
        Tensor::zeros(&dims(&e["x_shape"])).unwrap(),
        Tensor::zeros(&dims(&e["w_shape"])).unwrap(),
    );
    let bias = e.get("bias").and_then(Value::as_bool) == Some(true);
    let cout = if e["op"].as_str().unwrap().starts_with("conv_transpose") {
        w.shape().get(1).copied().unwrap_or(1)
    } else {
        w.shape()[0]
    };
    let b = bias.then(|| Tensor::zeros(&[cout]).unwrap());
    let case = Case {
        c: e,
        name: name.to_string(),
        x,
        w,
        b,
        go: grad_output(&[1]),
    };
    let op = e["op"].as_str().unwrap();
    let msg = match case.forward() {
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

/// Whether OpInfo's error input `e` can be written with convlab's types:
/// one dtype (f32) and sizes that are `usize`.
fn expressible(e: &Value) -> bool {
    let dtypes = e["dtypes"].as_array().unwrap();
    let negative = e["params"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| match v {
            Value::Array(a) => a.clone(),
            v => vec![v.clone()],
        })
        .any(|v| v.as_i64().is_some_and(|i| i < 0));
    dtypes.len() == 1 && !negative
}

#[test]
fn pytorchs_opinfo_samples_for_1d_and_3d_match() {
    let f = load("conv_opinfo.json");
    let samples = f["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 50);
    for c in samples {
        let case = Case::new(c);
        let y = case
            .forward()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        case.check_output(&format!("{} forward", case.name), &y);
        let g = case.backward().unwrap();
        case.check_grads(
            &case.name,
            &g.grad_input,
            &g.grad_weight,
            g.grad_bias.as_ref(),
        );
    }
}

#[test]
fn pytorchs_opinfo_error_inputs_for_1d_and_3d_are_refused() {
    let f = load("conv_opinfo.json");
    let errors = f["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 20);
    let checked: Vec<_> = errors.iter().filter(|e| expressible(e)).collect();
    assert_eq!(checked.len(), 9);
    for e in checked {
        assert_refused(e);
    }
}

/// The unfolded-depth path's stride-1 3x3x3 layer gives the same bits at
/// one and two threads, and a unit triple prints as PyTorch's tuple.
#[test]
fn conv3d_is_deterministic_across_threads() {
    let x = common::rand_tensor(&[2, 8, 6, 12, 12], 5);
    let w = common::rand_tensor(&[16, 8, 3, 3, 3], 6);
    let p = Conv3dParams::new().padding(1);
    let on = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| conv3d(&x, &w, None, &p).unwrap())
    };
    let (one, two) = (on(1), on(2));
    assert_eq!(one, two);
    assert_eq!(Triple([1, 2, 3]).to_string(), "(1, 2, 3)");
}

/// `nn.Conv3d` and `nn.ConvTranspose3d`: PyTorch's reprs (printed by torch
/// 2.15 for the same arguments), state-dict names and weight shapes, the
/// functional op's result.
#[test]
fn the_3d_layers_are_pytorchs() {
    use convlab::nn::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig, Module};
    let mut rng = convlab::seeded_rng(3);
    let conv = Conv3d::new(Conv3dConfig::new(3, 8, 3).padding(1), &mut rng).unwrap();
    assert_eq!(
        conv.to_string(),
        "Conv3d(3, 8, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))"
    );
    let odd = Conv3dConfig::new(4, 4, (1, 3, 3))
        .stride((1, 2, 2))
        .padding((0, 1, 1))
        .dilation((1, 2, 2))
        .groups(2)
        .bias(false)
        .padding_mode(PaddingMode::Replicate);
    assert_eq!(
        Conv3d::zeroed(odd).unwrap().describe(),
        "Conv3d(4, 4, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), \
         dilation=(1, 2, 2), groups=2, bias=False, padding_mode=replicate)"
    );
    let same = Conv3d::zeroed(Conv3dConfig::new(4, 4, 3).padding(Padding3d::Same)).unwrap();
    assert_eq!(
        same.describe(),
        "Conv3d(4, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=same)"
    );
    let up = ConvTranspose3dConfig::new(4, 6, (3, 2, 2))
        .stride((1, 2, 2))
        .padding(1)
        .output_padding((0, 1, 1))
        .groups(2)
        .dilation((2, 1, 1))
        .bias(false);
    let up = ConvTranspose3d::new(up, &mut rng).unwrap();
    assert_eq!(
        up.describe(),
        "ConvTranspose3d(4, 6, kernel_size=(3, 2, 2), stride=(1, 2, 2), padding=(1, 1, 1), \
         dilation=(2, 1, 1), output_padding=(0, 1, 1), groups=2, bias=False)"
    );
    assert_eq!(up.weight.shape(), [4, 3, 3, 2, 2]);
    let names: Vec<String> = conv
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["weight", "bias"]);
    assert_eq!(conv.weight.shape(), [8, 3, 3, 3, 3]);
    let x = common::rand_tensor(&[2, 3, 4, 6, 6], 4);
    let y = conv.forward(&Var::new(x.clone())).unwrap().tensor();
    let want = conv3d(
        &x,
        &conv.weight.tensor(),
        Some(&conv.bias.as_ref().unwrap().tensor()),
        &conv.config.params,
    )
    .unwrap();
    assert_eq!(y, want);
    let x = common::rand_tensor(&[1, 4, 3, 4, 4], 5);
    let y = up.forward(&Var::new(x.clone())).unwrap().tensor();
    let want = conv_transpose3d(&x, &up.weight.tensor(), None, &up.config.params).unwrap();
    assert_eq!(y, want);
    assert!(Conv3d::zeroed(Conv3dConfig::new(3, 4, 3).groups(2)).is_err());
    assert!(ConvTranspose3d::zeroed(ConvTranspose3dConfig::new(3, 4, (3, 0, 3))).is_err());
}

/// Every gradient of conv3d (reflect padding, stride, groups, dilation)
/// and conv_transpose3d (output padding) against central differences of
/// `sum(y * g)` in f64.
#[test]
fn the_3d_gradients_match_finite_differences() {
    let g = |shape: &[usize]| grad_output(shape);
    let loss = |y: convlab::Result<Tensor>, go: &Tensor| dot(&y.unwrap(), go);
    let x = common::rand_tensor(&[1, 4, 4, 5, 5], 7);
    let w = common::rand_tensor(&[4, 2, 2, 3, 2], 8);
    let b = common::rand_tensor(&[4], 9);
    let p = Conv3dParams::new()
        .stride((1, 2, 1))
        .padding((1, 1, 0))
        .dilation((2, 1, 1))
        .groups(2)
        .padding_mode(PaddingMode::Reflect);
    let go = g(conv3d(&x, &w, Some(&b), &p).unwrap().shape());
    let gr = conv3d_backward(&x, &w, true, &go, &p).unwrap();
    common::check_gradient("conv3d input", &x, &gr.grad_input, 1e-2, 2e-3, |x| {
        loss(conv3d(x, &w, Some(&b), &p), &go)
    });
    common::check_gradient("conv3d weight", &w, &gr.grad_weight, 1e-2, 2e-3, |w| {
        loss(conv3d(&x, w, Some(&b), &p), &go)
    });
    common::check_gradient(
        "conv3d bias",
        &b,
        gr.grad_bias.as_ref().unwrap(),
        1e-2,
        2e-3,
        |b| loss(conv3d(&x, &w, Some(b), &p), &go),
    );
    let x = common::rand_tensor(&[2, 4, 2, 3, 3], 10);
    let w = common::rand_tensor(&[4, 3, 2, 2, 3], 11);
    let p = ConvTranspose3dParams::new()
        .stride((2, 1, 2))
        .output_padding((1, 0, 1))
        .padding((0, 1, 0))
        .groups(2);
    let b = common::rand_tensor(&[6], 12);
    let go = g(conv_transpose3d(&x, &w, Some(&b), &p).unwrap().shape());
    let gr = conv_transpose3d_backward(&x, &w, true, &go, &p).unwrap();
    common::check_gradient(
        "conv_transpose3d input",
        &x,
        &gr.grad_input,
        1e-2,
        2e-3,
        |x| loss(conv_transpose3d(x, &w, Some(&b), &p), &go),
    );
    common::check_gradient(
        "conv_transpose3d weight",
        &w,
        &gr.grad_weight,
        1e-2,
        2e-3,
        |w| loss(conv_transpose3d(&x, w, Some(&b), &p), &go),
    );
    let gb = gr.grad_bias.as_ref().unwrap();
    common::check_gradient("conv_transpose3d bias", &b, gb, 1e-2, 2e-3, |b| {
        loss(conv_transpose3d(&x, &w, Some(b), &p), &go)
    });
}
