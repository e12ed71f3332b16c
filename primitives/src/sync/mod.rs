//! The `sync` facade: the only module in the crate that names `std::sync`, `loom` or `shuttle`.
//!
//! Every primitive is written once against this module. Which engine backs it is chosen at
//! compile time:
//!
//! | build                      | atomics / threads / cells | futex `wait` / `wake`                      | clock              |
//! |----------------------------|---------------------------|--------------------------------------------|--------------------|
//! | default                    | `std`                     | the Linux `futex(2)` syscall               | `CLOCK_MONOTONIC`  |
//! | `RUSTFLAGS="--cfg loom"`   | `loom`                    | a model on loom's `Mutex`/`Condvar`        | logical (frozen)   |
//! | `RUSTFLAGS="--cfg shuttle"`| `shuttle`                 | the same model on shuttle's `Mutex`/`Condvar` | logical (frozen) |
//!
//! On real threads, [`chaos`] mode (off by default) injects spurious wake-ups and short random
//! delays at `wait`, `wake` and `thread::spawn`; under the model engines it compiles to nothing.
//! A fuzz harness may also attach its real threads to a [`sim`]: their deadlines then run on a
//! virtual clock the harness advances, and the harness sees when they all sleep.
//!
//! The futex model keeps the kernel's contract: `wait` returns at once if the word no longer
//! holds the expected value (checked under the table lock, as the kernel checks it under its
//! hash-bucket lock); `wake_one` wakes the longest-waiting waiter on that word; and *any* wake
//! also wakes every waiter on a different word spuriously, so code that does not re-check its
//! condition in a loop is caught.
//!
//! Under the model engines time does not pass, and a *timed* wait times out exactly when it
//! would otherwise sleep: the engine then explores every interleaving of "the waiter gives up"
//! against "a server grants it" — the hardest part of any timed operation. Untimed waits sleep
//! until woken, so a wait that nobody serves is reported by the engine as a deadlock.

#[cfg(all(loom, shuttle))]
compile_error!("choose one engine: --cfg loom or --cfg shuttle, not both");

pub mod chaos;
#[cfg(any(loom, shuttle))]
pub mod engine;
pub mod fork;
pub mod futex;
mod futex_sys;
#[cfg(not(any(loom, shuttle)))]
pub mod sim;
pub mod spin;
pub mod time;

mod cell;
pub use cell::UnsafeCell;

/// Atomics of the active engine.
pub mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
    #[cfg(shuttle)]
    pub use shuttle::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    #[cfg(not(any(loom, shuttle)))]
    pub use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
}

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(shuttle)]
pub use shuttle::sync::Arc;
#[cfg(not(any(loom, shuttle)))]
pub use std::sync::Arc;

/// Threads of the active engine.
pub mod thread {
    #[cfg(loom)]
    pub use loom::thread::{spawn, yield_now, JoinHandle};
    #[cfg(shuttle)]
    pub use shuttle::thread::{spawn, yield_now, JoinHandle};
    #[cfg(not(any(loom, shuttle)))]
    pub use std::thread::{yield_now, JoinHandle};

    /// `std::thread::spawn`, with [chaos mode](super::chaos)'s random delay at the start of the
    /// new thread when it is on (off: one relaxed load in the new thread).
    #[cfg(not(any(loom, shuttle)))]
    pub fn spawn<F, T>(f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        std::thread::spawn(move || {
            super::chaos::thread_start();
            f()
        })
    }
}

/// `thread_local!` of the active engine (a model engine's threads are not OS threads).
#[cfg(loom)]
pub(crate) use loom::thread_local as engine_thread_local;
#[cfg(shuttle)]
pub(crate) use shuttle::thread_local as engine_thread_local;
#[cfg(not(any(loom, shuttle)))]
pub(crate) use std::thread_local as engine_thread_local;

/// True when a model checker (loom or shuttle) drives the code.
pub const MODELLED: bool = cfg!(any(loom, shuttle));

/// One step of a busy-wait loop. Under a model engine this is a yield (both checkers require
/// spin loops to yield, or they never terminate); for real it is the CPU's spin hint.
#[inline]
pub fn spin_hint() {
    #[cfg(any(loom, shuttle))]
    thread::yield_now();
    #[cfg(not(any(loom, shuttle)))]
    std::hint::spin_loop();
}

