//! The one threading policy: how many threads an op may split its work
//! over, from what size splitting pays, and the helpers every parallel
//! driver uses.
//!
//! convlab runs its parallel regions on rayon. By default that is the
//! pool the caller runs in: rayon's global pool, or the pool of
//! `ThreadPool::install` when an op is called inside one.
//! [`set_num_threads`] gives convlab a pool of its own instead, so that a
//! host with its own threads (a Python process running PyTorch's) can keep
//! the two from oversubscribing the cores; ops then run inside it.
//!
//! Results never depend on the thread count: a plan built for `t` threads
//! may schedule work differently, but every reduction is cut into parts
//! fixed by the geometry alone and summed in a fixed order
//! (`REDUCTION_PARTS` of them).

use crate::error::{Error, Result};
use std::sync::{Arc, RwLock};

/// Below this many multiply-adds an op runs on the calling thread: waking
/// rayon costs a few microseconds per region, and a training step of the
/// digits net (layers of 0.3 M and 2.4 M) has dozens of them. At 2^21 its
/// 20 epochs took 0.59-0.80 s on two threads, at 2^22 0.47-0.53 s (with
/// [`GEMM_SPLIT_MIN_FLOPS`] raised alike).
pub(crate) const SPLIT_MIN_MACS: u128 = 1 << 22;

/// The `gemm` crate's threads are used from this many `m * n * k` on
/// (see [`SPLIT_MIN_MACS`] for the measurement).
pub(crate) const GEMM_SPLIT_MIN_FLOPS: usize = 1 << 22;

/// Below this many multiply-adds a batched im2col pass over small planes
/// stays on the calling thread. Splitting the digits net's 360-image test
/// pass over 2 threads: its second layer 0.84 -> 0.46 ms forward, 0.80 ->
/// 0.41 ms input gradient. Its training steps (2.4 M) measured faster
/// whole: at 2 M the 20-epoch run went from 0.52 to 0.84 s, the workers
/// sleeping between the small calls.
pub(crate) const BATCH_SPLIT_MIN_MACS: u128 = 1 << 24;

/// Reductions that several threads could share (weight gradients over
/// images, rows or tile blocks) are cut into at most this many parts, fixed
/// by the geometry, each summed alone and then added in order: the same
/// bits at any thread count. Four parts keep two and four threads busy;
/// each part costs one more pass over its accumulator.
pub(crate) const REDUCTION_PARTS: usize = 4;

/// Most threads [`set_num_threads`] accepts.
pub const MAX_THREADS: usize = 1024;

/// convlab's own pool, when [`set_num_threads`] made one.
static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Run convlab's parallel regions on a pool of `n` threads of its own
/// (`n = 0`: back to the caller's pool, the default).
///
/// Without it, an op splits its work over the rayon pool it is called
/// from (rayon's global pool, sized to the machine's cores, unless the
/// caller is inside `ThreadPool::install`). With it, every op runs inside
/// convlab's pool, whatever thread calls it: a host that runs its own
/// threads (PyTorch's intra-op pool in the same process) sets both to
/// share the cores instead of oversubscribing them. Called from a thread
/// outside the pool, each op then hands its work to the pool and waits
/// (about 14 us per op on the bench machine).
///
/// Results are the same bits at any thread count.
///
/// # Errors
/// `n` above [`MAX_THREADS`], or a pool the system cannot start.
///
/// ```
/// convlab::parallel::set_num_threads(2)?;
/// assert_eq!(convlab::parallel::num_threads(), 2);
/// convlab::parallel::set_num_threads(0)?; // back to rayon's pool
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn set_num_threads(n: usize) -> Result<()> {
    const OP: &str = "set_num_threads";
    if n > MAX_THREADS {
        return Err(Error::param(
            OP,
            "n",
            format!("{n} is invalid: must be at most {MAX_THREADS}"),
        ));
    }
    let pool = if n == 0 {
        None
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("convlab-{i}"))
            .build()
            .map_err(|e| Error::param(OP, "n", format!("{n}: cannot start the threads: {e}")))?;
        Some(Arc::new(pool))
    };
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = pool;
    Ok(())
}

