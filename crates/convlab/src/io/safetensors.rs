//! safetensors files (<https://huggingface.co/docs/safetensors>): an 8-byte
//! little-endian header length, a JSON header mapping each name to its dtype,
//! shape and byte range, then the data. This is what
//! `safetensors.torch.save_file(model.state_dict())` writes, so the names are
//! PyTorch's `state_dict` keys (`0.weight`, `0.bias`, ...).
//!
//! Parsing and validation (header size, offsets covering the data exactly,
//! shape products without overflow) are the `safetensors` crate's; this
//! module converts each tensor to f32 and words the errors.

use super::dtype::{self, Elem};
use super::{in_file, quoted, read_file, write_atomic};
use crate::error::{Dims, Error, Result};
use crate::tensor::Tensor;
use ::safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

fn bad(msg: impl Into<String>) -> Error {
    Error::io("safetensors", msg)
}

/// Reads every tensor of a safetensors file, converted to f32, sorted by name.
///
/// Accepted dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16,
/// U8 and BOOL (integers round to the nearest f32).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, is malformed, or holds a dtype
/// convlab cannot read (the message names the tensor); [`Error::TooLarge`]
/// when it exceeds the memory limit.
pub fn load_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = read_file("safetensors", path)?;
    safetensors_from_bytes(&bytes).map_err(|e| in_file(path, e))
}

/// Parses the bytes of a safetensors file (see [`load_safetensors`]).
///
/// # Errors
/// As [`load_safetensors`].
pub fn safetensors_from_bytes(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    Ok(safetensors_with_metadata_from_bytes(bytes)?.0)
}

/// Reads a safetensors file and the string map in its `__metadata__`
/// header entry (empty when there is none); see [`load_safetensors`].
///
/// Checkpoints keep their bookkeeping (epoch, RNG position, history) there,
/// so one atomic rename switches tensors and bookkeeping together.
///
/// # Errors
/// As [`load_safetensors`].
pub fn load_safetensors_with_metadata(path: &Path) -> Result<SafetensorsWithMetadata> {
    let bytes = read_file("safetensors", path)?;
    safetensors_with_metadata_from_bytes(&bytes).map_err(|e| in_file(path, e))
}

/// Tensors sorted by name, and the `__metadata__` map.
pub type SafetensorsWithMetadata = (Vec<(String, Tensor)>, HashMap<String, String>);

/// Parses the bytes of a safetensors file with its metadata (see
/// [`load_safetensors_with_metadata`]).
///
/// # Errors
/// As [`load_safetensors`].
pub fn safetensors_with_metadata_from_bytes(bytes: &[u8]) -> Result<SafetensorsWithMetadata> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| explain(e, bytes))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| explain(e, bytes))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    Ok((tensors_of(&st)?, metadata))
}

fn tensors_of(st: &SafeTensors<'_>) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let elem = elem_of(view.dtype()).ok_or_else(|| {
            bad(format!(
                "tensor {} has dtype {:?}, which convlab cannot read",
                quoted(&name),
                view.dtype()
            ))
        })?;
        let values = dtype::to_f32("safetensors", elem, false, view.data())?;
        let t = Tensor::from_vec(values, view.shape())
            .map_err(|e| bad(format!("tensor {}: {e}", quoted(&name))))?;
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes `tensors` as an F32 safetensors file, atomically, with the metadata
/// `{"format": "pt"}` that `safetensors.torch.save_file` writes, so
/// `safetensors.torch.load_file` and `load_state_dict` accept it.
///
/// # Errors
/// [`Error::Io`] when two tensors share a name or the file cannot be written.
pub fn save_safetensors(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let bytes = safetensors_to_bytes(tensors)?;
    write_atomic(path, &bytes)
}

/// The bytes of an F32 safetensors file holding `tensors` (see [`save_safetensors`]).
///
/// # Errors
/// [`Error::Io`] when two tensors share a name.
pub fn safetensors_to_bytes(tensors: &[(&str, &Tensor)]) -> Result<Vec<u8>> {
    safetensors_with_metadata_to_bytes(tensors, &[])
}

/// Writes `tensors` as [`save_safetensors`] does, with `metadata` added to
/// the `__metadata__` header entry (beside `"format": "pt"`), atomically:
/// tensors and metadata switch together.
///
/// # Errors
/// [`Error::Io`] when two tensors share a name, a metadata key is `format`,
/// or the file cannot be written.
pub fn save_safetensors_with_metadata(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    metadata: &[(&str, &str)],
) -> Result<()> {
    let bytes = safetensors_with_metadata_to_bytes(tensors, metadata)?;
    write_atomic(path, &bytes)
}

