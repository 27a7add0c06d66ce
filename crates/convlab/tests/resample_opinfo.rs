//! PyTorch's OpInfo inputs for the resampling family, without torch:
//! every float32 sample of `nn.functional.interpolate` (nearest,
//! nearest-exact, linear, bilinear, bicubic, trilinear, area),
//! `upsample_nearest`, `upsample_bilinear`, `grid_sample`, `pad`
//! (constant, reflect, replicate, circular, negative pads that crop),
//! `pixel_shuffle`, `pixel_unshuffle` and `channel_shuffle` (312 in torch
//! 2.15; these OpInfos have no error inputs) runs through convlab's `Var`
//! op, forward and backward, against torch's checksums of the output and
//! of every gradient (`tests/fixtures/resample_opinfo.json`, from
//! `gen_resample_opinfo.py`; input and grad_output values from the
//! formulas below, as in `pool_opinfo.rs`).

mod common;

use common::fixture_dir;
use convlab::autograd::Var;
use convlab::ops::{
    GridSampleMode, GridSamplePadding, GridSampleParams, InterpolateMode, InterpolateParams,
    PadMode,
};
use convlab::Tensor;
use serde_json::Value;

/// Input values: multiples of 1/128 in [-7.9, 7.9] (the generator's
/// `formula`).
fn input_values(n: usize) -> Vec<f32> {
    (0..n as i64)
        .map(|i| (((i * 7919 + 13) % 2003 - 1001) as f64 / 128.0) as f32)
        .collect()
}

/// grad_output values: multiples of 1/64 (the generator's `grad_values`).
fn grad_values(n: usize) -> Vec<f32> {
    (0..n as i64)
        .map(|i| (((i * 104729 + 7) % 1009 - 504) as f64 / 64.0) as f32)
        .collect()
}

/// [sum, position-weighted sum, sum of |v|, max |v|, NaN count], in f64.
fn checksum(t: &Tensor) -> [f64; 5] {
    let mut c = [0.0; 5];
    for (i, &v) in t.data().iter().enumerate() {
        if v.is_nan() {
            c[4] += 1.0;
            continue;
        }
        let v = f64::from(v);
        c[0] += v;
        c[1] += v * ((i % 13) + 1) as f64;
        c[2] += v.abs();
        c[3] = c[3].max(v.abs());
    }
    c
}

