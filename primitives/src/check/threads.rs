//! The linearizability oracle on real threads, for any [`MVarApi<u64>`]: [`mvar_history`]
//! drives a box from several OS threads with random bounded operations (timed puts of unique
//! values, timed takes, `try_put`, `try_take`, and `try_read` when declared), records every call and return with its time and
//! value, and [`mvar_verdict`] judges the history with [`super::linearizability`] — from the
//! history alone, knowing nothing of the implementation. A box that hands a value out twice, or
//! loses one, or lets a timed-out operation take effect, has a history no single atomic box
//! could produce.
//!
//! Every blocking call is timed (`--timeout` of the traffic: [`Traffic::timeout`]) so that a
//! run always ends, whatever the box does; a timed-out call is recorded as having no effect,
//! which is what the contract promises (a timeout gives the value back).
//!
//! Real threads only (under loom or shuttle the checker owns time and the schedule: their
//! engines check the same properties with their own models).

use crate::history::linearizability::{check_with, Cell, Kind, Limits, Operation, Verdict};
use crate::traits::MVarApi;
use std::time::{Duration, Instant};

/// The traffic [`mvar_history`] runs.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    /// Threads.
    pub threads: usize,
    /// Operations per thread.
    pub ops: usize,
    /// Timeout of the blocking calls.
    pub timeout: Duration,
    /// Seed of each thread's choice of operations.
    pub seed: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            threads: 4,
            ops: 40,
            timeout: Duration::from_millis(2),
            seed: 1,
        }
    }
}

