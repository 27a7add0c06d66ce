//! Unit tests of the pooling ops: the book's numbers, PyTorch's edge
//! cases (NaN, ties, ceil mode, divisor rules) and error messages.

use super::*;
use crate::shape::{adaptive_window, pool_out_len, AxisWindow, PoolAxis};
use crate::tensor::Tensor;

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape).unwrap()
}

fn arange(n: usize, shape: &[usize]) -> Tensor {
    Tensor::arange(n as f32).unwrap().reshape(shape).unwrap()
}

#[test]
fn d2l_max_and_avg_2x2_on_3x3() {
    // D2L 6.5.1: pool2d(X, (2, 2)) with X = arange(9).reshape(3, 3).
    let x = arange(9, &[1, 1, 3, 3]);
    let y = max_pool2d(&x, &MaxPool2dParams::new(2).stride(1)).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[4.0, 5.0, 7.0, 8.0]);
    let y = avg_pool2d(&x, &AvgPool2dParams::new(2).stride(1)).unwrap();
    assert_eq!(y.data(), &[2.0, 3.0, 5.0, 6.0]);
}

#[test]
fn d2l_padding_and_stride() {
    // D2L 6.5.2: X = arange(16).reshape(1, 1, 4, 4).
    let x = arange(16, &[1, 1, 4, 4]);
    let y = max_pool2d(&x, &MaxPool2dParams::new(3)).unwrap();
    assert_eq!((y.shape(), y.data()), (&[1, 1, 1, 1][..], &[10.0][..]));
    let y = max_pool2d(&x, &MaxPool2dParams::new(3).padding(1).stride(2)).unwrap();
    assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0]);
    let p = MaxPool2dParams::new((2, 3)).stride((2, 3)).padding((0, 1));
    assert_eq!(max_pool2d(&x, &p).unwrap().data(), &[5.0, 7.0, 13.0, 15.0]);
    let p = MaxPool2dParams::new((2, 4)).padding((1, 2)).stride((2, 3));
    let y = max_pool2d(&x, &p).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 2]);
    assert_eq!(y.data(), &[1.0, 3.0, 9.0, 11.0, 13.0, 15.0]);
}

#[test]
fn d2l_multiple_channels_and_unbatched_input() {
    // D2L 6.5.3: X = cat((X, X + 1), 1); pooling keeps the channels apart.
    let x = arange(16, &[1, 1, 4, 4]);
    let x2 = Tensor::cat(&[&x, &x.map(|v| v + 1.0)], 1).unwrap();
    let p = MaxPool2dParams::new(3).padding(1).stride(2);
    let y = max_pool2d(&x2, &p).unwrap();
    assert_eq!(y.shape(), &[1, 2, 2, 2]);
    assert_eq!(y.data(), &[5.0, 7.0, 13.0, 15.0, 6.0, 8.0, 14.0, 16.0]);
    let y3 = max_pool2d(&x2.reshape(&[2, 4, 4]).unwrap(), &p).unwrap();
    assert_eq!(y3.shape(), &[2, 2, 2]);
    assert_eq!(y3.data(), y.data());
}

#[test]
fn nan_wins_and_first_max_wins_ties() {
    // PyTorch: F.max_pool2d(x, 2, return_indices=True) on
    // [[1, nan], [nan, 0]] -> nan at index 2 (the last NaN), and on
    // [[3, 3], [1, 3]] -> 3 at index 0 (the first maximum).
    let x = t(&[1.0, f32::NAN, f32::NAN, 0.0], &[1, 1, 2, 2]);
    let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2)).unwrap();
    assert!(y.data()[0].is_nan());
    assert_eq!(idx, vec![2]);
    let x = t(&[3.0, 3.0, 1.0, 3.0], &[1, 1, 2, 2]);
    let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2)).unwrap();
    assert_eq!((y.data()[0], idx), (3.0, vec![0]));
    // All -inf: the value is -inf and the index the window's first element.
    let x = t(&[f32::NEG_INFINITY; 4], &[1, 1, 2, 2]);
    let (y, idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2)).unwrap();
    assert_eq!((y.data()[0], idx), (f32::NEG_INFINITY, vec![0]));
}

