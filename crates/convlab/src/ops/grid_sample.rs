//! Sampling at arbitrary points: PyTorch's `F.grid_sample` (4-D input with
//! a `[N, H_out, W_out, 2]` grid, 5-D input with a `[N, D_out, H_out,
//! W_out, 3]` grid; bilinear, nearest and, for 4-D, bicubic; zeros, border
//! and reflection padding; `align_corners`) with gradients for the input
//! and the grid, and `F.affine_grid`, the grid of an affine map, with its
//! gradient for `theta`. Together: a spatial transformer.
//!
//! Grid values are normalised: -1 and 1 are the input's edges (the centres
//! of its corner pixels with `align_corners`), `x` indexing the width.
//!
//! ```
//! use convlab::{ops::{affine_grid, grid_sample, GridSampleParams}, Tensor};
//! let x = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
//! let identity = Tensor::from_slice(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], &[1, 2, 3])?;
//! let grid = affine_grid(&identity, &[1, 1, 4, 4], false)?;
//! assert_eq!(grid_sample(&x, &grid, &GridSampleParams::default())?, x);
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::ops::interpolate::taps::cubic_coefficients;
use crate::tensor::Tensor;
use rayon::prelude::*;

mod affine;
pub use affine::{affine_grid, affine_grid_backward};

/// `F.grid_sample`'s `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GridSampleMode {
    /// Bilinear (trilinear for 5-D input) between the 4 (8) neighbours.
    #[default]
    Bilinear,
    /// The nearest pixel (ties to even, as `nearbyint`).
    Nearest,
    /// Bicubic between 16 neighbours (`A = -0.75`); tricubic between 64 on
    /// a 5-D input, as PyTorch.
    Bicubic,
}

/// `F.grid_sample`'s `padding_mode`: what lies outside the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GridSamplePadding {
    /// Zeros.
    #[default]
    Zeros,
    /// The border pixels (coordinates clipped).
    Border,
    /// The input mirrored at its edges (coordinates reflected).
    Reflection,
}

/// The options of `F.grid_sample(input, grid, mode='bilinear',
/// padding_mode='zeros', align_corners=False)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GridSampleParams {
    /// How a point between pixels is read.
    pub mode: GridSampleMode,
    /// What a point outside the input reads.
    pub padding_mode: GridSamplePadding,
    /// Whether -1 and 1 are the centres of the corner pixels (`true`) or
    /// their outer edges (`false`).
    pub align_corners: bool,
}

impl GridSampleParams {
    /// Set the mode.
    pub fn mode(mut self, mode: GridSampleMode) -> Self {
        self.mode = mode;
        self
    }
    /// Set the padding mode.
    pub fn padding_mode(mut self, padding: GridSamplePadding) -> Self {
        self.padding_mode = padding;
        self
    }
    /// Set `align_corners`.
    pub fn align_corners(mut self, align: bool) -> Self {
        self.align_corners = align;
        self
    }
}

/// A validated grid sampling: `n` images of `c` channels and spatial sizes
/// `size` (outermost first), sampled at `points` grid points each.
#[derive(Clone, Debug)]
struct Geometry {
    n: usize,
    c: usize,
    /// Input spatial sizes, `[H, W]` or `[D, H, W]`.
    size: Vec<usize>,
    /// Row-major strides of a plane, per spatial axis.
    strides: [usize; 3],
    /// Input pixels per plane.
    plane: usize,
    /// Grid points per image.
    points: usize,
    out_shape: Vec<usize>,
}

impl Geometry {
    fn rank(&self) -> usize {
        self.size.len()
    }
    fn plane(&self) -> usize {
        self.plane
    }
}

