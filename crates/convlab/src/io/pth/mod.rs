//! PyTorch's `torch.save` files (`.pt`, `.pth`) without Python: the zip
//! container PyTorch has written by default since 1.6, and a restricted
//! unpickler that understands only what a state dict is made of.
//!
//! What is read: a dict (or `OrderedDict`) from names to tensors, as
//! `torch.save(model.state_dict(), path)` writes it, or such a dict under one
//! key of a checkpoint dict (`{"model": ..., "optimizer": ..., "epoch": 3}`,
//! see [`load_pth_key`]). Tensors of dtype float32, float16, bfloat16,
//! float64, int64, int32, int16, int8, uint8 and bool, contiguous or not
//! (a saved `w.t()`, an expanded or sliced tensor), little- or big-endian,
//! become f32 tensors the way [`super::load_safetensors`] converts them;
//! tensors that share a storage each read their own view of it. Parameters
//! (`nn.Parameter`) read as their values; devices (`cuda:0`) are ignored.
//!
//! What is refused, with a one-line [`Error::Io`]: the legacy format
//! (`_use_new_zipfile_serialization=False`, PyTorch < 1.6), TorchScript
//! archives (`torch.jit.save`), compressed or encrypted records, records
//! whose CRC-32 does not match (a flipped bit), complex, quantized and
//! sparse tensors, tensor subclasses, and any pickle opcode or global
//! outside the small set a state dict needs. Python's own unpickler imports
//! and calls whatever a file names, which is how a hostile `.pt` file runs
//! code; this one looks names up in a fixed table, so nothing in a file is
//! ever run — `os.system` is an error naming it.
//!
//! Every size comes from the file and is checked before it is used: records
//! lie inside the file, a storage's length matches its declared element
//! count, a tensor's sizes, strides and offset stay inside its storage, and
//! the f32 values of all tensors together pass the memory limit
//! ([`crate::memory::max_bytes`]) before they are allocated.

mod archive;
mod globals;
mod opcodes;
mod pickle;
mod tensor;

pub(super) use self::archive::first_bytes;
use self::archive::Archive;
use self::pickle::{Id, Pickle, Value};
use super::{in_file, quoted, read_file};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::HashSet;
use std::path::Path;

const OP: &str = "pth";

fn bad(msg: impl Into<String>) -> Error {
    Error::io(OP, msg)
}

/// Reads a state dict saved with `torch.save(model.state_dict(), path)`:
/// its tensors converted to f32, with their names, in the file's order.
///
/// ```no_run
/// let sd = convlab::io::load_pth("resnet.pth".as_ref())?;
/// for (name, t) in &sd {
///     println!("{name}: {:?}", t.shape()); // conv1.weight: [64, 3, 7, 7] ...
/// }
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// BatchNorm's `num_batches_tracked` (int64) and other integer buffers
/// become f32 like every other tensor (integers round to the nearest f32).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, is not a `torch.save` zip,
/// is malformed or corrupt, or holds something other than a dict of tensors
/// (a checkpoint dict is named as such: read it with [`load_pth_key`]);
/// [`Error::TooLarge`] when the file or its tensors exceed the memory limit.
pub fn load_pth(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = read_file(OP, path)?;
    pth_from_bytes(&bytes).map_err(|e| in_file(path, e))
}

/// Parses the bytes of a `torch.save` file (see [`load_pth`]).
///
/// # Errors
/// As [`load_pth`].
pub fn pth_from_bytes(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    read(bytes, None)
}

/// Reads the state dict stored under `key` of a checkpoint dict, as saved by
/// `torch.save({"model": model.state_dict(), "optimizer": ..., "epoch": 3}, path)`:
/// `load_pth_key(path, "model")`. The other entries (optimizer state,
/// numbers, strings) are parsed under the same rules but not returned.
///
/// # Errors
/// As [`load_pth`]; also when the top-level dict has no entry `key` (the
/// message lists the keys it has) or that entry is not a dict of tensors.
pub fn load_pth_key(path: &Path, key: &str) -> Result<Vec<(String, Tensor)>> {
    let bytes = read_file(OP, path)?;
    pth_key_from_bytes(&bytes, key).map_err(|e| in_file(path, e))
}