#[test]
fn max_backward_scatters_and_accumulates_overlaps() {
    // Stride 1 windows on arange(9): the 8 at index 8 wins once, 4 once...
    let x = arange(9, &[1, 1, 3, 3]);
    let p = MaxPool2dParams::new(2).stride(1);
    let (y, idx) = max_pool2d_with_indices(&x, &p).unwrap();
    let g = t(&[1.0, 2.0, 3.0, 4.0], y.shape());
    let gx = max_pool2d_backward(x.shape(), &idx, &g).unwrap();
    assert_eq!(gx.data(), &[0., 0., 0., 0., 1., 2., 0., 3., 4.]);
    // A constant input: every window picks its first element, so the
    // centre (first of the bottom-right window) collects one gradient.
    let x = Tensor::ones(&[1, 1, 3, 3]).unwrap();
    let (_, idx) = max_pool2d_with_indices(&x, &p).unwrap();
    assert_eq!(idx, vec![0, 1, 3, 4]);
    let gx = max_pool2d_backward(x.shape(), &idx, &g).unwrap();
    assert_eq!(gx.data(), &[1., 2., 0., 3., 4., 0., 0., 0., 0.]);
}

#[test]
fn ceil_mode_and_dilation_shapes_match_pytorch() {
    // PyTorch: MaxPool2d(3, 2, ceil_mode=True)(randn(1,1,6,6)).shape == (1,1,3,3);
    // on 2x2 it is 1x1 (the kernel overhangs); AvgPool2d the same gives 1.5
    // on arange(4) because the divisor is clipped to the 2x2 input.
    let x = arange(36, &[1, 1, 6, 6]);
    let y = max_pool2d(&x, &MaxPool2dParams::new(3).stride(2).ceil_mode(true)).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 3]);
    assert_eq!(y.data()[8], 35.0);
    let x = arange(4, &[1, 1, 2, 2]);
    let y = max_pool2d(&x, &MaxPool2dParams::new(3).stride(2).ceil_mode(true)).unwrap();
    assert_eq!(y.data(), &[3.0]);
    let y = avg_pool2d(&x, &AvgPool2dParams::new(3).stride(2).ceil_mode(true)).unwrap();
    assert_eq!(y.data(), &[1.5]);
    // Dilation 2, kernel 2 on 4x4: taps (0, 2) and (1, 3).
    let x = arange(16, &[1, 1, 4, 4]);
    let y = max_pool2d(&x, &MaxPool2dParams::new(2).stride(1).dilation(2)).unwrap();
    assert_eq!(y.data(), &[10.0, 11.0, 14.0, 15.0]);
}

