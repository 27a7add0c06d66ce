//! The same inputs give the same bits at any thread count: every
//! convolution pass (forward, input and weight gradient, and
//! conv_transpose2d's forward) under every algorithm that computes it, on
//! smaller versions of the bench suite's layers, run in rayon pools of 1,
//! 2, 3 and 7 threads. Thread counts change how work is scheduled, never
//! the order of a sum.

mod common;

use common::{forced, rand_tensor};
use convlab::ops::*;
use convlab::Tensor;

/// Pools of the thread counts compared.
fn pools() -> &'static [(usize, rayon::ThreadPool)] {
    static POOLS: std::sync::OnceLock<Vec<(usize, rayon::ThreadPool)>> = std::sync::OnceLock::new();
    POOLS.get_or_init(|| {
        [1, 2, 3, 7]
            .into_iter()
            .map(|t| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .expect("a pool");
                (t, pool)
            })
            .collect()
    })
}

/// `f` under `algo` in each pool: `None` when `algo` cannot compute it,
/// else the same bits from every pool (panics naming `what` otherwise).
///
/// One test at a time uses the pools: a worker waiting inside one test's
/// convolution may steal another test's `install` job and run it nested on
/// its own stack, where that test's recorder would also see the first
/// test's passes (recorders belong to a thread, not to a job).
fn same_bits(what: &str, algo: ConvAlgo, f: impl Fn() -> convlab::Result<Tensor> + Sync) -> bool {
    static ONE_TEST_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_TEST_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut first: Option<Vec<u32>> = None;
    for (threads, pool) in pools() {
        let Some(t) = pool.install(|| forced(algo, &f)) else {
            return false;
        };
        let bits: Vec<u32> = t.data().iter().map(|v| v.to_bits()).collect();
        match &first {
            None => first = Some(bits),
            Some(want) => {
                let differ = want.iter().zip(&bits).filter(|(a, b)| a != b).count();
                assert_eq!(
                    differ,
                    0,
                    "{what} on {}: {differ} of {} values differ at {threads} threads",
                    algo.name(),
                    bits.len()
                );
            }
        }
    }
    true
}

/// Every pass of one layer under each of `algos` (each must compute one
/// at least); adds the (algorithm, pass) pairs computed to `covered`.
fn layer(
    (name, x, w, p): (&str, [usize; 4], [usize; 4], Conv2dParams),
    algos: &[ConvAlgo],
    seed: u64,
    covered: &mut Vec<(ConvAlgo, ConvPass)>,
) {
    let x = rand_tensor(&x, seed);
    let wt = rand_tensor(&w, seed + 1);
    let y = conv2d(&x, &wt, None, &p).expect("a valid layer");
    let gy = rand_tensor(y.shape(), seed + 2);
    for &algo in algos {
        let runs = [
            same_bits(&format!("{name} forward"), algo, || {
                conv2d(&x, &wt, None, &p)
            }),
            same_bits(&format!("{name} input gradient"), algo, || {
                conv2d_backward_input(x.shape(), &wt, &gy, &p)
            }),
            same_bits(&format!("{name} weight gradient"), algo, || {
                conv2d_backward_weight(&x, wt.shape(), &gy, &p)
            }),
        ];
        assert!(
            runs.iter().any(|&r| r),
            "{name}: {} computed no pass",
            algo.name()
        );
        for (pass, r) in ConvPass::ALL.iter().zip(runs) {
            if r {
                covered.push((algo, *pass));
            }
        }
    }
}