/// Parses the bytes of a `torch.save` checkpoint and returns the state dict
/// under `key` (see [`load_pth_key`]).
///
/// # Errors
/// As [`load_pth_key`].
pub fn pth_key_from_bytes(bytes: &[u8], key: &str) -> Result<Vec<(String, Tensor)>> {
    read(bytes, Some(key))
}

fn read(bytes: &[u8], key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let mut archive = Archive::open(bytes)?;
    let pickle = pickle::unpickle(archive.pickle()?)?;
    let entries = state_dict(&pickle, key)?;
    let mut held = 0usize;
    let mut out = Vec::with_capacity(entries.len());
    for (name, id) in entries {
        let Value::Tensor(view) = pickle.get(id) else {
            return Err(bad(format!("entry {} is not a tensor", quoted(name))));
        };
        let Value::Storage(storage) = pickle.get(view.storage) else {
            return Err(bad(format!("tensor {} has no storage", quoted(name))));
        };
        let t =
            tensor::materialize(&mut archive, storage, view, &mut held).map_err(|e| match e {
                Error::Io { op, msg } => Error::io(op, format!("tensor {}: {msg}", quoted(name))),
                Error::TooLarge { op, msg } => {
                    Error::too_large(op, format!("tensor {}: {msg}", quoted(name)))
                }
                other => other,
            })?;
        out.push((name.to_string(), t));
    }
    Ok(out)
}

/// The (name, tensor) entries of the state dict: the top-level dict, or
/// the dict under `key` in it.
fn state_dict<'p>(pickle: &'p Pickle, key: Option<&str>) -> Result<Vec<(&'p str, Id)>> {
    let root = dict_entries(pickle, pickle.root(), "the file")?;
    let (dict, what) = match key {
        None => (root.clone(), String::from("the file")),
        Some(k) => {
            let Some(&(_, id)) = root.iter().find(|(name, _)| *name == k) else {
                let names: Vec<String> = root.iter().take(8).map(|(n, _)| quoted(n)).collect();
                let more = if root.len() > 8 { ", ..." } else { "" };
                return Err(bad(format!(
                    "the file's dict has no key {} (its keys: {}{more})",
                    quoted(k),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            let what = format!("entry {}", quoted(k));
            (dict_entries(pickle, id, &what)?, what)
        }
    };
    for &(name, id) in &dict {
        if matches!(pickle.get(id), Value::Tensor(_)) {
            continue;
        }
        let mut msg = format!(
            "{what} maps {} to {}, not a tensor",
            quoted(name),
            pickle.kind(id)
        );
        // A checkpoint: point at the state dict inside it.
        if key.is_none() {
            if let Some((inner, _)) = root.iter().find(|&&(_, v)| is_tensor_dict(pickle, v)) {
                msg.push_str(&format!(
                    ": the file looks like a checkpoint; read the state dict under {} with load_pth_key",
                    quoted(inner)
                ));
            }
        }
        return Err(bad(msg));
    }
    Ok(dict)
}

/// The entries of a dict whose keys are strings, each key once.
fn dict_entries<'p>(pickle: &'p Pickle, id: Id, what: &str) -> Result<Vec<(&'p str, Id)>> {
    let Value::Dict(pairs) = pickle.get(id) else {
        return Err(bad(format!(
            "{what} holds {}, not a dict of tensors (a state dict)",
            pickle.kind(id)
        )));
    };
    let mut seen = HashSet::with_capacity(pairs.len());
    let mut out = Vec::with_capacity(pairs.len());
    for &(k, v) in pairs {
        let Value::Str(name) = pickle.get(k) else {
            return Err(bad(format!(
                "{what} is a dict with {} as a key, where a state dict has names",
                pickle.kind(k)
            )));
        };
        if !seen.insert(name.as_str()) {
            return Err(bad(format!("{what} has the key {} twice", quoted(name))));
        }
        out.push((name.as_str(), v));
    }
    Ok(out)
}

fn is_tensor_dict(pickle: &Pickle, id: Id) -> bool {
    match pickle.get(id) {
        Value::Dict(pairs) => pairs
            .iter()
            .all(|&(_, v)| matches!(pickle.get(v), Value::Tensor(_))),
        _ => false,
    }
}
