//! The churn runner: create the segments, keep `--procs` clients alive, kill and freeze them,
//! drain the log, watch for hangs, then check table and delivery. See the module docs of
//! [`super`].

use super::table::{self, Table, ALIVE, CLAIMING};
use super::worker::finding_path;
use super::{ChurnArgs, Spec, CRASH_EXIT, LOCKDEP_EXIT, STALE_EXIT};
use crate::prng::SplitMix64;
use crate::procs::capture::{self, ProcInfo};
use crate::procs::crew::Crew;
use crate::procs::faults::{Freezer, KillArgs, Killer, StallClock};
use crate::procs::impls::judge::holder_state;
use crate::procs::impls::lock::{CreatedLock, LockImpl};
use crate::procs::impls::Status;
use crate::procs::ledger::{self, Ledger, Op, Record};
use crate::procs::{Faults, Outcome, SetupError};
use crate::report::{Finding, FindingKind};
use primitives::lock::{Mode, Validator};
use primitives::msg::ring::{RingError, RingMessage, SharedLog};
use primitives::shm::{Segment, ShmName, MAX_PARTICIPANTS};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The runner's loop period.
const POLL: Duration = Duration::from_millis(5);
/// The log is rescued (dead clients' staging) and drained this often.
const DRAIN_EVERY: Duration = Duration::from_millis(50);
/// The log's ring (records), text bytes per record, staging records per participant.
const LOG_RING: usize = 1 << 16;
const LOG_TEXT: usize = 32;
const LOG_STAGE: usize = 16;
/// Participant slots beyond two per client (killed clients not yet reaped, the runner).
const SLOTS_SPARE: u32 = 32;
/// Rescues in a row that find the ring lock held by a live client before it is called a hang.
const BUSY_DRAINS_IN_A_ROW: u32 = 3;
/// Workers alike beyond this many are one line with a count in a hang report.
const SHOWN_ONE_BY_ONE: usize = 4;

/// Every segment of a run, removed when dropped (every exit path; the locks by their
/// implementation).
struct Segments {
    table: Table,
    table_lock: CreatedLock,
    db: CreatedLock,
    log: SharedLog,
    graph: Option<Segment>,
    imp: LockImpl,
}

impl Drop for Segments {
    fn drop(&mut self) {
        let _ = self.table.segment().unlink();
        let _ = self.log.segment().unlink();
        if let Some(g) = &self.graph {
            let _ = g.unlink();
        }
    }
}

/// Counters of a run.
#[derive(Default)]
struct Tally {
    started: u64,
    left: u64,
    crashed: u64,
    delivered: Vec<RingMessage>,
    rescued_runs: u64,
    /// Rescues or drains that found the ring lock held by a live client for the ring's whole
    /// lock timeout (a busy machine: retried at the next one), in all and in a row now.
    busy_drains: u64,
    busy_in_a_row: u32,
}

fn setup_err(what: &str) -> impl Fn(primitives::shm::ShmError) -> SetupError + '_ {
    move |e| SetupError(format!("cannot create the {what}: {e}"))
}

