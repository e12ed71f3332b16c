//! Every input that ever made a fuzz target fail, replayed from `fuzz/regressions/<target>/`,
//! with the fuzz targets' own case code (included from `fuzz/src/` with `#[path]`):
//! * a file named `control-<name>` (or `control-<name>.<anything>`) is a negative control's
//!   finding: it must still FAIL with `FUZZ_CONTROL=<name>` — the proof the target can still see
//!   that defect — and must pass on the reference;
//! * any other file must pass on the reference.
//!
//! The seed corpora (`fuzz/seeds/<target>/`) must pass on the reference too. Each input runs in
//! a child process (a copy of this test binary), because a hang ends in the deadline watchdog's
//! `abort`. The `schedule` target needs `--cfg shuttle` and is replayed by `ci/shuttle.sh`.
#![cfg(not(loom))]

#[path = "../../fuzz/src/common.rs"]
mod common;
pub use common::{control, decode, MAX_INPUT};

#[path = "../../fuzz/src/deadline.rs"]
mod deadline;

#[cfg(not(shuttle))]
#[path = "../../fuzz/src/cases/mod.rs"]
mod cases;

#[cfg(shuttle)]
#[path = "../../fuzz/src/schedule.rs"]
mod schedule;

#[allow(dead_code)]
#[path = "../../torture/src/procs/tied.rs"]
mod tied;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

const TARGET_ENV: &str = "REPLAY_TARGET";
/// Replays of a control's regression in a target that runs on several threads, of which at
/// least one must fail.
const CONTROL_ATTEMPTS: usize = 60;
/// Targets whose executions run on one thread: nothing races, so the input alone decides
/// whether a control crashes, and a control's regression must fail on every replay. One that
/// fails only sometimes depends on something outside the input — e.g. a value taken from the
/// replaying process (its pid, from the `Creator`, `Participant` or `Writer` patch values of
/// `shm_open`) patched over a size, which crashes or not depending on the pid.
const SEQUENTIAL_TARGETS: &[&str] = &["shm_open"];
/// Replays of a control's regression in a sequential target, every one of which must fail.
const SEQUENTIAL_REPLAYS: usize = 5;
const FILE_ENV: &str = "REPLAY_FILE";

/// The targets this build replays.
#[cfg(not(shuttle))]
const TARGETS: &[&str] = &["mvar_ops", "lock_ops", "msg_ops", "shm_open"];
#[cfg(shuttle)]
const TARGETS: &[&str] = &["schedule"];

fn run_target(target: &str, data: &[u8]) {
    match target {
        #[cfg(not(shuttle))]
        "mvar_ops" => cases::mvar_ops::fuzz(data),
        #[cfg(not(shuttle))]
        "lock_ops" => cases::lock_ops::fuzz(data),
        #[cfg(not(shuttle))]
        "msg_ops" => cases::msg_ops::fuzz(data),
        #[cfg(not(shuttle))]
        "shm_open" => cases::shm_open::fuzz(data),
        #[cfg(shuttle)]
        "schedule" => schedule::fuzz(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Child: replays one file (chosen by the parent through the environment).
#[test]
fn replay_child() {
    let (Ok(target), Ok(file)) = (std::env::var(TARGET_ENV), std::env::var(FILE_ENV)) else {
        return;
    };
    let data = std::fs::read(&file).expect("read the input");
    run_target(&target, &data);
}

/// How a replay ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Passed,
    Failed(String),
}

fn replay(target: &str, file: &Path, control: Option<&str>) -> Ended {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", "replay_child", "--nocapture", "--test-threads=1"])
        .env(TARGET_ENV, target)
        .env(FILE_ENV, file)
        .env("FUZZ_DEADLINE_MS", "3000")
        .env("RUST_BACKTRACE", "0")
        .env_remove("FUZZ_CONTROL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(c) = control {
        cmd.env("FUZZ_CONTROL", c);
    }
    #[cfg_attr(shuttle, allow(unused_variables))]
    let (pid, status, err) = run_tied(&mut cmd, Duration::from_secs(60));
    // A child that crashed or hung (abort) could not unlink the segments it made: remove the
    // ones named after it (their creator is dead, so cleanup judges them abandoned).
    #[cfg(not(shuttle))]
    let _ = primitives::shm::cleanup(&format!("{pid}-"));
    match status {
        Some(st) if st.success() => Ended::Passed,
        Some(st) => Ended::Failed(format!("{st}: {}", last_lines(&err))),
        None => Ended::Failed("still running after 60 s (killed)".into()),
    }
}

/// Runs `cmd` (its stderr piped) tied to this process, collecting its stderr; after `limit` it
/// is killed (its whole process group) and reaped. Returns its pid, its exit status (`None`:
/// killed) and its stderr.
fn run_tied(cmd: &mut Command, limit: Duration) -> (u32, Option<ExitStatus>, String) {
    let mut child = tied::Tied::spawn(cmd).expect("spawn replay child");
    let pid = child.id();
    let stderr = child.child().stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
        s
    });
    let status = child.wait_timeout(limit);
    drop(child);
    (pid, status, reader.join().unwrap_or_default())
}

