//! The real-thread engine: runs targets round-robin until the duration has elapsed, each run in
//! its own thread under a watchdog with a hang deadline.
//!
//! A run ends in one of three ways:
//! - it returns and no thread panicked: a pass;
//! - a thread panicked (a broken invariant, a lock-order violation): a failure, with the
//!   *first* panic of the run, wherever it happened;
//! - it has not returned by the deadline: a hang, with a snapshot of the wait registry taken at
//!   that moment. Threads cannot be killed; the caller reports and ends the process.
//!
//! The engine stops at the first failure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use primitives::scenarios::Params;
use primitives::track::waitreg::{self, WaitEntry};

use super::panics::{self, Captured};
use crate::prng::SplitMix64;

/// Something the engine can run: a reference scenario or a negative control.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Catalogue name.
    pub name: &'static str,
    /// True for a negative control.
    pub control: bool,
    /// One run.
    pub run: fn(&Params),
}

impl Target {
    /// "scenario X" / "control X".
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            if self.control { "control" } else { "scenario" },
            self.name
        )
    }
}

/// What the engine runs, and for how long.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Targets, in catalogue order (the seed shuffles each round).
    pub targets: Vec<Target>,
    /// Sizes and lockdep mode of each run.
    pub params: Params,
    /// Keep starting runs until this much time has passed (after one full round at least).
    pub duration: Duration,
    /// A run not finished after this long is a hang.
    pub deadline: Duration,
    /// Seed of the order shuffle, and of chaos mode's injections.
    pub seed: u64,
    /// Chaos mode: spurious wake-ups and short random delays injected by the primitives'
    /// `sync` facade (`primitives::sync::chaos`), seeded with `seed`, for the whole session.
    pub chaos: bool,
}

/// Run statistics of one target.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Runs started (including a failing one).
    pub runs: u64,
    /// Total time of passing runs.
    pub total: Duration,
    /// Longest passing run.
    pub max: Duration,
}

/// One sleeping thread: its wait-registry entry, and how long it had waited at the snapshot.
#[derive(Clone, Debug)]
pub struct Waiter {
    /// The registry entry as published by the waiter.
    pub entry: WaitEntry,
    /// How long it had been waiting when the snapshot was taken.
    pub waited: Duration,
}

impl std::ops::Deref for Waiter {
    type Target = WaitEntry;
    fn deref(&self) -> &WaitEntry {
        &self.entry
    }
}

/// How a run failed.
#[derive(Clone, Debug)]
pub enum FailureKind {
    /// A thread panicked and the run ended.
    Panic,
    /// The run did not end by the deadline.
    Hang,
}

/// The first failure of a torture session.
#[derive(Clone, Debug)]
pub struct Failure {
    /// What failed.
    pub target: Target,
    /// Panic or hang.
    pub kind: FailureKind,
    /// Global run index (0-based): the same seed reproduces the same sequence of targets.
    pub iteration: u64,
    /// Which run of this target it was (1-based).
    pub run_of_target: u64,
    /// Time from the start of the run to the verdict.
    pub after: Duration,
    /// The first panic of the run (for a hang, a panic that may have caused it).
    pub panic: Option<Captured>,
    /// How many threads panicked in the run.
    pub panics: usize,
    /// Wait registry at the verdict, longest waiter first (empty for a clean panic).
    pub waiters: Vec<Waiter>,
}

/// What a torture session found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Per target, in plan order.
    pub stats: Vec<(Target, Stats)>,
    /// Runs started in total.
    pub total_runs: u64,
    /// Wall time of the whole session.
    pub elapsed: Duration,
    /// The first failure, if any (the session stops there).
    pub failure: Option<Failure>,
}

/// A setup error (e.g. a thread could not be spawned): not a finding.
#[derive(Debug)]
pub struct SetupError(pub String);

enum RunResult {
    Passed(Duration),
    Panicked {
        after: Duration,
        first: Option<Captured>,
        payload: Option<String>,
    },
    Hung {
        after: Duration,
        waiters: Vec<Waiter>,
    },
}

