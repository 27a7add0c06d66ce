//! Finite-difference gradient checks: for a random projection
//! `L = sum(f(inputs) * G)` (accumulated in f64), every analytic gradient is
//! compared with central differences `(L(x + e) - L(x - e)) / 2e`, input by
//! input, on small random cases.

mod common;

use common::forced;
use convlab::autograd::Var;
use convlab::ops::*;
use convlab::{seeded_rng, Padding, PaddingMode, Rng64, Tensor};

const EPS: f32 = 1e-2;

/// `sum(a * b)` in f64.
fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum()
}

/// Check `analytic` against central differences of `loss` around `x`.
fn check(what: &str, x: &Tensor, analytic: &Tensor, loss: impl Fn(&Tensor) -> f64) {
    assert_eq!(x.shape(), analytic.shape(), "{what}: gradient shape");
    let scale = analytic
        .data()
        .iter()
        .fold(1.0f64, |m, v| m.max(v.abs() as f64));
    for i in 0..x.numel() {
        let mut xp = x.clone();
        xp.data_mut()[i] += EPS;
        let mut xm = x.clone();
        xm.data_mut()[i] -= EPS;
        let fd = (loss(&xp) - loss(&xm)) / (2.0 * EPS as f64);
        let an = analytic.data()[i] as f64;
        assert!(
            (fd - an).abs() <= 2e-3 * scale,
            "{what}[{i}]: finite difference {fd} vs analytic {an}"
        );
    }
}

fn rand(shape: &[usize], rng: &mut Rng64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, rng).unwrap()
}

#[test]
fn conv2d_every_parameter() {
    let mut rng = seeded_rng(7);
    let cases: Vec<(usize, usize, usize, usize, usize, Conv2dParams)> = vec![
        // (cin, cout, h, w, k, params)
        (2, 3, 5, 6, 3, Conv2dParams::new()),
        (2, 2, 6, 5, 3, Conv2dParams::new().padding(1).stride(2)),
        (
            4,
            2,
            7,
            7,
            3,
            Conv2dParams::new().groups(2).dilation(2).padding((2, 1)),
        ),
        (3, 3, 5, 5, 2, Conv2dParams::new().padding(Padding::Same)),
        (
            2,
            1,
            5,
            6,
            3,
            Conv2dParams::new()
                .padding(2)
                .padding_mode(PaddingMode::Reflect),
        ),
        (
            2,
            1,
            4,
            5,
            3,
            Conv2dParams::new()
                .padding((1, 2))
                .padding_mode(PaddingMode::Replicate),
        ),
        (
            1,
            2,
            4,
            4,
            3,
            Conv2dParams::new()
                .padding(2)
                .padding_mode(PaddingMode::Circular),
        ),
        (
            2,
            2,
            6,
            7,
            3,
            Conv2dParams::new().padding([0, 2, 1, 0]).stride((1, 2)),
        ),
    ];
    // Each gradient under every algorithm that computes it, against
    // differences of the forward under the same algorithm (the reference
    // loops where it has no forward).
    let mut computed = 0;
    for algo in ConvAlgo::ALL {
        for (i, (cin, cout, h, w, k, p)) in cases.iter().cloned().enumerate() {
            let x = rand(&[2, cin, h, w], &mut rng);
            let wt = rand(&[cout, cin / p.groups, k, k], &mut rng);
            let b = rand(&[cout], &mut rng);
            let fwd_algo = match forced(algo, || conv2d(&x, &wt, Some(&b), &p)) {
                Some(_) => algo,
                None => ConvAlgo::Reference,
            };
            let fwd = |x: &Tensor, wt: &Tensor, b: &Tensor| {
                let _forced = force_conv_algo(fwd_algo);
                conv2d(x, wt, Some(b), &p).unwrap()
            };
            let g = rand(fwd(&x, &wt, &b).shape(), &mut rng);
            let tag = format!("{algo:?} case {i}");
            if let Some(gx) = forced(algo, || conv2d_backward_input(x.shape(), &wt, &g, &p)) {
                check(&format!("{tag} grad_input"), &x, &gx, |x| {
                    dot(&fwd(x, &wt, &b), &g)
                });
                computed += 1;
            }
            if let Some(gw) = forced(algo, || conv2d_backward_weight(&x, wt.shape(), &g, &p)) {
                check(&format!("{tag} grad_weight"), &wt, &gw, |wt| {
                    dot(&fwd(&x, wt, &b), &g)
                });
                computed += 1;
            }
            if fwd_algo == algo {
                let gb = conv2d_backward_bias(&g).unwrap();
                check(&format!("{tag} grad_bias"), &b, &gb, |b| {
                    dot(&fwd(&x, &wt, b), &g)
                });
            }
        }
    }
    assert!(computed >= 60, "{computed} gradients checked");
}

