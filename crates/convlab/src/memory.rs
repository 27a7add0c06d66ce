//! The allocation guard: every output and scratch buffer whose size comes from
//! user input is checked here first, so a request for a 100000x100000 output
//! is an `Err`, not an abort from the allocator or the OOM killer.
//!
//! The limit is `CONVLAB_MAX_BYTES` when set, otherwise the machine's
//! available memory (`MemAvailable` in `/proc/meminfo`, or 8 GiB when that
//! cannot be read), lowered to the address-space limit (`ulimit -v`) if any.
//! [`set_max_bytes`] overrides both at run time.
//!
//! Three checks:
//! - [`check_f32`]: one buffer of f32 values;
//! - [`check_f32_total`]: the buffers one operation holds at once (a
//!   filter's input, padded copy and output), which must fit together;
//! - [`check_bytes`]: raw bytes (a file read into memory).
//!
//! Each also refuses a large request (16 MiB or more) that does not fit in
//! the address space left under `ulimit -v`: what the process already maps
//! counts, so the second of two 600 MB buffers under a 1 GiB limit is an
//! error, not an abort.
//!
//! A malformed `CONVLAB_*` variable makes every check fail with a message
//! naming it (see [`crate::env`]).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static OVERRIDE: AtomicUsize = AtomicUsize::new(0);
static DEFAULT: OnceLock<usize> = OnceLock::new();

/// Requests from this size on also check the address space left.
const HEADROOM_CHECK_BYTES: usize = 16 << 20;

fn default_limit() -> usize {
    *DEFAULT.get_or_init(|| {
        if let Ok(Some(v)) = crate::env::max_bytes() {
            return v;
        }
        let available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<usize>().ok())
            })
            .map(|kb| kb.saturating_mul(1024))
            .unwrap_or(8 << 30);
        // Under `ulimit -v` an allocation past the address-space limit fails
        // (and Rust aborts on a failed allocation) however much RAM is free.
        address_space_limit().map_or(available, |l| l.min(available))
    })
}

/// The soft `RLIMIT_AS` of this process from `/proc/self/limits`, when set.
fn address_space_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    // "Max address space   <soft>   <hard>   bytes"; "unlimited" parses to None.
    line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The address space this process maps now (`VmSize`), in bytes.
fn address_space_used() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: usize = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

/// The largest total, in bytes, that one operation may hold at once
/// ([`check_f32_total`]), and so the largest single buffer. When
/// `CONVLAB_MAX_BYTES` does not parse this is the machine's default, and
/// every check fails (see [`crate::env::check`]).
pub fn max_bytes() -> usize {
    match OVERRIDE.load(Ordering::Relaxed) {
        0 => default_limit(),
        v => v,
    }
}

/// Set the allocation limit in bytes for this process (0 restores the default).
pub fn set_max_bytes(bytes: usize) {
    OVERRIDE.store(bytes, Ordering::Relaxed);
}

/// Check that `elems` f32 values fit under the limit; the error names `op`.
///
/// # Errors
/// [`Error::TooLarge`] over the limit or the address space left;
/// [`Error::Param`] naming a malformed `CONVLAB_*` variable.
pub fn check_f32(op: &'static str, elems: usize) -> Result<()> {
    let bytes = elems
        .checked_mul(4)
        .ok_or_else(|| Error::too_large(op, format!("{elems} elements overflow usize bytes")))?;
    check_total(op, bytes, || format!("for {elems} values"))
}

