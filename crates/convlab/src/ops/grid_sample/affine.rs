//! `F.affine_grid`: the sampling grid of a batch of affine maps, and its
//! gradient for the maps.

use crate::error::{numel_or_err, Dims, Error, Result};
use crate::memory;
use crate::tensor::Tensor;

/// PyTorch's `linspace_from_neg_one`: `steps` points from -1 to 1 (float32
/// `linspace`, symmetric about its middle), pulled in to the pixel centres
/// without `align_corners`; `[0]` for one step.
fn linspace_from_neg_one(steps: usize, align: bool) -> Vec<f32> {
    if steps <= 1 {
        return vec![0.0; steps];
    }
    let step = 2.0f32 / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            let v = if i < half {
                -1.0 + step * i as f32
            } else {
                1.0 - step * (steps - 1 - i) as f32
            };
            if align {
                v
            } else {
                v * (steps - 1) as f32 / steps as f32
            }
        })
        .collect()
}

/// Checks `size` (`[N, C, H, W]` or `[N, C, D, H, W]`) against a theta of
/// shape `theta` (`[N, 2, 3]` or `[N, 3, 4]`); the spatial rank.
fn check(op: &'static str, theta: &[usize], size: &[usize], align: bool) -> Result<usize> {
    let rank = match size.len() {
        4 => 2,
        5 => 3,
        _ => {
            return Err(Error::param(
                op,
                "size",
                format!(
                    "{} must be 4-D or 5-D (for 2-D and 3-D affine maps)",
                    Dims(size)
                ),
            ))
        }
    };
    if theta.len() != 3 || theta[1] != rank || theta[2] != rank + 1 {
        return Err(Error::shape(
            op,
            format!(
                "expects a batch of {rank}-D affine matrices of shape [N, {rank}, {}] for size {}, got theta {}",
                rank + 1,
                Dims(size),
                Dims(theta)
            ),
        ));
    }
    let spatial = &size[2..];
    let unit_grid = align && spatial.iter().min() == Some(&1);
    if !unit_grid && size.contains(&0) {
        return Err(Error::param(
            op,
            "size",
            format!("{} must be positive in every dimension", Dims(size)),
        ));
    }
    if theta[0] != size[0] {
        return Err(Error::shape(
            op,
            format!(
                "theta {} has {} matrices but size {} asks for {}",
                Dims(theta),
                theta[0],
                Dims(size),
                size[0]
            ),
        ));
    }
    Ok(rank)
}

/// The base grid: per point (spatial order, width fastest) its homogeneous
/// coordinates `(x, y[, z], 1)`, after checking that it fits under the
/// memory limit (an empty batch does not bound it).
fn base_grid(op: &'static str, size: &[usize], rank: usize, align: bool) -> Result<Vec<[f32; 4]>> {
    let spatial = &size[2..];
    memory::check_f32(op, numel_or_err(op, spatial)?.saturating_mul(4))?;
    let axes: Vec<Vec<f32>> = spatial
        .iter()
        .map(|&s| linspace_from_neg_one(s, align))
        .collect();
    let points: usize = spatial.iter().product();
    Ok((0..points)
        .map(|mut p| {
            let mut v = [0.0f32; 4];
            // v[0] is x (the last axis), v[rank - 1] the first.
            for a in (0..rank).rev() {
                let i = p % spatial[a];
                p /= spatial[a];
                v[rank - 1 - a] = axes[a][i];
            }
            v[rank] = 1.0;
            v
        })
        .collect())
}

/// PyTorch's `F.affine_grid(theta, size, align_corners)`: for `theta`
/// `[N, 2, 3]` and `size` `[N, C, H, W]` the grid `[N, H, W, 2]` of
/// `theta @ (x, y, 1)` over the normalised output pixels (and `[N, 3, 4]`
/// to `[N, D, H, W, 3]`), for [`grid_sample`](super::grid_sample).
///
/// # Errors
/// As PyTorch: a size that is not 4-D or 5-D, a theta of the wrong shape,
/// an empty size (unless `align_corners` with a spatial size of 1), a
/// batch that differs.
pub fn affine_grid(theta: &Tensor, size: &[usize], align_corners: bool) -> Result<Tensor> {
    const OP: &str = "affine_grid";
    let rank = check(OP, theta.shape(), size, align_corners)?;
    let mut shape = vec![size[0]];
    shape.extend_from_slice(&size[2..]);
    shape.push(rank);
    let mut out = memory::zeros_f32(OP, numel_or_err(OP, &shape)?)?;
    let base = base_grid(OP, size, rank, align_corners)?;
    let m = rank * (rank + 1);
    for (b, th) in theta.data().chunks_exact(m).enumerate() {
        let dst = &mut out[b * base.len() * rank..(b + 1) * base.len() * rank];
        for (v, o) in base.iter().zip(dst.chunks_exact_mut(rank)) {
            for (i, oi) in o.iter_mut().enumerate() {
                let row = &th[i * (rank + 1)..(i + 1) * (rank + 1)];
                *oi = row.iter().zip(v).map(|(a, b)| a * b).sum();
            }
        }
    }
    Tensor::from_vec(out, &shape)
}

/// The gradient of [`affine_grid`] with respect to `theta`: for each
/// matrix, `Σ_points grad_grid ⊗ (x, y[, z], 1)`, summed in f64.
///
/// # Errors
/// The errors of [`affine_grid`], or a `grad_grid` of another shape than
/// the grid's.
pub fn affine_grid_backward(
    grad_grid: &Tensor,
    size: &[usize],
    align_corners: bool,
) -> Result<Tensor> {
    const OP: &str = "affine_grid_backward";
    let rank = match size.len() {
        4 => 2,
        5 => 3,
        _ => 0,
    };
    let theta_shape = [size.first().copied().unwrap_or(0), rank, rank + 1];
    check(OP, &theta_shape, size, align_corners)?;
    let mut shape = vec![size[0]];
    shape.extend_from_slice(&size[2..]);
    shape.push(rank);
    if grad_grid.shape() != shape.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "grad_grid has shape {} but the grid of size {} has shape {}",
                Dims(grad_grid.shape()),
                Dims(size),
                Dims(&shape)
            ),
        ));
    }
    let base = base_grid(OP, size, rank, align_corners)?;
    let m = rank * (rank + 1);
    let mut out = memory::zeros_f32(OP, numel_or_err(OP, &theta_shape)?)?;
    for (b, gt) in out.chunks_exact_mut(m).enumerate() {
        let gg = &grad_grid.data()[b * base.len() * rank..(b + 1) * base.len() * rank];
        let mut acc = [0.0f64; 12];
        for (v, g) in base.iter().zip(gg.chunks_exact(rank)) {
            for i in 0..rank {
                for j in 0..=rank {
                    acc[i * (rank + 1) + j] += g[i] as f64 * v[j] as f64;
                }
            }
        }
        for (o, a) in gt.iter_mut().zip(acc) {
            *o = a as f32;
        }
    }
    Tensor::from_vec(out, &theta_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_pytorch() {
        // torch.linspace(-1, 1, 5), and F.affine_grid's x for width 4
        // without align_corners (float32 rounding included).
        assert_eq!(linspace_from_neg_one(5, true), [-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(
            linspace_from_neg_one(4, false),
            [-0.75, -0.25f32.next_down(), 0.25f32.next_down(), 0.75]
        );
        assert_eq!(linspace_from_neg_one(1, false), [0.0]);
    }
}
