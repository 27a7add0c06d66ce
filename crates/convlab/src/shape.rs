//! Checked window geometry shared by every op: padding, output sizes,
//! windows. All arithmetic is checked; a window that does not fit is an error.
//!
//! One vocabulary everywhere in convlab:
//! `n` batch, `c_in`/`c_out` channels, `h, w` input height and width,
//! `kh, kw` kernel size, `sh, sw` stride, `dh, dw` dilation,
//! `pt, pb, pl, pr` padding top/bottom/left/right, `oh, ow` output size.

use crate::error::{Error, Result};

/// A `(height, width)` pair of sizes; built from one `usize` (both sides),
/// a tuple or an array, as PyTorch accepts `3` or `(3, 3)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pair(pub usize, pub usize);

impl Pair {
    /// The height component.
    pub fn h(self) -> usize {
        self.0
    }
    /// The width component.
    pub fn w(self) -> usize {
        self.1
    }
}

impl From<usize> for Pair {
    fn from(v: usize) -> Pair {
        Pair(v, v)
    }
}
impl From<(usize, usize)> for Pair {
    fn from((h, w): (usize, usize)) -> Pair {
        Pair(h, w)
    }
}
impl From<[usize; 2]> for Pair {
    fn from([h, w]: [usize; 2]) -> Pair {
        Pair(h, w)
    }
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == self.1 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "({}, {})", self.0, self.1)
        }
    }
}

/// Convolution padding: explicit sides, or PyTorch's `"same"` / `"valid"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Explicit zeros (or `padding_mode` values) on each side.
    Sides {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
    /// Output as large as the input (stride 1 only); an even total goes one
    /// more to the bottom/right, as PyTorch does.
    Same,
    /// No padding.
    Valid,
}

impl Padding {
    /// Four explicit sides.
    pub fn sides(top: usize, bottom: usize, left: usize, right: usize) -> Padding {
        Padding::Sides {
            top,
            bottom,
            left,
            right,
        }
    }

    /// Resolve to `[top, bottom, left, right]` for a kernel and dilation.
    pub fn resolve(self, op: &'static str, k: Pair, d: Pair, s: Pair) -> Result<[usize; 4]> {
        match self {
            Padding::Sides {
                top,
                bottom,
                left,
                right,
            } => Ok([top, bottom, left, right]),
            Padding::Valid => Ok([0; 4]),
            Padding::Same => {
                if s != Pair(1, 1) {
                    return Err(Error::param(
                        op,
                        "padding",
                        format!("'same' is not supported for strided convolutions (stride {s})"),
                    ));
                }
                let total = |k: usize, d: usize| -> Result<usize> {
                    d.checked_mul(k.saturating_sub(1))
                        .ok_or_else(|| Error::too_large(op, "dilation * kernel overflows"))
                };
                let th = total(k.0, d.0)?;
                let tw = total(k.1, d.1)?;
                Ok([th / 2, th - th / 2, tw / 2, tw - tw / 2])
            }
        }
    }
}

impl From<usize> for Padding {
    fn from(p: usize) -> Padding {
        Padding::sides(p, p, p, p)
    }
}
impl From<(usize, usize)> for Padding {
    fn from((h, w): (usize, usize)) -> Padding {
        Padding::sides(h, h, w, w)
    }
}
impl From<[usize; 2]> for Padding {
    fn from([h, w]: [usize; 2]) -> Padding {
        Padding::sides(h, h, w, w)
    }
}
impl From<Pair> for Padding {
    fn from(p: Pair) -> Padding {
        Padding::sides(p.0, p.0, p.1, p.1)
    }
}
/// `[top, bottom, left, right]`.
impl From<[usize; 4]> for Padding {
    fn from([t, b, l, r]: [usize; 4]) -> Padding {
        Padding::sides(t, b, l, r)
    }
}

