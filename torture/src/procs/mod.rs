//! Process scenarios: worker *processes* sharing primitives in POSIX shared memory, under
//! faults (SIGKILL, SIGSTOP), checked from their ledgers.
//!
//! - [`all`]: `torture all`, every scenario in turn with its defaults;
//! - [`board`]: the status board, where every worker publishes what it is doing (shared memory);
//! - [`faults`]: freeze and thaw (`--stop-rate`, `--stop-max`: SIGSTOP/SIGCONT at random);
//! - [`crew`]: spawn by re-executing this binary with a typed spec, kill, respawn, reap;
//! - [`tied`]: a child process tied to its parent (dies with it, own process group, reaped on
//!   drop) — also used, by path, by the `primitives` tests and benchmark;
//! - [`delivery`]: a shared log's delivery check (exactly once, per-origin order, nothing lost);
//! - [`ledger`]: the typed record every worker writes around every operation, one parser;
//! - [`capture`]: `/proc` state, wait channel and run-queue delay; catching a lock holder
//!   inside its critical section; telling a hung participant from a slow one;
//! - [`lockdep`]: the validator's panics as a worker's result, not stderr noise;
//! - [`progress`]: a live bar on a terminal, periodic plain lines in CI logs;
//! - [`controls`]: the cross-process negative controls;
//! - [`impls`]: the MVar `torture mvar` tortures: the reference, or a user's C library
//!   (`--impl-lib`), behind one trait, with the capabilities each promises;
//! - [`sweep`]: `--procs` sweeps (`2:128:x2`), `--shard i/n`, the summary table, and the shell
//!   of every scenario's `main` ([`sweep::main`]);
//! - [`scenarios`]: one file (or folder) per scenario, each a [`ProcScenario`] listed once in
//!   [`scenarios::CATALOGUE`] — a new scenario is one file plus one line; the hidden worker entry.

pub mod all;
pub mod board;
pub mod capture;
pub mod controls;
pub mod crew;
pub mod delivery;
pub mod faults;
pub mod impls;
pub mod ledger;
pub mod lockdep;
pub mod progress;
pub mod scenarios;
pub mod sweep;
pub mod tied;

use clap::{ArgMatches, Args};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::report::Faults;

/// A run that could not start (exit 2): the text is one line.
#[derive(Debug)]
pub struct SetupError(pub String);

/// What a scenario's runner hands back to [`sweep::finish`] (or, through [`sweep::Single`], to
/// [`sweep::main`]). A new scenario may fill what it has and leave the rest to
/// `..Outcome::default()`.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Human summary, as printed.
    pub summary: String,
    /// The scenario's own figures.
    pub figures: serde_json::Value,
    /// Broken invariants and hangs (empty: pass).
    pub findings: Vec<crate::report::Finding>,
    /// The signal that stopped the run early, if any.
    pub interrupted: Option<String>,
    /// Operations the run completed, from what the scenario counts anyway (box commits for
    /// `storm` and `mvar`, lock acquisitions for `locks`, messages for `pipe`): the summary
    /// table's ops/s.
    pub ops: u64,
    /// Wall time of the run (the time the `ops` took).
    pub elapsed: Duration,
    /// Faults the run injected (kills, freezes).
    pub faults: Faults,
}

/// A scenario's flags from its parsed matches; on error one line and exit code 2.
pub fn parse_flags<A: clap::FromArgMatches>(name: &str, flags: &ArgMatches) -> Result<A, u8> {
    A::from_arg_matches(flags).map_err(|e| {
        crate::out::warn!("torture {name}: error: {}", e.to_string().trim());
        2
    })
}

/// A worker's exit code from its result: an error is one line on stderr (`WHO ID: error`) and
/// exit code 2.
pub fn worker_exit(who: &str, id: u32, result: Result<u8, String>) -> u8 {
    result.unwrap_or_else(|e| {
        crate::out::warn!("{who} {id}: {e}");
        2
    })
}

