//! The CLI's bad-input battery: the real binary on hundreds of bad inputs,
//! generated programmatically (zero and huge sizes, bad strides, paddings
//! and kernels, wrong ranks and dtypes, empty/truncated/corrupt files,
//! missing files, unwritable outputs, malformed literals and specs, bad
//! option values, the memory limit).
//!
//! Every case must: exit with code 2 (not a signal), print exactly one line
//! on stderr starting `convlab: ` that contains the case's expected words
//! (so the line names the problem), print no `panicked`, and leave its
//! private output directory exactly as it was (no output file under the
//! final name, no stray temporary file).
//!
//! Each group is one `#[test]` so the harness runs groups in parallel; a
//! group collects every failing case before failing, so one run shows them all.

use convlab::io::{npy_to_bytes, safetensors_to_bytes, write_npy};
use convlab::Tensor;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Placeholder in a case's arguments for its private output directory.
const OUT: &str = "{OUT}";

/// One bad invocation and what its error line must mention.
struct Case {
    name: String,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Lower-case words the stderr line must contain (any one of them).
    expect: Vec<&'static str>,
}

fn case(name: impl Into<String>, args: &[&str], expect: &[&'static str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        expect: expect.to_vec(),
    }
}

impl Case {
    fn env(mut self, k: &'static str, v: &str) -> Case {
        self.env.push((k, v.to_string()));
        self
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs every case; returns one message per failed case.
fn run_cases(work: &Path, cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let out = work.join(format!("out{i}"));
        fs::create_dir_all(&out).unwrap();
        // A file already in place: an error must leave it untouched.
        fs::write(out.join("keep.txt"), b"old").unwrap();
        let before = listing(&out);
        let args: Vec<OsString> = c
            .args
            .iter()
            .map(|a| a.replace(OUT, &out.display().to_string()).into())
            .collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convlab"));
        cmd.args(&args).current_dir(work);
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        let r = cmd.output().expect("run convlab");
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        let lower = err.to_lowercase();
        let mut why = Vec::new();
        if r.status.code() != Some(2) {
            why.push(format!("exit {:?}", r.status));
        }
        if err.lines().count() != 1 || !err.ends_with('\n') {
            why.push("stderr is not exactly one line".into());
        }
        if !err.starts_with("convlab: ") {
            why.push("stderr does not start with 'convlab: '".into());
        }
        if lower.contains("panicked") {
            why.push("panicked".into());
        }
        if !c.expect.iter().any(|w| lower.contains(w)) {
            why.push(format!("mentions none of {:?}", c.expect));
        }
        let after = listing(&out);
        if after != before {
            why.push(format!("output dir changed: {before:?} -> {after:?}"));
        }
        if fs::read(out.join("keep.txt")).ok().as_deref() != Some(&b"old"[..]) {
            why.push("keep.txt was modified".into());
        }
        if !why.is_empty() {
            failures.push(format!(
                "[{}] {}: {}\n    args {:?}\n    stderr {err:?}",
                i,
                c.name,
                why.join("; "),
                args
            ));
        }
    }
    failures
}

fn check(group: &str, min_cases: usize, cases: Vec<Case>) {
    assert!(
        cases.len() >= min_cases,
        "{group}: only {} cases",
        cases.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let n = cases.len();
    let failures = run_cases(dir.path(), cases);
    assert!(
        failures.is_empty(),
        "{group}: {} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{group}: {n} cases, exit 2 and one line each");
}

// ---------------------------------------------------------------- inputs ---

/// A `.npy` file with the given header dict and raw data, version 1.0.
fn npy_raw(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

fn npy_dict(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

/// A small gray ramp image as PNG bytes.
fn png_bytes(h: u32, w: u32, color: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.png");
    let t = if color {
        Tensor::arange((3 * h * w) as f32)
            .unwrap()
            .reshape(&[3, h as usize, w as usize])
            .unwrap()
    } else {
        Tensor::arange((h * w) as f32)
            .unwrap()
            .reshape(&[h as usize, w as usize])
            .unwrap()
    };
    convlab::io::save_image(&p, &t, convlab::io::Normalize::MinMax).unwrap();
    fs::read(&p).unwrap()
}

fn jpg_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.jpg");
    let t = Tensor::arange(256.0).unwrap().reshape(&[16, 16]).unwrap();
    convlab::io::save_image(&p, &t, convlab::io::Normalize::MinMax).unwrap();
    fs::read(&p).unwrap()
}

/// The shared input files, written once per group into `dir`.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Inputs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ramp = |s: &[usize]| {
            Tensor::arange(s.iter().product::<usize>() as f32)
                .unwrap()
                .reshape(s)
                .unwrap()
        };
        write_npy(&d.join("good.npy"), &ramp(&[8, 8])).unwrap();
        write_npy(&d.join("target6.npy"), &ramp(&[6, 6])).unwrap();
        write_npy(&d.join("good3.npy"), &ramp(&[3, 8, 8])).unwrap();
        write_npy(&d.join("two_ch.npy"), &ramp(&[2, 8, 8])).unwrap();
        write_npy(&d.join("five_ch.npy"), &ramp(&[5, 8, 8])).unwrap();
        write_npy(&d.join("k3.npy"), &ramp(&[3, 3])).unwrap();
        write_npy(&d.join("w4d.npy"), &ramp(&[2, 3, 3, 3])).unwrap();
        let mut nan = ramp(&[8, 8]);
        nan.data_mut()[10] = f32::NAN;
        write_npy(&d.join("nan.npy"), &nan).unwrap();
        let mut inf = ramp(&[8, 8]);
        inf.data_mut()[3] = f32::INFINITY;
        write_npy(&d.join("inf.npy"), &inf).unwrap();
        let mut knan = ramp(&[3, 3]);
        knan.data_mut()[4] = f32::NAN;
        write_npy(&d.join("k_nan.npy"), &knan).unwrap();
        let png = png_bytes(16, 16, false);
        fs::write(d.join("good.png"), &png).unwrap();
        fs::write(d.join("color.png"), png_bytes(16, 16, true)).unwrap();
        fs::write(d.join("big.png"), png_bytes(400, 400, false)).unwrap();
        let jpg = jpg_bytes();
        fs::write(d.join("good.jpg"), &jpg).unwrap();
        // Empty, truncated, corrupt and mislabelled files.
        for n in ["empty.png", "empty.jpg", "empty.npy", "empty.safetensors"] {
            fs::write(d.join(n), b"").unwrap();
        }
        fs::write(d.join("trunc.png"), &png[..png.len() / 2]).unwrap();
        fs::write(d.join("header_only.png"), &png[..8]).unwrap();
        let mut corrupt = png.clone();
        let mid = corrupt.len() / 2;
        for b in &mut corrupt[mid..mid + 16] {
            *b ^= 0xA5;
        }
        fs::write(d.join("corrupt.png"), &corrupt).unwrap();
        fs::write(d.join("trunc.jpg"), &jpg[..jpg.len() / 3]).unwrap();
        fs::write(d.join("soi_only.jpg"), [0xff, 0xd8, 0xff]).unwrap();
        let mut cj = jpg.clone();
        let mid = cj.len() / 2;
        for b in &mut cj[mid..] {
            *b = 0xff;
        }
        fs::write(d.join("corrupt.jpg"), &cj).unwrap();
        fs::write(d.join("text.png"), b"this is not an image\n").unwrap();
        fs::write(d.join("gif.png"), b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
        fs::write(d.join("png_as.npy"), &png).unwrap();
        fs::write(d.join("notes.txt"), b"hello").unwrap();
        fs::write(d.join("a_file"), b"regular file").unwrap();
        // .npy files: every way the header or data can be wrong.
        let f4 = |shape: &str| npy_dict("<f4", shape);
        let raw: Vec<(&str, Vec<u8>)> = vec![
            ("bad_magic.npy", b"\x93NUMPX\x01\x00\x00\x00".to_vec()),
            ("magic_only.npy", b"\x93NUMPY".to_vec()),
            ("version9.npy", {
                let mut b = npy_raw(&f4("(2,)"), &[0; 8]);
                b[6] = 9;
                b
            }),
            (
                "hdr_len_huge.npy",
                b"\x93NUMPY\x01\x00\xff\xff{'descr'".to_vec(),
            ),
            ("hdr_not_dict.npy", npy_raw("[1, 2, 3]", &[])),
            (
                "hdr_garbage.npy",
                npy_raw("{'descr': '<f4', 'shape': (2,", &[]),
            ),
            (
                "hdr_no_shape.npy",
                npy_raw("{'descr': '<f4', 'fortran_order': False, }", &[0; 4]),
            ),
            (
                "hdr_no_descr.npy",
                npy_raw("{'fortran_order': False, 'shape': (1,), }", &[0; 4]),
            ),
            ("shape_negative.npy", npy_raw(&f4("(-2, 3)"), &[0; 24])),
            ("shape_float.npy", npy_raw(&f4("(2.5, 3)"), &[0; 24])),
            ("shape_text.npy", npy_raw(&f4("('a', 3)"), &[0; 24])),
            ("shape_huge.npy", npy_raw(&f4("(100000, 100000)"), &[0; 64])),
            (
                "shape_overflow.npy",
                npy_raw(&f4("(4611686018427387904, 4611686018427387904)"), &[0; 64]),
            ),
            (
                "shape_bigint.npy",
                npy_raw(&f4("(99999999999999999999999999, 1)"), &[0; 64]),
            ),
            ("trunc_data.npy", npy_raw(&f4("(8, 8)"), &[0; 100])),
            ("extra_data.npy", npy_raw(&f4("(2, 2)"), &[0; 40])),
            ("rank0.npy", npy_raw(&f4("()"), &[0; 4])),
            ("rank1.npy", npy_raw(&f4("(16,)"), &[0; 64])),
            ("rank4.npy", npy_raw(&f4("(1, 1, 4, 4)"), &[0; 64])),
            ("rank5.npy", npy_raw(&f4("(1, 1, 1, 4, 4)"), &[0; 64])),
            ("zero_h.npy", npy_raw(&f4("(0, 5)"), &[])),
            ("zero_w.npy", npy_raw(&f4("(5, 0)"), &[])),
            ("zero_c.npy", npy_raw(&f4("(0, 4, 4)"), &[])),
            (
                "complex.npy",
                npy_raw(&npy_dict("<c8", "(4, 4)"), &[0; 128]),
            ),
            (
                "complex16.npy",
                npy_raw(&npy_dict("<c16", "(4, 4)"), &[0; 256]),
            ),
            (
                "unicode.npy",
                npy_raw(&npy_dict("<U3", "(4, 4)"), &[0; 192]),
            ),
            ("bytes.npy", npy_raw(&npy_dict("|S3", "(4, 4)"), &[0; 48])),
            ("object.npy", npy_raw(&npy_dict("|O", "(4, 4)"), &[0; 128])),
            (
                "datetime.npy",
                npy_raw(&npy_dict("<M8[s]", "(4, 4)"), &[0; 128]),
            ),
            (
                "structured.npy",
                npy_raw(
                    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4, 4), }",
                    &[0; 64],
                ),
            ),
            (
                "descr_empty.npy",
                npy_raw(&npy_dict("", "(4, 4)"), &[0; 64]),
            ),
        ];
        for (n, b) in raw {
            fs::write(d.join(n), b).unwrap();
        }
        // Kernel .npy files of the wrong shape.
        write_npy(&d.join("k_rank3.npy"), &ramp(&[2, 3, 3])).unwrap();
        write_npy(&d.join("k_rank1.npy"), &ramp(&[3])).unwrap();
        fs::write(d.join("k_empty.npy"), npy_raw(&f4("(0, 3)"), &[])).unwrap();
        // safetensors: empty, truncated, hostile header lengths, bad JSON,
        // offsets out of range, unknown dtypes, no 4-D tensor.
        let t = ramp(&[2, 3]);
        let st = safetensors_to_bytes(&[("w", &t)]).unwrap();
        let st_hdr = |json: &str, data: &[u8]| {
            let mut b = (json.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(json.as_bytes());
            b.extend_from_slice(data);
            b
        };
        let sts: Vec<(&str, Vec<u8>)> = vec![
            ("st_trunc.safetensors", st[..st.len() - 5].to_vec()),
            ("st_len_only.safetensors", st[..8].to_vec()),
            ("st_short.safetensors", st[..4].to_vec()),
            ("st_len_huge.safetensors", {
                let mut b = u64::MAX.to_le_bytes().to_vec();
                b.extend_from_slice(b"{}");
                b
            }),
            ("st_bad_json.safetensors", st_hdr("{not json", &[])),
            ("st_not_object.safetensors", st_hdr("[1,2]", &[])),
            (
                "st_offsets.safetensors",
                st_hdr(
                    r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,1000]}}"#,
                    &[0; 16],
                ),
            ),
            (
                "st_offsets_rev.safetensors",
                st_hdr(
                    r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}}"#,
                    &[0; 16],
                ),
            ),
            (
                "st_shape_mismatch.safetensors",
                st_hdr(
                    r#"{"w":{"dtype":"F32","shape":[3,3],"data_offsets":[0,16]}}"#,
                    &[0; 16],
                ),
            ),
            (
                "st_shape_overflow.safetensors",
                st_hdr(
                    r#"{"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,4,4],"data_offsets":[0,16]}}"#,
                    &[0; 16],
                ),
            ),
            (
                "st_dtype.safetensors",
                st_hdr(
                    r#"{"w":{"dtype":"C64","shape":[2],"data_offsets":[0,16]}}"#,
                    &[0; 16],
                ),
            ),
            (
                "st_dtype_str.safetensors",
                st_hdr(
                    r#"{"w":{"dtype":"STR","shape":[1,1,1,1],"data_offsets":[0,4]}}"#,
                    &[0; 4],
                ),
            ),
            ("st_no_4d.safetensors", st.clone()),
        ];
        for (n, b) in sts {
            fs::write(d.join(n), b).unwrap();
        }
        // Directories for `filter`'s directory mode.
        fs::create_dir(d.join("dir_bad")).unwrap();
        fs::write(d.join("dir_bad/a.png"), &png).unwrap();
        fs::write(d.join("dir_bad/b.png"), b"corrupt").unwrap();
        fs::create_dir(d.join("dir_empty")).unwrap();
        fs::create_dir(d.join("dir_good")).unwrap();
        fs::write(d.join("dir_good/a.png"), &png).unwrap();
        // Digits data for train-digits.
        fs::write(d.join("digits_garbage.csv"), b"a,b,c\n1,2\n").unwrap();
        fs::write(d.join("digits_short.csv"), "0,".repeat(64) + "3\n").unwrap();
        fs::write(d.join("digits_label.csv"), "0,".repeat(64) + "12\n").unwrap();
        fs::write(d.join("digits_nan.csv"), "nan,".repeat(64) + "1\n").unwrap();
        fs::write(d.join("digits.csv.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
        fs::write(d.join("digits_empty.csv"), b"").unwrap();
        // Bench suites.
        let suite = |conv: &str| format!(r#"{{"conv2d": [{conv}], "pool": []}}"#);
        let c = |k: &str, v: &str| {
            let base = r#""name": "x", "n": 1, "cin": 4, "h": 8, "w": 8, "cout": 4, "k": 3, "stride": 1, "padding": 0, "dilation": 1, "groups": 1"#;
            let mut s = base.replace(
                &format!("\"{k}\": "),
                &format!("\"{k}\": {v}, \"_old_{k}\": "),
            );
            s = format!("{{{s}}}");
            s
        };
        let suites = [
            ("suite_groups3.json", suite(&c("groups", "3"))),
            ("suite_groups0.json", suite(&c("groups", "0"))),
            ("suite_stride0.json", suite(&c("stride", "0"))),
            ("suite_k_big.json", suite(&c("k", "9"))),
            ("suite_huge.json", suite(&c("h", "1000000000"))),
            ("suite_neg.json", suite(&c("cin", "-1"))),
            ("suite_missing.json", suite(r#"{"name": "x", "n": 1}"#)),
            ("suite_bad.json", "{\"conv2d\": [".to_string()),
            (
                "suite_pool.json",
                r#"{"conv2d": [], "pool": [{"name": "p", "op": "max_pool2d", "n": 1, "c": 1, "h": 4, "w": 4, "k": 0, "stride": 1, "padding": 0}]}"#.to_string(),
            ),
            (
                "suite_pool_op.json",
                r#"{"conv2d": [], "pool": [{"name": "p", "op": "min_pool2d", "n": 1, "c": 1, "h": 4, "w": 4, "k": 2, "stride": 1, "padding": 0}]}"#.to_string(),
            ),
            (
                "suite_weight.json",
                r#"{"conv2d": [{"name": "c", "n": 1, "cin": 1, "h": 8, "w": 8, "cout": 1, "k": 3, "stride": 1, "padding": 1, "dilation": 1, "groups": 1, "weight": "sobel"}], "pool": []}"#.to_string(),
            ),
        ];
        for (n, s) in suites {
            fs::write(d.join(n), s).unwrap();
        }
        Inputs { dir }
    }

    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Every bad image/array input file, with what its error must mention.
const BAD_INPUTS: &[(&str, &[&str])] = &[
    ("missing.png", &["missing.png", "no such file"]),
    ("missing.npy", &["missing.npy", "no such file"]),
    ("missing.jpg", &["missing.jpg", "no such file"]),
    ("empty.png", &["empty.png"]),
    ("empty.jpg", &["empty.jpg"]),
    ("empty.npy", &["empty.npy"]),
    ("trunc.png", &["trunc.png"]),
    ("header_only.png", &["header_only.png"]),
    ("corrupt.png", &["corrupt.png"]),
    ("trunc.jpg", &["trunc.jpg"]),
    ("soi_only.jpg", &["soi_only.jpg"]),
    ("corrupt.jpg", &["corrupt.jpg"]),
    ("text.png", &["text.png"]),
    ("gif.png", &["gif.png"]),
    ("png_as.npy", &["png_as.npy"]),
    ("notes.txt", &["notes.txt"]),
    ("a_file/x.png", &["a_file", "not a directory"]),
    ("bad_magic.npy", &["bad_magic.npy"]),
    ("magic_only.npy", &["magic_only.npy"]),
    ("version9.npy", &["version"]),
    ("hdr_len_huge.npy", &["hdr_len_huge.npy"]),
    ("hdr_not_dict.npy", &["hdr_not_dict.npy"]),
    ("hdr_garbage.npy", &["hdr_garbage.npy"]),
    ("hdr_no_shape.npy", &["shape"]),
    ("hdr_no_descr.npy", &["descr"]),
    ("shape_negative.npy", &["shape_negative.npy"]),
    ("shape_float.npy", &["shape_float.npy"]),
    ("shape_text.npy", &["shape_text.npy"]),
    ("shape_huge.npy", &["shape_huge.npy"]),
    ("shape_overflow.npy", &["shape_overflow.npy"]),
    ("shape_bigint.npy", &["shape_bigint.npy"]),
    ("trunc_data.npy", &["trunc_data.npy"]),
    ("extra_data.npy", &["extra_data.npy"]),
    ("rank0.npy", &["rank0.npy"]),
    ("rank1.npy", &["rank1.npy"]),
    ("rank4.npy", &["rank4.npy"]),
    ("rank5.npy", &["rank5.npy"]),
    ("zero_h.npy", &["zero_h.npy"]),
    ("zero_w.npy", &["zero_w.npy"]),
    ("zero_c.npy", &["zero_c.npy"]),
    ("complex.npy", &["dtype"]),
    ("complex16.npy", &["dtype"]),
    ("unicode.npy", &["dtype"]),
    ("bytes.npy", &["dtype"]),
    ("object.npy", &["dtype"]),
    ("datetime.npy", &["dtype"]),
    ("structured.npy", &["structured", "descr"]),
    ("descr_empty.npy", &["dtype", "descr"]),
];

// ---------------------------------------------------------------- groups ---

#[test]
fn filter_bad_files() {
    let inp = Inputs::new();
    let mut cases = Vec::new();
    for (file, expect) in BAD_INPUTS {
        for out in ["y.npy", "y.png"] {
            cases.push(case(
                format!("filter {file} -> {out}"),
                &[
                    "filter",
                    &inp.p(file),
                    &format!("{OUT}/{out}"),
                    "-k",
                    "sobel-x",
                ],
                expect,
            ));
        }
    }
    check("filter_bad_files", 90, cases);
}

#[test]
fn filter_bad_options_and_geometry() {
    let inp = Inputs::new();
    let good = inp.p("good.npy");
    let mut cases = Vec::new();
    let mut opt = |name: &str, extra: &[&str], expect: &[&'static str]| {
        for (input, out) in [(good.as_str(), "y.npy"), (&*inp.p("good.png"), "y.png")] {
            let out = format!("{OUT}/{out}");
            let mut args = vec!["filter", input, &out, "-k", "sobel-x"];
            args.extend_from_slice(extra);
            cases.push(case(format!("{name} ({input})"), &args, expect));
        }
    };
    for s in ["0", "-1", "x", "99999999999999999999999", "", "1.5"] {
        opt(&format!("stride {s}"), &["--stride", s], &["stride"]);
    }
    for s in ["0", "-2", "y", "100", "18446744073709551615"] {
        opt(&format!("dilation {s}"), &["--dilation", s], &["dilation"]);
    }
    for s in [
        "-1",
        "1,2,3",
        "a",
        "same,1",
        "1,,2",
        "99999999999999999999",
        "",
        "1,2,3,4,5",
        "1.5",
        "same1",
    ] {
        opt(&format!("padding {s}"), &["--padding", s], &["padding"]);
    }
    for s in ["mirror", "", "zero", "reflect101"] {
        opt(
            &format!("mode {s}"),
            &["--mode", s],
            &["mode", "padding_mode"],
        );
    }
    // Reflect needs padding < the input side; circular at most the side.
    opt(
        "reflect too wide",
        &["--padding", "16", "--mode", "reflect"],
        &["reflect", "padding"],
    );
    opt(
        "circular too wide",
        &["--padding", "20", "--mode", "circular"],
        &["circular", "padding"],
    );
    opt(
        "same with stride",
        &["--padding", "same", "--stride", "2"],
        &["same"],
    );
    opt(
        "kernel larger than input",
        &["-k", "box:20"],
        &["kernel", "larger"],
    );
    opt(
        "dilated kernel larger",
        &["--dilation", "8"],
        &["kernel", "larger"],
    );
    for s in [
        "max",
        "max:0",
        "min:2",
        "avg:2:x",
        "max:2:2:2",
        "",
        "max:-1",
        ":2",
        "max:2:0",
    ] {
        opt(&format!("pool {s}"), &["--pool", s], &["--pool"]);
    }
    opt(
        "pool larger than output",
        &["--pool", "max:40"],
        &["pool", "kernel", "larger"],
    );
    for s in ["max", "", "none", "minmax2"] {
        opt(
            &format!("normalize {s}"),
            &["--normalize", s],
            &["normalize"],
        );
    }
    opt("format without dir", &["--format", "png"], &["--format"]);
    opt("unknown flag", &["--inptu", "x"], &["--inptu"]);
    check("filter_bad_options_and_geometry", 80, cases);
}

#[test]
fn filter_bad_kernels() {
    let inp = Inputs::new();
    let good = inp.p("good.npy");
    let literals = [
        "[",
        "[]",
        "[[]]",
        "[[1,2],[3]]",
        "[[1,,2]]",
        "[[nan]]",
        "[[inf]]",
        "[[-inf, 1]]",
        "[[1e999]]",
        "[[1 2]]",
        "[[1],[2]",
        "[[a]]",
        "[[1]]x",
        "[1,2]",
        "[[[1]]]",
        "[[1,-]]",
        "[[0x1]]",
        "[[1,2],]",
        "[[1;2]]",
        "[[--1]]",
        "[[1e]]",
        "[[.]]",
        "[[1, 2], [3, 4]]]",
        "[[\u{1}]]",
        "[[1\t2]]",
        "[[\u{ff11}]]",
        "[[1]],[[2]]",
        "[[1]];[[2]]",
        "[[1,2],[3,4],[5]]",
        "[[],[]]",
        "[[1e38, 1e38]]x",
    ];
    let names = [
        "sobel",
        "gaussian",
        "gaussian:0",
        "gaussian:-1",
        "gaussian:nan",
        "gaussian:inf",
        "gaussian:1e9",
        "gaussian:",
        "box:0",
        "box:-3",
        "box:x",
        "box:100000",
        "box:99999999999999999999",
        "sobel-x:2",
        "",
        " ",
        "identity:",
        "SOBEL_X",
        "laplacian:1:2",
        // fuzz/artifacts/kernel_spec/crash-f2740493: the newline was echoed raw.
        "box:\n .4",
    ];
    let mut cases = Vec::new();
    for k in literals.iter().chain(&names) {
        cases.push(case(
            format!("kernel {k:?}"),
            &["filter", &good, &format!("{OUT}/y.npy"), "-k", k],
            &["kernel"],
        ));
    }
    for f in [
        "missing_k.npy",
        "k_nan.npy",
        "k_rank3.npy",
        "k_rank1.npy",
        "k_empty.npy",
        "complex.npy",
        "trunc_data.npy",
        "shape_huge.npy",
    ] {
        cases.push(case(
            format!("kernel file {f}"),
            &["filter", &good, &format!("{OUT}/y.npy"), "-k", &inp.p(f)],
            &[f.trim_end_matches(".npy")],
        ));
    }
    check("filter_bad_kernels", 55, cases);
}

#[test]
fn filter_bad_outputs_channels_and_memory() {
    let inp = Inputs::new();
    let good = inp.p("good.npy");
    let png = inp.p("good.png");
    let under_file = format!("{}/y.npy", inp.p("a_file"));
    let under_file_png = format!("{}/y.png", inp.p("a_file"));
    let mut cases = Vec::new();
    for (name, input, out, expect) in [
        (
            "no such dir npy",
            &good,
            format!("{OUT}/no/such/y.npy"),
            &["no/such"][..],
        ),
        (
            "no such dir png",
            &png,
            format!("{OUT}/no/such/y.png"),
            &["no/such"],
        ),
        (
            "no such dir jpg",
            &png,
            format!("{OUT}/no/such/y.jpg"),
            &["no/such"],
        ),
        ("under a file npy", &good, under_file.clone(), &["a_file"]),
        (
            "under a file png",
            &png,
            under_file_png.clone(),
            &["a_file"],
        ),
        (
            "output is a directory",
            &good,
            OUT.to_string(),
            &["cannot tell", "directory"],
        ),
        (
            "unknown extension",
            &good,
            format!("{OUT}/y.txt"),
            &["y.txt"],
        ),
        ("no extension", &good, format!("{OUT}/y"), &["cannot tell"]),
        (
            "2 channels to png",
            &inp.p("two_ch.npy"),
            format!("{OUT}/y.png"),
            &["[2,", "channel"],
        ),
        (
            "5 channels to jpg",
            &inp.p("five_ch.npy"),
            format!("{OUT}/y.jpg"),
            &["[5,", "channel"],
        ),
    ] {
        cases.push(case(
            name,
            &["filter", input, &out, "-k", "sobel-x"],
            expect,
        ));
    }
    // --gray needs 1 or 3 channels.
    cases.push(case(
        "gray of 2 channels",
        &[
            "filter",
            &inp.p("two_ch.npy"),
            &format!("{OUT}/y.npy"),
            "-k",
            "sobel-x",
            "--gray",
        ],
        &["--gray"],
    ));
    // The memory limit: a 100000x100000 output from a 16x16 image, refused
    // before anything is allocated, in every padding mode that allows it.
    for mode in ["zeros", "replicate"] {
        for out in ["y.npy", "y.png"] {
            cases.push(case(
                format!("padding 50000 {mode} -> {out}"),
                &[
                    "filter",
                    &png,
                    &format!("{OUT}/{out}"),
                    "-k",
                    "sobel-x",
                    "--padding",
                    "50000",
                    "--mode",
                    mode,
                ],
                &["memory limit"],
            ));
        }
    }
    // ... and a normal request under a small limit (400x400 input: 640 kB of f32, padded to 1.4 MB).
    for (name, extra) in [
        ("limit 1 MB, padded output", &["--padding", "100"][..]),
        (
            "limit 1 MB, reflect pad",
            &["--padding", "100", "--mode", "reflect"],
        ),
        (
            "limit 1 MB, pooled",
            &["--padding", "100", "--pool", "max:2"],
        ),
    ] {
        let out = format!("{OUT}/y.npy");
        let big = inp.p("big.png");
        let mut args = vec!["filter", &big, &out, "-k", "sobel-x"];
        args.extend_from_slice(extra);
        cases.push(case(name, &args, &["memory limit"]).env("CONVLAB_MAX_BYTES", "1000000"));
    }
    cases.push(
        case(
            "limit 100 kB, input too big to decode",
            &[
                "filter",
                &inp.p("big.png"),
                &format!("{OUT}/y.png"),
                "-k",
                "sobel-x",
            ],
            &["memory limit", "more memory"],
        )
        .env("CONVLAB_MAX_BYTES", "100000"),
    );
    // Directory mode.
    cases.push(case(
        "dir with a bad file",
        &[
            "filter",
            &inp.p("dir_bad"),
            &format!("{OUT}/keep.txt"),
            "-k",
            "sobel-x",
        ],
        &["keep.txt", "directory"],
    ));
    cases.push(case(
        "empty dir",
        &[
            "filter",
            &inp.p("dir_empty"),
            &format!("{OUT}/o"),
            "-k",
            "sobel-x",
        ],
        &["no .png"],
    ));
    cases.push(case(
        "dir, bad --format",
        &[
            "filter",
            &inp.p("dir_good"),
            &format!("{OUT}/o"),
            "-k",
            "sobel-x",
            "--format",
            "gif",
        ],
        &["--format"],
    ));
    cases.push(case(
        "dir, OUT under a file",
        &[
            "filter",
            &inp.p("dir_good"),
            &format!("{}/o", inp.p("a_file")),
            "-k",
            "sobel-x",
        ],
        &["a_file"],
    ));
    cases.push(case(
        "missing input dir-like path",
        &[
            "filter",
            &format!("{}/", inp.p("no_dir")),
            &format!("{OUT}/o"),
            "-k",
            "sobel-x",
        ],
        &["no_dir"],
    ));
    check("filter_bad_outputs_channels_and_memory", 24, cases);
}

#[test]
fn learn_bad_inputs() {
    let inp = Inputs::new();
    let (x, y) = (inp.p("good.npy"), inp.p("target6.npy"));
    let mut cases = Vec::new();
    let mut opt = |name: String, extra: &[&str], expect: &[&'static str]| {
        let mut args = vec!["learn", x.as_str(), y.as_str(), "--steps", "3"];
        args.extend_from_slice(extra);
        cases.push(case(name, &args, expect));
    };
    for s in [
        "0",
        "0x3",
        "3x",
        "x",
        "-1",
        "3x3x3",
        "abc",
        "99999999999999999999x1",
        "",
    ] {
        opt(
            format!("kernel-size {s:?}"),
            &["--kernel-size", s],
            &["--kernel-size"],
        );
    }
    for s in ["0", "-1", "nan", "inf", "x", "", "-inf", "1e999"] {
        opt(format!("lr {s:?}"), &["--lr", s], &["--lr"]);
    }
    for s in ["-1", "x", "1e3", ""] {
        opt(format!("steps {s:?}"), &["--steps", s], &["--steps"]);
    }
    for s in ["rmsprop", "", "SGD2"] {
        opt(
            format!("optimizer {s:?}"),
            &["--optimizer", s],
            &["--optimizer"],
        );
    }
    for s in ["x", "nan", "-1"] {
        opt(format!("tol {s:?}"), &["--tol", s], &["--tol"]);
    }
    opt("seed -1".into(), &["--seed", "-1"], &["--seed"]);
    opt(
        "target shape".into(),
        &["--kernel-size", "2"],
        &["target", "[6, 6]"],
    );
    opt(
        "kernel larger than input".into(),
        &["--kernel-size", "20"],
        &["kernel", "larger"],
    );
    opt(
        "out under a file".into(),
        &["--out", &format!("{}/k.npy", inp.p("a_file"))],
        &["a_file"],
    );
    opt(
        "out no such dir".into(),
        &["--out", &format!("{OUT}/no/k.npy")],
        &["no/k.npy"],
    );
    opt(
        "plot under a file".into(),
        &["--plot", &format!("{}/p.png", inp.p("a_file"))],
        &["a_file"],
    );
    opt(
        "plot no such dir".into(),
        &["--plot", &format!("{OUT}/no/p.png")],
        &["no/p.png"],
    );
    opt(
        "out is a directory".into(),
        &["--out", OUT],
        &["cannot write", "directory"],
    );
    // NaN and infinity in the data: the loss is not finite, said in words.
    for (a, b) in [("nan.npy", "target6.npy"), ("inf.npy", "target6.npy")] {
        cases.push(case(
            format!("learn {a}"),
            &[
                "learn",
                &inp.p(a),
                &inp.p(b),
                "--steps",
                "3",
                "--out",
                &format!("{OUT}/k.npy"),
            ],
            &["not finite", "non-finite", "nan"],
        ));
    }
    cases.push(case("only input", &["learn", &x], &["both"]));
    cases.push(case(
        "demo kernel size",
        &["learn", "--kernel-size", "5"],
        &["demo"],
    ));
    cases.push(case(
        "3-channel input",
        &["learn", &inp.p("two_ch.npy"), &y],
        &["one-channel", "--gray"],
    ));
    for (file, expect) in BAD_INPUTS.iter().step_by(2) {
        cases.push(case(
            format!("learn input {file}"),
            &["learn", &inp.p(file), &y],
            expect,
        ));
        cases.push(case(
            format!("learn target {file}"),
            &["learn", &x, &inp.p(file)],
            expect,
        ));
    }
    check("learn_bad_inputs", 80, cases);
}

#[test]
fn show_bad_inputs() {
    let inp = Inputs::new();
    let o = format!("{OUT}/s.png");
    let mut cases = Vec::new();
    let mut add = |name: &str, args: &[&str], expect: &[&'static str]| {
        let mut v = vec!["show"];
        v.extend_from_slice(args);
        cases.push(case(name, &v, expect));
    };
    for f in [
        "empty.safetensors",
        "st_trunc.safetensors",
        "st_len_only.safetensors",
        "st_short.safetensors",
        "st_len_huge.safetensors",
        "st_bad_json.safetensors",
        "st_not_object.safetensors",
        "st_offsets.safetensors",
        "st_offsets_rev.safetensors",
        "st_shape_mismatch.safetensors",
        "st_shape_overflow.safetensors",
        "st_dtype.safetensors",
        "st_dtype_str.safetensors",
        "st_no_4d.safetensors",
        "missing.safetensors",
    ] {
        add(
            f,
            &[&inp.p(f), "-o", &o],
            &[f.trim_end_matches(".safetensors")],
        );
    }
    add(
        "no key",
        &[&inp.p("st_no_4d.safetensors"), "--key", "nope", "-o", &o],
        &["nope"],
    );
    add(
        "key on npy",
        &[&inp.p("k3.npy"), "--key", "w", "-o", &o],
        &["--key"],
    );
    for f in [
        "rank1.npy",
        "rank5.npy",
        "zero_h.npy",
        "zero_c.npy",
        "complex.npy",
        "missing.npy",
    ] {
        add(f, &[&inp.p(f), "-o", &o], &[f.trim_end_matches(".npy")]);
    }
    add(
        "source txt",
        &[&inp.p("notes.txt"), "-o", &o],
        &["notes.txt"],
    );
    add(
        "cols 0",
        &[&inp.p("k3.npy"), "--cols", "0", "-o", &o],
        &["--cols"],
    );
    add(
        "scale 0",
        &[&inp.p("k3.npy"), "--scale", "0", "-o", &o],
        &["--scale"],
    );
    add(
        "scale huge",
        &[&inp.p("k3.npy"), "--scale", "100000", "-o", &o],
        &["exceed"],
    );
    add(
        "scale overflow",
        &[
            &inp.p("k3.npy"),
            "--scale",
            "18446744073709551615",
            "-o",
            &o,
        ],
        &["exceed"],
    );
    add(
        "scale -1",
        &[&inp.p("k3.npy"), "--scale", "-1", "-o", &o],
        &["--scale"],
    );
    add(
        "out txt",
        &[&inp.p("k3.npy"), "-o", &format!("{OUT}/s.txt")],
        &["s.txt"],
    );
    add(
        "out no dir",
        &[&inp.p("k3.npy"), "-o", &format!("{OUT}/no/s.png")],
        &["no/s.png"],
    );
    add(
        "out under file",
        &[
            &inp.p("k3.npy"),
            "-o",
            &format!("{}/s.png", inp.p("a_file")),
        ],
        &["a_file"],
    );
    add(
        "out is dir",
        &[&inp.p("k3.npy"), "-o", OUT],
        &["png", "directory"],
    );
    add("nothing", &["-o", &o], &["give"]);
    add(
        "kernel without image",
        &["-k", "sobel-x", "-o", &o],
        &["--image"],
    );
    add(
        "image without kernel",
        &["--image", &inp.p("good.png"), "-o", &o],
        &["--kernel"],
    );
    add(
        "image bad literal",
        &["--image", &inp.p("good.png"), "-k", "[[1,", "-o", &o],
        &["kernel"],
    );
    add(
        "image bad padding",
        &[
            "--image",
            &inp.p("good.png"),
            "-k",
            "sobel-x",
            "--padding",
            "x",
            "-o",
            &o,
        ],
        &["padding"],
    );
    add(
        "image huge padding",
        &[
            "--image",
            &inp.p("good.png"),
            "-k",
            "sobel-x",
            "--padding",
            "50000",
            "-o",
            &o,
        ],
        &["memory limit", "exceed"],
    );
    add(
        "image kernel larger",
        &[
            "--image",
            &inp.p("good.png"),
            "-k",
            "box:40",
            "--padding",
            "valid",
            "-o",
            &o,
        ],
        &["kernel", "larger"],
    );
    add(
        "4-D weight on a gray image",
        &[&inp.p("w4d.npy"), "--image", &inp.p("good.png"), "-o", &o],
        &["channels"],
    );
    add(
        "weight and --kernel",
        &[
            &inp.p("k3.npy"),
            "--image",
            &inp.p("good.png"),
            "-k",
            "sobel-x",
            "-o",
            &o,
        ],
        &["not both"],
    );
    add(
        "3-D weight on image",
        &[
            &inp.p("k_rank3.npy"),
            "--image",
            &inp.p("good.png"),
            "-o",
            &o,
        ],
        &["[2, 3, 3]"],
    );
    for (file, expect) in BAD_INPUTS.iter().step_by(3) {
        add(
            &format!("image {file}"),
            &["--image", &inp.p(file), "-k", "sobel-x", "-o", &o],
            expect,
        );
    }
    check("show_bad_inputs", 55, cases);
}

#[test]
fn rf_bad_specs() {
    let specs = [
        "",
        ",",
        "conv",
        "conv0",
        "conv3 s0",
        "conv3 sx",
        "pool3",
        "maxpool0",
        "conv3 d0",
        "conv3 p-1",
        "conv3 q1",
        "conv99999999999999999999",
        "conv3x",
        "conv3x0",
        "conv3 pfoo",
        "conv3,,conv3",
        "conv3 s2 s2",
        "relu3",
        "conv3 s",
        "conv-3",
        "conv3 p1x",
        "maxpool2 d0",
        "conv3 psame s2",
        "conv1000",
        "conv3 d999999999999",
        "conv3 s18446744073709551615 p18446744073709551615",
        "conv3;conv3",
        "CONV 3",
        "conv3 ceil",
        "conv\u{1}3",
        "conv3 p1 p2 p3 p4 p5",
    ];
    let mut cases = Vec::new();
    for s in specs {
        cases.push(case(
            format!("rf {s:?}"),
            &["rf", s, "--input", "32"],
            &["receptive_field", "layer", "spec"],
        ));
    }
    for i in ["0", "x", "3x", "0x5", "-1", "", "99999999999999999999"] {
        cases.push(case(
            format!("rf input {i:?}"),
            &["rf", "conv3", "--input", i],
            &["--input"],
        ));
    }
    cases.push(case("rf no input", &["rf", "conv3"], &["--input"]));
    check("rf_bad_specs", 35, cases);
}

#[test]
fn train_digits_and_bench_bad_inputs() {
    let inp = Inputs::new();
    let mut cases = Vec::new();
    let mut td = |name: &str, extra: &[&str], expect: &[&'static str]| {
        let mut v = vec!["train-digits", "--no-plot"];
        if !extra.contains(&"--epochs") {
            v.extend(["--epochs", "1"]);
        }
        v.extend_from_slice(extra);
        cases.push(case(name, &v, expect));
    };
    td("epochs 0", &["--epochs", "0"], &["--epochs"]);
    td("epochs -1", &["--epochs", "-1"], &["--epochs"]);
    td("batch 0", &["--batch", "0"], &["--batch"]);
    td("batch x", &["--batch", "x"], &["--batch"]);
    for lr in ["-1", "0", "nan", "inf"] {
        td(
            &format!("lr {lr}"),
            &["--lr", lr],
            &["--lr", "learning rate"],
        );
    }
    for m in ["-1", "2", "nan"] {
        td(
            &format!("momentum {m}"),
            &["--momentum", m],
            &["--momentum", "momentum"],
        );
    }
    td(
        "optimizer",
        &["--optimizer", "rmsprop"],
        &["--optimizer", "rmsprop"],
    );
    td(
        "resume without checkpoint",
        &["--resume"],
        &["--checkpoint"],
    );
    for f in [
        "missing.csv",
        "digits_garbage.csv",
        "digits_short.csv",
        "digits_label.csv",
        "digits_nan.csv",
        "digits.csv.gz",
        "digits_empty.csv",
        "good.png",
    ] {
        td(
            &format!("data {f}"),
            &["--data", &inp.p(f)],
            &[f.trim_end_matches(".csv"), "too few"],
        );
    }
    td(
        "checkpoint under a file",
        &["--checkpoint", &format!("{}/ck", inp.p("a_file"))],
        &["a_file"],
    );
    td(
        "save under a file",
        &["--save", &format!("{}/m.safetensors", inp.p("a_file"))],
        &["a_file"],
    );
    cases.push(
        case(
            "data over the memory limit",
            &[
                "train-digits",
                "--no-plot",
                "--data",
                &inp.p("digits_garbage.csv"),
            ],
            &["memory limit"],
        )
        .env("CONVLAB_MAX_BYTES", "5"),
    );
    for (name, args, expect) in [
        (
            "suite missing",
            vec!["--suite", "nope.json"],
            &["nope.json"][..],
        ),
        (
            "groups 3 of 4 channels",
            vec!["--suite", "suite_groups3.json"],
            &["groups"],
        ),
        (
            "groups 0",
            vec!["--suite", "suite_groups0.json"],
            &["groups"],
        ),
        (
            "stride 0",
            vec!["--suite", "suite_stride0.json"],
            &["stride"],
        ),
        (
            "kernel larger",
            vec!["--suite", "suite_k_big.json"],
            &["kernel", "larger"],
        ),
        (
            "huge input",
            vec!["--suite", "suite_huge.json"],
            &["memory limit"],
        ),
        ("negative", vec!["--suite", "suite_neg.json"], &["cin"]),
        (
            "missing key",
            vec!["--suite", "suite_missing.json"],
            &["missing"],
        ),
        ("bad json", vec!["--suite", "suite_bad.json"], &["json"]),
        (
            "pool k 0",
            vec!["--suite", "suite_pool.json"],
            &["kernel", "k"],
        ),
        (
            "pool op",
            vec!["--suite", "suite_pool_op.json"],
            &["min_pool2d"],
        ),
        (
            "weight kind",
            vec!["--suite", "suite_weight.json"],
            &["sobel"],
        ),
        ("algo", vec!["--algo", "winograd9"], &["winograd9"]),
        ("threads x", vec!["--threads", "x"], &["--threads"]),
    ] {
        let mut v = vec!["bench"];
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.ends_with(".json") {
                    inp.p(a)
                } else {
                    a.to_string()
                }
            })
            .collect();
        v.extend(args.iter().map(String::as_str));
        cases.push(case(format!("bench {name}"), &v, expect));
    }
    for (name, args, expect) in [
        ("no command", vec![], &["command is needed"][..]),
        ("unknown command", vec!["frobnicate"], &["frobnicate"]),
        ("tour extra arg", vec!["tour", "x"], &["'x'"]),
    ] {
        cases.push(case(name, &args, expect));
    }
    check("train_digits_and_bench_bad_inputs", 40, cases);
}

/// The behaviour on NaN and infinity, per command, decided and pinned here:
/// `filter` to `.npy` propagates them (they are the data's values, as in
/// PyTorch); to PNG/JPEG they map to black (NaN) or the ends of the range
/// (±inf clamp), never a crash; a NaN kernel file is refused (it can only
/// be a mistake); `learn` refuses with a sentence naming the non-finite loss.
#[test]
fn non_finite_values_are_decided_per_command() {
    let inp = Inputs::new();
    let out = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_convlab"))
            .args(args)
            .output()
            .unwrap()
    };
    let y = out.path().join("y.npy").display().to_string();
    let r = run(&["filter", &inp.p("nan.npy"), &y, "-k", "box:3"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let t = convlab::io::read_npy(Path::new(&y)).unwrap();
    // pixel 10 = (1, 2): the 3x3 windows with top-left in rows 0..=1, cols 0..=2 see it.
    let nans = t.data().iter().filter(|v| v.is_nan()).count();
    assert_eq!(nans, 6, "{t:?}");
    for (src, name) in [
        ("nan.npy", "n.png"),
        ("inf.npy", "i.png"),
        ("inf.npy", "i.jpg"),
    ] {
        for norm in ["minmax", "abs", "clip"] {
            let o = out.path().join(name).display().to_string();
            let r = run(&[
                "filter",
                &inp.p(src),
                &o,
                "-k",
                "sobel-x",
                "--normalize",
                norm,
            ]);
            assert!(
                r.status.success(),
                "{src} {norm}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            assert_eq!(image::image_dimensions(&o).unwrap(), (6, 6));
        }
    }
}

fn png_of(path: &PathBuf) -> (u32, u32) {
    image::image_dimensions(path).unwrap()
}

/// Types NumPy users save by default are converted, as `torch.Tensor.float()` does.
#[test]
fn other_numeric_dtypes_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (descr, size) in [
        ("<f8", 8),
        ("<i8", 8),
        ("|u1", 1),
        ("|b1", 1),
        ("<f2", 2),
        (">f4", 4),
    ] {
        let p = d.join(format!("x{}.npy", descr.replace(['<', '>', '|'], "")));
        fs::write(
            &p,
            npy_raw(&npy_dict(descr, "(4, 4)"), &vec![0u8; 16 * size]),
        )
        .unwrap();
        let o = d.join("o.png");
        let r = Command::new(env!("CARGO_BIN_EXE_convlab"))
            .args([
                "filter".as_ref(),
                p.as_os_str(),
                o.as_os_str(),
                "-k".as_ref(),
                "edge-v".as_ref(),
            ])
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{descr}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(png_of(&o), (3, 4), "{descr}");
    }
    // And the writer's bytes read back (a sanity check of npy_raw itself).
    let t = Tensor::arange(4.0).unwrap().reshape(&[2, 2]).unwrap();
    let b = npy_to_bytes(&t);
    assert_eq!(convlab::io::npy_from_bytes(&b).unwrap(), t);
    let mine = npy_raw(&npy_dict("<f4", "(2, 2)"), &b[b.len() - 16..]);
    assert_eq!(convlab::io::npy_from_bytes(&mine).unwrap(), t);
}
