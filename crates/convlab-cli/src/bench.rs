//! `convlab bench`: time every case of a suite (default: the repo's
//! `bench/suite.json`), forward and backward, through the public API only.
//!
//! Each pass is warmed up once, then repeated until about
//! [`BUDGET`] has elapsed (at least [`MIN_REPS`] times); the median is reported.

use crate::out::outln;
use anyhow::{anyhow, bail, Context, Result};
use convlab::ops::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward, conv2d,
    conv2d_backward, conv3d, conv3d_backward, force_conv_algo, interpolate, interpolate_backward,
    max_pool2d, max_pool2d_backward, max_pool2d_with_indices, max_pool3d, max_pool3d_backward,
    max_pool3d_with_indices, AvgPool2dParams, Conv2dParams, Conv3dParams, ConvAlgo,
    InterpolateMode, InterpolateParams, MaxPool2dParams, MaxPool3dParams,
};
use convlab::{seeded_rng, Tensor};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The suite every speed figure in BENCHMARKS.md is measured on.
const DEFAULT_SUITE: &str = include_str!("../../../bench/suite.json");
/// Time spent repeating one pass of one case.
const BUDGET: Duration = Duration::from_millis(400);
const MIN_REPS: usize = 5;
const MAX_REPS: usize = 100_000;

/// Options of `convlab bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A suite file in the format of bench/suite.json (default: the bundled one).
    #[arg(long)]
    suite: Option<std::path::PathBuf>,
    /// Run only cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Size of the rayon thread pool, 1 to 1024 (default: one per core).
    #[arg(long, value_parser = crate::args::parse_threads, allow_negative_numbers = true)]
    threads: Option<usize>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Force a convolution algorithm (auto, reference, im2col, ...).
    #[arg(long, default_value = "auto")]
    algo: String,
    /// Report the fastest repetition instead of the median: on a shared,
    /// loaded machine the fastest run is the one least disturbed, which makes
    /// A/B comparisons of kernels steadier (still labelled `median_ms` in JSON).
    #[arg(long)]
    best: bool,
    /// Run exactly this many timed repetitions per pass (for counting CPU
    /// cycles of a fixed amount of work with `perf stat`).
    #[arg(long)]
    reps: Option<usize>,
    /// Time whole networks from this file (bench/networks.json's format)
    /// instead of the layer suite.
    #[arg(long)]
    networks: Option<std::path::PathBuf>,
    /// Time only this pass: fwd or bwd (default: both), e.g. to profile one.
    #[arg(long)]
    pass: Option<String>,
}

thread_local! {
    static BEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static REPS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    static PASS: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

struct Timing {
    name: String,
    pass: &'static str,
    median_ms: f64,
    gflops: Option<f64>,
}

/// The median (or best) time of `f` in ms, or NaN without running it when
/// `--pass` names the other pass.
fn median_ms(pass: &'static str, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    if PASS.with(|p| p.get()).is_some_and(|p| p != pass) {
        return Ok(f64::NAN);
    }
    f()?; // warm-up: page in buffers, build caches
    let mut times = Vec::new();
    let start = Instant::now();
    let fixed = REPS.with(|r| r.get());
    while match fixed {
        Some(n) => times.len() < n.max(1),
        None => times.len() < MIN_REPS || (start.elapsed() < BUDGET && times.len() < MAX_REPS),
    } {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    if BEST.with(|b| b.get()) {
        return Ok(times[0]);
    }
    Ok(times[times.len() / 2])
}

/// [`median_ms`] of `f`, or NaN (the row left out) with a note on stderr
/// when the algorithm forced with `--algo` cannot compute this pass.
fn unless_forced_elsewhere(
    name: &str,
    pass: &'static str,
    f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    match median_ms(pass, f) {
        Err(e)
            if matches!(
                e.downcast_ref::<convlab::Error>(),
                Some(convlab::Error::Param {
                    param: "algorithm",
                    ..
                })
            ) =>
        {
            eprintln!("{name} {pass}: skipped, {e}");
            Ok(f64::NAN)
        }
        other => other,
    }
}

fn usize_of(case: &Value, key: &str) -> Result<usize> {
    case[key]
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| anyhow!("case {}: '{key}' is missing or not a number", case["name"]))
}

