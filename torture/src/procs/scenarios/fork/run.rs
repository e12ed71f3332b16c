//! The runner: starts the one worker, watches its forks, judges a child that stopped moving
//! (from its ledger and `/proc`), and accounts for every fork at the end.

use super::{ForkArgs, Spec, LOCKS};
use crate::procs::capture::{self, ProcInfo, Verdict};
use crate::procs::crew::Crew;
use crate::procs::ledger::{self, Ledger, Op, Record};
use crate::procs::{Outcome, SetupError};
use crate::report::{Finding, FindingKind};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A child without progress while runnable is judged anyway after this many hang timeouts.
const BUSY_LIMIT: u32 = 4;

/// The ledger of the child of fork `n`, and its pid (from the name `child-N-PID.ledger`).
fn child_of(dir: &Path, n: u64) -> Option<(PathBuf, u32)> {
    let prefix = format!("child-{n}-");
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_str()?.to_string();
        let pid = name
            .strip_prefix(&prefix)?
            .strip_suffix(".ledger")?
            .parse()
            .ok()?;
        Some((e.path(), pid))
    })
}

/// `Threads:` of `/proc/<pid>/status`.
fn threads_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The lock a child's last record says it is acquiring.
fn pending_lock(last: Option<&Record>) -> Option<(&'static str, u64)> {
    match last? {
        Record::Begin {
            op: Op::Lock,
            id: Some(k),
            start_ns,
            ..
        } => Some((LOCKS.get(*k as usize).copied()?, *start_ns)),
        Record::Begin {
            op: Op::Log,
            start_ns,
            ..
        } => Some((LOCKS[LOCKS.len() - 1], *start_ns)),
        _ => None,
    }
}

/// What the judge concluded about a fork that has not returned for the hang timeout.
enum Judged {
    /// Not (yet) a hang: runnable, slow, or gone.
    Wait,
    /// A finding.
    Found(Finding),
}

fn judge(worker: u32, dir: &Path, n: u64, since: Duration, hang: Duration) -> Judged {
    let Some((path, pid)) = child_of(dir, n) else {
        if since < hang * BUSY_LIMIT {
            return Judged::Wait;
        }
        return Judged::Found(Finding::new(
            FindingKind::Wedged,
            format!(
                "NO PROGRESS: fork {n} of the worker (pid {worker}) has not come back for {:.1} s and its child wrote nothing; worker: {}",
                since.as_secs_f64(),
                ProcInfo::of(worker).describe()
            ),
        ));
    };
    let last = ledger::last_record(&path);
    let confirm = (hang / 10).clamp(Duration::from_millis(20), Duration::from_millis(300));
    match capture::confirm_hang(pid, confirm, || ledger::last_record(&path) == last) {
        Verdict::Hung(info) => {
            let threads = threads_of(pid).map_or_else(|| "?".to_string(), |t| t.to_string());
            let text = match pending_lock(last.as_ref()) {
                Some((lock, start_ns)) => format!(
                    "HANG: the child of fork {n} (pid {pid}) of the worker (pid {worker}) is blocked on {lock}: its ledger says it is about to lock it, for {:.1} s; {}; the child has {threads} thread (the one that called fork, which held no lock)\n    \
                     the lock's holder is a thread of the parent that does not exist in the child: another thread held it when fork() copied the memory, and nobody in the child can ever release it\n    \
                     fix: fork handling in the locks (a child takes over a lock whose owner vanished in the fork, like EOWNERDEAD; the logger holds its sink lock across fork), or do not fork a threaded process: exec a fresh one",
                    ledger::now_ns().saturating_sub(start_ns) as f64 / 1e9,
                    info.describe(),
                ),
                None => format!(
                    "HANG: the child of fork {n} (pid {pid}) of the worker (pid {worker}) has not moved for {:.1} s; {}; {threads} thread(s); last record {:?}",
                    since.as_secs_f64(),
                    info.describe(),
                    last.map(|r| r.to_string())
                ),
            };
            Judged::Found(Finding::new(FindingKind::Hang, text))
        }
        Verdict::Stopped => Judged::Found(Finding::new(
            FindingKind::Wedged,
            format!("NO PROGRESS: the child of fork {n} (pid {pid}) is STOPPED by a signal: not a hang of the primitives"),
        )),
        Verdict::Runnable | Verdict::Slow if since >= hang * BUSY_LIMIT => {
            Judged::Found(Finding::new(
                FindingKind::Wedged,
                format!(
                    "NO PROGRESS: the child of fork {n} (pid {pid}) is runnable but has not finished in {:.1} s; {}",
                    since.as_secs_f64(),
                    ProcInfo::of(pid).describe()
                ),
            ))
        }
        Verdict::Runnable | Verdict::Slow | Verdict::Gone => Judged::Wait,
    }
}

