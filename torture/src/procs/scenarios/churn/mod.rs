//! `torture churn`: seed 001's "odb torture" — MIDAS client processes starting and exiting
//! continuously (a bounded fork-bomb: up to `--procs` alive, a new one started as soon as one
//! leaves, crashes or is killed), sharing a client table, a "database" and a message log.
//!
//! Each client (see `worker.rs`):
//! - **registers** in the shared client table (`table.rs`) under the table lock, and gets a
//!   handle `(slot, serial)`;
//! - every tick, takes the **table lock, then the database lock, nested twice** (both
//!   [`primitives::lock::SharedReentrantLock`]s, robust, tracked by one lock-order validator
//!   shared by every process), checks through its handle that its entry is still its own, and
//!   **logs** a message through the buffered shared log ([`primitives::msg::ring::SharedLog`]):
//!   staged while the locks are held, delivered at the outermost release;
//! - runs a **watchdog** every `--watchdog`: a snapshot of the table under the lock (O(N)),
//!   the liveness of each other client from `/proc` (pid + start time, so a reused pid is not
//!   alive), and for each dead one, after a confirmation grace (MIDAS pinged), its deletion
//!   under the table and database locks — through the handle, which must still be valid;
//! - leaves by deleting its own entry — or `--crashes` percent of the time, dies right after
//!   logging while still holding both locks (seed 001's "a program that logs and dies at once
//!   loses its last message").
//!
//! The runner kills random clients (`--kill-rate`), freezes some (`--stop-rate`), rescues and
//! drains the log, and at the end checks: every message whose `log` returned was delivered
//! exactly once in per-client order, also from killed and crashed clients; no client ever found
//! its entry deleted or overwritten while alive (a stale handle used after delete); the table
//! is consistent (no half-written entry after repair, no client twice, nobody left registered
//! but dead after the runner's own watchdog pass); no lock-order inversion between the table
//! and the database lock; nothing stopped progressing for `--hang-timeout`.
//!
//! Figures: clients started, kills, crashes, watchdog removals, lock takeovers, messages, and
//! the **watchdog's cost per tick** against the number of entries it checked, with its slope
//! (ns per entry: the cost is O(N) per tick, where MIDAS's was O(N×N)).
//!
//! **Any lock.** `--impl-lib PATH` (a C library, `torture/include/torture_lock.h`) or `--impl
//! NAME` (a registered [`crate::CrossLock`]) makes the table lock and the database lock the
//! implementation's, through [`crate::procs::impls::lock`]; the table, the log (and its own
//! ring lock) stay the reference's. Torture's validator and the log's delivery at the outermost
//! release work around any lock; without REENTRANT the database lock is not nested; a crash or
//! kill inside the locks of a lock that is not ROBUST wedges the churn, and the hang report
//! names the dead holder when the implementation has HOLDER.
//!
//! Controls (registry): `churn-stale-handle` (delete by slot without checking the serial),
//! `churn-abba` (the watchdog takes the database lock before the table lock),
//! `ring-private-staging` (messages staged under a lock in process memory: lost on a crash).

mod run;
mod table;
mod worker;

use crate::procs::faults::StopArgs;
use crate::procs::impls::lock::LockImpl;
use crate::procs::sweep::{self, Shard, Single, Sweep};
use crate::procs::{ProcScenario, WorkerArgs};
use crate::units::{format_duration, parse_duration, parse_positive, shell_word};
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The engine name the registry's controls of this scenario list in `caught_by`.
const ENGINE: &str = "torture churn";
/// Exit code of a client that crashed on purpose (after logging, holding both locks).
const CRASH_EXIT: u8 = 3;
/// Exit code of a client that found its entry deleted while it was alive (details in its
/// `.finding` file).
const STALE_EXIT: u8 = 4;
/// Exit code of a client whose lock-order validator saw an inversion (details in its
/// `.finding` file).
const LOCKDEP_EXIT: u8 = 5;

fn parse_control(s: &str) -> Result<String, String> {
    crate::procs::controls::parse_for(ENGINE, s)
}

