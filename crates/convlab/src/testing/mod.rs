//! The definitions every fast path is tested against: plain loops that
//! follow each op's formula, accumulating in f64. Public so the
//! integration tests, fuzz targets and benchmarks can reach them; hidden
//! from the documentation because they are oracles, not an API (they are
//! slow and assume validated shapes).

pub mod conv;
pub mod pool;
pub mod resample;