/// Each layer under the algorithms it stands for in the suite (and the
/// ones whose thread splits it exercises); together every algorithm but
/// the (single-threaded) reference loops, every pass each can compute.
#[test]
fn suite_like_layers_give_the_same_bits_at_any_thread_count() {
    use ConvAlgo::*;
    let pad = |k: usize| Conv2dParams::new().padding(k / 2);
    let s2 = |k: usize| Conv2dParams::new().padding(k / 2).stride(2);
    let mut covered = Vec::new();
    let mut run = |l, algos: &[ConvAlgo], seed| layer(l, algos, seed, &mut covered);
    // resnet_3x3_64 and _256: Winograd in both orders, its weight gradient
    // over blocks in parts; the GEMMs.
    let gemms = [Im2col, ImplicitGemm];
    let wino = [Winograd, WinogradPointMajor, Im2col, ImplicitGemm];
    run(
        ("3x3 64", [2, 64, 28, 28], [64, 64, 3, 3], pad(3)),
        &wino,
        1,
    );
    run(
        ("3x3 256", [2, 256, 14, 14], [256, 256, 3, 3], pad(3)),
        &wino,
        2,
    );
    // resnet_3x3_512: the weight gradient of one block split by channels.
    run(
        ("3x3 512", [1, 384, 7, 7], [384, 384, 3, 3], pad(3)),
        &[Winograd],
        3,
    );
    // The stem and resnet_3x3_s2_128: both stride-2 Winograd tilings;
    // batched im2col over images.
    let stem = [WinogradStride2F3x4, Im2col, ImplicitGemm];
    run(("stem", [1, 3, 96, 96], [32, 3, 7, 7], s2(7)), &stem, 4);
    let s2_algos = [WinogradStride2F4x2, Im2colBatched, Im2col, ImplicitGemm];
    run(
        ("3x3 s2", [2, 64, 28, 28], [128, 64, 3, 3], s2(3)),
        &s2_algos,
        5,
    );
    // bottleneck_1x1: pointwise GEMMs.
    run(
        ("1x1", [2, 256, 28, 28], [64, 256, 1, 1], pad(1)),
        &gemms,
        6,
    );
    // mobilenet_dw_3x3: direct (its weight gradient over rows in parts),
    // the GEMMs over groups.
    let dw = (pad(3).groups(32), [Direct, Im2col, ImplicitGemm]);
    run(
        ("depthwise", [2, 32, 56, 56], [32, 1, 3, 3], dw.0),
        &dw.1,
        7,
    );
    // dilated_3x3_d2: Winograd on the dilation phases.
    let dil = Conv2dParams::new().padding(2).dilation(2);
    run(("dilated", [2, 64, 28, 28], [64, 64, 3, 3], dil), &wino, 8);
    // lenet_c2 on a large batch: images in lanes, batched im2col split over
    // images, the small weight's gradient in image parts.
    let lenet = [ImplicitGemmLanes, Im2colBatched, Im2col, ImplicitGemm];
    run(
        ("lenet", [128, 6, 14, 14], [16, 6, 5, 5], pad(1)),
        &lenet,
        9,
    );
    // image_31x31, smaller: FFT and direct.
    run(
        ("31x31", [1, 1, 128, 128], [1, 1, 31, 31], pad(31)),
        &[Fft, Direct],
        10,
    );
    for algo in ConvAlgo::ALL {
        let passes = covered.iter().filter(|(a, _)| *a == algo).count();
        if ![Reference, Separable].contains(&algo) {
            assert!(passes > 0, "{} was not compared", algo.name());
        }
    }
}

/// Separable filters (Gaussian-like outer products) and conv_transpose2d's
/// forward (an input gradient) likewise.
#[test]
fn separable_filters_and_transposed_convolutions_too() {
    let x = rand_tensor(&[2, 3, 200, 160], 20);
    let taps = [1.0f32, 4.0, 6.0, 4.0, 1.0];
    let one: Vec<f32> = taps
        .iter()
        .flat_map(|a| taps.iter().map(move |b| a * b / 256.0))
        .collect();
    let wt = Tensor::from_vec(one.repeat(3), &[3, 1, 5, 5]).unwrap();
    let p = Conv2dParams::new().padding(2).groups(3);
    assert!(same_bits("separable", ConvAlgo::Separable, || {
        conv2d(&x, &wt, None, &p)
    }));
    let xt = rand_tensor(&[2, 64, 14, 14], 21);
    let wt = rand_tensor(&[64, 32, 3, 3], 22);
    let p = ConvTranspose2dParams::new()
        .stride(2)
        .padding(1)
        .output_padding(1);
    let mut computed = 0;
    for algo in ConvAlgo::ALL
        .into_iter()
        .filter(|&a| a != ConvAlgo::Reference)
    {
        if same_bits("transposed", algo, || conv_transpose2d(&xt, &wt, None, &p)) {
            computed += 1;
        }
    }
    assert!(computed >= 3, "{computed} algorithms computed");
}
