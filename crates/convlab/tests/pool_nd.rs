//! The pooling family over one, two and three spatial axes against the
//! reference loops of `convlab::testing::pool`, on random small shapes and
//! parameters (valid or not: what the op refuses is skipped, what it
//! accepts must match): max (values, indices, gradient), average (every
//! divisor rule), power-average, adaptive, max unpooling and fractional
//! max pooling, batched and unbatched.

mod common;

use common::{rand_tensor, rel_err};
use convlab::ops::pool::*;
use convlab::testing::pool as reference;
use convlab::Tensor;
use proptest::prelude::*;

/// `[n, c, *spatial]` or, one time in three, the unbatched `[c, *spatial]`.
fn shape_of(batched: bool, n: usize, c: usize, spatial: &[usize]) -> Vec<usize> {
    let lead = if batched { vec![n, c] } else { vec![c] };
    lead.into_iter().chain(spatial.iter().copied()).collect()
}

fn close(got: &Tensor, want: &[f32], tol: f32) -> Result<(), TestCaseError> {
    let want = Tensor::from_vec(want.to_vec(), got.shape()).unwrap();
    let e = rel_err(got, &want);
    prop_assert!(e <= tol, "relative error {e}");
    Ok(())
}

/// One rank's max, average and power-average pooling against the
/// references, forward and backward.
#[allow(clippy::too_many_arguments)]
fn check_sliding<const N: usize>(
    shape: &[usize],
    k: [i64; N],
    s: [i64; N],
    p: [i64; N],
    d: [i64; N],
    ceil: bool,
    include_pad: bool,
    divisor: Option<i64>,
    seed: u64,
) -> Result<(), TestCaseError> {
    let x = rand_tensor(shape, seed);
    let mp = MaxPoolParams::<N>::new(k)
        .stride(s)
        .padding(p)
        .dilation(d)
        .ceil_mode(ceil);
    if let Ok((y, idx)) = max_pool_with_indices(&x, &mp) {
        let g = mp.geometry("t", x.shape()).unwrap();
        let (mut want, mut want_idx) = (vec![0.0; y.numel()], vec![0; y.numel()]);
        reference::max_pool_reference(&g, x.data(), &mut want, &mut want_idx);
        prop_assert_eq!(y.data(), &want[..], "{:?}", mp);
        prop_assert_eq!(&idx, &want_idx);
        let plain = max_pool(&x, &mp).unwrap();
        prop_assert_eq!(plain.data(), &want[..]);
        let go = rand_tensor(y.shape(), seed ^ 1);
        let gx = max_pool_backward::<N>(x.shape(), &idx, &go).unwrap();
        let mut want = vec![0.0; x.numel()];
        reference::max_pool_backward_reference(
            g.plane_len(),
            g.out_plane_len(),
            &idx,
            go.data(),
            &mut want,
        );
        close(&gx, &want, 1e-6)?;
    }
    let ap = AvgPoolParams::<N>::new(k)
        .stride(s)
        .padding(p)
        .ceil_mode(ceil)
        .count_include_pad(include_pad)
        .divisor_override(divisor);
    if let Ok(y) = avg_pool(&x, &ap) {
        let g = ap.geometry("t", x.shape()).unwrap();
        let mut want = vec![0.0; y.numel()];
        reference::avg_pool_reference(&g, ap.divisor(), x.data(), &mut want);
        close(&y, &want, 1e-5)?;
        let go = rand_tensor(y.shape(), seed ^ 2);
        let gx = avg_pool_backward(x.shape(), &go, &ap).unwrap();
        let mut want = vec![0.0; x.numel()];
        reference::avg_pool_backward_reference(&g, ap.divisor(), go.data(), &mut want);
        close(&gx, &want, 1e-5)?;
    }
    // Positive inputs: a fractional 1/p of a negative sum is NaN.
    let xp = x.map(|v| v.abs() + 0.1);
    for norm in [1.0, 2.0, 3.0, 2.5, f64::INFINITY, f64::NEG_INFINITY] {
        let lp = LpPoolParams::<N>::new(norm, k).stride(s).ceil_mode(ceil);
        if let Ok(y) = lp_pool(&xp, &lp) {
            let g = lp.geometry("t", x.shape()).unwrap();
            let mut want = vec![0.0; y.numel()];
            reference::lp_pool_reference(&g, norm, xp.data(), &mut want);
            close(&y, &want, 1e-4)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pools_1d_equal_reference(
        batched in any::<bool>(), n in 1usize..3, c in 1usize..4, l in 1usize..40,
        k in 1i64..6, s in 1i64..4, p in 0i64..3, d in 1i64..3,
        ceil in any::<bool>(), include_pad in any::<bool>(),
        divisor in prop::option::of(-3i64..5), seed in any::<u64>(),
    ) {
        let shape = shape_of(batched, n, c, &[l]);
        check_sliding::<1>(&shape, [k], [s], [p], [d], ceil, include_pad, divisor, seed)?;
    }

    #[test]
    fn pools_2d_equal_reference(
        batched in any::<bool>(), n in 1usize..3, c in 1usize..3, h in 1usize..12, w in 1usize..20,
        k in (1i64..5, 1i64..5), s in (1i64..4, 1i64..4), p in (0i64..3, 0i64..3), d in (1i64..3, 1i64..3),
        ceil in any::<bool>(), include_pad in any::<bool>(),
        divisor in prop::option::of(1i64..5), seed in any::<u64>(),
    ) {
        let shape = shape_of(batched, n, c, &[h, w]);
        check_sliding::<2>(&shape, [k.0, k.1], [s.0, s.1], [p.0, p.1], [d.0, d.1], ceil, include_pad, divisor, seed)?;
    }

    #[test]
    fn pools_3d_equal_reference(
        batched in any::<bool>(), n in 1usize..3, c in 1usize..3,
        dd in 1usize..7, h in 1usize..8, w in 1usize..18,
        k in (1i64..4, 1i64..4, 1i64..4), s in (1i64..3, 1i64..3, 1i64..3),
        p in (0i64..2, 0i64..2, 0i64..2), d in (1i64..3, 1i64..3, 1i64..3),
        ceil in any::<bool>(), include_pad in any::<bool>(),
        divisor in prop::option::of(1i64..5), seed in any::<u64>(),
    ) {
        let shape = shape_of(batched, n, c, &[dd, h, w]);
        check_sliding::<3>(&shape, [k.0, k.1, k.2], [s.0, s.1, s.2], [p.0, p.1, p.2], [d.0, d.1, d.2], ceil, include_pad, divisor, seed)?;
    }

    /// Adaptive pooling of every rank, output sizes below and above the
    /// input's (bins then repeat elements).
    #[test]
    fn adaptive_pools_equal_reference(
        rank in 1usize..4, batched in any::<bool>(), c in 1usize..3,
        lens in prop::array::uniform3(1usize..9), outs in prop::array::uniform3(0usize..11),
        seed in any::<u64>(),
    ) {
        let spatial = &lens[3 - rank..];
        let shape = shape_of(batched, 2, c, spatial);
        let x = rand_tensor(&shape, seed);
        let out = &outs[3 - rank..];
        let (y, idx) = match rank {
            1 => adaptive_max_pool::<1>(&x, [out[0]]),
            2 => adaptive_max_pool::<2>(&x, [out[0], out[1]]),
            _ => adaptive_max_pool::<3>(&x, [out[0], out[1], out[2]]),
        }.unwrap();
        let ya = match rank {
            1 => adaptive_avg_pool::<1>(&x, [out[0]]),
            2 => adaptive_avg_pool::<2>(&x, [out[0], out[1]]),
            _ => adaptive_avg_pool::<3>(&x, [out[0], out[1], out[2]]),
        }.unwrap();
        let g = AdaptiveGeometry::new("t", &shape, rank, out).unwrap();
        let (mut want, mut want_idx) = (vec![0.0; y.numel()], vec![0; y.numel()]);
        reference::adaptive_max_pool_reference(&g, x.data(), &mut want, &mut want_idx);
        prop_assert_eq!(y.data(), &want[..]);
        prop_assert_eq!(&idx, &want_idx);
        let mut want = vec![0.0; ya.numel()];
        reference::adaptive_avg_pool_reference(&g, x.data(), &mut want);
        close(&ya, &want, 1e-5)?;
        let go = rand_tensor(ya.shape(), seed ^ 3);
        let gx = match rank {
            1 => adaptive_avg_pool_backward::<1>(&shape, &go),
            2 => adaptive_avg_pool_backward::<2>(&shape, &go),
            _ => adaptive_avg_pool_backward::<3>(&shape, &go),
        }.unwrap();
        let mut want = vec![0.0; x.numel()];
        reference::adaptive_avg_pool_backward_reference(&g, go.data(), &mut want);
        close(&gx, &want, 1e-5)?;
    }

    /// Unpooling what max pooling returned gives back each window's
    /// maximum in place; the gradient gathers at the indices.
    #[test]
    fn max_unpool_equals_reference(
        batched in any::<bool>(), c in 1usize..3, lens in prop::array::uniform3(2usize..9),
        k in 1i64..4, s in 1i64..4, seed in any::<u64>(),
    ) {
        let shape = shape_of(batched, 2, c, &lens);
        let x = rand_tensor(&shape, seed);
        let mp = MaxPool3dParams::new(k).stride(s);
        let Ok((y, idx)) = max_pool_with_indices(&x, &mp) else { return Ok(()) };
        let up = MaxUnpool3dParams::new(k).stride(s);
        let out = max_unpool(&y, &idx, &up, Some(&lens.map(|v| v as i64))).unwrap();
        prop_assert_eq!(out.shape(), x.shape());
        let plane: usize = lens.iter().product();
        let mut want = vec![0.0; x.numel()];
        reference::max_unpool_reference(y.numel() / (x.numel() / plane), plane, &idx, y.data(), &mut want);
        prop_assert_eq!(out.data(), &want[..]);
        let gx = max_unpool_backward::<3>(y.shape(), &idx, &x).unwrap();
        // Gathering x at the maxima's indices gives the maxima back.
        prop_assert_eq!(gx.data(), y.data());
    }

    /// Fractional max pooling: PyTorch's intervals for any sample in
    /// `[0, 1)`, 2-D and 3-D.
    #[test]
    fn fractional_max_pool_equals_reference(
        rank in 2usize..4, batched in any::<bool>(), c in 1usize..3,
        lens in prop::array::uniform3(2usize..14), pool in prop::array::uniform3(1usize..4),
        outs in prop::array::uniform3(1usize..8), seed in any::<u64>(),
    ) {
        let spatial = &lens[3 - rank..];
        let shape = shape_of(batched, 2, c, spatial);
        let n = if batched { 2 } else { 1 };
        let x = rand_tensor(&shape, seed);
        let u = rand_tensor(&[n, c, rank], seed ^ 4).map(|v| (v + 1.0) / 2.0 * 0.999);
        let result = if rank == 2 {
            let p = FractionalMaxPool2dParams::with_output_size([pool[1], pool[2]], [outs[1], outs[2]]);
            fractional_max_pool(&x, &p, &u)
        } else {
            let p = FractionalMaxPool3dParams::with_output_size(pool, outs);
            fractional_max_pool(&x, &p, &u)
        };
        let Ok((y, idx)) = result else { return Ok(()) };
        let (mut len, mut out, mut k) = ([1; 3], [1; 3], [1; 3]);
        for a in 3 - rank..3 {
            (len[a], out[a], k[a]) = (lens[a], outs[a], pool[a]);
        }
        let (mut want, mut want_idx) = (vec![0.0; y.numel()], vec![0; y.numel()]);
        reference::fractional_max_pool_reference(rank, len, out, k, u.data(), x.data(), &mut want, &mut want_idx);
        prop_assert_eq!(y.data(), &want[..]);
        prop_assert_eq!(&idx, &want_idx);
    }
}
