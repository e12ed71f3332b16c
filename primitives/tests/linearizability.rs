//! The linearizability checker: histories that are linearizable, histories that are not (each
//! with the exact explanation), the caps, and a real MVar's history.
#![cfg(not(any(loom, shuttle)))]

use primitives::check::linearizability::{
    check, check_with, Cell, Kind, Limits, Operation, Verdict,
};

fn op(process: u32, call_ns: u64, return_ns: Option<u64>, kind: Kind) -> Operation {
    Operation {
        process,
        call_ns,
        return_ns,
        kind,
    }
}

fn ok(order: &[usize]) -> Verdict {
    Verdict::Linearizable {
        order: order.to_vec(),
    }
}

fn not(prefix: &[usize], stuck: &[usize]) -> Verdict {
    Verdict::NotLinearizable {
        prefix: prefix.to_vec(),
        stuck: stuck.to_vec(),
    }
}

#[test]
fn a_sequential_history_is_linearizable_in_its_own_order() {
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, Some(3), Kind::Take(Some(1))),
        op(0, 4, Some(5), Kind::Put(2)),
        op(1, 6, Some(7), Kind::Read(Some(2))),
        op(
            0,
            8,
            Some(9),
            Kind::TryPut {
                value: 3,
                ok: false,
            },
        ),
        op(1, 10, Some(11), Kind::TryTake(Some(2))),
        op(0, 12, Some(13), Kind::TryTake(None)),
        op(1, 14, Some(15), Kind::TryPut { value: 4, ok: true }),
    ];
    assert_eq!(check(&h), ok(&[0, 1, 2, 3, 4, 5, 6, 7]));
}

#[test]
fn a_take_called_before_the_put_it_returns_goes_after_it() {
    let h = [
        op(0, 0, Some(10), Kind::Take(Some(1))),
        op(1, 5, Some(6), Kind::Put(1)),
    ];
    assert_eq!(check(&h), ok(&[1, 0]));
}

#[test]
fn overlapping_puts_and_takes_pair_up() {
    // Two puts and two takes all overlapping: take 2 must follow put 2, take 1 put 1.
    let h = [
        op(0, 0, Some(20), Kind::Put(1)),
        op(1, 0, Some(20), Kind::Put(2)),
        op(2, 0, Some(20), Kind::Take(Some(2))),
        op(3, 0, Some(20), Kind::Take(Some(1))),
    ];
    assert_eq!(check(&h), ok(&[0, 3, 1, 2]));
}

#[test]
fn a_pending_put_may_have_taken_effect() {
    // The putter was killed mid-put; its value was taken afterwards.
    let h = [
        op(0, 0, None, Kind::Put(7)),
        op(1, 5, Some(6), Kind::Take(Some(7))),
    ];
    assert_eq!(check(&h), ok(&[0, 1]));
}

#[test]
fn a_pending_put_may_have_had_no_effect() {
    // The second put is still blocked (the box stayed full): it is left out.
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, None, Kind::Put(2)),
        op(2, 3, Some(4), Kind::Read(Some(1))),
    ];
    assert_eq!(check(&h), ok(&[0, 2]));
}

#[test]
fn a_timed_out_op_had_no_effect() {
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, Some(3), Kind::TimedOut),
        op(2, 4, Some(5), Kind::Take(Some(1))),
    ];
    assert_eq!(check(&h), ok(&[0, 2]));
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(check(&[]), ok(&[]));
}

#[test]
fn a_take_of_a_value_nobody_put_is_not() {
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, Some(3), Kind::Take(Some(2))),
    ];
    assert_eq!(check(&h), not(&[0], &[1]));
}

#[test]
fn two_takes_of_one_put_are_not() {
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, Some(3), Kind::Take(Some(1))),
        op(2, 2, Some(4), Kind::Take(Some(1))),
    ];
    assert_eq!(check(&h), not(&[0, 1], &[2]));
}

#[test]
fn a_read_of_a_value_taken_before_the_read_began_is_not() {
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, Some(3), Kind::Take(Some(1))),
        op(2, 4, Some(5), Kind::Read(Some(1))),
    ];
    assert_eq!(check(&h), not(&[0, 1], &[2]));
}

