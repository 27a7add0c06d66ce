//! PyTorch's OpInfo inputs for the pooling family, replayed without torch:
//! every float32 `sample_inputs` entry and every `error_inputs` entry of
//! max, average, adaptive max and adaptive average pooling (1-D to 3-D),
//! max unpooling (1-D to 3-D) and fractional max pooling (2-D, 3-D), as
//! exported by `tests/fixtures/gen_pool_opinfo.py` into
//! `tests/fixtures/pool_opinfo`. PyTorch's OpInfo database has no entry
//! for `lp_pool1d/2d/3d`, so the export has none either (the runner below
//! would take them).
//!
//! Each case's input and `grad_output` are rebuilt from the export's
//! formula; convlab's forward, indices (max-type ops) and the input
//! gradient from the op's `_backward` function are compared with torch's
//! checksums: output shape exactly, NaN counts and index sums exactly, the
//! largest magnitude within the fixtures' tolerance (`1e-4` relative to
//! `max(1, max|ref|)`), the sum, absolute sum and position-weighted sum
//! within that tolerance times `sqrt(numel)` (13 times more for the
//! weighted sum, whose weights go up to 13). Every error input must be an
//! `Err` with a one-line message.
//!
//! With torch 2.15 (`tests/fixtures/pool_opinfo`, 383 KB): 3669 float32
//! samples as 971 cases, all 3669 passed, none skipped:
//! max_pool1d/2d/3d 864/1440/576, avg_pool1d/2d/3d 9/7/8,
//! adaptive_max_pool1d/2d/3d 12/34/20, adaptive_avg_pool1d/2d/3d 6/10/12,
//! max_unpool1d/2d/3d 157/321/108 (with the `grad` variants),
//! fractional_max_pool2d/3d 37/48. 87 error inputs: 78 refused with an
//! `Err`, 9 left out because convlab's types cannot express them (see
//! [`INEXPRESSIBLE`]). Left out as other dtypes than convlab's f32, the
//! samples OpInfo also lists on CPU: float64 3673, float16 3661, bfloat16
//! 3655, int64 2040 (avg and max pooling), int8, int16, int32 and uint8
//! 2016 each (max_pool2d/3d).

mod common;

use common::{expect_err, fixture_dir, TOL};
use convlab::ops::pool::*;
use convlab::Tensor;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;

/// The export: `cases.json` and the tensors it points into.
struct Export {
    json: Value,
    f32: Vec<f32>,
    i32: Vec<i32>,
}

fn load() -> Export {
    let dir = fixture_dir().join("pool_opinfo");
    let read = |f: &str| std::fs::read(dir.join(f)).expect("the pool_opinfo export");
    let json: Value = serde_json::from_slice(&read("cases.json")).expect("cases.json is JSON");
    let bytes = read("results.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("results.safetensors is readable");
    let raw = |name: &str, dtype: Dtype| -> Vec<[u8; 4]> {
        let view = st.tensor(name).expect("the f32 and i32 tensors");
        assert_eq!(view.dtype(), dtype, "{name}");
        view.data()
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect()
    };
    Export {
        f32: raw("f32", Dtype::F32)
            .into_iter()
            .map(f32::from_le_bytes)
            .collect(),
        i32: raw("i32", Dtype::I32)
            .into_iter()
            .map(i32::from_le_bytes)
            .collect(),
        json,
    }
}

/// The export's input values: multiples of 1/128 in [-7.9, 7.9] by key.
fn formula(key: u64) -> f32 {
    ((key * 7919 + 13) % 2003) as f32 / 128.0 - 1001.0 / 128.0
}

/// The export's `grad_output` values: multiples of 1/64 in [-7.9, 7.9].
fn grad_value(i: u64) -> f32 {
    ((i * 104729 + 7) % 1009) as f32 / 64.0 - 504.0 / 64.0
}

fn tensor_of(shape: &[usize], f: impl Fn(u64) -> f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n as u64).map(f).collect(), shape).expect("a case shape")
}

/// Why a case did not run.
#[derive(Debug)]
enum Refused {
    /// Convlab's op returned this error.
    Op(convlab::Error),
    /// Convlab's API cannot express the case (its types rule it out).
    Inexpressible(String),
    /// The export is not what this test reads.
    Bad(String),
}

impl From<convlab::Error> for Refused {
    fn from(e: convlab::Error) -> Self {
        Refused::Op(e)
    }
}

