//! Loom through the public calls: `check::loom::{mvar, lock, log}` explore every catalogue
//! scenario of the family (each in a child process) on the reference primitives, which must
//! pass, and on a broken third-party-style MVar defined in `common::broken`, which must be
//! caught; and every negative control, which must be caught (each in a child copy of this
//! binary, `common::run_child`).
//!
//! `LOOM_PREEMPTION_BOUND` (default 3) bounds the exploration; `LOOM_MAX_PERMUTATIONS`
//! (default 1,000,000) and `LOOM_MAX_SECS` (default 300) cap it per scenario.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p primitives --release --test loom -- --nocapture`
#![cfg(loom)]

mod common;

use common::broken::OneCondvarMVar;
use common::run_child;
use primitives::check::loom as engine_check;
use primitives::check::{Budget, Outcome, Report};
use primitives::lock::{LockClass, ReentrantLock};
use primitives::scenarios::catalogue::{reference_log, CONTROLS};
use primitives::MVar;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn bound() -> usize {
    engine_check::preemption_bound_from_env(3)
}

fn budget() -> Budget {
    Budget::default()
        .iterations(env_or("LOOM_MAX_PERMUTATIONS", 1_000_000))
        .time(Duration::from_secs(env_or("LOOM_MAX_SECS", 300)))
}

/// Prints the report; checks it has a row per scenario and that some row checked something.
fn show(report: &Report) {
    eprintln!("{report}");
    assert!(!report.rows.is_empty(), "no scenario ran");
    assert!(
        report
            .rows
            .iter()
            .any(|r| !matches!(r.outcome, Outcome::Skipped(_))),
        "every row was skipped"
    );
}

#[test]
fn reference_mvar_passes_loom() {
    let report = engine_check::mvar(MVar::<u64>::new_empty, budget(), bound());
    show(&report);
    report.assert_passed();
}

#[test]
fn reference_lock_passes_loom() {
    let report = engine_check::lock(
        |c: &LockClass| ReentrantLock::tracked((), c),
        budget(),
        bound(),
    );
    show(&report);
    report.assert_passed();
}

#[test]
fn reference_log_passes_loom() {
    let report = engine_check::log(reference_log, budget(), bound());
    show(&report);
    report.assert_passed();
}

/// A type this crate knows nothing about, with a lost wake-up: its deadlock is a verdict (a
/// hang row), not an aborted test run.
#[test]
fn broken_third_party_mvar_is_caught_by_loom() {
    let report = engine_check::mvar(OneCondvarMVar::new, budget(), bound());
    show(&report);
    assert!(
        report
            .findings()
            .any(|r| matches!(r.outcome, Outcome::Hang { executions, .. } if executions > 0)),
        "the lost wake-up was not reported as a deadlock:\n{report}"
    );
}

/// Runs one control (chosen by the parent through the environment); a no-op otherwise.
#[test]
fn child() {
    common::loom_child(&EXECUTIONS, bound(), None);
}

fn expect_caught(name: &str, lockdep: &str) {
    let o = run_child("child", name, lockdep, Duration::from_secs(300));
    assert!(
        o.caught,
        "{name}: loom did NOT catch the control ({} executions)\n{}",
        o.executions, o.stderr
    );
    eprintln!(
        "loom: {name:<24} lockdep={lockdep:<5} caught after {:>6} executions: {}",
        o.executions, o.message
    );
}

/// Every control is caught, except those whose catalogue entry documents loom as a blind spot:
/// those are still run, and must *not* be caught (a blind spot that loom does see is stale).
#[test]
fn every_control_is_caught_by_loom() {
    for c in CONTROLS {
        match c.blind_spots.iter().find(|(engine, _)| *engine == "loom") {
            None => expect_caught(c.name, "panic"),
            Some((_, why)) => {
                let o = run_child("child", c.name, "panic", Duration::from_secs(300));
                assert!(
                    !o.caught,
                    "{}: loom caught a control documented as its blind spot ({why}); update \
                     the registry: {}",
                    c.name, o.message
                );
                eprintln!(
                    "loom: {:<24} not caught ({} executions), documented blind spot: {why}",
                    c.name, o.executions
                );
            }
        }
    }
}

/// Without the validator, loom still sees the lock controls as deadlocks.
#[test]
fn lock_controls_deadlock_without_lockdep() {
    for name in [
        "abba-odb-sysmsg",
        "logger-self-deadlock",
        "exch-same-bucket",
        "exch-unordered",
    ] {
        expect_caught(name, "off");
    }
}
