//! `torture mvar --kill-rate`: slaves SIGKILLed at any instruction and replaced.
//!
//! **Resuming a job.** A slave's job is a sequence of operations — `[put carry] (take, put) ×
//! rounds, take` — and its ledger says how many returned and whether one was in flight. The
//! replacement gets the rest of the job: if the dead slave had certainly taken a value it had
//! not begun to put back, the replacement puts that value back first (`carry`); a job whose
//! final take returned is done and not replaced.
//!
//! **What is lost.** An operation in flight at the kill is ambiguous: a take may have committed
//! (the value died with the slave), a put may not have (likewise). Each value lost so starves
//! one final take at the end. The box's commit count settles the ambiguity exactly: commits
//! alternate put / take from an empty box, so after `G` commits there were `⌈G/2⌉` puts and
//! `⌊G/2⌋` takes, of which the ledgers show the returned ones; the rest are the ambiguous ones
//! that committed. When the run is quiet with the box empty and `B` slaves still waiting in a
//! take, it must be that `B` values were lost with killed slaves — no more, no fewer — or the
//! box lost, invented or duplicated a value.

use super::Spec;
use crate::procs::ledger::{Ledger, Op, Record};

/// What a killed slave left.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// The replacement's spec (`None`: the job is done).
    pub spec: Option<Spec>,
    /// An operation was in flight (it may or may not have committed).
    pub ambiguous: Option<Op>,
}

/// The rest of `job` after its ledger `records`; see the module docs.
pub fn resume(job: &Spec, records: &[Record]) -> Resume {
    let Some(rounds) = job.rounds else {
        return Resume::default();
    };
    // The job's operations in order.
    let mut ops: Vec<Op> = Vec::new();
    if job.carry.is_some() {
        ops.push(Op::Put);
    }
    for _ in 0..rounds {
        ops.extend([Op::Take, Op::Put]);
    }
    if job.final_take {
        ops.push(Op::Take);
    }
    let mut done = 0;
    let mut last_taken = None;
    let mut in_flight = None;
    for r in records {
        match *r {
            Record::Begin { op, .. } if op == Op::Put || op == Op::Take => in_flight = Some(op),
            Record::Done { op, id, .. } if op == Op::Put || op == Op::Take => {
                done += 1;
                in_flight = None;
                last_taken = if op == Op::Take { id } else { None };
            }
            _ => {}
        }
    }
    let carry_first = usize::from(job.carry.is_some());
    // Rounds wholly done, and whether the next operation (at `done`) begins a round.
    let rest_from = |at: usize| -> (u32, bool) {
        let after_carry = at.saturating_sub(carry_first);
        let full_rounds = (after_carry / 2) as u32;
        (rounds.saturating_sub(full_rounds), after_carry % 2 == 1)
    };
    let mut next = Spec {
        carry: None,
        ..job.clone()
    };
    let ambiguous = in_flight;
    if done >= ops.len() {
        return Resume {
            spec: None,
            ambiguous,
        };
    }
    match in_flight {
        // A take was in flight: redo it (if it committed, its value died with the slave).
        Some(Op::Take) => {
            let (left, mid_round) = rest_from(done);
            debug_assert!(!mid_round);
            next.rounds = Some(left.min(rounds));
        }
        // A put was in flight: consider it done (if it did not commit, its value died).
        Some(_) => {
            let (left, _) = rest_from(done + 1);
            next.rounds = Some(left);
        }
        None => {
            let (left, mid_round) = rest_from(done);
            if mid_round {
                // Between a round's take and its put: the value is certainly in hand.
                next.carry = last_taken;
                next.rounds = Some(left.saturating_sub(1));
            } else {
                next.rounds = Some(left);
            }
        }
    }
    Resume {
        spec: Some(next),
        ambiguous,
    }
}

/// Puts and takes that returned (`Done`) in every ledger.
pub fn returned(ledgers: &[Ledger]) -> (u64, u64) {
    let mut puts = 0;
    let mut takes = 0;
    for r in ledgers.iter().flat_map(|l| &l.records) {
        match r {
            Record::Done { op: Op::Put, .. } => puts += 1,
            Record::Done { op: Op::Take, .. } => takes += 1,
            _ => {}
        }
    }
    (puts, takes)
}