fn create(
    args: &ChurnArgs,
    imp: &LockImpl,
    procs: u32,
    seed: u64,
) -> Result<(Segments, Validator, Spec), SetupError> {
    let participants = procs.saturating_mul(2).saturating_add(SLOTS_SPARE);
    if participants > MAX_PARTICIPANTS || u64::from(procs) * 2 + 16 > table::MAX_CAPACITY {
        return Err(SetupError(format!(
            "--procs {procs} is more clients than one table holds (at most {})",
            (table::MAX_CAPACITY - 16) / 2
        )));
    }
    let capacity = procs as usize * 2 + 16;
    let names = [
        ShmName::unique("churn-table"),
        ShmName::unique("churn-tablelock"),
        ShmName::unique("churn-db"),
        ShmName::unique("churn-log"),
        ShmName::unique("churn-lockdep"),
    ];
    // Each object is unlinked by `Segments` once it exists; build them in order.
    let table = Table::create(&names[0], capacity, participants).map_err(setup_err("table"))?;
    // A lock that could not be made drops those made before it (they destroy themselves).
    let table_lock = match imp.create(names[1].as_str(), participants) {
        Ok(l) => l,
        Err(e) => {
            let _ = table.segment().unlink();
            return Err(SetupError(format!("cannot create the table lock: {e}")));
        }
    };
    let db = match imp.create(names[2].as_str(), participants) {
        Ok(l) => l,
        Err(e) => {
            let _ = table.segment().unlink();
            return Err(SetupError(format!("cannot create the database lock: {e}")));
        }
    };
    let log = match SharedLog::create_with(&names[3], LOG_RING, LOG_TEXT, LOG_STAGE, participants) {
        Ok(l) => l,
        Err(e) => {
            let _ = table.segment().unlink();
            return Err(SetupError(format!("cannot create the log: {e}")));
        }
    };
    let mut segs = Segments {
        table,
        table_lock,
        db,
        log,
        graph: None,
        imp: imp.clone(),
    };
    let validator =
        Validator::shared(Mode::Report, &names[4]).map_err(setup_err("shared lock-order graph"))?;
    segs.graph = validator.shared_segment().cloned();
    let spec = Spec {
        table: names[0].as_str().to_string(),
        table_lock: names[1].as_str().to_string(),
        db_lock: names[2].as_str().to_string(),
        log: names[3].as_str().to_string(),
        graph: names[4].as_str().to_string(),
        seed,
        crashes: args.crashes,
        watchdog_ns: args.watchdog.as_nanos() as u64,
        confirm_ns: args.confirm.as_nanos() as u64,
        op_timeout_ns: 0,
        control: args.control.clone(),
        lib: imp.lib_path(),
        plugin: imp.plugin_name(),
        reenter: imp.caps().reentrant,
    };
    Ok((segs, validator, spec))
}

