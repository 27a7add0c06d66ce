//! The tool commands (`filter`, `learn`, `rf`, `show`) run as a user runs
//! them: the real binary on the bundled images and on `.npy` files written
//! to a temporary directory; outputs read back and checked.

use convlab::io::{read_npy, write_npy};
use convlab::Tensor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn asset(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(name)
        .display()
        .to_string()
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn convlab<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(args)
        .output()
        .expect("run convlab")
}

/// Runs and expects success; returns stdout.
fn ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = convlab(args);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and expects exit 2 with exactly one line on stderr; returns it.
fn fails<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = convlab(args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("convlab: "), "{err}");
    err
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// `[h, w]` with value `r * w + c` (a ramp: slope 1 along x, `w` along y).
fn ramp(h: usize, w: usize) -> Tensor {
    Tensor::arange((h * w) as f32)
        .unwrap()
        .reshape(&[h, w])
        .unwrap()
}

fn png_size(path: &str) -> (u32, u32) {
    image::image_dimensions(path).unwrap()
}

#[test]
fn filter_npy_values_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(&d.join("x.npy"), &ramp(4, 5)).unwrap();
    // edge-v on a slope-1 ramp: x[i] - x[i+1] = -1 everywhere.
    ok(&[
        "filter",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel",
        "edge-v",
    ]);
    let y = read_npy(&d.join("y.npy")).unwrap();
    assert_eq!(y.shape(), &[4, 4]);
    assert!(y.data().iter().all(|&v| v == -1.0), "{y:?}");
    // A literal equal to sobel-x: (1+2+1) * 2 = 8.
    ok(&[
        "filter",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel",
        "[[-1,0,1],[-2,0,2],[-1,0,1]]",
    ]);
    let y = read_npy(&d.join("y.npy")).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    assert!(y.data().iter().all(|&v| v == 8.0), "{y:?}");
    // same + reflect keeps the size; the ramp's reflection flips the slope at the edges.
    ok(&[
        "filter",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel",
        "sobel-x",
        "--padding",
        "same",
        "--mode",
        "reflect",
    ]);
    let y = read_npy(&d.join("y.npy")).unwrap();
    assert_eq!(y.shape(), &[4, 5]);
    assert_eq!(y.get(&[1, 2]).unwrap(), 8.0);
    assert_eq!(y.get(&[1, 0]).unwrap(), 0.0);
    // Stride and dilation: 7x9 input, 3x3 kernel dilated 2 spans 5 -> 3x5, stride 2 -> 2x3.
    write_npy(&d.join("big.npy"), &ramp(7, 9)).unwrap();
    ok(&[
        "filter",
        &p(d, "big.npy"),
        &p(d, "y.npy"),
        "--kernel",
        "box:3",
        "--dilation",
        "2",
        "--stride",
        "2",
    ]);
    let y = read_npy(&d.join("y.npy")).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    // A box mean of a linear ramp is its centre value: x at (2, 2) = 2*9 + 2.
    assert!((y.get(&[0, 0]).unwrap() - 20.0).abs() < 1e-4);
    // Pooling after the filter: 4x4 of -1 -> avg 2 -> 2x2 of -1; same-padded identity, max:3:1 -> 2x3.
    ok(&[
        "filter",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel",
        "edge-v",
        "--pool",
        "avg:2",
    ]);
    assert_eq!(read_npy(&d.join("y.npy")).unwrap().data(), &[-1.0; 4]);
    ok(&[
        "filter",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel",
        "identity",
        "--padding",
        "same",
        "--pool",
        "max:3:1",
    ]);
    let y = read_npy(&d.join("y.npy")).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(y.data(), &[12.0, 13.0, 14.0, 17.0, 18.0, 19.0]);
    // A kernel from a .npy file, and a C x H x W input filtered per channel.
    write_npy(&d.join("k.npy"), &Tensor::from_rows(&[[2.0]]).unwrap()).unwrap();
    let x3 = Tensor::stack(&[&ramp(4, 5), &ramp(4, 5).scale(-1.0)], 0).unwrap();
    write_npy(&d.join("x3.npy"), &x3).unwrap();
    ok(&[
        "filter",
        &p(d, "x3.npy"),
        &p(d, "y.npy"),
        "--kernel",
        &p(d, "k.npy"),
    ]);
    assert_eq!(read_npy(&d.join("y.npy")).unwrap(), x3.scale(2.0));
}

