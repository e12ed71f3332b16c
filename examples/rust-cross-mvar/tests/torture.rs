//! This binary is the torture program with its own implementations registered: `mvar --impl
//! shared` (the suite's robust SharedMVar through the public plug-in traits) passes seed 000's
//! master/slaves, also while workers are killed; an unknown `--impl` is one line and exit 2.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rust-cross-mvar"))
        .args(args)
        .output()
        .expect("run the example binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn shared_passes_through_the_public_traits() {
    let (code, out) = run(&["mvar", "--impl", "shared", "--procs", "20"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("implementation \"shared\""), "{out}");
    assert!(out.contains("PASS"), "{out}");
}

#[test]
fn shared_is_robust_to_kill_9() {
    let (code, out) = run(&[
        "mvar",
        "--impl",
        "shared",
        "--procs",
        "10",
        "--rounds",
        "20000",
        "--kill-rate",
        "20",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("not robust"), "{out}");
    // The run must really have been shot at: "…; N freezes, K kills)" with K > 0.
    let kills: u64 = out
        .split(" kills)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|k| k.parse().ok())
        .unwrap_or(0);
    assert!(kills > 0, "no kill landed: {out}");
    eprintln!("{kills} kills, PASS");
}

#[test]
fn an_unknown_implementation_is_one_line_and_exit_2() {
    let (code, out) = run(&["mvar", "--impl", "nope"]);
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("registers: shared"), "{out}");
}

/// `raw-sync` (raw_sync's process-shared Mutex and Events, not robust, no HOLDER) passes
/// without faults; under kills every run must end as a pass or the classified hang — never a
/// crash of the runner. (Seen: the classified hang in 5 of 5 runs, a worker killed inside
/// raw_sync's own Event code.)
#[test]
fn raw_sync_passes_and_a_hang_after_kills_is_classified() {
    let (code, out) = run(&["mvar", "--impl", "raw-sync", "--procs", "20"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&[
        "mvar",
        "--impl",
        "raw-sync",
        "--procs",
        "20",
        "--rounds",
        "3000",
        "--kill-rate",
        "20",
    ]);
    assert!(matches!(code, Some(0 | 1)), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    if code == Some(1) {
        assert!(
            out.contains("HANG after a kill; the implementation does not name its lock holder"),
            "{out}"
        );
    }
}

/// The suite's robust `SharedReentrantLock` through the public `CrossLock` trait passes
/// `torture locks` while workers are killed (a dead holder's lock is taken over).
#[test]
fn the_shared_lock_is_robust_to_kill_9() {
    let (code, out) = run(&[
        "locks",
        "--impl",
        "shared",
        "--procs",
        "6",
        "--duration",
        "2s",
        "--kill-rate",
        "20",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("implementation \"shared\""), "{out}");
    assert!(out.contains("workers killed and replaced"), "{out}");
}

/// raw_sync's `Mutex` (not robust, no HOLDER, not reentrant) passes `torture locks` without
/// faults (re-entry listed as not checked); after kills a hang is the classified one that says
/// why torture cannot name a dead holder — never a crash of the runner.
#[test]
fn the_raw_sync_lock_passes_and_a_hang_after_kills_is_classified() {
    let (code, out) = run(&[
        "locks",
        "--impl",
        "raw-sync",
        "--procs",
        "6",
        "--duration",
        "2s",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not checked: re-entry"), "{out}");
    let (code, out) = run(&[
        "locks",
        "--impl",
        "raw-sync",
        "--procs",
        "8",
        "--kill-rate",
        "20",
        "--seed",
        "2",
    ]);
    assert!(matches!(code, Some(0 | 1)), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    if code == Some(1) {
        assert!(
            out.contains(
                "HANG after a kill; implementation \"raw-sync\" does not name its lock holders"
            ),
            "{out}"
        );
    }
}

/// The churn (client processes registering, crashing inside both locks, killed) on the suite's
/// lock through the public trait: everything delivered, nothing stale.
#[test]
fn the_churn_passes_on_the_shared_lock() {
    let (code, out) = run(&["churn", "--impl", "shared", "--seed", "3"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("locks: implementation \"shared\""), "{out}");
}
