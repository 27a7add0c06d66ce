//! PNG and JPEG images as tensors: `[H, W]` for grayscale, `[C, H, W]` for
//! colour (channels first, as torchvision's `to_tensor`), values in 0..1.

use super::{in_file, read_file, write_atomic_with};
use crate::error::{checked_numel, Dims, Error, Result};
use crate::memory;
use crate::tensor::Tensor;
use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::{
    DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits,
};
use std::io::{self, Cursor};
use std::path::Path;
use std::str::FromStr;

/// ITU-R BT.601 luma weights (R, G, B), the conversion of PIL's
/// `convert("L")` and torchvision's `rgb_to_grayscale`.
const LUMA_601: [f32; 3] = [0.299, 0.587, 0.114];
/// Quality of written JPEGs; high because outputs are often inspected for
/// fine structure such as edge-detector responses.
const JPEG_QUALITY: u8 = 95;

fn bad(msg: impl Into<String>) -> Error {
    Error::io("image", msg)
}

/// Loads a PNG or JPEG image (recognised by its content, not its name).
///
/// Grayscale images, and any image when `gray` is true, give `[H, W]`;
/// colour images give `[3, H, W]`, or `[4, H, W]` with alpha. Colour becomes
/// gray with the ITU-R BT.601 weights 0.299 R + 0.587 G + 0.114 B (alpha
/// ignored); a gray image's alpha channel is dropped. Values are scaled to
/// 0..1: 8-bit samples divided by 255, 16-bit ones by 65535.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, is neither PNG nor JPEG, or
/// is corrupt; [`Error::TooLarge`] when the decoded image would exceed the
/// memory limit (checked from the header, before decoding).
pub fn load_image(path: &Path, gray: bool) -> Result<Tensor> {
    let bytes = read_file("image", path)?;
    decode(&bytes, gray).map_err(|e| in_file(path, e))
}

/// Decodes a PNG or JPEG image held in memory (an embedded asset, a
/// download), exactly as [`load_image`] decodes a file.
///
/// # Errors
/// As [`load_image`], without the file name.
pub fn image_from_bytes(bytes: &[u8], gray: bool) -> Result<Tensor> {
    decode(bytes, gray)
}

fn decode(bytes: &[u8], gray: bool) -> Result<Tensor> {
    let format = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        ImageFormat::Png
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        ImageFormat::Jpeg
    } else {
        return Err(bad("not a PNG or JPEG file (unrecognised signature)"));
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // Bound the decoder's own buffers too, not only our f32 copy.
    let mut limits = Limits::default();
    limits.max_alloc = Some(memory::max_bytes() as u64);
    reader.limits(limits);
    let corrupt = |e: ::image::ImageError| match e {
        ::image::ImageError::Limits(l) => Error::too_large(
            "image",
            format!("decoding needs more memory than allowed: {l}"),
        ),
        e => bad(format!("cannot decode {format:?}: {e}")),
    };
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    let (w, h) = (w as usize, h as usize);
    let c_file = usize::from(decoder.color_type().channel_count());
    let channels = match c_file {
        _ if gray => 1,
        1 | 2 => 1,
        c => c,
    };
    // Held at once: the file's bytes, the decoder's 8- or 16-bit samples
    // (every channel of the file) and the planar f32 result.
    let too_many = || {
        Error::too_large(
            "image",
            format!("{w}x{h} image has more pixels than fit in memory"),
        )
    };
    let samples_len = checked_numel(&[c_file, h, w]).ok_or_else(too_many)?;
    let numel = checked_numel(&[channels, h, w]).ok_or_else(too_many)?;
    let sample_bytes = usize::from(decoder.color_type().bytes_per_pixel()) / c_file.max(1);
    memory::check_f32_total(
        "image",
        &[
            ("file", bytes.len().div_ceil(4)),
            (
                "decoded samples",
                samples_len.saturating_mul(sample_bytes).div_ceil(4),
            ),
            ("image", numel),
        ],
    )?;
    let img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let (hw, c_in) = (h * w, usize::from(img.color().channel_count()));
    // Straight from the decoder's 8/16-bit buffer to the planar f32 result:
    // an interleaved f32 copy first would add 4 bytes per sample to the peak
    // (768 MB on an 8000x8000 colour photograph).
    let data = match &img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => planar(img.as_bytes(), 255.0, c_in, channels, hw),
        DynamicImage::ImageLuma16(b) => planar(b, 65535.0, c_in, channels, hw),
        DynamicImage::ImageLumaA16(b) => planar(b, 65535.0, c_in, channels, hw),
        DynamicImage::ImageRgb16(b) => planar(b, 65535.0, c_in, channels, hw),
        DynamicImage::ImageRgba16(b) => planar(b, 65535.0, c_in, channels, hw),
        other => return Err(bad(format!("unsupported pixel type {:?}", other.color()))),
    };
    drop(img);
    debug_assert_eq!(data.len(), numel);
    let shape: &[usize] = if channels == 1 {
        &[h, w]
    } else {
        &[channels, h, w]
    };
    Tensor::from_vec(data, shape)
}

