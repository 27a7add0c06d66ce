//! Learning a kernel from an input/output pair, as in *Dive into Deep
//! Learning* §6.2.4: gradient descent on the summed squared error
//! `L(w, b) = sum((corr2d(X, w) + b - Y)^2)`, with a trainer that notices when
//! the learning rate makes the loss blow up and says which rates are stable.
//!
//! ```
//! use convlab::learn::{learn_kernel, LearnOptions, LearningRate, Outcome};
//! use convlab::{ops, Tensor};
//! // The book's image: ones with a dark band in columns 2..6.
//! let x = Tensor::from_rows(&[[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]; 6])?;
//! let y = ops::corr2d(&x, &Tensor::from_rows(&[[1.0, -1.0]])?)?;
//! let opts = LearnOptions::new((1, 2)).lr(LearningRate::Auto).steps(50);
//! let report = learn_kernel(&x, &y, &opts, |_, _| {})?;
//! assert!(matches!(report.outcome, Outcome::Finished));
//! assert!((report.kernel.data()[0] - 1.0).abs() < 1e-2);
//! assert!((report.kernel.data()[1] + 1.0).abs() < 1e-2);
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! # Which learning rates are stable
//! The loss is quadratic in the parameters. Write the output as `A·θ`, where
//! `θ` is the flattened kernel (plus the bias) and each row of `A` is one
//! window of `X` (plus a 1 for the bias) — the unfolded input. Then
//! `L(θ) = |Aθ - y|²`, its Hessian is `H = 2·AᵀA`, and one plain gradient step
//! maps the error `e = θ - θ*` to `(I - lr·H)·e`. Along an eigenvector of `H`
//! with eigenvalue `λ` the error is multiplied by `1 - lr·λ`, so plain gradient
//! descent converges from every start iff `|1 - lr·λmax| < 1`, i.e.
//! `lr < 2/λmax`. [`max_stable_lr`] computes that bound.
//!
//! # Solving it instead
//! Gradient descent needs about `λmax/λmin` (the condition number of `H`)
//! steps per e-fold of error, and a photograph's neighbouring pixels are so
//! alike that this is in the thousands for a 3x3 kernel (6300 on the
//! bundled 512x512 camera) and far more for larger ones.
//! [`least_squares_kernel`] solves `AᵀA θ = Aᵀy` directly instead: `AᵀA`
//! has one row per tap, so the solve is exact and takes milliseconds on any
//! pair, and it reports the condition number it saw.

use crate::autograd::Var;
use crate::error::{Dims, Error, Result};
use crate::optim::{Adam, Optimizer, Sgd};
use crate::shape::Pair;
use crate::tensor::{seeded_rng, Tensor};

mod lstsq;
mod rate;

pub use lstsq::{least_squares_kernel, LeastSquares, MAX_UNKNOWNS};
pub use rate::{auto_lr, hessian_max_eigenvalue, max_stable_lr};

/// The update rule of [`learn_kernel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Plain gradient descent (`torch.optim.SGD` without momentum), the book's loop.
    Sgd,
    /// `torch.optim.Adam` with default betas.
    Adam,
}

/// How [`learn_kernel`] picks its learning rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LearningRate {
    /// This learning rate.
    Fixed(f32),
    /// Chosen from the problem: see [`auto_lr`].
    Auto,
}

/// Whether the learned layer computes a cross-correlation (what deep-learning
/// "convolution" layers compute) or a true convolution (flipped kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelMode {
    /// `y = corr2d(x, w) + b`, the chapter's layer.
    Correlation,
    /// `y = convolve2d(x, w) + b`: the learned kernel is the flip of the
    /// correlation one.
    Convolution,
}

/// Options of [`learn_kernel`]. Build with [`LearnOptions::new`] and the
/// setters, like `nn.Conv2d`'s keyword arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnOptions {
    /// `(kh, kw)` of the kernel to learn.
    pub kernel_size: Pair,
    /// Learn a bias together with the kernel.
    pub bias: bool,
    /// The learning rate (default `Fixed(0.03)`, the book's `3e-2`).
    pub lr: LearningRate,
    /// The number of gradient steps (default 10, the book's).
    pub steps: usize,
    /// The update rule (default plain SGD).
    pub optimizer: OptimizerKind,
    /// Correlation (default) or true convolution.
    pub mode: KernelMode,
    /// Seed of the random initial kernel when `init` is `None`.
    pub seed: u64,
    /// The initial kernel, `[kh, kw]`; `None` draws it as PyTorch's `Conv2d` does,
    /// `U(-1/sqrt(kh*kw), 1/sqrt(kh*kw))`.
    pub init: Option<Tensor>,
    /// The initial bias; `None` draws it like the kernel.
    pub init_bias: Option<f32>,
    /// Stop early, as [`Outcome::Converged`], once the loss is at most this.
    pub stop_below: Option<f32>,
}

