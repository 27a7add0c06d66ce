//! Padding with PyTorch's `F.pad`: any number of trailing axes, constant
//! (any value, `-inf` included), reflect, replicate and circular modes, and
//! negative pads that crop; its backward; and `pad2d`, the 2-D form
//! `conv2d`'s `padding_mode` uses.
//!
//! Every mode is one gather: along each padded axis, output index `j` reads
//! input index `source(j)` or, for constant padding, the fill value. The
//! backward pass adds each output's gradient back to its source, plane by
//! plane in a fixed order, so it is deterministic at any thread count.

use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::shape::PaddingMode;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// How [`pad`] fills the border: `torch.nn.functional.pad`'s `mode` and
/// `value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// `mode='constant'` with this `value` (PyTorch's default is 0).
    Constant(f32),
    /// `mode='reflect'`: mirror about the edge element, not repeating it.
    Reflect,
    /// `mode='replicate'`: repeat the edge element.
    Replicate,
    /// `mode='circular'`: wrap around (of the input after any cropping).
    Circular,
}

impl PadMode {
    /// PyTorch's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            PadMode::Constant(_) => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Replicate => "replicate",
            PadMode::Circular => "circular",
        }
    }
}

impl From<PaddingMode> for PadMode {
    fn from(m: PaddingMode) -> PadMode {
        match m {
            PaddingMode::Zeros => PadMode::Constant(0.0),
            PaddingMode::Reflect => PadMode::Reflect,
            PaddingMode::Replicate => PadMode::Replicate,
            PaddingMode::Circular => PadMode::Circular,
        }
    }
}

/// Where each output index along one padded axis reads: `Some(input
/// index)`, or `None` for the constant fill.
type AxisMap = Vec<Option<usize>>;

/// A validated padding: the shapes and, for each of the trailing padded
/// axes, the source of every output index.
struct PadPlan {
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
    /// One map per padded axis, outermost first (the last is the width).
    maps: Vec<AxisMap>,
    value: f32,
}

/// The output length of an axis of length `len` padded by `before` and
/// `after` (negative values crop), or `None` when it would be negative.
fn padded_len(len: usize, before: i64, after: i64) -> Option<usize> {
    let out = (len as i128) + before as i128 + after as i128;
    usize::try_from(out).ok()
}

/// The source of output index `j` along an axis of length `len` padded by
/// `before`/`after`, for `mode`. Circular padding wraps within the part of
/// the input that negative pads keep (PyTorch crops first, then wraps).
fn source(j: usize, len: usize, before: i64, after: i64, mode: PadMode) -> Option<usize> {
    let n = len as i64;
    let x = j as i64 - before;
    let k = match mode {
        PadMode::Constant(_) => {
            if x < 0 || x >= n {
                return None;
            }
            x
        }
        PadMode::Reflect => {
            if x < 0 {
                -x
            } else if x >= n {
                2 * (n - 1) - x
            } else {
                x
            }
        }
        PadMode::Replicate => x.clamp(0, n - 1),
        PadMode::Circular => {
            let lo = (-before).max(0);
            let kept = n - lo - (-after).max(0);
            lo + (j as i64 - before.max(0)).rem_euclid(kept)
        }
    };
    Some(k as usize)
}

/// The memory guard over the source tables of padded axes of these
/// lengths, checked before any is built.
fn check_maps(op: &'static str, mut lens: impl Iterator<Item = usize>) -> Result<()> {
    let entries = lens.try_fold(0usize, |a, l| a.checked_add(l));
    let bytes = entries.and_then(|e| e.checked_mul(std::mem::size_of::<Option<usize>>()));
    memory::check_bytes(op, bytes.unwrap_or(usize::MAX))
}

fn axis_map(len: usize, out: usize, before: i64, after: i64, mode: PadMode) -> AxisMap {
    (0..out)
        .map(|j| source(j, len, before, after, mode))
        .collect()
}

