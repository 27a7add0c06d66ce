//! `F.linear`: `y = x @ weight^T + bias`, the fully connected layer, with
//! its backward. The transposes are GEMM operand layouts, never copies.

use crate::error::{Dims, Error, Result};
use crate::kernels::gemm::{sgemm, Layout};
use crate::memory;
use crate::tensor::Tensor;

const OP: &str = "linear";

/// `(rows, in_features, out_features)` of a linear layer, checked.
fn dims(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<(usize, usize, usize)> {
    let (rows, fin) = match input.shape() {
        [r, f] => (*r, *f),
        s => {
            return Err(Error::shape(
                OP,
                format!(
                    "input must be [batch, in_features] but has shape {}",
                    Dims(s)
                ),
            ))
        }
    };
    let fout = match weight.shape() {
        [o, i] if *i == fin => *o,
        s => {
            return Err(Error::shape(
                OP,
                format!(
                    "input {} has {fin} features but weight {} expects [out_features, {fin}]",
                    Dims(input.shape()),
                    Dims(s)
                ),
            ))
        }
    };
    if let Some(b) = bias {
        if b.shape() != [fout] {
            return Err(Error::shape(
                OP,
                format!(
                    "bias {} does not match weight {}: expected [{fout}]",
                    Dims(b.shape()),
                    Dims(weight.shape())
                ),
            ));
        }
    }
    Ok((rows, fin, fout))
}

/// `y [N, out] = input [N, in] @ weight^T + bias`, weight `[out, in]`
/// (PyTorch's `F.linear` on 2-D inputs).
///
/// ```
/// use convlab::{ops::linear, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[1, 2])?;
/// let w = Tensor::from_vec(vec![1.0, 1.0, 0.0, -1.0], &[2, 2])?;
/// let b = Tensor::from_vec(vec![0.5, 0.0], &[2])?;
/// assert_eq!(linear(&x, &w, Some(&b))?.data(), &[3.5, -2.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn linear(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (rows, fin, fout) = dims(input, weight, bias)?;
    let numel = rows
        .checked_mul(fout)
        .ok_or_else(|| Error::too_large(OP, "output size overflows"))?;
    let mut out = memory::zeros_f32(OP, numel)?;
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(fout) {
            row.copy_from_slice(b.data());
        }
    }
    sgemm(
        rows,
        fin,
        fout,
        input.data(),
        Layout::RowMajor,
        weight.data(),
        Layout::Transposed,
        &mut out,
        bias.is_some(),
    );
    Tensor::from_vec(out, &[rows, fout])
}

/// Gradients of [`linear`]: `(grad_input, grad_weight, grad_bias)`, the
/// bias gradient only when `with_bias`.
pub fn linear_backward(
    input: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    grad_output: &Tensor,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (rows, fin, fout) = dims(input, weight, None)?;
    if grad_output.shape() != [rows, fout] {
        return Err(Error::shape(
            "linear_backward",
            format!(
                "grad_output {} does not match the output [{rows}, {fout}]",
                Dims(grad_output.shape())
            ),
        ));
    }
    let g = grad_output.data();
    // grad_input [N, in] = g [N, out] @ weight [out, in]
    let mut gx = memory::zeros_f32(OP, input.numel())?;
    sgemm(
        rows,
        fout,
        fin,
        g,
        Layout::RowMajor,
        weight.data(),
        Layout::RowMajor,
        &mut gx,
        false,
    );
    // grad_weight [out, in] = g^T [out, N] @ input [N, in]
    let mut gw = memory::zeros_f32(OP, weight.numel())?;
    sgemm(
        fout,
        rows,
        fin,
        g,
        Layout::Transposed,
        input.data(),
        Layout::RowMajor,
        &mut gw,
        false,
    );
    let gb = if with_bias {
        let mut gb = vec![0.0f64; fout];
        for row in g.chunks_exact(fout) {
            for (acc, &v) in gb.iter_mut().zip(row) {
                *acc += v as f64;
            }
        }
        Some(Tensor::from_vec(
            gb.into_iter().map(|v| v as f32).collect(),
            &[fout],
        )?)
    } else {
        None
    };
    Ok((
        Tensor::from_vec(gx, input.shape())?,
        Tensor::from_vec(gw, weight.shape())?,
        gb,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_matmul_with_transpose_and_names_mismatches() {
        let x = Tensor::from_vec((0..6).map(|v| v as f32 - 2.0).collect(), &[2, 3]).unwrap();
        let w = Tensor::from_vec((0..12).map(|v| (v % 5) as f32 - 1.5).collect(), &[4, 3]).unwrap();
        let b = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.0], &[4]).unwrap();
        let y = linear(&x, &w, Some(&b)).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        for r in 0..2 {
            for o in 0..4 {
                assert_eq!(y.data()[r * 4 + o], want.data()[r * 4 + o] + b.data()[o]);
            }
        }
        let g = Tensor::from_vec((0..8).map(|v| v as f32 * 0.25).collect(), &[2, 4]).unwrap();
        let (gx, gw, gb) = linear_backward(&x, &w, true, &g).unwrap();
        assert_eq!(gx, g.matmul(&w).unwrap());
        assert_eq!(gw, g.t().unwrap().matmul(&x).unwrap());
        assert_eq!(gb.unwrap().data(), &[1.0, 1.5, 2.0, 2.5]);
        let e = linear(&x, &Tensor::zeros(&[4, 2]).unwrap(), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linear: input [2, 3] has 3 features but weight [4, 2] expects [out_features, 3]"
        );
    }
}
