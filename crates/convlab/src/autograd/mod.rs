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

mod conv_nd;
mod norm;
mod ops;
mod pool;
mod resample;
mod tensor_ops;

pub use norm::BatchStats;

use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// Maps the gradient of a node's output to the gradients of its parents
/// (`None` for a parent that needs none). `Send + Sync` so that graphs, and
/// the models that make them, can cross threads; closures capture owned
/// values (tensors, shapes), never borrowed ones.
type BackwardFn = Arc<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// What an op's node keeps for the backward pass: its inputs and the
/// closure. [`Var::backward`] takes it (PyTorch frees saved tensors the same
/// way) unless the graph is retained.
struct Graph {
    parents: Vec<Var>,
    backward: BackwardFn,
}

struct Node {
    /// Shared, so ops can keep their inputs for the backward pass without
    /// copying them; a leaf's update copies only while a graph still holds
    /// the old value.
    value: RwLock<Arc<Tensor>>,
    grad: Mutex<Option<Tensor>>,
    requires_grad: AtomicBool,
    /// Made by [`Var::new`] / [`Var::param`] rather than by an op.
    leaf: bool,
    /// `None` on leaves, and on op nodes whose graph a backward pass freed.
    graph: Mutex<Option<Graph>>,
    /// The op that made this node, for printing (`grad_fn=<Conv2dBackward0>`).
    op: &'static str,
}

/// Locks that a panic elsewhere cannot poison for good: every value behind
/// them is valid after any partial update (each is replaced whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Node {
    /// Frees the graph behind this node with a loop instead of recursion:
    /// dropping a chain of a million ops would otherwise nest a million
    /// `drop` calls and overflow the stack.
    fn drop(&mut self) {
        let Some(graph) = self
            .graph
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let mut stack = graph.parents;
        while let Some(var) = stack.pop() {
            // Only the last owner of a node takes its parents; `into_inner`
            // gives it to exactly one of several threads dropping at once.
            if let Some(mut node) = Arc::into_inner(var.0) {
                let graph = node
                    .graph
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(g) = graph {
                    stack.extend(g.parents);
                }
            }
        }
    }
}

/// A tensor in the autograd graph: a value, and for those that require it,
/// a gradient filled by [`Var::backward`]. Cloning a `Var` is cheap and
/// shares the node.
///
/// `Var` is `Send + Sync`: parameters can be shared by models used from
/// several threads, and each thread's forward pass builds its own graph.
/// Gradients of a leaf used by graphs on several threads accumulate under
/// a lock, in the order the backward passes reach it.
#[derive(Clone)]
pub struct Var(Arc<Node>);

thread_local! {
    static NO_GRAD: Cell<usize> = const { Cell::new(0) };
}

