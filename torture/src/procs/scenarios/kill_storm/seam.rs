//! The storm on a box that is not the reference's (`--impl-lib`, `--impl`): the box goes
//! through [`crate::procs::impls`]; the shared lock and log stay the reference's. What the
//! implementation does not promise is not checked, and the report lists it: without COMMITS
//! the exact accounting of values cut by a kill; without HOLDER the kills inside the box's
//! critical section (and a hang after a kill cannot be blamed on a dead holder); the kernel
//! sleep statistics are the reference's own. A hang after kills with the box's lock held by a
//! dead pid is NOT ROBUST, classified as `torture mvar` does ([`judge`]).

use super::run::{drain_log, overrun_check};
use super::steps::{lock_and_log, open_name};
use super::{check, payload, StormConfig, StormReport, StormSpec, LOG_RING, LOG_STAGE, LOG_TEXT};
use crate::procs::capture::{catch_holder, Caught, ProcInfo};
use crate::procs::crew::Crew;
use crate::procs::impls::judge::{self, holder_state, DoneCount};
use crate::procs::impls::{Caps, Implementation, MVarHandle, Status};
use crate::procs::ledger::{now_ns, Ledger, Op, Record};
use crate::procs::{SetupError, WorkerArgs};
use crate::report::{Finding, FindingKind};
use primitives::lock::{Mode, SharedReentrantLock, Validator};
use primitives::msg::ring::{RingMessage, SharedLog};
use primitives::shm::ShmName;
use std::time::{Duration, Instant};

/// The reference's segments of a storm (the lock and the log), unlinked when dropped.
struct Shared {
    lock: SharedReentrantLock,
    log: SharedLog,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.lock.segment().unlink();
        let _ = self.log.segment().unlink();
    }
}

