//! The zip container `torch.save` writes (PyTorch >= 1.6): one top folder
//! (named after the file it was first saved as, so any name) holding
//! `data.pkl` (the pickled object), `byteorder` (`little` or `big`),
//! `version` and `data/<key>`, one raw storage per key. Every entry is
//! stored uncompressed; anything else is refused rather than inflated.
//!
//! The zip structure itself is parsed by the `zip` crate over the bytes in
//! memory; an entry's data is then a slice of those bytes (no copy), checked
//! against its CRC-32 before use, so a flipped bit is an error rather than a
//! wrong weight.

use super::bad;
use crate::error::Result;
use crate::io::quoted;
use std::collections::HashMap;
use std::io::Cursor;
use zip::{CompressionMethod, ZipArchive};

/// The first bytes of PyTorch's legacy (pre-zip) format: pickle protocol 2,
/// then the magic number 0x1950a86a20f9469cfc6c as a 10-byte LONG1.
const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// An opened `torch.save` archive: where its records are, and the storages
/// already checked.
pub(super) struct Archive<'a> {
    bytes: &'a [u8],
    zip: ZipArchive<Cursor<&'a [u8]>>,
    /// The top folder with its slash, e.g. `archive/`.
    prefix: String,
    big_endian: bool,
    storages: HashMap<String, &'a [u8]>,
}

impl<'a> Archive<'a> {
    /// Opens the archive in `bytes`, finding its top folder and byte order.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when `bytes` is not a `torch.save` zip (legacy
    /// PyTorch files and TorchScript archives are named as such).
    pub(super) fn open(bytes: &'a [u8]) -> Result<Self> {
        if !bytes.starts_with(b"PK") {
            return Err(not_a_zip(bytes));
        }
        let zip = ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| bad(format!("malformed zip container: {}", one_line(&e))))?;
        let prefix = top_folder(&zip)?;
        let mut archive = Archive {
            bytes,
            zip,
            prefix,
            big_endian: false,
            storages: HashMap::new(),
        };
        // Files written before PyTorch 1.10 have no byteorder record; they
        // are little-endian, as PyTorch itself assumes.
        archive.big_endian = match archive.record("byteorder")? {
            None | Some(b"little") => false,
            Some(b"big") => true,
            Some(other) => {
                return Err(bad(format!(
                    "byteorder record is {}, not 'little' or 'big'",
                    quoted(&String::from_utf8_lossy(other))
                )))
            }
        };
        Ok(archive)
    }

    /// Whether the storages hold big-endian values.
    pub(super) fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// The bytes of `data.pkl`.
    pub(super) fn pickle(&mut self) -> Result<&'a [u8]> {
        self.record("data.pkl")?
            .ok_or_else(|| bad("the archive has no data.pkl"))
    }

    /// The raw bytes of storage `key` (`data/<key>`), CRC-checked once.
    pub(super) fn storage(&mut self, key: &str) -> Result<&'a [u8]> {
        if let Some(&b) = self.storages.get(key) {
            return Ok(b);
        }
        let data = self.record(&format!("data/{key}"))?.ok_or_else(|| {
            bad(format!(
                "data.pkl refers to storage {}, which the archive does not hold",
                quoted(key)
            ))
        })?;
        self.storages.insert(key.to_string(), data);
        Ok(data)
    }

    /// The data of record `name` under the top folder, after checking that
    /// it is stored uncompressed, lies inside the file and matches its CRC.
    fn record(&mut self, name: &str) -> Result<Option<&'a [u8]>> {
        let full = format!("{}{name}", self.prefix);
        let Some(index) = self.zip.index_for_name(&full) else {
            return Ok(None);
        };
        let bytes = self.bytes;
        let malformed = |e: zip::result::ZipError| {
            bad(format!(
                "record {}: malformed zip entry: {}",
                quoted(&full),
                one_line(&e)
            ))
        };
        let entry = self.zip.by_index_raw(index).map_err(malformed)?;
        if entry.encrypted() {
            return Err(bad(format!("record {} is encrypted", quoted(&full))));
        }
        if entry.compression() != CompressionMethod::Stored {
            return Err(bad(format!(
                "record {} is compressed ({}); torch.save stores records uncompressed",
                quoted(&full),
                entry.compression()
            )));
        }
        let (size, stored) = (entry.size(), entry.compressed_size());
        if size != stored {
            return Err(bad(format!(
                "record {} is stored uncompressed but its sizes differ ({size} and {stored} bytes)",
                quoted(&full)
            )));
        }
        let start = entry.data_start();
        let crc = entry.crc32();
        let range = start
            .and_then(|s| Some((usize::try_from(s).ok()?, usize::try_from(size).ok()?)))
            .and_then(|(s, n)| Some(s..s.checked_add(n)?))
            .filter(|r| r.end <= bytes.len())
            .ok_or_else(|| {
                bad(format!(
                    "record {} of {size} bytes runs past the end of the file ({} bytes)",
                    quoted(&full),
                    bytes.len()
                ))
            })?;
        let data = &bytes[range];
        let actual = crc32fast::hash(data);
        if actual != crc {
            return Err(bad(format!(
                "record {} fails its CRC-32 check ({actual:08x}, expected {crc:08x}): the file is corrupt",
                quoted(&full)
            )));
        }
        Ok(Some(data))
    }
}

/// The top folder of the archive (with its slash): the folder holding
/// `data.pkl`. PyTorch names it after the file first saved, so it varies.
fn top_folder(zip: &ZipArchive<Cursor<&[u8]>>) -> Result<String> {
    let mut found: Option<&[u8]> = None;
    let mut torchscript = false;
    for name in zip.file_names_raw() {
        let mut parts = name.splitn(2, |&b| b == b'/');
        let (Some(top), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        torchscript |= rest == b"constants.pkl" || rest.starts_with(b"code/");
        if rest == b"data.pkl" {
            if found.is_some_and(|f| f != top) {
                return Err(bad("the archive has data.pkl in two folders"));
            }
            found = Some(top);
        }
    }
    if torchscript {
        return Err(bad(
            "the file is a TorchScript archive (torch.jit.save); convlab reads torch.save files: \
             save model.state_dict() with torch.save",
        ));
    }
    let top = found.ok_or_else(|| {
        bad("the zip has no <folder>/data.pkl record, so it is not a torch.save file")
    })?;
    let top =
        std::str::from_utf8(top).map_err(|_| bad("the archive's folder name is not UTF-8"))?;
    Ok(format!("{top}/"))
}

/// Why bytes that do not start a zip are not read.
fn not_a_zip(bytes: &[u8]) -> crate::Error {
    let legacy_tar = bytes.get(257..262) == Some(b"ustar");
    if bytes.starts_with(&LEGACY_MAGIC) || legacy_tar {
        return bad("the file is in PyTorch's legacy format (written with \
             _use_new_zipfile_serialization=False or by PyTorch < 1.6); convlab reads the zip \
             format: load it in PyTorch and torch.save it again");
    }
    bad(format!(
        "not a torch.save file: a zip archive starts with 'PK', this file with {}",
        first_bytes(bytes)
    ))
}

/// The first few bytes, for a message: `[0x80, 0x02, ...]` or `no bytes`.
pub(in crate::io) fn first_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "no bytes (it is empty)".to_string();
    }
    let shown: Vec<String> = bytes.iter().take(4).map(|b| format!("0x{b:02x}")).collect();
    let more = if bytes.len() > 4 { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

/// The zip crate's error on one line, cut short.
fn one_line(e: &zip::result::ZipError) -> String {
    let s = e.to_string();
    let q = quoted(&s);
    q[1..q.len() - 1].to_string()
}
