//! `torture churn` (seed 001) with real client processes: the reference passes under kills and
//! freezes with every message delivered and nothing stale; each control of the scenario is
//! caught with its finding kind; every run leaves no ledger folder, segment or process.

mod common;

use common::{live_processes_mentioning, segments_of, torture_env, TempDir};
use std::path::Path;
use std::time::Duration;

/// Runs `torture churn ARGS --json ...` in a fresh TMPDIR; checks that it left nothing behind;
/// returns the exit code, the output and the JSON report.
fn churn(label: &str, args: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let tmp = TempDir::new(label);
    let json = Path::new(tmp.path()).join("report.json");
    let json_arg = json.to_str().expect("utf-8").to_string();
    let mut a = vec!["churn", "--json", &json_arg];
    a.extend_from_slice(args);
    let r = torture_env(&a, &[("TMPDIR", tmp.path())], Duration::from_secs(60));
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{e}\n{}", r.all()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    std::fs::remove_file(&json).expect("remove the report");
    assert_eq!(tmp.leftovers(), Vec::<String>::new(), "{}", r.all());
    let pid = v["figures"]["runner_pid"].as_u64().expect("runner pid") as u32;
    assert_eq!(segments_of(pid), Vec::<String>::new(), "{}", r.all());
    assert_eq!(live_processes_mentioning(tmp.path()), Vec::<u32>::new());
    (r.code, r.all(), v)
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
    assert_eq!(figure(&v, "messages_delivered"), logged, "{out}");
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

fn caught(control: &str, kind: &str, words: &str) {
    let (code, out, v) = churn(
        control,
        &["--duration", "10s", "--seed", "2", "--control", control],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(v["verdict"], "caught", "{out}");
    let f = &v["findings"][0];
    assert_eq!(f["kind"], kind, "{out}");
    let text = f["text"].as_str().unwrap_or("");
    assert!(text.contains(words), "{text}");
}

#[test]
fn a_watchdog_deleting_by_slot_uses_a_stale_handle() {
    caught(
        "churn-stale-handle",
        "stale-handle",
        "acting on a handle of serial",
    );
}

#[test]
fn a_watchdog_taking_the_database_first_is_a_lock_order_inversion() {
    caught(
        "churn-abba",
        "lock-order",
        "database -> client table -> database",
    );
}

#[test]
fn messages_staged_in_private_memory_are_lost_with_their_client() {
    caught("ring-private-staging", "log", "never delivered");
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
