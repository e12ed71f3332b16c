//! `lock-nesting-overflow`: a reentrant lock that declares the deepest nesting it counts exactly
//! ([`LockApi::max_nesting`]) refuses one level more, and stays held until every guard drops.
//!
//! A count that wraps instead (a `u8` at 255 + 1 = 0) would report "free" — or at least stop
//! telling how many guards are live — while guards are still held. Runs only on a reentrant
//! lock whose declared depth is small enough to reach in a test (at most `1 << 16`); anything
//! else is [`Checked::Skipped`].

use super::delivery::join;
use super::{Checked, Params};
use crate::lock::Validator;
use crate::scenarios::catalogue::MakeLock;
use crate::sync::{thread, Arc};
use crate::traits::LockApi;

/// The deepest declared nesting this scenario will walk to.
pub const MAX_CHECKED_NESTING: u64 = 1 << 16;

/// Runs it on a lock made by `make`, if it applies.
pub fn run<L: LockApi + 'static>(p: &Params, make: &MakeLock<L>) -> Checked {
    let v = Validator::new(p.lockdep);
    let lock = Arc::new(make(&v.class("nesting-overflow", true)));
    if !lock.is_reentrant() {
        return Checked::Skipped("not reentrant: there is no nesting to overflow");
    }
    match lock.max_nesting() {
        Some(max) if (1..=MAX_CHECKED_NESTING).contains(&max) => {
            lock_nesting_overflow(lock, max);
            Checked::Yes
        }
        Some(_) => Checked::Skipped("the declared max_nesting is deeper than 1 << 16"),
        None => Checked::Skipped("max_nesting is not declared"),
    }
}

/// Whether another thread's `try_lock` succeeds now.
fn free_for_another<L: LockApi + 'static>(lock: &Arc<L>) -> bool {
    let l = lock.clone();
    join(thread::spawn(move || l.try_lock().is_some()))
}

/// The scenario body: nest to `max`, then the owner's `try_lock` must be refused; the lock is
/// held for other threads until the last guard drops, and free after.
pub fn lock_nesting_overflow<L: LockApi + 'static>(lock: Arc<L>, max: u64) {
    let mut guards = Vec::new();
    for depth in 1..=max {
        match lock.try_lock() {
            Some(g) => guards.push(g),
            None => panic!(
                "lock-nesting-overflow: the owner's try_lock was refused at depth {depth}, within \
                 the declared max_nesting {max}"
            ),
        }
    }
    if let Some(extra) = lock.try_lock() {
        guards.push(extra);
        panic!(
            "lock-nesting-overflow: at its declared max_nesting {max} the owner's try_lock \
             succeeded once more: the nesting count is not refused at its limit (it wraps)"
        );
    }
    assert!(
        !free_for_another(&lock),
        "lock-nesting-overflow: nested {max} deep after a refused overflow, yet another \
         thread's try_lock succeeded"
    );
    while guards.len() > 1 {
        guards.pop();
    }
    assert!(
        !free_for_another(&lock),
        "lock-nesting-overflow: one guard of {max} still live, yet another thread's try_lock \
         succeeded"
    );
    guards.pop();
    assert!(
        free_for_another(&lock),
        "lock-nesting-overflow: all {max} guards dropped, yet the lock is still held"
    );
}