/// F.pad's checks, with PyTorch's conditions; on success, the plan.
fn plan(op: &'static str, shape: &[usize], pad: &[i64], mode: PadMode) -> Result<PadPlan> {
    let ndim = shape.len();
    if pad.len() % 2 != 0 {
        return Err(Error::param(
            op,
            "pad",
            format!("length must be divisible by 2, got {} values", pad.len()),
        ));
    }
    let k = pad.len() / 2;
    if k > ndim {
        return Err(Error::param(
            op,
            "pad",
            format!(
                "length should be at most two times the input dimension, but got padding length {} and input of dimension {ndim}",
                pad.len()
            ),
        ));
    }
    let constant = matches!(mode, PadMode::Constant(_));
    if !constant && (!(1..=3).contains(&k) || (ndim != k + 1 && ndim != k + 2)) {
        return Err(Error::param(
            op,
            "pad",
            format!(
                "of length {} is not supported with mode='{}' for a {ndim}-D input {}: non-constant modes pad the last dimension of a 2-D or 3-D input, the last 2 of a 3-D or 4-D input, or the last 3 of a 4-D or 5-D input",
                pad.len(),
                mode.name(),
                Dims(shape)
            ),
        ));
    }
    // Pads come last axis first: (left, right, top, bottom, front, back).
    let pairs: Vec<(usize, i64, i64)> = (0..k)
        .map(|i| (ndim - 1 - i, pad[2 * i], pad[2 * i + 1]))
        .collect();
    if matches!(mode, PadMode::Reflect | PadMode::Replicate) {
        // Only the batch dimension may be empty.
        let first = if ndim == k + 2 { 1 } else { 0 };
        if shape[first..].contains(&0) {
            return Err(Error::shape(
                op,
                format!(
                    "mode='{}' expects a {}-D or {}-D (batch mode) input with possibly 0 batch size and other non-zero dimensions, got {}",
                    mode.name(),
                    k + 1,
                    k + 2,
                    Dims(shape)
                ),
            ));
        }
    }
    let mut out_shape = shape.to_vec();
    for &(d, before, after) in &pairs {
        let len = shape[d];
        if mode == PadMode::Reflect && (before >= len as i64 || after >= len as i64) {
            return Err(Error::param(
                op,
                "pad",
                format!(
                    "({before}, {after}) at dimension {d} of input {} must be smaller than the dimension's size {len} with mode='reflect'",
                    Dims(shape)
                ),
            ));
        }
        if mode == PadMode::Circular && (before > len as i64 || after > len as i64) {
            return Err(Error::param(
                op,
                "pad",
                format!(
                    "({before}, {after}) at dimension {d} of input {} wraps around more than once: with mode='circular' each pad must be at most the dimension's size {len}",
                    Dims(shape)
                ),
            ));
        }
        let out = padded_len(len, before, after).ok_or_else(|| {
            Error::param(
                op,
                "pad",
                format!(
                    "({before}, {after}) makes dimension {d} of input {} negative: {len} {before:+} {after:+}",
                    Dims(shape)
                ),
            )
        })?;
        if out == 0 && matches!(mode, PadMode::Reflect | PadMode::Replicate) {
            return Err(Error::param(
                op,
                "pad",
                format!(
                    "({before}, {after}) leaves dimension {d} of input {} empty; mode='{}' needs an output size of at least 1",
                    Dims(shape),
                    mode.name()
                ),
            ));
        }
        if mode == PadMode::Circular {
            // PyTorch copies the wrapped part from the cropped input; a pad
            // longer than what is kept would read its own output.
            let kept = len as i64 - (-before).max(0) - (-after).max(0);
            if before.max(after) > kept {
                return Err(Error::param(
                    op,
                    "pad",
                    format!(
                        "({before}, {after}) at dimension {d} of input {} wraps around more than once with mode='circular': the cropped size is {kept}",
                        Dims(shape)
                    ),
                ));
            }
        }
        out_shape[d] = out;
    }
    // Nothing is written when the output is empty, and a map is as long as
    // its padded axis: an empty batch padded by 2^30 must not build one.
    let copies = numel_or_err(op, &out_shape)? > 0;
    if copies {
        check_maps(op, pairs.iter().map(|&(d, _, _)| out_shape[d]))?;
    }
    let maps = pairs
        .iter()
        .rev()
        .map(|&(d, before, after)| match copies {
            true => axis_map(shape[d], out_shape[d], before, after, mode),
            false => Vec::new(),
        })
        .collect();
    let value = match mode {
        PadMode::Constant(v) => v,
        _ => 0.0,
    };
    Ok(PadPlan {
        in_shape: shape.to_vec(),
        out_shape,
        maps,
        value,
    })
}

