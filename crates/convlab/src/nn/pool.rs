//! Pooling layers with PyTorch's names for one, two and three spatial
//! axes: `nn.MaxPool1d/2d/3d`, `AvgPool1d/2d/3d`, `LPPool1d/2d/3d`,
//! `AdaptiveAvgPool1d/2d/3d`, `AdaptiveMaxPool1d/2d/3d`,
//! `MaxUnpool1d/2d/3d` and `FractionalMaxPool2d/3d`. No parameters; each
//! is generic over the rank with PyTorch's name as an alias
//! (`MaxPool2d = MaxPool<2>`), and describes itself in PyTorch's repr.

use super::Module;
use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::ops::pool::{
    fractional_random_samples, AvgPoolParams, FractionalMaxPoolParams, FractionalOutput,
    LpPoolParams, MaxPoolParams, MaxUnpoolParams, OutputSize, Spatial,
};
use crate::tensor::{seeded_rng, Rng64, Tensor};
use std::sync::Mutex;

/// Python's `True` / `False`.
fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A Python tuple of the values: `(3,)`, `(3, 3)`.
fn py_tuple<const N: usize>(v: Spatial<N>) -> String {
    let items: Vec<String> = v.0.iter().map(|x| x.to_string()).collect();
    if N == 1 {
        format!("({},)", items[0])
    } else {
        format!("({})", items.join(", "))
    }
}

/// `nn.MaxPool1d/2d/3d(kernel_size, stride=None, padding=0, dilation=1,
/// ceil_mode=False)`.
///
/// ```
/// use convlab::{nn::{MaxPool2d, MaxPool3d, Module}, autograd::Var, Tensor};
/// let x = Var::new(Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?);
/// assert_eq!(MaxPool2d::new(3).forward(&x)?.tensor().data(), &[10.0]);
/// assert_eq!(
///     MaxPool3d::new(2).describe(),
///     "MaxPool3d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
/// );
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MaxPool<const N: usize> {
    pub params: MaxPoolParams<N>,
}

/// `nn.MaxPool1d`.
pub type MaxPool1d = MaxPool<1>;
/// `nn.MaxPool2d`.
pub type MaxPool2d = MaxPool<2>;
/// `nn.MaxPool3d`.
pub type MaxPool3d = MaxPool<3>;

impl<const N: usize> MaxPool<N> {
    /// Max pooling with stride = kernel size, no padding.
    pub fn new(kernel_size: impl Into<Spatial<N>>) -> Self {
        MaxPool {
            params: MaxPoolParams::new(kernel_size),
        }
    }
    /// Max pooling with explicit parameters.
    pub fn with(params: MaxPoolParams<N>) -> Self {
        MaxPool { params }
    }
    /// The output and the index of each maximum (`return_indices=True`),
    /// for a [`MaxUnpool`].
    ///
    /// # Errors
    /// See [`crate::ops::pool::max_pool`].
    pub fn forward_with_indices(&self, input: &Var) -> Result<(Var, Vec<usize>)> {
        input.max_pool_with_indices(&self.params)
    }
}

impl<const N: usize> Module for MaxPool<N> {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.max_pool(&self.params)
    }
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "MaxPool{N}d(kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={})",
            p.kernel_size,
            p.stride.unwrap_or(p.kernel_size),
            p.padding,
            p.dilation,
            py_bool(p.ceil_mode)
        )
    }
}

/// `nn.AvgPool1d/2d/3d(kernel_size, stride=None, padding=0,
/// ceil_mode=False, count_include_pad=True, divisor_override=None)`.
#[derive(Clone, Debug)]
pub struct AvgPool<const N: usize> {
    pub params: AvgPoolParams<N>,
}

/// `nn.AvgPool1d`.
pub type AvgPool1d = AvgPool<1>;
/// `nn.AvgPool2d`.
pub type AvgPool2d = AvgPool<2>;
/// `nn.AvgPool3d`.
pub type AvgPool3d = AvgPool<3>;

