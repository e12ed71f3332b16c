//! `RawMutex`: a three-state futex mutex (Drepper, "Futexes are tricky", mutex #2), the one
//! lock every other primitive of this crate is built on.
//!
//! ## State table (the word)
//! | value        | meaning                               | moved by                          |
//! |--------------|---------------------------------------|-----------------------------------|
//! | `UNLOCKED`   | free                                  | unlocker (`swap`)                 |
//! | `LOCKED`     | held, nobody sleeps on it             | locker (`CAS UNLOCKED→LOCKED`)    |
//! | `CONTENDED`  | held, a waiter may sleep on it        | a waiter (`swap` before sleeping) |
//!
//! Unlock swaps to `UNLOCKED` and calls `wake_one` only if the old value was `CONTENDED`, so an
//! uncontended lock/unlock pair makes no system call. A woken waiter swaps in `CONTENDED` (not
//! `LOCKED`) because it cannot know whether others still sleep.
//!
//! ## Fork stamp and owner (seed 002)
//! The two bits above are the *state*; the rest of the word is a **stamp**: the low 30 bits of
//! the [fork generation](crate::sync::fork::generation) of the process whose thread locked it
//! (or last announced itself a waiter). Beside the word, `owner` holds the holder's
//! [`current_thread_id`] (set just after taking the word, cleared just before releasing it;
//! 0 in those two windows). Both are real-build only bookkeeping: under loom and shuttle the
//! stamp is always 0 and there is no `owner`.
//!
//! In a forked child, a word that is locked with a stamp of an earlier generation, whose owner
//! is not the thread that forked ([`forker`](fork::forker)), is held by a thread that does not exist in the
//! child: it can never be released. The child's acquirer then **takes it over** with one CAS
//! (stamp → its own generation, state `CONTENDED`, so the eventual unlock wakes any other child
//! thread that sleeps meanwhile) and is told [`Acquired::OwnerVanishedInFork`]. The forking
//! thread itself is never in the middle of a lock or unlock (it is inside `fork`), so an owner
//! of 0 always means "another thread, mid-acquire or mid-release". With
//! [`fork::set_handling(false)`](crate::sync::fork::set_handling) (the control `fork-held-lock`)
//! there is no takeover: the child sleeps forever, seed 002's hang.
//!
//! ## Notes about memory ordering
//! The successful `CAS`/`swap` that takes the lock is `Acquire` and pairs with the `Release`
//! `swap` of the previous holder's unlock: everything written in the critical section
//! happens-before the next holder's critical section. Failed CASes are `Relaxed`: they only
//! decide to retry.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::fork;
use crate::sync::futex::{self, WaitResult};
use crate::sync::spin_until;
use crate::sync::time::Instant;
use crate::track::waitreg;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;
/// The state bits of the word; the rest is the fork stamp.
const STATE: u32 = 0b11;
const STAMP_SHIFT: u32 = 2;

/// This process's stamp (its fork generation, shifted into place).
#[inline]
fn stamp() -> u32 {
    fork::generation() << STAMP_SHIFT
}

/// How an acquisition got the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The usual way: it was free, or its holder released it.
    Released,
    /// Taken over in a forked child from a thread of the parent that held it at the fork and
    /// does not exist in the child: the data it guards is as that thread left it.
    OwnerVanishedInFork,
}

impl Acquired {
    /// Whether the lock was taken over from an owner that vanished in a fork.
    pub fn owner_vanished(self) -> bool {
        self == Acquired::OwnerVanishedInFork
    }
}

/// A futex mutex without data; see the module docs.
#[derive(Debug)]
pub struct RawMutex {
    word: AtomicU32,
    /// The holder's thread id (see the module docs; bookkeeping, real builds only).
    #[cfg(not(any(loom, shuttle)))]
    owner: crate::sync::BookAtomicU64,
    /// Operation name published to the wait registry when a locker sleeps.
    op: &'static str,
}

impl RawMutex {
    /// A free mutex; `op` names the operation in hang reports (e.g. `"Mutex::lock"`).
    pub fn new(op: &'static str) -> Self {
        fork::arm();
        Self {
            word: AtomicU32::new(UNLOCKED),
            #[cfg(not(any(loom, shuttle)))]
            owner: crate::sync::BookAtomicU64::new(0),
            op,
        }
    }

