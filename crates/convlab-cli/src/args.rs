//! Option values shared by several commands.

/// The most threads `--threads` accepts: far above any machine convlab
/// runs on, and low enough that a typo (`--threads 18446744073709551615`)
/// is an error instead of a process spawning threads until it fails.
pub const MAX_THREADS: usize = 1024;

/// `--threads N`: 1 to [`MAX_THREADS`].
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<u128>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) if n > MAX_THREADS as u128 => Err(format!("must be at most {MAX_THREADS}")),
        Ok(n) => Ok(n as usize),
        Err(_) => Err(format!(
            "'{s}' is not a whole number from 1 to {MAX_THREADS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_capped() {
        assert_eq!(parse_threads("1"), Ok(1));
        assert_eq!(parse_threads("1024"), Ok(1024));
        for bad in [
            "0",
            "1025",
            "18446744073709551615",
            "999999999999999999999999999999999999999999",
            "-1",
            "two",
            "",
        ] {
            assert!(parse_threads(bad).is_err(), "{bad}");
        }
    }
}
