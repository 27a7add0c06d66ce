//! Conformance with PyTorch: every case in `tests/fixtures/cases.json` is run
//! through convlab and compared with the reference tensors in
//! `tensors.safetensors` (computed by PyTorch in float64, rounded to f32).
//!
//! The fixture directory is `$CONVLAB_FIXTURES` when set, otherwise the
//! repository's `tests/fixtures`. Tolerance per tensor (fixtures README):
//! `max|ours - ref| / max(1, max|ref|) <= 1e-4`, NaN only where the
//! reference has NaN.
//!
//! [`run_case`] dispatches on the case's `op`. Convolution cases run each
//! pass under every algorithm in `ConvAlgo::ALL` (forced) and as
//! dispatched: a forced algorithm either computes the pass (the recorder
//! shows it ran, and nothing else) and meets the same tolerance, or the op
//! says it cannot; every case of every op must run. `tests/fixtures/separable`
//! adds cases whose filters are outer products, for the separable path.

use convlab::ops::{
    self, force_conv_algo, record_conv_algos, AvgPool2dParams, Conv2dParams, ConvAlgo, ConvPass,
    ConvTranspose2dParams, MaxPool2dParams, UnfoldParams,
};
use convlab::Error;
use convlab::{Padding, Pair, Tensor};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The README's tolerance on the normalized max abs error.
const TOLERANCE: f64 = 1e-4;

/// Ops this suite must run: every case of these is checked or the test fails.
const OPS: [&str; 7] = [
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "unfold",
];

fn fixture_dir() -> PathBuf {
    match std::env::var_os("CONVLAB_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"),
    }
}

/// Compare `ours` with `reference` under the README's rule; `Err` says by
/// how much and where.
fn check(name: &str, ours: &Tensor, reference: &Tensor) -> Result<(), String> {
    if ours.shape() != reference.shape() {
        return Err(format!(
            "{name}: shape {:?} but reference {:?}",
            ours.shape(),
            reference.shape()
        ));
    }
    // Scale by the finite reference values; non-finite ones (NaN from max
    // pooling, ±inf) must be matched exactly, in place.
    let scale = reference
        .data()
        .iter()
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, &v| m.max((v as f64).abs()));
    let mut worst = (0.0f64, 0usize);
    for (i, (&a, &b)) in ours.data().iter().zip(reference.data()).enumerate() {
        if b.is_nan() || a.is_nan() {
            if a.is_nan() != b.is_nan() {
                return Err(format!(
                    "{name}: NaN mismatch at flat index {i}: ours {a}, reference {b}"
                ));
            }
            continue;
        }
        if !b.is_finite() || !a.is_finite() {
            if a != b {
                return Err(format!(
                    "{name}: non-finite mismatch at flat index {i}: ours {a}, reference {b}"
                ));
            }
            continue;
        }
        let d = (a as f64 - b as f64).abs();
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let err = worst.0 / scale;
    if err > TOLERANCE {
        let i = worst.1;
        return Err(format!(
            "{name}: normalized error {err:.3e} > {TOLERANCE:e} (max |diff| {:.3e} at flat index {i}: ours {}, reference {})",
            worst.0,
            ours.data()[i],
            reference.data()[i]
        ));
    }
    Ok(())
}

/// One case of `cases.json`, with access to its tensors and parameters.
struct Case<'a> {
    json: &'a Value,
    st: &'a SafeTensors<'a>,
}

