//! Standard output for the commands. A failed write is an error value,
//! never a panic (`println!` panics when stdout is a closed pipe or a full
//! disk): [`outln!`] returns it with `?`, and `main` turns it into the
//! exit status — a closed pipe (`convlab tour | head -1`) ends quietly with
//! exit 0, as Unix tools do; any other failure (`convlab tour > /dev/full`)
//! is one line on stderr and exit 2.

use std::fmt;
use std::io::{self, Write};

/// A write to standard output that failed.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// Writes `args` to standard output.
pub fn write(args: fmt::Arguments) -> Result<(), StdoutError> {
    io::stdout().lock().write_fmt(args).map_err(StdoutError)
}

/// Flushes standard output: the last line of a command may still be
/// buffered when it returns, and its failure must be seen too.
pub fn flush() -> Result<(), StdoutError> {
    io::stdout().lock().flush().map_err(StdoutError)
}

/// Whether `e` (or an error it wraps) is a write to a closed pipe on stdout.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StdoutError>()
            .is_some_and(|s| s.0.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `println!` that returns a failed write from the enclosing function (`?`).
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` that returns a failed write from the enclosing function (`?`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))?
    };
}

pub(crate) use {out, outln};
