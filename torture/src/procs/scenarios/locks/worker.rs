//! The worker process of `torture locks`: random nested acquisitions of the shared locks in the
//! global order (the reference), or one edge of the cycle (the controls), each acquisition
//! recorded in the ledger (`begin lock <index>`, `done lock <index>`, `released lock`).
//!
//! With the shared validator on it runs in [`Mode::Panic`]: the acquisition that closes a cycle
//! panics *before* it may block; the worker catches that, leaves the violation in a file next to
//! its ledger ([`lockdep_path`]) and exits with [`LOCKDEP_EXIT`].

use super::NAMES;
use crate::prng::SplitMix64;
use crate::procs::impls::lock::tracked::{Got, Held, Tracked};
use crate::procs::impls::lock::LockImpl;
use crate::procs::ledger::{self, Op, Record, Writer};
use crate::procs::WorkerArgs;
use primitives::lock::{Mode, Validator};
use primitives::shm::ShmName;
use serde::{Deserialize, Serialize};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A worker's exit code when the lock-order validator stopped it (0: done, 2: setup error).
pub const LOCKDEP_EXIT: u8 = 3;
/// One in this many reference acquisitions re-enters a lock already held (reentrant: no order).
const REENTER_ONE_IN: usize = 8;
/// Longest busy hold between two reference acquisitions, in spin-loop hints.
const HOLD_SPINS: usize = 64;
/// A cycle worker holds its first lock this long (range, microseconds) before taking the
/// second: long enough for the three to meet in a deadlock within a few rounds.
const CYCLE_HOLD_US: (u64, u64) = (20, 300);

/// A worker's spec.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    /// The locks' segment names, in the global order.
    pub locks: Vec<String>,
    /// The shared lock-order graph's segment (`None`: validator off).
    pub graph: Option<String>,
    /// `Some([first, second])`: this worker takes `first` then `second`, over and over (an edge
    /// of the cycle); `None`: the reference traffic.
    pub cycle: Option<[usize; 2]>,
    /// Its traffic's seed.
    pub seed: u64,
    /// How long it runs.
    pub duration_ns: u64,
    /// Each acquisition gives up after this long (a safety valve: the runner reports long
    /// before).
    pub valve_ns: u64,
    /// The C library (absolute path) instead of the reference (`--impl-lib`).
    pub lib: Option<PathBuf>,
    /// The implementation this binary registered under this name (`--impl`).
    pub plugin: Option<String>,
    /// Whether the reference traffic re-enters locks it holds (the implementation is
    /// REENTRANT).
    pub reenter: bool,
    /// The control `lock-no-recovery`: the reference lock never takes a dead holder's lock
    /// over.
    pub no_recovery: bool,
}

/// What a worker stopped by the validator leaves for the runner.
#[derive(Debug, Serialize, Deserialize)]
pub struct Caught {
    /// The cycle of classes, first repeated at the end.
    pub cycle: Vec<String>,
    /// The classes of this worker's chain (held, then the one it was acquiring).
    pub here: Vec<String>,
    /// The earlier chains from the shared graph, edge by edge: the recording pid and classes.
    pub remote: Vec<(u32, Vec<String>)>,
    /// The validator's full report.
    pub text: String,
}

/// Where the worker with ledger `ledger` leaves its [`Caught`] (in the crew's ledger folder,
/// removed with it).
pub fn lockdep_path(ledger: &Path) -> PathBuf {
    ledger.with_extension("lockdep")
}

