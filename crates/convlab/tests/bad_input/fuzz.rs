//! Property-based fuzzing of the ops and readers (the stable twins of the
//! cargo-fuzz targets in fuzz/): arbitrary small shapes and parameters
//! (valid or not) and arbitrary bytes must never panic; whenever an op
//! accepts its arguments, the fast path equals the reference loop.

use crate::common::rand_tensor;
use convlab::io::{npy_from_bytes, safetensors_from_bytes};
use convlab::ops::*;
use convlab::{PaddingMode, Tensor};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn modes() -> impl Strategy<Value = PaddingMode> {
    prop_oneof![
        Just(PaddingMode::Zeros),
        Just(PaddingMode::Reflect),
        Just(PaddingMode::Replicate),
        Just(PaddingMode::Circular),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_never_panics_and_fast_equals_reference(
        n in 0usize..3, cin_g in 0usize..4, cout_g in 0usize..4, groups in 0usize..4,
        h in 0usize..9, w in 0usize..9, kh in 0usize..5, kw in 0usize..5,
        sh in 0usize..4, sw in 0usize..4, dh in 0usize..3, dw in 0usize..3,
        pads in proptest::array::uniform4(0usize..4), mode in modes(), seed in any::<u64>(),
    ) {
        let cin = cin_g * groups.max(1);
        let cout = cout_g * groups.max(1);
        let x = rand_tensor(&[n, cin, h, w], seed);
        let wt = rand_tensor(&[cout, cin_g, kh, kw], seed ^ 1);
        let b = rand_tensor(&[cout], seed ^ 2);
        let p = Conv2dParams::new().stride((sh, sw)).dilation((dh, dw)).groups(groups)
            .padding(pads).padding_mode(mode);
        let run = |algo| {
            let _forced = force_conv_algo(algo);
            catch_unwind(AssertUnwindSafe(|| conv2d(&x, &wt, Some(&b), &p)))
        };
        let fast = run(ConvAlgo::Auto);
        prop_assert!(fast.is_ok(), "conv2d panicked on {:?} {:?} {:?}", x.shape(), wt.shape(), p);
        let reference = run(ConvAlgo::Reference).unwrap();
        match (fast.unwrap(), reference) {
            (Ok(a), Ok(r)) => {
                let scale = r.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
                prop_assert!(a.max_abs_diff(&r).unwrap() <= 1e-5 * scale);
                // And its gradients, whenever the forward is valid.
                let g = rand_tensor(a.shape(), seed ^ 3);
                let grads = catch_unwind(AssertUnwindSafe(|| conv2d_backward(&x, &wt, true, &g, &p)));
                prop_assert!(matches!(grads, Ok(Ok(_))), "backward failed where forward worked: {:?}", p);
            }
            (Err(a), Err(r)) => prop_assert_eq!(a, r),
            (a, r) => prop_assert!(false, "algorithms disagree on validity: {:?} vs {:?}", a.err(), r.err()),
        }
    }

    #[test]
    fn conv_transpose2d_never_panics(
        n in 0usize..3, cin_g in 0usize..3, cout_g in 0usize..3, groups in 0usize..3,
        h in 0usize..6, w in 0usize..6, k in 0usize..4, s in 0usize..4, d in 0usize..3,
        pad in 0usize..4, op in 0usize..4, seed in any::<u64>(),
    ) {
        let x = rand_tensor(&[n, cin_g * groups.max(1), h, w], seed);
        let wt = rand_tensor(&[cin_g * groups.max(1), cout_g, k, k], seed ^ 1);
        let p = ConvTranspose2dParams::new().stride(s).dilation(d).padding(pad).output_padding(op).groups(groups);
        let r = catch_unwind(AssertUnwindSafe(|| {
            conv_transpose2d(&x, &wt, None, &p).map(|y| {
                let g = rand_tensor(y.shape(), seed ^ 2);
                conv_transpose2d_backward(&x, &wt, false, &g, &p)
            })
        }));
        prop_assert!(r.is_ok(), "panicked on {:?} {:?} {:?}", x.shape(), wt.shape(), p);
        if let Ok(Ok(grads)) = r {
            prop_assert!(grads.is_ok(), "backward failed where forward worked");
        }
    }

    #[test]
    fn pools_never_panic(
        n in 0usize..3, c in 0usize..3, h in 0usize..8, w in 0usize..8,
        kh in 0usize..4, kw in 0usize..4, s in 0usize..4, pad in 0usize..3, d in 0usize..3,
        ceil in any::<bool>(), include in any::<bool>(), div in proptest::option::of(0usize..3),
        oh in 0usize..5, ow in 0usize..5, seed in any::<u64>(),
    ) {
        let x = rand_tensor(&[n, c, h, w], seed);
        let mp = MaxPool2dParams::new((kh, kw)).stride(s).padding(pad).dilation(d).ceil_mode(ceil);
        let ap = AvgPool2dParams::new((kh, kw)).stride(s).padding(pad).ceil_mode(ceil)
            .count_include_pad(include).divisor_override(div);
        let up = UnfoldParams::new((kh, kw)).stride(s).padding(pad).dilation(d);
        let r = catch_unwind(AssertUnwindSafe(|| {
            if let Ok((y, idx)) = max_pool2d_with_indices(&x, &mp) {
                max_pool2d_backward(x.shape(), &idx, &y).unwrap();
                assert_eq!(max_pool2d(&x, &mp).unwrap(), y);
            }
            if let Ok(y) = avg_pool2d(&x, &ap) {
                avg_pool2d_backward(x.shape(), &y, &ap).unwrap();
            }
            if let Ok(y) = adaptive_avg_pool2d(&x, (oh, ow)) {
                adaptive_avg_pool2d_backward(x.shape(), &y).unwrap();
            }
            if let Ok((y, idx)) = adaptive_max_pool2d(&x, (oh, ow)) {
                adaptive_max_pool2d_backward(x.shape(), &idx, &y).unwrap();
            }
            if let Ok(cols) = unfold(&x, &up) {
                let back = fold(&cols, (h, w), &up).unwrap();
                assert_eq!(back.shape(), x.shape());
            }
        }));
        prop_assert!(r.is_ok(), "a pool panicked on {:?} {:?} {:?}", x.shape(), mp, ap);
    }

    #[test]
    fn readers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let r = catch_unwind(|| {
            let _ = npy_from_bytes(&bytes);
            let _ = safetensors_from_bytes(&bytes);
        });
        prop_assert!(r.is_ok());
    }

    #[test]
    fn readers_never_panic_on_mutated_valid_files(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let t = Tensor::arange(12.0).unwrap().reshape(&[3, 4]).unwrap();
        let mut npy = convlab::io::npy_to_bytes(&t);
        let i = pos.index(npy.len());
        npy[i] = byte;
        npy.truncate(cut.index(npy.len() + 1));
        let mut st = convlab::io::safetensors_to_bytes(&[("w", &t)]).unwrap();
        let j = pos.index(st.len());
        st[j] = byte;
        st.truncate(cut.index(st.len() + 1));
        let r = catch_unwind(|| {
            let _ = npy_from_bytes(&npy);
            let _ = safetensors_from_bytes(&st);
        });
        prop_assert!(r.is_ok());
    }
}

