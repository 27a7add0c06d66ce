//! Reverse-mode automatic differentiation over a graph of [`Var`]s.
//!
//! Each op (in `ops.rs`) computes its value with the functional ops and
//! records, right beside it, a closure that maps the gradient of its output
//! to the gradients of its inputs. [`Var::backward`] sorts the graph
//! topologically and runs those closures once, in reverse. Gradients are kept
//! on leaves that require them, as in PyTorch.
//!
//! ```
//! use convlab::{autograd::Var, Tensor};
//! let w = Var::param(Tensor::from_rows(&[[2.0, -1.0]])?);
//! let x = Var::new(Tensor::from_rows(&[[3.0], [4.0]])?);
//! let loss = w.matmul(&x)?.square()?.sum()?; // (2*3 - 4)^2 = 4
//! loss.backward()?;
//! assert_eq!(loss.item()?, 4.0);
//! assert_eq!(w.grad().unwrap().data(), &[12.0, 16.0]); // 2 * 2 * x
//! # Ok::<(), convlab::Error>(())
//! ```

mod ops;
mod pool;

use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Maps the gradient of a node's output to the gradients of its parents
/// (`None` for a parent that needs none).
type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>>>;

struct Node {
    value: RefCell<Tensor>,
    grad: RefCell<Option<Tensor>>,
    requires_grad: bool,
    parents: Vec<Var>,
    backward: Option<BackwardFn>,
    /// The op that made this node, for printing (`grad_fn=<Conv2dBackward0>`).
    op: &'static str,
}

/// A tensor in the autograd graph: a value, and for those that require it,
/// a gradient filled by [`Var::backward`]. Cloning a `Var` is cheap and
/// shares the node.
#[derive(Clone)]
pub struct Var(Rc<Node>);

thread_local! {
    static NO_GRAD: Cell<usize> = const { Cell::new(0) };
}

/// Run `f` without recording the graph (PyTorch's `torch.no_grad()`):
/// results require no gradient and hold no reference to their inputs.
///
/// ```
/// use convlab::{autograd::{no_grad, Var}, Tensor};
/// let w = Var::param(Tensor::ones(&[2])?);
/// let y = no_grad(|| w.scale(3.0))?;
/// assert!(!y.requires_grad());
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_GRAD.with(|c| c.set(c.get() - 1));
        }
    }
    NO_GRAD.with(|c| c.set(c.get() + 1));
    let _reset = Reset;
    f()
}

/// Whether the graph is being recorded on this thread.
pub fn is_grad_enabled() -> bool {
    NO_GRAD.with(|c| c.get() == 0)
}

impl Var {
    fn leaf(value: Tensor, requires_grad: bool) -> Var {
        Var(Rc::new(Node {
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad,
            parents: Vec::new(),
            backward: None,
            op: "",
        }))
    }

    /// A constant: no gradient flows into it.
    pub fn new(value: Tensor) -> Var {
        Var::leaf(value, false)
    }

    /// A leaf that requires a gradient (a parameter), like
    /// `torch.tensor(..., requires_grad=True)`.
    pub fn param(value: Tensor) -> Var {
        Var::leaf(value, true)
    }

    /// Record the result of an op. When no input requires a gradient (or
    /// under [`no_grad`]), the node keeps neither its inputs nor the closure.
    pub(crate) fn from_op(
        value: Tensor,
        op: &'static str,
        parents: &[&Var],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + 'static,
    ) -> Var {
        let requires_grad = is_grad_enabled() && parents.iter().any(|p| p.requires_grad());
        if !requires_grad {
            return Var::new(value);
        }
        Var(Rc::new(Node {
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad: true,
            parents: parents.iter().map(|&p| p.clone()).collect(),
            backward: Some(Box::new(backward)),
            op,
        }))
    }

