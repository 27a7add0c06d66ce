//! A [`Module`]'s parameters and buffers as PyTorch's `state_dict`: nested
//! names (`layer1.0.bn1.running_mean`), each module's parameters then its
//! buffers then its children, `num_batches_tracked` saved as int64. What
//! convlab saves, `model.load_state_dict(safetensors.torch.load_file(p))`
//! accepts, and what `safetensors.torch.save_file(model.state_dict(), p)`
//! writes, convlab loads — strictly, or reporting missing and unexpected
//! keys, with a prefix removed or added.
//!
//! ```
//! use convlab::{io, nn::*, seeded_rng};
//! let mut rng = seeded_rng(0);
//! let net = Sequential::new()
//!     .push(Conv2d::new(Conv2dConfig::new(1, 4, 3), &mut rng)?)
//!     .push(BatchNorm2d::new(4));
//! let names: Vec<String> = io::state_dict(&net).into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "1.weight", "1.bias",
//!                    "1.running_mean", "1.running_var", "1.num_batches_tracked"]);
//! // A checkpoint whose keys carry a prefix, loaded without it.
//! let saved = io::state_dict_with_prefix(&net, "model.");
//! let fresh = Sequential::new()
//!     .push(Conv2d::zeroed(Conv2dConfig::new(1, 4, 3))?)
//!     .push(BatchNorm2d::new(4));
//! let report = io::load_state_dict_with(&fresh, &saved, &io::LoadOptions::strict().prefix("model."))?;
//! assert!(report.missing_keys.is_empty() && report.unexpected_keys.is_empty());
//! # Ok::<(), convlab::Error>(())
//! ```

use super::{quoted, write_atomic};
use crate::error::{Dims, Error, Result};
use crate::nn::{Buffer, Module};
use crate::tensor::Tensor;
use ::safetensors::tensor::{Dtype, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// How many names an error lists before it says "and N more".
const LISTED: usize = 5;

/// One entry of a module's state: a parameter or a buffer.
enum Slot {
    Param(crate::autograd::Var),
    Buffer(Buffer),
}

impl Slot {
    fn shape(&self) -> Vec<usize> {
        match self {
            Slot::Param(v) => v.shape(),
            Slot::Buffer(b) => b.shape(),
        }
    }
    fn tensor(&self) -> Tensor {
        match self {
            Slot::Param(v) => v.tensor(),
            Slot::Buffer(b) => b.tensor(),
        }
    }
}

/// Every entry of `module` in PyTorch's `state_dict` order: a module's
/// parameters, then its buffers, then each child's entries under
/// `"{child}."`.
fn slots(module: &dyn Module, prefix: &str, out: &mut Vec<(String, Slot)>) {
    for (n, v) in module.own_parameters() {
        out.push((format!("{prefix}{n}"), Slot::Param(v)));
    }
    for (n, b) in module.own_buffers() {
        out.push((format!("{prefix}{n}"), Slot::Buffer(b)));
    }
    let children = module.children();
    if children.is_empty() && module.own_parameters().is_empty() {
        // A module that lists its parameters the older way, through an
        // overridden `named_parameters`, still has them saved.
        for (n, v) in module.named_parameters() {
            out.push((format!("{prefix}{n}"), Slot::Param(v)));
        }
    }
    for (name, child) in children {
        slots(child, &format!("{prefix}{name}."), out);
    }
}

fn module_slots(module: &dyn Module) -> Result<Vec<(String, Slot)>> {
    let mut out = Vec::new();
    slots(module, "", &mut out);
    let mut names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::param(
            "state_dict",
            "names",
            format!("two entries of the module are named {}", quoted(w[0])),
        ));
    }
    Ok(out)
}

/// The module's parameters and buffers by name, like PyTorch's
/// `state_dict()` (buffers as f32 tensors; `num_batches_tracked` is 0-d).
pub fn state_dict(module: &dyn Module) -> Vec<(String, Tensor)> {
    state_dict_with_prefix(module, "")
}

/// [`state_dict`] with `prefix` in front of every name (PyTorch's
/// `state_dict(prefix=...)`: a model inside a checkpoint, `"model."`).
pub fn state_dict_with_prefix(module: &dyn Module, prefix: &str) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    slots(module, prefix, &mut out);
    out.into_iter().map(|(n, s)| (n, s.tensor())).collect()
}

