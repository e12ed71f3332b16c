//! `mvar_ops`: 1–4 threads each run a short operation sequence (put, take, read, try_*, timed
//! operations with deadlines of 0–3 ms, swap) on one MVar, against a model: every value is put
//! at most once (ids are unique), no value is invented, none is removed twice, every value put
//! is removed exactly once by the end (takes, swaps, the resolver and the final drain), a value
//! refused by a failed put never appears, and no thread takes a value it puts only later.
//!
//! Untimed operations may block legitimately (a lone `take` on an empty box); when every
//! unfinished thread is blocked and nothing moved for a few milliseconds, the harness resolves
//! the wait with a value of its own (or takes one) — exactly what a real program's other
//! participants would do. A wait it cannot resolve (takers asleep on a full box) is a hang, and
//! the deadline watchdog reports it.
//!
//! `FUZZ_CONTROL`: `mvar-wake-before-grant`, `mvar-if-not-while`, `mvar-one-waiter-class` run
//! the same case on that negative control.

use arbitrary::Arbitrary;
use primitives::controls::{TakersOnly, WaitOnce, WakeBeforeGrant};
use primitives::mvar::{MVar, Policy, Reference};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most threads and operations per thread a case runs.
const MAX_THREADS: usize = 4;
const MAX_OPS: usize = 12;
/// Values the harness itself puts to resolve a legitimate wait.
const RESOLVER: u32 = 0xf000_0000;

/// A short deadline, 0–3 ms.
#[derive(Arbitrary, Clone, Copy)]
pub struct Ms(u8);

impl Ms {
    fn get(self) -> Duration {
        Duration::from_millis(u64::from(self.0 % 4))
    }
}

impl std::fmt::Debug for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0 % 4)
    }
}

/// One operation.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    Put,
    Take,
    Read,
    TryPut,
    TryTake,
    TryRead,
    PutTimeout(Ms),
    TakeTimeout(Ms),
    Swap,
}

/// The case: one operation list per thread.
#[derive(Arbitrary, Debug)]
pub struct Case {
    pub threads: Vec<Vec<Op>>,
}

/// What one operation did.
#[derive(Debug, Clone, Copy)]
enum Done {
    Put(u32),
    Refused(u32),
    Took(u32),
    Read(u32),
    Swapped { new: u32, old: u32 },
    Nothing,
}

const RUNNING: u8 = 0;
const WANTS_EMPTY: u8 = 1;
const WANTS_FULL: u8 = 2;
const DONE: u8 = 3;

/// Decodes and runs one input (rejecting oversized ones).
pub fn fuzz(data: &[u8]) {
    let Some(mut case) = crate::decode::<Case>(data) else {
        return;
    };
    case.threads.truncate(MAX_THREADS);
    for t in &mut case.threads {
        t.truncate(MAX_OPS);
    }
    if case.threads.is_empty() {
        return;
    }
    crate::deadline::run("mvar_ops", &case, || match crate::control().as_deref() {
        None => run::<Reference>(&case),
        Some("mvar-wake-before-grant") => run::<WakeBeforeGrant>(&case),
        Some("mvar-if-not-while") => run::<WaitOnce>(&case),
        Some("mvar-one-waiter-class") => run::<TakersOnly>(&case),
        Some(other) => panic!("FUZZ_CONTROL={other}: not a control of mvar_ops"),
    });
}

fn id(thread: usize, op: usize) -> u32 {
    ((thread as u32 + 1) << 8) | op as u32
}

