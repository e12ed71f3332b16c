//! The delivery check of a shared message log, from the workers' ledgers and what the runner
//! drained: every message whose `log` returned was delivered exactly once, each origin's in
//! order; no message was invented; messages cut by a kill (begun, never recorded done) were
//! delivered at most once. Messages are `m <id>` with `id = origin << 32 | sequence`.

use crate::procs::ledger::{Ledger, Op, Record};
use crate::report::{Finding, FindingKind};
use primitives::msg::ring::RingMessage;
use std::collections::{HashMap, HashSet};

/// The text of message `id`.
pub fn text(id: u64) -> String {
    format!("m {id}")
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Messages whose `log` returned.
    pub logged: usize,
    /// Messages drained.
    pub delivered: usize,
    /// Of those, delivered by a rescuer (their origin had died).
    pub rescued: u64,
    /// Messages whose `log` was cut by a kill.
    pub cut: usize,
    /// Broken delivery invariants.
    pub findings: Vec<Finding>,
}

/// Checks `delivered` against the ledgers; see the module docs.
pub fn check(ledgers: &[Ledger], delivered: &[RingMessage]) -> Delivery {
    let mut d = Delivery::default();
    let mut fail = |text: String| d.findings.push(Finding::new(FindingKind::Log, text));
    let mut logged: HashSet<u64> = HashSet::new();
    let mut started: HashSet<u64> = HashSet::new();
    let mut cut = 0;
    for l in ledgers {
        let mut open = None;
        for rec in &l.records {
            match *rec {
                Record::Begin {
                    op: Op::Log,
                    id: Some(id),
                    ..
                } => {
                    started.insert(id);
                    open = Some(id);
                }
                Record::Done {
                    op: Op::Log,
                    id: Some(id),
                    ..
                } => {
                    logged.insert(id);
                    open = None;
                }
                Record::Refused { op: Op::Log, .. } => open = None,
                _ => {}
            }
        }
        cut += usize::from(open.is_some());
    }
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut last_of_origin: HashMap<u64, u64> = HashMap::new();
    for m in delivered {
        let Some(id) = m
            .text
            .strip_prefix("m ")
            .and_then(|t| t.parse::<u64>().ok())
        else {
            fail(format!("LOG: unexpected message {:?}", m.text));
            continue;
        };
        *seen.entry(id).or_default() += 1;
        if !started.contains(&id) {
            fail(format!("LOG: message {id:#x} delivered but never logged"));
        }
        let origin = id >> 32;
        if let Some(prev) = last_of_origin.insert(origin, id) {
            if prev > id {
                fail(format!(
                    "LOG: worker {origin}'s messages out of order: {prev:#x} before {id:#x}"
                ));
            }
        }
    }
    let dups = seen.values().filter(|n| **n > 1).count();
    if dups > 0 {
        fail(format!("LOG: {dups} message(s) delivered more than once"));
    }
    let mut missing: Vec<u64> = logged
        .iter()
        .copied()
        .filter(|id| !seen.contains_key(id))
        .collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        fail(format!(
            "LOG: {} message(s) whose log returned were never delivered, e.g. {:#x} (worker {}, message {})",
            missing.len(),
            missing[0],
            missing[0] >> 32,
            missing[0] & 0xffff_ffff
        ));
    }
    d.logged = logged.len();
    d.delivered = delivered.len();
    d.rescued = delivered.iter().filter(|m| m.rescued).count() as u64;
    d.cut = cut;
    d
}
