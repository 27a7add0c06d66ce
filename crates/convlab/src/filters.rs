//! A bank of classic image kernels by name, and a strict parser for kernel
//! literals, so a command line (or a test) can say `sobel-x`,
//! `gaussian:1.5` or `"[[1,-1],[2,0]]"` and get the `[kh, kw]` tensor.
//!
//! Every kernel here is meant for [`crate::ops::conv2d()`], which computes a
//! cross-correlation (as PyTorch does): `sobel-x` responds positively where
//! the image gets brighter to the right.
//!
//! ```
//! use convlab::filters::{kernel_from_spec, named_kernel, parse_kernel};
//! let k = named_kernel("sobel-x")?;
//! assert_eq!(k.data(), &[-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0]);
//! assert_eq!(parse_kernel("[[1, -1], [2, 0]]")?.shape(), &[2, 2]);
//! assert_eq!(kernel_from_spec("gaussian:1")?.shape(), &[7, 7]);
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{Dims, Error, Result};
use crate::io;
use crate::tensor::Tensor;
use std::path::Path;

/// The largest kernel side the parametrised kernels (`gaussian:SIGMA`,
/// `box:N`) build: far larger than any useful blur, small enough that a typo
/// such as `box:1e9` is an error rather than an out-of-memory abort.
pub const MAX_KERNEL_SIDE: usize = 1001;

/// The names [`named_kernel`] knows, as they are written (parametrised ones
/// with their parameter's name).
pub const KERNEL_NAMES: [&str; 12] = [
    "edge-v",
    "edge-h",
    "sobel-x",
    "sobel-y",
    "scharr-x",
    "scharr-y",
    "laplacian",
    "gaussian:SIGMA",
    "box:N",
    "sharpen",
    "identity",
    "emboss",
];

fn unknown(name: &str) -> Error {
    Error::param(
        "kernel",
        "name",
        format!(
            "'{}' is unknown (known: {}; or a literal such as \"[[1,-1]]\", or a .npy file)",
            name.escape_debug(),
            KERNEL_NAMES.join(", ")
        ),
    )
}

/// The kernel called `name` (see [`KERNEL_NAMES`]), as a `[kh, kw]` tensor.
///
/// - `edge-v` `[[1, -1]]` (vertical edges, the chapter's detector) and
///   `edge-h` `[[1], [-1]]`;
/// - `sobel-x`, `sobel-y`, `scharr-x`, `scharr-y`: 3x3 derivative
///   filters (x: positive where brightness grows to the right; y: downwards);
/// - `laplacian` (4-neighbour), `sharpen` (identity + negative Laplacian),
///   `emboss`, `identity`;
/// - `gaussian:SIGMA`: side `2*ceil(3*SIGMA)+1`, sampled `exp(-r²/2σ²)`,
///   normalised to sum 1;
/// - `box:N`: an `N`x`N` mean filter.
///
/// # Errors
/// [`Error::Param`] for an unknown name, or a parameter that is missing,
/// not a positive finite number, or makes the kernel wider than
/// [`MAX_KERNEL_SIDE`].
pub fn named_kernel(name: &str) -> Result<Tensor> {
    let rows3 = |r: [[f32; 3]; 3]| Tensor::from_rows(&r);
    let lower = name.trim().to_ascii_lowercase();
    let (base, arg) = match lower.split_once(':') {
        Some((b, a)) => (b, Some(a)),
        None => (lower.as_str(), None),
    };
    let no_arg = |t: Result<Tensor>| match arg {
        None => t,
        Some(_) => Err(Error::param(
            "kernel",
            "name",
            format!("'{}': {base} takes no parameter", name.escape_debug()),
        )),
    };
    match base {
        "edge-v" => no_arg(Tensor::from_rows(&[[1.0, -1.0]])),
        "edge-h" => no_arg(Tensor::from_rows(&[[1.0], [-1.0]])),
        "sobel-x" => no_arg(rows3([
            [-1.0, 0.0, 1.0],
            [-2.0, 0.0, 2.0],
            [-1.0, 0.0, 1.0],
        ])),
        "sobel-y" => no_arg(rows3([
            [-1.0, -2.0, -1.0],
            [0.0, 0.0, 0.0],
            [1.0, 2.0, 1.0],
        ])),
        "scharr-x" => no_arg(rows3([
            [-3.0, 0.0, 3.0],
            [-10.0, 0.0, 10.0],
            [-3.0, 0.0, 3.0],
        ])),
        "scharr-y" => no_arg(rows3([
            [-3.0, -10.0, -3.0],
            [0.0, 0.0, 0.0],
            [3.0, 10.0, 3.0],
        ])),
        "laplacian" => no_arg(rows3([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])),
        "sharpen" => no_arg(rows3([
            [0.0, -1.0, 0.0],
            [-1.0, 5.0, -1.0],
            [0.0, -1.0, 0.0],
        ])),
        "emboss" => no_arg(rows3([
            [-2.0, -1.0, 0.0],
            [-1.0, 1.0, 1.0],
            [0.0, 1.0, 2.0],
        ])),
        "identity" => no_arg(rows3([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])),
        "gaussian" => gaussian(parameter(name, "gaussian", "SIGMA", arg)?),
        "box" => {
            let n = parameter(name, "box", "N", arg)?;
            if n.fract() != 0.0 {
                return Err(Error::param(
                    "kernel",
                    "box",
                    format!("N in '{}' must be a whole number", name.escape_debug()),
                ));
            }
            let n = side("box", n)?;
            Tensor::full(&[n, n], 1.0 / (n * n) as f32)
        }
        _ => Err(unknown(name)),
    }
}

