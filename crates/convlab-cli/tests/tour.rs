//! `convlab tour` run as a user runs it: the real binary, its stdout checked
//! cell by cell against the book's numbers in PyTorch's print format.

use std::process::Command;
use std::time::{Duration, Instant};

fn tour() -> String {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_convlab"))
        .arg("tour")
        .output()
        .expect("run convlab tour");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The budget is 2 s in release; a debug build is allowed more.
    let budget = if cfg!(debug_assertions) { 20 } else { 2 };
    assert!(took < Duration::from_secs(budget), "tour took {took:?}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The cell whose title line starts with `# {prefix}`: everything up to the
/// next cell (a blank line then `# `; blank lines inside a 3-D tensor are
/// followed by spaces, not `#`).
fn cell<'a>(out: &'a str, prefix: &str) -> &'a str {
    let start = out
        .find(&format!("# {prefix}"))
        .unwrap_or_else(|| panic!("no cell {prefix:?} in\n{out}"));
    let rest = &out[start..];
    &rest[..rest.find("\n\n# ").unwrap_or(rest.len())]
}

fn has(cell: &str, want: &str) {
    assert!(cell.contains(want), "missing\n{want}\nin\n{cell}");
}

#[test]
fn every_cell_has_a_title_line() {
    let out = tour();
    assert!(out.starts_with("# "));
    for block in out.split("\n\n") {
        // A cell starts with its title; a blank line inside a 3-D tensor
        // continues with the next channel's rows.
        assert!(
            block.starts_with("# ")
                || (block.starts_with(' ') && block.trim_start().starts_with("[[")),
            "cell without a title:\n{block}"
        );
    }
    assert!(out.split("\n\n# ").count() >= 18);
}

#[test]
fn cross_correlation_and_the_conv2d_layer() {
    let out = tour();
    has(
        cell(&out, "6.2.1"),
        "tensor([[19., 25.],\n        [37., 43.]])",
    );
    has(
        cell(&out, "6.2.2"),
        "tensor([[19.5000, 25.5000],\n        [37.5000, 43.5000]], grad_fn=<AddBackward0>)",
    );
}

#[test]
fn edge_detection() {
    let out = tour();
    let c = cell(&out, "6.2.3");
    let edges = "tensor([[ 0.,  1.,  0.,  0.,  0., -1.,  0.],\n".to_string()
        + &"        [ 0.,  1.,  0.,  0.,  0., -1.,  0.],\n".repeat(4)
        + "        [ 0.,  1.,  0.,  0.,  0., -1.,  0.]])";
    has(c, &edges);
    let zeros = "tensor([[0., 0., 0., 0., 0.],\n".to_string()
        + &"        [0., 0., 0., 0., 0.],\n".repeat(6)
        + "        [0., 0., 0., 0., 0.]])";
    has(c, &zeros);
    has(
        c,
        "tensor([[ 1., -1.,  0.,  0.,  0.,  0.,  0.,  0.],\n        [ 0.,  1., -1.,  0.,",
    );
    has(c, "        [ 0.,  0.,  0.,  0.,  0.,  0.,  1., -1.]])");
}

#[test]
fn learning_the_kernel_prints_the_books_losses() {
    let out = tour();
    let c = cell(&out, "6.2.4");
    for line in [
        "epoch 2, loss 16.678",
        "epoch 4, loss 5.120",
        "epoch 6, loss 1.810",
        "epoch 8, loss 0.693",
        "epoch 10, loss 0.276",
        "tensor([[ 1.0399, -0.9325]])",
        // edge_1x2_bias from training.json
        "epoch 4, loss 10.611",
        "epoch 20, loss 0.170",
        "weight tensor([[ 0.8924, -0.8982]])",
        "bias tensor([0.0032])",
    ] {
        has(c, line);
    }
}

#[test]
fn convolution_flips_the_kernel() {
    let out = tour();
    let c = cell(&out, "6.2.5");
    assert_eq!(
        c.matches("tensor([[19., 25.],\n        [37., 43.]])")
            .count(),
        2,
        "{c}"
    );
    has(c, "tensor([[-0.9325,  1.0399]])");
    has(c, "same losses as the correlation layer: true");
}

#[test]
fn receptive_field_of_two_3x3_layers_is_5x5() {
    let out = tour();
    let c = cell(&out, "6.2.6");
    has(c, "        [0., 3., 6., 9., 6., 3., 0.],");
    has(c, "rows 1..=5, columns 1..=5 (5x5)");
}

