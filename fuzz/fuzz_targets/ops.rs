//! conv2d (every algorithm against the reference loop, forward and
//! backward), max/avg pooling (against their reference loops) and
//! conv_transpose2d on arbitrary small shapes and parameters, valid or not.
//! A rejected geometry must be rejected the same way by every algorithm; an
//! accepted one must give the reference's numbers. Any panic is a bug.
#![no_main]
use arbitrary::Arbitrary;
use convlab::testing::pool::{avg_pool_reference, max_pool_reference};
use convlab::ops::*;
use convlab::{seeded_rng, PaddingMode, Tensor};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Case {
    n: u8,
    cin_g: u8,
    cout_g: u8,
    groups: u8,
    h: u8,
    w: u8,
    kh: u8,
    kw: u8,
    stride: (u8, u8),
    dilation: (u8, u8),
    pads: [u8; 4],
    mode: u8,
    ceil: bool,
    include_pad: bool,
    divisor: Option<u8>,
    output_padding: u8,
    seed: u64,
}

/// Small values keep one run under a millisecond; 0 stays possible on purpose.
fn small(v: u8, m: u8) -> usize {
    usize::from(v % m)
}

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed)).unwrap()
}

fn close(a: &Tensor, r: &Tensor) -> bool {
    let scale = r.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.shape() == r.shape() && a.max_abs_diff(r).unwrap() <= 1e-4 * scale
}

fuzz_target!(|c: Case| {
    convlab::memory::set_max_bytes(64 << 20);
    let groups = small(c.groups, 4);
    let (cin_g, cout_g) = (small(c.cin_g, 4), small(c.cout_g, 4));
    let (n, h, w) = (small(c.n, 3), small(c.h, 12), small(c.w, 12));
    let (kh, kw) = (small(c.kh, 6), small(c.kw, 6));
    let stride = (small(c.stride.0, 4), small(c.stride.1, 4));
    let dilation = (small(c.dilation.0, 3), small(c.dilation.1, 3));
    let pads = c.pads.map(|p| small(p, 5));
    let mode = [
        PaddingMode::Zeros,
        PaddingMode::Reflect,
        PaddingMode::Replicate,
        PaddingMode::Circular,
    ][small(c.mode, 4)];
    let cin = cin_g * groups.max(1);
    let cout = cout_g * groups.max(1);
    let x = rand(&[n, cin, h, w], c.seed);

    // conv2d: every algorithm against the reference.
    let wt = rand(&[cout, cin_g, kh, kw], c.seed ^ 1);
    let b = rand(&[cout], c.seed ^ 2);
    let p = Conv2dParams::new()
        .stride(stride)
        .dilation(dilation)
        .groups(groups)
        .padding(pads)
        .padding_mode(mode);
    let run = |algo| {
        let _g = force_conv_algo(algo);
        conv2d(&x, &wt, Some(&b), &p)
    };
    let reference = run(ConvAlgo::Reference);
    // A forced algorithm that cannot compute a pass says so (and only then).
    let cannot = |r: &convlab::Result<Tensor>| {
        matches!(r, Err(convlab::Error::Param { param: "algorithm", .. }))
    };
    for algo in [ConvAlgo::Auto, ConvAlgo::Im2col, ConvAlgo::Direct] {
        match (run(algo), &reference) {
            (a, Ok(_)) if algo == ConvAlgo::Direct && cannot(&a) => {}
            (Ok(a), Ok(r)) => assert!(close(&a, r), "{algo:?} differs from reference: {p:?}"),
            (Err(a), Err(r)) => assert_eq!(&a, r),
            (a, r) => panic!("{algo:?} disagrees on validity: {:?} vs {:?}", a.err(), r),
        }
    }
    if let Ok(y) = &reference {
        let g = rand(y.shape(), c.seed ^ 3);
        let want = {
            let _g = force_conv_algo(ConvAlgo::Reference);
            conv2d_backward(&x, &wt, true, &g, &p).expect("backward of a valid forward")
        };
        for algo in [ConvAlgo::Im2col, ConvAlgo::Direct] {
            let _g = force_conv_algo(algo);
            let got = match conv2d_backward(&x, &wt, true, &g, &p) {
                Err(convlab::Error::Param { param: "algorithm", .. }) if algo == ConvAlgo::Direct => {
                    continue
                }
                got => got.expect("backward of a valid forward"),
            };
            assert!(close(&got.grad_input, &want.grad_input), "{algo:?} grad_input: {p:?}");
            assert!(close(&got.grad_weight, &want.grad_weight), "{algo:?} grad_weight: {p:?}");
        }
    }

    // Pooling: the fast paths against the reference loops.
    let (pk, ps, pp, pd) = ((kh, kw), stride, pads[0], dilation);
    let mp = MaxPool2dParams::new(pk)
        .stride(ps)
        .padding(pp)
        .dilation(pd)
        .ceil_mode(c.ceil);
    if let Ok(y) = max_pool2d(&x, &mp) {
        let g = mp.geometry("max_pool2d", x.shape()).expect("accepted geometry");
        let mut out = vec![0.0; y.numel()];
        let mut idx = vec![0usize; y.numel()];
        max_pool_reference(&g, x.data(), &mut out, &mut idx);
        let same = out
            .iter()
            .zip(y.data())
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        assert!(same, "max_pool2d differs from reference: {mp:?}");
        let (y2, i2) = max_pool2d_with_indices(&x, &mp).unwrap();
        max_pool2d_backward(x.shape(), &i2, &y2).unwrap();
    }
    let ap = AvgPool2dParams::new(pk)
        .stride(ps)
        .padding(pp)
        .ceil_mode(c.ceil)
        .count_include_pad(c.include_pad)
        .divisor_override(c.divisor.map(|d| small(d, 4)));
    if let Ok(y) = avg_pool2d(&x, &ap) {
        let g = ap.geometry("avg_pool2d", x.shape()).expect("accepted geometry");
        let mut out = vec![0.0; y.numel()];
        avg_pool_reference(&g, ap.divisor(), x.data(), &mut out);
        let r = Tensor::from_vec(out, y.shape()).unwrap();
        assert!(close(&y, &r), "avg_pool2d differs from reference: {ap:?}");
        avg_pool2d_backward(x.shape(), &y, &ap).unwrap();
    }

    // conv_transpose2d: forward and backward must not panic, and a valid
    // forward must have a valid backward.
    let wt_t = rand(&[cin, cout_g, kh, kw], c.seed ^ 4);
    let tp = ConvTranspose2dParams::new()
        .stride(stride)
        .dilation(dilation)
        .padding((pads[0], pads[1]))
        .output_padding(small(c.output_padding, 3))
        .groups(groups);
    if let Ok(y) = conv_transpose2d(&x, &wt_t, None, &tp) {
        let g = rand(y.shape(), c.seed ^ 5);
        conv_transpose2d_backward(&x, &wt_t, false, &g, &tp).expect("backward of a valid forward");
    }
});