/// Check that buffers of f32 values that `op` holds at the same time fit
/// under the limit together: `parts` names each buffer and its length.
///
/// ```
/// use convlab::memory::check_f32_total;
/// assert!(check_f32_total("filter", &[("input", 1000), ("output", 1000)]).is_ok());
/// let e = check_f32_total("filter", &[("input", usize::MAX / 8), ("output", usize::MAX / 8)]);
/// assert!(e.unwrap_err().to_string().contains("input"));
/// ```
///
/// # Errors
/// As [`check_f32`]; the message lists the parts.
pub fn check_f32_total(op: &'static str, parts: &[(&str, usize)]) -> Result<()> {
    let listing = || {
        parts
            .iter()
            .map(|(what, n)| format!("{what} {}", human_bytes(n.saturating_mul(4))))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let bytes = parts
        .iter()
        .try_fold(0usize, |acc, &(_, n)| n.checked_mul(4)?.checked_add(acc))
        .ok_or_else(|| Error::too_large(op, format!("{} overflows usize bytes", listing())))?;
    check_total(op, bytes, || format!("at once ({})", listing()))
}

/// Check that `bytes` raw bytes (a file's contents) fit under the limit.
///
/// # Errors
/// As [`check_f32`].
pub fn check_bytes(op: &'static str, bytes: usize) -> Result<()> {
    check_total(op, bytes, String::new)
}

/// The one check behind the public ones: the `CONVLAB_*` variables parse,
/// `bytes` is at most the limit, and a large request fits in the address
/// space left. `detail` says what the bytes are, for the message.
fn check_total(op: &'static str, bytes: usize, detail: impl Fn() -> String) -> Result<()> {
    crate::env::check().map_err(|e| e.with_op(op))?;
    let needs = || {
        let d = detail();
        if d.is_empty() {
            format!("needs {}", human_bytes(bytes))
        } else {
            format!("needs {} {d}", human_bytes(bytes))
        }
    };
    let limit = max_bytes();
    if bytes > limit {
        return Err(Error::too_large(
            op,
            format!(
                "{}, over the memory limit of {} (set CONVLAB_MAX_BYTES to change it)",
                needs(),
                human_bytes(limit)
            ),
        ));
    }
    if bytes >= HEADROOM_CHECK_BYTES {
        if let (Some(cap), Some(used)) = (address_space_limit(), address_space_used()) {
            let left = cap.saturating_sub(used);
            if bytes > left {
                return Err(Error::too_large(
                    op,
                    format!(
                        "{}, but only {} of address space is left under this process's limit of {} (ulimit -v)",
                        needs(),
                        human_bytes(left),
                        human_bytes(cap)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A zero-filled f32 buffer of `elems` values, after [`check_f32`].
pub fn zeros_f32(op: &'static str, elems: usize) -> Result<Vec<f32>> {
    check_f32(op, elems)?;
    Ok(vec![0.0; elems])
}

/// `b` bytes in B, KiB, MiB, GiB or TiB with one decimal.
pub fn human_bytes(b: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An uninitialised buffer of `elems` floats, after [`check_f32`]: for a
/// result every element of which is then written. `vec![0.0; n]` costs a
/// single-threaded memset once the allocator recycles the memory
/// (max-pool backward: 12.8 MB, a third of its time).
pub(crate) fn uninit_f32(
    op: &'static str,
    elems: usize,
) -> Result<Box<[std::mem::MaybeUninit<f32>]>> {
    check_f32(op, elems)?;
    let mut buf = Box::new_uninit_slice(elems);
    if crate::env::poison_scratch() {
        buf.iter_mut().for_each(|v| {
            v.write(f32::NAN);
        });
    }
    Ok(buf)
}

/// The floats of a buffer whose every element has been written.
///
/// # Safety
/// Every element of `buf` must be initialised.
pub(crate) unsafe fn assume_written(buf: Box<[std::mem::MaybeUninit<f32>]>) -> Vec<f32> {
    // SAFETY: the caller guarantees every element is initialised.
    unsafe { buf.assume_init() }.into_vec()
}

/// Zero every element of `buf`; the now-initialised floats.
pub(crate) fn zero_fill(buf: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    for v in buf.iter_mut() {
        v.write(0.0);
    }
    // SAFETY: every element was just written; MaybeUninit<f32> has f32's
    // layout.
    unsafe { &mut *(buf as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

/// `buf` as possibly-uninitialised floats, for kernels that only write.
pub(crate) fn as_uninit(buf: &mut [f32]) -> &mut [std::mem::MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and a written
    // `MaybeUninit<f32>` is always a valid `f32`, so the caller's slice
    // stays valid whatever is written through the view.
    unsafe { &mut *(buf as *mut [f32] as *mut [std::mem::MaybeUninit<f32>]) }
}

/// Floats a thread's scratch pool may keep between calls (256 MiB).
const POOL_FLOATS: usize = 64 << 20;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A scratch buffer from this thread's pool, returned to it on drop.
///
/// Kernels call the same shapes over and over (a training loop, a
/// benchmark): a fresh `vec![0.0; n]` per call was a memset of every
/// scratch float and, for buffers the allocator had handed back to the
/// kernel, a page fault per 4 KiB. Pooled buffers hold whatever floats an
/// earlier user left (always initialised), so callers write before they
/// read.
///
/// The floats start on a 64-byte boundary (a cache line, one AVX-512
/// vector): the allocator's 16-byte alignment split every other vector
/// store across two lines, and resnet_3x3_512's filter transform, which
/// stores 37.7 MB of such vectors, took 1.5x as long (3.4 against 2.2 ms,
/// one thread, the transform alone).
pub(crate) struct Scratch {
    buf: Vec<f32>,
    /// Floats from the buffer's start to the first aligned one.
    off: usize,
}

/// Floats per cache line.
const LINE_FLOATS: usize = 16;

/// Floats from `buf`'s start to its first 64-byte aligned float.
fn align_offset(buf: &[f32]) -> usize {
    buf.as_ptr()
        .align_offset(4 * LINE_FLOATS)
        .min(LINE_FLOATS - 1)
}

impl Scratch {
    /// At least `len` floats of stale contents, after [`check_f32`].
    pub fn take(op: &'static str, len: usize) -> Result<Scratch> {
        check_f32(op, len)?;
        Ok(Scratch::prechecked(len))
    }

    /// [`Scratch::take`] for a size the caller already passed through
    /// [`check_f32`] (a task's share of a checked total).
    pub fn prechecked(len: usize) -> Scratch {
        // Room to start at the next line boundary (within the checked
        // total: a few floats over `len`).
        let len = len.saturating_add(LINE_FLOATS - 1);
        let pooled = POOL.with(|p| {
            let mut p = p.borrow_mut();
            // The smallest pooled buffer that is large enough.
            let best = p
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= len)
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i);
            best.map(|i| p.swap_remove(i))
        });
        let mut buf = match pooled {
            Some(b) => b,
            None => vec![0.0; len],
        };
        if crate::env::poison_scratch() {
            buf.fill(f32::NAN);
        }
        let off = align_offset(&buf);
        Scratch { buf, off }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.off..]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // A thread that is being torn down has no pool to return to.
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            let held: usize = p.iter().map(|b| b.len()).sum();
            if held + buf.len() <= POOL_FLOATS {
                p.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_reused_and_zeroed_on_request() {
        let ptr = {
            let mut a = Scratch::take("t", 1000).unwrap();
            a[..1000].fill(7.0);
            a.as_ptr()
        };
        let b = Scratch::take("t", 500).unwrap();
        assert_eq!(b.as_ptr(), ptr, "the pooled buffer comes back");
        if crate::env::poison_scratch() {
            assert!(b[0].is_nan(), "poisoned");
        } else {
            assert_eq!(b[0], 7.0, "with its stale contents");
        }
        assert!(Scratch::take("t", usize::MAX / 8).is_err());
    }

    #[test]
    fn scratch_starts_on_a_cache_line() {
        // Several sizes, so that pooled and fresh buffers both come back.
        for len in [1, 17, 1000, 4099, 1 << 16] {
            let a = Scratch::take("t", len).unwrap();
            assert_eq!(a.as_ptr() as usize % 64, 0, "len {len}");
            assert!(a.len() >= len, "len {len}: {} floats", a.len());
        }
    }

    #[test]
    fn huge_request_is_an_error() {
        let err = check_f32("conv2d", 100_000 * 100_000 * 64).unwrap_err();
        assert!(err.to_string().contains("memory limit"), "{err}");
        assert!(check_f32("x", usize::MAX).is_err());
        assert!(check_f32("x", 16).is_ok());
    }
}
