//! The convolution settings: the process-wide switch to exact algorithms
//! ([`use_exact_algorithms`]), and the calling thread's algorithm forced
//! for tests and benchmarks ([`force_conv_algo`]) and recorders of which
//! algorithm ran each pass ([`record_conv_algos`]). The last two are
//! guards local to the thread that made them (neither is `Send`), carried
//! by convlab into the threads it hands a convolution to ([`Carried`]).

use super::dispatch::{ConvAlgo, ConvPass};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One pass that ran: the op called, its pass and the algorithm that
/// computed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvRecord {
    /// The op the caller called (`"conv2d"`, `"conv_transpose2d"`, ...).
    pub op: &'static str,
    /// Which of the op's passes.
    pub pass: ConvPass,
    /// The algorithm that computed it.
    pub algo: ConvAlgo,
}

type Sink = Arc<Mutex<Vec<ConvRecord>>>;

#[derive(Default)]
struct State {
    /// Forced algorithms, innermost last, each with its guard's id.
    forced: Vec<(u64, ConvAlgo)>,
    /// Live recorders, each with its guard's id.
    sinks: Vec<(u64, Sink)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Whether only exact algorithms may run (see [`use_exact_algorithms`]).
static EXACT_ONLY: AtomicBool = AtomicBool::new(false);

/// Run every convolution in the process on exact algorithms only (`true`)
/// or let the dispatcher pick the fastest (`false`, the default), as
/// `torch.use_deterministic_algorithms` switches PyTorch's kernels.
///
/// An exact algorithm computes every output as a plain sum of its window's
/// products, in f32 (see [`ConvAlgo::is_exact`]): im2col, implicit GEMM,
/// direct loops and their variants. The others (Winograd, FFT, separable
/// passes) are faster on the layers they are chosen for, but an output's
/// rounding error there grows with the magnitude of inputs outside its
/// window (docs/RELIABILITY.md gives the figures). With the switch on,
/// forcing an algorithm that is not exact is an error.
///
/// ```
/// use convlab::ops::{conv2d, exact_algorithms_enabled, use_exact_algorithms, Conv2dParams};
/// use convlab::Tensor;
/// use_exact_algorithms(true);
/// let y = conv2d(&Tensor::ones(&[1, 16, 8, 8])?, &Tensor::ones(&[16, 16, 3, 3])?, None,
///                &Conv2dParams::new().padding(1))?;
/// assert!(exact_algorithms_enabled());
/// use_exact_algorithms(false);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn use_exact_algorithms(on: bool) {
    EXACT_ONLY.store(on, Ordering::Relaxed);
}

/// Whether [`use_exact_algorithms`] is on.
pub fn exact_algorithms_enabled() -> bool {
    EXACT_ONLY.load(Ordering::Relaxed)
}

/// Guard ids, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Force every convolution run on this thread (and on the threads convlab
/// hands its passes to) to use `algo` until the returned guard is dropped;
/// [`ConvAlgo::Auto`] lifts an outer force. A forced algorithm that does not
/// apply to a pass makes that op return an error (never another
/// algorithm). Guards nest and may be dropped in any order: the newest
/// live guard's algorithm is in force. Guards belong to a thread: one made
/// inside a rayon job is also in force for other jobs that thread runs
/// nested while it waits (keep forced work off pools shared with
/// unrelated work).
///
/// ```
/// use convlab::ops::{conv2d, force_conv_algo, ConvAlgo, Conv2dParams};
/// use convlab::Tensor;
/// let x = Tensor::ones(&[1, 1, 6, 6])?;
/// let w = Tensor::ones(&[1, 1, 3, 3])?;
/// let _guard = force_conv_algo(ConvAlgo::Im2col);
/// let y = conv2d(&x, &w, None, &Conv2dParams::new())?;
/// let _winograd = force_conv_algo(ConvAlgo::Winograd); // stride 1 only
/// let e = conv2d(&x, &w, None, &Conv2dParams::new().stride(2)).unwrap_err();
/// assert!(e.to_string().contains("winograd"), "{e}");
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// The guard stays on its thread:
///
/// ```compile_fail
/// let guard = convlab::ops::force_conv_algo(convlab::ops::ConvAlgo::Im2col);
/// std::thread::spawn(move || drop(guard));
/// ```
pub fn force_conv_algo(algo: ConvAlgo) -> ForcedAlgo {
    let id = next_id();
    STATE.with(|s| s.borrow_mut().forced.push((id, algo)));
    ForcedAlgo {
        id,
        _thread: PhantomData,
    }
}

