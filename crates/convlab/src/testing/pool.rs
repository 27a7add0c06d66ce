//! The definitions of the pooling ops: plain loops over every window, in
//! PyTorch's order, summing in f64. They trust their geometry (validated
//! by the public ops) and check buffer sizes with `debug_assert!` only.
//! Every spatial rank runs through the same loops: a 2-D pooling is the
//! 3-D one with a unit depth.

use crate::ops::pool::{AdaptiveGeometry, AvgDivisor};
use crate::shape::{AxisWindow, PoolGeometry};

/// One plane's windows along depth, rows and columns, and the input's
/// lengths and tap spacing: what every loop below walks.
struct Windows {
    len: [usize; 3],
    dilation: [usize; 3],
    wins: [Vec<AxisWindow>; 3],
}

impl Windows {
    fn of(g: &PoolGeometry) -> Windows {
        Windows {
            len: g.axes.map(|a| a.len),
            dilation: g.axes.map(|a| a.dilation),
            wins: g.axes.map(|a| a.windows()),
        }
    }

    fn adaptive(g: &AdaptiveGeometry) -> Windows {
        Windows {
            len: g.len,
            dilation: [1; 3],
            wins: [g.windows(0), g.windows(1), g.windows(2)],
        }
    }

    fn plane_len(&self) -> usize {
        self.len.iter().product()
    }

    fn out_plane_len(&self) -> usize {
        self.wins.iter().map(Vec::len).product()
    }

    /// `f(output index, [depth, row, column] windows, taps)` for every
    /// output of a plane, in order; `taps` are the in-plane indices of the
    /// window's input elements in PyTorch's scan order.
    fn each(&self, mut f: impl FnMut(usize, [&AxisWindow; 3], &mut dyn Iterator<Item = usize>)) {
        let [_, h, w] = self.len;
        let [dz, dy, dx] = self.dilation;
        let mut o = 0;
        for dep in &self.wins[0] {
            for row in &self.wins[1] {
                for col in &self.wins[2] {
                    let mut taps = (0..dep.count).flat_map(|a| {
                        (0..row.count).flat_map(move |b| {
                            let line = ((dep.start + a * dz) * h + row.start + b * dy) * w;
                            (0..col.count).map(move |c| line + col.start + c * dx)
                        })
                    });
                    f(o, [dep, row, col], &mut taps);
                    o += 1;
                }
            }
        }
    }
}

/// Max over the windows of `wins`: PyTorch's `cpu_max_pool` loop.
fn max_windows(wins: &Windows, input: &[f32], output: &mut [f32], indices: &mut [usize]) {
    let (plane, out_plane) = (wins.plane_len(), wins.out_plane_len());
    debug_assert_eq!(output.len(), indices.len());
    if out_plane == 0 {
        return;
    }
    let [_, h, w] = wins.len;
    let outs = output
        .chunks_exact_mut(out_plane)
        .zip(indices.chunks_exact_mut(out_plane));
    for (x, (out, idx)) in input.chunks_exact(plane).zip(outs) {
        wins.each(|o, [dep, row, col], taps| {
            let mut best = f32::NEG_INFINITY;
            let mut best_at = (dep.start * h + row.start) * w + col.start;
            for at in taps {
                let v = x[at];
                // PyTorch: `(val > maxval) || isnan(val)`.
                if v > best || v.is_nan() {
                    best = v;
                    best_at = at;
                }
            }
            out[o] = best;
            idx[o] = best_at;
        });
    }
}

/// The mean of each window, its sum (in f64) divided by `divisor(windows)`;
/// a window without input elements gives 0.
fn avg_windows(
    wins: &Windows,
    divisor: impl Fn([&AxisWindow; 3]) -> f64,
    input: &[f32],
    output: &mut [f32],
) {
    let (plane, out_plane) = (wins.plane_len(), wins.out_plane_len());
    if out_plane == 0 {
        return;
    }
    for (x, out) in input
        .chunks_exact(plane)
        .zip(output.chunks_exact_mut(out_plane))
    {
        wins.each(|o, w, taps| {
            let (mut sum, mut any) = (0.0f64, false);
            for at in taps {
                sum += x[at] as f64;
                any = true;
            }
            out[o] = if any { (sum / divisor(w)) as f32 } else { 0.0 };
        });
    }
}

/// The gradient of [`avg_windows`]: each `grad_output / divisor` added to
/// its window's elements, accumulated in f64.
fn avg_windows_backward(
    wins: &Windows,
    divisor: impl Fn([&AxisWindow; 3]) -> f64,
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    let (plane, out_plane) = (wins.plane_len(), wins.out_plane_len());
    grad_input.fill(0.0);
    if out_plane == 0 {
        return;
    }
    let mut acc = vec![0.0f64; plane];
    for (gy, gx) in grad_output
        .chunks_exact(out_plane)
        .zip(grad_input.chunks_exact_mut(plane))
    {
        acc.fill(0.0);
        wins.each(|o, w, taps| {
            let share = gy[o] as f64 / divisor(w);
            for at in taps {
                acc[at] += share;
            }
        });
        for (g, &a) in gx.iter_mut().zip(&acc) {
            *g = a as f32;
        }
    }
}

