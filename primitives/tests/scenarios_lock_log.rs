//! The lock and log contract scenarios on real threads: the reference primitives (and other
//! correct implementations) pass every one, and each lock/log mutant is caught by its scenario.
//! Each run goes through a small watchdog (as `torture threads` does): a panic or a run still
//! going after the deadline is a catch; the runs a mutant needed are printed
//! (`-- --nocapture`), never asserted.
#![cfg(not(any(loom, shuttle)))]

use primitives::controls::{LogDefect, MutantLog, NarrowCountLock, UnbufferedLog};
use primitives::lock::{LockClass, Mode, Mutex, ReentrantLock};
use primitives::scenarios::catalogue::{
    control, lock_scenarios, log_scenarios, reference_log, run_named, scenario, Delivered,
    MakeLock, MakeLog,
};
use primitives::scenarios::{Checked, Params, Schedule};
use primitives::MessageLog;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

/// The new lock scenarios.
const LOCK: &[&str] = &[
    "lock-owner-after-exit",
    "lock-try-never-waits",
    "lock-nesting-overflow",
];
/// The new log scenarios.
const LOG: &[&str] = &[
    "log-exit-without-flush",
    "log-drop-without-flush",
    "log-overflow-announced",
    "log-delivered-at-outermost-release",
];
/// The mutants, each with the scenario that must catch it.
const MUTANTS: &[(&str, &str)] = &[
    ("lock-reused-owner-id", "lock-owner-after-exit"),
    ("lock-try-waits", "lock-try-never-waits"),
    ("lock-nesting-wraps", "lock-nesting-overflow"),
    ("log-lost-at-exit", "log-exit-without-flush"),
    ("log-lost-at-drop", "log-drop-without-flush"),
    ("log-overflow-silent", "log-overflow-announced"),
];

/// Runs of each scenario on each correct implementation.
const RUNS: usize = 10;
/// Most runs a mutant may need.
const MAX_RUNS: usize = 50;
/// A run of a correct implementation still going after this long is a hang (a failure).
const REFERENCE_DEADLINE: Duration = Duration::from_secs(30);
/// A mutant's run still going after this long is a hang (a catch). The correct runs of the
/// same scenarios take milliseconds.
const MUTANT_DEADLINE: Duration = Duration::from_secs(2);

fn params() -> Params {
    Params {
        threads: 4,
        rounds: 20,
        lockdep: Mode::Panic,
        schedule: Schedule::Real,
    }
}

/// How one watched run ended.
#[derive(Debug)]
enum Verdict<T> {
    Returned(T),
    Panicked(String),
    Hung,
}

/// Runs `f` on its own thread; a run not back by `deadline` is left behind as hung (threads
/// cannot be killed; a hung mutant's threads sleep until the test process exits).
fn watched<T: Send + 'static>(
    deadline: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Verdict<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        let _ = tx.send(r);
    });
    match rx.recv_timeout(deadline) {
        Ok(Ok(v)) => Verdict::Returned(v),
        Ok(Err(msg)) => Verdict::Panicked(msg),
        Err(_) => Verdict::Hung,
    }
}

/// Runs lock scenario `name` `RUNS` times on locks made by `make`; each must pass (or skip,
/// which is returned).
fn lock_passes<L: primitives::LockApi + 'static>(
    name: &'static str,
    what: &str,
    make: fn(&LockClass) -> L,
) -> Checked {
    let mut last = Checked::Yes;
    for run in 1..=RUNS {
        let v = watched(REFERENCE_DEADLINE, move || {
            let make: &MakeLock<L> = &make;
            run_named(&lock_scenarios::<L>(), name, &params(), make).expect("a lock scenario")
        });
        match v {
            Verdict::Returned(c) => last = c,
            v => panic!("{name} on {what}, run {run}: {v:?}"),
        }
    }
    eprintln!("{name:<36} on {what:<28} {RUNS} runs: {last:?}");
    last
}

/// As [`lock_passes`], for a log scenario and logs made by `make`.
fn log_passes<G: primitives::LogApi + 'static>(
    name: &'static str,
    what: &str,
    make: fn(Delivered, &LockClass) -> G,
) -> Checked {
    let mut last = Checked::Yes;
    for run in 1..=RUNS {
        let v = watched(REFERENCE_DEADLINE, move || {
            let make: &MakeLog<G> = &make;
            run_named(&log_scenarios::<G>(), name, &params(), make).expect("a log scenario")
        });
        match v {
            Verdict::Returned(c) => last = c,
            v => panic!("{name} on {what}, run {run}: {v:?}"),
        }
    }
    eprintln!("{name:<36} on {what:<28} {RUNS} runs: {last:?}");
    last
}

fn reference_lock(class: &LockClass) -> ReentrantLock<()> {
    ReentrantLock::tracked((), class)
}