fn bad(msg: String) -> Refused {
    Refused::Bad(msg)
}

/// One case, a sample (values from the formula) or an error input (zeros).
struct Case<'a> {
    json: &'a Value,
    export: &'a Export,
    sample: bool,
}

impl Case<'_> {
    fn op(&self) -> &str {
        self.json["op"].as_str().unwrap_or("<no op>")
    }
    fn name(&self) -> &str {
        self.json["name"].as_str().unwrap_or("<no name>")
    }
    fn param(&self, key: &str) -> Option<&Value> {
        self.json["params"].get(key).filter(|v| !v.is_null())
    }
    fn shape_at(v: &Value) -> Result<Vec<usize>, Refused> {
        let a = v.as_array().ok_or_else(|| bad(format!("shape {v}")))?;
        a.iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("shape {v}")))
    }
    fn input_shape(&self) -> Result<Vec<usize>, Refused> {
        Self::shape_at(&self.json["input_shape"])
    }
    /// A size as PyTorch takes it, `N` values: an int for every axis, one
    /// value per axis, or one value in a list.
    fn sizes<const N: usize>(&self, key: &str) -> Result<Option<[i64; N]>, Refused> {
        let Some(v) = self.param(key) else {
            return Ok(None);
        };
        let int = |x: &Value| {
            x.as_i64()
                .ok_or_else(|| Refused::Inexpressible(format!("{key} = {v}: not an i64")))
        };
        let out = match v.as_array() {
            None => [int(v)?; N],
            Some(a) if a.len() == 1 => [int(&a[0])?; N],
            Some(a) if a.len() == N => {
                let mut out = [0; N];
                for (o, x) in out.iter_mut().zip(a) {
                    *o = int(x)?;
                }
                out
            }
            Some(_) => {
                return Err(Refused::Inexpressible(format!(
                    "{key} = {v}: not {N} values"
                )))
            }
        };
        Ok(Some(out))
    }
    fn required<const N: usize>(&self, key: &str) -> Result<[i64; N], Refused> {
        self.sizes(key)?
            .ok_or_else(|| bad(format!("params has no '{key}'")))
    }
    fn flag(&self, key: &str, default: bool) -> Result<bool, Refused> {
        match self.param(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| bad(format!("{key} = {v}"))),
        }
    }
    /// A tensor parameter: its shape and the blob range it points at
    /// (none for an error input, whose tensors are only a shape and dtype).
    fn tensor_param(&self, key: &str) -> Result<TensorParam, Refused> {
        let v = self
            .param(key)
            .ok_or_else(|| bad(format!("params has no '{key}'")))?;
        let shape = Self::shape_at(&v["shape"])?;
        if let Some(dtype) = v.get("dtype").and_then(Value::as_str) {
            let want = if key == "indices" { "int64" } else { "float32" };
            if dtype != want {
                return Err(Refused::Inexpressible(format!(
                    "{key} of dtype {dtype}: convlab takes {}",
                    if key == "indices" {
                        "usize indices"
                    } else {
                        "f32"
                    }
                )));
            }
        }
        let range = v
            .get("ints")
            .or_else(|| v.get("floats"))
            .map(|r| {
                let r = Self::shape_at(r)?;
                Ok::<_, Refused>((r[0], r[1]))
            })
            .transpose()?;
        Ok((shape, range))
    }
    /// The input: the formula's values for a sample, zeros for an error input.
    fn input(&self) -> Result<Tensor, Refused> {
        let shape = self.input_shape()?;
        Ok(if self.sample {
            tensor_of(&shape, formula)
        } else {
            Tensor::zeros(&shape)?
        })
    }
    /// `grad_output` of the exported output shape.
    fn grad_output(&self) -> Result<Tensor, Refused> {
        let shape = Self::shape_at(&self.json["output_shape"])?;
        Ok(tensor_of(&shape, grad_value))
    }
}

/// A tensor parameter's shape and its `[offset, offset + len)` in the
/// export's blob, if it has values.
type TensorParam = (Vec<usize>, Option<(usize, usize)>);

/// What an op computed: output, input gradient, and indices if any.
struct Outcome {
    y: Tensor,
    gx: Tensor,
    idx: Option<Vec<usize>>,
}

