//! `F.unfold` (im2col) and `F.fold` (col2im): every sliding window laid out
//! as a column, and back. Unfold turns a convolution into one matrix
//! product; fold is its adjoint, so each is the other's backward.
//!
//! Row `(c * kh + ki) * kw + kj` of the unfolded `[N, C*kh*kw, L]` tensor
//! holds tap `(ki, kj)` of channel `c` for each of the `L = oh * ow` windows
//! (PyTorch's order).
//!
//! ```
//! use convlab::{ops::unfold::{unfold, UnfoldParams}, Tensor};
//! let x = Tensor::arange(9.0)?.reshape(&[1, 1, 3, 3])?;
//! let cols = unfold(&x, &UnfoldParams::new(2))?;
//! assert_eq!(cols.shape(), &[1, 4, 4]);
//! // Row 0 is the top-left tap of the four 2x2 windows.
//! assert_eq!(&cols.data()[..4], &[0.0, 1.0, 3.0, 4.0]);
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::ops::pool::split_input;
use crate::shape::{check_positive, conv_out_len, Pair};
use crate::tensor::Tensor;

/// Parameters of [`unfold`] and [`fold`], PyTorch's `nn.Unfold` / `nn.Fold`.
///
/// ```
/// use convlab::{ops::unfold::UnfoldParams, Pair};
/// let p = UnfoldParams::new((3, 2)).stride((2, 1)).padding((1, 0)).dilation((1, 2));
/// assert_eq!(p.dilation, Pair(1, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnfoldParams {
    /// Window size `(kh, kw)`.
    pub kernel_size: Pair,
    /// Spacing between the taps of a window (default 1).
    pub dilation: Pair,
    /// Zero padding on both sides (default 0).
    pub padding: Pair,
    /// Step between windows (default 1).
    pub stride: Pair,
}

impl UnfoldParams {
    /// A `kernel_size` window with dilation 1, padding 0, stride 1.
    pub fn new(kernel_size: impl Into<Pair>) -> Self {
        UnfoldParams {
            kernel_size: kernel_size.into(),
            dilation: Pair(1, 1),
            padding: Pair(0, 0),
            stride: Pair(1, 1),
        }
    }
    /// Set the dilation.
    pub fn dilation(mut self, dilation: impl Into<Pair>) -> Self {
        self.dilation = dilation.into();
        self
    }
    /// Set the padding.
    pub fn padding(mut self, padding: impl Into<Pair>) -> Self {
        self.padding = padding.into();
        self
    }
    /// Set the stride.
    pub fn stride(mut self, stride: impl Into<Pair>) -> Self {
        self.stride = stride.into();
        self
    }

    /// The validated geometry for an image of `image_shape`
    /// (`[N, C, H, W]` or `[C, H, W]`), with `op` in any error.
    ///
    /// # Errors
    /// Zero kernel, stride or dilation; an image that is not 3-D/4-D or
    /// has an empty C, H or W; a kernel larger than the padded image;
    /// sizes that overflow.
    pub fn geometry(&self, op: &'static str, image_shape: &[usize]) -> Result<UnfoldGeometry> {
        check_positive(op, "kernel_size", self.kernel_size)?;
        check_positive(op, "stride", self.stride)?;
        check_positive(op, "dilation", self.dilation)?;
        let (batched, n, c, [_, h, w]) = split_input(op, "input", image_shape, 2)?;
        let (k, s, p, d) = (self.kernel_size, self.stride, self.padding, self.dilation);
        let oh = conv_out_len(op, "height", h, k.0, s.0, p.0, p.0, d.0)?;
        let ow = conv_out_len(op, "width", w, k.1, s.1, p.1, p.1, d.1)?;
        numel_or_err(op, &[n, c, k.0, k.1, oh, ow])?;
        Ok(UnfoldGeometry {
            batched,
            n,
            c,
            h,
            w,
            kh: k.0,
            kw: k.1,
            sh: s.0,
            sw: s.1,
            ph: p.0,
            pw: p.1,
            dh: d.0,
            dw: d.1,
            oh,
            ow,
        })
    }
}

/// The validated geometry of one unfold/fold pair: image
/// `[n, c, h, w]`, columns `[n, c*kh*kw, oh*ow]`. All size products fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnfoldGeometry {
    /// `false` for an unbatched image `(C, H, W)` / columns `(C*kh*kw, L)`.
    pub batched: bool,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl UnfoldGeometry {
    /// The image shape (unfold's input, fold's output).
    pub fn image_shape(&self) -> Vec<usize> {
        crate::ops::pool::batch_shape(self.batched, self.n, self.c, self.h, self.w)
    }
    /// The columns shape (unfold's output, fold's input).
    pub fn cols_shape(&self) -> Vec<usize> {
        let rows = self.c * self.kh * self.kw;
        if self.batched {
            vec![self.n, rows, self.oh * self.ow]
        } else {
            vec![rows, self.oh * self.ow]
        }
    }
}

