//! Loom: exhaustive (preemption-bounded) exploration of every catalogue scenario against the
//! reference primitives, and of every negative control, which must be caught.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p primitives --release --test loom -- --nocapture`
#![cfg(loom)]

mod common;

use common::{install_reporting_hook, run_child, CONFIG_ENV, CONTROL_ENV};
use primitives::lock::Mode;
use primitives::scenarios::catalogue::{control, CONTROLS, SCENARIOS};
use primitives::scenarios::Params;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(
        std::env::var("LOOM_PREEMPTION_BOUND")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    b.max_branches = 10_000;
    b
}

fn explore(f: fn(&Params), params: Params) -> usize {
    EXECUTIONS.store(0, Ordering::Relaxed);
    builder().check(move || {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        f(&params)
    });
    EXECUTIONS.load(Ordering::Relaxed)
}

#[test]
fn reference_scenarios_pass_loom() {
    for s in SCENARIOS {
        let n = explore(s.run, Params::for_engine());
        eprintln!("loom: {:<22} passed, {n} executions", s.name);
    }
}

/// Runs one control (chosen by the parent through the environment); a no-op otherwise.
#[test]
fn child() {
    let Ok(name) = std::env::var(CONTROL_ENV) else {
        return;
    };
    let mode = match std::env::var(CONFIG_ENV).as_deref() {
        Ok("off") => Mode::Off,
        _ => Mode::Panic,
    };
    let c = control(&name).expect("control exists");
    install_reporting_hook(&EXECUTIONS);
    let n = explore(c.run, Params::for_engine().with_lockdep(mode));
    eprintln!("ENGINE-PASSED executions={n}");
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