/// A state-dict entry seen as a safetensors tensor: f32, or a counter as
/// a 0-d int64 as PyTorch saves `num_batches_tracked`.
enum Entry {
    F32(Tensor),
    I64(i64),
}

impl View for &Entry {
    fn dtype(&self) -> Dtype {
        match self {
            Entry::F32(_) => Dtype::F32,
            Entry::I64(_) => Dtype::I64,
        }
    }
    fn shape(&self) -> &[usize] {
        match self {
            Entry::F32(t) => t.shape(),
            Entry::I64(_) => &[],
        }
    }
    fn data(&self) -> Cow<'_, [u8]> {
        match self {
            Entry::F32(t) => Cow::Owned(t.data().iter().flat_map(|v| v.to_le_bytes()).collect()),
            Entry::I64(n) => Cow::Owned(n.to_le_bytes().to_vec()),
        }
    }
    fn data_len(&self) -> usize {
        match self {
            Entry::F32(t) => 4 * t.numel(),
            Entry::I64(_) => 8,
        }
    }
}

/// The bytes of a safetensors file holding the module's state dict, as
/// [`save_state_dict`] writes it.
///
/// # Errors
/// [`Error::Param`] when two entries share a name.
pub fn state_dict_to_bytes(module: &dyn Module) -> Result<Vec<u8>> {
    let entries: Vec<(String, Entry)> = module_slots(module)?
        .into_iter()
        .map(|(n, s)| {
            let e = match &s {
                Slot::Buffer(b) => match b.count_value() {
                    Some(c) => Entry::I64(c),
                    None => Entry::F32(b.tensor()),
                },
                Slot::Param(v) => Entry::F32(v.tensor()),
            };
            (n, e)
        })
        .collect();
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let views = entries.iter().map(|(n, e)| (n.as_str(), e));
    ::safetensors::serialize(views, &metadata)
        .map_err(|e| Error::io("save_state_dict", format!("cannot serialize: {e}")))
}

/// Saves the module's parameters and buffers as a safetensors file,
/// atomically: F32 tensors, and `num_batches_tracked` as I64, as
/// `safetensors.torch.save_file(model.state_dict(), path)` writes them.
///
/// # Errors
/// [`Error::Param`] when two entries share a name, [`Error::Io`] when the
/// file cannot be written.
pub fn save_state_dict(path: &Path, module: &dyn Module) -> Result<()> {
    let bytes = state_dict_to_bytes(module)?;
    write_atomic(path, &bytes)
}

/// How [`load_state_dict_with`] matches names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Missing or unexpected keys are an error (PyTorch's `strict=True`);
    /// otherwise they are reported and the rest is loaded.
    pub strict: bool,
    /// Only keys starting with this are loaded, with it removed (`"model."`
    /// in a checkpoint, `"module."` from `DataParallel`, `"features."` to
    /// load part of a network); other keys are ignored.
    pub prefix: String,
}

impl LoadOptions {
    /// Strict, no prefix: PyTorch's `load_state_dict(sd)`.
    pub fn strict() -> LoadOptions {
        LoadOptions {
            strict: true,
            prefix: String::new(),
        }
    }
    /// Not strict: PyTorch's `load_state_dict(sd, strict=False)`.
    pub fn non_strict() -> LoadOptions {
        LoadOptions {
            strict: false,
            prefix: String::new(),
        }
    }
    /// Take only keys under `prefix`, without it.
    pub fn prefix(mut self, prefix: &str) -> LoadOptions {
        self.prefix = prefix.to_string();
        self
    }
}

/// What a load left out, PyTorch's `_IncompatibleKeys`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Entries of the module that the file does not have (left as they were).
    pub missing_keys: Vec<String>,
    /// Keys of the file that the module does not have (ignored).
    pub unexpected_keys: Vec<String>,
}

fn list(names: &[String]) -> String {
    let mut s: Vec<String> = names.iter().take(LISTED).map(|n| quoted(n)).collect();
    if names.len() > LISTED {
        s.push(format!("and {} more", names.len() - LISTED));
    }
    s.join(", ")
}

