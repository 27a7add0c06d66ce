//! Properties of the resampling and padding ops on random shapes and
//! parameters (valid or not): nothing panics; whenever an op accepts its
//! arguments its fast path equals the reference loop of
//! `convlab::testing::resample`, forward and backward; results are
//! bit-identical at one and two threads.

use convlab::ops::*;
use convlab::testing::resample::*;
use convlab::{seeded_rng, Tensor};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed)).unwrap()
}

fn close(a: &Tensor, r: &Tensor) -> bool {
    let scale = r.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.shape() == r.shape() && a.max_abs_diff(r).unwrap() <= 2e-5 * scale
}

fn modes() -> impl Strategy<Value = InterpolateMode> {
    prop_oneof![
        Just(InterpolateMode::Nearest),
        Just(InterpolateMode::NearestExact),
        Just(InterpolateMode::Linear),
        Just(InterpolateMode::Bilinear),
        Just(InterpolateMode::Bicubic),
        Just(InterpolateMode::Trilinear),
        Just(InterpolateMode::Area),
    ]
}

fn pad_modes() -> impl Strategy<Value = PadMode> {
    prop_oneof![
        Just(PadMode::Constant(0.0)),
        Just(PadMode::Constant(-1.5)),
        Just(PadMode::Reflect),
        Just(PadMode::Replicate),
        Just(PadMode::Circular),
    ]
}

/// A pool of `threads` threads running `f`.
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn interpolate_never_panics_and_equals_the_reference(
        rank in 2usize..7, n in 0usize..3, c in 0usize..3,
        dims in proptest::collection::vec(0usize..9, 3), outs in proptest::collection::vec(0usize..13, 3),
        use_scale in any::<bool>(), scales in proptest::collection::vec(0.2f64..3.5, 3),
        mode in modes(), align in proptest::option::of(any::<bool>()),
        recompute in proptest::option::of(any::<bool>()), antialias in any::<bool>(), seed in any::<u64>(),
    ) {
        let spatial = rank.saturating_sub(2);
        let mut shape = vec![n, c];
        shape.extend_from_slice(&dims[..spatial.min(3)]);
        shape.truncate(rank);
        let x = rand_tensor(&shape, seed);
        let mut p = InterpolateParams::new(mode);
        p = if use_scale {
            p.scale_factor(scales[..spatial.min(3)].to_vec())
        } else {
            p.size(outs[..spatial.min(3)].to_vec())
        };
        p.align_corners = align;
        p.recompute_scale_factor = recompute;
        p.antialias = antialias;
        let fast = catch_unwind(AssertUnwindSafe(|| interpolate(&x, &p)));
        prop_assert!(fast.is_ok(), "interpolate panicked on {:?} {:?}", x.shape(), p);
        let reference = interpolate_reference(&x, &p);
        match (fast.unwrap(), reference) {
            (Ok(a), Ok(r)) => {
                prop_assert!(close(&a, &r), "forward {:?} {:?}", x.shape(), p);
                let g = rand_tensor(a.shape(), seed ^ 1);
                let gx = interpolate_backward(&g, x.shape(), &p).unwrap();
                let gr = interpolate_backward_reference(&g, x.shape(), &p).unwrap();
                prop_assert!(close(&gx, &gr), "backward {:?} {:?}", x.shape(), p);
            }
            (Err(a), Err(r)) => prop_assert_eq!(a.to_string().replace("_reference", ""), r.to_string().replace("_reference", "")),
            (a, r) => prop_assert!(false, "disagree on validity: {:?} vs {:?}", a.err(), r.err()),
        }
    }

    #[test]
    fn pad_never_panics_and_equals_the_reference(
        shape in proptest::collection::vec(0usize..6, 1..6),
        pads in proptest::collection::vec(-4i64..6, 0..9), mode in pad_modes(), seed in any::<u64>(),
    ) {
        let x = rand_tensor(&shape, seed);
        let fast = catch_unwind(AssertUnwindSafe(|| pad(&x, &pads, mode)));
        prop_assert!(fast.is_ok(), "pad panicked on {:?} {:?} {:?}", shape, pads, mode);
        if let Ok(y) = fast.unwrap() {
            let r = pad_reference(&x, &pads, mode).unwrap();
            prop_assert_eq!(y.data(), r.data());
            let g = rand_tensor(y.shape(), seed ^ 1);
            let gx = pad_backward(&g, &shape, &pads, mode).unwrap();
            let gr = pad_backward_reference(&g, &shape, &pads, mode).unwrap();
            prop_assert!(close(&gx, &gr), "backward {:?} {:?} {:?}", shape, pads, mode);
        }
    }
}