#[test]
fn conv_transpose2d_every_parameter() {
    let mut rng = seeded_rng(8);
    let cases = [
        (2, 3, 3, 4, 3, ConvTranspose2dParams::new()),
        (
            2,
            2,
            3,
            3,
            3,
            ConvTranspose2dParams::new()
                .stride(2)
                .padding(1)
                .output_padding(1),
        ),
        (
            4,
            2,
            3,
            3,
            2,
            ConvTranspose2dParams::new()
                .groups(2)
                .dilation(2)
                .stride((2, 1)),
        ),
    ];
    for (i, (cin, cout, h, w, k, p)) in cases.into_iter().enumerate() {
        let x = rand(&[2, cin, h, w], &mut rng);
        let wt = rand(&[cin, cout / p.groups, k, k], &mut rng);
        let b = rand(&[cout], &mut rng);
        let y = conv_transpose2d(&x, &wt, Some(&b), &p).unwrap();
        let g = rand(y.shape(), &mut rng);
        let gr = conv_transpose2d_backward(&x, &wt, true, &g, &p).unwrap();
        check(&format!("case {i} grad_input"), &x, &gr.grad_input, |x| {
            dot(&conv_transpose2d(x, &wt, Some(&b), &p).unwrap(), &g)
        });
        check(
            &format!("case {i} grad_weight"),
            &wt,
            &gr.grad_weight,
            |wt| dot(&conv_transpose2d(&x, wt, Some(&b), &p).unwrap(), &g),
        );
        check(
            &format!("case {i} grad_bias"),
            &b,
            gr.grad_bias.as_ref().unwrap(),
            |b| dot(&conv_transpose2d(&x, &wt, Some(b), &p).unwrap(), &g),
        );
    }
}

#[test]
fn corr2d_and_pad2d() {
    let mut rng = seeded_rng(9);
    let x = rand(&[5, 6], &mut rng);
    let k = rand(&[2, 3], &mut rng);
    let g = rand(&[4, 4], &mut rng);
    let (gx, gk) = corr2d_backward(&x, &k, &g).unwrap();
    check("corr2d grad_x", &x, &gx, |x| {
        dot(&corr2d(x, &k).unwrap(), &g)
    });
    check("corr2d grad_k", &k, &gk, |k| {
        dot(&corr2d(&x, k).unwrap(), &g)
    });

    let x = rand(&[2, 4, 5], &mut rng);
    for mode in [
        PaddingMode::Zeros,
        PaddingMode::Reflect,
        PaddingMode::Replicate,
        PaddingMode::Circular,
    ] {
        let pads = [1, 3, 2, 0];
        let y = pad2d(&x, pads, mode).unwrap();
        let g = rand(y.shape(), &mut rng);
        let gx = pad2d_backward(&g, x.shape(), pads, mode).unwrap();
        check(&format!("pad2d {mode:?}"), &x, &gx, |x| {
            dot(&pad2d(x, pads, mode).unwrap(), &g)
        });
    }
}

/// Gradient of `sum(f(x) * g)` through autograd.
fn autograd_grad(x: &Tensor, g: &Tensor, f: &dyn Fn(&Var) -> Var) -> Tensor {
    let v = Var::param(x.clone());
    f(&v)
        .mul(&Var::new(g.clone()))
        .unwrap()
        .sum()
        .unwrap()
        .backward()
        .unwrap();
    v.grad().unwrap()
}

