//! `convlab show`: kernels and feature maps as a PNG grid of tiles, each
//! min-max normalised on its own, separated by 1-pixel lines, enlarged
//! with nearest neighbour so 3x3 kernels are visible.

use crate::files::{self, Kind};
use crate::out::outln;
use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use convlab::io::{self, Normalize};
use convlab::ops::Conv2dParams;
use convlab::{filters, Padding, Tensor};
use std::path::{Path, PathBuf};

#[derive(ClapArgs)]
pub struct Args {
    /// A kernel file (.npy: [kh, kw], [C, kh, kw] or [O, I, kh, kw]) or a model
    /// (.safetensors: its first 4-D tensor in name order, or --key).
    source: Option<PathBuf>,
    /// The tensor of a safetensors file to show (e.g. 0.weight).
    #[arg(long)]
    key: Option<String>,
    /// Show the feature maps of this image through the kernels instead.
    #[arg(long)]
    image: Option<PathBuf>,
    /// With --image: a kernel name, literal or .npy; repeat for several maps.
    /// A 4-D [O, I, kh, kw] weight (.npy or SOURCE) gives O maps, as a Conv2d layer does.
    #[arg(short, long)]
    kernel: Vec<String>,
    /// With --image: padding of the kernels (valid, same, N).
    #[arg(long, default_value = "same", allow_hyphen_values = true)]
    padding: String,
    /// With --image: convert a colour image to gray first.
    #[arg(long)]
    gray: bool,
    /// Output PNG.
    #[arg(short, long)]
    out: PathBuf,
    /// Tiles per row (default: the input channels of a 4-D weight, else up to 8).
    #[arg(long, allow_negative_numbers = true)]
    cols: Option<usize>,
    /// Enlargement factor (default: tiles at least 48 pixels).
    #[arg(long, allow_negative_numbers = true)]
    scale: Option<usize>,
}

/// Separator colour: blue-grey, distinct from any gray tile value.
const SEPARATOR: [f32; 3] = [0.35, 0.55, 0.85];
/// Default smallest tile side after enlargement, in pixels.
const MIN_TILE: usize = 48;
/// The largest grid drawn, in pixels per side.
const MAX_SIDE: usize = 16384;

/// Tiles of equal size `[h, w]` with a caption for the one-line summary.
struct Grid {
    tiles: Vec<Tensor>,
    cols: usize,
    what: String,
}

/// A tensor of kernels as tiles: `[kh, kw]` is one, `[C, kh, kw]` C,
/// `[O, I, kh, kw]` O rows of I.
fn kernel_tiles(t: &Tensor, what: String) -> anyhow::Result<Grid> {
    let s = t.shape();
    let (n, cols, kh, kw) = match *s {
        [kh, kw] => (1, 1, kh, kw),
        [c, kh, kw] => (c, c.min(8), kh, kw),
        [o, i, kh, kw] => (o * i, i, kh, kw),
        _ => bail!("{what} has shape {s:?}; kernels are [kh, kw], [C, kh, kw] or [O, I, kh, kw]"),
    };
    let size = kh * kw;
    if n == 0 || size == 0 {
        bail!("{what} is empty (shape {s:?})");
    }
    let tiles = t
        .data()
        .chunks_exact(size)
        .map(|c| Tensor::from_slice(c, &[kh, kw]))
        .collect::<convlab::Result<Vec<_>>>()?;
    Ok(Grid {
        tiles,
        cols,
        what: format!("{what} {s:?}"),
    })
}

/// The tensor of `path` to show: a `.npy`, or a safetensors file's `key` or
/// first 4-D tensor.
fn load_weights(path: &Path, key: Option<&str>) -> anyhow::Result<(Tensor, String)> {
    let is_st = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if !is_st {
        if key.is_some() {
            bail!("--key applies to .safetensors files only");
        }
        if files::kind(path) != Some(Kind::Npy) {
            bail!("{}: show reads .npy or .safetensors files", path.display());
        }
        return Ok((io::read_npy(path)?, path.display().to_string()));
    }
    let all = io::load_safetensors(path)?;
    let found = match key {
        Some(k) => all
            .into_iter()
            .find(|(n, _)| n == k)
            .with_context(|| format!("{}: no tensor named '{k}'", path.display()))?,
        // load_safetensors sorts by name.
        None => all
            .into_iter()
            .find(|(_, t)| t.ndim() == 4)
            .with_context(|| {
                format!(
                    "{}: no 4-D tensor (conv weight); name one with --key",
                    path.display()
                )
            })?,
    };
    Ok((found.1, format!("{} '{}'", path.display(), found.0)))
}

