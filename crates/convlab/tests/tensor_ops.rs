//! The tensor ops' semantics, value by value: indexing and slice assignment
//! (the book's `X[:, 2:6] = 0`), layout ops, reductions, operators, and the
//! errors PyTorch raises as one-line error values. Expected values are
//! PyTorch's for the same calls (written out by hand for these small cases).

mod common;

use common::expect_err;
use convlab::autograd::Var;
use convlab::tensor::{Idx, Slice};
use convlab::Tensor;

fn arange(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>() as f32;
    Tensor::arange(n).unwrap().reshape(shape).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.data().to_vec()
}

#[test]
fn the_books_edge_image() {
    // X = torch.ones((6, 8)); X[:, 2:6] = 0
    let mut x = Tensor::ones(&[6, 8]).unwrap();
    x.index_put_((.., 2..6), 0.0).unwrap();
    for r in 0..6 {
        assert_eq!(
            vals(&x.index(r).unwrap()),
            [1., 1., 0., 0., 0., 0., 1., 1.],
            "row {r}"
        );
    }
    // The same region through the single-dimension forms.
    assert_eq!(x.slice(1, 2..6).unwrap(), Tensor::zeros(&[6, 4]).unwrap());
    assert_eq!(x.narrow(1, 2, 4).unwrap(), Tensor::zeros(&[6, 4]).unwrap());
    assert_eq!(x.index((1..3, ..)).unwrap().shape(), &[2, 8]);
}

#[test]
fn indexing_follows_python() {
    let x = arange(&[3, 4]);
    assert_eq!(vals(&x.index(-1).unwrap()), [8., 9., 10., 11.]);
    assert_eq!(x.index((1, 2)).unwrap().shape(), &[] as &[usize]);
    assert_eq!(x.index((1, 2)).unwrap().item().unwrap(), 6.0);
    assert_eq!(vals(&x.index((.., -1)).unwrap()), [3., 7., 11.]);
    assert_eq!(vals(&x.index((0, ..=-2)).unwrap()), [0., 1., 2.]);
    assert_eq!(vals(&x.index((0, 1..=2)).unwrap()), [1., 2.]);
    assert_eq!(vals(&x.index((0, ..=-1)).unwrap()), [0., 1., 2., 3.]);
    // Slice bounds clamp; an empty slice is allowed.
    assert_eq!(x.index(5..100).unwrap().shape(), &[0, 4]);
    assert_eq!(x.index(-100..1).unwrap().shape(), &[1, 4]);
    assert_eq!(
        x.index((.., Slice::new(Some(3), Some(1), 1)))
            .unwrap()
            .shape(),
        &[3, 0]
    );
    // Steps.
    let y = x
        .index((Slice::full().step(2), Slice::from(1..).step(2)))
        .unwrap();
    assert_eq!((y.shape(), vals(&y)), (&[2, 2][..], vec![1., 3., 9., 11.]));
    let y = x.index(Slice::new(Some(-2), None, 5)).unwrap();
    assert_eq!(vals(&y), [4., 5., 6., 7.]);
    // Indices built at run time; usize ranges.
    let spec = vec![Idx::from(2usize), Idx::from(1usize..3)];
    assert_eq!(vals(&x.index(spec).unwrap()), [9., 10.]);
    let (a, b) = (1usize, 3usize);
    assert_eq!(vals(&x.index((a..b, 0)).unwrap()), [4., 8.]);
}

#[test]
fn slice_assignment_broadcasts() {
    let mut x = Tensor::zeros(&[2, 3, 2]).unwrap();
    x.index_put_((.., 1), &Tensor::from_slice(&[5.0, 6.0], &[2]).unwrap())
        .unwrap();
    assert_eq!(vals(&x), [0., 0., 5., 6., 0., 0., 0., 0., 5., 6., 0., 0.]);
    x.index_put_((1, Slice::full().step(2), 0), -1.0).unwrap();
    assert_eq!(vals(&x), [0., 0., 5., 6., 0., 0., -1., 0., 5., 6., -1., 0.]);
    x.fill_(2.0);
    assert!(x.data().iter().all(|&v| v == 2.0));
    expect_err(
        x.index_put_((.., 1), &Tensor::zeros(&[3]).unwrap()),
        &["index_put_", "[3]", "[2, 2]"],
    );
}

