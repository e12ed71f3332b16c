//! Judgements shared by the scenarios that torture an MVar through the seam: the state of a
//! lock's holder, who waits on what, progress without COMMITS, and the classification of a
//! hang after kills (a dead lock holder: not robust; no HOLDER: cannot tell).

use super::{Caps, Implementation, MVarHandle};
use crate::procs::capture::ProcInfo;
use crate::procs::crew::Crew;
use crate::procs::ledger::{self, Op, Record};
use crate::report::{Finding, FindingKind};
use primitives::mvar::SharedMVar;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// A hang after kills with the lock held by a dead process: NOT ROBUST (`None` if the holder
/// is unknown, free or alive). `quiet`: how long nothing committed; `diagnosis`: who waits on
/// what.
pub fn dead_holder(
    mvar: &dyn MVarHandle,
    killed: &[u32],
    quiet: Duration,
    kills: usize,
    holder_kills: u64,
    diagnosis: impl FnOnce() -> String,
) -> Option<Finding> {
    let Some(Some(pid)) = mvar.holder() else {
        return None;
    };
    let state = holder_state(pid, killed);
    if !state.starts_with("dead") {
        return None;
    }
    Some(Finding::new(
        FindingKind::NotRobust,
        format!(
            "not robust to kill -9: lock held by dead pid {pid}\n    HANG: no commit for {:.1} s after {kills} kills ({holder_kills} inside the critical section); the lock's holder, pid {pid}, is {state}\n{}",
            quiet.as_secs_f64(),
            diagnosis()
        ),
    ))
}

/// A hang after kills in a non-robust implementation whose lock holder is ALIVE but asleep in
/// the kernel: it waits on something a killed process left locked — typically a condition
/// variable's internal lock, which glibc does not make robust (a process killed inside
/// `pthread_cond_wait` or `_signal` leaves it held, and the next signaller sleeps on it forever
/// while holding the box's mutex). NOT ROBUST too (`None` otherwise).
pub fn wedged_holder(
    mvar: &dyn MVarHandle,
    caps: Caps,
    quiet: Duration,
    kills: usize,
    diagnosis: impl FnOnce() -> String,
) -> Option<Finding> {
    if caps.robust || kills == 0 {
        return None;
    }
    let Some(Some(pid)) = mvar.holder() else {
        return None;
    };
    let info = ProcInfo::of(pid);
    if !matches!(info.state, Some('S' | 'D')) {
        return None;
    }
    Some(Finding::new(
        FindingKind::NotRobust,
        format!(
            "not robust to kill -9: the lock's holder, pid {pid}, is alive but asleep since the kills, waiting on something a killed process left locked (e.g. a condition variable's internal lock)\n    HANG: no commit for {:.1} s after {kills} kills; holder {}\n{}",
            quiet.as_secs_f64(),
            info.describe(),
            diagnosis()
        ),
    ))
}

/// A hang after kills in an implementation that does not name its lock holder (no HOLDER):
/// torture cannot tell whether a dead process holds it.
pub fn no_holder(quiet: Duration, kills: usize, diagnosis: impl FnOnce() -> String) -> Finding {
    Finding::new(
        FindingKind::Hang,
        format!(
            "HANG after a kill; the implementation does not name its lock holder (no HOLDER capability), so torture cannot tell whether a dead process holds it\n    no commit for {:.1} s after {kills} kills\n{}",
            quiet.as_secs_f64(),
            diagnosis()
        ),
    )
}

/// A hang after kills classified: [`dead_holder`], else [`wedged_holder`], else [`no_holder`]
/// without HOLDER and ROBUST, else `None` (an ordinary hang).
pub fn hang_after_kills(
    mvar: &dyn MVarHandle,
    caps: Caps,
    killed: &[u32],
    quiet: Duration,
    kills: usize,
    holder_kills: u64,
    diagnosis: impl Fn() -> String,
) -> Option<Finding> {
    if kills == 0 {
        return None;
    }
    if let Some(f) = dead_holder(mvar, killed, quiet, kills, holder_kills, &diagnosis) {
        return Some(f);
    }
    if let Some(f) = wedged_holder(mvar, caps, quiet, kills, &diagnosis) {
        return Some(f);
    }
    (!caps.holder && !caps.robust).then(|| no_holder(quiet, kills, diagnosis))
}

/// The state of `pid`, the lock's holder, in a hang report: `dead` (`dead — killed by the
/// runner` if it was one of `killed`), `STOPPED`, or `running (...)` with its kernel state.
pub fn holder_state(pid: u32, killed: &[u32]) -> String {
    let info = ProcInfo::of(pid);
    match info.state {
        None | Some('Z' | 'X') if killed.contains(&pid) => "dead — killed by the runner".into(),
        None | Some('Z' | 'X') => "dead".into(),
        Some('T' | 't') => "STOPPED".into(),
        _ => format!("running ({})", info.describe()),
    }
}

