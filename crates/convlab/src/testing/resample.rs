//! Reference loops of the resampling, rearrangement and padding ops: every
//! output computed on its own from the op's definition, sums in f64, the
//! backward passes as plain scatters (the definition of a gradient), no
//! separable passes, no band matrices, no threads.

use crate::error::{Error, Result};
use crate::ops::interpolate::{plan, InterpolateParams};
use crate::ops::PadMode;
use crate::tensor::Tensor;

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The multi-index of flat index `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        if shape[a] > 0 {
            idx[a] = flat % shape[a];
            flat /= shape[a];
        }
    }
    idx
}

/// The `(input index, weight)` pairs one output index reads along one axis.
type Pairs = Vec<(usize, f32)>;

/// The output shape and, per spatial axis and output index, the pairs the
/// mode reads.
fn interpolate_pairs(
    op: &'static str,
    shape: &[usize],
    params: &InterpolateParams,
) -> Result<(Vec<usize>, Vec<Vec<Pairs>>)> {
    let p = plan(op, shape, params)?;
    let mut axes = Vec::new();
    for a in 0..shape.len() - 2 {
        let (n, o) = (p.in_shape[a + 2], p.out_shape[a + 2]);
        let rows = (0..o)
            .map(|i| {
                let mut v = Vec::new();
                match p.axis_rule(a) {
                    Some(r) => r.pairs(n, o, i, &mut v),
                    None => v.push((i, 1.0)),
                }
                v
            })
            .collect();
        axes.push(rows);
    }
    Ok((p.out_shape, axes))
}

/// Visit every combination of one pair per axis: `f(input spatial index,
/// weight product)`.
fn for_each_tap(lists: &[&Pairs], f: &mut impl FnMut(&[usize], f64)) {
    fn go(lists: &[&Pairs], at: &mut Vec<usize>, w: f64, f: &mut impl FnMut(&[usize], f64)) {
        match lists.split_first() {
            None => f(at, w),
            Some((first, rest)) => {
                for &(j, wj) in first.iter() {
                    at.push(j);
                    go(rest, at, w * wj as f64, f);
                    at.pop();
                }
            }
        }
    }
    go(lists, &mut Vec::new(), 1.0, f);
}

/// `F.interpolate` by its definition: each output is the weighted sum of
/// the inputs its mode reads, in f64.
pub fn interpolate_reference(input: &Tensor, params: &InterpolateParams) -> Result<Tensor> {
    let shape = input.shape();
    let (out_shape, axes) = interpolate_pairs("interpolate_reference", shape, params)?;
    let (is, os) = (strides(shape), strides(&out_shape));
    let mut out = Tensor::zeros(&out_shape)?;
    let x = input.data();
    for (flat, y) in out.data_mut().iter_mut().enumerate() {
        let idx = unravel(flat, &out_shape);
        debug_assert_eq!(flat, idx.iter().zip(&os).map(|(i, s)| i * s).sum::<usize>());
        let lists: Vec<&Pairs> = axes
            .iter()
            .zip(&idx[2..])
            .map(|(rows, &i)| &rows[i])
            .collect();
        let base = idx[0] * is[0] + idx[1] * is[1];
        let mut acc = 0.0f64;
        for_each_tap(&lists, &mut |at, w| {
            let off: usize = at.iter().zip(&is[2..]).map(|(j, s)| j * s).sum();
            acc += w * x[base + off] as f64;
        });
        *y = acc as f32;
    }
    Ok(out)
}

/// The gradient of [`interpolate_reference`]: each output's gradient
/// scattered back to the inputs it read, with their weights, in f64.
pub fn interpolate_backward_reference(
    grad_output: &Tensor,
    input_shape: &[usize],
    params: &InterpolateParams,
) -> Result<Tensor> {
    let (out_shape, axes) =
        interpolate_pairs("interpolate_backward_reference", input_shape, params)?;
    if grad_output.shape() != out_shape.as_slice() {
        return Err(Error::shape(
            "interpolate_backward_reference",
            "grad_output shape",
        ));
    }
    let is = strides(input_shape);
    let mut acc = vec![0.0f64; input_shape.iter().product::<usize>()];
    for (flat, &g) in grad_output.data().iter().enumerate() {
        let idx = unravel(flat, &out_shape);
        let lists: Vec<&Pairs> = axes
            .iter()
            .zip(&idx[2..])
            .map(|(rows, &i)| &rows[i])
            .collect();
        let base = idx[0] * is[0] + idx[1] * is[1];
        for_each_tap(&lists, &mut |at, w| {
            let off: usize = at.iter().zip(&is[2..]).map(|(j, s)| j * s).sum();
            acc[base + off] += w * g as f64;
        });
    }
    Tensor::from_vec(acc.into_iter().map(|v| v as f32).collect(), input_shape)
}

/// The source along one axis of output index `j` of `F.pad` (`None`: the
/// constant fill), by the mode's definition.
fn pad_source(j: usize, len: usize, before: i64, after: i64, mode: PadMode) -> Option<usize> {
    let n = len as i64;
    let x = j as i64 - before;
    match mode {
        PadMode::Constant(_) => (0..n).contains(&x).then_some(x as usize),
        PadMode::Replicate => Some(x.clamp(0, n - 1) as usize),
        PadMode::Reflect => {
            // Mirror about 0 and n - 1 until inside (one bounce suffices for
            // pads smaller than the axis).
            let mut y = x;
            while y < 0 || y >= n {
                y = if y < 0 { -y } else { 2 * (n - 1) - y };
            }
            Some(y as usize)
        }
        PadMode::Circular => {
            // Crop by the negative pads, then wrap the rest.
            let kept: Vec<i64> = ((-before).max(0)..n - (-after).max(0)).collect();
            let k = kept.len() as i64;
            let pos = j as i64 - before.max(0);
            Some(kept[pos.rem_euclid(k) as usize] as usize)
        }
    }
}

/// `F.pad` by its definition (shapes already valid for `pad`).
pub fn pad_reference(input: &Tensor, pad: &[i64], mode: PadMode) -> Result<Tensor> {
    let out = crate::ops::pad(input, pad, mode)?;
    let shape = input.shape();
    let k = pad.len() / 2;
    let r = shape.len();
    let is = strides(shape);
    let fill = match mode {
        PadMode::Constant(v) => v,
        _ => 0.0,
    };
    let mut y = Tensor::zeros(out.shape())?;
    let out_shape = out.shape().to_vec();
    for (flat, v) in y.data_mut().iter_mut().enumerate() {
        let idx = unravel(flat, &out_shape);
        let mut src = 0;
        let mut inside = true;
        for a in 0..r {
            let j = if a + k >= r {
                let i = r - 1 - a;
                pad_source(idx[a], shape[a], pad[2 * i], pad[2 * i + 1], mode)
            } else {
                Some(idx[a])
            };
            match j {
                Some(j) => src += j * is[a],
                None => inside = false,
            }
        }
        *v = if inside { input.data()[src] } else { fill };
    }
    Ok(y)
}

/// The gradient of [`pad_reference`]: each output's gradient added to
/// its source, in f64.
pub fn pad_backward_reference(
    grad_output: &Tensor,
    input_shape: &[usize],
    pad: &[i64],
    mode: PadMode,
) -> Result<Tensor> {
    let k = pad.len() / 2;
    let r = input_shape.len();
    let is = strides(input_shape);
    let mut acc = vec![0.0f64; input_shape.iter().product()];
    let out_shape = grad_output.shape().to_vec();
    for (flat, &g) in grad_output.data().iter().enumerate() {
        let idx = unravel(flat, &out_shape);
        let mut src = Some(0);
        for a in 0..r {
            let j = if a + k >= r {
                let i = r - 1 - a;
                pad_source(idx[a], input_shape[a], pad[2 * i], pad[2 * i + 1], mode)
            } else {
                Some(idx[a])
            };
            src = src.zip(j).map(|(s, j)| s + j * is[a]);
        }
        if let Some(s) = src {
            acc[s] += g as f64;
        }
    }
    Tensor::from_vec(acc.into_iter().map(|v| v as f32).collect(), input_shape)
}
