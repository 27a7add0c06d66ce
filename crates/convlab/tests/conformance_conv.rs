//! Temporary conv-only conformance run (merged into conformance.rs later).
use convlab::ops::*;
use convlab::{Padding, Tensor};
use safetensors::SafeTensors;
use serde_json::Value;

fn fixtures() -> std::path::PathBuf {
    std::env::var_os("CONVLAB_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
        })
}

fn tensor(st: &SafeTensors, name: &str) -> Tensor {
    let v = st.tensor(name).unwrap();
    let data: Vec<f32> = v
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(data, v.shape()).unwrap()
}

fn err(ours: &Tensor, r: &Tensor) -> f32 {
    assert_eq!(ours.shape(), r.shape());
    let m = r.data().iter().fold(1.0f32, |a, v| a.max(v.abs()));
    ours.max_abs_diff(r).unwrap() / m
}

fn pair(v: &Value) -> (usize, usize) {
    (
        v[0].as_u64().unwrap() as usize,
        v[1].as_u64().unwrap() as usize,
    )
}

#[test]
fn conv_cases() {
    let dir = fixtures();
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("tensors.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut fails = vec![];
    let mut ran = 0;
    for algo in ConvAlgo::ALL {
        let _g = force_conv_algo(algo);
        for c in cases["cases"].as_array().unwrap() {
            let op = c["op"].as_str().unwrap();
            let name = c["name"].as_str().unwrap();
            if op != "conv2d" && op != "conv_transpose2d" {
                continue;
            }
            if algo == ConvAlgo::Reference && name.starts_with("big_") {
                continue;
            }
            let p = &c["params"];
            let t = |k: &str| tensor(&st, c["tensors"][k].as_str().unwrap());
            let x = t("input");
            let w = t("weight");
            let go = t("grad_output");
            let has_bias = p["bias"].as_bool().unwrap();
            let b = has_bias.then(|| t("bias"));
            let (y, gr) = if op == "conv2d" {
                let padding: Padding = if p["padding"].is_string() {
                    p["padding"].as_str().unwrap().parse().unwrap()
                } else {
                    pair(&p["padding"]).into()
                };
                let params = Conv2dParams::new()
                    .stride(pair(&p["stride"]))
                    .dilation(pair(&p["dilation"]))
                    .groups(p["groups"].as_u64().unwrap() as usize)
                    .padding(padding)
                    .padding_mode(p["padding_mode"].as_str().unwrap().parse().unwrap());
                (
                    conv2d(&x, &w, b.as_ref(), &params).unwrap(),
                    conv2d_backward(&x, &w, has_bias, &go, &params).unwrap(),
                )
            } else {
                let params = ConvTranspose2dParams::new()
                    .stride(pair(&p["stride"]))
                    .dilation(pair(&p["dilation"]))
                    .groups(p["groups"].as_u64().unwrap() as usize)
                    .padding(pair(&p["padding"]))
                    .output_padding(pair(&p["output_padding"]));
                (
                    conv_transpose2d(&x, &w, b.as_ref(), &params).unwrap(),
                    conv_transpose2d_backward(&x, &w, has_bias, &go, &params).unwrap(),
                )
            };
            ran += 1;
            let mut check = |what: &str, o: &Tensor, r: &Tensor| {
                let e = err(o, r);
                if !(e <= 1e-4) {
                    fails.push(format!("{algo:?} {name} {what}: {e}"));
                }
            };
            check("output", &y, &t("output"));
            check("grad_input", &gr.grad_input, &t("grad_input"));
            check("grad_weight", &gr.grad_weight, &t("grad_weight"));
            if has_bias {
                check("grad_bias", gr.grad_bias.as_ref().unwrap(), &t("grad_bias"));
            }
        }
    }
    assert!(ran > 100, "{ran}");
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