/// Runs `case` on an MVar of policy `P` and checks it.
pub fn run<P: Policy>(case: &Case) {
    let m: Arc<MVar<u32, P>> = Arc::new(MVar::with_policy_empty());
    let states: Arc<Vec<AtomicU8>> = Arc::new(
        (0..case.threads.len())
            .map(|_| AtomicU8::new(RUNNING))
            .collect(),
    );
    let progress = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = case
        .threads
        .iter()
        .cloned()
        .enumerate()
        .map(|(t, ops)| {
            let (m, states, progress) = (m.clone(), states.clone(), progress.clone());
            std::thread::Builder::new()
                .name(format!("mvar_ops-{t}"))
                .spawn(move || {
                    let mut log = Vec::with_capacity(ops.len());
                    for (i, op) in ops.into_iter().enumerate() {
                        let v = id(t, i);
                        let blocking = |s: u8| states[t].store(s, Ordering::SeqCst);
                        let done = match op {
                            Op::Put => {
                                blocking(WANTS_EMPTY);
                                m.put(v);
                                Done::Put(v)
                            }
                            Op::Take => {
                                blocking(WANTS_FULL);
                                Done::Took(m.take())
                            }
                            Op::Read => {
                                blocking(WANTS_FULL);
                                Done::Read(m.read())
                            }
                            Op::Swap => {
                                blocking(WANTS_FULL);
                                Done::Swapped {
                                    new: v,
                                    old: m.swap(v),
                                }
                            }
                            Op::TryPut => match m.try_put(v) {
                                Ok(()) => Done::Put(v),
                                Err(e) => Done::Refused(e.into_inner()),
                            },
                            Op::TryTake => m.try_take().map_or(Done::Nothing, Done::Took),
                            Op::TryRead => m.try_read().map_or(Done::Nothing, Done::Read),
                            Op::PutTimeout(d) => match m.put_timeout(v, d.get()) {
                                Ok(()) => Done::Put(v),
                                Err(e) => Done::Refused(e.into_inner()),
                            },
                            Op::TakeTimeout(d) => {
                                m.take_timeout(d.get()).map_or(Done::Nothing, Done::Took)
                            }
                        };
                        states[t].store(RUNNING, Ordering::SeqCst);
                        progress.fetch_add(1, Ordering::SeqCst);
                        log.push(done);
                    }
                    states[t].store(DONE, Ordering::SeqCst);
                    log
                })
                .expect("spawn a case thread")
        })
        .collect();
    // Resolve legitimate waits: everyone left is blocked and nothing moved for a while.
    let mut resolver: Vec<Done> = Vec::new();
    let mut quiet = 0;
    let mut last = progress.load(Ordering::SeqCst);
    let mut n = 0;
    while states.iter().any(|s| s.load(Ordering::SeqCst) != DONE) {
        std::thread::sleep(Duration::from_micros(100));
        let now = progress.load(Ordering::SeqCst);
        if now != last {
            (last, quiet) = (now, 0);
            continue;
        }
        quiet += 1;
        let st: Vec<u8> = states.iter().map(|s| s.load(Ordering::SeqCst)).collect();
        if quiet < 20 || st.contains(&RUNNING) {
            continue;
        }
        quiet = 0;
        if st.contains(&WANTS_FULL) && m.try_put(RESOLVER | n).is_ok() {
            resolver.push(Done::Put(RESOLVER | n));
            n += 1;
        } else if st.contains(&WANTS_EMPTY) {
            if let Ok(v) = m.try_take() {
                resolver.push(Done::Took(v));
            }
        }
    }
    let logs: Vec<Vec<Done>> = handles
        .into_iter()
        .map(|h| match h.join() {
            Ok(l) => l,
            Err(p) => std::panic::resume_unwind(p),
        })
        .collect();
    let last_value = m.try_take().ok();
    check(&logs, &resolver, last_value, case);
}

fn check(logs: &[Vec<Done>], resolver: &[Done], last_value: Option<u32>, case: &Case) {
    let mut put: HashSet<u32> = HashSet::new();
    let mut removed: Vec<u32> = Vec::new();
    let mut refused: HashSet<u32> = HashSet::new();
    let mut read: Vec<u32> = Vec::new();
    let all = logs.iter().flatten().chain(resolver);
    for d in all {
        match *d {
            Done::Put(v) => assert!(put.insert(v), "value {v:#x} put twice: {case:?}"),
            Done::Refused(v) => {
                refused.insert(v);
            }
            Done::Took(v) => removed.push(v),
            Done::Read(v) => read.push(v),
            Done::Swapped { new, old } => {
                assert!(put.insert(new), "value {new:#x} put twice: {case:?}");
                removed.push(old);
            }
            Done::Nothing => {}
        }
    }
    removed.extend(last_value);
    let mut seen = HashSet::new();
    for v in &removed {
        assert!(put.contains(v), "invented value {v:#x} was taken: {case:?}");
        assert!(
            !refused.contains(v),
            "value {v:#x} refused by a put was taken: {case:?}"
        );
        assert!(seen.insert(*v), "value {v:#x} taken twice: {case:?}");
    }
    for v in &read {
        assert!(put.contains(v), "invented value {v:#x} was read: {case:?}");
    }
    assert_eq!(
        seen.len(),
        put.len(),
        "values lost: put {:?}, removed {:?}: {case:?}",
        put,
        removed
    );
    // A thread never gets a value it puts only later.
    for (t, log) in logs.iter().enumerate() {
        for (i, d) in log.iter().enumerate() {
            let got = match *d {
                Done::Took(v) | Done::Read(v) => v,
                Done::Swapped { old, .. } => old,
                _ => continue,
            };
            if got & RESOLVER == 0 && (got >> 8) as usize == t + 1 {
                assert!(
                    ((got & 0xff) as usize) < i,
                    "thread {t} op {i} got its own later value {got:#x}: {case:?}"
                );
            }
        }
    }
}