/// The divisor of a window of average pooling.
fn avg_divisor(rule: AvgDivisor, w: [&AxisWindow; 3]) -> f64 {
    match rule {
        AvgDivisor::Override(d) => d as f64,
        // f64: the product of huge kernel sizes must not overflow.
        AvgDivisor::IncludePad => w.iter().map(|a| a.padded_count as f64).product(),
        AvgDivisor::ExcludePad => w.iter().map(|a| a.count as f64).product(),
    }
}

/// Max pooling of `input` (`planes x plane_len`) into `output` and
/// `indices` (`planes x out_plane_len`), the flat in-plane index of each
/// maximum: PyTorch's `cpu_max_pool` loop, NaN winning (the last NaN) and
/// the first of equal maxima.
pub fn max_pool_reference(
    g: &PoolGeometry,
    input: &[f32],
    output: &mut [f32],
    indices: &mut [usize],
) {
    debug_assert_eq!(input.len(), g.planes() * g.plane_len());
    debug_assert_eq!(output.len(), g.planes() * g.out_plane_len());
    max_windows(&Windows::of(g), input, output, indices);
}

/// Scatter-add `grad_output` (`planes x out_plane`) into `grad_input`
/// (`planes x plane`) through `indices`, each `< plane`, summing in f64.
pub fn max_pool_backward_reference(
    plane: usize,
    out_plane: usize,
    indices: &[usize],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    debug_assert_eq!(indices.len(), grad_output.len());
    grad_input.fill(0.0);
    if out_plane == 0 || plane == 0 {
        return;
    }
    let mut acc = vec![0.0f64; plane];
    let ins = indices
        .chunks_exact(out_plane)
        .zip(grad_output.chunks_exact(out_plane));
    for ((idx, gy), gx) in ins.zip(grad_input.chunks_exact_mut(plane)) {
        acc.fill(0.0);
        for (&i, &g) in idx.iter().zip(gy) {
            acc[i] += g as f64;
        }
        for (g, &a) in gx.iter_mut().zip(&acc) {
            *g = a as f32;
        }
    }
}

/// Average pooling, PyTorch's `cpu_avg_pool` loop (summed in f64).
pub fn avg_pool_reference(g: &PoolGeometry, rule: AvgDivisor, input: &[f32], output: &mut [f32]) {
    debug_assert_eq!(input.len(), g.planes() * g.plane_len());
    debug_assert_eq!(output.len(), g.planes() * g.out_plane_len());
    avg_windows(&Windows::of(g), |w| avg_divisor(rule, w), input, output);
}

/// Gradient of [`avg_pool_reference`] into `grad_input` (overwritten).
pub fn avg_pool_backward_reference(
    g: &PoolGeometry,
    rule: AvgDivisor,
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    debug_assert_eq!(grad_input.len(), g.planes() * g.plane_len());
    debug_assert_eq!(grad_output.len(), g.planes() * g.out_plane_len());
    avg_windows_backward(
        &Windows::of(g),
        |w| avg_divisor(rule, w),
        grad_output,
        grad_input,
    );
}

/// Mean of each adaptive bin (summed in f64).
pub fn adaptive_avg_pool_reference(g: &AdaptiveGeometry, input: &[f32], output: &mut [f32]) {
    let count = |w: [&AxisWindow; 3]| w.iter().map(|a| a.count as f64).product();
    avg_windows(&Windows::adaptive(g), count, input, output);
}

/// Gradient of [`adaptive_avg_pool_reference`] into `grad_input`
/// (overwritten).
pub fn adaptive_avg_pool_backward_reference(
    g: &AdaptiveGeometry,
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    let count = |w: [&AxisWindow; 3]| w.iter().map(|a| a.count as f64).product();
    avg_windows_backward(&Windows::adaptive(g), count, grad_output, grad_input);
}

/// Maximum of each adaptive bin and its flat in-plane index, PyTorch's
/// `(val > maxval) || isnan(val)` rule.
pub fn adaptive_max_pool_reference(
    g: &AdaptiveGeometry,
    input: &[f32],
    output: &mut [f32],
    indices: &mut [usize],
) {
    max_windows(&Windows::adaptive(g), input, output, indices);
}

