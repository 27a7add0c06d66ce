//! Python values in and out: arrays to [`Tensor`]s (one checked copy, made
//! while the GIL is held), tensors to NumPy arrays (no copy: the array owns
//! the tensor's buffer), and torch.nn.functional's argument forms (`3` or
//! `(3, 2)`, `"same"`, `None` sides of an output size) to convlab's types.

use convlab::{memory, Error, Padding, PaddingMode, Pair, Tensor};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PySequence, PyString};

/// convlab's error as the Python exception a user expects: shapes and
/// parameters are `ValueError`, sizes over the memory limit `MemoryError`,
/// files `OSError`; the message is the library's one line.
pub fn to_pyerr(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::TooLarge { .. } => PyMemoryError::new_err(msg),
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::Autograd { .. } => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// An input array: any array-like (a float32 ndarray, a float64 one, a
/// nested list, a torch CPU tensor) copied once into a [`Tensor`].
///
/// The copy is made with the GIL held, so no Python thread can write to
/// the array while it is read; the computation that follows runs on the
/// copy with the GIL released. Copying from NumPy's buffer is a `memcpy`
/// for C-contiguous float32 input (and a strided walk otherwise), guarded
/// by the library's memory limit like every user-sized buffer.
pub struct Array(pub Tensor);

impl<'py> FromPyObject<'_, 'py> for Array {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(arr) = obj.cast::<PyArrayDyn<f32>>() {
            return copy_array(&arr.to_owned()).map(Array);
        }
        let py = obj.py();
        let np = py.import("numpy")?;
        let converted = np
            .call_method1("asarray", (obj, np.getattr("float32")?))
            .map_err(|e| {
                PyTypeError::new_err(format!(
                    "expected an array of numbers, got {}: {e}",
                    type_name(&obj)
                ))
            })?;
        let arr = converted.cast::<PyArrayDyn<f32>>().map_err(|_| {
            PyTypeError::new_err(format!(
                "expected an array of numbers, got {}",
                type_name(&obj)
            ))
        })?;
        copy_array(arr).map(Array)
    }
}

fn type_name(obj: &Borrowed<'_, '_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an object".into())
}

/// The checked read-only borrow's values, copied into a tensor.
fn copy_array(arr: &Bound<'_, PyArrayDyn<f32>>) -> PyResult<Tensor> {
    let ro = arr
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("array is being written elsewhere: {e}")))?;
    let shape = ro.shape().to_vec();
    memory::check_f32("input", ro.len()).map_err(to_pyerr)?;
    // `as_slice` of the ndarray view is row-major only (NumPy's own
    // `as_slice` would also take a Fortran-ordered buffer as it lies).
    let view = ro.as_array();
    let data: Vec<f32> = match view.as_slice() {
        Some(slice) => slice.to_vec(),
        None => view.iter().copied().collect(),
    };
    Tensor::from_vec(data, &shape).map_err(to_pyerr)
}

/// A tensor as a NumPy array that takes over its buffer (no copy).
pub fn to_numpy(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyArrayDyn<f32>>> {
    let shape = t.shape().to_vec();
    let array = ArrayD::from_shape_vec(IxDyn(&shape), t.into_vec())
        .map_err(|e| PyRuntimeError::new_err(format!("convlab: output shape: {e}")))?;
    Ok(array.into_pyarray(py))
}

/// Flat argmax indices (`h * W + w` within each plane, PyTorch's) as an
/// int64 array of the output's shape.
pub fn indices_to_numpy<'py>(
    py: Python<'py>,
    indices: Vec<usize>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
    let wide: Vec<i64> = indices.into_iter().map(|i| i as i64).collect();
    let array = ArrayD::from_shape_vec(IxDyn(shape), wide)
        .map_err(|e| PyRuntimeError::new_err(format!("convlab: indices shape: {e}")))?;
    Ok(array.into_pyarray(py))
}

/// Indices from Python (any integer array-like), flattened; a negative
/// index is a `ValueError` naming `op`.
pub fn indices_from_python(op: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let np = obj.py().import("numpy")?;
    let arr = np.call_method1("ascontiguousarray", (obj, np.getattr("int64")?))?;
    let arr = arr
        .cast::<PyArrayDyn<i64>>()
        .map_err(|_| PyTypeError::new_err(format!("{op}: indices must be an integer array")))?;
    let ro = arr.readonly();
    let flat = ro
        .as_slice()
        .map_err(|e| PyValueError::new_err(format!("{op}: indices: {e}")))?;
    flat.iter()
        .map(|&i| {
            usize::try_from(i).map_err(|_| {
                PyValueError::new_err(format!("{op}: indices must be non-negative, found {i}"))
            })
        })
        .collect()
}

/// An int or a sequence of ints, as PyTorch's `_size_2_t` arguments
/// (`3`, `(3, 2)`, `[3]`); checked against its op and name by [`Ints::pair`].
#[derive(Clone, Debug)]
pub struct Ints(Vec<i64>);

impl Ints {
    /// The same value on both sides (a default).
    pub fn both(v: i64) -> Ints {
        Ints(vec![v])
    }

    /// The values as given.
    pub fn values(&self) -> &[i64] {
        &self.0
    }