/// Below this many output values one thread does the whole copy.
const PARALLEL_MIN: usize = 1 << 16;

impl PadPlan {
    /// Axes before the padded ones (never padded, copied as they are).
    fn outer(&self) -> usize {
        self.in_shape[..self.in_shape.len() - self.maps.len()]
            .iter()
            .product()
    }

    /// The input row (within one outer block) that output row `row` of the
    /// block reads, or `None` where a padded axis lies in the constant fill.
    fn source_row(&self, mut row: usize) -> Option<usize> {
        let k = self.maps.len();
        let r = self.in_shape.len();
        let (mut src, mut stride) = (0, 1);
        for a in (0..k.saturating_sub(1)).rev() {
            let out_len = self.out_shape[r - k + a];
            let j = row % out_len;
            row /= out_len;
            src += self.maps[a][j]? * stride;
            stride *= self.in_shape[r - k + a];
        }
        Some(src)
    }

    /// Widths of an output and of an input row (the last padded axis; one
    /// element when nothing is padded).
    fn widths(&self) -> (usize, usize) {
        match (self.out_shape.last(), self.in_shape.last()) {
            (Some(&o), Some(&i)) if !self.maps.is_empty() => (o, i),
            _ => (1, 1),
        }
    }

    /// Fill one outer block of the output from the matching input block.
    fn forward_block(&self, x: &[f32], y: &mut [f32]) {
        let (ow, iw) = self.widths();
        if ow == 0 {
            return;
        }
        let cols = self.maps.last();
        for (row, dst) in y.chunks_exact_mut(ow).enumerate() {
            let Some(src_row) = self.source_row(row) else {
                dst.fill(self.value);
                continue;
            };
            let line = &x[src_row * iw..(src_row + 1) * iw];
            match cols {
                None => dst.copy_from_slice(line),
                Some(cols) => {
                    for (d, c) in dst.iter_mut().zip(cols) {
                        *d = match c {
                            Some(sx) => line[*sx],
                            None => self.value,
                        };
                    }
                }
            }
        }
    }

    /// Add one outer block of `grad_output` back into its input block, in
    /// output order.
    fn backward_block(&self, g: &[f32], gx: &mut [f32]) {
        let (ow, iw) = self.widths();
        if ow == 0 {
            return;
        }
        let cols = self.maps.last();
        for (row, gl) in g.chunks_exact(ow).enumerate() {
            let Some(src_row) = self.source_row(row) else {
                continue;
            };
            let line = &mut gx[src_row * iw..(src_row + 1) * iw];
            match cols {
                None => line.iter_mut().zip(gl).for_each(|(a, b)| *a += b),
                Some(cols) => {
                    for (v, c) in gl.iter().zip(cols) {
                        if let Some(sx) = c {
                            line[*sx] += v;
                        }
                    }
                }
            }
        }
    }

    fn forward(&self, op: &'static str, x: &[f32]) -> Result<Vec<f32>> {
        let n = numel_or_err(op, &self.out_shape)?;
        let mut out = memory::zeros_f32(op, n)?;
        let outer = self.outer();
        if outer == 0 || n == 0 {
            return Ok(out);
        }
        let (out_per, in_per) = (n / outer, x.len() / outer);
        if n < PARALLEL_MIN || outer == 1 {
            for (b, yb) in out.chunks_mut(out_per).enumerate() {
                self.forward_block(&x[b * in_per..(b + 1) * in_per], yb);
            }
        } else {
            out.par_chunks_mut(out_per)
                .enumerate()
                .for_each(|(b, yb)| self.forward_block(&x[b * in_per..(b + 1) * in_per], yb));
        }
        Ok(out)
    }

    fn backward(&self, op: &'static str, g: &[f32]) -> Result<Vec<f32>> {
        let n = numel_or_err(op, &self.in_shape)?;
        let mut gx = memory::zeros_f32(op, n)?;
        let outer = self.outer();
        if outer == 0 || n == 0 || g.is_empty() {
            return Ok(gx);
        }
        let (out_per, in_per) = (g.len() / outer, n / outer);
        if g.len() < PARALLEL_MIN || outer == 1 {
            for (b, xb) in gx.chunks_mut(in_per).enumerate() {
                self.backward_block(&g[b * out_per..(b + 1) * out_per], xb);
            }
        } else {
            gx.par_chunks_mut(in_per)
                .enumerate()
                .for_each(|(b, xb)| self.backward_block(&g[b * out_per..(b + 1) * out_per], xb));
        }
        Ok(gx)
    }
}

