//! Drivers of the model engines: run a closure under shuttle with a chosen scheduler, or under
//! loom, and say how the run ended — executions, the first failure's message, whether it was a
//! deadlock, and (shuttle) the schedule that replays it.
//!
//! This is the only place above the facade's re-exports that calls into the engines' runners;
//! [`check`](../../check/index.html)'s public calls build their reports on it.
//!
//! # Catching a failure
//! Both engines report a broken invariant, a deadlock or an exceeded step bound by panicking
//! out of their runner. A run catches that panic (`catch_unwind`) and records the message of
//! the *first* panic of the run through a process-wide panic hook (installed once, chaining to
//! the previous hook): the first panic is the failure; later ones come from tearing the
//! execution down. The hook is active only on the OS thread running the engine (both engines
//! run every model thread as a coroutine on that one OS thread), so other threads' panics are
//! reported as usual.
//!
//! Shuttle (0.9) tears a failed execution down before it re-raises the failure, so catching it
//! in-process is safe. Loom does not: after a deadlock it panics again in destructors while
//! unwinding, which aborts the process. A loom run therefore takes `exit_on_failure`: the hook
//! calls it at the first panic, before any unwinding, and it is expected to end the process
//! (the caller runs loom in a child process — see `check::loom`).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use super::{BookArc, BookAtomicU64 as Counter, BookOnce, BookOrdering};

/// How a model run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Executions started (including the failing one).
    pub executions: u64,
    /// The first reason an execution gave for checking nothing (see the `body` argument of the
    /// runners), if any did.
    pub skipped: Option<&'static str>,
    /// The failure, if an execution failed.
    pub failure: Option<Failure>,
}

/// A failed execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The first panic's message (a broken invariant, or the engine's deadlock report).
    pub message: String,
    /// True when nothing could make progress: the engine saw a deadlock or a step bound.
    pub hang: bool,
    /// The engine's encoded schedule of the failing execution (shuttle), if it produced one.
    pub schedule: Option<String>,
}

/// The closure an engine runs once per execution: `None` when it checked what it exists for,
/// `Some(why)` when it checked nothing (the reason is reported once).
pub type Body = dyn Fn() -> Option<&'static str> + Send + Sync + 'static;

/// What the hook does with the first panic of a run on this thread.
struct Capture {
    /// The first message.
    first: Option<String>,
    /// Executions so far (shared with the body).
    executions: BookArc<Counter>,
    /// Called with (executions, message) at the first panic, when set; expected not to return.
    exit: Option<fn(u64, &str)>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// The text of a panic payload.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic with a non-text payload".to_string())
}

/// Installs (once per process) the hook that records the first panic of a captured run.
fn install_hook() {
    static ONCE: BookOnce = BookOnce::new();
    ONCE.call_once(|| {
        // Shuttle installs its own hook (printing the failing task) at its first execution;
        // have it do so now, so that this hook wraps it and keeps captured runs quiet.
        #[cfg(shuttle)]
        shuttle::Runner::new(shuttle::scheduler::RoundRobinScheduler::new(1), {
            let mut c = shuttle::Config::new();
            c.failure_persistence = shuttle::FailurePersistence::None;
            c
        })
        .run(|| {});
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let captured = CAPTURE
                .try_with(|c| {
                    let Ok(mut c) = c.try_borrow_mut() else {
                        return false;
                    };
                    let Some(c) = c.as_mut() else { return false };
                    if c.first.is_none() {
                        let mut msg = payload_text(info.payload());
                        if let Some(loc) = info.location() {
                            msg = format!("{msg} (at {loc})");
                        }
                        if let Some(exit) = c.exit {
                            exit(c.executions.load(BookOrdering::Relaxed), &msg);
                        }
                        c.first = Some(msg);
                    }
                    true
                })
                .unwrap_or(false);
            if !captured {
                previous(info);
            }
        }));
    });
}

