//! Pooling layers: `nn.MaxPool2d`, `nn.AvgPool2d`, `nn.AdaptiveAvgPool2d`,
//! `nn.AdaptiveMaxPool2d`. No parameters; thin wrappers over the ops.

use super::Module;
use crate::autograd::Var;
use crate::error::Result;
use crate::ops::{AvgPool2dParams, MaxPool2dParams};
use crate::shape::Pair;

fn py(p: Pair) -> String {
    if p.0 == p.1 {
        p.0.to_string()
    } else {
        format!("({}, {})", p.0, p.1)
    }
}

/// `nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False)`.
///
/// ```
/// use convlab::{nn::{MaxPool2d, Module}, autograd::Var, Tensor};
/// let x = Var::new(Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?);
/// let y = MaxPool2d::new(3).forward(&x)?;
/// assert_eq!(y.tensor().data(), &[10.0]);
/// # Ok::<(), convlab::Error>(())
/// ```
pub struct MaxPool2d {
    pub params: MaxPool2dParams,
}

impl MaxPool2d {
    /// Max pooling with stride = kernel size, no padding.
    pub fn new(kernel_size: impl Into<Pair>) -> MaxPool2d {
        MaxPool2d {
            params: MaxPool2dParams::new(kernel_size),
        }
    }
    /// Max pooling with explicit parameters.
    pub fn with(params: MaxPool2dParams) -> MaxPool2d {
        MaxPool2d { params }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.max_pool2d(&self.params)
    }
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "MaxPool2d(kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={})",
            py(p.kernel_size),
            py(p.stride.unwrap_or(p.kernel_size)),
            py(p.padding),
            py(p.dilation),
            if p.ceil_mode { "True" } else { "False" }
        )
    }
}

/// `nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False,
/// count_include_pad=True, divisor_override=None)`.
pub struct AvgPool2d {
    pub params: AvgPool2dParams,
}

impl AvgPool2d {
    /// Average pooling with stride = kernel size, no padding.
    pub fn new(kernel_size: impl Into<Pair>) -> AvgPool2d {
        AvgPool2d {
            params: AvgPool2dParams::new(kernel_size),
        }
    }
    /// Average pooling with explicit parameters.
    pub fn with(params: AvgPool2dParams) -> AvgPool2d {
        AvgPool2d { params }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.avg_pool2d(&self.params)
    }
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "AvgPool2d(kernel_size={}, stride={}, padding={})",
            py(p.kernel_size),
            py(p.stride.unwrap_or(p.kernel_size)),
            py(p.padding)
        )
    }
}

/// `nn.AdaptiveAvgPool2d(output_size)`.
pub struct AdaptiveAvgPool2d {
    pub output_size: Pair,
}

impl AdaptiveAvgPool2d {
    /// Pool every plane to `output_size`.
    pub fn new(output_size: impl Into<Pair>) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d {
            output_size: output_size.into(),
        }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.adaptive_avg_pool2d(self.output_size)
    }
    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d(output_size={})", py(self.output_size))
    }
}

/// `nn.AdaptiveMaxPool2d(output_size)`.
pub struct AdaptiveMaxPool2d {
    pub output_size: Pair,
}

impl AdaptiveMaxPool2d {
    /// Pool every plane to `output_size`.
    pub fn new(output_size: impl Into<Pair>) -> AdaptiveMaxPool2d {
        AdaptiveMaxPool2d {
            output_size: output_size.into(),
        }
    }
}

impl Module for AdaptiveMaxPool2d {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.adaptive_max_pool2d(self.output_size)
    }
    fn describe(&self) -> String {
        format!("AdaptiveMaxPool2d(output_size={})", py(self.output_size))
    }
}
