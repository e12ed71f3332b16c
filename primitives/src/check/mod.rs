//! Every engine as one public call for a user's type, and the report they all return.
//!
//! [`linearizability`] decides whether a recorded history of MVar operations (from threads,
//! processes, or any other engine) could have come from one MVar acting atomically; [`threads`]
//! records such a history from real threads for any `MVarApi<u64>` and judges it (the oracle as
//! one call on a user's type). [`model`] drives a user's MVar, lock or log with proptest state
//! machines against sequential models; [`fuzz`] runs the same models on operation sequences
//! decoded from a fuzzer's input (a cargo-fuzz target in one line). Both need the default
//! feature `engines` (proptest, arbitrary) and a real-threads build.
//!
//! The model engines as one call each: `check::shuttle::{mvar, lock, log}` (`--cfg shuttle`:
//! random, PCT, uniform random walk and DFS schedulers, with a replayable schedule for each
//! failure) and `check::loom::{mvar, lock, log}` (`--cfg loom`: exhaustive within a preemption
//! bound, each scenario in a child process so that a deadlock gives a verdict). Both run every
//! scenario the catalogue lists for the primitive's family.
//!
//! Each engine returns a [`Report`]: one [`Row`] per (scenario, engine configuration), saying
//! whether the property held, failed (with the message and, where the engine has one, a replay
//! string), hung, or was not checked and why.

pub use crate::history::linearizability;
#[cfg(loom)]
mod child;
#[cfg(loom)]
pub mod loom;
#[cfg(shuttle)]
pub mod shuttle;
#[cfg(any(loom, shuttle))]
mod subject;
#[cfg(not(any(loom, shuttle)))]
pub mod threads;
#[cfg(not(any(loom, shuttle)))]
mod watch;

#[cfg(all(feature = "engines", not(any(loom, shuttle))))]
pub mod fuzz;
#[cfg(all(feature = "engines", not(any(loom, shuttle))))]
pub mod model;

use std::fmt;
use std::time::Duration;

/// How much an engine may spend on each scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Executions (schedules, runs, cases) per scenario and engine configuration.
    pub iterations: usize,
    /// Wall-clock cap per scenario and configuration; a run still going then is a hang for
    /// the real-threads engine, and the end of the search for the others.
    pub time: Duration,
    /// Seed of the engine's randomness (schedulers, operation choices).
    pub seed: u64,
    /// Only the catalogue scenario of this name (`None`: all); to re-run one finding, or to
    /// spend a budget on one property. The proptest models are not catalogue scenarios and
    /// ignore it.
    pub scenario: Option<&'static str>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            iterations: 1000,
            time: Duration::from_secs(30),
            seed: 1,
            scenario: None,
        }
    }
}

impl Budget {
    /// This budget with `iterations` executions.
    pub fn iterations(self, iterations: usize) -> Self {
        Budget { iterations, ..self }
    }
    /// This budget with a wall-clock cap of `time`.
    pub fn time(self, time: Duration) -> Self {
        Budget { time, ..self }
    }
    /// This budget with `seed`.
    pub fn seed(self, seed: u64) -> Self {
        Budget { seed, ..self }
    }
    /// This budget spent on the scenario `name` only.
    pub fn scenario(self, name: &'static str) -> Self {
        Budget {
            scenario: Some(name),
            ..self
        }
    }
    /// Whether the scenario `name` is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.scenario.map_or(true, |only| only == name)
    }
}

/// What one engine configuration said about one scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every execution kept every invariant.
    Passed {
        /// Executions run.
        executions: u64,
    },
    /// An invariant broke (a panic, a non-linearizable history).
    Failed {
        /// Executions until the failure (1-based).
        executions: u64,
        /// The first line of the failure.
        message: String,
        /// How to replay it (a shuttle schedule, a seed), if the engine has one.
        replay: Option<String>,
    },
    /// Nothing could make progress: a deadlock (model engines) or no progress within the
    /// budget (real threads), with what each thread was blocked in.
    Hang {
        /// Executions until the hang (1-based).
        executions: u64,
        /// Who waits on what.
        report: String,
        /// How to replay it, if the engine has one.
        replay: Option<String>,
    },
    /// Not checked, and why (a capability not declared, a property this engine cannot see).
    Skipped(String),
}