impl std::str::FromStr for Padding {
    type Err = Error;
    /// `"same"`, `"valid"`, `"N"` or `"H,W"`.
    fn from_str(s: &str) -> Result<Padding> {
        let s = s.trim();
        match s {
            "same" => return Ok(Padding::Same),
            "valid" => return Ok(Padding::Valid),
            _ => {}
        }
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let nums: Option<Vec<usize>> = parts.iter().map(|p| p.parse().ok()).collect();
        match nums.as_deref() {
            Some([p]) => Ok((*p).into()),
            Some([h, w]) => Ok((*h, *w).into()),
            Some([t, b, l, r]) => Ok(Padding::sides(*t, *b, *l, *r)),
            _ => Err(Error::param(
                "padding",
                "padding",
                format!("'{s}' is not 'same', 'valid', N, 'H,W' or 'T,B,L,R'"),
            )),
        }
    }
}

/// How padded values are made (PyTorch's `padding_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingMode {
    /// Zeros (the default).
    #[default]
    Zeros,
    /// Mirror without repeating the edge: `[c b | a b c d | c b]`.
    Reflect,
    /// Repeat the edge value: `[a a | a b c d | d d]`.
    Replicate,
    /// Wrap around: `[c d | a b c d | a b]`.
    Circular,
}

impl std::str::FromStr for PaddingMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<PaddingMode> {
        match s.trim() {
            "zeros" => Ok(PaddingMode::Zeros),
            "reflect" => Ok(PaddingMode::Reflect),
            "replicate" => Ok(PaddingMode::Replicate),
            "circular" => Ok(PaddingMode::Circular),
            other => Err(Error::param(
                "padding_mode",
                "padding_mode",
                format!("'{other}' is not one of zeros, reflect, replicate, circular"),
            )),
        }
    }
}

/// Reject a zero stride, naming the op and parameter.
pub fn check_positive(op: &'static str, param: &'static str, v: Pair) -> Result<()> {
    if v.0 == 0 || v.1 == 0 {
        return Err(Error::param(
            op,
            param,
            format!("{v} is invalid: must be at least 1"),
        ));
    }
    Ok(())
}

/// `dilation * (k - 1) + 1`, checked.
pub fn effective_kernel(op: &'static str, k: usize, d: usize) -> Result<usize> {
    k.checked_sub(1)
        .and_then(|k1| d.checked_mul(k1))
        .and_then(|v| v.checked_add(1))
        .ok_or_else(|| Error::too_large(op, format!("kernel {k} with dilation {d} overflows")))
}

/// Output length of a convolution along one axis:
/// `(in + pad_before + pad_after - (d*(k-1)+1)) / s + 1`, or an error when the
/// dilated kernel is larger than the padded input.
pub fn conv_out_len(
    op: &'static str,
    axis: &str,
    input: usize,
    k: usize,
    s: usize,
    pad_before: usize,
    pad_after: usize,
    d: usize,
) -> Result<usize> {
    if s == 0 {
        return Err(Error::param(
            op,
            "stride",
            "0 is invalid: must be at least 1",
        ));
    }
    let eff = effective_kernel(op, k, d)?;
    let padded = input
        .checked_add(pad_before)
        .and_then(|v| v.checked_add(pad_after))
        .ok_or_else(|| Error::too_large(op, "padded input size overflows"))?;
    // PyTorch's sizes are int64: beyond that no tensor, padding or kernel
    // extent exists there, and index arithmetic here could wrap.
    for (what, v) in [("padded input", padded), ("dilated kernel", eff)] {
        if v > i64::MAX as usize {
            return Err(Error::too_large(
                op,
                format!(
                    "{what} {axis} {v} is larger than 2^63 - 1, the largest size PyTorch allows"
                ),
            ));
        }
    }
    if eff > padded {
        let what = if d > 1 {
            format!("dilated kernel {axis} {eff} (kernel {k}, dilation {d})")
        } else {
            format!("kernel {axis} {k}")
        };
        return Err(Error::shape(
            op,
            format!(
                "{what} is larger than the padded input {axis} {padded} ({input} + padding {pad_before}+{pad_after})"
            ),
        ));
    }
    Ok((padded - eff) / s + 1)
}

