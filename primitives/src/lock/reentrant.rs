//! `ReentrantLock<T>`: a lock its owner may take again (nested), thread-safe — unlike the
//! hand-made nested locks of seed 001, which counted per process and let a second thread in.
//!
//! ## State
//! | field   | meaning                                   | written by                       |
//! |---------|-------------------------------------------|----------------------------------|
//! | `raw`   | the futex mutex; held while `count > 0`   | the first/last acquisition       |
//! | `owner` | thread id of the holder, `0` when free    | the holder only                  |
//! | `count` | nesting depth                              | the holder only (`checked_add`)  |
//!
//! The owner is identified by [`current_thread_id`], a never-reused counter value, not by the
//! address of a thread-local: if a guard is leaked (`mem::forget`) on a thread that then exits,
//! the lock stays held forever by that dead id and no new thread can mistake itself for the
//! owner (Rust issue 123458).
//!
//! In a forked child, a lock held at the fork by a thread that did not come through it is taken
//! over by the child's first acquirer (`raw` says so, see [`RawMutex`]); the vanished owner's
//! `owner` and `count` are simply overwritten, and the guard's
//! [`owner_vanished_in_fork`](ReentrantLockGuard::owner_vanished_in_fork) is `true`.
//!
//! ## Notes about memory ordering
//! `owner` is read with `Relaxed` before locking: a thread only ever finds its *own* id there if
//! it stored it itself (program order), and any other value just sends it to `raw.lock()`,
//! whose Acquire pairs with the previous holder's Release unlock. `owner` is reset to `0` before
//! that unlock, so no later holder sees a stale id as its own.

use super::order::{self, LockClass};
use super::{Acquired, LockError, RawMutex};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::time::{deadline_after, Duration, Instant};
use crate::sync::{current_thread_id, UnsafeCell};
use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::panic::Location;

/// Whether an acquisition goes through the lock-order check (a `try_lock` does not).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checked {
    Yes,
    No,
}

/// A reentrant (nested) lock, optionally tracked by a lock class.
pub struct ReentrantLock<T> {
    raw: RawMutex,
    owner: AtomicU64,
    count: UnsafeCell<u32>,
    class: Option<LockClass>,
    data: T,
}

// SAFETY: `count` is only touched by the owner; `data` is only shared (`&T`), like std's
// ReentrantLock, so `T: Send` is needed to move it and `T: Sync` to share it between holders.
unsafe impl<T: Send> Send for ReentrantLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for ReentrantLock<T> {}

impl<T> ReentrantLock<T> {
    /// An untracked reentrant lock.
    pub fn new(data: T) -> Self {
        Self::build(data, None)
    }

    /// A reentrant lock tracked as `class`.
    pub fn tracked(data: T, class: &LockClass) -> Self {
        Self::build(data, Some(class.clone()))
    }

    fn build(data: T, class: Option<LockClass>) -> Self {
        ReentrantLock {
            raw: RawMutex::new("ReentrantLock::lock"),
            owner: AtomicU64::new(0),
            count: UnsafeCell::new(0),
            class,
            data,
        }
    }

    /// The lock's identity in held stacks and the wait registry: the address of its
    /// `RawMutex`, which is also the object a sleeping locker registers as waiting on.
    fn addr(&self) -> usize {
        &self.raw as *const RawMutex as usize
    }

