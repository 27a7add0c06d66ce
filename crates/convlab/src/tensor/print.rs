//! PyTorch's tensor printing (`torch._tensor_str`, default print options), so
//! output can be held next to the book: `tensor([[19., 25.],\n        [37., 43.]])`.
//!
//! Rules reproduced: integer mode (`19.`) when every finite value is whole;
//! fixed 4 decimals otherwise; scientific (`1.0000e+03`) when the nonzero
//! finite magnitudes span more than 1000x, exceed 1e8, or (fixed mode) go
//! below 1e-4; right-aligned to a common width; 80-column wrapping; more
//! than 1000 values summarised with 3 edge items and `...`.

use crate::tensor::Tensor;

const PRECISION: usize = 4;
const LINEWIDTH: usize = 80;
const THRESHOLD: usize = 1000;
const EDGEITEMS: usize = 3;

struct Formatter {
    int_mode: bool,
    sci_mode: bool,
    max_width: usize,
}

fn sci(v: f32, precision: usize) -> String {
    if !v.is_finite() {
        return plain_nonfinite(v);
    }
    let s = format!("{:.*e}", precision, v as f64);
    // Rust prints `1.0000e3`; Python prints `1.0000e+03`.
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", e.abs())
}

fn plain_nonfinite(v: f32) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

impl Formatter {
    fn new(values: &[f32]) -> Formatter {
        let mut f = Formatter {
            int_mode: true,
            sci_mode: false,
            max_width: 1,
        };
        let nz: Vec<f32> = values
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v != 0.0)
            .collect();
        if nz.is_empty() {
            return f;
        }
        let min = nz
            .iter()
            .map(|v| v.abs() as f64)
            .fold(f64::INFINITY, f64::min);
        let max = nz.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
        f.int_mode = nz.iter().all(|v| v.ceil() == *v);
        let widths: Box<dyn Fn(f32) -> usize> = if f.int_mode {
            if max / min > 1000.0 || max > 1.0e8 {
                f.sci_mode = true;
                Box::new(|v| sci(v, PRECISION).len())
            } else {
                Box::new(|v| format!("{v:.0}").len() + 1)
            }
        } else if max / min > 1000.0 || max > 1.0e8 || min < 1.0e-4 {
            f.sci_mode = true;
            Box::new(|v| sci(v, PRECISION).len())
        } else {
            Box::new(|v| format!("{v:.PRECISION$}").len())
        };
        for &v in &nz {
            f.max_width = f.max_width.max(widths(v));
        }
        f
    }

    fn format(&self, v: f32) -> String {
        let s = if !v.is_finite() {
            plain_nonfinite(v)
        } else if self.sci_mode {
            sci(v, PRECISION)
        } else if self.int_mode {
            format!("{v:.0}.")
        } else {
            format!("{v:.PRECISION$}")
        };
        format!("{s:>width$}", width = self.max_width)
    }
}

/// How one element prints, padded to a common width.
trait ElementFormat<T> {
    fn width(&self) -> usize;
    fn format(&self, v: T) -> String;
}

impl ElementFormat<f32> for Formatter {
    fn width(&self) -> usize {
        self.max_width
    }
    fn format(&self, v: f32) -> String {
        Formatter::format(self, v)
    }
}

/// Integers (PyTorch's int64 tensors) print right-aligned, without a dot.
struct IntFormatter {
    width: usize,
}

impl ElementFormat<usize> for IntFormatter {
    fn width(&self) -> usize {
        self.width
    }
    fn format(&self, v: usize) -> String {
        format!("{v:>width$}", width = self.width)
    }
}

/// The values a summarised print shows (edge items of every dimension).
fn summarized_values<T: Copy>(shape: &[usize], data: &[T], out: &mut Vec<T>) {
    match shape {
        [] => out.extend_from_slice(data),
        [d0, rest @ ..] => {
            let inner: usize = rest.iter().product();
            let rows: Vec<usize> = if *d0 > 2 * EDGEITEMS {
                (0..EDGEITEMS).chain(d0 - EDGEITEMS..*d0).collect()
            } else {
                (0..*d0).collect()
            };
            for i in rows {
                summarized_values(rest, &data[i * inner..(i + 1) * inner], out);
            }
        }
    }
}

fn vector_str<T: Copy>(
    data: &[T],
    indent: usize,
    summarize: bool,
    f: &impl ElementFormat<T>,
) -> String {
    let element_length = f.width() + 2;
    let per_line = ((LINEWIDTH.saturating_sub(indent)) / element_length).max(1);
    let items: Vec<String> = if summarize && data.len() > 2 * EDGEITEMS {
        let n = data.len();
        data[..EDGEITEMS]
            .iter()
            .map(|&v| f.format(v))
            .chain(std::iter::once(" ...".to_string()))
            .chain(data[n - EDGEITEMS..].iter().map(|&v| f.format(v)))
            .collect()
    } else {
        data.iter().map(|&v| f.format(v)).collect()
    };
    let lines: Vec<String> = items.chunks(per_line).map(|c| c.join(", ")).collect();
    format!(
        "[{}]",
        lines.join(&format!(",\n{}", " ".repeat(indent + 1)))
    )
}

