//! One verdict and one report envelope for every command: the text a person reads, the JSON a
//! CI job reads (`--json PATH` on every command), the exit code, and the replay line.

use serde::Serialize;
use std::path::Path;

/// What a run concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The reference, no failure.
    Pass,
    /// The reference, a bug found.
    Fail,
    /// A control, caught (as expected).
    Caught,
    /// A control, not caught within the budget.
    NotCaught,
}

impl Verdict {
    /// From the run's kind and whether something failed.
    pub fn of(control: bool, failed: bool) -> Verdict {
        match (control, failed) {
            (false, false) => Verdict::Pass,
            (false, true) => Verdict::Fail,
            (true, true) => Verdict::Caught,
            (true, false) => Verdict::NotCaught,
        }
    }

    /// The process exit code: 1 whenever the engine saw a bug (even an expected one).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass | Verdict::NotCaught => 0,
            Verdict::Fail | Verdict::Caught => 1,
        }
    }

    /// The closing word of a report.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Caught => "CAUGHT",
            Verdict::NotCaught => "NOT CAUGHT",
        }
    }
}

/// The class of a finding: reports, tests and scripts tell findings apart by this, never by
/// the wording of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A participant inside an operation long past its deadline, and not runnable.
    Hang,
    /// No progress at all for the stall window.
    Wedged,
    /// A cycle in the cross-process wait-for graph: every process in it waits for a lock held
    /// by the next.
    Deadlock,
    /// The lock-order validator saw a cycle of acquisition orders (a potential deadlock),
    /// before anything deadlocked.
    LockOrder,
    /// Sleeps ended by their time slice although the awaited state had arrived.
    LostWakeups,
    /// A value copied half-way.
    Torn,
    /// A value delivered twice.
    Duplicated,
    /// A value nobody produced.
    Invented,
    /// A value whose producer returned, never delivered.
    Lost,
    /// Counters that cannot be reconciled with the records.
    Count,
    /// A message log invariant (exactly once, per-origin order, nothing lost or invented).
    Log,
    /// A participant ended by itself (bad record, setup error inside a worker).
    Worker,
    /// The primitive is unusable after the run.
    Unusable,
    /// The recorded history admits no legal sequential order (the linearizability check).
    Linearizability,
    /// A handle used after its object was deleted (and its slot perhaps given to another):
    /// MIDAS's `cm_exist` race.
    StaleHandle,
    /// A hang after a kill, with the lock held by a process that is dead: the implementation
    /// is not robust to `kill -9` (a lock is not recovered from a dead holder).
    NotRobust,
    /// A table whose entries contradict each other or the participants' records.
    Table,
}

/// One broken invariant or hang, with its diagnosis.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Its class.
    pub kind: FindingKind,
    /// The first line says what; further lines are the diagnosis.
    pub text: String,
}

impl Finding {
    /// A finding of `kind`.
    pub fn new(kind: FindingKind, text: impl Into<String>) -> Finding {
        Finding {
            kind,
            text: text.into(),
        }
    }
}

/// Faults a run injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// Participants SIGKILLed.
    pub kills: u64,
    /// Participants frozen (SIGSTOP, then SIGCONT).
    pub stops: u64,
}

/// How much a run did: its process count, operations, wall time, faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Its process count (workers; `None` when not said).
    pub procs: Option<u32>,
    /// Operations completed (box commits, lock acquisitions, messages: each scenario says).
    pub ops: u64,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// `ops / seconds`.
    pub ops_per_s: f64,
    /// Faults injected.
    pub faults: Faults,
}

impl Tally {
    /// A tally of `ops` operations in `elapsed`.
    pub fn new(
        procs: Option<u32>,
        ops: u64,
        elapsed: std::time::Duration,
        faults: Faults,
    ) -> Tally {
        let seconds = elapsed.as_secs_f64();
        Tally {
            procs,
            ops,
            seconds,
            ops_per_s: ops as f64 / seconds.max(1e-9),
            faults,
        }
    }
}

/// A process scenario's report: the envelope of `--json` for every process command.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `"torture"`.
    pub tool: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// The command (`storm`, ...).
    pub command: &'static str,
    /// The control run instead of the reference, if any.
    pub control: Option<String>,
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Verdict.
    pub verdict: Verdict,
    /// Process exit code.
    pub exit_code: u8,
    /// Broken invariants and hangs (empty: pass).
    pub findings: Vec<Finding>,
    /// The scenario's own figures (counts, times).
    pub figures: serde_json::Value,
    /// Human summary, as printed.
    pub summary: String,
    /// The command line that replays the run.
    pub replay: String,
    /// Process count, operations, time and faults of the run.
    pub tally: Tally,
}

