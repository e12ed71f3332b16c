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
//! Workers are this binary re-executed (`torture __storm-worker ...`), never forked from the
//! threaded runner; they die with the runner (`PR_SET_PDEATHSIG`), and the runner kills and
//! reaps all of them and unlinks the segment on every exit path.

pub mod cli;
pub mod payload;
pub mod worker;

use primitives::lock::SharedReentrantLock;
use primitives::msg::ring::{RingMessage, SharedLog};
use primitives::mvar::{Flavor, SharedMVar, SharedMVarError};
use primitives::shm::identity::process_state;
use primitives::shm::ShmName;
use primitives::sync::futex::Scope;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Late wake-ups below this many are never reported (a kill between a commit and its wake, or
/// of a woken waiter, legitimately makes one).
const LATE_WAKES_FLOOR: u64 = 20;

/// Bad ledger records listed one by one before the rest are only counted.
const MAX_BAD_RECORDS_SHOWN: usize = 3;

/// The shared log's ring (records), text bytes per record and per-participant staging.
const LOG_RING: usize = 1 << 16;
const LOG_TEXT: usize = 64;
const LOG_STAGE: usize = 64;

/// The negative controls a storm can run (each breaks one rule of the protocol).
pub const STORM_CONTROLS: &[(&str, &str)] = &[
    (
        "private-futex",
        "seed 000: the box's futex words use FUTEX_PRIVATE in shared memory; wake-ups never cross processes",
    ),
    (
        "no-recovery",
        "a lock held by a dead participant is never taken over",
    ),
    (
        "stale-waiter-count",
        "glibc BZ 21422's class: a waker waits for every counted waiter to acknowledge; a killed waiter never does",
    ),
];

/// The flavour of a control name.
pub fn control_flavor(name: &str) -> Option<Flavor> {
    let r = Flavor::REFERENCE;
    match name {
        "private-futex" => Some(Flavor {
            scope: Scope::Private,
            ..r
        }),
        "no-recovery" => Some(Flavor {
            recover: false,
            ..r
        }),
        "stale-waiter-count" => Some(Flavor {
            wait_for_acks: true,
            ..r
        }),
        _ => None,
    }
}

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
    /// `None`: the reference; else a name from [`STORM_CONTROLS`].
    pub control: Option<String>,
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
        }
    }
}

/// What a storm found.
#[derive(Debug, Default)]
pub struct StormReport {
    /// Kills delivered.
    pub kills: usize,
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
    pub elapsed: Duration,
    /// Longest time a worker was seen inside an operation past that operation's deadline.
    pub max_overrun: Duration,
    /// Broken invariants and hangs (empty = pass).
    pub failures: Vec<String>,
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
            "  longest time seen inside an operation past its deadline: {:.1} ms",
            self.max_overrun.as_secs_f64() * 1e3
        );
        if self.failures.is_empty() {
            let _ = writeln!(s, "  every invariant held");
        }
        for f in &self.failures {
            let _ = writeln!(s, "  FAILED: {f}");
        }
        s
    }
}

/// A setup error (the storm could not run).
#[derive(Debug)]
pub struct SetupError(pub String);

struct Worker {
    child: Child,
    incarnation: u32,
    ledger: PathBuf,
    last_len: u64,
    last_change: Instant,
}

/// Kills and reaps every worker, removes the ledger directory (unless kept), on every path.
struct Crew {
    workers: Vec<Worker>,
    dir: PathBuf,
    keep_dir: bool,
}