fn plain_mutex(class: &LockClass) -> Mutex<()> {
    Mutex::tracked((), class)
}

#[test]
fn every_new_scenario_is_in_the_catalogue() {
    for name in LOCK.iter().chain(LOG) {
        assert!(scenario(name).is_some(), "{name} missing from SCENARIOS");
    }
    for (c, _) in MUTANTS {
        assert!(control(c).is_some(), "{c} missing from CONTROLS");
    }
}

#[test]
fn reference_lock_passes_the_lock_scenarios() {
    for name in LOCK {
        let c = lock_passes(name, "ReentrantLock", reference_lock);
        if *name == "lock-nesting-overflow" {
            assert!(
                matches!(c, Checked::Skipped(_)),
                "the reference declares no max_nesting: {c:?}"
            );
        } else {
            assert_eq!(c, Checked::Yes, "{name}");
        }
    }
}

#[test]
fn other_correct_locks_pass_the_lock_scenarios() {
    for name in LOCK {
        lock_passes(name, "Mutex (not reentrant)", plain_mutex);
        let c = lock_passes(name, "NarrowCountLock::refusing", NarrowCountLock::refusing);
        assert_eq!(
            c,
            Checked::Yes,
            "{name} on a lock declaring max_nesting 255"
        );
    }
}

#[test]
fn reference_log_passes_the_log_scenarios() {
    for name in LOG {
        let c = log_passes(name, "MessageLog", reference_log);
        assert_eq!(c, Checked::Yes, "{name}");
    }
}

#[test]
fn other_correct_logs_pass_the_log_scenarios() {
    for name in LOG {
        log_passes(name, "UnbufferedLog (no stage)", UnbufferedLog::new);
        log_passes(name, "MessageLog, stage of 8", |sink, class| {
            MessageLog::with_stage_capacity(sink, class, 8)
        });
    }
}

#[test]
fn catalogue_entries_pass() {
    for name in LOCK.iter().chain(LOG) {
        let e = scenario(name).expect("listed");
        for run in 1..=3 {
            let f = e.run;
            match watched(REFERENCE_DEADLINE, move || f(&params())) {
                Verdict::Returned(()) => {}
                v => panic!("SCENARIOS entry {name}, run {run}: {v:?}"),
            }
        }
    }
}

#[test]
fn every_mutant_is_caught_on_real_threads() {
    let mut missed = Vec::new();
    for (name, by) in MUTANTS {
        let c = control(name).expect("listed");
        let mut caught = None;
        for run in 1..=MAX_RUNS {
            let f = c.run;
            match watched(MUTANT_DEADLINE, move || f(&params())) {
                Verdict::Returned(()) => continue,
                Verdict::Panicked(msg) => {
                    assert!(
                        msg.contains(by),
                        "{name}: failed, but not in its scenario {by}: {msg}"
                    );
                    caught = Some((run, format!("panic: {msg}")));
                }
                Verdict::Hung => caught = Some((run, "hang".to_string())),
            }
            break;
        }
        match caught {
            Some((runs, how)) => eprintln!("{name:<22} caught by {by} after {runs} run(s): {how}"),
            None => {
                eprintln!("{name:<22} NOT caught in {MAX_RUNS} runs");
                missed.push(*name);
            }
        }
    }
    assert!(
        missed.is_empty(),
        "mutants not caught on real threads: {missed:?}"
    );
}

/// The mutant logs differ from a correct one only in their defect: with it out of reach (no
/// thread exit with messages staged, no drop with messages staged, no overflow), they pass.
#[test]
fn mutant_logs_pass_where_their_defect_is_out_of_reach() {
    fn lost_at_exit(sink: Delivered, class: &LockClass) -> MutantLog<Delivered> {
        MutantLog::new(sink, class, LogDefect::LostAtExit)
    }
    fn lost_at_drop(sink: Delivered, class: &LockClass) -> MutantLog<Delivered> {
        MutantLog::new(sink, class, LogDefect::LostAtDrop)
    }
    fn overflow_silent(sink: Delivered, class: &LockClass) -> MutantLog<Delivered> {
        MutantLog::new(sink, class, LogDefect::OverflowSilent)
    }
    log_passes(
        "log-delivered-at-outermost-release",
        "log-lost-at-exit",
        lost_at_exit,
    );
    log_passes("log-drop-without-flush", "log-lost-at-exit", lost_at_exit);
    log_passes("log-exit-without-flush", "log-lost-at-drop", lost_at_drop);
    log_passes("log-overflow-announced", "log-lost-at-drop", lost_at_drop);
    log_passes(
        "log-exit-without-flush",
        "log-overflow-silent",
        overflow_silent,
    );
    log_passes(
        "log-drop-without-flush",
        "log-overflow-silent",
        overflow_silent,
    );
}
