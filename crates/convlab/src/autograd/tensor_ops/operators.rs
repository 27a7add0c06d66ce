//! Arithmetic operators on [`Var`], recorded in the graph like the methods
//! they stand for.
//!
//! As on tensors: between two variables an operator returns `Result<Var>`
//! (shapes that do not broadcast are an error value, never a panic) and the
//! `Result` may stay on either side of the next operator; with a number it
//! cannot fail and returns a `Var`.
//!
//! ```
//! use convlab::{autograd::Var, Tensor};
//! let w = Var::param(Tensor::from_rows(&[[2.0, -1.0]])?);
//! let x = Var::new(Tensor::from_rows(&[[3.0, 4.0]])?);
//! let loss = ((&w * &x - &x)? * 0.5).sum()?;  // 0.5 * sum(w*x - x)
//! loss.backward()?;
//! assert_eq!(w.grad().unwrap().data(), &[1.5, 2.0]);
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::autograd::Var;
use crate::error::Result;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! binary_op {
    ($Trait:ident, $method:ident) => {
        impl $Trait<&Var> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                Var::$method(self, rhs)
            }
        }
        impl $Trait<Var> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                Var::$method(self, &rhs)
            }
        }
        impl $Trait<&Var> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                Var::$method(&self, rhs)
            }
        }
        impl $Trait<Var> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                Var::$method(&self, &rhs)
            }
        }
        impl $Trait<&Var> for Result<Var> {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                Var::$method(&self?, rhs)
            }
        }
        impl $Trait<Var> for Result<Var> {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                Var::$method(&self?, &rhs)
            }
        }
        impl $Trait<Result<Var>> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Result<Var>) -> Result<Var> {
                Var::$method(self, &rhs?)
            }
        }
        impl $Trait<Result<Var>> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Result<Var>) -> Result<Var> {
                Var::$method(&self, &rhs?)
            }
        }
    };
}

binary_op!(Add, add);
binary_op!(Sub, sub);
binary_op!(Mul, mul);
binary_op!(Div, div);

/// `f(x)` for a number on one side: the value elementwise, and the
/// gradient `g * dy/dx` from `x`.
fn scalar_op(
    x: &Var,
    name: &'static str,
    f: impl Fn(f32) -> f32,
    dydx: impl Fn(f32) -> f32 + Send + Sync + 'static,
) -> Var {
    let xv = x.tensor();
    let y = xv.map(f);
    Var::from_op(y, name, &[x], move |g| {
        Ok(vec![Some(g.zip_broadcast(name, &xv, |g, v| g * dydx(v))?)])
    })
}

/// `a * x + b` (the gradient is `a * g`, so `x` is not kept).
fn affine(x: &Var, name: &'static str, f: impl Fn(f32) -> f32, a: f32) -> Var {
    let y = x.value().map(f);
    Var::from_op(y, name, &[x], move |g| Ok(vec![Some(g.scale(a))]))
}

fn add_scalar(x: &Var, s: f32) -> Var {
    affine(x, "Add", |v| v + s, 1.0)
}
fn sub_scalar(x: &Var, s: f32) -> Var {
    affine(x, "Sub", |v| v - s, 1.0)
}
fn mul_scalar(x: &Var, s: f32) -> Var {
    affine(x, "Mul", |v| v * s, s)
}
fn div_scalar(x: &Var, s: f32) -> Var {
    // Divide (not multiply by 1/s) for PyTorch's rounding.
    let y = x.value().map(|v| v / s);
    Var::from_op(y, "Div", &[x], move |g| Ok(vec![Some(g.map(|v| v / s))]))
}
fn scalar_add(s: f32, x: &Var) -> Var {
    affine(x, "Add", |v| s + v, 1.0)
}
fn scalar_sub(s: f32, x: &Var) -> Var {
    affine(x, "Rsub", |v| s - v, -1.0)
}
fn scalar_mul(s: f32, x: &Var) -> Var {
    affine(x, "Mul", |v| s * v, s)
}
fn scalar_div(s: f32, x: &Var) -> Var {
    scalar_op(x, "Div", |v| s / v, move |v| -s / (v * v))
}

macro_rules! scalar_ops {
    ($Trait:ident, $method:ident, $right:ident, $left:ident) => {
        impl $Trait<f32> for &Var {
            type Output = Var;
            fn $method(self, s: f32) -> Var {
                $right(self, s)
            }
        }
        impl $Trait<f32> for Var {
            type Output = Var;
            fn $method(self, s: f32) -> Var {
                $right(&self, s)
            }
        }
        impl $Trait<&Var> for f32 {
            type Output = Var;
            fn $method(self, x: &Var) -> Var {
                $left(self, x)
            }
        }
        impl $Trait<Var> for f32 {
            type Output = Var;
            fn $method(self, x: Var) -> Var {
                $left(self, &x)
            }
        }
    };
}

scalar_ops!(Add, add, add_scalar, scalar_add);
scalar_ops!(Sub, sub, sub_scalar, scalar_sub);
scalar_ops!(Mul, mul, mul_scalar, scalar_mul);
scalar_ops!(Div, div, div_scalar, scalar_div);

impl Neg for &Var {
    type Output = Var;
    fn neg(self) -> Var {
        affine(self, "Neg", |v| -v, -1.0)
    }
}

impl Neg for Var {
    type Output = Var;
    fn neg(self) -> Var {
        -&self
    }
}
