//! Shuttle through the public calls: `check::shuttle::{mvar, lock, log}` run every catalogue
//! scenario of the family under the random, PCT, uniform-random-walk and DFS schedulers — on
//! the reference primitives (which must pass), on a broken third-party-style MVar defined here
//! (which must be caught, and its failing schedule must replay) — and every negative control
//! under the same four schedulers through the same engine driver (`sync::engine::shuttle`):
//! each must be caught by at least one, and its failing schedule must replay.
//!
//! `SHUTTLE_ITERATIONS` (default 1000) sets the executions per scenario and scheduler;
//! `SHUTTLE_SEED` (default 1) the seed of the randomized schedulers.
//!
//! Run: `RUSTFLAGS="--cfg shuttle" cargo test -p primitives --release --test shuttle -- --nocapture`
#![cfg(shuttle)]

mod common;

use common::broken::OneCondvarMVar;
use primitives::check::shuttle as engine_check;
use primitives::check::{Budget, Outcome, Report};
use primitives::lock::{LockClass, ReentrantLock};
use primitives::scenarios::catalogue::{reference_log, CONTROLS};
use primitives::scenarios::{Params, Schedule};
use primitives::sync::engine::{self, Scheduler};
use primitives::MVar;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The budget of every call (`SHUTTLE_ITERATIONS`, `SHUTTLE_SEED`).
fn budget() -> Budget {
    Budget::default()
        .iterations(env_or("SHUTTLE_ITERATIONS", 1000))
        .seed(env_or("SHUTTLE_SEED", 1))
        .time(Duration::from_secs(120))
}

/// Prints the report, and checks that it has one row per scenario and scheduler and that at
/// least one row actually checked something (a report of skips only would pass vacuously).
fn show(report: &Report) {
    eprintln!("{report}");
    assert!(!report.rows.is_empty(), "no scenario ran");
    assert_eq!(report.rows.len() % 4, 0, "four schedulers per scenario");
    assert!(
        report
            .rows
            .iter()
            .any(|r| !matches!(r.outcome, Outcome::Skipped(_))),
        "every row was skipped"
    );
}

#[test]
fn reference_mvar_passes_shuttle() {
    let report = engine_check::mvar(MVar::<u64>::new_empty, budget());
    show(&report);
    report.assert_passed();
}

#[test]
fn reference_lock_passes_shuttle() {
    let report = engine_check::lock(|c: &LockClass| ReentrantLock::tracked((), c), budget());
    show(&report);
    report.assert_passed();
}

#[test]
fn reference_log_passes_shuttle() {
    let report = engine_check::log(reference_log, budget());
    show(&report);
    report.assert_passed();
}

/// A type this crate knows nothing about, with a lost wake-up: the public call reports it, and
/// each failing row's replay string reproduces the failure in one execution.
#[test]
fn broken_third_party_mvar_is_caught_and_replays() {
    let report = engine_check::mvar(OneCondvarMVar::new, budget());
    show(&report);
    assert!(
        !report.passed(),
        "the lost wake-up was not caught:\n{report}"
    );
    let mut replayed = 0;
    for row in report.findings() {
        let (Outcome::Failed { replay, .. } | Outcome::Hang { replay, .. }) = &row.outcome else {
            unreachable!("findings are failures or hangs")
        };
        let schedule = replay
            .as_deref()
            .unwrap_or_else(|| panic!("{} / {}: no replay string", row.scenario, row.engine));
        let again = engine_check::replay_mvar(OneCondvarMVar::new, &row.scenario, schedule);
        eprintln!("replay of {} / {}: {again:?}", row.scenario, row.engine);
        assert!(
            matches!(
                again,
                Outcome::Failed { executions: 1, .. } | Outcome::Hang { executions: 1, .. }
            ),
            "{} / {}: the schedule does not replay the failure: {again:?}",
            row.scenario,
            row.engine
        );
        replayed += 1;
    }
    assert!(replayed > 0);
}

/// The four configurations of the public call, for the controls.
fn configurations() -> [(&'static str, Scheduler, Schedule); 4] {
    [
        ("random", Scheduler::Random, Schedule::Random),
        ("pct", Scheduler::Pct { depth: 3 }, Schedule::Random),
        ("urw", Scheduler::Urw, Schedule::Exhaustive),
        ("dfs", Scheduler::Dfs, Schedule::Exhaustive),
    ]
}

/// Every negative control is caught by at least one scheduler, and every catching schedule
/// replays to a failure in one execution.
#[test]
fn every_control_is_caught_by_shuttle_and_replays() {
    let b = budget();
    let mut missed = Vec::new();
    for c in CONTROLS {
        let mut caught_by = Vec::new();
        for (name, scheduler, schedule) in configurations() {
            let params = Params::for_engine().with_schedule(schedule);
            let run = c.run;
            let body = move || {
                run(&params);
                None
            };
            let start = Instant::now();
            let ended = engine::shuttle(&scheduler, b.iterations, b.time, b.seed, Arc::new(body));
            let Some(failure) = ended.failure else {
                eprintln!(
                    "shuttle: {:<24} {name:<6} NOT caught in {} executions ({:.2} s)",
                    c.name,
                    ended.executions,
                    start.elapsed().as_secs_f64()
                );
                continue;
            };
            eprintln!(
                "shuttle: {:<24} {name:<6} caught after {:>5} executions ({:.2} s){}: {}",
                c.name,
                ended.executions,
                start.elapsed().as_secs_f64(),
                if failure.hang { " [hang]" } else { "" },
                failure.message.lines().next().unwrap_or("")
            );
            let s = failure
                .schedule
                .unwrap_or_else(|| panic!("{} ({name}): no failing schedule", c.name));
            let again = engine::shuttle(
                &Scheduler::Replay(s),
                1,
                b.time,
                0,
                Arc::new(move || {
                    run(&params);
                    None
                }),
            );
            assert!(
                again.failure.is_some() && again.executions == 1,
                "{} ({name}): the schedule does not replay: {again:?}",
                c.name
            );
            caught_by.push(name);
        }
        if caught_by.is_empty() {
            missed.push(c.name);
        }
    }
    assert!(
        missed.is_empty(),
        "controls shuttle did not catch: {missed:?}"
    );
}