/// The positive finite number after `base:`.
fn parameter(name: &str, base: &str, what: &str, arg: Option<&str>) -> Result<f64> {
    let bad = |why: &str| {
        Error::param(
            "kernel",
            "name",
            format!("'{}': {why} (write {base}:{what})", name.escape_debug()),
        )
    };
    let arg = arg.ok_or_else(|| bad(&format!("{what} is missing")))?;
    let v: f64 = arg
        .trim()
        .parse()
        .map_err(|_| bad(&format!("{what} '{}' is not a number", arg.escape_debug())))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(bad(&format!("{what} must be a positive number")));
    }
    Ok(v)
}

/// A side length `v` (already known positive and finite) as `usize`, at most
/// [`MAX_KERNEL_SIDE`].
fn side(kind: &'static str, v: f64) -> Result<usize> {
    if v > MAX_KERNEL_SIDE as f64 {
        return Err(Error::param(
            "kernel",
            kind,
            format!("side {v} is larger than the limit {MAX_KERNEL_SIDE}"),
        ));
    }
    Ok(v as usize)
}

/// The normalised Gaussian of standard deviation `sigma`, side
/// `2*ceil(3σ)+1` (3σ holds 99.7 % of the mass, scipy's and OpenCV's habit).
fn gaussian(sigma: f64) -> Result<Tensor> {
    let radius = (3.0 * sigma).ceil();
    let n = side("gaussian", 2.0 * radius + 1.0)?;
    let r = (n / 2) as f64;
    // Separable: the 2-D kernel is the outer product of the 1-D one; f64 so
    // the normalisation is exact to f32.
    let g: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - r;
            (-x * x / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f64 = g.iter().sum();
    let total = total * total;
    let data = (0..n * n)
        .map(|i| (g[i / n] * g[i % n] / total) as f32)
        .collect();
    Tensor::from_vec(data, &[n, n])
}

/// Parses a kernel literal: a rectangular, non-empty list of rows of finite
/// numbers, `[[1, -1], [2, 0]]` (whitespace allowed anywhere between tokens).
///
/// # Errors
/// [`Error::Param`] naming the column of the first problem: a missing
/// bracket or comma, something that is not a number, rows of different
/// lengths, an empty list, trailing text.
pub fn parse_kernel(literal: &str) -> Result<Tensor> {
    let mut p = Parser {
        s: literal.as_bytes(),
        i: 0,
        text: literal,
    };
    p.ws();
    p.expect(b'[')?;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    loop {
        p.ws();
        let row_col = p.i;
        let row = p.row()?;
        if let Some(first) = rows.first() {
            if row.len() != first.len() {
                return Err(p.error_at(
                    row_col,
                    &format!(
                        "row {} has {} values but row 0 has {}",
                        rows.len(),
                        row.len(),
                        first.len()
                    ),
                ));
            }
        }
        rows.push(row);
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b']') => break,
            _ => return Err(p.error_at(p.i.saturating_sub(1), "expected ',' or ']' after a row")),
        }
    }
    p.ws();
    if p.i < p.s.len() {
        return Err(p.error_at(p.i, "unexpected text after the closing ']'"));
    }
    Tensor::from_rows(&rows)
}

