//! The `CONVLAB_*` environment variables, parsed strictly.
//!
//! | variable | value | effect |
//! |---|---|---|
//! | `CONVLAB_MAX_BYTES` | a whole number of bytes, at least 1 (`2000000000`; no units, signs or exponents) | the memory limit of [`crate::memory`] |
//! | `CONVLAB_ISA` | `avx512`, `avx2` or `scalar` (lower case) | the most capable instruction set the kernels may use (never more than the CPU has) |
//! | `CONVLAB_NO_SIMD` | any | the older spelling of `CONVLAB_ISA=scalar` |
//! | `CONVLAB_POISON_SCRATCH` | any | fill every scratch buffer and every uninitialised result with NaN when handed out, so a kernel that reads scratch it did not write, or leaves part of a result unwritten, shows NaN (for tests; costs a fill per buffer) |
//!
//! An empty value counts as unset. A value that does not parse is never
//! ignored: [`check`] returns the error, and so does every allocation the
//! memory guard checks (`conv2d: CONVLAB_MAX_BYTES '1G' is not ...`), so a
//! misspelt limit cannot silently run with no limit. The `convlab` tool
//! calls [`check`] first and exits 2 with that line.
//!
//! Each variable is read once, on first use.
//!
//! ```
//! // Unset or valid in the environment of the doc tests.
//! convlab::env::check()?;
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// The variable that sets the memory limit.
pub const MAX_BYTES: &str = "CONVLAB_MAX_BYTES";
/// The variable that lowers the instruction set.
pub const ISA: &str = "CONVLAB_ISA";

/// The instruction sets `CONVLAB_ISA` may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IsaRequest {
    Avx512,
    Avx2,
    Scalar,
}

/// A variable's value, or `None` when it is unset or empty.
fn value(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(v),
        // Not unicode: kept, so the parser refuses it by name.
        Err(std::env::VarError::NotUnicode(v)) => Some(v.to_string_lossy().into_owned()),
        Err(std::env::VarError::NotPresent) => None,
    }
}

/// `value` quoted and escaped onto one line, cut short if long.
fn shown(value: &str) -> String {
    let mut s: String = value
        .chars()
        .take(40)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(40).is_some() {
        s.push_str("...");
    }
    format!("'{s}'")
}

/// Parses a `CONVLAB_MAX_BYTES` value: decimal digits only.
pub(crate) fn parse_max_bytes(v: &str) -> Result<usize> {
    let bad = |why: &str| {
        Error::param(
            "env",
            MAX_BYTES,
            format!(
                "{} is not a whole number of bytes {why}(e.g. 2000000000 for 2 GB; unset it for the default)",
                shown(v)
            ),
        )
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(""));
    }
    match v.parse::<usize>() {
        Ok(0) => Err(bad("at least 1 ")),
        Ok(n) => Ok(n),
        Err(_) => Err(bad("that fits in 64 bits ")),
    }
}

/// Parses a `CONVLAB_ISA` value.
pub(crate) fn parse_isa(v: &str) -> Result<IsaRequest> {
    match v {
        "avx512" => Ok(IsaRequest::Avx512),
        "avx2" => Ok(IsaRequest::Avx2),
        "scalar" => Ok(IsaRequest::Scalar),
        _ => Err(Error::param(
            "env",
            ISA,
            format!(
                "{} is not avx512, avx2 or scalar (lower case; unset it to use the best this CPU has)",
                shown(v)
            ),
        )),
    }
}

/// `CONVLAB_MAX_BYTES` as read at first use.
pub(crate) fn max_bytes() -> Result<Option<usize>> {
    static V: OnceLock<Result<Option<usize>>> = OnceLock::new();
    V.get_or_init(|| value(MAX_BYTES).map(|v| parse_max_bytes(&v)).transpose())
        .clone()
}

/// Whether `CONVLAB_POISON_SCRATCH` is set (to anything but empty), as
/// read at first use.
pub(crate) fn poison_scratch() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| value("CONVLAB_POISON_SCRATCH").is_some())
}

/// The instruction set `CONVLAB_ISA` (or `CONVLAB_NO_SIMD`) asks for, as
/// read at first use.
pub(crate) fn isa() -> Result<Option<IsaRequest>> {
    static V: OnceLock<Result<Option<IsaRequest>>> = OnceLock::new();
    V.get_or_init(|| {
        let asked = value(ISA).map(|v| parse_isa(&v)).transpose()?;
        if asked.is_none() && std::env::var_os("CONVLAB_NO_SIMD").is_some() {
            return Ok(Some(IsaRequest::Scalar));
        }
        Ok(asked)
    })
    .clone()
}

/// Checks every `CONVLAB_*` variable convlab reads.
///
/// # Errors
/// [`Error::Param`] naming the first variable whose value does not parse,
/// with the value and what would: `env: CONVLAB_ISA 'AVX2' is not avx512,
/// avx2 or scalar (lower case; ...)`.
pub fn check() -> Result<()> {
    max_bytes()?;
    isa()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_bytes_is_digits_only() {
        assert_eq!(parse_max_bytes("1000000").unwrap(), 1_000_000);
        assert_eq!(parse_max_bytes("007").unwrap(), 7);
        for bad in [
            "1G", "1e9", "-5", "+5", " 5", "5 ", "1_000", "0x10", "1.5", "0",
        ] {
            let e = parse_max_bytes(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("env: CONVLAB_MAX_BYTES '") && e.contains("is not a whole number"),
                "{bad}: {e}"
            );
        }
        let e = parse_max_bytes("99999999999999999999999").unwrap_err();
        assert!(e.to_string().contains("fits in 64 bits"), "{e}");
        let e = parse_max_bytes("1\n2").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn isa_names_are_exact() {
        assert_eq!(parse_isa("avx2").unwrap(), IsaRequest::Avx2);
        assert_eq!(parse_isa("scalar").unwrap(), IsaRequest::Scalar);
        assert_eq!(parse_isa("avx512").unwrap(), IsaRequest::Avx512);
        for bad in ["AVX2", "avx", "sse", "avx2 ", "native"] {
            let e = parse_isa(bad).unwrap_err().to_string();
            assert!(e.starts_with("env: CONVLAB_ISA '"), "{bad}: {e}");
        }
    }
}