/// The threads convlab's ops split their work over when called from this
/// thread: those of the pool [`set_num_threads`] made, else those of the
/// rayon pool the caller runs in.
pub fn num_threads() -> usize {
    match own_pool() {
        Some(pool) => pool.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

fn own_pool() -> Option<Arc<rayon::ThreadPool>> {
    POOL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Run `f` where convlab's parallel regions belong: inside the pool of
/// [`set_num_threads`] when there is one and the caller is not already
/// on it, else right here. `f` runs on another thread in the first case
/// (thread-local settings such as a forced algorithm do not follow it;
/// convlab's own callers carry theirs across). A host that calls many ops
/// in a row (a binding, a training loop) wraps the whole batch of work in
/// one `install` so every op's regions start on the pool.
///
/// ```
/// convlab::parallel::set_num_threads(2)?;
/// let on_pool = convlab::parallel::install(|| rayon::current_thread_index().is_some());
/// assert!(on_pool);
/// convlab::parallel::set_num_threads(0)?;
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match own_pool() {
        Some(pool) if pool.current_thread_index().is_none() => pool.install(f),
        _ => f(),
    }
}

/// Threads of the pool the calling thread runs its regions on.
pub(crate) fn threads() -> usize {
    rayon::current_num_threads()
}

/// Threads to split `macs` multiply-adds over: the pool's from
/// [`SPLIT_MIN_MACS`] on, else 1.
pub(crate) fn threads_for(macs: u128) -> usize {
    threads_above(macs, SPLIT_MIN_MACS)
}

/// Threads to split `work` over: the pool's from `min` on, else 1.
pub(crate) fn threads_above(work: u128, min: u128) -> usize {
    if work >= min {
        threads()
    } else {
        1
    }
}

/// Whether the calling thread is a worker of a rayon pool. From a worker a
/// parallel region is a push onto its own deque (an empty `join` 0.04 us
/// on the bench machine); from any other thread rayon injects the job,
/// wakes a worker and blocks the caller until it is done (14 us), so ops of
/// a few microseconds split only when called from a worker.
pub(crate) fn on_pool_worker() -> bool {
    rayon::current_thread_index().is_some()
}

/// `a` and `b` side by side on the pool (plain `rayon::join`; see
/// `drivers::conv::join_passes` for the variant that carries the
/// convolution settings of the calling thread).
pub(crate) fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    rayon::join(a, b)
}

/// Run `f` on every item, on rayon when `threads > 1`, with one scratch
/// value per worker from `init`; in order on the calling thread otherwise.
pub(crate) fn for_each<T: Sync, S>(
    threads: usize,
    items: &[T],
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, &T) + Sync + Send,
) {
    use rayon::prelude::*;
    if threads > 1 {
        items.par_iter().for_each_init(init, f);
    } else {
        let mut s = init();
        items.iter().for_each(|t| f(&mut s, t));
    }
}

/// Run `f(i, chunk)` on every `chunk_len`-long chunk `i` of `out`, on
/// rayon when `threads > 1`, in order on the calling thread otherwise:
/// for passes where each task writes its own contiguous part.
pub(crate) fn for_each_chunk<T: Send>(
    threads: usize,
    out: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    use rayon::prelude::*;
    if chunk_len == 0 {
        return;
    }
    if threads > 1 {
        out.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// `f` of every item, in item order, computed on rayon when `threads > 1`:
/// the per-part sums of a reduction, to be added in order.
pub(crate) fn map_collect<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    use rayon::prelude::*;
    if threads > 1 {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

/// `len` items cut into at most [`REDUCTION_PARTS`] contiguous ranges of
/// near-equal size: the parts of a reduction, fixed by `len` alone.
pub(crate) fn reduction_parts(len: usize) -> Vec<(usize, usize)> {
    parts_of(len, REDUCTION_PARTS)
}

/// `len` items cut into at most `parts` contiguous ranges of near-equal
/// size (none when `len` is 0).
pub(crate) fn parts_of(len: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.clamp(1, len.max(1));
    (0..parts)
        .map(|p| (p * len / parts, (p + 1) * len / parts))
        .filter(|(a, b)| a < b)
        .collect()
}

/// A pointer handed to rayon tasks that write disjoint parts of one buffer.
/// `get` rather than the field, so closures capture the whole (Send + Sync)
/// value.
#[derive(Clone, Copy)]
pub(crate) struct Shared<T>(pub *mut T);
// SAFETY: only used to give tasks disjoint parts of one buffer (see the
// SAFETY notes where it is dereferenced).
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_in_order() {
        assert_eq!(parts_of(10, 4), vec![(0, 2), (2, 5), (5, 7), (7, 10)]);
        assert_eq!(parts_of(3, 4), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(parts_of(0, 4), vec![]);
        assert_eq!(reduction_parts(1), vec![(0, 1)]);
    }

    #[test]
    fn own_pool_sets_the_thread_count() {
        // One test touches the process-wide setting (tests run in parallel).
        set_num_threads(3).unwrap();
        assert_eq!(num_threads(), 3);
        assert_eq!(install(threads), 3);
        assert!(install(on_pool_worker));
        set_num_threads(0).unwrap();
        assert_eq!(num_threads(), rayon::current_num_threads());
        let e = set_num_threads(MAX_THREADS + 1).unwrap_err().to_string();
        assert_eq!(
            e,
            "set_num_threads: n 1025 is invalid: must be at most 1024"
        );
    }
}