fn grid_modes() -> impl Strategy<Value = GridSampleParams> {
    (0usize..3, 0usize..3, any::<bool>()).prop_map(|(m, p, align)| {
        GridSampleParams::default()
            .mode(
                [
                    GridSampleMode::Bilinear,
                    GridSampleMode::Nearest,
                    GridSampleMode::Bicubic,
                ][m],
            )
            .padding_mode(
                [
                    GridSamplePadding::Zeros,
                    GridSamplePadding::Border,
                    GridSamplePadding::Reflection,
                ][p],
            )
            .align_corners(align)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn grid_sample_never_panics_and_equals_the_reference(
        rank in 3usize..7, n in 0usize..3, c in 0usize..3, dims in proptest::collection::vec(0usize..6, 3),
        out in proptest::collection::vec(0usize..4, 3), last in 1usize..4, spread in 0.5f32..4.0,
        grid_batch in 0usize..3, p in grid_modes(), seed in any::<u64>(), valid in 0usize..4,
    ) {
        // Three cases in four are shapes PyTorch accepts: sampling, not
        // only its errors, gets tested.
        let (rank, n, c, last, grid_batch) = if valid > 0 {
            (4 + rank % 2, n.max(1), c.max(1), 2 + rank % 2, 0)
        } else {
            (rank, n, c, last, grid_batch)
        };
        let dims: Vec<usize> = dims.iter().map(|&d| if valid > 0 { d.max(1) } else { d }).collect();
        let mut xs = vec![n, c];
        xs.extend_from_slice(&dims);
        xs.truncate(rank);
        let mut gs = vec![if grid_batch == 2 { n + 1 } else { n }];
        gs.extend_from_slice(&out[..rank.saturating_sub(2).min(3)]);
        gs.push(last);
        let x = rand_tensor(&xs, seed);
        let grid = rand_tensor(&gs, seed ^ 1).scale(spread);
        let fast = catch_unwind(AssertUnwindSafe(|| grid_sample(&x, &grid, &p)));
        prop_assert!(fast.is_ok(), "grid_sample panicked on {:?} {:?} {:?}", xs, gs, p);
        if let Ok(y) = fast.unwrap() {
            let g = rand_tensor(y.shape(), seed ^ 2);
            let (r, grads) = grid_sample_reference(&x, &grid, Some(&g), &p).unwrap();
            prop_assert!(close(&y, &r), "forward {:?} {:?} {:?}", xs, gs, p);
            let (gx, gg) = grid_sample_backward(&x, &grid, &g, &p).unwrap();
            let (rx, rg) = grads.unwrap();
            prop_assert!(close(&gx, &rx), "input gradient {:?} {:?} {:?}", xs, gs, p);
            // The reference's bicubic derivative is a central difference.
            let scale = rg.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
            prop_assert!(gg.max_abs_diff(&rg).unwrap() <= 1e-4 * scale, "grid gradient {:?} {:?} {:?}", xs, gs, p);
        }
    }

    #[test]
    fn shuffles_never_panic_and_equal_the_reference(
        shape in proptest::collection::vec(0usize..7, 1..6), r in 0usize..4, seed in any::<u64>(),
    ) {
        let x = rand_tensor(&shape, seed);
        for up in [true, false] {
            let fast = catch_unwind(AssertUnwindSafe(|| if up { pixel_shuffle(&x, r) } else { pixel_unshuffle(&x, r) }));
            prop_assert!(fast.is_ok(), "pixel shuffle panicked on {:?} {}", shape, r);
            if let Ok(y) = fast.unwrap() {
                let want = pixel_shuffle_reference(&x, r, up).unwrap();
                prop_assert_eq!(y.data(), want.data());
            }
        }
        let fast = catch_unwind(AssertUnwindSafe(|| channel_shuffle(&x, r)));
        prop_assert!(fast.is_ok(), "channel_shuffle panicked on {:?} {}", shape, r);
        if let Ok(y) = fast.unwrap() {
            let back = channel_shuffle_backward(&y, r).unwrap();
            prop_assert_eq!(back.data(), x.data());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// Planes split over threads, and fixed-order sums: the same bits at any
    /// thread count.
    #[test]
    fn resampling_is_bit_identical_at_one_and_two_threads(
        mode in modes(), h in 9usize..40, w in 9usize..40, oh in 5usize..60, ow in 5usize..60, seed in any::<u64>(),
    ) {
        let rank = match mode {
            InterpolateMode::Linear => 3,
            InterpolateMode::Trilinear => 5,
            _ => 4,
        };
        let mut shape = vec![3, 37, h, w];
        shape.truncate(rank);
        if rank == 5 {
            shape = vec![2, 5, 7, h, w];
        }
        let x = rand_tensor(&shape, seed);
        let out: Vec<usize> = match rank { 3 => vec![ow], 4 => vec![oh, ow], _ => vec![5, oh, ow] };
        let p = InterpolateParams::new(mode).size(out);
        let one = on_threads(1, || interpolate(&x, &p).unwrap());
        let two = on_threads(2, || interpolate(&x, &p).unwrap());
        prop_assert_eq!(one.data(), two.data());
        let g = rand_tensor(one.shape(), seed ^ 1);
        let one = on_threads(1, || interpolate_backward(&g, x.shape(), &p).unwrap());
        let two = on_threads(2, || interpolate_backward(&g, x.shape(), &p).unwrap());
        prop_assert_eq!(one.data(), two.data());
        let pads = [3, -2, 4, 5];
        let xr = rand_tensor(&[4, 40, h, w], seed);
        let one = on_threads(1, || pad(&xr, &pads, PadMode::Reflect).unwrap());
        let two = on_threads(2, || pad(&xr, &pads, PadMode::Reflect).unwrap());
        prop_assert_eq!(one.data(), two.data());
        let one = on_threads(1, || pad_backward(&one, xr.shape(), &pads, PadMode::Reflect).unwrap());
        let two = on_threads(2, || pad_backward(&two, xr.shape(), &pads, PadMode::Reflect).unwrap());
        prop_assert_eq!(one.data(), two.data());
    }
}
