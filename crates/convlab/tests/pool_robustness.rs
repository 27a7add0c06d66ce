//! Pooling is deterministic and keeps non-finite values local:
//!
//! - every pooling op, forward and backward, gives the same bits on rayon
//!   pools of 1, 2, 3 and 7 threads and from outside any pool (shapes past
//!   every threading threshold);
//! - a NaN or an infinity reaches exactly the outputs whose window covers
//!   it (PyTorch's behaviour): every other output keeps its bits, and each
//!   covering output is NaN (max pooling propagates NaN; an average of a
//!   NaN is NaN) or infinite.

mod common;

use common::rand_tensor;
use convlab::ops::{self, AvgPool2dParams, MaxPool2dParams};
use convlab::Tensor;

/// A rayon pool of `threads` threads.
fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

/// A pooling forward under test.
type PoolFn<'a> = dyn Fn(&Tensor) -> Tensor + 'a;

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

/// `run` gives the same bits on pools of 1, 2, 3 and 7 threads as on the
/// calling thread (outside any pool).
fn same_bits_at_any_thread_count(what: &str, run: impl Fn() -> Vec<Vec<u32>> + Sync) {
    let want = run();
    for threads in [1, 2, 3, 7] {
        let got = pool(threads).install(&run);
        assert!(got == want, "{what}: bits differ at {threads} threads");
    }
}

#[test]
fn every_pool_is_deterministic_across_thread_counts() {
    // 2x24x61x67 = 196k floats: past the plane drivers' 64k threshold.
    let x = rand_tensor(&[2, 24, 61, 67], 1);
    let mp = MaxPool2dParams::new(3).stride(2).padding(1);
    let inside = MaxPool2dParams::new(2);
    let ap = AvgPool2dParams::new(3)
        .stride(2)
        .padding(1)
        .count_include_pad(false);
    let ap2 = AvgPool2dParams::new(2);
    same_bits_at_any_thread_count("max_pool2d", || {
        let mut out = vec![];
        for p in [&mp, &inside] {
            let y = ops::max_pool2d(&x, p).unwrap();
            let (yi, idx) = ops::max_pool2d_with_indices(&x, p).unwrap();
            let go = rand_tensor(y.shape(), 2);
            let gx = ops::max_pool2d_backward(x.shape(), &idx, &go).unwrap();
            out.extend([bits(&y), bits(&yi), bits(&gx)]);
            out.push(idx.iter().map(|&i| i as u32).collect());
        }
        out
    });
    same_bits_at_any_thread_count("avg_pool2d", || {
        let mut out = vec![];
        for p in [&ap, &ap2] {
            let y = ops::avg_pool2d(&x, p).unwrap();
            let go = rand_tensor(y.shape(), 3);
            let gx = ops::avg_pool2d_backward(x.shape(), &go, p).unwrap();
            out.extend([bits(&y), bits(&gx)]);
        }
        out
    });
    same_bits_at_any_thread_count("adaptive pools", || {
        let mut out = vec![];
        for size in [(5, 7), (1, 1)] {
            let y = ops::adaptive_avg_pool2d(&x, size).unwrap();
            let go = rand_tensor(y.shape(), 4);
            let gx = ops::adaptive_avg_pool2d_backward(x.shape(), &go).unwrap();
            let (ym, idx) = ops::adaptive_max_pool2d(&x, size).unwrap();
            let gm = ops::adaptive_max_pool2d_backward(x.shape(), &idx, &go).unwrap();
            out.extend([bits(&y), bits(&gx), bits(&ym), bits(&gm)]);
        }
        out
    });
}

/// Global average pooling splits planes in groups of 16 from the first
/// 64-byte aligned one, so each plane takes the same kernel at any split:
/// odd plane sizes (the unrolled and masked AVX-512 kernels and the
/// plane-by-plane loop) and inputs starting off a cache line.
#[test]
fn global_average_is_deterministic_at_any_alignment() {
    for hw in [49, 9, 50, 196] {
        let planes = 1100;
        let big = rand_tensor(&[planes * hw + 16], hw as u64);
        for offset in [0, 3, 7] {
            let x = Tensor::from_slice(&big.data()[offset..][..planes * hw], &[1, planes, hw, 1])
                .unwrap();
            same_bits_at_any_thread_count(&format!("global {hw} +{offset}"), || {
                let y = ops::adaptive_avg_pool2d(&x, 1).unwrap();
                let gx = ops::adaptive_avg_pool2d_backward(x.shape(), &y).unwrap();
                vec![bits(&y), bits(&gx)]
            });
        }
    }
}

/// The outputs of a 2-D pooling (`[1, 1, oh, ow]` of a `[1, 1, h, w]`
/// input) whose windows cover input `(r, c)`: rows `oy` with
/// `oy*s - p <= r < oy*s - p + k` (dilation 1), columns likewise.
fn covering(r: usize, c: usize, oh: usize, ow: usize, k: usize, s: usize, p: usize) -> Vec<usize> {
    let hits = |i: usize, o: usize| (o * s) as i64 - p as i64 <= i as i64 && i + p < o * s + k;
    let mut out = vec![];
    for oy in 0..oh {
        for ox in 0..ow {
            if hits(r, oy) && hits(c, ox) {
                out.push(oy * ow + ox);
            }
        }
    }
    out
}

