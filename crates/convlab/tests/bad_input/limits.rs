//! Sizes at the edge: zero-element tensors with huge dimensions, sizes past
//! what PyTorch allows, the memory guard's totals, reads of files that do
//! not end, and `CONVLAB_*` values that do not parse.

use super::z;
use crate::common::expect_err;
use convlab::ops::*;
use convlab::{io, memory, Padding, PaddingMode, Tensor};
use std::process::Command;

/// The environment variable that marks a child run of this test binary.
const CHILD: &str = "CONVLAB_TEST_CHILD";

/// Runs the `#[ignore]`d test `name` of this binary in a child process
/// with `env`, and asserts that it passed.
fn run_child(name: &str, env: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", name, "--test-threads", "1"])
        .env(CHILD, "1")
        .env_remove("CONVLAB_MAX_BYTES")
        .env_remove("CONVLAB_ISA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} {env:?}: {}\n{}",
        out.status,
        text
    );
}

#[test]
fn zero_element_tensors_never_allocate_by_their_dimensions() {
    let t = z(&[0, usize::MAX]);
    assert_eq!(t.numel(), 0);
    let s = t.sum_dim(1, false).unwrap();
    assert_eq!(s.shape(), &[0]);
    assert_eq!(t.sum_dim(1, true).unwrap().shape(), &[0, 1]);
    // Summing away the 0 leaves usize::MAX zeros: refused, not allocated.
    expect_err(t.sum_dim(0, false), &["sum", "overflow"]);
    expect_err(z(&[0, 1 << 40]).sum_dim(0, false), &["sum", "memory limit"]);
    assert_eq!(z(&[3, 0, 5]).sum_dim(1, false).unwrap().data(), &[0.0; 15]);
}

#[test]
fn an_empty_batch_with_huge_padding_is_an_empty_result() {
    let w = Tensor::ones(&[1, 1, 3, 3]).unwrap();
    let x = z(&[0, 1, 4, 4]);
    // Replicate padding 2^30 built a 34 GB column table for no plane;
    // zeros padding 2^40 searched 30-45 s for an FFT size.
    for (mode, pad) in [
        (PaddingMode::Replicate, 1usize << 30),
        (PaddingMode::Zeros, 1 << 40),
        (PaddingMode::Circular, 4),
    ] {
        let p = Conv2dParams::new().padding(pad).padding_mode(mode);
        let y = conv2d(&x, &w, None, &p).unwrap();
        let side = 4 + 2 * pad - 2;
        assert_eq!(y.shape(), &[0, 1, side, side], "{mode:?}");
        let g = conv2d_backward(&x, &w, true, &y, &p).unwrap();
        assert_eq!(g.grad_input.shape(), x.shape());
        assert_eq!(g.grad_weight.data(), &[0.0; 9], "{mode:?}");
        let padded = pad2d(&x, [pad; 4], mode).unwrap();
        assert_eq!(padded.numel(), 0);
        let back = pad2d_backward(&padded, x.shape(), [pad; 4], mode).unwrap();
        assert_eq!(back.shape(), x.shape());
    }
    // No output channels: the input gradient is zeros of the input's shape.
    let x = Tensor::ones(&[1, 2, 5, 5]).unwrap();
    let w0 = z(&[0, 2, 3, 3]);
    let p = Conv2dParams::new().padding(1 << 20);
    let y = conv2d(&x, &w0, None, &Conv2dParams::new()).unwrap();
    assert_eq!(y.shape(), &[1, 0, 3, 3]);
    let g = conv2d_backward(&x, &w0, false, &y, &Conv2dParams::new()).unwrap();
    assert_eq!(g.grad_input.data(), &[0.0; 50]);
    assert!(conv2d(&x, &w0, None, &p).unwrap().numel() == 0);
}

