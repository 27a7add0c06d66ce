//! `convlab train-digits`: a CNN trained on the UCI handwritten digits,
//! end to end, with crash-safe checkpoints and exact resume.
//!
//! Data: `convlab::data::Digits` (`Digits::bundled()`, the copy embedded in
//! the library; `--data` reads another file). Image `i` is a test image when
//! `i % 5 == 0` (360 test, 1437 train); pixels are divided by 16.
//!
//! Models (`--model`): `digits` (the default, [`digits_net`], on the 8x8
//! images as they are), `lenet` (the book's LeNet-5 of `convlab::models`,
//! sigmoid and average pooling, on the images resized to 28x28) and
//! `resnet18` (torchvision's, `num_classes=10`, on the images resized to
//! 32x32 with the gray plane copied into three channels, so the network is
//! torchvision's unchanged and its weights load into
//! `torchvision.models.resnet18(num_classes=10)`). The resize is
//! `F.interpolate(x, size, mode='bilinear', align_corners=False)` (no
//! antialias, PyTorch's default), done once per split before training.
//!
//! Randomness: one ChaCha8 generator seeded with `--seed` makes every draw,
//! in this order: the layers' initialisation (PyTorch's order and bounds:
//! weight then bias, layer by layer; `lenet` and `resnet18` are built by
//! `ModelConfig::build(Init::Seed(seed))`, whose own generator, seeded the
//! same way, draws their weights, so the first generator draws only the
//! shuffles), then one shuffle per epoch
//! (`convlab::data::shuffle`: Fisher–Yates over `0..1437` from the last
//! position down, for `i` in `(1..n).rev()`, `j = (next_u64() * (i + 1)) >>
//! 64` (a 128-bit product), swap `i` and `j`). Batches are consecutive runs
//! of 32 (16 for `lenet`) of that order; the last one holds the rest, 29
//! (PyTorch's `drop_last=False`). BatchNorm is in training mode for the steps and in
//! eval mode (running statistics) for every test pass.
//!
//! Checkpoints: after every epoch, one safetensors file
//! `DIR/digits-checkpoint.safetensors` holds the model's state dict
//! (parameters and buffers, `model.*`: BatchNorm's running statistics and
//! `num_batches_tracked` too), the optimizer state (`optim.*`) and,
//! in its `__metadata__` header, the epoch, the generator's seed, stream and
//! word position, the settings (the model among them; a checkpoint without
//! a `model` entry is a `digits` one), the per-epoch history and a checksum. It is
//! written through `io::write_atomic` (temporary file, fsync, rename), so a
//! kill leaves the previous checkpoint or the new one. `--resume` restores
//! all of it, so the resumed run draws the same numbers and ends with the
//! same weights, bit for bit, as one never stopped.
//!
//! Nothing in a checkpoint is trusted: the checksum (FNV-1a over every
//! tensor's name, shape and bytes and every metadata entry; any one changed
//! byte changes it) must match, the epoch must be within `--epochs`, every
//! model value finite, and the optimizer state finite with an integral step
//! count (`Optimizer::load_state` refuses the rest).

use crate::out::{out, outln};
use crate::plot::{self, Panel};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use convlab::autograd::{no_grad, Var};
use convlab::data::{digits, shuffle, Digits};
use convlab::models::{Arch, Init, ModelConfig};
use convlab::nn::{Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential};
use convlab::ops::{interpolate, InterpolateMode, InterpolateParams};
use convlab::optim::{Adam, Optimizer, Sgd};
use convlab::{io, seeded_rng, Rng64, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The checkpoint's file name inside `--checkpoint DIR`.
pub const CHECKPOINT_FILE: &str = "digits-checkpoint.safetensors";

/// Marks a file as a train-digits checkpoint of this layout.
const FORMAT: &str = "convlab-train-digits-2";

/// Which optimizer updates the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    /// SGD with momentum (`torch.optim.SGD`).
    Sgd,
    /// Adam with PyTorch's defaults (`torch.optim.Adam`).
    Adam,
}

impl OptimizerKind {
    fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        }
    }
}

/// Which network `train-digits` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// The small CNN (two 3x3 convolutions, two linear layers) on the 8x8 images.
    Digits,
    /// The book's LeNet-5 (sigmoid) on the images resized to 28x28.
    Lenet,
    /// torchvision's resnet18 (10 classes) on the images resized to 32x32, three channels.
    Resnet18,
}