/// Runs `traffic` on `mvar` (empty at the start) and returns its history: one
/// [`Operation`] per call, `process` = the thread's index. Values put are unique
/// (`thread << 32 | n`, never 0).
pub fn mvar_history<M: MVarApi<u64> + Sync>(mvar: &M, traffic: Traffic) -> Vec<Operation> {
    let base = Instant::now();
    let ns = move || base.elapsed().as_nanos() as u64;
    // `try_read` joins the mix when the box declares it (never the blocking `read`/`swap`:
    // on an empty box nothing guarantees they return).
    let reads = mvar.capabilities().read_swap;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..traffic.threads)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = traffic.seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let mut next = move || {
                        // SplitMix64.
                        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
                        let mut z = rng;
                        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                        z ^ (z >> 31)
                    };
                    let mut ops = Vec::with_capacity(traffic.ops);
                    for n in 0..traffic.ops {
                        let value = ((t as u64 + 1) << 32) | n as u64;
                        let call_ns = ns();
                        let kinds = if reads { 5 } else { 4 };
                        let kind = match next() % kinds {
                            4 => Kind::TryRead(mvar.try_read()),
                            0 => match mvar.put_timeout(value, traffic.timeout) {
                                Ok(()) => Kind::Put(value),
                                Err(_) => Kind::TimedOut,
                            },
                            1 => match mvar.take_timeout(traffic.timeout) {
                                Some(v) => Kind::Take(Some(v)),
                                None => Kind::TimedOut,
                            },
                            2 => Kind::TryPut {
                                value,
                                ok: mvar.try_put(value).is_ok(),
                            },
                            _ => Kind::TryTake(mvar.try_take()),
                        };
                        ops.push(Operation {
                            process: t as u32,
                            call_ns,
                            return_ns: Some(ns()),
                            kind,
                        });
                    }
                    ops
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Runs `traffic` on a fresh box from `make` for each of `runs` seeds (`traffic.seed`,
/// `+1`, ...) and judges every history; returns the first verdict that is not
/// [`Verdict::Linearizable`] with its seed and history, or `None` if all were linearizable.
pub fn mvar_verdict<M: MVarApi<u64> + Sync>(
    make: impl Fn() -> M,
    traffic: Traffic,
    runs: u64,
) -> Option<(u64, Verdict, Vec<Operation>)> {
    (0..runs).find_map(|r| {
        let seed = traffic.seed.wrapping_add(r);
        let mvar = make();
        let history = mvar_history(&mvar, Traffic { seed, ..traffic });
        match check_with(&history, Cell::Empty, Limits::default()) {
            Verdict::Linearizable { .. } => None,
            v => Some((seed, v, history)),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The real-threads engine as one call: every catalogue scenario on the user's type, watched.
// ---------------------------------------------------------------------------------------------

use super::watch::{self, WatchedOp};
use super::{Budget, Outcome, Report, Row};
use crate::lock::LockClass;
use crate::scenarios::catalogue::{
    lock_scenarios, log_scenarios, mvar_scenarios, Delivered, MakeLock, MakeLog, MakeMVar,
};
use crate::scenarios::{Checked, Params, Scenario};
use crate::sync::{book_mpsc as mpsc, BookArc as Arc};
use crate::traits::{LockApi, LogApi, MVarCaps};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A user's MVar with every call watched (see [`watch`]): a hang report names the operation
/// each thread is stuck in.
#[derive(Debug)]
pub struct Watched<M>(pub M);

impl<M> Watched<M> {
    fn addr(&self) -> usize {
        &self.0 as *const M as usize
    }
}

impl<M: MVarApi<u64>> MVarApi<u64> for Watched<M> {
    fn put(&self, value: u64) {
        watch::call(WatchedOp::Put, self.addr(), || self.0.put(value))
    }
    fn take(&self) -> u64 {
        watch::call(WatchedOp::Take, self.addr(), || self.0.take())
    }
    fn try_put(&self, value: u64) -> Result<(), u64> {
        watch::call(WatchedOp::TryPut, self.addr(), || self.0.try_put(value))
    }
    fn try_take(&self) -> Option<u64> {
        watch::call(WatchedOp::TryTake, self.addr(), || self.0.try_take())
    }
    fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
        watch::call(WatchedOp::PutTimeout, self.addr(), || {
            self.0.put_timeout(value, timeout)
        })
    }
    fn take_timeout(&self, timeout: Duration) -> Option<u64> {
        watch::call(WatchedOp::TakeTimeout, self.addr(), || {
            self.0.take_timeout(timeout)
        })
    }
    fn capabilities(&self) -> MVarCaps {
        self.0.capabilities()
    }
    fn read(&self) -> u64 {
        watch::call(WatchedOp::Read, self.addr(), || self.0.read())
    }
    fn try_read(&self) -> Option<u64> {
        watch::call(WatchedOp::TryRead, self.addr(), || self.0.try_read())
    }
    fn swap(&self, value: u64) -> u64 {
        watch::call(WatchedOp::Swap, self.addr(), || self.0.swap(value))
    }
}

impl<L: LockApi> LockApi for Watched<L> {
    type Guard<'a>
        = L::Guard<'a>
    where
        Self: 'a;
    fn lock(&self) -> Self::Guard<'_> {
        watch::call(WatchedOp::Lock, self.addr(), || self.0.lock())
    }
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        watch::call(WatchedOp::LockTimeout, self.addr(), || {
            self.0.lock_timeout(timeout)
        })
    }
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        watch::call(WatchedOp::TryLock, self.addr(), || self.0.try_lock())
    }
    fn is_reentrant(&self) -> bool {
        self.0.is_reentrant()
    }
    fn max_nesting(&self) -> Option<u64> {
        self.0.max_nesting()
    }
}

impl<G: LogApi> LogApi for Watched<G> {
    fn log(&self, text: String) {
        watch::call(WatchedOp::Log, self.addr(), || self.0.log(text))
    }
    fn flush(&self) {
        watch::call(WatchedOp::Flush, self.addr(), || self.0.flush())
    }
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        self.0.under_sink_lock(f)
    }
}