#[test]
fn sizes_past_int64_are_refused_and_huge_dilations_do_not_panic() {
    let x = Tensor::ones(&[1, 1, 16, 16]).unwrap();
    let w = Tensor::ones(&[1, 1, 3, 3]).unwrap();
    // `filter --padding same --dilation 6148914691236517205`: the dilated
    // kernel and the padded input exceed 2^63 - 1; the direct kernel's
    // padded lines wrapped around and it sliced out of bounds.
    let p = Conv2dParams::new()
        .padding(Padding::Same)
        .dilation(6148914691236517205);
    expect_err(conv2d(&x, &w, None, &p), &["conv2d", "2^63 - 1"]);
    // Below that limit: computed (each output sees only its centre tap), or
    // refused by the memory guard, never a panic.
    for d in [1usize << 40, 1 << 61] {
        let p = Conv2dParams::new().padding(Padding::Same).dilation(d);
        let r = std::panic::catch_unwind(|| conv2d(&x, &w, None, &p));
        match r.expect("no panic") {
            Ok(y) => assert_eq!(y, x, "dilation {d}"),
            Err(e) => assert!(e.to_string().contains("memory limit"), "{e}"),
        }
    }
}

#[test]
fn the_guard_checks_what_an_operation_holds_at_once() {
    let _lock = super::limit_lock();
    let limit = memory::max_bytes();
    let half = limit / 4 / 2 + 1; // f32 values: each part is half the limit and a bit
    assert!(memory::check_f32("t", half).is_ok());
    expect_err(
        memory::check_f32_total("filter", &[("input", half), ("output", half)]),
        &["filter", "at once", "input", "output", "memory limit"],
    );
    expect_err(
        memory::check_f32_total("t", &[("a", usize::MAX / 4), ("b", usize::MAX / 4)]),
        &["overflows"],
    );
    assert!(memory::check_f32_total("t", &[("a", 10), ("b", 0)]).is_ok());
}

#[test]
fn reads_stop_at_the_memory_limit() {
    run_child(
        "limits::child_reads_stop_at_the_limit",
        &[("CONVLAB_MAX_BYTES", "1000000")],
    );
}

#[test]
#[ignore = "run in a child process by reads_stop_at_the_memory_limit"]
fn child_reads_stop_at_the_limit() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // /dev/zero reports a size of 0 and never ends.
    let zero = std::path::Path::new("/dev/zero");
    expect_err(io::read_npy(zero), &["npy", "/dev/zero", "memory limit"]);
    expect_err(
        io::load_image(zero, false),
        &["image", "/dev/zero", "memory limit"],
    );
    expect_err(
        io::read_bounded("x", zero),
        &["x: /dev/zero holds more than"],
    );
    expect_err(
        convlab::data::Digits::load(zero),
        &["digits", "/dev/zero", "memory limit"],
    );
}

#[test]
fn malformed_environment_values_fail_every_guarded_allocation() {
    for (var, value) in [
        ("CONVLAB_MAX_BYTES", "1G"),
        ("CONVLAB_MAX_BYTES", "1e9"),
        ("CONVLAB_MAX_BYTES", "-5"),
        ("CONVLAB_ISA", "AVX2"),
    ] {
        run_child(
            "limits::child_malformed_environment",
            &[(var, value), ("EXPECT", var)],
        );
    }
}

#[test]
#[ignore = "run in a child process by malformed_environment_values_fail_every_guarded_allocation"]
fn child_malformed_environment() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let var = std::env::var("EXPECT").unwrap();
    expect_err(convlab::env::check(), &["env: ", &var]);
    expect_err(Tensor::zeros(&[2, 2]), &["tensor: ", &var]);
    let x = Tensor::scalar(1.0);
    expect_err(
        x.reshape(&[1, 1]).and_then(|t| t.matmul(&t)),
        &["matmul", &var],
    );
    expect_err(
        io::read_bounded("npy", std::path::Path::new("Cargo.toml")),
        &["npy: ", &var],
    );
}