impl ModelKind {
    fn name(self) -> &'static str {
        match self {
            ModelKind::Digits => "digits",
            ModelKind::Lenet => "lenet",
            ModelKind::Resnet18 => "resnet18",
        }
    }

    /// The input the network is fed: `(channels, side)`.
    fn input(self) -> (usize, usize) {
        match self {
            ModelKind::Digits => (1, digits::SIDE),
            ModelKind::Lenet => (1, 28),
            ModelKind::Resnet18 => (3, 32),
        }
    }

    /// Epochs, optimizer and learning rate when the options leave them out.
    fn default_epochs(self) -> usize {
        match self {
            ModelKind::Digits => 20,
            ModelKind::Lenet => LENET_EPOCHS,
            ModelKind::Resnet18 => RESNET18_EPOCHS,
        }
    }

    fn default_batch(self) -> usize {
        match self {
            ModelKind::Lenet => LENET_BATCH,
            _ => 32,
        }
    }

    fn default_optimizer(self) -> OptimizerKind {
        match self {
            ModelKind::Digits => OptimizerKind::Sgd,
            ModelKind::Lenet => LENET_OPTIMIZER,
            ModelKind::Resnet18 => RESNET18_OPTIMIZER,
        }
    }

    fn default_lr(self, optimizer: OptimizerKind) -> f32 {
        match (self, optimizer) {
            (ModelKind::Lenet, OptimizerKind::Adam) => LENET_ADAM_LR,
            (_, OptimizerKind::Sgd) => 0.05,
            (_, OptimizerKind::Adam) => 0.001,
        }
    }

    /// The network in training mode. `digits` draws its weights from
    /// `rng`; the zoo's models from their own generator seeded with `seed`.
    fn build(self, seed: u64, rng: &mut Rng64) -> convlab::Result<Sequential> {
        let arch = match self {
            ModelKind::Digits => return digits_net(rng),
            ModelKind::Lenet => Arch::LeNet,
            ModelKind::Resnet18 => Arch::ResNet18,
        };
        ModelConfig::new(arch)
            .num_classes(digits::CLASSES)
            .build(Init::Seed(seed))
    }

    /// Whose names `--save` writes.
    fn names(self) -> &'static str {
        match self {
            ModelKind::Digits => "PyTorch nn.Sequential names",
            ModelKind::Lenet => "the book's nn.Sequential names",
            ModelKind::Resnet18 => "torchvision's resnet18 names",
        }
    }
}

/// LeNet's sigmoids do not move under SGD (lr 0.1 and 0.2 with momentum
/// 0.9, the book's 0.9 without: chance accuracy after 30 epochs); Adam at
/// 0.003 in batches of 16 reaches 98 % (seed 0: 98.06 % after 30 epochs;
/// seeds 1, 2: 98.6, 97.8).
const LENET_EPOCHS: usize = 30;
const LENET_BATCH: usize = 16;
const LENET_OPTIMIZER: OptimizerKind = OptimizerKind::Adam;
const LENET_ADAM_LR: f32 = 0.003;
/// resnet18 (BatchNorm): Adam at PyTorch's default lr 0.001, 12 epochs
/// (seed 0: 98.9 %; SGD momentum 0.9 at lr 0.05 or 0.01 ended at 97.5 %).
const RESNET18_EPOCHS: usize = 12;
const RESNET18_OPTIMIZER: OptimizerKind = OptimizerKind::Adam;

/// The options of `convlab train-digits`.
#[derive(Args, Debug)]
pub struct TrainDigitsArgs {
    /// The network: the small CNN, the book's LeNet (28x28) or torchvision's resnet18 (3x32x32).
    #[arg(long, value_enum, default_value_t = ModelKind::Digits)]
    pub model: ModelKind,
    /// Number of epochs (passes over the 1437 training images) [default: 20 for digits, 30 for lenet, 12 for resnet18].
    #[arg(long, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Minibatch size [default: 32; 16 for lenet].
    #[arg(long, allow_negative_numbers = true)]
    pub batch: Option<usize>,
    /// Learning rate [default: 0.05 for sgd, 0.001 (PyTorch's default) for adam; 0.003 for lenet with adam].
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f32>,
    /// SGD momentum (ignored by adam).
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    pub momentum: f32,
    /// The optimizer [default: sgd; adam for lenet and resnet18].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Seed of the one generator behind initialisation and shuffling.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Write a checkpoint into DIR after every epoch.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint in --checkpoint DIR (start afresh when there is none yet).
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
    /// Save the trained weights as safetensors with PyTorch's nn.Sequential names.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Where to draw loss and accuracy per epoch (PNG).
    #[arg(long, value_name = "PATH", default_value = "digits_training.png")]
    pub plot: PathBuf,
    /// Draw no plot.
    #[arg(long)]
    pub no_plot: bool,
    /// Read the digits from this .csv or .csv.gz instead of the bundled copy.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
}

