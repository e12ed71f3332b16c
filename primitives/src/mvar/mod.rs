//! MVar: a box that is either empty or full. `put` waits for empty, `take` waits for full.
//!
//! Two protocols, each written once against [`crate::sync`]: [`local`] (in-process: FIFO
//! hand-off, per-waiter words) and [`robust`] (crash-robust, state in a shared segment, with a
//! `segment` and a `model` home). The state table below is the local one; the robust one is in
//! [`robust::core`].
//!
//! The local state machine ([`local::MVar`]) runs for real, under loom and under shuttle. Deliberately broken variants of it (negative controls)
//! are the same code with one [`Policy`] knob turned, so a control differs from the reference
//! by exactly one defect.
//!
//! # State table
//! The state lives behind a [`RawMutex`](crate::lock::RawMutex) (held only for a few queue
//! operations, never across a sleep): the box `value: Option<T>` and three FIFO queues of
//! waiters — takers (including swappers), putters, readers. Each waiter owns a private futex
//! word and a slot that carries its value in or out:
//!
//! | word       | meaning                                   | moved by                              |
//! |------------|-------------------------------------------|---------------------------------------|
//! | `WAITING`  | queued, its waiter spins                  | the waiter, when it queues            |
//! | `SLEEPING` | queued, its waiter sleeps (or is about to) | the waiter: `CAS WAITING→SLEEPING` after its spin, then `futex_wait(word, SLEEPING)` |
//! | `GRANTED`  | served: the slot holds the result         | the server: `swap` under the MVar lock |
//!
//! A blocked waiter first spins (an adaptive bound learnt per box, with a few yields:
//! [`crate::sync::spin`]); only a waiter that announced `SLEEPING` registers in the wait
//! registry and sleeps, and only such a waiter is woken: the server's `swap` returns the old
//! state, and a hand-off to a spinning waiter makes no system call.
//!
//! | box   | takers | putters | readers | an arriving ...                                 |
//! |-------|--------|---------|---------|-------------------------------------------------|
//! | empty | any    | empty   | any     | `put` fills the box, then *settles*             |
//! | empty | any    | empty   | any     | `take`/`read`/`swap` queue up and sleep         |
//! | full  | empty  | any     | empty   | `take` empties the box, then settles            |
//! | full  | empty  | any     | empty   | `put` queues up with its value and sleeps       |
//! | full  | empty  | any     | empty   | `read` clones; `swap` exchanges atomically      |
//!
//! *Settling* runs after every change and restores the invariant "a full box has no queued
//! takers or readers; an empty box has no queued putters": a full box first serves **every**
//! queued reader (a clone each), then hands the value to the **first** queued taker (a swapper
//! gets the value and leaves its own value in the box); an empty box takes the value of the
//! **first** queued putter. Each served waiter gets its slot filled, its word set to `GRANTED`
//! and — if it was `SLEEPING` — exactly one `wake_one` on its own word, after the lock is
//! released.
//!
//! # Fairness (what is guaranteed)
//! Like GHC's `MVar`: blocked takers are served in FIFO order of arrival, blocked putters in FIFO
//! order of arrival, with a single wake-up per hand-off (no thundering herd, the woken thread does
//! not have to race for the value — it already has it). A thread that arrives while others are
//! queued never overtakes them: an arriving `take` finds the box full only when no taker is
//! queued. Hence no blocked waiter starves while the MVar keeps being used. Readers are served
//! all at once, before the taker that the same value goes to. Timed-out waiters leave the queue
//! without disturbing its order. `try_*` operations never wait and never overtake a queued
//! waiter of their own kind (by the invariant, there is none when they succeed).
//!
//! # Timeouts
//! `*_timeout` take a duration, turned at once into a monotonic deadline. A waiter whose deadline
//! passes takes the lock and, under it, either finds it was served meanwhile (the operation
//! succeeded: a timed `put` whose value was handed over returns `Ok`) or removes itself from its
//! queue and gives the value back in the error.
//!
//! # Notes about memory ordering
//! * Box and queues: guarded by the `RawMutex` (its Acquire lock pairs with the previous
//!   holder's Release unlock).
//! * A waiter's slot: written by the server under the lock, then the server stores `GRANTED`
//!   with `Release`; the waiter loads its word with `Acquire` before touching the slot, which
//!   pairs with that store. A waiter that cancels reads the word under the lock.
//! * `WAITING → SLEEPING` (the waiter's CAS) and `→ GRANTED` (the server's swap) are
//!   read-modify-writes of one word, so one of them comes first in its modification order:
//!   either the server sees `SLEEPING` and wakes, or the CAS fails on `GRANTED` (loaded with
//!   `Acquire`, pairing with the swap's `Release`) and the waiter does not sleep. No lost wake-up,
//!   no SeqCst needed. The sleep itself is `futex_wait(word, SLEEPING)`, which returns at once
//!   if the word is already `GRANTED`.
//! * Wake-ups happen after the `Release` store (a wake before the store is the negative control
//!   `mvar-wake-before-grant`), and the server keeps an `Arc` of the waiter until its `wake_one`
//!   returns, so the word is never freed under the waker.

