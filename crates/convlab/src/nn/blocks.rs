//! Containers: [`Sequential`] (PyTorch's, with index or given names),
//! [`Residual`] (`x + f(x)`) and [`Concat`] (`cat([f1(x), f2(x)], dim=1)`).

use super::{describe_children, display_from_describe, forward_child, Module};
use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;

/// Refuses names PyTorch's `add_module` refuses, and duplicates.
fn check_name(op: &'static str, name: &str, taken: &[(String, Box<dyn Module>)]) -> Result<()> {
    if name.is_empty() || name.contains('.') {
        return Err(Error::param(
            op,
            "name",
            format!("'{name}' is not a module name: it must be non-empty and contain no '.'"),
        ));
    }
    if taken.iter().any(|(n, _)| n == name) {
        return Err(Error::param(
            op,
            "name",
            format!("a child is already named '{name}'"),
        ));
    }
    Ok(())
}

/// `nn.Sequential`: children applied in order; parameters named
/// `"{index}.{name}"` as in PyTorch's `state_dict`, or by the names given
/// to [`Sequential::push_named`] (`nn.Sequential(OrderedDict(...))`).
#[derive(Default)]
pub struct Sequential {
    children: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    /// An empty sequence.
    pub fn new() -> Sequential {
        Sequential::default()
    }
    /// Append a child named by its index (builder style).
    pub fn push(mut self, m: impl Module + 'static) -> Sequential {
        self.push_boxed(Box::new(m));
        self
    }
    /// Append a child with a name, as `nn.Sequential(OrderedDict([...]))`
    /// (`features.conv0.weight`).
    ///
    /// # Errors
    /// [`Error::Param`] for an empty name, one with a `.`, or one taken.
    pub fn push_named(mut self, name: &str, m: impl Module + 'static) -> Result<Sequential> {
        check_name("Sequential", name, &self.children)?;
        self.children.push((name.to_string(), Box::new(m)));
        Ok(self)
    }
    /// Append a boxed child named by its index.
    pub fn push_boxed(&mut self, m: Box<dyn Module>) {
        let name = self.children.len().to_string();
        self.children.push((name, m));
    }
    /// The children with their names.
    pub fn named_children(&self) -> &[(String, Box<dyn Module>)] {
        &self.children
    }
    /// The child named `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Module> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_ref())
    }
    /// The number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }
    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, input: &Var) -> Result<Var> {
        let mut x = input.clone();
        for (name, c) in &self.children {
            x = forward_child(name, c.as_ref(), &x)?;
        }
        Ok(x)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.children
            .iter()
            .map(|(n, m)| (n.clone(), m.as_ref() as &dyn Module))
            .collect()
    }
    fn describe(&self) -> String {
        describe_children("Sequential", self)
    }
}

/// A residual block, `post(body(x) + shortcut(x))`: torchvision's
/// `BasicBlock` and `Bottleneck` shape. The body's children are the block's
/// own (names `conv1.weight`, `bn1.running_mean`, as torchvision's); the
/// shortcut (identity unless given) is a named child (`downsample`).
///
/// ```
/// use convlab::{nn::*, autograd::Var, seeded_rng, Tensor};
/// let mut rng = seeded_rng(0);
/// let body = Sequential::new()
///     .push_named("conv1", Conv2d::new(Conv2dConfig::new(4, 4, 3).padding(1).bias(false), &mut rng)?)?
///     .push_named("bn1", BatchNorm2d::new(4))?;
/// let block = Residual::new(body).post(ReLU)?.named("BasicBlock");
/// let y = block.forward(&Var::new(Tensor::ones(&[1, 4, 5, 5])?))?;
/// assert_eq!(y.shape(), vec![1, 4, 5, 5]);
/// let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["conv1.weight", "bn1.weight", "bn1.bias"]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct Residual {
    body: Sequential,
    shortcut: Option<(String, Box<dyn Module>)>,
    post: Option<Box<dyn Module>>,
    name: String,
}

