//! A [`Module`]'s parameters as a safetensors file with PyTorch's
//! `state_dict` names (`0.weight`, `0.bias`, ...), in both directions:
//! what convlab saves, `model.load_state_dict(safetensors.torch.load_file(p))`
//! accepts, and what `safetensors.torch.save_file(model.state_dict(), p)`
//! writes, convlab loads.

use super::{load_safetensors, quoted, save_safetensors};
use crate::error::{Dims, Error, Result};
use crate::nn::Module;
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

/// How many names an error lists before it says "and N more".
const LISTED: usize = 5;

/// The module's parameters by name, like PyTorch's `state_dict()` (only
/// parameters: convlab's layers have no buffers).
pub fn state_dict(module: &dyn Module) -> Vec<(String, Tensor)> {
    module
        .named_parameters()
        .into_iter()
        .map(|(n, v)| (n, v.tensor()))
        .collect()
}

/// Saves the module's parameters as an F32 safetensors file, atomically.
///
/// # Errors
/// [`Error::Io`] when two parameters share a name or the file cannot be
/// written.
pub fn save_state_dict(path: &Path, module: &dyn Module) -> Result<()> {
    let sd = state_dict(module);
    let refs: Vec<(&str, &Tensor)> = sd.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save_safetensors(path, &refs).map_err(|e| e.with_op("save_state_dict"))
}

/// Loads a safetensors file into the module's parameters, strictly (PyTorch's
/// `load_state_dict(strict=True)`); see [`load_state_dict_from`].
///
/// # Errors
/// As [`super::load_safetensors`] and [`load_state_dict_from`].
pub fn load_state_dict(path: &Path, module: &dyn Module) -> Result<()> {
    let tensors = load_safetensors(path)?;
    load_state_dict_from(module, &tensors).map_err(|e| match e {
        Error::Shape { op, msg } => Error::shape(op, format!("{}: {msg}", path.display())),
        other => other,
    })
}

/// Sets every parameter of `module` from `tensors` by name. Nothing is
/// changed unless everything matches: every parameter has a tensor, every
/// tensor a parameter, and the shapes agree.
///
/// # Errors
/// [`Error::Shape`] listing the missing and unexpected keys, or naming the
/// first key whose shapes differ with both shapes.
pub fn load_state_dict_from(module: &dyn Module, tensors: &[(String, Tensor)]) -> Result<()> {
    const OP: &str = "load_state_dict";
    let params = module.named_parameters();
    let given: BTreeMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let wanted: BTreeMap<&str, ()> = params.iter().map(|(n, _)| (n.as_str(), ())).collect();
    let list = |names: Vec<&str>| {
        let mut s: Vec<String> = names.iter().take(LISTED).map(|n| quoted(n)).collect();
        if names.len() > LISTED {
            s.push(format!("and {} more", names.len() - LISTED));
        }
        s.join(", ")
    };
    let missing: Vec<&str> = wanted
        .keys()
        .filter(|n| !given.contains_key(*n))
        .copied()
        .collect();
    let unexpected: Vec<&str> = given
        .keys()
        .filter(|n| !wanted.contains_key(*n))
        .copied()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing keys {}", list(missing)));
        }
        if !unexpected.is_empty() {
            parts.push(format!("unexpected keys {}", list(unexpected)));
        }
        return Err(Error::shape(OP, parts.join("; ")));
    }
    // Check every shape before assigning any, so a failed load leaves the
    // module as it was.
    for (name, var) in &params {
        let t = given[name.as_str()];
        if t.shape() != var.shape().as_slice() {
            return Err(Error::shape(
                OP,
                format!(
                    "{} has shape {} in the file but {} in the model",
                    quoted(name),
                    Dims(t.shape()),
                    Dims(&var.shape())
                ),
            ));
        }
    }
    for (name, var) in &params {
        var.set_value(given[name.as_str()].clone())
            .map_err(|e| e.with_op(OP))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Linear, ReLU, Sequential};
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
}