/// Runs a storm on `imp`'s box.
pub fn run(cfg: &StormConfig, imp: &Implementation) -> Result<StormReport, SetupError> {
    crate::procs::crew::check_nproc(cfg.procs)?;
    let mut crew = Crew::new("storm")?;
    crew.set_chaos(crate::procs::faults::chaos_seed(cfg.chaos, cfg.seed));
    let participants = cfg.participants();
    if participants > primitives::shm::MAX_PARTICIPANTS {
        return Err(SetupError(format!(
            "--procs {} needs {participants} participant slots per segment; a segment holds at most {}",
            cfg.procs,
            primitives::shm::MAX_PARTICIPANTS
        )));
    }
    let caps = imp.caps();
    let names = [
        ShmName::unique("storm"),
        ShmName::unique("storm-lock"),
        ShmName::unique("storm-log"),
    ];
    // Destroyed when dropped: on every exit path, after the crew is reaped.
    let created = imp
        .create(&names[0], cfg.payload.max(payload::MIN_LEN), participants)
        .map_err(SetupError)?;
    let lock = SharedReentrantLock::create_with_participants(&names[1], participants)
        .map_err(|e| SetupError(format!("cannot create the shared lock: {e}")))?;
    let log = match SharedLog::create_with(&names[2], LOG_RING, LOG_TEXT, LOG_STAGE, participants) {
        Ok(g) => g,
        Err(e) => {
            let _ = lock.segment().unlink();
            return Err(SetupError(format!("cannot create the shared log: {e}")));
        }
    };
    let shared = Shared { lock, log };
    let Shared { lock, log } = &shared;
    let mvar = created.handle();
    let spec = StormSpec {
        mvar: created.name().to_string(),
        lock: names[1].as_str().to_string(),
        log: names[2].as_str().to_string(),
        seed: cfg.seed,
        op_timeout_ns: cfg.op_timeout.as_nanos() as u64,
        control: None,
        lib: imp.lib_path(),
        plugin: imp.plugin_name(),
        payload: cfg.payload.max(payload::MIN_LEN),
    };
    for _ in 0..cfg.procs {
        crew.spawn(&spec)?;
    }
    let mut report = StormReport {
        segment: spec.mvar.clone(),
        implementation: Some(imp.name()),
        capabilities: Some(caps),
        runner_pid: Some(std::process::id()),
        ..StormReport::default()
    };
    let skip = |r: &mut StormReport, what: &str| {
        if !r.not_checked.iter().any(|w| w == what) {
            r.not_checked.push(what.to_string());
        }
    };
    skip(
        &mut report,
        "kernel sleeps and late wake-ups (the reference's own counters)",
    );
    if !caps.holder {
        skip(
            &mut report,
            "kills inside the box's critical section (HOLDER)",
        );
    }
    let mut returned = DoneCount::default();
    let mut commits = |crew: &Crew| match mvar.commits() {
        Some(c) => c,
        None => returned.count(&crew.all_ledgers()),
    };
    let mut delivered: Vec<RingMessage> = Vec::new();
    let mut rng = crate::prng::SplitMix64::new(cfg.seed);
    let (grace, stall) = cfg.scaled();
    let start = Instant::now();
    let mut last_gen = commits(&crew);
    let mut last_commit = Instant::now();
    let silent_limit = cfg.op_timeout + stall;
    let gap_ms = cfg.gap.as_millis().max(1) as usize;
    let mut killed: Vec<u32> = Vec::new();
    std::thread::sleep(Duration::from_millis(50));
    let mut progress = crate::procs::progress::Progress::new("kills", cfg.kills as u64);
    while report.kills < cfg.kills && start.elapsed() < cfg.max_time {
        let g = commits(&crew);
        progress.set(report.kills as u64, || {
            format!(
                "{g} commits, {} holder kills",
                report.holder_kills + report.lock_holder_kills
            )
        });
        if let Some(sig) = crate::signals::received() {
            report.interrupted = Some(sig.as_str().to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.below(2 * gap_ms) as u64));
        drain_log(log, &mut delivered, &mut report, true);
        let g = commits(&crew);
        if g != last_gen {
            last_gen = g;
            last_commit = Instant::now();
        } else if last_commit.elapsed() > stall {
            let f = classify(mvar, imp, &crew, &killed, last_commit.elapsed(), &report)
                .unwrap_or_else(|| {
                    Finding::new(
                        FindingKind::Wedged,
                        format!(
                            "WEDGED: no commit for {:.1} s\n{}",
                            last_commit.elapsed().as_secs_f64(),
                            diagnose(mvar, imp, &crew, &killed)
                        ),
                    )
                });
            report.findings.push(f);
            break;
        }
        if let Some(mut f) = overrun_check(&crew, grace, &mut report) {
            if let Some(c) = classify(mvar, imp, &crew, &killed, last_commit.elapsed(), &report) {
                f = c;
            } else {
                f.text += &format!("\n{}", diagnose(mvar, imp, &crew, &killed));
            }
            report.findings.push(f);
        }
        for (i, status) in crew.exited() {
            let m = &crew.members()[i];
            report.findings.push(Finding::new(
                FindingKind::Worker,
                format!(
                    "worker {} (pid {}) exited by itself: {status} (torn value or setup error; see its last records below)\n{}",
                    m.id,
                    m.pid(),
                    diagnose(mvar, imp, &crew, &killed)
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
            let f = classify(mvar, imp, &crew, &killed, last_commit.elapsed(), &report)
            .unwrap_or_else(|| {
                Finding::new(
                    FindingKind::Hang,
                    format!(
                        "HANG: worker {id} has been inside one operation for more than {:.1} s, although every operation has a deadline of at most {} ms\n{}",
                        silent_limit.as_secs_f64(),
                        cfg.op_timeout.as_millis(),
                        diagnose(mvar, imp, &crew, &killed)
                    ),
                )
            });
            report.findings.push(f);
        }
        if !report.findings.is_empty() {
            break;
        }
        // As in the reference storm: every other kill strikes the box's lock holder (with
        // HOLDER), one in four the shared lock's; the others a random worker.
        let mut victim = rng.below(crew.members().len());
        let box_holder = || mvar.holder().flatten();
        let lock_holder = || lock.owner().map(|w| w.pid);
        let pids: Vec<u32> = crew.members().iter().map(|m| m.pid()).collect();
        let window = Duration::from_millis(20);
        let caught = match report.kills % 4 {
            1 | 3 if caps.holder => catch_holder(&pids, box_holder, true, window),
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
            // An implementation may sleep while it names itself the holder (a condition
            // variable's wait, say): not a finding here; the kill strikes at random.
            Some(Caught::Asleep(_)) | None => {}
        }
        killed.push(crew.members()[victim].pid());
        crew.respawn(victim, &spec)?;
        report.kills += 1;
    }
    drop(progress);
    crew.kill_all();
    report.elapsed = start.elapsed();
    finish(&crew, mvar, caps, &killed, &shared, delivered, &mut report);
    if let Some(c) = mvar.commits() {
        report.commits = c;
    } else {
        report.commits = commits(&crew);
    }
    drop(crew);
    drop(shared);
    drop(created);
    Ok(report)
}

/// Who waits on what (every member is a worker).
fn diagnose(mvar: &dyn MVarHandle, imp: &Implementation, crew: &Crew, killed: &[u32]) -> String {
    let roles = vec!["worker"; crew.members().len()];
    judge::diagnose(mvar, imp, crew, &roles, killed)
}

/// A hang after kills, classified as `torture mvar` does (`None`: an ordinary hang).
fn classify(
    mvar: &dyn MVarHandle,
    imp: &Implementation,
    crew: &Crew,
    killed: &[u32],
    quiet: Duration,
    report: &StormReport,
) -> Option<Finding> {
    judge::hang_after_kills(
        mvar,
        imp.caps(),
        killed,
        quiet,
        report.kills,
        report.holder_kills as u64,
        || diagnose(mvar, imp, crew, killed),
    )
}

/// After the storm: the log and the lock as in the reference storm; the box drained with a
/// try when that cannot wait on a dead holder; the ledgers checked as far as the capabilities
/// allow.
fn finish(
    crew: &Crew,
    mvar: &dyn MVarHandle,
    caps: Caps,
    killed: &[u32],
    shared: &Shared,
    mut delivered: Vec<RingMessage>,
    report: &mut StormReport,
) {
    let Shared { lock, log } = shared;
    if let Err(e) = log.rescue_dead() {
        report
            .findings
            .push(Finding::new(FindingKind::Log, format!("LOG: rescue: {e}")));
    }
    drain_log(log, &mut delivered, report, false);
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
    let holder_dead =
        matches!(mvar.holder(), Some(Some(pid)) if holder_state(pid, killed).starts_with("dead"));
    let drained = caps.robust || (caps.holder && !holder_dead);
    let mut final_value = None;
    if drained {
        let mut buf = vec![0u8; mvar.payload_len()];
        match mvar.take(&mut buf, Some(Duration::ZERO)) {
            Status::Ok | Status::OwnerDied => match payload::decode(&buf) {
                Some(id) => final_value = Some(id),
                None => report.findings.push(Finding::new(
                    FindingKind::Torn,
                    format!(
                        "TORN: the value left in the box is torn (id field {:#x})",
                        payload::raw_id(&buf)
                    ),
                )),
            },
            Status::Timeout => {}
            Status::Error(e) => report.findings.push(Finding::new(
                FindingKind::Unusable,
                format!("final take: {e}"),
            )),
        }
    }
    let ledgers: Vec<Ledger> = crew
        .all_ledgers()
        .iter()
        .filter_map(|p| Ledger::read(p))
        .collect();
    let exact = drained && mvar.commits().is_some();
    if let Some(c) = mvar.commits() {
        report.commits = c;
    }
    if !drained {
        report.not_checked.push(
            "the value left in the box (taking it could wait on a lock a dead process holds: neither ROBUST nor a live HOLDER)".into(),
        );
    }
    if mvar.commits().is_none() {
        report
            .not_checked
            .push("exact accounting of values cut by a kill (COMMITS)".into());
    }
    check::check(&ledgers, final_value, exact, report);
    check::check_log(&ledgers, &delivered, report);
}

/// A storm worker on an implementation's box: puts and takes through the seam (reads become
/// takes: the seam has no read), lock and log as in the reference storm.
pub fn worker(w: &WorkerArgs, spec: &StormSpec) -> Result<u8, String> {
    let imp = Implementation::select(None, spec.lib.as_deref(), spec.plugin.as_deref())?;
    let validator = Validator::new(Mode::Report);
    let class = validator.class("storm-lock", true);
    let lock = SharedReentrantLock::open(&open_name(&spec.lock)?)
        .map_err(|e| format!("cannot open {}: {e}", spec.lock))?
        .tracked(&class);
    let log = SharedLog::open(&open_name(&spec.log)?)
        .map_err(|e| format!("cannot open {}: {e}", spec.log))?;
    let mvar = imp.open(&spec.mvar, spec.payload)?;
    let mut ledger = w.writer()?;
    let mut rng = crate::prng::SplitMix64::new(spec.seed.wrapping_add(u64::from(w.id)));
    let max_ms = (spec.op_timeout_ns / 1_000_000).max(1) as usize;
    let mut counter: u32 = 0;
    let mut next_id = || {
        counter = counter.wrapping_add(1);
        (u64::from(w.id) << 32) | u64::from(counter)
    };
    let len = mvar.payload_len();
    let mut buf = vec![0u8; len];
    let begin = |op, id, deadline: Duration| Record::Begin {
        op,
        id,
        start_ns: now_ns(),
        deadline_ns: Some(deadline.as_nanos() as u64),
    };
    loop {
        let timeout = Duration::from_millis(1 + rng.below(max_ms) as u64);
        match rng.below(10) {
            0..=3 => {
                let id = next_id();
                ledger.record(&begin(Op::Put, Some(id), timeout));
                match mvar.put(&payload::encode(id, len), Some(timeout)) {
                    s @ (Status::Ok | Status::OwnerDied) => {
                        if s == Status::OwnerDied {
                            ledger.record(&Record::Recovered {
                                op: Op::Put,
                                from: 0,
                            });
                        }
                        ledger.record(&Record::Done {
                            op: Op::Put,
                            id: Some(id),
                            end_ns: None,
                        });
                    }
                    Status::Timeout => ledger.record(&Record::TimedOut {
                        op: Op::Put,
                        id: Some(id),
                    }),
                    Status::Error(e) => return Err(format!("put: {e}")),
                }
            }
            4..=6 | 9 => {
                ledger.record(&begin(Op::Take, None, timeout));
                match mvar.take(&mut buf, Some(timeout)) {
                    s @ (Status::Ok | Status::OwnerDied) => {
                        if s == Status::OwnerDied {
                            ledger.record(&Record::Recovered {
                                op: Op::Take,
                                from: 0,
                            });
                        }
                        match payload::decode(&buf) {
                            Some(id) => ledger.record(&Record::Done {
                                op: Op::Take,
                                id: Some(id),
                                end_ns: None,
                            }),
                            None => {
                                ledger.record(&Record::Torn {
                                    id: payload::raw_id(&buf),
                                });
                                return Ok(1);
                            }
                        }
                    }
                    Status::Timeout => ledger.record(&Record::TimedOut {
                        op: Op::Take,
                        id: None,
                    }),
                    Status::Error(e) => return Err(format!("take: {e}")),
                }
            }
            _ => {
                lock_and_log(&mut ledger, &lock, &log, &mut rng, &mut next_id, timeout)?;
            }
        }
    }
}