#[test]
fn only_dilation_beyond_the_input_can_empty_a_window() {
    // The shortcut in `MaxPool2dParams::geometry` skips the empty-window
    // scan when d <= len; enumerate small geometries to back it.
    let mut empty_seen = 0;
    for len in 1..8 {
        for k in 1..5 {
            for s in 1..4 {
                for p in 0..=k / 2 {
                    for d in 1..6 {
                        for ceil in [false, true] {
                            let Ok(out) = pool_out_len("t", "h", len, k, s, p, d, ceil) else {
                                continue;
                            };
                            let axis = PoolAxis {
                                len,
                                out,
                                kernel: k,
                                stride: s,
                                padding: p,
                                dilation: d,
                            };
                            for o in 0..out {
                                let win = axis.window(o);
                                if win.count == 0 {
                                    empty_seen += 1;
                                    assert!(d > len, "len {len} k {k} s {s} p {p} d {d}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(empty_seen > 0, "the enumeration should reach empty windows");
}

#[test]
fn avg_divisor_rules() {
    // PyTorch, x = ones(1,1,3,3), kernel 3, padding 1, stride 2 ->
    // include_pad: 4/9 corners; exclude_pad: 1; divisor_override=2: 2.
    let x = Tensor::ones(&[1, 1, 3, 3]).unwrap();
    let base = AvgPool2dParams::new(3).padding(1).stride(2);
    let y = avg_pool2d(&x, &base).unwrap();
    assert!(
        y.data().iter().all(|&v| (v - 4.0 / 9.0).abs() < 1e-7),
        "{y}"
    );
    let y = avg_pool2d(&x, &base.count_include_pad(false)).unwrap();
    assert_eq!(y.data(), &[1.0; 4]);
    let y = avg_pool2d(&x, &base.divisor_override(2)).unwrap();
    assert_eq!(y.data(), &[2.0; 4]);
    // Backward of the include-pad case: the centre is in all 4 windows.
    let gx = avg_pool2d_backward(x.shape(), &Tensor::ones(&[1, 1, 2, 2]).unwrap(), &base).unwrap();
    assert!((gx.data()[4] - 4.0 / 9.0).abs() < 1e-7);
    assert!((gx.data()[0] - 1.0 / 9.0).abs() < 1e-7);
}

fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.unwrap_err().to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{msg}' does not mention '{p}'");
    }
}

#[test]
fn bad_parameters_are_errors_naming_op_and_parameter() {
    let x = arange(16, &[1, 1, 4, 4]);
    let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(3).padding(3)));
    assert_eq!(
        e,
        "max_pool2d: padding 3 must be at most half the kernel size 3"
    );
    let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(0)));
    assert_mentions(&e, &["max_pool2d", "kernel_size 0", "at least 1"]);
    let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(2).stride((1, 0))));
    assert_mentions(&e, &["max_pool2d", "stride (1, 0)", "at least 1"]);
    let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(2).dilation(0)));
    assert_mentions(&e, &["max_pool2d", "dilation 0"]);
    let e = err_text(avg_pool2d(
        &x,
        &AvgPool2dParams::new((2, 4)).padding((1, 3)),
    ));
    assert_mentions(&e, &["avg_pool2d", "padding (1, 3)", "kernel size (2, 4)"]);
    let e = err_text(avg_pool2d(&x, &AvgPool2dParams::new(2).divisor_override(0)));
    assert_mentions(&e, &["avg_pool2d", "divisor_override", "0"]);
    let e = err_text(avg_pool2d(&x, &AvgPool2dParams::new(2).stride(0)));
    assert_mentions(&e, &["avg_pool2d", "stride 0"]);
}

#[test]
fn bad_shapes_are_errors_naming_op_and_shape() {
    let x2 = arange(9, &[3, 3]);
    let e = err_text(max_pool2d(&x2, &MaxPool2dParams::new(2)));
    assert_mentions(&e, &["max_pool2d", "3-D", "4-D", "[3, 3]"]);
    let x5 = arange(9, &[1, 1, 1, 3, 3]);
    let e = err_text(avg_pool2d(&x5, &AvgPool2dParams::new(2)));
    assert_mentions(&e, &["avg_pool2d", "[1, 1, 1, 3, 3]"]);
    let empty = Tensor::zeros(&[1, 0, 3, 3]).unwrap();
    let e = err_text(max_pool2d(&empty, &MaxPool2dParams::new(2)));
    assert_mentions(&e, &["max_pool2d", "[1, 0, 3, 3]", "empty"]);
    // Kernel larger than the padded input.
    let x = arange(4, &[1, 1, 2, 2]);
    let e = err_text(max_pool2d(&x, &MaxPool2dParams::new(3)));
    assert_mentions(
        &e,
        &["max_pool2d", "kernel height 3", "padded input height 2"],
    );
    // Dilation stepping over the whole input leaves a window empty.
    let x = arange(4, &[1, 1, 2, 2]);
    let p = MaxPool2dParams::new(2).stride(1).padding(1).dilation(3);
    let e = err_text(max_pool2d(&x, &p));
    assert_mentions(
        &e,
        &["max_pool2d", "window 0", "no input element", "dilation 3"],
    );
    // An empty batch is fine, as in PyTorch.
    let y = max_pool2d(
        &Tensor::zeros(&[0, 2, 4, 4]).unwrap(),
        &MaxPool2dParams::new(2),
    );
    assert_eq!(y.unwrap().shape(), &[0, 2, 2, 2]);
}

