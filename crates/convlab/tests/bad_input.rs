//! The library's bad-input suite: everything a caller can get wrong is an
//! `Err` whose one-line message names the op — never a panic, an abort, or
//! an allocation sized by a huge dimension.
//!
//! | module | what |
//! |---|---|
//! | [`errors`] | the common mistakes of each op family, with their exact messages |
//! | [`battery`] | hundreds of generated bad calls across every op, tensor constructor, tool and reader |
//! | [`limits`] | sizes at the edge: zero-element tensors with huge dimensions, sizes past PyTorch's int64, the memory guard's totals, endless files, malformed `CONVLAB_*` values |
//! | [`fuzz`] | proptest on arbitrary small shapes and parameters and arbitrary bytes (the stable twins of the cargo-fuzz targets) |
//!
//! CI runs this file twice: with the rest in release, and with overflow
//! checks on (`cargo test -p convlab --test bad_input`: the test profile is
//! optimised but keeps debug assertions), so that an unchecked size
//! computation fails here as a panic instead of wrapping silently. The CLI's
//! suite is `crates/convlab-cli/tests/bad_input_battery.rs`.

mod common;

#[path = "bad_input/battery.rs"]
mod battery;
#[path = "bad_input/errors.rs"]
mod errors;
#[path = "bad_input/fuzz.rs"]
mod fuzz;
#[path = "bad_input/limits.rs"]
mod limits;

use convlab::Tensor;
use std::sync::{Mutex, MutexGuard};

/// An all-zero tensor of a small test shape.
fn z(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape).expect("test shapes are small")
}

/// Held by tests that change the process-wide memory limit, and by those
/// that read it, so that they do not see each other's limits.
fn limit_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