impl Report {
    /// A process scenario's report; the verdict follows from `control` and `findings`.
    pub fn new(
        command: &'static str,
        control: Option<String>,
        seed: u64,
        findings: Vec<Finding>,
        summary: String,
        figures: serde_json::Value,
        replay: String,
    ) -> Report {
        let verdict = Verdict::of(control.is_some(), !findings.is_empty());
        Report {
            tool: "torture",
            version: env!("CARGO_PKG_VERSION"),
            command,
            control,
            seed,
            verdict,
            exit_code: verdict.exit_code(),
            findings,
            figures,
            summary,
            replay,
            tally: Tally::default(),
        }
    }

    /// Prints the report and writes the JSON if asked; returns the exit code.
    pub fn emit(&self, json: Option<&Path>) -> u8 {
        self.emit_to(json, None)
    }

    /// Prints the report, writes the JSON and the JUnit XML if asked; returns the exit code.
    pub fn emit_to(&self, json: Option<&Path>, junit: Option<&Path>) -> u8 {
        crate::out::say_raw!("{}", self.summary);
        for f in &self.findings {
            crate::out::say!("  FAILED: {}", f.text);
        }
        match (self.verdict, &self.control) {
            (Verdict::Pass, _) => crate::out::say!("PASS"),
            (Verdict::Fail, _) => crate::out::say!("FAIL\n  replay: {}", self.replay),
            (Verdict::Caught, Some(c)) => crate::out::say!("CAUGHT: control {c} detected"),
            (Verdict::NotCaught, Some(c)) => crate::out::say!(
                "NOT CAUGHT: control {c} passed every check\n  replay: {}",
                self.replay
            ),
            (v, None) => crate::out::say!("{}", v.word()),
        }
        let mut code = self.exit_code;
        if let Some(path) = json {
            if let Err(e) = write_json(path, self) {
                crate::out::warn!("torture: error: {e}");
                if code == 0 {
                    code = 2;
                }
            }
        }
        if let Some(path) = junit {
            let case = JunitCase {
                name: match &self.control {
                    Some(c) => format!("{} --control {c}", self.command),
                    None => self.command.to_string(),
                },
                verdict: self.verdict,
                message: self.findings.first().map(|f| f.text.clone()),
                output: self.summary.clone(),
                replay: self.replay.clone(),
            };
            if let Err(e) = write_junit(path, "torture", &[case]) {
                crate::out::warn!("torture: error: {e}");
                if code == 0 {
                    code = 2;
                }
            }
        }
        code
    }
}

/// `--json PATH` and `--junit PATH`, shared by every process scenario's flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Outputs {
    /// Also write a machine-readable report (JSON) to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<std::path::PathBuf>,
    /// Also write a JUnit XML report to PATH (one test case: this run).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<std::path::PathBuf>,
}

impl Outputs {
    /// Prints `report` and writes the files asked for; returns the exit code.
    pub fn emit(&self, report: &Report) -> u8 {
        report.emit_to(self.json.as_deref(), self.junit.as_deref())
    }
}

/// One test case of a JUnit report: a run and its verdict.
pub struct JunitCase {
    /// The command (and control) run.
    pub name: String,
    /// Its verdict: `Pass` and `Caught` are successes, `Fail` a failure, `NotCaught` a failure
    /// too (a control the engine should have seen).
    pub verdict: Verdict,
    /// The first finding, or why it failed.
    pub message: Option<String>,
    /// What the run printed.
    pub output: String,
    /// How to replay it.
    pub replay: String,
}

/// Writes `cases` as one JUnit suite named `suite` to `path` (quick-junit); one line on error.
pub fn write_junit(path: &Path, suite: &str, cases: &[JunitCase]) -> Result<(), String> {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
    let mut report = quick_junit::Report::new("torture");
    let mut ts = TestSuite::new(suite);
    for c in cases {
        let status = match c.verdict {
            Verdict::Pass | Verdict::Caught => TestCaseStatus::success(),
            Verdict::Fail | Verdict::NotCaught => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(
                    c.message
                        .clone()
                        .unwrap_or_else(|| c.verdict.word().to_string()),
                );
                st.set_description(format!("replay: {}", c.replay));
                st
            }
        };
        let mut tc = TestCase::new(c.name.clone(), status);
        tc.set_system_out(c.output.clone());
        ts.add_test_case(tc);
    }
    report.add_test_suite(ts);
    let xml = report
        .to_string()
        .map_err(|e| format!("cannot encode the JUnit report: {e}"))?;
    std::fs::write(path, xml)
        .map_err(|e| format!("cannot write the JUnit report to {}: {e}", path.display()))
}

/// Writes `value` as pretty JSON to `path`; the error is one line.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| e.to_string())
        .and_then(|text| std::fs::write(path, text + "\n").map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot write the JSON report to {}: {e}", path.display()))
}
