//! Public traits: the operations the scenario catalogue, the torture runner, the fuzzers and the
//! detection matrix exercise. Implement them for your own primitive and every engine can test it
//! (see the README's "Checking your own primitive").
//!
//! Definitions only, naming nothing but the [`sync`](crate::sync) facade: this layer sits just
//! above `sync`, so every primitive implements the traits beside its own type.

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
