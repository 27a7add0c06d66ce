//! The chapter's `corr2d` on matrices, and true convolution (flipped kernel).

use super::conv2d::{conv2d, conv2d_backward, Conv2dParams};
use crate::error::Result;
use crate::tensor::Tensor;

fn as_nchw(x: &Tensor, op: &'static str) -> Result<Tensor> {
    let [h, w] = x.dims2(op)?;
    x.reshape(&[1, 1, h, w])
}

/// 2-D cross-correlation of matrix `x` with kernel `k` (no padding, stride 1),
/// the book's `corr2d`.
///
/// ```
/// use convlab::{ops::corr2d, Tensor};
/// let x = Tensor::arange(9.0)?.reshape(&[3, 3])?;
/// let k = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]])?;
/// assert_eq!(corr2d(&x, &k)?.data(), &[19.0, 25.0, 37.0, 43.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn corr2d(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    let xi = as_nchw(x, "corr2d")?;
    let ki = as_nchw(k, "corr2d")?;
    let y = conv2d(&xi, &ki, None, &Conv2dParams::new()).map_err(|e| e.with_op("corr2d"))?;
    let [_, _, oh, ow] = y.dims4("corr2d", "output")?;
    y.into_shape(&[oh, ow])
}

/// Gradients `(grad_x, grad_k)` of [`corr2d`].
pub fn corr2d_backward(x: &Tensor, k: &Tensor, grad_output: &Tensor) -> Result<(Tensor, Tensor)> {
    let xi = as_nchw(x, "corr2d")?;
    let ki = as_nchw(k, "corr2d")?;
    let go = as_nchw(grad_output, "corr2d")?;
    let g = conv2d_backward(&xi, &ki, false, &go, &Conv2dParams::new())
        .map_err(|e| e.with_op("corr2d_backward"))?;
    Ok((
        g.grad_input.into_shape(x.shape())?,
        g.grad_weight.into_shape(k.shape())?,
    ))
}

/// True 2-D convolution (the kernel flipped in both axes, as in signal
/// processing): `convolve2d(x, k) == corr2d(x, flip(k))`.
pub fn convolve2d(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    let [kh, kw] = k.dims2("convolve2d")?;
    let mut flipped = k.data().to_vec();
    flipped.reverse();
    corr2d(x, &Tensor::from_vec(flipped, &[kh, kw])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_example() {
        let x = Tensor::arange(9.0).unwrap().reshape(&[3, 3]).unwrap();
        let k = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]]).unwrap();
        assert_eq!(corr2d(&x, &k).unwrap().data(), &[19.0, 25.0, 37.0, 43.0]);
        // Flipped kernel [[3,2],[1,0]]: 0*3+1*2+3*1+4*0 = 5, ...
        assert_eq!(convolve2d(&x, &k).unwrap().data(), &[5.0, 11.0, 23.0, 29.0]);
    }

    #[test]
    fn vector_input_is_an_error() {
        let e = corr2d(
            &Tensor::zeros(&[4]).unwrap(),
            &Tensor::zeros(&[1, 2]).unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "corr2d: expected a 2-D matrix but got shape [4]"
        );
    }
}
