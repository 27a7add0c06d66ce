//! Every registered convolution algorithm (`ConvAlgo::ALL`) against the
//! reference loops, forward and all three gradients, on random small valid
//! shapes: sizes 1, register-block sizes ±1 (8, 16, 64 columns), primes,
//! groups (depthwise included), strides, dilation and padding; and
//! conv_transpose2d, which runs the same kernels with roles swapped. Each
//! pass runs under every algorithm that can compute it, and the recorder
//! must show that algorithm ran. A new algorithm is tested here the day it
//! is added to `ConvAlgo::ALL`.

mod common;

use common::{forced, rand_tensor, rel_err, TOL};
use convlab::ops::*;
use convlab::{Padding, PaddingMode, Tensor};
use proptest::prelude::*;

/// Widths and heights that hit every block-size boundary of the kernels.
fn side() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=9,
        prop::sample::select(vec![7usize, 8, 9, 13, 15, 16, 17, 31, 63, 64, 65, 67, 71]),
    ]
}

fn check_all(
    x: &Tensor,
    wt: &Tensor,
    b: &Tensor,
    p: &Conv2dParams,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (want, go) = {
        let _f = force_conv_algo(ConvAlgo::Reference);
        let y = match conv2d(x, wt, Some(b), p) {
            Ok(y) => y,
            Err(_) => return Ok(()), // kernel larger than the input: not a fast-path case
        };
        let go = rand_tensor(y.shape(), seed ^ 7);
        let g = conv2d_backward(x, wt, true, &go, p).unwrap();
        ((y, g), go)
    };
    let gb = conv2d_backward_bias(&go).unwrap();
    prop_assert!(rel_err(&gb, want.1.grad_bias.as_ref().unwrap()) <= TOL);
    for algo in ConvAlgo::ALL.into_iter().chain([ConvAlgo::Auto]) {
        let what = |t: &str| format!("{algo:?} {t} x{:?} w{:?} {p:?}", x.shape(), wt.shape());
        if let Some(y) = forced(algo, || conv2d(x, wt, Some(b), p)) {
            prop_assert!(rel_err(&y, &want.0) <= TOL, "{}", what("forward"));
        }
        if let Some(gx) = forced(algo, || conv2d_backward_input(x.shape(), wt, &go, p)) {
            prop_assert!(
                rel_err(&gx, &want.1.grad_input) <= TOL,
                "{}",
                what("grad_input")
            );
        }
        if let Some(gw) = forced(algo, || conv2d_backward_weight(x, wt.shape(), &go, p)) {
            prop_assert!(
                rel_err(&gw, &want.1.grad_weight) <= TOL,
                "{}",
                what("grad_weight")
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_algorithm_equals_reference(
        n in 1usize..3, cin_g in 1usize..4, cout_g in 1usize..4, groups in 1usize..4,
        h in side(), w in side(), kh in 1usize..6, kw in 1usize..6,
        sh in 1usize..3, sw in 1usize..3, dh in 1usize..3, dw in 1usize..3,
        pads in proptest::array::uniform4(0usize..4), seed in any::<u64>(),
    ) {
        let (cin, cout) = (cin_g * groups, cout_g * groups);
        let x = rand_tensor(&[n, cin, h, w], seed);
        let wt = rand_tensor(&[cout, cin_g, kh, kw], seed ^ 1);
        let b = rand_tensor(&[cout], seed ^ 2);
        let p = Conv2dParams::new().stride((sh, sw)).dilation((dh, dw)).groups(groups).padding(pads);
        check_all(&x, &wt, &b, &p, seed)?;
    }

    /// Filters that are outer products (per channel `col * row^T`) in
    /// depthwise and single-channel layers: the separable path, forced and
    /// by default, against the reference, with strides, dilation, padding
    /// and padding modes. The weight gradient takes the shape's usual path.
    #[test]
    fn separable_filters_equal_reference(
        n in 1usize..3, c in 1usize..4, h in side(), w in side(),
        kh in 2usize..8, kw in 2usize..8, sh in 1usize..3, sw in 1usize..3,
        dh in 1usize..3, dw in 1usize..3, pads in proptest::array::uniform4(0usize..4),
        mode in prop::sample::select(vec![PaddingMode::Zeros, PaddingMode::Reflect, PaddingMode::Replicate]),
        seed in any::<u64>(),
    ) {
        let x = rand_tensor(&[n, c, h, w], seed);
        let col = rand_tensor(&[c, kh], seed ^ 1);
        let row = rand_tensor(&[c, kw], seed ^ 2);
        let taps: Vec<f32> = (0..c)
            .flat_map(|ch| {
                let (col, row) = (&col.data()[ch * kh..][..kh], &row.data()[ch * kw..][..kw]);
                col.iter().flat_map(move |a| row.iter().map(move |b| a * b))
            })
            .collect();
        let wt = Tensor::from_vec(taps, &[c, 1, kh, kw]).unwrap();
        let b = rand_tensor(&[c], seed ^ 3);
        let p = Conv2dParams::new()
            .stride((sh, sw))
            .dilation((dh, dw))
            .groups(c)
            .padding(pads)
            .padding_mode(mode);
        check_all(&x, &wt, &b, &p, seed)?;
    }

    /// Batches of at least one vector of images with small planes take the
    /// images-in-lanes forward (forced, and by default): partial last
    /// batches, dilation, asymmetric padding and bias.
    #[test]
    fn images_in_lanes_forward_equals_reference(
        n in 16usize..40, cin in 1usize..7, cout in 1usize..20,
        h in 4usize..17, w in 4usize..17, kh in 1usize..6, kw in 2usize..6,
        dh in 1usize..3, dw in 1usize..3,
        pads in proptest::array::uniform4(0usize..3), seed in any::<u64>(),
    ) {
        let x = rand_tensor(&[n, cin, h, w], seed);
        let wt = rand_tensor(&[cout, cin, kh, kw], seed ^ 1);
        let b = rand_tensor(&[cout], seed ^ 2);
        let p = Conv2dParams::new().dilation((dh, dw)).padding(pads);
        let want = {
            let _f = force_conv_algo(ConvAlgo::Reference);
            match conv2d(&x, &wt, Some(&b), &p) {
                Ok(y) => y,
                Err(_) => return Ok(()),
            }
        };
        for algo in [ConvAlgo::ImplicitGemmLanes, ConvAlgo::ImplicitGemm, ConvAlgo::Auto] {
            let y = forced(algo, || conv2d(&x, &wt, Some(&b), &p)).expect("computes every batch of 16");
            prop_assert!(rel_err(&y, &want) <= TOL, "{algo:?} x{:?} w{:?} {p:?}", x.shape(), wt.shape());
        }
    }

    #[test]
    fn depthwise_and_single_channel_3x3(
        n in 1usize..3, c in 1usize..5, h in side(), w in side(),
        pad in 0usize..3, depthwise in any::<bool>(), seed in any::<u64>(),
    ) {
        let (cin, groups) = if depthwise { (c, c) } else { (1, 1) };
        let x = rand_tensor(&[n, cin, h, w], seed);
        let wt = rand_tensor(&[cin, 1, 3, 3], seed ^ 1);
        let b = rand_tensor(&[cin], seed ^ 2);
        let p = Conv2dParams::new().groups(groups).padding(pad);
        check_all(&x, &wt, &b, &p, seed)?;
    }

    #[test]
    fn conv_transpose2d_every_algorithm(
        n in 1usize..3, cin in 1usize..4, cout in 1usize..4, h in 1usize..10, w in 1usize..20,
        k in 1usize..5, s in 1usize..3, pad in 0usize..2, seed in any::<u64>(),
    ) {
        let x = rand_tensor(&[n, cin, h, w], seed);
        let wt = rand_tensor(&[cin, cout, k, k], seed ^ 1);
        let p = ConvTranspose2dParams::new().stride(s).padding(pad);
        let want = {
            let _f = force_conv_algo(ConvAlgo::Reference);
            match conv_transpose2d(&x, &wt, None, &p) {
                Ok(y) => y,
                Err(_) => return Ok(()),
            }
        };
        for algo in ConvAlgo::ALL {
            if let Some(y) = forced(algo, || conv_transpose2d(&x, &wt, None, &p)) {
                prop_assert!(rel_err(&y, &want) <= TOL, "{algo:?} {p:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Batches big enough for the threaded paths: images split over rayon,
    /// per-thread weight-gradient accumulators, uneven splits.
    #[test]
    fn threaded_batches_equal_reference(
        n in 3usize..70, cin in 1usize..20, cout in 1usize..20, h in 1usize..12, w in 1usize..12,
        k in 1usize..4, s in 1usize..3, pad in 0usize..2, seed in any::<u64>(),
    ) {
        let x = rand_tensor(&[n, cin, h, w], seed);
        let wt = rand_tensor(&[cout, cin, k, k], seed ^ 1);
        let b = rand_tensor(&[cout], seed ^ 2);
        let p = Conv2dParams::new().stride(s).padding(pad);
        check_all(&x, &wt, &b, &p, seed)?;
    }
}

/// A batch of small planes large enough for the batched im2col path to
/// split its images over threads (an odd count: uneven parts), forward and
/// input gradient against the reference.
#[test]
fn threaded_batched_small_planes_match_reference() {
    let x = rand_tensor(&[361, 16, 4, 4], 9);
    let wt = rand_tensor(&[32, 16, 3, 3], 10);
    let b = rand_tensor(&[32], 11);
    let p = Conv2dParams::new().padding(1);
    check_all(&x, &wt, &b, &p, 12).unwrap();
}

/// Deep 3x3 layers on small planes (ResNet's last stage): few tile blocks,
/// so Winograd splits output-channel panels over tasks that share one input
/// transform made beforehand. The second shape's transformed filter is too
/// big to share (it is made per panel inside each task); it runs Winograd
/// alone, as every algorithm would include a slow FFT of 120k channel pairs.
#[test]
fn winograd_shared_input_transform_matches_reference() {
    let (x, wt, b) = (
        rand_tensor(&[2, 96, 7, 7], 21),
        rand_tensor(&[80, 96, 3, 3], 22),
        rand_tensor(&[80], 23),
    );
    check_all(&x, &wt, &b, &Conv2dParams::new().padding(1), 24).unwrap();
    let (x, wt) = (
        rand_tensor(&[1, 330, 3, 3], 25),
        rand_tensor(&[360, 330, 3, 3], 26),
    );
    let p = Conv2dParams::new().padding(1);
    let run = |algo| {
        forced(algo, || {
            let y = conv2d(&x, &wt, None, &p)?;
            let go = rand_tensor(y.shape(), 27);
            Ok((y, conv2d_backward_input(x.shape(), &wt, &go, &p)?))
        })
        .expect("Winograd computes both")
    };
    let (want, got) = (run(ConvAlgo::Reference), run(ConvAlgo::Winograd));
    assert!(rel_err(&got.0, &want.0) <= TOL && rel_err(&got.1, &want.1) <= TOL);
}

/// `algo`'s forward against the reference loop's, run from the calling
/// thread and from a worker of a two-thread pool (the recorder showing
/// `algo` ran).
fn forward_matches_reference(
    (x, wt, b): (&Tensor, &Tensor, Option<&Tensor>),
    p: &Conv2dParams,
    algo: ConvAlgo,
    what: &str,
) -> Tensor {
    let run = |algo| forced(algo, || conv2d(x, wt, b, p)).expect("the algorithm computes it");
    let want = run(ConvAlgo::Reference);
    let got = run(algo);
    assert!(
        rel_err(&got, &want) <= TOL,
        "{what}: {}",
        rel_err(&got, &want)
    );
    let got = on_two(|| run(algo));
    let err = rel_err(&got, &want);
    assert!(err <= TOL, "{what} on two: {err}");
    want
}

/// Winograd's point-major order (few tiles of many channels: each of the
/// 36 products over every panel of output channels in turn): one block of
/// 49 tiles and one panel; one block of 128 tiles whose three panels are
/// split over the two threads (each transforming its own panels'
/// filters); two blocks sharing one transformed filter.
#[test]
fn winograd_point_major_matches_reference() {
    winograd_layers_match_reference(
        &[(1, 200, 28, 40), (8, 256, 14, 100), (12, 256, 14, 100)],
        ConvAlgo::WinogradPointMajor,
        60,
    );
}

/// Layers dilated by 2 across only run Winograd on each row's two column
/// phases side by side; phase rows 4 or 8 wide (tensor rows of 8 and 16)
/// once left no zero column between the phases and were read as plain
/// rows: an unpadded input in the forward, the input gradient's output in
/// the backward (both found by `separable_filters_equal_reference`: a 1x6
/// image with replicate padding and dilation (1, 2), 39% error forward; a
/// 1x8 one, 8 wide once padded, in the input gradient).
#[test]
fn winograd_on_column_phase_pairs_matches_reference() {
    for (i, (shape, pads, mode)) in [
        ([1, 1, 1, 6], [0, 2, 2, 0], PaddingMode::Replicate),
        ([1, 1, 1, 8], [0, 2, 0, 0], PaddingMode::Replicate),
        ([1, 1, 3, 8], [0, 0, 0, 0], PaddingMode::Zeros),
        ([2, 3, 5, 16], [0, 0, 0, 0], PaddingMode::Zeros),
        ([1, 2, 3, 12], [0, 0, 0, 0], PaddingMode::Zeros),
    ]
    .into_iter()
    .enumerate()
    {
        let x = rand_tensor(&shape, 90 + i as u64);
        let wt = rand_tensor(&[2, shape[1], 3, 3], 91 + i as u64);
        let p = Conv2dParams::new()
            .dilation((1, 2))
            .padding(Padding::sides(pads[0], pads[1], pads[2], pads[3]))
            .padding_mode(mode);
        let y = forward_matches_reference(
            (&x, &wt, None),
            &p,
            ConvAlgo::Winograd,
            &format!("{shape:?}"),
        );
        let go = rand_tensor(y.shape(), 92 + i as u64);
        let grad_input = |algo| {
            forced(algo, || conv2d_backward_input(x.shape(), &wt, &go, &p))
                .expect("the algorithm computes it")
        };
        let err = rel_err(
            &grad_input(ConvAlgo::Winograd),
            &grad_input(ConvAlgo::Reference),
        );
        assert!(err <= TOL, "{shape:?} grad_input: {err}");
    }
}

/// 3x3 layers (padding 1) of shapes `(n, c_in, side, c_out)` on `algo` (a
/// Winograd) against the reference loop, seeds from `seed`.
fn winograd_layers_match_reference(
    shapes: &[(usize, usize, usize, usize)],
    algo: ConvAlgo,
    seed: u64,
) {
    for (i, &(n, c, side, cout)) in shapes.iter().enumerate() {
        let seed = seed + 4 * i as u64;
        let (x, wt) = (
            rand_tensor(&[n, c, side, side], seed),
            rand_tensor(&[cout, c, 3, 3], seed + 1),
        );
        let p = Conv2dParams::new().padding(1);
        forward_matches_reference((&x, &wt, None), &p, algo, &format!("{n}x{c}"));
    }
}

/// An output of 8 MiB or more written by the implicit GEMM's whole-vector
/// rows is stored around the caches (a stem-like 7x7 stride-2 layer on a
/// 512x512 image), wherever the system allocator puts it: against the
/// reference loop, from the calling thread and from a pool worker with the
/// rows split over two threads.
#[test]
fn implicit_gemm_streamed_output_matches_reference() {
    let (x, wt, b) = (
        rand_tensor(&[1, 3, 512, 512], 71),
        rand_tensor(&[32, 3, 7, 7], 72),
        rand_tensor(&[32], 73),
    );
    let p = Conv2dParams::new().stride(2).padding(3);
    let y = forward_matches_reference((&x, &wt, Some(&b)), &p, ConvAlgo::ImplicitGemm, "stem");
    assert_eq!(y.numel() * 4, 8 << 20);
}

/// The Winograd weight gradient over several blocks of tiles, each thread
/// summing its blocks into its own (unzeroed, pooled) accumulators, then
/// the threads' sums added: against the reference loop. 64 channels take
/// blocks of about 1 MiB of transforms (15 tile rows in 4 blocks here),
/// 128 the larger blocks of a large S (13 tile rows in 2 blocks).
#[test]
fn winograd_weight_gradient_over_blocks_matches_reference() {
    for (c, side) in [(64, 60), (128, 52)] {
        let (x, wt) = (
            rand_tensor(&[1, c, side, side], 41),
            rand_tensor(&[c, c, 3, 3], 42),
        );
        let p = Conv2dParams::new().padding(1);
        let go = rand_tensor(&[1, c, side, side], 43);
        let grad = |algo| {
            forced(algo, || conv2d_backward_weight(&x, wt.shape(), &go, &p))
                .expect("Winograd computes it")
        };
        let (want, got) = (grad(ConvAlgo::Reference), grad(ConvAlgo::Winograd));
        assert!(rel_err(&got, &want) <= TOL, "{c}: {}", rel_err(&got, &want));
        // Twice: the second call gets the first one's pooled buffers back.
        assert!(rel_err(&grad(ConvAlgo::Winograd), &want) <= TOL);
    }
}

/// Output rows of whole vectors (16 or 32 columns, a stem-like 7x7 stride-2
/// layer and a 3x3 one) are written straight to the output by the implicit
/// GEMM, row by row, with a narrower last piece and bias; the rest of a
/// flat row is dropped.
#[test]
fn implicit_gemm_whole_vector_rows_match_reference() {
    let cases = [
        (
            [2, 3, 64, 64],
            [20, 3, 7, 7],
            Conv2dParams::new().stride(2).padding(3),
        ),
        (
            [1, 5, 96, 96],
            [7, 5, 7, 7],
            Conv2dParams::new().stride(2).padding(3),
        ),
        ([2, 4, 16, 16], [9, 4, 3, 3], Conv2dParams::new().padding(1)),
    ];
    for (i, (xs, ws, p)) in cases.into_iter().enumerate() {
        let s = 30 + 4 * i as u64;
        let (x, wt, b) = (
            rand_tensor(&xs, s),
            rand_tensor(&ws, s + 1),
            rand_tensor(&[ws[0]], s + 2),
        );
        check_all(&x, &wt, &b, &p, s + 3).unwrap();
    }
}

/// Regression: a large single-channel image goes through the threaded
/// direct kernel (several rayon tasks) and must still match.
#[test]
fn threaded_single_channel_image_matches_reference() {
    let x = rand_tensor(&[1, 1, 131, 257], 5);
    let wt = rand_tensor(&[1, 1, 3, 3], 6);
    let b = rand_tensor(&[1], 7);
    let p = Conv2dParams::new().padding(1);
    check_all(&x, &wt, &b, &p, 8).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// The two-pass pooling kernels against the reference loops: any
    /// kernel, stride, padding, dilation (max), ceil mode, divisor rule (avg).
    #[test]
    fn pooling_fast_paths_equal_reference(
        n in 1usize..3, c in 1usize..4, h in side(), w in side(),
        k in 1usize..5, s in 1usize..4, pad in 0usize..3, d in 1usize..3,
        ceil in any::<bool>(), include_pad in any::<bool>(), seed in any::<u64>(),
    ) {
        use convlab::testing::pool as reference;
        let x = rand_tensor(&[n, c, h, w], seed);
        let mp = MaxPool2dParams::new(k).stride(s).padding(pad).dilation(d).ceil_mode(ceil);
        if let Ok((want, _)) = max_pool2d_with_indices(&x, &mp) {
            let got = max_pool2d(&x, &mp).unwrap();
            prop_assert_eq!(got.data(), want.data(), "{:?}", mp);
        }
        let ap = AvgPool2dParams::new(k).stride(s).padding(pad).ceil_mode(ceil)
            .count_include_pad(include_pad);
        if let Ok(got) = avg_pool2d(&x, &ap) {
            let g = ap.geometry("avg_pool2d", x.shape()).unwrap();
            let mut want = vec![0.0; got.numel()];
            reference::avg_pool_reference(&g, ap.divisor(), x.data(), &mut want);
            let want = Tensor::from_vec(want, got.shape()).unwrap();
            prop_assert!(rel_err(&got, &want) <= 1e-5, "{:?}", ap);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

    /// `AvgPool2d(2)` has its own kernel (16 outputs per step along a row,
    /// masked at the row's end): rows of 1 to 40 outputs (one to three
    /// steps, odd sides that drop a column), ceil mode (whose overhanging
    /// window must leave the kernel), every divisor rule, and inputs past
    /// the threaded-path threshold (1 << 16 floats).
    #[test]
    fn avg_pool_2x2_equals_reference(
        planes in prop_oneof![1usize..5, 60usize..70],
        h in 1usize..20, w in 1usize..82,
        ceil in any::<bool>(), include_pad in any::<bool>(),
        divisor in prop::option::of(1usize..9), seed in any::<u64>(),
    ) {
        use convlab::testing::pool as reference;
        let x = rand_tensor(&[1, planes, h, w], seed);
        let ap = AvgPool2dParams::new(2).ceil_mode(ceil).count_include_pad(include_pad)
            .divisor_override(divisor);
        if let Ok(got) = avg_pool2d(&x, &ap) {
            let g = ap.geometry("avg_pool2d", x.shape()).unwrap();
            let mut want = vec![0.0; got.numel()];
            reference::avg_pool_reference(&g, ap.divisor(), x.data(), &mut want);
            let want = Tensor::from_vec(want, got.shape()).unwrap();
            prop_assert!(rel_err(&got, &want) <= 1e-6, "{:?}", ap);
        }
    }
}

/// NaN wins a max-pool window wherever it is, as in PyTorch.
#[test]
fn max_pool_propagates_nan() {
    let mut v: Vec<f32> = (0..64).map(|i| i as f32).collect();
    v[9] = f32::NAN;
    let x = Tensor::from_vec(v, &[1, 1, 8, 8]).unwrap();
    let y = max_pool2d(&x, &MaxPool2dParams::new(2).stride(2)).unwrap();
    assert!(y.data()[0].is_nan());
    assert_eq!(y.data()[1], 11.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Pooling gradients (two-pass avg, plane-parallel max scatter) against
    /// the reference loops.
    #[test]
    fn pooling_backward_equals_reference(
        n in 1usize..3, c in 1usize..4, h in side(), w in side(),
        k in 1usize..5, s in 1usize..4, pad in 0usize..3,
        ceil in any::<bool>(), include_pad in any::<bool>(), seed in any::<u64>(),
    ) {
        use convlab::testing::pool as reference;
        let x = rand_tensor(&[n, c, h, w], seed);
        let ap = AvgPool2dParams::new(k).stride(s).padding(pad).ceil_mode(ceil)
            .count_include_pad(include_pad);
        if let Ok(y) = avg_pool2d(&x, &ap) {
            let go = rand_tensor(y.shape(), seed ^ 1);
            let got = avg_pool2d_backward(x.shape(), &go, &ap).unwrap();
            let g = ap.geometry("avg_pool2d", x.shape()).unwrap();
            let mut want = vec![0.0; x.numel()];
            reference::avg_pool_backward_reference(&g, ap.divisor(), go.data(), &mut want);
            let want = Tensor::from_vec(want, x.shape()).unwrap();
            prop_assert!(rel_err(&got, &want) <= 1e-5, "{:?}", ap);
        }
        let mp = MaxPool2dParams::new(k).stride(s).padding(pad).ceil_mode(ceil);
        if let Ok((y, idx)) = max_pool2d_with_indices(&x, &mp) {
            let go = rand_tensor(y.shape(), seed ^ 2);
            let got = max_pool2d_backward(x.shape(), &idx, &go).unwrap();
            let mut want = vec![0.0; x.numel()];
            let (ohw, hw) = (y.numel() / (n * c), h * w);
            reference::max_pool_backward_reference(hw, ohw, &idx, go.data(), &mut want);
            // The reference sums overlapping windows in f64, the scatter in f32.
            let want = Tensor::from_vec(want, x.shape()).unwrap();
            prop_assert!(rel_err(&got, &want) <= 1e-6, "{:?}", mp);
        }
    }
}

/// A pooling large enough to take the threaded paths, forward and backward.
#[test]
fn threaded_pooling_matches_reference() {
    use convlab::testing::pool as reference;
    let x = rand_tensor(&[2, 8, 67, 65], 11);
    let ap = AvgPool2dParams::new(3).stride(1).padding(1);
    let y = avg_pool2d(&x, &ap).unwrap();
    let go = rand_tensor(y.shape(), 12);
    let got = avg_pool2d_backward(x.shape(), &go, &ap).unwrap();
    let g = ap.geometry("avg_pool2d", x.shape()).unwrap();
    let mut want = vec![0.0; x.numel()];
    reference::avg_pool_backward_reference(&g, ap.divisor(), go.data(), &mut want);
    assert!(rel_err(&got, &Tensor::from_vec(want, x.shape()).unwrap()) <= 1e-5);
    let mp = MaxPool2dParams::new(3).stride(2).padding(1);
    let (want, idx) = max_pool2d_with_indices(&x, &mp).unwrap();
    assert_eq!(max_pool2d(&x, &mp).unwrap().data(), want.data());
    let go = rand_tensor(want.shape(), 13);
    let gx = max_pool2d_backward(x.shape(), &idx, &go).unwrap();
    let total: f32 = go.data().iter().sum();
    assert!((gx.data().iter().sum::<f32>() - total).abs() < 1e-2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

    /// Global average pooling (`output_size` 1) takes its own kernels:
    /// planes of up to 256 floats 16 at a time with aligned masked loads
    /// (AVX-512), bigger ones per plane in f32 lanes (blocks of 4096 into
    /// f64), spread back without a zero-fill. Plane counts below and past
    /// multiples of 16, planes of up to 3 blocks, and inputs past the
    /// threaded-path thresholds (1 << 14 floats called from a pool worker,
    /// 1 << 18 from any other thread), both ways.
    #[test]
    fn global_avg_pool_equals_reference(
        (planes, h) in prop_oneof![
            (1usize..40, 1usize..12),
            (1usize..4, 60usize..110),
            (2000usize..2100, 1usize..12),
        ],
        w in side(),
        seed in any::<u64>(),
    ) {
        use convlab::ops::pool::AdaptiveGeometry;
        use convlab::testing::pool as reference;
        let x = rand_tensor(&[1, planes, h, w], seed);
        let g = AdaptiveGeometry::new("t", x.shape(), 2, &[1, 1]).unwrap();
        let mut want = vec![0.0; planes];
        reference::adaptive_avg_pool_reference(&g, x.data(), &mut want);
        let want = Tensor::from_vec(want, &[1, planes, 1, 1]).unwrap();
        let go = rand_tensor(want.shape(), seed ^ 3);
        let mut want_gx = vec![0.0; x.numel()];
        reference::adaptive_avg_pool_backward_reference(&g, go.data(), &mut want_gx);
        let run = || {
            let y = adaptive_avg_pool2d(&x, 1).unwrap();
            (y, adaptive_avg_pool2d_backward(x.shape(), &go).unwrap())
        };
        for (got, gx) in [run(), on_two(run)] {
            prop_assert!(rel_err(&got, &want) <= 1e-6);
            prop_assert_eq!(gx.data(), &want_gx[..]);
        }
    }

    /// Max-pool backward checks indices while it scatters: an index
    /// outside its plane anywhere (either threading path) is an error
    /// naming it, never a panic or a partial result.
    #[test]
    fn max_pool_backward_rejects_any_bad_index(
        planes in prop_oneof![1usize..4, 30usize..40],
        side in prop_oneof![2usize..9, 60usize..70],
        at in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let x = rand_tensor(&[1, planes, side, side], seed);
        let (y, mut idx) = max_pool2d_with_indices(&x, &MaxPool2dParams::new(2)).unwrap();
        let go = rand_tensor(y.shape(), seed ^ 5);
        prop_assert!(max_pool2d_backward(x.shape(), &idx, &go).is_ok());
        let i = at.index(idx.len());
        idx[i] = side * side;
        let err = max_pool2d_backward(x.shape(), &idx, &go).unwrap_err().to_string();
        let expected = format!("index {} at grad_output position {i}", side * side);
        prop_assert!(err.contains(&expected), "{}", err);
    }
}

/// `f` on a worker of a two-thread pool, to run ops from a pool worker
/// (their threading thresholds differ there).
///
/// One test at a time uses the pool (as in determinism.rs): a worker
/// waiting inside one test's convolution may steal another test's
/// `install` job and run it nested on its own stack, where each test's
/// recorder also sees the other's passes (recorders belong to a thread,
/// not to a job). `forced` then panicked on the worker, whose captured
/// output belongs to neither test: under load, 1 run in about 20 of this
/// binary failed a Winograd test with no message.
fn on_two<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    static ONE_TEST_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a two-thread pool")
    });
    let _turn = ONE_TEST_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    pool.install(f)
}

/// Winograd with filters too large to share (each task transforms its own
/// panels a chunk of input channels at a time): resnet_3x3_512's 16 tiles
/// of 7x7 images, and a block of 2 images over two panels' worth of
/// channels.
#[test]
fn winograd_unshared_filters_match_reference() {
    winograd_layers_match_reference(
        &[(4, 384, 7, 384), (2, 448, 6, 272)],
        ConvAlgo::Winograd,
        80,
    );
}

/// Stride-2 forwards on Winograd over the input's phases, forced, against
/// the reference loop from the calling thread and from two threads.
/// F(3x3, 4x4): the stem's 7x7 kernel (padding 3: four taps per phase) on
/// odd and even planes, blocks of several tile rows and one cut short,
/// panels of output channels with a narrow last one; an 8x8 kernel with
/// padding 4 and a 6x5 one with asymmetric padding (phase kernels of 3
/// taps, padded to 4); an output of 8 MiB or more, stored around the
/// caches. F(4x4, 2x2): 3x3 and 4x4 kernels, panel-major (few channels) and
/// point-major (64 reduction channels and more) over several blocks.
#[test]
fn winograd_stride_two_matches_reference() {
    // (n, c_in, h, w, c_out, kernel, padding)
    type Layer = (
        usize,
        usize,
        usize,
        usize,
        usize,
        (usize, usize),
        [usize; 4],
    );
    let shapes: [Layer; 9] = [
        (2, 3, 45, 37, 20, (7, 7), [3, 3, 3, 3]),
        (1, 5, 64, 70, 33, (7, 7), [3, 3, 3, 3]),
        (3, 2, 30, 29, 16, (8, 8), [4, 4, 4, 4]),
        (2, 4, 23, 31, 17, (6, 5), [2, 1, 3, 0]),
        (2, 3, 512, 512, 32, (7, 7), [3, 3, 3, 3]),
        (2, 3, 33, 35, 21, (3, 3), [1, 1, 1, 1]),
        (3, 16, 30, 28, 40, (3, 3), [1, 1, 1, 1]),
        (2, 32, 57, 56, 24, (3, 3), [0, 1, 1, 0]),
        (1, 20, 26, 22, 18, (4, 4), [2, 2, 2, 2]),
    ];
    for (i, &(n, c, h, w, cout, (kh, kw), pads)) in shapes.iter().enumerate() {
        let seed = 90 + 3 * i as u64;
        let (x, wt, b) = (
            rand_tensor(&[n, c, h, w], seed),
            rand_tensor(&[cout, c, kh, kw], seed + 1),
            rand_tensor(&[cout], seed + 2),
        );
        let p = Conv2dParams::new().stride(2).padding(pads);
        let what = format!("{n}x{c}x{h}x{w} -> {cout}, {kh}x{kw} {pads:?}");
        let algo = if kh.max(kw) > 4 {
            ConvAlgo::WinogradStride2F3x4
        } else {
            ConvAlgo::WinogradStride2F4x2
        };
        forward_matches_reference((&x, &wt, Some(&b)), &p, algo, &what);
    }
}
