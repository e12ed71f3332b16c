//! Public traits: the operations the scenario catalogue, the torture runner, the fuzzers and the
//! detection matrix exercise. Implement them for your own primitive and every engine can test it
//! (see the README's "Checking your own primitive").
//!
//! Definitions only, naming nothing but the [`sync`](crate::sync) facade: this layer sits just
//! above `sync`, so every primitive implements the traits beside its own type.

use crate::sync::time::Duration;

/// What an MVar implementation promises beyond the core contract. Scenarios that check one of
/// these properties run only when it is declared (a type that does not promise FIFO service is
/// never failed for serving out of order), and every engine's report says which were checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MVarCaps {
    /// `read`, `try_read` and `swap` are implemented, each as **one atomic step**: no other
    /// operation can observe the box empty because of a `read` or a `swap` (a `read` made of
    /// `take` + `put` is not atomic: a `try_put` can slip in between).
    pub read_swap: bool,
    /// Blocked callers are served in arrival order: of the takers (and readers, swappers)
    /// blocked on an empty box, the first to block gets the first value put; of the putters
    /// blocked on a full box, the first to block is the first to store. This bounds starvation:
    /// a blocked taker is served within as many puts as there were takers blocked before it.
    pub fifo: bool,
}

impl MVarCaps {
    /// Nothing beyond the core contract.
    pub const CORE: MVarCaps = MVarCaps {
        read_swap: false,
        fifo: false,
    };
    /// Everything this crate's reference MVar promises.
    pub const ALL: MVarCaps = MVarCaps {
        read_swap: true,
        fifo: true,
    };
    /// The names of the declared capabilities (for reports).
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.read_swap {
            v.push("read/swap");
        }
        if self.fifo {
            v.push("fifo");
        }
        v
    }
}

/// An MVar: a box that is empty or full.
///
/// # Contract (checked by the scenario catalogue and the linearizability oracle)
/// * `put` waits while the box is full, `take` while it is empty; every operation takes effect
///   at one instant between its call and its return, as if the box were one atomic cell
///   (*linearizable*): a value put is taken at most once, never invented, never lost.
/// * `try_put` / `try_take` never wait: they act if they can and report "not now" otherwise
///   (`try_put` gives the value back).
/// * `put_timeout` / `take_timeout` wait at most about `timeout`; on timeout they have **no
///   effect** (`put_timeout` gives the value back, `take_timeout` leaves any value in the box).
///   A zero timeout behaves like the `try_` form.
/// * Optional, declared in [`MVarApi::capabilities`]: atomic `read` / `try_read` / `swap`
///   ([`MVarCaps::read_swap`]), FIFO service of blocked callers ([`MVarCaps::fifo`]).
///   The provided `read`, `try_read` and `swap` panic: no engine calls them on a type that
///   does not declare them.
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
    /// What this implementation promises beyond the core contract (default: nothing).
    fn capabilities(&self) -> MVarCaps {
        MVarCaps::CORE
    }
    /// A copy of the value, waiting while empty; the box stays full, atomically
    /// ([`MVarCaps::read_swap`]).
    fn read(&self) -> T
    where
        T: Clone,
    {
        undeclared("read")
    }
    /// A copy of the value if full; never waits ([`MVarCaps::read_swap`]).
    fn try_read(&self) -> Option<T>
    where
        T: Clone,
    {
        undeclared("try_read")
    }
    /// Takes the value and leaves `value` in its place as one atomic step, waiting (as a
    /// taker) while empty ([`MVarCaps::read_swap`]).
    fn swap(&self, value: T) -> T {
        let _ = value;
        undeclared("swap")
    }
}

#[cold]
fn undeclared(op: &str) -> ! {
    panic!("MVarApi::{op} called on a type whose capabilities() do not declare read_swap")
}

/// A lock (reentrant or not) whose guard releases on drop.
///
/// # Contract
/// * Mutual exclusion: at most one thread holds it; a reentrant lock's holder may lock it again
///   (nested) and holds it until its outermost guard drops.
/// * **Owner identity**: ownership belongs to the thread that locked, and to no other thread —
///   ever, also after that thread exits with a guard leaked (`mem::forget`): a new thread must
///   not be taken for the owner (std's `ReentrantLock` could, Rust issue 123458, when owner
///   identity was a thread-local's address that a new thread can reuse).
/// * `try_lock` never waits; `lock_timeout` waits at most about `timeout`.
/// * Nesting overflow is refused, never wrapped ([`LockApi::max_nesting`]).
pub trait LockApi: Send + Sync {
    /// The guard; dropping it releases one acquisition.
    type Guard<'a>
    where
        Self: 'a;
    /// Locks, waiting as long as needed.
    fn lock(&self) -> Self::Guard<'_>;
    /// Locks unless `timeout` passes first.
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>>;
    /// Locks if that needs no waiting: free, or (reentrant) already held by the caller.
    /// **Never waits** for another thread. The default is `lock_timeout(0)`.
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        self.lock_timeout(Duration::ZERO)
    }
    /// Whether the holder may lock it again (nested) without deadlocking.
    fn is_reentrant(&self) -> bool;
    /// The deepest nesting a reentrant lock promises to count exactly, if small enough to reach
    /// in a test (`None`: not declared). At that depth a further `try_lock` by the owner returns
    /// `None` (and `lock` panics) — the count never wraps to "free" while guards are live.
    fn max_nesting(&self) -> Option<u64> {
        None
    }
}

/// A message log, safe to call whatever locks the caller holds.
///
/// # Contract
/// * `log` never deadlocks and never takes the log's sink lock while the caller holds a
///   tracked lock: a message logged under a lock is *staged* and delivered later.
/// * Delivery is **exactly once, in each thread's order**, at the latest at the first of: the
///   calling thread's outermost lock release, `flush`, the thread's exit, the log's drop.
/// * A stage that fills up drops messages; every drop is counted and **announced** by a
///   delivered message containing `"dropped"` and the count (so nothing vanishes silently).
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
