//! Layers with PyTorch's names, defaults and initialisation, and the
//! [`Module`] trait that ties them together.
//!
//! ```
//! use convlab::{nn::*, autograd::Var, seeded_rng, Tensor};
//! let mut rng = seeded_rng(0);
//! let mut net = Sequential::new()
//!     .push(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng)?)
//!     .push(BatchNorm2d::new(4))
//!     .push(ReLU)
//!     .push(Flatten)
//!     .push(Dropout::new(0.5, &mut rng)?)
//!     .push(Linear::new(4 * 8 * 8, 10, &mut rng)?);
//! net.eval();
//! let y = net.forward(&Var::new(Tensor::zeros(&[2, 1, 8, 8])?))?;
//! assert_eq!(y.shape(), vec![2, 10]);
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"]);
//! let buffers: Vec<String> = net.named_buffers().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(buffers, ["1.running_mean", "1.running_var", "1.num_batches_tracked"]);
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! # Nested names
//!
//! A module lists its direct children with [`Module::children`]; every
//! name (`layer1.0.bn1.running_mean`), `train()`/`eval()`, `Display` and
//! state dicts follow from it. A user module with named fields:
//!
//! ```
//! use convlab::{nn::*, autograd::Var, seeded_rng, Result};
//! struct Block { conv1: Conv2d, bn1: BatchNorm }
//! impl Module for Block {
//!     fn forward(&self, x: &Var) -> Result<Var> {
//!         self.bn1.forward(&self.conv1.forward(x)?)?.relu()
//!     }
//!     fn describe(&self) -> String { describe_children("Block", self) }
//!     fn children(&self) -> Vec<(String, &dyn Module)> {
//!         vec![("conv1".into(), &self.conv1), ("bn1".into(), &self.bn1)]
//!     }
//! }
//! let mut rng = seeded_rng(0);
//! let block = Block {
//!     conv1: Conv2d::new(Conv2dConfig::new(3, 8, 3).bias(false), &mut rng)?,
//!     bn1: BatchNorm2d::new(8),
//! };
//! let net = Sequential::new().push_named("layer1", block)?;
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["layer1.conv1.weight", "layer1.bn1.weight", "layer1.bn1.bias"]);
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! # Threads
//!
//! Every module is `Send + Sync`: share one as `Arc<M>` and call
//! `forward` from any number of threads; each call builds its own graph.
//! In eval mode a forward pass reads the module and changes nothing, so
//! every thread gets the bits one thread would. `train()` and `eval()`
//! take `&mut self`, so a shared model cannot switch modes under other
//! threads' feet (switch it before sharing). In train mode, BatchNorm
//! updates its running statistics under a lock (concurrent training
//! forwards are applied one at a time, in the order they take it), and
//! each [`Dropout`] call draws its mask from its own seed and a call
//! counter: a single-threaded run is reproducible, concurrent calls get
//! distinct masks in an order the scheduler picks.

mod blocks;
mod buffer;
mod conv1d;
mod conv3d;
mod dropout;
pub mod init;
mod layers;
mod norm;
mod pool;
mod resample;

pub use blocks::{Concat, Residual, Sequential};
pub use buffer::Buffer;
pub use conv1d::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};
pub use conv3d::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig};
pub use dropout::{Dropout, Dropout2d};
pub use layers::{
    Conv2d, Conv2dConfig, ConvTranspose2d, Flatten, Identity, Linear, ReLU, Sigmoid, Tanh,
};
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig};
pub use pool::{
    AdaptiveAvgPool, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool,
    AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool, AvgPool1d, AvgPool2d,
    AvgPool3d, FractionalMaxPool, FractionalMaxPool2d, FractionalMaxPool3d, LPPool, LPPool1d,
    LPPool2d, LPPool3d, MaxPool, MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool, MaxUnpool1d,
    MaxUnpool2d, MaxUnpool3d,
};
pub use resample::{
    ChannelShuffle, CircularPad, CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad,
    ConstantPad1d, ConstantPad2d, ConstantPad3d, PadSides, PixelShuffle, PixelUnshuffle,
    ReflectionPad, ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad,
    ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, Upsample, ZeroPad, ZeroPad1d, ZeroPad2d,
    ZeroPad3d,
};

