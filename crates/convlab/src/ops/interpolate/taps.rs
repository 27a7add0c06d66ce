//! The weights of one axis of a separable resampling, computed with
//! PyTorch's index arithmetic (float32 scales, `floorf`, the border clamps
//! of `aten/src/ATen/native/UpSample.h` and the antialiasing filters of its
//! CPU kernels), so that every mode picks the same source pixels PyTorch
//! picks.
//!
//! Each mode is a matrix with a band of `taps` consecutive input indices
//! per output index: output `i` is `Σ_k weights[i * taps + k] * x[start[i] + k]`.

/// One axis of a separable resampling: a banded `out_len x in_len` matrix.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AxisTaps {
    pub in_len: usize,
    pub out_len: usize,
    /// Width of every band (windows narrower than it carry zero weights).
    pub taps: usize,
    /// First input index of each output's band; `start + taps <= in_len`.
    pub start: Vec<usize>,
    /// `out_len * taps` weights, row-major.
    pub weights: Vec<f32>,
}

impl AxisTaps {
    /// The band matrix whose row `i` holds the `(input index, weight)`
    /// pairs `row(i)` lists (an index listed twice adds its weights, as a
    /// border clamp does); every index must be below `in_len`.
    pub fn from_rows(
        in_len: usize,
        out_len: usize,
        row: impl Fn(usize, &mut Vec<(usize, f32)>),
    ) -> AxisTaps {
        let mut rows = Vec::with_capacity(out_len);
        let mut pairs = Vec::new();
        let mut taps = 1;
        for i in 0..out_len {
            pairs.clear();
            row(i, &mut pairs);
            let lo = pairs.iter().map(|p| p.0).min().unwrap_or(0);
            let hi = pairs.iter().map(|p| p.0).max().unwrap_or(0);
            taps = taps.max(hi - lo + 1);
            rows.push((lo, pairs.clone()));
        }
        let taps = taps.min(in_len.max(1));
        let mut start = Vec::with_capacity(out_len);
        let mut weights = vec![0.0f32; out_len * taps];
        for (i, (lo, pairs)) in rows.into_iter().enumerate() {
            let s = lo.min(in_len.saturating_sub(taps));
            start.push(s);
            for (j, w) in pairs {
                weights[i * taps + j - s] += w;
            }
        }
        AxisTaps {
            in_len,
            out_len,
            taps,
            start,
            weights,
        }
    }

    /// Whether the matrix is the identity (output `i` is input `i`).
    pub fn is_identity(&self) -> bool {
        self.in_len == self.out_len
            && (0..self.out_len).all(|i| {
                let row = &self.weights[i * self.taps..(i + 1) * self.taps];
                row.iter().enumerate().all(|(k, &w)| {
                    let at = self.start[i] + k;
                    w == if at == i { 1.0 } else { 0.0 }
                })
            })
    }

    /// The transposed matrix (the backward pass of this axis), as bands
    /// again: input `j` gathers from the outputs whose band holds it.
    pub fn transpose(&self) -> AxisTaps {
        let mut cols: Vec<Vec<(usize, f32)>> = vec![Vec::new(); self.in_len];
        for i in 0..self.out_len {
            for k in 0..self.taps {
                let w = self.weights[i * self.taps + k];
                if w != 0.0 {
                    cols[self.start[i] + k].push((i, w));
                }
            }
        }
        AxisTaps::from_rows(self.out_len, self.in_len, |j, out| {
            out.extend_from_slice(&cols[j])
        })
    }
}

/// PyTorch's `compute_scales_value<float>`: `1 / scale` when the caller
/// passed a positive scale factor, else `input / output`.
fn scales_value(scale: Option<f64>, in_len: usize, out_len: usize) -> f32 {
    match scale {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => in_len as f32 / out_len as f32,
    }
}