/// The settings a checkpoint must agree with to be resumed.
#[derive(Clone, Debug, PartialEq)]
struct Settings {
    model: ModelKind,
    optimizer: OptimizerKind,
    lr: f32,
    momentum: f32,
    batch: usize,
    seed: u64,
    data_hash: u64,
}

impl Settings {
    fn to_meta(&self) -> Vec<(&'static str, String)> {
        vec![
            // First: another model's checkpoint is refused for its model,
            // not for the defaults that differ with it.
            ("model", self.model.name().to_string()),
            ("optimizer", self.optimizer.name().to_string()),
            // f32's Display round-trips exactly.
            ("lr", self.lr.to_string()),
            ("momentum", self.momentum.to_string()),
            ("batch", self.batch.to_string()),
            ("seed", self.seed.to_string()),
            ("data_hash", format!("{:016x}", self.data_hash)),
        ]
    }
}

/// The network of the issue, in PyTorch notation:
/// `Conv2d(1,16,3,padding=1), ReLU, MaxPool2d(2), Conv2d(16,32,3,padding=1),
/// ReLU, MaxPool2d(2), Flatten, Linear(128,64), ReLU, Linear(64,10)`.
/// Parameters are drawn from `rng` in PyTorch's order.
pub fn digits_net(rng: &mut Rng64) -> convlab::Result<Sequential> {
    Ok(Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(1, 16, 3).padding(1), rng)?)
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(Conv2d::new(Conv2dConfig::new(16, 32, 3).padding(1), rng)?)
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(Flatten)
        .push(Linear::new(128, 64, rng)?)
        .push(ReLU)
        .push(Linear::new(64, 10, rng)?))
}

/// FNV-1a over the pixels' bits and the labels: a resumed run must see the
/// data it started with.
fn data_hash(d: &Digits) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    };
    for v in d.pixels() {
        v.to_bits().to_le_bytes().into_iter().for_each(&mut eat);
    }
    for &l in d.labels() {
        eat(l as u8);
    }
    h
}

/// A split as the network sees it: `[n, channels, side, side]` images,
/// resized once, and their labels.
struct Images {
    pixels: Vec<f32>,
    labels: Vec<usize>,
    channels: usize,
    side: usize,
}

