//! `convlab filter IN OUT --kernel K`: one image (or a directory of them)
//! through a 2-D kernel with `conv2d`'s semantics, optionally resized
//! first and pooled after.

use crate::files::{self, Kind};
use crate::out::outln;
use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use convlab::filters;
use convlab::io::Normalize;
use convlab::ops::{
    self, AvgPool2dParams, Conv2dParams, InterpolateMode, InterpolateParams, MaxPool2dParams,
};
use convlab::shape::conv_out_len;
use convlab::{memory, Padding, PaddingMode, Pair, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(ClapArgs)]
pub struct Args {
    /// Input: a PNG, JPEG or .npy ([H, W] or [C, H, W]), or a directory of them.
    input: PathBuf,
    /// Output: .npy keeps raw values, .png/.jpg maps them to 0..255; a directory when IN is one.
    output: PathBuf,
    /// Kernel: a name (edge-v, edge-h, sobel-x, sobel-y, scharr-x, scharr-y, laplacian,
    /// gaussian:SIGMA, box:N, sharpen, identity, emboss), a literal "[[1,-1],[2,0]]" or a .npy file.
    #[arg(short, long)]
    kernel: String,
    /// Padding: valid (PyTorch's default, output shrinks by k-1), same, N, H,W or T,B,L,R.
    #[arg(long, default_value = "valid", allow_hyphen_values = true)]
    padding: String,
    /// How padded values are made: zeros, reflect, replicate or circular.
    #[arg(long, default_value = "zeros")]
    mode: String,
    /// Stride of the kernel.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    stride: usize,
    /// Dilation of the kernel.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    dilation: usize,
    /// Pool the filtered image: max:K[:S] or avg:K[:S] (stride S defaults to K).
    #[arg(long)]
    pool: Option<String>,
    /// Mapping of values to 0..255 for PNG/JPEG output: minmax, abs or clip.
    #[arg(long, default_value = "minmax")]
    normalize: String,
    /// Convert colour images to gray before filtering.
    #[arg(long)]
    gray: bool,
    /// Resize before filtering: HxW (e.g. 240x320) or a scale (0.5, 2).
    /// Bilinear, antialiased when shrinking, as
    /// F.interpolate(mode='bilinear', antialias=True).
    #[arg(long, allow_hyphen_values = true)]
    resize: Option<String>,
    /// With a directory, the output format (png, jpg or npy; default: the input's).
    #[arg(long)]
    format: Option<String>,
}

/// `--resize`'s parsed form: `HxW` or one scale for both axes.
fn parse_resize(spec: &str) -> anyhow::Result<InterpolateParams> {
    let p = InterpolateParams::new(InterpolateMode::Bilinear).antialias(true);
    if let Some((h, w)) = spec.split_once(['x', 'X']) {
        let size = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
        if let (Some(h), Some(w)) = (size(h), size(w)) {
            return Ok(p.size(vec![h, w]));
        }
    } else if let Ok(f) = spec.trim().parse::<f64>() {
        if f.is_finite() && f > 0.0 {
            return Ok(p.scale_factor(f));
        }
    }
    bail!("--resize '{spec}' is not HxW (two positive whole numbers, as 240x320) or a positive scale (0.5)")
}

/// `--pool`'s parsed form.
enum Pool {
    Max(MaxPool2dParams),
    Avg(AvgPool2dParams),
}