/// Interleaved integer samples (`c_in` per pixel, `hw` pixels) as planar
/// f32 in 0..1: `channels == 1` keeps luma (1-2 channels, alpha dropped) or
/// converts colour with BT.601; otherwise each channel becomes a plane.
fn planar<T: Copy + Into<f32>>(
    raw: &[T],
    max: f32,
    c_in: usize,
    channels: usize,
    hw: usize,
) -> Vec<f32> {
    debug_assert_eq!(raw.len(), hw * c_in);
    let v = |x: T| x.into() / max;
    if channels == 1 {
        if c_in <= 2 {
            raw.iter().step_by(c_in).map(|&x| v(x)).collect()
        } else {
            raw.chunks_exact(c_in)
                .map(|p| LUMA_601[0] * v(p[0]) + LUMA_601[1] * v(p[1]) + LUMA_601[2] * v(p[2]))
                .collect()
        }
    } else {
        let mut out = vec![0.0; channels * hw];
        for (i, p) in raw.chunks_exact(c_in).enumerate() {
            for (c, &x) in p.iter().enumerate() {
                out[c * hw + i] = v(x);
            }
        }
        out
    }
}

/// How [`save_image`] maps tensor values to the 0..255 of an 8-bit image.
/// NaN always becomes 0; values are rounded to the nearest level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// `(v - min) / (max - min)`, over the finite values; a constant image becomes 0.
    MinMax,
    /// `|v| / max|v|`, so 0 is black whatever the sign (for filter responses).
    Abs,
    /// `v` clamped to 0..1 (for tensors already in image range).
    Clip,
}

impl FromStr for Normalize {
    type Err = Error;

    /// Parses `minmax`, `abs` or `clip` (case-insensitive).
    fn from_str(s: &str) -> Result<Normalize> {
        match s.to_ascii_lowercase().as_str() {
            "minmax" => Ok(Normalize::MinMax),
            "abs" => Ok(Normalize::Abs),
            "clip" => Ok(Normalize::Clip),
            _ => Err(Error::param(
                "save_image",
                "normalize",
                format!("'{s}' is not one of minmax, abs, clip"),
            )),
        }
    }
}

impl std::fmt::Display for Normalize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Normalize::MinMax => "minmax",
            Normalize::Abs => "abs",
            Normalize::Clip => "clip",
        })
    }
}

/// Maps `values` to 8-bit levels with `norm`.
fn to_levels(values: &[f32], norm: Normalize) -> Vec<u8> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    // Each mode is an affine map v -> (v - offset) * scale, then clamp to 0..1.
    let (offset, scale, abs) = match norm {
        Normalize::MinMax => {
            let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            // f64: max - min of finite f32s may overflow f32.
            let range = f64::from(hi) - f64::from(lo);
            let scale = if range > 0.0 { 1.0 / range } else { 0.0 };
            (f64::from(lo), scale, false)
        }
        Normalize::Abs => {
            let m = finite.fold(0.0f32, |m, v| m.max(v.abs()));
            (0.0, if m > 0.0 { 1.0 / f64::from(m) } else { 0.0 }, true)
        }
        Normalize::Clip => (0.0, 1.0, false),
    };
    values
        .iter()
        .map(|&v| {
            if v.is_nan() {
                return 0;
            }
            let v = f64::from(if abs { v.abs() } else { v });
            let u = ((v - offset) * scale).clamp(0.0, 1.0);
            // A 0 scale (constant image) times an infinite value is NaN: black.
            if u.is_nan() {
                0
            } else {
                (u * 255.0).round() as u8
            }
        })
        .collect()
}