#[test]
fn index_select_and_split() {
    let x = arange(&[2, 3]);
    assert_eq!(
        vals(&x.index_select(0, &[1, 1]).unwrap()),
        [3., 4., 5., 3., 4., 5.]
    );
    assert_eq!(x.index_select(-1, &[]).unwrap().shape(), &[2, 0]);
    expect_err(x.index_select(1, &[3]), &["index_select", "3", "size 3"]);
    let parts = x.split_with_sizes(&[2, 0, 1], -1).unwrap();
    assert_eq!(vals(&parts[0]), [0., 1., 3., 4.]);
    assert_eq!(parts[1].shape(), &[2, 0]);
    assert_eq!(vals(&parts[2]), [2., 5.]);
    expect_err(
        x.split_with_sizes(&[1, 1], 1),
        &["split_with_sizes", "[1, 1]", "3"],
    );
}

#[test]
fn layout_ops() {
    let x = arange(&[2, 3, 4]);
    let p = x.permute(&[2, 0, -2]).unwrap();
    assert_eq!(p.shape(), &[4, 2, 3]);
    assert_eq!(p.get(&[3, 1, 2]).unwrap(), x.get(&[1, 2, 3]).unwrap());
    assert_eq!(x.transpose(0, -1).unwrap(), x.permute(&[2, 1, 0]).unwrap());
    assert_eq!(x.unsqueeze(-1).unwrap().shape(), &[2, 3, 4, 1]);
    assert_eq!(x.unsqueeze(3).unwrap().shape(), &[2, 3, 4, 1]);
    assert_eq!(x.unsqueeze(-4).unwrap().shape(), &[1, 2, 3, 4]);
    let s = Tensor::zeros(&[1, 3, 1]).unwrap();
    assert_eq!(s.squeeze().shape(), &[3]);
    assert_eq!(s.squeeze_dim(-1).unwrap().shape(), &[1, 3]);
    assert_eq!(s.squeeze_dim(1).unwrap().shape(), &[1, 3, 1]);
    assert_eq!(x.flatten(0, -1).unwrap().shape(), &[24]);
    assert_eq!(x.flatten(1, 2).unwrap().shape(), &[2, 12]);
    assert_eq!(x.flatten(1, 1).unwrap().shape(), &[2, 3, 4]);
    assert_eq!(Tensor::scalar(3.0).flatten(0, -1).unwrap().shape(), &[1]);
    let e = Tensor::from_slice(&[1.0, 2.0], &[2]).unwrap();
    let b = e.expand(&[3, usize::MAX]).unwrap();
    assert_eq!(vals(&b), [1., 2., 1., 2., 1., 2.]);
    assert_eq!(e.broadcast_to(&[1, 2]).unwrap().shape(), &[1, 2]);
    assert_eq!(
        Tensor::scalar(1.0).transpose(0, -1).unwrap().shape(),
        &[] as &[usize]
    );
}

