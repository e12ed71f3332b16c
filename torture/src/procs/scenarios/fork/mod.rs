//! `torture fork`: seed 002, "Don't mix threads and fork". One worker process (re-executed by
//! the runner, as every worker is: the threaded runner never forks) starts `--threads` hammer
//! threads that take and release the primitives' locks — nested [`ReentrantLock`]s, a
//! [`Mutex`], a bare [`RawMutex`] — and log through a [`MessageLog`] (staged under the locks,
//! straight to the sink after), while its main thread forks `--forks` times (or for
//! `--duration`) at random moments. Each child, single-threaded, takes every one of those locks
//! and logs (staged and unstaged), then `_exit(0)`s.
//!
//! With the primitives' fork handling (see `primitives::sync::fork`) a child never waits: a
//! lock another thread held at the fork is taken over (the child records `recovered lock
//! <parent pid>`), and the logger's sink lock was held by the fork's `prepare`. The control
//! `fork-held-lock` turns that handling off, and the child sleeps forever on the first lock a
//! hammer thread held — the runner then reports a HANG naming that lock, from the child's ledger
//! (`begin lock K` before each acquisition) and `/proc` (state, wait channel, thread count).
//!
//! Ledgers: the worker's records `begin fork N` / `done fork N` around each fork and its reaping;
//! each child writes `child-N-PID.ledger` beside it (`begin lock K`, `recovered lock PPID`,
//! `done lock K`, `begin log N`, `done log N`, `released lock`). Every process is in the
//! worker's process group, which the runner kills on every path; a child also dies with the
//! worker (`PR_SET_PDEATHSIG`) and, as a last safety valve, by its own `alarm(2)`.
//!
//! [`ReentrantLock`]: primitives::ReentrantLock
//! [`Mutex`]: primitives::Mutex
//! [`RawMutex`]: primitives::lock::RawMutex
//! [`MessageLog`]: primitives::MessageLog

mod run;
mod worker;

use crate::procs::{ProcScenario, WorkerArgs};
use crate::units::{format_duration, parse_positive, shell_word};
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The engine name process controls of this scenario list in `caught_by`.
const ENGINE: &str = "torture fork";

/// What a child locks, in order, by the index its ledger records (`begin lock K`); the last one
/// is taken by logging.
pub const LOCKS: [&str; 5] = [
    "ReentrantLock \"fork.outer\"",
    "ReentrantLock \"fork.inner\" (nested in fork.outer)",
    "Mutex \"fork.counter\"",
    "RawMutex \"fork.raw\"",
    "the MessageLog's sink lock",
];

fn parse_control(s: &str) -> Result<String, String> {
    crate::procs::controls::parse_for(ENGINE, s)
}

/// `torture fork` flags.
#[derive(Debug, Clone, Args)]
pub struct ForkArgs {
    /// Hammer threads in the worker (besides the forking main thread).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Forks at most (the run also ends after --duration).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub forks: u32,
    /// Forking time at most.
    #[arg(long, default_value = "1500ms", value_parser = parse_positive)]
    pub duration: Duration,
    /// A child that makes no progress for this long (scaled by threads per core) is a hang.
    #[arg(long = "hang-timeout", default_value = "1s", value_parser = parse_positive)]
    pub hang_timeout: Duration,
    /// Seed of the fork moments (default: from the clock; printed for the replay line).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run a negative control instead of the reference (it should be caught).
    #[arg(long, value_parser = parse_control)]
    pub control: Option<String>,
    /// Reports to write.
    #[command(flatten)]
    pub out: crate::report::Outputs,
    /// Freeze and thaw the forking worker (seed 003): its children go on; a frozen worker only
    /// delays its next fork and its waits.
    #[command(flatten)]
    pub stops: crate::procs::faults::StopArgs,
}

/// The worker's spec.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    threads: u32,
    forks: u32,
    duration_ms: u64,
    /// How long the worker waits for one child before giving up on it (the runner judges a
    /// hang well before).
    child_limit_ms: u64,
    seed: u64,
    control: Option<String>,
}

/// Seed 002's threads and forks.
pub struct ThreadsAndFork;

impl ProcScenario for ThreadsAndFork {
    fn name(&self) -> &'static str {
        "fork"
    }

    fn command(&self) -> clap::Command {
        ForkArgs::augment_args(clap::Command::new("fork"))
            .about("Seed 002: threads hammer the primitives' locks and logger while another thread forks; every child must use them without hanging")
            .after_help("Exit codes: 0 every child used every lock and logged (with --control: NOT caught), 1 a hung or failed child (with --control: caught), 2 usage or setup error.")
    }

    fn controls(&self) -> Vec<(&'static str, &'static str)> {
        crate::procs::controls::caught_by(ENGINE)
            .map(|c| (c.name, c.defect))
            .collect()
    }

    fn main(&self, program: &str, flags: &ArgMatches) -> u8 {
        let args: ForkArgs = match crate::procs::parse_flags("fork", flags) {
            Ok(a) => a,
            Err(code) => return code,
        };
        crate::signals::install();
        let seed = args.seed.unwrap_or_else(crate::prng::fresh_seed);
        let (control_flag, what) =
            crate::procs::control_words(args.control.as_deref(), "fork-safe reference");
        let replay = format!(
            "{} fork --threads {} --forks {} --duration {} --hang-timeout {}{} --seed {seed}{control_flag}",
            shell_word(program),
            args.threads,
            args.forks,
            format_duration(args.duration),
            format_duration(args.hang_timeout),
            args.stops.replay(),
        );
        crate::out::say!(
            "fork: {} hammer threads, up to {} forks in {}, seed {seed}, {what}",
            args.threads,
            args.forks,
            format_duration(args.duration),
        );
        let run = run::run(&args, seed);
        crate::procs::sweep::finish("fork", args.control.clone(), seed, replay, &args.out, run)
    }

    fn worker(&self, w: &WorkerArgs) -> u8 {
        worker::run(w)
    }
}