/// Power-average pooling by PyTorch's definition, in f64:
/// `(sign(a) * |a| * k)^(1/p)` with `a` the `count_include_pad` average of
/// `x^p` (`g` has no padding); `p = ±inf` the max / min of `|x|`.
pub fn lp_pool_reference(g: &PoolGeometry, norm_type: f64, input: &[f32], output: &mut [f32]) {
    let wins = Windows::of(g);
    let (plane, out_plane) = (wins.plane_len(), wins.out_plane_len());
    let taps: f64 = g.axes.iter().map(|a| a.kernel as f64).product();
    for (x, out) in input
        .chunks_exact(plane)
        .zip(output.chunks_exact_mut(out_plane))
    {
        wins.each(|o, w, taps_of| {
            let values = taps_of.map(|at| (x[at] as f64).abs());
            out[o] = if norm_type == f64::INFINITY {
                values.fold(
                    f64::NEG_INFINITY,
                    |m, v| if v > m || v.is_nan() { v } else { m },
                ) as f32
            } else if norm_type == f64::NEG_INFINITY {
                values.fold(
                    f64::INFINITY,
                    |m, v| if v < m || v.is_nan() { v } else { m },
                ) as f32
            } else {
                let p = norm_type;
                let sum: f64 = wins_signed(x, w, &wins).map(|v| v.powf(p)).sum();
                let a = sum / avg_divisor(AvgDivisor::IncludePad, w);
                (a.signum() * a.abs() * taps).powf(1.0 / p) as f32
            };
        });
    }
}

/// The signed input values of a window, in scan order.
fn wins_signed<'a>(
    x: &'a [f32],
    w: [&AxisWindow; 3],
    wins: &Windows,
) -> impl Iterator<Item = f64> + 'a {
    let [_, h, wd] = wins.len;
    let [dz, dy, dx] = wins.dilation;
    let [dep, row, col] = w.map(|a| *a);
    (0..dep.count).flat_map(move |a| {
        (0..row.count).flat_map(move |b| {
            let line = ((dep.start + a * dz) * h + row.start + b * dy) * wd;
            (0..col.count).map(move |c| x[line + col.start + c * dx] as f64)
        })
    })
}

/// Max unpooling: each input plane's values written at `indices` (each
/// `< out_plane`, the later of a repeated index winning) into a zeroed
/// output plane.
pub fn max_unpool_reference(
    plane: usize,
    out_plane: usize,
    indices: &[usize],
    input: &[f32],
    output: &mut [f32],
) {
    output.fill(0.0);
    if plane == 0 || out_plane == 0 {
        return;
    }
    let ins = indices.chunks_exact(plane).zip(input.chunks_exact(plane));
    for ((idx, x), y) in ins.zip(output.chunks_exact_mut(out_plane)) {
        for (&i, &v) in idx.iter().zip(x) {
            y[i] = v;
        }
    }
}

/// PyTorch's fractional interval starts along one axis, in f32 as PyTorch
/// computes them (`generate_intervals`).
pub fn fractional_starts(sample: f32, len: usize, out: usize, pool: usize) -> Vec<i64> {
    let mut seq = vec![0i64; out];
    if out > 1 {
        let alpha = (len as f32 - pool as f32) / (out as f32 - 1.0);
        for (i, s) in seq.iter_mut().enumerate().take(out - 1) {
            *s = ((i as f32 + sample) * alpha) as i64 - (sample * alpha) as i64;
        }
    }
    if out > 0 {
        seq[out - 1] = len as i64 - pool as i64;
    }
    seq
}

/// Fractional max pooling of `planes` planes of `len` (depth, height,
/// width; leading 1s below rank 3) with `pool` windows to `out` outputs,
/// `samples` holding `rank` values per plane (2-D: width's first).
#[allow(clippy::too_many_arguments)]
pub fn fractional_max_pool_reference(
    rank: usize,
    len: [usize; 3],
    out: [usize; 3],
    pool: [usize; 3],
    samples: &[f32],
    input: &[f32],
    output: &mut [f32],
    indices: &mut [usize],
) {
    let (plane, out_plane) = (len.iter().product::<usize>(), out.iter().product::<usize>());
    if out_plane == 0 {
        return;
    }
    for (p, x) in input.chunks_exact(plane).enumerate() {
        let u = &samples[p * rank..][..rank];
        let mut wins: [Vec<AxisWindow>; 3] = [vec![AxisWindow::span(0, 1)], vec![], vec![]];
        for a in 3 - rank..3 {
            let sample = if rank == 2 { u[2 - a] } else { u[a] };
            wins[a] = fractional_starts(sample, len[a], out[a], pool[a])
                .into_iter()
                .map(|s| AxisWindow::span(s as usize, pool[a]))
                .collect();
        }
        let w = Windows {
            len,
            dilation: [1; 3],
            wins,
        };
        let o = p * out_plane..(p + 1) * out_plane;
        max_windows(&w, x, &mut output[o.clone()], &mut indices[o]);
    }
}
