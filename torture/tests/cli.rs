//! The `torture` binary, run as a real child process: exit codes, reports, usage errors.
//!
//! Every child is reaped: it is killed if it outlives its time limit (and when a test panics,
//! by the guard's `Drop`).

mod common;

use common::torture;
use std::time::Duration;

#[test]
fn reference_run_passes_and_writes_json() {
    let json = std::env::temp_dir().join(format!("torture-cli-test-{}.json", std::process::id()));
    let json_arg = json.to_str().expect("utf-8 temp path");
    let run = torture(
        &["--duration", "1500ms", "--seed", "7", "--json", json_arg],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(
        run.stdout.contains("seed 7"),
        "the seed is printed\n{}",
        run.all()
    );
    assert!(run.stdout.contains("no failure"), "{}", run.all());
    for e in primitives::scenarios::catalogue::SCENARIOS {
        assert!(
            run.stdout.contains(e.name),
            "summary names {}\n{}",
            e.name,
            run.all()
        );
    }
    let text = std::fs::read_to_string(&json).expect("JSON report written");
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["seed"], 7);
    assert!(
        v["total_runs"].as_u64().unwrap_or(0)
            >= primitives::scenarios::catalogue::SCENARIOS.len() as u64
    );
    assert!(v["failure"].is_null());
}

#[test]
fn control_midas_nested_lock_is_caught() {
    // Lockdep cannot see this one: only the scenario's mutual-exclusion check does, when two
    // threads really overlap. With 16 threads it is caught in ~1s (4 threads: ~5s, sometimes more than 10s).
    let run = torture(
        &[
            "--control",
            "midas-nested-lock",
            "--threads",
            "16",
            "--duration",
            "10s",
            "--deadline",
            "2s",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(
        run.stdout.contains("control midas-nested-lock caught:"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("nested lock:"),
        "the scenario's broken invariant is quoted\n{}",
        run.all()
    );
    assert!(
        !run.stdout.contains("stack backtrace") && !run.stderr.contains("stack backtrace"),
        "{}",
        run.all()
    );
}

#[test]
fn self_deadlock_is_a_hang_report_naming_the_wait() {
    let run = torture(
        &[
            "--control",
            "exch-same-bucket",
            "--lockdep",
            "off",
            "--deadline",
            "1s",
            "--seed",
            "3",
        ],
        Duration::from_secs(15),
    );
    assert_eq!(run.code, Some(1), "{}", run.all());
    let out = &run.stdout;
    assert!(
        out.contains("HANG in control exch-same-bucket"),
        "{}",
        run.all()
    );
    assert!(
        out.contains("wait registry: 1 sleeping thread"),
        "{}",
        run.all()
    );
    assert!(
        out.contains("in Mutex::lock"),
        "the waiter's operation is named\n{}",
        run.all()
    );
    assert!(
        out.contains("holding [bucket]"),
        "the held lock class is named\n{}",
        run.all()
    );
    assert!(
        out.lines()
            .any(|l| l.trim().starts_with("DEADLOCK cycle: #") && l.contains("->")),
        "the self-deadlock is named as a wait-for cycle\n{}",
        run.all()
    );
    let replay = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: "))
        .expect("a replay line");
    for part in [
        "--control exch-same-bucket",
        "--lockdep off",
        "--deadline 1s",
        "--seed 3",
    ] {
        assert!(replay.contains(part), "replay line has {part:?}: {replay}");
    }
    assert!(
        out.contains("control exch-same-bucket caught: HANG"),
        "{}",
        run.all()
    );
}

#[test]
fn lockdep_catches_the_same_defect_before_it_hangs() {
    let run = torture(
        &["--control", "exch-same-bucket", "--duration", "1s"],
        Duration::from_secs(15),
    );
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(
        run.stdout.contains("recursive acquisition"),
        "{}",
        run.all()
    );
    assert!(!run.stdout.contains("HANG"), "{}", run.all());
}

#[test]
fn unknown_names_and_bad_flags_are_one_line_usage_errors() {
    for (args, want) in [
        (
            &["--scenario", "no-such-scenario"][..],
            "unknown scenario \"no-such-scenario\"",
        ),
        (
            &["--control", "no-such-control"][..],
            "unknown control \"no-such-control\"",
        ),
        (&["--scenario", "exch-same-bucket"][..], "that is a control"),
        (&["--duration", "10"][..], "missing unit"),
        (&["--lockdep", "sometimes"][..], "--lockdep"),
        (&["--threads", "0"][..], "--threads"),
        (&["--no-such-flag"][..], "--no-such-flag"),
        (
            &["--scenario", "exch", "--control", "exch-same-bucket"][..],
            "cannot be used with",
        ),
    ] {
        let run = torture(args, Duration::from_secs(10));
        assert_eq!(run.code, Some(2), "{args:?}\n{}", run.all());
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{args:?}: one line\n{}",
            run.all()
        );
        assert!(
            run.stderr.contains(want),
            "{args:?}: wants {want:?}\n{}",
            run.all()
        );
        assert!(!run.stderr.contains("panicked"), "{args:?}\n{}", run.all());
        assert!(run.stdout.is_empty(), "{args:?}\n{}", run.all());
    }
}

#[test]
fn list_names_every_scenario_and_control() {
    let run = torture(&["--list"], Duration::from_secs(10));
    assert_eq!(run.code, Some(0), "{}", run.all());
    for e in primitives::scenarios::catalogue::SCENARIOS {
        assert!(run.stdout.contains(e.name), "{}\n{}", e.name, run.all());
    }
    for c in primitives::scenarios::catalogue::CONTROLS {
        assert!(run.stdout.contains(c.name), "{}\n{}", c.name, run.all());
    }
    // Every control of the one registry: thread, process and fuzz controls alike, with the
    // engines that must catch it and its blind spots.
    for c in primitives::controls::CONTROLS {
        assert!(run.stdout.contains(c.name), "{}\n{}", c.name, run.all());
        assert!(run.stdout.contains(c.defect), "{}\n{}", c.name, run.all());
        assert!(
            run.stdout.contains(c.blind_spots),
            "{}\n{}",
            c.name,
            run.all()
        );
    }
}

#[test]
fn help_documents_exit_codes_and_not_caught() {
    let run = torture(&["--help"], Duration::from_secs(10));
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("Exit codes"), "{}", run.all());
    assert!(run.stdout.contains("NOT CAUGHT"), "{}", run.all());
}
