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
//! Unlock swaps in 0 and wakes one waiter if `WAITERS` was set. A waiter sleeps on the word
//! *and on the owner process's death beacon* ([`super::watch`], [`super::beacon`]: a word the
//! kernel marks and wakes when that process dies, SIGKILL included), so an idle waiter costs
//! nothing; when the beacon fires, or a long fallback slice (3–4.5 s) ends, or — where no beacon
//! covers the owner — a polling slice (1 ms doubling to 50 ms) ends, it asks the participant
//! table whether the owner is dead ([`Participants::is_dead`]: slot reused, or `/proc` says
//! the pid/tid with that start time is gone). A dead owner is replaced by a CAS on
//! the exact word value seen, so of several waiters that see the death exactly one takes over;
//! it is told so ([`Acquired::Recovered`]) and must restore the protected state. A *stopped*
//! owner is alive: waiters wait, bounded by their own deadlines.
//!
//! Under the model engines a slice is an untimed wait, and the harness wakes every word when a
//! participant "dies" (which is what a beacon or the end of a slice does for real).
//!
//! ## Notes about memory ordering
//! Every successful CAS/swap that takes the lock (including a takeover) is `Acquire` and pairs
//! with the `Release` of the previous owner's unlock — or, after a death, with nothing: the
//! recovering owner may see any prefix of the dead owner's writes, which is exactly why the
//! protected data needs a crash-consistent commit protocol (as the robust MVar has).

use super::participants::{Participants, Token, Who};
use super::watch::{Watch, Whom};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::futex::{self, Scope, WaitResult};
use crate::sync::spin_until;
use crate::sync::time::Instant;
use crate::track::waitreg;

/// Set in the lock word when a waiter may be sleeping on it.
pub const WAITERS: u32 = 1 << 31;
/// Set in the lock word when its owner is known to have died (the kernel's `FUTEX_OWNER_DIED`;
/// here only the model engines' harness sets it, playing the kernel's part). Sticky until a
/// waiter takes the lock over, so a waiter that was about to sleep cannot miss the news.
pub const OWNER_DIED: u32 = 1 << 30;
/// The owner's token in a lock word.
const OWNER: u32 = !(WAITERS | OWNER_DIED);

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

impl RobustWord {
    /// A free lock.
    pub fn new() -> Self {
        RobustWord {
            word: AtomicU32::new(0),
        }
    }

    /// The current owner's token (0 if free).
    pub fn owner(&self) -> Token {
        self.word.load(Ordering::Relaxed) & OWNER
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
        let mut watch = Watch::new();
        loop {
            let w = self.word.load(Ordering::Relaxed);
            if w & OWNER == 0 {
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
            if w & OWNER == me || (w & OWNER_DIED != 0 && cx.recover) {
                // Marked dead (OWNER_DIED), or naming us — a thread never waits for itself, so
                // that word was left by a previous use of our slot (corrupted or replayed
                // memory): either way, a dead owner's.
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
            #[cfg(any(loom, shuttle))]
            crate::shm::trace(|| format!("lock me={me:x} sleeps on {:x}", w | WAITERS));
            // Sleep on the word and on the owner's death beacon (without recovery there is
            // no death to hear of: poll as a plain waiter would).
            let slept = if cx.recover {
                watch.sleep(
                    parts,
                    scope,
                    &self.word,
                    w | WAITERS,
                    Whom::Owner(w & OWNER),
                    deadline,
                )
            } else {
                watch.poll(scope, &self.word, w | WAITERS, deadline)
            };
            if slept.check {
                // A slice passed with the same owner, or its beacon fired (or, modelled, a
                // death was announced): is the owner dead?
                if cx.recover && parts.is_dead(w & OWNER) {
                    if let Some(a) = self.take_over(parts, w | WAITERS, me) {
                        return Ok(a);
                    }
                    continue;
                }
                // Modelled, slices are untimed: a timeout is the caller's deadline.
                if (crate::sync::MODELLED && slept.result == WaitResult::TimedOut)
                    || deadline.is_some_and(crate::sync::time::is_due)
                {
                    return Err(LockTimedOut);
                }
            }
        }
    }

    /// Takes the lock over if its holder is dead (and `cx.recover`); `None` if it is free, held
    /// by a live participant, or someone else took it over first.
    pub fn try_take_over(&self, cx: &LockCx<'_>, me: Token) -> Option<Acquired> {
        let w = self.word.load(Ordering::Relaxed);
        let owner = w & OWNER;
        if owner == 0 || !cx.recover || (w & OWNER_DIED == 0 && !cx.parts.is_dead(owner)) {
            return None;
        }
        self.take_over(&cx.parts, w, me)
    }

    /// Replaces the dead owner's word `seen` with `me | WAITERS`; `None` if the word changed.
    fn take_over(&self, parts: &Participants<'_>, seen: u32, me: Token) -> Option<Acquired> {
        let who = parts.who(seen & OWNER);
        self.word
            .compare_exchange(seen, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Acquired::Recovered(who))
    }

    /// Releases the lock.
    pub fn unlock(&self, scope: Scope) {
        let old = self.word.swap(0, Ordering::Release);
        #[cfg(any(loom, shuttle))]
        crate::shm::trace(|| format!("unlock {old:x}"));
        if old & WAITERS != 0 {
            futex::wake_in(scope, &self.word, 1);
        }
    }

    /// Model engines: `dead` died; if it owns the lock, set [`OWNER_DIED`] and wake every
    /// waiter (the kernel does this for a robust futex when its owner exits).
    pub fn owner_died(&self, dead: Token, scope: Scope) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| {
                (w & OWNER == dead && w & OWNER_DIED == 0).then_some(w | OWNER_DIED)
            });
        futex::wake_in(scope, &self.word, u32::MAX);
    }
}
