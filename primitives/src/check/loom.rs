//! Loom as one public call for a user's type (`--cfg loom`): every scenario of the primitive's
//! family in the catalogue, explored exhaustively within a preemption bound — **each scenario
//! in a child process**.
//!
//! # Why a child process, and how
//! After a deadlock loom panics again in destructors while its model threads unwind, which
//! aborts the process: in-process, a deadlocking type would take the whole test run down with
//! no verdict. So the call re-runs *the current test* in a child copy of the test binary
//! (`current_exe() --exact <test name> --include-ignored --nocapture --test-threads=1`, the
//! test's name being its libtest thread's name), with two environment variables saying which
//! call of the test ([`CALL_ENV`], counted per thread) and which scenario ([`SCENARIO_ENV`]) to
//! explore. In the child, that same call sees them, explores that one scenario under loom with
//! a panic hook that writes one verdict line to stderr at the first failure and exits at once
//! (before anything unwinds), or writes the passing verdict when the exploration ends. The
//! parent reads the verdict; a child still running after `budget.time` plus a grace period is
//! killed (with its process group) and reported as a hang. Children die with their parent.
//!
//! So the call must run inside a libtest `#[test]` function (it panics otherwise). A test may
//! make several calls; in a child, the calls *before* the one it was started for return a
//! placeholder report (every row "not checked: explored in another child process"), so assert
//! on reports after the last call, or keep one call per test.
//!
//! ```ignore
//! #[test]
//! fn my_mvar_under_loom() {
//!     primitives::check::loom::mvar(MyMVar::new, Budget::default(), 3).assert_passed();
//! }
//! ```
//!
//! Rows: engine column `loom` (with the bound); no replay string (loom explores every
//! interleaving within the bound, so the run itself reproduces).

use super::subject::Subject;
use super::{Budget, Outcome, Report, Row};
use crate::lock::LockClass;
use crate::scenarios::catalogue::Delivered;
use crate::scenarios::Params;
use crate::sync::engine;
use crate::traits::{LockApi, LogApi, MVarApi};
use std::cell::Cell;
use std::process::Command;
use std::time::{Duration, Instant};

/// Environment variable naming, in a child, the index of the call it explores.
pub const CALL_ENV: &str = "PRIMITIVES_CHECK_LOOM_CALL";
/// Environment variable naming, in a child, the scenario it explores.
pub const SCENARIO_ENV: &str = "PRIMITIVES_CHECK_LOOM_SCENARIO";
/// Start of the child's verdict line on stderr.
const VERDICT: &str = "PRIMITIVES-LOOM-VERDICT";
/// How long after `budget.time` a child that has not answered is killed (loom checks its own
/// time limit only between executions).
const GRACE: Duration = Duration::from_secs(30);

thread_local! {
    /// Calls made so far by this thread (a test runs on one thread, in the parent and in the
    /// child alike, so the n-th call is the same call in both).
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

/// Explores every MVar scenario on MVars of `u64` values made by `make` (each call: a new,
/// empty one), within `preemption_bound` preemptions, at most `budget.iterations`
/// interleavings and `budget.time` per scenario.
pub fn mvar<M: MVarApi<u64> + 'static>(
    make: impl Fn() -> M + Send + Sync + 'static,
    budget: Budget,
    preemption_bound: usize,
) -> Report {
    check(Subject::mvar(make), budget, preemption_bound)
}

/// Explores every lock scenario on locks made by `make` (see [`mvar`]).
pub fn lock<L: LockApi + 'static>(
    make: impl Fn(&LockClass) -> L + Send + Sync + 'static,
    budget: Budget,
    preemption_bound: usize,
) -> Report {
    check(Subject::lock(make), budget, preemption_bound)
}

/// Explores every log scenario on logs made by `make` (see [`mvar`]).
pub fn log<G: LogApi + 'static>(
    make: impl Fn(Delivered, &LockClass) -> G + Send + Sync + 'static,
    budget: Budget,
    preemption_bound: usize,
) -> Report {
    check(Subject::log(make), budget, preemption_bound)
}

