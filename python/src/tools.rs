//! The chapter's teaching tools: learning a kernel from an example pair,
//! receptive fields of a layer stack, the bank of named image kernels, the
//! tour, and the thread count.

use crate::convert::{padding_mode, to_numpy, to_pyerr, Array, Ints, PaddingArg};
use crate::run::{run, set_num_threads as set_threads};
use convlab::learn::{self, KernelMode, LearnOptions, LearningRate, OptimizerKind, Outcome};
use convlab::ops::Conv2dParams;
use convlab::receptive_field::{parse_spec, receptive_fields};
use convlab::{filters, Pair};
use numpy::PyArrayDyn;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::sync::Mutex;

/// The payload that unwinds a learning run stopped by its callback.
struct StopLearning;

/// A learning rate: a number, or `"auto"` (half the largest stable rate
/// for SGD, 0.05 for Adam).
fn learning_rate(lr: &Bound<'_, PyAny>) -> PyResult<LearningRate> {
    if let Ok(s) = lr.cast::<PyString>() {
        return match s.to_str()? {
            "auto" => Ok(LearningRate::Auto),
            other => Err(PyValueError::new_err(format!(
                "learn_kernel: lr '{other}' is invalid: expected a number or 'auto'"
            ))),
        };
    }
    Ok(LearningRate::Fixed(lr.extract::<f32>()?))
}

/// Learns a kernel `w` (and bias) with `corr2d(x, w) + b ~ y` by gradient
/// descent on the summed squared error (the book's §6.2.4 loop), stopping
/// when the loss blows up. Returns a dict: `losses`, `kernel`, `bias`,
/// `lr`, `outcome` (`"finished"`, `"converged"` or `"diverged"`),
/// `message`, and for a diverged SGD run `stable_below`.
#[pyfunction]
#[pyo3(
    signature = (x, y, kernel_size, *, bias=false, lr=None, steps=10, optimizer="sgd", mode="correlation", seed=0, init=None, init_bias=None, stop_below=None, on_step=None),
    text_signature = "(x, y, kernel_size, *, bias=False, lr=0.03, steps=10, optimizer='sgd', mode='correlation', seed=0, init=None, init_bias=None, stop_below=None, on_step=None)"
)]
fn learn_kernel<'py>(
    py: Python<'py>,
    x: Array,
    y: Array,
    kernel_size: Ints,
    bias: bool,
    lr: Option<&Bound<'py, PyAny>>,
    steps: usize,
    optimizer: &str,
    mode: &str,
    seed: u64,
    init: Option<Array>,
    init_bias: Option<f32>,
    stop_below: Option<f32>,
    on_step: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    const OP: &str = "learn_kernel";
    let mut opts = LearnOptions::new(kernel_size.pair(OP, "kernel_size", 1)?)
        .bias(bias)
        .steps(steps)
        .seed(seed)
        .optimizer(match optimizer {
            "sgd" => OptimizerKind::Sgd,
            "adam" => OptimizerKind::Adam,
            other => {
                return Err(PyValueError::new_err(format!(
                    "{OP}: optimizer '{other}' is invalid: expected 'sgd' or 'adam'"
                )))
            }
        })
        .mode(match mode {
            "correlation" => KernelMode::Correlation,
            "convolution" => KernelMode::Convolution,
            other => {
                return Err(PyValueError::new_err(format!(
                    "{OP}: mode '{other}' is invalid: expected 'correlation' or 'convolution'"
                )))
            }
        });
    if let Some(lr) = lr {
        opts = opts.lr(learning_rate(lr)?);
    }
    if let Some(k) = init {
        opts = opts.init(k.0);
    }
    if let Some(b) = init_bias {
        opts = opts.init_bias(b);
    }
    if let Some(t) = stop_below {
        opts = opts.stop_below(t);
    }
    let (x, y) = (x.0, y.0);
    // The callback's error (or a Ctrl-C seen between steps) ends the run:
    // the step unwinds out of the library (`resume_unwind` runs no panic
    // hook), `run` catches it, and the error is raised here.
    let callback_error: Mutex<Option<PyErr>> = Mutex::new(None);
    let result = run(py, false, || {
        learn::learn_kernel(&x, &y, &opts, |step, loss| {
            let Some(cb) = on_step.as_ref() else { return };
            let err = Python::attach(|py| {
                py.check_signals()
                    .and_then(|()| cb.call1(py, (step, loss)).map(drop))
                    .err()
            });
            if let Some(e) = err {
                *callback_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                std::panic::resume_unwind(Box::new(StopLearning));
            }
        })
    });
    if let Some(e) = callback_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        return Err(e);
    }
    let report = result?;
    let d = PyDict::new(py);
    d.set_item("losses", report.losses)?;
    d.set_item("kernel", to_numpy(py, report.kernel)?)?;
    d.set_item("bias", report.bias)?;
    d.set_item("lr", report.lr)?;
    d.set_item("message", report.outcome.to_string())?;
    match report.outcome {
        Outcome::Finished => d.set_item("outcome", "finished")?,
        Outcome::Converged { step } => {
            d.set_item("outcome", "converged")?;
            d.set_item("step", step)?;
        }
        Outcome::Diverged {
            step, stable_below, ..
        } => {
            d.set_item("outcome", "diverged")?;
            d.set_item("step", step)?;
            d.set_item("stable_below", stable_below)?;
        }
    }
    Ok(d)
}