/// Keeps an algorithm forced on its thread while it lives (see
/// [`force_conv_algo`]).
#[must_use = "the algorithm is forced only while the guard lives"]
#[derive(Debug)]
pub struct ForcedAlgo {
    id: u64,
    /// Not `Send`: the force belongs to the thread that made it.
    _thread: PhantomData<*const ()>,
}

impl Drop for ForcedAlgo {
    fn drop(&mut self) {
        // A thread being torn down has no state left to restore.
        let _ = STATE.try_with(|s| s.borrow_mut().forced.retain(|&(id, _)| id != self.id));
    }
}

/// Record every convolution pass run on this thread (and on the threads
/// convlab hands its passes to) while the returned guard lives: which op,
/// which pass, which algorithm. Passes with an empty result, or whose sums
/// are empty (all zeros), run no algorithm and are not recorded.
/// Recorders belong to a thread: one made inside a rayon job also sees the
/// passes of other jobs that thread runs nested while it waits.
///
/// ```
/// use convlab::ops::{conv2d, record_conv_algos, ConvAlgo, ConvPass, Conv2dParams};
/// use convlab::Tensor;
/// let rec = record_conv_algos();
/// let y = conv2d(&Tensor::ones(&[1, 1, 6, 6])?, &Tensor::ones(&[1, 1, 3, 3])?, None,
///                &Conv2dParams::new())?;
/// let ran = rec.take();
/// assert_eq!((ran[0].op, ran[0].pass), ("conv2d", ConvPass::Forward));
/// assert_ne!(ran[0].algo, ConvAlgo::Auto);
/// # Ok::<(), convlab::Error>(())
/// ```
pub fn record_conv_algos() -> AlgoRecorder {
    let id = next_id();
    let sink = Sink::default();
    STATE.with(|s| s.borrow_mut().sinks.push((id, sink.clone())));
    AlgoRecorder {
        id,
        sink,
        _thread: PhantomData,
    }
}

/// Collects [`ConvRecord`]s while it lives (see [`record_conv_algos`]).
#[must_use = "passes are recorded only while the recorder lives"]
#[derive(Debug)]
pub struct AlgoRecorder {
    id: u64,
    sink: Sink,
    /// Not `Send`: it records what its thread runs.
    _thread: PhantomData<*const ()>,
}

