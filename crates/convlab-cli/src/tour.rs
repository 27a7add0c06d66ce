//! `convlab tour`: the chapter, cell by cell, with the book's numbers.

use convlab::{ops, Tensor};

/// The whole tour as text.
pub fn render() -> anyhow::Result<String> {
    let mut out = String::new();
    let x = Tensor::arange(9.0)?.reshape(&[3, 3])?;
    let k = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]])?;
    out += "# 6.2.1 corr2d: the cross-correlation of the book's 3x3 input and 2x2 kernel\n";
    out += &format!("{}\n", ops::corr2d(&x, &k)?);
    Ok(out)
}