impl Images {
    /// `d` at the input size of `model`: bilinear
    /// (`F.interpolate(x, size=side, mode='bilinear', align_corners=False)`)
    /// when that is not 8x8, the gray plane repeated for three channels.
    fn new(d: &Digits, model: ModelKind) -> anyhow::Result<Images> {
        let (channels, side) = model.input();
        let mut pixels = d.pixels().to_vec();
        if side != digits::SIDE {
            let x = Tensor::from_vec(pixels, &[d.len(), 1, digits::SIDE, digits::SIDE])?;
            let p = InterpolateParams::new(InterpolateMode::Bilinear)
                .size(side)
                .align_corners(false);
            pixels = interpolate(&x, &p)?.data().to_vec();
        }
        if channels > 1 {
            pixels = pixels
                .chunks(side * side)
                .flat_map(|plane| std::iter::repeat_n(plane, channels).flatten().copied())
                .collect();
        }
        Ok(Images {
            pixels,
            labels: d.labels().to_vec(),
            channels,
            side,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The images at `indices` (each in range) and their labels.
    fn batch(&self, indices: &[usize]) -> anyhow::Result<(Tensor, Vec<usize>)> {
        let n = self.channels * self.side * self.side;
        let mut x = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            x.extend_from_slice(&self.pixels[i * n..(i + 1) * n]);
        }
        let y = indices.iter().map(|&i| self.labels[i]).collect();
        let shape = [indices.len(), self.channels, self.side, self.side];
        Ok((Tensor::from_vec(x, &shape)?, y))
    }
}

/// FNV-1a over a checkpoint's contents: each tensor's name, shape and f32
/// bytes in name order, then each metadata entry but the checksum and the
/// `format` entry the safetensors writer adds, in key order. Every step of FNV-1a is a bijection of its state, so any one
/// changed byte changes the result.
fn checkpoint_checksum(tensors: &[(&str, &Tensor)], meta: &[(&str, &str)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    let mut tensors = tensors.to_vec();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    for (name, t) in tensors {
        eat(name.as_bytes());
        eat(&[0]);
        for d in t.shape() {
            eat(&(*d as u64).to_le_bytes());
        }
        eat(&[0xff]);
        for v in t.data() {
            eat(&v.to_le_bytes());
        }
    }
    let mut meta: Vec<&(&str, &str)> = meta
        .iter()
        .filter(|(k, _)| *k != "checksum" && *k != "format")
        .collect();
    meta.sort();
    for (k, v) in meta {
        eat(k.as_bytes());
        eat(&[0]);
        eat(v.as_bytes());
        eat(&[0]);
    }
    h
}

/// Per-epoch figures, kept in the checkpoint for the plot.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Epoch {
    loss: f64,
    train_acc: f64,
    test_acc: f64,
    seconds: f64,
}

fn history_json(h: &[Epoch]) -> String {
    let rows: Vec<serde_json::Value> = h
        .iter()
        .map(|e| serde_json::json!([e.loss, e.train_acc, e.test_acc, e.seconds]))
        .collect();
    serde_json::Value::Array(rows).to_string()
}

fn history_from_json(s: &str) -> anyhow::Result<Vec<Epoch>> {
    let rows: Vec<[f64; 4]> = serde_json::from_str(s).context("history is malformed")?;
    Ok(rows
        .into_iter()
        .map(|[loss, train_acc, test_acc, seconds]| Epoch {
            loss,
            train_acc,
            test_acc,
            seconds,
        })
        .collect())
}

/// What a checkpoint restores.
struct Restored {
    epoch: usize,
    history: Vec<Epoch>,
}

fn save_checkpoint(
    path: &Path,
    net: &Sequential,
    opt: &dyn Optimizer,
    rng: &Rng64,
    settings: &Settings,
    epoch: usize,
    history: &[Epoch],
) -> anyhow::Result<()> {
    let params = io::state_dict_with_prefix(net, "model.");
    let state: Vec<(String, Tensor)> = opt
        .state()
        .into_iter()
        .map(|(n, t)| (format!("optim.{n}"), t))
        .collect();
    let tensors: Vec<(&str, &Tensor)> = params
        .iter()
        .chain(&state)
        .map(|(n, t)| (n.as_str(), t))
        .collect();
    let seed_hex: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
    let mut meta = settings.to_meta();
    meta.extend([
        ("checkpoint", FORMAT.to_string()),
        ("epoch", epoch.to_string()),
        ("rng_seed", seed_hex),
        ("rng_stream", rng.get_stream().to_string()),
        ("rng_word_pos", rng.get_word_pos().to_string()),
        ("history", history_json(history)),
    ]);
    let sum = {
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        checkpoint_checksum(&tensors, &meta)
    };
    meta.push(("checksum", format!("{sum:016x}")));
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
    io::save_safetensors_with_metadata(path, &tensors, &meta)?;
    Ok(())
}

fn load_checkpoint(
    path: &Path,
    net: &Sequential,
    opt: &mut dyn Optimizer,
    rng: &mut Rng64,
    settings: &Settings,
    epochs: usize,
) -> anyhow::Result<Restored> {
    let (tensors, meta) = io::load_safetensors_with_metadata(path)?;
    let ctx = || format!("checkpoint {}", path.display());
    {
        let t: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let m: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let want = format!("{:016x}", checkpoint_checksum(&t, &m));
        match meta.get("checksum") {
            Some(have) if *have == want => {}
            Some(_) => bail!(
                "{}: checksum mismatch: the file was changed or damaged after it was written",
                ctx()
            ),
            None if meta.get("checkpoint").map(String::as_str)
                == Some("convlab-train-digits-1") =>
            {
                bail!(
                    "{}: written by an older convlab without a checksum; start afresh (remove it or drop --resume)",
                    ctx()
                )
            }
            None => bail!("{}: no 'checksum' entry", ctx()),
        }
    }
    let get = |k: &str| -> anyhow::Result<&str> {
        meta.get(k)
            .map(String::as_str)
            .with_context(|| format!("{}: no '{k}' entry", ctx()))
    };
    if get("checkpoint")? != FORMAT {
        bail!("{}: not a train-digits checkpoint", ctx());
    }
    for (k, want) in settings.to_meta() {
        // Checkpoints from before --model are all of the digits network.
        let have = match (k, meta.get(k)) {
            ("model", None) => ModelKind::Digits.name(),
            _ => get(k)?,
        };
        if have != want {
            bail!(
                "{}: was written with --{k} {have} but this run has {want}; resume with the same settings",
                ctx()
            );
        }
    }
    let epoch: usize = get("epoch")?
        .parse()
        .with_context(|| format!("{}: bad epoch", ctx()))?;
    if epoch > epochs {
        bail!(
            "{}: is after epoch {epoch}, past --epochs {epochs}; resume with --epochs {epoch} or more",
            ctx()
        );
    }
    let history = history_from_json(get("history")?).with_context(ctx)?;
    if history.len() != epoch {
        bail!(
            "{}: history has {} epochs, not {epoch}",
            ctx(),
            history.len()
        );
    }
    let seed_hex = get("rng_seed")?;
    let mut seed = [0u8; 32];
    if seed_hex.len() != 64 || !seed_hex.is_ascii() {
        bail!("{}: bad rng_seed", ctx());
    }
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16)
            .with_context(|| format!("{}: bad rng_seed", ctx()))?;
    }
    let stream: u64 = get("rng_stream")?
        .parse()
        .with_context(|| format!("{}: bad rng_stream", ctx()))?;
    let word_pos: u128 = get("rng_word_pos")?
        .parse()
        .with_context(|| format!("{}: bad rng_word_pos", ctx()))?;

