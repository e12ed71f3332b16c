//! The findings of a `torture locks` run: LOCK ORDER (a worker stopped by the validator, with
//! every chain's process), DEADLOCK or HANG (from the wait-for graph), a worker that failed.

use super::waitfor::{analyse, Seen};
use super::worker::{lockdep_path, Caught};
use super::NAMES;
use crate::procs::capture::ProcInfo;
use crate::procs::crew::Crew;
use crate::procs::ledger::{self, Op, Record};
use crate::report::{Finding, FindingKind};
use primitives::lock::SharedReentrantLock;
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

/// DEADLOCK (a cycle in the wait-for graph) or HANG, with each worker's state.
pub fn stuck_finding(
    crew: &Crew,
    pids: &[u32],
    infos: &[ProcInfo],
    locks: &[SharedReentrantLock],
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
    let owners: Vec<Option<u32>> = locks
        .iter()
        .map(|l| l.owner().map(|w| w.pid).filter(|p| *p != 0))
        .collect();
    let d = analyse(&seen, &owners, &NAMES);
    let running = ended.iter().filter(|e| !**e).count();
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
