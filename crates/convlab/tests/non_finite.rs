//! NaN and infinity stay local: they reach exactly the outputs whose
//! window covers them, as in PyTorch, on every algorithm the dispatcher
//! can pick, forward and both gradients. The reference loops are the
//! oracle: every output must have the reference's class (finite, NaN,
//! +inf, -inf) and, where finite, its value.
//!
//! Each layer below is one the dispatcher sends to a different algorithm
//! when its operands are finite (the test asserts that it does, so the
//! routing away from Winograd and FFT is exercised). Forcing an algorithm
//! that mixes windows onto non-finite operands is an error; every other
//! algorithm is run forced as well.
//!
//! The second test measures each algorithm's error on finite inputs with
//! one large outlier, relative to the magnitude of each output's window
//! (`sum |w| |x|` over it): exact algorithms stay at rounding level; the
//! figures for the others are in docs/RELIABILITY.md.

mod common;

use common::rand_tensor;
use convlab::ops::{
    conv2d, conv2d_backward_input, conv2d_backward_weight, force_conv_algo, record_conv_algos,
    Conv2dParams, ConvAlgo, ConvPass,
};
use convlab::Tensor;

/// The algorithms that mix values across windows (Winograd tiles, FFT
/// planes): never run on non-finite operands.
const MIXING: [ConvAlgo; 5] = [
    ConvAlgo::Fft,
    ConvAlgo::Winograd,
    ConvAlgo::WinogradPointMajor,
    ConvAlgo::WinogradStride2F3x4,
    ConvAlgo::WinogradStride2F4x2,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Finite,
    Nan,
    PosInf,
    NegInf,
}

fn class(v: f32) -> Class {
    if v.is_nan() {
        Class::Nan
    } else if v == f32::INFINITY {
        Class::PosInf
    } else if v == f32::NEG_INFINITY {
        Class::NegInf
    } else {
        Class::Finite
    }
}

struct Layer {
    name: &'static str,
    x: [usize; 4],
    w: [usize; 4],
    p: Conv2dParams,
    /// A weight that is an outer product (the separable filters).
    outer: bool,
}

fn layers() -> Vec<Layer> {
    let p = Conv2dParams::new;
    let l = |name, x, w, p, outer| Layer {
        name,
        x,
        w,
        p,
        outer,
    };
    vec![
        l(
            "winograd_3x3",
            [2, 16, 12, 12],
            [16, 16, 3, 3],
            p().padding(1),
            false,
        ),
        l(
            "fft_15x15",
            [1, 1, 256, 256],
            [1, 1, 15, 15],
            p().padding(7),
            false,
        ),
        l(
            "stem_7x7_s2",
            [1, 3, 32, 32],
            [16, 3, 7, 7],
            p().stride(2).padding(3),
            false,
        ),
        l(
            "dilated_3x3_d2",
            [2, 32, 40, 40],
            [32, 32, 3, 3],
            p().padding(2).dilation(2),
            false,
        ),
        l(
            "s2_3x3",
            [2, 16, 16, 16],
            [32, 16, 3, 3],
            p().stride(2).padding(1),
            false,
        ),
        l(
            "depthwise_3x3",
            [2, 4, 20, 20],
            [4, 1, 3, 3],
            p().padding(1).groups(4),
            false,
        ),
        l(
            "separable_5x5",
            [1, 1, 40, 40],
            [1, 1, 5, 5],
            p().padding(2),
            true,
        ),
        l("lenet_c2", [16, 6, 14, 14], [16, 6, 5, 5], p(), false),
        l("pointwise", [2, 32, 16, 16], [32, 32, 1, 1], p(), false),
    ]
}

fn weight(l: &Layer, seed: u64) -> Tensor {
    if !l.outer {
        return rand_tensor(&l.w, seed);
    }
    let [_, _, kh, kw] = l.w;
    let (a, b) = (rand_tensor(&[kh], seed), rand_tensor(&[kw], seed + 1));
    let v: Vec<f32> = a
        .data()
        .iter()
        .flat_map(|x| b.data().iter().map(move |y| x * y))
        .collect();
    Tensor::from_vec(v, &l.w).unwrap()
}

fn out_shape(l: &Layer) -> Vec<usize> {
    let y = conv2d(
        &Tensor::zeros(&l.x).unwrap(),
        &Tensor::zeros(&l.w).unwrap(),
        None,
        &l.p,
    );
    y.unwrap().shape().to_vec()
}

/// `t` with `v` at two interior points and (when `corner`) at its first
/// element: interior values are covered by every tap of the windows that
/// reach them, so each algorithm family agrees with the definition there.
fn poisoned(t: &Tensor, v: f32, corner: bool) -> Tensor {
    let s = t.shape().to_vec();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let mut t = t.clone();
    let at = |b: usize, ch: usize, y: usize, x: usize| ((b * c + ch) * h + y) * w + x;
    t.data_mut()[at(n - 1, c / 2, h / 2, w / 3)] = v;
    t.data_mut()[at(0, c - 1, (2 * h) / 3, (3 * w) / 4)] = v;
    if corner {
        t.data_mut()[0] = v;
    }
    t
}