/// Who waits on what: the box, and each worker still running (alike ones as one line), each
/// stuck one with its implementation's operation and the state of the lock's holder.
pub fn diagnose(
    mvar: &dyn MVarHandle,
    imp: &Implementation,
    crew: &Crew,
    roles: &[&str],
    killed: &[u32],
) -> String {
    let mut s = String::new();
    let reference = mvar.reference();
    // Only the reference tells whether the box is full without possibly waiting on its lock.
    let full = reference.map(SharedMVar::is_full);
    let holder = mvar
        .holder()
        .map(|h| h.map(|pid| (pid, holder_state(pid, killed))));
    let _ = writeln!(
        s,
        "    box ({}): {}, {}; {}lock: {}",
        imp.name(),
        match full {
            Some(true) => "full",
            Some(false) => "empty",
            None => "full or empty (not asked: it could wait on the lock)",
        },
        mvar.commits().map_or(
            "commits not counted (no COMMITS capability)".to_string(),
            |g| format!("{g} commits")
        ),
        reference.map_or(String::new(), |r| {
            let (takers, putters) = r.waiting();
            format!("waiting: {takers} takers, {putters} putters; ")
        }),
        match (reference.and_then(SharedMVar::lock_holder), &holder) {
            (Some((who, alive)), _) =>
                format!("held by {who} ({})", if alive { "alive" } else { "DEAD" }),
            (None, Some(Some((pid, state)))) => format!("held by pid {pid} ({state})"),
            (None, Some(None)) => "free".to_string(),
            (None, None) => "holder unknown (no HOLDER capability)".to_string(),
        }
    );
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (i, m) in crew.members().iter().enumerate() {
        let info = ProcInfo::of(m.pid());
        if matches!(info.state, None | Some('Z' | 'X')) {
            continue;
        }
        let last = ledger::last_record(&m.ledger);
        let behind = match (&last, &holder) {
            (Some(Record::Begin { .. }), Some(Some((pid, state)))) if *pid != m.pid() => {
                format!(" — the lock's holder pid {pid} is {state}")
            }
            (Some(Record::Begin { .. }), Some(Some(_))) => " — it holds the lock".to_string(),
            _ => String::new(),
        };
        let (what, stuck) = match &last {
            Some(Record::Begin { op, start_ns, .. }) => {
                let for_ms = ledger::now_ns().saturating_sub(*start_ns) as f64 / 1e6;
                let ready = match op {
                    Op::Take => full == Some(true),
                    Op::Put => full == Some(false),
                    _ => false,
                };
                (
                    format!("in {} for {for_ms:.0} ms", imp.op_name(*op)),
                    if ready && info.state == Some('S') {
                        format!(
                            " — asleep in its {op} although the box is {}",
                            if full == Some(true) { "full" } else { "empty" }
                        )
                    } else {
                        String::new()
                    },
                )
            }
            _ => ("between operations".to_string(), String::new()),
        };
        let stuck = format!("{stuck}{behind}");
        let stuck = if matches!(info.state, Some('T' | 't')) {
            format!("{stuck} — STOPPED by a signal: whoever waits on it waits on a stopped process (not a deadlock)")
        } else {
            stuck
        };
        let key = format!(
            "{} {}{stuck}",
            info.describe(),
            last.as_ref().map_or("", |r| match r {
                Record::Begin { op: Op::Take, .. } => "take",
                Record::Begin { op: Op::Put, .. } => "put",
                _ => "",
            })
        );
        let line = format!(
            "{} {} pid {}: {what}, {}{stuck}",
            roles[i],
            m.id,
            m.pid(),
            info.describe()
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(line),
            None => groups.push((key, vec![line])),
        }
    }
    for (_, lines) in groups {
        if lines.len() <= 4 {
            for l in lines {
                let _ = writeln!(s, "    {l}");
            }
        } else {
            let _ = writeln!(s, "    {} workers alike, e.g. {}", lines.len(), lines[0]);
        }
    }
    s
}

/// Puts and takes the ledgers show returned, read incrementally (each file from where the last
/// look stopped): progress without the COMMITS capability.
#[derive(Default)]
pub struct DoneCount {
    /// Per ledger: bytes read, and `Done` records seen in them.
    seen: std::collections::HashMap<PathBuf, u64>,
    total: u64,
}

impl DoneCount {
    /// The puts and takes returned so far.
    pub fn count(&mut self, ledgers: &[PathBuf]) -> u64 {
        use std::io::{Read as _, Seek as _};
        for p in ledgers {
            let at = self.seen.get(p).copied().unwrap_or(0);
            let Ok(mut f) = std::fs::File::open(p) else {
                continue;
            };
            if f.seek(std::io::SeekFrom::Start(at)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            // Only whole lines: a record being written is counted at the next look.
            let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            for line in buf[..end].split(|b| *b == b'\n') {
                if let Ok(Record::Done {
                    op: Op::Put | Op::Take,
                    ..
                }) = std::str::from_utf8(line).unwrap_or("").parse::<Record>()
                {
                    self.total += 1;
                }
            }
            self.seen.insert(p.clone(), at + end as u64 + 1);
        }
        self.total
    }
}
