//! Conformance of the pooling family over one, two and three spatial axes
//! with PyTorch: every case of `tests/fixtures/pool_nd` (written by
//! `tests/fixtures/gen_pool_nd.py`) is run through convlab, forward values,
//! indices where PyTorch returns them, and the input gradient of
//! `sum(output * grad_output)`, within the fixtures' tolerance
//! (`max|ours - ref| / max(1, max|ref|) <= 1e-4`; NaN exactly where the
//! reference has NaN).

use convlab::ops::pool::*;
use convlab::Tensor;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

const TOLERANCE: f64 = 1e-4;

/// Every op of the family the fixtures must cover.
const OPS: [&str; 16] = [
    "max_pool1d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool3d",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool3d",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pool_nd")
}

/// `Err` when `ours` is off `reference` by more than the tolerance, or
/// differs in shape or in where values are non-finite.
fn check(name: &str, ours: &Tensor, reference: &Tensor) -> Result<(), String> {
    if ours.shape() != reference.shape() {
        return Err(format!(
            "{name}: shape {:?} but reference {:?}",
            ours.shape(),
            reference.shape()
        ));
    }
    let scale = reference
        .data()
        .iter()
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, &v| m.max((v as f64).abs()));
    for (i, (&a, &b)) in ours.data().iter().zip(reference.data()).enumerate() {
        let bad = if a.is_finite() && b.is_finite() {
            (a as f64 - b as f64).abs() / scale > TOLERANCE
        } else {
            !(a.is_nan() && b.is_nan() || a == b)
        };
        if bad {
            return Err(format!(
                "{name}: flat index {i}: ours {a}, reference {b} (scale {scale})"
            ));
        }
    }
    Ok(())
}

/// One case of `cases.json` and the tensors file.
struct Case<'a> {
    json: &'a Value,
    st: &'a SafeTensors<'a>,
}

impl Case<'_> {
    fn op(&self) -> &str {
        self.json["op"].as_str().unwrap_or("<no op>")
    }
    fn param(&self, key: &str) -> Result<&Value, String> {
        self.json["params"]
            .get(key)
            .ok_or_else(|| format!("params has no '{key}'"))
    }
    /// A size or `N` sizes, as PyTorch takes them.
    fn ints<const N: usize>(&self, key: &str) -> Result<[i64; N], String> {
        let v = self.param(key)?;
        let int = |x: &Value| x.as_i64().ok_or_else(|| format!("params.{key} = {v}"));
        match v.as_array() {
            Some(a) if a.len() == N => {
                let mut out = [0; N];
                for (o, x) in out.iter_mut().zip(a) {
                    *o = int(x)?;
                }
                Ok(out)
            }
            Some(_) => Err(format!("params.{key} = {v} has not {N} values")),
            None => Ok([int(v)?; N]),
        }
    }
    fn floats<const N: usize>(&self, key: &str) -> Result<[f64; N], String> {
        let v = self.param(key)?;
        let a = v.as_array().filter(|a| a.len() == N);
        let a = a.ok_or_else(|| format!("params.{key} = {v} is not {N} numbers"))?;
        let mut out = [0.0; N];
        for (o, x) in out.iter_mut().zip(a) {
            *o = x.as_f64().ok_or_else(|| format!("params.{key} = {v}"))?;
        }
        Ok(out)
    }
    fn flag(&self, key: &str) -> Result<bool, String> {
        self.param(key)?
            .as_bool()
            .ok_or_else(|| format!("params.{key} is not a bool"))
    }
    fn has(&self, key: &str) -> bool {
        self.json["tensors"].get(key).is_some()
    }
    fn tensor(&self, key: &str) -> Result<Tensor, String> {
        let stored = self.json["tensors"][key]
            .as_str()
            .ok_or_else(|| format!("tensors has no '{key}'"))?;
        let view = self
            .st
            .tensor(stored)
            .map_err(|e| format!("{stored}: {e}"))?;
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
    /// An index tensor (stored as exact f32 values) as flat indices.
    fn indices(&self, key: &str) -> Result<Vec<usize>, String> {
        Ok(self
            .tensor(key)?
            .data()
            .iter()
            .map(|&v| v as usize)
            .collect())
    }
}

/// What an op computed: output, the input gradient and indices if any.
type Outcome = (Tensor, Tensor, Option<Vec<usize>>);

fn e(err: convlab::Error) -> String {
    err.to_string()
}