impl LearnOptions {
    /// Options for a `kernel_size` kernel with the book's defaults: no bias,
    /// plain SGD, lr 0.03, 10 steps, seed 0, random initial kernel.
    pub fn new(kernel_size: impl Into<Pair>) -> Self {
        LearnOptions {
            kernel_size: kernel_size.into(),
            bias: false,
            lr: LearningRate::Fixed(0.03),
            steps: 10,
            optimizer: OptimizerKind::Sgd,
            mode: KernelMode::Correlation,
            seed: 0,
            init: None,
            init_bias: None,
            stop_below: None,
        }
    }
    /// Learn a bias too.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Set the learning rate.
    pub fn lr(mut self, lr: LearningRate) -> Self {
        self.lr = lr;
        self
    }
    /// Set the number of steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
    /// Set the update rule.
    pub fn optimizer(mut self, optimizer: OptimizerKind) -> Self {
        self.optimizer = optimizer;
        self
    }
    /// Learn a correlation or a true convolution kernel.
    pub fn mode(mut self, mode: KernelMode) -> Self {
        self.mode = mode;
        self
    }
    /// Set the seed of the random initial parameters.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Start from this kernel (`[kh, kw]`).
    pub fn init(mut self, kernel: Tensor) -> Self {
        self.init = Some(kernel);
        self
    }
    /// Start from this bias.
    pub fn init_bias(mut self, bias: f32) -> Self {
        self.init_bias = Some(bias);
        self
    }
    /// Stop once the loss is at most `loss`.
    pub fn stop_below(mut self, loss: f32) -> Self {
        self.stop_below = Some(loss);
        self
    }
}

/// How a [`learn_kernel`] run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The loss reached [`LearnOptions::stop_below`] at step `step` (0-based).
    Converged {
        /// The step whose loss was at most the threshold.
        step: usize,
    },
    /// Every step ran and the loss never blew up.
    Finished,
    /// The loss blew up (see [`learn_kernel`] for the rule); training stopped.
    Diverged {
        /// The step (0-based) at which the blow-up was recognised.
        step: usize,
        /// The learning rate that was used.
        lr: f32,
        /// The step where the growth began (the start of the window shown).
        from_step: usize,
        /// The loss at `from_step`.
        from_loss: f32,
        /// The loss at `step` (may be infinite or NaN).
        to_loss: f32,
        /// For plain SGD, the bound `2/λmax` below which every learning rate
        /// converges ([`max_stable_lr`]); `None` for Adam, whose step size
        /// does not scale with the gradient, so that bound does not apply.
        stable_below: Option<f32>,
    },
}

impl std::fmt::Display for Outcome {
    /// One sentence: "lr 0.03 diverges here (loss 40.7 → 2535 in 2 steps);
    /// stable below 0.0151; try --lr auto".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Converged { step } => write!(f, "converged at step {step}"),
            Outcome::Finished => write!(f, "finished"),
            Outcome::Diverged {
                step,
                lr,
                from_step,
                from_loss,
                to_loss,
                stable_below,
            } => {
                write!(
                    f,
                    "lr {} diverges here (loss {} → {} in {} steps); ",
                    fmt_sig(*lr, Round::Nearest),
                    fmt_sig(*from_loss, Round::Nearest),
                    fmt_sig(*to_loss, Round::Nearest),
                    step - from_step
                )?;
                match stable_below {
                    // Rounded down so the printed bound is itself stable.
                    Some(b) => write!(
                        f,
                        "stable below {}; try --lr auto",
                        fmt_sig(*b, Round::Down)
                    ),
                    None => write!(f, "try a smaller lr"),
                }
            }
        }
    }
}

/// What [`learn_kernel`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnReport {
    /// The loss at each step, before that step's update (as the book prints it).
    pub losses: Vec<f32>,
    /// The learned kernel, `[kh, kw]`.
    pub kernel: Tensor,
    /// The learned bias, when one was learned.
    pub bias: Option<f32>,
    /// The learning rate used (the resolved one for [`LearningRate::Auto`]).
    pub lr: f32,
    /// How the run ended.
    pub outcome: Outcome,
}

/// Consecutive rising steps after which a ×[`FAST_GROWTH`] rise counts as divergence.
const FAST_STEPS: usize = 2;
/// Growth over [`FAST_STEPS`] steps that counts as a blow-up.
const FAST_GROWTH: f32 = 10.0;
/// Consecutive rising steps that count as divergence whatever the growth.
const SLOW_STEPS: usize = 10;