/// The preemption bound from `LOOM_PREEMPTION_BOUND`, else `default`.
pub fn preemption_bound_from_env(default: usize) -> usize {
    std::env::var("LOOM_PREEMPTION_BOUND")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn check(subject: Subject, budget: Budget, bound: usize) -> Report {
    let call = CALLS.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    let engine_name = format!("loom (bound {bound})");
    let mut report = Report::new(subject.name.clone(), subject.declared.clone());
    if let Ok(target) = std::env::var(CALL_ENV) {
        if target.parse() == Ok(call) {
            let scenario = std::env::var(SCENARIO_ENV).unwrap_or_default();
            explore_and_exit(&subject, &scenario, budget, bound);
        }
        for s in &subject.scenarios {
            report.rows.push(Row {
                scenario: s.to_string(),
                engine: engine_name.clone(),
                outcome: Outcome::Skipped("explored in another child process".into()),
                elapsed: Duration::ZERO,
            });
        }
        return report;
    }
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .unwrap_or_else(|| {
            panic!(
                "check::loom runs each scenario in a child copy of the current test; call it \
                 from a libtest #[test] function (its thread's name is the test's name)"
            )
        });
    let exe = std::env::current_exe().expect("the current test binary");
    for scenario in subject.scenarios.iter().filter(|s| budget.runs(s)) {
        let start = Instant::now();
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--exact",
            &test,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CALL_ENV, call.to_string())
        .env(SCENARIO_ENV, scenario)
        .env("RUST_BACKTRACE", "0");
        let outcome = match super::child::run(&mut cmd, budget.time + GRACE) {
            Ok(ended) => match ended.status {
                None => Outcome::Hang {
                    executions: 0,
                    report: format!(
                        "no verdict within {:?}: the child was killed",
                        budget.time + GRACE
                    ),
                    replay: None,
                },
                Some(status) => verdict(&ended.stderr).unwrap_or_else(|| Outcome::Failed {
                    executions: 0,
                    message: format!(
                        "the child ({status}) gave no verdict; its stderr ended with: {}",
                        tail(&ended.stderr)
                    ),
                    replay: None,
                }),
            },
            Err(e) => Outcome::Failed {
                executions: 0,
                message: format!("could not start the child: {e}"),
                replay: None,
            },
        };
        report.rows.push(Row {
            scenario: scenario.to_string(),
            engine: engine_name.clone(),
            outcome,
            elapsed: start.elapsed(),
        });
    }
    report
}

/// In the child: explores `scenario`, writes the verdict line and exits.
fn explore_and_exit(subject: &Subject, scenario: &str, budget: Budget, bound: usize) -> ! {
    let Some(i) = subject.index(scenario) else {
        say(
            "failed",
            0,
            &format!("no {} scenario named {scenario:?}", subject.family),
        );
        std::process::exit(0);
    };
    let ended = engine::loom(
        bound,
        budget.iterations,
        budget.time,
        Some(exit_at_failure),
        subject.body(i, Params::for_engine()),
    );
    match (&ended.failure, ended.skipped) {
        // Only when the hook's exit did not happen (it always does): report it anyway.
        (Some(f), _) => say(
            if f.hang { "hang" } else { "failed" },
            ended.executions,
            &f.message,
        ),
        (None, Some(why)) => say("skipped", ended.executions, why),
        (None, None) => say("passed", ended.executions, ""),
    }
    std::process::exit(0);
}

/// The panic hook's action in the child: the verdict, then exit before anything unwinds.
fn exit_at_failure(executions: u64, message: &str) {
    let kind = if engine::is_hang(message) {
        "hang"
    } else {
        "failed"
    };
    say(kind, executions, message);
    std::process::exit(0);
}

/// Writes the verdict line (the message on one line).
fn say(kind: &str, executions: u64, message: &str) {
    eprintln!(
        "\n{VERDICT} {kind} executions={executions} message={}",
        message.replace('\n', " | ")
    );
}

/// Parses the child's verdict line.
fn verdict(stderr: &str) -> Option<Outcome> {
    let line = stderr.lines().rev().find(|l| l.starts_with(VERDICT))?;
    let rest = line[VERDICT.len()..].trim_start();
    let (kind, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("executions=")?;
    let (n, message) = rest.split_once(" message=")?;
    let executions: u64 = n.parse().ok()?;
    let message = message.to_string();
    Some(match kind {
        "passed" => Outcome::Passed { executions },
        "skipped" => Outcome::Skipped(message),
        "hang" => Outcome::Hang {
            executions,
            report: message,
            replay: None,
        },
        _ => Outcome::Failed {
            executions,
            message,
            replay: None,
        },
    })
}

/// The last few lines of a child's stderr, on one line.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
