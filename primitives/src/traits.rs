//! Public traits: the operations the scenario catalogue, the torture runner, the fuzzers and the
//! detection matrix exercise. Implement them for your own primitive and every engine can test it
//! (see the README's "Checking your own primitive").

use crate::sync::time::Duration;

/// An MVar: a box that is empty or full.
///
/// Contract: `put` blocks while full, `take` blocks while empty; a value put is taken at most
/// once and never invented; `try_*` never block; `*_timeout` give the value back on timeout.
pub trait MVarApi<T>: Send + Sync {
    /// Puts, waiting while full.
    fn put(&self, value: T);
    /// Takes, waiting while empty.
    fn take(&self) -> T;
    /// Puts if empty, else gives the value back.
    fn try_put(&self, value: T) -> Result<(), T>;
    /// Takes if full.
    fn try_take(&self) -> Option<T>;
    /// Puts unless still full after `timeout`; gives the value back on timeout.
    fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), T>;
    /// Takes unless still empty after `timeout`.
    fn take_timeout(&self, timeout: Duration) -> Option<T>;
}

/// A lock (reentrant or not) whose guard releases on drop.
pub trait LockApi: Send + Sync {
    /// The guard; dropping it releases one acquisition.
    type Guard<'a>
    where
        Self: 'a;
    /// Locks, waiting as long as needed.
    fn lock(&self) -> Self::Guard<'_>;
    /// Locks unless `timeout` passes first.
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>>;
    /// Whether the holder may lock it again (nested) without deadlocking.
    fn is_reentrant(&self) -> bool;
}

/// A message log.
pub trait LogApi: Send + Sync {
    /// Logs one message. Must never deadlock, whatever locks the caller holds.
    fn log(&self, text: String);
    /// Delivers whatever the calling thread has buffered, if it holds no lock.
    fn flush(&self);
    /// Runs `f` while holding the log's own sink lock, as a sink callback or a watchdog that
    /// locks the message buffer would (seed 001's SYSMSG lock). A log without a sink lock just
    /// runs `f`.
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        f()
    }
}

impl<T: Send, P: crate::mvar::Policy> MVarApi<T> for crate::mvar::MVar<T, P> {
    fn put(&self, value: T) {
        crate::mvar::MVar::put(self, value)
    }
    fn take(&self) -> T {
        crate::mvar::MVar::take(self)
    }
    fn try_put(&self, value: T) -> Result<(), T> {
        crate::mvar::MVar::try_put(self, value).map_err(|e| e.into_inner())
    }
    fn try_take(&self) -> Option<T> {
        crate::mvar::MVar::try_take(self).ok()
    }
    fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), T> {
        crate::mvar::MVar::put_timeout(self, value, timeout).map_err(|e| e.into_inner())
    }
    fn take_timeout(&self, timeout: Duration) -> Option<T> {
        crate::mvar::MVar::take_timeout(self, timeout).ok()
    }
}

impl<T: Send + Sync> LockApi for crate::lock::ReentrantLock<T> {
    type Guard<'a>
        = crate::lock::ReentrantLockGuard<'a, T>
    where
        T: 'a;
    #[track_caller]
    fn lock(&self) -> Self::Guard<'_> {
        crate::lock::ReentrantLock::lock(self)
    }
    #[track_caller]
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        crate::lock::ReentrantLock::lock_timeout(self, timeout).ok()
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}

impl<T: Send> LockApi for crate::lock::Mutex<T> {
    type Guard<'a>
        = crate::lock::MutexGuard<'a, T>
    where
        T: 'a;
    #[track_caller]
    fn lock(&self) -> Self::Guard<'_> {
        crate::lock::Mutex::lock(self)
    }
    #[track_caller]
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        crate::lock::Mutex::lock_timeout(self, timeout).ok()
    }
    fn is_reentrant(&self) -> bool {
        false
    }
}

impl<S: crate::msg::MessageSink + 'static> LogApi for crate::msg::MessageLog<S> {
    #[track_caller]
    fn log(&self, text: String) {
        crate::msg::MessageLog::log(self, text)
    }
    fn flush(&self) {
        crate::msg::MessageLog::flush(self)
    }
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        crate::msg::MessageLog::with_sink(self, |_| f())
    }
}
