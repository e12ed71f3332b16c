//! `torture locks`: seed 001's lock-order story across processes. `--locks` shared reentrant
//! locks (A, B, C, ...) live in shared memory, each its own class of one lock-order validator
//! whose graph is a shared segment; `--procs` worker processes lock them for `--duration`.
//!
//! - **Reference**: every worker takes random non-empty subsets of the locks nested in the global
//!   order (A < B < C ...), sometimes re-entering one it holds, holding each briefly. It must
//!   pass: no violation, no hang, every lock free at the end, every acquisition released.
//! - **`--control lock-cycle`**: worker 0 takes A then B, worker 1 B then C, worker 2 C then A
//!   (with fewer locks or processes, a shorter cycle; further workers run the reference). No
//!   process ever closes the cycle alone; the shared validator sees it at the first acquisition
//!   that closes it — which panics *before it may block*, so nothing deadlocks — and that worker
//!   hands the report (with the other processes' chains) to the runner: a LOCK ORDER finding.
//! - **`--control lock-cycle-no-lockdep`**: the same traffic, validator off: the workers deadlock,
//!   and the hang detector reports the DEADLOCK cycle.
//!
//! **Hang detector.** When no worker's ledger grows for `--hang-timeout` (scaled by processes per
//! core) and, after a confirmation window, none is runnable, the runner builds the wait-for graph
//! across processes ([`waitfor`]): a worker whose last record is `begin lock X` waits for X, and
//! X's owner word names the pid holding it. A cycle is a DEADLOCK; without one it is a HANG;
//! both with each worker's state and wait channel. A stopped worker is never in a cycle.
//!
//! **Any lock.** `--impl-lib PATH` (a C library, `torture/include/torture_lock.h`) or `--impl
//! NAME` (a Rust [`crate::CrossLock`] registered by the running binary) replaces the reference
//! lock through the seam of [`crate::procs::impls::lock`]; the traffic, the controls (the
//! cycle is traffic: any lock shows it), the validator (torture's own, around the
//! implementation's acquire), the faults and the checks stay. Without REENTRANT the traffic
//! never re-enters; without HOLDER the wait-for graph has no edges (the report says so); a
//! hang whose awaited lock is held by a dead process is NOT ROBUST.
//!
//! The runner creates every lock and the graph (which must outlive the workers) and destroys
//! them on every exit path; the crew reaps the workers and removes the ledgers.
//!
//! Files: `worker.rs` (the worker process), `waitfor.rs` (the wait-for graph), `findings.rs`
//! (LOCK ORDER, DEADLOCK and HANG findings).

mod findings;
mod waitfor;
mod worker;

use self::findings::{describe_status, lock_order_finding, stuck_finding, Stuck};
use self::worker::{Spec, LOCKDEP_EXIT};
use crate::prng::SplitMix64;
use crate::procs::capture::{self, ProcInfo};
use crate::procs::crew::Crew;
use crate::procs::faults::{Freezer, KillArgs, Killer, StallClock, StopArgs};
use crate::procs::impls::lock::{self as seam, LockImpl};
use crate::procs::impls::Status;
use crate::procs::ledger::{self, Ledger, Op, Record};
use crate::procs::sweep::{self, Shard, Single, Sweep};
use crate::procs::{Faults, Outcome, ProcScenario, SetupError, WorkerArgs};
use crate::report::{Finding, FindingKind};
use crate::units::{format_duration, parse_positive, shell_word};
use clap::{ArgMatches, Args};
use primitives::lock::{Mode, Validator};
use primitives::shm::{Segment, ShmName, MAX_PARTICIPANTS};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The lock (and lock class) names, in the global order.
const NAMES: [&str; 26] = [
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S",
    "T", "U", "V", "W", "X", "Y", "Z",
];
/// The cycle, caught by the shared lock-order validator.
const CYCLE: &str = "lock-cycle";
/// The cycle with the validator off, caught as a deadlock.
const CYCLE_NO_LOCKDEP: &str = "lock-cycle-no-lockdep";
/// The reference lock without takeover of a dead holder's lock: killed holders wedge everyone
/// (the run gets kills even without `--kill-rate`), caught as NOT ROBUST.
const NO_RECOVERY: &str = "lock-no-recovery";
/// The kill rate of a `lock-no-recovery` run given none.
const NO_RECOVERY_KILL_RATE: f64 = 20.0;
/// A worker's acquisition gives up after this many hang timeouts (a safety valve only).
const VALVE: u32 = 20;
/// How often the runner looks at the ledgers.
const POLL: Duration = Duration::from_millis(5);
/// A silent run with a runnable worker is given up to this many hang timeouts before it is
/// judged anyway (a worker spinning forever is runnable too).
const RUNNABLE_PATIENCE: u32 = 4;
/// Participant slots per worker (its process and its thread) and beyond (the runner, spares).
const SLOTS_PER_WORKER: u32 = 2;
const SLOTS_SPARE: u32 = 16;

