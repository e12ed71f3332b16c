//! What the recorded MVar scenarios (`mvar-read-races`, `mvar-swap-races`, `mvar-deadlines`,
//! `mvar-fifo`) share: unique values, the account of values in and out, the verdict of the
//! linearizability oracle, sizes that keep a history within the oracle's reach, and the
//! "atomic operation races" skeleton of the read and swap scenarios.

use super::{Params, Schedule};
use crate::history::linearizability::{Cell, Kind, Limits, Operation};
use crate::history::{judge, Clock, Recorder};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{thread, Arc};
use crate::traits::MVarApi;

/// A value no other role or round uses: `role` in the high half, `seq` in the low half, never 0.
pub(crate) fn value(role: u32, seq: u64) -> u64 {
    (u64::from(role) + 1) << 32 | (seq & 0xffff_ffff)
}

/// The role a [`value`] was made for.
pub(crate) fn role_of(v: u64) -> u32 {
    ((v >> 32) as u32).wrapping_sub(1)
}

/// Rounds per thread such that `threads` threads recording up to `ops_per_round` operations
/// each round stay well within the oracle's cap ([`Limits::max_ops`]); at least 1, at most
/// `p.rounds`.
pub(crate) fn history_rounds(p: &Params, threads: usize, ops_per_round: usize) -> u64 {
    let budget = Limits::default().max_ops * 7 / 8;
    let cap = budget / (threads.max(1) * ops_per_round.max(1));
    p.rounds.clamp(1, cap.max(1)) as u64
}

/// Panics with the oracle's account if no atomic box starting as `initial` could have produced
/// the merged history of `parts`.
pub(crate) fn assert_linearizable(scenario: &str, parts: Vec<Vec<Operation>>, initial: Cell) {
    if let Err(why) = judge(parts, initial) {
        panic!("{scenario}: {why}");
    }
}

/// The values that entered the box and those that left it (taken, swapped out, drained at the
/// end), kept by one thread and merged at the end.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Values put (by any successful put, or left in the box by a swap).
    pub entered: Vec<u64>,
    /// Values taken out (by any successful take, or returned by a swap).
    pub left: Vec<u64>,
    /// Values observed without removal (`read`, `try_read`): each must have entered.
    pub seen: Vec<u64>,
    /// Invariants a thread found broken while running (reported after every thread ended, so
    /// that a thread that saw a defect still does its share and nobody hangs on it).
    pub broken: Vec<String>,
}

impl Ledger {
    /// Adds `other`'s records to these.
    pub fn merge(&mut self, other: Ledger) {
        self.entered.extend(other.entered);
        self.left.extend(other.left);
        self.seen.extend(other.seen);
        self.broken.extend(other.broken);
    }

    /// Panics, naming the values, if an invariant broke, a value left twice, a value that
    /// entered never left (lost), or one left or was seen that never entered (invented).
    pub fn assert_each_value_leaves_once(mut self, scenario: &str) {
        if let Some(first) = self.broken.first() {
            panic!("{scenario}: {first} ({} such findings)", self.broken.len());
        }
        self.entered.sort_unstable();
        self.left.sort_unstable();
        let twice: Vec<u64> = self
            .left
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        assert!(
            twice.is_empty(),
            "{scenario}: values taken twice (duplicated): {twice:x?}"
        );
        let lost: Vec<u64> = self
            .entered
            .iter()
            .filter(|v| self.left.binary_search(v).is_err())
            .copied()
            .collect();
        assert!(lost.is_empty(), "{scenario}: values lost: {lost:x?}");
        let invented: Vec<u64> = self
            .left
            .iter()
            .chain(&self.seen)
            .filter(|v| self.entered.binary_search(v).is_err())
            .copied()
            .collect();
        assert!(
            invented.is_empty(),
            "{scenario}: values never put came out: {invented:x?}"
        );
    }
}

/// Counts the takes that may leave the box empty for a while: a thread calls [`Flight::begin`]
/// before such a take and [`Flight::end`] once the put that refills the box has returned. With
/// every other operation of a scenario atomic (`read`, `swap`, `try_read`, a `try_put` that is
/// at once undone), the box is provably full during any interval with no take in flight.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    started: AtomicU64,
    done: AtomicU64,
}

