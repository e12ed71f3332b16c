//! The detection matrix's drivers for the correct third-party primitives (run by `torture
//! matrix`, ignored otherwise): every engine that can schedule them, on every scenario they
//! declare, one `MATRIX {json}` line per cell on stdout (subject `third-party/<name>/<scenario>`;
//! a catch would be a false positive).
//!
//! - `--cfg shuttle` / `--cfg loom`: the Mutex + Condvar MVar (built on the engine's own types);
//! - otherwise: real threads (`check::threads`) and the proptest models on crossbeam's
//!   `bounded(1)` and the Mutex + Condvar MVar.
//!
//! `MATRIX_SEEDS`, `MATRIX_ITERATIONS`, `MATRIX_SECS` as for `primitives/tests/matrix.rs`.

use primitives::check::{Budget, Report};
use std::time::Duration;
#[allow(unused_imports)]
use third_party_checks::{ChannelMVar, CondvarMVar};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn budgets() -> Vec<(u64, Budget)> {
    std::env::var("MATRIX_SEEDS")
        .unwrap_or_else(|_| "1".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .map(|seed| {
            (
                seed,
                Budget::default()
                    .iterations(env_or("MATRIX_ITERATIONS", 1000))
                    .time(Duration::from_secs(env_or("MATRIX_SECS", 30)))
                    .seed(seed),
            )
        })
        .collect()
}

fn print(name: &str, seed: u64, r: &Report) {
    for l in r.matrix_lines(&format!("third-party/{name}"), seed) {
        println!("{l}");
    }
}

#[cfg(shuttle)]
#[test]
#[ignore = "a detection-matrix driver: run by `torture matrix`"]
fn shuttle() {
    for (seed, b) in budgets() {
        print(
            "std Mutex+Condvar MVar",
            seed,
            &primitives::check::shuttle::mvar(CondvarMVar::new, b),
        );
    }
}

#[cfg(loom)]
#[test]
#[ignore = "a detection-matrix driver: run by `torture matrix`"]
fn loom() {
    let (_, b) = budgets().remove(0);
    print(
        "std Mutex+Condvar MVar",
        0,
        &primitives::check::loom::mvar(
            CondvarMVar::new,
            b,
            primitives::check::loom::preemption_bound_from_env(2),
        ),
    );
}

#[cfg(not(any(loom, shuttle)))]
#[test]
#[ignore = "a detection-matrix driver: run by `torture matrix`"]
fn threads_and_proptest() {
    use primitives::check::{model, threads};
    for (seed, b) in budgets() {
        // Real threads: a few dozen runs per scenario are its budget, not thousands.
        let t = b.iterations(b.iterations.min(50));
        print(
            "crossbeam bounded(1)",
            seed,
            &threads::mvar(ChannelMVar::new, t),
        );
        print(
            "std Mutex+Condvar MVar",
            seed,
            &threads::mvar(CondvarMVar::new, t),
        );
        let m = b.iterations(b.iterations.min(300));
        print(
            "crossbeam bounded(1)",
            seed,
            &model::mvar(ChannelMVar::new, m),
        );
        print(
            "std Mutex+Condvar MVar",
            seed,
            &model::mvar(CondvarMVar::new, m),
        );
    }
}