/// PyTorch's `area_pixel_compute_scale<float>`.
fn pixel_scale(in_len: usize, out_len: usize, align_corners: bool, scale: Option<f64>) -> f32 {
    if align_corners {
        if out_len > 1 {
            (in_len - 1) as f32 / (out_len - 1) as f32
        } else {
            0.0
        }
    } else {
        scales_value(scale, in_len, out_len)
    }
}

/// PyTorch's `area_pixel_compute_source_index<float>`: where output `i`
/// samples the input (negative only for cubic, which needs the sign).
fn source_index(scale: f32, i: usize, align_corners: bool, cubic: bool) -> f32 {
    if align_corners {
        scale * i as f32
    } else {
        let s = scale * (i as f32 + 0.5) - 0.5;
        if !cubic && s < 0.0 {
            0.0
        } else {
            s
        }
    }
}

/// PyTorch's `guard_index_and_lambda`: the integer part (at most
/// `len - 1`) and the fraction clamped to [0, 1].
fn index_and_lambda(real: f32, len: usize) -> (i64, f32) {
    let idx = (real.floor() as i64).min(len as i64 - 1);
    (idx, (real - idx as f32).clamp(0.0, 1.0))
}

/// How one axis of a resampling reads its input: PyTorch's rule for each
/// mode, with the scale already reduced to the float32 value the kernels
/// use. [`AxisRule::pairs`] lists the `(input index, weight)` pairs of one
/// output index, as PyTorch's kernels visit them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum AxisRule {
    /// `mode='nearest'`: `floor(i * scale)` in float32, PyTorch's legacy
    /// rule. PyTorch's 2-D kernel (`shortcuts`) copies when the sizes
    /// agree and takes `i / 2` when the output is twice the input, whatever
    /// the scale factor; its 1-D and 3-D kernels always apply the rule.
    Nearest { scale: f32, shortcuts: bool },
    /// `mode='nearest-exact'`: `floor((i + 0.5) * scale)`, the product in
    /// double and rounded to float as PyTorch's `floorf` call does.
    NearestExact { scale: f32 },
    /// `mode='linear'` along one axis (each axis of bilinear and
    /// trilinear): two neighbours; a copy when the sizes agree.
    Linear { ratio: f32, align_corners: bool },
    /// `mode='bicubic'` along one axis: four neighbours clamped at the
    /// borders, `A = -0.75` (no copy shortcut, as in PyTorch's forward).
    Cubic { ratio: f32, align_corners: bool },
    /// `mode='area'` (adaptive average pooling): output `i` averages
    /// inputs `floor(i * in / out) .. ceil((i + 1) * in / out)`.
    Area,
    /// `antialias=True`: the filter stretched by the scale when shrinking
    /// (Pillow's resampling, as PyTorch's `_compute_indices_min_size_weights_aa`),
    /// the weights normalised to sum to one.
    Antialiased {
        filter: AaFilter,
        scale: f32,
        support: f32,
        invscale: f32,
        max_taps: i64,
    },
}

impl AxisRule {
    /// The rule of `mode` for an axis of `in_len` resized to `out_len`
    /// with the user's `scale` factor (`None` when the sizes define it).
    /// `None` for an antialiased axis whose size does not change: PyTorch
    /// then leaves it untouched, whatever the scale factor.
    pub fn new(
        kind: RuleKind,
        in_len: usize,
        out_len: usize,
        align_corners: bool,
        scale: Option<f64>,
    ) -> Option<AxisRule> {
        let ratio = pixel_scale(in_len, out_len, align_corners, scale);
        Some(match kind {
            RuleKind::Nearest { shortcuts } => AxisRule::Nearest {
                scale: scales_value(scale, in_len, out_len),
                shortcuts,
            },
            RuleKind::NearestExact => AxisRule::NearestExact {
                scale: scales_value(scale, in_len, out_len),
            },
            RuleKind::Linear => AxisRule::Linear {
                ratio,
                align_corners,
            },
            RuleKind::Cubic => AxisRule::Cubic {
                ratio,
                align_corners,
            },
            RuleKind::Area => AxisRule::Area,
            RuleKind::Antialiased(filter) => {
                if in_len == out_len {
                    return None;
                }
                let half = filter.interp_size() as f64 * 0.5;
                let support = if ratio >= 1.0 {
                    (half * ratio as f64) as f32
                } else {
                    half as f32
                };
                AxisRule::Antialiased {
                    filter,
                    scale: ratio,
                    support,
                    invscale: if ratio >= 1.0 {
                        (1.0 / ratio as f64) as f32
                    } else {
                        1.0
                    },
                    max_taps: support.ceil() as i64 * 2 + 1,
                }
            }
        })
    }