/// Runs `run` with the capture active on this thread; returns what it returned or the first
/// panic's message.
fn captured<T>(
    executions: &BookArc<Counter>,
    exit: Option<fn(u64, &str)>,
    run: impl FnOnce() -> T,
) -> Result<T, String> {
    install_hook();
    CAPTURE.with(|c| {
        *c.borrow_mut() = Some(Capture {
            first: None,
            executions: executions.clone(),
            exit,
        })
    });
    let result = catch_unwind(AssertUnwindSafe(run));
    let first = CAPTURE
        .with(|c| c.borrow_mut().take())
        .and_then(|c| c.first);
    result.map_err(|payload| first.unwrap_or_else(|| payload_text(&*payload)))
}

/// Wraps `body` so that it counts executions and keeps the first "checked nothing" reason.
fn counting(
    body: BookArc<Body>,
) -> (
    BookArc<Counter>,
    BookArc<super::BookMutex<Option<&'static str>>>,
    impl Fn() + Send + Sync + 'static,
) {
    let executions = BookArc::new(Counter::new(0));
    let skipped = BookArc::new(super::BookMutex::new(None));
    let (e, s) = (executions.clone(), skipped.clone());
    let f = move || {
        e.fetch_add(1, BookOrdering::Relaxed);
        if let Some(why) = body() {
            super::book_lock(&s).get_or_insert(why);
        }
    };
    (executions, skipped, f)
}

/// Is this failure message an engine's report that nothing could make progress? Shuttle says
/// `deadlock! blocked tasks: …` (or that an execution exceeded its step bound: a livelock),
/// loom `deadlock; threads = …`. (A scenario's own message that merely mentions a deadlock —
/// the lock-order validator's "self-deadlock" report, say — is a failure, not a hang.)
pub fn is_hang(message: &str) -> bool {
    message.starts_with("deadlock! ")
        || message.starts_with("deadlock; ")
        || message.starts_with("exceeded max_steps bound")
}

/// The shuttle schedulers a run can use.
#[cfg(shuttle)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// Random walk: a uniformly random runnable task at every step (`RandomScheduler`).
    Random,
    /// Probabilistic concurrency testing with this many priority change points
    /// (`PctScheduler`).
    Pct {
        /// Bug depth the run targets.
        depth: usize,
    },
    /// Depth-first search of the interleavings, bounded by the iterations (`DfsScheduler`).
    Dfs,
    /// Uniform random walk (`UrwRandomScheduler`, shuttle 0.9): interleavings sampled
    /// uniformly, from event counts estimated on one trial execution.
    Urw,
    /// One execution following this encoded schedule (`ReplayScheduler`).
    Replay(String),
}

/// Runs `body` under shuttle with `scheduler`, for up to `iterations` executions and `time`
/// (checked between executions), the randomized schedulers seeded with `seed`. Stops at the
/// first failing execution.
///
/// Each run happens on a fresh OS thread, where shuttle's per-thread record of the current
/// schedule belongs to this run alone.
#[cfg(shuttle)]
pub fn shuttle(
    scheduler: &Scheduler,
    iterations: usize,
    time: Duration,
    seed: u64,
    body: BookArc<Body>,
) -> Ended {
    use shuttle::scheduler::{
        DfsScheduler, PctScheduler, RandomScheduler, ReplayScheduler, UrwRandomScheduler,
    };
    use shuttle::{Config, FailurePersistence, Runner};

    let mut config = Config::new();
    // The hook and the failure path would print it; the run reads it itself (below).
    config.failure_persistence = FailurePersistence::None;
    config.max_time = Some(time);
    config.silence_warnings = true;

    let (executions, skipped, f) = counting(body);
    let scheduler = scheduler.clone();
    let e = executions.clone();
    let result = std::thread::Builder::new()
        .name("shuttle-runner".into())
        .spawn(move || {
            captured(&e, None, move || match scheduler {
                Scheduler::Random => {
                    Runner::new(RandomScheduler::new_from_seed(seed, iterations), config).run(f);
                }
                Scheduler::Pct { depth } => {
                    Runner::new(PctScheduler::new_from_seed(seed, depth, iterations), config)
                        .run(f);
                }
                Scheduler::Dfs => {
                    Runner::new(DfsScheduler::new(Some(iterations), false), config).run(f);
                }
                Scheduler::Urw => {
                    Runner::new(UrwRandomScheduler::new_from_seed(seed, iterations), config).run(f);
                }
                Scheduler::Replay(s) => {
                    Runner::new(ReplayScheduler::new_from_encoded(&s), config).run(f);
                }
            })
            .map_err(|message| (message, failing_schedule()))
        })
        .expect("spawn the shuttle runner thread")
        .join()
        .unwrap_or_else(|p| Err((payload_text(&*p), None)));
    let skipped = *super::book_lock(&skipped);
    Ended {
        executions: executions.load(BookOrdering::Relaxed),
        skipped,
        failure: result.err().map(|(message, schedule)| Failure {
            hang: is_hang(&message),
            message,
            schedule,
        }),
    }
}