/// Runs the worker to the end, or to a hung child.
pub(super) fn run(args: &ForkArgs, seed: u64) -> Result<Outcome, SetupError> {
    crate::procs::crew::check_nproc(2)?;
    let mut crew = Crew::new("fork")?;
    let participants = args.threads as usize + 1;
    let hang = args.hang_timeout * capture::load_factor(participants, 1).min(4);
    let child_limit = hang * (BUSY_LIMIT + 2) + Duration::from_secs(5);
    let spec = Spec {
        threads: args.threads,
        forks: args.forks,
        duration_ms: args.duration.as_millis() as u64,
        child_limit_ms: child_limit.as_millis() as u64,
        seed,
        control: args.control.clone(),
    };
    let start = Instant::now();
    crew.spawn(&spec)?;
    let worker = crew.members()[0].pid();
    let wledger = crew.members()[0].ledger.clone();
    let dir = crew.dir().to_path_buf();
    let overall = args.duration + child_limit * 2 + Duration::from_secs(10);
    let mut findings = Vec::new();
    let mut interrupted = None;
    let mut detected_after = None;
    let mut freezer = crate::procs::faults::Freezer::new(&args.stops, seed);
    let mut frozen_for = Duration::ZERO;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        freezer.tick(&[worker]);
        if freezer.any_frozen() {
            frozen_for += Duration::from_millis(10);
        }
        if let Some(sig) = crate::signals::received() {
            interrupted = Some(sig.as_str().to_string());
            break;
        }
        if let Some((_, status)) = crew.exited().into_iter().next() {
            if !status.success() {
                findings.push(Finding::new(
                    FindingKind::Worker,
                    format!(
                        "the worker (pid {worker}) ended with {status} (its stderr says why); its last record was {:?}",
                        ledger::last_record(&wledger).map(|r| r.to_string())
                    ),
                ));
            }
            break;
        }
        if let Some(Record::Begin {
            op: Op::Fork,
            id: Some(n),
            start_ns,
            ..
        }) = ledger::last_record(&wledger)
        {
            let since = Duration::from_nanos(ledger::now_ns().saturating_sub(start_ns));
            if since > hang {
                if let Judged::Found(f) = judge(worker, &dir, n, since, hang) {
                    detected_after = Some(since);
                    findings.push(f);
                    break;
                }
            }
        }
        if start.elapsed() > overall + frozen_for {
            findings.push(Finding::new(
                FindingKind::Wedged,
                format!(
                    "NO PROGRESS: the worker (pid {worker}) is still running after {:.1} s; {}; last record {:?}",
                    start.elapsed().as_secs_f64(),
                    ProcInfo::of(worker).describe(),
                    ledger::last_record(&wledger).map(|r| r.to_string())
                ),
            ));
            break;
        }
    }
    let elapsed = start.elapsed();
    let stops = freezer.stops;
    drop(freezer);
    // The worker leads its group; every child it forked is in it: one killpg ends them all.
    crew.kill_all();
    let wl = Ledger::read(&wledger);
    let children: Vec<Ledger> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("child-"))
        .filter_map(|e| Ledger::read(&e.path()))
        .collect();
    let count = |op: Op, done: bool| {
        wl.as_ref().map_or(0, |l| {
            l.records
                .iter()
                .filter(|r| match r {
                    Record::Begin { op: o, .. } => !done && *o == op,
                    Record::Done { op: o, .. } => done && *o == op,
                    _ => false,
                })
                .count()
        })
    };
    let (begun, forks) = (count(Op::Fork, false), count(Op::Fork, true));
    let took_over: Vec<usize> = children
        .iter()
        .map(|c| {
            c.records
                .iter()
                .filter(|r| matches!(r, Record::Recovered { .. }))
                .count()
        })
        .collect();
    let takeovers: usize = took_over.iter().sum();
    let children_took_over = took_over.iter().filter(|&&t| t > 0).count();
    let complete = children
        .iter()
        .filter(|c| matches!(c.records.last(), Some(Record::Released { .. })))
        .count();
    let clean = findings.is_empty() && interrupted.is_none();
    if clean && (begun != forks || complete != forks || forks == 0) {
        findings.push(Finding::new(
            FindingKind::Count,
            format!(
                "COUNT: {begun} forks begun, {forks} reaped with exit 0, {complete} children completed their ledgers"
            ),
        ));
    }
    let fork_s = elapsed.as_secs_f64().max(1e-9);
    let per_s = forks as f64 / fork_s;
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "fork: {forks} forks with {} hammer threads in {:.3} s ({per_s:.0} forks/s); {children_took_over} children took a lock over from a vanished owner ({takeovers} takeovers)",
        args.threads,
        elapsed.as_secs_f64(),
    );
    if let Some(d) = detected_after {
        let _ = writeln!(
            summary,
            "  hang detected {:.2} s after the fork",
            d.as_secs_f64()
        );
    }
    let figures = serde_json::json!({
        "threads": args.threads, "forks": forks, "forks_begun": begun,
        "forks_per_s": per_s, "children_took_over": children_took_over,
        "takeovers": takeovers, "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        "detected_after_ms": detected_after.map(|d| d.as_secs_f64() * 1e3),
    });
    drop(crew);
    Ok(Outcome {
        summary,
        figures,
        findings,
        interrupted,
        ops: forks as u64,
        elapsed,
        faults: crate::procs::Faults {
            kills: 0,
            stops: stops as u64,
        },
    })
}
