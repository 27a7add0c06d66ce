//! What the commands do when their output fails, and how they write files.
//!
//! - stdout a closed pipe (`convlab tour | head -1`): exit 0, nothing on
//!   stderr, for every command; stdout a full disk (`> /dev/full`): one
//!   line and exit 2. Both used to panic (exit 101).
//! - SIGTERM or SIGINT during a write: the temporary file is removed and the
//!   target keeps its old content.
//! - Directory runs refuse output-name collisions and IN == OUT before
//!   writing anything; a symlinked target is written through; a read-only
//!   target is refused; an output name of 250 bytes works; a `[4, H, W]`
//!   `.npy` keeps its 4 planes.

use convlab::io::{read_npy, write_npy};
use convlab::Tensor;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_convlab")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn one_line_exit_2(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "status {:?}: {err}", out.status);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("convlab: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// One quick run of every command that prints, in `dir`.
fn every_command(dir: &Path) -> Vec<Vec<String>> {
    let d = |n: &str| dir.join(n).display().to_string();
    let x = Tensor::uniform(&[24, 24], 0.0, 1.0, &mut convlab::seeded_rng(1)).unwrap();
    write_npy(&dir.join("x.npy"), &x).unwrap();
    let y = convlab::ops::corr2d(&x, &Tensor::ones(&[3, 3]).unwrap()).unwrap();
    write_npy(&dir.join("y.npy"), &y).unwrap();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        s(&["tour"]),
        s(&["filter", &d("x.npy"), &d("o.npy"), "-k", "box:3"]),
        s(&["learn", &d("x.npy"), &d("y.npy")]),
        s(&["learn", "--steps", "5"]),
        s(&["rf", "conv3, maxpool2", "--input", "32"]),
        s(&["show", &d("x.npy"), "-o", &d("s.png")]),
        s(&[
            "bench", "--filter", "lenet_c1", "--reps", "1", "--pass", "fwd",
        ]),
        s(&[
            "train-digits",
            "--epochs",
            "1",
            "--no-plot",
            "--save",
            &d("w.safetensors"),
        ]),
    ]
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    for args in every_command(dir.path()) {
        let mut child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the first line: every write fails.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_stdout_after_the_first_line() {
    // `convlab train-digits | head -1`: the first line is read, then the pipe closes.
    let mut child = Command::new(bin())
        .args(["train-digits", "--epochs", "2", "--no-plot"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8];
    while std::io::Read::read(&mut stdout, &mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("train-digits: "));
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_full_stdout_is_one_line_and_exit_2() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for args in every_command(dir.path()) {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(bin())
            .args(&args)
            .stdout(full)
            .output()
            .unwrap();
        let err = one_line_exit_2(&out);
        assert!(
            err.contains("cannot write to standard output: No space left"),
            "{args:?}: {err}"
        );
    }
}

/// Waits until a temporary file appears in `dir` (the write has begun).
fn wait_for_temp(dir: &Path, child: &mut std::process::Child) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if names(dir).iter().any(|n| n.ends_with(".tmp")) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

#[cfg(unix)]
#[test]
fn a_signal_during_a_write_removes_the_temporary_file() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in");
    fs::create_dir(&input).unwrap();
    // A large PNG takes a while to encode, all of it into the temporary file.
    let x = Tensor::uniform(&[2000, 2000], 0.0, 1.0, &mut convlab::seeded_rng(2)).unwrap();
    write_npy(&input.join("x.npy"), &x).unwrap();
    let out = d.join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("y.png"), b"old").unwrap();
    let mut hit = 0;
    for (signal, number) in [("-TERM", 15), ("-INT", 2), ("-TERM", 15), ("-INT", 2)] {
        let mut child = Command::new(bin())
            .args([
                "filter".as_ref(),
                input.join("x.npy").as_os_str(),
                out.join("y.png").as_os_str(),
            ])
            .args(["-k", "identity"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if !wait_for_temp(&out, &mut child) {
            child.wait().unwrap();
            fs::write(out.join("y.png"), b"old").unwrap();
            continue;
        }
        let pid = child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
        let status = child.wait().unwrap();
        if status.signal() != Some(number) {
            // The write finished before the signal: the new file is there.
            assert!(status.success(), "{status:?}");
            fs::write(out.join("y.png"), b"old").unwrap();
            continue;
        }
        hit += 1;
        assert_eq!(names(&out), ["y.png"], "after {signal}");
        assert_eq!(fs::read(out.join("y.png")).unwrap(), b"old");
    }
    assert!(hit >= 2, "only {hit} of 4 signals landed during the write");
}

#[test]
fn directory_runs_refuse_collisions_and_in_equals_out_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in");
    fs::create_dir(&input).unwrap();
    let img = Tensor::uniform(&[8, 8], 0.0, 1.0, &mut convlab::seeded_rng(3)).unwrap();
    for n in ["a.png", "a.jpg", "b.png"] {
        convlab::io::save_image(&input.join(n), &img, convlab::io::Normalize::Clip).unwrap();
    }
    write_npy(&input.join("a.npy"), &img).unwrap();
    let before: Vec<(String, Vec<u8>)> = names(&input)
        .into_iter()
        .map(|n| (n.clone(), fs::read(input.join(&n)).unwrap()))
        .collect();
    let out = d.join("out");
    let i = input.display().to_string();
    let o = out.display().to_string();
    let err = one_line_exit_2(&run(&["filter", &i, &o, "-k", "box:3", "--format", "npy"]));
    assert!(
        err.contains("would both be written to") && err.contains("a.npy"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written, not even OUT");
    // IN == OUT: a.png would replace the input a.png.
    let err = one_line_exit_2(&run(&["filter", &i, &i, "-k", "box:3", "--format", "png"]));
    assert!(
        err.contains("would both be written") || err.contains("is the input"),
        "{err}"
    );
    fs::remove_file(input.join("a.jpg")).unwrap();
    fs::remove_file(input.join("a.npy")).unwrap();
    let err = one_line_exit_2(&run(&["filter", &i, &i, "-k", "box:3"]));
    assert!(err.contains("is the input"), "{err}");
    // Through a symlink to IN, too.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&input, d.join("alias")).unwrap();
        let alias = d.join("alias").display().to_string();
        let err = one_line_exit_2(&run(&["filter", &i, &alias, "-k", "box:3"]));
        assert!(err.contains("is the input"), "{err}");
    }
    for (n, bytes) in &before {
        if let Ok(now) = fs::read(input.join(n)) {
            assert_eq!(&now, bytes, "{n} changed");
        }
    }
    assert_eq!(names(&input), ["a.png", "b.png"]);
    // With another format there is nothing to collide with: it works.
    let s = run(&["filter", &i, &i, "-k", "box:3", "--format", "npy"]);
    assert!(s.status.success(), "{s:?}");
    assert_eq!(names(&input), ["a.npy", "a.png", "b.npy", "b.png"]);
}

#[cfg(unix)]
#[test]
fn symlinked_read_only_and_long_outputs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = Tensor::uniform(&[8, 8], 0.0, 1.0, &mut convlab::seeded_rng(4)).unwrap();
    write_npy(&d.join("x.npy"), &x).unwrap();
    let xs = d.join("x.npy").display().to_string();
    // A symlinked target is written through; the link stays.
    fs::create_dir(d.join("real")).unwrap();
    fs::write(d.join("real/t.npy"), b"old").unwrap();
    std::os::unix::fs::symlink("real/t.npy", d.join("link.npy")).unwrap();
    let link = d.join("link.npy").display().to_string();
    assert!(run(&["filter", &xs, &link, "-k", "box:3"]).status.success());
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read_npy(&d.join("real/t.npy")).unwrap().shape(), &[6, 6]);
    // A read-only target is refused before the work, and kept.
    let ro = d.join("ro.npy");
    fs::write(&ro, b"keep").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
    let err = one_line_exit_2(&run(&[
        "filter",
        &xs,
        &ro.display().to_string(),
        "-k",
        "box:3",
    ]));
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(fs::read(&ro).unwrap(), b"keep");
    // A 250-byte output name: the temporary name is cut to fit.
    let long = d.join(format!("{}.npy", "n".repeat(246)));
    let s = run(&["filter", &xs, &long.display().to_string(), "-k", "box:3"]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    assert_eq!(read_npy(&long).unwrap().shape(), &[6, 6]);
    assert!(!names(d).iter().any(|n| n.ends_with(".tmp")));
}

#[test]
fn a_four_plane_npy_keeps_every_plane() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = Tensor::uniform(&[4, 8, 8], 0.0, 1.0, &mut convlab::seeded_rng(5)).unwrap();
    write_npy(&d.join("x4.npy"), &x).unwrap();
    let xs = d.join("x4.npy").display().to_string();
    let o = d.join("o.npy");
    assert!(
        run(&["filter", &xs, &o.display().to_string(), "-k", "[[1]]"])
            .status
            .success()
    );
    assert_eq!(read_npy(&o).unwrap(), x, "all four planes, unchanged");
    // A PNG cannot hold 4 planes: refused with a message, not truncated.
    let err = one_line_exit_2(&run(&[
        "filter",
        &xs,
        &d.join("o.png").display().to_string(),
        "-k",
        "[[1]]",
    ]));
    assert!(err.contains("[4, 8, 8]"), "{err}");
    // An RGBA image still drops its alpha.
    let rgba = image::RgbaImage::from_fn(8, 8, |i, j| image::Rgba([i as u8, j as u8, 7, 128]));
    rgba.save(d.join("rgba.png")).unwrap();
    let png = d.join("rgba.png").display().to_string();
    assert!(run(&[
        "filter",
        &png,
        &d.join("c.npy").display().to_string(),
        "-k",
        "[[1]]"
    ])
    .status
    .success());
    assert_eq!(read_npy(&d.join("c.npy")).unwrap().shape(), &[3, 8, 8]);
}
