//! Every crash the fuzzers (`fuzz/`, cargo-fuzz) found, as a plain test named
//! after what broke, with the fuzzer's input translated to the API call.

use convlab::ops::*;
use convlab::{seeded_rng, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed)).unwrap()
}

/// fuzz/artifacts/ops/crash-8c476ea4 (target `ops`): an input of width 0
/// whose padding makes the forward valid (padded width 2, output width 2).
/// Its input gradient is empty; the direct kernel computed it as a
/// transposed convolution with output width 0 and panicked in
/// `chunks_exact_mut(0)` (kernels/direct.rs:57).
fn zero_width_case() -> (Tensor, Tensor, Conv2dParams) {
    let x = rand(&[1, 3, 2, 0], 1);
    let w = rand(&[3, 3, 5, 1], 2);
    let p = Conv2dParams::new().padding([1, 2, 0, 2]).dilation((1, 2));
    (x, w, p)
}

fn check_zero_width(algo: ConvAlgo) {
    let (x, w, p) = zero_width_case();
    let _forced = force_conv_algo(algo);
    let y = conv2d(&x, &w, None, &p).unwrap();
    let g = rand(y.shape(), 3);
    let grads = std::panic::catch_unwind(|| conv2d_backward(&x, &w, true, &g, &p));
    let grads = grads
        .unwrap_or_else(|_| panic!("{algo:?}: conv2d_backward panicked"))
        .unwrap();
    assert_eq!(grads.grad_input.shape(), x.shape(), "{algo:?}");
    // The weight gradient only sees padding zeros: it is exactly zero.
    assert!(
        grads.grad_weight.data().iter().all(|&v| v == 0.0),
        "{algo:?}"
    );
    assert_eq!(grads.grad_weight.shape(), w.shape());
}

#[test]
fn backward_of_an_empty_input_reference_im2col_auto() {
    for algo in [ConvAlgo::Reference, ConvAlgo::Im2col, ConvAlgo::Auto] {
        check_zero_width(algo);
    }
}

/// The direct kernel panicked (`chunks_exact_mut(0)`) computing the input
/// gradient of a zero-width input; `direct_applies` now rejects empty planes.
#[test]
fn direct_backward_input_of_an_empty_input() {
    check_zero_width(ConvAlgo::Direct);
}

/// Found by hand while auditing allocations sized by user input:
/// `convlab learn --steps 18446744073709551615` panicked with "capacity
/// overflow" (the loss history was preallocated for every step).
#[test]
fn learn_kernel_with_usize_max_steps_does_not_preallocate() {
    use convlab::learn::{learn_kernel, LearnOptions, Outcome};
    let x = Tensor::arange(64.0).unwrap().reshape(&[8, 8]).unwrap();
    let y = Tensor::zeros(&[6, 6]).unwrap();
    let opts = LearnOptions::new((3, 3))
        .steps(usize::MAX)
        .stop_below(f32::MAX);
    let r = learn_kernel(&x, &y, &opts, |_, _| {}).unwrap();
    assert!(
        matches!(r.outcome, Outcome::Converged { step: 0 }),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.losses.len(), 1);
}

/// fuzz/artifacts/kernel_spec/crash-f2740493 (target `kernel_spec`): the
/// spec `" box:\n .4"` gave "N in 'box:\n .4' must be a whole number"
/// with the raw newline, a two-line error on the CLI.
#[test]
fn kernel_spec_error_with_a_newline_is_one_line() {
    for spec in [
        " box:\n .4",
        "box:2.5\n",
        "gaussian:\nx",
        "sobel\n-x",
        "[[1,\n2],[3]]",
    ] {
        let e = convlab::filters::kernel_from_spec(spec)
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{spec:?}: {e:?}");
        assert!(e.starts_with("kernel: "), "{e}");
    }
}