/// Runs `plan` and returns what it found.
pub fn run(plan: &Plan) -> Result<Outcome, SetupError> {
    panics::install();
    if plan.chaos {
        primitives::sync::chaos::enable(plan.seed, primitives::sync::chaos::DEFAULT_RATE);
    }
    let outcome = run_session(plan);
    if plan.chaos {
        // A hung run's threads may still be waiting; they keep running without chaos.
        primitives::sync::chaos::disable();
    }
    outcome
}

fn run_session(plan: &Plan) -> Result<Outcome, SetupError> {
    let start = Instant::now();
    let mut rng = SplitMix64::new(plan.seed);
    let mut order: Vec<usize> = (0..plan.targets.len()).collect();
    let mut stats: Vec<(Target, Stats)> = plan
        .targets
        .iter()
        .map(|&t| (t, Stats::default()))
        .collect();
    let mut iteration = 0u64;
    let mut failure = None;
    'session: loop {
        rng.shuffle(&mut order);
        for &i in &order {
            let target = plan.targets[i];
            let st = &mut stats[i].1;
            st.runs += 1;
            let verdict = run_once(target, plan.params, plan.deadline)?;
            let (kind, after, panic, waiters) = match verdict {
                RunResult::Passed(took) => {
                    st.total += took;
                    st.max = st.max.max(took);
                    iteration += 1;
                    continue;
                }
                RunResult::Panicked {
                    after,
                    first,
                    payload,
                } => {
                    let panic = first.or_else(|| {
                        payload.map(|message| Captured {
                            message,
                            location: None,
                            thread: "?".into(),
                            backtrace: None,
                        })
                    });
                    (FailureKind::Panic, after, panic, Vec::new())
                }
                RunResult::Hung { after, waiters } => {
                    (FailureKind::Hang, after, panics::first_panic(), waiters)
                }
            };
            failure = Some(Failure {
                target,
                kind,
                iteration,
                run_of_target: st.runs,
                after,
                panic,
                panics: panics::count(),
                waiters,
            });
            break 'session;
        }
        // Whole rounds only, so that every target gets the same number of runs.
        if start.elapsed() >= plan.duration {
            break;
        }
    }
    Ok(Outcome {
        stats,
        total_runs: iteration + u64::from(failure.is_some()),
        elapsed: start.elapsed(),
        failure,
    })
}

/// One run of `target` in a fresh thread, watched with `deadline`.
fn run_once(target: Target, params: Params, deadline: Duration) -> Result<RunResult, SetupError> {
    panics::arm();
    let (tx, rx) = mpsc::channel::<Result<(), String>>();
    let started = Instant::now();
    let handle = thread::Builder::new()
        .name(format!("torture:{}", target.name))
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| (target.run)(&params)));
            // The watchdog may have given up on us (hang): nobody to tell, that is fine.
            let _ = tx.send(result.map_err(|p| panics::payload_message(&*p)));
        })
        .map_err(|e| SetupError(format!("cannot spawn a run thread: {e}")))?;
    // A hang needs the deadline passed *and* no progress: a thread that only waits for a CPU
    // (thousands of threads on two cores), or a wait that began within the last quarter
    // deadline, means the run still moves. Progress extends the wait in quarter-deadline steps,
    // up to the deadline scaled by threads per core (a livelock moves forever: it is reported
    // then).
    let cap = deadline * crate::procs::capture::load_factor(params.threads + 1, 64);
    let mut wait = deadline;
    let received = loop {
        match rx.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) if started.elapsed() < cap && progressing(deadline) => {
                wait = (deadline / 4).max(Duration::from_millis(1));
            }
            other => break other,
        }
    };
    match received {
        Ok(result) => {
            let after = started.elapsed();
            // The run thread has sent its last word; joining it is immediate.
            let _ = handle.join();
            let first = panics::first_panic();
            match result {
                Ok(()) if first.is_none() => {
                    panics::disarm();
                    Ok(RunResult::Passed(after))
                }
                // A thread panicked although the scenario returned (e.g. a thread nobody joined).
                Ok(()) => Ok(RunResult::Panicked {
                    after,
                    first,
                    payload: None,
                }),
                Err(payload) => Ok(RunResult::Panicked {
                    after,
                    first,
                    payload: Some(payload),
                }),
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            let now = primitives::sync::time::Instant::now();
            let waiters = waitreg::snapshot()
                .into_iter()
                .map(|e| Waiter {
                    waited: now.saturating_duration_since(e.since),
                    entry: e,
                })
                .collect();
            Ok(RunResult::Hung {
                after: started.elapsed(),
                waiters,
            })
        }
        // The run thread died without sending: it panicked outside `catch_unwind` (in `send`).
        Err(RecvTimeoutError::Disconnected) => {
            let _ = handle.join();
            Ok(RunResult::Panicked {
                after: started.elapsed(),
                first: panics::first_panic(),
                payload: None,
            })
        }
    }
}

