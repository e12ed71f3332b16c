//! The storm's end-of-run checks, from the workers' ledgers and the box's commit count; see
//! the module docs of [`super`].

use super::StormReport;
use crate::procs::ledger::{Ledger, Op, Record};
use crate::report::{Finding, FindingKind};
use primitives::msg::ring::RingMessage;
use std::collections::{HashMap, HashSet};

/// Bad ledger records listed one by one before the rest are only counted.
const MAX_BAD_RECORDS_SHOWN: usize = 3;

fn fail(r: &mut StormReport, kind: FindingKind, text: String) {
    r.findings.push(Finding::new(kind, text));
}

/// Checks the box's traffic in the ledgers against its commit count and final content.
///
/// Without `exact` (no commit count, or the box's content unknown) the accounting against the
/// commit count is skipped: duplicates, inventions and torn values are still checked.
pub fn check(ledgers: &[Ledger], final_value: Option<u64>, exact: bool, r: &mut StormReport) {
    let mut put_intent: HashSet<u64> = HashSet::new();
    let mut put_done: Vec<u64> = Vec::new();
    let mut taken: Vec<u64> = Vec::new();
    let mut read_ids: Vec<u64> = Vec::new();
    let mut bad_records = 0usize;
    for l in ledgers {
        let mut open_put: Option<u64> = None;
        let mut open_take = false;
        for rec in &l.records {
            match *rec {
                Record::Begin {
                    op: Op::Put,
                    id: Some(id),
                    ..
                } => {
                    put_intent.insert(id);
                    open_put = Some(id);
                }
                Record::Done {
                    op: Op::Put,
                    id: Some(id),
                    ..
                } => {
                    put_done.push(id);
                    open_put = None;
                }
                Record::TimedOut { op: Op::Put, .. } => {
                    open_put = None;
                    r.timeouts += 1;
                }
                Record::Begin { op: Op::Take, .. } => open_take = true,
                Record::Done {
                    op: Op::Take,
                    id: Some(id),
                    ..
                } => {
                    taken.push(id);
                    open_take = false;
                }
                Record::TimedOut { op: Op::Take, .. } => {
                    open_take = false;
                    r.timeouts += 1;
                }
                Record::Done {
                    op: Op::Read,
                    id: Some(id),
                    ..
                } => read_ids.push(id),
                Record::Recovered {
                    op: Op::Put | Op::Take,
                    ..
                } => r.recoveries_seen += 1,
                Record::Recovered { op: Op::Lock, .. } => r.lock_recoveries_seen += 1,
                Record::Torn { id } => fail(
                    r,
                    FindingKind::Torn,
                    format!(
                        "TORN: {} saw a torn value (id field {id:#x})",
                        l.path.display()
                    ),
                ),
                // Reads starting, lock and log traffic (checked by `check_log`).
                _ => {}
            }
        }
        for b in &l.bad {
            bad_records += 1;
            if bad_records <= MAX_BAD_RECORDS_SHOWN {
                fail(
                    r,
                    FindingKind::Worker,
                    format!("bad ledger record {:?} in {}", b.0, l.path.display()),
                );
            }
        }
        r.cut_puts += usize::from(open_put.is_some());
        r.cut_takes += usize::from(open_take);
    }
    if bad_records > MAX_BAD_RECORDS_SHOWN {
        fail(
            r,
            FindingKind::Worker,
            format!(
                "... {} more bad ledger records",
                bad_records - MAX_BAD_RECORDS_SHOWN
            ),
        );
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
        fail(
            r,
            FindingKind::Duplicated,
            format!(
                "DUPLICATED: {} value(s) taken more than once, e.g. {:#x}",
                dups.len(),
                dups[0]
            ),
        );
    }
    let invented: Vec<_> = all_taken
        .iter()
        .chain(&read_ids)
        .filter(|id| !put_intent.contains(id))
        .collect();
    if !invented.is_empty() {
        fail(
            r,
            FindingKind::Invented,
            format!(
                "INVENTED: {} value(s) taken or read that nobody put, e.g. {:#x}",
                invented.len(),
                invented[0]
            ),
        );
    }
    if !exact {
        return;
    }
    let recorded_takes = all_taken.len() as u64;
    let Some((cut_puts_committed, cut_takes_committed)) =
        crate::procs::ledger::committed_unrecorded(
            r.commits,
            put_done.len() as u64,
            recorded_takes,
        )
    else {
        fail(
            r,
            FindingKind::Count,
            format!(
                "COUNT: {} commits cannot hold {} returned puts and {} returned takes",
                r.commits,
                put_done.len(),
                recorded_takes
            ),
        );
        return;
    };
    r.committed_cut_puts = cut_puts_committed;
    r.committed_cut_takes = cut_takes_committed;
    if cut_puts_committed > r.cut_puts as u64 || cut_takes_committed > r.cut_takes as u64 {
        fail(
            r,
            FindingKind::Count,
            format!(
                "COUNT: {cut_puts_committed} puts and {cut_takes_committed} takes committed without being recorded, but only {} puts and {} takes were cut by a kill",
                r.cut_puts, r.cut_takes
            ),
        );
    }
    let taken_set: HashSet<u64> = all_taken.iter().copied().collect();
    let lost: Vec<_> = put_done
        .iter()
        .filter(|id| !taken_set.contains(id))
        .collect();
    if lost.len() as u64 > cut_takes_committed {
        fail(
            r,
            FindingKind::Lost,
            format!(
                "LOST: {} value(s) whose put returned were never taken nor left in the box, but only {cut_takes_committed} take(s) died after committing; e.g. {:#x}",
                lost.len(),
                lost[0]
            ),
        );
    }
}

/// Checks the log's delivery (see [`crate::procs::delivery`]) into the storm's report.
pub fn check_log(ledgers: &[Ledger], delivered: &[RingMessage], r: &mut StormReport) {
    let d = crate::procs::delivery::check(ledgers, delivered);
    r.logged = d.logged;
    r.delivered = d.delivered;
    r.rescued = d.rescued;
    r.cut_logs = d.cut;
    r.findings.extend(d.findings);
}
