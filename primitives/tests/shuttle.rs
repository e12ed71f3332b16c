//! Shuttle: randomized (random walk, PCT) and bounded exhaustive (DFS) scheduling of every
//! catalogue scenario against the reference primitives, and of every negative control, which
//! must be caught; a failing schedule is printed and replays to the same failure.
//!
//! Run: `RUSTFLAGS="--cfg shuttle" cargo test -p primitives --release --test shuttle -- --nocapture`
#![cfg(shuttle)]

mod common;

use common::{install_reporting_hook, run_child, Outcome, CONFIG_ENV, CONTROL_ENV};
use primitives::scenarios::catalogue::{control, CONTROLS, SCENARIOS};
use primitives::scenarios::{Params, Schedule};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);

/// Iterations per scheduler (override with `SHUTTLE_ITERATIONS`, e.g. in the nightly job).
fn iterations() -> usize {
    std::env::var("SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}
const PCT_DEPTH: usize = 3;

/// The scenario sizes under `scheduler`: DFS may keep a thread from ever running while another
/// yields, so it is an exhaustive scheduler ([`Schedule::Exhaustive`]); random walk and PCT
/// (which deprioritizes a yielding thread) let the others run ([`Schedule::Random`]).
fn params(scheduler: &str) -> Params {
    let p = Params::for_engine();
    match scheduler {
        "dfs" => p.with_schedule(Schedule::Exhaustive),
        _ => p.with_schedule(Schedule::Random),
    }
}

/// Runs `f` under `scheduler`, or replays `replay:<scheduler>:<schedule>` with the sizes of
/// the scheduler that found it.
fn run_with(scheduler: &str, f: fn(&Params)) -> usize {
    EXECUTIONS.store(0, Ordering::Relaxed);
    let (scheduler, replay) = match scheduler.strip_prefix("replay:") {
        Some(rest) => {
            let (by, schedule) = rest.split_once(':').expect("replay:<scheduler>:<schedule>");
            (by, Some(schedule))
        }
        None => (scheduler, None),
    };
    let p = params(scheduler);
    let body = move || {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        f(&p)
    };
    match (scheduler, replay) {
        (_, Some(schedule)) => shuttle::replay(body, schedule),
        ("random", None) => shuttle::check_random(body, iterations()),
        ("pct", None) => shuttle::check_pct(body, iterations(), PCT_DEPTH),
        ("dfs", None) => shuttle::check_dfs(body, Some(iterations())),
        (s, None) => panic!("unknown scheduler {s}"),
    }
    EXECUTIONS.load(Ordering::Relaxed)
}

#[test]
fn reference_scenarios_pass_shuttle() {
    for s in SCENARIOS {
        for sched in ["random", "pct", "dfs"] {
            let n = run_with(sched, s.run);
            eprintln!("shuttle: {:<22} {sched:<6} passed, {n} executions", s.name);
        }
    }
}

/// Runs one control with one scheduler (chosen by the parent); a no-op otherwise.
#[test]
fn child() {
    let Ok(name) = std::env::var(CONTROL_ENV) else {
        return;
    };
    let sched = std::env::var(CONFIG_ENV).unwrap_or_else(|_| "random".into());
    let c = control(&name).expect("control exists");
    install_reporting_hook(&EXECUTIONS);
    let n = run_with(&sched, c.run);
    eprintln!("ENGINE-PASSED executions={n}");
}

/// The schedule shuttle reported: in its panic message for a deadlock (our hook flattened
/// newlines to " | "), or printed to stderr by its own panic hook for a failing assertion.
fn failing_schedule(o: &Outcome) -> Option<String> {
    fn after_marker<'a>(mut parts: impl Iterator<Item = &'a str>) -> Option<String> {
        parts.find(|l| l.starts_with("failing schedule:"))?;
        parts.next()?; // opening quote
        let s: String = parts.take_while(|l| *l != "\"").collect();
        (!s.is_empty()).then_some(s)
    }
    after_marker(o.message.split(" | ")).or_else(|| after_marker(o.stderr.lines()))
}

#[test]
fn every_control_is_caught_by_shuttle_and_replays() {
    let mut missed = Vec::new();
    for c in CONTROLS {
        let mut caught_by = Vec::new();
        for sched in ["random", "pct", "dfs"] {
            let o = run_child("child", c.name, sched, Duration::from_secs(300));
            if o.caught {
                eprintln!(
                    "shuttle: {:<24} {sched:<6} caught after {:>5} executions: {}",
                    c.name, o.executions, o.message
                );
                let schedule = failing_schedule(&o)
                    .unwrap_or_else(|| panic!("{}: no schedule printed:\n{}", c.name, o.stderr));
                let r = run_child(
                    "child",
                    c.name,
                    &format!("replay:{sched}:{schedule}"),
                    Duration::from_secs(60),
                );
                assert!(
                    r.caught && r.executions == 1,
                    "{} ({sched}): schedule does not replay:\n{}",
                    c.name,
                    r.stderr
                );
                caught_by.push(sched);
            } else {
                eprintln!(
                    "shuttle: {:<24} {sched:<6} NOT caught in {} executions",
                    c.name, o.executions
                );
            }
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