#[test]
fn reductions() {
    let x = Tensor::from_rows(&[[1.0, 5.0, 5.0], [-2.0, -7.0, -7.0]]).unwrap();
    assert_eq!(x.argmax(1, false).unwrap().data(), &[1, 0]);
    assert_eq!(x.argmin(1, false).unwrap().data(), &[0, 1]);
    assert_eq!(x.argmax(0, true).unwrap().shape(), &[1, 3]);
    let (v, i) = x.min_dim(-1, true).unwrap();
    assert_eq!(
        (v.shape(), vals(&v), i.data()),
        (&[2, 1][..], vec![1., -7.], &[0, 1][..])
    );
    assert_eq!(x.max().unwrap().item().unwrap(), 5.0);
    assert_eq!(x.min().unwrap().item().unwrap(), -7.0);
    assert_eq!(vals(&x.mean_dim(0, false).unwrap()), [-0.5, -1.0, -1.0]);
    assert_eq!(x.mean_dim(1, true).unwrap().shape(), &[2, 1]);
    // A rank-0 tensor reduces over its one position, as PyTorch's dim=0.
    let s = Tensor::scalar(4.0);
    assert_eq!(s.argmax(0, false).unwrap().data(), &[0]);
    assert_eq!(s.softmax(-1).unwrap().item().unwrap(), 1.0);
    // NaN is both the maximum and the minimum.
    let n = Tensor::from_slice(&[1.0, f32::NAN, 3.0], &[3]).unwrap();
    assert_eq!(n.argmax(0, false).unwrap().data(), &[1]);
    assert!(n.max().unwrap().item().unwrap().is_nan());
    assert!(n.min().unwrap().item().unwrap().is_nan());
}

#[test]
fn softmax_is_stable_and_normalised() {
    let x = Tensor::from_rows(&[[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]]).unwrap();
    let p = x.softmax(1).unwrap();
    assert_eq!(&vals(&p)[..3], &[0.5, 0.5, 0.0]);
    let l = x.log_softmax(-1).unwrap();
    assert!((l.get(&[0, 2]).unwrap() + 2000.0 + 2f32.ln()).abs() < 1e-3);
    // Rows of the 2-D log-softmax the losses use agree with the any-dim one.
    let v = Var::new(x.clone());
    let old = v.log_softmax().unwrap().tensor();
    assert!(old.max_abs_diff(&l).unwrap() <= 2e-4, "{old} vs {l}");
    // Over dim 0 of [2, 3, 2] every (i, k) lane sums to 1.
    let x = common::rand_tensor(&[2, 3, 2], 3);
    let s = x.softmax(1).unwrap().sum_dim(1, false).unwrap();
    assert!(s.data().iter().all(|v| (v - 1.0).abs() < 1e-6), "{s}");
    // A row of -inf is NaN, as PyTorch.
    let inf = Tensor::full(&[2], f32::NEG_INFINITY).unwrap();
    assert!(inf.softmax(0).unwrap().data().iter().all(|v| v.is_nan()));
}

#[test]
fn tensor_operators() {
    let a = arange(&[2, 2]);
    let b = Tensor::from_slice(&[10.0, 20.0], &[2]).unwrap();
    assert_eq!(vals(&(&a + &b).unwrap()), [10., 21., 12., 23.]);
    assert_eq!(vals(&(&a - &b).unwrap()), [-10., -19., -8., -17.]);
    assert_eq!(vals(&(&a * &b).unwrap()), [0., 20., 20., 60.]);
    assert_eq!(vals(&(&b / &b).unwrap()), [1., 1.]);
    // Owned operands, Results on either side, numbers on either side.
    assert_eq!(
        vals(&(a.clone() + b.clone()).unwrap()),
        [10., 21., 12., 23.]
    );
    assert_eq!(vals(&(&a + &a + &a).unwrap()), [0., 3., 6., 9.]);
    assert_eq!(vals(&(&a - (&a * &a)).unwrap()), [0., 0., -2., -6.]);
    assert_eq!(vals(&(2.0 * &a + 1.0)), [1., 3., 5., 7.]);
    assert_eq!(vals(&(1.0 - &a / 2.0)), [1., 0.5, 0., -0.5]);
    assert_eq!(vals(&(12.0 / (&a + 1.0))), [12., 6., 4., 3.]);
    assert_eq!(vals(&-a.clone()), [-0., -1., -2., -3.]);
    let mut c = a.clone();
    c += 1.0;
    c *= 2.0;
    c -= 1.0;
    c /= 2.0;
    assert_eq!(vals(&c), [0.5, 1.5, 2.5, 3.5]);
    expect_err(
        &a + &Tensor::zeros(&[3]).unwrap(),
        &["add", "[2, 2]", "[3]"],
    );
    expect_err((&a + &Tensor::zeros(&[3]).unwrap()) * &a, &["add"]);
    expect_err(&a / Tensor::zeros(&[5]).unwrap(), &["div", "[5]"]);
}