/// PyTorch's `F.unfold` (im2col): `[N, C, H, W]` → `[N, C*kh*kw, L]`
/// (an unbatched `[C, H, W]` gives `[C*kh*kw, L]`); padding reads zeros.
///
/// # Errors
/// See [`UnfoldParams::geometry`].
pub fn unfold(input: &Tensor, p: &UnfoldParams) -> Result<Tensor> {
    unfold_as("unfold", input, p)
}

fn unfold_as(op: &'static str, input: &Tensor, p: &UnfoldParams) -> Result<Tensor> {
    let g = p.geometry(op, input.shape())?;
    let shape = g.cols_shape();
    let mut cols = memory::zeros_f32(op, numel_or_err(op, &shape)?)?;
    reference::unfold_reference(&g, input.data(), &mut cols);
    Tensor::from_vec(cols, &shape)
}

/// PyTorch's `F.fold` (col2im): `[N, C*kh*kw, L]` → `[N, C, H, W]` with
/// `(H, W) = output_size`, summing where windows overlap (an unbatched
/// `[C*kh*kw, L]` gives `[C, H, W]`).
///
/// ```
/// use convlab::{ops::unfold::{fold, unfold, UnfoldParams}, Tensor};
/// let x = Tensor::ones(&[1, 1, 3, 3])?;
/// let p = UnfoldParams::new(2);
/// // Each pixel comes back once per window that covers it.
/// let y = fold(&unfold(&x, &p)?, (3, 3), &p)?;
/// assert_eq!(y.data(), &[1., 2., 1., 2., 4., 2., 1., 2., 1.]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// As [`UnfoldParams::geometry`] for `output_size`; `cols` not 2-D/3-D,
/// its rows not a positive multiple of `kh * kw`, or its `L` not the
/// number of windows that fit `output_size`.
pub fn fold(cols: &Tensor, output_size: impl Into<Pair>, p: &UnfoldParams) -> Result<Tensor> {
    const OP: &str = "fold";
    let out = output_size.into();
    check_positive(OP, "output_size", out)?;
    check_positive(OP, "kernel_size", p.kernel_size)?;
    let cs = cols.shape();
    let (batched, n, rows, l) = match *cs {
        [rows, l] => (false, 1, rows, l),
        [n, rows, l] => (true, n, rows, l),
        _ => {
            return Err(Error::shape(
                OP,
                format!(
                    "input must be 2-D (C*kh*kw, L) or 3-D (N, C*kh*kw, L) but has shape {}",
                    Dims(cs)
                ),
            ))
        }
    };
    let kk = numel_or_err(OP, &[p.kernel_size.0, p.kernel_size.1])?;
    if rows == 0 || rows % kk != 0 {
        return Err(Error::shape(
            OP,
            format!(
                "input of shape {} has {rows} rows, which is not a positive multiple of kernel_size {} * {} = {kk}",
                Dims(cs),
                p.kernel_size.0,
                p.kernel_size.1
            ),
        ));
    }
    let image = batch_image(batched, n, rows / kk, out);
    let g = p.geometry(OP, &image)?;
    if g.oh * g.ow != l {
        return Err(Error::shape(
            OP,
            format!(
                "input of shape {} has L = {l} blocks but output_size {out} with kernel_size {}, stride {}, padding {}, dilation {} gives {} * {} = {}",
                Dims(cs),
                p.kernel_size,
                p.stride,
                p.padding,
                p.dilation,
                g.oh,
                g.ow,
                g.oh * g.ow
            ),
        ));
    }
    fold_into(OP, &g, cols)
}

fn batch_image(batched: bool, n: usize, c: usize, out: Pair) -> Vec<usize> {
    crate::ops::pool::batch_shape(batched, n, c, out.0, out.1)
}

fn fold_into(op: &'static str, g: &UnfoldGeometry, cols: &Tensor) -> Result<Tensor> {
    let shape = g.image_shape();
    let mut image = memory::zeros_f32(op, numel_or_err(op, &shape)?)?;
    reference::fold_reference(g, cols.data(), &mut image);
    Tensor::from_vec(image, &shape)
}