impl Outcome {
    /// A failure or a hang.
    pub fn is_finding(&self) -> bool {
        matches!(self, Outcome::Failed { .. } | Outcome::Hang { .. })
    }
}

/// One row of a [`Report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The scenario (catalogue name).
    pub scenario: String,
    /// The engine and its configuration (`threads`, `shuttle pct`, `loom`, `proptest`, …).
    pub engine: String,
    /// What it said.
    pub outcome: Outcome,
    /// Wall-clock time spent.
    pub elapsed: Duration,
}

/// What the engines said about one primitive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The primitive checked (its type name or a label).
    pub subject: String,
    /// The capabilities it declared (scenarios needing others were skipped).
    pub declared: Vec<&'static str>,
    /// One row per scenario and engine configuration.
    pub rows: Vec<Row>,
}

/// One cell of the detection matrix in the format `torture matrix` reads from its drivers'
/// output: `MATRIX {"engine":…,"subject":…,"seed":…,"caught":…,"executions":…,"seconds":…}`.
pub fn matrix_line(
    engine: &str,
    subject: &str,
    seed: u64,
    caught: bool,
    executions: u64,
    seconds: f64,
) -> String {
    format!(
        "MATRIX {{\"engine\":{engine:?},\"subject\":{subject:?},\"seed\":{seed},\"caught\":{caught},\"executions\":{executions},\"seconds\":{seconds:.4}}}"
    )
}

impl Report {
    /// The report's checked rows as detection-matrix cells ([`matrix_line`]): subject
    /// `{prefix}/{scenario}`, engine as the row names it without its configuration in
    /// parentheses and with dashes for spaces (`shuttle-pct`, `loom`); skipped rows are not
    /// cells.
    pub fn matrix_lines(&self, prefix: &str, seed: u64) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|row| {
                let (caught, executions) = match &row.outcome {
                    Outcome::Passed { executions } => (false, *executions),
                    Outcome::Failed { executions, .. } | Outcome::Hang { executions, .. } => {
                        (true, *executions)
                    }
                    Outcome::Skipped(_) => return None,
                };
                Some(matrix_line(
                    &row.engine
                        .split(" (")
                        .next()
                        .unwrap_or_default()
                        .replace(' ', "-"),
                    &format!("{prefix}/{}", row.scenario),
                    seed,
                    caught,
                    executions,
                    row.elapsed.as_secs_f64(),
                ))
            })
            .collect()
    }

    /// An empty report on `subject`.
    pub fn new(subject: impl Into<String>, declared: Vec<&'static str>) -> Report {
        Report {
            subject: subject.into(),
            declared,
            rows: Vec::new(),
        }
    }
    /// No failure and no hang (skipped rows do not count either way).
    pub fn passed(&self) -> bool {
        !self.rows.iter().any(|r| r.outcome.is_finding())
    }
    /// The rows that failed or hung.
    pub fn findings(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.outcome.is_finding())
    }
    /// Appends another report's rows (same subject).
    pub fn merge(&mut self, other: Report) {
        self.rows.extend(other.rows);
    }
    /// Panics with the whole report unless it passed (for use in a `#[test]`).
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.passed(), "{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let declared = if self.declared.is_empty() {
            "none".to_string()
        } else {
            self.declared.join(", ")
        };
        writeln!(f, "{} (declares: {declared})", self.subject)?;
        for r in &self.rows {
            let what = match &r.outcome {
                Outcome::Passed { executions } => format!("ok ({executions} executions)"),
                Outcome::Failed {
                    executions,
                    message,
                    replay,
                } => format!(
                    "FAILED at execution {executions}: {message}{}",
                    replay
                        .as_ref()
                        .map(|r| format!(" [replay: {r}]"))
                        .unwrap_or_default()
                ),
                Outcome::Hang {
                    executions,
                    report,
                    replay,
                } => format!(
                    "HANG at execution {executions}: {report}{}",
                    replay
                        .as_ref()
                        .map(|r| format!(" [replay: {r}]"))
                        .unwrap_or_default()
                ),
                Outcome::Skipped(why) => format!("not checked: {why}"),
            };
            writeln!(
                f,
                "  {:<28} {:<16} {what} ({:.2} s)",
                r.scenario,
                r.engine,
                r.elapsed.as_secs_f64()
            )?;
        }
        Ok(())
    }
}
