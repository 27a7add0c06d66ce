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
