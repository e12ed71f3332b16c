//! The shared MVar's crash-robust protocol under the model checkers, with participants that
//! **die**: a victim thread is armed to stop forever at its `k`-th crash point (every step of an
//! operation: after taking the lock, between the two halves of a payload copy, before and after
//! the commit store, before the wake), for every `k`, and the checker explores the interleavings
//! of the survivors around the death. After each execution: no survivor waits forever (loom and
//! shuttle report a deadlock otherwise), no value is invented, duplicated or lost, and a value
//! whose put returned is taken exactly once — using the box's commit count to tell whether the
//! victim's operation committed before it died.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p primitives --release --test shm_model` (also
//! `--cfg shuttle`); `ci/loom.sh` and `ci/shuttle.sh` do.
#![cfg(any(loom, shuttle))]

mod common;

use common::{install_reporting_hook, run_child, CONTROL_ENV};
use primitives::mvar::robust::model::ModelMVar;
use primitives::mvar::{Flavor, SharedMVarError};
use primitives::shm::{arm_death, disarm_death, Token};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[cfg(loom)]
use loom::{sync::Arc, thread};
#[cfg(shuttle)]
use shuttle::{sync::Arc, thread};

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
/// Set when the victim died in some execution (so larger `k` are still worth exploring).
static DIED: AtomicBool = AtomicBool::new(false);

/// Explores `f` with the active engine; returns the number of executions.
fn explore(f: impl Fn() + Send + Sync + 'static) -> usize {
    EXECUTIONS.store(0, Ordering::Relaxed);
    let body = move || {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        primitives::shm::TRACE.lock().unwrap().clear();
        f()
    };
    #[cfg(loom)]
    {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(
            std::env::var("LOOM_PREEMPTION_BOUND")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1),
        );
        b.max_branches = 20_000;
        b.check(body);
    }
    #[cfg(shuttle)]
    {
        let body = std::sync::Arc::new(body);
        let b2 = body.clone();
        shuttle::check_random(move || body(), 300);
        shuttle::check_pct(move || b2(), 300, 3);
    }
    EXECUTIONS.load(Ordering::Relaxed)
}

/// Runs `op` as participant `me`, dying at crash point `die_at`; `None` if it died.
fn victim<R>(
    m: &ModelMVar,
    me: Token,
    die_at: u32,
    op: impl FnOnce() -> Result<R, SharedMVarError>,
) -> Option<R> {
    arm_death(die_at);
    let r = op();
    disarm_death();
    match r {
        Ok(v) => Some(v),
        Err(SharedMVarError::Died) => {
            DIED.store(true, Ordering::Relaxed);
            m.announce_death(me);
            None
        }
        Err(e) => panic!("victim: {e}"),
    }
}

/// Prints the model trace before a failure when `SHM_MODEL_TRACE` is set.
fn trace_on_failure() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var("SHM_MODEL_TRACE").is_ok() {
            if let Ok(t) = primitives::shm::TRACE.try_lock() {
                for line in t.iter() {
                    eprintln!("  trace: {line}");
                }
            }
        }
        default(info)
    }));
}

/// The victim puts 2 while P puts 1 and T takes one value.
fn victim_put(k: u32, flavor: Flavor) {
    let m = Arc::new(ModelMVar::new(4, flavor));
    let (m1, m2, m3) = (m.clone(), m.clone(), m.clone());
    let p = thread::spawn(move || {
        let me = m1.join().unwrap();
        m1.put(me, 1, None, false).unwrap();
    });
    let v = thread::spawn(move || {
        let me = m2.join().unwrap();
        victim(&m2, me, k, || m2.put(me, 2, None, false)).is_some()
    });
    // The main thread is the taker T (one thread fewer to interleave).
    let got = {
        let me = m3.join().unwrap();
        m3.take(me, None, false).unwrap().value
    };
    p.join().unwrap();
    let returned = v.join().unwrap();
    // Commits so far: P's put, T's take, and the victim's put if it committed.
    let victim_committed = m.generation() - 2;
    assert!(victim_committed <= 1, "generation {}", m.generation());
    assert!(
        !returned || victim_committed == 1,
        "a put that returned committed"
    );
    let me = m.join().unwrap();
    let mut values = vec![got];
    match m.take(me, None, true) {
        Ok(o) => values.push(o.value),
        Err(SharedMVarError::Empty) => {}
        Err(e) => panic!("final take: {e}"),
    }
    values.sort_unstable();
    let expected: Vec<u64> = if victim_committed == 1 {
        vec![1, 2]
    } else {
        vec![1]
    };
    assert_eq!(
        values, expected,
        "values conserved (victim committed: {victim_committed})"
    );
}