impl Residual {
    /// `x + body(x)`.
    pub fn new(body: Sequential) -> Residual {
        Residual {
            body,
            shortcut: None,
            post: None,
            name: "Residual".to_string(),
        }
    }
    /// Replace the identity shortcut: `body(x) + shortcut(x)` (a strided
    /// 1x1 conv and BatchNorm, torchvision's `downsample`).
    ///
    /// # Errors
    /// [`Error::Param`] for a bad name or one the body uses.
    pub fn shortcut(mut self, name: &str, m: impl Module + 'static) -> Result<Residual> {
        check_name("Residual", name, &self.body.children)?;
        self.shortcut = Some((name.to_string(), Box::new(m)));
        Ok(self)
    }
    /// Apply `m` to the sum (the ReLU after a ResNet block's addition). It
    /// has no name of its own (torchvision's blocks reuse their `relu`), so
    /// it must hold no parameters or buffers.
    ///
    /// # Errors
    /// [`Error::Param`] when `m` has parameters or buffers.
    pub fn post(mut self, m: impl Module + 'static) -> Result<Residual> {
        if !m.named_parameters().is_empty() || !m.named_buffers().is_empty() {
            return Err(Error::param(
                "Residual",
                "post",
                format!(
                    "{} has parameters or buffers, which an unnamed module cannot save; put it in a Sequential after the block",
                    m.describe()
                ),
            ));
        }
        self.post = Some(Box::new(m));
        Ok(self)
    }
    /// The type name printed by `Display` (`BasicBlock`, `Bottleneck`).
    pub fn named(mut self, type_name: &str) -> Residual {
        self.name = type_name.to_string();
        self
    }
}

impl Module for Residual {
    fn forward(&self, input: &Var) -> Result<Var> {
        let f = self.body.forward(input)?;
        let s = match &self.shortcut {
            Some((name, m)) => forward_child(name, m.as_ref(), input)?,
            None => input.clone(),
        };
        if f.shape() != s.shape() {
            return Err(Error::shape(
                "Residual",
                format!(
                    "the body gives {} but the shortcut {}; a shortcut must match the body's shape",
                    Dims(&f.shape()),
                    Dims(&s.shape())
                ),
            ));
        }
        let sum = f.add(&s)?;
        match &self.post {
            Some(m) => m.forward(&sum),
            None => Ok(sum),
        }
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out = self.body.children();
        if let Some((n, m)) = &self.shortcut {
            out.push((n.clone(), m.as_ref() as &dyn Module));
        }
        out
    }
    fn describe(&self) -> String {
        describe_children(&self.name, self)
    }
}

/// One part of a [`Concat`].
enum Part {
    /// The block's input itself (DenseNet's `cat([x, f(x)])`).
    Input,
    /// A named branch.
    Branch(String, Box<dyn Module>),
    /// A sequence whose children are the block's own (no name of its own).
    Inline(Sequential),
}

/// Concatenation along the channels, `cat([f1(x), f2(x), ...], dim=1)`:
/// GoogLeNet's Inception (`branch1`, ..., `branch4`) and DenseNet's layers
/// (`cat([x, f(x)])`). Parts must agree in every dimension but the second.
///
/// ```
/// use convlab::{nn::*, autograd::Var, Tensor};
/// let dense = Concat::new().input().inline(Sequential::new().push_named("relu1", ReLU)?);
/// let y = dense.forward(&Var::new(Tensor::ones(&[1, 3, 2, 2])?))?;
/// assert_eq!(y.shape(), vec![1, 6, 2, 2]);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Default)]
pub struct Concat {
    parts: Vec<Part>,
    name: Option<String>,
}