/// Our checksum against torch's: each sum within 1e-4 of the scale the
/// values give it (13 times the sum of |v| for the weighted one), the
/// NaN counts equal.
fn assert_checksum(what: &str, t: &Tensor, want: &Value) {
    let ours = checksum(t);
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let scale = want[2].max(1.0);
    let tol = [scale, 13.0 * scale, scale, want[3].max(1.0)];
    for k in 0..4 {
        assert!(
            (ours[k] - want[k]).abs() <= 1e-4 * tol[k],
            "{what}: checksum {k} is {} against torch's {} ({ours:?} vs {want:?})",
            ours[k],
            want[k]
        );
    }
    assert_eq!(ours[4], want[4], "{what}: NaN count");
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// A size or scale: one value for every axis, or a list.
fn per_axis<T: Copy>(v: &Value, rank: usize, get: impl Fn(&Value) -> T) -> Vec<T> {
    match v {
        Value::Array(a) => a.iter().map(get).collect(),
        v => vec![get(v); rank],
    }
}

fn interpolate_params(p: &Value, mode: &str, rank: usize) -> InterpolateParams {
    let mode = match mode {
        "nearest" => InterpolateMode::Nearest,
        "nearest-exact" => InterpolateMode::NearestExact,
        "linear" => InterpolateMode::Linear,
        "bilinear" => InterpolateMode::Bilinear,
        "bicubic" => InterpolateMode::Bicubic,
        "trilinear" => InterpolateMode::Trilinear,
        "area" => InterpolateMode::Area,
        other => panic!("unknown mode {other}"),
    };
    let mut params = InterpolateParams::new(mode);
    if let Some(size) = p.get("size").filter(|v| !v.is_null()) {
        params = params.size(per_axis(size, rank, |v| v.as_u64().unwrap() as usize));
    }
    if let Some(scale) = p.get("scale_factor").filter(|v| !v.is_null()) {
        params = params.scale_factor(per_axis(scale, rank, |v| v.as_f64().unwrap()));
    }
    if let Some(a) = p.get("align_corners").and_then(Value::as_bool) {
        params = params.align_corners(a);
    }
    if let Some(r) = p.get("recompute_scale_factor").and_then(Value::as_bool) {
        params = params.recompute_scale_factor(r);
    }
    if let Some(a) = p.get("antialias").and_then(Value::as_bool) {
        params = params.antialias(a);
    }
    params
}

fn grid_sample_params(p: &Value) -> GridSampleParams {
    GridSampleParams {
        mode: match p.get("mode").and_then(Value::as_str) {
            Some("nearest") => GridSampleMode::Nearest,
            Some("bicubic") => GridSampleMode::Bicubic,
            _ => GridSampleMode::Bilinear,
        },
        padding_mode: match p.get("padding_mode").and_then(Value::as_str) {
            Some("border") => GridSamplePadding::Border,
            Some("reflection") => GridSamplePadding::Reflection,
            _ => GridSamplePadding::Zeros,
        },
        align_corners: p
            .get("align_corners")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

fn pad_mode(p: &Value) -> PadMode {
    match p.get("mode").and_then(Value::as_str) {
        Some("reflect") => PadMode::Reflect,
        Some("replicate") => PadMode::Replicate,
        Some("circular") => PadMode::Circular,
        _ => PadMode::Constant(p.get("value").and_then(Value::as_f64).unwrap_or(0.0) as f32),
    }
}

/// The op a case names, on `x` (and `grid`).
fn run(c: &Value, x: &Var, grid: Option<&Var>) -> convlab::Result<Var> {
    let p = &c["params"];
    let rank = dims(&c["input_shape"]).len() - 2;
    let int = |k: &str| p[k].as_u64().unwrap() as usize;
    match c["op"].as_str().unwrap() {
        "interpolate" => {
            let mode = p.get("mode").and_then(Value::as_str).unwrap_or("nearest");
            x.interpolate(&interpolate_params(p, mode, rank))
        }
        // The deprecated wrappers: nearest, and bilinear with corners aligned.
        "upsample_nearest" => x.interpolate(&interpolate_params(p, "nearest", rank)),
        "upsample_bilinear" => {
            x.interpolate(&interpolate_params(p, "bilinear", rank).align_corners(true))
        }
        "grid_sample" => x.grid_sample(grid.unwrap(), &grid_sample_params(p)),
        "pad" => {
            let pads: Vec<i64> = p["pad"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            x.pad(&pads, pad_mode(p))
        }
        "pixel_shuffle" => x.pixel_shuffle(int("upscale_factor")),
        "pixel_unshuffle" => x.pixel_unshuffle(int("downscale_factor")),
        "channel_shuffle" => x.channel_shuffle(int("groups")),
        other => panic!("unknown op {other}"),
    }
}

#[test]
fn every_resampling_opinfo_sample_matches_torch() {
    let text = std::fs::read_to_string(fixture_dir().join("resample_opinfo.json")).unwrap();
    let f: Value = serde_json::from_str(&text).unwrap();
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 312);
    let mut ops = std::collections::BTreeMap::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let shape = dims(&c["input_shape"]);
        let n: usize = shape.iter().product();
        let x = Var::param(Tensor::from_vec(input_values(n), &shape).unwrap());
        let grid = c.get("grid").map(|g| {
            let data: Vec<f32> = g
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            Var::param(Tensor::from_vec(data, &dims(&c["grid_shape"])).unwrap())
        });
        let y = run(c, &x, grid.as_ref()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(y.shape(), dims(&c["output_shape"]), "{name}: output shape");
        assert_checksum(&format!("{name} output"), &y.tensor(), &c["output"]);
        let go = Tensor::from_vec(grad_values(y.tensor().numel()), &y.shape()).unwrap();
        y.backward_with(go).unwrap();
        let zeros = || Tensor::zeros(&shape).unwrap();
        let gx = x.grad().unwrap_or_else(zeros);
        assert_checksum(&format!("{name} grad_input"), &gx, &c["grad_input"]);
        if let Some(grid) = &grid {
            let gg = grid
                .grad()
                .unwrap_or_else(|| Tensor::zeros(&grid.shape()).unwrap());
            assert_checksum(&format!("{name} grad_grid"), &gg, &c["grad_grid"]);
        }
        *ops.entry(c["op"].as_str().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(ops.len(), 8, "{ops:?}");
}
