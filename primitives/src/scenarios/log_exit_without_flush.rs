//! `log-exit-without-flush`: a thread's messages are delivered by its exit at the latest, with no
//! `flush` anywhere.
//!
//! Every thread logs alternately outside any lock and under two nested acquisitions of a shared
//! reentrant lock (tracked, like `logging-under-locks`). Then even threads exit right after
//! their outermost release; odd threads take a private lock, leak its guard (`mem::forget`),
//! log a few more messages — staged, since the thread now holds a lock it will never release —
//! and exit with them staged. Nobody calls `flush`. After every thread is joined, each thread's
//! messages must have been delivered exactly once, in its order (or, should a stage
//! overflow, announced as dropped).

use super::delivery::{assert_delivered, join, text};
use super::{Checked, Params};
use crate::lock::{LockClass, ReentrantLock, Validator};
use crate::scenarios::catalogue::{Delivered, MakeLog};
use crate::sync::{thread, Arc};
use crate::traits::LogApi;

/// Runs it on a log made by `make`: `p.threads` threads (at least two: one of each kind),
/// `p.rounds` messages each (2 under loom).
pub fn run<G: LogApi + 'static>(p: &Params, make: &MakeLog<G>) -> Checked {
    let v = Validator::new(p.lockdep);
    let sink = Delivered::new();
    let log = Arc::new(make(sink.clone(), &v.class("sysmsg", false)));
    let shared = Arc::new(ReentrantLock::tracked((), &v.class("odb", true)));
    let msgs = if cfg!(loom) { 2 } else { p.rounds.max(2) };
    let leaked = v.class("leaked", true);
    if cfg!(loom) {
        // loom 0.7 lets `join` return before the joined thread's thread-local destructors run
        // (its `spawn` notifies the joiner, then drops the thread's locals), so nothing a thread
        // delivers at its exit can be seen by the joiner — and a destructor that runs after the
        // model's main closure returned finds the model's statics gone. Only the threads that
        // exit right after their outermost release run here.
        log_exit_without_flush(log, shared, leaked, p.threads.max(2), msgs, 0, &sink);
        return Checked::Skipped(
            "loom: join returns before the joined thread's thread-local destructors run, so \
             delivery at thread exit is unobservable (only exit right after the outermost \
             release is checked)",
        );
    }
    log_exit_without_flush(log, shared, leaked, p.threads.max(2), msgs, 3, &sink);
    Checked::Yes
}

/// The scenario body (see the module docs): `threads` threads log `msgs` messages each; odd
/// ones then `extra` more under a leaked private lock of class `leaked` (with `extra == 0`
/// every thread exits right after its outermost release).
pub fn log_exit_without_flush<G: LogApi + 'static>(
    log: Arc<G>,
    shared: Arc<ReentrantLock<()>>,
    leaked: LockClass,
    threads: usize,
    msgs: usize,
    extra: usize,
    sink: &Delivered,
) {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (log, shared, leaked) = (log.clone(), shared.clone(), leaked.clone());
            thread::spawn(move || {
                for i in 0..msgs {
                    if i % 2 == 0 {
                        log.log(text(t, i));
                    } else {
                        let _outer = shared.lock();
                        let _inner = shared.lock();
                        log.log(text(t, i));
                    }
                }
                if t % 2 == 1 && extra > 0 {
                    // Held until the thread is gone: these stay staged through its exit.
                    let private = ReentrantLock::tracked((), &leaked);
                    core::mem::forget(private.lock());
                    for i in msgs..msgs + extra {
                        log.log(text(t, i));
                    }
                }
                // Exit: no flush.
            })
        })
        .collect();
    for h in handles {
        join(h);
    }
    let logged: Vec<usize> = (0..threads)
        .map(|t| if t % 2 == 1 { msgs + extra } else { msgs })
        .collect();
    assert_delivered("log-exit-without-flush", &sink.texts(), &logged);
}