/// Runs the churn; see the module docs.
pub fn run(
    args: &ChurnArgs,
    imp: &LockImpl,
    clients: u32,
    seed: u64,
) -> Result<Outcome, SetupError> {
    let procs = clients as usize;
    crate::procs::crew::check_nproc(procs)?;
    let mut crew = Crew::new("churn")?;
    crew.set_chaos(args.chaos.seed(seed));
    let (segs, _validator, mut spec) = create(args, imp, clients, seed)?;
    let load = capture::load_factor(procs + 1, 8);
    let hang = args.hang_timeout * load;
    // A wait on a frozen holder gives up well before the hang timeout.
    spec.op_timeout_ns = (hang / 4).max(args.stops.stop_max * 2).as_nanos() as u64;
    let mut seeds = SplitMix64::new(seed);
    let mut t = Tally::default();
    for _ in 0..procs {
        spec.seed = seeds.next_u64();
        crew.spawn(&spec)?;
        t.started += 1;
    }
    let mut freezer = Freezer::new(&args.stops, seed);
    let mut killer = Killer::new(
        &KillArgs {
            kill_rate: args.kill_rate,
        },
        seed,
    );
    let start = Instant::now();
    let mut last_drain = Instant::now();
    let mut stall = StallClock::new();
    let mut seen_delivered = 0;
    let mut findings = Vec::new();
    let mut interrupted = None;
    let mut progress = crate::procs::progress::Progress::new(
        "ms",
        args.duration.as_millis().min(u128::from(u64::MAX)) as u64,
    );
    while start.elapsed() < args.duration {
        std::thread::sleep(POLL);
        progress.set(start.elapsed().as_millis() as u64, || {
            format!(
                "{} clients started, {} kills, {} messages",
                t.started,
                killer.kills as u64,
                t.delivered.len()
            )
        });
        if let Some(sig) = crate::signals::received() {
            interrupted = Some(sig.as_str().to_string());
            break;
        }
        // Clients that ended by themselves: account, then replace.
        for (i, status) in crew.exited() {
            let m = &crew.members()[i];
            match status.code().map(|c| c as u8) {
                Some(0) => t.left += 1,
                Some(CRASH_EXIT) => t.crashed += 1,
                Some(STALE_EXIT) => findings.push(Finding::new(
                    FindingKind::StaleHandle,
                    format!(
                        "STALE HANDLE: {}",
                        std::fs::read_to_string(finding_path(&m.ledger)).unwrap_or_default()
                    ),
                )),
                Some(LOCKDEP_EXIT)
                    if findings.iter().any(|f: &Finding| f.kind == FindingKind::LockOrder) => {}
                Some(LOCKDEP_EXIT) => findings.push(Finding::new(
                    FindingKind::LockOrder,
                    format!(
                        "LOCK ORDER: client {} (pid {}) stopped by the shared lock-order validator:\n{}",
                        m.id,
                        m.pid(),
                        std::fs::read_to_string(finding_path(&m.ledger))
                            .unwrap_or_default()
                            .trim_end()
                    ),
                )),
                _ => findings.push(Finding::new(
                    FindingKind::Worker,
                    format!(
                        "client {} (pid {}) ended with {}; its last record was {:?}",
                        m.id,
                        m.pid(),
                        describe_status(status),
                        ledger::last_record(&m.ledger).map(|r| r.to_string())
                    ),
                )),
            }
            spec.seed = seeds.next_u64();
            crew.respawn(i, &spec)?;
            t.started += 1;
        }
        if !findings.is_empty() {
            break;
        }
        // Kills at the chosen rate, each client replaced at once.
        while let Some(i) = killer.due(crew.members().len()) {
            spec.seed = seeds.next_u64();
            crew.respawn(i, &spec)?;
            t.started += 1;
        }
        let pids: Vec<u32> = crew.members().iter().map(|m| m.pid()).collect();
        freezer.tick(&pids);
        // Rescuing and draining take the ring's lock, which a frozen client may hold: the
        // runner, which is the one to thaw it, must not wait for it meanwhile.
        if last_drain.elapsed() >= DRAIN_EVERY && !freezer.any_frozen() {
            last_drain = Instant::now();
            match rescue_and_drain(&segs.log, &mut t) {
                // A busy machine: the holder waits for a CPU; a hang only if it lasts.
                Err(RingError::Timeout) if t.busy_in_a_row + 1 < BUSY_DRAINS_IN_A_ROW => {
                    t.busy_drains += 1;
                    t.busy_in_a_row += 1;
                }
                Err(e) => {
                    findings.push(log_finding(e, &segs, &crew));
                    break;
                }
                Ok(Some(f)) => {
                    findings.push(f);
                    break;
                }
                Ok(None) => t.busy_in_a_row = 0,
            }
        }
        // Progress: any ledger record, or any message.
        // Time during which a client is frozen by us does not count as a stall.
        let moved = crew.ledgers_grew() || t.delivered.len() != seen_delivered;
        seen_delivered = t.delivered.len();
        let stalled = stall.tick(moved, freezer.any_frozen());
        if stalled > hang {
            findings.push(stall_finding(&segs, &crew, stalled, killer.kills));
            break;
        }
    }
    drop(progress);
    let elapsed = start.elapsed();
    freezer.thaw_all();
    crew.kill_all();
    match rescue_and_drain(&segs.log, &mut t) {
        Err(e) => findings.push(log_finding(e, &segs, &crew)),
        Ok(f) => findings.extend(f),
    }
    let ledgers: Vec<Ledger> = crew
        .all_ledgers()
        .iter()
        .filter_map(|p| Ledger::read(p))
        .collect();
    let (table_text, table_figures) = check_table(&segs, &ledgers, &mut findings);
    let d = crate::procs::delivery::check(&ledgers, &t.delivered);
    findings.extend(d.findings);
    let watchdog = watchdog_costs(&segs.table);
    let (registered, _, removed, repaired) = segs.table.counters();
    let ops = d.delivered as u64 + registered;
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "churn: {} clients in {:.1} s ({} left, {} crashed holding both locks, {} killed; {:.0} ops/s)",
        t.started,
        elapsed.as_secs_f64(),
        t.left,
        t.crashed,
        killer.kills as u64,
        ops as f64 / elapsed.as_secs_f64().max(1e-9),
    );
    let _ = writeln!(
        summary,
        "  table: {registered} registrations, {removed} dead clients removed by watchdogs, {repaired} half-done registrations repaired; {table_text}"
    );
    let (table_takeovers, db_takeovers) = takeovers(&segs, &ledgers);
    let _ = writeln!(
        summary,
        "  locks: {table_takeovers} table-lock and {db_takeovers} database-lock takeovers from dead holders; {} freezes",
        freezer.stops
    );
    if !matches!(segs.imp, LockImpl::Reference { .. }) {
        let caps = segs.imp.caps();
        let _ = writeln!(
            summary,
            "  locks: {} (capabilities {})",
            segs.imp.name(),
            caps.words()
        );
        for n in caps.not_checked() {
            let _ = writeln!(summary, "  not checked: {n}");
        }
    }
    let _ = writeln!(
        summary,
        "  log: {} messages logged, {} delivered ({} rescued from dead clients' staging), {} cut by a kill",
        d.logged, d.delivered, d.rescued, d.cut
    );
    let _ = writeln!(summary, "  watchdog: {}", watchdog.0);
    let figures = serde_json::json!({
        "procs": procs,
        "runner_pid": std::process::id(),
        "seconds": elapsed.as_secs_f64(),
        "clients_started": t.started,
        "left": t.left,
        "crashed": t.crashed,
        "kills": killer.kills as u64,
        "stops": freezer.stops,
        "registrations": registered,
        "removed_by_watchdogs": removed,
        "repaired": repaired,
        "table": table_figures,
        "table_lock_takeovers": table_takeovers,
        "db_lock_takeovers": db_takeovers,
        "lock_implementation": segs.imp.name(),
        "lock_capabilities": segs.imp.caps(),
        "messages_logged": d.logged,
        "messages_delivered": d.delivered,
        "messages_rescued": d.rescued,
        "messages_cut": d.cut,
        "rescue_passes": t.rescued_runs,
        "busy_drains": t.busy_drains,
        "ops": ops,
        "watchdog": watchdog.1,
    });
    drop(crew);
    drop(segs);
    Ok(Outcome {
        summary,
        figures,
        findings,
        interrupted,
        ops,
        elapsed,
        faults: Faults {
            kills: killer.kills as u64,
            stops: freezer.stops as u64,
        },
    })
}

