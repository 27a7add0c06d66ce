//! `convlab rf SPEC --input HxW`: per layer, the output size, receptive
//! field, jump and the centre of the first output's field, for 1-D, 2-D
//! and 3-D inputs.

use crate::out::out;
use clap::Args as ClapArgs;
use convlab::receptive_field::receptive_fields_nd;
use std::fmt::Write;

#[derive(ClapArgs)]
pub struct Args {
    /// Layers separated by commas, e.g. "conv3, conv3, maxpool2, conv3 s2 p1, conv5 d2".
    /// Heads: convK, maxpoolK, avgpoolK (K = N or HxW), relu, sigmoid, tanh, bn;
    /// options: sN stride, pN / psame padding, dN dilation, ceil (pooling ceil_mode).
    spec: String,
    /// Input size: HxW or N (N x N); DxHxW for a volume; L with --dims 1.
    /// Sizes in the spec are then one number for every axis or one per
    /// axis (conv3x7x7 s1x2x2).
    #[arg(long, allow_hyphen_values = true)]
    input: String,
    /// Spatial axes: 1 (a sequence), 2 (an image) or 3 (a volume); by
    /// default 3 for DxHxW, else 2.
    #[arg(long)]
    dims: Option<usize>,
}

/// `3` when every axis agrees, `3x5` (`3x5x5`) otherwise.
fn sizes(v: &[usize]) -> String {
    if v.windows(2).all(|w| w[0] == w[1]) {
        v[0].to_string()
    } else {
        v.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
    }
}

fn centre(v: &[f64]) -> String {
    // Centres are whole or half pixels; `{}` prints 2 and 2.5 as such.
    if v.windows(2).all(|w| w[0] == w[1]) {
        format!("{}", v[0])
    } else {
        v.iter()
            .map(|c| format!("{c}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `--input` as one size per axis, for `dims` axes (see [`Args`]).
fn input_sizes(input: &str, dims: Option<usize>) -> anyhow::Result<Vec<usize>> {
    let parts: Vec<Option<usize>> = input
        .split(['x', 'X'])
        .map(|t| t.trim().parse::<usize>().ok().filter(|&v| v > 0))
        .collect();
    let bad = || {
        anyhow::anyhow!(
            "--input '{input}' is not L, HxW or DxHxW with positive numbers (e.g. 224x224)"
        )
    };
    let sizes: Vec<usize> = parts.into_iter().collect::<Option<_>>().ok_or_else(bad)?;
    let dims = dims.unwrap_or(if sizes.len() == 3 { 3 } else { 2 });
    match (dims, sizes.len()) {
        (1..=3, n) if n == dims => Ok(sizes),
        (2 | 3, 1) => Ok(vec![sizes[0]; dims]),
        (1..=3, n) => anyhow::bail!("--input '{input}' has {n} sizes but --dims is {dims}"),
        _ => anyhow::bail!("--dims {dims} is invalid: must be 1, 2 or 3"),
    }
}

/// The table `run` prints.
pub fn render(spec: &str, input: &str, dims: Option<usize>) -> anyhow::Result<String> {
    let size = input_sizes(input, dims)?;
    let rows = receptive_fields_nd(spec, &size)?;
    let width = rows.iter().map(|r| r.text.len()).max().unwrap_or(5).max(5);
    let shape = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join("x");
    let out_width = rows
        .iter()
        .map(|r| shape(&r.out).len())
        .max()
        .unwrap_or(0)
        .max(9);
    let column = |f: &dyn Fn(&convlab::receptive_field::LayerFieldNd) -> String| {
        rows.iter().map(|r| f(r).len()).max().unwrap_or(0).max(5)
    };
    let rf_width = column(&|r| sizes(&r.rf));
    let jump_width = column(&|r| sizes(&r.jump));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>3}  {:<width$}  {:>out_width$}  {:>rf_width$}  {:>jump_width$}  {:>7}",
        "#", "layer", "output", "rf", "jump", "centre"
    );
    let _ = writeln!(
        s,
        "{:>3}  {:<width$}  {:>out_width$}  {:>rf_width$}  {:>jump_width$}  {:>7}",
        0,
        "input",
        shape(&size),
        1,
        1,
        0
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:>3}  {:<width$}  {:>out_width$}  {:>rf_width$}  {:>jump_width$}  {:>7}",
            i + 1,
            r.text,
            shape(&r.out),
            sizes(&r.rf),
            sizes(&r.jump),
            centre(&r.centre)
        );
    }
    s.push_str(
        "rf: input pixels one output sees; jump: input pixels between neighbouring outputs;\n",
    );
    let axes = match size.len() {
        1 => "(position)",
        2 => "(row, col)",
        _ => "(depth, row, col)",
    };
    let _ = writeln!(
        s,
        "centre: {axes} of the first output's field, pixel i centred at i."
    );
    Ok(s)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    out!("{}", render(&a.spec, &a.input, a.dims)?);
    Ok(())
}