fn run_max<const N: usize>(case: &Case) -> Result<Outcome, String> {
    let p = MaxPoolParams::<N>::new(case.ints::<N>("kernel_size")?)
        .stride(case.ints::<N>("stride")?)
        .padding(case.ints::<N>("padding")?)
        .dilation(case.ints::<N>("dilation")?)
        .ceil_mode(case.flag("ceil_mode")?);
    let x = case.tensor("input")?;
    let (y, idx) = max_pool_with_indices(&x, &p).map_err(e)?;
    let gx = max_pool_backward::<N>(x.shape(), &idx, &case.tensor("grad_output")?).map_err(e)?;
    Ok((y, gx, Some(idx)))
}

fn run_avg<const N: usize>(case: &Case) -> Result<Outcome, String> {
    let divisor = match case.param("divisor_override")? {
        Value::Null => None,
        v => Some(v.as_i64().ok_or_else(|| format!("divisor_override {v}"))?),
    };
    let p = AvgPoolParams::<N>::new(case.ints::<N>("kernel_size")?)
        .stride(case.ints::<N>("stride")?)
        .padding(case.ints::<N>("padding")?)
        .ceil_mode(case.flag("ceil_mode")?)
        .count_include_pad(case.flag("count_include_pad")?)
        .divisor_override(divisor);
    let x = case.tensor("input")?;
    let y = avg_pool(&x, &p).map_err(e)?;
    let gx = avg_pool_backward(x.shape(), &case.tensor("grad_output")?, &p).map_err(e)?;
    Ok((y, gx, None))
}

fn run_lp<const N: usize>(case: &Case) -> Result<Outcome, String> {
    let norm = match case.param("norm_type")? {
        Value::String(s) if s == "inf" => f64::INFINITY,
        v => v.as_f64().ok_or_else(|| format!("norm_type {v}"))?,
    };
    let mut p = LpPoolParams::<N>::new(norm, case.ints::<N>("kernel_size")?)
        .ceil_mode(case.flag("ceil_mode")?);
    if !case.param("stride")?.is_null() {
        p = p.stride(case.ints::<N>("stride")?);
    }
    let x = case.tensor("input")?;
    let y = lp_pool(&x, &p).map_err(e)?;
    let gx = lp_pool_backward(&x, &case.tensor("grad_output")?, &p).map_err(e)?;
    Ok((y, gx, None))
}

fn output_size<const N: usize>(case: &Case) -> Result<OutputSize<N>, String> {
    let v = case.param("output_size")?;
    let a = v.as_array().filter(|a| a.len() == N);
    let a = a.ok_or_else(|| format!("output_size {v} is not {N} values"))?;
    let mut out = [None; N];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x.as_i64();
    }
    Ok(OutputSize(out))
}

fn run_adaptive<const N: usize>(case: &Case, max: bool) -> Result<Outcome, String> {
    let x = case.tensor("input")?;
    let (size, gy) = (output_size::<N>(case)?, case.tensor("grad_output")?);
    if max {
        let (y, idx) = adaptive_max_pool::<N>(&x, size).map_err(e)?;
        let gx = adaptive_max_pool_backward::<N>(x.shape(), &idx, &gy).map_err(e)?;
        Ok((y, gx, Some(idx)))
    } else {
        let y = adaptive_avg_pool::<N>(&x, size).map_err(e)?;
        let gx = adaptive_avg_pool_backward::<N>(x.shape(), &gy).map_err(e)?;
        Ok((y, gx, None))
    }
}

fn run_unpool<const N: usize>(case: &Case) -> Result<Outcome, String> {
    let p = MaxUnpoolParams::<N>::new(case.ints::<N>("kernel_size")?)
        .stride(case.ints::<N>("stride")?)
        .padding(case.ints::<N>("padding")?);
    let size = match case.param("output_size")? {
        Value::Null => None,
        _ => Some(case.ints::<N>("output_size")?),
    };
    let (x, idx) = (case.tensor("input")?, case.indices("indices")?);
    let y = max_unpool(&x, &idx, &p, size.as_ref().map(|s| &s[..])).map_err(e)?;
    let gx = max_unpool_backward::<N>(x.shape(), &idx, &case.tensor("grad_output")?).map_err(e)?;
    Ok((y, gx, None))
}