#[test]
fn backward_shape_errors() {
    let x = arange(16, &[1, 1, 4, 4]);
    let p = MaxPool2dParams::new(2);
    let (y, idx) = max_pool2d_with_indices(&x, &p).unwrap();
    let e = err_text(max_pool2d_backward(&[1, 2, 4, 4], &idx, &y));
    assert_mentions(&e, &["max_pool2d_backward", "[1, 1, 2, 2]", "[1, 2, 4, 4]"]);
    let e = err_text(max_pool2d_backward(x.shape(), &idx[..3], &y));
    assert_mentions(&e, &["max_pool2d_backward", "3 indices", "[1, 1, 2, 2]"]);
    let e = err_text(max_pool2d_backward(x.shape(), &[0, 1, 2, 16], &y));
    assert_mentions(&e, &["max_pool2d_backward", "index 16", "4x4"]);
    let e = err_text(max_pool2d_backward(&[4, 4], &idx, &y));
    assert_mentions(&e, &["max_pool2d_backward", "input_shape", "[4, 4]"]);
    let e = err_text(max_pool2d_backward(&[usize::MAX, 2, 4, 4], &idx, &y));
    assert_mentions(&e, &["max_pool2d_backward"]);
    let ap = AvgPool2dParams::new(2);
    let g = Tensor::ones(&[1, 1, 3, 2]).unwrap();
    let e = err_text(avg_pool2d_backward(x.shape(), &g, &ap));
    assert_mentions(&e, &["avg_pool2d_backward", "[1, 1, 3, 2]", "[1, 1, 2, 2]"]);
}

/// `[start, end)` ranges as windows.
fn spans(r: &[(usize, usize)]) -> Vec<AxisWindow> {
    r.iter().map(|&(a, b)| AxisWindow::span(a, b - a)).collect()
}

#[test]
fn bins_follow_pytorch_floor_and_ceil() {
    // H = 10, oh = 3: [0, 4), [3, 7), [6, 10) -- overlapping by one row.
    let b: Vec<_> = (0..3).map(|i| adaptive_window(i, 3, 10)).collect();
    assert_eq!(b, spans(&[(0, 4), (3, 7), (6, 10)]));
    // Output larger than input: bins repeat rows.
    let b: Vec<_> = (0..4).map(|i| adaptive_window(i, 4, 2)).collect();
    assert_eq!(b, spans(&[(0, 1), (0, 1), (1, 2), (1, 2)]));
}

#[test]
fn global_average_and_uneven_bins() {
    // PyTorch: F.adaptive_avg_pool2d(arange(12).reshape(1,1,3,4), (2, 3))
    // = [[2.5, 3.5, 4.5], [6.5, 7.5, 8.5]].
    let x = Tensor::arange(12.0)
        .unwrap()
        .reshape(&[1, 1, 3, 4])
        .unwrap();
    let y = adaptive_avg_pool2d(&x, (2, 3)).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 3]);
    assert_eq!(y.data(), &[2.5, 3.5, 4.5, 6.5, 7.5, 8.5]);
    let g = Tensor::ones(&[1, 1, 2, 3]).unwrap();
    let gx = adaptive_avg_pool2d_backward(x.shape(), &g).unwrap();
    // Row 1 is in both row bins; column 1 and 2 in two column bins each.
    assert_eq!(gx.data()[0], 0.25);
    assert_eq!(gx.data()[4 + 1], 1.0);
    let total: f32 = gx.data().iter().sum();
    assert!((total - 6.0).abs() < 1e-6, "each of 6 outputs spreads 1");
}

#[test]
fn max_with_indices_and_backward() {
    let x = Tensor::arange(12.0).unwrap().reshape(&[3, 4]).unwrap();
    let x = x.reshape(&[1, 3, 4]).unwrap();
    let (y, idx) = adaptive_max_pool2d(&x, (2, 3)).unwrap();
    assert_eq!(y.shape(), &[1, 2, 3]);
    assert_eq!(y.data(), &[5.0, 6.0, 7.0, 9.0, 10.0, 11.0]);
    assert_eq!(idx, vec![5, 6, 7, 9, 10, 11]);
    let g = Tensor::ones(y.shape()).unwrap();
    let gx = adaptive_max_pool2d_backward(x.shape(), &idx, &g).unwrap();
    assert_eq!(gx.data()[5], 1.0);
    assert_eq!(gx.data()[0], 0.0);
    let x = Tensor::from_slice(&[1.0, f32::NAN, 2.0, 0.0], &[1, 1, 2, 2]).unwrap();
    let (y, idx) = adaptive_max_pool2d(&x, 1).unwrap();
    assert!(y.data()[0].is_nan());
    assert_eq!(idx, vec![1]);
}