/// Saves `t` (`[H, W]`, `[1, H, W]` or `[3, H, W]`) as an 8-bit PNG or JPEG,
/// chosen by the extension (`.png`, `.jpg`, `.jpeg`, any case), atomically.
/// JPEGs are written at quality 95.
///
/// # Errors
/// [`Error::Shape`] for any other shape or an empty image; [`Error::Io`] for
/// another extension (the message names it) or when the file cannot be
/// written or encoded (e.g. a JPEG wider than 65535).
pub fn save_image(path: &Path, t: &Tensor, norm: Normalize) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let format = match ext.as_str() {
        "png" => ImageFormat::Png,
        "jpg" | "jpeg" => ImageFormat::Jpeg,
        "" => {
            return Err(bad(format!(
                "cannot tell the format of {}: no extension (use .png, .jpg or .jpeg)",
                path.display()
            )))
        }
        _ => {
            return Err(bad(format!(
                "cannot save {}: extension '.{ext}' is not .png, .jpg or .jpeg",
                path.display()
            )))
        }
    };
    let (c, h, w) = match *t.shape() {
        [h, w] => (1, h, w),
        [c @ (1 | 3), h, w] => (c, h, w),
        _ => {
            return Err(Error::shape(
                "save_image",
                format!(
                    "expects [H, W], [1, H, W] or [3, H, W], got {}",
                    Dims(t.shape())
                ),
            ))
        }
    };
    if h == 0 || w == 0 {
        return Err(Error::shape(
            "save_image",
            format!("image {} is empty", Dims(t.shape())),
        ));
    }
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(Error::shape(
            "save_image",
            format!("image {} is too large", Dims(t.shape())),
        ));
    };
    let levels = to_levels(t.data(), norm);
    let (pixels, color) = if c == 1 {
        (levels, ExtendedColorType::L8)
    } else {
        // Planar CHW to interleaved HWC.
        let hw = h * w;
        let mut px = vec![0u8; 3 * hw];
        for (i, p) in px.chunks_exact_mut(3).enumerate() {
            for ch in 0..3 {
                p[ch] = levels[ch * hw + i];
            }
        }
        (px, ExtendedColorType::Rgb8)
    };
    write_atomic_with(path, |out| {
        let res = match format {
            ImageFormat::Png => PngEncoder::new(out).write_image(&pixels, w32, h32, color),
            _ => JpegEncoder::new_with_quality(out, JPEG_QUALITY)
                .write_image(&pixels, w32, h32, color),
        };
        res.map_err(|e| match e {
            ::image::ImageError::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_parses_and_prints() {
        for (s, n) in [
            ("minmax", Normalize::MinMax),
            ("ABS", Normalize::Abs),
            ("clip", Normalize::Clip),
        ] {
            let parsed: Normalize = s.parse().unwrap();
            assert_eq!(parsed, n);
            assert_eq!(parsed.to_string(), s.to_ascii_lowercase());
        }
        let e = "max".parse::<Normalize>().unwrap_err().to_string();
        assert_eq!(
            e,
            "save_image: normalize 'max' is not one of minmax, abs, clip"
        );
    }

    #[test]
    fn levels_of_each_mode() {
        let v = [-1.0, 0.0, 1.0, 3.0, f32::NAN];
        assert_eq!(to_levels(&v, Normalize::MinMax), [0, 64, 128, 255, 0]);
        assert_eq!(to_levels(&v, Normalize::Abs), [85, 0, 85, 255, 0]);
        assert_eq!(to_levels(&v, Normalize::Clip), [0, 0, 255, 255, 0]);
        assert_eq!(to_levels(&[0.5, 0.2], Normalize::Clip), [128, 51]);
        // Constant images, all-zero images, infinities.
        assert_eq!(to_levels(&[2.0, 2.0], Normalize::MinMax), [0, 0]);
        assert_eq!(to_levels(&[0.0, 0.0], Normalize::Abs), [0, 0]);
        assert_eq!(
            to_levels(
                &[0.0, 1.0, f32::INFINITY, f32::NEG_INFINITY],
                Normalize::MinMax
            ),
            [0, 255, 255, 0]
        );
        assert_eq!(
            to_levels(&[f32::MIN, f32::MAX], Normalize::MinMax),
            [0, 255]
        );
        assert_eq!(to_levels(&[5.0, f32::INFINITY], Normalize::MinMax), [0, 0]);
    }

    #[test]
    fn unknown_content_is_an_error() {
        let e = decode(b"GIF89a....", false).unwrap_err().to_string();
        assert_eq!(e, "image: not a PNG or JPEG file (unrecognised signature)");
        let e = decode(b"\x89PNG\r\n\x1a\n\0\0", false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("image: cannot decode Png"), "{e}");
        let e = decode(&[0xff, 0xd8, 0xff, 0xe0, 0, 0], false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("image: cannot decode Jpeg"), "{e}");
    }
}
