//! `convlab._native`: the extension module behind the `convlab` Python
//! package. The Python layer (`convlab.functional`, `convlab.torch`)
//! re-exports these functions and adds the torch bridge.
//!
//! - [`convert`]: arrays in (one checked copy under the GIL) and out (no
//!   copy), PyTorch's argument forms, errors as Python exceptions;
//! - [`run`]: signals, GIL release, the library's one thread pool, panics;
//! - [`ops`]: torch.nn.functional's ops and their backward passes;
//! - [`tools`]: the chapter's tools and the thread count.

mod convert;
mod ops;
mod run;
mod tools;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    run::init_pools()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    ops::register(m)?;
    tools::register(m)?;
    Ok(())
}
