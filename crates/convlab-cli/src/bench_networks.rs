//! `convlab bench --networks FILE`: whole networks of `convlab::models`,
//! inference (eval mode, BatchNorm folded, no graph) or one training step
//! (SGD with momentum), one JSON object or table row per case with the
//! median time and the process's peak resident memory.

use anyhow::{bail, Context, Result};
use convlab::autograd::{no_grad, Var};
use convlab::models::{Arch, Init, ModelConfig};
use convlab::nn::Module;
use convlab::optim::{Optimizer, Sgd};
use convlab::{seeded_rng, Tensor};
use serde_json::Value;
use std::time::Instant;

/// Timed repetitions when `--reps` is not given.
const DEFAULT_REPS: usize = 10;

fn usize_of(case: &Value, key: &str) -> Result<usize> {
    case[key].as_u64().map(|v| v as usize).with_context(|| {
        format!(
            "case {}: '{key}' must be a non-negative integer",
            case["name"]
        )
    })
}

/// The process's peak resident set (VmHWM) in MB, 0 where unknown.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The median of `reps` timed calls of `f` after two warm-up calls, in ms.
fn median_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn run_case(case: &Value, reps: usize) -> Result<f64> {
    let arch: Arch = case["arch"]
        .as_str()
        .context("'arch' must be a string")?
        .parse()?;
    let shape = [
        usize_of(case, "n")?,
        usize_of(case, "c")?,
        usize_of(case, "h")?,
        usize_of(case, "w")?,
    ];
    let config = ModelConfig::new(arch).num_classes(usize_of(case, "num_classes")?);
    let x = Tensor::randn(&shape, &mut seeded_rng(0))?;
    let model = config.build(Init::Seed(0))?;
    match case["mode"].as_str() {
        Some("infer") => {
            // The model's weights are dropped before the folded copy is
            // made, so the process holds them at most twice, briefly.
            let state = convlab::io::state_dict(&model);
            drop(model);
            let net = config.fold_state_dict(state)?;
            let x = Var::new(x);
            median_ms(reps, || {
                no_grad(|| net.forward(&x))?;
                Ok(())
            })
        }
        Some("train") => {
            let sgd = &case["optimizer"]["sgd"];
            let lr = sgd["lr"]
                .as_f64()
                .context("optimizer.sgd.lr must be a number")?;
            let momentum = sgd["momentum"].as_f64().unwrap_or(0.0);
            let mut opt = Sgd::new(model.parameters(), lr)?.momentum(momentum)?;
            let labels: Vec<usize> = (0..shape[0]).map(|i| i % config.num_classes).collect();
            let x = Var::new(x);
            median_ms(reps, || {
                opt.zero_grad();
                model.forward(&x)?.cross_entropy(&labels)?.backward()?;
                opt.step()?;
                Ok(())
            })
        }
        other => bail!(
            "case {}: mode {other:?} must be \"infer\" or \"train\"",
            case["name"]
        ),
    }
}

/// Runs every selected case of the networks file at `path`.
pub fn run(
    path: &std::path::Path,
    filter: Option<&str>,
    reps: Option<usize>,
    json: bool,
) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --networks {}", path.display()))?;
    let suite: Value = serde_json::from_str(&text).context("parsing the networks JSON")?;
    let cases = suite["networks"]
        .as_array()
        .context("the networks file needs a \"networks\" list")?;
    if !json {
        println!("{:<22} {:>12} {:>12}", "name", "median ms", "peak RSS MB");
    }
    for case in cases {
        let name = case["name"].as_str().unwrap_or("");
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let ms =
            run_case(case, reps.unwrap_or(DEFAULT_REPS)).with_context(|| format!("case {name}"))?;
        let rss = peak_rss_mb();
        if json {
            println!(
                "{}",
                serde_json::json!({"name": name, "median_ms": ms, "peak_rss_mb": rss})
            );
        } else {
            println!("{name:<22} {ms:>12.3} {rss:>12.0}");
        }
    }
    Ok(())
}
