//! `convlab predict` and `convlab bench --networks` run as a user runs them:
//! PyTorch's LeNet weights (tests/fixtures/gen_models.py) give PyTorch's
//! logits through the binary, an image goes through torchvision's eval
//! transform, user errors exit 2 with one line.

use convlab::io;
use convlab::models::imagenet_eval_transform;
use convlab::Tensor;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models")
}

fn io_tensors() -> HashMap<String, Tensor> {
    io::load_safetensors(&fixtures().join("io.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn convlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(args)
        .output()
        .expect("run convlab")
}

fn max_rel_err(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.shape(), reference.shape());
    let scale = reference.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
    ours.max_abs_diff(reference).unwrap() / scale
}

#[test]
fn predict_gives_pytorchs_logits_for_lenet() {
    // The same weights saved by safetensors and by torch.save.
    for file in ["lenet.safetensors", "lenet.pth"] {
        lenet_logits_from(file);
    }
}

fn lenet_logits_from(file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let t = io_tensors();
    let input = dir.path().join("x.npy");
    io::write_npy(&input, &t["lenet.input"]).unwrap();
    let out = dir.path().join("logits.npy");
    let seen = dir.path().join("seen.npy");
    let labels = dir.path().join("labels.txt");
    std::fs::write(
        &labels,
        (0..10).map(|i| format!("digit{i}\n")).collect::<String>(),
    )
    .unwrap();
    let weights = fixtures().join(file);
    let r = convlab(&[
        "predict",
        "--arch",
        "lenet",
        "--weights",
        weights.to_str().unwrap(),
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--top",
        "3",
        "--labels",
        labels.to_str().unwrap(),
        "--save-input",
        seen.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // A .npy input runs as it is: the batch the network saw is the input.
    assert_eq!(io::read_npy(&seen).unwrap(), t["lenet.input"]);
    let logits = io::read_npy(&out).unwrap();
    let e = max_rel_err(&logits, &t["lenet.logits"]);
    assert!(e <= 1e-4, "{file}: relative error {e:e}");
    let stdout = String::from_utf8(r.stdout).unwrap();
    // Two inputs, three classes each, named from --labels.
    assert_eq!(
        stdout.lines().filter(|l| l.contains("digit")).count(),
        6,
        "{stdout}"
    );
    let row = &t["lenet.logits"].data()[..10];
    let best = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
    let first = stdout.lines().nth(1).unwrap();
    assert!(first.ends_with(&format!("digit{best}")), "{stdout}");
}

#[test]
fn predict_refuses_weights_of_another_network_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.npy");
    io::write_npy(&input, &io_tensors()["lenet.input"]).unwrap();
    let weights = fixtures().join("lenet.safetensors");
    for (arch, fragment) in [("nin", "0.0.weight"), ("resnet99", "resnet18")] {
        let r = convlab(&[
            "predict",
            "--arch",
            arch,
            "--weights",
            weights.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        assert_eq!(r.status.code(), Some(2));
        let err = String::from_utf8(r.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("convlab: ") && err.contains(fragment),
            "{err}"
        );
    }
}

#[test]
fn the_eval_transform_matches_torchvision() {
    let image = io::load_image(&fixtures().join("photo.png"), false).unwrap();
    let ours = imagenet_eval_transform(&image, 256, 224).unwrap();
    let want = &io_tensors()["photo.transformed"];
    // One 8-bit step after normalising: 1 / 255 / 0.225.
    let step = 1.0 / 255.0 / 0.225;
    let diff = ours.max_abs_diff(want).unwrap();
    assert!(
        diff <= step * 1.01,
        "max difference {diff} over one 8-bit step"
    );
    let off = ours
        .data()
        .iter()
        .zip(want.data())
        .filter(|(a, b)| (*a - *b).abs() > 1e-5)
        .count();
    assert!(
        off * 100 <= ours.numel(),
        "{off} of {} values differ",
        ours.numel()
    );
}

#[test]
fn bench_networks_prints_one_json_object_per_case() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("nets.json");
    std::fs::write(
        &suite,
        r#"{"networks": [
            {"name": "lenet_b2", "arch": "lenet", "mode": "infer", "n": 2, "c": 1, "h": 28, "w": 28, "num_classes": 10},
            {"name": "lenet_train_b4", "arch": "lenet", "mode": "train", "n": 4, "c": 1, "h": 28, "w": 28, "num_classes": 10,
             "optimizer": {"sgd": {"lr": 0.01, "momentum": 0.9}}},
            {"name": "other", "arch": "lenet", "mode": "infer", "n": 1, "c": 1, "h": 28, "w": 28, "num_classes": 10}
        ]}"#,
    )
    .unwrap();
    let r = convlab(&[
        "bench",
        "--networks",
        suite.to_str().unwrap(),
        "--filter",
        "lenet",
        "--reps",
        "2",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(r.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lenet_b2", "lenet_train_b4"]);
    for l in &lines {
        assert!(l["median_ms"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["peak_rss_mb"].as_f64().unwrap() > 0.0, "{l}");
    }
}
