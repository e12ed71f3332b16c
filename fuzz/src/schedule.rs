//! The `schedule` fuzz target: **the fuzzer's bytes choose the interleaving**.
//!
//! An input is one scenario of the catalogue plus the scheduling decisions of one shuttle
//! execution of it:
//!
//! * byte 0 selects the scenario, `SCENARIOS[byte % SCENARIOS.len()]` — or, when
//!   `FUZZ_CONTROL` names a negative control, that control (byte 0 is then ignored, so the
//!   decisions line up the same way with and without a control);
//! * every further byte is one scheduling decision: at a context switch with `n > 1` runnable
//!   tasks, shuttle runs `runnable[byte % n]` (switches with one runnable task consume nothing,
//!   so every byte is a real choice); [`Scheduler::next_u64`] reads 8 bytes, little-endian;
//! * when the bytes run out the schedule goes on deterministically: the lowest-numbered runnable
//!   task runs (see [`ByteScheduler`] for why not "the current task") and a task that yields
//!   hands over to the others in turn, so a spin loop cannot livelock the fallback.
//!
//! Inputs longer than [`crate::MAX_INPUT`] are rejected. Each input is exactly one shuttle
//! execution (`Runner` with a scheduler that ends after one execution), under the execution
//! deadline ([`crate::deadline`]). A broken invariant (a scenario's assertion) or a deadlock
//! shuttle detects panics; in the fuzz binary libFuzzer turns the panic into a crash and saves
//! the input.
//!
//! Environment:
//! * `FUZZ_CONTROL=<name>`: fuzz that negative control instead of the reference scenarios;
//! * `FUZZ_LOCKDEP=off|report|panic` (default `panic`, the engine's [`Params`]): with `off` only a
//!   real deadlock or a broken invariant fails, not a lock-order report;
//! * `FUZZ_SCHEDULE_RANDOM=N` (measurement): [`fuzz`] runs shuttle's own random scheduler (what
//!   `shuttle::check_random` does) on the same scenario or control for up to `N` executions
//!   (`FUZZ_SCHEDULE_MAX_SECS` bounds the time; seed `FUZZ_SCHEDULE_SEED`, else from the clock),
//!   prints one `SCHEDULE-RANDOM …` line and returns — run the fuzz binary on one input file;
//! * `FUZZ_SCHEDULE_EXECUTE=1`: [`fuzz`] replays through [`execute`] and prints
//!   `SCHEDULE-EXECUTE passed|failed: …` instead of crashing.
//!
//! `ci/fuzz-schedule-matrix.sh` uses both modes to compare libFuzzer with shuttle's random
//! scheduler on every control.
//!
//! Needs `RUSTFLAGS="--cfg shuttle"` (the primitives' sync facade then runs on shuttle).
//! Self-contained apart from `crate::deadline`, `crate::control` and `crate::MAX_INPUT`: the
//! regression replay test includes this file with `#[path]`.

use primitives::scenarios::catalogue::{CONTROLS, SCENARIOS};
use primitives::scenarios::Params;
use shuttle::scheduler::{RandomScheduler, Schedule, Scheduler, Task, TaskId};
use shuttle::{Config, FailurePersistence, Runner};
use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Name of the target (used in deadline reports).
const TARGET: &str = "schedule";

/// One decoded input: what runs, and the decisions that schedule it.
pub struct Case {
    /// Scenario or control name.
    pub name: &'static str,
    /// True when `name` is a negative control (chosen with `FUZZ_CONTROL`).
    pub control: bool,
    /// The scheduling decisions (input bytes after the selector).
    pub decisions: Vec<u8>,
    run: fn(&Params),
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field(
                if self.control { "control" } else { "scenario" },
                &self.name,
            )
            .field("decisions", &self.decisions)
            .finish()
    }
}

impl Case {
    /// Decodes an input; `None` for an empty or oversized one. Panics when `FUZZ_CONTROL` names
    /// no control (a usage error, reported on the first input).
    pub fn decode(data: &[u8]) -> Option<Case> {
        if data.len() > crate::MAX_INPUT {
            return None;
        }
        let (&selector, decisions) = data.split_first()?;
        let (name, control, run) = match crate::control() {
            Some(c) => {
                let c = CONTROLS.iter().find(|k| k.name == c).unwrap_or_else(|| {
                    let names: Vec<_> = CONTROLS.iter().map(|k| k.name).collect();
                    panic!("FUZZ_CONTROL={c}: no such control; controls: {names:?}")
                });
                (c.name, true, c.run)
            }
            None => {
                let e = &SCENARIOS[selector as usize % SCENARIOS.len()];
                (e.name, false, e.run)
            }
        };
        Some(Case {
            name,
            control,
            decisions: decisions.to_vec(),
            run,
        })
    }
}