impl AlgoRecorder {
    /// The passes recorded so far, oldest first, leaving none behind.
    pub fn take(&self) -> Vec<ConvRecord> {
        std::mem::take(&mut *self.sink.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for AlgoRecorder {
    fn drop(&mut self) {
        let _ = STATE.try_with(|s| s.borrow_mut().sinks.retain(|(id, _)| *id != self.id));
    }
}

/// The algorithm in force on this thread ([`ConvAlgo::Auto`] when none).
pub(crate) fn forced() -> ConvAlgo {
    STATE.with(|s| s.borrow().forced.last().map_or(ConvAlgo::Auto, |&(_, a)| a))
}

/// Tell this thread's recorders that `algo` ran pass `pass` of `op`.
pub(crate) fn record(op: &'static str, pass: ConvPass, algo: ConvAlgo) {
    STATE.with(|s| {
        let s = s.borrow();
        let mut seen: Vec<&Sink> = Vec::new();
        for (_, sink) in &s.sinks {
            // The same recorder may be live twice (carried, then made anew).
            if seen.iter().any(|x| Arc::ptr_eq(x, sink)) {
                continue;
            }
            seen.push(sink);
            let record = ConvRecord { op, pass, algo };
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(record);
        }
    })
}

/// The settings of one thread, to run a closure under on another.
pub(crate) struct Carried {
    forced: ConvAlgo,
    sinks: Vec<Sink>,
}

impl Carried {
    /// This thread's settings.
    pub(crate) fn capture() -> Carried {
        STATE.with(|s| {
            let s = s.borrow();
            Carried {
                forced: s.forced.last().map_or(ConvAlgo::Auto, |&(_, a)| a),
                sinks: s.sinks.iter().map(|(_, sink)| sink.clone()).collect(),
            }
        })
    }

    /// Run `f` under these settings on the current thread, then restore
    /// the thread's own (also when `f` panics).
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        // Nothing forced or recorded on either side (the common case):
        // installing nothing over nothing is a no-op (an `Auto` force is
        // nothing), without the two
        // allocations and thread-local swaps (a third of d2l_edge's
        // backward overhead).
        if self.forced == ConvAlgo::Auto
            && self.sinks.is_empty()
            && STATE.with(|s| {
                let s = s.borrow();
                s.forced.last().is_none_or(|&(_, a)| a == ConvAlgo::Auto) && s.sinks.is_empty()
            })
        {
            return f();
        }
        let installed = State {
            forced: vec![(next_id(), self.forced)],
            sinks: self.sinks.into_iter().map(|s| (next_id(), s)).collect(),
        };
        let saved = STATE.with(|s| std::mem::replace(&mut *s.borrow_mut(), installed));
        struct Restore(Option<State>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(state) = self.0.take() {
                    let _ = STATE.try_with(|s| *s.borrow_mut() = state);
                }
            }
        }
        let _restore = Restore(Some(saved));
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConvAlgo::*;

    /// Guards dropped out of order leave the newest live one in force, and
    /// none once all are gone.
    #[test]
    fn guards_dropped_out_of_order_restore_correctly() {
        assert_eq!(forced(), Auto);
        let a = force_conv_algo(Fft);
        let b = force_conv_algo(Direct);
        assert_eq!(forced(), Direct);
        drop(a);
        assert_eq!(forced(), Direct);
        let c = force_conv_algo(Im2col);
        drop(c);
        assert_eq!(forced(), Direct);
        drop(b);
        assert_eq!(forced(), Auto);
    }

    /// The guards are not `Send`: a type that is gets two implementations
    /// of `Check` below, and the call cannot pick one (a compile error).
    #[test]
    fn guards_are_not_send() {
        trait Check<A> {
            fn check() {}
        }
        impl<T: ?Sized> Check<()> for T {}
        struct IsSend;
        impl<T: ?Sized + Send> Check<IsSend> for T {}
        <ForcedAlgo as Check<_>>::check();
        <AlgoRecorder as Check<_>>::check();
    }

    #[test]
    fn carried_settings_apply_inside_and_are_restored_after() {
        let rec = record_conv_algos();
        let _f = force_conv_algo(Winograd);
        let carried = Carried::capture();
        let inner = std::thread::scope(|s| {
            s.spawn(move || {
                let before = forced();
                let inside = carried.run(|| {
                    record("conv2d", ConvPass::Forward, forced());
                    forced()
                });
                (before, inside, forced())
            })
            .join()
            .unwrap()
        });
        assert_eq!(inner, (Auto, Winograd, Auto));
        // Also on the thread that captured them: once each.
        Carried::capture().run(|| record("conv2d", ConvPass::InputGrad, forced()));
        let ran: Vec<_> = rec.take().iter().map(|r| (r.pass, r.algo)).collect();
        assert_eq!(
            ran,
            [
                (ConvPass::Forward, Winograd),
                (ConvPass::InputGrad, Winograd)
            ]
        );
        assert_eq!(forced(), Winograd);
    }
}