    #[inline]
    fn set_owner(&self) {
        #[cfg(not(any(loom, shuttle)))]
        self.owner.store(
            crate::sync::current_thread_id(),
            crate::sync::BookOrdering::Relaxed,
        );
    }

    /// Takes the lock if it is free (or, in a forked child, held by a vanished thread).
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.try_acquire().is_some()
    }

    /// As [`RawMutex::try_lock`], saying how the lock was taken.
    #[inline]
    pub fn try_acquire(&self) -> Option<Acquired> {
        if self
            .word
            .compare_exchange(
                UNLOCKED,
                LOCKED | stamp(),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.set_owner();
            return Some(Acquired::Released);
        }
        self.take_over_vanished()
    }

    /// Takes the lock, sleeping as long as needed.
    #[inline]
    pub fn lock(&self) {
        self.acquire(None);
    }

    /// Takes the lock unless `deadline` passes first; `None` waits forever.
    /// Returns whether the lock was taken.
    #[inline]
    pub fn lock_until(&self, deadline: Option<Instant>) -> bool {
        self.acquire(deadline).is_some()
    }

    /// Takes the lock unless `deadline` passes first (`None` waits forever), saying how.
    #[inline]
    pub fn acquire(&self, deadline: Option<Instant>) -> Option<Acquired> {
        match self.try_acquire() {
            Some(a) => Some(a),
            None => self.lock_slow(deadline),
        }
    }

    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> Option<Acquired> {
        if spin_until(|| {
            self.word.load(Ordering::Relaxed) & STATE == UNLOCKED
                && self
                    .word
                    .compare_exchange(
                        UNLOCKED,
                        LOCKED | stamp(),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
        }) {
            self.set_owner();
            return Some(Acquired::Released);
        }
        let _registered = waitreg::enter(self.op, self);
        loop {
            if let Some(a) = self.take_over_vanished() {
                return Some(a);
            }
            let contended = CONTENDED | stamp();
            if self.word.swap(contended, Ordering::Acquire) & STATE == UNLOCKED {
                self.set_owner();
                return Some(Acquired::Released);
            }
            if futex::wait(&self.word, contended, deadline) == WaitResult::TimedOut {
                return None;
            }
        }
    }

    /// In a forked child: takes the lock over if a thread that did not come through the fork
    /// holds it (see the module docs).
    #[cold]
    fn take_over_vanished(&self) -> Option<Acquired> {
        #[cfg(not(any(loom, shuttle)))]
        {
            let now = stamp();
            let w = self.word.load(Ordering::Relaxed);
            if w & STATE == UNLOCKED || w & !STATE == now || !fork::handling() {
                return None;
            }
            if self.owner.load(crate::sync::BookOrdering::Relaxed) == fork::forker() {
                return None; // the thread that forked holds it: it lives on here
            }
            if self
                .word
                .compare_exchange(w, CONTENDED | now, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.set_owner();
                fork::note_takeover();
                return Some(Acquired::OwnerVanishedInFork);
            }
        }
        None
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock (took it with `lock`, `try_lock` or `lock_until`) and has not
    /// released it since.
    #[inline]
    pub unsafe fn unlock(&self) {
        #[cfg(not(any(loom, shuttle)))]
        self.owner.store(0, crate::sync::BookOrdering::Relaxed);
        if self.word.swap(UNLOCKED, Ordering::Release) & STATE == CONTENDED {
            futex::wake_one(&self.word);
        }
    }

    /// Whether the calling thread holds the lock (real builds; always `false` under a model
    /// engine). For the fork handlers, which must not take a lock their thread holds.
    pub fn held_by_me(&self) -> bool {
        #[cfg(not(any(loom, shuttle)))]
        return self.is_locked()
            && self.owner.load(crate::sync::BookOrdering::Relaxed)
                == crate::sync::current_thread_id();
        #[cfg(any(loom, shuttle))]
        false
    }

    /// Whether somebody holds the lock right now (a racy snapshot, for diagnostics).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & STATE != UNLOCKED
    }
}
