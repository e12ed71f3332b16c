//! `mvar-deadlines`: timed and non-blocking operations racing blocking ones, with deadlines
//! expiring at every step — before the caller queues, while it is queued, at the instant a
//! server hands it a value. Producers offer each value with `put_timeout` (timeouts cycling
//! through zero, tiny and larger ones), then `try_put`, then `put`; consumers take with
//! `take_timeout`, then `try_take`, then `take`, until each gets a sentinel the main thread
//! puts once the producers are done. By the contract a timed-out operation has **no effect**,
//! so every value enters once and leaves once; everything is recorded and judged by the oracle
//! (a timed-out operation that took effect has no linearization).
//!
//! Under a model engine time is frozen: a zero timeout is a `try`, and a timed wait gives up
//! exactly when it would otherwise sleep (the facade's rule), which still races "the waiter
//! gives up" against "a server grants it" — the hard part of any timeout.
//!
//! Nothing here waits for a value that a broken box may have lost or duplicated beyond what the
//! sentinels end: a duplicate is taken by a consumer (or drained at the end) and reported, not
//! hung on.

use super::mvar_common::{
    assert_linearizable, history_rounds, role_of, value, Ledger, ROLE_INITIAL,
};
use super::MakeMVar;
use super::{Checked, Params};
use crate::history::linearizability::{Cell, Kind};
use crate::history::{Clock, Recorder};
use crate::sync::time::Duration;
use crate::sync::{thread, Arc};
use crate::traits::MVarApi;

/// The scenario's name.
pub const NAME: &str = "mvar-deadlines";

/// Values of the sentinels that end the consumers.
const ROLE_SENTINEL: u32 = 3;
/// Values of producer `k` are role `ROLE_PRODUCER + k`.
const ROLE_PRODUCER: u32 = 16;

/// Timeouts cycled through on real threads: zero (a `try`), tiny (expires while queuing or
/// at once), short and longer (expire while queued, or race a hand-off).
const REAL_TIMEOUTS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_micros(1),
    Duration::from_micros(50),
    Duration::from_millis(1),
    Duration::from_millis(3),
];
/// Under a model engine only "zero" and "not zero" differ (time is frozen).
const MODEL_TIMEOUTS: [Duration; 2] = [Duration::ZERO, Duration::from_millis(1)];

fn timeout(i: usize) -> Duration {
    if crate::sync::MODELLED {
        MODEL_TIMEOUTS[i % MODEL_TIMEOUTS.len()]
    } else {
        REAL_TIMEOUTS[i % REAL_TIMEOUTS.len()]
    }
}

/// Runs it once on a box made by `make`.
pub fn run<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    let m = Arc::new(make());
    let producers = (p.threads / 2).clamp(1, 2);
    let consumers = p.threads.saturating_sub(producers).clamp(1, 2);
    let per_producer = history_rounds(p, producers, 6);
    let clock = Clock::new();
    let mut rec = Recorder::new(0, &clock);
    let mut ledger = Ledger::default();
    // Full from the start, so that the first offers can already time out.
    let initial = value(ROLE_INITIAL, 0);
    rec.record(|| m.put(initial), |_| Kind::Put(initial));
    ledger.entered.push(initial);

    let producing: Vec<_> = (0..producers as u32)
        .map(|k| {
            let (m, clock) = (m.clone(), clock.clone());
            thread::spawn(move || produce(&*m, &clock, k, per_producer))
        })
        .collect();
    let consuming: Vec<_> = (0..consumers as u32)
        .map(|c| {
            let (m, clock) = (m.clone(), clock.clone());
            thread::spawn(move || consume(&*m, &clock, producers as u32 + c))
        })
        .collect();
    let mut parts = Vec::new();
    for h in producing {
        let (ops, theirs) = h.join().expect("a producer panicked");
        parts.push(ops);
        ledger.merge(theirs);
    }
    for c in 0..consumers as u64 {
        let s = value(ROLE_SENTINEL, c);
        rec.record(|| m.put(s), |_| Kind::Put(s));
        ledger.entered.push(s);
    }
    for h in consuming {
        let (ops, theirs) = h.join().expect("a consumer panicked");
        parts.push(ops);
        ledger.merge(theirs);
    }
    // The box should be empty now; anything still in it is drained and accounted for.
    while let Some(v) = rec.record(|| m.try_take(), |r| Kind::TryTake(*r)) {
        ledger.left.push(v);
    }
    parts.push(rec.into_ops());
    ledger.assert_each_value_leaves_once(NAME);
    assert_linearizable(NAME, parts, Cell::Empty);
    Checked::Yes
}

/// Producer `k`: each value with `put_timeout`, else `try_put`, else `put`.
fn produce<M: MVarApi<u64>>(
    m: &M,
    clock: &Arc<Clock>,
    k: u32,
    n: u64,
) -> (Vec<crate::history::linearizability::Operation>, Ledger) {
    let mut rec = Recorder::new(1 + k, clock);
    let mut ledger = Ledger::default();
    for i in 0..n {
        let v = value(ROLE_PRODUCER + k, i);
        let t = timeout(i as usize + k as usize);
        let timed = rec.record(
            || m.put_timeout(v, t),
            |r| match r {
                Ok(()) => Kind::Put(v),
                Err(_) => Kind::TimedOut,
            },
        );
        ledger.entered.push(v);
        let Err(back) = timed else { continue };
        if back != v {
            ledger.broken.push(format!(
                "put_timeout({v:x}) timed out and gave back {back:x}"
            ));
        }
        let tried = rec.record(
            || m.try_put(v),
            |r| Kind::TryPut {
                value: v,
                ok: r.is_ok(),
            },
        );
        if tried.is_err() {
            rec.record(|| m.put(v), |_| Kind::Put(v));
        }
    }
    (rec.into_ops(), ledger)
}

/// Consumer `id`: takes with `take_timeout`, else `try_take`, else `take`, until a sentinel.
fn consume<M: MVarApi<u64>>(
    m: &M,
    clock: &Arc<Clock>,
    id: u32,
) -> (Vec<crate::history::linearizability::Operation>, Ledger) {
    let mut rec = Recorder::new(1 + id, clock);
    let mut ledger = Ledger::default();
    for j in 0usize.. {
        // On real threads a consumer dawdles before every third take: the box stays full for
        // 200 µs, so that producers queued with short deadlines really give up while queued
        // (a spinning box otherwise serves them before their deadline, and a timed-out put
        // that still takes effect is never exercised). Under a model engine time is frozen and
        // the engine already gives up every timed wait that would sleep.
        if !crate::sync::MODELLED && j % 3 == 2 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let t = timeout(j + id as usize + 1);
        let timed = rec.record(
            || m.take_timeout(t),
            |r| r.map_or(Kind::TimedOut, |v| Kind::Take(Some(v))),
        );
        let v = match timed {
            Some(v) => v,
            None => match rec.record(|| m.try_take(), |r| Kind::TryTake(*r)) {
                Some(v) => v,
                None => rec.record(|| m.take(), |v| Kind::Take(Some(*v))),
            },
        };
        ledger.left.push(v);
        if role_of(v) == ROLE_SENTINEL {
            break;
        }
    }
    (rec.into_ops(), ledger)
}