/// Gradient of [`unfold`] with respect to its input: [`fold`] of
/// `grad_output` back to `input_shape`.
///
/// # Errors
/// `input_shape` invalid for `p` (as [`unfold`]), or `grad_output` not of
/// the shape `unfold` gives for it.
pub fn unfold_backward(
    input_shape: &[usize],
    grad_output: &Tensor,
    p: &UnfoldParams,
) -> Result<Tensor> {
    const OP: &str = "unfold_backward";
    let g = p.geometry(OP, input_shape)?;
    let expected = g.cols_shape();
    if grad_output.shape() != expected.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_output has shape {} but unfold of input shape {} gives {}",
                Dims(grad_output.shape()),
                Dims(input_shape),
                Dims(&expected)
            ),
        ));
    }
    fold_into(OP, &g, grad_output)
}

/// Gradient of [`fold`] with respect to its input: [`unfold`] of
/// `grad_output` (shaped like fold's output).
///
/// # Errors
/// As [`unfold`], naming `fold_backward`.
pub fn fold_backward(grad_output: &Tensor, p: &UnfoldParams) -> Result<Tensor> {
    unfold_as("fold_backward", grad_output, p)
}

/// The plain loops, trusted with a validated [`UnfoldGeometry`].
pub mod reference {
    use super::UnfoldGeometry;

    /// For each tap `k` and output position `o` along one axis (index
    /// `k * out + o`), the input position it reads, or `None` in the padding.
    /// `o*s + k*d` is at most the padded length, which the geometry has
    /// checked fits in usize.
    fn taps(out: usize, k: usize, s: usize, p: usize, d: usize, len: usize) -> Vec<Option<usize>> {
        let mut t = Vec::with_capacity(out * k);
        for ki in 0..k {
            for o in 0..out {
                let pos = o * s + ki * d;
                t.push(pos.checked_sub(p).filter(|&i| i < len));
            }
        }
        t
    }

