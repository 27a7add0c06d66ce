//! One error type for the whole library. Every variant names the op that
//! failed; shape errors carry the shapes, so a message reads on its own:
//! `conv2d: input has 8 channels but weight [4, 4, 3, 3] with groups=1 expects 4`.

use std::fmt;

/// Shapes print as `[4, 4, 3, 3]`, like PyTorch's `torch.Size` lists.
pub struct Dims<'a>(pub &'a [usize]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// Everything that can go wrong in convlab.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Shapes of the operands do not fit together.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A parameter (stride, padding, kernel size, ...) is out of range.
    #[error("{op}: {param} {msg}")]
    Param {
        op: &'static str,
        param: &'static str,
        msg: String,
    },
    /// Output or scratch size overflows, or exceeds the memory limit.
    #[error("{op}: {msg}")]
    TooLarge { op: &'static str, msg: String },
    /// Reading or writing a file failed, or its contents are malformed.
    #[error("{op}: {msg}")]
    Io { op: &'static str, msg: String },
    /// Autograd misuse (backward on a non-scalar, a graph without gradients, ...).
    #[error("{op}: {msg}")]
    Autograd { op: &'static str, msg: String },
    /// An error inside a container's child: `path` is the child's nested
    /// name (`features.2`), `layer` its short description
    /// (`Conv2d(6, 16, kernel_size=(5, 5), ...)`).
    #[error("{path} ({layer}): {source}")]
    InModule {
        path: String,
        layer: String,
        source: Box<Error>,
    },
}

/// `Result` with convlab's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape mismatch in `op`.
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    /// An out-of-range parameter `param` of `op`.
    pub fn param(op: &'static str, param: &'static str, msg: impl Into<String>) -> Self {
        Error::Param {
            op,
            param,
            msg: msg.into(),
        }
    }
    /// A size that overflows or does not fit in memory.
    pub fn too_large(op: &'static str, msg: impl Into<String>) -> Self {
        Error::TooLarge {
            op,
            msg: msg.into(),
        }
    }
    /// A file that cannot be read or written, or is malformed.
    pub fn io(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Io {
            op,
            msg: msg.into(),
        }
    }
    /// The same error attributed to `op` (for ops implemented by another,
    /// so the message names what the user called).
    pub fn with_op(self, op: &'static str) -> Self {
        match self {
            Error::Shape { msg, .. } => Error::Shape { op, msg },
            Error::Param { param, msg, .. } => Error::Param { op, param, msg },
            Error::TooLarge { msg, .. } => Error::TooLarge { op, msg },
            Error::Io { msg, .. } => Error::Io { op, msg },
            Error::Autograd { msg, .. } => Error::Autograd { op, msg },
            Error::InModule {
                path,
                layer,
                source,
            } => Error::InModule {
                path,
                layer,
                source: Box::new(source.with_op(op)),
            },
        }
    }
    /// The error itself, or for [`Error::InModule`] the error inside the
    /// innermost layer.
    pub fn root(&self) -> &Error {
        match self {
            Error::InModule { source, .. } => source.root(),
            other => other,
        }
    }
    /// Misuse of the autograd graph.
    pub fn autograd(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Autograd {
            op,
            msg: msg.into(),
        }
    }
}

/// Checked product of dimensions; `None` on overflow.
pub fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Number of elements of `dims`, or an error naming `op` when the product overflows.
pub fn numel_or_err(op: &'static str, dims: &[usize]) -> Result<usize> {
    checked_numel(dims).ok_or_else(|| {
        Error::too_large(
            op,
            format!("shape {} has more elements than fit in memory", Dims(dims)),
        )
    })
}