impl Concat {
    /// A concatenation with no part yet.
    pub fn new() -> Concat {
        Concat::default()
    }
    /// Append the block's input as a part.
    pub fn input(mut self) -> Concat {
        self.parts.push(Part::Input);
        self
    }
    /// Append a named branch (`branch1.conv.weight`).
    ///
    /// # Errors
    /// [`Error::Param`] for a bad name or one already used.
    pub fn branch(mut self, name: &str, m: impl Module + 'static) -> Result<Concat> {
        check_name("Concat", name, &[])?;
        if self.children().iter().any(|(n, _)| n == name) {
            return Err(Error::param(
                "Concat",
                "name",
                format!("a child is already named '{name}'"),
            ));
        }
        self.parts.push(Part::Branch(name.to_string(), Box::new(m)));
        Ok(self)
    }
    /// Append a sequence whose children become the block's own (DenseNet's
    /// `norm1`, `relu1`, `conv1`, ... directly under `denselayer1`).
    pub fn inline(mut self, body: Sequential) -> Concat {
        self.parts.push(Part::Inline(body));
        self
    }
    /// The type name printed by `Display` (`Inception`, `_DenseLayer`).
    pub fn named(mut self, type_name: &str) -> Concat {
        self.name = Some(type_name.to_string());
        self
    }
}

impl Module for Concat {
    fn forward(&self, input: &Var) -> Result<Var> {
        let mut outs = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            outs.push(match part {
                Part::Input => input.clone(),
                Part::Branch(name, m) => forward_child(name, m.as_ref(), input)?,
                Part::Inline(seq) => seq.forward(input)?,
            });
        }
        cat_channels(&outs)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Input => {}
                Part::Branch(n, m) => out.push((n.clone(), m.as_ref() as &dyn Module)),
                Part::Inline(seq) => out.extend(seq.children()),
            }
        }
        out
    }
    fn describe(&self) -> String {
        describe_children(self.name.as_deref().unwrap_or("Concat"), self)
    }
}

/// `cat(parts, dim=1)` for `[N, C_i, ...]` parts; the gradient splits back.
fn cat_channels(parts: &[Var]) -> Result<Var> {
    const OP: &str = "cat";
    if parts.is_empty() {
        return Err(Error::shape(OP, "expected a non-empty list of tensors"));
    }
    let values: Vec<_> = parts.iter().map(Var::value).collect();
    let shape0 = values[0].shape().to_vec();
    if shape0.len() < 2 {
        return Err(Error::shape(
            OP,
            format!(
                "dim 1 is out of range for a part of shape {}",
                Dims(&shape0)
            ),
        ));
    }
    for v in &values[1..] {
        let s = v.shape();
        if s.len() != shape0.len() || s[0] != shape0[0] || s[2..] != shape0[2..] {
            return Err(Error::shape(
                OP,
                format!(
                    "sizes of tensors must match except in dimension 1: {} and {}",
                    Dims(&shape0),
                    Dims(s)
                ),
            ));
        }
    }
    let n = shape0[0];
    let inner: usize = shape0[2..].iter().product();
    let widths: Vec<usize> = values.iter().map(|v| v.shape()[1] * inner).collect();
    let total: usize = widths.iter().sum();
    let mut shape = shape0.clone();
    shape[1] = values.iter().map(|v| v.shape()[1]).sum();
    crate::memory::check_f32(OP, n.saturating_mul(total))?;
    let mut data = Vec::with_capacity(n * total);
    for i in 0..n {
        for (v, &w) in values.iter().zip(&widths) {
            data.extend_from_slice(&v.data()[i * w..(i + 1) * w]);
        }
    }
    let y = Tensor::from_vec(data, &shape)?;
    let shapes: Vec<Vec<usize>> = values.iter().map(|v| v.shape().to_vec()).collect();
    let refs: Vec<&Var> = parts.iter().collect();
    Ok(Var::from_op(y, "Cat", &refs, move |g| {
        let gd = g.data();
        let mut grads = Vec::with_capacity(shapes.len());
        let mut offset = 0;
        for (s, &w) in shapes.iter().zip(&widths) {
            let mut part = Vec::with_capacity(n * w);
            for i in 0..n {
                let start = i * total + offset;
                part.extend_from_slice(&gd[start..start + w]);
            }
            offset += w;
            grads.push(Some(Tensor::from_vec(part, s)?));
        }
        Ok(grads)
    }))
}

display_from_describe!(Sequential, Residual, Concat);