/// `3` or `[3, 5]` as a (height, width) pair.
fn pair_of(case: &Value, key: &str) -> Result<(usize, usize)> {
    match &case[key] {
        Value::Number(_) => {
            let v = usize_of(case, key)?;
            Ok((v, v))
        }
        Value::Array(a) if a.len() == 2 => {
            let g = |v: &Value| {
                v.as_u64()
                    .map(|v| v as usize)
                    .ok_or_else(|| anyhow!("case {}: bad '{key}'", case["name"]))
            };
            Ok((g(&a[0])?, g(&a[1])?))
        }
        _ => bail!("case {}: '{key}' must be N or [H, W]", case["name"]),
    }
}

/// A weight of `[c_out, c_in_g]` Gaussian filters of size `k`, sigma a
/// sixth of each side: outer products of 1-D Gaussians (the separable
/// path's case).
fn gaussian_weight(&[cout, cin_g]: &[usize; 2], (kh, kw): (usize, usize)) -> Result<Tensor> {
    let taps = |k: usize| -> Vec<f64> {
        let sigma = k as f64 / 6.0;
        let c = (k as f64 - 1.0) / 2.0;
        let g: Vec<f64> = (0..k)
            .map(|i| (-(i as f64 - c).powi(2) / (2.0 * sigma * sigma)).exp())
            .collect();
        let sum: f64 = g.iter().sum();
        g.iter().map(|v| v / sum).collect()
    };
    let (col, row) = (taps(kh), taps(kw));
    let one: Vec<f32> = col
        .iter()
        .flat_map(|a| row.iter().map(move |b| (a * b) as f32))
        .collect();
    Ok(Tensor::from_vec(
        one.repeat(cout * cin_g),
        &[cout, cin_g, kh, kw],
    )?)
}

fn conv_case(case: &Value, rng: &mut convlab::Rng64) -> Result<Vec<Timing>> {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    let (n, cin, h, w, cout) = (
        usize_of(case, "n")?,
        usize_of(case, "cin")?,
        usize_of(case, "h")?,
        usize_of(case, "w")?,
        usize_of(case, "cout")?,
    );
    let groups = usize_of(case, "groups")?;
    let k = pair_of(case, "k")?;
    let p = Conv2dParams::new()
        .stride(pair_of(case, "stride")?)
        .padding(pair_of(case, "padding")?)
        .dilation(pair_of(case, "dilation")?)
        .groups(groups);
    let with_bias = case["bias"].as_bool().unwrap_or(false);
    let x = Tensor::randn(&[n, cin, h, w], rng)?;
    let wt = match case["weight"].as_str() {
        None | Some("randn") => Tensor::randn(&[cout, cin / groups.max(1), k.0, k.1], rng)?,
        Some("gaussian") => gaussian_weight(&[cout, cin / groups.max(1)], k)?,
        Some(other) => bail!("case {name}: weight '{other}' is not randn or gaussian"),
    };
    let b = if with_bias {
        Some(Tensor::randn(&[cout], rng)?)
    } else {
        None
    };
    // The output's shape, whichever algorithm is forced.
    let y = {
        let _auto = force_conv_algo(ConvAlgo::Auto);
        conv2d(&x, &wt, b.as_ref(), &p).with_context(|| name.clone())?
    };
    let go = Tensor::randn(y.shape(), rng)?;
    let [_, _, oh, ow] = y.dims4("bench", "output")?;
    let flops = 2.0 * (n * cout * oh * ow * (cin / groups) * k.0 * k.1) as f64;
    let fwd = unless_forced_elsewhere(&name, "fwd", || {
        std::hint::black_box(conv2d(&x, &wt, b.as_ref(), &p)?);
        Ok(())
    })?;
    let bwd = unless_forced_elsewhere(&name, "bwd", || {
        std::hint::black_box(conv2d_backward(&x, &wt, with_bias, &go, &p)?);
        Ok(())
    })?;
    Ok(vec![
        Timing {
            name: name.clone(),
            pass: "fwd",
            median_ms: fwd,
            gflops: Some(flops / fwd / 1e6),
        },
        Timing {
            name,
            pass: "bwd",
            median_ms: bwd,
            gflops: Some(2.0 * flops / bwd / 1e6),
        },
    ])
}