#[test]
fn filter_images_to_png_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(&[
        "filter",
        &asset("camera.png"),
        &p(d, "e.png"),
        "--kernel",
        "sobel-x",
        "--padding",
        "same",
        "--normalize",
        "abs",
    ]);
    assert!(
        out.contains("shape [512, 512]") && out.contains("abs to 0..255"),
        "{out}"
    );
    assert_eq!(png_size(&p(d, "e.png")), (512, 512));
    // Colour is filtered per channel: 451x300 -> valid 3x3 -> 449x298 -> max 2 -> 224x149.
    ok(&[
        "filter",
        &asset("chelsea.png"),
        &p(d, "c.npy"),
        "--kernel",
        "laplacian",
        "--pool",
        "max:2",
    ]);
    assert_eq!(read_npy(&d.join("c.npy")).unwrap().shape(), &[3, 149, 224]);
    ok(&[
        "filter",
        &asset("chelsea.png"),
        &p(d, "c.jpg"),
        "--kernel",
        "gaussian:1",
        "--gray",
    ]);
    assert_eq!(png_size(&p(d, "c.jpg")), (445, 294));
    let img = image::open(d.join("c.jpg")).unwrap();
    assert_eq!(img.color().channel_count(), 1);
}

/// `--resize` runs `F.interpolate(mode='bilinear', antialias=True)` before
/// the kernel: to a size or by a scale, gray or colour; a bad spec is one
/// line and exit 2.
#[test]
fn filter_resizes_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(&d.join("r.npy"), &ramp(8, 12)).unwrap();
    ok(&[
        "filter",
        &p(d, "r.npy"),
        &p(d, "half.npy"),
        "--kernel",
        "identity",
        "--padding",
        "same",
        "--resize",
        "0.5",
    ]);
    let half = read_npy(&d.join("half.npy")).unwrap();
    assert_eq!(half.shape(), &[4, 6]);
    // Halving a ramp with the antialiased (box-like) filter averages 2x2
    // blocks away from the borders: row 1, column 1 covers rows 2-3 and
    // columns 2-3 of the ramp, mean 2.5 * 12 + 2.5.
    assert!((half.data()[6 + 1] - 32.5).abs() < 1e-4, "{half}");
    // Colour, to a size, then the kernel.
    ok(&[
        "filter",
        &asset("chelsea.png"),
        &p(d, "small.npy"),
        "--kernel",
        "box:3",
        "--resize",
        "100x150",
    ]);
    assert_eq!(
        read_npy(&d.join("small.npy")).unwrap().shape(),
        &[3, 98, 148]
    );
    for bad in ["0x3", "3x", "-1", "big"] {
        let err = fails(&[
            "filter",
            &p(d, "r.npy"),
            &p(d, "bad.npy"),
            "--kernel",
            "identity",
            "--resize",
            bad,
        ]);
        assert!(err.contains("--resize"), "{bad}: {err}");
    }
}

#[test]
fn filter_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir(&inp).unwrap();
    write_npy(&inp.join("a.npy"), &ramp(4, 5)).unwrap();
    write_npy(&inp.join("b.npy"), &ramp(6, 6)).unwrap();
    std::fs::copy(asset("camera.png"), inp.join("cam.png")).unwrap();
    std::fs::write(inp.join("notes.txt"), "not an image").unwrap();
    let s = ok(&[
        "filter",
        &inp.display().to_string(),
        &out.display().to_string(),
        "--kernel",
        "edge-v",
        "--format",
        "npy",
    ]);
    assert!(s.contains("filtered 3 files"), "{s}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.npy", "b.npy", "cam.npy"]);
    assert_eq!(read_npy(&out.join("b.npy")).unwrap().shape(), &[6, 5]);
    assert_eq!(read_npy(&out.join("cam.npy")).unwrap().shape(), &[512, 511]);
}

