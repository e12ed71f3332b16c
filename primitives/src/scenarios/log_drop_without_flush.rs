//! `log-drop-without-flush`: messages staged when the last handle of the log is dropped are
//! still delivered, exactly once, with no `flush`.
//!
//! The scenario hands one `Arc` of the log to each thread and drops its own before any thread
//! starts, so the *last* `Arc` is always dropped by a thread, under a lock, with messages
//! staged: each thread takes a shared reentrant lock twice (nested), logs, drops its `Arc`
//! while still holding the lock, then releases. After every thread is joined, each thread's
//! messages must have been delivered exactly once, in its order (or, should a stage
//! overflow, announced as dropped).

use super::delivery::{assert_delivered, join, text};
use super::{Checked, Params};
use crate::lock::{ReentrantLock, Validator};
use crate::scenarios::catalogue::{Delivered, MakeLog};
use crate::sync::{thread, Arc};
use crate::traits::LogApi;

/// Runs it on a log made by `make`: `p.threads` threads, `p.rounds` messages each (2 under
/// loom).
pub fn run<G: LogApi + 'static>(p: &Params, make: &MakeLog<G>) -> Checked {
    let v = Validator::new(p.lockdep);
    let sink = Delivered::new();
    let log = make(sink.clone(), &v.class("sysmsg", false));
    let shared = Arc::new(ReentrantLock::tracked((), &v.class("odb", true)));
    let msgs = if cfg!(loom) { 2 } else { p.rounds.max(1) };
    log_drop_without_flush(log, shared, p.threads.max(1), msgs, &sink);
    Checked::Yes
}

/// The scenario body (see the module docs).
pub fn log_drop_without_flush<G: LogApi + 'static>(
    log: G,
    shared: Arc<ReentrantLock<()>>,
    threads: usize,
    msgs: usize,
    sink: &Delivered,
) {
    let log = Arc::new(log);
    let handles: Vec<Arc<G>> = (0..threads).map(|_| log.clone()).collect();
    drop(log); // every remaining Arc now belongs to a thread
    let joins: Vec<_> = handles
        .into_iter()
        .enumerate()
        .map(|(t, log)| {
            let shared = shared.clone();
            thread::spawn(move || {
                let _outer = shared.lock();
                let _inner = shared.lock();
                for i in 0..msgs {
                    log.log(text(t, i));
                }
                drop(log); // under the lock, messages staged; the last one drops the log
            })
        })
        .collect();
    for h in joins {
        join(h);
    }
    assert_delivered(
        "log-drop-without-flush",
        &sink.texts(),
        &vec![msgs; threads],
    );
}