    if let Some((name, _)) = tensors
        .iter()
        .find(|(n, t)| n.starts_with("model.") && t.data().iter().any(|v| !v.is_finite()))
    {
        bail!("{}: '{name}' holds a non-finite value", ctx());
    }
    let model: Vec<(String, Tensor)> = tensors
        .iter()
        .filter(|(n, _)| n.starts_with("model."))
        .cloned()
        .collect();
    io::load_state_dict_with(net, &model, &io::LoadOptions::strict().prefix("model."))
        .with_context(ctx)?;
    let state: Vec<(String, Tensor)> = tensors
        .iter()
        .filter_map(|(n, t)| n.strip_prefix("optim.").map(|s| (s.to_string(), t.clone())))
        .collect();
    opt.load_state(&state).with_context(ctx)?;
    *rng = Rng64::from_seed(seed);
    rng.set_stream(stream);
    rng.set_word_pos(word_pos);
    Ok(Restored { epoch, history })
}

/// Index of the largest logit in each row.
fn argmax_rows(logits: &Tensor) -> Vec<usize> {
    let k = logits.shape().last().copied().unwrap_or(1).max(1);
    logits
        .data()
        .chunks(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}

/// Predictions for every image of `d`, in batches of 256, without a graph
/// (the caller puts the network in eval mode).
fn predict(net: &Sequential, d: &Images) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::with_capacity(d.len());
    let idx: Vec<usize> = (0..d.len()).collect();
    no_grad(|| -> anyhow::Result<()> {
        for chunk in idx.chunks(256) {
            let (x, _) = d.batch(chunk)?;
            let logits = net.forward(&Var::new(x))?;
            out.extend(argmax_rows(&logits.value()));
        }
        Ok(())
    })?;
    Ok(out)
}

fn percent(hits: usize, n: usize) -> f64 {
    100.0 * hits as f64 / n.max(1) as f64
}

/// The 10x10 confusion matrix (rows: true digit, columns: prediction) as text.
pub fn confusion_table(truth: &[usize], pred: &[usize]) -> String {
    let mut m = [[0usize; digits::CLASSES]; digits::CLASSES];
    for (&t, &p) in truth.iter().zip(pred) {
        m[t][p] += 1;
    }
    let mut s = String::from("confusion matrix (rows: true digit, columns: predicted digit)\n");
    s += "      ";
    for c in 0..digits::CLASSES {
        s += &format!("{c:>5}");
    }
    s += "\n";
    for (t, row) in m.iter().enumerate() {
        s += &format!("  {t:>2}  ");
        for v in row {
            s += &format!("{v:>5}");
        }
        s += "\n";
    }
    s
}