    fn acquire(
        &self,
        deadline: Option<Instant>,
        at: &'static Location<'static>,
        checked: Checked,
    ) -> Result<ReentrantLockGuard<'_, T>, LockError> {
        let me = current_thread_id();
        if let (Some(c), Checked::Yes) = (&self.class, checked) {
            order::check_acquire(c, self.addr(), at);
        }
        let mut how = Acquired::Released;
        if self.owner.load(Ordering::Relaxed) == me {
            // SAFETY: we are the owner; only the owner touches `count`.
            let ok = self.count.with_mut(|c| unsafe {
                match (*c).checked_add(1) {
                    Some(n) => {
                        *c = n;
                        true
                    }
                    None => false,
                }
            });
            if !ok {
                return Err(LockError::Overflow);
            }
        } else {
            how = self.raw.acquire(deadline).ok_or(LockError::Timeout)?;
            self.owner.store(me, Ordering::Relaxed);
            // SAFETY: we now hold `raw` and are the owner.
            self.count.with_mut(|c| unsafe { *c = 1 });
        }
        if let Some(c) = &self.class {
            order::push_held(c, self.addr(), at);
        }
        Ok(ReentrantLockGuard {
            lock: self,
            how,
            _not_send: PhantomData,
        })
    }

    /// Locks (again, if the caller already holds it). Panics if the nesting count overflows.
    #[track_caller]
    pub fn lock(&self) -> ReentrantLockGuard<'_, T> {
        match self.acquire(None, Location::caller(), Checked::Yes) {
            Ok(g) => g,
            Err(e) => panic!("ReentrantLock::lock: {e}"),
        }
    }

    /// Locks unless `timeout` passes first (a re-entry never waits).
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ReentrantLockGuard<'_, T>, LockError> {
        self.acquire(deadline_after(timeout), Location::caller(), Checked::Yes)
    }

    /// Locks if free or already held by the caller; never waits.
    #[track_caller]
    pub fn try_lock(&self) -> Result<ReentrantLockGuard<'_, T>, LockError> {
        let me = current_thread_id();
        let mut how = Acquired::Released;
        if self.owner.load(Ordering::Relaxed) != me {
            how = self.raw.try_acquire().ok_or(LockError::Timeout)?;
            // We just took `raw`: become the owner with count 0; `acquire` makes it 1.
            self.owner.store(me, Ordering::Relaxed);
            // SAFETY: we hold `raw` and are the owner.
            self.count.with_mut(|c| unsafe { *c = 0 });
        }
        // A try never waits, so it cannot deadlock: not checked (as lockdep treats trylock),
        // only recorded as held.
        let mut g = self.acquire(None, Location::caller(), Checked::No)?;
        g.how = how;
        Ok(g)
    }
}

impl<T> fmt::Debug for ReentrantLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantLock")
            .field("class", &self.class.as_ref().map(|c| c.name()))
            .finish_non_exhaustive()
    }
}

/// Shared access to a [`ReentrantLock`]'s data; releases one level on drop. Not `Send`.
pub struct ReentrantLockGuard<'a, T> {
    lock: &'a ReentrantLock<T>,
    how: Acquired,
    _not_send: PhantomData<*const ()>,
}

impl<T> ReentrantLockGuard<'_, T> {
    /// Whether this acquisition took the lock over, in a forked child, from a thread that held
    /// it at the fork and does not exist here (the data is as that thread left it; the
    /// vanished thread's nesting count is discarded): see [`crate::sync::fork`].
    pub fn owner_vanished_in_fork(&self) -> bool {
        self.how.owner_vanished()
    }
}

impl<T> Deref for ReentrantLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.lock.data
    }
}

impl<T> Drop for ReentrantLockGuard<'_, T> {
    fn drop(&mut self) {
        let l = self.lock;
        // SAFETY: a guard exists only on the owning thread; only the owner touches `count`.
        let left = l.count.with_mut(|c| unsafe {
            *c -= 1;
            *c
        });
        if left == 0 {
            l.owner.store(0, Ordering::Relaxed);
            // SAFETY: the outermost guard of the owner: we hold `raw`.
            unsafe { l.raw.unlock() };
        }
        if l.class.is_some() {
            order::pop_held(l.addr());
        }
    }
}

impl<T: Send + Sync> crate::traits::LockApi for ReentrantLock<T> {
    type Guard<'a>
        = ReentrantLockGuard<'a, T>
    where
        T: 'a;
    #[track_caller]
    fn lock(&self) -> Self::Guard<'_> {
        ReentrantLock::lock(self)
    }
    #[track_caller]
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        ReentrantLock::lock_timeout(self, timeout).ok()
    }
    #[track_caller]
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        ReentrantLock::try_lock(self).ok()
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}
