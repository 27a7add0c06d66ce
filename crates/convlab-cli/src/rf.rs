//! `convlab rf SPEC --input HxW`: per layer, the output size, receptive
//! field, jump and the centre of the first output's field.

use crate::files;
use crate::out::out;
use clap::Args as ClapArgs;
use convlab::receptive_field::{parse_spec, receptive_fields};
use convlab::Pair;
use std::fmt::Write;

#[derive(ClapArgs)]
pub struct Args {
    /// Layers separated by commas, e.g. "conv3, conv3, maxpool2, conv3 s2 p1, conv5 d2".
    /// Heads: convK, maxpoolK, avgpoolK (K = N or HxW), relu, sigmoid, tanh, bn;
    /// options: sN stride, pN / psame padding, dN dilation, ceil (pooling ceil_mode).
    spec: String,
    /// Input size, HxW or N.
    #[arg(long, allow_hyphen_values = true)]
    input: String,
}

/// `3` when both sides agree, `3x5` otherwise.
fn pair(p: Pair) -> String {
    if p.0 == p.1 {
        p.0.to_string()
    } else {
        format!("{}x{}", p.0, p.1)
    }
}

fn centre((r, c): (f64, f64)) -> String {
    // Centres are whole or half pixels; `{}` prints 2 and 2.5 as such.
    if r == c {
        format!("{r}")
    } else {
        format!("{r},{c}")
    }
}

/// The table `run` prints.
pub fn render(spec: &str, input: &str) -> anyhow::Result<String> {
    let (h, w) = files::parse_size(input, "--input")?;
    let layers = parse_spec(spec)?;
    let rows = receptive_fields(&layers, Pair(h, w))?;
    let width = rows
        .iter()
        .map(|r| r.layer.text.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>3}  {:<width$}  {:>9}  {:>5}  {:>5}  {:>7}",
        "#", "layer", "output", "rf", "jump", "centre"
    );
    let _ = writeln!(
        s,
        "{:>3}  {:<width$}  {:>9}  {:>5}  {:>5}  {:>7}",
        0,
        "input",
        format!("{h}x{w}"),
        1,
        1,
        0
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:>3}  {:<width$}  {:>9}  {:>5}  {:>5}  {:>7}",
            i + 1,
            r.layer.text,
            format!("{}x{}", r.out.0, r.out.1),
            pair(r.rf),
            pair(r.jump),
            centre(r.centre)
        );
    }
    s.push_str(
        "rf: input pixels one output sees; jump: input pixels between neighbouring outputs;\n",
    );
    s.push_str("centre: (row, col) of the first output's field, pixel i centred at i.\n");
    Ok(s)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    out!("{}", render(&a.spec, &a.input)?);
    Ok(())
}
