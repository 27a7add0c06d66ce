//! The UCI "Optical Recognition of Handwritten Digits" set as scikit-learn
//! ships it: one CSV row per image, 64 pixel values `0..=16` (8x8, row
//! major) then the label `0..=9`, optionally gzip-compressed.
//!
//! ```
//! use convlab::data::Digits;
//! let csv = "0,16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\
//!            0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,8,7\n";
//! let d = Digits::from_csv(csv)?;
//! assert_eq!((d.len(), d.labels()[0]), (1, 7));
//! assert_eq!(&d.pixels()[..2], &[0.0, 1.0]); // divided by 16
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::io::Read;

/// Pixels per image (8x8).
pub const PIXELS: usize = 64;
/// Image side.
pub const SIDE: usize = 8;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Largest pixel value in the raw data; pixels are divided by it.
pub const MAX_PIXEL: f32 = 16.0;

/// The set as scikit-learn ships it (`assets/digits.csv.gz`, 1797 rows).
const BUNDLED: &[u8] = include_bytes!("../../../../assets/digits.csv.gz");

/// Images scaled to `[0, 1]` and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Digits {
    /// `len * 64` values, image after image.
    pixels: Vec<f32>,
    labels: Vec<usize>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::io("digits", msg)
}

impl Digits {
    /// Parses CSV text: one row per image, 64 integers `0..=16` then a label
    /// `0..=9`, comma separated; blank lines are skipped.
    ///
    /// # Errors
    /// [`Error::Io`] naming the line (1-based) of the first malformed row,
    /// or when there is no row at all.
    pub fn from_csv(text: &str) -> Result<Digits> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let lineno = i + 1;
            let mut fields = 0;
            for (j, f) in line.split(',').enumerate() {
                fields += 1;
                if j > PIXELS {
                    continue;
                }
                let v: u32 = f.trim().parse().map_err(|_| {
                    bad(format!(
                        "line {lineno}, field {}: '{}' is not a non-negative integer",
                        j + 1,
                        f.chars().take(32).collect::<String>()
                    ))
                })?;
                if j < PIXELS {
                    if v > MAX_PIXEL as u32 {
                        return Err(bad(format!(
                            "line {lineno}, field {}: pixel {v} is out of range 0..=16",
                            j + 1
                        )));
                    }
                    pixels.push(v as f32 / MAX_PIXEL);
                } else {
                    if v as usize >= CLASSES {
                        return Err(bad(format!(
                            "line {lineno}: label {v} is out of range 0..=9"
                        )));
                    }
                    labels.push(v as usize);
                }
            }
            if fields != PIXELS + 1 {
                return Err(bad(format!(
                    "line {lineno} has {fields} fields; expected {} (64 pixels and a label)",
                    PIXELS + 1
                )));
            }
        }
        if labels.is_empty() {
            return Err(bad("no rows: expected 64 pixels and a label per line"));
        }
        Ok(Digits { pixels, labels })
    }

    /// Parses gzip-compressed CSV (as `digits.csv.gz`), or plain CSV when the
    /// bytes do not start with the gzip magic number.
    ///
    /// # Errors
    /// [`Error::Io`] when the bytes are not valid gzip or UTF-8, or as
    /// [`Digits::from_csv`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Digits> {
        let text = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut s = String::new();
            // The set is 1797 rows of ~200 bytes; cap the decompressed size so a
            // hostile file cannot inflate without bound (a zip bomb).
            const LIMIT: u64 = 64 << 20;
            flate2::read::GzDecoder::new(bytes)
                .take(LIMIT)
                .read_to_string(&mut s)
                .map_err(|e| bad(format!("cannot decompress: {e}")))?;
            s
        } else {
            String::from_utf8(bytes.to_vec()).map_err(|_| bad("file is not UTF-8 text"))?
        };
        Digits::from_csv(&text)
    }

    /// The whole set (1797 images), from the copy of scikit-learn's
    /// `digits.csv.gz` embedded in the library: no file needed.
    ///
    /// ```
    /// let d = convlab::data::Digits::bundled()?;
    /// assert_eq!(d.len(), 1797);
    /// let (train, test) = d.split_every_fifth();
    /// assert_eq!((train.len(), test.len()), (1437, 360));
    /// # Ok::<(), convlab::Error>(())
    /// ```
    ///
    /// # Errors
    /// None in practice: the embedded bytes are parsed like any file.
    pub fn bundled() -> Result<Digits> {
        Digits::from_bytes(BUNDLED)
    }

    /// Reads a `.csv` or `.csv.gz` file (see [`Digits::from_bytes`]).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be read or is malformed.
    pub fn load(path: &std::path::Path) -> Result<Digits> {
        // At most the memory limit is read, whatever the file (a device or
        // a pipe reports a size of 0).
        let bytes = crate::io::read_bounded("digits", path)?;
        Digits::from_bytes(&bytes).map_err(|e| match e {
            Error::Io { op, msg } => Error::io(op, format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All pixels, scaled to `[0, 1]`, `len * 64` values.
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// The labels `0..=9`.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The images whose index `i` satisfies `keep(i)`, in order.
    pub fn filter(&self, keep: impl Fn(usize) -> bool) -> Digits {
        let mut out = Digits {
            pixels: Vec::new(),
            labels: Vec::new(),
        };
        for i in (0..self.len()).filter(|&i| keep(i)) {
            out.pixels
                .extend_from_slice(&self.pixels[i * PIXELS..(i + 1) * PIXELS]);
            out.labels.push(self.labels[i]);
        }
        out
    }

    /// The split `convlab train-digits` uses: image `i` is a test image when
    /// `i % 5 == 0` (360 of 1797), the rest train (1437). Returns `(train, test)`.
    pub fn split_every_fifth(&self) -> (Digits, Digits) {
        (self.filter(|i| i % 5 != 0), self.filter(|i| i % 5 == 0))
    }

    /// The images at `indices` as a `[len, 1, 8, 8]` tensor and their labels.
    ///
    /// # Errors
    /// [`Error::Shape`] when an index is out of range.
    pub fn batch(&self, indices: &[usize]) -> Result<(Tensor, Vec<usize>)> {
        let mut x = Vec::with_capacity(indices.len() * PIXELS);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.len() {
                return Err(Error::shape(
                    "digits",
                    format!("index {i} is out of range for {} images", self.len()),
                ));
            }
            x.extend_from_slice(&self.pixels[i * PIXELS..(i + 1) * PIXELS]);
            y.push(self.labels[i]);
        }
        Ok((Tensor::from_vec(x, &[indices.len(), 1, SIDE, SIDE])?, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: usize, first: u32) -> String {
        let mut v = vec![first.to_string()];
        v.extend((1..PIXELS).map(|_| "0".to_string()));
        v.push(label.to_string());
        v.join(",")
    }

    #[test]
    fn parses_and_scales() {
        let d = Digits::from_csv(&format!("{}\n\n{}\n", row(3, 16), row(9, 8))).unwrap();
        assert_eq!(d.labels(), &[3, 9]);
        assert_eq!(d.pixels()[0], 1.0);
        assert_eq!(d.pixels()[PIXELS], 0.5);
        let (x, y) = d.batch(&[1, 0]).unwrap();
        assert_eq!(x.shape(), &[2, 1, 8, 8]);
        assert_eq!((y, x.data()[0]), (vec![9, 3], 0.5));
        assert!(d.batch(&[2]).is_err());
    }

    #[test]
    fn malformed_rows_name_the_line() {
        let short = "1,2,3\n";
        assert!(Digits::from_csv(short)
            .unwrap_err()
            .to_string()
            .contains("line 1 has 3 fields"));
        let e = Digits::from_csv(&format!("{}\n{}", row(1, 0), row(1, 17))).unwrap_err();
        assert!(e.to_string().contains("line 2, field 1: pixel 17"), "{e}");
        let e = Digits::from_csv(&row(10, 0)).unwrap_err();
        assert!(e.to_string().contains("label 10"), "{e}");
        let e = Digits::from_csv(&row(1, 0).replace("0,0,0", "0,x,0")).unwrap_err();
        assert!(e.to_string().contains("'x' is not"), "{e}");
        assert!(Digits::from_csv("\n").is_err());
        assert!(Digits::from_bytes(&[0x1f, 0x8b, 0, 1]).is_err());
    }

    #[test]
    fn split_is_every_fifth() {
        let text: Vec<String> = (0..12).map(|i| row(i % 10, 0)).collect();
        let (train, test) = Digits::from_csv(&text.join("\n"))
            .unwrap()
            .split_every_fifth();
        assert_eq!(test.labels(), &[0, 5, 0]);
        assert_eq!(train.len(), 9);
    }
}
