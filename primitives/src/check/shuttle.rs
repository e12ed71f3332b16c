//! Shuttle as one public call for a user's type (`--cfg shuttle`): every scenario of the
//! primitive's family in the catalogue, under four schedulers, `budget.iterations` executions
//! each, stopped at the first failing execution.
//!
//! | engine column    | scheduler                                   | scenario [`Params`]              |
//! |------------------|---------------------------------------------|----------------------------------|
//! | `shuttle random` | random walk                                 | [`Params::for_engine`] (Random)  |
//! | `shuttle pct`    | PCT, depth [`PCT_DEPTH`]                    | the same                         |
//! | `shuttle urw`    | uniform random walk (shuttle 0.9)           | the same                         |
//! | `shuttle dfs`    | depth-first search, bounded by the budget   | [`Schedule::Exhaustive`]         |
//!
//! A failing execution becomes a [`Outcome::Failed`] row (its message, the executions until
//! it, and a replay string); a deadlock (or shuttle's step bound: a livelock) becomes a
//! [`Outcome::Hang`] row; a scenario that checked nothing (a capability the type does not
//! declare) becomes [`Outcome::Skipped`]. The replay string is shuttle's encoded schedule,
//! prefixed with `exhaustive:` when it came from the DFS or URW column (whose scenario parameters
//! differ); [`replay_mvar`] (and the lock and log forms) run it again, one execution.
//!
//! ```ignore
//! #[test]
//! fn my_mvar_under_shuttle() {
//!     primitives::check::shuttle::mvar(MyMVar::new, Budget::default()).assert_passed();
//! }
//! ```

use super::subject::Subject;
use super::{Budget, Outcome, Report, Row};
use crate::lock::LockClass;
use crate::scenarios::catalogue::Delivered;
use crate::scenarios::{Params, Schedule};
use crate::sync::engine::{self, Ended, Scheduler};
use crate::traits::{LockApi, LogApi, MVarApi};
use std::time::Instant;

/// PCT's bug depth (priority change points + 1).
pub const PCT_DEPTH: usize = 3;

/// Prefix of a replay string recorded under the DFS scheduler.
const EXHAUSTIVE: &str = "exhaustive:";

/// The scheduler configurations every call runs: column name, scheduler, scenario schedule.
fn configurations() -> [(&'static str, Scheduler, Schedule); 4] {
    [
        ("shuttle random", Scheduler::Random, Schedule::Random),
        (
            "shuttle pct",
            Scheduler::Pct { depth: PCT_DEPTH },
            Schedule::Random,
        ),
        // Uniform random walk samples interleavings uniformly: a yielding thread is not
        // deprioritized, so it may run on while another has yet to block (exhaustive sizes).
        ("shuttle urw", Scheduler::Urw, Schedule::Exhaustive),
        ("shuttle dfs", Scheduler::Dfs, Schedule::Exhaustive),
    ]
}

/// Checks an MVar of `u64` values made by `make` (each call: a new, empty one) with every MVar
/// scenario under every scheduler.
pub fn mvar<M: MVarApi<u64> + 'static>(
    make: impl Fn() -> M + Send + Sync + 'static,
    budget: Budget,
) -> Report {
    check(&Subject::mvar(make), budget)
}

/// Checks a lock made by `make` (each call: a new, free one tracked as the given class) with
/// every lock scenario under every scheduler.
pub fn lock<L: LockApi + 'static>(
    make: impl Fn(&LockClass) -> L + Send + Sync + 'static,
    budget: Budget,
) -> Report {
    check(&Subject::lock(make), budget)
}

/// Checks a log made by `make` (each call: a new one delivering into the given sink, its sink
/// lock tracked as the given class) with every log scenario under every scheduler.
pub fn log<G: LogApi + 'static>(
    make: impl Fn(Delivered, &LockClass) -> G + Send + Sync + 'static,
    budget: Budget,
) -> Report {
    check(&Subject::log(make), budget)
}

