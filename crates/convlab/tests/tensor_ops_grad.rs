//! Finite-difference checks of every differentiable tensor op on `Var`:
//! for a random projection `L = sum(f(inputs) * G)`, the gradient from
//! `backward_with(G)` is compared with central differences, input by input.

mod common;

use common::{check_gradient, dot, rand_tensor};
use convlab::autograd::Var;
use convlab::tensor::Slice;
use convlab::Tensor;

const EPS: f32 = 1e-2;
const TOL: f64 = 2e-3;

type Op = Box<dyn Fn(&Var) -> Var>;

/// Checks `f`'s gradient at `x` for a random projection.
fn check(what: &str, x: &Tensor, f: &dyn Fn(&Var) -> Var, seed: u64) {
    let v = Var::param(x.clone());
    let y = f(&v);
    let g = rand_tensor(&y.shape(), seed);
    y.backward_with(g.clone()).unwrap();
    let analytic = v
        .grad()
        .unwrap_or_else(|| Tensor::zeros(x.shape()).unwrap());
    check_gradient(what, x, &analytic, EPS, TOL, |xp| {
        dot(&f(&Var::new(xp.clone())).tensor(), &g)
    });
}

/// Distinct values 0.1 apart in a scrambled order, so a perturbation of
/// `EPS` never changes which value is the largest.
fn distinct(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| ((i * 7) % n) as f32 * 0.1 - 1.0).collect();
    Tensor::from_vec(data, shape).unwrap()
}

#[test]
fn indexing_and_layout_ops() {
    let x = rand_tensor(&[3, 4, 5], 1);
    let ops: Vec<(&str, Op)> = vec![
        ("index", Box::new(|v| v.index((1.., 1)).unwrap())),
        (
            "index step",
            Box::new(|v| v.index((.., Slice::from(..-1).step(2), -2..)).unwrap()),
        ),
        ("index scalar", Box::new(|v| v.index((2, 3, 4)).unwrap())),
        ("narrow", Box::new(|v| v.narrow(-1, 1, 3).unwrap())),
        (
            "slice",
            Box::new(|v| v.slice(1, Slice::full().step(3)).unwrap()),
        ),
        (
            "index_select",
            Box::new(|v| v.index_select(2, &[4, 0, 4, 1]).unwrap()),
        ),
        ("permute", Box::new(|v| v.permute(&[1, 2, 0]).unwrap())),
        ("transpose", Box::new(|v| v.transpose(0, 2).unwrap())),
        ("unsqueeze", Box::new(|v| v.unsqueeze(1).unwrap())),
        ("flatten_dims", Box::new(|v| v.flatten_dims(0, 1).unwrap())),
        (
            "expand",
            Box::new(|v| v.index((.., 0..1)).unwrap().expand(&[2, 3, 3, 5]).unwrap()),
        ),
        (
            "broadcast_to",
            Box::new(|v| v.index((0, 0)).unwrap().broadcast_to(&[4, 5]).unwrap()),
        ),
        ("sum_dim", Box::new(|v| v.sum_dim(1, false).unwrap())),
        ("sum_dim keep", Box::new(|v| v.sum_dim(-1, true).unwrap())),
        ("mean_dim", Box::new(|v| v.mean_dim(0, false).unwrap())),
        ("softmax 0", Box::new(|v| v.softmax(0).unwrap())),
        ("softmax 1", Box::new(|v| v.softmax(1).unwrap())),
        ("softmax -1", Box::new(|v| v.softmax(-1).unwrap())),
        ("log_softmax 1", Box::new(|v| v.log_softmax_dim(1).unwrap())),
        (
            "log_softmax -1",
            Box::new(|v| v.log_softmax_dim(-1).unwrap()),
        ),
    ];
    for (i, (name, f)) in ops.iter().enumerate() {
        check(name, &x, f.as_ref(), 100 + i as u64);
    }
    let col = rand_tensor(&[3, 1, 5], 2);
    check("squeeze", &col, &|v| v.squeeze().unwrap(), 3);
    check("squeeze_dim", &col, &|v| v.squeeze_dim(1).unwrap(), 4);
}