#[test]
fn padding_and_stride_shapes() {
    let out = tour();
    let pad = cell(&out, "6.3.1");
    assert_eq!(pad.matches("torch.Size([8, 8])").count(), 2, "{pad}");
    let stride = cell(&out, "6.3.2");
    has(stride, "halves it\ntorch.Size([4, 4])");
    has(stride, "= 2\ntorch.Size([2, 2])");
}

#[test]
fn channels_and_1x1_convolution() {
    let out = tour();
    let c = cell(&out, "6.4.1");
    has(c, "tensor([[ 56.,  72.],\n        [104., 120.]])");
    has(c, "agrees: true");
    let c = cell(&out, "6.4.2");
    has(c, "torch.Size([3, 2, 2, 2])");
    has(
        c,
        "tensor([[[ 56.,  72.],\n         [104., 120.]],\n\n        [[ 76., 100.],\n         [148., 172.]],\n\n        [[ 96., 128.],\n         [192., 224.]]])",
    );
    has(cell(&out, "6.4.3"), "equal: true");
}

#[test]
fn pooling() {
    let out = tour();
    let c = cell(&out, "6.5.1");
    has(c, "tensor([[4., 5.],\n        [7., 8.]])");
    has(c, "tensor([[2., 3.],\n        [5., 6.]])");
    has(c, "pool2d agrees: true");
    let c = cell(&out, "6.5.2");
    has(c, "window, so one window fits\ntensor([[[[10.]]]])");
    has(
        c,
        "stride=2)\ntensor([[[[ 5.,  7.],\n          [13., 15.]]]])",
    );
    has(
        c,
        "stride=(2, 3))\ntensor([[[[ 1.,  3.],\n          [ 9., 11.],\n          [13., 15.]]]])",
    );
    has(
        cell(&out, "6.5.3"),
        "separately\ntensor([[[[ 5.,  7.],\n          [13., 15.]],\n\n         [[ 6.,  8.],\n          [14., 16.]]]])",
    );
}

#[test]
fn exercises() {
    let out = tour();
    let c = cell(&out, "exercise: convolution as a matrix product");
    has(c, "unfold: torch.Size([1, 18, 64])");
    assert_eq!(c.matches("equal: true").count(), 2, "{c}");
    assert!(!c.contains("equal: false"));
    has(
        c,
        "tensor([[0., 1., 0., 2., 3., 0., 0., 0., 0.],\n        [0., 0., 1., 0., 2., 3., 0., 0., 0.],",
    );
    has(c, "tensor([19., 25., 37., 43.])");
    let c = cell(&out, "exercise: the Laplacian");
    has(
        c,
        "tensor([[4., 4., 4., 4.],\n        [4., 4., 4., 4.],\n        [4., 4., 4., 4.],\n        [4., 4., 4., 4.]])",
    );
    has(c, "        [ 1., -2., -2.,  1.],");
    has(c, "        [2., 4., 4., 2.],");
    let c = cell(&out, "exercise: the smallest kernel");
    has(c, "kernel -1, 1 →");
    has(c, "tensor([[  1.,   7.,  19.,  37.,  61.,  91., 127.]])");
    has(c, "kernel 1, -2, 1 →");
    has(c, "tensor([[ 6., 12., 18., 24., 30., 36.]])");
    has(c, "kernel -1, 3, -3, 1 →");
    has(c, "tensor([[6., 6., 6., 6., 6.]])");
}

#[test]
fn mistakes_are_named() {
    let out = tour();
    has(
        cell(&out, "mistake 1"),
        "\nconvlab: corr2d: expected a 2-D matrix but got shape [1, 1, 6, 8]",
    );
    let c = cell(&out, "mistake 2");
    has(c, "epoch 1, loss 40.680\nepoch 2, loss 292.2");
    has(c, "epoch 3, loss 2534.5");
    assert!(
        !c.contains("epoch 4,"),
        "training went on after divergence:\n{c}"
    );
    has(
        c,
        "lr 0.03 diverges here (loss 40.7 → 2535 in 2 steps); stable below 0.0151; try --lr auto",
    );
    has(c, "(1/λmax = 0.00758");
    has(c, "tensor([[-0.9999,  0.9999]])");
}