fn last_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The control a regression file belongs to, from its name.
fn control_of(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_str()?;
    let rest = name.strip_prefix("control-")?;
    Some(rest.split('.').next().unwrap_or(rest).to_string())
}

#[test]
fn regressions_still_pass_on_the_reference_and_fail_on_their_control() {
    let mut replayed = 0;
    let mut problems = Vec::new();
    for target in TARGETS {
        for file in files(&fuzz_dir().join("regressions").join(target)) {
            replayed += 1;
            if let Ended::Failed(why) = replay(target, &file, None) {
                problems.push(format!("{}: fails on the reference: {why}", file.display()));
            }
            let Some(c) = control_of(&file) else { continue };
            if SEQUENTIAL_TARGETS.contains(target) {
                let passed = (0..SEQUENTIAL_REPLAYS)
                    .filter(|_| replay(target, &file, Some(&c)) == Ended::Passed)
                    .count();
                if passed == SEQUENTIAL_REPLAYS {
                    problems.push(format!(
                        "{}: no longer fails with FUZZ_CONTROL={c} in {SEQUENTIAL_REPLAYS} replays (the target lost sight of the defect)",
                        file.display()
                    ));
                } else if passed > 0 {
                    problems.push(format!(
                        "{}: passes {passed} of {SEQUENTIAL_REPLAYS} replays with FUZZ_CONTROL={c}, \
                         but a {target} execution runs on one thread: its outcome depends on \
                         something that is not in the input (a value from the replaying process, \
                         such as its pid, patched over a size?)",
                        file.display()
                    ));
                }
            } else {
                // A control's defect may be a race (a lost wake-up) that a replay on real
                // threads does not hit every time: it must fail in one of a few attempts.
                let caught =
                    (0..CONTROL_ATTEMPTS).any(|_| replay(target, &file, Some(&c)) != Ended::Passed);
                if !caught {
                    problems.push(format!(
                        "{}: no longer fails with FUZZ_CONTROL={c} in {CONTROL_ATTEMPTS} replays (the target lost sight of the defect)",
                        file.display()
                    ));
                }
            }
        }
    }
    eprintln!("replayed {replayed} regression inputs");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn seed_corpora_pass_on_the_reference() {
    let mut problems = Vec::new();
    for target in TARGETS {
        for file in files(&fuzz_dir().join("seeds").join(target)) {
            if let Ended::Failed(why) = replay(target, &file, None) {
                problems.push(format!("{}: {why}", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `FUZZ_CONTROL` naming no registered control is a usage error: one line, exit status 2 (not a
/// "crash" libFuzzer would save as a finding).
#[cfg(not(shuttle))]
#[test]
fn an_unknown_fuzz_control_is_a_usage_error() {
    let seed = files(&fuzz_dir().join("seeds").join("mvar_ops"))
        .into_iter()
        .next()
        .expect("a seed input of mvar_ops");
    let (_, status, err) = run_tied(
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "replay_child", "--nocapture", "--test-threads=1"])
            .env(TARGET_ENV, "mvar_ops")
            .env(FILE_ENV, &seed)
            .env("FUZZ_CONTROL", "no-such-control")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        Duration::from_secs(60),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(2), "stderr: {err}");
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("FUZZ_CONTROL")).collect();
    assert_eq!(ours.len(), 1, "stderr: {err}");
    assert!(
        ours[0].contains("no such negative control") && ours[0].contains("mvar-wake-before-grant"),
        "{}",
        ours[0]
    );
}
