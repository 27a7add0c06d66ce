//! Arithmetic operators on tensors (described in the `tensor` module docs):
//! between tensors they return `Result<Tensor>` and take `Result` on either
//! side; with an `f32` they return `Tensor`.

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