/// Delivers dead clients' staged messages and drains the ring into the tally: `Ok(Some(_))`
/// for lost or corrupt messages, `Err` if the ring could not be used.
fn rescue_and_drain(log: &SharedLog, t: &mut Tally) -> Result<Option<Finding>, RingError> {
    log.rescue_dead()?;
    t.rescued_runs += 1;
    let d = log.drain(usize::MAX)?;
    if d.lost > 0 || d.corrupt > 0 {
        return Ok(Some(Finding::new(
            FindingKind::Log,
            format!(
                "LOG: the ring reports {} lost and {} corrupt messages",
                d.lost, d.corrupt
            ),
        )));
    }
    t.delivered.extend(d.messages);
    Ok(None)
}

/// A ring that could not be used: a HANG if its lock stayed held by a live client (through
/// [`BUSY_DRAINS_IN_A_ROW`] rescues), a LOG failure otherwise.
fn log_finding(e: RingError, segs: &Segments, crew: &Crew) -> Finding {
    match e {
        RingError::Timeout => Finding::new(
            FindingKind::Hang,
            format!(
                "HANG: the log's ring lock stayed held by a live client through {BUSY_DRAINS_IN_A_ROW} rescues in a row, {:?} each\n{}",
                primitives::msg::ring::LOCK_TIMEOUT,
                diagnose(segs, crew)
            ),
        ),
        e => Finding::new(FindingKind::Log, format!("LOG: {e}")),
    }
}

fn describe_status(s: std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(sig)) => format!("signal {sig}"),
        _ => s.to_string(),
    }
}

/// Takeovers from dead holders of the table and the database lock: the implementation's own
/// counts, else the clients' OWNER_DIED acquisitions from their ledgers (a `recovered` record
/// followed by the `done lock` naming the lock).
fn takeovers(segs: &Segments, ledgers: &[Ledger]) -> (u64, u64) {
    let own = (
        segs.table_lock.handle().takeovers(),
        segs.db.handle().takeovers(),
    );
    if let (Some(t), Some(d)) = own {
        return (t, d);
    }
    let mut n = (0, 0);
    for l in ledgers {
        for w in l.records.windows(2) {
            if let [Record::Recovered { op: Op::Lock, .. }, Record::Done {
                op: Op::Lock,
                id: Some(which),
                ..
            }] = w
            {
                match *which {
                    super::worker::TABLE => n.0 += 1,
                    _ => n.1 += 1,
                }
            }
        }
    }
    n
}