/// ` --control NAME` for a replay line, and the header's words for what runs.
pub fn control_words(control: Option<&str>, reference: &str) -> (String, String) {
    match control {
        Some(c) => (format!(" --control {c}"), format!("CONTROL {c}")),
        None => (String::new(), reference.to_string()),
    }
}

/// `s` if it names one of `known`, else the one-line error clap prints.
pub fn pick_control(s: &str, known: &[&str]) -> Result<String, String> {
    known
        .iter()
        .find(|k| **k == s)
        .map(|k| k.to_string())
        .ok_or_else(|| format!("unknown control {s:?}; known: {}", known.join(", ")))
}

/// The report of a finished run, with its tally.
pub fn report_of(
    name: &'static str,
    control: Option<String>,
    seed: u64,
    replay: String,
    procs: Option<u32>,
    outcome: Outcome,
) -> crate::report::Report {
    let mut report = crate::report::Report::new(
        name,
        control,
        seed,
        outcome.findings,
        outcome.summary,
        outcome.figures,
        replay,
    );
    report.tally = crate::report::Tally::new(procs, outcome.ops, outcome.elapsed, outcome.faults);
    report
}

/// A multi-process scenario: its command line, its runner and its worker.
pub trait ProcScenario: Sync {
    /// Its command name (`torture NAME ...`) and the worker's scenario argument.
    fn name(&self) -> &'static str;
    /// Its subcommand, flags included (clap), named [`ProcScenario::name`].
    fn command(&self) -> clap::Command;
    /// The negative controls it can run (`--control NAME`): names and defects.
    fn controls(&self) -> Vec<(&'static str, &'static str)>;
    /// Runs the scenario from its parsed flags; returns the exit code (0, 1 or 2).
    fn main(&self, program: &str, flags: &ArgMatches) -> u8;
    /// The worker side (in a re-executed child); returns its exit code.
    fn worker(&self, w: &WorkerArgs) -> u8;
    /// The kind of user implementation it can torture (`--impl-lib` / `--impl`), if any.
    fn plugs(&self) -> Option<impls::Abi> {
        None
    }
}

/// The hidden worker entry's flags (`torture __worker SCENARIO ...`), written by [`crew`].
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The scenario whose worker this is.
    pub scenario: String,
    /// Unique per spawned worker of a run (its incarnation).
    #[arg(long)]
    pub id: u32,
    /// The runner's pid: the worker's parent, or the worker must not run.
    #[arg(long)]
    pub runner: u32,
    /// Its ledger file.
    #[arg(long)]
    pub ledger: PathBuf,
    /// The scenario's spec for this worker, as JSON.
    #[arg(long)]
    pub spec: String,
    /// Chaos mode with this seed (see `primitives::sync::chaos`).
    #[arg(long)]
    pub chaos: Option<u64>,
    /// The crew's status board (see [`board`]).
    #[arg(long)]
    pub board: Option<String>,
    /// This worker's slot on it.
    #[arg(long)]
    pub slot: Option<usize>,
}

impl WorkerArgs {
    /// Its ledger, publishing on the crew's status board too when it has a slot there (a board
    /// that cannot be opened is only a poorer hang report: the ledger goes on without it).
    pub fn writer(&self) -> Result<ledger::Writer, String> {
        let w = ledger::Writer::open(&self.ledger)
            .map_err(|e| format!("ledger {}: {e}", self.ledger.display()))?;
        let board = self
            .board
            .as_deref()
            .and_then(|n| primitives::shm::ShmName::parse(n).ok())
            .and_then(|n| board::Board::open(&n).ok());
        Ok(match (board, self.slot) {
            (Some(b), Some(slot)) if b.claim(slot, self.id) => {
                w.with_observer(move |r| b.publish(slot, r))
            }
            _ => w,
        })
    }

    /// The spec, decoded.
    pub fn spec<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.spec).map_err(|e| format!("bad worker spec: {e}"))
    }
}