use crate::autograd::Var;
use crate::error::{Error, Result};
use std::fmt;

/// A layer or network: a forward function, and named parameters, buffers
/// and children.
///
/// Only [`Module::forward`] and [`Module::describe`] are required. A layer
/// with weights lists them in [`Module::own_parameters`], one with state in
/// [`Module::own_buffers`], a container its parts in [`Module::children`];
/// a layer that behaves differently in training overrides
/// [`Module::set_own_training`]. Everything else (nested names, `train()`,
/// `eval()`, freezing) is provided from those.
pub trait Module: Send + Sync {
    /// Apply the module to `input`.
    fn forward(&self, input: &Var) -> Result<Var>;

    /// PyTorch's `repr` of the module: one line for a layer
    /// (`Conv2d(1, 16, kernel_size=(3, 3), ...)`), the children indented
    /// below for a container (see [`describe_children`]).
    fn describe(&self) -> String;

    /// The direct children with their names, in PyTorch's order
    /// (`"0"`, `"1"`, ... in a [`Sequential`]; field names in a block).
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }

    /// This module's own parameters (not its children's) with their local
    /// names (`weight`, `bias`).
    fn own_parameters(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// This module's own buffers (state that is not a parameter, such as
    /// BatchNorm's `running_mean`), with their local names.
    fn own_buffers(&self) -> Vec<(String, Buffer)> {
        Vec::new()
    }

    /// Switch this module alone (not its children) to training or
    /// evaluation behaviour; [`Module::train`] and [`Module::eval`] call it
    /// on every module of a network.
    fn set_own_training(&self, training: bool) {
        let _ = training;
    }

    /// Parameters with PyTorch's `named_parameters()` names: the module's
    /// own first, then each child's under `"{child}."`.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = self.own_parameters();
        for (name, child) in self.children() {
            out.extend(
                child
                    .named_parameters()
                    .into_iter()
                    .map(|(n, v)| (format!("{name}.{n}"), v)),
            );
        }
        out
    }

    /// The parameters, in `named_parameters` order.
    fn parameters(&self) -> Vec<Var> {
        self.named_parameters()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Buffers with PyTorch's `named_buffers()` names
    /// (`1.running_mean`, `layer1.0.bn1.num_batches_tracked`).
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        let mut out = self.own_buffers();
        for (name, child) in self.children() {
            out.extend(
                child
                    .named_buffers()
                    .into_iter()
                    .map(|(n, b)| (format!("{name}.{n}"), b)),
            );
        }
        out
    }

    /// Training mode (`model.train()`), on this module and every descendant:
    /// BatchNorm normalises with batch statistics and updates its running
    /// ones, Dropout drops.
    fn train(&mut self) {
        set_training(self, true);
    }

    /// Evaluation mode (`model.eval()`), on this module and every
    /// descendant: BatchNorm uses its running statistics, Dropout passes
    /// its input through.
    fn eval(&mut self) {
        set_training(self, false);
    }

    /// Forget every parameter's gradient.
    fn zero_grad(&self) {
        self.parameters().iter().for_each(Var::zero_grad);
    }

    /// Turn gradients on or off for every parameter (PyTorch's
    /// `requires_grad_`): frozen layers keep their weights during training.
    fn requires_grad_(&self, requires_grad: bool) {
        for p in self.parameters() {
            // Parameters are leaves, for which this cannot fail.
            let _ = p.requires_grad_(requires_grad);
        }
    }
}

fn set_training<M: Module + ?Sized>(m: &M, training: bool) {
    m.set_own_training(training);
    for (_, child) in m.children() {
        set_training(child, training);
    }
}

