//! `convlab learn INPUT TARGET --kernel-size HxW`: recover the kernel that
//! maps INPUT to TARGET with `convlab::learn::learn_kernel`. Without files it
//! runs a demo on the bundled camera photograph and its Sobel-x response.

use crate::files;
use crate::out::outln;
use crate::plot::{self, Panel};
use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use convlab::learn::{
    learn_kernel, least_squares_kernel, LearnOptions, LearningRate, OptimizerKind, Outcome,
    MAX_UNKNOWNS,
};
use convlab::ops::Conv2dParams;
use convlab::{filters, format_tensor, io, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

/// The bundled camera photograph (512x512 gray; see assets/README.md).
static CAMERA_PNG: &[u8] = include_bytes!("../../../assets/camera.png");
/// The demo learns on every `DEMO_STRIDE`-th pixel of the camera (128x128),
/// with its mean subtracted. Why (condition numbers of the loss's Hessian,
/// measured with NumPy): a photograph's neighbouring pixels are so alike
/// that the full 512x512 image gives 6300, and plain SGD needs about that
/// many steps per e-fold of error. Taking every 4th pixel (neighbours 4
/// pixels apart, and 16 times fewer pixels per step) gives 1090; removing
/// the mean, which sobel-x ignores since its taps sum to 0, gives 255. Block
/// means instead of subsampling would blur the image and make it worse (4620).
const DEMO_STRIDE: usize = 4;
/// The demo's step count when `--steps` is not given: with lr = 1/λmax the
/// slowest error component shrinks by 1 - 1/255 per step, so 3000 steps take
/// an initial error of order 1 below 1e-5.
const DEMO_STEPS: usize = 3000;

#[derive(ClapArgs)]
pub struct Args {
    /// Input image or .npy ([H, W]; colour images are converted to gray). Omit both
    /// INPUT and TARGET for the demo: the bundled camera photograph and its sobel-x response.
    input: Option<PathBuf>,
    /// Target image or .npy: the input filtered by the unknown kernel ([H-kh+1, W-kw+1]).
    target: Option<PathBuf>,
    /// Kernel size to learn, HxW or N.
    #[arg(long, default_value = "3x3", allow_hyphen_values = true)]
    kernel_size: String,
    /// How to find the kernel: lstsq (solve the least-squares problem exactly) or gd
    /// (gradient descent, the chapter's loop). Default: lstsq for INPUT and TARGET unless
    /// --lr, --steps, --optimizer, --tol or --plot is given; gd for the demo.
    #[arg(long)]
    solver: Option<String>,
    /// Learning rate (gd): a number, or auto (half the largest stable rate for sgd; 0.05 for adam).
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<String>,
    /// Gradient steps (default 100; 3000 for the demo).
    #[arg(long, allow_negative_numbers = true)]
    steps: Option<usize>,
    /// Update rule (gd): sgd or adam (default sgd).
    #[arg(long)]
    optimizer: Option<String>,
    /// Seed of the random initial kernel.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,
    /// Learn a bias too.
    #[arg(long)]
    bias: bool,
    /// Stop once the loss is at most this.
    #[arg(long, allow_hyphen_values = true)]
    tol: Option<f32>,
    /// Write the learned kernel here (.npy, [kh, kw]).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the loss curve here (.png).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// The demo's input: the camera, subsampled and centred (see [`DEMO_STRIDE`]).
fn demo_input() -> anyhow::Result<Tensor> {
    let full = io::image_from_bytes(CAMERA_PNG, true)?;
    let [h, w] = full.dims2("demo")?;
    let (oh, ow) = (h.div_ceil(DEMO_STRIDE), w.div_ceil(DEMO_STRIDE));
    let d = full.data();
    let mut out: Vec<f32> = (0..oh * ow)
        .map(|i| d[(i / ow) * DEMO_STRIDE * w + (i % ow) * DEMO_STRIDE])
        .collect();
    let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / out.len() as f64;
    out.iter_mut().for_each(|v| *v -= mean as f32);
    Ok(Tensor::from_vec(out, &[oh, ow])?)
}

/// How `learn` finds the kernel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Solver {
    LeastSquares,
    GradientDescent,
}

/// `--solver`, or the default: see [`Args::solver`].
fn solver(a: &Args, demo: bool) -> anyhow::Result<Solver> {
    let gd_options: Vec<&str> = [
        ("--lr", a.lr.is_some()),
        ("--steps", a.steps.is_some()),
        ("--optimizer", a.optimizer.is_some()),
        ("--tol", a.tol.is_some()),
        ("--plot", a.plot.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    match a.solver.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("lstsq") => {
            if let Some(o) = gd_options.first() {
                bail!("{o} applies to --solver gd (gradient descent), not lstsq");
            }
            Ok(Solver::LeastSquares)
        }
        Some("gd") => Ok(Solver::GradientDescent),
        Some(s) => bail!("--solver '{s}' is not lstsq or gd"),
        None if demo || !gd_options.is_empty() => Ok(Solver::GradientDescent),
        None => Ok(Solver::LeastSquares),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (kh, kw) = files::parse_size(&a.kernel_size, "--kernel-size")?;
    let how = solver(&a, a.input.is_none() && a.target.is_none())?;
    let lr = match a.lr.as_deref().unwrap_or("auto") {
        "auto" => LearningRate::Auto,
        s => match s.parse::<f32>() {
            Ok(v) if v.is_finite() && v > 0.0 => LearningRate::Fixed(v),
            _ => bail!("--lr '{s}' is not a positive number or auto"),
        },
    };
    let optimizer = match a
        .optimizer
        .as_deref()
        .unwrap_or("sgd")
        .to_ascii_lowercase()
        .as_str()
    {
        "sgd" => OptimizerKind::Sgd,
        "adam" => OptimizerKind::Adam,
        o => bail!("--optimizer '{o}' is not sgd or adam"),
    };
    // NaN would never stop and a negative loss bound is never reached: both are typos.
    if let Some(t) = a.tol.filter(|t| !(t.is_finite() && *t >= 0.0)) {
        bail!("--tol {t} is not a finite number at least 0");
    }
    if let Some(p) = &a.out {
        files::check_output(p, "--out")?;
    }
    if let Some(p) = &a.plot {
        files::check_output(p, "--plot")?;
    }
    let (x, y, truth, steps) = match (&a.input, &a.target) {
        (Some(i), Some(t)) => {
            let x = files::load(i, true)?;
            let y = files::load(t, true)?;
            if x.ndim() != 2 || y.ndim() != 2 {
                bail!(
                    "learn needs one-channel inputs; got {:?} and {:?} (a .npy must be [H, W])",
                    x.shape(),
                    y.shape()
                );
            }
            outln!(
                "learning a {kh}x{kw} kernel: {} {:?} -> {} {:?}",
                i.display(),
                x.shape(),
                t.display(),
                y.shape()
            );
            (x, y, None, a.steps.unwrap_or(100))
        }
        (None, None) => {
            let x = demo_input()?;
            let k = filters::named_kernel("sobel-x")?;
            if (kh, kw) != (3, 3) {
                bail!("the demo learns the 3x3 sobel-x kernel; --kernel-size must be 3x3");
            }
            let y = filters::apply(&x, &k, &Conv2dParams::new())?;
            outln!(
                "demo: the bundled camera photograph, every {DEMO_STRIDE}th pixel {:?}, mean subtracted -> its sobel-x response {:?}",
                x.shape(),
                y.shape()
            );
            (x, y, Some(k), a.steps.unwrap_or(DEMO_STEPS))
        }
        _ => bail!("give both INPUT and TARGET, or neither for the demo"),
    };
    let mut opts = LearnOptions::new((kh, kw))
        .lr(lr)
        .steps(steps)
        .optimizer(optimizer)
        .seed(a.seed)
        .bias(a.bias);
    if let Some(t) = a.tol {
        opts = opts.stop_below(t);
    }
    let result = match how {
        Solver::LeastSquares => solve(&x, &y, &opts)?,
        Solver::GradientDescent => descend(&a, &x, &y, &opts, truth.is_none())?,
    };
    if let Some(k) = truth {
        outln!("max |learned - sobel-x| = {:.3e}", result.max_abs_diff(&k)?);
    }
    if let Some(o) = &a.out {
        io::write_npy(o, &result)?;
        outln!("wrote {}", o.display());
    }
    Ok(())
}

/// `learn --solver lstsq`: the least-squares kernel in one solve.
fn solve(x: &Tensor, y: &Tensor, opts: &LearnOptions) -> anyhow::Result<Tensor> {
    let start = Instant::now();
    let fit = least_squares_kernel(x, y, opts)?;
    let secs = start.elapsed().as_secs_f64();
    outln!(
        "least squares: {} unknowns, rank {}, condition number {:.4e} (plain gradient descent needs about that many steps per e-fold of error)",
        fit.unknowns,
        fit.rank,
        fit.condition_number
    );
    outln!("loss {:.6e}", fit.loss);
    outln!("took {secs:.2} s");
    outln!("learned kernel:");
    outln!("{}", format_tensor(&fit.kernel, ""));
    if let Some(b) = fit.bias {
        outln!("learned bias: {b}");
    }
    Ok(fit.kernel)
}

/// `learn --solver gd`: the chapter's gradient descent, with its loss curve.
/// On a pair (`hint`), a run that ends far above the least-squares loss
/// says so, with the condition number that made it slow.
fn descend(
    a: &Args,
    x: &Tensor,
    y: &Tensor,
    opts: &LearnOptions,
    hint: bool,
) -> anyhow::Result<Tensor> {
    let (steps, lr, optimizer) = (opts.steps, opts.lr, opts.optimizer);
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} loss {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let report = learn_kernel(x, y, opts, |step, loss| {
        bar.set_position(step as u64 + 1);
        bar.set_message(format!("{loss:.4e}"));
    })?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let name = match optimizer {
        OptimizerKind::Sgd => "sgd",
        OptimizerKind::Adam => "adam",
    };
    let how = if matches!(lr, LearningRate::Auto) {
        "auto"
    } else {
        "given"
    };
    outln!("{name}, lr {} ({how}), {steps} steps at most", report.lr);
    let n = report.losses.len();
    // About 8 lines of the curve, always the first and the last.
    let every = n.div_ceil(8).max(1);
    for (i, l) in report.losses.iter().enumerate() {
        if i % every == 0 || i + 1 == n {
            outln!("step {i:>6}  loss {l:.6e}");
        }
    }
    if let Some(p) = &a.plot {
        let pts = report
            .losses
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as f64, f64::from(l)))
            .collect();
        let title = format!("kernel learning: {name}, lr {}", report.lr);
        let panel = Panel::new(&title, "step", "summed squared error (log)")
            .log_y(true)
            .series("", pts);
        plot::save_png(p, &[panel], 720, 420).context("--plot")?;
        outln!("wrote {}", p.display());
    }
    if let Outcome::Diverged { .. } = report.outcome {
        // A learning rate that blows up is the user's choice to fix: one
        // line on stderr, exit 2, and no kernel file.
        bail!("{}", report.outcome);
    }
    match report.outcome {
        Outcome::Converged { step } => outln!("loss reached --tol at step {step}"),
        _ => outln!("final loss {:.6e} after {n} steps", report.losses[n - 1]),
    }
    outln!("took {secs:.2} s");
    outln!("learned kernel:");
    outln!("{}", format_tensor(&report.kernel, ""));
    if let Some(b) = report.bias {
        outln!("learned bias: {b}");
    }
    let (kh, kw) = (opts.kernel_size.h(), opts.kernel_size.w());
    if hint && kh * kw < MAX_UNKNOWNS {
        let best = least_squares_kernel(x, y, opts)?;
        let last = report.losses[n - 1];
        // Well above the optimum (f32 noise aside): gradient descent stalled.
        if f64::from(last) > 1.01 * f64::from(best.loss) + 1e-6 * f64::from(report.losses[0]) {
            outln!(
                "the least-squares loss is {:.6e} (condition number {:.4e}): --solver lstsq solves for it exactly",
                best.loss,
                best.condition_number
            );
        }
    }
    Ok(report.kernel)
}