/// The input gradient `f` computes from the formula's `grad_output`; an
/// empty tensor for an error input, which runs the forward only.
fn backward(
    case: &Case,
    f: impl FnOnce(&Tensor) -> convlab::Result<Tensor>,
) -> Result<Tensor, Refused> {
    if case.sample {
        Ok(f(&case.grad_output()?)?)
    } else {
        Ok(Tensor::zeros(&[0])?)
    }
}

fn run_max<const N: usize>(case: &Case) -> Result<Outcome, Refused> {
    let k = case.required::<N>("kernel_size")?;
    let mut p = MaxPoolParams::<N>::new(k).ceil_mode(case.flag("ceil_mode", false)?);
    if let Some(s) = case.sizes::<N>("stride")? {
        p = p.stride(s);
    }
    if let Some(v) = case.sizes::<N>("padding")? {
        p = p.padding(v);
    }
    if let Some(v) = case.sizes::<N>("dilation")? {
        p = p.dilation(v);
    }
    let x = case.input()?;
    let plain = max_pool(&x, &p);
    let (y, idx) = max_pool_with_indices(&x, &p)?;
    // The two forward paths agree (an error input stops above).
    let plain = plain?;
    if plain.data() != y.data() {
        return Err(bad("max_pool and max_pool_with_indices differ".into()));
    }
    let gx = backward(case, |gy| max_pool_backward::<N>(x.shape(), &idx, gy))?;
    Ok(Outcome {
        y,
        gx,
        idx: Some(idx),
    })
}

fn run_avg<const N: usize>(case: &Case) -> Result<Outcome, Refused> {
    let k = case.required::<N>("kernel_size")?;
    let divisor = match case.param("divisor_override") {
        None => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| bad(format!("divisor {v}")))?),
    };
    let mut p = AvgPoolParams::<N>::new(k)
        .ceil_mode(case.flag("ceil_mode", false)?)
        .count_include_pad(case.flag("count_include_pad", true)?)
        .divisor_override(divisor);
    if let Some(s) = case.sizes::<N>("stride")? {
        p = p.stride(s);
    }
    if let Some(v) = case.sizes::<N>("padding")? {
        p = p.padding(v);
    }
    let x = case.input()?;
    let y = avg_pool(&x, &p)?;
    let gx = backward(case, |gy| avg_pool_backward(x.shape(), gy, &p))?;
    Ok(Outcome { y, gx, idx: None })
}

fn run_lp<const N: usize>(case: &Case) -> Result<Outcome, Refused> {
    let norm = match case.param("norm_type") {
        Some(Value::String(s)) if s == "inf" => f64::INFINITY,
        Some(Value::String(s)) if s == "-inf" => f64::NEG_INFINITY,
        Some(v) => v.as_f64().ok_or_else(|| bad(format!("norm_type {v}")))?,
        None => return Err(bad("params has no 'norm_type'".into())),
    };
    let k = case.required::<N>("kernel_size")?;
    let mut p = LpPoolParams::<N>::new(norm, k).ceil_mode(case.flag("ceil_mode", false)?);
    if let Some(s) = case.sizes::<N>("stride")? {
        p = p.stride(s);
    }
    let x = case.input()?;
    let y = lp_pool(&x, &p)?;
    let gx = backward(case, |gy| lp_pool_backward(&x, gy, &p))?;
    Ok(Outcome { y, gx, idx: None })
}

/// An adaptive output size: one int for every axis, or one int or `None`
/// per axis.
fn output_size<const N: usize>(case: &Case) -> Result<OutputSize<N>, Refused> {
    let v = &case.json["params"]["output_size"];
    let entry = |x: &Value| match x {
        Value::Null => Ok(None),
        x => x
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("output_size {v}"))),
    };
    match v.as_array() {
        None => Ok(OutputSize([entry(v)?; N])),
        Some(a) if a.len() == N => {
            let mut out = [None; N];
            for (o, x) in out.iter_mut().zip(a) {
                *o = entry(x)?;
            }
            Ok(OutputSize(out))
        }
        Some(a) => Err(Refused::Inexpressible(format!(
            "output_size {v} of {} values: OutputSize<{N}> has {N}",
            a.len()
        ))),
    }
}

fn run_adaptive<const N: usize>(case: &Case, max: bool) -> Result<Outcome, Refused> {
    let size = output_size::<N>(case)?;
    let x = case.input()?;
    if max {
        let (y, idx) = adaptive_max_pool::<N>(&x, size)?;
        let gx = backward(case, |gy| {
            adaptive_max_pool_backward::<N>(x.shape(), &idx, gy)
        })?;
        Ok(Outcome {
            y,
            gx,
            idx: Some(idx),
        })
    } else {
        let y = adaptive_avg_pool::<N>(&x, size)?;
        let gx = backward(case, |gy| adaptive_avg_pool_backward::<N>(x.shape(), gy))?;
        Ok(Outcome { y, gx, idx: None })
    }
}