#[test]
fn var_operators_record_the_graph() -> convlab::Result<()> {
    let w = Var::param(Tensor::from_slice(&[2.0, -1.0], &[2])?);
    let x = Var::new(Tensor::from_slice(&[3.0, 4.0], &[2])?);
    let y = (&w * &x + &x - (&w / 2.0))?;
    assert_eq!(vals(&y.tensor()), [8.0, 0.5]);
    y.sum()?.backward()?;
    assert_eq!(vals(&w.grad().unwrap()), [2.5, 3.5]);
    assert_eq!(
        (-&w).to_string(),
        "tensor([-2.,  1.], grad_fn=<NegBackward0>)"
    );
    let z = ((&w * 2.0 + &w - &w) / &w)?;
    assert_eq!(vals(&z.tensor()), [2.0, 2.0]);
    expect_err(&w + &Var::new(Tensor::zeros(&[3])?), &["add", "[2]", "[3]"]);
    Ok(())
}

#[test]
fn cat_and_stack_take_negative_dims() {
    let a = arange(&[2, 2]);
    let c = Tensor::cat(&[&a, &a], -1).unwrap();
    assert_eq!(c.shape(), &[2, 4]);
    let s = Tensor::stack(&[&a, &a], -1).unwrap();
    assert_eq!(s.shape(), &[2, 2, 2]);
    assert_eq!(vals(&s.index((1, 0)).unwrap()), [2., 2.]);
    expect_err(Tensor::cat(&[&a], -3), &["cat", "dim", "-3"]);
    expect_err(
        Tensor::cat(&[&Tensor::scalar(1.0)], 0),
        &["cat", "zero-dimensional"],
    );
    // A zero-size dimension beside huge ones allocates nothing.
    let e = Tensor::zeros(&[0, usize::MAX / 2]).unwrap();
    assert_eq!(
        Tensor::cat(&[&e, &e], 0).unwrap().shape(),
        &[0, usize::MAX / 2]
    );
}

#[test]
fn zero_element_tensors_never_allocate_by_their_dimensions() {
    let huge = usize::MAX / 4;
    let e = Tensor::zeros(&[huge, 0, 3]).unwrap();
    assert_eq!(e.permute(&[2, 0, 1]).unwrap().shape(), &[3, huge, 0]);
    assert_eq!(e.transpose(0, 2).unwrap().numel(), 0);
    assert_eq!(e.index((.., .., 1)).unwrap().shape(), &[huge, 0]);
    assert_eq!(e.softmax(0).unwrap().numel(), 0);
    assert_eq!(e.log_softmax(2).unwrap().numel(), 0);
    assert_eq!(e.argmax(2, false).unwrap().shape(), &[huge, 0]);
    assert_eq!(e.max_dim(0, true).unwrap().0.shape(), &[1, 0, 3]);
    assert_eq!(e.flatten(0, 1).unwrap().shape(), &[0, 3]);
    assert_eq!(e.index_select(2, &[0, 0]).unwrap().shape(), &[huge, 0, 2]);
    assert_eq!(e.unsqueeze(0).unwrap().squeeze().shape(), &[huge, 0, 3]);
    expect_err(e.argmax(1, false), &["argmax", "non-zero size", "dim 1"]);
    expect_err(e.max(), &["max", "no values"]);
    let mut m = e.clone();
    m.index_put_((.., .., 0), 1.0).unwrap();
    // Results that do not fit are errors before any allocation.
    let one = Tensor::ones(&[1, 1]).unwrap();
    expect_err(one.expand(&[huge, 8]), &["expand", "more elements"]);
    expect_err(one.expand(&[1 << 20, 1 << 20]), &["expand", "memory limit"]);
}