/// Output length of a pooling window along one axis, PyTorch's
/// `pooling_output_shape` (with `ceil_mode`, the last window must start
/// inside the input or the left padding).
///
/// With `ceil_mode` a kernel one or more taps larger than the padded input
/// can still give one window, as in PyTorch: `MaxPool2d(3, 2, ceil_mode=True)`
/// on a 2x2 input gives 1x1 (the window is clipped to the input).
pub fn pool_out_len(
    op: &'static str,
    axis: &str,
    input: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    ceil_mode: bool,
) -> Result<usize> {
    let eff = effective_kernel(op, k, d)?;
    let padded = p
        .checked_mul(2)
        .and_then(|v| v.checked_add(input))
        .ok_or_else(|| Error::too_large(op, "padded input size overflows"))?;
    if s == 0 {
        return Err(Error::param(
            op,
            "stride",
            "0 is invalid: must be at least 1",
        ));
    }
    // i128 holds every usize difference exactly, so PyTorch's signed
    // `div_rtn(in + 2p - eff + (ceil ? s - 1 : 0), s) + 1` is computed as written.
    let (s_i, eff_i, padded_i) = (s as i128, eff as i128, padded as i128);
    let num = padded_i - eff_i + if ceil_mode { s_i - 1 } else { 0 };
    let mut out = num.div_euclid(s_i) + 1;
    if ceil_mode && (out - 1) * s_i >= input as i128 + p as i128 {
        out -= 1;
    }
    if out < 1 {
        return Err(Error::shape(
            op,
            format!(
                "kernel {axis} {eff} is larger than the padded input {axis} {padded} ({input} + 2*padding {p}): output size would be empty"
            ),
        ));
    }
    usize::try_from(out).map_err(|_| Error::too_large(op, "output size overflows"))
}

/// Output length of a transposed convolution along one axis:
/// `(in - 1)*s - 2p + d*(k - 1) + output_padding + 1`.
pub fn conv_transpose_out_len(
    op: &'static str,
    axis: &str,
    input: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    output_padding: usize,
) -> Result<usize> {
    let eff = effective_kernel(op, k, d)?;
    let full = input
        .saturating_sub(1)
        .checked_mul(s)
        .and_then(|v| v.checked_add(eff))
        .and_then(|v| v.checked_add(output_padding))
        .ok_or_else(|| Error::too_large(op, "output size overflows"))?;
    let two_p = p
        .checked_mul(2)
        .ok_or_else(|| Error::too_large(op, "padding overflows"))?;
    if input == 0 || two_p >= full {
        return Err(Error::shape(
            op,
            format!(
                "output {axis} would be {} ((in {input} - 1) * stride {s} - 2 * padding {p} + dilation {d} * (kernel {k} - 1) + output_padding {output_padding} + 1): must be positive",
                full as i128 - two_p as i128
            ),
        ));
    }
    Ok(full - two_p)
}

/// The full geometry of one 2-D convolution, validated. Kernels take this
/// and trust it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub groups: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeometry {
    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }
    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }
    /// Multiply-adds of the forward pass (the bench's `flops` / 2).
    pub fn macs(&self) -> u128 {
        self.n as u128
            * self.c_out as u128
            * self.oh as u128
            * self.ow as u128
            * self.cin_g() as u128
            * self.kh as u128
            * self.kw as u128
    }
}

// ---------------------------------------------------------------------------
// Pooling windows, for one, two or three spatial axes. A pooling of rank
// `r < 3` is the 3-D pooling whose leading `3 - r` axes are
// [`PoolAxis::UNIT`], so one geometry, one set of drivers and one set of
// reference loops serve every rank.

/// The taps of one pooling window along one axis that land in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisWindow {
    /// The first in-bounds input position (0 when `count == 0`).
    pub start: usize,
    /// How many taps `start, start + dilation, ...` are in bounds.
    pub count: usize,
    /// The window length PyTorch's `count_include_pad` divides by:
    /// `min(i0 + k, len + p) - i0` with `i0 = o*s - p`, i.e. padding
    /// counts but a ceil-mode window hanging past the right padding is
    /// clipped (dilation 1 only, as for average pooling).
    pub padded_count: usize,
}