/// What the byte scheduler did, shared with the caller for error reports.
#[derive(Default, Debug)]
struct Trace {
    /// Decision bytes consumed.
    used: usize,
    /// Chosen task at every context switch (task ids as numbers).
    tasks: Vec<usize>,
}

/// A shuttle [`Scheduler`] whose decisions come from a byte string, for exactly one execution.
///
/// Fallback when the bytes are exhausted: the first task of `runnable`, not "the current task".
/// Shuttle appends to the truly runnable tasks (in id order) the blocked tasks that may wake up
/// spuriously (condvar waiters), and a scheduler cannot tell them apart; re-picking a current
/// task that just blocked on a condvar would wake it spuriously forever (until shuttle's
/// `max_steps`, a false failure). The first entry is always truly runnable: shuttle only calls
/// the scheduler when some task is. On an explicit yield (`is_yielding`) the others are served
/// in turn instead.
pub struct ByteScheduler {
    bytes: Vec<u8>,
    pos: usize,
    yields: usize,
    started: bool,
    trace: Rc<RefCell<Trace>>,
}

impl ByteScheduler {
    /// A scheduler for one execution driven by `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        ByteScheduler {
            bytes,
            pos: 0,
            yields: 0,
            started: false,
            trace: Rc::default(),
        }
    }

    fn next_byte(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.pos).copied()?;
        self.pos += 1;
        self.trace.borrow_mut().used = self.pos;
        Some(b)
    }
}

impl Scheduler for ByteScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started {
            return None;
        }
        self.started = true;
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let pick = if runnable.len() == 1 {
            runnable[0].id()
        } else if let Some(b) = self.next_byte() {
            runnable[b as usize % runnable.len()].id()
        } else if is_yielding {
            let others: Vec<TaskId> = runnable
                .iter()
                .map(|t| t.id())
                .filter(|&t| Some(t) != current)
                .collect();
            self.yields += 1;
            if others.is_empty() {
                runnable[0].id()
            } else {
                others[self.yields % others.len()]
            }
        } else {
            runnable[0].id()
        };
        self.trace.borrow_mut().tasks.push(usize::from(pick));
        Some(pick)
    }

    fn next_u64(&mut self) -> u64 {
        let mut v = [0u8; 8];
        for b in v.iter_mut() {
            *b = self.next_byte().unwrap_or(0);
        }
        u64::from_le_bytes(v)
    }
}

/// Shuttle's configuration for every run here: no schedule printing or files (the input is the
/// reproducer), no warnings per execution.
fn config() -> Config {
    let mut c = Config::new();
    c.failure_persistence = FailurePersistence::None;
    c.silence_warnings = true;
    c
}

/// The scenario sizes of the shuttle engine ([`Params::for_engine`]); `FUZZ_LOCKDEP=off` or
/// `report` turns the lock-order validator's panic off, so that only a real deadlock or a broken
/// invariant fails (a lock-order inversion then has to be *scheduled* into a deadlock).
pub fn params() -> Params {
    use primitives::lock::Mode;
    // A fuzzed schedule is adversarial: no thread is guaranteed to run while another yields.
    let p = Params::for_engine().with_schedule(primitives::scenarios::Schedule::Exhaustive);
    match std::env::var("FUZZ_LOCKDEP").as_deref() {
        Ok("off") => p.with_lockdep(Mode::Off),
        Ok("report") => p.with_lockdep(Mode::Report),
        Ok("panic") | Ok("") | Err(_) => p,
        Ok(m) => panic!("FUZZ_LOCKDEP={m}: expected off, report or panic"),
    }
}

/// Runs `case` once under the byte scheduler; panics on a failure.
fn run_once(case: &Case) {
    let scheduler = ByteScheduler::new(case.decisions.clone());
    let (run, params) = (case.run, params());
    crate::deadline::run(TARGET, case, || {
        let n = Runner::new(scheduler, config()).run(move || run(&params));
        assert_eq!(n, 1, "schedule: expected exactly one execution");
    });
}

/// The fuzz entry point: one execution of the input's scenario (or control) under the input's
/// schedule; panics on a broken invariant or a deadlock. With `FUZZ_SCHEDULE_RANDOM=N` runs the
/// measurement mode instead (see the module docs).
pub fn fuzz(data: &[u8]) {
    if let Some(n) = std::env::var("FUZZ_SCHEDULE_RANDOM")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        random_mode(data, n);
        return;
    }
    if std::env::var_os("FUZZ_SCHEDULE_EXECUTE").is_some() {
        // The fuzz binary's panic hook aborts; report through `execute` instead.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = execute(data);
        std::panic::set_hook(hook);
        match r {
            Ok(()) => eprintln!("SCHEDULE-EXECUTE passed"),
            Err(e) => eprintln!("SCHEDULE-EXECUTE failed: {}", e.replace('\n', " | ")),
        }
        return;
    }
    if let Some(case) = Case::decode(data) {
        run_once(&case);
    }
}