fn progress_bar(len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("epoch {prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("{epoch:>2}/{epochs}"));
    bar
}

/// The options with the model's defaults filled in.
#[derive(Clone, Copy, Debug)]
struct Plan {
    model: ModelKind,
    epochs: usize,
    batch: usize,
    optimizer: OptimizerKind,
    lr: f32,
}

fn plan(a: &TrainDigitsArgs) -> anyhow::Result<Plan> {
    let model = a.model;
    let optimizer = a.optimizer.unwrap_or(model.default_optimizer());
    let p = Plan {
        model,
        epochs: a.epochs.unwrap_or(model.default_epochs()),
        batch: a.batch.unwrap_or(model.default_batch()),
        optimizer,
        lr: a.lr.unwrap_or(model.default_lr(optimizer)),
    };
    if p.epochs == 0 {
        bail!("train-digits: --epochs must be at least 1");
    }
    if p.batch == 0 {
        bail!("train-digits: --batch must be at least 1");
    }
    if !(p.lr.is_finite() && p.lr > 0.0) {
        bail!(
            "train-digits: --lr {} is invalid: must be finite and positive",
            p.lr
        );
    }
    if !(a.momentum.is_finite() && (0.0..1.0).contains(&a.momentum)) {
        bail!(
            "train-digits: --momentum {} is invalid: must be in [0, 1)",
            a.momentum
        );
    }
    if a.resume && a.checkpoint.is_none() {
        bail!("train-digits: --resume needs --checkpoint DIR");
    }
    Ok(p)
}

/// Turn transparent huge pages off for this process. The network's whole
/// working set is about 40 MB, and mimalloc asks for huge pages on its
/// arena: the first epoch then spent 50 ms zeroing fresh 2 MiB pages
/// (79 ms against 29 without; 20 epochs 0.58 -> 0.48 s on a VM with THP
/// in `madvise` mode). Only faults from now on are affected; a kernel
/// without the call just keeps huge pages.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory
    // of ours; failure (an old kernel) is harmless and ignored.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// One epoch of minibatch steps over `train` in `order`: the summed loss
/// (weighted by batch size) and the number of correct training predictions.
fn train_epoch(
    net: &Sequential,
    opt: &mut dyn Optimizer,
    train: &Images,
    order: &[usize],
    batch: usize,
    bar: &ProgressBar,
) -> anyhow::Result<(f64, usize)> {
    let (mut loss_sum, mut hits) = (0.0f64, 0usize);
    for (b, idx) in order.chunks(batch).enumerate() {
        let (x, y) = train.batch(idx)?;
        let logits = net.forward(&Var::new(x))?;
        let loss = logits.cross_entropy(&y)?;
        opt.zero_grad();
        loss.backward()?;
        opt.step()?;
        loss_sum += loss.item()? as f64 * idx.len() as f64;
        hits += argmax_rows(&logits.value())
            .iter()
            .zip(&y)
            .filter(|(p, t)| p == t)
            .count();
        let seen = (b * batch + idx.len()).min(train.len());
        bar.set_position(b as u64 + 1);
        bar.set_message(format!(
            "loss {:.4} acc {:.1}%",
            loss_sum / seen as f64,
            percent(hits, seen)
        ));
    }
    Ok((loss_sum, hits))
}

/// The loss and accuracy curves of `history` as a PNG at `path`.
fn plot_history(path: &Path, history: &[Epoch], title: &str, test_acc: f64) -> anyhow::Result<()> {
    let per_epoch = |f: fn(&Epoch) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .enumerate()
            .map(|(i, e)| (i as f64 + 1.0, f(e)))
            .collect()
    };
    let loss = Panel::new(
        &format!("training loss ({title}, {} epochs)", history.len()),
        "epoch",
        "cross-entropy",
    )
    .series("", per_epoch(|e| e.loss));
    let accuracy = Panel::new(&format!("accuracy (test {test_acc:.2}%)"), "epoch", "%")
        .series("train", per_epoch(|e| e.train_acc))
        .series("test", per_epoch(|e| e.test_acc));
    plot::save_png(path, &[loss, accuracy], 1000, 420)?;
    outln!("plot: {}", path.display());
    Ok(())
}

/// The train and test splits at the model's input size.
fn load_data(a: &TrainDigitsArgs, model: ModelKind) -> anyhow::Result<(Images, Images, u64)> {
    let all = match &a.data {
        Some(p) => Digits::load(p)?,
        None => Digits::bundled()?,
    };
    let (train, test) = all.split_every_fifth();
    if train.is_empty() || test.is_empty() {
        bail!(
            "train-digits: {} images are too few for the every-fifth split",
            all.len()
        );
    }
    Ok((
        Images::new(&train, model)?,
        Images::new(&test, model)?,
        data_hash(&all),
    ))
}

