//! The storm itself: create the segments, start the crew, kill and watch, then drain and check.

use super::{
    check, payload, StormConfig, StormReport, StormSpec, LATE_WAKES_FLOOR, LOG_RING, LOG_STAGE,
    LOG_TEXT,
};
use crate::procs::capture::{self, catch_holder, confirm_hang, Caught, ProcInfo};
use crate::procs::crew::Crew;
use crate::procs::ledger::{self, Ledger};
use crate::procs::SetupError;
use crate::report::{Finding, FindingKind};
use primitives::lock::SharedReentrantLock;
use primitives::msg::ring::{RingError, RingMessage, SharedLog};
use primitives::mvar::{SharedMVar, SharedMVarError};
use primitives::shm::ShmName;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Drains in a row that find the ring lock held by a live worker before it is called a hang.
const BUSY_DRAINS_IN_A_ROW: usize = 3;

/// The segments of one storm, unlinked when dropped (every exit path).
struct Segments {
    mvar: SharedMVar,
    lock: SharedReentrantLock,
    log: SharedLog,
}

impl Drop for Segments {
    fn drop(&mut self) {
        let _ = self.mvar.segment().unlink();
        let _ = self.lock.segment().unlink();
        let _ = self.log.segment().unlink();
    }
}

fn create(cfg: &StormConfig) -> Result<(Segments, StormSpec), SetupError> {
    let flavor = crate::procs::controls::flavor(cfg.control.as_deref())
        .ok_or_else(|| SetupError(format!("unknown control {:?}", cfg.control)))?;
    let participants = cfg.participants();
    if participants > primitives::shm::MAX_PARTICIPANTS {
        return Err(SetupError(format!(
            "--procs {} needs {participants} participant slots per segment; a segment holds at most {}",
            cfg.procs,
            primitives::shm::MAX_PARTICIPANTS
        )));
    }
    let names = [
        ShmName::unique("storm"),
        ShmName::unique("storm-lock"),
        ShmName::unique("storm-log"),
    ];
    let mvar = SharedMVar::create_with(
        &names[0],
        cfg.payload.max(payload::MIN_LEN),
        participants,
        flavor,
    )
    .map_err(|e| SetupError(format!("cannot create the shared MVar: {e}")))?;
    let lock = SharedReentrantLock::create_with_participants(&names[1], participants);
    let lock = match lock {
        Ok(l) => l,
        Err(e) => {
            let _ = mvar.segment().unlink();
            return Err(SetupError(format!("cannot create the shared lock: {e}")));
        }
    };
    let log = SharedLog::create_with(&names[2], LOG_RING, LOG_TEXT, LOG_STAGE, participants);
    let log = match log {
        Ok(g) => g,
        Err(e) => {
            let _ = mvar.segment().unlink();
            let _ = lock.segment().unlink();
            return Err(SetupError(format!("cannot create the shared log: {e}")));
        }
    };
    let spec = StormSpec {
        mvar: names[0].as_str().to_string(),
        lock: names[1].as_str().to_string(),
        log: names[2].as_str().to_string(),
        seed: cfg.seed,
        op_timeout_ns: cfg.op_timeout.as_nanos() as u64,
        control: cfg.control.clone(),
        lib: None,
        plugin: None,
        payload: cfg.payload.max(payload::MIN_LEN),
    };
    Ok((Segments { mvar, lock, log }, spec))
}