/// A 3-D convolution case: `"d"` and a three-element `"k"` (stride,
/// padding and dilation one int for every axis).
fn conv3d_case(case: &Value, rng: &mut convlab::Rng64) -> Result<Vec<Timing>> {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    let [n, cin, d, h, w, cout, groups] =
        ["n", "cin", "d", "h", "w", "cout", "groups"].map(|k| usize_of(case, k));
    let (n, cin, d, h, w, cout, groups) = (n?, cin?, d?, h?, w?, cout?, groups?);
    let k: Vec<usize> = serde_json::from_value(case["k"].clone())
        .with_context(|| format!("case {name}: \"k\" is not three sizes"))?;
    let [kd, kh, kw] = k[..] else {
        bail!("case {name}: \"k\" must have three sizes");
    };
    let p = Conv3dParams::new()
        .stride(usize_of(case, "stride")?)
        .padding(usize_of(case, "padding")?)
        .dilation(usize_of(case, "dilation")?)
        .groups(groups);
    let with_bias = case["bias"].as_bool().unwrap_or(false);
    let x = Tensor::randn(&[n, cin, d, h, w], rng)?;
    let wt = Tensor::randn(&[cout, cin / groups.max(1), kd, kh, kw], rng)?;
    let b = if with_bias {
        Some(Tensor::randn(&[cout], rng)?)
    } else {
        None
    };
    let y = conv3d(&x, &wt, b.as_ref(), &p).with_context(|| name.clone())?;
    let go = Tensor::randn(y.shape(), rng)?;
    let out: usize = y.shape()[2..].iter().product();
    let flops = 2.0 * (n * cout * out * (cin / groups) * kd * kh * kw) as f64;
    let fwd = unless_forced_elsewhere(&name, "fwd", || {
        std::hint::black_box(conv3d(&x, &wt, b.as_ref(), &p)?);
        Ok(())
    })?;
    let bwd = unless_forced_elsewhere(&name, "bwd", || {
        std::hint::black_box(conv3d_backward(&x, &wt, with_bias, &go, &p)?);
        Ok(())
    })?;
    Ok(vec![
        Timing {
            name: name.clone(),
            pass: "fwd",
            median_ms: fwd,
            gflops: Some(flops / fwd / 1e6),
        },
        Timing {
            name,
            pass: "bwd",
            median_ms: bwd,
            gflops: Some(2.0 * flops / bwd / 1e6),
        },
    ])
}

/// A resampling case: `F.interpolate` of `[n, c, h, w]` by `"scale"` in
/// `"mode"` (`bilinear`, `nearest`, `bicubic`), `align_corners` false.
fn resample_case(case: &Value, rng: &mut convlab::Rng64) -> Result<Vec<Timing>> {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    let shape = ["n", "c", "h", "w"]
        .map(|k| usize_of(case, k))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let mode = match case["mode"].as_str() {
        Some("bilinear") => InterpolateMode::Bilinear,
        Some("nearest") => InterpolateMode::Nearest,
        Some("bicubic") => InterpolateMode::Bicubic,
        other => bail!("case {name}: unknown interpolate mode {other:?}"),
    };
    let scale = case["scale"]
        .as_f64()
        .with_context(|| format!("case {name}: \"scale\" is not a number"))?;
    let p = InterpolateParams::new(mode).scale_factor(scale);
    let x = Tensor::randn(&shape, rng)?;
    let y = interpolate(&x, &p)?;
    let go = Tensor::randn(y.shape(), rng)?;
    let fwd = median_ms("fwd", || {
        std::hint::black_box(interpolate(&x, &p)?);
        Ok(())
    })?;
    let bwd = median_ms("bwd", || {
        std::hint::black_box(interpolate_backward(&go, &shape, &p)?);
        Ok(())
    })?;
    Ok(vec![
        Timing {
            name: name.clone(),
            pass: "fwd",
            median_ms: fwd,
            gflops: None,
        },
        Timing {
            name,
            pass: "bwd",
            median_ms: bwd,
            gflops: None,
        },
    ])
}