impl<const N: usize> AvgPool<N> {
    /// Average pooling with stride = kernel size, no padding.
    pub fn new(kernel_size: impl Into<Spatial<N>>) -> Self {
        AvgPool {
            params: AvgPoolParams::new(kernel_size),
        }
    }
    /// Average pooling with explicit parameters.
    pub fn with(params: AvgPoolParams<N>) -> Self {
        AvgPool { params }
    }
}

impl<const N: usize> Module for AvgPool<N> {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.avg_pool(&self.params)
    }
    fn describe(&self) -> String {
        let p = &self.params;
        let stride = p.stride.unwrap_or(p.kernel_size);
        // AvgPool1d keeps its sizes as 1-tuples, the others as given.
        let show = |v: Spatial<N>| if N == 1 { py_tuple(v) } else { v.to_string() };
        format!(
            "AvgPool{N}d(kernel_size={}, stride={}, padding={})",
            show(p.kernel_size),
            show(stride),
            show(p.padding)
        )
    }
}

/// `nn.LPPool1d/2d/3d(norm_type, kernel_size, stride=None, ceil_mode=False)`.
///
/// ```
/// use convlab::nn::{LPPool2d, Module};
/// assert_eq!(
///     LPPool2d::new(2.5, 3).describe(),
///     "LPPool2d(norm_type=2.5, kernel_size=3, stride=None, ceil_mode=False)"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct LPPool<const N: usize> {
    pub params: LpPoolParams<N>,
}

/// `nn.LPPool1d`.
pub type LPPool1d = LPPool<1>;
/// `nn.LPPool2d`.
pub type LPPool2d = LPPool<2>;
/// `nn.LPPool3d`.
pub type LPPool3d = LPPool<3>;

impl<const N: usize> LPPool<N> {
    /// Power-average pooling with stride = kernel size.
    pub fn new(norm_type: f64, kernel_size: impl Into<Spatial<N>>) -> Self {
        LPPool {
            params: LpPoolParams::new(norm_type, kernel_size),
        }
    }
    /// Power-average pooling with explicit parameters.
    pub fn with(params: LpPoolParams<N>) -> Self {
        LPPool { params }
    }
}

impl<const N: usize> Module for LPPool<N> {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.lp_pool(&self.params)
    }
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "LPPool{N}d(norm_type={}, kernel_size={}, stride={}, ceil_mode={})",
            p.norm_type,
            p.kernel_size,
            p.stride.map_or("None".into(), |s| s.to_string()),
            py_bool(p.ceil_mode)
        )
    }
}

/// `nn.AdaptiveAvgPool1d/2d/3d(output_size)`.
#[derive(Clone, Debug)]
pub struct AdaptiveAvgPool<const N: usize> {
    pub output_size: OutputSize<N>,
}

/// `nn.AdaptiveAvgPool1d`.
pub type AdaptiveAvgPool1d = AdaptiveAvgPool<1>;
/// `nn.AdaptiveAvgPool2d`.
pub type AdaptiveAvgPool2d = AdaptiveAvgPool<2>;
/// `nn.AdaptiveAvgPool3d`.
pub type AdaptiveAvgPool3d = AdaptiveAvgPool<3>;

impl<const N: usize> AdaptiveAvgPool<N> {
    /// Pool every plane to `output_size` (`None` entries keep the input's).
    pub fn new(output_size: impl Into<OutputSize<N>>) -> Self {
        AdaptiveAvgPool {
            output_size: output_size.into(),
        }
    }
}

impl<const N: usize> Module for AdaptiveAvgPool<N> {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.adaptive_avg_pool(self.output_size)
    }
    fn describe(&self) -> String {
        format!("AdaptiveAvgPool{N}d(output_size={})", self.output_size)
    }
}

