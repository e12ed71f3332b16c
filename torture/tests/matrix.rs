//! `torture matrix`: a few real cells (torture itself re-executed: real threads with and
//! without chaos, a process scenario and its control), the files it writes, its verdict, a
//! merge of two reports, and bad flags. The cargo and fuzz engines run in `.ci/run`'s small
//! matrix (they need their own builds).

mod common;

use common::{torture_env, TempDir};
use std::path::Path;
use std::time::Duration;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("matrix.json")).expect("JSON")
}

/// Real cells: a thread control caught by chaos (not without: seed 000's `if` needs a spurious
/// wake-up), the process control private-futex in `torture mvar`, and the
/// references, which must pass. The files are written, the table names the engines, nothing
/// is left in TMPDIR.
#[test]
fn a_small_matrix_of_real_cells() {
    let tmp = TempDir::new("matrix");
    let out = Path::new(tmp.path()).join("out");
    let work = Path::new(tmp.path()).join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let r = torture_env(
        &[
            "matrix",
            "--engines",
            "threads,threads-chaos,mvar",
            "--only",
            "mvar-if-not-while,private-futex,reference/threads catalogue,reference/mvar",
            "--seeds",
            "1",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &[("TMPDIR", work.to_str().expect("utf-8"))],
        Duration::from_secs(300),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    let m = json(&out.join("matrix.json"));
    let cell = |engine: &str, subject: &str| {
        m["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .find(|c| c["engine"] == engine && c["subject"] == subject)
            .cloned()
            .unwrap_or_else(|| panic!("no cell {engine} / {subject}:\n{}", r.all()))
    };
    assert_eq!(cell("threads-chaos", "mvar-if-not-while")["caught"], true);
    assert_eq!(cell("mvar", "private-futex")["caught"], true);
    assert_eq!(
        cell("threads", "reference/threads catalogue")["caught"],
        false
    );
    assert_eq!(cell("mvar", "reference/mvar")["caught"], false);
    assert_eq!(m["missed"].as_array().map(Vec::len), Some(0));
    let md = std::fs::read_to_string(out.join("matrix.md")).expect("matrix.md");
    assert!(
        md.contains("| control | threads | threads-chaos | mvar |"),
        "{md}"
    );
    assert!(md.contains("| mvar-if-not-while |"), "{md}");
    let svg = std::fs::read_to_string(out.join("matrix.svg")).expect("matrix.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("mvar-if-not-while") && svg.contains("false positives"));
    assert!(r.stdout.contains("PASS"), "{}", r.all());
    assert_eq!(
        std::fs::read_dir(&work).expect("read").count(),
        0,
        "the scratch folder was left behind"
    );
}

/// `--merge` joins reports (the shards of a nightly run); a control no engine caught fails
/// the matrix, and so does a false positive.
#[test]
fn merged_reports_are_judged_whole() {
    let tmp = TempDir::new("matrix-merge");
    let dir = Path::new(tmp.path());
    let cell = |engine: &str, subject: &str, seed: u64, caught: bool| {
        serde_json::json!({"engine": engine, "subject": subject, "seed": seed, "caught": caught,
            "executions": if caught { 3 } else { 100 }, "seconds": 0.5})
    };
    let report = |cells: Vec<serde_json::Value>| {
        serde_json::json!({"profile": "small", "engines": [], "cells": cells, "controls": {},
            "false_positives": {}, "missed": [], "not_run": [], "seconds": 1.0})
    };
    let write = |name: &str, v: serde_json::Value| {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).expect("write");
        p.to_str().expect("utf-8").to_string()
    };
    let a = write(
        "a.json",
        report(vec![
            cell("shuttle-pct", "mvar-if-not-while", 1, true),
            cell("shuttle-pct", "reference/mvar-handoff", 1, false),
        ]),
    );
    let b = write(
        "b.json",
        report(vec![
            cell("shuttle-pct", "mvar-if-not-while", 2, false),
            cell("loom", "mvar-if-not-while", 0, true),
        ]),
    );
    let out = dir.join("out");
    let run = |files: &[&str]| {
        let mut args = vec!["matrix", "--out", out.to_str().expect("utf-8"), "--merge"];
        args.extend_from_slice(files);
        torture_env(&args, &[], Duration::from_secs(30))
    };
    let r = run(&[&a, &b]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    let m = json(&out.join("matrix.json"));
    let s = &m["controls"]["mvar-if-not-while"]["shuttle-pct"];
    assert_eq!(
        (s["runs"].as_u64(), s["caught"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(r.stdout.contains("1/2: 3 ex, 500 ms"), "{}", r.all());
    // A control nobody caught, and a false positive: FAIL.
    let c = write(
        "c.json",
        report(vec![
            cell("threads", "mvar-lifo-waiters", 1, false),
            cell("threads", "reference/threads catalogue", 1, true),
        ]),
    );
    // A control the registry documents as found only by chance, missed: reported, not failing.
    let d = write(
        "d.json",
        report(vec![
            cell("fuzz", "unvalidated-header", 1, false),
            cell("fuzz", "lockdep-off", 1, true),
        ]),
    );
    let r = run(&[&d]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.stdout.contains(
            "documented as found only by chance (not failing the run): unvalidated-header"
        ),
        "{}",
        r.all()
    );
    let r = run(&[&c]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stdout
            .contains("MISSED (no engine caught): mvar-lifo-waiters"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("1 false positives"), "{}", r.all());
}

/// Bad flags and unreadable inputs: one line, exit 2.
#[test]
fn bad_flags_are_one_line_and_exit_2() {
    let tmp = TempDir::new("matrix-bad");
    let junk = Path::new(tmp.path()).join("junk.json");
    std::fs::write(&junk, "not json").expect("write");
    for args in [
        vec!["matrix", "--engines", "magic"],
        vec!["matrix", "--merge", junk.to_str().expect("utf-8")],
        vec!["matrix", "--workspace", "/"],
        vec!["matrix", "--small", "--full"],
    ] {
        let r = torture_env(&args, &[], Duration::from_secs(30));
        assert_eq!(r.code, Some(2), "{args:?}\n{}", r.all());
        let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            !lines.is_empty() && !r.stderr.contains("panicked"),
            "{args:?}\n{}",
            r.all()
        );
    }
}