#[test]
fn autograd_elementwise_and_losses() {
    let mut rng = seeded_rng(10);
    let other = rand(&[3, 4], &mut rng).map(|v| v + 2.0);
    let row = rand(&[4], &mut rng);
    let m = rand(&[4, 2], &mut rng);
    type F = Box<dyn Fn(&Var) -> Var>;
    let o1 = other.clone();
    let o2 = other.clone();
    let r1 = row.clone();
    let m1 = m.clone();
    // linear: x [3, 4] as input (weight [2, 4]), as weight (input [5, 4]),
    // and flattened as a bias of 12 outputs (input [2, 5], weight [12, 5]).
    let (lw, lb) = (rand(&[2, 4], &mut rng), rand(&[2], &mut rng));
    let (li, lb3) = (rand(&[5, 4], &mut rng), rand(&[3], &mut rng));
    let (li2, lw12) = (rand(&[2, 5], &mut rng), rand(&[12, 5], &mut rng));
    let fns: Vec<(&str, F)> = vec![
        (
            "linear_input",
            Box::new(move |v: &Var| {
                v.linear(&Var::new(lw.clone()), Some(&Var::new(lb.clone())))
                    .unwrap()
            }),
        ),
        (
            "linear_weight",
            Box::new(move |v: &Var| {
                Var::new(li.clone())
                    .linear(v, Some(&Var::new(lb3.clone())))
                    .unwrap()
            }),
        ),
        (
            "linear_bias",
            Box::new(move |v: &Var| {
                Var::new(li2.clone())
                    .linear(&Var::new(lw12.clone()), Some(&v.reshape(&[12]).unwrap()))
                    .unwrap()
            }),
        ),
        ("sigmoid", Box::new(|v: &Var| v.sigmoid().unwrap())),
        ("tanh", Box::new(|v: &Var| v.tanh().unwrap())),
        ("relu", Box::new(|v: &Var| v.relu().unwrap())),
        ("exp", Box::new(|v: &Var| v.exp().unwrap())),
        ("square", Box::new(|v: &Var| v.square().unwrap())),
        ("pow3", Box::new(|v: &Var| v.pow(3.0).unwrap())),
        (
            "div",
            Box::new(move |v: &Var| v.div(&Var::new(o1.clone())).unwrap()),
        ),
        (
            "div_by",
            Box::new(move |v: &Var| {
                Var::new(o2.clone())
                    .div(&v.add_scalar(3.0).unwrap())
                    .unwrap()
            }),
        ),
        (
            "broadcast_add",
            Box::new(move |v: &Var| v.add(&Var::new(r1.clone())).unwrap()),
        ),
        (
            "matmul",
            Box::new(move |v: &Var| v.matmul(&Var::new(m1.clone())).unwrap()),
        ),
        ("log_softmax", Box::new(|v: &Var| v.log_softmax().unwrap())),
        (
            "mean",
            Box::new(|v: &Var| v.mean().unwrap().reshape(&[1]).unwrap()),
        ),
        ("t", Box::new(|v: &Var| v.t().unwrap())),
    ];
    for (name, f) in &fns {
        // Keep away from relu's kink.
        let x = rand(&[3, 4], &mut rng).map(|v| if v.abs() < 0.05 { 0.3 } else { v });
        let y = f(&Var::new(x.clone()));
        let g = rand(&y.shape(), &mut rng);
        let an = autograd_grad(&x, &g, f.as_ref());
        check(name, &x, &an, |x| {
            dot(&f(&Var::new(x.clone())).tensor(), &g)
        });
    }
    // Losses are scalars: the projection is the identity.
    let labels = [2usize, 0, 3];
    let x = rand(&[3, 4], &mut rng);
    let v = Var::param(x.clone());
    v.cross_entropy(&labels).unwrap().backward().unwrap();
    check("cross_entropy", &x, &v.grad().unwrap(), |x| {
        Var::new(x.clone())
            .cross_entropy(&labels)
            .unwrap()
            .item()
            .unwrap() as f64
    });
    let target = rand(&[3, 4], &mut rng);
    let v = Var::param(x.clone());
    v.mse_loss(&Var::new(target.clone()))
        .unwrap()
        .backward()
        .unwrap();
    check("mse_loss", &x, &v.grad().unwrap(), |x| {
        Var::new(x.clone())
            .mse_loss(&Var::new(target.clone()))
            .unwrap()
            .item()
            .unwrap() as f64
    });
}

#[test]
fn autograd_conv_matches_functional_backward() {
    let mut rng = seeded_rng(11);
    let p = Conv2dParams::new().padding(1).groups(2);
    let x = rand(&[2, 4, 5, 5], &mut rng);
    let w = rand(&[6, 2, 3, 3], &mut rng);
    let b = rand(&[6], &mut rng);
    let (xv, wv, bv) = (
        Var::param(x.clone()),
        Var::param(w.clone()),
        Var::param(b.clone()),
    );
    let y = xv.conv2d(&wv, Some(&bv), &p).unwrap();
    let g = rand(&y.shape(), &mut rng);
    y.mul(&Var::new(g.clone()))
        .unwrap()
        .sum()
        .unwrap()
        .backward()
        .unwrap();
    let want = conv2d_backward(&x, &w, true, &g, &p).unwrap();
    assert_eq!(xv.grad().unwrap(), want.grad_input);
    assert_eq!(wv.grad().unwrap(), want.grad_weight);
    assert_eq!(bv.grad().unwrap(), want.grad_bias.unwrap());
}