/// `nn.AdaptiveMaxPool1d/2d/3d(output_size)`.
#[derive(Clone, Debug)]
pub struct AdaptiveMaxPool<const N: usize> {
    pub output_size: OutputSize<N>,
}

/// `nn.AdaptiveMaxPool1d`.
pub type AdaptiveMaxPool1d = AdaptiveMaxPool<1>;
/// `nn.AdaptiveMaxPool2d`.
pub type AdaptiveMaxPool2d = AdaptiveMaxPool<2>;
/// `nn.AdaptiveMaxPool3d`.
pub type AdaptiveMaxPool3d = AdaptiveMaxPool<3>;

impl<const N: usize> AdaptiveMaxPool<N> {
    /// Pool every plane to `output_size` (`None` entries keep the input's).
    pub fn new(output_size: impl Into<OutputSize<N>>) -> Self {
        AdaptiveMaxPool {
            output_size: output_size.into(),
        }
    }
    /// The output and the index of each maximum (`return_indices=True`).
    ///
    /// # Errors
    /// See [`crate::ops::pool::adaptive_max_pool`].
    pub fn forward_with_indices(&self, input: &Var) -> Result<(Var, Vec<usize>)> {
        input.adaptive_max_pool_with_indices(self.output_size)
    }
}

impl<const N: usize> Module for AdaptiveMaxPool<N> {
    fn forward(&self, input: &Var) -> Result<Var> {
        input.adaptive_max_pool(self.output_size)
    }
    fn describe(&self) -> String {
        format!("AdaptiveMaxPool{N}d(output_size={})", self.output_size)
    }
}

/// `nn.MaxUnpool1d/2d/3d(kernel_size, stride=None, padding=0)`. Its
/// forward takes the pooling's indices too, so, as in PyTorch (where it
/// cannot sit in a `Sequential` either), it is not a [`Module`].
///
/// ```
/// use convlab::{nn::{MaxPool2d, MaxUnpool2d}, autograd::Var, Tensor};
/// let x = Var::new(Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?);
/// let (y, idx) = MaxPool2d::new(2).forward_with_indices(&x)?;
/// let back = MaxUnpool2d::new(2).forward(&y, &idx, None)?;
/// assert_eq!(back.tensor().data()[15], 15.0);
/// assert_eq!(MaxUnpool2d::new(2).describe(), "MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MaxUnpool<const N: usize> {
    pub params: MaxUnpoolParams<N>,
}

/// `nn.MaxUnpool1d`.
pub type MaxUnpool1d = MaxUnpool<1>;
/// `nn.MaxUnpool2d`.
pub type MaxUnpool2d = MaxUnpool<2>;
/// `nn.MaxUnpool3d`.
pub type MaxUnpool3d = MaxUnpool<3>;

impl<const N: usize> MaxUnpool<N> {
    /// Unpooling of a `kernel_size` pooling with stride = kernel, no padding.
    pub fn new(kernel_size: impl Into<Spatial<N>>) -> Self {
        MaxUnpool {
            params: MaxUnpoolParams::new(kernel_size),
        }
    }
    /// Unpooling with explicit parameters.
    pub fn with(params: MaxUnpoolParams<N>) -> Self {
        MaxUnpool { params }
    }
    /// `input`'s values placed at `indices` in zeroed output planes (see
    /// [`crate::ops::pool::max_unpool`]).
    ///
    /// # Errors
    /// See [`crate::ops::pool::max_unpool`].
    pub fn forward(
        &self,
        input: &Var,
        indices: &[usize],
        output_size: Option<&[i64]>,
    ) -> Result<Var> {
        input.max_unpool(indices, &self.params, output_size)
    }
    /// PyTorch's repr: every size as a full tuple.
    pub fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "MaxUnpool{N}d(kernel_size={}, stride={}, padding={})",
            py_tuple(p.kernel_size),
            py_tuple(p.stride.unwrap_or(p.kernel_size)),
            py_tuple(p.padding)
        )
    }
}