/// Empty channel counts on a batch of small planes, under every algorithm
/// (the batched im2col GEMM once sliced its empty column buffer and
/// panicked: found by the fuzz test above).
#[test]
fn empty_channels_on_batched_small_planes() {
    for (cin, cout) in [(0, 1), (1, 0), (0, 0), (0, 3)] {
        // Symmetric padding, and asymmetric (the input is padded first).
        for (k, pads) in [(1, [0, 0, 0, 0]), (3, [1, 1, 1, 1]), (1, [0, 1, 0, 0])] {
            let x = rand_tensor(&[3, cin, 8, 8], 1);
            let wt = rand_tensor(&[cout, cin, k, k], 2);
            let p = Conv2dParams::new().padding(pads);
            let want = {
                let _forced = force_conv_algo(ConvAlgo::Reference);
                conv2d(&x, &wt, None, &p).unwrap()
            };
            for algo in [ConvAlgo::Auto, ConvAlgo::Im2col, ConvAlgo::ImplicitGemm] {
                let _forced = force_conv_algo(algo);
                let got = conv2d(&x, &wt, None, &p).unwrap();
                assert_eq!(got.shape(), want.shape(), "{algo:?} cin {cin} cout {cout}");
                assert!(got.data().iter().all(|&v| v == 0.0));
                let b = rand_tensor(&[cout], 4);
                let with_bias = conv2d(&x, &wt, Some(&b), &p).unwrap();
                assert_eq!(with_bias.shape(), want.shape());
                let g = rand_tensor(got.shape(), 3);
                let grads = conv2d_backward(&x, &wt, false, &g, &p).unwrap();
                assert!(
                    grads.grad_input.data().iter().all(|&v| v == 0.0),
                    "{algo:?}"
                );
            }
        }
    }
}