fn check(op: &'static str, input: &[usize], grid: &[usize]) -> Result<Geometry> {
    let rank = input.len();
    if !(rank == 4 || rank == 5) || grid.len() != rank {
        return Err(Error::shape(
            op,
            format!(
                "expects a 4-D or 5-D input and a grid of the same rank, got input {} and grid {}",
                Dims(input),
                Dims(grid)
            ),
        ));
    }
    if input[0] != grid[0] {
        return Err(Error::shape(
            op,
            format!(
                "input {} and grid {} have different batch sizes",
                Dims(input),
                Dims(grid)
            ),
        ));
    }
    if grid[rank - 1] != rank - 2 {
        return Err(Error::shape(
            op,
            format!(
                "expects the grid's last dimension to be {} for a {rank}-D input, got grid {}",
                rank - 2,
                Dims(grid)
            ),
        ));
    }
    if let Some(a) = input[2..].iter().position(|&s| s == 0) {
        return Err(Error::shape(
            op,
            format!(
                "expects an input with non-empty spatial dimensions, but input {} has dimension {} empty",
                Dims(input),
                a + 2
            ),
        ));
    }
    let mut out_shape = vec![input[0], input[1]];
    out_shape.extend_from_slice(&grid[1..rank - 1]);
    numel_or_err(op, &out_shape)?;
    // Bounds every stride below; an empty batch does not.
    let plane = numel_or_err(op, &input[2..])?;
    let points = numel_or_err(op, &grid[1..rank - 1])?;
    let mut strides = [0; 3];
    for a in 0..rank - 2 {
        strides[a] = input[a + 3..].iter().product();
    }
    Ok(Geometry {
        n: input[0],
        c: input[1],
        size: input[2..].to_vec(),
        strides,
        plane,
        points,
        out_shape,
    })
}

/// PyTorch's `grid_sampler_unnormalize`, with `d coordinate / d grid`.
pub(crate) fn unnormalize(coord: f32, size: usize, align: bool) -> (f32, f32) {
    if align {
        (
            ((coord + 1.0) / 2.0) * (size - 1) as f32,
            (size - 1) as f32 / 2.0,
        )
    } else {
        (((coord + 1.0) * size as f32 - 1.0) / 2.0, size as f32 / 2.0)
    }
}

/// PyTorch's `clip_coordinates_set_grad`: clip to `[0, size - 1]`; the
/// borders count as outside for the gradient.
fn clip(x: f32, size: usize) -> (f32, f32) {
    let max = (size - 1) as f32;
    if x <= 0.0 {
        (0.0, 0.0)
    } else if x >= max {
        (max, 0.0)
    } else {
        (x, 1.0)
    }
}

/// PyTorch's `reflect_coordinates_set_grad` between `twice_low / 2` and
/// `twice_high / 2`.
fn reflect(x: f32, twice_low: i64, twice_high: i64) -> (f32, f32) {
    if twice_low == twice_high {
        return (0.0, 0.0);
    }
    let min = twice_low as f32 / 2.0;
    let span = (twice_high - twice_low) as f32 / 2.0;
    let (x, sign) = if x - min < 0.0 {
        (min - x, -1.0)
    } else {
        (x - min, 1.0)
    };
    let extra = x % span;
    let flips = (x / span).floor() as i64;
    if flips % 2 == 0 {
        (extra + min, sign)
    } else {
        (span - extra + min, -sign)
    }
}

/// PyTorch's `compute_coordinates` with its gradient: map a pixel
/// coordinate into the input for `padding`.
pub(crate) fn pad_coordinate(
    x: f32,
    size: usize,
    padding: GridSamplePadding,
    align: bool,
) -> (f32, f32) {
    match padding {
        GridSamplePadding::Zeros => (x, 1.0),
        GridSamplePadding::Border => clip(x, size),
        GridSamplePadding::Reflection => {
            let (r, g) = if align {
                reflect(x, 0, 2 * (size as i64 - 1))
            } else {
                reflect(x, -1, 2 * size as i64 - 1)
            };
            let (c, gc) = clip(r, size);
            (c, g * gc)
        }
    }
}

/// The derivative of [`cubic_coefficients`] with respect to `t`, negated
/// (PyTorch's `get_cubic_coefficients_grad`).
fn cubic_coefficients_grad(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let x0 = -1.0 - t;
    let x1 = -t;
    let x2 = 1.0 - t;
    let x3 = 2.0 - t;
    [
        (-3.0 * A * x0 - 10.0 * A) * x0 - 8.0 * A,
        (-3.0 * (A + 2.0) * x1 - 2.0 * (A + 3.0)) * x1,
        (3.0 * (A + 2.0) * x2 - 2.0 * (A + 3.0)) * x2,
        (3.0 * A * x3 - 10.0 * A) * x3 + 8.0 * A,
    ]
}

/// Where one grid point reads: `k` of at most `N` taps (16; 64 for
/// tricubic), each an input offset within a plane (`None`: outside, reads
/// zero) with its weight and the weight's derivative along each grid
/// coordinate, and the factor each grid coordinate's gradient is scaled
/// by.
struct PointTaps<const N: usize> {
    offset: [Option<usize>; N],
    weight: [f32; N],
    /// `d weight / d coordinate`, per grid coordinate.
    dweight: [[f32; N]; 3],
    mult: [f32; 3],
    k: usize,
}

