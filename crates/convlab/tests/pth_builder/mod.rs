//! Builds `torch.save`-shaped files byte by byte, for the `.pt` reader's
//! tests: a stored zip (with correct CRCs, so a test reaches the part it
//! aims at) and the pickle opcodes a state dict is made of. Shared by
//! tests/pth.rs and tests/fuzz_pth.rs through `#[path]`.
#![allow(dead_code)]

use std::io::{Cursor, Write};
use zip::write::{SimpleFileOptions, ZipWriter};
use zip::CompressionMethod;

/// A zip of `(name, data)` records, stored uncompressed as torch.save does.
pub fn zip_of(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, data) in records {
        w.start_file(*name, opts).expect("zip entry");
        w.write_all(data).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// A torch.save archive under folder `archive/`: `data.pkl`, little-endian
/// byteorder, and one `data/<key>` record per storage.
pub fn archive(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let names: Vec<String> = storages
        .iter()
        .map(|(k, _)| format!("archive/data/{k}"))
        .collect();
    let mut records: Vec<(&str, &[u8])> = vec![
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little"),
        ("archive/version", b"3\n"),
    ];
    for (name, (_, data)) in names.iter().zip(storages) {
        records.push((name.as_str(), data));
    }
    zip_of(&records)
}

/// One tensor of a state dict as `_rebuild_tensor_v2` describes it.
#[derive(Clone, Debug)]
pub struct Desc {
    pub name: String,
    /// Storage class in module `torch`, e.g. `FloatStorage`.
    pub class: &'static str,
    pub key: String,
    pub numel: i64,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

impl Desc {
    /// A contiguous float32 tensor of `size` over all of storage `key`.
    pub fn f32(name: &str, key: &str, size: &[i64]) -> Desc {
        let mut stride = vec![1i64; size.len()];
        for d in (0..size.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * size[d + 1];
        }
        Desc {
            name: name.into(),
            class: "FloatStorage",
            key: key.into(),
            numel: size.iter().product(),
            offset: 0,
            size: size.to_vec(),
            stride,
        }
    }
}

/// Pickle opcodes, written in the order a test wants them.
#[derive(Default)]
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn new() -> Pickle {
        Pickle(vec![0x80, 2]) // PROTO 2
    }
    pub fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.op(b"X");
        self.op(&(s.len() as u32).to_le_bytes());
        self.op(s.as_bytes())
    }
    /// Any i64, as LONG1 with 8 bytes.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.op(&[0x8a, 8]);
        self.op(&v.to_le_bytes())
    }
    pub fn ints_tuple(&mut self, v: &[i64]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.int(x);
        }
        self.op(b"t")
    }
    /// `collections.OrderedDict()`.
    pub fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(b")R")
    }
    /// `_rebuild_tensor_v2(<persistent storage>, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(&mut self, d: &Desc) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b"((");
        self.str("storage")
            .global("torch", d.class)
            .str(&d.key)
            .str("cpu");
        self.int(d.numel).op(b"tQ");
        self.int(d.offset)
            .ints_tuple(&d.size)
            .ints_tuple(&d.stride)
            .op(&[0x89]) // NEWFALSE
            .ordered_dict()
            .op(b"tR")
    }
    /// An OrderedDict of the described tensors, then STOP.
    pub fn state_dict(descs: &[Desc]) -> Vec<u8> {
        let mut p = Pickle::new();
        p.ordered_dict().op(b"(");
        for d in descs {
            p.str(&d.name).tensor(d);
        }
        p.op(b"u.");
        p.0
    }
}

/// The little-endian bytes of `values`.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