fn parse_pool(spec: &str) -> anyhow::Result<Pool> {
    let bad = || {
        anyhow::anyhow!(
            "--pool '{spec}' is not max:K[:S] or avg:K[:S] with positive K and S (e.g. max:2)"
        )
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let num = |s: &str| s.trim().parse::<usize>().ok().filter(|&v| v > 0);
    let (k, s) = match parts.as_slice() {
        [_, k] => (num(k).ok_or_else(bad)?, None),
        [_, k, s] => (num(k).ok_or_else(bad)?, Some(num(s).ok_or_else(bad)?)),
        _ => return Err(bad()),
    };
    Ok(match parts[0].trim() {
        "max" => {
            let p = MaxPool2dParams::new(k);
            Pool::Max(s.map_or(p, |s| p.stride(s)))
        }
        "avg" => {
            let p = AvgPool2dParams::new(k);
            Pool::Avg(s.map_or(p, |s| p.stride(s)))
        }
        _ => return Err(bad()),
    })
}

/// Everything a file needs, parsed once.
struct Plan {
    resize: Option<InterpolateParams>,
    kernel: Tensor,
    conv: Conv2dParams,
    pool: Option<Pool>,
    norm: Normalize,
    gray: bool,
}

impl Plan {
    fn new(a: &Args) -> anyhow::Result<Plan> {
        let kernel = filters::kernel_from_spec(&a.kernel)?;
        let padding: Padding = a.padding.parse()?;
        let mode: PaddingMode = a.mode.parse()?;
        let conv = Conv2dParams::new()
            .padding(padding)
            .padding_mode(mode)
            .stride(a.stride)
            .dilation(a.dilation);
        let pool = a.pool.as_deref().map(parse_pool).transpose()?;
        let resize = a.resize.as_deref().map(parse_resize).transpose()?;
        let norm: Normalize = a.normalize.parse()?;
        Ok(Plan {
            resize,
            kernel,
            conv,
            pool,
            norm,
            gray: a.gray,
        })
    }

    /// The filtered (and pooled) image, same rank as `x`.
    fn apply(&self, x: Tensor) -> anyhow::Result<Tensor> {
        let y = filters::apply_owned(x, &self.kernel, &self.conv)?;
        let Some(pool) = &self.pool else {
            return Ok(y);
        };
        // Pooling ops take [C, H, W]; a gray image is one channel.
        // Reshape in place: on an 8000x8000 colour image a copy is 768 MB more peak memory.
        let gray = y.ndim() == 2;
        let y3 = if gray {
            let (h, w) = (y.shape()[0], y.shape()[1]);
            y.into_shape(&[1, h, w])?
        } else {
            y
        };
        let p = match pool {
            Pool::Max(p) => ops::max_pool2d(&y3, p)?,
            Pool::Avg(p) => ops::avg_pool2d(&y3, p)?,
        };
        Ok(if gray {
            let (h, w) = (p.shape()[1], p.shape()[2]);
            p.into_shape(&[h, w])?
        } else {
            p
        })
    }

    /// `x` (`[H, W]` or `[C, H, W]`) resized as `--resize` asks, same rank.
    fn resized(&self, x: Tensor) -> anyhow::Result<Tensor> {
        let Some(p) = &self.resize else {
            return Ok(x);
        };
        let lead = x.shape()[..x.ndim() - 2].to_vec();
        let (h, w) = (x.shape()[x.ndim() - 2], x.shape()[x.ndim() - 1]);
        let c = lead.first().copied().unwrap_or(1);
        let y = ops::interpolate(&x.into_shape(&[1, c, h, w])?, p)?;
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        Ok(y.into_shape(&[lead, vec![oh, ow]].concat())?)
    }

    fn file(&self, input: &Path, output: &Path) -> anyhow::Result<Tensor> {
        let x = files::load(input, self.gray)?;
        let shape = x.shape().to_vec();
        let x = self
            .resized(x)
            .with_context(|| format!("{} {shape:?}: --resize", input.display()))?;
        let shape = x.shape().to_vec();
        let y = self
            .check_memory(&shape)
            .and_then(|()| self.apply(x))
            .with_context(|| format!("{} {shape:?}", input.display()))?;
        files::save(output, &y, self.norm)?;
        Ok(y)
    }

    /// Checks that the buffers the filter holds at once fit the memory
    /// limit together: the input, its padded copy (padding modes other than
    /// zeros) and the output, then the output and its pooled copy. Each
    /// alone may pass the per-buffer check while together they do not
    /// (under `ulimit -v 1048576`, replicate padding 6000 on a 16x16 image
    /// asked for two 577 MB buffers and aborted on the second).
    ///
    /// Geometry errors are left to the ops, whose messages name them.
    fn check_memory(&self, shape: &[usize]) -> anyhow::Result<()> {
        let (c, h, w) = match *shape {
            [h, w] => (1, h, w),
            [c, h, w] => (c, h, w),
            _ => return Ok(()),
        };
        let [kh, kw] = self.kernel.dims2("filter")?;
        let (s, d) = (self.conv.stride, self.conv.dilation);
        let Ok(pads) = self.conv.padding.resolve("filter", Pair(kh, kw), d, s) else {
            return Ok(());
        };
        let [pt, pb, pl, pr] = pads;
        let (Ok(oh), Ok(ow)) = (
            conv_out_len("filter", "height", h, kh, s.0, pt, pb, d.0),
            conv_out_len("filter", "width", w, kw, s.1, pl, pr, d.1),
        ) else {
            return Ok(());
        };
        let area = |a: usize, b: usize| c.saturating_mul(a).saturating_mul(b);
        let padded = if self.conv.padding_mode != PaddingMode::Zeros && pads != [0; 4] {
            area(
                h.saturating_add(pt).saturating_add(pb),
                w.saturating_add(pl).saturating_add(pr),
            )
        } else {
            0
        };
        let out = area(oh, ow);
        memory::check_f32_total(
            "filter",
            &[
                ("input", area(h, w)),
                ("padded input", padded),
                ("output", out),
            ],
        )?;
        if let Some(pool) = &self.pool {
            let st = match pool {
                Pool::Max(p) => p.stride.unwrap_or(p.kernel_size),
                Pool::Avg(p) => p.stride.unwrap_or(p.kernel_size),
            };
            // At most this many windows, whatever the padding and ceil_mode.
            let step = |i: usize| usize::try_from(st.0[i]).unwrap_or(1).max(1);
            let pooled = area(oh / step(0) + 1, ow / step(1) + 1);
            memory::check_f32_total("filter", &[("output", out), ("pooled output", pooled)])?;
        }
        Ok(())
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let plan = Plan::new(&a)?;
    if a.input.is_dir() {
        return run_dir(&a, &plan);
    }
    if a.format.is_some() {
        bail!("--format applies only when IN is a directory");
    }
    files::check_output(&a.output, "OUT")?;
    let y = plan.file(&a.input, &a.output)?;
    let how = match files::kind(&a.output) {
        Some(Kind::Image) => format!(" ({} to 0..255)", plan.norm),
        _ => String::new(),
    };
    outln!(
        "wrote {}: shape {:?}, {}{how}",
        a.output.display(),
        y.shape(),
        files::value_range(&y)
    );
    Ok(())
}

fn run_dir(a: &Args, plan: &Plan) -> anyhow::Result<()> {
    let ext = match &a.format {
        Some(f) => match f.to_ascii_lowercase().as_str() {
            e @ ("png" | "jpg" | "jpeg" | "npy") => Some(e.to_string()),
            _ => bail!("--format '{f}' is not png, jpg or npy"),
        },
        None => None,
    };
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&a.input)
        .with_context(|| format!("cannot read directory {}", a.input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && files::kind(p).is_some())
        .collect();
    inputs.sort();
    if inputs.is_empty() {
        bail!(
            "no .png, .jpg, .jpeg or .npy files in {}",
            a.input.display()
        );
    }
    if a.output.exists() && !a.output.is_dir() {
        bail!(
            "{} is a file; with a directory as IN, OUT must be a directory",
            a.output.display()
        );
    }
    let outputs: Vec<PathBuf> = inputs
        .iter()
        .map(|input| {
            let mut out = a.output.join(input.file_name().unwrap_or_default());
            if let Some(e) = &ext {
                out.set_extension(e);
            }
            out
        })
        .collect();
    check_outputs(&inputs, &outputs)?;
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("cannot create directory {}", a.output.display()))?;
    let bar = ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for (input, out) in inputs.iter().zip(&outputs) {
        let name = input.file_name().unwrap_or_default();
        bar.set_message(name.to_string_lossy().into_owned());
        // Stop at the first bad file: its one-line error names it, and the
        // files before it are written.
        plan.file(input, out).inspect_err(|_| bar.abandon())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    outln!(
        "filtered {} files from {} into {}",
        inputs.len(),
        a.input.display(),
        a.output.display()
    );
    Ok(())
}

/// Refuses, before anything is written, a directory run that would lose
/// data: two inputs with one output name (`a.png`, `a.jpg` and `a.npy`
/// with `--format npy` all become `a.npy`; the names are compared without
/// case, since macOS and Windows filesystems do), or an output that is one
/// of the inputs (IN == OUT without `--format`, or through a symlink).
fn check_outputs(inputs: &[PathBuf], outputs: &[PathBuf]) -> anyhow::Result<()> {
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for (input, out) in inputs.iter().zip(outputs) {
        let key = out.to_string_lossy().to_lowercase();
        if let Some(first) = seen.insert(key, input) {
            bail!(
                "{} and {} would both be written to {}; nothing was written (rename one, or use another --format)",
                first.display(),
                input.display(),
                out.display()
            );
        }
    }
    let canonical: HashMap<PathBuf, &Path> = inputs
        .iter()
        .filter_map(|i| Some((std::fs::canonicalize(i).ok()?, i.as_path())))
        .collect();
    for out in outputs {
        let Ok(c) = std::fs::canonicalize(out) else {
            continue;
        };
        if let Some(input) = canonical.get(&c) {
            bail!(
                "output {} is the input {}: OUT must not overwrite IN's files; nothing was written (choose another OUT, or --format)",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_specs() {
        assert!(matches!(parse_pool("max:2").unwrap(), Pool::Max(p) if p.stride.is_none()));
        assert!(
            matches!(parse_pool("avg:3:2").unwrap(), Pool::Avg(p) if p.stride == Some(2.into()))
        );
        for bad in ["max", "max:0", "min:2", "avg:2:x", "max:2:2:2", ""] {
            let e = parse_pool(bad).err().unwrap().to_string();
            assert!(e.contains("is not max:K[:S]"), "{bad}: {e}");
        }
    }
}
