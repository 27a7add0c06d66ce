//! The autograd graph's lifetime: a million-op chain drops without
//! recursion (on a 2 MiB stack, on a plain thread and on a rayon worker),
//! a second backward through a freed graph is an error as in PyTorch
//! unless the graph was retained, and graphs built on several threads
//! share parameters safely.

use convlab::autograd::Var;
use convlab::Tensor;

const STACK: usize = 2 << 20;

/// `x + 1 + 1 + ...`, `n` ops deep, each node holding the previous one.
fn chain(n: usize) -> (Var, Var) {
    let x = Var::param(Tensor::zeros(&[1]).unwrap());
    let mut y = x.clone();
    for _ in 0..n {
        y = y.add_scalar(1.0).unwrap();
    }
    (x, y)
}

#[test]
fn a_million_op_chain_drops_on_a_small_thread_stack() {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(|| {
            let (x, y) = chain(1_000_000);
            assert_eq!(y.item().unwrap(), 1e6);
            drop(y);
            drop(x);
        })
        .unwrap()
        .join()
        .expect("dropping the chain overflowed the stack");
}

#[test]
fn a_million_op_chain_drops_on_a_rayon_worker() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .stack_size(STACK)
        .build()
        .unwrap();
    // Built on the worker (as a loss accumulated inside `rayon::scope` is)
    // and dropped there.
    let total = pool.install(|| {
        let (_x, y) = chain(1_000_000);
        y.item().unwrap()
    });
    assert_eq!(total, 1e6);
    // Built here, dropped on the worker.
    let (_x, y) = chain(200_000);
    pool.install(move || drop(y));
}

#[test]
fn backward_through_a_deep_chain_works_and_frees_it() {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(|| {
            let (x, y) = chain(100_000);
            y.backward().unwrap();
            assert_eq!(x.grad().unwrap().data(), &[1.0]);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_second_backward_is_an_error_unless_the_graph_was_retained() {
    let w = Var::param(Tensor::from_slice(&[2.0], &[1]).unwrap());
    let loss = w.square().unwrap().sum().unwrap();
    loss.backward().unwrap();
    let e = loss.backward().unwrap_err().to_string();
    assert!(
        e.contains("backward through the graph a second time"),
        "{e}"
    );
    assert_eq!(
        w.grad().unwrap().data(),
        &[4.0],
        "the failed call added nothing"
    );

    // A graph sharing a freed part fails too, before touching any gradient.
    let y = w.square().unwrap();
    let a = y.sum().unwrap();
    let b = y.scale(3.0).unwrap().sum().unwrap();
    w.zero_grad();
    a.backward().unwrap();
    assert!(b.backward().is_err());
    assert_eq!(w.grad().unwrap().data(), &[4.0]);

    // retain_graph: run it twice, the gradients add up.
    w.zero_grad();
    let loss = w.square().unwrap().sum().unwrap();
    loss.backward_retain_graph().unwrap();
    loss.backward().unwrap();
    assert_eq!(w.grad().unwrap().data(), &[8.0]);
    assert!(loss.backward().is_err());
}

#[test]
fn update_after_forward_keeps_the_recorded_value() {
    // The graph keeps the weight it was computed with, as PyTorch's saved
    // tensors do (where an in-place change would be an error).
    let w = Var::param(Tensor::from_slice(&[3.0], &[1]).unwrap());
    let x = Var::param(Tensor::from_slice(&[2.0], &[1]).unwrap());
    let y = w.mul(&x).unwrap().sum().unwrap();
    w.update(|t| t.data_mut()[0] = 100.0);
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().data(), &[3.0]);
    assert_eq!(w.item().unwrap(), 100.0);
}

#[test]
fn graphs_on_many_threads_accumulate_into_shared_leaves() {
    let w = Var::param(Tensor::from_slice(&[1.0, 2.0], &[2]).unwrap());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..10 {
                    w.scale(2.0).unwrap().sum().unwrap().backward().unwrap();
                }
            });
        }
    });
    // 80 passes of gradient 2, exactly representable in any order.
    assert_eq!(w.grad().unwrap().data(), &[160.0, 160.0]);
}