/// `DIR/digits-checkpoint.safetensors` of `--checkpoint DIR`, the
/// directory made.
fn checkpoint_file(a: &TrainDigitsArgs) -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = &a.checkpoint else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create checkpoint directory {}", dir.display()))?;
    let file = dir.join(CHECKPOINT_FILE);
    crate::files::check_output(&file, "--checkpoint")?;
    Ok(Some(file))
}

/// The first line: data, model, schedule.
fn print_header(
    a: &TrainDigitsArgs,
    p: &Plan,
    train: &Images,
    test: &Images,
) -> anyhow::Result<()> {
    let model = match p.model {
        ModelKind::Digits => String::new(),
        m => format!(
            "{} on {}x{}x{}, ",
            m.name(),
            train.channels,
            train.side,
            train.side
        ),
    };
    outln!(
        "train-digits: {model}{} train / {} test images, {} epochs, batch {}, {} lr {}{}, seed {}",
        train.len(),
        test.len(),
        p.epochs,
        p.batch,
        p.optimizer.name(),
        p.lr,
        if p.optimizer == OptimizerKind::Sgd {
            format!(" momentum {}", a.momentum)
        } else {
            String::new()
        },
        a.seed
    );
    Ok(())
}

/// Everything the epochs of one run share.
struct Trainer {
    plan: Plan,
    settings: Settings,
    train: Images,
    test: Images,
    ckpt_path: Option<PathBuf>,
}

impl Trainer {
    /// Epochs `start..` of the plan, each followed by a test pass and a
    /// checkpoint: the time spent training and writing checkpoints.
    fn epochs(
        &self,
        start: usize,
        net: &mut Sequential,
        opt: &mut dyn Optimizer,
        rng: &mut Rng64,
        history: &mut Vec<Epoch>,
    ) -> anyhow::Result<(Duration, Duration)> {
        let (train, test, epochs) = (&self.train, &self.test, self.plan.epochs);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let batches = train.len().div_ceil(self.plan.batch);
        let mut train_time = Duration::ZERO;
        let mut ckpt_time = Duration::ZERO;
        for epoch in start..epochs {
            let t0 = Instant::now();
            let bar = progress_bar(batches, epoch + 1, epochs);
            // The order restarts from the identity each epoch, so it depends only
            // on the generator's position, which the checkpoint keeps.
            order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
            shuffle(&mut order, rng);
            net.train();
            let (loss_sum, hits) = train_epoch(net, opt, train, &order, self.plan.batch, &bar)?;
            bar.finish_and_clear();
            net.eval();
            let pred = predict(net, test)?;
            let test_hits = pred
                .iter()
                .zip(test.labels())
                .filter(|(p, t)| p == t)
                .count();
            let dt = t0.elapsed();
            train_time += dt;
            let e = Epoch {
                loss: loss_sum / train.len() as f64,
                train_acc: percent(hits, train.len()),
                test_acc: percent(test_hits, test.len()),
                seconds: dt.as_secs_f64(),
            };
            history.push(e);
            outln!(
                "epoch {:>2}/{}  loss {:.4}  train acc {:5.1}%  test acc {:5.1}%  ({:.3} s)",
                epoch + 1,
                epochs,
                e.loss,
                e.train_acc,
                e.test_acc,
                e.seconds
            );
            if let Some(p) = &self.ckpt_path {
                let t1 = Instant::now();
                save_checkpoint(p, net, opt, rng, &self.settings, epoch + 1, history)?;
                ckpt_time += t1.elapsed();
            }
        }
        Ok((train_time, ckpt_time))
    }

    /// The test accuracy, confusion matrix and timings after training.
    fn report(
        &self,
        net: &Sequential,
        ran: usize,
        times: (Duration, Duration),
    ) -> anyhow::Result<f64> {
        let test = &self.test;
        let pred = predict(net, test)?;
        let hits = pred
            .iter()
            .zip(test.labels())
            .filter(|(p, t)| p == t)
            .count();
        outln!();
        outln!(
            "test accuracy: {:.2}% ({hits}/{})",
            percent(hits, test.len()),
            test.len()
        );
        out!("{}", confusion_table(test.labels(), &pred));
        let (train_time, ckpt_time) = times;
        outln!(
            "time: {ran} epochs in {:.3} s ({:.1} ms/epoch){}",
            train_time.as_secs_f64(),
            1e3 * train_time.as_secs_f64() / ran.max(1) as f64,
            if self.ckpt_path.is_some() {
                format!(", checkpoints {:.3} s", ckpt_time.as_secs_f64())
            } else {
                String::new()
            }
        );
        Ok(percent(hits, test.len()))
    }
}

