//! `lock_ops`: nested lock/unlock sequences over four lock classes (each reentrant or not), run
//! one after another on fresh threads, with the lock-order validator in `Report` mode. A model
//! keeps its own class-order graph: while it is acyclic the validator must report nothing (no
//! false report on valid orders); every acquisition that closes a cycle in the model must leave
//! a reported inversion naming both classes (a report on every inverted order).
//!
//! `FUZZ_CONTROL=lockdep-off`: the validator in `Off` mode (a validator that sees nothing) —
//! caught as soon as a case inverts an order.

use arbitrary::Arbitrary;
use primitives::lock::{Mode, Mutex, ReentrantLock, Validator, ViolationKind};
use std::collections::BTreeSet;

const CLASSES: usize = 4;
const MAX_SEQUENCES: usize = 4;
const MAX_STEPS: usize = 24;

/// One step of a sequence.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Step {
    /// Lock class `n % 4` (skipped if it is held and not reentrant: that would self-deadlock).
    Lock(u8),
    /// Release the innermost held lock.
    Unlock,
}

/// The case: which classes are reentrant, and the sequences (each on its own thread, in turn).
#[derive(Arbitrary, Debug)]
pub struct Case {
    pub reentrant: [bool; CLASSES],
    pub sequences: Vec<Vec<Step>>,
}

/// Decodes and runs one input.
pub fn fuzz(data: &[u8]) {
    let Some(mut case) = crate::decode::<Case>(data) else {
        return;
    };
    case.sequences.truncate(MAX_SEQUENCES);
    for s in &mut case.sequences {
        s.truncate(MAX_STEPS);
    }
    let mode = match crate::control().as_deref() {
        None => Mode::Report,
        Some("lockdep-off") => Mode::Off,
        Some(other) => panic!("FUZZ_CONTROL={other}: not a control of lock_ops"),
    };
    crate::deadline::run("lock_ops", &case, || run(&case, mode));
}

enum Lock {
    Plain(Mutex<()>),
    Nested(ReentrantLock<()>),
}

/// Held only to be dropped (released) later.
#[allow(dead_code)]
enum Guard<'a> {
    Plain(primitives::lock::MutexGuard<'a, ()>),
    Nested(primitives::lock::ReentrantLockGuard<'a, ()>),
}

/// The model's order graph over classes.
#[derive(Default)]
struct Model {
    edges: BTreeSet<(usize, usize)>,
}

impl Model {
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut stack = vec![from];
        let mut seen = [false; CLASSES];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            stack.extend(self.edges.iter().filter(|e| e.0 == n).map(|e| e.1));
        }
        false
    }
}

/// Runs `case` with the validator in `mode`; panics on a missing or false report.
pub fn run(case: &Case, mode: Mode) {
    let v = Validator::new(mode);
    let names = ["A", "B", "C", "D"];
    let locks: Vec<Lock> = (0..CLASSES)
        .map(|c| {
            let class = v.class(names[c], case.reentrant[c]);
            if case.reentrant[c] {
                Lock::Nested(ReentrantLock::tracked((), &class))
            } else {
                Lock::Plain(Mutex::tracked((), &class))
            }
        })
        .collect();
    let mut model = Model::default();
    let mut cyclic = false;
    for seq in &case.sequences {
        let (locks, v, model, cyclic) = (&locks, &v, &mut model, &mut cyclic);
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut held: Vec<(usize, Guard<'_>)> = Vec::new();
                for step in seq {
                    match *step {
                        Step::Unlock => drop(held.pop()),
                        Step::Lock(n) => {
                            let c = usize::from(n) % CLASSES;
                            let already = held.iter().any(|h| h.0 == c);
                            if already && !case.reentrant[c] {
                                continue;
                            }
                            let mut closes = Vec::new();
                            if !already {
                                let mut classes: Vec<usize> = held.iter().map(|h| h.0).collect();
                                classes.dedup();
                                for h in classes {
                                    if model.edges.contains(&(h, c)) {
                                        continue;
                                    }
                                    if model.reaches(c, h) {
                                        closes.push(h);
                                    }
                                    model.edges.insert((h, c));
                                }
                            }
                            let g = match &locks[c] {
                                Lock::Plain(m) => Guard::Plain(m.lock()),
                                Lock::Nested(r) => Guard::Nested(r.lock()),
                            };
                            held.push((c, g));
                            let reported = v.violations();
                            if !closes.is_empty() {
                                *cyclic = true;
                            }
                            if !*cyclic {
                                assert!(
                                    reported.is_empty(),
                                    "false report on an acyclic order: {}",
                                    reported[0]
                                );
                            }
                            // The validator reports the first inversion an acquisition closes
                            // (as lockdep does); it must name this class and one of them.
                            if !closes.is_empty() {
                                assert!(
                                    reported.iter().any(|r| r.kind == ViolationKind::Inversion
                                        && r.cycle.contains(&names[c])
                                        && closes.iter().any(|&h| r.cycle.contains(&names[h]))),
                                    "taking {} while holding {:?} inverts an earlier order, but the validator reported {:?}",
                                    names[c],
                                    closes.iter().map(|&h| names[h]).collect::<Vec<_>>(),
                                    reported.iter().map(|r| r.to_string()).collect::<Vec<_>>()
                                );
                            }
                        }
                    }
                }
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        });
    }
}