/// The encoded schedule of the last execution shuttle ran on this thread (the failing one, when
/// a run has just failed: tearing an execution down does not extend its schedule), in the form
/// `shuttle::replay` takes; `None` if there is none.
#[cfg(shuttle)]
fn failing_schedule() -> Option<String> {
    use shuttle_engine::runtime::execution::CurrentSchedule;
    use shuttle_engine::scheduler::serialization::serialize_schedule;
    let schedule = CurrentSchedule::get_schedule();
    // Shuttle wraps the hex at 76 columns; whitespace means nothing to its decoder.
    (!schedule.is_empty()).then(|| serialize_schedule(&schedule).split_whitespace().collect())
}

/// Runs `body` under loom: every interleaving within `preemption_bound` preemptions, up to
/// `max_permutations` executions and `time`.
///
/// At the first panic the hook calls `exit_on_failure(executions, message)`, which should end
/// the process (see the module docs: loom may abort while unwinding after a deadlock); if it
/// returns, the run unwinds and the failure is returned — which is safe for an assertion
/// failure, not for a deadlock.
#[cfg(loom)]
pub fn loom(
    preemption_bound: usize,
    max_permutations: usize,
    time: Duration,
    exit_on_failure: Option<fn(u64, &str)>,
    body: BookArc<Body>,
) -> Ended {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemption_bound);
    builder.max_branches = 10_000;
    builder.max_permutations = Some(max_permutations);
    builder.max_duration = Some(time);
    let (executions, skipped, f) = counting(body);
    let result = captured(&executions, exit_on_failure, move || builder.check(f));
    let skipped = *super::book_lock(&skipped);
    Ended {
        executions: executions.load(BookOrdering::Relaxed),
        skipped,
        failure: result.err().map(|message| Failure {
            hang: is_hang(&message),
            message,
            schedule: None,
        }),
    }
}

/// Runs `f` once under the active engine and returns its value (e.g. to ask a primitive made
/// by a user's maker for its declared capabilities: making one may need the engine's context).
/// `None` if it panicked.
pub fn once<T: Send + 'static>(f: impl Fn() -> T + Send + Sync + 'static) -> Option<T> {
    let slot: BookArc<super::BookMutex<Option<T>>> = BookArc::new(super::BookMutex::new(None));
    let s = slot.clone();
    let body: BookArc<Body> = BookArc::new(move || {
        *super::book_lock(&s) = Some(f());
        None
    });
    #[cfg(shuttle)]
    let ended = shuttle(&Scheduler::Random, 1, Duration::from_secs(60), 1, body);
    #[cfg(loom)]
    let ended = loom(0, 1, Duration::from_secs(60), None, body);
    let _ = ended;
    let value = super::book_lock(&slot).take();
    value
}
