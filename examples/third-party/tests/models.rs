//! The model engines on the third-party primitive they can schedule: the Mutex + Condvar MVar,
//! built on shuttle's (or loom's) own `Mutex`/`Condvar` under `--cfg shuttle` (`--cfg loom`).
//! crossbeam's channel and parking_lot's mutex block in real futexes that neither engine
//! controls, so they are checked by the real-threads engine and the proptest models only.
//!
//! `RUSTFLAGS="--cfg shuttle" cargo test -p third-party-checks --release --test models`
//! `RUSTFLAGS="--cfg loom" cargo test -p third-party-checks --release --test models`
#![cfg(any(loom, shuttle))]

use primitives::check::Budget;
use std::time::Duration;
use third_party_checks::{CondvarMVar, ImmediateLog};

#[cfg(shuttle)]
#[test]
fn condvar_mvar_under_shuttle() {
    let iterations = std::env::var("SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let r = primitives::check::shuttle::mvar(
        CondvarMVar::new,
        Budget::default()
            .iterations(iterations)
            .time(Duration::from_secs(60)),
    );
    eprintln!("{r}");
    r.assert_passed();
    let r = primitives::check::shuttle::log(
        |sink, _| ImmediateLog::new(sink),
        Budget::default()
            .iterations(iterations)
            .time(Duration::from_secs(60)),
    );
    eprintln!("{r}");
    r.assert_passed();
}

#[cfg(loom)]
#[test]
fn condvar_mvar_under_loom() {
    let r = primitives::check::loom::mvar(
        CondvarMVar::new,
        Budget::default()
            .iterations(200_000)
            .time(Duration::from_secs(120)),
        primitives::check::loom::preemption_bound_from_env(2),
    );
    eprintln!("{r}");
    r.assert_passed();
    let r = primitives::check::loom::log(
        |sink, _| ImmediateLog::new(sink),
        Budget::default()
            .iterations(200_000)
            .time(Duration::from_secs(120)),
        primitives::check::loom::preemption_bound_from_env(2),
    );
    eprintln!("{r}");
    r.assert_passed();
}