/// Checks a user's MVar on real threads: every MVar scenario of the catalogue (those needing
/// an undeclared capability are reported "not checked"), each run up to `budget.iterations`
/// times within `budget.time`, under a watchdog; then the linearizability oracle on random
/// traffic ([`mvar_verdict`]). `make` returns a new, empty MVar each call.
pub fn mvar<M, F>(make: F, budget: Budget) -> Report
where
    M: MVarApi<u64> + 'static,
    F: Fn() -> M + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let caps = make().capabilities();
    let mut report = Report::new(std::any::type_name::<M>(), caps.names());
    for s in mvar_scenarios::<Watched<M>>() {
        if !budget.runs(s.name) {
            continue;
        }
        let mk = make.clone();
        let maker = move || Watched(mk());
        report.rows.push(run_scenario(
            s,
            budget,
            Arc::new(maker) as Arc<MakeMVar<Watched<M>>>,
        ));
    }
    if !budget.runs("linearizable-traffic") {
        return report;
    }
    let started = Instant::now();
    let runs = (budget.iterations as u64).clamp(1, 200);
    let traffic = Traffic {
        seed: budget.seed,
        ..Traffic::default()
    };
    let outcome = match mvar_verdict(|| make(), traffic, runs) {
        None => Outcome::Passed { executions: runs },
        Some((seed, verdict, history)) => Outcome::Failed {
            executions: seed - budget.seed + 1,
            message: match verdict {
                Verdict::NotLinearizable { prefix, stuck } => {
                    crate::history::explain(&history, &prefix, &stuck)
                }
                v => format!("{v:?}"),
            },
            replay: Some(format!("Traffic {{ seed: {seed}, ..Traffic::default() }}")),
        },
    };
    report.rows.push(Row {
        scenario: "linearizable-traffic".into(),
        engine: "threads".into(),
        outcome,
        elapsed: started.elapsed(),
    });
    report
}

/// Checks a user's lock on real threads: every lock scenario of the catalogue, watched.
/// `make` returns a new, free lock each call (the class is for locks that feed the crate's
/// lock-order validator; others ignore it).
pub fn lock<L, F>(make: F, budget: Budget) -> Report
where
    L: LockApi + 'static,
    F: Fn(&LockClass) -> L + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut report = Report::new(
        std::any::type_name::<L>(),
        lock_declared(&make(&dummy_class())),
    );
    for s in lock_scenarios::<Watched<L>>() {
        if !budget.runs(s.name) {
            continue;
        }
        let mk = make.clone();
        let maker = move |c: &LockClass| Watched(mk(c));
        report.rows.push(run_scenario(
            s,
            budget,
            Arc::new(maker) as Arc<MakeLock<Watched<L>>>,
        ));
    }
    report
}

/// Checks a user's log on real threads: every log scenario of the catalogue, watched. `make`
/// returns a new log delivering into the given sink each call.
pub fn log<G, F>(make: F, budget: Budget) -> Report
where
    G: LogApi + 'static,
    F: Fn(Delivered, &LockClass) -> G + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut report = Report::new(std::any::type_name::<G>(), Vec::new());
    for s in log_scenarios::<Watched<G>>() {
        if !budget.runs(s.name) {
            continue;
        }
        let mk = make.clone();
        let maker = move |d: Delivered, c: &LockClass| Watched(mk(d, c));
        report.rows.push(run_scenario(
            s,
            budget,
            Arc::new(maker) as Arc<MakeLog<Watched<G>>>,
        ));
    }
    report
}

fn dummy_class() -> LockClass {
    crate::lock::Validator::new(crate::lock::Mode::Off).class("probe", true)
}

fn lock_declared<L: LockApi>(l: &L) -> Vec<&'static str> {
    let mut v = Vec::new();
    if l.is_reentrant() {
        v.push("reentrant");
    }
    if l.max_nesting().is_some() {
        v.push("max_nesting");
    }
    v
}

/// How long a run may go without progress before it is a hang: no watched call returned, no
/// other thread of the process runnable, for this long past the run's expected time.
const STALL: Duration = Duration::from_secs(5);