#[test]
fn max_and_min() {
    let x = distinct(&[3, 4, 5]);
    let ops: Vec<(&str, Op)> = vec![
        ("max", Box::new(|v| v.max().unwrap())),
        ("min", Box::new(|v| v.min().unwrap())),
        ("max_dim 1", Box::new(|v| v.max_dim(1, false).unwrap().0)),
        (
            "max_dim -1 keep",
            Box::new(|v| v.max_dim(-1, true).unwrap().0),
        ),
        ("min_dim 0", Box::new(|v| v.min_dim(0, false).unwrap().0)),
    ];
    for (i, (name, f)) in ops.iter().enumerate() {
        check(name, &x, f.as_ref(), 200 + i as u64);
    }
}

#[test]
fn index_put_both_inputs() {
    let x = rand_tensor(&[3, 4], 5);
    let value = rand_tensor(&[1, 2], 6);
    let put = |a: &Var, b: &Var| a.index_put((.., 1..3), b).unwrap();
    let vv = Var::new(value.clone());
    check("index_put self", &x, &|v| put(v, &vv), 7);
    let xv = Var::new(x.clone());
    check("index_put value", &value, &|v| put(&xv, v), 8);
    // An integer entry drops the dimension the value broadcasts against.
    let row = rand_tensor(&[4], 9);
    let xv = Var::new(x.clone());
    check("index_put row", &row, &|v| xv.index_put(-1, v).unwrap(), 10);
}

#[test]
fn cat_stack_and_split() {
    let a = rand_tensor(&[2, 3], 11);
    let b = Var::new(rand_tensor(&[2, 2], 12));
    let c = Var::new(rand_tensor(&[2, 3], 13));
    check("cat first", &a, &|v| Var::cat(&[v, &b], -1).unwrap(), 14);
    check("cat last", &a, &|v| Var::cat(&[&b, v, v], 1).unwrap(), 15);
    check("stack", &a, &|v| Var::stack(&[&c, v], 1).unwrap(), 16);
    check(
        "split_with_sizes",
        &a,
        &|v| {
            let parts = v.split_with_sizes(&[1, 2], 1).unwrap();
            (&parts[1] * 3.0 + parts[0].expand(&[2, 2]).unwrap()).unwrap()
        },
        17,
    );
}

#[test]
fn operators() {
    let x = rand_tensor(&[2, 3], 21);
    let other = Var::new(rand_tensor(&[3], 22).map(|v| v + 2.0));
    let ops: Vec<(&str, Op)> = vec![
        ("+", Box::new(move |v| (v + &other.clone()).unwrap())),
        ("-", Box::new(|v| (v - &v.scale(0.5).unwrap()).unwrap())),
        ("*", Box::new(|v| (v * v).unwrap())),
        ("/", Box::new(|v| (v / &((v * v).unwrap() + 2.0)).unwrap())),
        ("chain", Box::new(|v| (v * 2.0 - v + v).unwrap())),
        ("+ s", Box::new(|v| v + 1.5)),
        ("- s", Box::new(|v| v - 1.5)),
        ("* s", Box::new(|v| v * -3.0)),
        ("/ s", Box::new(|v| v / 3.0)),
        ("s +", Box::new(|v| 1.5 + v)),
        ("s -", Box::new(|v| 1.5 - v)),
        ("s *", Box::new(|v| 3.0 * v)),
        ("s /", Box::new(|v| 3.0 / &(v + 2.0))),
        ("neg", Box::new(|v| -v)),
    ];
    for (i, (name, f)) in ops.iter().enumerate() {
        check(name, &x, f.as_ref(), 300 + i as u64);
    }
}