impl Flight {
    /// Before a take whose matching put follows.
    pub fn begin(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    /// After that put returned.
    pub fn end(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    /// Puts that ended so far (the real-threads prober aims at the end of a cycle).
    #[cfg(not(any(loom, shuttle)))]
    pub fn ended(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Runs `op`; also says whether no take was in flight at any instant of it: none started
    /// after the first matching put completed before `op` began (`started` after ≤ `done`
    /// before; `started - done` at any instant in between is at most that difference).
    pub fn quiet<R>(&self, op: impl FnOnce() -> R) -> (R, bool) {
        let done_before = self.done.load(Ordering::SeqCst);
        let r = op();
        let started_after = self.started.load(Ordering::SeqCst);
        (r, started_after <= done_before)
    }
}

/// Roles of the values of [`atomic_op_races`].
pub(crate) const ROLE_INITIAL: u32 = 0;
/// Values the cycler puts back.
pub(crate) const ROLE_CYCLER: u32 = 1;
/// Values the prober offers with `try_put`.
pub(crate) const ROLE_PROBER: u32 = 2;
/// Values of worker `k` are role `ROLE_WORKER + k`.
pub(crate) const ROLE_WORKER: u32 = 8;

/// One round of an atomic-operation worker: `(mvar, recorder, ledger, worker index, round)`.
pub(crate) type WorkerRound<M> = fn(&M, &mut Recorder, &mut Ledger, u32, u64);

/// The skeleton of `mvar-read-races` and `mvar-swap-races`: a box that starts full, and
/// * `workers` threads each running `rounds` rounds of `work` (blocking `read`s, `swap`s),
///   operations that must never leave the box empty, not even for an instant;
/// * a prober: each round a `try_read` and a `try_put` of a fresh value, each checked against
///   [`Flight`] — with no take in flight the box is full, so `try_read` must find a value and
///   `try_put` must fail; a `try_put` that succeeds (legitimately, while a take is in flight) is
///   undone at once by a `take`, so the number of values in play stays one;
/// * a cycler (the calling thread): each round takes the value and puts a fresh one.
///
/// On real threads the cycler and the prober **aim at the window** a two-step operation opens
/// (a fast MVar closes it within nanoseconds otherwise): the cycler holds the box empty for a
/// while ([`HOLD`]), so that the workers queue up behind its take and go to sleep; its put then
/// hands the value to the first of them, and the prober, which watches for the end of each
/// cycle ([`Flight::ended`]), probes right after it — while a take-then-put worker is still
/// waking up with the box empty (an atomic one left the box full: there is no window). Under a
/// model engine the engine chooses the interleavings; there the cycler only yields.
///
/// Every operation is recorded and the history judged by the oracle; every value must leave the
/// box exactly once (the last one is drained at the end) and every value read must have been
/// put. Panics on the first broken invariant.
pub(crate) fn atomic_op_races<M: MVarApi<u64> + 'static>(
    scenario: &'static str,
    p: &Params,
    m: Arc<M>,
    workers: usize,
    work: WorkerRound<M>,
) {
    let rounds = history_rounds(p, workers + 2, 3);
    let clock = Clock::new();
    let flight = Arc::new(Flight::default());
    let mut rec = Recorder::new(0, &clock);
    let mut ledger = Ledger::default();
    let initial = value(ROLE_INITIAL, 0);
    rec.record(|| m.put(initial), |_| Kind::Put(initial));
    ledger.entered.push(initial);

    let mut handles = Vec::new();
    for k in 0..workers as u32 {
        let (m, clock) = (m.clone(), clock.clone());
        handles.push(thread::spawn(move || {
            let mut rec = Recorder::new(2 + k, &clock);
            let mut ledger = Ledger::default();
            for round in 0..rounds {
                work(&m, &mut rec, &mut ledger, k, round);
            }
            (rec.into_ops(), ledger)
        }));
    }
    {
        let (m, clock, flight) = (m.clone(), clock.clone(), flight.clone());
        let aim = p.schedule == Schedule::Real && !crate::sync::MODELLED;
        handles.push(thread::spawn(move || {
            let mut rec = Recorder::new(1, &clock);
            let mut ledger = Ledger::default();
            let mut seen_end = 0;
            for round in 0..rounds {
                if aim {
                    seen_end = after_next_cycle(&flight, seen_end);
                }
                probe(&*m, &mut rec, &mut ledger, &flight, round);
            }
            (rec.into_ops(), ledger)
        }));
    }
    for round in 0..rounds {
        flight.begin();
        let v = rec.record(|| m.take(), |v| Kind::Take(Some(*v)));
        hold(p.schedule);
        let fresh = value(ROLE_CYCLER, round);
        rec.record(|| m.put(fresh), |_| Kind::Put(fresh));
        flight.end();
        ledger.left.push(v);
        ledger.entered.push(fresh);
    }

    let mut parts = Vec::new();
    for h in handles {
        let (ops, theirs) = h.join().expect("a thread of the scenario panicked");
        parts.push(ops);
        ledger.merge(theirs);
    }
    let last = rec.record(|| m.try_take(), |r| Kind::TryTake(*r));
    match last {
        Some(v) => ledger.left.push(v),
        None => ledger
            .broken
            .push("the box is empty at the end; one value should be left in it".into()),
    }
    let none = rec.record(|| m.try_take(), |r| Kind::TryTake(*r));
    if let Some(v) = none {
        ledger.left.push(v);
    }
    parts.push(rec.into_ops());
    ledger.assert_each_value_leaves_once(scenario);
    assert_linearizable(scenario, parts, Cell::Empty);
}

/// How long the cycler of [`atomic_op_races`] holds the box empty on real threads: longer than
/// a waiter's spin before it sleeps (see `sync::spin`), so the workers behind it sleep.
#[cfg(not(any(loom, shuttle)))]
pub(crate) const HOLD: std::time::Duration = std::time::Duration::from_micros(100);

/// How long the prober waits for the next cycle to end before it probes anyway.
#[cfg(not(any(loom, shuttle)))]
const AIM_PATIENCE: std::time::Duration = std::time::Duration::from_millis(2);

/// The cycler's pause with the box empty: [`HOLD`] on real threads; a yield under a model
/// engine (where time does not pass and the engine explores the interleavings itself).
fn hold(schedule: Schedule) {
    #[cfg(not(any(loom, shuttle)))]
    if schedule == Schedule::Real {
        std::thread::sleep(HOLD);
        return;
    }
    let _ = schedule;
    thread::yield_now();
}

/// Real threads only: returns as soon as a cycle ends after the one `seen` counts (or after
/// [`AIM_PATIENCE`], so the prober never waits for a cycler that is done); the count it saw.
fn after_next_cycle(flight: &Flight, seen: u64) -> u64 {
    #[cfg(not(any(loom, shuttle)))]
    {
        let start = std::time::Instant::now();
        loop {
            let now = flight.ended();
            if now > seen || start.elapsed() > AIM_PATIENCE {
                return now;
            }
            core::hint::spin_loop();
        }
    }
    #[cfg(any(loom, shuttle))]
    {
        let _ = flight;
        seen
    }
}

/// One round of the prober of [`atomic_op_races`].
fn probe<M: MVarApi<u64>>(
    m: &M,
    rec: &mut Recorder,
    ledger: &mut Ledger,
    flight: &Flight,
    round: u64,
) {
    let (seen, quiet) = flight.quiet(|| rec.record(|| m.try_read(), |r| Kind::TryRead(*r)));
    match seen {
        Some(v) => ledger.seen.push(v),
        None if quiet => ledger.broken.push(format!(
            "round {round}: try_read found the box empty while no take was in flight (an \
             atomic read or swap never empties it)"
        )),
        None => {}
    }
    let offer = value(ROLE_PROBER, round);
    let (stored, quiet) = flight.quiet(|| {
        rec.record(
            || m.try_put(offer),
            |r| Kind::TryPut {
                value: offer,
                ok: r.is_ok(),
            },
        )
    });
    if stored.is_ok() {
        if quiet {
            ledger.broken.push(format!(
                "round {round}: try_put succeeded while no take was in flight (the box was \
                 empty under an atomic read or swap)"
            ));
        }
        ledger.entered.push(offer);
        // Undo at once: two values in play would leave a put blocked for good.
        let v = rec.record(|| m.take(), |v| Kind::Take(Some(*v)));
        ledger.left.push(v);
    }
}