/// Replays one MVar scenario along `schedule` (a row's replay string): one execution; its
/// outcome (`Passed` if the failure did not recur).
pub fn replay_mvar<M: MVarApi<u64> + 'static>(
    make: impl Fn() -> M + Send + Sync + 'static,
    scenario: &str,
    schedule: &str,
) -> Outcome {
    replay(&Subject::mvar(make), scenario, schedule)
}

/// Replays one lock scenario along `schedule` (see [`replay_mvar`]).
pub fn replay_lock<L: LockApi + 'static>(
    make: impl Fn(&LockClass) -> L + Send + Sync + 'static,
    scenario: &str,
    schedule: &str,
) -> Outcome {
    replay(&Subject::lock(make), scenario, schedule)
}

/// Replays one log scenario along `schedule` (see [`replay_mvar`]).
pub fn replay_log<G: LogApi + 'static>(
    make: impl Fn(Delivered, &LockClass) -> G + Send + Sync + 'static,
    scenario: &str,
    schedule: &str,
) -> Outcome {
    replay(&Subject::log(make), scenario, schedule)
}

fn check(subject: &Subject, budget: Budget) -> Report {
    let mut report = Report::new(subject.name.clone(), subject.declared.clone());
    for (i, scenario) in subject.scenarios.iter().enumerate() {
        if !budget.runs(scenario) {
            continue;
        }
        for (engine, scheduler, schedule) in configurations() {
            let params = Params::for_engine().with_schedule(schedule);
            let start = Instant::now();
            let ended = engine::shuttle(
                &scheduler,
                budget.iterations,
                budget.time,
                budget.seed,
                subject.body(i, params),
            );
            let prefix = if schedule == Schedule::Exhaustive {
                EXHAUSTIVE
            } else {
                ""
            };
            report.rows.push(Row {
                scenario: scenario.to_string(),
                engine: engine.to_string(),
                outcome: outcome(ended, prefix),
                elapsed: start.elapsed(),
            });
        }
    }
    report
}

fn replay(subject: &Subject, scenario: &str, schedule: &str) -> Outcome {
    let Some(i) = subject.index(scenario) else {
        return Outcome::Skipped(format!(
            "{} has no {} scenario named {scenario:?}",
            subject.name, subject.family
        ));
    };
    let (schedule, params) = match schedule.strip_prefix(EXHAUSTIVE) {
        Some(s) => (s, Params::for_engine().with_schedule(Schedule::Exhaustive)),
        None => (schedule, Params::for_engine()),
    };
    let ended = engine::shuttle(
        &Scheduler::Replay(schedule.to_string()),
        1,
        Budget::default().time,
        0,
        subject.body(i, params),
    );
    let prefix = if params.schedule == Schedule::Exhaustive {
        EXHAUSTIVE
    } else {
        ""
    };
    outcome(ended, prefix)
}

/// A row's outcome from how a run ended (`prefix` goes before a replay schedule).
fn outcome(ended: Ended, prefix: &str) -> Outcome {
    let executions = ended.executions;
    match ended.failure {
        // PCT refuses, after the execution, a body that never had two runnable threads at once
        // (a scenario that skipped itself, or one whose threads run strictly one after
        // another): nothing for PCT to schedule, and nothing wrong with the primitive.
        Some(f) if f.message.contains("did not exercise any concurrency") => {
            Outcome::Skipped(match ended.skipped {
                Some(why) => why.to_string(),
                None => "PCT: the scenario never has two runnable threads at once".to_string(),
            })
        }
        Some(f) => {
            let replay = f.schedule.map(|s| format!("{prefix}{s}"));
            if f.hang {
                Outcome::Hang {
                    executions,
                    report: f.message,
                    replay,
                }
            } else {
                Outcome::Failed {
                    executions,
                    message: first_line(&f.message),
                    replay,
                }
            }
        }
        None => match ended.skipped {
            Some(why) => Outcome::Skipped(why.to_string()),
            None => Outcome::Passed { executions },
        },
    }
}

/// The first line of a message, with its location suffix if the message had more lines.
pub(crate) fn first_line(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").to_string();
    match message.rsplit_once(" (at ") {
        Some((_, at)) if message.contains('\n') => format!("{first} (at {at}"),
        _ => first,
    }
}