    /// Append the `(input index, weight)` pairs output `i` reads.
    pub fn pairs(&self, in_len: usize, out_len: usize, i: usize, out: &mut Vec<(usize, f32)>) {
        let last = in_len - 1;
        match *self {
            AxisRule::Nearest { scale, shortcuts } => {
                let j = if shortcuts && out_len == in_len {
                    i
                } else if shortcuts && out_len == 2 * in_len {
                    i / 2
                } else {
                    ((i as f32 * scale).floor() as usize).min(last)
                };
                out.push((j, 1.0));
            }
            AxisRule::NearestExact { scale } => {
                let f = ((i as f64 + 0.5) * scale as f64) as f32;
                out.push(((f.floor() as usize).min(last), 1.0));
            }
            AxisRule::Linear {
                ratio,
                align_corners,
            } => {
                if out_len == in_len {
                    out.push((i, 1.0));
                    return;
                }
                let real = source_index(ratio, i, align_corners, false);
                let (i0, l1) = index_and_lambda(real, in_len);
                let i0 = i0.max(0) as usize;
                let i1 = if i0 < last { i0 + 1 } else { i0 };
                out.push((i0, 1.0 - l1));
                out.push((i1, l1));
            }
            AxisRule::Cubic {
                ratio,
                align_corners,
            } => {
                let real = source_index(ratio, i, align_corners, true);
                let (idx, t) = index_and_lambda(real, in_len);
                for (k, w) in cubic_coefficients(t).into_iter().enumerate() {
                    out.push(((idx - 1 + k as i64).clamp(0, last as i64) as usize, w));
                }
            }
            AxisRule::Area => {
                let lo = i * in_len / out_len;
                let hi = ((i + 1) * in_len).div_ceil(out_len);
                let w = 1.0 / (hi - lo) as f32;
                out.extend((lo..hi).map(|j| (j, w)));
            }
            AxisRule::Antialiased {
                filter,
                scale,
                support,
                invscale,
                max_taps,
            } => {
                let center = (scale as f64 * (i as f64 + 0.5)) as f32;
                let (c, s) = (center as f64, support as f64);
                let xmin = ((c - s + 0.5) as i64).max(0);
                let xsize = (((c + s + 0.5) as i64).min(in_len as i64) - xmin).clamp(0, max_taps);
                let first = out.len();
                let mut total = 0.0f32;
                for j in 0..xsize {
                    let arg = (((j + xmin) as f32 - center) as f64 + 0.5) * invscale as f64;
                    let w = filter.eval(arg as f32);
                    total += w;
                    out.push(((j + xmin) as usize, w));
                }
                if total != 0.0 {
                    out[first..].iter_mut().for_each(|p| p.1 /= total);
                }
            }
        }
    }

    /// The band matrix of this rule.
    pub fn taps(&self, in_len: usize, out_len: usize) -> AxisTaps {
        AxisTaps::from_rows(in_len, out_len, |i, out| {
            self.pairs(in_len, out_len, i, out)
        })
    }
}

/// Which rule an axis follows (the mode, before sizes and scales).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleKind {
    Nearest { shortcuts: bool },
    NearestExact,
    Linear,
    Cubic,
    Area,
    Antialiased(AaFilter),
}