    /// The value (borrowed).
    pub fn value(&self) -> Ref<'_, Tensor> {
        self.0.value.borrow()
    }

    /// A copy of the value.
    pub fn tensor(&self) -> Tensor {
        self.0.value.borrow().clone()
    }

    /// The value's shape.
    pub fn shape(&self) -> Vec<usize> {
        self.0.value.borrow().shape().to_vec()
    }

    /// The single value of a one-element variable.
    pub fn item(&self) -> Result<f32> {
        self.0.value.borrow().item()
    }

    /// Replace the value of a leaf (optimizers, weight loading). Errors on a
    /// shape change or on a non-leaf.
    pub fn set_value(&self, value: Tensor) -> Result<()> {
        if self.0.backward.is_some() {
            return Err(Error::autograd(
                "set_value",
                "only leaf variables can be assigned",
            ));
        }
        let mut v = self.0.value.borrow_mut();
        if v.shape() != value.shape() {
            return Err(Error::shape(
                "set_value",
                format!(
                    "new value has shape {} but the variable has shape {}",
                    Dims(value.shape()),
                    Dims(v.shape())
                ),
            ));
        }
        *v = value;
        Ok(())
    }

    /// Change the value of a leaf in place with `f`.
    pub fn update(&self, f: impl FnOnce(&mut Tensor)) {
        f(&mut self.0.value.borrow_mut());
    }

    /// Whether gradients flow into this variable.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this is a leaf (made by [`Var::new`] / [`Var::param`], not an op).
    pub fn is_leaf(&self) -> bool {
        self.0.backward.is_none()
    }

    /// The gradient accumulated by [`Var::backward`], on leaves that require one.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.borrow().clone()
    }

    /// Forget the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }

    /// The same value, cut from the graph.
    pub fn detach(&self) -> Var {
        Var::new(self.tensor())
    }

    fn id(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }

    /// Backpropagate from this scalar: every leaf that requires a gradient
    /// and that this value depends on gets `d self / d leaf` added to its
    /// gradient.
    pub fn backward(&self) -> Result<()> {
        let shape = self.shape();
        if shape.iter().product::<usize>() != 1 {
            return Err(Error::autograd(
                "backward",
                format!(
                    "grad can be implicitly created only for scalar outputs, but the output has shape {}",
                    Dims(&shape)
                ),
            ));
        }
        self.backward_with(Tensor::ones(&shape)?)
    }

    /// Backpropagate `grad` (the gradient of some scalar with respect to this
    /// variable, same shape) through the graph.
    pub fn backward_with(&self, grad: Tensor) -> Result<()> {
        if grad.shape() != self.shape().as_slice() {
            return Err(Error::shape(
                "backward",
                format!(
                    "gradient has shape {} but the output has shape {}",
                    Dims(grad.shape()),
                    Dims(&self.shape())
                ),
            ));
        }
        if !self.requires_grad() {
            return Err(Error::autograd(
                "backward",
                "the output does not require grad: no input was a parameter (or it was computed under no_grad)",
            ));
        }
        let order = self.topological_order();
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        grads.insert(self.id(), grad);
        for node in order.iter().rev() {
            let Some(g) = grads.remove(&node.id()) else {
                continue;
            };
            match &node.0.backward {
                None => {
                    let mut slot = node.0.grad.borrow_mut();
                    match slot.as_mut() {
                        Some(acc) => acc.add_assign(&g)?,
                        None => *slot = Some(g),
                    }
                }
                Some(f) => {
                    let parent_grads = f(&g)?;
                    for (p, pg) in node.0.parents.iter().zip(parent_grads) {
                        let Some(pg) = pg else { continue };
                        if !p.requires_grad() {
                            continue;
                        }
                        match grads.get_mut(&p.id()) {
                            Some(acc) => acc.add_assign(&pg)?,
                            None => {
                                grads.insert(p.id(), pg);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Nodes that require a gradient, parents before children (iterative DFS,
    /// so deep graphs cannot overflow the stack).
    fn topological_order(&self) -> Vec<Var> {
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<(Var, bool)> = vec![(self.clone(), false)];
        while let Some((v, expanded)) = stack.pop() {
            if expanded {
                order.push(v);
                continue;
            }
            if !seen.insert(v.id()) {
                continue;
            }
            stack.push((v.clone(), true));
            for p in &v.0.parents {
                if p.requires_grad() && !seen.contains(&p.id()) {
                    stack.push((p.clone(), false));
                }
            }
        }
        order
    }
}

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suffix = if !self.requires_grad() {
            String::new()
        } else if self.is_leaf() {
            ", requires_grad=True".to_string()
        } else {
            format!(", grad_fn=<{}Backward0>", self.0.op)
        };
        f.write_str(&crate::format_tensor(&self.value(), &suffix))
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<Tensor> for Var {
    fn from(t: Tensor) -> Var {
        Var::new(t)
    }
}
