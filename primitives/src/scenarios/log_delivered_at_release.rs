//! `log-delivered-at-outermost-release`: what a thread logs under nested locks is delivered by
//! the time its outermost lock is released — before it does anything else with the log, without
//! a `flush`.
//!
//! Each thread, round after round, takes an outer and an inner lock (two classes, always in that
//! order), logs, releases the inner lock and then the outer one, and at once reads the sink:
//! everything it has logged so far must be there, exactly once, in its order (what a
//! full stage dropped must be announced instead).

use super::delivery::{assert_delivered_so_far, join, text};
use super::{Checked, Params};
use crate::lock::{ReentrantLock, Validator};
use crate::scenarios::catalogue::{Delivered, MakeLog};
use crate::sync::{thread, Arc};
use crate::traits::LogApi;

/// Runs it on a log made by `make`: `p.threads` threads, `p.rounds` rounds (at least one) of
/// two messages each.
pub fn run<G: LogApi + 'static>(p: &Params, make: &MakeLog<G>) -> Checked {
    let v = Validator::new(p.lockdep);
    let sink = Delivered::new();
    let log = Arc::new(make(sink.clone(), &v.class("sysmsg", false)));
    let outer = Arc::new(ReentrantLock::tracked((), &v.class("outer", true)));
    let inner = Arc::new(ReentrantLock::tracked((), &v.class("inner", true)));
    let per_round = if cfg!(loom) { 1 } else { 2 };
    let handles: Vec<_> = (0..p.threads.max(1))
        .map(|t| {
            let (log, outer, inner, sink) =
                (log.clone(), outer.clone(), inner.clone(), sink.clone());
            let rounds = p.rounds.max(1);
            thread::spawn(move || {
                let mut logged = 0;
                for _ in 0..rounds {
                    let o = outer.lock();
                    let i = inner.lock();
                    for _ in 0..per_round {
                        log.log(text(t, logged));
                        logged += 1;
                    }
                    drop(i);
                    drop(o);
                    assert_delivered_so_far(
                        "log-delivered-at-outermost-release",
                        &sink.texts(),
                        t,
                        logged,
                    );
                }
            })
        })
        .collect();
    for h in handles {
        join(h);
    }
    Checked::Yes
}