/// Loads a state-dict file into the module's parameters and buffers,
/// strictly (PyTorch's `load_state_dict(strict=True)`); see
/// [`load_state_dict_with`]. The file may be safetensors or a
/// `torch.save(model.state_dict())` file: [`super::load_tensors`] tells
/// them apart by content.
///
/// # Errors
/// As [`super::load_tensors`] and [`load_state_dict_with`]; the
/// message names the file.
pub fn load_state_dict(path: &Path, module: &dyn Module) -> Result<()> {
    load_state_dict_file_with(path, module, &LoadOptions::strict()).map(|_| ())
}

/// Loads a safetensors or `torch.save` file with `options` (see
/// [`load_state_dict_with`]).
///
/// # Errors
/// As [`load_state_dict`].
pub fn load_state_dict_file_with(
    path: &Path,
    module: &dyn Module,
    options: &LoadOptions,
) -> Result<LoadReport> {
    let tensors = super::load_tensors(path)?;
    load_state_dict_with(module, &tensors, options).map_err(|e| match e {
        Error::Shape { op, msg } => Error::shape(op, format!("{}: {msg}", path.display())),
        Error::Param { op, param, msg } => {
            Error::param(op, param, format!("{}: {msg}", path.display()))
        }
        other => other,
    })
}

/// Sets every parameter and buffer of `module` from `tensors` by name,
/// strictly; see [`load_state_dict_with`].
///
/// # Errors
/// As [`load_state_dict_with`].
pub fn load_state_dict_from(module: &dyn Module, tensors: &[(String, Tensor)]) -> Result<()> {
    load_state_dict_with(module, tensors, &LoadOptions::strict()).map(|_| ())
}

