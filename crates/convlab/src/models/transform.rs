//! torchvision's ImageNet evaluation transform on a decoded image:
//! `Resize(256, antialias=True)` (the short side to 256), `CenterCrop(224)`,
//! to [0, 1], `Normalize(mean, std)`, as `torchvision.transforms.v2` does it
//! on a uint8 tensor (each resize pass rounded to 8 bits, as its uint8
//! kernel does).

use crate::error::{Dims, Error, Result};
use crate::memory;
use crate::tensor::Tensor;

/// ImageNet's per-channel mean (RGB), as torchvision's weights expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

const OP: &str = "imagenet_eval_transform";

/// `[3, crop, crop]` from an image in [0, 1] as [`crate::io::load_image`]
/// gives it (`[H, W]` gray, `[3, H, W]` RGB or `[4, H, W]` RGBA; gray is
/// repeated, alpha dropped): the short side resized to `resize` with
/// antialiased bilinear filtering, the centre `crop` x `crop` cut out,
/// normalised with ImageNet's mean and std. torchvision's eval preset is
/// `resize` 256, `crop` 224.
///
/// # Errors
/// [`Error::Shape`] for another layout or an image whose resized short side
/// is below `crop`; [`Error::TooLarge`] for a resize beyond the memory limit.
pub fn imagenet_eval_transform(image: &Tensor, resize: usize, crop: usize) -> Result<Tensor> {
    let (planes, h, w) = rgb_planes(image)?;
    if crop == 0 || resize < crop {
        return Err(Error::param(
            OP,
            "crop",
            format!("crop {crop} must be positive and at most the resized short side {resize}"),
        ));
    }
    // torchvision: the short side becomes `resize`, the long one
    // int(resize * long / short).
    let (oh, ow) = if h <= w {
        (resize, resize.saturating_mul(w) / h)
    } else {
        (resize.saturating_mul(h) / w, resize)
    };
    memory::check_f32(OP, oh.saturating_mul(ow).saturating_mul(3))?;
    let cols = weights(w, ow);
    let rows = weights(h, oh);
    // Python's round() of (size - crop) / 2: halves go to the even integer.
    let offset = |size: usize| {
        let twice = size - crop;
        let half = twice / 2;
        if twice % 2 == 1 && half % 2 == 1 {
            half + 1
        } else {
            half
        }
    };
    let (top, left) = (offset(oh), offset(ow));
    let mut out = Vec::with_capacity(3 * crop * crop);
    for (c, plane) in planes.iter().enumerate() {
        // Horizontal pass, then vertical, each rounded to 8 bits.
        let mut horizontal = vec![0u8; h * ow];
        for y in 0..h {
            let row = &plane[y * w..(y + 1) * w];
            for (x, (start, ws)) in cols.iter().enumerate() {
                let s: f64 = ws
                    .iter()
                    .enumerate()
                    .map(|(j, wt)| wt * row[start + j] as f64)
                    .sum();
                horizontal[y * ow + x] = to_u8(s);
            }
        }
        for (start, ws) in rows.iter().skip(top).take(crop) {
            for x in left..left + crop {
                let s: f64 = ws
                    .iter()
                    .enumerate()
                    .map(|(j, wt)| wt * horizontal[(start + j) * ow + x] as f64)
                    .sum();
                let v = f32::from(to_u8(s)) / 255.0;
                out.push((v - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);
            }
        }
    }
    Tensor::from_vec(out, &[3, crop, crop])
}

fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// The image's three RGB planes as 8-bit values.
fn rgb_planes(image: &Tensor) -> Result<([Vec<u8>; 3], usize, usize)> {
    let s = image.shape();
    let (c, h, w) = match *s {
        [h, w] => (1, h, w),
        [c, h, w] if c == 1 || c == 3 || c == 4 => (c, h, w),
        _ => {
            return Err(Error::shape(
                OP,
                format!(
                    "expected an image [H, W], [3, H, W] or [4, H, W], got {}",
                    Dims(s)
                ),
            ))
        }
    };
    if h == 0 || w == 0 {
        return Err(Error::shape(OP, format!("the image {} is empty", Dims(s))));
    }
    let plane = |i: usize| -> Vec<u8> {
        let src = if c == 1 { 0 } else { i };
        image.data()[src * h * w..(src + 1) * h * w]
            .iter()
            .map(|&v| to_u8(v as f64 * 255.0))
            .collect()
    };
    Ok(([plane(0), plane(1), plane(2)], h, w))
}

/// PyTorch's antialiased bilinear weights from `input` to `output` samples:
/// for each output sample, its first input sample and normalised weights.
fn weights(input: usize, output: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let (support, invscale) = if scale >= 1.0 {
        (scale, 1.0 / scale)
    } else {
        (1.0, 1.0)
    };
    (0..output)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let mut ws: Vec<f64> = (xmin..xmax)
                .map(|j| {
                    let x = (j as f64 - center + 0.5) * invscale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            let total: f64 = ws.iter().sum();
            if total > 0.0 {
                ws.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, ws)
        })
        .collect()
}