/// Taps of every mode but 5-D bicubic.
const TAPS: usize = 16;
/// Taps of tricubic (5-D bicubic).
const CUBE_TAPS: usize = 64;

/// The cubic taps of grid point `xyz`: a 4-wide window per axis around
/// the unnormalized coordinate, each tap's coordinate padded on its own
/// (PyTorch's bicubic, and its tricubic on 5-D input).
fn cubic_taps<const N: usize>(g: &Geometry, xyz: &[f32], p: &GridSampleParams) -> PointTaps<N> {
    let rank = g.rank();
    let mut t = PointTaps {
        offset: [None; N],
        weight: [0.0; N],
        dweight: [[0.0; N]; 3],
        mult: [0.0; 3],
        k: 1 << (2 * rank),
    };
    // Axis a (outermost first) takes grid coordinate rank - 1 - a.
    let mut floor = [0.0f32; 3];
    let mut coef = [[0.0f32; 4]; 3];
    let mut dcoef = [[0.0f32; 4]; 3];
    for a in 0..rank {
        let (u, m) = unnormalize(xyz[rank - 1 - a], g.size[a], p.align_corners);
        floor[a] = u.floor();
        coef[a] = cubic_coefficients(u - floor[a]);
        dcoef[a] = cubic_coefficients_grad(u - floor[a]);
        t.mult[rank - 1 - a] = m;
    }
    for kk in 0..t.k {
        // Tap index along axis a: digit a of kk in base 4, outermost first.
        let digit = |a: usize| (kk >> (2 * (rank - 1 - a))) & 3;
        let mut off = Some(0usize);
        let mut w = 1.0f32;
        for a in 0..rank {
            let c = pad_coordinate(
                floor[a] - 1.0 + digit(a) as f32,
                g.size[a],
                p.padding_mode,
                p.align_corners,
            )
            .0 as i64;
            off = off
                .filter(|_| (0..g.size[a] as i64).contains(&c))
                .map(|o| o + c as usize * g.strides[a]);
            w *= coef[a][digit(a)];
        }
        t.offset[kk] = off;
        t.weight[kk] = w;
        for a in 0..rank {
            let others: f32 = (0..rank)
                .filter(|&b| b != a)
                .map(|b| coef[b][digit(b)])
                .product();
            t.dweight[rank - 1 - a][kk] = -dcoef[a][digit(a)] * others;
        }
    }
    t
}

/// The taps of grid point `xyz` (grid order: `x` = width first).
fn point_taps<const N: usize>(g: &Geometry, xyz: &[f32], p: &GridSampleParams) -> PointTaps<N> {
    let rank = g.rank();
    if p.mode == GridSampleMode::Bicubic {
        return cubic_taps(g, xyz, p);
    }
    let mut t = PointTaps {
        offset: [None; N],
        weight: [0.0; N],
        dweight: [[0.0; N]; 3],
        mult: [0.0; 3],
        k: 0,
    };
    // Axis a (outermost first) takes grid coordinate rank - 1 - a.
    let coord = |a: usize| xyz[rank - 1 - a];
    let strides = g.strides;
    let mut pos = [0.0f32; 3];
    for a in 0..rank {
        let (u, du) = unnormalize(coord(a), g.size[a], p.align_corners);
        let (v, dv) = pad_coordinate(u, g.size[a], p.padding_mode, p.align_corners);
        pos[a] = v;
        t.mult[rank - 1 - a] = du * dv;
    }
    if p.mode == GridSampleMode::Nearest {
        let mut off = Some(0);
        for a in 0..rank {
            let i = pos[a].round_ties_even() as i64;
            off = off
                .filter(|_| (0..g.size[a] as i64).contains(&i))
                .map(|o| o + i as usize * strides[a]);
        }
        t.offset[0] = off;
        t.weight[0] = 1.0;
        t.k = 1;
        return t;
    }
    let floor = pos.map(f32::floor);
    t.k = 1 << rank;
    for corner in 0..t.k {
        let mut off = Some(0usize);
        let mut w = 1.0f32;
        // Factors of the weight, per axis, for its derivatives.
        let mut f = [0.0f32; 3];
        let mut sign = [0.0f32; 3];
        for a in 0..rank {
            let bit = (corner >> (rank - 1 - a)) & 1;
            let i = (floor[a] as i64).saturating_add(bit as i64);
            let d = pos[a] - floor[a];
            (f[a], sign[a]) = if bit == 1 { (d, 1.0) } else { (1.0 - d, -1.0) };
            w *= f[a];
            off = off
                .filter(|_| (0..g.size[a] as i64).contains(&i))
                .map(|o| o + i as usize * strides[a]);
        }
        t.offset[corner] = off;
        t.weight[corner] = w;
        for a in 0..rank {
            let others: f32 = (0..rank).filter(|&b| b != a).map(|b| f[b]).product();
            t.dweight[rank - 1 - a][corner] = sign[a] * others;
        }
    }
    t
}

