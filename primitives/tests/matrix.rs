//! The detection matrix's model-engine drivers, run by `torture matrix` (ignored otherwise):
//! each prints one `MATRIX {json}` line per cell on stdout — an engine configuration on a
//! subject (a negative control, or a reference scenario, which must never be caught) with one
//! seed: caught or not, executions and seconds until then (or spent without).
//!
//! - `--cfg shuttle`: `shuttle` — every catalogue control and every reference scenario under
//!   the random, PCT, uniform-random-walk and DFS schedulers;
//! - `--cfg loom`: `loom` — every control (each in a child copy of this binary, so that a
//!   failure or a deadlock is a verdict), and the reference scenarios through `check::loom`;
//! - otherwise: `proptest` — the sequential state machines of `check::model` on the reference
//!   types and on the mutants that have a type of their own.
//!
//! Environment: `MATRIX_SEEDS` (comma-separated, default `1`), `MATRIX_ITERATIONS` (executions
//! per cell, default 1000; loom: `MATRIX_LOOM_ITERATIONS`, default 100,000), `MATRIX_SECS` (wall-clock cap per cell, default 30),
//! `MATRIX_REFERENCES=0` (controls only), `LOOM_PREEMPTION_BOUND` (default 3).

mod common;

use std::time::Duration;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[cfg_attr(loom, allow(dead_code))] // loom is exhaustive: one run, no seed
fn seeds() -> Vec<u64> {
    std::env::var("MATRIX_SEEDS")
        .unwrap_or_else(|_| "1".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

#[cfg_attr(loom, allow(dead_code))] // loom has its own budget
fn iterations() -> usize {
    env_or("MATRIX_ITERATIONS", 1000)
}

#[cfg(loom)]
fn loom_iterations() -> usize {
    env_or("MATRIX_LOOM_ITERATIONS", 100_000)
}

fn cap() -> Duration {
    Duration::from_secs(env_or("MATRIX_SECS", 30))
}

fn references() -> bool {
    std::env::var("MATRIX_REFERENCES").as_deref() != Ok("0")
}

/// Prints one cell.
fn cell(engine: &str, subject: &str, seed: u64, caught: bool, executions: u64, seconds: f64) {
    println!(
        "{}",
        primitives::check::matrix_line(engine, subject, seed, caught, executions, seconds)
    );
}

/// The cells of an engine's report on a reference (a finding is a false positive).
#[cfg(not(loom))]
fn report_cells(seed: u64, r: &primitives::check::Report) {
    for l in r.matrix_lines("reference", seed) {
        println!("{l}");
    }
}

#[cfg(shuttle)]
mod shuttle_driver {
    use super::*;
    use primitives::check::shuttle as check;
    use primitives::check::Budget;
    use primitives::lock::{LockClass, ReentrantLock};
    use primitives::scenarios::catalogue::{reference_log, CONTROLS};
    use primitives::scenarios::{Params, Schedule};
    use primitives::sync::engine::{self, Scheduler};
    use primitives::MVar;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    #[ignore = "a detection-matrix driver: run by `torture matrix`"]
    fn shuttle() {
        for seed in seeds() {
            for c in CONTROLS {
                for (label, scheduler, schedule) in [
                    ("random", Scheduler::Random, Schedule::Random),
                    ("pct", Scheduler::Pct { depth: 3 }, Schedule::Random),
                    ("urw", Scheduler::Urw, Schedule::Exhaustive),
                    ("dfs", Scheduler::Dfs, Schedule::Exhaustive),
                ] {
                    let params = Params::for_engine().with_schedule(schedule);
                    let run = c.run;
                    let start = Instant::now();
                    let ended = engine::shuttle(
                        &scheduler,
                        iterations(),
                        cap(),
                        seed,
                        Arc::new(move || {
                            run(&params);
                            None
                        }),
                    );
                    cell(
                        &format!("shuttle-{label}"),
                        c.name,
                        seed,
                        ended.failure.is_some(),
                        ended.executions,
                        start.elapsed().as_secs_f64(),
                    );
                }
            }
            if references() {
                let b = Budget::default()
                    .iterations(iterations())
                    .time(cap())
                    .seed(seed);
                report_cells(seed, &check::mvar(MVar::<u64>::new_empty, b));
                report_cells(
                    seed,
                    &check::lock(|c: &LockClass| ReentrantLock::tracked((), c), b),
                );
                report_cells(seed, &check::log(reference_log, b));
            }
        }
    }
}

#[cfg(loom)]
mod loom_driver {
    use super::*;
    use common::run_child;
    use primitives::check::loom as check;
    use primitives::check::{Budget, Report};
    use primitives::lock::{LockClass, ReentrantLock};
    use primitives::scenarios::catalogue::{reference_log, CONTROLS};
    use primitives::MVar;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);

    fn bound() -> usize {
        check::preemption_bound_from_env(3)
    }

    /// Runs one control (chosen by the parent through the environment); a no-op otherwise.
    #[test]
    fn matrix_loom_child() {
        common::loom_child(&EXECUTIONS, bound(), Some((loom_iterations(), cap())));
    }

    fn reference_cells(r: &Report) {
        for l in r.matrix_lines("reference", 0) {
            println!("{l}");
        }
    }

    #[test]
    #[ignore = "a detection-matrix driver: run by `torture matrix`"]
    fn loom() {
        // Exhaustive within the bound: one run, seed 0.
        for c in CONTROLS {
            let start = Instant::now();
            // The cap is the child's; a child past it (and a grace) is a hang of the child.
            let o = run_child("loom_driver::matrix_loom_child", c.name, "panic", cap() * 2);
            cell(
                "loom",
                c.name,
                0,
                o.caught,
                o.executions as u64,
                start.elapsed().as_secs_f64(),
            );
        }
        if references() {
            let b = Budget::default().iterations(loom_iterations()).time(cap());
            reference_cells(&check::mvar(MVar::<u64>::new_empty, b, bound()));
            reference_cells(&check::lock(
                |c: &LockClass| ReentrantLock::tracked((), c),
                b,
                bound(),
            ));
            reference_cells(&check::log(reference_log, b, bound()));
        }
    }
}

#[cfg(all(feature = "engines", not(any(loom, shuttle))))]
mod proptest_driver {
    use super::*;
    use primitives::check::{model, Budget, Report};
    use primitives::controls::{
        LifoWaiters, LogDefect, MutantLog, NarrowCountLock, ReadTakePut, RecycledOwnerLock,
        SwapTakePut, TimedOutPutStores, TryWaitsLock,
    };
    use primitives::lock::{LockClass, ReentrantLock};
    use primitives::scenarios::catalogue::reference_log;
    use primitives::MVar;

    /// A mutant's report: caught at its first finding.
    fn control_cell(subject: &str, seed: u64, r: &Report) {
        use primitives::check::Outcome;
        let mut executions = 0;
        let mut seconds = 0.0;
        for row in &r.rows {
            seconds += row.elapsed.as_secs_f64();
            match &row.outcome {
                Outcome::Failed { executions: n, .. } | Outcome::Hang { executions: n, .. } => {
                    cell("proptest", subject, seed, true, executions + n, seconds);
                    return;
                }
                Outcome::Passed { executions: n } => executions += n,
                Outcome::Skipped(_) => {}
            }
        }
        cell("proptest", subject, seed, false, executions, seconds);
    }

    #[test]
    #[ignore = "a detection-matrix driver: run by `torture matrix`"]
    fn proptest() {
        for seed in seeds() {
            let b = Budget::default()
                .iterations(iterations().min(300))
                .time(cap())
                .seed(seed);
            control_cell(
                "mvar-read-take-put",
                seed,
                &model::mvar(ReadTakePut::default, b),
            );
            control_cell(
                "mvar-swap-take-put",
                seed,
                &model::mvar(SwapTakePut::default, b),
            );
            control_cell(
                "mvar-timeout-takes-effect",
                seed,
                &model::mvar(TimedOutPutStores::default, b),
            );
            control_cell(
                "mvar-lifo-waiters",
                seed,
                &model::mvar(MVar::<u64, LifoWaiters>::with_policy_empty, b),
            );
            control_cell(
                "lock-reused-owner-id",
                seed,
                &model::lock(RecycledOwnerLock::new, b),
            );
            control_cell("lock-try-waits", seed, &model::lock(TryWaitsLock::new, b));
            control_cell(
                "lock-nesting-wraps",
                seed,
                &model::lock(NarrowCountLock::wrapping, b),
            );
            for defect in [
                LogDefect::LostAtExit,
                LogDefect::LostAtDrop,
                LogDefect::OverflowSilent,
            ] {
                control_cell(
                    defect.control(),
                    seed,
                    &model::log(move |s, c| MutantLog::new(s, c, defect), b),
                );
            }
            if references() {
                report_cells(seed, &model::mvar(MVar::<u64>::new_empty, b));
                report_cells(
                    seed,
                    &model::lock(|c: &LockClass| ReentrantLock::tracked((), c), b),
                );
                report_cells(seed, &model::log(reference_log, b));
            }
        }
    }
}
