//! torch.save (.pt/.pth) reader: an `Err` is fine, a panic, a multi-line
//! error or an allocation past the (small) memory limit is a bug.
//!
//! Two kinds of input, chosen by the first byte, so mutations get past the
//! CRC-32 that guards every record:
//! - even (a zip starts with 'P', 0x50): the bytes are the whole file;
//! - odd: the rest is `data.pkl`, wrapped in a valid archive with storages
//!   `0` to `15` of 64 bytes each (16 float32, 32 float16, 8 int64 values,
//!   ...), so the unpickler and the tensor checks see every mutation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Write};
use zip::write::{SimpleFileOptions, ZipWriter};
use zip::CompressionMethod;

fn archive(pickle: &[u8]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let mut put = |name: &str, data: &[u8]| {
        w.start_file(name, opts).expect("zip entry");
        w.write_all(data).expect("zip write");
    };
    put("archive/data.pkl", pickle);
    put("archive/byteorder", b"little");
    let storage: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37)).collect();
    for key in 0..16 {
        put(&format!("archive/data/{key}"), &storage);
    }
    w.finish().expect("zip finish").into_inner()
}

fn check(r: convlab::Result<Vec<(String, convlab::Tensor)>>) {
    match r {
        Ok(tensors) => {
            for (_, t) in tensors {
                assert_eq!(t.numel(), t.shape().iter().product::<usize>());
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "two lines: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    convlab::memory::set_max_bytes(64 << 20);
    let Some(&mode) = data.first() else {
        return;
    };
    let wrapped;
    let bytes = if mode % 2 == 0 {
        data
    } else {
        wrapped = archive(&data[1..]);
        &wrapped
    };
    check(convlab::io::pth_from_bytes(bytes));
    check(convlab::io::pth_key_from_bytes(bytes, "model"));
    check(convlab::io::tensors_from_bytes(bytes));
});