/// Learn a kernel `w` (and bias `b`) with `corr2d(x, w) + b ≈ y` by gradient
/// descent on `sum((corr2d(x, w) + b - y)^2)`, calling `on_step(step, loss)`
/// after each loss is computed (before the update).
///
/// # Divergence
/// The run stops as [`Outcome::Diverged`] when, at some step,
/// - the loss is not finite, or
/// - the loss is above the first step's loss (all progress lost) and either
///   it rose on each of the last 2 steps by ×10 in total (fast blow-up:
///   plain GD with `lr` well above the bound grows ×`(1 - lr·λmax)²` per
///   step, ×8.8 for the chapter's `diverging_lr` run), or it rose on each of
///   the last 10 steps (slow blow-up: `lr` just above the bound grows only
///   a few percent per step).
///
/// Why this rule: below the bound, plain GD on this quadratic never raises
/// the loss at all (every error mode shrinks), so any sustained rise is a
/// symptom; the "above the first loss" clause keeps f32 rounding noise near
/// a converged minimum, and Adam's brief overshoots, from being reported.
///
/// # Errors
/// `x` or `y` not 2-D; a kernel size of zero or larger than `x`; `y` not the
/// shape of the output (`[h - kh + 1, w - kw + 1]`); `init` of another shape;
/// a non-finite or negative learning rate; zero steps.
pub fn learn_kernel(
    x: &Tensor,
    y: &Tensor,
    opts: &LearnOptions,
    mut on_step: impl FnMut(usize, f32),
) -> Result<LearnReport> {
    const OP: &str = "learn_kernel";
    let out = check_problem(OP, x, opts.kernel_size)?;
    check_target(OP, x, y, opts.kernel_size, out)?;
    // A NaN or infinity in the data makes every loss non-finite, which the
    // divergence check would misreport as a learning rate problem.
    check_finite(OP, x, y)?;
    if opts.steps == 0 {
        return Err(Error::param(
            OP,
            "steps",
            "0 is invalid: must be at least 1",
        ));
    }
    let k_shape = [opts.kernel_size.h(), opts.kernel_size.w()];
    let lr = match opts.lr {
        LearningRate::Fixed(lr) => lr,
        LearningRate::Auto => auto_lr(x, opts.kernel_size, opts.bias, opts.optimizer)?,
    };

    let mut rng = seeded_rng(opts.seed);
    let bound = 1.0 / ((k_shape[0] * k_shape[1]) as f32).sqrt();
    let w0 = match &opts.init {
        Some(k) if k.shape() != k_shape => {
            return Err(Error::shape(
                OP,
                format!(
                    "initial kernel has shape {} but kernel_size is {}",
                    Dims(k.shape()),
                    Dims(&k_shape)
                ),
            ))
        }
        Some(k) => k.clone(),
        None => Tensor::uniform(&k_shape, -bound, bound, &mut rng)?,
    };
    // A true convolution with kernel v is the correlation with flip(v). The
    // flip is a permutation of the parameters, so it commutes with every
    // gradient step (and with Adam's per-coordinate rule): learn the
    // correlation kernel from flip(init) and flip the result back.
    let convolution = opts.mode == KernelMode::Convolution;
    let w = Var::param(if convolution { flip(&w0)? } else { w0 });
    let b = if opts.bias {
        let b0 = match opts.init_bias {
            Some(b0) => b0,
            None => Tensor::uniform(&[1], -bound, bound, &mut rng)?.data()[0],
        };
        Some(Var::param(Tensor::from_slice(&[b0], &[1])?))
    } else {
        None
    };
    let mut params = vec![w.clone()];
    params.extend(b.clone());
    let mut opt: Box<dyn Optimizer> = match opts.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::new(params, lr).map_err(|e| e.with_op(OP))?),
        OptimizerKind::Adam => Box::new(Adam::new(params, lr).map_err(|e| e.with_op(OP))?),
    };

    let xv = Var::new(x.clone());
    let yv = Var::new(y.clone());
    // `steps` is user input (`--steps 18446744073709551615` once panicked
    // with "capacity overflow" here); the losses grow as steps are taken.
    let mut losses = Vec::with_capacity(opts.steps.min(1 << 16));
    let mut outcome = Outcome::Finished;
    for step in 0..opts.steps {
        opt.zero_grad();
        let mut out = xv.corr2d(&w)?;
        if let Some(b) = &b {
            out = out.add(b)?;
        }
        let loss = out.sub(&yv)?.square()?.sum()?;
        let l = loss.item()?;
        losses.push(l);
        on_step(step, l);
        if let Some((from_step, from_loss)) = divergence(&losses) {
            let stable_below = match opts.optimizer {
                OptimizerKind::Sgd => Some(max_stable_lr(x, opts.kernel_size, opts.bias)?),
                OptimizerKind::Adam => None,
            };
            outcome = Outcome::Diverged {
                step,
                lr,
                from_step,
                from_loss,
                to_loss: l,
                stable_below,
            };
            break;
        }
        if opts.stop_below.is_some_and(|t| l <= t) {
            outcome = Outcome::Converged { step };
            break;
        }
        loss.backward()?;
        opt.step()?;
    }
    let kernel = if convolution {
        flip(&w.tensor())?
    } else {
        w.tensor()
    };
    Ok(LearnReport {
        losses,
        kernel,
        bias: b.map(|b| b.item()).transpose()?,
        lr,
        outcome,
    })
}

