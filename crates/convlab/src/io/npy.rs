//! NumPy `.npy` files, format versions 1.0, 2.0 and 3.0
//! (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>).
//!
//! Layout: the magic `\x93NUMPY`, a major and minor version byte, the header
//! length (u16 LE in v1, u32 LE in v2/v3), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with
//! spaces and a newline, then the raw data.
//!
//! Reading accepts booleans, integers and floats of either byte order in C or
//! Fortran order and converts to f32 in C order; writing produces `<f4`, C
//! order, version 1.0 with the data aligned to 64 bytes as NumPy does.

use super::dtype::{self, Elem};
use super::{in_file, quoted, read_file, write_atomic_with};
use crate::error::{checked_numel, Dims, Error, Result};
use crate::memory;
use crate::tensor::Tensor;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy pads the header so the data starts on a multiple of this.
const ALIGN: usize = 64;

fn bad(msg: impl Into<String>) -> Error {
    Error::io("npy", msg)
}

/// Reads a `.npy` file into an f32 tensor in C order.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read or is malformed (the message
/// names the file and the problem); [`Error::TooLarge`] when the file or the
/// array exceeds the memory limit.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let bytes = read_file("npy", path)?;
    npy_from_bytes(&bytes).map_err(|e| in_file(path, e))
}

/// Parses the bytes of a `.npy` file (see [`read_npy`]).
///
/// # Errors
/// [`Error::Io`] naming the problem: bad magic, unsupported version, header
/// longer than the file, unparsable dict, unsupported dtype, shape overflow,
/// or a data length that differs from the shape's.
pub fn npy_from_bytes(bytes: &[u8]) -> Result<Tensor> {
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (missing the \\x93NUMPY magic)"));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_size, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => {
            return Err(bad(format!(
                "format version {major}.{minor} is not supported (1.0, 2.0, 3.0 are)"
            )))
        }
    };
    let start = 8 + len_size;
    if bytes.len() < start {
        return Err(bad("file ends inside the header length"));
    }
    let header_len = if len_size == 2 {
        usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))
    } else {
        let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        usize::try_from(n).map_err(|_| bad("header length does not fit in memory"))?
    };
    let data_start = start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "header length {header_len} runs past the end of the file ({} bytes)",
                bytes.len()
            ))
        })?;
    let raw = &bytes[start..data_start];
    // v1/v2 headers are latin-1, v3 UTF-8; the dict we accept is ASCII either way.
    let text: String = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|_| bad("header is not valid UTF-8"))?
            .to_owned()
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let header = parse_header(&text)?;
    let numel = checked_numel(&header.shape).ok_or_else(|| {
        bad(format!(
            "shape {} has more elements than fit in memory",
            Dims(&header.shape)
        ))
    })?;
    let data = &bytes[data_start..];
    let expected = numel.checked_mul(header.elem.size()).ok_or_else(|| {
        bad(format!(
            "shape {} has more bytes than fit in memory",
            Dims(&header.shape)
        ))
    })?;
    if data.len() != expected {
        return Err(bad(format!(
            "data has {} bytes but shape {} of {} needs {expected}",
            data.len(),
            Dims(&header.shape),
            quoted(&header.descr)
        )));
    }
    // The file's bytes stay in memory while the values are converted (and,
    // for Fortran order, reordered into a second buffer).
    let reordered = if header.fortran_order && header.shape.len() > 1 {
        numel
    } else {
        0
    };
    memory::check_f32_total(
        "npy",
        &[
            ("file", bytes.len().div_ceil(4)),
            ("values", numel),
            ("C-order copy", reordered),
        ],
    )?;
    let values = dtype::to_f32("npy", header.elem, header.big_endian, data)?;
    let values = if header.fortran_order && header.shape.len() > 1 {
        fortran_to_c(&values, &header.shape)?
    } else {
        values
    };
    Tensor::from_vec(values, &header.shape)
}

