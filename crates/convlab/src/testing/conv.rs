//! The convolution's definition: every output, input-gradient and
//! weight-gradient element as the plain sum over its window, accumulated in
//! f64 and rounded once. Every algorithm is tested against these loops.
//!
//! `g` is a validated geometry (the kernels' view: padding on the top and
//! left, zeros outside the input); layouts as in `ops::conv2d`.

use crate::shape::ConvGeometry;

/// Input index along one axis read by output `o` through tap `k`, or
/// `None` in the padding.
#[inline]
fn input_at(o: usize, k: usize, s: usize, d: usize, pad: usize, len: usize) -> Option<usize> {
    (o * s + k * d).checked_sub(pad).filter(|&i| i < len)
}

/// Output index along one axis whose tap `k` reads input `i`, if any:
/// `o * s + k * d - pad = i`.
#[inline]
fn output_at(i: usize, k: usize, s: usize, d: usize, pad: usize, len: usize) -> Option<usize> {
    let at = (i + pad).checked_sub(k * d)?;
    (at % s == 0 && at / s < len).then_some(at / s)
}

/// `out[n, co, oy, ox] = sum_{ci, ki, kj} input[n, grp * cin_g + ci, iy,
/// ix] weight[co, ci, ki, kj]` (every element of `out` written).
pub fn forward(g: &ConvGeometry, input: &[f32], weight: &[f32], out: &mut [f32]) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    for n in 0..g.n {
        for co in 0..g.c_out {
            let grp = co / cout_g;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = 0.0f64;
                    for ci in 0..cin_g {
                        let c = grp * cin_g + ci;
                        for ki in 0..g.kh {
                            let Some(iy) = input_at(oy, ki, g.sh, g.dh, g.pt, g.h) else {
                                continue;
                            };
                            for kj in 0..g.kw {
                                let Some(ix) = input_at(ox, kj, g.sw, g.dw, g.pl, g.w) else {
                                    continue;
                                };
                                let x = input[((n * g.c_in + c) * g.h + iy) * g.w + ix];
                                let w = weight[((co * cin_g + ci) * g.kh + ki) * g.kw + kj];
                                acc += x as f64 * w as f64;
                            }
                        }
                    }
                    out[((n * g.c_out + co) * g.oh + oy) * g.ow + ox] = acc as f32;
                }
            }
        }
    }
}

/// `grad_input[n, c, iy, ix] = sum_{co, ki, kj} grad_output[n, co, oy, ox]
/// weight[co, ci, ki, kj]` over the outputs `(oy, ox)` whose tap `(ki, kj)`
/// reads `(iy, ix)` (every element of `grad_input` written).
pub fn backward_input(
    g: &ConvGeometry,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    for n in 0..g.n {
        for c in 0..g.c_in {
            let (grp, ci) = (c / cin_g, c % cin_g);
            for iy in 0..g.h {
                for ix in 0..g.w {
                    let mut acc = 0.0f64;
                    for co in grp * cout_g..(grp + 1) * cout_g {
                        for ki in 0..g.kh {
                            let Some(oy) = output_at(iy, ki, g.sh, g.dh, g.pt, g.oh) else {
                                continue;
                            };
                            for kj in 0..g.kw {
                                let Some(ox) = output_at(ix, kj, g.sw, g.dw, g.pl, g.ow) else {
                                    continue;
                                };
                                let gy = grad_output[((n * g.c_out + co) * g.oh + oy) * g.ow + ox];
                                let w = weight[((co * cin_g + ci) * g.kh + ki) * g.kw + kj];
                                acc += gy as f64 * w as f64;
                            }
                        }
                    }
                    grad_input[((n * g.c_in + c) * g.h + iy) * g.w + ix] = acc as f32;
                }
            }
        }
    }
}

/// `grad_weight[co, ci, ki, kj] = sum_{n, oy, ox} grad_output[n, co, oy,
/// ox] input[n, grp * cin_g + ci, iy, ix]` (every element written).
pub fn backward_weight(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    for co in 0..g.c_out {
        let grp = co / cout_g;
        for ci in 0..cin_g {
            let c = grp * cin_g + ci;
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let mut acc = 0.0f64;
                    for n in 0..g.n {
                        for oy in 0..g.oh {
                            let Some(iy) = input_at(oy, ki, g.sh, g.dh, g.pt, g.h) else {
                                continue;
                            };
                            for ox in 0..g.ow {
                                let Some(ix) = input_at(ox, kj, g.sw, g.dw, g.pl, g.w) else {
                                    continue;
                                };
                                let gy = grad_output[((n * g.c_out + co) * g.oh + oy) * g.ow + ox];
                                let x = input[((n * g.c_in + c) * g.h + iy) * g.w + ix];
                                acc += gy as f64 * x as f64;
                            }
                        }
                    }
                    grad_weight[((co * cin_g + ci) * g.kh + ki) * g.kw + kj] = acc as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(h: usize, w: usize, k: usize, s: usize, d: usize, p: usize) -> ConvGeometry {
        let out = |len: usize| (len + 2 * p - d * (k - 1) - 1) / s + 1;
        ConvGeometry {
            n: 2,
            c_in: 4,
            h,
            w,
            c_out: 6,
            kh: k,
            kw: k,
            groups: 2,
            sh: s,
            sw: s,
            dh: d,
            dw: d,
            pt: p,
            pl: p,
            oh: out(h),
            ow: out(w),
        }
    }

    /// The three loops are adjoint: `<conv(x), gy> = <x, dx(gy)>` and
    /// `= <w, dw(x, gy)>`, in f64, on strided, dilated, padded, grouped
    /// layers.
    #[test]
    fn the_gradients_are_the_adjoints_of_the_forward() {
        let wave = |i: usize, k: f64| ((i as f64 * k).sin() * 4.0).round() / 4.0;
        for (h, w, k, s, d, p) in [(7, 9, 3, 2, 1, 1), (8, 6, 2, 1, 2, 2), (5, 5, 3, 3, 2, 3)] {
            let g = geometry(h, w, k, s, d, p);
            let x: Vec<f32> = (0..g.n * g.c_in * h * w)
                .map(|i| wave(i, 0.7) as f32)
                .collect();
            let wt: Vec<f32> = (0..g.c_out * g.cin_g() * k * k)
                .map(|i| wave(i, 1.3) as f32)
                .collect();
            let ylen = g.n * g.c_out * g.oh * g.ow;
            let gy: Vec<f32> = (0..ylen).map(|i| wave(i, 0.37) as f32).collect();
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter().zip(b).map(|(&u, &v)| u as f64 * v as f64).sum()
            };
            let mut y = vec![f32::NAN; ylen];
            forward(&g, &x, &wt, &mut y);
            let mut gx = vec![f32::NAN; x.len()];
            backward_input(&g, &wt, &gy, &mut gx);
            let mut gw = vec![f32::NAN; wt.len()];
            backward_weight(&g, &x, &gy, &mut gw);
            let (a, b, c) = (dot(&y, &gy), dot(&x, &gx), dot(&wt, &gw));
            assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {b}");
            assert!((a - c).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {c}");
        }
    }
}