/// Whether the run still moves: a thread is runnable, or a thread began to wait within the
/// last quarter of `deadline` (a hung run's sleepers have all been asleep since it stopped).
fn progressing(deadline: Duration) -> bool {
    if primitives::check::threads::others_runnable() {
        return true;
    }
    let now = primitives::sync::time::Instant::now();
    waitreg::snapshot()
        .iter()
        .map(|e| now.saturating_duration_since(e.since))
        .min()
        .is_some_and(|youngest| youngest < deadline / 4)
}

/// Groups waiters by the object they wait on, keeping the longest-waiting object first.
/// The wait-for graph among sleeping threads: for each waiter, the sleeping thread that holds
/// the lock it waits for (if that holder is itself asleep in a primitive).
pub fn wait_for_edges(waiters: &[Waiter]) -> Vec<(u64, usize, u64)> {
    let mut edges = Vec::new();
    for w in waiters {
        if let Some(h) = waiters
            .iter()
            .find(|h| h.holding_objects.contains(&w.object))
        {
            edges.push((w.thread, w.object, h.thread));
        }
    }
    edges
}

/// A cycle in the wait-for graph, as the threads on it (first repeated last), if there is one.
pub fn wait_for_cycle(edges: &[(u64, usize, u64)]) -> Option<Vec<u64>> {
    for &(start, _, _) in edges {
        let mut path = vec![start];
        let mut at = start;
        while let Some(&(_, _, next)) = edges.iter().find(|e| e.0 == at) {
            if let Some(i) = path.iter().position(|&t| t == next) {
                let mut cycle = path[i..].to_vec();
                cycle.push(next);
                return Some(cycle);
            }
            path.push(next);
            at = next;
        }
    }
    None
}

pub fn group_by_object(waiters: &[Waiter]) -> Vec<(usize, Vec<&Waiter>)> {
    let mut groups: Vec<(usize, Vec<&Waiter>)> = Vec::new();
    for w in waiters {
        match groups.iter_mut().find(|(o, _)| *o == w.object) {
            Some((_, g)) => g.push(w),
            None => groups.push((w.object, vec![w])),
        }
    }
    groups
}

#[cfg(test)]
mod wait_for_tests {
    use super::*;

    fn w(thread: u64, object: usize, holding: &[usize]) -> Waiter {
        Waiter {
            entry: WaitEntry {
                thread,
                thread_name: None,
                op: "Mutex::lock",
                object,
                since: primitives::sync::time::Instant::now(),
                holding: holding.iter().map(|_| "c").collect(),
                holding_objects: holding.to_vec(),
            },
            waited: Duration::ZERO,
        }
    }

    #[test]
    fn abba_is_a_two_thread_cycle() {
        let ws = [w(1, 0xa, &[0xb]), w(2, 0xb, &[0xa])];
        let edges = wait_for_edges(&ws);
        assert_eq!(edges, vec![(1, 0xa, 2), (2, 0xb, 1)]);
        assert_eq!(wait_for_cycle(&edges), Some(vec![1, 2, 1]));
    }

    #[test]
    fn a_chain_ending_at_a_running_holder_is_no_cycle() {
        let ws = [w(1, 0xa, &[]), w(2, 0xb, &[0xa])];
        let edges = wait_for_edges(&ws);
        assert_eq!(edges, vec![(1, 0xa, 2)]);
        assert_eq!(wait_for_cycle(&edges), None);
    }
}
