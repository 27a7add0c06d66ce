//! `convlab predict --arch NAME --weights FILE INPUT...`: classify `.npy`
//! tensors or images with one of `convlab::models`' networks, its
//! BatchNorms folded, in eval mode without a graph.

use crate::files::{self, Kind};
use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use convlab::autograd::{no_grad, Var};
use convlab::io;
use convlab::models::{imagenet_eval_transform, Arch, ModelConfig};
use convlab::nn::Module;
use convlab::Tensor;
use std::path::{Path, PathBuf};

/// Options of `convlab predict`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The network: lenet, nin, alexnet, vgg11, googlenet, resnet18, resnet50 or densenet121.
    #[arg(long)]
    arch: String,
    /// Its weights: a safetensors or `torch.save` state dict with torchvision's names.
    #[arg(long)]
    weights: PathBuf,
    /// Outputs of the last layer (default: 10 for lenet and nin, 1000 otherwise).
    #[arg(long)]
    num_classes: Option<usize>,
    /// GoogLeNet's transform_input (on for torchvision's published weights).
    #[arg(long)]
    transform_input: bool,
    /// Inputs: .npy tensors ([N, C, H, W] or [C, H, W], run as they are) or
    /// PNG/JPEG images (torchvision's ImageNet eval transform: short side to
    /// 256, centre crop 224, normalised). All must give the same [C, H, W].
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Write the logits [N, K] to this .npy file.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Print this many classes per input, most probable first.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Class names, one per line (line i names class i).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Write the batch the network sees, [N, C, H, W] after the image
    /// transform, to this .npy file (to compare the preprocessing with
    /// torchvision's).
    #[arg(long)]
    save_input: Option<PathBuf>,
}

/// One input as `[N, C, H, W]`.
fn load_input(path: &Path) -> Result<Tensor> {
    let t = match files::kind(path) {
        Some(Kind::Npy) => io::read_npy(path)?,
        _ => {
            let image = io::load_image(path, false)?;
            imagenet_eval_transform(&image, 256, 224).with_context(|| path.display().to_string())?
        }
    };
    Ok(match *t.shape() {
        [_, _, _, _] => t,
        [c, h, w] => t.into_shape(&[1, c, h, w])?,
        ref s => bail!(
            "{}: holds shape {s:?}; expected [N, C, H, W] or [C, H, W]",
            path.display()
        ),
    })
}

/// Every input stacked along N.
fn batch(paths: &[PathBuf]) -> Result<Tensor> {
    let mut data = Vec::new();
    let mut shape: Option<Vec<usize>> = None;
    let mut n = 0;
    for p in paths {
        let t = load_input(p)?;
        match &shape {
            Some(s) if s[1..] != t.shape()[1..] => bail!(
                "{}: has [C, H, W] {:?} but {} has {:?}; one batch needs one size",
                p.display(),
                &t.shape()[1..],
                paths[0].display(),
                &s[1..]
            ),
            Some(_) => {}
            None => shape = Some(t.shape().to_vec()),
        }
        n += t.shape()[0];
        data.extend_from_slice(t.data());
    }
    let mut shape = shape.unwrap_or_default();
    shape[0] = n;
    Ok(Tensor::from_vec(data, &shape)?)
}

pub fn run(a: Args) -> Result<()> {
    let arch: Arch = a.arch.parse()?;
    let mut config = ModelConfig::new(arch).transform_input(a.transform_input);
    if let Some(k) = a.num_classes {
        config = config.num_classes(k);
    }
    if let Some(out) = &a.output {
        files::check_output(out, "--output")?;
    }
    if let Some(out) = &a.save_input {
        files::check_output(out, "--save-input")?;
    }
    let labels = match &a.labels {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --labels {}", p.display()))?
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    // safetensors or a torch.save state dict, told apart by content.
    let weights = io::load_tensors(&a.weights)?;
    // Strict, and the weights move into the folded network: held once.
    let net = config
        .fold_state_dict(weights)
        .with_context(|| format!("--weights {} for {arch}", a.weights.display()))?;
    let x = batch(&a.inputs)?;
    if let Some(out) = &a.save_input {
        io::write_npy(out, &x)?;
    }
    let logits = no_grad(|| net.forward(&Var::new(x)))?.tensor();
    if let Some(out) = &a.output {
        io::write_npy(out, &logits)?;
    }
    print_top(&a, &logits, labels.as_deref())
}

/// The `top` most probable classes of each row, with softmax probabilities.
fn print_top(a: &Args, logits: &Tensor, labels: Option<&[String]>) -> Result<()> {
    let [n, k] = logits.dims2("predict")?;
    for i in 0..n {
        let row = &logits.data()[i * k..(i + 1) * k];
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let total: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&x, &y| row[y].total_cmp(&row[x]).then(x.cmp(&y)));
        println!("input {i}:");
        for &c in order.iter().take(a.top) {
            let p = (row[c] as f64 - max).exp() / total;
            let name = labels
                .and_then(|l| l.get(c))
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            println!("  {c:>5} {p:.4}{name}");
        }
    }
    Ok(())
}
