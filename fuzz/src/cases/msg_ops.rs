//! `msg_ops`: 1–3 threads log under and outside tracked locks (nested), inside the log's own
//! sink lock (as a sink callback or a watchdog would), and flush, with a small stage so that
//! overflow happens. Checked: every message is delivered at most once; each thread's messages
//! arrive in the order it logged them; every message logged is delivered unless the log counted
//! it as dropped (delivered + dropped = logged, and a drop is announced by a marker message).
//!
//! `FUZZ_CONTROL=logger-self-deadlock`: the unbuffered logger of seed 001 (it takes its sink
//! lock on every call) — a log inside the sink lock deadlocks; the deadline watchdog reports it.

use arbitrary::Arbitrary;
use primitives::controls::UnbufferedLog;
use primitives::lock::{Mode, Mutex, Validator};
use primitives::msg::{Message, MessageLog};
use primitives::traits::LogApi;
use std::collections::HashMap;

const MAX_THREADS: usize = 3;
const MAX_STEPS: usize = 24;
/// Messages a thread may stage while holding a lock before they are dropped (and counted).
const STAGE: usize = 3;
const LOCKS: usize = 2;

/// One step.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Step {
    Log,
    /// Take tracked lock `n % 2` (skipped unless it comes after every lock the thread holds:
    /// the case's locks follow one global order, so only the log can make it hang).
    Lock(u8),
    Unlock,
    Flush,
    /// Log while holding the log's own sink lock.
    LogInsideSink,
}

/// The case: one step list per thread (run concurrently).
#[derive(Arbitrary, Debug)]
pub struct Case {
    pub threads: Vec<Vec<Step>>,
}

/// Decodes and runs one input.
pub fn fuzz(data: &[u8]) {
    let Some(mut case) = crate::decode::<Case>(data) else {
        return;
    };
    case.threads.truncate(MAX_THREADS);
    for t in &mut case.threads {
        t.truncate(MAX_STEPS);
    }
    crate::deadline::run("msg_ops", &case, || match crate::control().as_deref() {
        None => run_reference(&case),
        Some("logger-self-deadlock") => run_unbuffered(&case),
        Some(other) => panic!("FUZZ_CONTROL={other}: not a control of msg_ops"),
    });
}

/// Runs the steps of every thread on `log`; returns how many messages each thread logged.
fn drive(case: &Case, log: &impl LogApi, v: &Validator) -> Vec<usize> {
    let locks: Vec<Mutex<()>> = (0..LOCKS)
        .map(|i| Mutex::tracked((), &v.class(["L0", "L1"][i], false)))
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = case
            .threads
            .iter()
            .enumerate()
            .map(|(t, steps)| {
                let locks = &locks;
                s.spawn(move || {
                    let mut held: Vec<(usize, primitives::lock::MutexGuard<'_, ()>)> = Vec::new();
                    let mut n = 0;
                    for step in steps {
                        match *step {
                            Step::Log => {
                                log.log(format!("m {t} {n}"));
                                n += 1;
                            }
                            Step::LogInsideSink => {
                                log.under_sink_lock(&mut || log.log(format!("m {t} {n}")));
                                n += 1;
                            }
                            Step::Lock(i) => {
                                // The case's own locks are taken in one global order (index),
                                // so the case cannot deadlock by itself: skip any other.
                                let i = usize::from(i) % LOCKS;
                                if held.iter().all(|h| h.0 < i) {
                                    held.push((i, locks[i].lock()));
                                }
                            }
                            Step::Unlock => drop(held.pop()),
                            Step::Flush => log.flush(),
                        }
                    }
                    drop(held);
                    log.flush();
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn run_reference(case: &Case) {
    let v = Validator::new(Mode::Report);
    let log =
        MessageLog::with_stage_capacity(Vec::<Message>::new(), &v.class("sink", false), STAGE);
    let logged = drive(case, &log, &v);
    let dropped = log.overflowed();
    let delivered: Vec<String> = log.with_sink(|s| s.iter().map(|m| m.text.clone()).collect());
    check(case, &logged, &delivered, dropped);
}

fn run_unbuffered(case: &Case) {
    let v = Validator::new(Mode::Report);
    let log = UnbufferedLog::new(Vec::<Message>::new(), &v.class("sink", false));
    let logged = drive(case, &log, &v);
    let delivered: Vec<String> = log.with_sink(|s| s.iter().map(|m| m.text.clone()).collect());
    check(case, &logged, &delivered, 0);
}

fn check(case: &Case, logged: &[usize], delivered: &[String], dropped: u64) {
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut real = 0u64;
    let mut markers = 0;
    for text in delivered {
        let mut it = text.split(' ');
        if it.next() != Some("m") {
            markers += 1;
            continue;
        }
        let (Some(t), Some(n)) = (
            it.next().and_then(|x| x.parse::<usize>().ok()),
            it.next().and_then(|x| x.parse::<usize>().ok()),
        ) else {
            panic!("garbled message {text:?}: {case:?}");
        };
        let want = next.entry(t).or_default();
        assert!(
            n >= *want,
            "thread {t}'s message {n} delivered after {} (out of order or twice): {case:?}",
            *want
        );
        *want = n + 1;
        real += 1;
    }
    let total: u64 = logged.iter().map(|&n| n as u64).sum();
    assert_eq!(
        real + dropped,
        total,
        "{total} logged, {real} delivered, {dropped} counted as dropped: {case:?}"
    );
    assert!(
        dropped == 0 || markers > 0,
        "{dropped} messages dropped without a marker: {case:?}"
    );
}