/// Writes `t` as a `.npy` file (`<f4`, C order, version 1.0), atomically.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let header = header_bytes(t.shape());
    write_atomic_with(path, |w| {
        w.write_all(&header)?;
        // Chunks keep the conversion buffer small for big tensors.
        let mut buf = Vec::with_capacity(4 * 4096);
        for chunk in t.data().chunks(4096) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// The bytes of a `.npy` file holding `t` (`<f4`, C order, version 1.0).
pub fn npy_to_bytes(t: &Tensor) -> Vec<u8> {
    let mut out = header_bytes(t.shape());
    out.reserve(4 * t.numel());
    out.extend(t.data().iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Magic, version, length and padded dict for an f32 C-order array. Version
/// 1.0 unless the dict outgrows its u16 length (only for thousands of
/// dimensions), then 2.0, as NumPy does.
fn header_bytes(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    let build = |len_size: usize, major: u8| {
        let unpadded = 8 + len_size + dict.len() + 1;
        let total = unpadded.div_ceil(ALIGN) * ALIGN;
        let header_len = total - 8 - len_size;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[major, 0]);
        if len_size == 2 {
            out.extend_from_slice(&(header_len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header_len as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        out
    };
    let v1 = build(2, 1);
    if v1.len() - 10 <= usize::from(u16::MAX) {
        v1
    } else {
        build(4, 2)
    }
}

/// The parsed header dict.
#[derive(Debug)]
struct Header {
    descr: String,
    elem: Elem,
    big_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the header dict: the subset of Python literals NumPy writes.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

fn parse_header(text: &str) -> Result<Header> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    p.expect(b'{', "header is not a dict (expected '{')")?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = match p.value()? {
            Value::Str(k) => k,
            _ => return Err(bad("header dict has a key that is not a string")),
        };
        let slot = match key.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran,
            "shape" => &mut shape,
            _ => {
                return Err(bad(format!(
                    "header dict has an unexpected key {}",
                    quoted(&key)
                )))
            }
        };
        if slot.is_some() {
            return Err(bad(format!(
                "header dict has the key {} twice",
                quoted(&key)
            )));
        }
        p.expect(
            b':',
            &format!("header dict: expected ':' after {}", quoted(&key)),
        )?;
        *slot = Some(p.value()?);
        p.skip_ws();
        if p.eat(b',') {
            continue;
        }
        p.expect(b'}', "header dict: expected ',' or '}'")?;
        break;
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(bad("header has text after the dict"));
    }
    let descr = match descr {
        Some(Value::Str(s)) => s,
        Some(_) => return Err(bad("descr is not a string")),
        None => return Err(bad("header has no 'descr'")),
    };
    let fortran_order = match fortran {
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad("fortran_order is not True or False")),
        None => return Err(bad("header has no 'fortran_order'")),
    };
    let shape = match shape {
        Some(Value::Tuple(t)) => t,
        Some(_) => return Err(bad("shape is not a tuple of integers")),
        None => return Err(bad("header has no 'shape'")),
    };
    let (elem, big_endian) = parse_descr(&descr)?;
    Ok(Header {
        descr,
        elem,
        big_endian,
        fortran_order,
        shape,
    })
}

/// `'<f4'` → (F32, little-endian). `|` (not applicable) and `=` (native) are
/// accepted too.
fn parse_descr(descr: &str) -> Result<(Elem, bool)> {
    let unsupported = || {
        bad(format!(
            "dtype {} is not supported (bool, int8-64, uint8-64, float16/32/64 are)",
            quoted(descr)
        ))
    };
    let mut chars = descr.chars();
    let big_endian = match chars.next() {
        Some('<') | Some('|') => false,
        Some('>') => true,
        Some('=') => cfg!(target_endian = "big"),
        _ => return Err(unsupported()),
    };
    let elem = match chars.as_str() {
        "b1" => Elem::Bool,
        "u1" => Elem::U8,
        "u2" => Elem::U16,
        "u4" => Elem::U32,
        "u8" => Elem::U64,
        "i1" => Elem::I8,
        "i2" => Elem::I16,
        "i4" => Elem::I32,
        "i8" => Elem::I64,
        "f2" => Elem::F16,
        "f4" => Elem::F32,
        "f8" => Elem::F64,
        _ => return Err(unsupported()),
    };
    Ok((elem, big_endian))
}

/// A cursor over the header text; every method reports malformed input as an error.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, msg: &str) -> Result<()> {
        self.skip_ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(bad(msg))
        }
    }

    fn value(&mut self) -> Result<Value> {
        self.skip_ws();
        match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    // NumPy never writes escapes; refusing them keeps the parser honest.
                    if self.s[self.i] == b'\\' {
                        return Err(bad("header string has an escape, which is not supported"));
                    }
                    self.i += 1;
                }
                if self.i == self.s.len() {
                    return Err(bad("header has an unterminated string"));
                }
                let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Value::Str(s))
            }
            Some(b'(') => {
                self.i += 1;
                self.tuple().map(Value::Tuple)
            }
            Some(b'[') => Err(bad(
                "header has a list value; structured dtypes are not supported",
            )),
            _ => {
                let rest = &self.s[self.i..];
                if rest.starts_with(b"True") {
                    self.i += 4;
                    Ok(Value::Bool(true))
                } else if rest.starts_with(b"False") {
                    self.i += 5;
                    Ok(Value::Bool(false))
                } else {
                    let word = rest
                        .iter()
                        .take_while(|b| !b.is_ascii_whitespace())
                        .take(16)
                        .map(|&b| char::from(b))
                        .collect::<String>();
                    Err(bad(format!(
                        "header has an unexpected value at byte {}: {}",
                        self.i,
                        quoted(&word)
                    )))
                }
            }
        }
    }

    /// The inside of a shape tuple after '(': `)`, `3,)`, `2, 3)`, `2, 3,)`.
    fn tuple(&mut self) -> Result<Vec<usize>> {
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if start == self.i {
                return Err(bad("shape has an entry that is not a non-negative integer"));
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let d: usize = digits
                .parse()
                .map_err(|_| bad(format!("shape entry {digits} does not fit in memory")))?;
            dims.push(d);
            // Python 2 wrote longs as `3L`.
            self.eat(b'L');
            self.skip_ws();
            if self.eat(b',') {
                continue;
            }
            self.expect(b')', "shape tuple: expected ',' or ')'")?;
            // A one-element tuple needs its comma in Python: `(3)` is an int.
            if dims.len() == 1 {
                return Err(bad("shape (n) is not a tuple; a 1-d shape is written (n,)"));
            }
            return Ok(dims);
        }
    }
}

/// Reorders column-major `values` of `shape` into row-major order.
fn fortran_to_c(values: &[f32], shape: &[usize]) -> Result<Vec<f32>> {
    let rank = shape.len();
    let mut out = memory::zeros_f32("npy", values.len())?;
    if values.is_empty() {
        return Ok(out);
    }
    // Column-major strides: the first index moves fastest.
    let mut strides = vec![1usize; rank];
    for k in 1..rank {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut index = vec![0usize; rank];
    let mut src = 0usize;
    for dst in out.iter_mut() {
        *dst = values[src];
        // Advance the row-major index (last fastest), updating src incrementally.
        for k in (0..rank).rev() {
            index[k] += 1;
            src += strides[k];
            if index[k] < shape[k] {
                break;
            }
            src -= strides[k] * shape[k];
            index[k] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "npy_tests.rs"]
mod tests;