/// Run `f` without recording the graph (PyTorch's `torch.no_grad()`):
/// results require no gradient and hold no reference to their inputs.
/// Like PyTorch's, the mode is per thread: other threads (rayon's workers
/// included) keep recording.
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
    fn leaf(value: Arc<Tensor>, requires_grad: bool) -> Var {
        Var(Arc::new(Node {
            value: RwLock::new(value),
            grad: Mutex::new(None),
            requires_grad: AtomicBool::new(requires_grad),
            leaf: true,
            graph: Mutex::new(None),
            op: "",
        }))
    }

    /// A constant: no gradient flows into it.
    pub fn new(value: Tensor) -> Var {
        Var::leaf(Arc::new(value), false)
    }

    /// A leaf that requires a gradient (a parameter), like
    /// `torch.tensor(..., requires_grad=True)`.
    pub fn param(value: Tensor) -> Var {
        Var::leaf(Arc::new(value), true)
    }

    /// Record the result of an op. When no input requires a gradient (or
    /// under [`no_grad`]), the node keeps neither its inputs nor the closure.
    pub(crate) fn from_op(
        value: Tensor,
        op: &'static str,
        parents: &[&Var],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Var {
        let requires_grad = is_grad_enabled() && parents.iter().any(|p| p.requires_grad());
        if !requires_grad {
            return Var::new(value);
        }
        Var(Arc::new(Node {
            value: RwLock::new(Arc::new(value)),
            grad: Mutex::new(None),
            requires_grad: AtomicBool::new(true),
            leaf: false,
            graph: Mutex::new(Some(Graph {
                parents: parents.iter().map(|&p| p.clone()).collect(),
                backward: Arc::new(backward),
            })),
            op,
        }))
    }

    /// The value: a shared handle, cheap to take, that stays valid (and
    /// unchanged) when the variable is updated later.
    pub fn value(&self) -> Arc<Tensor> {
        self.0
            .value
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A copy of the value.
    pub fn tensor(&self) -> Tensor {
        (*self.value()).clone()
    }

    /// The value's shape.
    pub fn shape(&self) -> Vec<usize> {
        self.value().shape().to_vec()
    }

    /// The single value of a one-element variable.
    pub fn item(&self) -> Result<f32> {
        self.value().item()
    }

    /// Replace the value of a leaf (optimizers, weight loading). Errors on a
    /// shape change or on a non-leaf. Graphs recorded before keep the value
    /// they were computed with.
    pub fn set_value(&self, value: Tensor) -> Result<()> {
        if !self.0.leaf {
            return Err(Error::autograd(
                "set_value",
                "only leaf variables can be assigned",
            ));
        }
        let mut v = self.0.value.write().unwrap_or_else(PoisonError::into_inner);
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
        *v = Arc::new(value);
        Ok(())
    }

    /// Change the value of a leaf in place with `f` (the data is copied
    /// first only when a recorded graph still holds it).
    pub fn update(&self, f: impl FnOnce(&mut Tensor)) {
        let mut v = self.0.value.write().unwrap_or_else(PoisonError::into_inner);
        f(Arc::make_mut(&mut v));
    }

    /// Whether gradients flow into this variable.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Turn gradient tracking of a leaf on or off, PyTorch's
    /// `requires_grad_`: a frozen parameter gets no gradient and graphs
    /// recorded from then on do not reach it.
    ///
    /// # Errors
    /// [`Error::Autograd`] when turning it off on a variable computed by an
    /// op (as PyTorch: use [`Var::detach`]).
    pub fn requires_grad_(&self, requires_grad: bool) -> Result<()> {
        if !self.0.leaf && !requires_grad {
            return Err(Error::autograd(
                "requires_grad_",
                "you can only change requires_grad flags of leaf variables; use detach() for a value without gradient",
            ));
        }
        self.0.requires_grad.store(requires_grad, Ordering::Relaxed);
        Ok(())
    }

    /// Whether this is a leaf (made by [`Var::new`] / [`Var::param`], not an op).
    pub fn is_leaf(&self) -> bool {
        self.0.leaf
    }

    /// The gradient accumulated by [`Var::backward`], on leaves that require one.
    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.0.grad).clone()
    }

    /// Forget the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *lock(&self.0.grad) = None;
    }

    /// The same value, cut from the graph (no copy).
    pub fn detach(&self) -> Var {
        Var::leaf(self.value(), false)
    }

    /// Whether `self` and `other` are the same variable (not just equal values).
    pub fn same(&self, other: &Var) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The node's address: equal for clones of one variable.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// Backpropagate from this scalar: every leaf that requires a gradient
    /// and that this value depends on gets `d self / d leaf` added to its
    /// gradient. The graph's saved values are freed, as PyTorch's
    /// `backward()`: a second call on it is an error (see
    /// [`Var::backward_retain_graph`]).
    ///
    /// ```
    /// use convlab::{autograd::Var, Tensor};
    /// let w = Var::param(Tensor::ones(&[2])?);
    /// let loss = w.square()?.sum()?;
    /// loss.backward()?;
    /// assert!(loss.backward().is_err()); // the graph was freed
    /// # Ok::<(), convlab::Error>(())
    /// ```
    pub fn backward(&self) -> Result<()> {
        self.backward_full(None, false)
    }

    /// [`Var::backward`] that keeps the graph, so it can be run again
    /// (`backward(retain_graph=True)`); gradients add up.
    pub fn backward_retain_graph(&self) -> Result<()> {
        self.backward_full(None, true)
    }

    /// Backpropagate `grad` (the gradient of some scalar with respect to this
    /// variable, same shape) through the graph, freeing it.
    pub fn backward_with(&self, grad: Tensor) -> Result<()> {
        self.backward_full(Some(grad), false)
    }

    /// PyTorch's `backward(gradient, retain_graph)`: `grad` defaults to 1
    /// for a one-element output.
    ///
    /// # Errors
    /// [`Error::Autograd`] when the output needs no gradient, when `grad` is
    /// missing for a non-scalar output, or when part of the graph was freed
    /// by an earlier backward pass (nothing is changed then); [`Error::Shape`]
    /// when `grad`'s shape differs from the output's.
    pub fn backward_full(&self, grad: Option<Tensor>, retain_graph: bool) -> Result<()> {
        let shape = self.shape();
        let grad = match grad {
            Some(g) => g,
            None if shape.iter().product::<usize>() == 1 => Tensor::ones(&shape)?,
            None => {
                return Err(Error::autograd(
                    "backward",
                    format!(
                        "grad can be implicitly created only for scalar outputs, but the output has shape {}",
                        Dims(&shape)
                    ),
                ))
            }
        };
        if grad.shape() != shape.as_slice() {
            return Err(Error::shape(
                "backward",
                format!(
                    "gradient has shape {} but the output has shape {}",
                    Dims(grad.shape()),
                    Dims(&shape)
                ),
            ));
        }
        if !self.requires_grad() {
            return Err(Error::autograd(
                "backward",
                "the output does not require grad: no input was a parameter (or it was computed under no_grad)",
            ));
        }
        let order = self.topological_order()?;
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        grads.insert(self.id(), grad);
        for node in order.iter().rev() {
            let Some(g) = grads.remove(&node.id()) else {
                continue;
            };
            if node.0.leaf {
                let mut slot = lock(&node.0.grad);
                match slot.as_mut() {
                    Some(acc) => acc.add_assign(&g)?,
                    None => *slot = Some(g),
                }
                continue;
            }
            let (parents, backward) = {
                let mut graph = lock(&node.0.graph);
                let Some(gr) = graph.as_ref() else {
                    // Freed since the order was taken (a backward pass on
                    // another thread through the same graph).
                    return Err(freed_graph());
                };
                let taken = (gr.parents.clone(), gr.backward.clone());
                if !retain_graph {
                    *graph = None;
                }
                taken
            };
            let parent_grads = backward(&g)?;
            drop(backward);
            for (p, pg) in parents.iter().zip(parent_grads) {
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
        Ok(())
    }

    /// Nodes that require a gradient, parents before children (iterative DFS,
    /// so deep graphs cannot overflow the stack). Errors, before anything is
    /// computed, when a node's graph was freed by an earlier backward pass.
    fn topological_order(&self) -> Result<Vec<Var>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<(Var, bool)> = vec![(self.clone(), false)];
        while let Some((v, expanded)) = stack.pop() {
            if expanded {
                order.push(v);
                continue;
            }
            if !seen.insert(v.id()) {
                continue;
            }
            let parents = if v.0.leaf {
                Vec::new()
            } else {
                match lock(&v.0.graph).as_ref() {
                    Some(g) => g.parents.clone(),
                    None => return Err(freed_graph()),
                }
            };
            stack.push((v, true));
            for p in parents {
                if p.requires_grad() && !seen.contains(&p.id()) {
                    stack.push((p, false));
                }
            }
        }
        Ok(order)
    }
}

fn freed_graph() -> Error {
    Error::autograd(
        "backward",
        "trying to backward through the graph a second time (its saved values were freed by the first backward); use backward_retain_graph() to backward through it more than once",
    )
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