fn pool_case(case: &Value, rng: &mut convlab::Rng64) -> Result<Vec<Timing>> {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    // Volumes (3-D pools) have a depth "d" before the height.
    let mut shape = vec![usize_of(case, "n")?, usize_of(case, "c")?];
    if case.get("d").is_some() {
        shape.push(usize_of(case, "d")?);
    }
    shape.extend([usize_of(case, "h")?, usize_of(case, "w")?]);
    let x = Tensor::randn(&shape, rng)?;
    let (fwd, bwd) = match case["op"].as_str() {
        Some("max_pool2d") => {
            let p = MaxPool2dParams::new(pair_of(case, "k")?)
                .stride(pair_of(case, "stride")?)
                .padding(pair_of(case, "padding")?);
            let (y, idx) = max_pool2d_with_indices(&x, &p)?;
            let go = Tensor::randn(y.shape(), rng)?;
            (
                median_ms("fwd", || {
                    std::hint::black_box(max_pool2d(&x, &p)?);
                    Ok(())
                })?,
                median_ms("bwd", || {
                    std::hint::black_box(max_pool2d_backward(&shape, &idx, &go)?);
                    Ok(())
                })?,
            )
        }
        Some("max_pool3d") => {
            let p = MaxPool3dParams::new(usize_of(case, "k")?)
                .stride(usize_of(case, "stride")?)
                .padding(usize_of(case, "padding")?);
            let (y, idx) = max_pool3d_with_indices(&x, &p)?;
            let go = Tensor::randn(y.shape(), rng)?;
            (
                median_ms("fwd", || {
                    std::hint::black_box(max_pool3d(&x, &p)?);
                    Ok(())
                })?,
                median_ms("bwd", || {
                    std::hint::black_box(max_pool3d_backward(&shape, &idx, &go)?);
                    Ok(())
                })?,
            )
        }
        Some("avg_pool2d") => {
            let p = AvgPool2dParams::new(pair_of(case, "k")?)
                .stride(pair_of(case, "stride")?)
                .padding(pair_of(case, "padding")?);
            let y = avg_pool2d(&x, &p)?;
            let go = Tensor::randn(y.shape(), rng)?;
            (
                median_ms("fwd", || {
                    std::hint::black_box(avg_pool2d(&x, &p)?);
                    Ok(())
                })?,
                median_ms("bwd", || {
                    std::hint::black_box(avg_pool2d_backward(&shape, &go, &p)?);
                    Ok(())
                })?,
            )
        }
        Some("adaptive_avg_pool2d") => {
            let out = pair_of(case, "output_size")?;
            let y = adaptive_avg_pool2d(&x, out)?;
            let go = Tensor::randn(y.shape(), rng)?;
            (
                median_ms("fwd", || {
                    std::hint::black_box(adaptive_avg_pool2d(&x, out)?);
                    Ok(())
                })?,
                median_ms("bwd", || {
                    std::hint::black_box(adaptive_avg_pool2d_backward(&shape, &go)?);
                    Ok(())
                })?,
            )
        }
        other => bail!("case {name}: unknown pool op {other:?}"),
    };
    Ok(vec![
        Timing {
            name: name.clone(),
            pass: "fwd",
            median_ms: fwd,
            gflops: None,
        },
        Timing {
            name,
            pass: "bwd",
            median_ms: bwd,
            gflops: None,
        },
    ])
}

