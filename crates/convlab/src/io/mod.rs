//! Files in and out: NumPy `.npy` arrays, safetensors state dicts (PyTorch's
//! `state_dict` names), PyTorch's own `torch.save` files (`.pt`/`.pth`,
//! read only), and PNG/JPEG images. [`load_tensors`] reads a state dict of
//! either format, telling them apart by content.
//!
//! Readers validate everything before allocating: a size read from a header
//! is trusted only after it matches the file's length and passes
//! [`memory::check_f32`], so a malformed or hostile file is an [`Error::Io`]
//! or [`Error::TooLarge`], never a panic or an abort.
//! Writers go through [`write_atomic`]: a crash leaves the old file or the
//! new one, never a truncated one.
//!
//! ```
//! use convlab::{io, Tensor};
//! let x = Tensor::arange(6.0)?.reshape(&[2, 3])?;
//! let back = io::npy_from_bytes(&io::npy_to_bytes(&x))?;
//! assert_eq!(back, x);
//! # Ok::<(), convlab::Error>(())
//! ```

mod atomic;
mod dtype;
mod image;
mod load;
mod npy;
mod pth;
mod safetensors;
mod state_dict;

pub use self::atomic::{abandon_writes, write_atomic, write_atomic_with};
pub use self::image::{image_from_bytes, load_image, save_image, Normalize};
pub use self::load::{load_tensors, tensors_from_bytes};
pub use self::npy::{npy_from_bytes, npy_to_bytes, read_npy, write_npy};
pub use self::pth::{load_pth, load_pth_key, pth_from_bytes, pth_key_from_bytes};
pub use self::safetensors::{
    load_safetensors, load_safetensors_with_metadata, safetensors_from_bytes, safetensors_to_bytes,
    safetensors_with_metadata_from_bytes, safetensors_with_metadata_to_bytes, save_safetensors,
    save_safetensors_with_metadata, SafetensorsWithMetadata,
};
pub use self::state_dict::{
    load_state_dict, load_state_dict_file_with, load_state_dict_from, load_state_dict_with,
    save_state_dict, state_dict, state_dict_to_bytes, state_dict_with_prefix, LoadOptions,
    LoadReport,
};

use crate::error::{Error, Result};
use crate::memory;
use std::path::Path;

/// Reads a whole file for the parser of `op`, refusing files larger than the
/// memory limit (the parsers then allocate at most a small multiple of this
/// length). Devices and pipes report a length of 0, so the length in the
/// metadata only refuses large regular files early; the read itself stops
/// at limit + 1 bytes.
fn read_file(op: &'static str, path: &Path) -> Result<Vec<u8>> {
    read_bounded(op, path)
}

/// Reads the file at `path` into memory, reading at most the memory limit
/// plus one byte: a file over [`memory::max_bytes`] is refused before any
/// of it is read when its size is known, and after limit + 1 bytes when it
/// is not (devices such as `/dev/zero`, pipes and `/proc` files report a
/// size of 0).
///
/// ```
/// let bytes = convlab::io::read_bounded("npy", std::path::Path::new("Cargo.toml"))?;
/// assert!(!bytes.is_empty());
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] (`op: cannot read <path>: <reason>`) when the file cannot
/// be opened or read; [`Error::TooLarge`] over the limit;
/// [`Error::Param`] for a malformed `CONVLAB_MAX_BYTES`.
pub fn read_bounded(op: &'static str, path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot = |e: std::io::Error| Error::io(op, format!("cannot read {}: {e}", path.display()));
    crate::env::check().map_err(|e| e.with_op(op))?;
    let limit = memory::max_bytes();
    let over = |what: String| {
        Error::too_large(
            op,
            format!(
                "{} {what}, over the memory limit of {} (set CONVLAB_MAX_BYTES to change it)",
                path.display(),
                memory::human_bytes(limit)
            ),
        )
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if meta.is_dir() {
        return Err(Error::io(
            op,
            format!("cannot read {}: it is a directory", path.display()),
        ));
    }
    let len = meta.len();
    if len > limit as u64 {
        return Err(over(format!("is {len} bytes")));
    }
    memory::check_bytes(op, len as usize).map_err(|e| in_file(path, e))?;
    // The size is a hint: 0 for devices and pipes, and a file may grow
    // while it is read. `take` bounds the bytes read; the buffer grows by
    // hand so that its capacity, too, stays within limit + 1 (a Vec that
    // doubles could reserve twice the limit).
    let cap = limit.saturating_add(1);
    let mut bytes: Vec<u8> = Vec::new();
    let mut reader = file.take(cap as u64);
    let mut want = (len as usize).saturating_add(1).clamp(1 << 13, cap.max(1));
    loop {
        if bytes.len() == bytes.capacity() {
            if bytes.len() >= cap {
                break;
            }
            want = want.max(bytes.len().saturating_mul(2)).min(cap);
            // The last byte past the limit only tells that there is more.
            memory::check_bytes(op, want.min(limit)).map_err(|e| in_file(path, e))?;
            bytes.reserve_exact(want - bytes.len());
        }
        // At most 1 MiB zeroed per read: a pipe hands over 64 KiB at a time.
        let start = bytes.len();
        let end = bytes.capacity().min(start + (1 << 20));
        bytes.resize(end, 0);
        let n = loop {
            match reader.read(&mut bytes[start..end]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(cannot(e)),
            }
        };
        bytes.truncate(start + n);
        if n == 0 {
            break;
        }
    }
    if bytes.len() > limit {
        return Err(over(format!(
            "holds more than {} (read stopped there)",
            memory::human_bytes(limit)
        )));
    }
    Ok(bytes)
}

/// A name or value taken from a file, for an error message: quoted, escaped
/// so it stays on one line, and cut short so a hostile file cannot flood it.
fn quoted(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    format!("'{out}'")
}

/// Puts the file name in front of a parser's message, so the one line says
/// which file was malformed: `npy: w.npy: data has 12 bytes but ...`.
fn in_file(path: &Path, err: Error) -> Error {
    match err {
        Error::Io { op, msg } => Error::io(op, format!("{}: {msg}", path.display())),
        Error::TooLarge { op, msg } => Error::too_large(op, format!("{}: {msg}", path.display())),
        other => other,
    }
}
