//! Kill storm: worker *processes* hammer one shared MVar with put / take / read traffic while the
//! runner SIGKILLs a random one at a random moment, again and again, and respawns it. Then it
//! checks, from the workers' ledgers and the box's commit count, that:
//!
//! * no value was torn (each carries a pattern derived from its id) or invented;
//! * no value was taken twice;
//! * every value whose `put` returned was taken exactly once or is still in the box — except
//!   values taken by a worker killed between its take's commit and its ledger record, which the
//!   commit count pins down exactly: the box starts empty and commits alternate put / take, so
//!   after `G` commits there were `⌈G/2⌉` puts and `⌊G/2⌋` takes;
//! * no participant waited beyond its deadline (every operation is timed: a live worker whose
//!   ledger has not moved for `op_timeout + grace` is stuck), and the box kept committing (no
//!   commit for `--stall` is a wedge);
//! * wake-ups crossed processes: sleeps that ended by their slice although the box had become
//!   ready ("late wake-ups") stay rare.
//!
//! A hang is reported with what each party waits on: the box's state, who holds its lock (dead
//! or alive), waiter counts, and each worker's last ledger record and kernel state.
//! Workers are started, killed and reaped by the [`Crew`]; the runner unlinks the segments on
//! every exit path (pass, fail, SIGINT/SIGTERM).

//! Files: [`args`] (flags, replay line, the [`crate::procs::ProcScenario`]), [`run`] (the runner
//! side), [`worker`] (the worker process), [`check`] (the end-of-run checks), [`payload`]
//! (self-checking values).

pub mod args;
pub mod check;
pub mod payload;
pub mod run;
pub mod seam;
mod steps;
pub mod worker;

use crate::procs::capture;
use crate::report::Finding;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

pub use args::KillStorm;
pub use run::run;

/// Late wake-ups below this many are never reported (a kill between a commit and its wake, or
/// of a woken waiter, legitimately makes one).
const LATE_WAKES_FLOOR: u64 = 20;

/// The shared log's ring (records), text bytes per record and per-participant staging.
const LOG_RING: usize = 1 << 16;
const LOG_TEXT: usize = 64;
const LOG_STAGE: usize = 64;

/// Participant slots per worker alive at once: a worker uses one per segment, and a killed
/// worker's slot is reaped only when a survivor notices; kills are one at a time.
const SLOTS_PER_WORKER: u32 = 2;
/// Slots beyond that: the runner, and killed workers not yet reaped.
const SLOTS_SPARE: u32 = 16;

/// A storm's configuration.
#[derive(Clone, Debug)]
pub struct StormConfig {
    /// Worker processes alive at any time.
    pub procs: usize,
    /// SIGKILLs to deliver.
    pub kills: usize,
    /// Mean pause between two kills.
    pub gap: Duration,
    /// Longest timeout of one worker operation.
    pub op_timeout: Duration,
    /// No commit for this long = a wedge; a live worker silent for `op_timeout + stall` = stuck.
    pub stall: Duration,
    /// A worker seen inside an operation longer than this past its deadline is hung.
    pub grace: Duration,
    /// Upper bound of the whole storm.
    pub max_time: Duration,
    /// Seed of the kill schedule and the workers' traffic.
    pub seed: u64,
    /// Bytes per value (bigger values keep the box's lock held longer, so more kills land
    /// inside a critical section, mid-copy).
    pub payload: usize,
    /// `None`: the reference; else a control's name.
    pub control: Option<String>,
    /// Chaos mode in the workers.
    pub chaos: bool,
    /// A C library's box instead of the reference's (`--impl-lib`, absolute path).
    pub lib: Option<std::path::PathBuf>,
    /// The binary's registered implementation instead (`--impl NAME`).
    pub plugin: Option<String>,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            procs: 6,
            kills: 200,
            gap: Duration::from_millis(10),
            op_timeout: Duration::from_millis(50),
            stall: Duration::from_secs(3),
            grace: Duration::from_millis(50),
            max_time: Duration::from_secs(120),
            seed: 1,
            payload: 65536,
            control: None,
            chaos: false,
            lib: None,
            plugin: None,
        }
    }
}

impl StormConfig {
    /// Participant slots each segment needs for `procs` workers.
    pub fn participants(&self) -> u32 {
        (self.procs as u32)
            .saturating_mul(SLOTS_PER_WORKER)
            .saturating_add(SLOTS_SPARE)
    }

    /// Grace and stall scaled by the participants per core (a busy machine is not a hang): the
    /// grace (tens of milliseconds) by workers per core, the stall (seconds without a single
    /// commit) only past eight workers per core, and at most threefold.
    pub fn scaled(&self) -> (Duration, Duration) {
        let workers = self.procs + 1;
        let grace = capture::load_factor(workers, 1);
        let stall = capture::load_factor(workers, 8).min(3);
        (self.grace * grace, self.stall * stall)
    }
}

