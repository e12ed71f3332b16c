//! Seed 001: MIDAS's hand-made nested lock, not thread-safe. The nesting count is per
//! *process*, not per thread: a second thread that finds the count above zero believes it
//! already holds the lock and walks into the critical section.

use crate::lock::RawMutex;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::time::{deadline_after, Duration};
use crate::traits::LockApi;
use core::marker::PhantomData;

/// The broken nested lock (negative control `midas-nested-lock`).
#[derive(Debug)]
pub struct MidasNestedLock {
    raw: RawMutex,
    /// Nesting count shared by all threads of the process — the defect.
    count: AtomicU32,
}

impl Default for MidasNestedLock {
    fn default() -> Self {
        MidasNestedLock {
            raw: RawMutex::new("MidasNestedLock::lock"),
            count: AtomicU32::new(0),
        }
    }
}

/// Releases one level of a [`MidasNestedLock`].
pub struct MidasNestedGuard<'a> {
    lock: &'a MidasNestedLock,
    _not_send: PhantomData<*const ()>,
}

impl MidasNestedLock {
    fn enter(&self, deadline: Option<crate::sync::time::Instant>) -> Option<MidasNestedGuard<'_>> {
        if self.count.load(Ordering::Acquire) > 0 {
            // "We must already hold it": true for the owner, false for everyone else.
            self.count.fetch_add(1, Ordering::AcqRel);
        } else {
            if !self.raw.lock_until(deadline) {
                return None;
            }
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        Some(MidasNestedGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }
}

impl Drop for MidasNestedGuard<'_> {
    fn drop(&mut self) {
        if self.lock.count.fetch_sub(1, Ordering::AcqRel) == 1 && self.lock.raw.is_locked() {
            // Defect by design: the last level out unlocks whether or not it locked.
            // SAFETY: `RawMutex::unlock` only does atomic operations on its word, so a wrong
            // caller breaks mutual exclusion (the point of the control), never memory safety.
            unsafe { self.lock.raw.unlock() };
        }
    }
}

impl LockApi for MidasNestedLock {
    type Guard<'a> = MidasNestedGuard<'a>;
    fn lock(&self) -> Self::Guard<'_> {
        self.enter(None).expect("untimed lock")
    }
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        self.enter(deadline_after(timeout))
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}