/// Runs a storm: see the module docs.
pub fn run(cfg: &StormConfig) -> Result<StormReport, SetupError> {
    crate::procs::crew::check_nproc(cfg.procs)?;
    let mut crew = Crew::new("storm")?;
    crew.set_chaos(crate::procs::faults::chaos_seed(cfg.chaos, cfg.seed));
    let (segs, spec) = create(cfg)?;
    let Segments { mvar, lock, log } = &segs;
    let mut delivered: Vec<RingMessage> = Vec::new();
    for _ in 0..cfg.procs {
        crew.spawn(&spec)?;
    }
    let mut rng = crate::prng::SplitMix64::new(cfg.seed);
    let mut report = StormReport {
        segment: spec.mvar.clone(),
        ..StormReport::default()
    };
    let (grace, stall) = cfg.scaled();
    let start = Instant::now();
    let mut last_gen = mvar.generation();
    let mut last_commit = Instant::now();
    let silent_limit = cfg.op_timeout + stall;
    let gap_ms = cfg.gap.as_millis().max(1) as usize;
    // Let the workers start before the first kill.
    std::thread::sleep(Duration::from_millis(50));
    let mut progress = crate::procs::progress::Progress::new("kills", cfg.kills as u64);
    while report.kills < cfg.kills && start.elapsed() < cfg.max_time {
        progress.set(report.kills as u64, || {
            format!(
                "{} commits, {} holder kills",
                mvar.generation(),
                report.holder_kills + report.lock_holder_kills
            )
        });
        if let Some(sig) = crate::signals::received() {
            report.interrupted = Some(sig.as_str().to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.below(2 * gap_ms) as u64));
        // The runner is the log's reader: keep the ring from filling up.
        drain_log(log, &mut delivered, &mut report, true);
        // Progress: commits, and every live worker's ledger.
        let g = mvar.generation();
        if g != last_gen {
            last_gen = g;
            last_commit = Instant::now();
        } else if last_commit.elapsed() > stall {
            let text = format!(
                "WEDGED: no commit for {:.1} s\n{}",
                last_commit.elapsed().as_secs_f64(),
                diagnose(mvar, &crew)
            );
            report
                .findings
                .push(Finding::new(FindingKind::Wedged, text));
            break;
        }
        if let Some(f) = overrun_check(&crew, grace, &mut report) {
            report.findings.push(f);
            report.findings.last_mut().expect("just pushed").text +=
                &format!("\n{}", diagnose(mvar, &crew));
        }
        for (i, status) in crew.exited() {
            let m = &crew.members()[i];
            report.findings.push(Finding::new(
                FindingKind::Worker,
                format!(
                    "worker {} (pid {}) exited by itself: {status} (torn value or setup error; see its last records below)\n{}",
                    m.id,
                    m.pid(),
                    diagnose(mvar, &crew)
                ),
            ));
        }
        let mut stuck = None;
        for m in crew.members_mut() {
            let len = std::fs::metadata(&m.ledger).map_or(0, |md| md.len());
            if len != m.last_len {
                m.last_len = len;
                m.last_change = Instant::now();
            } else if m.last_change.elapsed() > silent_limit
                && !matches!(ProcInfo::of(m.pid()).state, Some('R'))
            {
                stuck = Some(m.id);
            }
        }
        if let Some(id) = stuck {
            report.findings.push(Finding::new(
                FindingKind::Hang,
                format!(
                    "HANG: worker {id} has been inside one operation for more than {:.1} s, although every operation has a deadline of at most {} ms\n{}",
                    silent_limit.as_secs_f64(),
                    cfg.op_timeout.as_millis(),
                    diagnose(mvar, &crew)
                ),
            ));
        }
        let (sleeps, late) = mvar.sleep_stats();
        if lost_wakeups(sleeps, late) {
            report.findings.push(lost_wakeups_finding(sleeps, late));
        }
        if !report.findings.is_empty() {
            break;
        }
        // Every other kill targets whoever holds the box's lock at that moment (polled for up
        // to 20 ms): it is stopped with SIGSTOP, and killed if it is still inside its critical
        // section — mid-copy, between a commit and its wake-up, before its unlock. One in four
        // does the same for the shared reentrant lock (held while logging). The other kills
        // strike a random worker wherever it is.
        let mut victim = rng.below(crew.members().len());
        let box_holder = || mvar.lock_holder().filter(|h| h.1).map(|h| h.0.pid);
        let lock_holder = || lock.owner().map(|w| w.pid);
        let pids: Vec<u32> = crew.members().iter().map(|m| m.pid()).collect();
        let window = Duration::from_millis(20);
        let caught = match report.kills % 4 {
            1 | 3 => catch_holder(&pids, box_holder, true, window),
            2 => catch_holder(&pids, lock_holder, false, window),
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
            Some(Caught::Asleep(i)) => {
                let m = &crew.members()[i];
                report.findings.push(Finding::new(
                    FindingKind::Hang,
                    format!(
                        "HANG: worker {} (pid {}) sleeps in the kernel while holding the box's lock (the protocol never waits inside its critical section); everyone else's operations can only time out\n{}",
                        m.id,
                        m.pid(),
                        diagnose(mvar, &crew)
                    ),
                ));
                break;
            }
            None => {}
        }
        crew.respawn(victim, &spec)?;
        report.kills += 1;
    }
    drop(progress);
    // Stop everyone (at a random point too), then drain the box as the last survivor.
    crew.kill_all();
    report.elapsed = start.elapsed();
    finish(cfg, &crew, &segs, &spec, delivered, &mut report);
    drop(crew);
    drop(segs);
    Ok(report)
}

