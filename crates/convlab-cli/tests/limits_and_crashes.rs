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
fn buffers_held_at_once_are_checked_together_under_ulimit() {
    // Replicate padding 6000 on a 16x16 image: the padded input and the
    // output are 577 MB each. Each alone fits a 1 GiB address space; both
    // do not, and the second allocation used to abort (SIGABRT).
    let dir = tempfile::tempdir().unwrap();
    let png = small_png(dir.path());
    let out = dir.path().join("y.npy");
    let script = format!(
        "ulimit -v 1048576 && exec '{}' filter '{png}' '{}' -k box:3 --padding 6000 --mode replicate",
        bin(),
        out.display()
    );
    let r = Command::new("sh")
        .args(["-c", &script])
        .env_remove("CONVLAB_MAX_BYTES")
        .output()
        .unwrap();
    let err = one_line_exit_2(&r);
    assert!(
        err.contains("at once (input") && err.contains("padded input 550.8 MiB"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A command that must end with one line on stderr naming `expect`, exit 2.
fn refused(args: &[&str], env: &[(&str, &str)], expect: &[&str]) {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("CONVLAB_MAX_BYTES")
        .env_remove("CONVLAB_ISA");
    for (k, v) in env {
        c.env(k, v);
    }
    let err = one_line_exit_2(&c.output().unwrap());
    for e in expect {
        assert!(err.contains(e), "{args:?} {env:?}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn endless_inputs_are_read_up_to_the_limit() {
    // /dev/zero reports a size of 0 and never ends; each reader stops one
    // byte past the limit. Names with the extensions the commands expect
    // point at it through symlinks.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for n in [
        "zero.npy",
        "zero.png",
        "zero.safetensors",
        "zero.csv",
        "zero.json",
    ] {
        std::os::unix::fs::symlink("/dev/zero", d.join(n)).unwrap();
    }
    let png = small_png(d);
    let p = |n: &str| d.join(n).display().to_string();
    let limit = [("CONVLAB_MAX_BYTES", "1000000")];
    let out = p("o.npy");
    for (args, what) in [
        (
            vec!["filter", "/dev/zero", &out, "-k", "box:3"],
            "/dev/zero",
        ),
        (
            vec!["filter", &p("zero.npy"), &out, "-k", "box:3"],
            "zero.npy",
        ),
        (vec!["filter", &png, &out, "-k", &p("zero.npy")], "zero.npy"),
        (vec!["learn", &p("zero.npy"), &p("zero.npy")], "zero.npy"),
        (
            vec!["show", &p("zero.safetensors"), "-o", &p("s.png")],
            "zero.safetensors",
        ),
        (vec!["show", &p("zero.npy"), "-o", &p("s.png")], "zero.npy"),
        (
            vec!["train-digits", "--data", &p("zero.csv"), "--no-plot"],
            "zero.csv",
        ),
        (vec!["bench", "--suite", &p("zero.json")], "zero.json"),
    ] {
        refused(&args, &limit, &[what, "memory limit"]);
    }
    assert!(!d.join("o.npy").exists());
    // A checkpoint that never ends, with --resume.
    let ckpt = d.join("ckpt");
    fs::create_dir(&ckpt).unwrap();
    std::os::unix::fs::symlink("/dev/zero", ckpt.join("digits-checkpoint.safetensors")).unwrap();
    refused(
        &[
            "train-digits",
            "--checkpoint",
            &p("ckpt"),
            "--resume",
            "--no-plot",
        ],
        &limit,
        &["digits-checkpoint.safetensors", "memory limit"],
    );
}

#[test]
fn malformed_environment_values_and_threads_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let png = small_png(dir.path());
    let out = dir.path().join("o.npy").display().to_string();
    let filter = ["filter", &png, &out, "-k", "box:3"];
    for v in ["1G", "1e9", "-5", "0", "1.5", "99999999999999999999999"] {
        refused(
            &filter,
            &[("CONVLAB_MAX_BYTES", v)],
            &["CONVLAB_MAX_BYTES", v],
        );
    }
    for v in ["AVX2", "avx", "sse4"] {
        refused(&filter, &[("CONVLAB_ISA", v)], &["CONVLAB_ISA", v]);
    }
    // Every command checks them, before any work.
    refused(&["tour"], &[("CONVLAB_ISA", "AVX2")], &["CONVLAB_ISA"]);
    refused(
        &["rf", "conv3", "--input", "8"],
        &[("CONVLAB_MAX_BYTES", "1G")],
        &["CONVLAB_MAX_BYTES"],
    );
    assert!(!Path::new(&out).exists());
    // Valid values work; an empty one counts as unset.
    for (k, v) in [
        ("CONVLAB_MAX_BYTES", "100000000"),
        ("CONVLAB_ISA", "scalar"),
        ("CONVLAB_ISA", ""),
    ] {
        let r = Command::new(bin()).args(filter).env(k, v).output().unwrap();
        assert!(
            r.status.success(),
            "{k}={v}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    for t in ["18446744073709551615", "1025", "0", "-1"] {
        refused(
            &["bench", "--threads", t, "--filter", "none"],
            &[],
            &["--threads"],
        );
    }
}

#[test]
fn a_dilation_past_int64_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let png = small_png(dir.path());
    let out = dir.path().join("o.npy").display().to_string();
    refused(
        &[
            "filter",
            &png,
            &out,
            "-k",
            "box:3",
            "--padding",
            "same",
            "--dilation",
            "6148914691236517205",
        ],
        &[],
        &["padded input height", "2^63 - 1"],
    );
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