#[test]
fn seeing_empty_while_the_box_stayed_full_is_not() {
    // A take-then-put inside the MVar would let try_take see empty: the model forbids it,
    // since the only take returned after the try_take.
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, Some(3), Kind::TryTake(None)),
        op(2, 4, Some(5), Kind::Take(Some(1))),
    ];
    assert_eq!(check(&h), not(&[0], &[1]));
}

#[test]
fn a_refused_try_put_on_an_empty_box_is_not() {
    let h = [op(
        0,
        0,
        Some(1),
        Kind::TryPut {
            value: 1,
            ok: false,
        },
    )];
    assert_eq!(check(&h), not(&[], &[0]));
}

#[test]
fn a_put_into_a_full_box_that_returned_is_not() {
    let h = [op(0, 0, Some(1), Kind::Put(2))];
    assert_eq!(
        check_with(&h, Cell::Full(1), Limits::default()),
        not(&[], &[0])
    );
    assert_eq!(check_with(&h, Cell::Empty, Limits::default()), ok(&[0]));
}

#[test]
fn past_the_step_budget_the_answer_is_unknown() {
    let h = [
        op(0, 0, Some(1), Kind::Put(1)),
        op(1, 2, Some(3), Kind::Take(Some(1))),
        op(0, 4, Some(5), Kind::Put(2)),
    ];
    let tiny = Limits {
        max_ops: 100,
        max_steps: 2,
    };
    assert_eq!(
        check_with(&h, Cell::Empty, tiny),
        Verdict::Unknown {
            reason: "search budget of 2 steps exhausted (3 operations)".into()
        }
    );
    let enough = Limits {
        max_steps: 3,
        ..tiny
    };
    assert_eq!(check_with(&h, Cell::Empty, enough), ok(&[0, 1, 2]));
}

#[test]
fn past_the_size_cap_the_answer_is_unknown() {
    let h = [op(0, 0, Some(1), Kind::Put(1)); 3];
    let cap = Limits {
        max_ops: 2,
        max_steps: 1_000,
    };
    assert_eq!(
        check_with(&h, Cell::Empty, cap),
        Verdict::Unknown {
            reason: "3 operations, more than the cap of 2".into()
        }
    );
}

#[test]
fn a_malformed_interval_is_unknown() {
    let h = [op(0, 5, Some(1), Kind::Put(1))];
    assert!(matches!(check(&h), Verdict::Unknown { reason } if reason.contains("returns before")));
}

#[test]
fn a_wide_impossible_history_ends_unknown_not_hung() {
    // 30 fully overlapping put/take pairs and one take of a value nobody put: 2^30 subsets of
    // pairs to try before "no", far past a small budget, which must end the search.
    let mut h: Vec<Operation> = (0..30)
        .map(|v| op(v, 0, Some(1_000), Kind::Put(u64::from(v))))
        .collect();
    h.extend((0..30).map(|v| op(30 + v, 0, Some(1_000), Kind::Take(Some(u64::from(v))))));
    h.push(op(60, 0, Some(1_000), Kind::Take(Some(999))));
    let limits = Limits {
        max_ops: 1024,
        max_steps: 10_000,
    };
    assert!(matches!(
        check_with(&h, Cell::Empty, limits),
        Verdict::Unknown { .. }
    ));
}

/// A real MVar, three threads putting and taking: its history must check linearizable.
#[test]
fn a_real_mvars_history_is_linearizable() {
    use primitives::MVar;
    use std::time::Instant;
    let mvar = MVar::<u64>::new_empty();
    let t0 = Instant::now();
    let ns = || t0.elapsed().as_nanos() as u64;
    let per = 30u64;
    let histories: Vec<Vec<Operation>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3u32)
            .map(|p| {
                let (mvar, ns) = (&mvar, &ns);
                s.spawn(move || {
                    let mut h = Vec::new();
                    for k in 0..per {
                        let v = u64::from(p) * 1_000 + k;
                        let c = ns();
                        mvar.put(v);
                        h.push(op(p, c, Some(ns()), Kind::Put(v)));
                        let c = ns();
                        let got = mvar.take();
                        h.push(op(p, c, Some(ns()), Kind::Take(Some(got))));
                    }
                    h
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let h: Vec<Operation> = histories.into_iter().flatten().collect();
    assert_eq!(h.len(), 180);
    match check(&h) {
        Verdict::Linearizable { order } => assert_eq!(order.len(), 180),
        v => panic!("{v:?}"),
    }
}