fn parse_algo(s: &str) -> Result<ConvAlgo> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(ConvAlgo::Auto);
    }
    ConvAlgo::ALL
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let names: Vec<&str> = ConvAlgo::ALL.iter().map(|a| a.name()).collect();
            anyhow!("unknown --algo '{s}': one of auto, {}", names.join(", "))
        })
}

/// Run the suite and print the table or JSON lines.
pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads 0 is invalid: must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("setting the rayon thread pool")?;
    }
    if let Some(path) = &args.networks {
        let (filter, reps, json) = (args.filter.as_deref(), args.reps, args.json);
        return rayon::scope(|_| crate::bench_networks::run(path, filter, reps, json));
    }
    let algo = parse_algo(&args.algo)?;
    let pass = match args.pass.as_deref() {
        None => None,
        Some("fwd") => Some("fwd"),
        Some("bwd") => Some("bwd"),
        Some(other) => bail!("--pass {other:?} is invalid: must be fwd or bwd"),
    };
    let text = match &args.suite {
        Some(path) => String::from_utf8(convlab::io::read_bounded("bench", path)?)
            .with_context(|| format!("suite {} is not UTF-8 text", path.display()))?,
        None => DEFAULT_SUITE.to_string(),
    };
    let suite: Value = serde_json::from_str(&text).context("parsing the suite JSON")?;
    let selected = |c: &&Value| {
        args.filter
            .as_deref()
            .is_none_or(|f| c["name"].as_str().unwrap_or("").contains(f))
    };
    let empty = Vec::new();
    let convs = suite["conv2d"].as_array().unwrap_or(&empty);
    let pools = suite["pool"].as_array().unwrap_or(&empty);
    let volumes = suite["conv3d"].as_array().unwrap_or(&empty);
    let resamples = suite["resample"].as_array().unwrap_or(&empty);
    let mut rng = seeded_rng(0);
    if !args.json {
        outln!(
            "{:<22} {:<4} {:>12} {:>9}",
            "name",
            "pass",
            "median ms",
            "GFLOP/s"
        );
    }
    let print = |rows: Vec<Timing>| -> Result<()> {
        for t in rows.into_iter().filter(|t| !t.median_ms.is_nan()) {
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({"name": t.name, "pass": t.pass, "median_ms": t.median_ms, "gflops": t.gflops})
                );
            } else {
                let gf = t.gflops.map_or("-".to_string(), |g| format!("{g:.1}"));
                outln!(
                    "{:<22} {:<4} {:>12.4} {:>9}",
                    t.name,
                    t.pass,
                    t.median_ms,
                    gf
                );
            }
        }
        Ok(())
    };
    let best = args.best;
    let reps = args.reps;
    // The settings are thread-local; the body runs on a pool worker.
    let mut body = || -> Result<()> {
        BEST.with(|b| b.set(best));
        REPS.with(|r| r.set(reps));
        PASS.with(|p| p.set(pass));
        let _forced = force_conv_algo(algo);
        for c in convs.iter().filter(selected) {
            print(conv_case(c, &mut rng)?)?;
        }
        for c in volumes.iter().filter(selected) {
            print(conv3d_case(c, &mut rng)?)?;
        }
        for c in pools.iter().filter(selected) {
            print(pool_case(c, &mut rng)?)?;
        }
        for c in resamples.iter().filter(selected) {
            print(resample_case(c, &mut rng)?)?;
        }
        Ok(())
    };
    // Timed from a pool worker, as PyTorch's calling thread is one of its
    // OpenMP threads: from any other thread each parallel region is a
    // hand-off through rayon's injector and two futex wake-ups (an empty
    // `join` took 14 us here, against 0.04 us from a worker).
    rayon::scope(|_| body())
}