/// Sets the parameters and buffers of `module` from `tensors` by name.
/// Nothing is changed unless the load succeeds as a whole: every shape is
/// checked (in either mode, as PyTorch), and with `strict` every entry of
/// the module must have a tensor and every tensor an entry.
///
/// # Errors
/// [`Error::Shape`] listing the missing and unexpected keys (strict), or
/// naming a key whose shapes differ with both shapes; [`Error::Param`] for
/// a key given twice, two entries of the module with one name, or a
/// `num_batches_tracked` that is not a non-negative integer.
pub fn load_state_dict_with(
    module: &dyn Module,
    tensors: &[(String, Tensor)],
    options: &LoadOptions,
) -> Result<LoadReport> {
    const OP: &str = "load_state_dict";
    let slots = module_slots(module)?;
    let mut given: BTreeMap<&str, &Tensor> = BTreeMap::new();
    for (name, t) in tensors {
        let Some(key) = name.strip_prefix(options.prefix.as_str()) else {
            continue;
        };
        if given.insert(key, t).is_some() {
            return Err(Error::param(
                OP,
                "state_dict",
                format!("key {} is given twice", quoted(name)),
            ));
        }
    }
    let wanted: HashMap<&str, &Slot> = slots.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let report = LoadReport {
        missing_keys: slots
            .iter()
            .filter(|(n, _)| !given.contains_key(n.as_str()))
            .map(|(n, _)| n.clone())
            .collect(),
        unexpected_keys: given
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .map(|n| format!("{}{n}", options.prefix))
            .collect(),
    };
    if options.strict && (!report.missing_keys.is_empty() || !report.unexpected_keys.is_empty()) {
        let mut parts = Vec::new();
        if !report.missing_keys.is_empty() {
            parts.push(format!("missing keys {}", list(&report.missing_keys)));
        }
        if !report.unexpected_keys.is_empty() {
            parts.push(format!("unexpected keys {}", list(&report.unexpected_keys)));
        }
        return Err(Error::shape(OP, parts.join("; ")));
    }
    // Check everything before assigning anything, so a failed load leaves
    // the module as it was.
    let pairs: Vec<(&str, &Slot, &Tensor)> = slots
        .iter()
        .filter_map(|(n, s)| given.get(n.as_str()).map(|t| (n.as_str(), s, *t)))
        .collect();
    for &(name, slot, t) in &pairs {
        let check = match slot {
            Slot::Buffer(b) => b.check(t),
            Slot::Param(v) if t.shape() != v.shape().as_slice() => Err(Error::shape(OP, "")),
            Slot::Param(_) => Ok(()),
        };
        check.map_err(|e| match e {
            Error::Shape { .. } => Error::shape(
                OP,
                format!(
                    "{} has shape {} in the file but {} in the model",
                    quoted(name),
                    Dims(t.shape()),
                    Dims(&slot.shape())
                ),
            ),
            Error::Param { param, msg, .. } => {
                Error::param(OP, param, format!("{}: {msg}", quoted(name)))
            }
            other => other,
        })?;
    }
    for (_, slot, t) in pairs {
        match slot {
            Slot::Param(v) => v.set_value(t.clone()).map_err(|e| e.with_op(OP))?,
            Slot::Buffer(b) => b.set(t)?,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{BatchNorm1d, Linear, ReLU, Sequential};
    use crate::seeded_rng;

    fn net(seed: u64) -> Sequential {
        let mut rng = seeded_rng(seed);
        Sequential::new()
            .push(Linear::new(3, 2, &mut rng).unwrap())
            .push(ReLU)
            .push(Linear::new(2, 1, &mut rng).unwrap())
    }

    #[test]
    fn names_follow_pytorch() {
        let names: Vec<String> = state_dict(&net(0)).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
    }

    #[test]
    fn load_copies_values_by_name() {
        let (a, b) = (net(1), net(2));
        load_state_dict_from(&b, &state_dict(&a)).unwrap();
        assert_eq!(state_dict(&a), state_dict(&b));
    }

    #[test]
    fn strictness_and_atomicity() {
        let (a, b) = (net(1), net(2));
        let before = state_dict(&b);
        let mut sd = state_dict(&a);
        sd.pop();
        sd.push(("2.bais".into(), Tensor::zeros(&[1]).unwrap()));
        let e = load_state_dict_from(&b, &sd).unwrap_err().to_string();
        assert!(e.contains("missing keys '2.bias'"), "{e}");
        assert!(e.contains("unexpected keys '2.bais'"), "{e}");
        // Non-strict loads the rest and reports.
        let r = load_state_dict_with(&b, &sd, &LoadOptions::non_strict()).unwrap();
        assert_eq!(r.missing_keys, ["2.bias"]);
        assert_eq!(r.unexpected_keys, ["2.bais"]);
        assert_eq!(state_dict(&b)[0], state_dict(&a)[0]);
        assert_eq!(state_dict(&b)[3], before[3]);

        let b = net(2);
        let mut sd = state_dict(&a);
        sd[2].1 = Tensor::zeros(&[1, 3]).unwrap();
        let e = load_state_dict_from(&b, &sd).unwrap_err().to_string();
        assert_eq!(
            e,
            "load_state_dict: '2.weight' has shape [1, 3] in the file but [1, 2] in the model"
        );
        // The first two tensors matched, but nothing was assigned.
        assert_eq!(state_dict(&b), before);
    }

    #[test]
    fn duplicate_keys_and_bad_counters_are_refused() {
        let a = net(1);
        let mut sd = state_dict(&a);
        sd.push(sd[0].clone());
        let e = load_state_dict_from(&a, &sd).unwrap_err().to_string();
        assert_eq!(
            e,
            "load_state_dict: state_dict key '0.weight' is given twice"
        );

        let bn = Sequential::new().push(BatchNorm1d::new(2));
        let mut sd = state_dict(&bn);
        assert_eq!(sd[4].0, "0.num_batches_tracked");
        sd[4].1 = Tensor::scalar(-3.0);
        let e = load_state_dict_from(&bn, &sd).unwrap_err().to_string();
        assert!(
            e.contains("'0.num_batches_tracked': -3 is not a non-negative integer"),
            "{e}"
        );
        sd[4].1 = Tensor::scalar(12.0);
        load_state_dict_from(&bn, &sd).unwrap();
        assert_eq!(bn.named_buffers()[2].1.count_value(), Some(12));
    }

    #[test]
    fn counters_are_saved_as_int64() {
        let bn = Sequential::new().push(BatchNorm1d::new(2));
        bn.named_buffers()[2].1.set(&Tensor::scalar(5.0)).unwrap();
        let bytes = state_dict_to_bytes(&bn).unwrap();
        let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("0.num_batches_tracked").unwrap();
        assert_eq!(
            (t.dtype(), t.shape(), t.data()),
            (Dtype::I64, &[][..], &5i64.to_le_bytes()[..])
        );
        assert_eq!(st.tensor("0.running_var").unwrap().dtype(), Dtype::F32);
    }
}