/// Values past any real size, for every size parameter.
const HUGE: [usize; 6] = [
    usize::MAX,
    usize::MAX / 2 + 1,
    usize::MAX / 3,
    1 << 62,
    i64::MAX as usize,
    (1 << 32) + 1,
];

/// Every public op with each size parameter set to each [`HUGE`] value, on
/// small inputs: an `Ok` (a huge stride of a valid layer is fine) or an
/// `Err`, never a panic. Run with overflow checks on (`.ci/run`), an
/// unchecked size computation fails here.
#[test]
fn huge_parameters_never_panic() {
    use convlab::receptive_field::{parse_spec, receptive_fields};
    use convlab::shape::{conv_out_len, conv_transpose_out_len, effective_kernel, pool_out_len};
    let x = Tensor::ones(&[1, 2, 6, 6]).unwrap();
    let w = Tensor::ones(&[2, 2, 3, 3]).unwrap();
    let mut calls: Vec<(String, Box<dyn Fn()>)> = Vec::new();
    let mut add = |name: String, f: Box<dyn Fn()>| calls.push((name, f));
    for v in HUGE {
        let (x1, w1, x2, w2) = (x.clone(), w.clone(), x.clone(), w.clone());
        let convs: Vec<(&str, Conv2dParams)> = vec![
            ("stride", Conv2dParams::new().stride(v)),
            ("stride h", Conv2dParams::new().stride((v, 1))),
            ("padding", Conv2dParams::new().padding(v)),
            ("padding sides", Conv2dParams::new().padding([v, 0, 0, v])),
            ("dilation", Conv2dParams::new().dilation(v)),
            (
                "same dilation",
                Conv2dParams::new().padding(Padding::Same).dilation(v),
            ),
            ("groups", Conv2dParams::new().groups(v)),
            (
                "replicate",
                Conv2dParams::new()
                    .padding(v)
                    .padding_mode(PaddingMode::Replicate),
            ),
        ];
        for (what, p) in convs {
            let (a, b) = (x1.clone(), w1.clone());
            add(
                format!("conv2d {what} {v}"),
                Box::new(move || {
                    if let Ok(y) = conv2d(&a, &b, None, &p) {
                        let _ = conv2d_backward(&a, &b, true, &y, &p);
                    }
                }),
            );
        }
        let ts: Vec<(&str, ConvTranspose2dParams)> = vec![
            ("stride", ConvTranspose2dParams::new().stride(v)),
            ("padding", ConvTranspose2dParams::new().padding(v)),
            ("dilation", ConvTranspose2dParams::new().dilation(v)),
            (
                "output_padding",
                ConvTranspose2dParams::new().stride(v).output_padding(v - 1),
            ),
            ("groups", ConvTranspose2dParams::new().groups(v)),
        ];
        for (what, p) in ts {
            let (a, b) = (x2.clone(), w2.clone());
            add(
                format!("conv_transpose2d {what} {v}"),
                Box::new(move || {
                    if let Ok(y) = conv_transpose2d(&a, &b, None, &p) {
                        let _ = conv_transpose2d_backward(&a, &b, true, &y, &p);
                    }
                }),
            );
        }
        let x3 = x.clone();
        add(
            format!("pools {v}"),
            Box::new(move || {
                for mp in [
                    MaxPool2dParams::new(v),
                    MaxPool2dParams::new(2).stride(v),
                    MaxPool2dParams::new(2).dilation(v),
                    MaxPool2dParams::new(2).stride(v).ceil_mode(true),
                    MaxPool2dParams::new((1, v)).padding((0, v / 2)),
                ] {
                    if let Ok((y, i)) = max_pool2d_with_indices(&x3, &mp) {
                        let _ = max_pool2d_backward(x3.shape(), &i, &y);
                    }
                }
                for ap in [
                    AvgPool2dParams::new(v),
                    AvgPool2dParams::new(2).stride(v).ceil_mode(true),
                    AvgPool2dParams::new(2).divisor_override(Some(v)),
                    AvgPool2dParams::new((1, v)).padding((0, v / 2)),
                ] {
                    if let Ok(y) = avg_pool2d(&x3, &ap) {
                        let _ = avg_pool2d_backward(x3.shape(), &y, &ap);
                    }
                }
                let _ = adaptive_avg_pool2d(&x3, (v, 1));
                let _ = adaptive_max_pool2d(&x3, (1, v));
                let _ = adaptive_avg_pool2d_backward(&[1, 2, v, 6], &x3);
                for up in [
                    UnfoldParams::new(v),
                    UnfoldParams::new(2).stride(v),
                    UnfoldParams::new(2).dilation(v),
                    UnfoldParams::new(2).padding(v),
                ] {
                    if let Ok(c) = unfold(&x3, &up) {
                        let _ = fold(&c, (6, 6), &up);
                    }
                    let _ = fold(&Tensor::ones(&[1, 8, 25]).unwrap(), (v, 6), &up);
                }
                let _ = pad2d(&x3, [v, 0, 0, 0], PaddingMode::Zeros);
                let _ = pad2d(&x3, [1, v, 1, 1], PaddingMode::Circular);
                let _ = pad2d_backward(&x3, &[1, 2, v, 6], [0; 4], PaddingMode::Zeros);
            }),
        );
        add(
            format!("tensors and shapes {v}"),
            Box::new(move || {
                let _ = Tensor::zeros(&[v, v, 0]);
                let _ = Tensor::zeros(&[0, v, v]);
                let _ = Tensor::full(&[2, v], 1.0);
                let _ = Tensor::arange_step(0.0, v as f32, 1.0);
                let t = Tensor::zeros(&[0, v]).unwrap();
                let _ = t.sum_dim(0, true);
                let _ = t.reshape(&[v, 0]);
                let _ = t.reshape(&[v, 2, 0]);
                let _ = Tensor::ones(&[2, 3]).unwrap().get(&[v, 0]);
                let _ = t.add(&Tensor::zeros(&[v, 1]).unwrap_or_else(|_| Tensor::scalar(0.0)));
                let _ = Tensor::cat(&[&t, &t], 1);
                let _ = Tensor::stack(&[&t, &t], 0);
                let _ = t.matmul(&Tensor::zeros(&[v, 0]).unwrap_or_else(|_| Tensor::scalar(0.0)));
                let _ = effective_kernel("t", v, v);
                let _ = conv_out_len("t", "height", v, 3, 1, v, v, 1);
                let _ = conv_out_len("t", "height", 5, v, v, v, 0, 2);
                let _ = pool_out_len("t", "height", v, 2, 1, v / 2, 1, true);
                let _ = pool_out_len("t", "height", 5, 2, v, 1, v, true);
                let _ = conv_transpose_out_len("t", "height", v, 3, v, 0, v - 1, v);
                let _ = conv_transpose_out_len("t", "height", 2, v, 2, 0, 1, v);
                if let Ok(l) = parse_spec(&format!("conv{v} s{v} p{v} d{v}, maxpool{v} s{v}")) {
                    let _ = receptive_fields(&l, convlab::Pair::from(v));
                }
                if let Ok(l) = parse_spec("conv3 d2, maxpool2 ceil") {
                    let _ = receptive_fields(&l, convlab::Pair::from(v));
                }
            }),
        );
    }
    // A size that passes the checks must not be allocated for real here.
    let _lock = super::limit_lock();
    memory::set_max_bytes(1 << 30);
    let mut panicked = Vec::new();
    for (name, f) in &calls {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            panicked.push(name.clone());
        }
    }
    memory::set_max_bytes(0);
    assert!(
        panicked.is_empty(),
        "{} calls panicked: {panicked:?}",
        panicked.len()
    );
}