/// The box holds 7; the victim takes while P puts 8 and T takes.
fn victim_take(k: u32, flavor: Flavor) {
    let m = Arc::new(ModelMVar::new(4, flavor));
    let me0 = m.join().unwrap();
    m.put(me0, 7, None, false).unwrap();
    let (m1, m2, m3) = (m.clone(), m.clone(), m.clone());
    let p = thread::spawn(move || {
        let me = m1.join().unwrap();
        m1.put(me, 8, None, false).unwrap();
    });
    let v = thread::spawn(move || {
        let me = m2.join().unwrap();
        victim(&m2, me, k, || m2.take(me, None, false).map(|o| o.value))
    });
    let got = {
        let me = m3.join().unwrap();
        m3.take(me, None, false).unwrap().value
    };
    p.join().unwrap();
    let victim_got = v.join().unwrap();
    // Commits: two puts, T's take, and the victim's take if it committed.
    let victim_committed = m.generation() - 3;
    assert!(victim_committed <= 1, "generation {}", m.generation());
    assert!(victim_got.is_none() || victim_committed == 1);
    let mut values = vec![got];
    values.extend(victim_got);
    if let Ok(o) = m.take(me0, None, true) {
        values.push(o.value);
    }
    values.sort_unstable();
    values.dedup();
    // Every value is accounted for once, except one the victim took and died with.
    let unaccounted = if victim_committed == 1 && victim_got.is_none() {
        1
    } else {
        0
    };
    assert_eq!(values.len() + unaccounted, 2, "values {values:?}");
    assert!(
        values.iter().all(|v| *v == 7 || *v == 8),
        "no invented value: {values:?}"
    );
}

/// Explores `scenario` for every crash point of the victim's operation.
fn every_death(name: &str, scenario: fn(u32, Flavor), flavor: Flavor) {
    trace_on_failure();
    for k in 0.. {
        DIED.store(false, Ordering::Relaxed);
        let n = explore(move || scenario(k, flavor));
        if !DIED.load(Ordering::Relaxed) {
            eprintln!(
                "{name}: {n} executions without a death (the operation has at most {k} crash \
                 points): all invariants held; every crash point explored"
            );
            break;
        }
        eprintln!("{name}: victim dies at crash point {k}: {n} executions, all invariants held");
    }
}

#[test]
fn a_putter_killed_at_any_step_loses_nothing_and_wedges_no_one() {
    every_death("victim-put", victim_put, Flavor::REFERENCE);
}

#[test]
fn a_taker_killed_at_any_step_loses_nothing_and_wedges_no_one() {
    every_death("victim-take", victim_take, Flavor::REFERENCE);
}

/// Child process: one control (the parent picks it through the environment).
#[test]
fn child() {
    let Ok(name) = std::env::var(CONTROL_ENV) else {
        return;
    };
    let flavor = match name.as_str() {
        "no-recovery" => Flavor {
            recover: false,
            ..Flavor::REFERENCE
        },
        other => panic!("unknown control {other}"),
    };
    install_reporting_hook(&EXECUTIONS);
    // The death must be caught: arm it at the first crash point (inside the lock).
    let n = explore(move || victim_put(0, flavor));
    eprintln!("ENGINE-PASSED executions={n}");
}

#[test]
fn the_no_recovery_control_is_caught() {
    let out = run_child("child", "no-recovery", "", Duration::from_secs(120));
    eprintln!(
        "control no-recovery: caught={} after {} executions: {}",
        out.caught, out.executions, out.message
    );
    assert!(
        out.caught,
        "a dead owner that is never taken over must wedge: {}",
        out.stderr
    );
}
