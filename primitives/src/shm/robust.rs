//! `RobustWord`: a futex lock whose word names its owner, so that a waiter can find a dead owner
//! and take the lock over — the userspace equivalent of a robust `PTHREAD_MUTEX_ROBUST` mutex,
//! without the kernel's robust list (which glibc owns per thread).
//!
//! ## State table (the word)
//! | value                  | meaning                                  | moved by                          |
//! |------------------------|------------------------------------------|-----------------------------------|
//! | `0`                    | free                                     | owner's unlock (`swap 0`)         |
//! | `token`                | held by `token`, nobody sleeps           | locker: `CAS 0 → token`           |
//! | `token \| WAITERS`     | held, someone may sleep on the word      | a waiter, before sleeping         |
//! | `new \| WAITERS`       | taken over from a dead owner             | a waiter: `CAS dead… → new…`      |
//!
//! Unlock swaps in 0 and wakes one waiter if `WAITERS` was set. A waiter sleeps in *slices*
//! (1 ms doubling to 50 ms): after each slice in which the word did not change it asks the
//! participant table whether the owner is dead ([`Participants::is_dead`]: slot reused, or
//! `/proc` says the pid/tid with that start time is gone). A dead owner is replaced by a CAS on
//! the exact word value seen, so of several waiters that see the death exactly one takes over;
//! it is told so ([`Acquired::Recovered`]) and must restore the protected state. A *stopped*
//! owner is alive: waiters wait, bounded by their own deadlines.
//!
//! Under the model engines a slice is an untimed wait, and the harness wakes every word when a
//! participant "dies" (which is what the end of a slice does for real).
//!
//! ## Notes about memory ordering
//! Every successful CAS/swap that takes the lock (including a takeover) is `Acquire` and pairs
//! with the `Release` of the previous owner's unlock — or, after a death, with nothing: the
//! recovering owner may see any prefix of the dead owner's writes, which is exactly why the
//! protected data needs a crash-consistent commit protocol (see `mvar::shared`).

use super::participants::{Participants, Token, Who};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::futex::{self, Scope, WaitResult};
use crate::sync::time::{Duration, Instant};
use crate::sync::{spin_until, waitreg};

/// Set in the lock word when a waiter may be sleeping on it.
pub const WAITERS: u32 = 1 << 31;

/// First and longest sleep between two liveness checks of the owner.
const FIRST_SLICE: Duration = Duration::from_millis(1);
const LONGEST_SLICE: Duration = Duration::from_millis(50);

/// How a lock was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// From a live owner's unlock (or free).
    Clean,
    /// Taken over from a dead owner: the protected state may be half-updated.
    Recovered(Who),
}

/// What a lock operation needs besides the word: where owners are looked up, which futex flavour
/// the word uses, the operation name for hang reports, and whether a dead owner is taken over.
#[derive(Clone, Copy, Debug)]
pub struct LockCx<'p> {
    /// The participant table of the segment the word lives in.
    pub parts: Participants<'p>,
    /// `Shared` for a word in shared memory (`Private` there is seed 000's defect).
    pub scope: Scope,
    /// Operation name for the wait registry.
    pub op: &'static str,
    /// Take over from a dead owner (`false` only in the "no dead-owner recovery" control).
    pub recover: bool,
}

/// The deadline passed before the lock could be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTimedOut;

/// A robust lock word; `#[repr(C)]`, lives in shared memory (all-zero = free).
#[repr(C)]
#[derive(Debug)]
pub struct RobustWord {
    word: AtomicU32,
}

impl Default for RobustWord {
    fn default() -> Self {
        Self::new()
    }
}

/// The sleep after which the owner's liveness is checked; `None` under the model engines.
pub(crate) fn slice_deadline(slice: Duration, deadline: Option<Instant>) -> Option<Instant> {
    if crate::sync::MODELLED {
        return deadline;
    }
    let end = crate::sync::time::deadline_after(slice);
    match (end, deadline) {
        (Some(e), Some(d)) => Some(e.min(d)),
        (e, d) => e.or(d),
    }
}

/// The next slice length (doubling, capped).
pub(crate) fn next_slice(slice: Duration) -> Duration {
    (slice * 2).min(LONGEST_SLICE)
}

