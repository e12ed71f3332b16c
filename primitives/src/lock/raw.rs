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
//! ## Notes about memory ordering
//! The successful `CAS`/`swap` that takes the lock is `Acquire` and pairs with the `Release`
//! `swap` of the previous holder's unlock: everything written in the critical section
//! happens-before the next holder's critical section. Failed CASes are `Relaxed`: they only
//! decide to retry.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::futex::{self, WaitResult};
use crate::sync::spin_until;
use crate::sync::time::Instant;
use crate::track::waitreg;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A futex mutex without data; see the module docs.
#[derive(Debug)]
pub struct RawMutex {
    word: AtomicU32,
    /// Operation name published to the wait registry when a locker sleeps.
    op: &'static str,
}

impl RawMutex {
    /// A free mutex; `op` names the operation in hang reports (e.g. `"Mutex::lock"`).
    pub fn new(op: &'static str) -> Self {
        Self {
            word: AtomicU32::new(UNLOCKED),
            op,
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.word
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock, sleeping as long as needed.
    #[inline]
    pub fn lock(&self) {
        if !self.try_lock() {
            self.lock_slow(None);
        }
    }

    /// Takes the lock unless `deadline` passes first; `None` waits forever.
    /// Returns whether the lock was taken.
    #[inline]
    pub fn lock_until(&self, deadline: Option<Instant>) -> bool {
        self.try_lock() || self.lock_slow(deadline)
    }

    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        if spin_until(|| self.word.load(Ordering::Relaxed) == UNLOCKED && self.try_lock()) {
            return true;
        }
        let _registered = waitreg::enter(self.op, self);
        loop {
            if self.word.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return true;
            }
            if futex::wait(&self.word, CONTENDED, deadline) == WaitResult::TimedOut {
                return false;
            }
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock (took it with `lock`, `try_lock` or `lock_until`) and has not
    /// released it since.
    #[inline]
    pub unsafe fn unlock(&self) {
        if self.word.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex::wake_one(&self.word);
        }
    }

    /// Whether somebody holds the lock right now (a racy snapshot, for diagnostics).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != UNLOCKED
    }
}