fn run_unpool<const N: usize>(case: &Case) -> Result<Outcome, Refused> {
    let k = case.required::<N>("kernel_size")?;
    let mut p = MaxUnpoolParams::<N>::new(k);
    if let Some(s) = case.sizes::<N>("stride")? {
        p = p.stride(s);
    }
    if let Some(v) = case.sizes::<N>("padding")? {
        p = p.padding(v);
    }
    let size: Option<Vec<i64>> = match case.param("output_size") {
        None => None,
        Some(v) => Some(
            v.as_array()
                .and_then(|a| a.iter().map(Value::as_i64).collect())
                .ok_or_else(|| bad(format!("output_size {v}")))?,
        ),
    };
    let (idx_shape, range) = case.tensor_param("indices")?;
    let idx: Vec<usize> = match range {
        Some((off, len)) => case.export.i32[off..off + len]
            .iter()
            .map(|&i| i as usize)
            .collect(),
        None => vec![0; idx_shape.iter().product()],
    };
    let shape = case.input_shape()?;
    let x = if case.sample {
        // The export's rule: each value from its plane and its index.
        let plane = shape[shape.len() - N..].iter().product::<usize>().max(1);
        let data = idx
            .iter()
            .enumerate()
            .map(|(i, &j)| formula((i / plane) as u64 * (1 << 20) + j as u64))
            .collect();
        Tensor::from_vec(data, &shape)?
    } else {
        Tensor::zeros(&shape)?
    };
    let y = max_unpool(&x, &idx, &p, size.as_deref())?;
    let gx = backward(case, |gy| max_unpool_backward::<N>(x.shape(), &idx, gy))?;
    Ok(Outcome { y, gx, idx: None })
}

fn run_fractional<const N: usize>(case: &Case) -> Result<Outcome, Refused> {
    let k = case.required::<N>("kernel_size")?;
    let p = if let Some(size) = case.sizes::<N>("output_size")? {
        FractionalMaxPoolParams::<N>::with_output_size(k, size)
    } else {
        let v = &case.json["params"]["output_ratio"];
        let r: Vec<f64> = match v.as_array() {
            Some(a) => a.iter().map(Value::as_f64).collect::<Option<_>>(),
            None => v.as_f64().map(|r| vec![r; N]),
        }
        .ok_or_else(|| bad(format!("output_ratio {v}")))?;
        let r: [f64; N] = r
            .try_into()
            .map_err(|_| Refused::Inexpressible(format!("output_ratio {v}: not {N} values")))?;
        FractionalMaxPoolParams::<N>::with_output_ratio(k, r)
    };
    let (shape, range) = case.tensor_param("_random_samples")?;
    let (off, len) = range.ok_or_else(|| bad("_random_samples without values".into()))?;
    let u = Tensor::from_slice(&case.export.f32[off..off + len], &shape)?;
    let x = case.input()?;
    let (y, idx) = fractional_max_pool(&x, &p, &u)?;
    let gx = backward(case, |gy| {
        fractional_max_pool_backward::<N>(x.shape(), &idx, gy)
    })?;
    Ok(Outcome {
        y,
        gx,
        idx: Some(idx),
    })
}

fn run(case: &Case) -> Result<Outcome, Refused> {
    match case.op() {
        "max_pool1d" => run_max::<1>(case),
        "max_pool2d" => run_max::<2>(case),
        "max_pool3d" => run_max::<3>(case),
        "avg_pool1d" => run_avg::<1>(case),
        "avg_pool2d" => run_avg::<2>(case),
        "avg_pool3d" => run_avg::<3>(case),
        "lp_pool1d" => run_lp::<1>(case),
        "lp_pool2d" => run_lp::<2>(case),
        "lp_pool3d" => run_lp::<3>(case),
        "adaptive_avg_pool1d" => run_adaptive::<1>(case, false),
        "adaptive_avg_pool2d" => run_adaptive::<2>(case, false),
        "adaptive_avg_pool3d" => run_adaptive::<3>(case, false),
        "adaptive_max_pool1d" => run_adaptive::<1>(case, true),
        "adaptive_max_pool2d" => run_adaptive::<2>(case, true),
        "adaptive_max_pool3d" => run_adaptive::<3>(case, true),
        "max_unpool1d" => run_unpool::<1>(case),
        "max_unpool2d" => run_unpool::<2>(case),
        "max_unpool3d" => run_unpool::<3>(case),
        "fractional_max_pool2d" => run_fractional::<2>(case),
        "fractional_max_pool3d" => run_fractional::<3>(case),
        other => Err(bad(format!("unknown op '{other}'"))),
    }
}

