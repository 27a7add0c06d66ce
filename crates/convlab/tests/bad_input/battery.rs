//! Hundreds of invalid calls, generated programmatically, each of which
//! must return an `Err` whose message is one line starting with the op's
//! name — never a panic, never an abort from an impossible allocation.

use super::z;
use convlab::ops::*;
use convlab::{Padding, PaddingMode, Pair, Result, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

type Case = (String, &'static str, Box<dyn Fn() -> Result<()>>);

fn push<T>(
    cases: &mut Vec<Case>,
    name: String,
    op: &'static str,
    f: impl Fn() -> Result<T> + 'static,
) {
    cases.push((name, op, Box::new(move || f().map(|_| ()))));
}

fn conv_cases(cases: &mut Vec<Case>) {
    let p = Conv2dParams::new();
    // Wrong input ranks, each against a valid weight.
    for shape in [
        vec![],
        vec![5],
        vec![4, 4],
        vec![1, 1, 1, 4, 4],
        vec![1, 1, 1, 1, 4, 4],
    ] {
        push(
            cases,
            format!("conv2d input rank {shape:?}"),
            "conv2d",
            move || conv2d(&z(&shape), &z(&[1, 1, 3, 3]), None, &p),
        );
    }
    // Wrong weight ranks.
    for shape in [vec![3], vec![3, 3], vec![1, 1, 3], vec![1, 1, 1, 3, 3]] {
        push(
            cases,
            format!("conv2d weight rank {shape:?}"),
            "conv2d",
            move || conv2d(&z(&[1, 1, 5, 5]), &z(&shape), None, &p),
        );
    }
    // Channel mismatches over groups.
    for (cin, wcin, groups) in [
        (3, 2, 1),
        (8, 4, 1),
        (4, 1, 2),
        (6, 2, 2),
        (1, 2, 1),
        (4, 4, 2),
    ] {
        push(
            cases,
            format!("conv2d channels {cin} vs weight {wcin} groups {groups}"),
            "conv2d",
            move || {
                conv2d(
                    &z(&[1, cin, 5, 5]),
                    &z(&[groups * 2, wcin, 3, 3]),
                    None,
                    &p.groups(groups),
                )
            },
        );
    }
    // Groups that do not divide the output channels, and zero groups.
    for (cout, groups) in [(3, 2), (5, 3), (4, 3), (1, 2), (6, 0)] {
        push(
            cases,
            format!("conv2d cout {cout} groups {groups}"),
            "conv2d",
            move || {
                let cin = groups.max(1) * 2;
                conv2d(
                    &z(&[1, cin, 5, 5]),
                    &z(&[cout, 2, 3, 3]),
                    None,
                    &p.groups(groups),
                )
            },
        );
    }
    // Zero strides and dilations on either axis.
    for (s, d) in [
        ((0, 1), (1, 1)),
        ((1, 0), (1, 1)),
        ((0, 0), (1, 1)),
        ((1, 1), (0, 1)),
        ((1, 1), (1, 0)),
        ((2, 2), (0, 0)),
    ] {
        push(
            cases,
            format!("conv2d stride {s:?} dilation {d:?}"),
            "conv2d",
            move || {
                conv2d(
                    &z(&[1, 1, 5, 5]),
                    &z(&[1, 1, 3, 3]),
                    None,
                    &p.stride(s).dilation(d),
                )
            },
        );
    }
    // Kernels larger than the padded input, with and without dilation.
    for (h, w, k, pad, dil) in [
        (2, 5, 3, 0, 1),
        (5, 2, 3, 0, 1),
        (1, 1, 2, 0, 1),
        (4, 4, 7, 1, 1),
        (5, 5, 3, 0, 3),
        (8, 8, 3, 1, 5),
        (3, 9, 5, 0, 1),
    ] {
        push(
            cases,
            format!("conv2d {h}x{w} kernel {k} pad {pad} dilation {dil}"),
            "conv2d",
            move || {
                conv2d(
                    &z(&[1, 1, h, w]),
                    &z(&[1, 1, k, k]),
                    None,
                    &p.padding(pad).dilation(dil),
                )
            },
        );
    }
    // Empty kernels.
    for (kh, kw) in [(0, 3), (3, 0), (0, 0)] {
        push(
            cases,
            format!("conv2d empty kernel {kh}x{kw}"),
            "conv2d",
            move || conv2d(&z(&[1, 1, 5, 5]), &z(&[1, 1, kh, kw]), None, &p),
        );
    }
    // Bias of the wrong shape.
    for b in [vec![2], vec![1, 3], vec![], vec![4]] {
        push(cases, format!("conv2d bias {b:?}"), "conv2d", move || {
            conv2d(&z(&[1, 1, 5, 5]), &z(&[3, 1, 3, 3]), Some(&z(&b)), &p)
        });
    }
    // 'same' padding with a stride.
    for s in [(2, 1), (1, 2), (3, 3)] {
        push(
            cases,
            format!("conv2d same stride {s:?}"),
            "conv2d",
            move || {
                conv2d(
                    &z(&[1, 1, 5, 5]),
                    &z(&[1, 1, 3, 3]),
                    None,
                    &p.padding(Padding::Same).stride(s),
                )
            },
        );
    }
    // Padding modes that need more input than there is.
    for (mode, pad, size) in [
        (PaddingMode::Reflect, 4, 4),
        (PaddingMode::Reflect, 2, 2),
        (PaddingMode::Circular, 5, 4),
        (PaddingMode::Circular, 3, 2),
    ] {
        push(
            cases,
            format!("conv2d {mode:?} pad {pad} on {size}"),
            "conv2d",
            move || {
                conv2d(
                    &z(&[1, 1, size, size]),
                    &z(&[1, 1, 1, 1]),
                    None,
                    &p.padding(pad).padding_mode(mode),
                )
            },
        );
    }
    // Sizes whose arithmetic overflows usize.
    for (pad, dil) in [
        (usize::MAX, 1),
        (usize::MAX / 2 + 1, 1),
        (0, usize::MAX),
        (1, usize::MAX / 2),
    ] {
        push(
            cases,
            format!("conv2d overflow pad {pad} dilation {dil}"),
            "conv2d",
            move || {
                conv2d(
                    &z(&[1, 1, 5, 5]),
                    &z(&[1, 1, 3, 3]),
                    None,
                    &p.padding(pad).dilation(dil),
                )
            },
        );
    }
    // grad_output of the wrong shape for each backward.
    for go in [
        vec![1, 1, 3, 4],
        vec![1, 2, 3, 3],
        vec![3, 3],
        vec![2, 1, 3, 3],
    ] {
        let g2 = go.clone();
        let g3 = go.clone();
        push(
            cases,
            format!("conv2d_backward_input grad {go:?}"),
            "conv2d_backward",
            move || conv2d_backward_input(&[1, 1, 5, 5], &z(&[1, 1, 3, 3]), &z(&go), &p),
        );
        push(
            cases,
            format!("conv2d_backward_weight grad {g2:?}"),
            "conv2d_backward",
            move || conv2d_backward_weight(&z(&[1, 1, 5, 5]), &[1, 1, 3, 3], &z(&g2), &p),
        );
        push(
            cases,
            format!("conv_transpose2d_backward grad {g3:?}"),
            "conv_transpose2d_backward",
            move || {
                conv_transpose2d_backward(
                    &z(&[1, 1, 3, 3]),
                    &z(&[1, 1, 3, 3]),
                    false,
                    &z(&g3),
                    &ConvTranspose2dParams::new(),
                )
            },
        );
    }
    // Transposed convolution.
    let t = ConvTranspose2dParams::new();
    for (cin, wcin) in [(3, 2), (1, 4), (4, 2)] {
        push(
            cases,
            format!("conv_transpose2d channels {cin} vs {wcin}"),
            "conv_transpose2d",
            move || conv_transpose2d(&z(&[1, cin, 4, 4]), &z(&[wcin, 2, 3, 3]), None, &t),
        );
    }
    for (s, d, op) in [(1, 1, 1), (2, 1, 2), (2, 1, 3), (1, 2, 2), (3, 3, 5)] {
        push(
            cases,
            format!("conv_transpose2d output_padding {op} stride {s} dilation {d}"),
            "conv_transpose2d",
            move || {
                conv_transpose2d(
                    &z(&[1, 1, 4, 4]),
                    &z(&[1, 1, 3, 3]),
                    None,
                    &t.stride(s).dilation(d).output_padding(op),
                )
            },
        );
    }
    for (h, k, pad) in [(1, 1, 1), (1, 2, 1), (2, 1, 2), (1, 3, 2)] {
        push(
            cases,
            format!("conv_transpose2d empty output h {h} k {k} pad {pad}"),
            "conv_transpose2d",
            move || conv_transpose2d(&z(&[1, 1, h, h]), &z(&[1, 1, k, k]), None, &t.padding(pad)),
        );
    }
    for g in [0, 3, 5] {
        push(
            cases,
            format!("conv_transpose2d groups {g}"),
            "conv_transpose2d",
            move || conv_transpose2d(&z(&[1, 4, 4, 4]), &z(&[4, 1, 3, 3]), None, &t.groups(g)),
        );
    }
    for s in [(0, 1), (1, 0)] {
        push(
            cases,
            format!("conv_transpose2d stride {s:?}"),
            "conv_transpose2d",
            move || conv_transpose2d(&z(&[1, 1, 4, 4]), &z(&[1, 1, 3, 3]), None, &t.stride(s)),
        );
    }
    for shape in [vec![4, 4], vec![1, 1, 1, 4, 4]] {
        push(
            cases,
            format!("conv_transpose2d input rank {shape:?}"),
            "conv_transpose2d",
            move || conv_transpose2d(&z(&shape), &z(&[1, 1, 3, 3]), None, &t),
        );
    }
    push(
        cases,
        "conv_transpose2d bias".into(),
        "conv_transpose2d",
        move || conv_transpose2d(&z(&[1, 2, 4, 4]), &z(&[2, 3, 3, 3]), Some(&z(&[2])), &t),
    );
    // corr2d / convolve2d on non-matrices and oversize kernels.
    for (x, k) in [
        (vec![5], vec![2, 2]),
        (vec![1, 5, 5], vec![2, 2]),
        (vec![5, 5], vec![2]),
        (vec![2, 2], vec![3, 3]),
        (vec![5, 1], vec![1, 2]),
    ] {
        let (x2, k2) = (x.clone(), k.clone());
        push(cases, format!("corr2d {x:?} {k:?}"), "corr2d", move || {
            corr2d(&z(&x), &z(&k))
        });
        push(cases, format!("convolve2d {x2:?} {k2:?}"), "", move || {
            convolve2d(&z(&x2), &z(&k2))
        });
    }
}

fn pool_cases(cases: &mut Vec<Case>) {
    // max_pool2d: kernel, stride, padding, dilation, rank.
    let bad_max: Vec<(&str, MaxPool2dParams, Vec<usize>)> = vec![
        ("kernel 0", MaxPool2dParams::new(0), vec![1, 1, 4, 4]),
        (
            "kernel (2, 0)",
            MaxPool2dParams::new((2, 0)),
            vec![1, 1, 4, 4],
        ),
        (
            "stride 0",
            MaxPool2dParams::new(2).stride(0),
            vec![1, 1, 4, 4],
        ),
        (
            "stride (1, 0)",
            MaxPool2dParams::new(2).stride((1, 0)),
            vec![1, 1, 4, 4],
        ),
        (
            "padding 2 > k/2",
            MaxPool2dParams::new(3).padding(2),
            vec![1, 1, 8, 8],
        ),
        (
            "padding 3 > k/2",
            MaxPool2dParams::new(3).padding(3),
            vec![1, 1, 8, 8],
        ),
        (
            "padding (0, 2) k 2",
            MaxPool2dParams::new(2).padding((0, 2)),
            vec![1, 1, 8, 8],
        ),
        (
            "dilation 0",
            MaxPool2dParams::new(2).dilation(0),
            vec![1, 1, 4, 4],
        ),
        ("kernel > input", MaxPool2dParams::new(5), vec![1, 1, 4, 4]),
        (
            "kernel > input w",
            MaxPool2dParams::new((1, 9)),
            vec![1, 1, 4, 8],
        ),
        (
            "dilated kernel > input",
            MaxPool2dParams::new(3).dilation(3),
            vec![1, 1, 6, 6],
        ),
        ("rank 2", MaxPool2dParams::new(2), vec![4, 4]),
        ("rank 5", MaxPool2dParams::new(2), vec![1, 1, 1, 4, 4]),
        ("rank 1", MaxPool2dParams::new(2), vec![16]),
        ("empty plane", MaxPool2dParams::new(1), vec![1, 1, 0, 4]),
    ];
    for (what, p, shape) in bad_max {
        let s2 = shape.clone();
        push(
            cases,
            format!("max_pool2d {what}"),
            "max_pool2d",
            move || max_pool2d(&z(&shape), &p),
        );
        push(
            cases,
            format!("max_pool2d_with_indices {what}"),
            "max_pool2d",
            move || max_pool2d_with_indices(&z(&s2), &p),
        );
    }
    let bad_avg: Vec<(&str, AvgPool2dParams, Vec<usize>)> = vec![
        ("kernel 0", AvgPool2dParams::new(0), vec![1, 1, 4, 4]),
        (
            "stride 0",
            AvgPool2dParams::new(2).stride(0),
            vec![1, 1, 4, 4],
        ),
        (
            "padding 2 > k/2",
            AvgPool2dParams::new(3).padding(2),
            vec![1, 1, 8, 8],
        ),
        (
            "padding (1, 0) k 1",
            AvgPool2dParams::new(1).padding((1, 0)),
            vec![1, 1, 8, 8],
        ),
        (
            "divisor 0",
            AvgPool2dParams::new(2).divisor_override(0),
            vec![1, 1, 4, 4],
        ),
        ("kernel > input", AvgPool2dParams::new(5), vec![1, 1, 4, 4]),
        ("rank 2", AvgPool2dParams::new(2), vec![4, 4]),
        ("rank 5", AvgPool2dParams::new(2), vec![1, 1, 1, 4, 4]),
    ];
    for (what, p, shape) in bad_avg {
        let s2 = shape.clone();
        push(
            cases,
            format!("avg_pool2d {what}"),
            "avg_pool2d",
            move || avg_pool2d(&z(&shape), &p),
        );
        push(
            cases,
            format!("avg_pool2d_backward {what}"),
            "avg_pool2d",
            move || avg_pool2d_backward(&s2, &z(&[1, 1, 2, 2]), &p),
        );
    }
    // Backward with a grad_output of the wrong shape.
    for go in [vec![1, 1, 3, 3], vec![1, 2, 2, 2], vec![2, 2]] {
        let g2 = go.clone();
        let g3 = go.clone();
        push(
            cases,
            format!("avg_pool2d_backward grad {go:?}"),
            "avg_pool2d",
            move || avg_pool2d_backward(&[1, 1, 4, 4], &z(&go), &AvgPool2dParams::new(2)),
        );
        push(
            cases,
            format!("max_pool2d_backward grad {g2:?}"),
            "max_pool2d",
            move || max_pool2d_backward(&[1, 1, 4, 4], &[0, 1, 2, 3], &z(&g2)),
        );
        push(
            cases,
            format!("adaptive_avg_pool2d_backward grad {g3:?}"),
            "adaptive_avg_pool2d",
            move || adaptive_avg_pool2d_backward(&[1, 1, 4, 4, 1], &z(&g3)),
        );
    }
    // Indices that point outside the plane.
    for idx in [vec![16, 0, 0, 0], vec![usize::MAX, 0, 0, 0], vec![0, 1]] {
        push(
            cases,
            format!("max_pool2d_backward indices {idx:?}"),
            "max_pool2d",
            move || max_pool2d_backward(&[1, 1, 4, 4], &idx, &z(&[1, 1, 2, 2])),
        );
    }
    // Adaptive pools on bad ranks and empty planes.
    for shape in [
        vec![4, 4],
        vec![1, 1, 1, 4, 4],
        vec![1, 1, 0, 4],
        vec![1, 1, 4, 0],
    ] {
        let s2 = shape.clone();
        push(
            cases,
            format!("adaptive_avg_pool2d {shape:?}"),
            "adaptive_avg_pool2d",
            move || adaptive_avg_pool2d(&z(&shape), 2),
        );
        push(
            cases,
            format!("adaptive_max_pool2d {s2:?}"),
            "adaptive_max_pool2d",
            move || adaptive_max_pool2d(&z(&s2), 2),
        );
    }
    // unfold / fold.
    let u = UnfoldParams::new(3);
    for shape in [vec![4], vec![4, 4], vec![1, 1, 1, 4, 4], vec![1, 1, 2, 2]] {
        push(
            cases,
            format!("unfold input {shape:?}"),
            "unfold",
            move || unfold(&z(&shape), &u),
        );
    }
    for (what, p) in [
        ("stride 0", u.stride(0)),
        ("dilation 0", u.dilation(0)),
        ("kernel 0", UnfoldParams::new(0)),
    ] {
        push(cases, format!("unfold {what}"), "unfold", move || {
            unfold(&z(&[1, 1, 5, 5]), &p)
        });
    }
    // fold: columns whose rows or count do not match the output size.
    for (cols, out) in [
        (vec![1, 8, 9], (5, 5)),
        (vec![1, 9, 8], (5, 5)),
        (vec![1, 9, 9], (2, 2)),
        (vec![9, 9], (4, 4)),
        (vec![1, 1, 9, 9], (5, 5)),
    ] {
        push(
            cases,
            format!("fold cols {cols:?} into {out:?}"),
            "fold",
            move || fold(&z(&cols), Pair::from(out), &u),
        );
    }
    // pad2d.
    for (shape, pads, mode) in [
        (vec![4], [1, 1, 1, 1], PaddingMode::Zeros),
        (vec![2, 2], [2, 0, 0, 0], PaddingMode::Reflect),
        (vec![2, 2], [0, 0, 0, 3], PaddingMode::Circular),
        (vec![0, 2], [1, 0, 0, 0], PaddingMode::Replicate),
        (vec![3, 3], [usize::MAX, 1, 0, 0], PaddingMode::Zeros),
    ] {
        push(
            cases,
            format!("pad2d {shape:?} {pads:?} {mode:?}"),
            "pad2d",
            move || pad2d(&z(&shape), pads, mode),
        );
    }
}

fn tensor_cases(cases: &mut Vec<Case>) {
    for (n, shape) in [
        (5, vec![2, 3]),
        (0, vec![1]),
        (7, vec![]),
        (4, vec![usize::MAX, 3]),
    ] {
        push(
            cases,
            format!("from_vec {n} values {shape:?}"),
            "tensor",
            move || Tensor::from_vec(vec![0.0; n], &shape),
        );
    }
    for shape in [
        vec![usize::MAX, 2],
        vec![1 << 40, 1 << 40],
        vec![usize::MAX],
        vec![1 << 62, 4],
    ] {
        let s2 = shape.clone();
        push(cases, format!("zeros {shape:?}"), "tensor", move || {
            Tensor::zeros(&shape)
        });
        push(cases, format!("ones {s2:?}"), "tensor", move || {
            Tensor::ones(&s2)
        });
    }
    for (a, b) in [
        (vec![2, 3], vec![2, 3]),
        (vec![3], vec![3]),
        (vec![2, 3, 4], vec![2, 3, 4]),
        (vec![2, 2], vec![3, 3, 3]),
        (vec![2, 3, 4], vec![3, 4, 2]),
    ] {
        push(cases, format!("matmul {a:?} {b:?}"), "matmul", move || {
            z(&a).matmul(&z(&b))
        });
    }
    for (a, b) in [
        (vec![2, 3], vec![4]),
        (vec![2, 3], vec![3, 2]),
        (vec![5], vec![4]),
    ] {
        let (a2, b2) = (a.clone(), b.clone());
        let (a3, b3) = (a.clone(), b.clone());
        let (a4, b4) = (a.clone(), b.clone());
        push(cases, format!("add {a:?} {b:?}"), "add", move || {
            z(&a).add(&z(&b))
        });
        push(cases, format!("sub {a2:?} {b2:?}"), "sub", move || {
            z(&a2).sub(&z(&b2))
        });
        push(cases, format!("mul {a3:?} {b3:?}"), "mul", move || {
            z(&a3).mul(&z(&b3))
        });
        push(cases, format!("div {a4:?} {b4:?}"), "div", move || {
            z(&a4).div(&z(&b4))
        });
    }
    for (from, to) in [
        (vec![2, 3], vec![4, 2]),
        (vec![6], vec![usize::MAX, usize::MAX]),
        (vec![6], vec![4, usize::MAX]),
        (vec![0], vec![0, usize::MAX]),
    ] {
        push(
            cases,
            format!("reshape {from:?} -> {to:?}"),
            "reshape",
            move || z(&from).reshape(&to),
        );
    }
    for shape in [vec![3], vec![2, 2, 2], vec![]] {
        push(cases, format!("t {shape:?}"), "t", move || z(&shape).t());
    }
    push(cases, "cat nothing".into(), "cat", || Tensor::cat(&[], 0));
    push(cases, "cat mismatched".into(), "cat", || {
        Tensor::cat(&[&z(&[2, 3]), &z(&[2, 4])], 0)
    });
    push(cases, "cat dim".into(), "cat", || {
        Tensor::cat(&[&z(&[2, 3])], 2)
    });
    push(cases, "stack mismatched".into(), "cat", || {
        Tensor::stack(&[&z(&[2, 3]), &z(&[3, 2])], 0)
    });
    push(cases, "stack dim".into(), "stack", || {
        Tensor::stack(&[&z(&[2, 3])], 3)
    });
    push(cases, "sum_dim".into(), "sum", || {
        z(&[2, 3]).sum_dim(2, false)
    });
    push(cases, "item".into(), "item", || z(&[2]).item());
    push(cases, "get".into(), "get", || z(&[2, 2]).get(&[2, 0]));
    push(cases, "arange step 0".into(), "arange", || {
        Tensor::arange_step(0.0, 1.0, 0.0)
    });
    push(cases, "arange nan".into(), "arange", || {
        Tensor::arange_step(0.0, f32::NAN, 1.0)
    });
    push(cases, "arange huge".into(), "arange", || {
        Tensor::arange_step(0.0, 1e30, 1.0)
    });
}

/// Gaps the CLI battery (crates/convlab-cli/tests/bad_input_battery.rs)
/// exposed, pinned at the library level: learning from non-finite data,
/// filters and layer specs, files.
fn tool_cases(cases: &mut Vec<Case>) {
    use convlab::learn::{learn_kernel, LearnOptions};
    let ramp = |h: usize, w: usize| {
        Tensor::arange((h * w) as f32)
            .unwrap()
            .reshape(&[h, w])
            .unwrap()
    };
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for (what, at_input) in [("input", true), ("target", false)] {
            push(
                cases,
                format!("learn_kernel {what} holds {bad}"),
                "learn_kernel",
                move || {
                    let (mut x, mut y) = (ramp(8, 8), ramp(6, 6));
                    if at_input {
                        x.data_mut()[5] = bad;
                    } else {
                        y.data_mut()[5] = bad;
                    }
                    learn_kernel(&x, &y, &LearnOptions::new((3, 3)), |_, _| {})
                },
            );
        }
    }
    for (x, y, k) in [
        ((8, 8), (5, 5), 3),
        ((8, 8), (6, 6), 9),
        ((8, 8), (6, 6), 0),
        ((0, 8), (0, 6), 3),
    ] {
        push(
            cases,
            format!("learn_kernel {x:?} -> {y:?} with {k}x{k}"),
            "learn_kernel",
            move || {
                learn_kernel(
                    &ramp(x.0, x.1),
                    &ramp(y.0, y.1),
                    &LearnOptions::new((k, k)),
                    |_, _| {},
                )
            },
        );
    }
    for lit in [
        "[",
        "[[1,2],[3]]",
        "[[nan]]",
        "[[1e999]]",
        "[[]]",
        "[[1]]x",
        "[[\u{1}]]",
    ] {
        push(
            cases,
            format!("parse_kernel {lit:?}"),
            "kernel",
            move || convlab::filters::parse_kernel(lit),
        );
    }
    for spec in [
        "gaussian:0",
        "gaussian:1e9",
        "box:0",
        "box:100000",
        "sobel",
        "",
        "missing.npy",
    ] {
        push(cases, format!("kernel_from_spec {spec:?}"), "", move || {
            convlab::filters::kernel_from_spec(spec)
        });
    }
    for shape in [vec![5], vec![1, 1, 4, 4], vec![]] {
        push(
            cases,
            format!("filters::apply image {shape:?}"),
            "filter",
            move || convlab::filters::apply(&z(&shape), &z(&[3, 3]), &Conv2dParams::new()),
        );
    }
    for spec in [
        "",
        "conv0",
        "conv3 s0",
        "conv3 q1",
        "conv99999999999999999999",
        "relu3",
    ] {
        push(
            cases,
            format!("parse_spec {spec:?}"),
            "receptive_field",
            move || convlab::receptive_field::parse_spec(spec),
        );
    }
    push(
        cases,
        "receptive_fields huge stride".into(),
        "receptive_field",
        || {
            let l = convlab::receptive_field::parse_spec(
                "conv3 s18446744073709551615, conv3 s18446744073709551615, conv3",
            )?;
            convlab::receptive_field::receptive_fields(&l, Pair::from(usize::MAX))
        },
    );
    let npy = |shape: &str, descr: &str, data: usize| {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        h.push_str(&" ".repeat((64 - (10 + h.len() + 1) % 64) % 64));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend(std::iter::repeat_n(0u8, data));
        b
    };
    for (shape, descr, data) in [
        ("(100000, 100000)", "<f4", 64),
        ("(4611686018427387904, 4611686018427387904)", "<f4", 64),
        ("(4, 4)", "<c8", 128),
        ("(4, 4)", "<U3", 192),
        ("(4, 4)", "|O", 128),
        ("(-1, 4)", "<f4", 64),
    ] {
        let b = npy(shape, descr, data);
        push(cases, format!("npy {shape} {descr}"), "npy", move || {
            convlab::io::npy_from_bytes(&b)
        });
    }
}

#[test]
fn every_bad_input_is_a_one_line_error() {
    let mut cases: Vec<Case> = Vec::new();
    conv_cases(&mut cases);
    pool_cases(&mut cases);
    tensor_cases(&mut cases);
    tool_cases(&mut cases);
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let mut problems = Vec::new();
    for (name, op, f) in &cases {
        match catch_unwind(AssertUnwindSafe(f)) {
            Err(_) => problems.push(format!("{name}: panicked")),
            Ok(Ok(())) => problems.push(format!("{name}: accepted")),
            Ok(Err(e)) => {
                let msg = e.to_string();
                if msg.contains('\n') || msg.is_empty() {
                    problems.push(format!("{name}: message not one line: {msg:?}"));
                }
                if !op.is_empty() && !msg.starts_with(op) {
                    problems.push(format!("{name}: message does not start with '{op}': {msg}"));
                }
            }
        }
    }
    println!("{} bad inputs checked", cases.len());
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
