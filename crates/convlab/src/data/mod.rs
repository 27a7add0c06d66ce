//! Small real data sets for examples and end-to-end training.
//!
//! [`digits`]: the UCI handwritten digits (1797 images of 8x8 pixels), the
//! set `convlab train-digits` learns. Loading is in the library, not the
//! CLI, because parsing, validation and batching are what any program
//! training on it needs; where the bytes come from (a file or a copy
//! embedded in a binary) is the caller's choice.

pub mod digits;

pub use digits::Digits;
