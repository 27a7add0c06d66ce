//! The tensor ops on `Var` against PyTorch: `tests/fixtures/tensor_ops.json`
//! (made by `gen_tensor_ops.py` there) holds, per case, the input, the
//! forward output, a `grad_output` and the gradients of `sum(output * g)`;
//! each is matched at the fixtures' tolerance, NaN where PyTorch has NaN.
//! max/min cases also match the int64 indices exactly (ties and NaN).

mod common;

use common::{fixture_dir, rel_err, TOL};
use convlab::autograd::Var;
use convlab::tensor::{IndexTensor, Slice};
use convlab::Tensor;
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("tensor_ops.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn shape_of(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// A tensor from `{shape, data}`; `null` is NaN.
fn tensor(v: &Value) -> Tensor {
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32))
        .collect();
    Tensor::from_vec(data, &shape_of(v)).unwrap()
}

fn indices(v: &Value) -> Vec<usize> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Whether `ours` matches `reference`: NaN exactly where it has NaN, the
/// rest within the fixtures' tolerance; the mismatch, described, if not.
fn mismatch(what: &str, ours: &Tensor, reference: &Tensor) -> Option<String> {
    if ours.shape() != reference.shape() {
        return Some(format!(
            "{what}: shape {:?} vs {:?}",
            ours.shape(),
            reference.shape()
        ));
    }
    let nan = |t: &Tensor| t.data().iter().map(|v| v.is_nan()).collect::<Vec<_>>();
    if nan(ours) != nan(reference) {
        return Some(format!("{what}: NaN positions differ"));
    }
    let clean = |t: &Tensor| t.map(|v| if v.is_nan() { 0.0 } else { v });
    let e = rel_err(&clean(ours), &clean(reference));
    (e > TOL).then(|| format!("{what}: relative error {e:e} over {TOL:e}"))
}

/// The op of a case: its output and, for max/min along a dim, the indices.
fn run(name: &str, x: &Var, extra: &[Var]) -> (Var, Option<IndexTensor>) {
    let plain = |v: convlab::Result<Var>| (v.unwrap(), None);
    let with_idx = |r: convlab::Result<(Var, IndexTensor)>| {
        let (v, i) = r.unwrap();
        (v, Some(i))
    };
    match name {
        "index_slices" => plain(x.index((1..3, Slice::full().step(2), -1))),
        "index_negative_start" => plain(x.index((-2.., 1))),
        "index_step3_clamped" => plain(x.index((.., Slice::from(1..100).step(3)))),
        "narrow" => plain(x.narrow(2, -3, 2)),
        "index_select_repeats" => plain(x.index_select(1, &[3, 0, 3])),
        "index_put" => plain(x.index_put((.., 1..3), &extra[0])),
        "permute" => plain(x.permute(&[2, 0, 1])),
        "transpose_neg" => plain(x.transpose(-1, 0)),
        "expand" => plain(x.expand(&[2, 3, 4])),
        "flatten_1_2" => plain(x.flatten_dims(1, 2)),
        "unsqueeze_neg" => plain(x.unsqueeze(-2)),
        "cat_dim1" => plain(Var::cat(&[x, &extra[0], &extra[1]], 1)),
        "stack_neg" => plain(Var::stack(&[x, &extra[0]], -1)),
        "sum_dim1" => plain(x.sum_dim(1, false)),
        "mean_dim0_keep" => plain(x.mean_dim(0, true)),
        "max_dim1" | "max_dim1_ties_nan" => with_idx(x.max_dim(1, false)),
        "min_dim0_keep" => with_idx(x.min_dim(0, true)),
        "min_dim1_ties_nan" => with_idx(x.min_dim(1, false)),
        "max_all_ties" => plain(x.max()),
        "min_all" => plain(x.min()),
        "softmax_dim0" => plain(x.softmax(0)),
        "softmax_dim1" => plain(x.softmax(1)),
        "softmax_last" => plain(x.softmax(-1)),
        "log_softmax_dim1" => plain(x.log_softmax_dim(1)),
        "log_softmax_last" => plain(x.log_softmax_dim(-1)),
        "index_uneven_steps" => plain(x.index((
            Slice::full().step(2),
            Slice::from(1..).step(2),
            Slice::from(1..5).step(3),
        ))),
        other => panic!("no convlab op for fixture case {other}"),
    }
}

/// Every mismatch of one case with PyTorch's values.
fn check_case(c: &Value) -> Vec<String> {
    let name = c["name"].as_str().unwrap();
    let x = Var::param(tensor(&c["x"]));
    let extra: Vec<Var> = (0..)
        .map_while(|i| c.get(format!("extra{i}")).map(|v| Var::param(tensor(v))))
        .collect();
    let (y, idx) = run(name, &x, &extra);
    let mut bad = Vec::new();
    bad.extend(mismatch(
        &format!("{name} output"),
        &y.tensor(),
        &tensor(&c["output"]),
    ));
    if let Some(expected) = c.get("indices") {
        let idx = idx.expect("an op with indices");
        if idx.shape() != shape_of(expected) || idx.data() != indices(expected) {
            bad.push(format!("{name} indices: {idx} vs {expected}"));
        }
    }
    y.backward_with(tensor(&c["g"])).unwrap();
    bad.extend(mismatch(
        &format!("{name} grad_x"),
        &x.grad().unwrap(),
        &tensor(&c["grad_x"]),
    ));
    for (i, e) in extra.iter().enumerate() {
        let reference = tensor(&c[format!("grad_extra{i}")]);
        bad.extend(mismatch(
            &format!("{name} grad_extra{i}"),
            &e.grad().unwrap(),
            &reference,
        ));
    }
    bad
}

#[test]
fn every_case_forward_and_gradients() {
    let fx = fixture();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 27, "fixture has {} cases", cases.len());
    let bad: Vec<String> = cases.iter().flat_map(check_case).collect();
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn argmax_and_argmin_as_pytorch() {
    let fx = fixture();
    for c in fx["argmax"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let x = tensor(&c["x"]);
        let dim = c["dim"].as_u64().unwrap() as usize;
        let want = |k: &str| -> Vec<usize> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect()
        };
        assert_eq!(
            x.argmax(dim, false).unwrap().data(),
            want("argmax"),
            "{name}"
        );
        assert_eq!(
            x.argmin(dim, false).unwrap().data(),
            want("argmin"),
            "{name}"
        );
    }
}