pub mod local;
pub mod robust;

pub use local::MVar;
pub use robust::{Flavor, TRY_LOCK_WAIT};
#[cfg(not(any(loom, shuttle)))]
pub use robust::{SharedMVar, WordMVar};

/// The robust core under its former name (`mvar::shared::TRY_LOCK_WAIT`, …); new code names
/// [`robust::core`] or the re-exports above.
#[doc(hidden)]
pub use robust::core as shared;

use core::fmt;

/// Compile-time knobs of the MVar state machine: the reference turns none, each negative control
/// turns exactly one (the negative controls, listed in the controls registry).
pub trait Policy: Send + Sync + 'static {
    /// Name used in reports.
    const NAME: &'static str;
    /// Defect: wake the served waiter *before* publishing `GRANTED` (a lost wake-up).
    const WAKE_BEFORE_GRANT: bool = false;
    /// Defect: a waiter sleeps once with `if`, not `while`, and trusts any wake-up.
    const WAIT_ONCE: bool = false;
    /// Defect when false: an emptied box never serves queued putters (only one waiter class is
    /// ever woken).
    const SERVE_PUTTERS: bool = true;
    /// Defect when true: blocked takers and putters are served most recent first (a stack,
    /// not a queue), while the type still declares FIFO service.
    const LIFO: bool = false;
}

/// The reference policy: no defect.
#[derive(Debug)]
pub struct Reference;
impl Policy for Reference {
    const NAME: &'static str = "reference";
}

/// `try_put` found the box full; the value is given back.
#[derive(Debug, PartialEq, Eq)]
pub enum TryPutError<T> {
    /// The box was full.
    Full(T),
}

/// `try_take` / `try_read` found the box empty.
#[derive(Debug, PartialEq, Eq)]
pub enum TryTakeError {
    /// The box was empty.
    Empty,
}

/// `put_timeout` did not get the value in before the deadline; the value is given back.
#[derive(Debug, PartialEq, Eq)]
pub enum PutTimeoutError<T> {
    /// The deadline passed first.
    Timeout(T),
}

/// `take_timeout` got no value before the deadline.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeTimeoutError {
    /// The deadline passed first.
    Timeout,
}

impl<T> TryPutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(v) => v,
        }
    }
}

impl<T> PutTimeoutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutTimeoutError::Timeout(v) => v,
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MVar is full")
    }
}
impl fmt::Display for TryTakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MVar is empty")
    }
}
impl<T> fmt::Display for PutTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MVar put timed out")
    }
}
impl fmt::Display for TakeTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MVar take timed out")
    }
}
impl<T: fmt::Debug> std::error::Error for TryPutError<T> {}
impl std::error::Error for TryTakeError {}
impl<T: fmt::Debug> std::error::Error for PutTimeoutError<T> {}
impl std::error::Error for TakeTimeoutError {}

/// The result of an operation on a shared-memory object: its value, and whether this caller
/// recovered the object from a dead participant on the way (the `EOWNERDEAD` of this crate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<T> {
    /// What the operation returned.
    pub value: T,
    /// `Some(who)` if this call took the object's lock over from `who`, who died holding it.
    pub recovered: Option<crate::shm::Who>,
}

impl<T> Outcome<T> {
    /// The value, dropping the recovery note.
    pub fn into_value(self) -> T {
        self.value
    }
}

/// Why an operation on a [`SharedMVar`] did not happen.
#[derive(Debug)]
pub enum SharedMVarError {
    /// `try_put` on a full box.
    Full,
    /// `try_take` / `try_read` on an empty box.
    Empty,
    /// The deadline passed (the value, if any, was not put) — or, for a `try_*` operation, the
    /// box's internal lock stayed held for [`shared::TRY_LOCK_WAIT`] (a stopped holder, or a
    /// corrupted lock word naming a live participant).
    Timeout,
    /// The value's length is not the box's payload length.
    Length {
        /// The box's payload length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The segment could not be used (e.g. no participant slot left).
    Shm(crate::shm::ShmError),
    /// Model engines only: the calling participant was told to die at this step (it stopped,
    /// leaving whatever it held). Never returned for real.
    Died,
}

impl fmt::Display for SharedMVarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedMVarError::Full => f.write_str("shared MVar is full"),
            SharedMVarError::Empty => f.write_str("shared MVar is empty"),
            SharedMVarError::Timeout => f.write_str("shared MVar operation timed out"),
            SharedMVarError::Length { expected, got } => {
                write!(
                    f,
                    "shared MVar holds {expected}-byte values, got {got} bytes"
                )
            }
            SharedMVarError::Shm(e) => write!(f, "shared MVar: {e}"),
            SharedMVarError::Died => f.write_str("the participant died (model engines)"),
        }
    }
}

impl std::error::Error for SharedMVarError {}

impl From<crate::shm::ShmError> for SharedMVarError {
    fn from(e: crate::shm::ShmError) -> Self {
        SharedMVarError::Shm(e)
    }
}
