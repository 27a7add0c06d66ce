//! Arithmetic operators on tensors: `+ - * /` between tensors (broadcasting
//! as [`Tensor::add`]), with a number on either side, and unary `-`.
//!
//! Between two tensors an operator returns `Result<Tensor>`, as the method
//! it stands for does: shapes that do not broadcast are an error value (the
//! operator never panics), and `?` takes the tensor out. The `Result` can
//! stay on either side of the next operator, so a chain needs one `?` at
//! the end. With a number, an operator cannot fail and returns a `Tensor`.
//!
//! ```
//! use convlab::Tensor;
//! let x = Tensor::from_rows(&[[1.0, 2.0], [3.0, 4.0]])?;
//! let b = Tensor::from_slice(&[10.0, 20.0], &[2])?;
//! let y = (&x * 2.0 + &b - &x)?;            // [[11, 22], [13, 24]]
//! assert_eq!(y.data(), &[11., 22., 13., 24.]);
//! assert_eq!((-&x).data(), &[-1., -2., -3., -4.]);
//! assert!((&x + &Tensor::zeros(&[3])?).is_err()); // [2, 2] and [3]
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! Rust's orphan rule allows every pairing of `Tensor`, `&Tensor` and
//! `Result<Tensor>` except `Result` with `Result` (`(&a * &b)? + (&c * &d)`
//! needs the `?` in between) and `Result` with a number.

use super::Tensor;
use crate::error::Result;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

impl Tensor {
    /// `f(a, b)` elementwise, consuming `self` so equal shapes reuse its buffer.
    fn zip_owned(
        mut self,
        op: &'static str,
        other: &Tensor,
        f: impl Fn(f32, f32) -> f32,
    ) -> Result<Tensor> {
        if self.shape == other.shape {
            self.data
                .iter_mut()
                .zip(&other.data)
                .for_each(|(a, &b)| *a = f(*a, b));
            return Ok(self);
        }
        self.zip_broadcast(op, other, f)
    }

    /// `f(x)` elementwise in place.
    fn map_owned(mut self, f: impl Fn(f32) -> f32) -> Tensor {
        self.data.iter_mut().for_each(|v| *v = f(*v));
        self
    }
}

macro_rules! binary_op {
    ($Trait:ident, $method:ident, $name:literal, $f:expr) => {
        impl $Trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                self.zip_broadcast($name, rhs, $f)
            }
        }
        impl $Trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                self.zip_broadcast($name, &rhs, $f)
            }
        }
        impl $Trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                self.zip_owned($name, rhs, $f)
            }
        }
        impl $Trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                self.zip_owned($name, &rhs, $f)
            }
        }
        impl $Trait<&Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                self?.zip_owned($name, rhs, $f)
            }
        }
        impl $Trait<Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                self?.zip_owned($name, &rhs, $f)
            }
        }
        impl $Trait<Result<Tensor>> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Result<Tensor>) -> Result<Tensor> {
                self.zip_broadcast($name, &rhs?, $f)
            }
        }
        impl $Trait<Result<Tensor>> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Result<Tensor>) -> Result<Tensor> {
                self.zip_owned($name, &rhs?, $f)
            }
        }
    };
}

binary_op!(Add, add, "add", |a, b| a + b);
binary_op!(Sub, sub, "sub", |a, b| a - b);
binary_op!(Mul, mul, "mul", |a, b| a * b);
binary_op!(Div, div, "div", |a, b| a / b);

macro_rules! scalar_op {
    ($Trait:ident, $method:ident, $Assign:ident, $assign:ident, $f:expr, $rf:expr) => {
        impl $Trait<f32> for &Tensor {
            type Output = Tensor;
            fn $method(self, s: f32) -> Tensor {
                self.map(|v| $f(v, s))
            }
        }
        impl $Trait<f32> for Tensor {
            type Output = Tensor;
            fn $method(self, s: f32) -> Tensor {
                self.map_owned(|v| $f(v, s))
            }
        }
        impl $Trait<&Tensor> for f32 {
            type Output = Tensor;
            fn $method(self, t: &Tensor) -> Tensor {
                t.map(|v| $rf(self, v))
            }
        }
        impl $Trait<Tensor> for f32 {
            type Output = Tensor;
            fn $method(self, t: Tensor) -> Tensor {
                t.map_owned(|v| $rf(self, v))
            }
        }
        impl $Assign<f32> for Tensor {
            fn $assign(&mut self, s: f32) {
                self.data.iter_mut().for_each(|v| *v = $f(*v, s));
            }
        }
    };
}

scalar_op!(Add, add, AddAssign, add_assign, |v, s| v + s, |s, v| s + v);
scalar_op!(Sub, sub, SubAssign, sub_assign, |v, s| v - s, |s, v| s - v);
scalar_op!(Mul, mul, MulAssign, mul_assign, |v, s| v * s, |s, v| s * v);
scalar_op!(Div, div, DivAssign, div_assign, |v, s| v / s, |s, v| s / v);

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.map(|v| -v)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.map_owned(|v| -v)
    }
}