/// `torture churn` flags.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// Clients alive at once (a new one starts whenever one leaves, crashes or is killed): a
    /// count, or a sweep A:B:xK (geometric) or A:B:+K (arithmetic) run once per count.
    #[arg(long, default_value = "8", value_name = "N|A:B:xK|A:B:+K", value_parser = sweep::procs(2, 2040))]
    pub procs: Sweep,
    /// Of a sweep's runs, run those whose index is i-1 mod n (1-based).
    #[arg(long, value_name = "i/n", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// How long clients keep churning.
    #[arg(long, default_value = "2s", value_parser = parse_positive)]
    pub duration: Duration,
    /// SIGKILLs per second of random clients (0: none); each is replaced at once.
    #[arg(long = "kill-rate", value_name = "PER_SECOND", default_value_t = 10.0, value_parser = crate::procs::faults::parse_rate)]
    pub kill_rate: f64,
    /// Percent of clients that die right after logging, holding both locks.
    #[arg(long, value_name = "PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub crashes: u32,
    /// Period of each client's watchdog.
    #[arg(long, default_value = "50ms", value_parser = parse_positive)]
    pub watchdog: Duration,
    /// A client seen dead is confirmed dead after this grace before its entry is deleted.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub confirm: Duration,
    /// Nothing logged, registered or recorded by anyone for this long (scaled by processes
    /// per core) is a hang.
    #[arg(long = "hang-timeout", default_value = "2s", value_parser = parse_positive)]
    pub hang_timeout: Duration,
    /// Seed (clients' lifetimes and traffic, the kill schedule; printed for the replay line).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run a negative control instead of the reference (it should be caught).
    #[arg(long, value_parser = parse_control)]
    pub control: Option<String>,
    /// Torture this C library's lock as the table and database locks (the ABI of
    /// torture/include/torture_lock.h).
    #[arg(long = "impl-lib", value_name = "PATH")]
    pub impl_lib: Option<PathBuf>,
    /// Torture the lock this binary registered under NAME as the table and database locks.
    #[arg(long = "impl", value_name = "NAME", conflicts_with = "impl_lib")]
    pub impl_name: Option<String>,
    /// Reports to write.
    #[command(flatten)]
    pub out: crate::report::Outputs,
    /// Freeze and thaw (seed 003).
    #[command(flatten)]
    pub stops: StopArgs,
    /// Chaos mode in the clients.
    #[command(flatten)]
    pub chaos: crate::procs::faults::ChaosArgs,
}

impl ChurnArgs {
    fn replay(&self, program: &str, imp: &LockImpl, clients: u32, seed: u64) -> String {
        format!(
            "{} churn --procs {clients} --duration {} --kill-rate {} --crashes {} --watchdog {} --confirm {} --hang-timeout {}{}{} --seed {seed}{}{}",
            shell_word(program),
            format_duration(self.duration),
            self.kill_rate,
            self.crashes,
            format_duration(self.watchdog),
            format_duration(self.confirm),
            format_duration(self.hang_timeout),
            self.stops.replay(),
            self.chaos.replay(),
            crate::procs::control_words(self.control.as_deref(), "").0,
            imp.flag(),
        )
    }
}

/// A client's spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    table: String,
    table_lock: String,
    db_lock: String,
    log: String,
    graph: String,
    seed: u64,
    crashes: u32,
    watchdog_ns: u64,
    confirm_ns: u64,
    op_timeout_ns: u64,
    control: Option<String>,
    /// The C library (absolute path) of the locks (`--impl-lib`).
    lib: Option<PathBuf>,
    /// The registered lock implementation (`--impl`).
    plugin: Option<String>,
    /// Whether the database lock is nested (the implementation is REENTRANT).
    reenter: bool,
}

/// Seed 001's client churn.
pub struct Churn;

impl ProcScenario for Churn {
    fn name(&self) -> &'static str {
        "churn"
    }

    fn command(&self) -> clap::Command {
        ChurnArgs::augment_args(clap::Command::new("churn"))
            .about("Seed 001: client processes start, register, watch each other, log under nested locks, crash and are killed, continuously")
            .after_help("Exit codes: 0 nothing lost, nothing stale, no inversion, no hang (with --control: NOT caught), 1 a finding (with --control: caught), 2 usage or setup error.")
    }

    fn controls(&self) -> Vec<(&'static str, &'static str)> {
        crate::procs::controls::caught_by(ENGINE)
            .map(|c| (c.name, c.defect))
            .collect()
    }

    fn main(&self, program: &str, flags: &ArgMatches) -> u8 {
        let args: ChurnArgs = match crate::procs::parse_flags("churn", flags) {
            Ok(a) => a,
            Err(code) => return code,
        };
        let imp = match crate::procs::impls::lock::from_flags(
            "churn",
            args.impl_lib.as_deref(),
            args.impl_name.as_deref(),
        ) {
            Ok(imp) => imp,
            Err(e) => {
                crate::out::warn!("{e}");
                return 2;
            }
        };
        crate::signals::install();
        sweep::main(
            "churn",
            &args.procs,
            args.shard,
            args.seed,
            &args.out,
            |n, seed| one(program, &args, &imp, n, seed),
        )
    }

    fn worker(&self, w: &WorkerArgs) -> u8 {
        crate::procs::worker_exit("churn client", w.id, worker::run(w))
    }

    fn plugs(&self) -> Option<crate::procs::impls::Abi> {
        Some(crate::procs::impls::Abi::Lock)
    }
}

/// One run at `clients` clients alive at once: its header, its replay line, the run.
fn one(program: &str, args: &ChurnArgs, imp: &LockImpl, clients: u32, seed: u64) -> Single {
    let mut what = crate::procs::control_words(args.control.as_deref(), "reference").1;
    if !matches!(imp, LockImpl::Reference { .. }) {
        what = format!(
            "{what}, locks: {} (capabilities {})",
            imp.name(),
            imp.caps().words()
        );
    }
    crate::out::say!(
        "churn: {clients} clients alive at once for {}, {} kills/s, {}% crash, watchdog every {}, seed {seed}, {what}",
        format_duration(args.duration),
        args.kill_rate,
        args.crashes,
        format_duration(args.watchdog),
    );
    Single {
        control: args.control.clone(),
        replay: args.replay(program, imp, clients, seed),
        run: run::run(args, imp, clients, seed),
    }
}
