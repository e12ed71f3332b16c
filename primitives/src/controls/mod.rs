//! Negative controls: deliberately broken variants, one known defect each, named after the
//! story (seed) it comes from. Every engine is expected to catch them; they are how the suite
//! proves it can see. Every control in the repository is listed once in [`registry`]; the
//! thread ones are run through the scenario catalogue's `CONTROLS`.
//!
//! The MVar controls are the reference state machine with one [`Policy`] knob turned, or (for
//! the optional promises: atomic read and swap, timeouts without effect) a wrapper replacing one
//! operation of the reference (`mvar_mutants`); the lock
//! and messaging controls are small separate types (their defect *is* their design).

mod midas;
mod mvar_mutants;
pub mod registry;
mod unbuffered;

// Lock and log mutants against the LockApi / LogApi contracts.
mod lock_mutants;
mod log_mutants;

pub use midas::{MidasNestedGuard, MidasNestedLock};
pub use mvar_mutants::{LifoWaiters, ReadTakePut, SwapTakePut, TimedOutPutStores};
pub use registry::{find, flavor, Control, Home, CONTROLS};
pub use unbuffered::UnbufferedLog;

pub use lock_mutants::{
    NarrowCountLock, NarrowGuard, RecycledOwnerGuard, RecycledOwnerLock, TryWaitsLock,
    NARROW_MAX_NESTING,
};
pub use log_mutants::{LogDefect, MutantLog};

use crate::lock::Mutex;
use crate::mvar::Policy;

/// Seed 002 (the control `fork-held-lock`): turns this process's fork handling off — no lock
/// takes over from an owner that vanished in a fork, the logs do not take their sink locks
/// around a fork — so a child forked while another thread holds a lock hangs on it. One switch
/// for the whole process ([`crate::sync::fork::set_handling`]); call it before the threads start.
pub fn without_fork_handling() {
    crate::sync::fork::set_handling(false);
}

/// Seed 000 (lost wake-up): the server wakes the waiter *before* publishing `GRANTED`; a waiter
/// that checks its word between the two sleeps forever.
#[derive(Debug)]
pub struct WakeBeforeGrant;
impl Policy for WakeBeforeGrant {
    const NAME: &'static str = "mvar-wake-before-grant";
    const WAKE_BEFORE_GRANT: bool = true;
}

/// Seed 000 (`if` instead of `while`): a waiter sleeps once and trusts any wake-up, so a
/// spurious one makes it return without a value.
#[derive(Debug)]
pub struct WaitOnce;
impl Policy for WaitOnce {
    const NAME: &'static str = "mvar-if-not-while";
    const WAIT_ONCE: bool = true;
}

/// Seed 000 (one waiter class): an emptied box never serves queued putters; only takers are
/// ever woken, so a blocked putter waits forever.
#[derive(Debug)]
pub struct TakersOnly;
impl Policy for TakersOnly {
    const NAME: &'static str = "mvar-one-waiter-class";
    const SERVE_PUTTERS: bool = false;
}

/// Seed 004's `exch` as written: lock bucket `a`, then bucket `b`. Deadlocks on itself when
/// `a == b`, and against another `exch(b, a)`.
pub fn exch_naive(table: &[Mutex<u64>], a: usize, b: usize) {
    let mut ga = table[a].lock();
    let mut gb = table[b].lock();
    let va = ga.with_mut(|v| *v);
    let vb = gb.with_mut(|v| *v);
    ga.with_mut(|v| *v = vb);
    gb.with_mut(|v| *v = va);
}