/// The cubic convolution kernel of PyTorch's non-antialiased bicubic
/// (`A = -0.75`): the four weights at distance `t` from the left neighbour.
pub(crate) fn cubic_coefficients(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let x2 = 1.0 - t;
    [c2(t + 1.0), c1(t), c1(x2), c2(x2 + 1.0)]
}

/// The filter of an antialiased resampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AaFilter {
    /// The triangle (bilinear), support 1.
    Triangle,
    /// Keys' cubic with `a = -0.5` (bicubic, as Pillow), support 2.
    Cubic,
}

impl AaFilter {
    /// PyTorch's `interp_size`: twice the filter's support.
    fn interp_size(self) -> f32 {
        match self {
            AaFilter::Triangle => 2.0,
            AaFilter::Cubic => 4.0,
        }
    }

    /// The filter at `x`, in double as PyTorch's literals make it.
    fn eval(self, x: f32) -> f32 {
        let x = x.abs() as f64;
        match self {
            AaFilter::Triangle => {
                if x < 1.0 {
                    (1.0 - x) as f32
                } else {
                    0.0
                }
            }
            AaFilter::Cubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    (((A + 2.0) * x - (A + 3.0)) * x * x + 1.0) as f32
                } else if x < 2.0 {
                    ((((x - 5.0) * x + 8.0) * x - 4.0) * A) as f32
                } else {
                    0.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(t: &AxisTaps) -> Vec<Vec<f32>> {
        (0..t.out_len)
            .map(|i| {
                let mut row = vec![0.0; t.in_len];
                for k in 0..t.taps {
                    row[t.start[i] + k] += t.weights[i * t.taps + k];
                }
                row
            })
            .collect()
    }

    fn rule(kind: RuleKind, n: usize, o: usize, align: bool, scale: Option<f64>) -> AxisTaps {
        AxisRule::new(kind, n, o, align, scale).unwrap().taps(n, o)
    }

    #[test]
    fn bilinear_2x_weights_are_pytorchs() {
        // F.interpolate(eye(3)[None], size=6, mode='linear') rows.
        let d = dense(&rule(RuleKind::Linear, 3, 6, false, None));
        assert_eq!(d[0], [1.0, 0.0, 0.0]);
        assert_eq!(d[1], [0.75, 0.25, 0.0]);
        assert_eq!(d[2], [0.25, 0.75, 0.0]);
        assert_eq!(d[5], [0.0, 0.0, 1.0]);
    }

    #[test]
    fn transpose_is_the_transposed_matrix() {
        for t in [
            rule(RuleKind::Cubic, 5, 9, false, None),
            rule(RuleKind::Area, 7, 3, false, None),
            rule(RuleKind::Nearest { shortcuts: true }, 4, 11, false, None),
            rule(RuleKind::Antialiased(AaFilter::Cubic), 17, 5, false, None),
        ] {
            let (a, b) = (dense(&t), dense(&t.transpose()));
            for i in 0..t.out_len {
                for j in 0..t.in_len {
                    assert_eq!(a[i][j], b[j][i], "({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn rows_of_interpolating_modes_sum_to_one() {
        for t in [
            rule(RuleKind::Cubic, 6, 4, true, None),
            rule(RuleKind::Linear, 5, 13, false, Some(2.7)),
            rule(
                RuleKind::Antialiased(AaFilter::Triangle),
                30,
                7,
                false,
                None,
            ),
            rule(RuleKind::Area, 10, 4, false, None),
        ] {
            for row in dense(&t) {
                let s: f32 = row.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{s}");
            }
        }
        assert!(rule(RuleKind::Linear, 4, 4, true, Some(1.3)).is_identity());
        assert!(!rule(RuleKind::Cubic, 4, 4, false, Some(1.3)).is_identity());
        assert!(AxisRule::new(
            RuleKind::Antialiased(AaFilter::Cubic),
            4,
            4,
            false,
            Some(1.3)
        )
        .is_none());
    }
}