    /// im2col: `cols[n][(c*kh + ki)*kw + kj][oy*ow + ox] = x[n][c][ih][iw]`
    /// with `ih = oy*sh + ki*dh - ph` (0 in the padding). `cols` is written
    /// in full.
    pub fn unfold_reference(g: &UnfoldGeometry, input: &[f32], cols: &mut [f32]) {
        let (hw, l) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(input.len(), g.n * g.c * hw);
        debug_assert_eq!(cols.len(), g.n * g.c * g.kh * g.kw * l);
        if cols.is_empty() {
            return;
        }
        let rows_t = taps(g.oh, g.kh, g.sh, g.ph, g.dh, g.h);
        let cols_t = taps(g.ow, g.kw, g.sw, g.pw, g.dw, g.w);
        for plane in 0..g.n * g.c {
            let x = &input[plane * hw..(plane + 1) * hw];
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let row = (plane * g.kh + ki) * g.kw + kj;
                    let dst = &mut cols[row * l..(row + 1) * l];
                    for oy in 0..g.oh {
                        let ih = rows_t[ki * g.oh + oy];
                        for ox in 0..g.ow {
                            let iw = cols_t[kj * g.ow + ox];
                            dst[oy * g.ow + ox] = match (ih, iw) {
                                (Some(ih), Some(iw)) => x[ih * g.w + iw],
                                _ => 0.0,
                            };
                        }
                    }
                }
            }
        }
    }

    /// col2im, the adjoint of [`unfold_reference`]: every column entry is
    /// added to the pixel it was read from; padding entries are dropped.
    /// `image` must be zeroed by the caller.
    pub fn fold_reference(g: &UnfoldGeometry, cols: &[f32], image: &mut [f32]) {
        let (hw, l) = (g.h * g.w, g.oh * g.ow);
        debug_assert_eq!(image.len(), g.n * g.c * hw);
        debug_assert_eq!(cols.len(), g.n * g.c * g.kh * g.kw * l);
        if cols.is_empty() {
            return;
        }
        let rows_t = taps(g.oh, g.kh, g.sh, g.ph, g.dh, g.h);
        let cols_t = taps(g.ow, g.kw, g.sw, g.pw, g.dw, g.w);
        for plane in 0..g.n * g.c {
            let x = &mut image[plane * hw..(plane + 1) * hw];
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let row = (plane * g.kh + ki) * g.kw + kj;
                    let src = &cols[row * l..(row + 1) * l];
                    for oy in 0..g.oh {
                        let Some(ih) = rows_t[ki * g.oh + oy] else {
                            continue;
                        };
                        for ox in 0..g.ow {
                            if let Some(iw) = cols_t[kj * g.ow + ox] {
                                x[ih * g.w + iw] += src[oy * g.ow + ox];
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfold_rows_are_channel_then_kernel_taps() {
        // PyTorch: F.unfold(arange(18.).reshape(1, 2, 3, 3), 2) has row 4
        // (channel 1, tap (0, 0)) = [9, 10, 12, 13].
        let x = Tensor::arange(18.0)
            .unwrap()
            .reshape(&[1, 2, 3, 3])
            .unwrap();
        let cols = unfold(&x, &UnfoldParams::new(2)).unwrap();
        assert_eq!(cols.shape(), &[1, 8, 4]);
        assert_eq!(&cols.data()[16..20], &[9.0, 10.0, 12.0, 13.0]);
        // Last row: channel 1, tap (1, 1).
        assert_eq!(&cols.data()[28..32], &[13.0, 14.0, 16.0, 17.0]);
    }

    #[test]
    fn padding_stride_dilation_and_unbatched() {
        // 1x1x3x3, kernel 2, padding 1, stride 2: windows at (-1,-1),(-1,1),(1,-1),(1,1).
        let x = Tensor::arange(9.0).unwrap().reshape(&[1, 3, 3]).unwrap();
        let p = UnfoldParams::new(2).padding(1).stride(2);
        let cols = unfold(&x, &p).unwrap();
        assert_eq!(cols.shape(), &[4, 4]);
        // Tap (1, 1) reads pixels (0,0), (0,2), (2,0), (2,2).
        assert_eq!(&cols.data()[12..16], &[0.0, 2.0, 6.0, 8.0]);
        // Tap (0, 0) is all padding except the last window.
        assert_eq!(&cols.data()[0..4], &[0.0, 0.0, 0.0, 4.0]);
        let d = UnfoldParams::new(2).dilation(2);
        let cols = unfold(&x, &d).unwrap();
        assert_eq!(cols.data(), &[0.0, 2.0, 6.0, 8.0]);
    }

    #[test]
    fn fold_is_the_adjoint_of_unfold() {
        // <unfold(x), y> == <x, fold(y)> for random x, y.
        let mut rng = crate::seeded_rng(7);
        let p = UnfoldParams::new((3, 2))
            .stride((2, 1))
            .padding((1, 0))
            .dilation((1, 2));
        let x = Tensor::randn(&[2, 3, 8, 9], &mut rng).unwrap();
        let ux = unfold(&x, &p).unwrap();
        let y = Tensor::randn(ux.shape(), &mut rng).unwrap();
        let fy = fold(&y, (8, 9), &p).unwrap();
        assert_eq!(fy.shape(), x.shape());
        let dot = |a: &Tensor, b: &Tensor| -> f64 {
            a.data()
                .iter()
                .zip(b.data())
                .map(|(&u, &v)| u as f64 * v as f64)
                .sum()
        };
        let (lhs, rhs) = (dot(&ux, &y), dot(&x, &fy));
        assert!(
            (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
        assert_eq!(unfold_backward(x.shape(), &y, &p).unwrap(), fy);
        assert_eq!(fold_backward(&x, &p).unwrap(), ux);
    }

    #[test]
    fn errors_name_op_parameter_and_shape() {
        let x = Tensor::ones(&[1, 1, 3, 3]).unwrap();
        let e = unfold(&x, &UnfoldParams::new(4)).unwrap_err().to_string();
        assert!(
            e.starts_with("unfold:") && e.contains("kernel height 4"),
            "{e}"
        );
        let e = unfold(&x, &UnfoldParams::new(2).stride(0))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "unfold: stride 0 is invalid: must be at least 1");
        let e = unfold(&x, &UnfoldParams::new((1, 0)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kernel_size (1, 0)"), "{e}");
        let e = unfold(&Tensor::ones(&[9]).unwrap(), &UnfoldParams::new(1))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("unfold:") && e.contains("[9]"), "{e}");
        let cols = Tensor::ones(&[1, 7, 4]).unwrap();
        let e = fold(&cols, (3, 3), &UnfoldParams::new(2))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("fold:") && e.contains("[1, 7, 4]") && e.contains("2 * 2 = 4"),
            "{e}"
        );
        let cols = Tensor::ones(&[1, 4, 5]).unwrap();
        let e = fold(&cols, (3, 3), &UnfoldParams::new(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("L = 5") && e.contains("2 * 2 = 4"), "{e}");
        let e = fold(&cols, (0, 3), &UnfoldParams::new(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("output_size (0, 3)"), "{e}");
        let g = Tensor::ones(&[1, 4, 5]).unwrap();
        let e = unfold_backward(&[1, 1, 3, 3], &g, &UnfoldParams::new(2))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("unfold_backward:") && e.contains("[1, 4, 4]"),
            "{e}"
        );
    }
}
