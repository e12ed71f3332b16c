//! What each thread holds and waits for: the layer between the [`sync`](crate::sync) facade and
//! everything that locks.
//!
//! * [`held`] — the per-thread held-lock stack that every tracked lock pushes to and pops from,
//!   with "outermost release" hooks that upper layers (the message log, the shared message
//!   ring) *register* instead of being called by name.
//! * [`waitreg`] — the wait registry: every thread about to sleep publishes what it waits for
//!   and which tracked locks it holds, for hang reports.
//!
//! This module names only [`crate::sync`]; every lock, log and object is above it.

pub mod held;
pub mod waitreg;

pub use held::{
    held_classes, held_depth, held_locks, run_release_hooks, with_held, HeldLock, ReleaseHook,
    MAX_RELEASE_HOOKS,
};
pub use waitreg::{snapshot, WaitEntry, WaitToken};
