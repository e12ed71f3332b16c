//! `log-overflow-announced`: a stage that overflows loses messages only *visibly*: every drop is
//! counted and announced by a delivered message containing `"dropped"` and the count.
//!
//! Each thread holds its own lock and logs more messages under it than any reasonable stage
//! holds (several times the reference [`MessageLog`]'s [`DEFAULT_STAGE_CAPACITY`]; just over
//! it under the model engines), then releases. Afterwards, per thread, the delivered messages
//! must be distinct and in order, and over all threads *delivered + announced* must equal
//! *logged*: nothing silently lost, no drop over-announced. (A log whose stage never fills
//! delivers everything and passes.)
//!
//! [`MessageLog`]: crate::msg::MessageLog

use super::delivery::{assert_delivered, join, text};
use super::{Checked, Params};
use crate::lock::{ReentrantLock, Validator};
use crate::msg::DEFAULT_STAGE_CAPACITY;
use crate::scenarios::catalogue::{Delivered, MakeLog};
use crate::sync::{thread, Arc, MODELLED};
use crate::traits::LogApi;

/// Runs it on a log made by `make`: `p.threads` threads for real (one under a model engine),
/// each logging `4 * DEFAULT_STAGE_CAPACITY + p.rounds` messages under a lock
/// (`DEFAULT_STAGE_CAPACITY + 16 + p.rounds` under a model engine).
pub fn run<G: LogApi + 'static>(p: &Params, make: &MakeLog<G>) -> Checked {
    let v = Validator::new(p.lockdep);
    let sink = Delivered::new();
    let log = Arc::new(make(sink.clone(), &v.class("sysmsg", false)));
    let (threads, msgs) = if MODELLED {
        (1, DEFAULT_STAGE_CAPACITY + 16 + p.rounds)
    } else {
        (p.threads.max(1), 4 * DEFAULT_STAGE_CAPACITY + p.rounds)
    };
    let class = v.class("flood", true);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (log, class) = (log.clone(), class.clone());
            thread::spawn(move || {
                let lock = ReentrantLock::tracked((), &class);
                let _g = lock.lock();
                for i in 0..msgs {
                    log.log(text(t, i));
                }
            })
        })
        .collect();
    for h in handles {
        join(h);
    }
    assert_delivered(
        "log-overflow-announced",
        &sink.texts(),
        &vec![msgs; threads],
    );
    Checked::Yes
}