#[test]
fn zero_output_size_is_empty_like_pytorch() {
    let x = Tensor::ones(&[1, 1, 3, 3]).unwrap();
    assert_eq!(adaptive_avg_pool2d(&x, 0).unwrap().shape(), &[1, 1, 0, 0]);
    let (y, idx) = adaptive_max_pool2d(&x, (0, 2)).unwrap();
    assert_eq!((y.shape(), idx.len()), (&[1, 1, 0, 2][..], 0));
}

#[test]
fn errors_name_op_and_shape() {
    let x = Tensor::ones(&[3, 3]).unwrap();
    let e = adaptive_avg_pool2d(&x, 1).unwrap_err().to_string();
    assert!(
        e.starts_with("adaptive_avg_pool2d:") && e.contains("[3, 3]"),
        "{e}"
    );
    let x = Tensor::ones(&[1, 1, 0, 3]).unwrap();
    let e = adaptive_max_pool2d(&x, 1).unwrap_err().to_string();
    assert!(
        e.starts_with("adaptive_max_pool2d:") && e.contains("[1, 1, 0, 3]"),
        "{e}"
    );
    let g = Tensor::ones(&[1, 2, 1, 1]).unwrap();
    let e = adaptive_avg_pool2d_backward(&[1, 1, 3, 3], &g)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("adaptive_avg_pool2d_backward:")
            && e.contains("[1, 2, 1, 1]")
            && e.contains("[1, 1, 3, 3]"),
        "{e}"
    );
    let e =
        adaptive_max_pool2d_backward(&[1, 1, 3, 3], &[9], &Tensor::ones(&[1, 1, 1, 1]).unwrap())
            .unwrap_err()
            .to_string();
    assert!(
        e.starts_with("adaptive_max_pool2d_backward:") && e.contains("index 9"),
        "{e}"
    );
}

#[test]
fn fractional_samples_batch_rule_is_pytorchs() {
    // `_random_samples.size(0)` at least the batch, 1 for an unbatched
    // input: an empty batch takes the empty samples PyTorch draws for it
    // (OpInfo's fractional_max_pool3d sample of input [0, 1, 4, 5, 4]).
    let p = FractionalMaxPool3dParams::with_output_size(2, 2);
    let empty = Tensor::zeros(&[0, 1, 4, 5, 4]).unwrap();
    let drawn = fractional_random_samples::<3>(empty.shape(), &mut crate::seeded_rng(0)).unwrap();
    assert_eq!(drawn.shape(), &[0, 1, 3]);
    let (y, idx) = fractional_max_pool(&empty, &p, &drawn).unwrap();
    assert_eq!((y.shape(), idx.len()), (&[0, 1, 2, 2, 2][..], 0));
    let u = Tensor::full(&[1, 1, 3], 0.5).unwrap();
    assert!(fractional_max_pool(&empty, &p, &u).is_ok());
    let gx = fractional_max_pool3d_backward(empty.shape(), &idx, &y).unwrap();
    assert_eq!(gx.shape(), empty.shape());
    // Too few samples for the batch, and none for an unbatched input.
    let two = Tensor::zeros(&[2, 1, 4, 5, 4]).unwrap();
    let err = fractional_max_pool(&two, &p, &u).unwrap_err().to_string();
    assert!(err.contains("expected [2, 1, 3]"), "{err}");
    let unbatched = Tensor::zeros(&[1, 4, 5, 4]).unwrap();
    let none = Tensor::zeros(&[0, 1, 3]).unwrap();
    assert!(fractional_max_pool(&unbatched, &p, &none).is_err());
    assert!(fractional_max_pool(&unbatched, &p, &u).is_ok());
}
