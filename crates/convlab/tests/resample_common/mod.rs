//! Helpers of the resampling tests: reading a fixture directory
//! (`cases.json` + `tensors.safetensors`), the fixtures' error measure with
//! NaN/inf matched in place, and the JSON forms of the ops' parameters
//! (PyTorch's keyword arguments).
#![allow(dead_code)]

use convlab::ops::{
    GridSampleMode, GridSamplePadding, GridSampleParams, InterpolateMode, InterpolateParams,
    PadMode,
};
use convlab::Tensor;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The fixtures' tolerance: `max|ours - ref| / max(1, max|ref|)`.
pub const TOLERANCE: f64 = 1e-4;

/// The repository's `tests/fixtures/<name>`.
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A fixture directory read into memory.
pub struct Fixtures {
    pub cases: Vec<Value>,
    bytes: Vec<u8>,
}

impl Fixtures {
    /// Read `dir/cases.json` and `dir/tensors.safetensors`.
    pub fn load(dir: &Path) -> Fixtures {
        let json = std::fs::read_to_string(dir.join("cases.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join("cases.json").display()));
        let doc: Value = serde_json::from_str(&json).expect("cases.json parses");
        let bytes = std::fs::read(dir.join("tensors.safetensors")).expect("tensors.safetensors");
        let cases = doc["cases"].as_array().expect("a case list").clone();
        Fixtures { cases, bytes }
    }

    /// The stored tensor `name` (f32).
    pub fn tensor(&self, name: &str) -> Result<Tensor, String> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| e.to_string())?;
        let view = st
            .tensor(name)
            .map_err(|e| format!("tensor '{name}': {e}"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor '{name}' is {:?}, not F32", view.dtype()));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Tensor::from_vec(data, view.shape()).map_err(|e| e.to_string())
    }

    /// The tensor a case names under `key` in its `tensors` map.
    pub fn case_tensor(&self, case: &Value, key: &str) -> Result<Tensor, String> {
        let name = case["tensors"][key]
            .as_str()
            .ok_or_else(|| format!("tensors has no '{key}'"))?;
        self.tensor(name)
    }
}

/// Compare `ours` with `reference` under the fixtures' rule; `Err` says
/// by how much and where.
pub fn check(name: &str, ours: &Tensor, reference: &Tensor) -> Result<(), String> {
    check_tol(name, ours, reference, TOLERANCE)
}

/// [`check`] with another tolerance.
pub fn check_tol(name: &str, ours: &Tensor, reference: &Tensor, tol: f64) -> Result<(), String> {
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
    let mut worst = (0.0f64, 0usize);
    for (i, (&a, &b)) in ours.data().iter().zip(reference.data()).enumerate() {
        if a.is_nan() || b.is_nan() || !a.is_finite() || !b.is_finite() {
            if !(a.is_nan() && b.is_nan()) && a != b {
                return Err(format!("{name}: at flat index {i} ours {a}, reference {b}"));
            }
            continue;
        }
        let d = (a as f64 - b as f64).abs();
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let err = worst.0 / scale;
    if err > tol {
        let i = worst.1;
        return Err(format!(
            "{name}: normalized error {err:.3e} > {tol:e} (at flat index {i}: ours {}, reference {})",
            ours.data()[i],
            reference.data()[i]
        ));
    }
    Ok(())
}

fn usizes(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().map(|u| u as usize))
        .collect()
}

fn floats(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Value::as_f64).collect()
}

/// `F.interpolate`'s keyword arguments as [`InterpolateParams`].
pub fn interpolate_params(p: &Value) -> Result<InterpolateParams, String> {
    let mode: InterpolateMode = p["mode"]
        .as_str()
        .unwrap_or("nearest")
        .parse()
        .map_err(|e: convlab::Error| e.to_string())?;
    let mut params = InterpolateParams::new(mode);
    match &p["size"] {
        Value::Null => {}
        Value::Number(n) => params = params.size(n.as_u64().ok_or("size")? as usize),
        v => params = params.size(usizes(v).ok_or("size is not a list of sizes")?),
    }
    match &p["scale_factor"] {
        Value::Null => {}
        Value::Number(n) => params = params.scale_factor(n.as_f64().ok_or("scale_factor")?),
        v => params = params.scale_factor(floats(v).ok_or("scale_factor is not a list")?),
    }
    if let Some(b) = p["align_corners"].as_bool() {
        params = params.align_corners(b);
    }
    if let Some(b) = p["recompute_scale_factor"].as_bool() {
        params = params.recompute_scale_factor(b);
    }
    if let Some(b) = p["antialias"].as_bool() {
        params = params.antialias(b);
    }
    Ok(params)
}

/// `F.pad`'s `pad`, `mode` and `value`.
pub fn pad_params(p: &Value) -> Result<(Vec<i64>, PadMode), String> {
    let pad: Vec<i64> = p["pad"]
        .as_array()
        .ok_or("pad is not a list")?
        .iter()
        .map(|v| v.as_i64().ok_or("pad value"))
        .collect::<Result<_, _>>()?;
    let value = match &p["value"] {
        Value::Null => 0.0,
        Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
        Value::String(s) if s == "inf" => f32::INFINITY,
        Value::String(s) if s == "nan" => f32::NAN,
        v => v.as_f64().ok_or("value is not a number")? as f32,
    };
    let mode = match p["mode"].as_str().unwrap_or("constant") {
        "constant" => PadMode::Constant(value),
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        "circular" => PadMode::Circular,
        m => return Err(format!("unknown pad mode {m}")),
    };
    Ok((pad, mode))
}

/// `F.grid_sample`'s `mode`, `padding_mode` and `align_corners` (PyTorch's
/// defaults where absent).
pub fn grid_sample_params(p: &Value) -> Result<GridSampleParams, String> {
    let mode = match p["mode"].as_str().unwrap_or("bilinear") {
        "bilinear" => GridSampleMode::Bilinear,
        "nearest" => GridSampleMode::Nearest,
        "bicubic" => GridSampleMode::Bicubic,
        m => return Err(format!("unknown grid_sample mode {m}")),
    };
    let padding = match p["padding_mode"].as_str().unwrap_or("zeros") {
        "zeros" => GridSamplePadding::Zeros,
        "border" => GridSamplePadding::Border,
        "reflection" => GridSamplePadding::Reflection,
        m => return Err(format!("unknown grid_sample padding_mode {m}")),
    };
    Ok(GridSampleParams::default()
        .mode(mode)
        .padding_mode(padding)
        .align_corners(p["align_corners"].as_bool().unwrap_or(false)))
}

/// A list of sizes.
pub fn sizes(v: &Value) -> Result<Vec<usize>, String> {
    usizes(v).ok_or_else(|| format!("{v} is not a list of sizes"))
}