/// The bytes of [`save_safetensors_with_metadata`].
///
/// # Errors
/// As [`save_safetensors_with_metadata`].
pub fn safetensors_with_metadata_to_bytes(
    tensors: &[(&str, &Tensor)],
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("two tensors are named {}", quoted(w[0]))));
    }
    let mut map = HashMap::from([("format".to_string(), "pt".to_string())]);
    for (k, v) in metadata {
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad(format!("metadata key {} is given twice", quoted(k))));
        }
    }
    let metadata = Some(map);
    let views = tensors.iter().map(|(n, t)| (*n, F32View(t)));
    ::safetensors::serialize(views, &metadata).map_err(|e| bad(format!("cannot serialize: {e}")))
}

/// A convlab tensor seen as an F32 safetensors tensor.
struct F32View<'a>(&'a Tensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data().iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        4 * self.0.numel()
    }
}

fn elem_of(d: Dtype) -> Option<Elem> {
    Some(match d {
        Dtype::BOOL => Elem::Bool,
        Dtype::U8 => Elem::U8,
        Dtype::I8 => Elem::I8,
        Dtype::U16 => Elem::U16,
        Dtype::I16 => Elem::I16,
        Dtype::F16 => Elem::F16,
        Dtype::BF16 => Elem::BF16,
        Dtype::U32 => Elem::U32,
        Dtype::I32 => Elem::I32,
        Dtype::F32 => Elem::F32,
        Dtype::U64 => Elem::U64,
        Dtype::I64 => Elem::I64,
        Dtype::F64 => Elem::F64,
        _ => return None,
    })
}

/// One line saying what is wrong with the file.
fn explain(e: SafeTensorError, bytes: &[u8]) -> Error {
    use SafeTensorError as E;
    match e {
        E::HeaderTooSmall => bad(format!(
            "file has {} bytes, too short for the 8-byte header length",
            bytes.len()
        )),
        E::HeaderTooLarge => bad("header length is over the 100 MB the format allows"),
        E::InvalidHeaderLength => bad(format!(
            "header length runs past the end of the file ({} bytes)",
            bytes.len()
        )),
        E::InvalidHeader => bad("header is not valid UTF-8"),
        E::InvalidHeaderStart => bad("header is not a JSON object"),
        E::InvalidHeaderDeserialization => header_problem(bytes),
        E::InvalidOffset(name) => bad(format!(
            "tensor {} has data offsets that do not follow the previous tensor",
            quoted(&name)
        )),
        E::TensorInvalidInfo => bad("a tensor's byte range does not match its shape and dtype"),
        E::MetadataIncompleteBuffer => {
            bad("data length differs from what the header describes (truncated or padded file)")
        }
        E::ValidationOverflow => bad("a tensor's shape has more elements than fit in memory"),
        E::InvalidTensorView(dtype, shape, len) => bad(format!(
            "tensor of dtype {dtype:?} and shape {} cannot have {len} bytes",
            Dims(&shape)
        )),
        other => bad(format!("{other}")),
    }
}

