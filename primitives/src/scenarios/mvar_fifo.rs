//! `mvar-fifo`: blocked callers are served in arrival order ([`MVarCaps::fifo`]).
//!
//! Takers block one after another on an empty box, in a known order; then the main thread puts
//! one value per taker: the k-th taker to block must get the k-th value (the starvation bound:
//! a blocked taker is served within as many puts as there were takers blocked before it). Then
//! the same for putters blocked on a full box: the main thread takes the filler, then the
//! putters' values, which must come in the order the putters blocked. Every operation is
//! recorded and judged by the oracle too (out-of-order service is still linearizable: only the
//! direct check sees it).
//!
//! Arrival order is known only if each thread is really blocked before the next one starts:
//! * real threads: the thread announces it is about to call, then the main thread waits until
//!   the [wait registry](crate::track::waitreg) shows it asleep on this box (the reference and
//!   any type that registers its sleepers); for a type that does not register, it sleeps
//!   [`SETTLE`] after the announcement;
//! * a randomized scheduler: the main thread yields [`YIELDS`] times after the announcement;
//! * an exhaustive scheduler: not observable (a thread may never run while another yields), so
//!   the scenario is skipped there.
//!
//! [`MVarCaps::fifo`]: crate::traits::MVarCaps

use super::mvar_common::{assert_linearizable, value};
use super::MakeMVar;
use super::{Checked, Params, Schedule};
use crate::history::linearizability::{Cell, Kind};
use crate::history::{Clock, Recorder};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::time::{Duration, Instant};
use crate::sync::{thread, Arc};
use crate::track::waitreg;
use crate::traits::MVarApi;

/// The scenario's name.
pub const NAME: &str = "mvar-fifo";

/// Real threads, a box that does not register its sleepers: time given to a thread between its
/// announcement and the next thread's start.
pub const SETTLE: Duration = Duration::from_millis(20);
/// Randomized scheduler: yields of the main thread after a thread's announcement.
pub const YIELDS: usize = 50;
/// Real threads: how long the first blocked thread is looked for in the wait registry before
/// the box is taken for one that does not register its sleepers.
const REGISTRY_PROBE: Duration = Duration::from_millis(200);
/// Real threads, a box that registers: how long to wait for a thread to show up asleep before
/// going on regardless (the check may then blame the box for a slow thread).
const REGISTRY_PATIENCE: Duration = Duration::from_secs(10);

/// Values the main thread puts for the takers.
const ROLE_FOR_TAKERS: u32 = 3;
/// The value that fills the box before the putters come.
const ROLE_FILLER: u32 = 4;
/// Values of the putters.
const ROLE_PUTTERS: u32 = 5;