/// Replays one input and reports instead of panicking: `Err` carries the panic message (and the
/// schedule that was taken). Rejected inputs pass.
///
/// The execution runs on a thread of its own: shuttle runs tasks as generators on their own
/// stacks, and a failure that unwinds through them can leave the calling thread's panic count
/// raised (`std::thread::panicking()` stays true), which would turn any later panic on that
/// thread into an abort. The caller's panic hook still sees the panic.
pub fn execute(data: &[u8]) -> Result<(), String> {
    let Some(case) = Case::decode(data) else {
        return Ok(());
    };
    let (result, trace) = isolated(move || {
        let scheduler = ByteScheduler::new(case.decisions.clone());
        let trace = scheduler.trace.clone();
        let (run, params) = (case.run, params());
        let result = catch_unwind(AssertUnwindSafe(|| {
            crate::deadline::run(TARGET, &case, || {
                Runner::new(scheduler, config()).run(move || run(&params))
            })
        }));
        let t = trace.borrow();
        let trace = format!(
            "{case:?}: decision bytes used: {}; tasks chosen: {:?}",
            t.used, t.tasks
        );
        (result.map(|_| ()).map_err(|p| panic_message(&*p)), trace)
    });
    result.map_err(|msg| format!("{trace}\nfailed: {msg}"))
}

/// Runs `f` on a fresh thread and returns its result (see [`execute`] for why).
fn isolated<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .name("fuzz-schedule".into())
        .spawn(f)
        .expect("spawn the execution thread")
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic payload>".into())
}

/// Result of [`random_search`].
#[derive(Debug, Clone)]
pub struct RandomOutcome {
    /// Scenario or control name.
    pub name: &'static str,
    /// Seed of shuttle's random scheduler.
    pub seed: u64,
    /// Executions run (including the failing one).
    pub executions: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// The first failure's panic message, if any.
    pub failure: Option<String>,
}

/// Shuttle's own random scheduler (as `shuttle::check_random`) on the case `data` selects, for
/// up to `max_executions` executions or `max_time`, stopping at the first failure. Each execution
/// runs under the deadline, on a thread of its own (see [`execute`]). Panics raised inside are
/// caught (the caller's panic hook still runs).
pub fn random_search(
    data: &[u8],
    max_executions: usize,
    max_time: Option<Duration>,
    seed: u64,
) -> Option<RandomOutcome> {
    let case = Case::decode(data)?;
    let executions = Arc::new(AtomicUsize::new(0));
    let (run, name, control, params) = (case.run, case.name, case.control, params());
    let counter = executions.clone();
    let body = move || {
        counter.fetch_add(1, Ordering::Relaxed);
        let what = if control { "control" } else { "scenario" };
        crate::deadline::run(TARGET, &format_args!("random: {what} {name}"), || {
            run(&params)
        })
    };
    let mut cfg = config();
    cfg.max_time = max_time;
    let start = Instant::now();
    let result = isolated(move || {
        catch_unwind(AssertUnwindSafe(|| {
            Runner::new(RandomScheduler::new_from_seed(seed, max_executions), cfg).run(body)
        }))
        .map_err(|p| panic_message(&*p))
    });
    Some(RandomOutcome {
        name,
        seed,
        executions: executions.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        failure: result.err(),
    })
}

/// `FUZZ_SCHEDULE_RANDOM=N`: one [`random_search`] with a silent panic hook (the fuzz binary's
/// hook would abort), reported on stderr as one line.
fn random_mode(data: &[u8], max_executions: usize) {
    let seed = std::env::var("FUZZ_SCHEDULE_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    let max_time = std::env::var("FUZZ_SCHEDULE_MAX_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = random_search(data, max_executions, max_time, seed);
    std::panic::set_hook(hook);
    match outcome {
        None => eprintln!("SCHEDULE-RANDOM rejected input (empty or too long)"),
        Some(o) => eprintln!(
            "SCHEDULE-RANDOM name={} seed={} executions={} seconds={:.3} result={} message={}",
            o.name,
            o.seed,
            o.executions,
            o.elapsed.as_secs_f64(),
            if o.failure.is_some() {
                "failed"
            } else {
                "passed"
            },
            o.failure
                .as_deref()
                .unwrap_or("")
                .lines()
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    }
}
