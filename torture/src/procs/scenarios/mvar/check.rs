//! The end-of-run checks and the diagnosis of a stuck or wake-up-losing run.

use super::{MvarArgs, LATE_WAKES_FLOOR};
use crate::procs::capture::ProcInfo;
use crate::procs::crew::Crew;
use crate::procs::ledger::{self, Ledger, Op, Record};
use crate::report::{Finding, FindingKind};
use primitives::mvar::SharedMVar;
use std::collections::HashMap;

/// LOST WAKE-UPS if more than one in `one_in` sleeps (and more than the floor) ended by their slice although the box was ready, and `diagnosis` confirms it (`None`: not confirmed).
pub fn lost_wakeups(
    mvar: &SharedMVar,
    one_in: u64,
    diagnosis: impl FnOnce() -> Option<String>,
) -> Option<Finding> {
    let (sleeps, late) = mvar.sleep_stats();
    if !(late > LATE_WAKES_FLOOR && late * one_in > sleeps) {
        return None;
    }
    diagnosis().map(|diagnosis| {
        Finding::new(
            FindingKind::LostWakeups,
            format!(
                "LOST WAKE-UPS: {late} of {sleeps} kernel sleeps ended by their time slice although the box was ready: wake-ups do not reach the sleepers\n{diagnosis}"
            ),
        )
    })
}

/// Looks, for up to `window`, for a worker asleep in the kernel inside a `take` while the box is
/// full (or a `put` while it is empty) *and no worker runnable*, seen so twice 2 ms apart: a
/// sleeper whose condition already holds while nobody is on the way to serve it — the lost
/// wake-up itself, named. (With a worker runnable, the one woken for the box may simply be
/// waiting for a CPU: on a busy machine that is not a lost wake-up.) `None` if none was caught.
pub fn sleeper_despite_ready(
    mvar: &SharedMVar,
    crew: &Crew,
    roles: &[&str],
    window: std::time::Duration,
) -> Option<String> {
    let until = std::time::Instant::now() + window;
    let ready_for = |op: Op| match op {
        Op::Take => mvar.is_full(),
        Op::Put => !mvar.is_full(),
        _ => false,
    };
    while std::time::Instant::now() < until {
        for (i, m) in crew.members().iter().enumerate() {
            let Some(Record::Begin { op, start_ns, .. }) = ledger::last_record(&m.ledger) else {
                continue;
            };
            let nobody_runnable = || {
                crew.members()
                    .iter()
                    .all(|o| ProcInfo::of(o.pid()).state != Some('R'))
            };
            let looks = || {
                ready_for(op)
                    && ProcInfo::of(m.pid()).state == Some('S')
                    && nobody_runnable()
                    && matches!(ledger::last_record(&m.ledger), Some(Record::Begin { start_ns: s, .. }) if s == start_ns)
            };
            if looks() {
                std::thread::sleep(std::time::Duration::from_millis(2));
                if looks() {
                    let info = ProcInfo::of(m.pid());
                    return Some(format!(
                        "    {} {} pid {} sleeps in its {op} although the box is {} ({}; seen twice, 2 ms apart)",
                        roles[i],
                        m.id,
                        m.pid(),
                        if op == Op::Take { "full" } else { "empty" },
                        info.describe()
                    ));
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    None
}

/// Conservation: the box is empty, every slave's final take got a distinct value, every value
/// 1..=N was put once by the master and taken for good once; returns (takes, puts) returned.
pub fn check(
    args: &MvarArgs,
    slaves: u32,
    full: Option<bool>,
    ledgers: &[Ledger],
    findings: Option<&mut Vec<Finding>>,
) -> (usize, usize) {
    let mut takes = 0;
    let mut puts = 0;
    let mut final_takes: HashMap<u64, usize> = HashMap::new();
    for l in ledgers {
        let mut last_take = None;
        for r in &l.records {
            match r {
                Record::Done {
                    op: Op::Take,
                    id: Some(id),
                    ..
                } => {
                    takes += 1;
                    last_take = Some(*id);
                }
                Record::Done { op: Op::Put, .. } => {
                    puts += 1;
                    last_take = None;
                }
                _ => {}
            }
        }
        if let Some(id) = last_take {
            *final_takes.entry(id).or_default() += 1;
        }
    }
    let Some(f) = findings else {
        return (takes, puts);
    };
    let n = slaves as usize;
    if full == Some(true) {
        f.push(Finding::new(
            FindingKind::Count,
            "COUNT: the box is not empty at the end",
        ));
    }
    let expected_takes = n * (args.rounds as usize + 1);
    let expected_puts = n * args.rounds as usize + n;
    if takes != expected_takes || puts != expected_puts {
        f.push(Finding::new(
            FindingKind::Count,
            format!("COUNT: {takes} takes and {puts} puts returned; expected {expected_takes} and {expected_puts}"),
        ));
    }
    let dup = final_takes.iter().filter(|(_, c)| **c > 1).count();
    let missing = (1..=n as u64)
        .filter(|id| !final_takes.contains_key(id))
        .count();
    if dup > 0 {
        f.push(Finding::new(
            FindingKind::Duplicated,
            format!("DUPLICATED: {dup} value(s) taken for good by more than one slave"),
        ));
    }
    if missing > 0 {
        f.push(Finding::new(
            FindingKind::Lost,
            format!("LOST: {missing} of {n} values never taken for good"),
        ));
    }
    if final_takes.keys().any(|id| *id == 0 || *id > n as u64) {
        f.push(Finding::new(
            FindingKind::Invented,
            "INVENTED: a slave took a value the master never put",
        ));
    }
    (takes, puts)
}