impl AxisWindow {
    /// A window of `count` consecutive positions from `start`, all inside
    /// the input (adaptive and fractional pooling).
    pub fn span(start: usize, count: usize) -> AxisWindow {
        AxisWindow {
            start,
            count,
            padded_count: count,
        }
    }
}

/// One spatial axis of a pooling, validated: input length `len >= 1`,
/// output length `out`, and the window's `kernel`, `stride`, `padding`
/// (on both sides, at most half the kernel) and `dilation`, all `>= 1`
/// but the padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolAxis {
    pub len: usize,
    pub out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl PoolAxis {
    /// The axis a lower-rank pooling does not have: one element, one
    /// output, a window of one tap.
    pub const UNIT: PoolAxis = PoolAxis {
        len: 1,
        out: 1,
        kernel: 1,
        stride: 1,
        padding: 0,
        dilation: 1,
    };

    /// Window `o` of this axis. Computed in u128 so no product of
    /// user-given sizes can overflow.
    pub fn window(&self, o: usize) -> AxisWindow {
        let w = |v: usize| v as u128;
        let (o, len, k, s, p, d) = (
            w(o),
            w(self.len),
            w(self.kernel),
            w(self.stride),
            w(self.padding),
            w(self.dilation),
        );
        // Positions are in padded coordinates: tap j sits at origin + j*d,
        // and the input occupies [p, p + len).
        let origin = o * s;
        let j_first = if origin >= p {
            0
        } else {
            (p - origin).div_ceil(d)
        };
        let j_end = if origin >= p + len {
            0
        } else {
            k.min((p + len - origin).div_ceil(d))
        };
        let count = j_end.saturating_sub(j_first);
        let start = if count > 0 {
            origin + j_first * d - p
        } else {
            0
        };
        let padded_count = (origin + k).min(len + 2 * p).saturating_sub(origin);
        // All three are at most `len` or `k`, both usize.
        AxisWindow {
            start: start as usize,
            count: count as usize,
            padded_count: padded_count as usize,
        }
    }

    /// Every window of this axis, in output order.
    pub fn windows(&self) -> Vec<AxisWindow> {
        (0..self.out).map(|o| self.window(o)).collect()
    }

    /// Whether every window is `kernel` consecutive taps inside the input:
    /// no padding, dilation 1, no ceil-mode overhang.
    pub fn windows_inside(&self) -> bool {
        self.padding == 0
            && self.dilation == 1
            && (self.out == 0 || (self.out - 1) * self.stride + self.kernel <= self.len)
    }
}

/// The input range pooled by output `i` of `out` along an axis of length
/// `len` in adaptive pooling: PyTorch's `start_index = floor(i*len/out)`
/// and `end_index = ceil((i+1)*len/out)`, in u128 so `i * len` cannot
/// overflow. Bins overlap by one element when `out` does not divide `len`.
pub fn adaptive_window(i: usize, out: usize, len: usize) -> AxisWindow {
    let (i, out, len) = (i as u128, out as u128, len as u128);
    let start = i * len / out;
    let end = ((i + 1) * len).div_ceil(out);
    // Both are at most `len`.
    AxisWindow::span(start as usize, (end - start) as usize)
}

/// The spatial axes' names for error messages, by rank.
pub fn spatial_axis_names(rank: usize) -> &'static [&'static str] {
    match rank {
        1 => &["length"],
        2 => &["height", "width"],
        _ => &["depth", "height", "width"],
    }
}

/// The validated geometry of one pooling over `rank` (1, 2 or 3) spatial
/// axes. Kernels and drivers take it and trust it: `c >= 1`, every input
/// length `>= 1`, and every size product fits in `usize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// `false` for an input without the batch axis (then `n == 1`).
    pub batched: bool,
    pub n: usize,
    pub c: usize,
    /// The number of spatial axes of the input, 1 to 3.
    pub rank: usize,
    /// Depth, height and width. A 2-D pooling has [`PoolAxis::UNIT`]
    /// depth; a 1-D pooling unit depth and height (its axis is the width).
    pub axes: [PoolAxis; 3],
}

