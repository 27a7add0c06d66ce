//! Named tensors from a file of either format PyTorch users save state
//! dicts in, told apart by content rather than by extension (a `.bin`,
//! `.ckpt` or `.pt` may hold either).

use super::pth::{first_bytes, pth_from_bytes};
use super::{in_file, read_file, safetensors_from_bytes};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

const OP: &str = "load_tensors";

/// Reads the named tensors of a safetensors file or of a `torch.save`
/// state dict, whichever the file's first bytes say it is, converted to f32.
///
/// Names come in the file's order for `torch.save` files and sorted for
/// safetensors files (whose header does not keep an order); see
/// [`super::load_safetensors`] and [`super::load_pth`] for what each reader
/// accepts.
///
/// ```no_run
/// // The same call for a file from `torch.save(model.state_dict(), "w.pt")`
/// // and from `safetensors.torch.save_file(model.state_dict(), "w.safetensors")`.
/// let tensors = convlab::io::load_tensors("w.pt".as_ref())?;
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// The errors of the reader the content picks (its message starts with
/// `safetensors:` or `pth:`), or [`Error::Io`] when the file is neither;
/// [`Error::TooLarge`] when it exceeds the memory limit.
pub fn load_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = read_file(OP, path)?;
    tensors_from_bytes(&bytes).map_err(|e| in_file(path, e))
}

/// Parses the bytes of a safetensors or `torch.save` file (see
/// [`load_tensors`]).
///
/// # Errors
/// As [`load_tensors`].
pub fn tensors_from_bytes(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    match Format::of(bytes) {
        Format::Pth => pth_from_bytes(bytes),
        Format::Safetensors => safetensors_from_bytes(bytes),
        Format::Npy => Err(Error::io(
            OP,
            "the file is a NumPy .npy array, not a set of named tensors (read it with read_npy)",
        )),
        Format::Unknown => Err(Error::io(
            OP,
            format!(
                "neither a safetensors file (an 8-byte header length, then '{{') nor a \
                 torch.save file (a zip, 'PK'): it starts with {}",
                first_bytes(bytes)
            ),
        )),
    }
}

/// What a file's first bytes say it is.
enum Format {
    Pth,
    Safetensors,
    Npy,
    Unknown,
}

impl Format {
    fn of(bytes: &[u8]) -> Format {
        // safetensors first, by its whole header frame: its length's low
        // byte can be anything, 0x80 too (googlenet's and resnet50's state
        // dicts had headers of 0x8580 and 0x...70 80 bytes and were taken
        // for legacy pickles).
        if is_safetensors(bytes) {
            return Format::Safetensors;
        }
        // A zip, PyTorch's legacy pickle (protocol 2's first byte), or the
        // tar of PyTorch < 0.4: the pth reader reads the first and names the
        // others.
        if bytes.starts_with(b"PK") || bytes.first() == Some(&0x80) {
            return Format::Pth;
        }
        if bytes.get(257..262) == Some(b"ustar") {
            return Format::Pth;
        }
        if bytes.starts_with(b"\x93NUMPY") {
            return Format::Npy;
        }
        // What looks like safetensors but whose header length does not fit
        // the file: the safetensors reader names what is wrong.
        if bytes.get(8) == Some(&b'{') {
            return Format::Safetensors;
        }
        Format::Unknown
    }
}

/// Whether `bytes` frame a safetensors header: a little-endian u64 length
/// `n` that fits the file, then `n` bytes of a JSON object (`{` ... `}`,
/// padded with spaces as the format allows).
fn is_safetensors(bytes: &[u8]) -> bool {
    let Some(len) = bytes.get(..8) else {
        return false;
    };
    let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let Some(header) = usize::try_from(n)
        .ok()
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
    else {
        return false;
    };
    let header = header.trim_ascii_end();
    header.starts_with(b"{") && header.ends_with(b"}")
}
