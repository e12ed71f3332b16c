//! The findings of a `torture locks` run: LOCK ORDER (a worker stopped by the validator, with
//! every chain's process), DEADLOCK or HANG (from the wait-for graph), a worker that failed.

use super::waitfor::{analyse, Seen};
use super::worker::{lockdep_path, Caught};
use super::NAMES;
use crate::procs::capture::ProcInfo;
use crate::procs::crew::Crew;
use crate::procs::impls::judge::holder_state;
use crate::procs::impls::lock::{CreatedLock, LockImpl};
use crate::procs::ledger::{self, Op, Record};
use crate::report::{Finding, FindingKind};
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

/// An exit status in words.
pub fn describe_status(s: std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => s.to_string(),
    }
}

/// `worker i (pid P)`, or what the pid is if not a worker.
fn worker_of(pids: &[u32], pid: u32) -> String {
    match pids.iter().position(|p| *p == pid) {
        Some(i) => format!("worker {i} (pid {pid})"),
        None => format!("pid {pid} (not a worker of this run)"),
    }
}

/// The LOCK ORDER finding of worker `i`, stopped by the validator.
pub fn lock_order_finding(i: usize, ledger: &std::path::Path, pids: &[u32]) -> Finding {
    let caught: Option<Caught> = std::fs::read_to_string(lockdep_path(ledger))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(c) = caught else {
        return Finding::new(
            FindingKind::LockOrder,
            format!(
                "LOCK ORDER: worker {i} (pid {}) was stopped by the lock-order validator, but left no report",
                pids[i]
            ),
        );
    };
    let mut s = format!(
        "LOCK ORDER: worker {i} (pid {}) closed the cycle {} at its acquisition of {}, before anything deadlocked\n",
        pids[i],
        c.cycle.join(" -> "),
        c.here.last().map_or("?", String::as_str)
    );
    let _ = writeln!(
        s,
        "    {}: {} (here, refused)",
        worker_of(pids, pids[i]),
        c.here.join(" -> ")
    );
    for (pid, classes) in &c.remote {
        let _ = writeln!(
            s,
            "    {}: {} (earlier, from the shared graph)",
            worker_of(pids, *pid),
            classes.join(" -> ")
        );
    }
    let _ = writeln!(s, "  the validator's report:");
    for line in c.text.lines() {
        let _ = writeln!(s, "    {line}");
    }
    Finding::new(FindingKind::LockOrder, s.trim_end().to_string())
}

/// The locks of a stuck run, and what the runner knows of their past.
pub struct Stuck<'a> {
    /// The locks, in the global order.
    pub locks: &'a [CreatedLock],
    /// Their implementation.
    pub imp: &'a LockImpl,
    /// The pids the runner killed.
    pub killed: &'a [u32],
}

/// DEADLOCK (a cycle in the wait-for graph), NOT ROBUST (an awaited lock held by a dead
/// process) or HANG, with each worker's state.
pub fn stuck_finding(
    crew: &Crew,
    pids: &[u32],
    infos: &[ProcInfo],
    stuck: &Stuck<'_>,
    silent: Duration,
    ended: &[bool],
) -> Finding {
    let now = ledger::now_ns();
    let seen: Vec<Seen> = crew
        .members()
        .iter()
        .zip(infos)
        .enumerate()
        .map(|(i, (m, info))| Seen {
            pid: pids[i],
            state: if ended[i] { None } else { info.state },
            kernel: info.describe(),
            waits_for: match ledger::last_record(&m.ledger) {
                Some(Record::Begin {
                    op: Op::Lock,
                    id: Some(x),
                    start_ns,
                    ..
                }) => Some((x as usize, now.saturating_sub(start_ns) as f64 / 1e6)),
                _ => None,
            },
        })
        .collect();
    let holders: Vec<Option<Option<u32>>> = stuck
        .locks
        .iter()
        .map(|l| l.handle().holder().map(|o| o.filter(|p| *p != 0)))
        .collect();
    let known = holders.iter().all(Option::is_some);
    let owners: Vec<Option<u32>> = holders.iter().map(|h| h.flatten()).collect();
    let d = analyse(&seen, &owners, &NAMES, known);
    let running = ended.iter().filter(|e| !**e).count();
    // An awaited lock held by a dead process: whoever waits, waits forever.
    let dead = seen.iter().find_map(|w| {
        let (x, _) = w.waits_for?;
        let pid = owners.get(x).copied().flatten()?;
        let state = holder_state(pid, stuck.killed);
        state.starts_with("dead").then_some((x, pid, state))
    });
    if let Some((x, pid, state)) = dead {
        return Finding::new(
            FindingKind::NotRobust,
            format!(
                "not robust to kill -9: lock {} held by dead pid {pid}\n    HANG: no worker made progress for {:.1} s after {} kills; the holder of {}, pid {pid}, is {state}; {} waits in {}\n{}",
                NAMES[x],
                silent.as_secs_f64(),
                stuck.killed.len(),
                NAMES[x],
                stuck.imp.name(),
                stuck.imp.acquire_name(),
                d.lines.trim_end()
            ),
        );
    }
    if !known && !stuck.killed.is_empty() && !stuck.imp.caps().robust {
        return Finding::new(
            FindingKind::Hang,
            format!(
                "HANG after a kill; {} does not name its lock holders (no HOLDER capability), so torture cannot tell whether a dead process holds one\n    no worker made progress for {:.1} s after {} kills\n{}",
                stuck.imp.name(),
                silent.as_secs_f64(),
                stuck.killed.len(),
                d.lines.trim_end()
            ),
        );
    }
    match (d.headline, d.cycle) {
        (Some(h), Some(c)) => Finding::new(
            FindingKind::Deadlock,
            format!(
                "{h}\n    ({} workers in the cycle; no worker made progress for {:.1} s)\n{}",
                c.len(),
                silent.as_secs_f64(),
                d.lines.trim_end()
            ),
        ),
        _ => Finding::new(
            FindingKind::Hang,
            format!(
                "HANG: no worker made progress for {:.1} s ({running} of {} still running); no cycle in the wait-for graph\n{}",
                silent.as_secs_f64(),
                pids.len(),
                d.lines.trim_end()
            ),
        ),
    }
}