/// Where a [`FractionalMaxPool`] takes its samples: fixed at construction
/// (PyTorch's `_random_samples`), or drawn for each forward from a seeded
/// generator, as PyTorch draws from its global one.
#[derive(Debug)]
enum Samples {
    Fixed(Tensor),
    Drawn(Box<Mutex<Rng64>>),
}

/// `nn.FractionalMaxPool2d/3d(kernel_size, output_size=None,
/// output_ratio=None)`: a fresh window placement for each forward.
///
/// ```
/// use convlab::{nn::{FractionalMaxPool2d, Module}, autograd::Var, ops::pool::FractionalMaxPool2dParams, Tensor};
/// let pool = FractionalMaxPool2d::new(FractionalMaxPool2dParams::with_output_ratio(2, [0.5, 0.5]), 0)?;
/// let x = Var::new(Tensor::arange(64.0)?.reshape(&[1, 1, 8, 8])?);
/// assert_eq!(pool.forward(&x)?.shape(), vec![1, 1, 4, 4]);
/// # Ok::<(), convlab::Error>(())
/// ```
#[derive(Debug)]
pub struct FractionalMaxPool<const N: usize> {
    pub params: FractionalMaxPoolParams<N>,
    samples: Samples,
}

/// `nn.FractionalMaxPool2d`.
pub type FractionalMaxPool2d = FractionalMaxPool<2>;
/// `nn.FractionalMaxPool3d`.
pub type FractionalMaxPool3d = FractionalMaxPool<3>;

impl<const N: usize> FractionalMaxPool<N> {
    /// Fractional max pooling whose samples come from a generator seeded
    /// with `seed`.
    ///
    /// # Errors
    /// An output ratio outside `(0, 1)`, as PyTorch's module checks.
    pub fn new(params: FractionalMaxPoolParams<N>, seed: u64) -> Result<Self> {
        Self::checked(
            params,
            Samples::Drawn(Box::new(Mutex::new(seeded_rng(seed)))),
        )
    }
    /// Fractional max pooling with fixed samples (`[n, C, N]`, PyTorch's
    /// `_random_samples`), the same windows for every forward.
    ///
    /// # Errors
    /// As [`FractionalMaxPool::new`].
    pub fn with_samples(params: FractionalMaxPoolParams<N>, samples: Tensor) -> Result<Self> {
        Self::checked(params, Samples::Fixed(samples))
    }
    fn checked(params: FractionalMaxPoolParams<N>, samples: Samples) -> Result<Self> {
        if let FractionalOutput::Ratio(r) = params.output {
            if let Some(bad) = r.iter().find(|&&v| !(v > 0.0 && v < 1.0)) {
                return Err(Error::param(
                    ["", "FractionalMaxPool2d", "FractionalMaxPool3d"][N - 1],
                    "output_ratio",
                    format!("{bad} is invalid: must be between 0 and 1"),
                ));
            }
        }
        Ok(FractionalMaxPool { params, samples })
    }
    /// The output and the index of each maximum (`return_indices=True`).
    ///
    /// # Errors
    /// See [`crate::ops::pool::fractional_max_pool`].
    pub fn forward_with_indices(&self, input: &Var) -> Result<(Var, Vec<usize>)> {
        let drawn;
        let samples = match &self.samples {
            Samples::Fixed(t) => t,
            Samples::Drawn(rng) => {
                // A poisoned lock only means another forward panicked
                // mid-draw; the generator state is still a valid one.
                let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
                drawn = fractional_random_samples::<N>(&input.shape(), &mut rng)?;
                &drawn
            }
        };
        input.fractional_max_pool(&self.params, samples)
    }
}

impl<const N: usize> Module for FractionalMaxPool<N> {
    fn forward(&self, input: &Var) -> Result<Var> {
        Ok(self.forward_with_indices(input)?.0)
    }
    fn describe(&self) -> String {
        format!("FractionalMaxPool{N}d()")
    }
}