/// Runs `s` up to `budget.iterations` times within `budget.time`, each in a fresh thread under
/// a watchdog.
fn run_scenario<F: ?Sized + Send + Sync + 'static>(
    s: Scenario<F>,
    budget: Budget,
    make: Arc<F>,
) -> Row {
    let started = Instant::now();
    let params = Params::for_engine();
    let row = |outcome| Row {
        scenario: s.name.to_string(),
        engine: "threads".to_string(),
        outcome,
        elapsed: started.elapsed(),
    };
    let mut runs = 0u64;
    while runs < budget.iterations.max(1) as u64 && (runs == 0 || started.elapsed() < budget.time) {
        runs += 1;
        let (tx, rx) = mpsc::channel();
        let (mk, run) = (make.clone(), s.run);
        panics::arm();
        let spawned = std::thread::Builder::new()
            .name(format!("check:{}", s.name))
            .spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| run(&params, &mk)));
                let _ = tx.send(r.map_err(|p| panics::payload_message(&*p)));
            });
        if let Err(e) = spawned {
            panics::disarm();
            return row(Outcome::Skipped(format!("cannot spawn a thread: {e}")));
        }
        let mut last = watch::progress();
        let received = loop {
            match rx.recv_timeout(STALL) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = watch::progress();
                    if now != last || others_runnable() {
                        last = now;
                        continue;
                    }
                    break None;
                }
                Ok(r) => break Some(Ok(r)),
                Err(mpsc::RecvTimeoutError::Disconnected) => break Some(Err(())),
            }
        };
        let first = panics::take_first();
        panics::disarm();
        match received {
            None => {
                let mut who = watch::inside();
                who.extend(
                    crate::track::waitreg::snapshot()
                        .iter()
                        .map(|e| e.describe()),
                );
                if who.is_empty() {
                    who.push("no thread is inside a call of the primitive".into());
                }
                return row(Outcome::Hang {
                    executions: runs,
                    report: format!(
                        "no progress for {} s; {} (the stuck threads are left blocked)",
                        STALL.as_secs(),
                        who.join("; ")
                    ),
                    replay: None,
                });
            }
            Some(Ok(Ok(Checked::Skipped(why)))) => return row(Outcome::Skipped(why.to_string())),
            Some(Ok(Ok(Checked::Yes))) if first.is_none() => {}
            Some(r) => {
                let message = first.unwrap_or_else(|| match r {
                    Ok(Err(m)) => m,
                    _ => "a thread of the scenario panicked".into(),
                });
                return row(Outcome::Failed {
                    executions: runs,
                    message,
                    replay: None,
                });
            }
        }
    }
    row(Outcome::Passed { executions: runs })
}

/// Whether a thread of this process other than the calling one is runnable (state `R`): a
/// run whose threads only wait for a CPU is slow, not hung. (Also the torture binary's
/// thread watchdog's test.)
pub fn others_runnable() -> bool {
    let me = nix::unistd::gettid().as_raw().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().any(|t| {
        t.file_name().to_str() != Some(me.as_str())
            && std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('R'))
                })
                .unwrap_or(false)
    })
}

/// The first panic message of a run, captured by a process-wide hook (chained to the previous
/// one, which still sees every panic outside a check run).
mod panics {
    use crate::sync::{book_lock, BookAtomicUsize, BookMutex, BookOnce, BookOrdering};

    static ARMED: BookAtomicUsize = BookAtomicUsize::new(0);
    static FIRST: BookMutex<Option<String>> = BookMutex::new(None);
    static HOOK: BookOnce = BookOnce::new();

    pub(super) fn arm() {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if ARMED.load(BookOrdering::SeqCst) == 0 {
                    return previous(info);
                }
                let mut first = book_lock(&FIRST);
                if first.is_none() {
                    let at = info
                        .location()
                        .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                        .unwrap_or_default();
                    *first = Some(format!("{}{at}", payload_message(info.payload())));
                }
            }));
        });
        *book_lock(&FIRST) = None;
        ARMED.fetch_add(1, BookOrdering::SeqCst);
    }

    pub(super) fn disarm() {
        ARMED.fetch_sub(1, BookOrdering::SeqCst);
    }

    pub(super) fn take_first() -> Option<String> {
        book_lock(&FIRST).take()
    }

    pub(super) fn payload_message(p: &(dyn std::any::Any + Send)) -> String {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic with a non-string payload".into())
    }
}