/// Non-finite inputs at a few places: the outputs that change are exactly
/// those whose windows cover one, and they are NaN (a NaN covered) or
/// infinite.
#[test]
fn non_finite_inputs_stay_in_their_windows() {
    let (h, w) = (37, 45);
    let base = rand_tensor(&[1, 1, h, w], 9);
    let specials = [
        (3, 4, f32::NAN),
        (20, 30, f32::INFINITY),
        (30, 10, f32::NEG_INFINITY),
    ];
    for (k, s, p) in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2)] {
        for (r, c, v) in specials {
            let mut x = base.clone();
            x.data_mut()[r * w + c] = v;
            let mp = MaxPool2dParams::new(k).stride(s).padding(p);
            let ap = AvgPool2dParams::new(k).stride(s).padding(p);
            let outs: [(&str, Box<PoolFn>); 3] = [
                ("max", Box::new(|x| ops::max_pool2d(x, &mp).unwrap())),
                (
                    "max idx",
                    Box::new(|x| ops::max_pool2d_with_indices(x, &mp).unwrap().0),
                ),
                ("avg", Box::new(|x| ops::avg_pool2d(x, &ap).unwrap())),
            ];
            for (what, f) in outs {
                let (clean, dirty) = (f(&base), f(&x));
                let (oh, ow) = (clean.shape()[2], clean.shape()[3]);
                let cover = covering(r, c, oh, ow, k, s, p);
                for (o, (a, b)) in clean.data().iter().zip(dirty.data()).enumerate() {
                    let ctx = format!("{what} k{k} s{s} p{p}, {v} at ({r}, {c}), output {o}");
                    if !cover.contains(&o) {
                        assert_eq!(a.to_bits(), b.to_bits(), "{ctx}: changed");
                    } else if v.is_nan() {
                        assert!(b.is_nan(), "{ctx}: {b} is not NaN");
                    } else if what != "avg" && v < 0.0 {
                        // -inf never wins a max over finite values.
                        assert_eq!(a.to_bits(), b.to_bits(), "{ctx}: changed");
                    } else {
                        assert_eq!(*b, v, "{ctx}");
                    }
                }
            }
        }
    }
}

/// Non-finite gradients reach only the window they flow back into: the
/// average's whole window, the max's one index.
#[test]
fn non_finite_gradients_stay_in_their_windows() {
    let x = rand_tensor(&[1, 1, 29, 31], 5);
    let ap = AvgPool2dParams::new(3).stride(2).padding(1);
    let mp = MaxPool2dParams::new(3).stride(2).padding(1);
    let y = ops::avg_pool2d(&x, &ap).unwrap();
    let ow = y.shape()[3];
    let go = rand_tensor(y.shape(), 6);
    let (oy, ox) = (5, 7);
    let mut bad = go.clone();
    bad.data_mut()[oy * ow + ox] = f32::NAN;
    let clean = ops::avg_pool2d_backward(x.shape(), &go, &ap).unwrap();
    let dirty = ops::avg_pool2d_backward(x.shape(), &bad, &ap).unwrap();
    for (i, (a, b)) in clean.data().iter().zip(dirty.data()).enumerate() {
        let (r, c) = (i / 31, i % 31);
        let inside = (2 * oy - 1..2 * oy + 2).contains(&r) && (2 * ox - 1..2 * ox + 2).contains(&c);
        if inside {
            assert!(b.is_nan(), "avg grad ({r}, {c}) is {b}");
        } else {
            assert_eq!(a.to_bits(), b.to_bits(), "avg grad ({r}, {c}) changed");
        }
    }
    let (_, idx) = ops::max_pool2d_with_indices(&x, &mp).unwrap();
    let clean = ops::max_pool2d_backward(x.shape(), &idx, &go).unwrap();
    let dirty = ops::max_pool2d_backward(x.shape(), &idx, &bad).unwrap();
    let hit = idx[oy * ow + ox];
    for (i, (a, b)) in clean.data().iter().zip(dirty.data()).enumerate() {
        if i == hit {
            assert!(b.is_nan(), "max grad {i} is {b}");
        } else {
            assert_eq!(a.to_bits(), b.to_bits(), "max grad {i} changed");
        }
    }
}

/// One NaN plane among many small planes (the 16-plane AVX-512 global
/// average): only its own mean is NaN.
#[test]
fn global_average_keeps_a_nan_in_its_plane() {
    for hw in [49, 9, 16, 50] {
        let planes = 40;
        let mut x = rand_tensor(&[1, planes, hw, 1], 8);
        let clean = ops::adaptive_avg_pool2d(&x, 1).unwrap();
        for p in [0, 7, 16, 33] {
            x.data_mut()[p * hw + hw / 2] = f32::NAN;
        }
        let dirty = ops::adaptive_avg_pool2d(&x, 1).unwrap();
        for (p, (a, b)) in clean.data().iter().zip(dirty.data()).enumerate() {
            if [0, 7, 16, 33].contains(&p) {
                assert!(b.is_nan(), "hw {hw} plane {p}: {b}");
            } else {
                assert_eq!(a.to_bits(), b.to_bits(), "hw {hw} plane {p} changed");
            }
        }
    }
}
