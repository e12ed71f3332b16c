//! The mutants of the contract's properties through the public engine calls a user has on a
//! std build — `check::threads` (every catalogue scenario on real threads, watched) and
//! `check::model` (proptest state machines) — exactly as a user's broken type would go. Each
//! must be caught by the real-threads call; what the sequential models say is printed (one
//! thread at a time cannot see most of these defects: a documented blind spot, not asserted).
//! The shuttle and loom columns come from `tests/shuttle.rs` and `tests/loom.rs`.
//!
//! `cargo test -p primitives --release --test mutants_engines -- --nocapture` prints one
//! `MUTANT` line per control and engine.
#![cfg(all(feature = "engines", not(any(loom, shuttle))))]

use primitives::check::{model, threads, Budget, Outcome, Report};
use primitives::controls::{
    LifoWaiters, LogDefect, MutantLog, NarrowCountLock, ReadTakePut, RecycledOwnerLock,
    SwapTakePut, TimedOutPutStores, TryWaitsLock,
};
use primitives::mvar::MVar;
use std::time::Duration;

fn budget() -> Budget {
    Budget::default()
        .iterations(300)
        .time(Duration::from_secs(10))
        .seed(1)
}

/// The first finding of `r`, printed as `MUTANT control engine verdict`; `None` if none.
fn first_finding(control: &str, engine: &str, r: &Report) -> Option<String> {
    let found = r.findings().next().map(|row| {
        let (what, n) = match &row.outcome {
            Outcome::Failed { executions, .. } => ("FAILED", executions),
            Outcome::Hang { executions, .. } => ("HANG", executions),
            _ => unreachable!("findings are failures or hangs"),
        };
        format!("{what} in {} at execution {n}", row.scenario)
    });
    eprintln!(
        "MUTANT {control:<26} {engine:<8} {}",
        found.as_deref().unwrap_or("not caught")
    );
    found
}

fn both(control: &str, t: Report, m: Report) {
    let caught = first_finding(control, "threads", &t);
    first_finding(control, "proptest", &m);
    assert!(
        caught.is_some(),
        "{control}: real threads did not catch it:\n{t}"
    );
}

/// The real-threads call spent on the scenario of the mutant's property only (the others would
/// each use the whole budget on a type they cannot fail). A take+put read or swap leaves a
/// window of a few instructions: the races scenarios need tens of runs (seen: 2–144).
fn on(scenario: &'static str) -> Budget {
    budget()
        .iterations(5000)
        .time(Duration::from_secs(60))
        .scenario(scenario)
}

#[test]
fn mvar_mutants() {
    both(
        "mvar-read-take-put",
        threads::mvar(ReadTakePut::default, on("mvar-read-races")),
        model::mvar(ReadTakePut::default, budget()),
    );
    both(
        "mvar-swap-take-put",
        threads::mvar(SwapTakePut::default, on("mvar-swap-races")),
        model::mvar(SwapTakePut::default, budget()),
    );
    both(
        "mvar-timeout-takes-effect",
        threads::mvar(TimedOutPutStores::default, on("mvar-deadlines")),
        model::mvar(TimedOutPutStores::default, budget()),
    );
    let lifo = MVar::<u64, LifoWaiters>::with_policy_empty;
    both(
        "mvar-lifo-waiters",
        threads::mvar(lifo, on("mvar-fifo")),
        model::mvar(lifo, budget()),
    );
}

#[test]
fn lock_mutants() {
    both(
        "lock-reused-owner-id",
        threads::lock(RecycledOwnerLock::new, on("lock-owner-after-exit")),
        model::lock(RecycledOwnerLock::new, budget()),
    );
    both(
        "lock-try-waits",
        threads::lock(TryWaitsLock::new, on("lock-try-never-waits")),
        model::lock(TryWaitsLock::new, budget()),
    );
    both(
        "lock-nesting-wraps",
        threads::lock(NarrowCountLock::wrapping, on("lock-nesting-overflow")),
        model::lock(NarrowCountLock::wrapping, budget()),
    );
}

#[test]
fn log_mutants() {
    for (defect, scenario) in [
        (LogDefect::LostAtExit, "log-exit-without-flush"),
        (LogDefect::LostAtDrop, "log-drop-without-flush"),
        (LogDefect::OverflowSilent, "log-overflow-announced"),
    ] {
        both(
            defect.control(),
            threads::log(move |s, c| MutantLog::new(s, c, defect), on(scenario)),
            model::log(move |s, c| MutantLog::new(s, c, defect), budget()),
        );
    }
}