fn parse_control(s: &str) -> Result<String, String> {
    crate::procs::pick_control(s, &[CYCLE, CYCLE_NO_LOCKDEP, NO_RECOVERY])
}

/// `torture locks` flags.
#[derive(Debug, Clone, Args)]
pub struct LocksArgs {
    /// Worker processes: a count, or a sweep A:B:xK (geometric) or A:B:+K (arithmetic) run
    /// once per count.
    #[arg(long, default_value = "3", value_name = "N|A:B:xK|A:B:+K", value_parser = sweep::procs(1, 200))]
    pub procs: Sweep,
    /// Of a sweep's runs, run those whose index is i-1 mod n (1-based).
    #[arg(long, value_name = "i/n", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Shared locks (A, B, C, ...), each its own lock class.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=26))]
    pub locks: u32,
    /// How long the workers lock.
    #[arg(long, default_value = "3s", value_parser = parse_positive)]
    pub duration: Duration,
    /// No worker progress for this long (scaled by processes per core) is a hang.
    #[arg(long = "hang-timeout", default_value = "2s", value_parser = parse_positive)]
    pub hang_timeout: Duration,
    /// Seed of the workers' traffic (printed for the replay line).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run a negative control: lock-cycle (validator on) or lock-cycle-no-lockdep.
    #[arg(long, value_parser = parse_control)]
    pub control: Option<String>,
    /// Torture this C library's lock instead of the reference (the ABI of
    /// torture/include/torture_lock.h).
    #[arg(long = "impl-lib", value_name = "PATH")]
    pub impl_lib: Option<PathBuf>,
    /// Torture the lock this binary registered under NAME (a user's binary that calls
    /// `torture::main` with a `Registry`).
    #[arg(long = "impl", value_name = "NAME", conflicts_with = "impl_lib")]
    pub impl_name: Option<String>,
    /// Reports to write.
    #[command(flatten)]
    pub out: crate::report::Outputs,
    /// Kill and respawn (a lock held by a killed worker is taken over by its next locker).
    #[command(flatten)]
    pub kills: KillArgs,
    /// Freeze and thaw (seed 003).
    #[command(flatten)]
    pub stops: StopArgs,
    /// Chaos mode in the workers.
    #[command(flatten)]
    pub chaos: crate::procs::faults::ChaosArgs,
}

/// Seed 001's lock orders across processes.
pub struct Locks;

impl ProcScenario for Locks {
    fn name(&self) -> &'static str {
        "locks"
    }

    fn command(&self) -> clap::Command {
        LocksArgs::augment_args(clap::Command::new("locks")).about(
            "Seed 001 across processes: shared reentrant locks under a shared lock-order validator; a cross-process wait-for graph on a hang",
        )
    }

    fn controls(&self) -> Vec<(&'static str, &'static str)> {
        [CYCLE, CYCLE_NO_LOCKDEP, NO_RECOVERY]
            .into_iter()
            .filter_map(primitives::controls::find)
            .map(|c| (c.name, c.defect))
            .collect()
    }

    fn main(&self, program: &str, flags: &ArgMatches) -> u8 {
        let args: LocksArgs = match crate::procs::parse_flags("locks", flags) {
            Ok(a) => a,
            Err(code) => return code,
        };
        let imp =
            match seam::from_flags("locks", args.impl_lib.as_deref(), args.impl_name.as_deref()) {
                Ok(imp) => imp,
                Err(e) => {
                    crate::out::warn!("{e}");
                    return 2;
                }
            };
        crate::signals::install();
        sweep::main(
            "locks",
            &args.procs,
            args.shard,
            args.seed,
            &args.out,
            |n, seed| one(program, &args, &imp, n, seed),
        )
    }

    fn worker(&self, w: &WorkerArgs) -> u8 {
        crate::procs::worker_exit("locks worker", w.id, worker::worker(w))
    }

    fn plugs(&self) -> Option<crate::procs::impls::Abi> {
        Some(crate::procs::impls::Abi::Lock)
    }
}

/// Unlinks every segment of the run when dropped (every exit path).
struct Unlink(Vec<Segment>);