fn run_fractional<const N: usize>(case: &Case) -> Result<Outcome, String> {
    let k = case.ints::<N>("kernel_size")?;
    let p = if case.json["params"].get("output_size").is_some() {
        FractionalMaxPoolParams::<N>::with_output_size(k, case.ints::<N>("output_size")?)
    } else {
        FractionalMaxPoolParams::<N>::with_output_ratio(k, case.floats::<N>("output_ratio")?)
    };
    let x = case.tensor("input")?;
    let (y, idx) = fractional_max_pool(&x, &p, &case.tensor("_random_samples")?).map_err(e)?;
    let gy = case.tensor("grad_output")?;
    let gx = fractional_max_pool_backward::<N>(x.shape(), &idx, &gy).map_err(e)?;
    Ok((y, gx, Some(idx)))
}

/// Run one case and compare everything it stores.
fn run_case(case: &Case) -> Result<(), String> {
    let (y, gx, idx) = match case.op() {
        "max_pool1d" => run_max::<1>(case)?,
        "max_pool2d" => run_max::<2>(case)?,
        "max_pool3d" => run_max::<3>(case)?,
        "avg_pool1d" => run_avg::<1>(case)?,
        "avg_pool2d" => run_avg::<2>(case)?,
        "avg_pool3d" => run_avg::<3>(case)?,
        "lp_pool1d" => run_lp::<1>(case)?,
        "lp_pool2d" => run_lp::<2>(case)?,
        "lp_pool3d" => run_lp::<3>(case)?,
        "adaptive_avg_pool1d" => run_adaptive::<1>(case, false)?,
        "adaptive_avg_pool3d" => run_adaptive::<3>(case, false)?,
        "adaptive_max_pool1d" => run_adaptive::<1>(case, true)?,
        "adaptive_max_pool3d" => run_adaptive::<3>(case, true)?,
        "max_unpool1d" => run_unpool::<1>(case)?,
        "max_unpool2d" => run_unpool::<2>(case)?,
        "max_unpool3d" => run_unpool::<3>(case)?,
        "fractional_max_pool2d" => run_fractional::<2>(case)?,
        "fractional_max_pool3d" => run_fractional::<3>(case)?,
        other => return Err(format!("unknown op '{other}'")),
    };
    let mut errors: Vec<String> = [
        check("output", &y, &case.tensor("output")?),
        check("grad_input", &gx, &case.tensor("grad_input")?),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    match (idx, case.has("indices_out")) {
        (Some(ours), true) => {
            let want = case.indices("indices_out")?;
            if ours != want {
                let at = ours.iter().zip(&want).position(|(a, b)| a != b);
                errors.push(format!(
                    "indices differ (lengths {} and {}, first at {at:?})",
                    ours.len(),
                    want.len()
                ));
            }
        }
        (None, false) => {}
        (ours, _) => errors.push(format!(
            "indices: ours {}, reference {}",
            ours.is_some(),
            case.has("indices_out")
        )),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn pytorch_pool_nd_fixtures() {
    let dir = fixture_dir();
    let read = |f: &str| std::fs::read(dir.join(f)).expect("the pool_nd fixtures");
    let cases: Value = serde_json::from_slice(&read("cases.json")).expect("cases.json is JSON");
    let bytes = read("tensors.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("tensors.safetensors is readable");
    let cases = cases["cases"].as_array().expect("a cases list");
    let mut passed = BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    for json in cases {
        let case = Case { json, st: &st };
        match run_case(&case) {
            Ok(()) => *passed.entry(json["op"].as_str().unwrap_or("")).or_default() += 1,
            Err(err) => failures.push(format!("{}: {err}", json["name"])),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(passed.values().sum::<usize>(), cases.len());
    for op in OPS {
        assert!(passed.contains_key(op), "no {op} case ran");
    }
}

/// The comparison must be able to fail.
#[test]
fn check_rejects_what_it_should() {
    let t = |d: &[f32]| Tensor::from_slice(d, &[d.len()]).unwrap();
    assert!(check("x", &t(&[1.0, f32::NAN]), &t(&[1.0, f32::NAN])).is_ok());
    assert!(check("x", &t(&[1.001, 0.0]), &t(&[1.0, 0.0])).is_err());
    assert!(check("x", &t(&[0.0, 1.0]), &t(&[f32::NAN, 1.0])).is_err());
    assert!(check("x", &t(&[f32::INFINITY]), &t(&[1.0])).is_err());
    assert!(check("x", &t(&[1.0]), &t(&[1.0, 2.0])).is_err());
}