#[test]
fn errors_name_op_parameter_and_shape() {
    let x = arange(&[2, 3]);
    expect_err(
        x.index((0, 0, 0)),
        &["index", "too many indices", "dimension 2", "[2, 3]"],
    );
    expect_err(
        x.index((.., 3)),
        &["index", "3 is out of bounds for dimension 1 with size 3"],
    );
    expect_err(x.index(-3), &["index", "-3"]);
    expect_err(x.index(Slice::full().step(0)), &["index", "step", "0"]);
    expect_err(
        x.narrow(1, 2, 2),
        &["narrow", "length", "exceeds", "size 3"],
    );
    expect_err(x.narrow(1, 4, 0), &["narrow", "start", "4"]);
    expect_err(x.narrow(2, 0, 1), &["narrow", "dim", "[2, 3]"]);
    expect_err(x.permute(&[0]), &["permute", "dims", "[2, 3]"]);
    expect_err(x.permute(&[1, -1]), &["permute", "repeats", "[1, -1]"]);
    expect_err(x.transpose(0, 2), &["transpose", "dim", "[-2, 1]"]);
    expect_err(x.unsqueeze(4), &["unsqueeze", "dim", "[-3, 2]"]);
    expect_err(x.squeeze_dim(-3), &["squeeze", "dim"]);
    expect_err(x.flatten(1, 0), &["flatten", "start_dim", "end_dim"]);
    expect_err(x.expand(&[3]), &["expand", "greater or equal", "[2, 3]"]);
    expect_err(
        x.expand(&[4, 3]),
        &["expand", "existing size 2", "dimension 0"],
    );
    expect_err(x.expand(&[usize::MAX, 2, 3]), &["expand", "-1", "leading"]);
    expect_err(x.broadcast_to(&[4, 3]), &["broadcast_to"]);
    expect_err(x.softmax(2), &["softmax", "dim 2", "[2, 3]"]);
    expect_err(x.argmax(-3, false), &["argmax", "dim -3"]);
    expect_err(x.max_dim(5, true), &["max", "dim 5"]);
    expect_err(Tensor::stack(&[&x], 3), &["stack", "dim 3"]);
    let v = Var::new(x.clone());
    expect_err(
        Var::cat(&[&v, &Var::new(arange(&[3, 3]))], 1),
        &["cat", "[2, 3]", "[3, 3]"],
    );
    expect_err(Var::stack(&[], 0), &["stack", "at least one"]);
    expect_err(
        v.index_put((0, 0), &Var::new(Tensor::zeros(&[2]).unwrap())),
        &["index_put", "[2]"],
    );
    expect_err(v.log_softmax_dim(3), &["log_softmax", "dim 3"]);
    expect_err(v.sum_dim(-3, false), &["sum", "dim -3"]);
}

#[test]
fn printing_of_indices_and_gradients() {
    let x = Tensor::from_rows(&[[0.1, 0.9], [0.8, 0.2]]).unwrap();
    assert_eq!(
        x.argmax(1, true).unwrap().to_string(),
        "tensor([[1],\n        [0]])"
    );
    let w = Var::param(x);
    let names = [
        (w.softmax(1).unwrap(), "Softmax"),
        (w.index(0).unwrap(), "Select"),
        (w.permute(&[1, 0]).unwrap(), "Permute"),
        (Var::cat(&[&w, &w], 0).unwrap(), "Cat"),
        (w.max_dim(0, false).unwrap().0, "Max"),
    ];
    for (v, name) in names {
        assert!(
            v.to_string()
                .ends_with(&format!("grad_fn=<{name}Backward0>)")),
            "{v}"
        );
    }
}
