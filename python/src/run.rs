//! Running library calls from Python: signals checked first, the GIL
//! released, large work on convlab's thread pool, errors and panics turned
//! into Python exceptions.
//!
//! There is one pool: the library's own (`convlab::parallel`), sized by
//! `set_num_threads` and replaced whole when the size changes, so
//! `convlab.set_num_threads(n)` and the library's policy are the same
//! thing. Work too small to split runs on the calling thread instead:
//! handing a job to a pool and waiting for it costs more than such an op
//! (about 14 us on the 2-core VM against 1-3 us for the chapter's 6x8 edge
//! detection). rayon's global pool, which an op called off the pool would
//! otherwise use, is built with one thread so those calls never split.

use crate::convert::to_pyerr;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rayon::ThreadPoolBuilder;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The library pool's size (0 until first set), read without a lock on
/// every call.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Multiply-adds from which a convolution splits over threads (the
/// library's `SPLIT_MIN_MACS`).
pub const CONV_SPLIT_MACS: u128 = 1 << 22;
/// Elements from which a pool or copy splits over threads (the library's
/// `PARALLEL_MIN` for pooling).
pub const ELEMS_SPLIT: usize = 1 << 16;

/// The thread count a fresh process starts with: `CONVLAB_NUM_THREADS`,
/// else `OMP_NUM_THREADS` (what torch follows too), else the CPUs this
/// process may run on.
fn default_threads() -> usize {
    for var in ["CONVLAB_NUM_THREADS", "OMP_NUM_THREADS"] {
        if let Some(n) = std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
        {
            return n;
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The number of threads convlab's ops use.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    }
}

/// Use `n` threads for convlab's ops from now on (ops already running
/// finish on the old pool): the library's pool, rebuilt with `n` threads.
pub fn set_num_threads(n: usize) -> PyResult<()> {
    if n == 0 {
        return Err(PyValueError::new_err(
            "set_num_threads: the number of threads must be at least 1",
        ));
    }
    convlab::parallel::set_num_threads(n).map_err(to_pyerr)?;
    THREADS.store(n, Ordering::Relaxed);
    Ok(())
}

/// Build rayon's global pool with one thread, so an op run on the caller's
/// thread never splits (see the module docs), and the library's pool with
/// the default thread count. Another global pool already built in this
/// process's copy of rayon is left as it is.
pub fn init_pools() -> PyResult<()> {
    let _ = ThreadPoolBuilder::new().num_threads(1).build_global();
    set_num_threads(default_threads())
}

/// Run `f` with the GIL released: on the pool when `parallel` (and the pool
/// has more than one thread), else on this thread. Pending signals
/// (Ctrl-C) are raised first; a panic becomes a `RuntimeError`.
pub fn run<T: Send>(
    py: Python<'_>,
    parallel: bool,
    f: impl FnOnce() -> convlab::Result<T> + Send,
) -> PyResult<T> {
    py.check_signals()?;
    let split = parallel && num_threads() > 1;
    let outcome = py.detach(move || {
        catch_unwind(AssertUnwindSafe(move || {
            if split {
                convlab::parallel::install(f)
            } else {
                f()
            }
        }))
    });
    match outcome {
        Ok(result) => result.map_err(to_pyerr),
        Err(panic) => Err(panic_error(panic)),
    }
}

/// A caught panic as a `RuntimeError` with its message.
pub fn panic_error(panic: Box<dyn Any + Send>) -> PyErr {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    PyRuntimeError::new_err(format!("convlab: internal error: {msg}"))
}