/// The feature maps of `image` through the kernels: tiles of `[oh, ow]`.
fn feature_maps(a: &Args, image: &Path) -> anyhow::Result<Grid> {
    let padding: Padding = a.padding.parse()?;
    let p = Conv2dParams::new().padding(padding);
    let weight = match &a.source {
        Some(src) => Some(load_weights(src, a.key.as_deref())?),
        None => None,
    };
    if let Some((w, name)) = &weight {
        if !a.kernel.is_empty() {
            bail!("give kernels either as SOURCE or with --kernel, not both");
        }
        if w.ndim() == 4 {
            // A conv layer: O maps, each summing over the I input channels.
            let [o, i, _, _] = w.dims4("show", "weight")?;
            let x = files::load(image, i == 1)?;
            let x = if x.ndim() == 2 {
                x.reshape(&[1, 1, x.shape()[0], x.shape()[1]])?
            } else {
                x.reshape(&[1, x.shape()[0], x.shape()[1], x.shape()[2]])?
            };
            let y = convlab::ops::conv2d(&x, w, None, &p)
                .with_context(|| format!("{} {:?} through {name}", image.display(), x.shape()))?;
            let (oh, ow) = (y.shape()[2], y.shape()[3]);
            let tiles = y
                .data()
                .chunks_exact(oh * ow)
                .map(|c| Tensor::from_slice(c, &[oh, ow]))
                .collect::<convlab::Result<Vec<_>>>()?;
            return Ok(Grid {
                tiles,
                cols: o.min(8),
                what: format!(
                    "{o} feature maps {oh}x{ow} of {} through {name}",
                    image.display()
                ),
            });
        }
    }
    let kernels: Vec<(Tensor, String)> = match weight {
        Some((w, name)) if w.ndim() == 2 => vec![(w, name)],
        Some((w, name)) => bail!(
            "{name} has shape {:?}; use a [kh, kw] or [O, I, kh, kw] weight",
            w.shape()
        ),
        None if a.kernel.is_empty() => {
            bail!("--image needs --kernel K (repeatable) or a weight file")
        }
        None => a
            .kernel
            .iter()
            .map(|k| Ok((filters::kernel_from_spec(k)?, k.clone())))
            .collect::<anyhow::Result<_>>()?,
    };
    let x = files::load(image, a.gray)?;
    let mut tiles = Vec::new();
    for (k, name) in &kernels {
        let y = filters::apply(&x, k, &p)
            .with_context(|| format!("{} {:?} through {name}", image.display(), x.shape()))?;
        match *y.shape() {
            [_, _] => tiles.push(y),
            [c, oh, ow] => {
                for ch in y.data().chunks_exact(oh * ow).take(c) {
                    tiles.push(Tensor::from_slice(ch, &[oh, ow])?);
                }
            }
            _ => bail!("unexpected feature map shape {:?}", y.shape()),
        }
    }
    let per = tiles.len() / kernels.len();
    let names: Vec<&str> = kernels.iter().map(|(_, n)| n.as_str()).collect();
    Ok(Grid {
        cols: if per > 1 { per } else { tiles.len().min(8) },
        what: format!(
            "{} feature maps of {} through {}",
            tiles.len(),
            image.display(),
            names.join(", ")
        ),
        tiles,
    })
}

/// The grid as a `[3, H, W]` image in 0..1: tiles min-max normalised,
/// enlarged `scale` times, 1-pixel separators around and between them.
fn render(grid: &Grid, cols: usize, scale: usize) -> anyhow::Result<Tensor> {
    let (th, tw) = (grid.tiles[0].shape()[0], grid.tiles[0].shape()[1]);
    let cols = cols.clamp(1, grid.tiles.len());
    let rows = grid.tiles.len().div_ceil(cols);
    let side = |n: usize, t: usize| {
        t.checked_mul(scale)
            .and_then(|v| v.checked_add(1))
            .and_then(|v| v.checked_mul(n))
            .and_then(|v| v.checked_add(1))
            .filter(|&v| v <= MAX_SIDE)
    };
    let (Some(h), Some(w)) = (side(rows, th), side(cols, tw)) else {
        bail!("the grid would exceed {MAX_SIDE} pixels per side; use a smaller --scale or --cols");
    };
    // Up to 3 x 16384^2 floats (3 GiB): through the allocation guard like every other buffer.
    let mut img = convlab::memory::zeros_f32("show", 3 * h * w)?;
    for (c, v) in SEPARATOR.iter().enumerate() {
        img[c * h * w..(c + 1) * h * w].fill(*v);
    }
    for (n, tile) in grid.tiles.iter().enumerate() {
        let d = tile.data();
        let (lo, hi) = d
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let range = hi - lo;
        let (r0, c0) = (
            (n / cols) * (th * scale + 1) + 1,
            (n % cols) * (tw * scale + 1) + 1,
        );
        for y in 0..th * scale {
            for x in 0..tw * scale {
                let v = d[(y / scale) * tw + x / scale];
                // A constant tile is mid-gray, not black: "all equal" is not "all low".
                let u = if !v.is_finite() {
                    0.0
                } else if range > 0.0 {
                    (v - lo) / range
                } else {
                    0.5
                };
                let at = (r0 + y) * w + c0 + x;
                for c in 0..3 {
                    img[c * h * w + at] = u;
                }
            }
        }
    }
    Ok(Tensor::from_vec(img, &[3, h, w])?)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    files::check_output(&a.out, "--out")?;
    let grid = match (&a.image, &a.source) {
        (Some(img), _) => feature_maps(&a, img)?,
        (None, Some(src)) => {
            if !a.kernel.is_empty() {
                bail!("--kernel needs --image (to show a kernel alone, give it as SOURCE)");
            }
            let (t, name) = load_weights(src, a.key.as_deref())?;
            kernel_tiles(&t, name)?
        }
        (None, None) => bail!("give a kernel/model file, or --image IMG --kernel K"),
    };
    let (th, tw) = (grid.tiles[0].shape()[0], grid.tiles[0].shape()[1]);
    let scale = match a.scale {
        Some(0) => bail!("--scale must be at least 1"),
        Some(s) => s,
        None => MIN_TILE.div_ceil(th.max(tw)).max(1),
    };
    let cols = a.cols.unwrap_or(grid.cols);
    if cols == 0 {
        bail!("--cols must be at least 1");
    }
    let img = render(&grid, cols, scale)?;
    if files::kind(&a.out) != Some(Kind::Image) {
        bail!("--out {} must be a .png or .jpg", a.out.display());
    }
    io::save_image(&a.out, &img, Normalize::Clip)?;
    outln!(
        "wrote {}: {} ({}x{} tiles, x{scale}) -> {}x{} pixels",
        a.out.display(),
        grid.what,
        th,
        tw,
        img.shape()[2],
        img.shape()[1]
    );
    Ok(())
}