#[test]
fn rf_table() {
    let s = ok(&[
        "rf",
        "conv3, conv3, maxpool2, conv3 s2 p1, conv5 d2",
        "--input",
        "40",
    ]);
    let rows: Vec<Vec<&str>> = s.lines().map(|l| l.split_whitespace().collect()).collect();
    let row = |i: usize| {
        rows[i + 1]
            .iter()
            .rev()
            .take(4)
            .rev()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(row(0), ["40x40", "1", "1", "0"]);
    assert_eq!(row(1), ["38x38", "3", "1", "1"]);
    assert_eq!(row(2), ["36x36", "5", "1", "2"]);
    assert_eq!(row(3), ["18x18", "6", "2", "2.5"]);
    assert_eq!(row(4), ["9x9", "10", "4", "2.5"]);
    assert_eq!(row(5), ["1x1", "42", "4", "18.5"]);
    // Rectangles print per axis.
    let s = ok(&["rf", "conv3x5 s1x2", "--input", "10x20"]);
    let last: Vec<&str> = s.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(last, ["1", "conv3x5", "s1x2", "8x8", "3x5", "1x2", "1,2"]);
    let e = fails(&[
        "rf",
        "conv3, conv3, maxpool2, conv3 s2 p1, conv5 d2",
        "--input",
        "32",
    ]);
    assert!(
        e.contains("layer 5 'conv5 d2' does not fit its 7x7 input"),
        "{e}"
    );
}

/// `rf` on a sequence (`--dims 1`) and a volume (`DxHxW`, sizes per
/// axis in the spec), and the one-line errors of a mismatched rank.
#[test]
fn rf_in_one_and_three_dimensions() {
    let out = ok(&[
        "rf",
        "conv9 p4, maxpool2, conv9 p4",
        "--input",
        "16000",
        "--dims",
        "1",
    ]);
    let last = out.lines().nth(4).unwrap();
    assert!(
        last.contains("8000") && last.contains(" 26 ") && last.contains(" 2 "),
        "{out}"
    );
    let out = ok(&[
        "rf",
        "conv3x7x7 s1x2x2 p1x3x3, maxpool3 s2 p1",
        "--input",
        "16x112x112",
    ]);
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[2].contains("16x56x56") && rows[2].contains("3x7x7") && rows[2].contains("1x2x2"),
        "{out}"
    );
    assert!(
        rows[3].contains("8x28x28") && rows[3].contains("5x11x11"),
        "{out}"
    );
    assert!(out.contains("(depth, row, col)"), "{out}");
    let err = fails(&["rf", "conv3, conv3x3", "--input", "8x8x8"]);
    assert!(err.contains("layer 2") && err.contains("1 or 3"), "{err}");
    let err = fails(&["rf", "conv3", "--input", "8x8", "--dims", "1"]);
    assert!(err.contains("--dims is 1"), "{err}");
}

#[test]
fn learn_demo_recovers_sobel_x() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = ok(&[
        "learn",
        "--out",
        &p(d, "k.npy"),
        "--plot",
        &p(d, "loss.png"),
    ]);
    let err: f32 = s
        .lines()
        .find_map(|l| l.strip_prefix("max |learned - sobel-x| = "))
        .unwrap_or_else(|| panic!("{s}"))
        .parse()
        .unwrap();
    assert!(err < 1e-3, "{s}");
    assert!(s.contains("learned kernel:\ntensor([["), "{s}");
    let k = read_npy(&d.join("k.npy")).unwrap();
    let sobel = convlab::filters::named_kernel("sobel-x").unwrap();
    assert!(k.max_abs_diff(&sobel).unwrap() < 1e-3);
    assert_eq!(png_size(&p(d, "loss.png")), (720, 420));
}