/// A container's `describe`, as PyTorch prints one: the type name, then
/// each child as `(name): repr`, indented by two spaces; `Name()` when
/// there is no child.
///
/// ```
/// use convlab::nn::*;
/// let net = Sequential::new().push(ReLU).push(Sequential::new().push(Identity));
/// assert_eq!(
///     net.to_string(),
///     "Sequential(\n  (0): ReLU()\n  (1): Sequential(\n    (0): Identity()\n  )\n)"
/// );
/// ```
pub fn describe_children<M: Module + ?Sized>(type_name: &str, module: &M) -> String {
    let children = module.children();
    if children.is_empty() {
        return format!("{type_name}()");
    }
    let mut s = format!("{type_name}(\n");
    for (name, child) in children {
        let repr = child.describe().replace('\n', "\n  ");
        s += &format!("  ({name}): {repr}\n");
    }
    s + ")"
}

/// Runs `child.forward(input)`, naming the child in an error:
/// `2 (Conv2d(6, 16, kernel_size=(5, 5), ...)): conv2d: ...`; an error
/// already inside a nested container gets `name.` in front of its path.
/// Containers call it for each child; user containers can too.
///
/// # Errors
/// The child's error, wrapped in [`Error::InModule`].
pub fn forward_child(name: &str, child: &dyn Module, input: &Var) -> Result<Var> {
    child.forward(input).map_err(|e| match e {
        Error::InModule {
            path,
            layer,
            source,
        } => Error::InModule {
            path: format!("{name}.{path}"),
            layer,
            source,
        },
        other => Error::InModule {
            path: name.to_string(),
            layer: short_description(&child.describe()),
            source: Box::new(other),
        },
    })
}

/// The first line of a description, its arguments cut after the third:
/// `Conv2d(6, 16, kernel_size=(5, 5), ...)`, `Sequential(...)`.
fn short_description(describe: &str) -> String {
    let line = describe.lines().next().unwrap_or("");
    if let Some(head) = line.strip_suffix('(') {
        return format!("{head}(...)");
    }
    let mut depth = 0usize;
    let mut args = 0usize;
    for (i, ch) in line.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => {
                args += 1;
                if args == 3 {
                    return format!("{}, ...)", &line[..i]);
                }
            }
            _ => {}
        }
    }
    line.to_string()
}

impl fmt::Display for dyn Module + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `Display` as PyTorch's `print(model)`, from `describe`.
macro_rules! display_from_describe {
    ($($t:ty),* $(,)?) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::nn::Module::describe(self))
            }
        }
    )*};
}
pub(crate) use display_from_describe;

display_from_describe!(AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d);

/// A shared module is a module: the same layer can sit in two places
/// (weight sharing), or a model served from threads can be a part of
/// another.
impl<M: Module + ?Sized> Module for std::sync::Arc<M> {
    fn forward(&self, input: &Var) -> Result<Var> {
        (**self).forward(input)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        (**self).children()
    }
    fn own_parameters(&self) -> Vec<(String, Var)> {
        (**self).own_parameters()
    }
    fn own_buffers(&self) -> Vec<(String, Buffer)> {
        (**self).own_buffers()
    }
    fn set_own_training(&self, training: bool) {
        (**self).set_own_training(training)
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        (**self).named_parameters()
    }
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        (**self).named_buffers()
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, input: &Var) -> Result<Var> {
        (**self).forward(input)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        (**self).children()
    }
    fn own_parameters(&self) -> Vec<(String, Var)> {
        (**self).own_parameters()
    }
    fn own_buffers(&self) -> Vec<(String, Buffer)> {
        (**self).own_buffers()
    }
    fn set_own_training(&self, training: bool) {
        (**self).set_own_training(training)
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        (**self).named_parameters()
    }
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        (**self).named_buffers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_descriptions_cut_after_three_arguments() {
        assert_eq!(
            short_description("Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))"),
            "Conv2d(6, 16, kernel_size=(5, 5), ...)"
        );
        assert_eq!(
            short_description("Linear(in_features=4, out_features=2, bias=True)"),
            "Linear(in_features=4, out_features=2, bias=True)"
        );
        assert_eq!(
            short_description("Sequential(\n  (0): ReLU()\n)"),
            "Sequential(...)"
        );
        assert_eq!(short_description("ReLU()"), "ReLU()");
    }
}
