//! Locks: the futex [`RawMutex`], a non-reentrant [`Mutex`], a thread-safe [`ReentrantLock`],
//! the lockdep-style [`order`] validator and the [`ordered`] multi-lock.
//!
//! Every lock here is usable in a forked child: see [`crate::sync::fork`] and [`RawMutex`].
//!
//! Any lock may be *tracked* by giving it a [`LockClass`]: its acquisitions are then checked by
//! the class's [`Validator`] and pushed on the calling thread's held stack in [`crate::track`] (which the buffered
//! message log reads to decide whether to stage a message).

pub mod order;
#[cfg(not(any(loom, shuttle)))]
pub mod order_shared;
pub mod ordered;
mod raw;
mod reentrant;
mod report;
#[cfg(not(any(loom, shuttle)))]
pub mod robust;

pub use crate::track::{held_classes, held_depth, held_locks};
pub use order::{LockClass, Mode, Validator, Violation, ViolationKind};
pub use ordered::{lock_many, MultiGuard};
pub use raw::{Acquired, RawMutex};
pub use reentrant::{ReentrantLock, ReentrantLockGuard};
#[cfg(not(any(loom, shuttle)))]
pub use robust::{SharedGuard, SharedLockError, SharedReentrantLock};

use crate::sync::time::{deadline_after, Duration};
use crate::sync::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::panic::Location;

/// Why a timed or non-blocking acquisition failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockError {
    /// The deadline passed (or, for `try_lock`, the lock was busy).
    Timeout,
    /// The reentrant count would overflow `u32`.
    Overflow,
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockError::Timeout => "lock not acquired before the deadline",
            LockError::Overflow => "reentrant lock count overflow",
        })
    }
}
impl std::error::Error for LockError {}

/// A non-reentrant mutex on [`RawMutex`], optionally tracked by a lock class.
pub struct Mutex<T> {
    raw: RawMutex,
    class: Option<LockClass>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, and guards exist only while `raw` is held,
// one at a time; `T: Send` lets the data be used from whichever thread holds the lock.
unsafe impl<T: Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// An untracked mutex.
    pub fn new(data: T) -> Self {
        Mutex {
            raw: RawMutex::new("Mutex::lock"),
            class: None,
            data: UnsafeCell::new(data),
        }
    }

    /// A mutex tracked as `class`.
    pub fn tracked(data: T, class: &LockClass) -> Self {
        Mutex {
            raw: RawMutex::new("Mutex::lock"),
            class: Some(class.clone()),
            data: UnsafeCell::new(data),
        }
    }

    /// The lock's identity in held stacks and the wait registry: the address of its
    /// `RawMutex`, which is also the object a sleeping locker registers as waiting on.
    fn addr(&self) -> usize {
        &self.raw as *const RawMutex as usize
    }

    fn acquired(&self, at: &'static Location<'static>, how: Acquired) -> MutexGuard<'_, T> {
        if let Some(c) = &self.class {
            order::push_held(c, self.addr(), at);
        }
        MutexGuard {
            lock: self,
            how,
            _not_send: PhantomData,
        }
    }

    /// The raw lock (for the fork handlers of the layers above).
    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }

    /// Locks, sleeping as long as needed.
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let at = Location::caller();
        if let Some(c) = &self.class {
            order::check_acquire(c, self.addr(), at);
        }
        let how = self.raw.acquire(None).unwrap_or(Acquired::Released);
        self.acquired(at, how)
    }

    /// Locks unless `timeout` passes first.
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, LockError> {
        let at = Location::caller();
        if let Some(c) = &self.class {
            order::check_acquire(c, self.addr(), at);
        }
        match self.raw.acquire(deadline_after(timeout)) {
            Some(how) => Ok(self.acquired(at, how)),
            None => Err(LockError::Timeout),
        }
    }

    /// Locks if free; never waits (and so is not an ordering violation).
    #[track_caller]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, LockError> {
        match self.raw.try_acquire() {
            Some(how) => Ok(self.acquired(Location::caller(), how)),
            None => Err(LockError::Timeout),
        }
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("class", &self.class.as_ref().map(|c| c.name()))
            .finish_non_exhaustive()
    }
}

/// Access to a [`Mutex`]'s data; unlocks on drop. Not `Send`: it must be dropped by the thread
/// that locked (the held stack is per thread).
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
    how: Acquired,
    _not_send: PhantomData<*const ()>,
}

impl<T> MutexGuard<'_, T> {
    /// Whether this acquisition took the lock over, in a forked child, from a thread that held
    /// it at the fork and does not exist here (the data is as that thread left it): see
    /// [`crate::sync::fork`].
    pub fn owner_vanished_in_fork(&self) -> bool {
        self.how.owner_vanished()
    }

    /// Runs `f` with shared access to the data.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: the guard proves we hold the lock, so nobody else accesses the data.
        self.lock.data.with(|p| f(unsafe { &*p }))
    }
    /// Runs `f` with exclusive access to the data.
    pub fn with_mut<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the guard proves we hold the lock, and `&mut self` that no other access
        // through this guard is live.
        self.lock.data.with_mut(|p| f(unsafe { &mut *p }))
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only while its thread holds the lock.
        unsafe { self.lock.raw.unlock() };
        if self.lock.class.is_some() {
            order::pop_held(self.lock.addr());
        }
    }
}

impl<T: Send> crate::traits::LockApi for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    #[track_caller]
    fn lock(&self) -> Self::Guard<'_> {
        Mutex::lock(self)
    }
    #[track_caller]
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        Mutex::lock_timeout(self, timeout).ok()
    }
    #[track_caller]
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        Mutex::try_lock(self).ok()
    }
    fn is_reentrant(&self) -> bool {
        false
    }
}