/// PyTorch's `F.pad(input, pad, mode, value)`: `pad` lists (before, after)
/// pairs from the last axis inwards; negative values crop.
///
/// Constant padding takes any number of pairs (at most the rank); reflect,
/// replicate and circular pad the last 1, 2 or 3 axes of an input with one
/// or two more axes (channels, and optionally a batch), as PyTorch does.
///
/// # Errors
/// As PyTorch: an odd number of pads or more pairs than axes; an output
/// axis of negative size (of size 0 for reflect and replicate); a reflect
/// pad not smaller than its axis; a circular pad longer than its axis (or
/// than what cropping keeps of it); a non-constant mode on an unsupported
/// rank; an empty non-batch axis for reflect and replicate.
///
/// ```
/// use convlab::{ops::{pad, PadMode}, Tensor};
/// let x = Tensor::from_rows(&[[1.0, 2.0, 3.0]])?;
/// let y = pad(&x, &[2, 1], PadMode::Reflect)?;
/// assert_eq!(y.data(), &[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
/// let cropped = pad(&x, &[-1, 1], PadMode::Constant(f32::NEG_INFINITY))?;
/// assert_eq!(cropped.data(), &[2.0, 3.0, f32::NEG_INFINITY]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn pad(input: &Tensor, pad: &[i64], mode: PadMode) -> Result<Tensor> {
    const OP: &str = "pad";
    let p = plan(OP, input.shape(), pad, mode)?;
    let out = p.forward(OP, input.data())?;
    Tensor::from_vec(out, &p.out_shape)
}

/// The gradient of [`pad`] with respect to its input: each output's
/// gradient goes back to the element it was copied from (fill values have
/// none).
///
/// # Errors
/// The errors of [`pad`] for `input_shape`, or a `grad_output` whose shape
/// is not the padded shape.
pub fn pad_backward(
    grad_output: &Tensor,
    input_shape: &[usize],
    pad: &[i64],
    mode: PadMode,
) -> Result<Tensor> {
    const OP: &str = "pad_backward";
    let p = plan(OP, input_shape, pad, mode)?;
    if grad_output.shape() != p.out_shape.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_output has shape {} but padding input {} gives {}",
                Dims(grad_output.shape()),
                Dims(input_shape),
                Dims(&p.out_shape)
            ),
        ));
    }
    let gx = p.backward(OP, grad_output.data())?;
    Tensor::from_vec(gx, input_shape)
}