    /// Whether no value was given (PyTorch's `stride=[]`, meaning the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(h, w)`: one value for both sides or two; each at least `min`.
    pub fn pair(&self, op: &str, name: &str, min: i64) -> PyResult<Pair> {
        let check = |v: i64| -> PyResult<usize> {
            if v < min {
                let what = if min == 0 { "non-negative" } else { "positive" };
                return Err(PyValueError::new_err(format!(
                    "{op}: {name} must be {what}, got {v}"
                )));
            }
            usize::try_from(v)
                .map_err(|_| PyValueError::new_err(format!("{op}: {name} {v} is out of range")))
        };
        match self.0.as_slice() {
            [v] => Ok(Pair(check(*v)?, check(*v)?)),
            [h, w] => Ok(Pair(check(*h)?, check(*w)?)),
            other => Err(PyValueError::new_err(format!(
                "{op}: {name} must be an int or a pair of ints, got {} values",
                other.len()
            ))),
        }
    }
}

impl<'py> FromPyObject<'_, 'py> for Ints {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Ints(vec![v]));
        }
        let not_ints = || PyTypeError::new_err("expected an int or a sequence of ints");
        if obj.is_instance_of::<PyString>() {
            return Err(not_ints());
        }
        let seq = obj.cast::<PySequence>().map_err(|_| not_ints())?;
        let mut vals = Vec::with_capacity(2);
        for item in seq.try_iter()? {
            vals.push(item?.extract::<i64>().map_err(|_| not_ints())?);
        }
        Ok(Ints(vals))
    }
}

/// `conv2d`'s padding: an int, a pair, or `"same"` / `"valid"`.
#[derive(Clone, Debug)]
pub enum PaddingArg {
    Sizes(Ints),
    Named(String),
}

impl PaddingArg {
    /// No padding (the default).
    pub fn zero() -> PaddingArg {
        PaddingArg::Sizes(Ints::both(0))
    }

    /// convlab's [`Padding`].
    pub fn resolve(&self, op: &str) -> PyResult<Padding> {
        match self {
            PaddingArg::Sizes(ints) => Ok(ints.pair(op, "padding", 0)?.into()),
            PaddingArg::Named(s) if s == "same" => Ok(Padding::Same),
            PaddingArg::Named(s) if s == "valid" => Ok(Padding::Valid),
            PaddingArg::Named(s) => Err(PyValueError::new_err(format!(
                "{op}: padding '{s}' is invalid: expected 'same', 'valid', an int or a pair of ints"
            ))),
        }
    }
}

impl<'py> FromPyObject<'_, 'py> for PaddingArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(PaddingArg::Named(s.to_str()?.to_owned()));
        }
        Ok(PaddingArg::Sizes(obj.extract()?))
    }
}

/// A padding mode by PyTorch's name (`"zeros"`, `"reflect"`, `"replicate"`,
/// `"circular"`).
pub fn padding_mode(op: &str, name: &str) -> PyResult<PaddingMode> {
    name.parse::<PaddingMode>().map_err(|_| {
        PyValueError::new_err(format!(
            "{op}: padding_mode '{name}' is invalid: expected 'zeros', 'reflect', 'replicate' or 'circular'"
        ))
    })
}

/// An adaptive pool's `output_size`: an int, or a pair whose `None` sides
/// keep the input's size.
#[derive(Clone, Debug)]
pub struct OutputSize(Vec<Option<i64>>);

impl OutputSize {
    /// `(oh, ow)` for an input of shape `[.., h, w]`.
    pub fn resolve(&self, op: &str, input_shape: &[usize]) -> PyResult<Pair> {
        let r = input_shape.len();
        let keep = |side: usize| -> PyResult<usize> {
            if r < 2 {
                return Err(PyValueError::new_err(format!(
                    "{op}: an output_size of None needs an input of at least 2 dimensions"
                )));
            }
            Ok(input_shape[r - 2 + side])
        };
        let side = |v: Option<i64>, s: usize| -> PyResult<usize> {
            match v {
                None => keep(s),
                Some(v) => usize::try_from(v).map_err(|_| {
                    PyValueError::new_err(format!(
                        "{op}: output_size must be non-negative, got {v}"
                    ))
                }),
            }
        };
        match self.0.as_slice() {
            [v] => Ok(Pair(side(*v, 0)?, side(*v, 1)?)),
            [h, w] => Ok(Pair(side(*h, 0)?, side(*w, 1)?)),
            other => Err(PyValueError::new_err(format!(
                "{op}: output_size must be an int or a pair, got {} values",
                other.len()
            ))),
        }
    }
}

impl<'py> FromPyObject<'_, 'py> for OutputSize {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(OutputSize(vec![Some(v)]));
        }
        let not_size = || PyTypeError::new_err("expected an int or a pair of ints or None");
        let seq = obj.cast::<PySequence>().map_err(|_| not_size())?;
        let mut vals = Vec::with_capacity(2);
        for item in seq.try_iter()? {
            let item = item?;
            vals.push(if item.is_none() {
                None
            } else {
                Some(item.extract::<i64>().map_err(|_| not_size())?)
            });
        }
        Ok(OutputSize(vals))
    }
}

/// A shape given from Python (a tuple, a list, `array.shape`).
pub fn shape_arg(op: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let dims: Vec<i64> = obj.extract().map_err(|_| {
        PyTypeError::new_err(format!("{op}: input_shape must be a sequence of ints"))
    })?;
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                PyValueError::new_err(format!("{op}: input_shape has a negative size {d}"))
            })
        })
        .collect()
}