#[test]
fn learn_from_files_with_bias() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The book's image: ones with a dark band; target edge-v response + 0.5.
    let mut x = Tensor::ones(&[6, 8]).unwrap();
    for row in x.data_mut().chunks_mut(8) {
        row[2..6].fill(0.0);
    }
    let y = convlab::filters::apply(
        &x,
        &Tensor::from_rows(&[[1.0, -1.0]]).unwrap(),
        &convlab::ops::Conv2dParams::new(),
    )
    .unwrap()
    .map(|v| v + 0.5);
    write_npy(&d.join("x.npy"), &x).unwrap();
    write_npy(&d.join("y.npy"), &y).unwrap();
    let s = ok(&[
        "learn",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel-size",
        "1x2",
        "--bias",
        "--steps",
        "300",
        "--out",
        &p(d, "k.npy"),
    ]);
    let k = read_npy(&d.join("k.npy")).unwrap();
    assert!(
        (k.data()[0] - 1.0).abs() < 1e-3 && (k.data()[1] + 1.0).abs() < 1e-3,
        "{s}"
    );
    let b: f32 = s
        .lines()
        .find_map(|l| l.strip_prefix("learned bias: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((b - 0.5).abs() < 1e-3, "{s}");
}

#[test]
fn learn_solves_a_photograph_pair_exactly_by_default() {
    // `learn x.npy y.npy --kernel-size 3x3 --lr auto --steps 20000` ended 6%
    // off after 10 s on a raw photograph; least squares is the default now.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = convlab::io::load_image(Path::new(&asset("camera.png")), true).unwrap();
    let k = Tensor::uniform(&[5, 5], -1.0, 1.0, &mut convlab::seeded_rng(9)).unwrap();
    write_npy(&d.join("x.npy"), &x).unwrap();
    write_npy(&d.join("y.npy"), &convlab::ops::corr2d(&x, &k).unwrap()).unwrap();
    let s = ok(&[
        "learn",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel-size",
        "5",
        "--out",
        &p(d, "k.npy"),
    ]);
    assert!(
        s.contains("least squares: 25 unknowns, rank 25, condition number "),
        "{s}"
    );
    let learned = read_npy(&d.join("k.npy")).unwrap();
    let largest = k.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(learned.max_abs_diff(&k).unwrap() < 1e-4 * largest, "{s}");
    // A gradient-descent option selects gradient descent, which says how
    // far it is from the least-squares loss when it stalls.
    let s = ok(&[
        "learn",
        &p(d, "x.npy"),
        &p(d, "y.npy"),
        "--kernel-size",
        "5",
        "--steps",
        "20",
    ]);
    assert!(s.contains("sgd, lr "), "{s}");
    assert!(
        s.contains("the least-squares loss is ") && s.contains("--solver lstsq"),
        "{s}"
    );
    // Explicit choices, and their conflicts.
    let s = ok(&["learn", "--solver", "lstsq"]);
    assert!(s.contains("least squares: 9 unknowns"), "{s}");
    let err: f32 = s
        .lines()
        .find_map(|l| l.strip_prefix("max |learned - sobel-x| = "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(err < 1e-4, "{s}");
    let e = fails(&["learn", "--solver", "lstsq", "--lr", "0.1"]);
    assert!(e.contains("--lr applies to --solver gd"), "{e}");
    let e = fails(&["learn", "--solver", "newton"]);
    assert!(e.contains("--solver 'newton' is not lstsq or gd"), "{e}");
}

#[test]
fn learn_divergence_is_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let plot = p(dir.path(), "loss.png");
    let out = convlab(&["learn", "--lr", "0.001", "--plot", &plot]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("convlab: lr 0.001 diverges here (loss "),
        "{err}"
    );
    assert!(err.contains(" in 2 steps); stable below 0.0000"), "{err}");
    assert!(err.trim_end().ends_with("; try --lr auto"), "{err}");
    // The curve is still drawn: it shows the blow-up.
    assert_eq!(png_size(&plot), (720, 420));
}

#[test]
fn show_kernels_models_and_feature_maps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(&d.join("k.npy"), &ramp(3, 3)).unwrap();
    // 3x3 enlarged 16x (48 px) plus a 1-px frame.
    ok(&["show", &p(d, "k.npy"), "-o", &p(d, "k.png")]);
    assert_eq!(png_size(&p(d, "k.png")), (50, 50));
    let img = image::open(d.join("k.png")).unwrap().to_rgb8();
    // Min-max per tile: top-left tap black, bottom-right white, frame blue-grey.
    assert_eq!(img.get_pixel(1, 1).0, [0, 0, 0]);
    assert_eq!(img.get_pixel(48, 48).0, [255, 255, 255]);
    assert_eq!(img.get_pixel(0, 0).0, [89, 140, 217]);
    // The model's first 4-D tensor, 0.weight [8, 3, 3, 3]: 8 rows of 3.
    let s = ok(&[
        "show",
        &fixture("torch_model.safetensors"),
        "-o",
        &p(d, "m.png"),
    ]);
    assert!(s.contains("'0.weight' [8, 3, 3, 3]"), "{s}");
    assert_eq!(png_size(&p(d, "m.png")), (3 * 49 + 1, 8 * 49 + 1));
    let s = ok(&[
        "show",
        &fixture("torch_model.safetensors"),
        "--key",
        "3.weight",
        "-o",
        &p(d, "m3.png"),
    ]);
    assert!(s.contains("'3.weight' [8, 4, 3, 3]"), "{s}");
    // Feature maps: two kernels on the gray camera, same padding.
    ok(&[
        "show",
        "--image",
        &asset("camera.png"),
        "-k",
        "sobel-x",
        "-k",
        "sobel-y",
        "-o",
        &p(d, "f.png"),
    ]);
    assert_eq!(png_size(&p(d, "f.png")), (2 * 513 + 1, 514));
    // Through the model's first conv layer: 8 maps of the colour cat.
    let s = ok(&[
        "show",
        &fixture("torch_model.safetensors"),
        "--image",
        &asset("chelsea.png"),
        "--cols",
        "4",
        "--scale",
        "1",
        "-o",
        &p(d, "cat.png"),
    ]);
    assert!(s.contains("8 feature maps 300x451"), "{s}");
    assert_eq!(png_size(&p(d, "cat.png")), (4 * 452 + 1, 2 * 301 + 1));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(&d.join("x.npy"), &ramp(4, 5)).unwrap();
    std::fs::write(d.join("bad.png"), b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let x = p(d, "x.npy");
    let y = p(d, "y.npy");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "filter".into(),
                p(d, "missing.png"),
                y.clone(),
                "-k".into(),
                "sobel-x".into(),
            ],
            "cannot read",
        ),
        (
            vec![
                "filter".into(),
                p(d, "bad.png"),
                y.clone(),
                "-k".into(),
                "sobel-x".into(),
            ],
            "cannot decode",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                y.clone(),
                "-k".into(),
                "[[1,-1],[2]]".into(),
            ],
            "row 1 has 1 values but row 0 has 2",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                y.clone(),
                "-k".into(),
                "gaussian:2".into(),
            ],
            "kernel height 13 is larger than the padded input height 4",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                y.clone(),
                "-k".into(),
                "sobelx".into(),
            ],
            "name 'sobelx' is unknown",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                y.clone(),
                "-k".into(),
                "sobel-x".into(),
                "--pool".into(),
                "max:0".into(),
            ],
            "--pool 'max:0' is not max:K[:S]",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                y.clone(),
                "-k".into(),
                "sobel-x".into(),
                "--padding".into(),
                "wide".into(),
            ],
            "'wide' is not 'same'",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                y.clone(),
                "-k".into(),
                "sobel-x".into(),
                "--mode".into(),
                "mirror".into(),
            ],
            "'mirror' is not one of zeros",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                p(d, "y.bmp"),
                "-k".into(),
                "sobel-x".into(),
            ],
            "use .png, .jpg or .npy",
        ),
        (
            vec![
                "filter".into(),
                x.clone(),
                y.clone(),
                "-k".into(),
                "sobel-x".into(),
                "--stride".into(),
                "0".into(),
            ],
            "stride",
        ),
        (
            vec![
                "rf".into(),
                "conv3, pool2".into(),
                "--input".into(),
                "32".into(),
            ],
            "'pool2' is not convK",
        ),
        (
            vec!["rf".into(), "conv3".into(), "--input".into(), "0x3".into()],
            "--input '0x3'",
        ),
        (
            vec!["learn".into(), x.clone(), x.clone()],
            "target has shape [4, 5]",
        ),
        (
            vec!["learn".into(), x.clone()],
            "give both INPUT and TARGET",
        ),
        (
            vec!["learn".into(), "--lr=-1".into()],
            "--lr '-1' is not a positive number",
        ),
        (
            vec!["learn".into(), "--optimizer".into(), "rmsprop".into()],
            "'rmsprop' is not sgd or adam",
        ),
        (
            vec![
                "show".into(),
                fixture("torch_model.safetensors"),
                "--key".into(),
                "9.weight".into(),
                "-o".into(),
                p(d, "s.png"),
            ],
            "no tensor named '9.weight'",
        ),
        (
            vec!["show".into(), x.clone(), "-o".into(), p(d, "s.txt")],
            "must be a .png or .jpg",
        ),
        (
            vec![
                "show".into(),
                "--image".into(),
                x.clone(),
                "-o".into(),
                p(d, "s.png"),
            ],
            "--image needs --kernel",
        ),
        // Usage errors from the argument parser are one line too.
        (vec!["filter".into(), x.clone(), y.clone()], "--kernel"),
        (
            vec!["rf".into(), "conv3".into(), "--inptu".into(), "3".into()],
            "unexpected argument '--inptu'",
        ),
    ];
    for (args, needle) in cases {
        let e = fails(&args);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

/// A NaN or infinite pixel reaches exactly the outputs whose window covers
/// it, as in PyTorch, even where the filter would run on FFTs: one bad
/// pixel of a 256x256 image under a random 15x15 kernel makes 15 x 15 =
/// 225 of the 242 x 242 outputs non-finite (it made all 58,564 NaN when
/// the FFT path saw it). `--exact` gives the same, and runs.
#[test]
fn a_non_finite_pixel_stays_inside_the_windows_that_cover_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = convlab::seeded_rng(5);
    let k = convlab::Tensor::uniform(&[15, 15], -1.0, 1.0, &mut rng).unwrap();
    let kp = d.join("k.npy");
    convlab::io::write_npy(&kp, &k).unwrap();
    for bad in [f32::NAN, f32::INFINITY] {
        let mut x = convlab::Tensor::uniform(&[256, 256], 0.0, 1.0, &mut rng).unwrap();
        x.data_mut()[100 * 256 + 77] = bad;
        let xp = d.join("x.npy");
        convlab::io::write_npy(&xp, &x).unwrap();
        for exact in [false, true] {
            let yp = d.join("y.npy");
            let mut args = vec![
                "filter".to_string(),
                xp.display().to_string(),
                yp.display().to_string(),
                "-k".into(),
                kp.display().to_string(),
            ];
            if exact {
                args.push("--exact".into());
            }
            let r = Command::new(env!("CARGO_BIN_EXE_convlab"))
                .args(&args)
                .output()
                .unwrap();
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            let y = convlab::io::read_npy(&yp).unwrap();
            assert_eq!(y.shape(), [242, 242]);
            let spread = y.data().iter().filter(|v| !v.is_finite()).count();
            assert_eq!(spread, 225, "{bad} (exact: {exact})");
        }
    }
}