/// Values lost with killed slaves, from the commit count `generation`, the operations that
/// returned and the ambiguous ones (puts, takes); `Err` if the counts cannot be reconciled.
pub fn lost_values(
    generation: u64,
    returned: (u64, u64),
    ambiguous: (u64, u64),
) -> Result<u64, String> {
    let (p_done, t_done) = returned;
    let (p_amb, t_amb) = ambiguous;
    match crate::procs::ledger::committed_unrecorded(generation, p_done, t_done) {
        Some((pc, tc)) if pc <= p_amb && tc <= t_amb => Ok(tc + (p_amb - pc)),
        _ => Err(format!(
            "{generation} commits mean {} puts and {} takes, but {p_done} puts and {t_done} takes returned and only {p_amb} puts and {t_amb} takes were cut by a kill",
            generation.div_ceil(2),
            generation / 2
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(rounds: u32) -> Spec {
        Spec {
            mvar: String::new(),
            rounds: Some(rounds),
            values: 3,
            valve_ns: 1,
            control: None,
            lib: None,
            plugin: None,
            carry: None,
            final_take: true,
        }
    }

    fn begin(op: Op) -> Record {
        Record::Begin {
            op,
            id: None,
            start_ns: 0,
            deadline_ns: None,
        }
    }

    fn done(op: Op, id: u64) -> Record {
        Record::Done {
            op,
            id: Some(id),
            end_ns: None,
        }
    }

    #[test]
    fn a_slave_killed_holding_a_value_hands_it_to_its_replacement() {
        let r = resume(&job(3), &[begin(Op::Take), done(Op::Take, 7)]);
        let s = r.spec.expect("replaced");
        assert_eq!((s.carry, s.rounds, r.ambiguous), (Some(7), Some(2), None));
    }

    #[test]
    fn an_ambiguous_take_is_redone_and_an_ambiguous_put_is_not() {
        let r = resume(
            &job(3),
            &[begin(Op::Take), done(Op::Take, 7), begin(Op::Put)],
        );
        let s = r.spec.expect("replaced");
        assert_eq!(
            (s.carry, s.rounds, r.ambiguous),
            (None, Some(2), Some(Op::Put))
        );
        let r = resume(
            &job(3),
            &[
                begin(Op::Take),
                done(Op::Take, 7),
                begin(Op::Put),
                done(Op::Put, 7),
                begin(Op::Take),
            ],
        );
        let s = r.spec.expect("replaced");
        assert_eq!(
            (s.carry, s.rounds, r.ambiguous),
            (None, Some(2), Some(Op::Take))
        );
    }

    #[test]
    fn a_carried_value_is_put_before_the_rounds() {
        let carried = Spec {
            carry: Some(7),
            ..job(2)
        };
        // Killed after putting the carry back and taking again.
        let recs = [
            begin(Op::Put),
            done(Op::Put, 7),
            begin(Op::Take),
            done(Op::Take, 9),
        ];
        let s = resume(&carried, &recs).spec.expect("replaced");
        assert_eq!((s.carry, s.rounds), (Some(9), Some(1)));
        // Killed before putting it back: the same value is carried again.
        let s = resume(&carried, &[begin(Op::Put)]).spec.expect("replaced");
        assert_eq!((s.carry, s.rounds), (None, Some(2)));
    }

    #[test]
    fn a_job_whose_final_take_returned_is_done() {
        let recs = [begin(Op::Take), done(Op::Take, 1)];
        assert_eq!(resume(&job(0), &recs).spec, None);
    }

    #[test]
    fn the_commit_count_pins_what_was_lost() {
        // 5 commits = 3 puts, 2 takes; 2 puts and 2 takes returned; one put was cut: it
        // committed, nothing lost.
        assert_eq!(lost_values(5, (2, 2), (1, 0)), Ok(0));
        // The same cut put did not commit (4 commits): its value is lost.
        assert_eq!(lost_values(4, (2, 2), (1, 0)), Ok(1));
        // A cut take committed (5 commits, 3 puts, 1 take returned): lost.
        assert_eq!(lost_values(5, (3, 1), (0, 1)), Ok(1));
        // More takes committed than returned and cut: a value was invented.
        assert!(lost_values(6, (3, 1), (0, 1)).is_err());
    }
}
