//! `torture churn` (seed 001) with real client processes: the reference passes under kills and
//! freezes with every message delivered and nothing stale; each control of the scenario is
//! caught with its finding kind; every run leaves no ledger folder, segment or process.

mod common;

use common::torture_env;
use std::time::Duration;

/// Runs `torture churn ARGS` (see [`common::run_clean`]): the exit code, the output and the
/// JSON report.
fn churn(label: &str, args: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let r = common::run_clean("churn", label, args, Duration::from_secs(60));
    (r.code, r.out, r.report)
}

fn figure(v: &serde_json::Value, name: &str) -> u64 {
    v["figures"][name].as_u64().unwrap_or(0)
}

#[test]
fn the_reference_loses_nothing_under_kills_crashes_and_freezes() {
    let (code, out, v) = churn(
        "reference",
        &[
            "--procs",
            "12",
            "--duration",
            "2s",
            "--kill-rate",
            "20",
            "--crashes",
            "20",
            "--stop-rate",
            "10",
            "--seed",
            "1",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(v["verdict"], "pass", "{out}");
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(0), "{out}");
    // The faults happened, and the run did real work through them.
    assert!(figure(&v, "kills") > 0, "{out}");
    assert!(figure(&v, "crashed") > 0, "{out}");
    assert!(figure(&v, "stops") > 0, "{out}");
    assert!(figure(&v, "removed_by_watchdogs") > 0, "{out}");
    let logged = figure(&v, "messages_logged");
    assert!(logged > 100, "{out}");
    // Every message whose log returned is delivered (the delivery check says exactly once);
    // one whose log was cut by a kill may be delivered too.
    let delivered = figure(&v, "messages_delivered");
    assert!(delivered >= logged, "{out}");
    assert!(delivered <= logged + figure(&v, "messages_cut"), "{out}");
    assert!(
        v["figures"]["watchdog"]["ticks"].as_u64().unwrap_or(0) > 0,
        "{out}"
    );
    let replay = v["replay"].as_str().unwrap_or("");
    assert!(
        replay.contains("churn --procs 12 --duration 2s --kill-rate 20 --crashes 20"),
        "{replay}"
    );
    assert!(
        replay.contains("--stop-rate 10") && replay.ends_with("--seed 1"),
        "{replay}"
    );
}

fn caught(control: &str, kind: &str, words: &[&str]) {
    let (code, out, v) = churn(
        control,
        &["--duration", "10s", "--seed", "2", "--control", control],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(v["verdict"], "caught", "{out}");
    let f = &v["findings"][0];
    assert_eq!(f["kind"], kind, "{out}");
    let text = f["text"].as_str().unwrap_or("");
    assert!(words.iter().any(|w| text.contains(w)), "{text}");
}

#[test]
fn a_watchdog_deleting_by_slot_uses_a_stale_handle() {
    caught(
        "churn-stale-handle",
        "stale-handle",
        &["acting on a handle of serial"],
    );
}

#[test]
fn a_watchdog_taking_the_database_first_is_a_lock_order_inversion() {
    // Whichever order the validator saw first closes the cycle.
    caught(
        "churn-abba",
        "lock-order",
        &[
            "database -> client table -> database",
            "client table -> database -> client table",
        ],
    );
}

#[test]
fn messages_staged_in_private_memory_are_lost_with_their_client() {
    caught("ring-private-staging", "log", &["never delivered"]);
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    for args in [
        &["churn", "--procs", "1"][..],
        &["churn", "--kill-rate", "-1"],
        &["churn", "--kill-rate", "NaN"],
        &["churn", "--crashes", "101"],
        &["churn", "--control", "nope"],
    ] {
        let r = torture_env(args, &[], Duration::from_secs(20));
        assert_eq!(r.code, Some(2), "{args:?}\n{}", r.all());
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}\n{}", r.all());
    }
}