impl Drop for Crew {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The segments of one storm: the box, the lock, the log.
struct Names {
    mvar: ShmName,
    lock: ShmName,
    log: ShmName,
}

fn spawn(
    exe: &Path,
    cfg: &StormConfig,
    names: &Names,
    dir: &Path,
    incarnation: u32,
) -> Result<Worker, SetupError> {
    let ledger = dir.join(format!("worker-{incarnation}.ledger"));
    let mut cmd = Command::new(exe);
    cmd.arg("__storm-worker")
        .arg(names.mvar.as_str())
        .arg(names.lock.as_str())
        .arg(names.log.as_str())
        .arg(&ledger)
        .arg(incarnation.to_string())
        .arg(cfg.seed.wrapping_add(u64::from(incarnation)).to_string())
        .arg(cfg.op_timeout.as_millis().to_string())
        .arg(cfg.control.as_deref().unwrap_or("reference"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = cmd
        .spawn()
        .map_err(|e| SetupError(format!("cannot start a worker ({}): {e}", exe.display())))?;
    Ok(Worker {
        child,
        incarnation,
        ledger,
        last_len: 0,
        last_change: Instant::now(),
    })
}

/// Runs a storm with the worker binary `exe` (this binary).
pub fn run(exe: &Path, cfg: &StormConfig) -> Result<StormReport, SetupError> {
    let flavor = match &cfg.control {
        None => Flavor::REFERENCE,
        Some(c) => control_flavor(c).ok_or_else(|| SetupError(format!("unknown control {c}")))?,
    };
    let name = ShmName::unique("storm");
    let names = Names {
        mvar: name.clone(),
        lock: ShmName::unique("storm-lock"),
        log: ShmName::unique("storm-log"),
    };
    let participants = (cfg.procs as u32 * 4 + 16).min(primitives::shm::MAX_PARTICIPANTS);
    let mvar = SharedMVar::create_with(
        &name,
        cfg.payload.max(payload::MIN_LEN),
        participants,
        flavor,
    )
    .map_err(|e| SetupError(format!("cannot create the shared MVar: {e}")))?;
    let lock = SharedReentrantLock::create(&names.lock)
        .map_err(|e| SetupError(format!("cannot create the shared lock: {e}")))?;
    let log = SharedLog::create(&names.log, LOG_RING, LOG_TEXT, LOG_STAGE)
        .map_err(|e| SetupError(format!("cannot create the shared log: {e}")))?;
    let mut delivered: Vec<RingMessage> = Vec::new();
    let dir = std::env::temp_dir().join(format!(
        "torture-storm-{}-{}",
        std::process::id(),
        name.as_str().rsplit('-').nth(2).unwrap_or("0")
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| SetupError(format!("cannot create {}: {e}", dir.display())))?;
    let mut crew = Crew {
        workers: Vec::new(),
        dir: dir.clone(),
        keep_dir: false,
    };
    let mut next_inc = 1u32;
    for _ in 0..cfg.procs {
        crew.workers.push(spawn(exe, cfg, &names, &dir, next_inc)?);
        next_inc += 1;
    }
    let mut rng = crate::prng::SplitMix64::new(cfg.seed);
    let mut report = StormReport {
        segment: name.to_string(),
        ..StormReport::default()
    };
    let start = Instant::now();
    let mut last_gen = mvar.generation();
    let mut last_commit = Instant::now();
    let grace = cfg.op_timeout + cfg.stall;
    let gap_ms = cfg.gap.as_millis().max(1) as usize;
    // Let the workers start before the first kill.
    std::thread::sleep(Duration::from_millis(50));
    while report.kills < cfg.kills && start.elapsed() < cfg.max_time {
        std::thread::sleep(Duration::from_millis(rng.below(2 * gap_ms) as u64));
        // The runner is the log's reader: keep the ring from filling up.
        drain_log(&log, &mut delivered, &mut report);
        // Progress: commits, and every live worker's ledger.
        let g = mvar.generation();
        if g != last_gen {
            last_gen = g;
            last_commit = Instant::now();
        } else if last_commit.elapsed() > cfg.stall {
            report.failures.push(format!(
                "WEDGED: no commit for {:.1} s\n{}",
                last_commit.elapsed().as_secs_f64(),
                diagnose(&mvar, &crew.workers)
            ));
            break;
        }
        let mut stuck = None;
        let now = worker::now_ns();
        let mut late = None;
        for w in &crew.workers {
            if let Some((op, over)) = overrun(&w.ledger, now) {
                report.max_overrun = report.max_overrun.max(over);
                if over > cfg.grace && late.is_none() {
                    late = Some((w.incarnation, w.child.id(), op, over));
                }
            }
        }
        if let Some((inc, pid, op, over)) = late {
            report.failures.push(format!(
                "HANG: worker {inc} (pid {pid}) is still in its {op} {:.0} ms after that operation's deadline (grace {} ms)\n{}",
                over.as_secs_f64() * 1e3,
                cfg.grace.as_millis(),
                diagnose(&mvar, &crew.workers)
            ));
        }
        for w in &mut crew.workers {
            if let Ok(Some(status)) = w.child.try_wait() {
                report.failures.push(format!(
                    "worker {} (pid {}) exited by itself: {status} (torn value or setup error; see its ledger)",
                    w.incarnation,
                    w.child.id()
                ));
                continue;
            }
            let len = std::fs::metadata(&w.ledger).map_or(0, |m| m.len());
            if len != w.last_len {
                w.last_len = len;
                w.last_change = Instant::now();
            } else if w.last_change.elapsed() > grace {
                stuck = Some(w.incarnation);
            }
        }
        if let Some(inc) = stuck {
            report.failures.push(format!(
                "HANG: worker {inc} has been inside one operation for more than {:.1} s, although every operation has a deadline of at most {} ms\n{}",
                grace.as_secs_f64(),
                cfg.op_timeout.as_millis(),
                diagnose(&mvar, &crew.workers)
            ));
        }
        let (sleeps, late) = mvar.sleep_stats();
        if lost_wakeups(sleeps, late) {
            report.failures.push(lost_wakeups_text(sleeps, late));
        }
        if !report.failures.is_empty() {
            break;
        }
        // Every other kill targets whoever holds the box's lock at that moment (polled for up
        // to 20 ms): it is stopped with SIGSTOP, and killed if it is still inside its critical
        // section — mid-copy, between a commit and its wake-up, before its unlock. The other
        // kills strike a random worker wherever it is.
        let mut victim = rng.below(crew.workers.len());
        // (One in four: the same for the shared reentrant lock, held while logging.)
        let box_holder = || mvar.lock_holder().filter(|h| h.1).map(|h| h.0.pid);
        let lock_holder = || lock.owner().map(|w| w.pid);
        let caught = match report.kills % 4 {
            1 | 3 => catch_holder(&crew.workers, box_holder, true),
            2 => catch_holder(&crew.workers, lock_holder, false),
            _ => None,
        };
        match caught {
            Some(Caught::Stopped(i)) => {
                victim = i;
                if report.kills % 2 == 1 {
                    report.holder_kills += 1;
                } else {
                    report.lock_holder_kills += 1;
                }
            }
            Some(Caught::Asleep(i)) => report.failures.push(format!(
                "HANG: worker {} (pid {}) sleeps in the kernel while holding the box's lock (the protocol never waits inside its critical section); everyone else's operations can only time out\n{}",
                crew.workers[i].incarnation,
                crew.workers[i].child.id(),
                diagnose(&mvar, &crew.workers)
            )),
            None => {}
        }
        if !report.failures.is_empty() {
            break;
        }
        let w = &mut crew.workers[victim];
        let _ = w.child.kill();
        let _ = w.child.wait();
        report.kills += 1;
        crew.workers[victim] = spawn(exe, cfg, &names, &dir, next_inc)?;
        next_inc += 1;
    }
    // Stop everyone (at a random point too), then drain the box as the last survivor.
    for w in &mut crew.workers {
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    report.elapsed = start.elapsed();
    // Deliver what dead workers staged, then read everything.
    if let Err(e) = log.rescue_dead() {
        report.failures.push(format!("log rescue: {e}"));
    }
    drain_log(&log, &mut delivered, &mut report);
    // The lock must still be usable (taken over from a dead holder if need be).
    match lock.lock_timeout(Duration::from_secs(2)) {
        Ok(g) => drop(g),
        Err(e) => report.failures.push(format!(
            "the shared lock is unusable after the storm: {e} (held by {:?})",
            lock.owner()
        )),
    }
    report.lock_recoveries = lock.recoveries();
    // The runner drains through its own handle running the *reference* protocol: a control's
    // defect must never hang the runner itself (every participant is dead by now).
    let mvar = match SharedMVar::open(&name) {
        Ok(m) => m,
        Err(e) => {
            report
                .failures
                .push(format!("cannot reopen the box to drain it: {e}"));
            mvar
        }
    };
    let mut buf = vec![0u8; mvar.payload_len()];
    let final_value = match mvar.try_take(&mut buf) {
        Ok(o) => {
            if o.recovered.is_some() {
                report.recoveries_seen += 1;
            }
            match payload::decode(&buf) {
                Some(id) => Some(id),
                None => {
                    report.failures.push(format!(
                        "the value left in the box is torn (id field {})",
                        payload::raw_id(&buf)
                    ));
                    None
                }
            }
        }
        Err(SharedMVarError::Empty) => None,
        Err(e) => {
            report.failures.push(format!("final take: {e}"));
            None
        }
    };
    report.commits = mvar.generation();
    report.recoveries = mvar.recoveries();
    (report.sleeps, report.late_wakes) = mvar.sleep_stats();
    // Read every ledger once (a worker killed before its first record has none).
    let ledgers: Vec<Ledger> = (1..next_inc)
        .map(|i| dir.join(format!("worker-{i}.ledger")))
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            Some(Ledger { path, text })
        })
        .collect();
    check(&ledgers, final_value, &mut report);
    check_log(&ledgers, &delivered, &mut report);
    if lost_wakeups(report.sleeps, report.late_wakes)
        && !report
            .failures
            .iter()
            .any(|f| f.starts_with("LOST WAKE-UPS"))
    {
        report
            .failures
            .push(lost_wakeups_text(report.sleeps, report.late_wakes));
    }
    if !report.failures.is_empty() {
        crew.keep_dir = true;
        report
            .failures
            .push(format!("ledgers kept in {}", dir.display()));
    }
    drop(crew);
    let _ = mvar.segment().unlink();
    let _ = lock.segment().unlink();
    let _ = log.segment().unlink();
    Ok(report)
}

/// Whether late wake-ups are too many to be explained by kills (more than a tenth of the sleeps).
fn lost_wakeups(sleeps: u64, late: u64) -> bool {
    late > LATE_WAKES_FLOOR && late * 10 > sleeps
}

fn lost_wakeups_text(sleeps: u64, late: u64) -> String {
    format!(
        "LOST WAKE-UPS: {late} of {sleeps} kernel sleeps ended by their slice although the box was ready (more than a tenth: wake-ups do not reach the sleepers)"
    )
}

/// A lock holder caught by [`catch_holder`].
enum Caught {
    /// Worker `i` is stopped (SIGSTOP) inside its critical section: kill it there.
    Stopped(usize),
    /// Worker `i` sleeps in the kernel while holding the lock (a hang).
    Asleep(usize),
}

/// Polls `holder()` (the pid holding a lock) for up to 20 ms for one of `workers`; freezes it
/// and, if it still holds the lock, returns it stopped — otherwise lets it go on and keeps
/// looking. With `detect_sleep`, a holder first seen asleep holding the lock is reported.
fn catch_holder(
    workers: &[Worker],
    holder: impl Fn() -> Option<u32>,
    detect_sleep: bool,
) -> Option<Caught> {
    let until = Instant::now() + Duration::from_millis(20);
    while Instant::now() < until {
        if let Some(pid) = holder() {
            if let Some(i) = workers.iter().position(|w| w.child.id() == pid) {
                let holds = || holder() == Some(pid);
                if detect_sleep && sleeps_holding(pid, holds) {
                    return Some(Caught::Asleep(i));
                }
                if stopped_holding(pid, holds) {
                    return Some(Caught::Stopped(i));
                }
            }
        }
        std::hint::spin_loop();
    }
    None
}

/// Whether `pid` is asleep (state `S`) while `holds()` the lock, in two looks 2 ms apart. A
/// reference participant holds the box's lock only for a copy and a commit, never across a
/// sleep; one merely re-taking the lock between sleeps cannot be seen holding it asleep twice.
fn sleeps_holding(pid: u32, holds: impl Fn() -> bool) -> bool {
    for look in 0..2 {
        if look > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !(holds() && process_state(pid) == Some(b'S') && holds()) {
            return false;
        }
    }
    true
}

/// Stops `pid` (SIGSTOP) and reports whether it is stopped while `holds()` a lock; if not,
/// continues it (SIGCONT).
fn stopped_holding(pid: u32, holds: impl Fn() -> bool) -> bool {
    use nix::sys::signal::{kill, Signal};
    let p = nix::unistd::Pid::from_raw(pid as i32);
    if kill(p, Signal::SIGSTOP).is_err() {
        return false;
    }
    let until = Instant::now() + Duration::from_millis(50);
    let stopped = loop {
        match process_state(pid) {
            Some(b'T' | b't') => break true,
            Some(b'Z' | b'X') | None => break false,
            _ if Instant::now() > until => break false,
            _ => std::thread::yield_now(),
        }
    };
    if stopped && holds() {
        return true;
    }
    let _ = kill(p, Signal::SIGCONT);
    false
}

/// If the last record of `ledger` opens an operation: its name and how far past its deadline
/// it is at `now_ns`.
fn overrun(ledger: &Path, now_ns: u128) -> Option<(&'static str, Duration)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(ledger).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(160))).ok()?;
    let mut tail = String::new();
    f.read_to_string(&mut tail).ok()?;
    let last = tail.lines().last()?;
    let mut it = last.split(' ');
    let op = match it.next()? {
        "P" => {
            it.next()?;
            "put"
        }
        "T" => "take",
        "K" => "lock",
        "R" => "read",
        _ => return None,
    };
    let start: u128 = it.next()?.parse().ok()?;
    let deadline: u128 = it.next()?.parse().ok()?;
    let late = now_ns.checked_sub(start + deadline)?;
    Some((
        op,
        Duration::from_nanos(late.min(u128::from(u64::MAX)) as u64),
    ))
}

/// What every party waits on, for a hang report.
fn diagnose(mvar: &SharedMVar, workers: &[Worker]) -> String {
    let mut s = String::new();
    let (takers, putters) = mvar.waiting();
    let _ = writeln!(
        s,
        "    box: {}, {} commits; waiting: {takers} takers/readers, {putters} putters (advisory counts)",
        if mvar.is_full() { "full" } else { "empty" },
        mvar.generation()
    );
    match mvar.lock_holder() {
        None => {
            let _ = writeln!(s, "    box lock: free");
        }
        Some((who, alive)) => {
            let _ = writeln!(
                s,
                "    box lock: held by {who} ({})",
                if alive {
                    "alive"
                } else {
                    "DEAD: nobody took it over"
                }
            );
        }
    }
    for w in workers {
        let pid = w.child.id();
        let state = process_state(pid).map_or_else(|| "gone".into(), |c| char::from(c).to_string());
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let last = std::fs::read_to_string(&w.ledger)
            .ok()
            .and_then(|t| t.lines().last().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "    worker {} pid {pid}: state {state} wchan {:?}; last record {:?}; silent for {:.1} s",
            w.incarnation,
            wchan.trim(),
            last,
            w.last_change.elapsed().as_secs_f64()
        );
    }
    s
}

/// One worker's ledger, read.
pub struct Ledger {
    /// Where it is (for reports).
    pub path: PathBuf,
    /// Its records.
    pub text: String,
}

/// Checks the ledgers against the box's commit count; see the module docs.
pub fn check(ledgers: &[Ledger], final_value: Option<u64>, r: &mut StormReport) {
    let mut put_intent: HashSet<u64> = HashSet::new();
    let mut put_done: Vec<u64> = Vec::new();
    let mut taken: Vec<u64> = Vec::new();
    let mut read_ids: Vec<u64> = Vec::new();
    let mut bad_records = 0usize;
    for Ledger { path, text } in ledgers {
        let mut open_put: Option<u64> = None;
        let mut open_take = false;
        for line in text.lines() {
            let mut it = line.split(' ');
            let tag = it.next().unwrap_or("");
            let arg = it.next().and_then(|a| a.parse::<u64>().ok());
            match (tag, arg) {
                ("P", Some(id)) => {
                    put_intent.insert(id);
                    open_put = Some(id);
                }
                ("p", Some(id)) => {
                    put_done.push(id);
                    open_put = None;
                }
                ("x", Some(_)) => {
                    open_put = None;
                    r.timeouts += 1;
                }
                ("T", _) => open_take = true,
                ("t", Some(id)) => {
                    taken.push(id);
                    open_take = false;
                }
                ("y", _) => {
                    open_take = false;
                    r.timeouts += 1;
                }
                ("R", _) => {}
                ("r", Some(id)) => read_ids.push(id),
                ("r", None) => {}
                ("V", _) => r.recoveries_seen += 1,
                // Lock and log traffic: checked by `check_log`.
                ("W", _) => r.lock_recoveries_seen += 1,
                ("K" | "k" | "z" | "L" | "l" | "o", _) => {}
                ("X", _) => r
                    .failures
                    .push(format!("TORN: {} saw a torn value: {line}", path.display())),
                // A kill can cut only between records; anything else is a bug of the worker.
                _ => {
                    bad_records += 1;
                    if bad_records <= MAX_BAD_RECORDS_SHOWN {
                        r.failures
                            .push(format!("bad ledger record {line:?} in {}", path.display()));
                    }
                }
            }
        }
        r.cut_puts += usize::from(open_put.is_some());
        r.cut_takes += usize::from(open_take);
    }
    if bad_records > MAX_BAD_RECORDS_SHOWN {
        r.failures.push(format!(
            "... {} more bad ledger records",
            bad_records - MAX_BAD_RECORDS_SHOWN
        ));
    }
    r.puts = put_done.len();
    r.takes = taken.len();
    r.reads = read_ids.len();
    let mut all_taken = taken.clone();
    all_taken.extend(final_value);
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for id in &all_taken {
        *seen.entry(*id).or_default() += 1;
    }
    let dups: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    if !dups.is_empty() {
        r.failures.push(format!(
            "DUPLICATED: {} value(s) taken more than once, e.g. {:#x}",
            dups.len(),
            dups[0]
        ));
    }
    let invented: Vec<_> = all_taken
        .iter()
        .chain(&read_ids)
        .filter(|id| !put_intent.contains(id))
        .collect();
    if !invented.is_empty() {
        r.failures.push(format!(
            "INVENTED: {} value(s) taken or read that nobody put, e.g. {:#x}",
            invented.len(),
            invented[0]
        ));
    }
    // The box alternates put, take, put, ... from empty.
    let puts_committed = r.commits.div_ceil(2);
    let takes_committed = r.commits / 2;
    let recorded_takes = all_taken.len() as u64;
    let (Some(cut_puts_committed), Some(cut_takes_committed)) = (
        puts_committed.checked_sub(put_done.len() as u64),
        takes_committed.checked_sub(recorded_takes),
    ) else {
        r.failures.push(format!(
            "COUNT: {} commits cannot hold {} returned puts and {} returned takes",
            r.commits,
            put_done.len(),
            recorded_takes
        ));
        return;
    };
    r.committed_cut_puts = cut_puts_committed;
    r.committed_cut_takes = cut_takes_committed;
    if cut_puts_committed > r.cut_puts as u64 || cut_takes_committed > r.cut_takes as u64 {
        r.failures.push(format!(
            "COUNT: {cut_puts_committed} puts and {cut_takes_committed} takes committed without being recorded, but only {} puts and {} takes were cut by a kill",
            r.cut_puts, r.cut_takes
        ));
    }
    let taken_set: HashSet<u64> = all_taken.iter().copied().collect();
    let lost: Vec<_> = put_done
        .iter()
        .filter(|id| !taken_set.contains(id))
        .collect();
    if lost.len() as u64 > cut_takes_committed {
        r.failures.push(format!(
            "LOST: {} value(s) whose put returned were never taken nor left in the box, but only {cut_takes_committed} take(s) died after committing; e.g. {:#x}",
            lost.len(),
            lost[0]
        ));
    }
}

/// Reads everything in the log's ring into `out`; a lost or corrupt record is a failure.
fn drain_log(log: &SharedLog, out: &mut Vec<RingMessage>, r: &mut StormReport) {
    match log.drain(usize::MAX) {
        Ok(d) => {
            if d.lost > 0 || d.corrupt > 0 {
                r.failures.push(format!(
                    "LOG: the ring reports {} lost and {} corrupt messages",
                    d.lost, d.corrupt
                ));
            }
            out.extend(d.messages);
        }
        Err(e) => r.failures.push(format!("LOG: drain failed: {e}")),
    }
}

/// Every message whose `log` returned was delivered exactly once, each worker's in order; no
/// message was invented; messages cut by a kill were delivered at most once.
pub fn check_log(ledgers: &[Ledger], delivered: &[RingMessage], r: &mut StormReport) {
    let mut logged: HashSet<u64> = HashSet::new();
    let mut started: HashSet<u64> = HashSet::new();
    for Ledger { text, .. } in ledgers {
        let mut open = None;
        for line in text.lines() {
            let mut it = line.split(' ');
            match (it.next(), it.next().and_then(|a| a.parse::<u64>().ok())) {
                (Some("L"), Some(id)) => {
                    started.insert(id);
                    open = Some(id);
                }
                (Some("l"), Some(id)) => {
                    logged.insert(id);
                    open = None;
                }
                (Some("o"), Some(_)) => open = None,
                _ => {}
            }
        }
        r.cut_logs += usize::from(open.is_some());
    }
    r.logged = logged.len();
    r.delivered = delivered.len();
    r.rescued = delivered.iter().filter(|m| m.rescued).count() as u64;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut last_of_origin: HashMap<u64, u64> = HashMap::new();
    for m in delivered {
        let Some(id) = m
            .text
            .strip_prefix("m ")
            .and_then(|t| t.parse::<u64>().ok())
        else {
            r.failures
                .push(format!("LOG: unexpected message {:?}", m.text));
            continue;
        };
        *seen.entry(id).or_default() += 1;
        if !started.contains(&id) {
            r.failures
                .push(format!("LOG: message {id:#x} delivered but never logged"));
        }
        let origin = id >> 32;
        if let Some(prev) = last_of_origin.insert(origin, id) {
            if prev > id {
                r.failures.push(format!(
                    "LOG: worker {origin}'s messages out of order: {prev:#x} before {id:#x}"
                ));
            }
        }
    }
    let dups = seen.values().filter(|n| **n > 1).count();
    if dups > 0 {
        r.failures
            .push(format!("LOG: {dups} message(s) delivered more than once"));
    }
    let missing: Vec<_> = logged.iter().filter(|id| !seen.contains_key(id)).collect();
    if !missing.is_empty() {
        r.failures.push(format!(
            "LOG: {} message(s) whose log returned were never delivered, e.g. {:#x}",
            missing.len(),
            missing[0]
        ));
    }
}