/// The run's locks with their names.
fn locks(segs: &Segments) -> [(&'static str, &CreatedLock); 2] {
    [
        ("table lock", &segs.table_lock),
        ("database lock", &segs.db),
    ]
}

/// Nothing moved for `stalled`: NOT ROBUST if a lock is held by a dead process, else a HANG.
fn stall_finding(segs: &Segments, crew: &Crew, stalled: Duration, kills: usize) -> Finding {
    for (name, lock) in locks(segs) {
        if let Some(Some(pid)) = lock.handle().holder() {
            let state = holder_state(pid, &[]);
            if state.starts_with("dead") {
                return Finding::new(
                    FindingKind::NotRobust,
                    format!(
                        "not robust to kill -9: the {name} held by dead pid {pid}\n    HANG: no client registered, logged or recorded anything for {:.1} s ({kills} kills, and clients crashing with both locks held); {} waits in {}\n{}",
                        stalled.as_secs_f64(),
                        segs.imp.name(),
                        segs.imp.acquire_name(),
                        diagnose(segs, crew)
                    ),
                );
            }
        }
    }
    Finding::new(
        FindingKind::Hang,
        format!(
            "HANG: no client registered, logged or recorded anything for {:.1} s\n{}",
            stalled.as_secs_f64(),
            diagnose(segs, crew)
        ),
    )
}

/// Who holds the locks and what every client is doing, for a hang report.
fn diagnose(segs: &Segments, crew: &Crew) -> String {
    let mut s = String::new();
    for (name, lock) in locks(segs) {
        let _ = match lock.handle().holder() {
            None => writeln!(
                s,
                "    {name}: holder unknown ({} has no HOLDER capability)",
                segs.imp.name()
            ),
            Some(None) => writeln!(s, "    {name}: free"),
            Some(Some(pid)) => writeln!(
                s,
                "    {name}: held by pid {pid} ({})",
                ProcInfo::of(pid).describe()
            ),
        };
    }
    s += &crew.describe_members(SHOWN_ONE_BY_ONE);
    s
}

/// After everyone is dead: takes the table (over from a dead holder if need be), repairs it,
/// checks it against the clients' ledgers, and removes the dead clients' entries (the
/// runner's own watchdog pass). Returns a summary and figures.
fn check_table(
    segs: &Segments,
    ledgers: &[Ledger],
    findings: &mut Vec<Finding>,
) -> (String, serde_json::Value) {
    let table = &segs.table;
    let lock = segs.table_lock.handle();
    match lock.acquire(Some(Duration::from_secs(2))) {
        Status::Ok | Status::OwnerDied => {}
        s => {
            if let Some(Some(pid)) = lock.holder() {
                let state = holder_state(pid, &[]);
                if state.starts_with("dead") {
                    findings.push(Finding::new(
                        FindingKind::NotRobust,
                        format!(
                            "not robust to kill -9: the table lock held by dead pid {pid}\n    the runner cannot take it after the run ({s:?} after 2 s): {} left it locked when its holder died",
                            segs.imp.name()
                        ),
                    ));
                    return ("not checked".into(), serde_json::Value::Null);
                }
            }
            findings.push(Finding::new(
                FindingKind::Unusable,
                format!(
                    "the table lock is unusable after the run: {s:?} (held by {})",
                    match lock.holder() {
                        Some(Some(pid)) => format!("pid {pid}"),
                        Some(None) => "nobody".into(),
                        None if !segs.imp.caps().robust => "? (no HOLDER capability; the lock is not ROBUST either: a client killed or crashed holding it leaves it so)".into(),
                        None => "? (no HOLDER capability)".into(),
                    }
                ),
            ));
            return ("not checked".into(), serde_json::Value::Null);
        }
    }
    let repaired = table.repair();
    // Who left, per the ledgers (client id = the ledger's worker id, from its file name).
    let mut left: HashMap<u64, usize> = HashMap::new();
    for l in ledgers {
        if l.records
            .iter()
            .any(|r| matches!(r, Record::Done { op: Op::Leave, .. }))
        {
            if let Some(id) = ledger_client(&l.path) {
                *left.entry(id).or_default() += 1;
            }
        }
    }
    let mut clients: HashMap<u64, usize> = HashMap::new();
    let mut registered = 0;
    for slot in 0..table.capacity() {
        let e = table.entry(slot);
        match e.state.load(Relaxed) {
            ALIVE => {
                registered += 1;
                let c = e.client.load(Relaxed);
                *clients.entry(c).or_default() += 1;
                if left.contains_key(&c) {
                    findings.push(Finding::new(
                        FindingKind::Table,
                        format!("TABLE: client {c} left (its ledger says so) but is still registered in slot {slot}"),
                    ));
                }
                if table::identity(e).is_alive() {
                    findings.push(Finding::new(
                        FindingKind::Table,
                        format!(
                            "TABLE: slot {slot} names client {c} as alive in pid {}, but every client is dead",
                            e.pid.load(Relaxed)
                        ),
                    ));
                }
                let h = table::Handle {
                    slot,
                    serial: e.serial.load(Relaxed),
                };
                table.delete(h, 0, true);
            }
            CLAIMING => findings.push(Finding::new(
                FindingKind::Table,
                format!("TABLE: slot {slot} is half-registered after a repair"),
            )),
            _ => {}
        }
    }
    for (c, n) in clients {
        if n > 1 {
            findings.push(Finding::new(
                FindingKind::Table,
                format!("TABLE: client {c} is registered {n} times"),
            ));
        }
    }
    let _ = lock.release();
    (
        format!("{registered} killed clients still registered at the end (removed by the runner), {repaired} repaired then"),
        serde_json::json!({"left_registered_at_end": registered, "repaired_at_end": repaired}),
    )
}

/// The client id of a ledger file (`worker-<id>.ledger` in the crew's folder).
fn ledger_client(path: &std::path::Path) -> Option<u64> {
    path.file_stem()?
        .to_str()?
        .strip_prefix("worker-")?
        .parse()
        .ok()
}

/// The watchdog's CPU cost per tick (snapshot + liveness checks) against the entries it checked: one line and figures, with
/// the least-squares slope (ns per entry) over every tick.
fn watchdog_costs(table: &Table) -> (String, serde_json::Value) {
    let rows = table.tick_costs();
    let ticks: u64 = rows.iter().map(|r| r.1).sum();
    if ticks == 0 {
        return ("no watchdog tick".into(), serde_json::Value::Null);
    }
    let total_ns: u64 = rows.iter().map(|r| r.2).sum();
    let (mut sn, mut sy, mut snn, mut sny) = (0f64, 0f64, 0f64, 0f64);
    for &(n, k, ns) in &rows {
        // Each tick is one point (n, its mean cost): weight the bucket's mean by its ticks.
        let (n, k, y) = (n as f64, k as f64, ns as f64 / k as f64);
        sn += k * n;
        sy += k * y;
        snn += k * n * n;
        sny += k * n * y;
    }
    let w = ticks as f64;
    let var = snn - sn * sn / w;
    let slope = if var > 0.0 {
        (sny - sn * sy / w) / var
    } else {
        f64::NAN
    };
    let mean_n = sn / w;
    let mean_us = total_ns as f64 / w / 1e3;
    let intercept_us = (sy / w - slope * mean_n) / 1e3;
    let text = format!(
        "{ticks} ticks, {mean_us:.1} µs of CPU per tick at {mean_n:.1} entries on average (slope {:.0} ns per entry, intercept {intercept_us:.1} µs)",
        slope
    );
    let per_n: Vec<_> = rows
        .iter()
        .map(|&(n, k, ns)| serde_json::json!({"entries": n, "ticks": k, "mean_ns": ns / k}))
        .collect();
    (
        text,
        serde_json::json!({
            "ticks": ticks,
            "mean_entries": mean_n,
            "mean_ns_per_tick": total_ns / ticks,
            "slope_ns_per_entry": if slope.is_finite() { serde_json::json!(slope) } else { serde_json::Value::Null },
            "per_entries": per_n,
        }),
    )
}
