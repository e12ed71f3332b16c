//! `torture mvar` checks its recorded history for linearizability and says so.

mod common;

use common::torture;
use std::time::Duration;

#[test]
fn mvar_reports_its_history_linearizable() {
    let run = torture(
        &["mvar", "--procs", "3", "--rounds", "5", "--seed", "1"],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    // 1 master putting 3 values; 3 slaves taking and putting back 5 times, then taking once.
    assert!(
        run.all().contains("linearizable (36 ops, checked in"),
        "{}",
        run.all()
    );
}

#[test]
fn past_the_cap_the_history_is_not_checked() {
    let run = torture(
        &[
            "mvar",
            "--procs",
            "3",
            "--rounds",
            "5",
            "--check-max-ops",
            "10",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(
        run.all()
            .contains("linearizability: not checked (36 operations, more than --check-max-ops 10)"),
        "{}",
        run.all()
    );
}
