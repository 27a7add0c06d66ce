//! Reference loops of the resampling, rearrangement and padding ops: every
//! output computed on its own from the op's definition, sums in f64, the
//! backward passes as plain scatters (the definition of a gradient), no
//! separable passes, no band matrices, no threads.

use crate::error::{Error, Result};
use crate::ops::grid_sample::{pad_coordinate, unnormalize};
use crate::ops::interpolate::{plan, InterpolateParams};
use crate::ops::{GridSampleMode, GridSampleParams, PadMode};
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

/// `F.grid_sample` by its definition, with both gradients: returns the
/// output and, when `grad_output` is given, the gradients of
/// `sum(output * grad_output)` for the input and the grid (f64 sums).
pub fn grid_sample_reference(
    input: &Tensor,
    grid: &Tensor,
    grad_output: Option<&Tensor>,
    p: &GridSampleParams,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    let out = crate::ops::grid_sample(input, grid, p)?;
    let (shape, r) = (input.shape(), input.shape().len() - 2);
    let (n, c, size) = (shape[0], shape[1], &shape[2..]);
    let plane: usize = size.iter().product();
    let pts = out.numel() / (n * c).max(1);
    let mut y = vec![0.0f64; out.numel()];
    let mut gx = vec![0.0f64; input.numel()];
    let mut gg = vec![0.0f64; grid.numel()];
    for b in 0..n {
        for q in 0..pts {
            let xyz = &grid.data()[(b * pts + q) * r..(b * pts + q + 1) * r];
            // (flat offset or None, weight, d weight / d grid coordinate).
            let mut taps: Vec<(Option<usize>, f64, [f64; 3])> = Vec::new();
            let mut mult = [0.0f64; 3];
            let at = |idx: &[i64]| -> Option<usize> {
                let mut o = 0;
                for a in 0..r {
                    if idx[a] < 0 || idx[a] >= size[a] as i64 {
                        return None;
                    }
                    o = o * size[a] + idx[a] as usize;
                }
                Some(o)
            };
            if p.mode == GridSampleMode::Bicubic {
                // Bicubic in 2-D, tricubic in 3-D: 4 taps per axis, each
                // tap's coordinate padded on its own. Axis a (outermost
                // first) reads grid coordinate r - 1 - a.
                let mut floor = [0.0f32; 3];
                let mut frac = [0.0f64; 3];
                for a in 0..r {
                    let (u, m) = unnormalize(xyz[r - 1 - a], size[a], p.align_corners);
                    mult[r - 1 - a] = m as f64;
                    floor[a] = u.floor();
                    frac[a] = (u - floor[a]) as f64;
                }
                // Keys' cubic (A = -0.75) and its derivative at each tap.
                let w = |d: f64| {
                    let (a, d) = (-0.75, d.abs());
                    if d <= 1.0 {
                        ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
                    } else if d < 2.0 {
                        ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
                    } else {
                        0.0
                    }
                };
                let dw = |d: f64| (w(d + 1e-4) - w(d - 1e-4)) / 2e-4;
                for tap in 0..1usize << (2 * r) {
                    let digit = |a: usize| (tap >> (2 * (r - 1 - a))) & 3;
                    let mut idx = [0i64; 3];
                    let mut f = [1.0f64; 3];
                    let mut df = [0.0f64; 3];
                    for a in 0..r {
                        let t = digit(a);
                        let d = frac[a] - (t as f64 - 1.0);
                        idx[a] = pad_coordinate(
                            floor[a] - 1.0 + t as f32,
                            size[a],
                            p.padding_mode,
                            p.align_corners,
                        )
                        .0 as i64;
                        f[a] = w(d);
                        df[a] = dw(d);
                    }
                    let weight: f64 = f[..r].iter().product();
                    let mut dweight = [0.0f64; 3];
                    for a in 0..r {
                        let others: f64 = (0..r).filter(|&b| b != a).map(|b| f[b]).product();
                        dweight[r - 1 - a] = df[a] * others;
                    }
                    taps.push((at(&idx[..r]), weight, dweight));
                }
            } else {
                let mut pos = [0.0f64; 3];
                for a in 0..r {
                    let (u, du) = unnormalize(xyz[r - 1 - a], size[a], p.align_corners);
                    let (v, dv) = pad_coordinate(u, size[a], p.padding_mode, p.align_corners);
                    pos[a] = v as f64;
                    mult[r - 1 - a] = du as f64 * dv as f64;
                }
                if p.mode == GridSampleMode::Nearest {
                    let idx: Vec<i64> = pos[..r]
                        .iter()
                        .map(|v| v.round_ties_even() as i64)
                        .collect();
                    taps.push((at(&idx), 1.0, [0.0; 3]));
                } else {
                    for corner in 0..1usize << r {
                        let mut idx = vec![0i64; r];
                        let mut f = [1.0f64; 3];
                        let mut sign = [0.0f64; 3];
                        for a in 0..r {
                            let bit = (corner >> a) & 1;
                            let lo = pos[a].floor();
                            idx[a] = lo as i64 + bit as i64;
                            let d = pos[a] - lo;
                            (f[a], sign[a]) = if bit == 1 { (d, 1.0) } else { (1.0 - d, -1.0) };
                        }
                        let mut dw = [0.0f64; 3];
                        for a in 0..r {
                            dw[r - 1 - a] =
                                sign[a] * (0..r).filter(|&o| o != a).map(|o| f[o]).product::<f64>();
                        }
                        taps.push((at(&idx), f[..r].iter().product(), dw));
                    }
                }
            }
            for ch in 0..c {
                let xc = &input.data()[(b * c + ch) * plane..(b * c + ch + 1) * plane];
                let oi = (b * c + ch) * pts + q;
                for &(o, w, dw) in &taps {
                    let Some(o) = o else { continue };
                    y[oi] += w * xc[o] as f64;
                    if let Some(g) = grad_output {
                        let go = g.data()[oi] as f64;
                        gx[(b * c + ch) * plane + o] += w * go;
                        for a in 0..r {
                            gg[(b * pts + q) * r + a] += mult[a] * dw[a] * xc[o] as f64 * go;
                        }
                    }
                }
            }
        }
    }
    let f =
        |v: Vec<f64>, s: &[usize]| Tensor::from_vec(v.into_iter().map(|x| x as f32).collect(), s);
    let grads = match grad_output {
        Some(_) => Some((f(gx, input.shape())?, f(gg, grid.shape())?)),
        None => None,
    };
    Ok((f(y, out.shape())?, grads))
}

/// `F.pixel_shuffle` by its index formula (`up`), or `F.pixel_unshuffle`.
pub fn pixel_shuffle_reference(input: &Tensor, r: usize, up: bool) -> Result<Tensor> {
    let out = if up {
        crate::ops::pixel_shuffle(input, r)?
    } else {
        crate::ops::pixel_unshuffle(input, r)?
    };
    // The large image's shape [.., c, H, W] and the small one's channels.
    let big = if up { out.shape() } else { input.shape() };
    let k = big.len();
    let (c, hh, ww) = (big[k - 3], big[k - 2], big[k - 1]);
    let batch: usize = big[..k - 3].iter().product();
    let mut y = vec![0.0f32; out.numel()];
    for b in 0..batch {
        for ch in 0..c {
            for h in 0..hh {
                for w in 0..ww {
                    let large = ((b * c + ch) * hh + h) * ww + w;
                    let sc = (ch * r + h % r) * r + w % r;
                    let small = ((b * c * r * r + sc) * (hh / r) + h / r) * (ww / r) + w / r;
                    if up {
                        y[large] = input.data()[small];
                    } else {
                        y[small] = input.data()[large];
                    }
                }
            }
        }
    }
    Tensor::from_vec(y, out.shape())
}