/// The taps of every grid point of image `b`, after checking that they
/// fit under the memory limit (~140 floats per point; ~530 tricubic).
fn image_taps<const N: usize>(
    op: &'static str,
    g: &Geometry,
    grid: &[f32],
    b: usize,
    p: &GridSampleParams,
) -> Result<Vec<PointTaps<N>>> {
    let per_point = std::mem::size_of::<PointTaps<N>>().div_ceil(4);
    memory::check_f32(op, g.points.saturating_mul(per_point))?;
    let r = g.rank();
    let pts = &grid[b * g.points * r..(b + 1) * g.points * r];
    Ok(pts
        .chunks_exact(r)
        .map(|xyz| point_taps(g, xyz, p))
        .collect())
}

/// Whether `total` floats of work leave the calling thread.
fn parallel(total: usize) -> bool {
    rayon::current_num_threads() > 1 && total >= 1 << 15
}

/// Whether `p` on `g` is tricubic (64 taps a point).
fn is_tricubic(g: &Geometry, p: &GridSampleParams) -> bool {
    p.mode == GridSampleMode::Bicubic && g.rank() == 3
}

/// One image's output `y` (`[C, points]`) from its input `x` (`[C,
/// plane]`) and the taps of its grid points.
fn sample_image<const N: usize>(g: &Geometry, taps: &[PointTaps<N>], x: &[f32], y: &mut [f32]) {
    let (plane, pts) = (g.plane(), g.points);
    let sample = |(xc, yc): (&[f32], &mut [f32])| {
        for (v, t) in yc.iter_mut().zip(taps) {
            let mut acc = 0.0f32;
            for k in 0..t.k {
                if let Some(o) = t.offset[k] {
                    acc += t.weight[k] * xc[o];
                }
            }
            *v = acc;
        }
    };
    if parallel(g.c * pts) {
        x.par_chunks_exact(plane)
            .zip(y.par_chunks_exact_mut(pts))
            .for_each(sample);
    } else {
        x.chunks_exact(plane)
            .zip(y.chunks_exact_mut(pts))
            .for_each(sample);
    }
}

/// One image's gradients: `gi` (`[C, plane]`) of its input and, unless
/// nearest, `gg` (`[points, rank]`) of its grid, from `gy` (`[C, points]`).
fn backward_image<const N: usize>(
    g: &Geometry,
    p: &GridSampleParams,
    taps: &[PointTaps<N>],
    (x, gy): (&[f32], &[f32]),
    gi: &mut [f32],
    gg: &mut [f32],
) {
    let (plane, pts, r) = (g.plane(), g.points, g.rank());
    // The input's gradient, plane by plane: each scatter in point order.
    let scatter = |(gc, gyc): (&mut [f32], &[f32])| {
        for (t, &go) in taps.iter().zip(gyc) {
            for k in 0..t.k {
                if let Some(o) = t.offset[k] {
                    gc[o] += t.weight[k] * go;
                }
            }
        }
    };
    if parallel(g.c * pts) {
        gi.par_chunks_exact_mut(plane)
            .zip(gy.par_chunks_exact(pts))
            .for_each(scatter);
    } else {
        gi.chunks_exact_mut(plane)
            .zip(gy.chunks_exact(pts))
            .for_each(scatter);
    }
    if p.mode == GridSampleMode::Nearest {
        return;
    }
    // The grid's gradient, point by point over the channels in order.
    let per = 256;
    let grid_grad = |(chunk, gchunk): (usize, &mut [f32])| {
        let first = chunk * per;
        for (q, out) in gchunk.chunks_exact_mut(r).enumerate() {
            let t = &taps[first + q];
            let mut acc = [0.0f32; 3];
            for ch in 0..g.c {
                let go = gy[ch * pts + first + q];
                let xc = &x[ch * plane..(ch + 1) * plane];
                for k in 0..t.k {
                    if let Some(o) = t.offset[k] {
                        let v = xc[o] * go;
                        for (a, s) in acc.iter_mut().enumerate().take(r) {
                            *s += v * t.dweight[a][k];
                        }
                    }
                }
            }
            for a in 0..r {
                out[a] = t.mult[a] * acc[a];
            }
        }
    };
    if parallel(g.c * pts) {
        gg.par_chunks_mut(per * r).enumerate().for_each(grid_grad);
    } else {
        gg.chunks_mut(per * r).enumerate().for_each(grid_grad);
    }
}