/// The crate reports any header it cannot deserialize the same way; look
/// closer so the message names the tensor when the problem is its dtype
/// (e.g. `C64`, which the format lists but the crate does not).
fn header_problem(bytes: &[u8]) -> Error {
    let generic = || bad("header is not the JSON a safetensors file has");
    let Some(n) = bytes
        .get(..8)
        .and_then(|b| usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok())
    else {
        return generic();
    };
    let Some(text) = bytes.get(8..8usize.saturating_add(n)) else {
        return generic();
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(text)
    else {
        return bad("header is not a JSON object");
    };
    const KNOWN: [&str; 15] = [
        "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
        "F64", "I64", "U64",
    ];
    for (name, entry) in map.iter().filter(|(k, _)| *k != "__metadata__") {
        match entry.get("dtype").and_then(|d| d.as_str()) {
            Some(d) if !KNOWN.contains(&d) => {
                return bad(format!(
                    "tensor {} has dtype {}, which convlab cannot read",
                    quoted(name),
                    quoted(d)
                ))
            }
            Some(_) => {}
            None => return bad(format!("tensor {} has no dtype string", quoted(name))),
        }
    }
    generic()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with header `json` and `data`.
    fn file(json: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn err(bytes: &[u8]) -> String {
        let s = safetensors_from_bytes(bytes).unwrap_err().to_string();
        assert!(s.starts_with("safetensors: ") && !s.contains('\n'), "{s}");
        s
    }

    #[test]
    fn metadata_round_trips_beside_format() {
        let a = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let bytes =
            safetensors_with_metadata_to_bytes(&[("a", &a)], &[("epoch", "3"), ("seed", "7")])
                .unwrap();
        let (back, meta) = safetensors_with_metadata_from_bytes(&bytes).unwrap();
        assert_eq!(back, vec![("a".to_string(), a.clone())]);
        assert_eq!(meta.get("epoch").map(String::as_str), Some("3"));
        assert_eq!(meta.get("seed").map(String::as_str), Some("7"));
        assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
        let e = safetensors_with_metadata_to_bytes(&[("a", &a)], &[("format", "np")]).unwrap_err();
        assert!(e.to_string().contains("'format' is given twice"), "{e}");
    }

    #[test]
    fn round_trip_sorted_by_name() {
        let a = Tensor::from_vec(vec![1.0, -2.5, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let b = Tensor::scalar(7.0);
        let c = Tensor::from_vec(vec![], &[0, 4]).unwrap();
        let bytes = safetensors_to_bytes(&[("z.weight", &a), ("a", &b), ("m.empty", &c)]).unwrap();
        let back = safetensors_from_bytes(&bytes).unwrap();
        let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "m.empty", "z.weight"]);
        assert_eq!(back[0].1, b);
        assert_eq!(back[1].1, c);
        assert_eq!(back[2].1, a);
        let header = String::from_utf8_lossy(&bytes[8..]);
        assert!(
            header.contains(r#""__metadata__":{"format":"pt"}"#),
            "{header}"
        );
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let t = Tensor::scalar(1.0);
        let e = safetensors_to_bytes(&[("w", &t), ("b", &t), ("w", &t)]).unwrap_err();
        assert_eq!(e.to_string(), "safetensors: two tensors are named 'w'");
    }

    #[test]
    fn converts_other_dtypes() {
        let json = r#"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[1],"data_offsets":[4,6]},"i":{"dtype":"I64","shape":[1],"data_offsets":[6,14]},"d":{"dtype":"F64","shape":[],"data_offsets":[14,22]},"u":{"dtype":"U8","shape":[2],"data_offsets":[22,24]}}"#;
        let mut data = vec![0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3c];
        data.extend((-5i64).to_le_bytes());
        data.extend(0.25f64.to_le_bytes());
        data.extend([3, 250]);
        let got = safetensors_from_bytes(&file(json, &data)).unwrap();
        let by: HashMap<_, _> = got.into_iter().collect();
        assert_eq!(by["b"].data(), &[1.0, -2.0]);
        assert_eq!(by["h"].data(), &[1.0]);
        assert_eq!(by["i"].data(), &[-5.0]);
        assert_eq!((by["d"].shape(), by["d"].data()), (&[][..], &[0.25f32][..]));
        assert_eq!(by["u"].data(), &[3.0, 250.0]);
    }

    #[test]
    fn unreadable_dtypes_name_the_tensor() {
        let e = err(&file(
            r#"{"q":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#,
            &[0],
        ));
        assert_eq!(
            e,
            "safetensors: tensor 'q' has dtype F8_E4M3, which convlab cannot read"
        );
        let e = err(&file(
            r#"{"c":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#,
            &[0; 8],
        ));
        assert_eq!(
            e,
            "safetensors: tensor 'c' has dtype 'C64', which convlab cannot read"
        );
        let e = err(&file(
            r#"{"a\nb":{"dtype":"X","shape":[1],"data_offsets":[0,8]}}"#,
            &[0; 8],
        ));
        assert_eq!(
            e,
            r"safetensors: tensor 'a\nb' has dtype 'X', which convlab cannot read"
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        let good = safetensors_to_bytes(&[("w", &Tensor::scalar(1.0))]).unwrap();
        assert!(safetensors_from_bytes(&good).is_ok());
        assert!(err(&good[..5]).contains("too short"));
        assert!(err(&good[..20]).contains("past the end"));
        assert!(err(&good[..good.len() - 1]).contains("truncated"));
        let mut long = good.clone();
        long.push(0);
        assert!(err(&long).contains("truncated or padded"));
        assert!(err(&file("[1, 2]", &[])).contains("not a JSON object"));
        assert!(err(&file("{\"w\": 1", &[])).contains("not a JSON object"));
        assert!(err(&file(
            r#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 4]
        ))
        .contains("'w' has no dtype"));
        let e = err(&file(
            r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ));
        assert!(e.contains("does not match its shape"), "{e}");
        let e = err(&file(
            r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ));
        assert!(e.contains("more elements than fit"), "{e}");
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(&huge).contains("header length"));
    }

    #[test]
    fn never_panics_on_mutated_bytes() {
        let t = Tensor::from_vec((0..6).map(|i| i as f32).collect(), &[2, 3]).unwrap();
        let good = safetensors_to_bytes(&[("w", &t)]).unwrap();
        for i in 0..good.len() {
            for b in [0u8, b'9', b'"', b'}', 0xff] {
                let mut v = good.clone();
                v[i] = b;
                let _ = safetensors_from_bytes(&v);
            }
            let _ = safetensors_from_bytes(&good[..i]);
        }
    }
}