/// Validate `[top, bottom, left, right]` against `[.., h, w]` for `mode`
/// (the rules of `conv2d`'s `padding_mode`).
pub(crate) fn check(
    op: &'static str,
    shape: &[usize],
    pads: [usize; 4],
    mode: PaddingMode,
) -> Result<()> {
    if shape.len() < 2 {
        return Err(Error::shape(
            op,
            format!(
                "padding needs at least 2 dimensions, got shape {}",
                Dims(shape)
            ),
        ));
    }
    let h = shape[shape.len() - 2];
    let w = shape[shape.len() - 1];
    let [t, b, l, r] = pads;
    match mode {
        PaddingMode::Zeros => {}
        PaddingMode::Reflect => {
            if t.max(b) >= h || l.max(r) >= w {
                return Err(Error::param(
                    op,
                    "padding",
                    format!(
                        "({t}, {b}, {l}, {r}) with padding_mode='reflect' must be smaller than the input size {h}x{w}"
                    ),
                ));
            }
        }
        PaddingMode::Replicate => {
            if (h == 0 && t + b > 0) || (w == 0 && l + r > 0) {
                return Err(Error::param(
                    op,
                    "padding",
                    "padding_mode='replicate' needs a non-empty input",
                ));
            }
        }
        PaddingMode::Circular => {
            if t.max(b) > h || l.max(r) > w {
                return Err(Error::param(
                    op,
                    "padding",
                    format!(
                        "({t}, {b}, {l}, {r}) with padding_mode='circular' must be at most the input size {h}x{w}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The plan of [`pad2d`]: the last two axes of any input of rank 2 or more.
fn plan2d(
    op: &'static str,
    shape: &[usize],
    pads: [usize; 4],
    mode: PaddingMode,
) -> Result<PadPlan> {
    check(op, shape, pads, mode)?;
    let r = shape.len();
    let too_large = || Error::too_large(op, "padded size overflows");
    let grow = |len: usize, a: usize, b: usize| {
        len.checked_add(a)
            .and_then(|v| v.checked_add(b))
            .ok_or_else(too_large)
    };
    let mut out_shape = shape.to_vec();
    out_shape[r - 2] = grow(shape[r - 2], pads[0], pads[1])?;
    out_shape[r - 1] = grow(shape[r - 1], pads[2], pads[3])?;
    // As in `plan`: no maps when nothing is copied.
    let copies = numel_or_err(op, &out_shape)? > 0;
    if copies {
        check_maps(op, [out_shape[r - 2], out_shape[r - 1]].into_iter())?;
    }
    let signed = |v: usize| i64::try_from(v).map_err(|_| too_large());
    let m = PadMode::from(mode);
    let map = |axis: usize, a: usize, b: usize| -> Result<AxisMap> {
        if !copies {
            return Ok(Vec::new());
        }
        // An empty axis padded by replicate/reflect/circular reads nothing
        // (`check` allows it only with zero pads on that axis).
        if shape[axis] == 0 {
            return Ok(vec![None; out_shape[axis]]);
        }
        Ok(axis_map(
            shape[axis],
            out_shape[axis],
            signed(a)?,
            signed(b)?,
            m,
        ))
    };
    Ok(PadPlan {
        in_shape: shape.to_vec(),
        maps: vec![map(r - 2, pads[0], pads[1])?, map(r - 1, pads[2], pads[3])?],
        out_shape,
        value: 0.0,
    })
}

/// Pad the last two dimensions by `[top, bottom, left, right]` with `mode`
/// (any rank of at least 2; see [`pad`] for every mode, rank and value).
///
/// ```
/// use convlab::{ops::pad2d, PaddingMode, Tensor};
/// let x = Tensor::from_rows(&[[1.0, 2.0, 3.0]])?;
/// let y = pad2d(&x, [0, 0, 2, 1], PaddingMode::Reflect)?;
/// assert_eq!(y.data(), &[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn pad2d(input: &Tensor, pads: [usize; 4], mode: PaddingMode) -> Result<Tensor> {
    const OP: &str = "pad2d";
    let p = plan2d(OP, input.shape(), pads, mode)?;
    let out = p.forward(OP, input.data())?;
    Tensor::from_vec(out, &p.out_shape)
}

/// The gradient of [`pad2d`]: every padded position adds its gradient back
/// to the input position it was copied from.
pub fn pad2d_backward(
    grad_output: &Tensor,
    input_shape: &[usize],
    pads: [usize; 4],
    mode: PaddingMode,
) -> Result<Tensor> {
    const OP: &str = "pad2d_backward";
    let p = plan2d(OP, input_shape, pads, mode)?;
    if grad_output.shape() != p.out_shape.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_output has shape {} but the padded input has shape {}",
                Dims(grad_output.shape()),
                Dims(&p.out_shape)
            ),
        ));
    }
    let gx = p.backward(OP, grad_output.data())?;
    Tensor::from_vec(gx, input_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_match_pytorch_f_pad() {
        // F.pad(torch.arange(4.).view(1,1,1,4), (2,2,0,0), mode=...)
        let x = Tensor::arange(4.0).unwrap().reshape(&[1, 4]).unwrap();
        let p = |m| pad2d(&x, [0, 0, 2, 2], m).unwrap().into_vec();
        assert_eq!(p(PaddingMode::Zeros), [0., 0., 0., 1., 2., 3., 0., 0.]);
        assert_eq!(p(PaddingMode::Reflect), [2., 1., 0., 1., 2., 3., 2., 1.]);
        assert_eq!(p(PaddingMode::Replicate), [0., 0., 0., 1., 2., 3., 3., 3.]);
        assert_eq!(p(PaddingMode::Circular), [2., 3., 0., 1., 2., 3., 0., 1.]);
    }

    #[test]
    fn circular_crops_then_wraps_as_pytorch() {
        // F.pad(torch.arange(4.).view(1,1,4), p, mode='circular')
        let x = Tensor::arange(4.0).unwrap().reshape(&[1, 1, 4]).unwrap();
        let p = |v: &[i64]| pad(&x, v, PadMode::Circular).unwrap().into_vec();
        assert_eq!(p(&[-1, 1]), [1., 2., 3., 1.]);
        assert_eq!(p(&[-3, 1]), [3., 3.]);
        assert_eq!(p(&[1, -3]), [0., 0.]);
        assert_eq!(p(&[2, 2]), [2., 3., 0., 1., 2., 3., 0., 1.]);
        // PyTorch refuses these too (its copy would read its own output).
        assert!(pad(&x, &[-2, 3], PadMode::Circular).is_err());
        assert!(pad(&x, &[2, -3], PadMode::Circular).is_err());
    }

    #[test]
    fn constant_pads_any_axis_and_crops() {
        let x = Tensor::arange(6.0).unwrap().reshape(&[2, 3]).unwrap();
        let y = pad(&x, &[0, 0, 1, 0], PadMode::Constant(-1.0)).unwrap();
        assert_eq!(y.shape(), &[3, 3]);
        assert_eq!(y.data(), &[-1., -1., -1., 0., 1., 2., 3., 4., 5.]);
        let y = pad(&x, &[-2, -1], PadMode::Constant(0.0)).unwrap();
        assert_eq!(y.shape(), &[2, 0]);
        assert!(pad(&x, &[-2, -2], PadMode::Constant(0.0)).is_err());
        let y = pad(&x, &[], PadMode::Constant(0.0)).unwrap();
        assert_eq!(y, x);
    }

    #[test]
    fn backward_is_the_adjoint() {
        let x = Tensor::arange(24.0).unwrap().reshape(&[2, 3, 4]).unwrap();
        let cases: [(&[i64], PadMode); 6] = [
            (&[2, 1, 1, 2], PadMode::Reflect),
            (&[-1, 3, 2, -1], PadMode::Replicate),
            (&[-1, 2, 2, -1], PadMode::Circular),
            (&[1, -2, 0, 1, 1, 1], PadMode::Constant(0.5)),
            (&[3, 3], PadMode::Replicate),
            (&[3, 2], PadMode::Reflect),
        ];
        for (p, m) in cases {
            let y = pad(&x, p, m).unwrap();
            let g = Tensor::arange_step(0.5, 0.5 + y.numel() as f32, 1.0)
                .unwrap()
                .reshape(y.shape())
                .unwrap();
            let gx = pad_backward(&g, x.shape(), p, m).unwrap();
            // <pad(x) - pad(0), g> == <x, pad^T(g)> (the fill is affine).
            let y0 = pad(&Tensor::zeros(x.shape()).unwrap(), p, m).unwrap();
            let lhs: f64 = (y.data().iter().zip(y0.data()))
                .zip(g.data())
                .map(|((a, b), c)| ((a - b) * c) as f64)
                .sum();
            let rhs: f64 = x
                .data()
                .iter()
                .zip(gx.data())
                .map(|(a, b)| (a * b) as f64)
                .sum();
            assert!((lhs - rhs).abs() < 1e-3, "{p:?} {m:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn pad2d_backward_is_the_adjoint() {
        let x = Tensor::arange(12.0).unwrap().reshape(&[3, 4]).unwrap();
        for m in [
            PaddingMode::Zeros,
            PaddingMode::Reflect,
            PaddingMode::Replicate,
            PaddingMode::Circular,
        ] {
            let pads = [2, 1, 3, 2];
            let y = pad2d(&x, pads, m).unwrap();
            let g = Tensor::arange_step(0.5, 0.5 + y.numel() as f32, 1.0)
                .unwrap()
                .reshape(y.shape())
                .unwrap();
            let gx = pad2d_backward(&g, x.shape(), pads, m).unwrap();
            let lhs: f32 = y.data().iter().zip(g.data()).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.data().iter().zip(gx.data()).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-3, "{m:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn reflect_too_wide_is_an_error() {
        let x = Tensor::zeros(&[2, 2]).unwrap();
        let e = pad2d(&x, [0, 0, 2, 2], PaddingMode::Reflect).unwrap_err();
        assert!(e.to_string().contains("reflect"), "{e}");
        let e = pad(&x, &[2, 0], PadMode::Reflect).unwrap_err();
        assert!(e.to_string().contains("reflect"), "{e}");
    }
}