/// A byte cursor over the literal; errors quote it with a 1-based column.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn error_at(&self, i: usize, why: &str) -> Error {
        const MAX: usize = 80;
        let shown: String = self.text.chars().take(MAX).collect();
        let more = if self.text.chars().count() > MAX {
            "..."
        } else {
            ""
        };
        Error::param(
            "kernel",
            "literal",
            format!(
                "'{}{more}' at column {}: {why} (write rows of numbers, e.g. [[1,-1],[2,0]])",
                shown.escape_debug(),
                i + 1
            ),
        )
    }
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.i).copied();
        if c.is_some() {
            self.i += 1;
        }
        c
    }
    fn expect(&mut self, c: u8) -> Result<()> {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else if self.i >= self.s.len() {
            Err(self.error_at(
                self.i,
                &format!("expected '{}' but the text ended", c as char),
            ))
        } else {
            Err(self.error_at(self.i, &format!("expected '{}'", c as char)))
        }
    }
    /// `[n, n, ...]`, at least one number.
    fn row(&mut self) -> Result<Vec<f32>> {
        self.expect(b'[')?;
        let mut row = Vec::new();
        loop {
            self.ws();
            row.push(self.number()?);
            self.ws();
            match self.next() {
                Some(b',') => continue,
                Some(b']') => return Ok(row),
                None => return Err(self.error_at(self.i, "expected ']' but the text ended")),
                _ => return Err(self.error_at(self.i - 1, "expected ',' or ']' after a number")),
            }
        }
    }
    fn number(&mut self) -> Result<f32> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
        {
            self.i += 1;
        }
        if start == self.i {
            let why = match self.s.get(start) {
                None => "expected a number but the text ended",
                Some(b']') => "expected a number (empty rows are not allowed)",
                Some(_) => "expected a number",
            };
            return Err(self.error_at(start, why));
        }
        // The token holds only ASCII, so the slice is valid UTF-8.
        let tok = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        match tok.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.error_at(start, &format!("'{tok}' does not fit in an f32"))),
            Err(_) => Err(self.error_at(start, &format!("'{tok}' is not a number"))),
        }
    }
}

/// The kernel a user means by `spec`: a `.npy` file (any shape whose leading
/// dimensions are 1, such as `[1, 1, 3, 3]`, is taken as its last two), a
/// literal (starts with `[`), or a name from [`named_kernel`].
///
/// # Errors
/// As [`named_kernel`] and [`parse_kernel`]; [`Error::Io`] when the `.npy`
/// file cannot be read; [`Error::Shape`] when it is not a single 2-D kernel
/// or has a non-finite value.
pub fn kernel_from_spec(spec: &str) -> Result<Tensor> {
    let trimmed = spec.trim();
    if trimmed.to_ascii_lowercase().ends_with(".npy") {
        let path = Path::new(trimmed);
        let t = io::read_npy(path)?;
        let shape = t.shape().to_vec();
        let n = shape.len();
        if n < 2 || shape[..n - 2].iter().any(|&d| d != 1) || t.numel() == 0 {
            return Err(Error::shape(
                "kernel",
                format!(
                    "{} holds shape {}; a kernel must be 2-D [kh, kw] (leading 1s allowed) and non-empty",
                    path.display(),
                    Dims(&shape)
                ),
            ));
        }
        if t.data().iter().any(|v| !v.is_finite()) {
            return Err(Error::shape(
                "kernel",
                format!("{} holds a NaN or infinite value", path.display()),
            ));
        }
        return t.into_shape(&shape[n - 2..]);
    }
    if trimmed.starts_with('[') {
        return parse_kernel(trimmed);
    }
    named_kernel(trimmed)
}

/// Filters an image with one 2-D `kernel`, each channel on its own:
/// `[H, W]` gives `[OH, OW]`, `[C, H, W]` gives `[C, OH, OW]`. This is
/// [`conv2d`] (a cross-correlation, PyTorch's semantics, any padding, mode,
/// stride and dilation in `p`) with the channels as the batch, so a colour
/// image is filtered per channel rather than summed across channels as a
/// `Conv2d(3, 1, k)` layer would.
///
/// ```
/// use convlab::{filters, ops::Conv2dParams, Tensor, Padding};
/// let x = Tensor::arange(12.0)?.reshape(&[3, 4])?;
/// let k = filters::named_kernel("edge-v")?;
/// let y = filters::apply(&x, &k, &Conv2dParams::new())?;
/// assert_eq!(y.shape(), &[3, 3]);
/// assert!(y.data().iter().all(|&v| v == -1.0));
/// let same = filters::apply(&x, &k, &Conv2dParams::new().padding(Padding::Same))?;
/// assert_eq!(same.shape(), &[3, 4]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// An image that is not 2-D or 3-D, or a kernel that is not 2-D
/// ([`Error::Shape`]); everything [`conv2d`] rejects (a kernel larger than
/// the padded image, a zero stride, `same` with a stride, ...), with
/// `conv2d` named in the message. `p.groups` must be 1.
///
/// [`conv2d`]: crate::ops::conv2d()
pub fn apply(image: &Tensor, kernel: &Tensor, p: &crate::ops::Conv2dParams) -> Result<Tensor> {
    check_image(image)?;
    apply_owned(image.clone(), kernel, p)
}