/// One pass of `l` on the given operands: (`x` or the input shape, `w` or
/// the weight shape, grad_output).
fn run(l: &Layer, pass: ConvPass, x: &Tensor, w: &Tensor, go: &Tensor) -> convlab::Result<Tensor> {
    match pass {
        ConvPass::Forward => conv2d(x, w, None, &l.p),
        ConvPass::InputGrad => conv2d_backward_input(&l.x, w, go, &l.p),
        ConvPass::WeightGrad => conv2d_backward_weight(x, &l.w, go, &l.p),
    }
}

fn with_algo(
    algo: ConvAlgo,
    f: impl FnOnce() -> convlab::Result<Tensor>,
) -> (convlab::Result<Tensor>, Vec<ConvAlgo>) {
    let _force = force_conv_algo(algo);
    let rec = record_conv_algos();
    let r = f();
    (r, rec.take().into_iter().map(|r| r.algo).collect())
}

/// Every element of `ours` in the class of `reference`'s, and close to it
/// where finite. `local`: the reference must also be finite somewhere
/// (a weight gradient may be non-finite everywhere: every tap of an
/// interior pixel's windows reads it).
fn assert_same_classes(what: &str, ours: &Tensor, reference: &Tensor, local: bool) {
    assert_eq!(ours.shape(), reference.shape(), "{what}");
    let scale = reference
        .data()
        .iter()
        .filter(|v| v.is_finite())
        .fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (&a, &r)) in ours.data().iter().zip(reference.data()).enumerate() {
        assert_eq!(
            class(a),
            class(r),
            "{what}: element {i} is {a}, the reference {r}"
        );
        if r.is_finite() {
            assert!(
                (a - r).abs() <= 1e-4 * scale,
                "{what}: element {i} is {a}, the reference {r}"
            );
        }
    }
    let spread = reference.data().iter().filter(|v| !v.is_finite()).count();
    assert!(spread > 0, "{what}: nothing non-finite reached the output");
    assert!(
        !local || spread < reference.numel(),
        "{what}: the reference is non-finite everywhere, so the test shows nothing"
    );
}

/// The operand cases of a pass: (label, x, grad_output) with the poison in
/// the operand the pass reads.
fn cases(pass: ConvPass, v: f32, x: &Tensor, go: &Tensor) -> Vec<(&'static str, Tensor, Tensor)> {
    match pass {
        ConvPass::Forward => vec![("input", poisoned(x, v, true), go.clone())],
        ConvPass::InputGrad => vec![("grad_output", x.clone(), poisoned(go, v, false))],
        _ => vec![
            ("input", poisoned(x, v, false), go.clone()),
            ("grad_output", x.clone(), poisoned(go, v, false)),
        ],
    }
}