/// `convlab train-digits`: train, report, checkpoint, save and plot.
pub fn run(a: TrainDigitsArgs) -> anyhow::Result<()> {
    let plan = plan(&a)?;
    no_transparent_huge_pages();
    if let Some(p) = &a.save {
        crate::files::check_output(p, "--save")?;
    }
    if !a.no_plot {
        crate::files::check_output(&a.plot, "--plot")?;
    }
    let (train, test, data_hash) = load_data(&a, plan.model)?;
    let settings = Settings {
        model: plan.model,
        optimizer: plan.optimizer,
        lr: plan.lr,
        momentum: a.momentum,
        batch: plan.batch,
        seed: a.seed,
        data_hash,
    };

    let mut rng = seeded_rng(a.seed);
    let mut net = plan.model.build(a.seed, &mut rng)?;
    let params = net.parameters();
    let mut opt: Box<dyn Optimizer> = match plan.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::new(params, plan.lr)?.momentum(a.momentum)?),
        OptimizerKind::Adam => Box::new(Adam::new(params, plan.lr)?),
    };

    let ckpt_path = checkpoint_file(&a)?;
    let mut start = 0;
    let mut history: Vec<Epoch> = Vec::new();
    if let (true, Some(p)) = (a.resume, &ckpt_path) {
        if p.exists() {
            let r = load_checkpoint(p, &net, opt.as_mut(), &mut rng, &settings, plan.epochs)?;
            outln!(
                "resuming from {} after epoch {}/{}",
                p.display(),
                r.epoch,
                plan.epochs
            );
            start = r.epoch;
            history = r.history;
        } else {
            outln!("no checkpoint in {} yet: starting afresh", p.display());
        }
    }

    print_header(&a, &plan, &train, &test)?;
    let trainer = Trainer {
        plan,
        settings,
        train,
        test,
        ckpt_path,
    };
    let times = trainer.epochs(start, &mut net, opt.as_mut(), &mut rng, &mut history)?;
    // Running statistics for the final test pass too (also after a resume
    // that had no epoch left to run).
    net.eval();
    let ran = plan.epochs.saturating_sub(start);
    let test_acc = trainer.report(&net, ran, times)?;

    if let Some(p) = &a.save {
        io::save_state_dict(p, &net)?;
        outln!("weights: {} ({})", p.display(), plan.model.names());
    }
    if !a.no_plot {
        let title = match plan.model {
            ModelKind::Digits => format!("{} lr {}", plan.optimizer.name(), plan.lr),
            m => format!("{}, {} lr {}", m.name(), plan.optimizer.name(), plan.lr),
        };
        plot_history(&a.plot, &history, &title, test_acc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_changes_with_any_byte() {
        let t = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let base = checkpoint_checksum(&[("model.w", &t)], &[("epoch", "3")]);
        let flipped =
            Tensor::from_vec(vec![1.0, f32::from_bits(2f32.to_bits() ^ 1)], &[2]).unwrap();
        assert_ne!(
            base,
            checkpoint_checksum(&[("model.w", &flipped)], &[("epoch", "3")])
        );
        assert_ne!(
            base,
            checkpoint_checksum(&[("model.w", &t)], &[("epoch", "4")])
        );
        assert_ne!(
            base,
            checkpoint_checksum(&[("model.v", &t)], &[("epoch", "3")])
        );
        // The checksum entry itself is left out.
        assert_eq!(
            base,
            checkpoint_checksum(&[("model.w", &t)], &[("epoch", "3"), ("checksum", "x")])
        );
    }

    #[test]
    fn history_round_trips() {
        let h = vec![Epoch {
            loss: 0.25,
            train_acc: 91.5,
            test_acc: 90.0,
            seconds: 0.02,
        }];
        assert_eq!(history_from_json(&history_json(&h)).unwrap(), h);
    }

    #[test]
    fn confusion_counts_land_in_rows_of_truth() {
        let t = confusion_table(&[3, 3, 1], &[3, 8, 1]);
        let row3 = t
            .lines()
            .find(|l| l.trim_start().starts_with("3 "))
            .unwrap();
        let cells: Vec<usize> = row3
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(cells[1 + 3], 1);
        assert_eq!(cells[1 + 8], 1);
    }
}
