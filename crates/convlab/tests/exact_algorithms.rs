//! `use_exact_algorithms(true)` keeps every convolution on algorithms
//! whose outputs are plain sums of their windows' products, and forcing
//! another is an error; off again, the dispatcher picks Winograd, FFT and
//! separable passes as before. One test in its own binary: the switch is
//! process-wide.

mod common;

use common::{assert_close, rand_tensor};
use convlab::ops::{
    conv2d, conv2d_backward, exact_algorithms_enabled, force_conv_algo, record_conv_algos,
    use_exact_algorithms, Conv2dParams, ConvAlgo,
};
use convlab::Tensor;

fn separable_weight() -> Tensor {
    let v = [1.0f32, 4.0, 6.0, 4.0, 1.0];
    let w: Vec<f32> = v
        .iter()
        .flat_map(|a| v.iter().map(move |b| a * b))
        .collect();
    Tensor::from_vec(w, &[1, 1, 5, 5]).unwrap()
}

#[test]
fn the_exact_switch_keeps_every_pass_on_exact_algorithms() {
    let p = Conv2dParams::new;
    let layers = [
        (
            "winograd",
            rand_tensor(&[2, 16, 12, 12], 1),
            rand_tensor(&[16, 16, 3, 3], 2),
            p().padding(1),
        ),
        (
            "fft",
            rand_tensor(&[1, 1, 256, 256], 3),
            rand_tensor(&[1, 1, 15, 15], 4),
            p().padding(7),
        ),
        (
            "stem",
            rand_tensor(&[1, 3, 32, 32], 5),
            rand_tensor(&[16, 3, 7, 7], 6),
            p().stride(2).padding(3),
        ),
        (
            "separable",
            rand_tensor(&[1, 1, 40, 40], 7),
            separable_weight(),
            p().padding(2),
        ),
    ];
    let run = |x: &Tensor, w: &Tensor, p: &Conv2dParams| {
        let y = conv2d(x, w, None, p).unwrap();
        let g = conv2d_backward(x, w, false, &y, p).unwrap();
        (y, g.grad_input, g.grad_weight)
    };
    let picks = |exact: bool| -> Vec<ConvAlgo> {
        use_exact_algorithms(exact);
        assert_eq!(exact_algorithms_enabled(), exact);
        let rec = record_conv_algos();
        for (name, x, w, p) in &layers {
            let (y, gi, gw) = run(x, w, p);
            let _reference = force_conv_algo(ConvAlgo::Reference);
            let (ry, rgi, rgw) = run(x, w, p);
            assert_close(&format!("{name} forward"), &y, &ry);
            assert_close(&format!("{name} input gradient"), &gi, &rgi);
            assert_close(&format!("{name} weight gradient"), &gw, &rgw);
        }
        let ran: Vec<ConvAlgo> = rec.take().iter().map(|r| r.algo).collect();
        ran.into_iter()
            .filter(|&a| a != ConvAlgo::Reference)
            .collect()
    };
    let exact = picks(true);
    assert!(exact.iter().all(|a| a.is_exact()), "{exact:?}");
    assert_eq!(exact.len(), 12, "{exact:?}");
    // Forcing an algorithm that is not exact is an error naming the switch.
    {
        let _w = force_conv_algo(ConvAlgo::Winograd);
        let (_, x, w, p) = &layers[0];
        common::expect_err(conv2d(x, w, None, p), &["winograd", "use_exact_algorithms"]);
    }
    let fastest = picks(false);
    for want in [
        ConvAlgo::Winograd,
        ConvAlgo::Fft,
        ConvAlgo::WinogradStride2F3x4,
        ConvAlgo::Separable,
    ] {
        assert!(
            fastest.contains(&want),
            "{} not picked: {fastest:?}",
            want.name()
        );
    }
}