/// `y` has the output shape `out` of a `kernel_size` kernel on `x`.
fn check_target(
    op: &'static str,
    x: &Tensor,
    y: &Tensor,
    kernel_size: Pair,
    out: (usize, usize),
) -> Result<()> {
    let [yh, yw] = y.dims2(op)?;
    if (yh, yw) != out {
        return Err(Error::shape(
            op,
            format!(
                "target has shape {} but a {}x{} kernel on input {} gives {}",
                Dims(y.shape()),
                kernel_size.h(),
                kernel_size.w(),
                Dims(x.shape()),
                Dims(&[out.0, out.1])
            ),
        ));
    }
    Ok(())
}

/// Every value of `x` and `y` is finite.
fn check_finite(op: &'static str, x: &Tensor, y: &Tensor) -> Result<()> {
    for (what, t) in [("input", x), ("target", y)] {
        let bad = t.data().iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::param(
                op,
                what,
                format!(
                    "holds {bad} NaN or infinite value(s) of {}: the loss would not be finite",
                    t.numel()
                ),
            ));
        }
    }
    Ok(())
}

/// The divergence rule of [`learn_kernel`] on the losses so far: the step
/// and loss where the blow-up began, or `None`.
fn divergence(losses: &[f32]) -> Option<(usize, f32)> {
    let now = losses.len() - 1;
    let last = losses[now];
    if !last.is_finite() {
        return Some((0, losses[0]));
    }
    if last <= losses[0] {
        return None;
    }
    let rising = losses.windows(2).rev().take_while(|p| p[1] > p[0]).count();
    if rising >= FAST_STEPS && last >= FAST_GROWTH * losses[now - FAST_STEPS] {
        return Some((now - FAST_STEPS, losses[now - FAST_STEPS]));
    }
    if rising >= SLOW_STEPS {
        return Some((now - rising, losses[now - rising]));
    }
    None
}

/// `k` flipped in both axes.
fn flip(k: &Tensor) -> Result<Tensor> {
    let mut v = k.data().to_vec();
    v.reverse();
    Tensor::from_vec(v, k.shape())
}

/// Validate `x` and the kernel size; the output size `(oh, ow)`.
fn check_problem(op: &'static str, x: &Tensor, kernel_size: Pair) -> Result<(usize, usize)> {
    let [h, w] = x.dims2(op)?;
    let (kh, kw) = (kernel_size.h(), kernel_size.w());
    if kh == 0 || kw == 0 {
        return Err(Error::param(
            op,
            "kernel_size",
            format!("({kh}, {kw}) is invalid: must be at least 1"),
        ));
    }
    if kh > h || kw > w {
        return Err(Error::shape(
            op,
            format!(
                "kernel ({kh}, {kw}) is larger than the input {}",
                Dims(&[h, w])
            ),
        ));
    }
    Ok((h - kh + 1, w - kw + 1))
}

/// How [`fmt_sig`] rounds.
#[derive(Clone, Copy)]
enum Round {
    Nearest,
    Down,
}

/// `v` with 3 significant digits, but never in exponent form for values the
/// tour prints (`40.7`, `2535`, `0.0151`); integers of 4+ digits are shown whole.
fn fmt_sig(v: f32, round: Round) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let v = v as f64;
    let mag = v.abs().log10().floor() as i32;
    if mag >= 3 {
        let r = match round {
            Round::Nearest => v.round(),
            Round::Down => v.floor(),
        };
        return if mag >= 12 {
            format!("{r:.3e}")
        } else {
            format!("{r:.0}")
        };
    }
    let decimals = (2 - mag).max(0) as usize;
    let scale = 10f64.powi(decimals as i32);
    let r = match round {
        Round::Nearest => (v * scale).round() / scale,
        Round::Down => (v * scale).floor() / scale,
    };
    let s = format!("{r:.decimals$}");
    // 0.0300 reads as 0.03: the digits after the last non-zero add nothing.
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