/// The learning rates below which plain gradient descent on the kernel
/// learning loss converges from every start: `2 / lambda_max` of its Hessian.
#[pyfunction]
#[pyo3(signature = (x, kernel_size, bias=false))]
fn max_stable_lr(py: Python<'_>, x: Array, kernel_size: Ints, bias: bool) -> PyResult<f32> {
    let k = kernel_size.pair("max_stable_lr", "kernel_size", 1)?;
    let x = x.0;
    run(py, false, || learn::max_stable_lr(&x, k, bias))
}

/// Receptive fields of a layer stack such as `"conv3, conv3, maxpool2,
/// conv3 s2 p1"` on an input of `input_size`: one dict per layer with
/// `layer`, `out`, `rf`, `jump` (pairs) and `centre`.
#[pyfunction]
fn receptive_field<'py>(
    py: Python<'py>,
    spec: &str,
    input_size: Ints,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let input = input_size.pair("receptive_field", "input_size", 1)?;
    let layers = parse_spec(spec).map_err(to_pyerr)?;
    let rows = receptive_fields(&layers, input).map_err(to_pyerr)?;
    let pair = |p: Pair| (p.0, p.1);
    rows.into_iter()
        .map(|r| {
            let d = PyDict::new(py);
            d.set_item("layer", r.layer.text)?;
            d.set_item("out", pair(r.out))?;
            d.set_item("rf", pair(r.rf))?;
            d.set_item("jump", pair(r.jump))?;
            d.set_item("centre", r.centre)?;
            Ok(d)
        })
        .collect()
}

/// A kernel by name (`"sobel-x"`, `"gaussian:1.5"`, ...), literal
/// (`"[[1, -1]]"`) or `.npy` path, as a 2-D array.
#[pyfunction]
fn kernel<'py>(py: Python<'py>, spec: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    to_numpy(py, filters::kernel_from_spec(spec).map_err(to_pyerr)?)
}

/// The names [`kernel`] knows (parametrised ones with their parameter).
#[pyfunction]
fn kernel_names() -> Vec<&'static str> {
    filters::KERNEL_NAMES.to_vec()
}

/// Filters an `[H, W]` or `[C, H, W]` image with one 2-D kernel, each
/// channel on its own (a cross-correlation, as `conv2d`).
#[pyfunction]
#[pyo3(
    signature = (image, kernel, stride=Ints::both(1), padding=PaddingArg::zero(), dilation=Ints::both(1), padding_mode="zeros"),
    text_signature = "(image, kernel, stride=1, padding=0, dilation=1, padding_mode='zeros')"
)]
fn filter_image<'py>(
    py: Python<'py>,
    image: Array,
    kernel: Array,
    stride: Ints,
    padding: PaddingArg,
    dilation: Ints,
    padding_mode: &str,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    const OP: &str = "filter";
    let p = Conv2dParams::new()
        .stride(stride.pair(OP, "stride", 0)?)
        .padding(padding.resolve(OP)?)
        .dilation(dilation.pair(OP, "dilation", 0)?)
        .padding_mode(self::padding_mode(OP, padding_mode)?);
    let (image, k) = (image.0, kernel.0);
    let parallel = image.numel() >= crate::run::ELEMS_SPLIT;
    let y = run(py, parallel, || filters::apply_owned(image, &k, &p))?;
    to_numpy(py, y)
}

/// The chapter, cell by cell, with the book's numbers (`convlab tour`).
#[pyfunction]
fn tour(py: Python<'_>) -> PyResult<String> {
    run(py, false, convlab::tour::render)
}

/// Use `n` threads for convlab's ops.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    set_threads(n)
}

/// The number of threads convlab's ops use.
#[pyfunction]
fn get_num_threads() -> usize {
    crate::run::num_threads()
}

/// Adds every tool to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(learn_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(max_stable_lr, m)?)?;
    m.add_function(wrap_pyfunction!(receptive_field, m)?)?;
    m.add_function(wrap_pyfunction!(kernel, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_names, m)?)?;
    m.add_function(wrap_pyfunction!(filter_image, m)?)?;
    m.add_function(wrap_pyfunction!(tour, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    Ok(())
}