fn tensor_str<T: Copy>(
    shape: &[usize],
    data: &[T],
    indent: usize,
    summarize: bool,
    f: &impl ElementFormat<T>,
) -> String {
    match shape {
        [] => f.format(data[0]).trim_start().to_string(),
        [_] => vector_str(data, indent, summarize, f),
        [d0, rest @ ..] => {
            let inner: usize = rest.iter().product();
            let sub = |i: usize| {
                tensor_str(
                    rest,
                    &data[i * inner..(i + 1) * inner],
                    indent + 1,
                    summarize,
                    f,
                )
            };
            let slices: Vec<String> = if summarize && *d0 > 2 * EDGEITEMS {
                (0..EDGEITEMS)
                    .map(sub)
                    .chain(std::iter::once("...".to_string()))
                    .chain((d0 - EDGEITEMS..*d0).map(sub))
                    .collect()
            } else {
                (0..*d0).map(sub).collect()
            };
            let sep = format!(
                ",{}{}",
                "\n".repeat(shape.len() - 1),
                " ".repeat(indent + 1)
            );
            format!("[{}]", slices.join(&sep))
        }
    }
}

/// `t` as PyTorch prints it, with `suffix` (e.g. `", requires_grad=True"`)
/// before the closing parenthesis.
pub fn format_tensor(t: &Tensor, suffix: &str) -> String {
    let shape = t.shape();
    let data = t.data();
    if data.is_empty() {
        return empty_str(shape, suffix);
    }
    let summarize = data.len() > THRESHOLD;
    let formatter = if summarize {
        let mut vals = Vec::new();
        summarized_values(shape, data, &mut vals);
        Formatter::new(&vals)
    } else {
        Formatter::new(data)
    };
    let indent = "tensor(".len();
    format!(
        "tensor({}{suffix})",
        tensor_str(shape, data, indent, summarize, &formatter)
    )
}

/// An empty tensor: `tensor([])`, with its size unless it is 1-D.
fn empty_str(shape: &[usize], suffix: &str) -> String {
    let size = if shape.len() == 1 {
        String::new()
    } else {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let trailing = if dims.len() == 1 { "," } else { "" };
        format!(", size=({}{trailing})", dims.join(", "))
    };
    format!("tensor([]{size}{suffix})")
}

/// Integer indices of `shape` as PyTorch prints an int64 tensor
/// (`tensor([2, 0, 1])`).
pub(crate) fn format_indices(shape: &[usize], data: &[usize]) -> String {
    if data.is_empty() {
        return empty_str(shape, ", dtype=torch.int64");
    }
    let summarize = data.len() > THRESHOLD;
    let shown = if summarize {
        let mut vals = Vec::new();
        summarized_values(shape, data, &mut vals);
        vals
    } else {
        data.to_vec()
    };
    let width = shown.iter().map(|v| v.to_string().len()).max().unwrap_or(1);
    let indent = "tensor(".len();
    format!(
        "tensor({})",
        tensor_str(shape, data, indent, summarize, &IntFormatter { width })
    )
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    fn t(data: &[f32], shape: &[usize]) -> String {
        Tensor::from_slice(data, shape).unwrap().to_string()
    }

    // Expected strings below were printed by PyTorch 2.x for the same values.
    #[test]
    fn integer_mode() {
        assert_eq!(
            t(&[19., 25., 37., 43.], &[2, 2]),
            "tensor([[19., 25.],\n        [37., 43.]])"
        );
        assert_eq!(t(&[0., -1., 1.], &[3]), "tensor([ 0., -1.,  1.])");
        assert_eq!(t(&[0., 0.], &[2]), "tensor([0., 0.])");
        assert_eq!(t(&[5.], &[]), "tensor(5.)");
    }

    #[test]
    fn fixed_and_scientific() {
        assert_eq!(t(&[0.5, -1.25], &[2]), "tensor([ 0.5000, -1.2500])");
        assert_eq!(t(&[1e-5, 1.0], &[2]), "tensor([1.0000e-05, 1.0000e+00])");
        assert_eq!(t(&[1.0, 2000.0], &[2]), "tensor([1.0000e+00, 2.0000e+03])");
        assert_eq!(t(&[f32::NAN, 1.0], &[2]), "tensor([nan, 1.])");
    }

    #[test]
    fn three_dims_and_empty() {
        let s = t(&(0..8).map(|v| v as f32).collect::<Vec<_>>(), &[2, 2, 2]);
        assert_eq!(
            s,
            "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]])"
        );
        assert_eq!(t(&[], &[0]), "tensor([])");
        assert_eq!(t(&[], &[0, 3]), "tensor([], size=(0, 3))");
    }

    #[test]
    fn summarised_and_wrapped() {
        let v: Vec<f32> = (1000..3000).map(|v| v as f32).collect();
        assert_eq!(
            t(&v, &[2000]),
            "tensor([1000., 1001., 1002.,  ..., 2997., 2998., 2999.])"
        );
        // torch.arange(2000.): the edge values span > 1000x, so scientific, wrapped at 80.
        let v: Vec<f32> = (0..2000).map(|v| v as f32).collect();
        assert_eq!(
            t(&v, &[2000]),
            "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n        1.9990e+03])"
        );
        let v: Vec<f32> = (0..20).map(|v| v as f32).collect();
        assert_eq!(
            t(&v, &[20]),
            "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n        14., 15., 16., 17., 18., 19.])"
        );
    }
}