/// [`apply`], consuming `image`: no copy of it is made, which on an
/// 8000x8000 colour image is 768 MB less peak memory.
///
/// # Errors
/// As [`apply`].
pub fn apply_owned(image: Tensor, kernel: &Tensor, p: &crate::ops::Conv2dParams) -> Result<Tensor> {
    let (c, h, w) = check_image(&image)?;
    let gray = image.ndim() == 2;
    let [kh, kw] = kernel.dims2("filter")?;
    let x = image.into_shape(&[c, 1, h, w])?;
    let k = kernel.reshape(&[1, 1, kh, kw])?;
    let y = crate::ops::conv2d(&x, &k, None, p)?;
    drop(x);
    let (oh, ow) = (y.shape()[2], y.shape()[3]);
    if gray {
        y.into_shape(&[oh, ow])
    } else {
        y.into_shape(&[c, oh, ow])
    }
}

/// `(c, h, w)` of an `[H, W]` or `[C, H, W]` image.
fn check_image(image: &Tensor) -> Result<(usize, usize, usize)> {
    match *image.shape() {
        [h, w] => Ok((1, h, w)),
        [c, h, w] => Ok((c, h, w)),
        _ => Err(Error::shape(
            "filter",
            format!(
                "image must be [H, W] or [C, H, W], got {}",
                Dims(image.shape())
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_filters_channels_independently() {
        use crate::ops::Conv2dParams;
        let gray = Tensor::arange(20.0).unwrap().reshape(&[4, 5]).unwrap();
        let rgb = Tensor::stack(&[&gray, &gray.scale(2.0), &gray.scale(-1.0)], 0).unwrap();
        let k = named_kernel("sobel-x").unwrap();
        let y1 = apply(&gray, &k, &Conv2dParams::new()).unwrap();
        // d/dx of a ramp with slope 1: (1+2+1)*2 = 8 everywhere.
        assert_eq!(y1.shape(), &[2, 3]);
        assert!(y1.data().iter().all(|&v| v == 8.0));
        let y3 = apply(&rgb, &k, &Conv2dParams::new()).unwrap();
        assert_eq!(y3.shape(), &[3, 2, 3]);
        assert_eq!(&y3.data()[6..12], y1.scale(2.0).data());
        assert_eq!(&y3.data()[12..], y1.scale(-1.0).data());
        let e = apply(
            &gray,
            &named_kernel("gaussian:2").unwrap(),
            &Conv2dParams::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("conv2d: kernel height 13 is larger"), "{e}");
        assert!(apply(&Tensor::zeros(&[5]).unwrap(), &k, &Conv2dParams::new()).is_err());
    }

    #[test]
    fn every_listed_name_builds() {
        for name in KERNEL_NAMES {
            let name = name.replace("SIGMA", "1.5").replace(":N", ":3");
            let k = named_kernel(&name).unwrap();
            assert_eq!(k.ndim(), 2, "{name}");
        }
    }

    #[test]
    fn derivative_kernels_are_transposes_and_sum_to_zero() {
        for (x, y) in [
            ("sobel-x", "sobel-y"),
            ("scharr-x", "scharr-y"),
            ("edge-v", "edge-h"),
        ] {
            let kx = named_kernel(x).unwrap();
            assert_eq!(kx.t().unwrap(), named_kernel(y).unwrap(), "{x}");
            assert_eq!(kx.data().iter().sum::<f32>(), 0.0);
        }
        assert_eq!(
            named_kernel("laplacian")
                .unwrap()
                .data()
                .iter()
                .sum::<f32>(),
            0.0
        );
        assert_eq!(
            named_kernel("sharpen").unwrap().data().iter().sum::<f32>(),
            1.0
        );
    }

    #[test]
    fn gaussian_size_normalisation_and_symmetry() {
        let g = named_kernel("gaussian:1.5").unwrap();
        // 2*ceil(4.5)+1 = 11.
        assert_eq!(g.shape(), &[11, 11]);
        let sum: f32 = g.data().iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        assert_eq!(g.t().unwrap(), g);
        // Peak in the centre, ratio to its neighbour exp(-1/(2σ²)).
        let c = g.get(&[5, 5]).unwrap();
        let n = g.get(&[5, 6]).unwrap();
        assert!((n / c - (-1.0f32 / 4.5).exp()).abs() < 1e-6);
        assert_eq!(named_kernel("gaussian:0.1").unwrap().shape(), &[3, 3]);
    }

    #[test]
    fn box_is_a_mean() {
        let b = named_kernel("box:4").unwrap();
        assert_eq!(b.shape(), &[4, 4]);
        assert!(b.data().iter().all(|&v| v == 1.0 / 16.0));
    }

    #[test]
    fn bad_names_and_parameters_are_errors() {
        for (spec, needle) in [
            ("sobel", "name 'sobel' is unknown"),
            ("gaussian", "SIGMA is missing"),
            ("gaussian:abc", "'abc' is not a number"),
            ("gaussian:-1", "must be a positive number"),
            ("gaussian:nan", "must be a positive number"),
            ("gaussian:1000", "larger than the limit 1001"),
            ("box:0", "must be a positive number"),
            ("box:2.5", "whole number"),
            ("box:1e9", "larger than the limit"),
            ("sobel-x:3", "'sobel-x:3': sobel-x takes no parameter"),
        ] {
            let e = named_kernel(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn literals_parse_strictly() {
        let k = parse_kernel(" [ [1, -1.5e0] ,[ 2,0 ] ] ").unwrap();
        assert_eq!(k.shape(), &[2, 2]);
        assert_eq!(k.data(), &[1.0, -1.5, 2.0, 0.0]);
        assert_eq!(parse_kernel("[[3]]").unwrap().shape(), &[1, 1]);
        for (lit, needle) in [
            ("[[1,-1],[2,0]", "expected ',' or ']' after a row"),
            (
                "[[1,-1],[2]]",
                "at column 9: row 1 has 1 values but row 0 has 2",
            ),
            ("[[1,,2]]", "at column 5: expected a number"),
            ("[[]]", "empty rows are not allowed"),
            ("[]", "expected '['"),
            ("[1,2]", "at column 2: expected '['"),
            ("[[1 2]]", "at column 5: expected ',' or ']' after a number"),
            ("[[1,x]]", "at column 5: expected a number"),
            ("[[1,1e99]]", "does not fit in an f32"),
            ("[[1,--2]]", "'--2' is not a number"),
            ("[[1]] x", "unexpected text"),
            ("[[1", "expected ']' but the text ended"),
            ("", "expected '[' but the text ended"),
        ] {
            let e = parse_kernel(lit).unwrap_err().to_string();
            assert!(e.contains(needle), "{lit:?}: {e}");
        }
    }

    #[test]
    fn spec_dispatches_on_form() {
        assert_eq!(
            kernel_from_spec("[[1,-1]]").unwrap(),
            named_kernel("edge-v").unwrap()
        );
        assert_eq!(
            kernel_from_spec(" Sobel-X ").unwrap(),
            named_kernel("sobel-x").unwrap()
        );
        let e = kernel_from_spec("/nonexistent/k.npy")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn npy_kernels_drop_leading_ones_only() {
        let dir = std::env::temp_dir().join(format!("convlab-filters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("k.npy");
        io::write_npy(
            &ok,
            &Tensor::arange(6.0).unwrap().reshape(&[1, 1, 2, 3]).unwrap(),
        )
        .unwrap();
        assert_eq!(
            kernel_from_spec(ok.to_str().unwrap()).unwrap().shape(),
            &[2, 3]
        );
        let bad = dir.join("bad.npy");
        io::write_npy(&bad, &Tensor::zeros(&[2, 1, 3, 3]).unwrap()).unwrap();
        let e = kernel_from_spec(bad.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 1, 3, 3]"), "{e}");
        let nan = dir.join("nan.npy");
        io::write_npy(&nan, &Tensor::full(&[2, 2], f32::NAN).unwrap()).unwrap();
        assert!(kernel_from_spec(nan.to_str().unwrap()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
