//! `lock-try-never-waits`: `try_lock` returns `None` at once while another thread holds the
//! lock, without waiting for the holder.
//!
//! The holder releases only *after* the tryer's `try_lock` returned (a hand-shake through two
//! MVars), so a `try_lock` that waits for the holder is a deadlock: loom and shuttle report it,
//! on real threads the run hangs and the engine's watchdog reports it. Nothing here is timed.

use super::delivery::join;
use super::{Checked, Params};
use crate::lock::Validator;
use crate::mvar::MVar;
use crate::scenarios::catalogue::MakeLock;
use crate::sync::{thread, Arc};
use crate::traits::LockApi;

/// Runs it on a lock made by `make`, `p.rounds` hand-shakes (at least one).
pub fn run<L: LockApi + 'static>(p: &Params, make: &MakeLock<L>) -> Checked {
    let v = Validator::new(p.lockdep);
    let lock = Arc::new(make(&v.class("try-never-waits", true)));
    lock_try_never_waits(lock, p.rounds.max(1));
    Checked::Yes
}

/// The scenario body: `rounds` times, a holder locks and says so; the calling thread's
/// `try_lock` must return `None`; only then does the holder release.
pub fn lock_try_never_waits<L: LockApi + 'static>(lock: Arc<L>, rounds: usize) {
    let held = Arc::new(MVar::<u64>::new_empty());
    let tried = Arc::new(MVar::<u64>::new_empty());
    let (l, h, t) = (lock.clone(), held.clone(), tried.clone());
    let holder = thread::spawn(move || {
        for r in 0..rounds as u64 {
            let g = l.lock();
            h.put(r);
            // Released only once the tryer's try_lock has returned.
            assert_eq!(t.take(), r, "lock-try-never-waits: hand-shake out of step");
            drop(g);
        }
    });
    for r in 0..rounds as u64 {
        assert_eq!(
            held.take(),
            r,
            "lock-try-never-waits: hand-shake out of step"
        );
        let got = lock.try_lock();
        assert!(
            got.is_none(),
            "lock-try-never-waits: try_lock succeeded while another thread held the lock (round \
             {r})"
        );
        tried.put(r);
    }
    join(holder);
}