/// Runs the worker; `Ok(code)` is its exit code.
pub fn worker(w: &WorkerArgs) -> Result<u8, String> {
    let spec: Spec = w.spec()?;
    let validator = match &spec.graph {
        Some(g) => {
            let name = ShmName::parse(g).map_err(|e| format!("bad graph name: {e}"))?;
            Validator::shared(Mode::Panic, &name).map_err(|e| format!("cannot open {name}: {e}"))?
        }
        None => Validator::new(Mode::Off),
    };
    let imp = LockImpl::select(
        spec.lib.as_deref(),
        spec.plugin.as_deref(),
        !spec.no_recovery,
    )?;
    let mut locks = Vec::new();
    for (i, n) in spec.locks.iter().enumerate() {
        let class = validator
            .try_class(NAMES[i], true)
            .map_err(|e| format!("cannot register lock class {}: {e}", NAMES[i]))?;
        locks.push(Tracked::new(imp.open(n)?, class));
    }
    let mut ledger = w.writer()?;
    crate::procs::lockdep::quiet_panics("locks worker");
    let mut rng = SplitMix64::new(spec.seed);
    let valve = Duration::from_nanos(spec.valve_ns);
    let end = Instant::now() + Duration::from_nanos(spec.duration_ns);
    while Instant::now() < end {
        let round = catch_unwind(AssertUnwindSafe(|| match spec.cycle {
            Some([a, b]) => cycle_round(&locks, a, b, &mut ledger, &mut rng, valve),
            None => ordered_round(&locks, &mut ledger, &mut rng, valve, spec.reenter),
        }));
        match round {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(payload) => {
                let Some(v) = validator.violations().into_iter().next() else {
                    return Err(format!(
                        "panicked: {}",
                        crate::procs::lockdep::message(&*payload)
                    ));
                };
                let caught = Caught {
                    cycle: v.cycle.iter().map(|c| c.to_string()).collect(),
                    here: v.this_chain.iter().map(|a| a.class.to_string()).collect(),
                    remote: v
                        .remote_chain
                        .chunks(2)
                        .map(|e| {
                            (
                                e.first().map_or(0, |a| a.pid),
                                e.iter().map(|a| a.class.to_string()).collect(),
                            )
                        })
                        .collect(),
                    text: v.to_string(),
                };
                let json = serde_json::to_string(&caught).map_err(|e| e.to_string())?;
                std::fs::write(lockdep_path(&w.ledger), json)
                    .map_err(|e| format!("cannot leave the violation for the runner: {e}"))?;
                return Ok(LOCKDEP_EXIT);
            }
        }
    }
    Ok(0)
}

/// Acquires lock `i`, recording it; a lock not got within the valve is an error. The
/// validator checks the acquisition before it may block; its chains name the caller's line.
#[track_caller]
fn acquire<'a>(
    locks: &'a [Tracked],
    i: usize,
    ledger: &mut Writer,
    valve: Duration,
) -> Result<Held<'a>, String> {
    ledger.record(&Record::Begin {
        op: Op::Lock,
        id: Some(i as u64),
        start_ns: ledger::now_ns(),
        deadline_ns: Some(valve.as_nanos() as u64),
    });
    match locks[i].acquire(Some(valve)) {
        Ok(Got::Held(held, died)) => {
            if died {
                // The dead holder's pid is the implementation's to know: 0.
                ledger.record(&Record::Recovered {
                    op: Op::Lock,
                    from: 0,
                });
            }
            ledger.record(&Record::Done {
                op: Op::Lock,
                id: Some(i as u64),
                end_ns: None,
            });
            Ok(held)
        }
        Ok(Got::TimedOut) => {
            ledger.record(&Record::TimedOut {
                op: Op::Lock,
                id: Some(i as u64),
            });
            Err(format!("lock {} not acquired within {valve:?}", NAMES[i]))
        }
        Err(e) => Err(format!("lock {}: {e}", NAMES[i])),
    }
}

/// Releases `held` innermost first, recording each release.
fn release_all(mut held: Vec<Held<'_>>, ledger: &mut Writer) {
    while let Some(g) = held.pop() {
        drop(g);
        ledger.record(&Record::Released { op: Op::Lock });
    }
}

/// The reference: a random non-empty subset of the locks, taken nested in the global order,
/// sometimes re-entering one already held, each held briefly.
fn ordered_round(
    locks: &[Tracked],
    ledger: &mut Writer,
    rng: &mut SplitMix64,
    valve: Duration,
    reenter: bool,
) -> Result<(), String> {
    let k = locks.len();
    let subset = loop {
        let m = rng.next_u64() & ((1u64 << k) - 1);
        if m != 0 {
            break m;
        }
    };
    let mut guards = Vec::new();
    let mut held = Vec::new();
    for i in (0..k).filter(|i| subset >> i & 1 == 1) {
        guards.push(acquire(locks, i, ledger, valve)?);
        held.push(i);
        if rng.below(REENTER_ONE_IN) == 0 && reenter {
            let again = held[rng.below(held.len())];
            guards.push(acquire(locks, again, ledger, valve)?);
        }
        for _ in 0..rng.below(HOLD_SPINS) {
            std::hint::spin_loop();
        }
    }
    release_all(guards, ledger);
    Ok(())
}

/// One edge of the cycle: `first`, a short hold, then `second`.
fn cycle_round(
    locks: &[Tracked],
    first: usize,
    second: usize,
    ledger: &mut Writer,
    rng: &mut SplitMix64,
    valve: Duration,
) -> Result<(), String> {
    let mut guards = vec![acquire(locks, first, ledger, valve)?];
    let (lo, hi) = CYCLE_HOLD_US;
    std::thread::sleep(Duration::from_micros(
        lo + rng.below((hi - lo) as usize) as u64,
    ));
    guards.push(acquire(locks, second, ledger, valve)?);
    release_all(guards, ledger);
    Ok(())
}