/// The export's checksum of a float tensor: [sum, position-weighted sum
/// (weights `i % 13 + 1`), sum of |v|, max |v|] of the finite values, in
/// f64, and the NaN count.
fn checksum(t: &Tensor) -> ([f64; 4], u64) {
    let (mut c, mut nan) = ([0.0f64; 4], 0);
    for (i, &v) in t.data().iter().enumerate() {
        if v.is_nan() {
            nan += 1;
            continue;
        }
        let v = v as f64;
        c[0] += v;
        c[1] += v * ((i % 13) + 1) as f64;
        c[2] += v.abs();
        c[3] = c[3].max(v.abs());
    }
    (c, nan)
}

/// `Err` when `ours` is off torch's checksum `reference` (see the module
/// docs for the tolerances).
fn check_sum(what: &str, ours: &Tensor, reference: &Value) -> Result<(), String> {
    let r: Vec<f64> = reference
        .as_array()
        .and_then(|a| a.iter().map(Value::as_f64).collect())
        .filter(|r: &Vec<f64>| r.len() == 5)
        .ok_or_else(|| format!("{what}: checksum {reference}"))?;
    let (c, nan) = checksum(ours);
    if nan as f64 != r[4] {
        return Err(format!("{what}: {nan} NaN, torch {}", r[4]));
    }
    if c.iter().any(|v| !v.is_finite()) {
        return Err(format!("{what}: a non-finite value {c:?}"));
    }
    let scale = r[3].max(1.0);
    let tol = TOL as f64 * scale;
    let n = (ours.numel().max(1) as f64).sqrt();
    let limits = [tol * n, 13.0 * tol * n, tol * n, tol];
    let names = ["sum", "weighted sum", "abs sum", "max |v|"];
    for i in 0..4 {
        if (c[i] - r[i]).abs() > limits[i] {
            return Err(format!(
                "{what}: {} {} vs torch {} (limit {:e})",
                names[i], c[i], r[i], limits[i]
            ));
        }
    }
    Ok(())
}

