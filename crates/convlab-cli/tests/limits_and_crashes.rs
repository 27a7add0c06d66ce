//! The memory limit and crash safety of the real binary.
//!
//! - A 100000x100000 output is refused with a line naming the memory limit,
//!   before it is allocated: the run is under `ulimit -v 2 GiB`, where
//!   allocating 40 GB would abort the process instead of exiting 2.
//! - `CONVLAB_MAX_BYTES` lowers the limit for a normal request.
//! - SIGKILL at many points of `convlab filter` writing over an existing
//!   `.npy` leaves the old file or the complete new one, never a truncated one.

use convlab::io::write_npy;
use convlab::Tensor;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_convlab")
}

fn small_png(dir: &Path) -> String {
    let p = dir.join("small.png");
    let t = Tensor::arange(256.0).unwrap().reshape(&[16, 16]).unwrap();
    convlab::io::save_image(&p, &t, convlab::io::Normalize::MinMax).unwrap();
    p.display().to_string()
}

fn one_line_exit_2(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "status {:?}: {err}", out.status);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn huge_output_is_refused_before_allocation_even_under_ulimit() {
    let dir = tempfile::tempdir().unwrap();
    let png = small_png(dir.path());
    let out = dir.path().join("y.npy");
    for mode in ["zeros", "replicate"] {
        // 16 + 2 * 50000 - 2 = 100014 per side: 40 GB of f32.
        let script = format!(
            "ulimit -v 2097152 && exec '{}' filter '{png}' '{}' -k sobel-x --padding 50000 --mode {mode}",
            bin(),
            out.display()
        );
        let r = Command::new("sh")
            .args(["-c", &script])
            .env_remove("CONVLAB_MAX_BYTES")
            .output()
            .unwrap();
        let err = one_line_exit_2(&r);
        assert!(err.contains("memory limit"), "{err}");
        // 100014^2 values for the output (zeros), 100016^2 for the padded input (replicate).
        assert!(err.contains("37.3 GiB"), "names the size: {err}");
        assert!(!out.exists());
    }
}

#[test]
fn convlab_max_bytes_limits_a_normal_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A 600x600 photograph-sized PNG and a 300x300 .npy (360 kB).
    let png = d.join("x.png");
    let t = Tensor::uniform(&[600, 600], 0.0, 1.0, &mut convlab::seeded_rng(1)).unwrap();
    convlab::io::save_image(&png, &t, convlab::io::Normalize::Clip).unwrap();
    let npy = d.join("x.npy");
    write_npy(&npy, &Tensor::zeros(&[300, 300]).unwrap()).unwrap();
    let out = d.join("y.npy");
    let run = |input: &Path, limit: Option<&str>| {
        let mut c = Command::new(bin());
        c.args(["filter".as_ref(), input.as_os_str(), out.as_os_str()])
            .args(["-k", "box:3", "--padding", "same"]);
        match limit {
            Some(l) => c.env("CONVLAB_MAX_BYTES", l),
            None => c.env_remove("CONVLAB_MAX_BYTES"),
        };
        c.output().unwrap()
    };
    // The limit is per buffer: 600x600 f32 (1.44 MB) is over 1 MB, the
    // .npy file (360 kB) is over 100 kB.
    for (input, limit, what) in [(&png, "1000000", "image"), (&npy, "100000", "npy")] {
        let err = one_line_exit_2(&run(input, Some(limit)));
        assert!(
            err.contains("memory limit") && err.contains(what),
            "{limit}: {err}"
        );
        assert!(!out.exists());
    }
    for input in [&png, &npy] {
        assert!(run(input, None).status.success());
        assert!(out.exists());
        fs::remove_file(&out).unwrap();
    }
}

/// Everything in `dir` except the atomic writer's temporary files, which a
/// SIGKILL can leave behind (`.y.npy.<pid>.<n>.tmp`; no process can remove
/// its own files after SIGKILL). Returns them too, to clean up.
fn split_temps(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().partition(|n| !n.ends_with(".tmp"))
}

#[test]
fn sigkill_mid_write_leaves_old_or_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 1500x1500: 9 MB in and out, so loading, filtering and writing each
    // take a while and the kills below land in all three.
    let x = Tensor::uniform(&[1500, 1500], -1.0, 1.0, &mut convlab::seeded_rng(7)).unwrap();
    write_npy(&d.join("x.npy"), &x).unwrap();
    let out = d.join("y.npy");
    let cmd = || {
        let mut c = Command::new(bin());
        c.args([
            "filter".as_ref(),
            d.join("x.npy").as_os_str(),
            out.as_os_str(),
        ])
        .args(["-k", "gaussian:1", "--padding", "same", "--mode", "reflect"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    };
    // The complete new file, from a run that is not killed.
    assert!(cmd().status().unwrap().success());
    let new = fs::read(&out).unwrap();
    let old_tensor = Tensor::arange(6.0).unwrap().reshape(&[2, 3]).unwrap();
    let (mut saw_old, mut saw_new, mut leftover_temps) = (0, 0, 0);
    for delay_ms in [
        0u64, 1, 2, 5, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200, 300,
    ] {
        write_npy(&out, &old_tensor).unwrap();
        let old = fs::read(&out).unwrap();
        let mut child = cmd().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL; an error means it had already exited
        child.wait().unwrap();
        let now = fs::read(&out).unwrap();
        if now == old {
            saw_old += 1;
        } else if now == new {
            saw_new += 1;
        } else {
            panic!(
                "after a kill at {delay_ms} ms {} holds {} bytes: neither the old ({}) nor the new ({}) file",
                out.display(),
                now.len(),
                old.len(),
                new.len()
            );
        }
        let (files, temps) = split_temps(d);
        assert_eq!(files, ["x.npy", "y.npy"], "at {delay_ms} ms");
        leftover_temps += temps.len();
        for t in temps {
            fs::remove_file(d.join(t)).unwrap();
        }
    }
    eprintln!(
        "kills: old file kept {saw_old}, new file complete {saw_new}, temps left {leftover_temps}"
    );
    assert_eq!(saw_old + saw_new, 15);
}

/// Every file the tools write goes through `io::write_atomic` (temporary
/// name, fsync, rename): no direct `fs::write`, `File::create` or
/// `OpenOptions` in the non-test code of either crate, except the atomic
/// writer itself. A new direct writer fails this test.
#[test]
fn no_direct_file_writes_outside_the_atomic_writer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    let mut stack = vec![root.join("convlab/src"), root.join("convlab-cli/src")];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") || p.ends_with("io/atomic.rs") {
                continue;
            }
            seen += 1;
            let text = fs::read_to_string(&p).unwrap();
            // Unit tests may write scratch files directly.
            let code = text.split("#[cfg(test)]").next().unwrap();
            for needle in ["fs::write(", "File::create(", "OpenOptions", "fs::copy("] {
                if code.contains(needle) {
                    offenders.push(format!("{}: {needle}", p.display()));
                }
            }
        }
    }
    assert!(seen > 20, "scanned only {seen} files");
    assert!(offenders.is_empty(), "direct writes: {offenders:?}");
}
