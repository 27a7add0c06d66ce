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
    /// Bicubic between 16 neighbours (`A = -0.75`), 4-D input only.
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

fn check(
    op: &'static str,
    input: &[usize],
    grid: &[usize],
    p: &GridSampleParams,
) -> Result<Geometry> {
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
    if p.mode == GridSampleMode::Bicubic && rank == 5 {
        return Err(Error::param(
            op,
            "mode",
            "'bicubic' needs a 4-D input, got a 5-D input",
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

/// Where one grid point reads: `k` taps, each an input offset within a
/// plane (`None`: outside, reads zero) with its weight and the weight's
/// derivative along each grid coordinate, and the factor each grid
/// coordinate's gradient is scaled by.
struct PointTaps {
    offset: [Option<usize>; 16],
    weight: [f32; 16],
    /// `d weight / d coordinate`, coordinate-major: `[a * 16 + k]`.
    dweight: [f32; 48],
    mult: [f32; 3],
    k: usize,
}

/// The taps of grid point `xyz` (grid order: `x` = width first).
fn point_taps(g: &Geometry, xyz: &[f32], p: &GridSampleParams) -> PointTaps {
    let rank = g.rank();
    let mut t = PointTaps {
        offset: [None; 16],
        weight: [0.0; 16],
        dweight: [0.0; 48],
        mult: [0.0; 3],
        k: 0,
    };
    // Axis a (outermost first) takes grid coordinate rank - 1 - a.
    let coord = |a: usize| xyz[rank - 1 - a];
    let strides = g.strides;
    if p.mode == GridSampleMode::Bicubic {
        // Unnormalized coordinates; each tap is padded on its own.
        let (iy, my) = unnormalize(coord(0), g.size[0], p.align_corners);
        let (ix, mx) = unnormalize(coord(1), g.size[1], p.align_corners);
        let (fy, fx) = (iy.floor(), ix.floor());
        let (cy, cx) = (cubic_coefficients(iy - fy), cubic_coefficients(ix - fx));
        let (gy, gx) = (
            cubic_coefficients_grad(iy - fy),
            cubic_coefficients_grad(ix - fx),
        );
        for j in 0..4 {
            for i in 0..4 {
                let kk = j * 4 + i;
                let ty = pad_coordinate(
                    fy - 1.0 + j as f32,
                    g.size[0],
                    p.padding_mode,
                    p.align_corners,
                )
                .0;
                let tx = pad_coordinate(
                    fx - 1.0 + i as f32,
                    g.size[1],
                    p.padding_mode,
                    p.align_corners,
                )
                .0;
                let (yi, xi) = (ty as i64, tx as i64);
                let inside =
                    (0..g.size[0] as i64).contains(&yi) && (0..g.size[1] as i64).contains(&xi);
                t.offset[kk] = inside.then(|| yi as usize * g.size[1] + xi as usize);
                t.weight[kk] = cx[i] * cy[j];
                // Grid coordinate 0 is x (the width).
                t.dweight[kk] = -gx[i] * cy[j];
                t.dweight[16 + kk] = -gy[j] * cx[i];
            }
        }
        t.mult = [mx, my, 0.0];
        t.k = 16;
        return t;
    }
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
            t.dweight[(rank - 1 - a) * 16 + corner] = sign[a] * others;
        }
    }
    t
}

/// The taps of every grid point of image `b`, after checking that they
/// fit under the memory limit (they take ~140 floats per point).
fn image_taps(
    op: &'static str,
    g: &Geometry,
    grid: &[f32],
    b: usize,
    p: &GridSampleParams,
) -> Result<Vec<PointTaps>> {
    let per_point = std::mem::size_of::<PointTaps>().div_ceil(4);
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

/// PyTorch's `F.grid_sample`: `input` sampled at the normalised points of
/// `grid`, to `[N, C, H_out, W_out]` (`[N, C, D_out, H_out, W_out]`).
///
/// # Errors
/// As PyTorch: an input that is not 4-D or 5-D, a grid of another rank or
/// batch, a grid whose last dimension is not the number of spatial axes,
/// an empty spatial axis, bicubic on 5-D input.
pub fn grid_sample(input: &Tensor, grid: &Tensor, params: &GridSampleParams) -> Result<Tensor> {
    const OP: &str = "grid_sample";
    let g = check(OP, input.shape(), grid.shape(), params)?;
    let mut out = memory::zeros_f32(OP, numel_or_err(OP, &g.out_shape)?)?;
    let (plane, pts) = (g.plane(), g.points);
    if pts == 0 || plane == 0 || g.c == 0 {
        return Tensor::from_vec(out, &g.out_shape);
    }
    for b in 0..g.n {
        let taps = image_taps(OP, &g, grid.data(), b, params)?;
        let x = &input.data()[b * g.c * plane..(b + 1) * g.c * plane];
        let y = &mut out[b * g.c * pts..(b + 1) * g.c * pts];
        let sample = |(xc, yc): (&[f32], &mut [f32])| {
            for (v, t) in yc.iter_mut().zip(&taps) {
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
    let g = check(OP, input.shape(), grid.shape(), params)?;
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
        let taps = image_taps(OP, &g, grid.data(), b, params)?;
        let x = &input.data()[b * g.c * plane..(b + 1) * g.c * plane];
        let gy = &grad_output.data()[b * g.c * pts..(b + 1) * g.c * pts];
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
        let gi = &mut gin[b * g.c * plane..(b + 1) * g.c * plane];
        if parallel(g.c * pts) {
            gi.par_chunks_exact_mut(plane)
                .zip(gy.par_chunks_exact(pts))
                .for_each(scatter);
        } else {
            gi.chunks_exact_mut(plane)
                .zip(gy.chunks_exact(pts))
                .for_each(scatter);
        }
        if params.mode == GridSampleMode::Nearest {
            continue;
        }
        // The grid's gradient, point by point over the channels in order.
        let gg = &mut ggrid[b * pts * r..(b + 1) * pts * r];
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
                                *s += v * t.dweight[a * 16 + k];
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
    Ok((
        Tensor::from_vec(gin, input.shape())?,
        Tensor::from_vec(ggrid, grid.shape())?,
    ))
}