/// How many times a fast path spins before sleeping in the kernel: 0 under a model engine
/// (spinning only multiplies the schedules to explore), a small bound for real.
pub const SPIN_LIMIT: u32 = if MODELLED { 0 } else { 100 };

/// Bounded spin before sleeping: polls `ready` up to [`SPIN_LIMIT`] times with a spin hint in
/// between; returns whether it became true.
#[inline]
#[allow(clippy::absurd_extreme_comparisons)] // SPIN_LIMIT is 0 under the model engines
pub fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    let mut spins = 0;
    while spins < SPIN_LIMIT {
        if ready() {
            return true;
        }
        spin_hint();
        spins += 1;
    }
    false
}

/// A small mutex for bookkeeping that must not itself be model-checked (the lock-order graph,
/// the wait registry). It is never held across a wait or a yield point, so it cannot block a
/// model engine's single OS thread.
pub(crate) type BookMutex<T> = std::sync::Mutex<T>;

/// Locks a [`BookMutex`], ignoring poisoning: bookkeeping stays usable after a panic in a test.
/// Also passes the [fork](fork) book gate, so that no child inherits a bookkeeping lock held by
/// a thread that is not there.
pub(crate) fn book_lock<T>(m: &BookMutex<T>) -> BookGuard<'_, T> {
    let ticket = fork::BookTicket::enter();
    BookGuard {
        guard: m.lock().unwrap_or_else(|e| e.into_inner()),
        _ticket: ticket,
    }
}

/// A held [`BookMutex`] (see [`book_lock`]).
pub(crate) struct BookGuard<'a, T> {
    // Dropped first: the lock is released before the ticket.
    guard: std::sync::MutexGuard<'a, T>,
    _ticket: fork::BookTicket,
}

impl<T> core::ops::Deref for BookGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> core::ops::DerefMut for BookGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

static NEXT_THREAD_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

engine_thread_local! {
    static THREAD_ID: u64 = NEXT_THREAD_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A process-unique, never-reused, non-zero id of the calling thread.
///
/// Unlike the address of a thread-local (the defect of Rust issue 123458), an id taken from a
/// global counter can never be handed to a new thread after the old one exits, so a guard leaked
/// by an exited thread cannot make a new thread look like the owner.
///
/// While the thread's locals are being destroyed — a model engine's thread-local destructors
/// (say, a message stage delivering at thread exit) run after *every* local of the thread is
/// gone, loom's all at once — the id cannot be read back; each call then gets a fresh id from
/// the same counter. That keeps the promise that matters (never another thread's id, so no
/// thread is ever taken for another) at the price that an exiting thread cannot re-enter a
/// reentrant lock from a destructor (it would wait for itself: a visible deadlock, never a
/// silent second owner). On real threads the id, having no destructor, is always readable.
pub fn current_thread_id() -> u64 {
    THREAD_ID
        .try_with(|id| *id)
        .unwrap_or_else(|_| NEXT_THREAD_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A write-once cell for bookkeeping that is not model-checked (e.g. registered hooks).
pub(crate) type BookOnceLock<T> = std::sync::OnceLock<T>;
/// A one-time initialisation for bookkeeping that is not model-checked.
pub(crate) type BookOnce = std::sync::Once;

/// Reference counting for bookkeeping that is not model-checked.
pub(crate) type BookArc<T> = std::sync::Arc<T>;
/// Channels of the harness's own bookkeeping (a watchdog waiting for a run's verdict).
#[cfg(not(any(loom, shuttle)))]
pub(crate) use std::sync::mpsc as book_mpsc;
/// A weak [`BookArc`].
pub(crate) type BookWeak<T> = std::sync::Weak<T>;
/// A counter for bookkeeping that is not model-checked.
pub(crate) type BookAtomicU64 = std::sync::atomic::AtomicU64;
/// A flag for bookkeeping that is not model-checked (used by the segments, absent under the
/// model engines).
#[cfg(not(any(loom, shuttle)))]
pub(crate) type BookAtomicBool = std::sync::atomic::AtomicBool;
/// A counter for bookkeeping that is not model-checked.
pub(crate) type BookAtomicUsize = std::sync::atomic::AtomicUsize;
pub(crate) use std::sync::atomic::Ordering as BookOrdering;