/// What every worker is told (serialised by the crew).
#[derive(Debug, Serialize, Deserialize)]
pub struct StormSpec {
    /// The box's segment.
    pub mvar: String,
    /// The shared reentrant lock's segment.
    pub lock: String,
    /// The shared log's segment.
    pub log: String,
    /// The storm's seed (each worker adds its id).
    pub seed: u64,
    /// Longest timeout of one operation.
    pub op_timeout_ns: u64,
    /// A control's name, or the reference.
    pub control: Option<String>,
    /// The box is this C library's (`--impl-lib`).
    #[serde(default)]
    pub lib: Option<std::path::PathBuf>,
    /// The box is this registered implementation's (`--impl`).
    #[serde(default)]
    pub plugin: Option<String>,
    /// Bytes per value (an implementation's box is opened with it).
    #[serde(default)]
    pub payload: usize,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// What a storm found.
#[derive(Debug, Default, Serialize)]
pub struct StormReport {
    /// Kills delivered.
    pub kills: usize,
    /// Drains during the storm that found the log's ring lock held by a live worker for the
    /// ring's whole lock timeout (a busy machine: retried at the next drain).
    pub busy_drains: usize,
    /// Of those, in a row now.
    #[serde(skip)]
    pub busy_in_a_row: usize,
    /// Of those, kills of the box's lock holder, stopped (SIGSTOP) while it held the lock.
    pub holder_kills: usize,
    /// Kills of the shared reentrant lock's holder, stopped while holding it (and logging).
    pub lock_holder_kills: usize,
    /// Commits of the box (puts + takes).
    pub commits: u64,
    /// Lock takeovers from dead participants.
    pub recoveries: u64,
    /// Worker calls that were told they recovered the box.
    pub recoveries_seen: usize,
    /// Puts / takes / reads that returned.
    pub puts: usize,
    /// Takes that returned.
    pub takes: usize,
    /// Reads that returned a value.
    pub reads: usize,
    /// Operations that timed out.
    pub timeouts: usize,
    /// Puts / takes cut by a kill before their ledger said how they ended.
    pub cut_puts: usize,
    /// As above, takes.
    pub cut_takes: usize,
    /// Of those, how many had committed (from the commit count).
    pub committed_cut_puts: u64,
    /// As above, takes.
    pub committed_cut_takes: u64,
    /// Sleeps in the kernel and late wake-ups among them.
    pub sleeps: u64,
    /// See [`SharedMVar::sleep_stats`].
    pub late_wakes: u64,
    /// Wall time.
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// Longest time a worker was seen inside an operation past that operation's deadline.
    #[serde(serialize_with = "ser_ms")]
    pub max_overrun: Duration,
    /// Broken invariants and hangs (empty = pass).
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// The box's segment (unlinked at the end of the storm).
    pub segment: String,
    /// Messages whose `log` returned (under the shared lock, staged in the segment).
    pub logged: usize,
    /// Messages delivered through the ring.
    pub delivered: usize,
    /// Of those, rescued from dead workers' staging areas by a survivor (or the runner).
    pub rescued: u64,
    /// Messages cut by a kill (the ledger says logging started, not how it ended).
    pub cut_logs: usize,
    /// Takeovers of the shared lock from dead holders.
    pub lock_recoveries: u64,
    /// Lock acquisitions that were told they recovered it.
    pub lock_recoveries_seen: usize,
    /// Overruns past the grace whose worker was runnable or waiting for a CPU (a busy
    /// machine, not a hang).
    pub busy_overruns: usize,
    /// The signal that stopped the storm early (SIGINT, SIGTERM), if any.
    pub interrupted: Option<String>,
    /// The box's implementation, when it is not the reference (`--impl-lib`, `--impl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// What that implementation promises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<crate::procs::impls::Caps>,
    /// The runner's pid (with an implementation's box: its segments are named after it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner_pid: Option<u32>,
    /// Checks a missing capability prevented.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<String>,
}

impl StormReport {
    /// Human summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "storm: {} kills ({} of the lock holder) in {:.1} s; {} commits ({} puts, {} takes returned; {} reads; {} timeouts)",
            self.kills,
            self.holder_kills,
            self.elapsed.as_secs_f64(),
            self.commits,
            self.puts,
            self.takes,
            self.reads,
            self.timeouts
        );
        let _ = writeln!(s, "  segment {} (unlinked)", self.segment);
        let _ = writeln!(
            s,
            "  cut by a kill: {} puts ({} had committed), {} takes ({} had committed)",
            self.cut_puts, self.committed_cut_puts, self.cut_takes, self.committed_cut_takes
        );
        let _ = writeln!(
            s,
            "  lock takeovers from dead participants: {} (callers told: {})",
            self.recoveries, self.recoveries_seen
        );
        let _ = writeln!(
            s,
            "  lock + log: {} messages logged under the shared lock, {} delivered once in order ({} of them rescued from killed workers' staging areas; {} cut by a kill); {} kills of the lock's holder, {} lock takeovers (callers told: {})",
            self.logged,
            self.delivered,
            self.rescued,
            self.cut_logs,
            self.lock_holder_kills,
            self.lock_recoveries,
            self.lock_recoveries_seen
        );
        let _ = writeln!(
            s,
            "  kernel sleeps: {}; late wake-ups (slice ran out, box was ready): {}",
            self.sleeps, self.late_wakes
        );
        let _ = writeln!(
            s,
            "  longest time seen inside an operation past its deadline: {:.1} ms ({} overruns past the grace were a busy machine: the worker was runnable)",
            self.max_overrun.as_secs_f64() * 1e3,
            self.busy_overruns
        );
        if let Some(sig) = &self.interrupted {
            let _ = writeln!(
                s,
                "  stopped early by {sig}: workers reaped, segments removed"
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(s, "  every invariant held");
        }
        for what in &self.not_checked {
            let _ = writeln!(s, "  not checked (capability missing): {what}");
        }
        s
    }
}