impl Case<'_> {
    fn name(&self) -> &str {
        self.json["name"].as_str().unwrap_or("<unnamed>")
    }
    fn op(&self) -> &str {
        self.json["op"].as_str().unwrap_or("<no op>")
    }
    fn param(&self, key: &str) -> Result<&Value, String> {
        self.json["params"]
            .get(key)
            .ok_or_else(|| format!("params has no '{key}'"))
    }
    fn pair(&self, key: &str) -> Result<Pair, String> {
        let v = self.param(key)?;
        let n = |x: &Value| x.as_u64().map(|u| u as usize);
        match v.as_array().map(|a| a.as_slice()) {
            Some([h, w]) => match (n(h), n(w)) {
                (Some(h), Some(w)) => Ok(Pair(h, w)),
                _ => Err(format!("params.{key} = {v} is not two sizes")),
            },
            _ => n(v)
                .map(Pair::from)
                .ok_or_else(|| format!("params.{key} = {v} is not a size or a pair")),
        }
    }
    fn flag(&self, key: &str) -> Result<bool, String> {
        self.param(key)?
            .as_bool()
            .ok_or_else(|| format!("params.{key} is not a bool"))
    }
    fn tensor(&self, key: &str) -> Result<Tensor, String> {
        let stored = self.json["tensors"][key]
            .as_str()
            .ok_or_else(|| format!("tensors has no '{key}'"))?;
        let view = self
            .st
            .tensor(stored)
            .map_err(|e| format!("tensor '{stored}': {e}"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor '{stored}' is {:?}, not F32", view.dtype()));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Tensor::from_vec(data, view.shape()).map_err(|e| e.to_string())
    }
}

/// Which passes each forced algorithm computed, over a fixture run.
type Coverage = BTreeMap<(&'static str, &'static str), usize>;

/// `f`'s result under `algo`, when it computed its passes: the recorder
/// saw exactly the passes `ran` (in any order: passes run side by side),
/// each computed by `algo` when forced; `None` when a forced `algo`
/// reported that it cannot compute a pass.
fn ran<T>(
    algo: ConvAlgo,
    ran: &[(&'static str, ConvPass)],
    f: impl FnOnce() -> convlab::Result<T>,
) -> Result<Option<T>, String> {
    let _forced = force_conv_algo(algo);
    let recorder = record_conv_algos();
    match f() {
        Ok(v) => {
            let records = recorder.take();
            let seen: Vec<_> = records.iter().map(|r| (r.op, r.pass)).collect();
            if seen.len() != ran.len() || ran.iter().any(|r| !seen.contains(r)) {
                return Err(format!(
                    "[{}] ran {records:?}, expected {ran:?}",
                    algo.name()
                ));
            }
            if let Some(r) = records
                .iter()
                .find(|r| algo != ConvAlgo::Auto && r.algo != algo)
            {
                return Err(format!(
                    "[{}] forced, but {} ran",
                    algo.name(),
                    r.algo.name()
                ));
            }
            Ok(Some(v))
        }
        Err(Error::Param {
            param: "algorithm",
            msg,
            ..
        }) if algo != ConvAlgo::Auto => {
            if !msg.contains(algo.name()) {
                return Err(format!(
                    "[{}] an error naming another algorithm: {msg}",
                    algo.name()
                ));
            }
            Ok(None)
        }
        Err(e) => Err(format!("[{}] {e}", algo.name())),
    }
}

/// The padding of a conv2d case.
fn conv2d_params(case: &Case, groups: usize) -> Result<Conv2dParams, String> {
    let e = |e: convlab::Error| e.to_string();
    let padding: Padding = match case.param("padding")? {
        Value::String(s) => s.parse().map_err(e)?,
        _ => case.pair("padding")?.into(),
    };
    let mode = case
        .param("padding_mode")?
        .as_str()
        .ok_or("params.padding_mode is not a string")?
        .parse()
        .map_err(e)?;
    Ok(Conv2dParams::new()
        .stride(case.pair("stride")?)
        .padding(padding)
        .dilation(case.pair("dilation")?)
        .groups(groups)
        .padding_mode(mode))
}

/// Run a conv2d case's every pass under `algo`, recording in `covered`
/// which passes it computed.
fn run_conv2d(case: &Case, algo: ConvAlgo, covered: &mut Coverage) -> Result<(), String> {
    let (x, w, gy) = (
        case.tensor("input")?,
        case.tensor("weight")?,
        case.tensor("grad_output")?,
    );
    let bias = if case.flag("bias")? {
        Some(case.tensor("bias")?)
    } else {
        None
    };
    let groups = case
        .param("groups")?
        .as_u64()
        .ok_or("params.groups is not a size")? as usize;
    let p = conv2d_params(case, groups)?;
    let mut results = Vec::new();
    let mut count = |pass: &'static str| *covered.entry((algo.name(), pass)).or_default() += 1;
    if let Some(y) = ran(algo, &[("conv2d", ConvPass::Forward)], || {
        ops::conv2d(&x, &w, bias.as_ref(), &p)
    })? {
        count("forward");
        results.push(check("output", &y, &case.tensor("output")?));
    }
    let backward = [("conv2d_backward", ConvPass::InputGrad)];
    if let Some(gx) = ran(algo, &backward, || {
        ops::conv2d_backward_input(x.shape(), &w, &gy, &p)
    })? {
        count("input gradient");
        results.push(check("grad_input", &gx, &case.tensor("grad_input")?));
    }
    let backward = [("conv2d_backward", ConvPass::WeightGrad)];
    if let Some(gw) = ran(algo, &backward, || {
        ops::conv2d_backward_weight(&x, w.shape(), &gy, &p)
    })? {
        count("weight gradient");
        results.push(check("grad_weight", &gw, &case.tensor("grad_weight")?));
    }
    if bias.is_some() {
        let gb = ops::conv2d_backward_bias(&gy).map_err(|e| e.to_string())?;
        results.push(check("grad_bias", &gb, &case.tensor("grad_bias")?));
    }
    errors_of(algo, results)
}

/// Run a conv_transpose2d case under `algo` (its forward alone, then both
/// gradients together), recording in `covered` which passes it computed.
fn run_conv_transpose2d(case: &Case, algo: ConvAlgo, covered: &mut Coverage) -> Result<(), String> {
    let (x, w, gy) = (
        case.tensor("input")?,
        case.tensor("weight")?,
        case.tensor("grad_output")?,
    );
    let with_bias = case.flag("bias")?;
    let bias = if with_bias {
        Some(case.tensor("bias")?)
    } else {
        None
    };
    let groups = case
        .param("groups")?
        .as_u64()
        .ok_or("params.groups is not a size")? as usize;
    let p = ConvTranspose2dParams::new()
        .stride(case.pair("stride")?)
        .padding(case.pair("padding")?)
        .output_padding(case.pair("output_padding")?)
        .dilation(case.pair("dilation")?)
        .groups(groups);
    let mut results = Vec::new();
    let mut count = |pass: &'static str| *covered.entry((algo.name(), pass)).or_default() += 1;
    if let Some(y) = ran(algo, &[("conv_transpose2d", ConvPass::Forward)], || {
        ops::conv_transpose2d(&x, &w, bias.as_ref(), &p)
    })? {
        count("transposed forward");
        results.push(check("output", &y, &case.tensor("output")?));
    }
    let op = "conv_transpose2d_backward";
    let passes = [(op, ConvPass::InputGrad), (op, ConvPass::WeightGrad)];
    if let Some(grads) = ran(algo, &passes, || {
        ops::conv_transpose2d_backward(&x, &w, with_bias, &gy, &p)
    })? {
        count("transposed gradients");
        results.push(check(
            "grad_input",
            &grads.grad_input,
            &case.tensor("grad_input")?,
        ));
        results.push(check(
            "grad_weight",
            &grads.grad_weight,
            &case.tensor("grad_weight")?,
        ));
        match (&grads.grad_bias, with_bias) {
            (Some(gb), true) => results.push(check("grad_bias", gb, &case.tensor("grad_bias")?)),
            (None, false) => {}
            _ => results.push(Err("grad_bias present/absent mismatch".into())),
        }
    }
    errors_of(algo, results)
}

/// The mismatches of one algorithm's run, together.
fn errors_of(algo: ConvAlgo, results: Vec<Result<(), String>>) -> Result<(), String> {
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("[{}] {}", algo.name(), errors.join("; ")))
    }
}

/// Run one case: forward `output` and every gradient from `grad_output`.
/// All mismatches of the case are reported together.
fn run_case(case: &Case, covered: &mut Coverage) -> Result<(), String> {
    let e = |e: convlab::Error| e.to_string();
    let x = || case.tensor("input");
    let gy = || case.tensor("grad_output");
    let (out, grad_in) = match case.op() {
        "max_pool2d" => {
            let p = MaxPool2dParams::new(case.pair("kernel_size")?)
                .stride(case.pair("stride")?)
                .padding(case.pair("padding")?)
                .dilation(case.pair("dilation")?)
                .ceil_mode(case.flag("ceil_mode")?);
            let x = x()?;
            let (y, idx) = ops::max_pool2d_with_indices(&x, &p).map_err(e)?;
            let gx = ops::max_pool2d_backward(x.shape(), &idx, &gy()?).map_err(e)?;
            (y, gx)
        }
        "avg_pool2d" => {
            let divisor = match case.param("divisor_override")? {
                Value::Null => None,
                v => Some(
                    v.as_u64()
                        .ok_or_else(|| format!("divisor_override {v} is not a size"))?
                        as usize,
                ),
            };
            let p = AvgPool2dParams::new(case.pair("kernel_size")?)
                .stride(case.pair("stride")?)
                .padding(case.pair("padding")?)
                .ceil_mode(case.flag("ceil_mode")?)
                .count_include_pad(case.flag("count_include_pad")?)
                .divisor_override(divisor);
            let x = x()?;
            let y = ops::avg_pool2d(&x, &p).map_err(e)?;
            let gx = ops::avg_pool2d_backward(x.shape(), &gy()?, &p).map_err(e)?;
            (y, gx)
        }
        "adaptive_avg_pool2d" => {
            let x = x()?;
            let y = ops::adaptive_avg_pool2d(&x, case.pair("output_size")?).map_err(e)?;
            let gx = ops::adaptive_avg_pool2d_backward(x.shape(), &gy()?).map_err(e)?;
            (y, gx)
        }
        "adaptive_max_pool2d" => {
            let x = x()?;
            let (y, idx) = ops::adaptive_max_pool2d(&x, case.pair("output_size")?).map_err(e)?;
            let gx = ops::adaptive_max_pool2d_backward(x.shape(), &idx, &gy()?).map_err(e)?;
            (y, gx)
        }
        "unfold" => {
            let p = UnfoldParams::new(case.pair("kernel_size")?)
                .stride(case.pair("stride")?)
                .padding(case.pair("padding")?)
                .dilation(case.pair("dilation")?);
            let x = x()?;
            let y = ops::unfold(&x, &p).map_err(e)?;
            let gx = ops::unfold_backward(x.shape(), &gy()?, &p).map_err(e)?;
            (y, gx)
        }
        "conv2d" | "conv_transpose2d" => {
            // Every algorithm forced, then the dispatcher's own choice.
            let run = if case.op() == "conv2d" {
                run_conv2d
            } else {
                run_conv_transpose2d
            };
            let errors: Vec<String> = ConvAlgo::ALL
                .iter()
                .chain(&[ConvAlgo::Auto])
                .filter_map(|&algo| run(case, algo, covered).err())
                .collect();
            return if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join(" | "))
            };
        }
        other => return Err(format!("unknown op '{other}'")),
    };
    let errors: Vec<String> = [
        check("output", &out, &case.tensor("output")?),
        check("grad_input", &grad_in, &case.tensor("grad_input")?),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Run every case of `cases.json` in `dir`; panics listing the failures,
/// and returns how many cases of each op ran and which passes each forced
/// algorithm computed.
fn run_fixtures(dir: &std::path::Path) -> (BTreeMap<String, usize>, Coverage) {
    let read = |f: &str| {
        std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
    };
    let cases: Value = serde_json::from_slice(&read("cases.json")).expect("cases.json is JSON");
    let bytes = read("tensors.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("tensors.safetensors is readable");
    let cases = cases["cases"]
        .as_array()
        .expect("cases.json has a cases list");

    let mut checked = BTreeMap::<String, usize>::new();
    let mut covered = Coverage::new();
    let mut failures = Vec::new();
    for json in cases {
        let case = Case { json, st: &st };
        match run_case(&case, &mut covered) {
            Ok(()) => *checked.entry(case.op().to_string()).or_default() += 1,
            Err(e) => failures.push(format!("{} ({}): {e}", case.name(), case.op())),
        }
    }
    println!("checked: {checked:?}");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Every case ran and passed (unknown ops are failures above).
    let ran: usize = checked.values().sum();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    assert_eq!(ran, cases.len(), "cases run vs present");
    println!("forced algorithms computed: {covered:?}");
    (checked, covered)
}

#[test]
fn pytorch_fixtures() {
    let (checked, covered) = run_fixtures(&fixture_dir());
    // The bundled fixtures cover every op; another case file may cover fewer.
    let bundled = std::env::var_os("CONVLAB_FIXTURES").is_none();
    for op in OPS.iter().filter(|_| bundled) {
        assert!(
            checked.get(*op).copied().unwrap_or(0) > 0,
            "no {op} case ran"
        );
    }
    // Every algorithm computed some pass of the bundled fixtures (the
    // lanes kernel needs a vector of images and separable filters outer
    // products: the property tests and the separable fixtures cover them).
    for algo in ConvAlgo::ALL.iter().filter(|_| bundled) {
        let runs: usize = covered
            .iter()
            .filter(|((a, _), _)| *a == algo.name())
            .map(|(_, n)| n)
            .sum();
        if ![ConvAlgo::ImplicitGemmLanes, ConvAlgo::Separable].contains(algo) {
            assert!(runs > 0, "{} computed no fixture pass", algo.name());
        }
    }
}

/// Filters that are outer products (`tests/fixtures/gen_separable.py`):
/// the bundled cases' random weights never are, so these hold the
/// separable path to PyTorch.
#[test]
fn pytorch_separable_fixtures() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/separable");
    let (checked, covered) = run_fixtures(&dir);
    assert!(
        covered.contains_key(&("separable", "forward")),
        "{covered:?}"
    );
    assert_eq!(checked.get("conv2d"), Some(&5));
    assert_eq!(checked.get("conv_transpose2d"), Some(&1));
}

/// The comparison itself must be able to fail.
#[test]
fn check_rejects_what_it_should() {
    let t = |d: &[f32]| Tensor::from_slice(d, &[d.len()]).unwrap();
    assert!(check("x", &t(&[1.0, 2.0]), &t(&[1.0, 2.0])).is_ok());
    // Within 1e-4 of max(1, max|ref|) = 1000.
    assert!(check("x", &t(&[1000.05, 0.0]), &t(&[1000.0, 0.0])).is_ok());
    let e = check("x", &t(&[1.001, 0.0]), &t(&[1.0, 0.0])).unwrap_err();
    assert!(
        e.contains("normalized error") && e.contains("index 0"),
        "{e}"
    );
    let e = check("x", &t(&[1.0]), &t(&[1.0, 2.0])).unwrap_err();
    assert!(e.contains("shape"), "{e}");
    assert!(check("x", &t(&[f32::NAN, 1.0]), &t(&[f32::NAN, 1.0])).is_ok());
    assert!(check("x", &t(&[0.0, 1.0]), &t(&[f32::NAN, 1.0])).is_err());
    assert!(check("x", &t(&[f32::NAN, 1.0]), &t(&[0.0, 1.0])).is_err());
    assert!(check("x", &t(&[f32::INFINITY]), &t(&[f32::NEG_INFINITY])).is_err());
    let two = Tensor::from_slice(&[1.0, 2.0], &[1, 2]).unwrap();
    assert!(check("x", &two, &t(&[1.0, 2.0])).is_err());
}