impl PoolGeometry {
    /// The depth axis (unit below rank 3).
    pub fn depth(&self) -> &PoolAxis {
        &self.axes[0]
    }
    /// The height axis (unit below rank 2).
    pub fn height(&self) -> &PoolAxis {
        &self.axes[1]
    }
    /// The width axis (the only axis of a 1-D pooling).
    pub fn width(&self) -> &PoolAxis {
        &self.axes[2]
    }
    /// Number of planes (`n * c`); each plane holds the spatial axes.
    pub fn planes(&self) -> usize {
        self.n * self.c
    }
    /// Input elements per plane.
    pub fn plane_len(&self) -> usize {
        self.axes.iter().map(|a| a.len).product()
    }
    /// Output elements per plane.
    pub fn out_plane_len(&self) -> usize {
        self.axes.iter().map(|a| a.out).product()
    }
    /// The input shape, with or without the batch axis as given.
    pub fn in_shape(&self) -> Vec<usize> {
        self.shape_of(self.axes.map(|a| a.len))
    }
    /// The output shape, of the same rank as the input.
    pub fn out_shape(&self) -> Vec<usize> {
        self.shape_of(self.axes.map(|a| a.out))
    }
    /// `[n, c, spatial..]` (or `[c, spatial..]` unbatched) with the last
    /// `rank` of `spatial`.
    pub fn shape_of(&self, spatial: [usize; 3]) -> Vec<usize> {
        let batch = if self.batched { Some(self.n) } else { None };
        batch
            .into_iter()
            .chain([self.c])
            .chain(spatial[3 - self.rank..].iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d2l_padding_and_stride_shapes() {
        // 8x8, k3 p1 -> 8; k3 p1 s2 -> 4; k(3,5) p(0,1) s(3,4) -> 2x2.
        assert_eq!(conv_out_len("c", "height", 8, 3, 1, 1, 1, 1).unwrap(), 8);
        assert_eq!(conv_out_len("c", "height", 8, 3, 2, 1, 1, 1).unwrap(), 4);
        assert_eq!(conv_out_len("c", "height", 8, 3, 3, 0, 0, 1).unwrap(), 2);
        assert_eq!(conv_out_len("c", "width", 8, 5, 4, 1, 1, 1).unwrap(), 2);
        assert!(conv_out_len("c", "height", 2, 3, 1, 0, 0, 1).is_err());
    }

    #[test]
    fn pool_ceil_mode_matches_pytorch() {
        // PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 6 -> 3, on 5 -> 2.
        assert_eq!(pool_out_len("p", "h", 6, 3, 2, 0, 1, true).unwrap(), 3);
        assert_eq!(pool_out_len("p", "h", 5, 3, 2, 0, 1, true).unwrap(), 2);
        assert_eq!(pool_out_len("p", "h", 6, 3, 2, 0, 1, false).unwrap(), 2);
        // The last window may not start in the right padding only.
        assert_eq!(pool_out_len("p", "h", 4, 2, 2, 1, 1, true).unwrap(), 3);
        // PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 2x2 -> 1x1; without ceil it is an error.
        assert_eq!(pool_out_len("p", "h", 2, 3, 2, 0, 1, true).unwrap(), 1);
        assert!(pool_out_len("p", "h", 2, 3, 2, 0, 1, false).is_err());
        assert!(pool_out_len("p", "h", 1, 3, 2, 0, 1, true).is_err());
    }

    #[test]
    fn same_padding_even_kernel_goes_bottom_right() {
        let p = Padding::Same
            .resolve("c", Pair(4, 2), Pair(1, 1), Pair(1, 1))
            .unwrap();
        assert_eq!(p, [1, 2, 0, 1]);
        assert!(Padding::Same
            .resolve("c", Pair(3, 3), Pair(1, 1), Pair(2, 2))
            .is_err());
    }
}