/// Runs it once on a box made by `make`.
pub fn run<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    if p.schedule == Schedule::Exhaustive {
        return Checked::Skipped("arrival order is not observable under an exhaustive scheduler");
    }
    let m = Arc::new(make());
    if !m.capabilities().fifo {
        return Checked::Skipped("fifo not declared");
    }
    let n = p.threads.clamp(2, 4);
    let clock = Clock::new();
    let mut rec = Recorder::new(0, &clock);
    let mut arrivals = Arrivals::new(p.schedule, &*m);
    let mut parts = Vec::new();

    // Takers, blocked on the empty box in the order 0, 1, ...
    let takers: Vec<_> = (0..n)
        .map(|i| {
            let (m2, clock, arrived) = (m.clone(), clock.clone(), arrivals.arrived.clone());
            let h = thread::spawn(move || {
                let mut rec = Recorder::new(1 + i as u32, &clock);
                arrived.fetch_add(1, Ordering::SeqCst);
                let v = rec.record(|| m2.take(), |v| Kind::Take(Some(*v)));
                (v, rec.into_ops())
            });
            arrivals.until_blocked(i + 1);
            h
        })
        .collect();
    for k in 0..n as u64 {
        let v = value(ROLE_FOR_TAKERS, k);
        rec.record(|| m.put(v), |_| Kind::Put(v));
    }
    let mut served = Vec::new();
    for h in takers {
        let (v, ops) = h.join().expect("a taker panicked");
        served.push(v);
        parts.push(ops);
    }

    // Putters, blocked on the full box in the order 0, 1, ...
    let filler = value(ROLE_FILLER, 0);
    rec.record(|| m.put(filler), |_| Kind::Put(filler));
    arrivals.arrived.store(0, Ordering::SeqCst);
    let putters: Vec<_> = (0..n)
        .map(|i| {
            let (m2, clock, arrived) = (m.clone(), clock.clone(), arrivals.arrived.clone());
            let v = value(ROLE_PUTTERS, i as u64);
            let h = thread::spawn(move || {
                let mut rec = Recorder::new(1 + (n + i) as u32, &clock);
                arrived.fetch_add(1, Ordering::SeqCst);
                rec.record(|| m2.put(v), |_| Kind::Put(v));
                rec.into_ops()
            });
            arrivals.until_blocked(i + 1);
            h
        })
        .collect();
    let stored: Vec<u64> = (0..=n)
        .map(|_| rec.record(|| m.take(), |v| Kind::Take(Some(*v))))
        .collect();
    for h in putters {
        parts.push(h.join().expect("a putter panicked"));
    }
    parts.push(rec.into_ops());

    for (i, v) in served.iter().enumerate() {
        assert_eq!(
            *v,
            value(ROLE_FOR_TAKERS, i as u64),
            "{NAME}: the taker that blocked {} got {v:x}, the value of the {} put (served {:x?}): \
             blocked takers must be served in arrival order — the k-th to block by the k-th put",
            ordinal(i),
            ordinal((*v & 0xffff_ffff) as usize),
            served
        );
    }
    assert_eq!(stored[0], filler, "{NAME}: the filler was not taken first");
    for (i, v) in stored[1..].iter().enumerate() {
        assert_eq!(
            *v,
            value(ROLE_PUTTERS, i as u64),
            "{NAME}: take {} got {v:x}, the value of the putter that blocked {} (stored \
             {:x?}): blocked putters must store in arrival order",
            i + 2,
            ordinal((*v & 0xffff_ffff) as usize),
            &stored[1..]
        );
    }
    assert_linearizable(NAME, parts, Cell::Empty);
    Checked::Yes
}

fn ordinal(i: usize) -> String {
    match i + 1 {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        k => format!("{k}th"),
    }
}

/// How the main thread learns that the thread it just started is blocked on the box.
struct Arrivals {
    /// Threads of the current phase that announced they are about to call.
    arrived: Arc<AtomicUsize>,
    schedule: Schedule,
    /// The box's address: the object its sleepers register in the wait registry.
    object: usize,
    /// Whether the box registers its sleepers (real threads; learnt from the first one).
    registers: Option<bool>,
}

impl Arrivals {
    fn new<M>(schedule: Schedule, m: &M) -> Arrivals {
        // A model engine's time is frozen: "real" waiting cannot work there; yield instead.
        let schedule = match schedule {
            Schedule::Real if crate::sync::MODELLED => Schedule::Random,
            s => s,
        };
        Arrivals {
            arrived: Arc::new(AtomicUsize::new(0)),
            schedule,
            object: m as *const M as usize,
            registers: None,
        }
    }

    fn asleep_on_box(&self) -> usize {
        waitreg::snapshot()
            .iter()
            .filter(|e| e.object == self.object)
            .count()
    }

    /// Returns once the `n`-th thread of this phase is (as far as can be told) blocked.
    fn until_blocked(&mut self, n: usize) {
        match self.schedule {
            Schedule::Exhaustive => unreachable!("skipped above"),
            Schedule::Random => {
                while self.arrived.load(Ordering::SeqCst) < n {
                    thread::yield_now();
                }
                for _ in 0..YIELDS {
                    thread::yield_now();
                }
            }
            Schedule::Real => {
                while self.arrived.load(Ordering::SeqCst) < n {
                    pause(Duration::from_micros(100));
                }
                if self.registers != Some(false) {
                    let patience = if self.registers == Some(true) {
                        REGISTRY_PATIENCE
                    } else {
                        REGISTRY_PROBE
                    };
                    let start = Instant::now();
                    while start.elapsed() < patience {
                        if self.asleep_on_box() >= n {
                            self.registers = Some(true);
                            return;
                        }
                        pause(Duration::from_micros(50));
                    }
                    if self.registers == Some(true) {
                        return;
                    }
                    self.registers = Some(false);
                }
                pause(SETTLE);
            }
        }
    }
}

/// Real threads: sleeps. (Never reached under a model engine, whose schedule is not `Real`;
/// there it only yields.)
fn pause(d: Duration) {
    #[cfg(not(any(loom, shuttle)))]
    std::thread::sleep(d);
    #[cfg(any(loom, shuttle))]
    {
        let _ = d;
        thread::yield_now();
    }
}
