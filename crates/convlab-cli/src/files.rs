//! Reading and writing the files the commands take: PNG/JPEG images and
//! `.npy` arrays, chosen by extension.

use anyhow::{bail, Context};
use convlab::io::{self, Normalize};
use convlab::Tensor;
use std::path::Path;

/// What a path's extension says it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Image,
    Npy,
}

/// The kind of `path` by its extension (any case), or `None`.
pub fn kind(path: &Path) -> Option<Kind> {
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    match ext.as_str() {
        "png" | "jpg" | "jpeg" => Some(Kind::Image),
        "npy" => Some(Kind::Npy),
        _ => None,
    }
}

/// An image or `.npy` array as `[H, W]` or `[C, H, W]`. `gray` converts
/// colour to one channel (BT.601 luma, as `load_image` does; a 3-channel
/// `.npy` is converted with the same weights). An image's alpha channel is
/// dropped: filters and plots treat it as a 4th colour otherwise, which no
/// one wants. A `.npy` keeps every plane (`[4, H, W]` is 4 channels: its
/// data says nothing of alpha).
pub fn load(path: &Path, gray: bool) -> anyhow::Result<Tensor> {
    let npy = kind(path) == Some(Kind::Npy);
    let t = if npy {
        io::read_npy(path)?
    } else {
        // Images are recognised by content; let the decoder say what is wrong.
        io::load_image(path, gray)?
    };
    let t = match *t.shape() {
        [_, _] => t,
        [1, h, w] => t.into_shape(&[h, w])?,
        [4, h, w] if !npy => {
            let mut v = t.into_vec();
            v.truncate(3 * h * w);
            Tensor::from_vec(v, &[3, h, w])?
        }
        [_, _, _] => t,
        _ => bail!(
            "{}: holds shape {:?}; expected an image [H, W] or [C, H, W]",
            path.display(),
            t.shape()
        ),
    };
    if t.numel() == 0 {
        bail!("{}: is empty (shape {:?})", path.display(), t.shape());
    }
    if gray && t.ndim() == 3 {
        return to_gray(&t).with_context(|| path.display().to_string());
    }
    Ok(t)
}

/// BT.601 luma of a `[3, H, W]` tensor.
fn to_gray(t: &Tensor) -> anyhow::Result<Tensor> {
    let [c, h, w] = [t.shape()[0], t.shape()[1], t.shape()[2]];
    if c != 3 {
        bail!("--gray needs 1 or 3 channels, not {c}");
    }
    let hw = h * w;
    let d = t.data();
    let g = (0..hw)
        .map(|i| 0.299 * d[i] + 0.587 * d[hw + i] + 0.114 * d[2 * hw + i])
        .collect();
    Ok(Tensor::from_vec(g, &[h, w])?)
}

/// Writes `t` by the extension of `path`: `.npy` keeps the raw values,
/// PNG/JPEG map them to 0..255 with `norm`.
pub fn save(path: &Path, t: &Tensor, norm: Normalize) -> anyhow::Result<()> {
    match kind(path) {
        Some(Kind::Npy) => io::write_npy(path, t)?,
        Some(Kind::Image) => io::save_image(path, t, norm)?,
        None => bail!(
            "cannot tell what to write to {}: use .png, .jpg or .npy",
            path.display()
        ),
    }
    Ok(())
}

/// Fails early, before minutes of work, when `path` cannot be an output
/// file: its directory does not exist or is not a directory, `path` is a
/// directory, or it is a read-only file. The write itself still reports anything else (permissions,
/// a full disk) and is atomic; this only saves the work a typo would waste.
pub fn check_output(path: &Path, what: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{what} {}: {} is not an existing directory",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("{what} {} is a directory, not a file", path.display());
    }
    // Followed through a symlink, as the write will be.
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
        bail!(
            "{what} {} is read-only (no write permission); not replaced",
            path.display()
        );
    }
    Ok(())
}

/// `HxW` or `N` as `(h, w)`, both at least 1.
pub fn parse_size(s: &str, what: &str) -> anyhow::Result<(usize, usize)> {
    let num = |t: &str| t.trim().parse::<usize>().ok().filter(|&v| v > 0);
    let parsed = match s.split_once(['x', 'X']) {
        Some((h, w)) => num(h).zip(num(w)),
        None => num(s).map(|v| (v, v)),
    };
    parsed.with_context(|| format!("{what} '{s}' is not HxW or N with positive numbers (e.g. 3x3)"))
}

/// `min..max` of the finite values, for one-line summaries.
pub fn value_range(t: &Tensor) -> String {
    let (lo, hi) = t
        .data()
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if lo > hi {
        "no finite values".into()
    } else {
        format!("values {lo:.4}..{hi:.4}")
    }
}