impl Drop for Unlink {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = s.unlink();
        }
    }
}

/// One run at `workers` workers: its header, its replay line, the run.
fn one(program: &str, args: &LocksArgs, imp: &LockImpl, workers: u32, seed: u64) -> Single {
    let (mut control_flag, mut what) =
        crate::procs::control_words(args.control.as_deref(), "reference (global order)");
    if !matches!(imp, LockImpl::Reference { .. }) {
        control_flag.push_str(&imp.flag());
        what = format!(
            "{what}, {} (capabilities {})",
            imp.name(),
            imp.caps().words()
        );
    }
    let replay = format!(
        "{} locks --procs {workers} --locks {} --duration {} --hang-timeout {}{}{}{} --seed {seed}{control_flag}",
        shell_word(program),
        args.locks,
        format_duration(args.duration),
        format_duration(args.hang_timeout),
        args.kills.replay(),
        args.stops.replay(),
        args.chaos.replay(),
    );
    crate::out::say!(
        "locks: {workers} workers, {} locks, {}, seed {seed}, {what}",
        args.locks,
        format_duration(args.duration)
    );
    Single {
        control: args.control.clone(),
        replay,
        run: run(args, imp, workers, seed),
    }
}

fn run(args: &LocksArgs, imp: &LockImpl, workers: u32, seed: u64) -> Result<Outcome, SetupError> {
    let procs = workers as usize;
    let k = args.locks as usize;
    let cycle_len = procs.min(k);
    let cycling = matches!(args.control.as_deref(), Some(CYCLE | CYCLE_NO_LOCKDEP));
    let no_recovery = args.control.as_deref() == Some(NO_RECOVERY);
    if no_recovery && !matches!(imp, LockImpl::Reference { .. }) {
        return Err(SetupError(format!(
            "--control {NO_RECOVERY} is a flavour of the reference lock, not of {}",
            imp.name()
        )));
    }
    if cycling && cycle_len < 2 {
        return Err(SetupError(
            "a lock cycle needs at least 2 workers (--procs)".into(),
        ));
    }
    crate::procs::crew::check_nproc(procs)?;
    let mut crew = Crew::new("locks")?;
    crew.set_chaos(args.chaos.seed(seed));
    let mut segments = Unlink(Vec::new());
    let lockdep = args.control.as_deref() != Some(CYCLE_NO_LOCKDEP);
    // The runner holds the graph open for the whole run (workers come and go).
    let graph = if lockdep {
        let name = ShmName::unique("lockdep");
        let v = Validator::shared(Mode::Report, &name)
            .map_err(|e| SetupError(format!("cannot create the shared lock-order graph: {e}")))?;
        if let Some(s) = v.shared_segment() {
            segments.0.push(s.clone());
        }
        Some((name, v))
    } else {
        None
    };
    let slots = (workers * SLOTS_PER_WORKER + SLOTS_SPARE).min(MAX_PARTICIPANTS);
    let caps = imp.caps();
    let mut locks = Vec::new();
    let mut lock_names = Vec::new();
    for name in &NAMES[..k] {
        let shm = ShmName::unique(&format!("lock-{name}"));
        let lock = imp
            .create(shm.as_str(), slots)
            .map_err(|e| SetupError(format!("cannot create lock {name}: {e}")))?;
        lock_names.push(shm.as_str().to_string());
        locks.push(lock);
    }
    let hang = args.hang_timeout * capture::load_factor(procs + 1, 8).min(4);
    let mut seeds = SplitMix64::new(seed);
    let mut pids = Vec::new();
    let mut specs = Vec::new();
    for i in 0..procs {
        let spec = Spec {
            locks: lock_names.clone(),
            graph: graph.as_ref().map(|(n, _)| n.as_str().to_string()),
            cycle: (cycling && i < cycle_len).then_some([i, (i + 1) % cycle_len]),
            seed: seeds.next_u64(),
            duration_ns: args.duration.as_nanos() as u64,
            valve_ns: (hang * VALVE).as_nanos() as u64,
            lib: imp.lib_path(),
            plugin: imp.plugin_name(),
            reenter: caps.reentrant,
            no_recovery,
        };
        let m = crew.spawn(&spec)?;
        pids.push(crew.members()[m].pid());
        specs.push(spec);
    }
    let kills = if no_recovery && args.kills.kill_rate == 0.0 {
        KillArgs {
            kill_rate: NO_RECOVERY_KILL_RATE,
        }
    } else {
        args.kills.clone()
    };
    let mut killer = Killer::new(&kills, seed);
    let mut freezer = Freezer::new(&args.stops, seed);
    // Ledgers of killed workers: cut anywhere, so their acquisitions need not balance.
    let mut killed = std::collections::HashSet::new();
    let mut killed_pids = Vec::new();
    let start = Instant::now();
    let mut findings = Vec::new();
    let mut interrupted = None;
    let mut detected = None;
    let mut ended = vec![false; procs];
    let mut stall = StallClock::new();
    loop {
        std::thread::sleep(POLL);
        if let Some(sig) = crate::signals::received() {
            interrupted = Some(sig.as_str().to_string());
            break;
        }
        let mut stop = false;
        for (i, status) in crew.exited() {
            if std::mem::replace(&mut ended[i], true) {
                continue;
            }
            if status.code() == Some(i32::from(LOCKDEP_EXIT)) {
                // Two workers may close the same cycle in the same instant: one report.
                if !findings
                    .iter()
                    .any(|f: &Finding| f.kind == FindingKind::LockOrder)
                {
                    findings.push(lock_order_finding(i, &crew.members()[i].ledger, &pids));
                }
                stop = true;
            } else if !status.success() {
                let m = &crew.members()[i];
                findings.push(Finding::new(
                    FindingKind::Worker,
                    format!(
                        "worker {i} (pid {}) ended with {}: its last record was {:?}",
                        m.pid(),
                        describe_status(status),
                        ledger::last_record(&m.ledger).map(|r| r.to_string())
                    ),
                ));
            }
        }
        if stop {
            detected = Some(start.elapsed());
            break;
        }
        if ended.iter().all(|e| *e) {
            break;
        }
        if start.elapsed() < args.duration {
            let alive: Vec<usize> = (0..procs).filter(|i| !ended[*i]).collect();
            if let Some(k) = killer.due(alive.len()) {
                let i = alive[k];
                killed.insert(crew.members()[i].ledger.clone());
                killed_pids.push(pids[i]);
                // The replacement runs for what is left of the run, with traffic of its own.
                specs[i].duration_ns =
                    args.duration.saturating_sub(start.elapsed()).as_nanos() as u64;
                specs[i].seed = seeds.next_u64();
                crew.respawn(i, &specs[i])?;
                pids[i] = crew.members()[i].pid();
                stall.reset();
            }
            let live: Vec<u32> = alive.iter().map(|i| pids[*i]).collect();
            freezer.tick(&live);
        } else {
            freezer.thaw_all();
        }
        // Time during which a worker is frozen by us does not count as a stall.
        let moved = crew.ledgers_grew();
        let silent = stall.tick(moved, freezer.any_frozen());
        if !moved && silent > hang {
            // Confirm: still silent after a short window, and nobody runnable (a busy machine
            // delays workers; it does not hang them).
            let window = (hang / 8).clamp(Duration::from_millis(20), Duration::from_millis(250));
            // Only workers not yet reaped: a reaped one's pid may be someone else's by now.
            let look = |ended: &[bool]| -> Vec<ProcInfo> {
                pids.iter()
                    .zip(ended)
                    .map(|(p, e)| {
                        if *e {
                            ProcInfo::default()
                        } else {
                            ProcInfo::of(*p)
                        }
                    })
                    .collect()
            };
            let before = look(&ended);
            std::thread::sleep(window);
            if crew.ledgers_grew() {
                stall.reset();
                continue;
            }
            let after = look(&ended);
            let runnable = before.iter().zip(&after).any(|(b, a)| {
                a.state == Some('R')
                    || matches!((b.run_queue_wait, a.run_queue_wait), (Some(x), Some(y)) if y.saturating_sub(x) * 2 > window)
            });
            if runnable && silent < hang * RUNNABLE_PATIENCE {
                continue;
            }
            findings.push(stuck_finding(
                &crew,
                &pids,
                &after,
                &Stuck {
                    locks: &locks,
                    imp,
                    killed: &killed_pids,
                },
                silent + window,
                &ended,
            ));
            detected = Some(start.elapsed());
            break;
        }
    }
    let elapsed = start.elapsed();
    freezer.thaw_all();
    crew.kill_all();
    let ledgers: Vec<Ledger> = crew
        .all_ledgers()
        .iter()
        .filter_map(|p| Ledger::read(p))
        .collect();
    let complete = findings.is_empty() && interrupted.is_none();
    let (acquired, released) = tally(ledgers.iter().filter(|l| !killed.contains(&l.path)));
    let all_acquired = tally(ledgers.iter()).0;
    // The implementation's own count, else the workers' OWNER_DIED acquisitions.
    let recoveries: u64 = locks
        .iter()
        .map(|l| l.handle().takeovers())
        .sum::<Option<u64>>()
        .unwrap_or_else(|| {
            ledgers
                .iter()
                .flat_map(|l| &l.records)
                .filter(|r| matches!(r, Record::Recovered { op: Op::Lock, .. }))
                .count() as u64
        });
    if complete {
        for l in &ledgers {
            if let Some(b) = l.bad.first() {
                findings.push(Finding::new(
                    FindingKind::Worker,
                    format!("{}: not a record: {:?}", l.path.display(), b.0),
                ));
            }
        }
        if acquired != released {
            findings.push(Finding::new(
                FindingKind::Count,
                format!("COUNT: {acquired} acquisitions returned but {released} releases recorded"),
            ));
        }
        // Every lock is free, or held by a dead worker and taken over by the runner now.
        for (x, lock) in locks.iter().enumerate() {
            let h = lock.handle();
            match h.acquire(Some(Duration::ZERO)) {
                Status::Ok | Status::OwnerDied => {
                    if let Status::Error(e) = h.release() {
                        findings.push(Finding::new(
                            FindingKind::Worker,
                            format!("lock {}: the runner's release failed: {e}", NAMES[x]),
                        ));
                    }
                }
                s => findings.push(Finding::new(
                    FindingKind::Count,
                    format!(
                        "COUNT: lock {} cannot be taken after every worker ended ({s:?}): held by {}",
                        NAMES[x],
                        match h.holder() {
                            Some(Some(pid)) => format!("pid {pid}"),
                            Some(None) => "nobody".into(),
                            None => "? (no HOLDER capability)".into(),
                        }
                    ),
                )),
            }
        }
    }
    let acquired = all_acquired;
    let rate = acquired as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "locks: {acquired} acquisitions in {:.2} s ({rate:.0}/s) by {procs} workers of {k} locks; lock-order validator {}",
        elapsed.as_secs_f64(),
        if lockdep { "on (shared graph)" } else { "OFF" }
    );
    if killer.kills + freezer.stops > 0 {
        let _ = writeln!(
            summary,
            "  faults: {} workers killed and replaced, {recoveries} locks taken over from a dead holder; {} freezes",
            killer.kills, freezer.stops
        );
    }
    if let Some(d) = detected {
        let _ = writeln!(summary, "  detected after {:.0} ms", d.as_secs_f64() * 1e3);
    } else if complete && findings.is_empty() {
        let _ = writeln!(
            summary,
            "  every acquisition in the global order released (by every worker not killed); every lock free or taken over at the end"
        );
    }
    if !matches!(imp, LockImpl::Reference { .. }) {
        let _ = writeln!(
            summary,
            "  implementation: {} (capabilities {})",
            imp.name(),
            caps.words()
        );
        for n in caps.not_checked() {
            let _ = writeln!(summary, "  not checked: {n}");
        }
    }
    let mut names: Vec<&str> = segments.0.iter().map(|s| s.name().as_str()).collect();
    names.extend(locks.iter().map(|l| l.name()));
    let _ = writeln!(summary, "  segments {} (removed)", names.join(" "));
    let figures = serde_json::json!({
        "runner_pid": std::process::id(),
        "procs": procs, "locks": k, "lockdep": lockdep,
        "acquisitions": acquired, "acquisitions_per_s": rate,
        "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        "detect_ms": detected.map(|d| d.as_secs_f64() * 1e3),
        "hang_timeout_ms": hang.as_secs_f64() * 1e3,
        "kills": killer.kills, "stops": freezer.stops, "takeovers": recoveries,
        "implementation": imp.name(), "capabilities": caps,
        "not_checked": caps.not_checked(),
    });
    drop(crew);
    drop(locks);
    drop(graph);
    drop(segments);
    Ok(Outcome {
        summary,
        figures,
        findings,
        interrupted,
        ops: acquired,
        elapsed,
        faults: Faults {
            kills: killer.kills as u64,
            stops: freezer.stops as u64,
        },
    })
}

/// Acquisitions returned and releases recorded, over every ledger.
fn tally<'a>(ledgers: impl Iterator<Item = &'a Ledger>) -> (u64, u64) {
    let mut acquired = 0;
    let mut released = 0;
    for r in ledgers.flat_map(|l| &l.records) {
        match r {
            Record::Done { op: Op::Lock, .. } => acquired += 1,
            Record::Released { op: Op::Lock } => released += 1,
            _ => {}
        }
    }
    (acquired, released)
}