#[test]
fn non_finite_values_reach_only_the_outputs_whose_window_covers_them() {
    let mut finite_picks = Vec::new();
    let mut checked = 0;
    for (li, l) in layers().iter().enumerate() {
        let seed = 100 * li as u64;
        let (x, w) = (rand_tensor(&l.x, seed), weight(l, seed + 7));
        let go = rand_tensor(&out_shape(l), seed + 9);
        for pass in ConvPass::ALL {
            // What the dispatcher picks on finite operands.
            let (r, ran) = with_algo(ConvAlgo::Auto, || run(l, pass, &x, &w, &go));
            r.unwrap();
            finite_picks.push((l.name, pass, ran[0]));
            for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for (operand, xb, gob) in cases(pass, v, &x, &go) {
                    let what = |a: ConvAlgo| {
                        format!(
                            "{} {} {v} in {operand} on {}",
                            l.name,
                            pass.name(),
                            a.name()
                        )
                    };
                    let (reference, _) =
                        with_algo(ConvAlgo::Reference, || run(l, pass, &xb, &w, &gob));
                    let reference = reference.unwrap();
                    for algo in std::iter::once(ConvAlgo::Auto).chain(ConvAlgo::ALL) {
                        let (r, ran) = with_algo(algo, || run(l, pass, &xb, &w, &gob));
                        match r {
                            Ok(y) => {
                                assert!(
                                    ran.iter().all(|a| !MIXING.contains(a)),
                                    "{}: ran {ran:?}",
                                    what(algo)
                                );
                                let local = pass != ConvPass::WeightGrad;
                                assert_same_classes(&what(ran[0]), &y, &reference, local);
                                checked += 1;
                            }
                            Err(e) => {
                                assert_ne!(algo, ConvAlgo::Auto, "{}: {e}", what(algo));
                                let msg = e.to_string();
                                if MIXING.contains(&algo) && !msg.contains("stride") {
                                    // Mixing algorithms that could compute the pass
                                    // say why they refuse.
                                    assert!(
                                        msg.contains("NaN or infinity")
                                            || msg.contains(" cannot compute the"),
                                        "{}: {msg}",
                                        what(algo)
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // The layers exercise the routing: on finite operands the dispatcher
    // sends them to the window-mixing algorithms (point-major Winograd,
    // which only AVX-512 picks, is covered by forcing it).
    for want in [
        ConvAlgo::Winograd,
        ConvAlgo::Fft,
        ConvAlgo::WinogradStride2F3x4,
        ConvAlgo::Separable,
        ConvAlgo::Direct,
    ] {
        assert!(
            finite_picks.iter().any(|&(_, _, a)| a == want),
            "no layer dispatches to {} on finite operands: {finite_picks:?}",
            want.name()
        );
    }
    assert!(checked > 300, "only {checked} runs compared");
}

/// Forcing an algorithm that mixes windows onto a NaN is an error that
/// says why, and the same algorithm runs on the finite operands.
#[test]
fn forcing_a_mixing_algorithm_onto_nan_is_an_error() {
    let l = &layers()[0];
    let (x, w) = (rand_tensor(&l.x, 1), rand_tensor(&l.w, 2));
    let (ok, ran) = with_algo(ConvAlgo::Winograd, || conv2d(&x, &w, None, &l.p));
    assert!(ok.is_ok());
    assert_eq!(ran, [ConvAlgo::Winograd]);
    let bad = poisoned(&x, f32::NAN, false);
    let (r, ran) = with_algo(ConvAlgo::Winograd, || conv2d(&bad, &w, None, &l.p));
    common::expect_err(r, &["conv2d", "winograd", "NaN or infinity"]);
    assert!(ran.is_empty());
    // A NaN in the weight reaches every output of its channel on every
    // algorithm (PyTorch multiplies the padding's zeros too), so the
    // weight is not scanned: Winograd gives what im2col gives.
    let wbad = poisoned(&w, f32::NAN, false);
    let channels = |y: &Tensor| -> Vec<bool> {
        let plane = y.shape()[2] * y.shape()[3];
        (0..y.shape()[1])
            .map(|c| {
                (0..y.shape()[0]).all(|n| {
                    let at = (n * y.shape()[1] + c) * plane;
                    y.data()[at..at + plane].iter().all(|v| v.is_nan())
                })
            })
            .collect()
    };
    let (wino, _) = with_algo(ConvAlgo::Winograd, || conv2d(&x, &wbad, None, &l.p));
    let (im2col, _) = with_algo(ConvAlgo::Im2col, || conv2d(&x, &wbad, None, &l.p));
    let (wino, im2col) = (channels(&wino.unwrap()), channels(&im2col.unwrap()));
    assert_eq!(wino, im2col);
    assert_eq!(wino.iter().filter(|&&c| c).count(), 2, "{wino:?}");
}

/// Each algorithm's error on finite inputs around one outlier of 1e5,
/// relative to the magnitude of each output's window (`sum |w| |x|`, the
/// reference on absolute values): exact algorithms stay at f32 rounding
/// of their own window (at most taps x epsilon), whatever lies outside
/// it. Run with `--nocapture` for every algorithm's figure.
#[test]
fn exact_algorithms_keep_rounding_error_inside_the_window() {
    let outlier = 1e5f32;
    for (li, l) in layers().iter().enumerate() {
        let seed = 1000 + 100 * li as u64;
        let (x, w) = (rand_tensor(&l.x, seed), weight(l, seed + 7));
        let mut xo = x.clone();
        let i = xo.numel() / 2 + l.x[3] / 2;
        xo.data_mut()[i] = outlier;
        let abs =
            |t: &Tensor| Tensor::from_vec(t.data().iter().map(|v| v.abs()).collect(), t.shape());
        let forced_ref = |a: &Tensor, b: &Tensor| {
            let _f = force_conv_algo(ConvAlgo::Reference);
            conv2d(a, b, None, &l.p).unwrap()
        };
        let reference = forced_ref(&xo, &w);
        let magnitude = forced_ref(&abs(&xo).unwrap(), &abs(&w).unwrap());
        let taps = (l.w[1] * l.w[2] * l.w[3]) as f32;
        for algo in ConvAlgo::ALL {
            if algo == ConvAlgo::Reference {
                continue;
            }
            let (r, ran) = with_algo(algo, || conv2d(&xo, &w, None, &l.p));
            let Ok(y) = r else { continue };
            assert_eq!(ran, [algo]);
            let worst = y
                .data()
                .iter()
                .zip(reference.data())
                .zip(magnitude.data())
                .map(|((a, r), m)| (a - r).abs() / m.max(f32::MIN_POSITIVE))
                .fold(0.0f32, f32::max);
            println!("{:<16} {:<22} {worst:.1e}", l.name, algo.name());
            if algo.is_exact() {
                assert!(
                    worst <= taps * f32::EPSILON,
                    "{} on {}: error {worst:e} of the window's magnitude",
                    algo.name(),
                    l.name
                );
            }
        }
    }
}