/// The first slice length.
pub(crate) const fn first_slice() -> Duration {
    FIRST_SLICE
}

impl RobustWord {
    /// A free lock.
    pub fn new() -> Self {
        RobustWord {
            word: AtomicU32::new(0),
        }
    }

    /// The current owner's token (0 if free).
    pub fn owner(&self) -> Token {
        self.word.load(Ordering::Relaxed) & !WAITERS
    }

    /// Takes the lock if free.
    #[inline]
    pub fn try_lock(&self, me: Token) -> bool {
        self.word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock for `me`, waiting until `deadline` (`None`: as long as needed), taking it
    /// over if its owner is dead.
    pub fn lock(
        &self,
        cx: &LockCx<'_>,
        me: Token,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockTimedOut> {
        if self.try_lock(me) {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(cx, me, deadline)
    }

    #[cold]
    fn lock_slow(
        &self,
        cx: &LockCx<'_>,
        me: Token,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockTimedOut> {
        let (parts, scope, op) = (&cx.parts, cx.scope, cx.op);
        if spin_until(|| self.word.load(Ordering::Relaxed) == 0 && self.try_lock(me)) {
            return Ok(Acquired::Clean);
        }
        let _registered = waitreg::enter(op, self);
        let mut slice = FIRST_SLICE;
        loop {
            let w = self.word.load(Ordering::Relaxed);
            if w & !WAITERS == 0 {
                // Free: take it, keeping WAITERS since others may sleep.
                if self
                    .word
                    .compare_exchange(w, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if w & !WAITERS == me {
                // A thread never waits for itself: a word naming us was left by a previous
                // use of our slot (corrupted or replayed memory). Treat it as a dead owner's.
                if let Some(a) = self.take_over(parts, w, me) {
                    return Ok(a);
                }
                continue;
            }
            if w & WAITERS == 0
                && self
                    .word
                    .compare_exchange(w, w | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            if deadline.is_some_and(crate::sync::time::is_due) {
                return Err(LockTimedOut);
            }
            let woke = futex::wait_in(
                scope,
                &self.word,
                w | WAITERS,
                slice_deadline(slice, deadline),
            );
            if woke == WaitResult::TimedOut || crate::sync::MODELLED {
                // A slice passed with the same owner (or, modelled, a death was announced):
                // is the owner dead?
                if cx.recover && parts.is_dead(w & !WAITERS) {
                    if let Some(a) = self.take_over(parts, w | WAITERS, me) {
                        return Ok(a);
                    }
                    continue;
                }
                // Modelled, slices are untimed: a timeout is the caller's deadline.
                if (crate::sync::MODELLED && woke == WaitResult::TimedOut)
                    || deadline.is_some_and(crate::sync::time::is_due)
                {
                    return Err(LockTimedOut);
                }
                slice = next_slice(slice);
            }
        }
    }

    /// Takes the lock over if its holder is dead (and `cx.recover`); `None` if it is free, held
    /// by a live participant, or someone else took it over first.
    pub fn try_take_over(&self, cx: &LockCx<'_>, me: Token) -> Option<Acquired> {
        let w = self.word.load(Ordering::Relaxed);
        let owner = w & !WAITERS;
        if owner == 0 || !cx.recover || !cx.parts.is_dead(owner) {
            return None;
        }
        self.take_over(&cx.parts, w, me)
    }

    /// Replaces the dead owner's word `seen` with `me | WAITERS`; `None` if the word changed.
    fn take_over(&self, parts: &Participants<'_>, seen: u32, me: Token) -> Option<Acquired> {
        let who = parts.who(seen & !WAITERS);
        self.word
            .compare_exchange(seen, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Acquired::Recovered(who))
    }

    /// Releases the lock.
    pub fn unlock(&self, scope: Scope) {
        if self.word.swap(0, Ordering::Release) & WAITERS != 0 {
            futex::wake_in(scope, &self.word, 1);
        }
    }

    /// Wakes every waiter (after a participant's death, under the model engines).
    pub fn wake_all(&self, scope: Scope) {
        futex::wake_in(scope, &self.word, u32::MAX);
    }
}
