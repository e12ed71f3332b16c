//! The linearizability check of `torture mvar`: the workers' `begin`/`done` records (with their
//! end times) as one history, judged by [`primitives::check::linearizability`].

use crate::procs::ledger::{Ledger, Op, Record};
use crate::report::{Finding, FindingKind};
use primitives::check::linearizability::{check_with, Cell, Kind, Limits, Operation, Verdict};
use std::time::Instant;

/// Search steps before the answer is "unknown".
const MAX_STEPS: u64 = 1_000_000;

/// The history the ledgers record (ledger `i` is process `i`), or why there is none. An
/// operation begun and never done (its worker was killed or stopped) is pending.
pub fn history(ledgers: &[Ledger]) -> Result<Vec<Operation>, String> {
    let mut ops = Vec::new();
    for (p, l) in ledgers.iter().enumerate() {
        let process = p as u32;
        let pending = |(op, id, call_ns): (Op, Option<u64>, u64)| {
            let kind = match op {
                Op::Put => {
                    Kind::Put(id.ok_or_else(|| format!("worker {p}: a put without a value"))?)
                }
                Op::Take => Kind::Take(None),
                other => return Err(format!("worker {p}: {other} is not an MVar operation")),
            };
            Ok(Operation {
                process,
                call_ns,
                return_ns: None,
                kind,
            })
        };
        let mut open: Option<(Op, Option<u64>, u64)> = None;
        for r in &l.records {
            match *r {
                Record::Begin {
                    op, id, start_ns, ..
                } => {
                    if let Some(o) = open.replace((op, id, start_ns)) {
                        ops.push(pending(o)?);
                    }
                }
                Record::Done { op, id, end_ns } => {
                    let Some((begun, put, call_ns)) = open.take() else {
                        return Err(format!("worker {p}: done {op} without a begin"));
                    };
                    let return_ns = Some(
                        end_ns.ok_or_else(|| format!("worker {p}: done {op} has no end time"))?,
                    );
                    let kind = match (begun, op, id) {
                        (Op::Put, Op::Put, _) => pending((begun, put, call_ns))?.kind,
                        (Op::Take, Op::Take, Some(v)) => Kind::Take(Some(v)),
                        _ => return Err(format!("worker {p}: begin {begun} ended by {r}")),
                    };
                    ops.push(Operation {
                        process,
                        call_ns,
                        return_ns,
                        kind,
                    });
                }
                Record::TimedOut { .. } => {
                    if let Some((_, _, call_ns)) = open.take() {
                        let (return_ns, kind) = (Some(call_ns), Kind::TimedOut);
                        ops.push(Operation {
                            process,
                            call_ns,
                            return_ns,
                            kind,
                        });
                    }
                }
                _ => {}
            }
        }
        if let Some(o) = open {
            ops.push(pending(o)?);
        }
    }
    Ok(ops)
}

fn describe(h: &[Operation], i: usize) -> String {
    let o = &h[i];
    let ret = o
        .return_ns
        .map_or("pending".to_string(), |r| format!("returned {r}"));
    format!(
        "worker {} {:?} (called {}, {ret})",
        o.process, o.kind, o.call_ns
    )
}

/// Checks the run's history if it has at most `max_ops` operations: a NOT LINEARIZABLE verdict
/// is a finding; returns the summary line and the figures.
pub fn judge(
    ledgers: &[Ledger],
    max_ops: usize,
    findings: &mut Vec<Finding>,
) -> (String, serde_json::Value) {
    let h = match history(ledgers) {
        Ok(h) => h,
        Err(e) => {
            return (
                format!("linearizability: unknown ({e})"),
                serde_json::json!({"verdict": "unknown"}),
            )
        }
    };
    let n = h.len();
    if n > max_ops {
        return (
            format!("linearizability: not checked ({n} operations, more than --check-max-ops {max_ops})"),
            serde_json::json!({"verdict": "not checked", "ops": n}),
        );
    }
    let start = Instant::now();
    let limits = Limits {
        max_ops,
        max_steps: MAX_STEPS,
    };
    let verdict = check_with(&h, Cell::Empty, limits);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let (line, word) = match verdict {
        Verdict::Linearizable { .. } => (
            format!("linearizable ({n} ops, checked in {ms:.1} ms)"),
            "linearizable",
        ),
        Verdict::Unknown { reason } => (format!("linearizability: unknown ({reason})"), "unknown"),
        Verdict::NotLinearizable { prefix, stuck } => {
            let mut text = format!(
                "NOT LINEARIZABLE: {n} operations admit no legal order; the longest legal prefix has {} operations, after which none of these can come next:",
                prefix.len()
            );
            for &i in &stuck {
                text.push_str(&format!("\n    {}", describe(&h, i)));
            }
            if let Some(&last) = prefix.last() {
                text.push_str(&format!("\n  (last placed: {})", describe(&h, last)));
            }
            findings.push(Finding::new(FindingKind::Linearizability, text));
            (
                format!("linearizability: NOT LINEARIZABLE ({n} ops)"),
                "not linearizable",
            )
        }
    };
    (
        line,
        serde_json::json!({"verdict": word, "ops": n, "ms": ms}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(lines: &[&str]) -> Ledger {
        Ledger {
            path: "test".into(),
            records: lines.iter().map(|l| l.parse().unwrap()).collect(),
            bad: Vec::new(),
        }
    }

    #[test]
    fn a_value_taken_twice_is_a_finding() {
        let ledgers = [
            ledger(&["begin put 1 0 -", "done put 1 10"]),
            ledger(&["begin take - 20 -", "done take 1 30"]),
            ledger(&["begin take - 40 -", "done take 1 50"]),
        ];
        let mut findings = Vec::new();
        let (line, _) = judge(&ledgers, 100, &mut findings);
        assert_eq!(line, "linearizability: NOT LINEARIZABLE (3 ops)");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::Linearizability);
        assert!(
            findings[0].text.contains("worker 2 Take(Some(1))"),
            "{}",
            findings[0].text
        );
    }

    #[test]
    fn a_killed_putter_and_an_old_ledger() {
        let killed = [
            ledger(&["begin put 1 0 -"]),
            ledger(&["begin take - 20 -", "done take 1 30"]),
        ];
        let mut findings = Vec::new();
        let (line, _) = judge(&killed, 100, &mut findings);
        assert!(line.starts_with("linearizable (2 ops"), "{line}");
        assert_eq!(
            judge(&killed, 1, &mut findings).0,
            "linearizability: not checked (2 operations, more than --check-max-ops 1)"
        );
        let old = [ledger(&["begin put 1 0 -", "done put 1"])];
        assert_eq!(
            judge(&old, 100, &mut findings).0,
            "linearizability: unknown (worker 0: done put has no end time)"
        );
        assert!(findings.is_empty());
    }
}
