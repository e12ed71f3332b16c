//! The thread scenario catalogue on the robust homes: every catalogue scenario that exercises an
//! MVar or a lock runs on real threads on the robust MVar ([`WordMVar`], a segment of `u64`
//! values) and the robust reentrant lock ([`SharedReentrantLock`]), each in a fresh segment with
//! a unique name that is gone again afterwards.
#![cfg(not(any(loom, shuttle)))]

use primitives::lock::SharedReentrantLock;
use primitives::mvar::WordMVar;
use primitives::scenarios::catalogue::{run_on_lock, run_on_mvar, SCENARIOS};
use primitives::scenarios::Params;
use primitives::shm::ShmName;
use std::path::Path;
use std::sync::Mutex;

/// Catalogue scenarios that exercise neither an MVar nor a lock, and why.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    ("log-inside-sink-lock", "exercises a log only"),
    ("log-exit-without-flush", "exercises a log only"),
    ("log-drop-without-flush", "exercises a log only"),
    ("log-overflow-announced", "exercises a log only"),
    ("log-delivered-at-outermost-release", "exercises a log only"),
    (
        "exch",
        "exercises the ordered multi-lock over in-process mutexes",
    ),
];

/// Runs per scenario (each with fresh segments).
const RUNS: usize = 5;

/// Names of the segments this test created, to check they are all unlinked at the end.
static MADE: Mutex<Vec<ShmName>> = Mutex::new(Vec::new());

fn fresh(label: &str) -> ShmName {
    let name = ShmName::unique(label);
    MADE.lock().unwrap().push(name.clone());
    name
}

fn robust_mvar() -> WordMVar {
    WordMVar::create(&fresh("cat-mvar")).expect("create a robust MVar segment")
}

fn robust_lock(class: &primitives::lock::LockClass) -> SharedReentrantLock {
    SharedReentrantLock::create(&fresh("cat-lock"))
        .expect("create a robust lock segment")
        .tracked(class)
}

fn segment_exists(name: &ShmName) -> bool {
    Path::new("/dev/shm").join(&name.as_str()[1..]).exists()
}

#[test]
fn catalogue_runs_on_the_robust_mvar_and_lock() {
    let p = Params::for_engine();
    let mut ran = Vec::new();
    for s in SCENARIOS {
        if NOT_APPLICABLE.iter().any(|(n, _)| *n == s.name) {
            continue;
        }
        let mut applicable = false;
        for _ in 0..RUNS {
            let on_mvar = run_on_mvar(s.name, &p, &robust_mvar);
            let on_lock = run_on_lock(s.name, &p, &robust_lock);
            applicable = on_mvar || on_lock;
        }
        assert!(
            applicable,
            "catalogue scenario {:?} runs on neither the robust MVar nor the robust lock: make it \
             run there (run_on_mvar / run_on_lock) or list it in NOT_APPLICABLE with a reason",
            s.name
        );
        ran.push(s.name);
    }
    for (name, _) in NOT_APPLICABLE {
        assert!(
            SCENARIOS.iter().any(|s| s.name == *name),
            "NOT_APPLICABLE names {name:?}, which is not in the catalogue"
        );
    }
    assert!(ran.len() >= 7, "only {ran:?} ran");
    let made = MADE.lock().unwrap();
    assert!(!made.is_empty());
    let left: Vec<_> = made.iter().filter(|n| segment_exists(n)).collect();
    assert!(left.is_empty(), "segments left behind: {left:?}");
}

/// The robust homes are not a rubber stamp: the catalogue's inverted ODB/SYSMSG order on two
/// robust locks is caught by the validator (in panic mode, before it can deadlock), as on the
/// reference locks.
#[test]
fn inverted_order_on_robust_locks_is_caught() {
    use primitives::lock::{Mode, Validator};
    use primitives::scenarios::odb_sysmsg;
    use std::sync::Arc;
    // Its own names, not in `MADE`: the catalogue test, running beside it, checks that *its*
    // segments are gone while these may still be in use.
    let names = [ShmName::unique("inv-lock"), ShmName::unique("inv-lock")];
    let (a, b) = (names[0].clone(), names[1].clone());
    let run = std::thread::spawn(move || {
        let v = Validator::new(Mode::Panic);
        let lock = |n: &ShmName, c| {
            SharedReentrantLock::create(n)
                .expect("create a robust lock segment")
                .tracked(&v.class(c, true))
        };
        let odb = Arc::new(lock(&a, "odb"));
        let sysmsg = Arc::new(lock(&b, "sysmsg"));
        odb_sysmsg(odb, sysmsg, true);
    })
    .join();
    // A panicking scenario may leave its segments linked: remove them.
    for n in &names {
        let _ = nix::sys::mman::shm_unlink(n.as_str());
    }
    let err = run.expect_err("an ODB/SYSMSG inversion on robust locks went unreported");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("lock-order inversion") || msg.contains("panicked"),
        "unexpected failure: {msg}"
    );
}
