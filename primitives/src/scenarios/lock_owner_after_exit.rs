//! `lock-owner-after-exit`: a thread that exits while holding a lock (its guard leaked with
//! `mem::forget`) leaves no identity behind that a *new* thread could inherit.
//!
//! Rust issue 123458: std's `ReentrantLock` identified its owner by the address of a
//! thread-local, which a thread spawned after the owner exited can get again; that thread then
//! "re-entered" a lock it never took. parking_lot's `ReentrantMutex` keys on a thread-local
//! address too. The property, for any lock (reentrant or not):
//!
//! * after the owner exited with the lock held, each of several newcomers (threads spawned one
//!   after another, each after the previous one exited — exactly when a recycled identity is
//!   handed out again) tries `try_lock`, then a short `lock_timeout`;
//! * for a lock without dead-owner recovery both must return `None`: the dead owner holds it
//!   forever;
//! * a lock that *does* recover from dead owners (the robust [`SharedReentrantLock`]) may hand
//!   it to a newcomer, but only as a fresh acquisition: the newcomer is then the sole owner at
//!   depth one, so once it drops that one guard, another thread's `try_lock` must succeed. A
//!   newcomer taken for the dead owner instead nests on the dead owner's count, and the lock
//!   stays held after its release — which is what this scenario reports.
//!
//! [`SharedReentrantLock`]: crate::lock::SharedReentrantLock

use super::delivery::join;
use super::{Checked, Params};
use crate::lock::Validator;
use crate::scenarios::catalogue::MakeLock;
use crate::sync::time::Duration;
use crate::sync::{thread, Arc};
use crate::traits::LockApi;

/// The short timeout of a newcomer's `lock_timeout` (under a model engine time is frozen: it
/// times out exactly when it would sleep).
const SHORT: Duration = Duration::from_millis(2);

/// Runs it on a lock made by `make`, with `p.threads` newcomers (at least two).
pub fn run<L: LockApi + 'static>(p: &Params, make: &MakeLock<L>) -> Checked {
    let v = Validator::new(p.lockdep);
    let lock = Arc::new(make(&v.class("owner-after-exit", true)));
    lock_owner_after_exit(lock, p.threads.max(2));
    Checked::Yes
}

/// The scenario body: one owner locks, leaks its guard and exits; then `newcomers` threads, one
/// at a time, must not be taken for it (see the module docs).
pub fn lock_owner_after_exit<L: LockApi + 'static>(lock: Arc<L>, newcomers: usize) {
    let l = lock.clone();
    join(thread::spawn(move || core::mem::forget(l.lock())));
    for k in 0..newcomers {
        let l = lock.clone();
        join(thread::spawn(move || newcomer(&l, k)));
    }
}

/// One newcomer: `try_lock`, then a short `lock_timeout`; an acquisition must be a fresh one.
fn newcomer<L: LockApi + 'static>(lock: &Arc<L>, k: usize) {
    let how = match lock.try_lock() {
        Some(g) => {
            drop(g);
            "try_lock"
        }
        None => match lock.lock_timeout(SHORT) {
            Some(g) => {
                drop(g);
                "lock_timeout"
            }
            None => return, // the dead owner still holds it: as it must, without recovery
        },
    };
    // The newcomer got the lock and released its one acquisition: if that was a takeover from
    // the dead owner, the lock is free now. Asked from another thread, spawned while this one
    // is alive (so it cannot be handed this thread's identity either).
    let l = lock.clone();
    let free = join(thread::spawn(move || l.try_lock().is_some()));
    assert!(
        free,
        "lock-owner-after-exit: newcomer {k}, spawned after the owner exited holding the lock, \
         got it with {how}, and after it released that one acquisition the lock was still \
         held: the newcomer was taken for the exited owner (owner identity reused, Rust issue \
         123458)"
    );
}