/// A worker inside an operation more than `grace` past its deadline, confirmed hung (not
/// runnable, not waiting for a CPU, still inside after another `grace`).
pub(super) fn overrun_check(
    crew: &Crew,
    grace: Duration,
    report: &mut StormReport,
) -> Option<Finding> {
    let now = ledger::now_ns();
    for m in crew.members() {
        let Some(last) = ledger::last_record(&m.ledger) else {
            continue;
        };
        let Some((op, over)) = ledger::overrun(&last, now) else {
            continue;
        };
        report.max_overrun = report.max_overrun.max(over);
        if over <= grace {
            continue;
        }
        let still = || ledger::last_record(&m.ledger).as_ref() == Some(&last);
        match confirm_hang(m.pid(), grace, still) {
            capture::Verdict::Hung(info) => {
                let over = ledger::overrun(&last, ledger::now_ns()).map_or(over, |o| o.1);
                return Some(Finding::new(
                    FindingKind::Hang,
                    format!(
                        "HANG: worker {} (pid {}) is still in its {op} {:.0} ms after that operation's deadline (grace {} ms), asleep in the kernel ({})",
                        m.id,
                        m.pid(),
                        over.as_secs_f64() * 1e3,
                        grace.as_millis(),
                        info.describe()
                    ),
                ));
            }
            capture::Verdict::Runnable => report.busy_overruns += 1,
            _ => {}
        }
    }
    None
}

/// After the storm: rescue and drain the log, check the lock, drain the box, read the ledgers
/// and check everything.
fn finish(
    cfg: &StormConfig,
    crew: &Crew,
    segs: &Segments,
    spec: &StormSpec,
    mut delivered: Vec<RingMessage>,
    report: &mut StormReport,
) {
    let Segments { mvar, lock, log } = segs;
    // Deliver what dead workers staged, then read everything.
    if let Err(e) = log.rescue_dead() {
        report
            .findings
            .push(Finding::new(FindingKind::Log, format!("LOG: rescue: {e}")));
    }
    drain_log(log, &mut delivered, report, false);
    // The lock must still be usable (taken over from a dead holder if need be).
    match lock.lock_timeout(Duration::from_secs(2)) {
        Ok(g) => drop(g),
        Err(e) => report.findings.push(Finding::new(
            FindingKind::Unusable,
            format!(
                "the shared lock is unusable after the storm: {e} (held by {:?})",
                lock.owner()
            ),
        )),
    }
    report.lock_recoveries = lock.recoveries();
    // The runner drains through its own handle running the *reference* protocol: a control's
    // defect must never hang the runner itself (every participant is dead by now).
    let reopened = ShmName::parse(&spec.mvar)
        .ok()
        .and_then(|n| SharedMVar::open(&n).ok());
    let drain: &SharedMVar = match &reopened {
        Some(m) => m,
        None => {
            report.findings.push(Finding::new(
                FindingKind::Unusable,
                "cannot reopen the box to drain it",
            ));
            mvar
        }
    };
    let mut buf = vec![0u8; drain.payload_len()];
    let final_value = match drain.try_take(&mut buf) {
        Ok(o) => {
            if o.recovered.is_some() {
                report.recoveries_seen += 1;
            }
            match payload::decode(&buf) {
                Some(id) => Some(id),
                None => {
                    report.findings.push(Finding::new(
                        FindingKind::Torn,
                        format!(
                            "TORN: the value left in the box is torn (id field {:#x})",
                            payload::raw_id(&buf)
                        ),
                    ));
                    None
                }
            }
        }
        Err(SharedMVarError::Empty) => None,
        Err(e) => {
            report.findings.push(Finding::new(
                FindingKind::Unusable,
                format!("final take: {e}"),
            ));
            None
        }
    };
    report.commits = drain.generation();
    report.recoveries = drain.recoveries();
    (report.sleeps, report.late_wakes) = drain.sleep_stats();
    drop(reopened);
    let ledgers: Vec<Ledger> = crew
        .all_ledgers()
        .iter()
        .filter_map(|p| Ledger::read(p))
        .collect();
    check::check(&ledgers, final_value, true, report);
    check::check_log(&ledgers, &delivered, report);
    if lost_wakeups(report.sleeps, report.late_wakes)
        && !report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::LostWakeups)
    {
        report
            .findings
            .push(lost_wakeups_finding(report.sleeps, report.late_wakes));
    }
    let _ = cfg;
}