/// PyTorch's `F.grid_sample`: `input` sampled at the normalised points of
/// `grid`, to `[N, C, H_out, W_out]` (`[N, C, D_out, H_out, W_out]`).
///
/// # Errors
/// As PyTorch: an input that is not 4-D or 5-D, a grid of another rank or
/// batch, a grid whose last dimension is not the number of spatial axes,
/// an empty spatial axis.
pub fn grid_sample(input: &Tensor, grid: &Tensor, params: &GridSampleParams) -> Result<Tensor> {
    const OP: &str = "grid_sample";
    let g = check(OP, input.shape(), grid.shape())?;
    let mut out = memory::zeros_f32(OP, numel_or_err(OP, &g.out_shape)?)?;
    let (plane, pts) = (g.plane(), g.points);
    if pts == 0 || plane == 0 || g.c == 0 {
        return Tensor::from_vec(out, &g.out_shape);
    }
    for b in 0..g.n {
        let x = &input.data()[b * g.c * plane..(b + 1) * g.c * plane];
        let y = &mut out[b * g.c * pts..(b + 1) * g.c * pts];
        if is_tricubic(&g, params) {
            let taps = image_taps::<CUBE_TAPS>(OP, &g, grid.data(), b, params)?;
            sample_image(&g, &taps, x, y);
        } else {
            let taps = image_taps::<TAPS>(OP, &g, grid.data(), b, params)?;
            sample_image(&g, &taps, x, y);
        }
    }
    Tensor::from_vec(out, &g.out_shape)
}

/// The gradients of [`grid_sample`] with respect to its input and its
/// grid (zero for nearest), in that order.
///
/// # Errors
/// The errors of [`grid_sample`], or a `grad_output` of another shape than
/// the output's.
pub fn grid_sample_backward(
    input: &Tensor,
    grid: &Tensor,
    grad_output: &Tensor,
    params: &GridSampleParams,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "grid_sample_backward";
    let g = check(OP, input.shape(), grid.shape())?;
    if grad_output.shape() != g.out_shape.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_output has shape {} but sampling input {} at grid {} gives {}",
                Dims(grad_output.shape()),
                Dims(input.shape()),
                Dims(grid.shape()),
                Dims(&g.out_shape)
            ),
        ));
    }
    let mut gin = memory::zeros_f32(OP, input.numel())?;
    let mut ggrid = memory::zeros_f32(OP, grid.numel())?;
    let (plane, pts, r) = (g.plane(), g.points, g.rank());
    if plane == 0 || pts == 0 || g.c == 0 {
        return Ok((
            Tensor::from_vec(gin, input.shape())?,
            Tensor::from_vec(ggrid, grid.shape())?,
        ));
    }
    for b in 0..g.n {
        let x = &input.data()[b * g.c * plane..(b + 1) * g.c * plane];
        let gy = &grad_output.data()[b * g.c * pts..(b + 1) * g.c * pts];
        let gi = &mut gin[b * g.c * plane..(b + 1) * g.c * plane];
        let gg = &mut ggrid[b * pts * r..(b + 1) * pts * r];
        if is_tricubic(&g, params) {
            let taps = image_taps::<CUBE_TAPS>(OP, &g, grid.data(), b, params)?;
            backward_image(&g, params, &taps, (x, gy), gi, gg);
        } else {
            let taps = image_taps::<TAPS>(OP, &g, grid.data(), b, params)?;
            backward_image(&g, params, &taps, (x, gy), gi, gg);
        }
    }
    Ok((
        Tensor::from_vec(gin, input.shape())?,
        Tensor::from_vec(ggrid, grid.shape())?,
    ))
}