/// Compare one sample's outcome with everything the export recorded.
fn compare(case: &Case, out: &Outcome) -> Result<(), String> {
    let j = case.json;
    let want = Case::shape_at(&j["output_shape"]).map_err(|e| format!("{e:?}"))?;
    if out.y.shape() != want {
        return Err(format!("output shape {:?}, torch {want:?}", out.y.shape()));
    }
    let mut errors: Vec<String> = [
        check_sum("output", &out.y, &j["output"]),
        check_sum("grad_input", &out.gx, &j["grad_input"]),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    match (&out.idx, j.get("indices")) {
        (Some(idx), Some(r)) => {
            let (mut sum, mut weighted) = (0u64, 0u64);
            for (i, &v) in idx.iter().enumerate() {
                sum += v as u64;
                weighted += v as u64 * ((i % 13) + 1) as u64;
            }
            let r = [r[0].as_u64(), r[1].as_u64()];
            if r != [Some(sum), Some(weighted)] {
                errors.push(format!("indices: sums [{sum}, {weighted}], torch {r:?}"));
            }
        }
        (None, None) => {}
        (ours, r) => errors.push(format!(
            "indices: ours {}, torch {}",
            ours.is_some(),
            r.is_some()
        )),
    }
    if out.gx.shape() != case.input_shape().map_err(|e| format!("{e:?}"))? {
        errors.push(format!("grad_input shape {:?}", out.gx.shape()));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Samples left out, by case name, with the reason: none.
const SKIP: &[(&str, &str)] = &[];

#[test]
fn pytorch_opinfo_samples_replayed() {
    let export = load();
    let cases = export.json["cases"].as_array().expect("a cases list");
    let counts = export.json["sample_counts"]
        .as_object()
        .expect("sample counts");
    let total: u64 = counts.values().filter_map(Value::as_u64).sum();
    let (mut passed, mut skipped) = (BTreeMap::<&str, u64>::new(), 0u64);
    let mut failures = Vec::new();
    for json in cases {
        let case = Case {
            json,
            export: &export,
            sample: true,
        };
        let samples = json["samples"].as_u64().expect("a sample count");
        if SKIP.iter().any(|(name, _)| *name == case.name()) {
            skipped += samples;
            continue;
        }
        let result = run(&case).map_err(|e| format!("{e:?}"));
        match result.and_then(|out| compare(&case, &out)) {
            Ok(()) => *passed.entry(json["op"].as_str().unwrap_or("")).or_default() += samples,
            Err(e) => failures.push(format!("{} ({}): {e}", case.name(), case.op())),
        }
    }
    let n_passed: u64 = passed.values().sum();
    println!(
        "torch {}: {n_passed} of {total} OpInfo samples passed ({} cases), {skipped} skipped, {} cases failed; per op {passed:?}",
        export.json["torch"],
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(n_passed + skipped, total, "every sample is in a case");
    for op in [
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "avg_pool1d",
        "avg_pool2d",
        "avg_pool3d",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool3d",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
        "max_unpool1d",
        "max_unpool2d",
        "max_unpool3d",
        "fractional_max_pool2d",
        "fractional_max_pool3d",
    ] {
        assert!(passed.contains_key(op), "no {op} sample ran");
    }
}

/// Error inputs convlab's types cannot express, so not replayed: an
/// adaptive `output_size=()` (6: `OutputSize<N>` holds exactly `N`
/// lengths) and unpooling `indices` of dtype float32 (3: convlab takes
/// indices as `usize`).
const INEXPRESSIBLE: usize = 9;

#[test]
fn pytorch_opinfo_error_inputs_refused() {
    let export = load();
    let errors = export.json["errors"].as_array().expect("an errors list");
    let (mut refused, mut inexpressible, mut accepted) = (0, Vec::new(), Vec::new());
    for json in errors {
        let case = Case {
            json,
            export: &export,
            sample: false,
        };
        match run(&case) {
            Err(Refused::Op(e)) => {
                expect_err::<()>(Err(e), &[]);
                refused += 1;
            }
            Err(Refused::Inexpressible(why)) => {
                inexpressible.push(format!("{}: {why}", case.name()))
            }
            Err(Refused::Bad(why)) => panic!("{}: {why}", case.name()),
            Ok(_) => accepted.push(format!(
                "{}: torch says {}",
                case.name(),
                json["torch_message"]
            )),
        }
    }
    println!(
        "{refused} of {} OpInfo error inputs refused, {} inexpressible: {inexpressible:?}",
        errors.len(),
        inexpressible.len()
    );
    assert!(
        accepted.is_empty(),
        "{} error inputs accepted:\n{}",
        accepted.len(),
        accepted.join("\n")
    );
    assert_eq!(inexpressible.len(), INEXPRESSIBLE, "{inexpressible:?}");
    assert_eq!(refused + inexpressible.len(), errors.len());
}

/// The comparison must be able to fail.
#[test]
fn checksums_reject_what_they_should() {
    let t = |d: &[f32]| Tensor::from_slice(d, &[d.len()]).unwrap();
    let sum = |d: &[f32]| {
        let (c, nan) = checksum(&t(d));
        serde_json::json!([c[0], c[1], c[2], c[3], nan])
    };
    let x = [1.0, -2.0, 3.0, 0.5];
    assert!(check_sum("x", &t(&x), &sum(&x)).is_ok());
    // A swap, a small change, a NaN, a sign flip.
    assert!(check_sum("x", &t(&[-2.0, 1.0, 3.0, 0.5]), &sum(&x)).is_err());
    assert!(check_sum("x", &t(&[1.0, -2.0, 3.001, 0.5]), &sum(&x)).is_err());
    assert!(check_sum("x", &t(&[1.0, -2.0, f32::NAN, 0.5]), &sum(&x)).is_err());
    assert!(check_sum("x", &t(&[1.0, 2.0, 3.0, 0.5]), &sum(&x)).is_err());
    // Within tolerance.
    assert!(check_sum("x", &t(&[1.0, -2.0, 3.00001, 0.5]), &sum(&x)).is_ok());
    assert_eq!(formula(0), (13.0 - 1001.0) / 128.0);
    assert_eq!(grad_value(1), ((104729 + 7) % 1009 - 504) as f32 / 64.0);
}