/// Whether late wake-ups are too many to be explained by kills (more than a tenth of the sleeps).
fn lost_wakeups(sleeps: u64, late: u64) -> bool {
    late > LATE_WAKES_FLOOR && late * 10 > sleeps
}

fn lost_wakeups_finding(sleeps: u64, late: u64) -> Finding {
    Finding::new(
        FindingKind::LostWakeups,
        format!(
            "LOST WAKE-UPS: {late} of {sleeps} kernel sleeps ended by their slice although the box was ready (more than a tenth: wake-ups do not reach the sleepers)"
        ),
    )
}

/// Workers alike beyond this many are one line with a count in a hang report.
const SHOWN_ONE_BY_ONE: usize = 4;

/// What every party waits on, for a hang report.
fn diagnose(mvar: &SharedMVar, crew: &Crew) -> String {
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
    s += &crew.describe_members(SHOWN_ONE_BY_ONE);
    s
}

/// Reads everything in the log's ring into `out`; a lost or corrupt record is a failure.
/// During the storm (`during`), a ring lock held by a live worker for the ring's whole lock
/// timeout is a busy machine (the holder waits for a CPU), retried at the next drain — a HANG
/// only after [`BUSY_DRAINS_IN_A_ROW`] in a row; after the storm everyone is dead and a holder is
/// always taken over, so any error is a finding.
pub(super) fn drain_log(
    log: &SharedLog,
    out: &mut Vec<RingMessage>,
    r: &mut StormReport,
    during: bool,
) {
    let result = log.drain(usize::MAX);
    if during {
        if let Err(RingError::Timeout) = result {
            r.busy_drains += 1;
            r.busy_in_a_row += 1;
            if r.busy_in_a_row >= BUSY_DRAINS_IN_A_ROW {
                r.findings.push(Finding::new(
                    FindingKind::Hang,
                    format!(
                        "HANG: the log's ring lock stayed held by a live worker through {} drains in a row, {:?} each",
                        r.busy_in_a_row,
                        primitives::msg::ring::LOCK_TIMEOUT
                    ),
                ));
            }
            return;
        }
        r.busy_in_a_row = 0;
    }
    match result {
        Ok(d) => {
            if d.lost > 0 || d.corrupt > 0 {
                r.findings.push(Finding::new(
                    FindingKind::Log,
                    format!(
                        "LOG: the ring reports {} lost and {} corrupt messages",
                        d.lost, d.corrupt
                    ),
                ));
            }
            out.extend(d.messages);
        }
        Err(e) => r.findings.push(Finding::new(
            FindingKind::Log,
            format!("LOG: drain failed: {e}"),
        )),
    }
}
