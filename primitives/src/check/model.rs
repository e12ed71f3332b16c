//! Proptest state machines as one public call for a user's type: [`mvar`], [`lock`], [`log`].
//!
//! Each call drives fresh instances from the user's `make` with random operation sequences
//! (proptest, `budget.iterations` cases per row, the random generator seeded from
//! `budget.seed`, so a run is reproducible), checks every result against a sequential model,
//! shrinks a failing sequence to a minimal one and returns a [`Report`]:
//!
//! ```no_run
//! use primitives::check::{model, Budget};
//! use primitives::MVar;
//! let report = model::mvar(MVar::<u64>::new_empty, Budget::default().iterations(256));
//! report.assert_passed();
//! ```
//!
//! One thread drives at a time, so these models see sequential contracts: values and emptiness
//! of the box, "gives the value back", no effect on timeout, nesting, release after the last
//! guard, exclusion as seen by a helper thread probing between steps, exactly-once in-order log
//! delivery at the outermost release. Blocking operations are generated only when the model says
//! they cannot block (`put` on an empty box, `take` on a full one, `lock` of a free lock or, for a
//! reentrant lock, one the caller holds). A defect that needs two threads *waiting at once* (a
//! lost wake-up) is invisible here: that is what the shuttle, loom and threads engines are for.
//!
//! # Never blocking the caller
//! Each case runs on its own worker thread; the caller waits for it at most the hang limit
//! (`budget.time`, at most [`HANG_LIMIT`]). A subject that blocks where the model says it cannot
//! (a `put` on a box the model knows is empty) is reported as a [`Outcome::Hang`] naming the
//! operation; its worker is left blocked (it cannot be killed) and the row ends there, unshrunk.
//!
//! The models, operations and per-sequence executors are public too ([`MVarModel`],
//! [`mvar_sequence`], …): [`super::fuzz`] runs the same executors on sequences decoded from a
//! fuzzer's input.

use super::{Budget, Outcome, Report, Row};
use crate::lock::{held_depth, LockClass, Mode, ReentrantLock, Validator};
use crate::scenarios::catalogue::Delivered;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::Arc;
use crate::traits::{LockApi, LogApi, MVarApi};
use proptest::prelude::{any, prop_oneof, BoxedStrategy, Just, Strategy};
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use proptest_state_machine::ReferenceStateMachine;
use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Longest one operation (or a case's setup, or its final checks) may run before the case is
/// called a hang (also capped by `budget.time`). Every operation the models run returns at once
/// or within [`MAX_TIMEOUT`] on a correct subject.
pub const HANG_LIMIT: Duration = Duration::from_secs(2);
/// How long a blocking MVar operation the model says cannot block may take before the executor
/// unblocks it (a `try_take` for a stuck `put`, a `try_put` for a stuck `take`) and reports it.
pub const STUCK: Duration = Duration::from_millis(250);
/// Most extra runs spent minimizing a failing sequence after proptest's own shrinking.
pub const MINIMIZE_RUNS: usize = 400;
/// Longest operation sequence of a case.
pub const MAX_OPS: usize = 40;
/// Longest timeout the models give a timed operation (most are zero).
pub const MAX_TIMEOUT: Duration = Duration::from_micros(1_000);
/// Locks in the lock model.
pub const LOCKS: usize = 3;

/// Where a sequence broke its model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Index of the operation in the sequence, `None` for the check after the last one.
    pub at: Option<usize>,
    /// What differed from the model.
    pub message: String,
}

impl Mismatch {
    fn at(i: usize, message: String) -> Mismatch {
        Mismatch {
            at: Some(i),
            message,
        }
    }
    fn end(message: String) -> Mismatch {
        Mismatch { at: None, message }
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some(i) => write!(f, "op #{i}: {}", self.message),
            None => write!(f, "after the last op: {}", self.message),
        }
    }
}

fn timeout_strategy() -> BoxedStrategy<Duration> {
    prop_oneof![
        2 => Just(Duration::ZERO),
        1 => (1..=MAX_TIMEOUT.as_micros() as u64).prop_map(Duration::from_micros),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// MVar
// ---------------------------------------------------------------------------------------------

/// One operation on an MVar of `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MVarOp {
    /// `put`; only when the model box is empty (it cannot block then).
    Put(u64),
    /// `take`; only when the model box is full.
    Take,
    /// `try_put`.
    TryPut(u64),
    /// `try_take`.
    TryTake,
    /// `put_timeout`.
    PutTimeout(u64, Duration),
    /// `take_timeout`.
    TakeTimeout(Duration),
    /// `read` ([`crate::traits::MVarCaps::read_swap`]); only when full.
    Read,
    /// `try_read` (read/swap).
    TryRead,
    /// `swap` (read/swap); only when full.
    Swap(u64),
}

impl MVarOp {
    /// Whether the model runs `self` on a box in `state`: blocking operations only when they
    /// cannot block, read/swap only when declared.
    pub fn allowed(&self, state: Option<u64>, read_swap: bool) -> bool {
        match self {
            MVarOp::Put(_) => state.is_none(),
            MVarOp::Take => state.is_some(),
            MVarOp::Read | MVarOp::Swap(_) => read_swap && state.is_some(),
            MVarOp::TryRead => read_swap,
            _ => true,
        }
    }

    /// The model box after `self` on a box in `state`.
    pub fn next(&self, state: Option<u64>) -> Option<u64> {
        match *self {
            MVarOp::TryPut(v) | MVarOp::PutTimeout(v, _) => state.or(Some(v)),
            MVarOp::Put(v) | MVarOp::Swap(v) => Some(v),
            MVarOp::TryTake | MVarOp::Take | MVarOp::TakeTimeout(_) => None,
            MVarOp::TryRead | MVarOp::Read => state,
        }
    }
}

/// The MVar model: `None` empty, `Some(v)` full; the box starts empty. `READ_SWAP` adds
/// `read`, `try_read` and `swap`.
pub struct MVarModel<const READ_SWAP: bool>;

impl<const READ_SWAP: bool> ReferenceStateMachine for MVarModel<READ_SWAP> {
    type State = Option<u64>;
    type Transition = MVarOp;

    fn init_state() -> BoxedStrategy<Option<u64>> {
        Just(None).boxed()
    }

    fn transitions(state: &Option<u64>) -> BoxedStrategy<MVarOp> {
        // Few distinct values, so that a value handed back or kept by mistake can shrink to 0.
        let value = || any::<u64>();
        let mut ops = vec![
            value().prop_map(MVarOp::TryPut).boxed(),
            Just(MVarOp::TryTake).boxed(),
            (value(), timeout_strategy())
                .prop_map(|(v, d)| MVarOp::PutTimeout(v, d))
                .boxed(),
            timeout_strategy().prop_map(MVarOp::TakeTimeout).boxed(),
        ];
        match state {
            None => ops.push(value().prop_map(MVarOp::Put).boxed()),
            Some(_) => ops.push(Just(MVarOp::Take).boxed()),
        }
        if READ_SWAP {
            ops.push(Just(MVarOp::TryRead).boxed());
            if state.is_some() {
                ops.push(Just(MVarOp::Read).boxed());
                ops.push(value().prop_map(MVarOp::Swap).boxed());
            }
        }
        Union::new(ops).boxed()
    }

    fn preconditions(state: &Option<u64>, op: &MVarOp) -> bool {
        op.allowed(*state, READ_SWAP)
    }

    fn apply(state: Option<u64>, op: &MVarOp) -> Option<u64> {
        op.next(state)
    }
}

/// Runs `op` on `m` and checks its result against the model box `before`.
pub fn mvar_step<M: MVarApi<u64> + ?Sized>(
    m: &M,
    before: Option<u64>,
    op: &MVarOp,
) -> Result<(), String> {
    fn same<T: PartialEq + Debug>(
        op: &MVarOp,
        got: T,
        want: T,
        box_: Option<u64>,
    ) -> Result<(), String> {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{op:?} returned {got:?}, expected {want:?} (the model box is {})",
                match box_ {
                    Some(v) => format!("full of {v}"),
                    None => "empty".into(),
                }
            ))
        }
    }
    let give_back = |v: u64| if before.is_none() { Ok(()) } else { Err(v) };
    match *op {
        MVarOp::Put(v) => unblocking(m, op, before, || m.put(v)).map(|_| ()),
        MVarOp::Take => same(
            op,
            Some(unblocking(m, op, before, || m.take())?),
            before,
            before,
        ),
        MVarOp::TryPut(v) => same(op, m.try_put(v), give_back(v), before),
        MVarOp::TryTake => same(op, m.try_take(), before, before),
        MVarOp::PutTimeout(v, d) => same(op, m.put_timeout(v, d), give_back(v), before),
        MVarOp::TakeTimeout(d) => same(op, m.take_timeout(d), before, before),
        MVarOp::Read => same(
            op,
            Some(unblocking(m, op, before, || m.read())?),
            before,
            before,
        ),
        MVarOp::TryRead => same(op, m.try_read(), before, before),
        MVarOp::Swap(v) => same(
            op,
            Some(unblocking(m, op, before, || m.swap(v))?),
            before,
            before,
        ),
    }
}

/// Runs a blocking operation that the model says cannot block on a helper thread; if it is
/// still running after [`STUCK`], unblocks it as another participant would (a `try_take` for a
/// stuck `put`, a `try_put` of `u64::MAX` for a stuck `take`, `read` or `swap`; then the timed
/// forms) and reports that it blocked. A subject that cannot be unblocked that way stays a hang
/// (the caller's hang detection reports it).
fn unblocking<M: MVarApi<u64> + ?Sized, R: Send>(
    m: &M,
    op: &MVarOp,
    before: Option<u64>,
    f: impl FnOnce() -> R + Send,
) -> Result<R, String> {
    let done = AtomicBool::new(false);
    let me = std::thread::current();
    std::thread::scope(|s| {
        let helper = s.spawn(|| {
            let r = f();
            done.store(true, Ordering::SeqCst);
            me.unpark();
            r
        });
        let t0 = Instant::now();
        while !done.load(Ordering::SeqCst) {
            let waited = t0.elapsed();
            if waited >= STUCK {
                // The subject's own `try_` form first; if that did not free it (a `try_take`
                // that lies may be why it is stuck), the timed form.
                let mut rescue = match op {
                    MVarOp::Put(_) => format!("a try_take got {:?}", m.try_take()),
                    _ => format!("a try_put(u64::MAX) got {:?}", m.try_put(u64::MAX)),
                };
                let t1 = Instant::now();
                while !done.load(Ordering::SeqCst) && t1.elapsed() < STUCK {
                    std::thread::park_timeout(Duration::from_millis(5));
                }
                if !done.load(Ordering::SeqCst) {
                    rescue += &match op {
                        MVarOp::Put(_) => {
                            format!(", a take_timeout got {:?}", m.take_timeout(STUCK))
                        }
                        _ => format!(
                            ", a put_timeout(u64::MAX) got {:?}",
                            m.put_timeout(u64::MAX, STUCK)
                        ),
                    };
                }
                let _ = helper.join();
                return Err(format!(
                    "{op:?} blocked (still waiting after {} ms) although the model box is {before:?}; {rescue} and unblocked it",
                    STUCK.as_millis()
                ));
            }
            std::thread::park_timeout(STUCK - waited);
        }
        helper
            .join()
            .map_err(|p| format!("{op:?} panicked: {}", panic_text(&*p)))
    })
}

/// Runs `ops` on `m` (empty at the start) against the model, skipping operations the model
/// does not allow, then checks with `try_take` that the box holds what the model says.
/// `step(i)` is called before operation `i` runs (progress for hang reports).
pub fn mvar_sequence<M: MVarApi<u64> + ?Sized>(
    m: &M,
    ops: &[MVarOp],
    read_swap: bool,
    step: &dyn Fn(usize),
) -> Result<(), Mismatch> {
    let mut state = None;
    for (i, op) in ops.iter().enumerate() {
        if !op.allowed(state, read_swap) {
            continue;
        }
        step(i);
        mvar_step(m, state, op).map_err(|e| Mismatch::at(i, e))?;
        state = op.next(state);
    }
    step(ops.len());
    let left = m.try_take();
    if left != state {
        return Err(Mismatch::end(format!(
            "try_take returned {left:?}, but the model box is {state:?}"
        )));
    }
    Ok(())
}

/// Checks an MVar from `make` (which must return an **empty** box) against the sequential
/// model: one row for the core operations, one for `read`/`try_read`/`swap` (skipped unless
/// [`crate::traits::MVarCaps::read_swap`] is declared).
pub fn mvar<M: MVarApi<u64> + 'static>(make: impl Fn() -> M, budget: Budget) -> Report {
    let caps = make().capabilities();
    let mut report = Report::new(std::any::type_name::<M>(), caps.names());
    let core = |m: M, ops: &[MVarOp], step: &dyn Fn(usize)| mvar_sequence(&m, ops, false, step);
    report.rows.push(run_row::<MVarModel<false>, M>(
        "model: mvar core ops",
        budget,
        &make,
        core,
    ));
    if caps.read_swap {
        let full = |m: M, ops: &[MVarOp], step: &dyn Fn(usize)| mvar_sequence(&m, ops, true, step);
        report.rows.push(run_row::<MVarModel<true>, M>(
            "model: mvar read/swap",
            budget,
            &make,
            full,
        ));
    } else {
        report.rows.push(skipped(
            "model: mvar read/swap",
            "read_swap not declared in capabilities()",
        ));
    }
    report
}

// ---------------------------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------------------------

/// How a helper thread tries a lock the driving thread may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `try_lock`.
    TryLock,
    /// `lock_timeout`.
    Timeout(Duration),
}

/// One operation of the lock model, over [`LOCKS`] locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOp {
    /// `lock` of lock `i`; only when it cannot block (free, or held by the driver and
    /// reentrant).
    Lock(usize),
    /// `try_lock` of lock `i`.
    TryLock(usize),
    /// `lock_timeout` of lock `i`.
    LockTimeout(usize, Duration),
    /// Drops the guard at this position of the driver's guard stack (not necessarily the last).
    Unlock(usize),
    /// A helper thread (spawned and joined) tries lock `i`: it must get it iff the driver holds
    /// no guard of it.
    Probe(usize, Probe),
}

impl LockOp {
    /// Whether the model runs `self` when the driver holds `guards` (lock indices, oldest first).
    pub fn allowed(&self, guards: &[usize], reentrant: bool) -> bool {
        match *self {
            LockOp::Lock(i) => i < LOCKS && (reentrant || !guards.contains(&i)),
            LockOp::TryLock(i) | LockOp::LockTimeout(i, _) | LockOp::Probe(i, _) => i < LOCKS,
            LockOp::Unlock(pos) => pos < guards.len(),
        }
    }

    /// Whether an acquisition by the driver must succeed (else it must fail).
    fn acquires(i: usize, guards: &[usize], reentrant: bool) -> bool {
        reentrant || !guards.contains(&i)
    }

    /// The guard stack after `self`.
    pub fn next(&self, mut guards: Vec<usize>, reentrant: bool) -> Vec<usize> {
        match *self {
            LockOp::Lock(i) | LockOp::TryLock(i) | LockOp::LockTimeout(i, _) => {
                if Self::acquires(i, &guards, reentrant) {
                    guards.push(i)
                }
            }
            LockOp::Unlock(pos) => {
                guards.remove(pos);
            }
            LockOp::Probe(..) => {}
        }
        guards
    }
}

/// The lock model: the driving thread's guards, oldest first, as lock indices (a lock's
/// nesting depth is how often it occurs). `REENTRANT` as the subject's `is_reentrant()`.
pub struct LockModel<const REENTRANT: bool>;

impl<const REENTRANT: bool> ReferenceStateMachine for LockModel<REENTRANT> {
    type State = Vec<usize>;
    type Transition = LockOp;

    fn init_state() -> BoxedStrategy<Vec<usize>> {
        Just(Vec::new()).boxed()
    }

    fn transitions(state: &Vec<usize>) -> BoxedStrategy<LockOp> {
        let lockable: Vec<usize> = (0..LOCKS)
            .filter(|i| REENTRANT || !state.contains(i))
            .collect();
        let probe = prop_oneof![
            Just(Probe::TryLock),
            timeout_strategy().prop_map(Probe::Timeout)
        ];
        let mut ops = vec![
            (2, (0..LOCKS).prop_map(LockOp::TryLock).boxed()),
            (
                2,
                (0..LOCKS, timeout_strategy())
                    .prop_map(|(i, d)| LockOp::LockTimeout(i, d))
                    .boxed(),
            ),
            (
                2,
                (0..LOCKS, probe)
                    .prop_map(|(i, p)| LockOp::Probe(i, p))
                    .boxed(),
            ),
        ];
        if !lockable.is_empty() {
            ops.push((
                3,
                proptest::sample::select(lockable)
                    .prop_map(LockOp::Lock)
                    .boxed(),
            ));
        }
        if !state.is_empty() {
            ops.push((6, (0..state.len()).prop_map(LockOp::Unlock).boxed()));
        }
        Union::new_weighted(ops).boxed()
    }

    fn preconditions(state: &Vec<usize>, op: &LockOp) -> bool {
        op.allowed(state, REENTRANT)
    }

    fn apply(state: Vec<usize>, op: &LockOp) -> Vec<usize> {
        op.next(state, REENTRANT)
    }
}

/// Whether a helper thread (spawned and joined here) gets `lock`.
fn probe<L: LockApi>(lock: &L, how: Probe) -> Result<bool, String> {
    std::thread::scope(|s| {
        s.spawn(|| match how {
            Probe::TryLock => lock.try_lock().is_some(),
            Probe::Timeout(d) => lock.lock_timeout(d).is_some(),
        })
        .join()
        .map_err(|p| format!("the probe thread panicked: {}", panic_text(&*p)))
    })
}

/// Runs `ops` on `locks` (all free at the start, [`LOCKS`] of them) from the calling thread
/// against the lock model, skipping operations the model does not allow; then drops every
/// guard and checks that each lock is free for another thread. If the locks register with this
/// crate's held-lock stack (a tracked lock: [`held_depth`] rises on the first acquisition), the
/// stack's depth must match the guards alive after every operation.
pub fn lock_sequence<L: LockApi>(
    locks: &[L],
    ops: &[LockOp],
    step: &dyn Fn(usize),
) -> Result<(), Mismatch> {
    assert_eq!(locks.len(), LOCKS, "the lock model drives {LOCKS} locks");
    let reentrant = locks[0].is_reentrant();
    let base = held_depth();
    let mut tracked = None::<bool>;
    let mut guards: Vec<(usize, L::Guard<'_>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let held: Vec<usize> = guards.iter().map(|g| g.0).collect();
        if !op.allowed(&held, reentrant) {
            continue;
        }
        step(i);
        let fail = |m: String| Err(Mismatch::at(i, m));
        match *op {
            LockOp::Lock(k) | LockOp::TryLock(k) | LockOp::LockTimeout(k, _) => {
                let must = LockOp::acquires(k, &held, reentrant);
                let got = match *op {
                    LockOp::Lock(_) => Some(locks[k].lock()),
                    LockOp::TryLock(_) => locks[k].try_lock(),
                    LockOp::LockTimeout(_, d) => locks[k].lock_timeout(d),
                    _ => unreachable!(),
                };
                match (got, must) {
                    (Some(g), true) => guards.push((k, g)),
                    (None, false) => {}
                    (Some(_), false) => {
                        return fail(format!(
                            "{op:?} succeeded, but the calling thread already holds non-reentrant lock {k}"
                        ))
                    }
                    (None, true) => {
                        return fail(format!(
                            "{op:?} failed, but no other thread holds lock {k} (the caller holds {held:?})"
                        ))
                    }
                }
            }
            LockOp::Unlock(pos) => drop(guards.remove(pos)),
            LockOp::Probe(k, how) => {
                let held_k = held.contains(&k);
                let got = probe(&locks[k], how).map_err(|m| Mismatch::at(i, m))?;
                if got == held_k {
                    return fail(format!(
                        "{how:?} from another thread on lock {k}: got it = {got}, but the driving thread holds it = {held_k}"
                    ));
                }
            }
        }
        let depth = held_depth() - base;
        if tracked.is_none() && !guards.is_empty() {
            tracked = Some(depth > 0);
        }
        if tracked == Some(true) && depth != guards.len() {
            return fail(format!(
                "the held-lock stack is {depth} deep with {} guards alive",
                guards.len()
            ));
        }
    }
    step(ops.len());
    while guards.pop().is_some() {}
    for (k, lock) in locks.iter().enumerate() {
        if !probe(lock, Probe::TryLock).map_err(Mismatch::end)? {
            return Err(Mismatch::end(format!(
                "lock {k} is still held after every guard was dropped"
            )));
        }
    }
    if tracked == Some(true) && held_depth() != base {
        return Err(Mismatch::end(format!(
            "the held-lock stack is {} deep after every guard was dropped",
            held_depth() - base
        )));
    }
    Ok(())
}

/// What one lock case runs on: the locks and the validator their class belongs to.
pub(super) struct LockSubject<L> {
    locks: Vec<L>,
    validator: Validator,
}

pub(super) fn lock_subject<L: LockApi>(
    make: &dyn Fn(&LockClass) -> L,
    reentrant: bool,
) -> LockSubject<L> {
    // One class for all three locks: instances of one class add no order edges, so any
    // nesting order is legal, and tracked locks still keep the held stack.
    let validator = Validator::new(Mode::Report);
    let class = validator.class("check.model.lock", reentrant);
    LockSubject {
        locks: (0..LOCKS).map(|_| make(&class)).collect(),
        validator,
    }
}

pub(super) fn lock_case<L: LockApi>(
    s: LockSubject<L>,
    ops: &[LockOp],
    step: &dyn Fn(usize),
) -> Result<(), Mismatch> {
    // The validator's own reports are not part of the `LockApi` contract (it reports, for
    // instance, a `lock_timeout` of a held non-reentrant lock by its holder as a recursive
    // acquisition, although it times out): they are not checked here.
    let _ = &s.validator;
    lock_sequence(&s.locks, ops, step)
}

/// Checks a lock from `make` (each call a new, free lock of the given class) against the
/// sequential lock model: nesting (reentrant locks), `try_lock`/`lock_timeout` of held and
/// free locks, out-of-order release, exclusion as seen by a helper thread, release after the
/// last guard. One row.
pub fn lock<L: LockApi + 'static>(make: impl Fn(&LockClass) -> L, budget: Budget) -> Report {
    let reentrant =
        make(&Validator::new(Mode::Off).class("check.model.probe", true)).is_reentrant();
    let mut report = Report::new(
        std::any::type_name::<L>(),
        if reentrant { vec!["reentrant"] } else { vec![] },
    );
    let setup = || lock_subject(&make, reentrant);
    let row = if reentrant {
        run_row::<LockModel<true>, _>("model: lock", budget, &setup, lock_case::<L>)
    } else {
        run_row::<LockModel<false>, _>("model: lock", budget, &setup, lock_case::<L>)
    };
    report.rows.push(row);
    report
}

// ---------------------------------------------------------------------------------------------
// Log
// ---------------------------------------------------------------------------------------------

/// One operation of the log model. Every operation ends with no lock held, so whatever a log
/// staged must be delivered (or announced dropped) by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOp {
    /// `log`, holding no lock.
    Log,
    /// `log` from code that holds the log's own sink lock (a sink callback that logs).
    LogUnderSinkLock,
    /// `log` `n` times (1–8) while holding the "ODB" lock (`cm_msg` under `db_lock`).
    LogUnderOdb(u8),
    /// The watchdog: holds the sink lock, then takes the ODB lock.
    OdbUnderSinkLock,
    /// `flush`.
    Flush,
}

impl LogOp {
    /// Messages this operation logs.
    pub fn messages(&self) -> usize {
        match *self {
            LogOp::Log | LogOp::LogUnderSinkLock => 1,
            LogOp::LogUnderOdb(n) => usize::from(n.clamp(1, 8)),
            LogOp::OdbUnderSinkLock | LogOp::Flush => 0,
        }
    }
}

/// Which operations a log model generates: the story it tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStory {
    /// Logging, sometimes from a sink callback (seed 001's self-deadlock), and flush.
    SinkCallback,
    /// Logging under the ODB lock and a watchdog locking ODB under the sink lock (seed 001's
    /// ABBA inversion).
    OdbSysmsg,
    /// Everything.
    All,
}

impl LogStory {
    fn ops(self) -> &'static [u8] {
        // 0 Log, 1 LogUnderSinkLock, 2 LogUnderOdb, 3 OdbUnderSinkLock, 4 Flush
        match self {
            LogStory::SinkCallback => &[0, 1, 4],
            LogStory::OdbSysmsg => &[0, 2, 3],
            LogStory::All => &[0, 1, 2, 3, 4],
        }
    }
    const fn of(n: u8) -> LogStory {
        match n {
            0 => LogStory::SinkCallback,
            1 => LogStory::OdbSysmsg,
            _ => LogStory::All,
        }
    }
    fn name(self) -> &'static str {
        match self {
            LogStory::SinkCallback => "model: log sink callback",
            LogStory::OdbSysmsg => "model: log odb/sysmsg",
            LogStory::All => "model: log all ops",
        }
    }
}

/// The log model: the number of messages logged so far (message `k`'s text is `m{k}`).
/// `STORY` is a [`LogStory`] as a number (0 sink callback, 1 ODB/SYSMSG, 2 all).
pub struct LogModel<const STORY: u8>;

impl<const STORY: u8> ReferenceStateMachine for LogModel<STORY> {
    type State = usize;
    type Transition = LogOp;

    fn init_state() -> BoxedStrategy<usize> {
        Just(0).boxed()
    }

    fn transitions(_: &usize) -> BoxedStrategy<LogOp> {
        let ops: Vec<BoxedStrategy<LogOp>> = LogStory::of(STORY)
            .ops()
            .iter()
            .map(|k| match k {
                0 => Just(LogOp::Log).boxed(),
                1 => Just(LogOp::LogUnderSinkLock).boxed(),
                2 => (1u8..=8).prop_map(LogOp::LogUnderOdb).boxed(),
                3 => Just(LogOp::OdbUnderSinkLock).boxed(),
                _ => Just(LogOp::Flush).boxed(),
            })
            .collect();
        Union::new(ops).boxed()
    }

    fn apply(state: usize, op: &LogOp) -> usize {
        state + op.messages()
    }
}

/// The count a drop marker announces: the first number in its text.
fn announced(text: &str) -> Option<u64> {
    let digits: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Checks the delivered texts against `logged` messages `m0..m{logged-1}`: each delivered
/// at most once, in order, none invented, and every one not delivered announced as dropped.
fn check_delivered(texts: &[String], logged: usize) -> Result<(), String> {
    let mut next = 0usize;
    let mut dropped = 0u64;
    for t in texts {
        if t.contains("dropped") {
            dropped += announced(t).ok_or_else(|| format!("drop marker {t:?} has no count"))?;
            continue;
        }
        let k: usize = t
            .strip_prefix('m')
            .and_then(|n| n.parse().ok())
            .filter(|&k| k < logged)
            .ok_or_else(|| format!("delivered {t:?}, which was never logged"))?;
        if k < next {
            return Err(format!(
                "delivered {t:?} after m{}: twice or out of order (delivered {texts:?})",
                next - 1
            ));
        }
        next = k + 1;
    }
    let delivered = texts.iter().filter(|t| !t.contains("dropped")).count() as u64;
    let missing = logged as u64 - delivered;
    if missing != dropped {
        return Err(format!(
            "{logged} logged, {delivered} delivered, {dropped} announced dropped: {} vanished (delivered {texts:?})",
            missing.abs_diff(dropped)
        ));
    }
    Ok(())
}

/// Runs `ops` from the calling thread on `log` (which delivers to `delivered`; its sink lock
/// is of a class of `validator`) and an ODB lock of `odb`, checking after every operation
/// that each message logged so far was delivered exactly once, in order, or announced dropped,
/// and that no lock is left held.
pub fn log_sequence<G: LogApi>(
    log: &G,
    delivered: &Delivered,
    odb: &ReentrantLock<()>,
    ops: &[LogOp],
    step: &dyn Fn(usize),
) -> Result<(), Mismatch> {
    let base = held_depth();
    let mut logged = 0usize;
    let mut next = || {
        logged += 1;
        format!("m{}", logged - 1)
    };
    for (i, op) in ops.iter().enumerate() {
        step(i);
        match *op {
            LogOp::Log => log.log(next()),
            LogOp::LogUnderSinkLock => {
                let text = next();
                let mut text = Some(text);
                log.under_sink_lock(&mut || {
                    if let Some(t) = text.take() {
                        log.log(t)
                    }
                })
            }
            LogOp::LogUnderOdb(_) => {
                let _odb = odb.lock();
                for _ in 0..op.messages() {
                    log.log(next());
                }
            }
            LogOp::OdbUnderSinkLock => log.under_sink_lock(&mut || drop(odb.lock())),
            LogOp::Flush => log.flush(),
        }
        if held_depth() != base {
            return Err(Mismatch::at(
                i,
                format!("{} locks still held after {op:?}", held_depth() - base),
            ));
        }
        let total: usize = ops[..=i].iter().map(LogOp::messages).sum();
        check_delivered(&delivered.texts(), total).map_err(|m| Mismatch::at(i, m))?;
    }
    step(ops.len());
    Ok(())
}

/// What one log case runs on.
pub(super) struct LogSubject<G> {
    log: G,
    delivered: Delivered,
    odb: ReentrantLock<()>,
    // Keeps the classes' graph alive for the case.
    _validator: Validator,
}

pub(super) fn log_subject<G: LogApi>(make: &dyn Fn(Delivered, &LockClass) -> G) -> LogSubject<G> {
    // Panic mode: an order violation (a self-deadlock, an ABBA inversion) fails the case
    // before it can deadlock, when the log tracks its sink lock with the class it is given.
    let validator = Validator::new(Mode::Panic);
    let delivered = Delivered::new();
    let log = make(delivered.clone(), &validator.class("sysmsg", false));
    let odb = ReentrantLock::tracked((), &validator.class("odb", true));
    LogSubject {
        log,
        delivered,
        odb,
        _validator: validator,
    }
}

pub(super) fn log_case<G: LogApi>(
    s: LogSubject<G>,
    ops: &[LogOp],
    step: &dyn Fn(usize),
) -> Result<(), Mismatch> {
    log_sequence(&s.log, &s.delivered, &s.odb, ops, step)
}

/// Checks a message log from `make` (given the sink to deliver to and the class of its sink
/// lock) against the sequential log model: exactly-once in-order delivery by the end of every
/// operation (all end with no lock held), drops announced, no deadlock logging from a sink
/// callback or under another lock, no lock-order inversion with a watchdog that locks under
/// the sink lock. One row per [`LogStory`].
pub fn log<G: LogApi + 'static>(
    make: impl Fn(Delivered, &LockClass) -> G,
    budget: Budget,
) -> Report {
    let mut report = Report::new(std::any::type_name::<G>(), Vec::new());
    let setup = || log_subject(&make);
    report.rows.push(run_row::<LogModel<0>, _>(
        LogStory::of(0).name(),
        budget,
        &setup,
        log_case::<G>,
    ));
    report.rows.push(run_row::<LogModel<1>, _>(
        LogStory::of(1).name(),
        budget,
        &setup,
        log_case::<G>,
    ));
    report.rows.push(run_row::<LogModel<2>, _>(
        LogStory::of(2).name(),
        budget,
        &setup,
        log_case::<G>,
    ));
    report
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

fn skipped(scenario: &str, why: &str) -> Row {
    Row {
        scenario: scenario.into(),
        engine: "proptest".into(),
        outcome: Outcome::Skipped(why.into()),
        elapsed: Duration::ZERO,
    }
}

/// The text of a panic payload.
pub(super) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(a panic with a non-text payload)".into())
}

/// proptest's generator seeded from `seed`.
fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    let mut x = seed;
    for chunk in bytes.chunks_mut(8) {
        // SplitMix64.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs one case's operations on its subject, calling the progress callback before each.
type Exec<S, T> = fn(S, &[T], &dyn Fn(usize)) -> Result<(), Mismatch>;

/// How one case ended.
enum CaseEnd {
    Passed,
    Mismatch(Mismatch),
    /// Still running after the hang limit, in operation `at` (`None`: in setup or teardown).
    Hang {
        at: Option<usize>,
        waited: Duration,
    },
}

/// Runs `exec(subject, ops)` on a worker thread and waits for it at most `limit`.
fn run_case<S: Send + 'static, T: Send + 'static>(
    subject: S,
    ops: Vec<T>,
    exec: Exec<S, T>,
    seen: Option<Arc<AtomicUsize>>,
    limit: Duration,
) -> CaseEnd {
    // `at` is the op being run plus one (0: not started).
    let at = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let driver = std::thread::current();
    let (w_at, w_done) = (at.clone(), done.clone());
    let worker = std::thread::Builder::new()
        .name("check-model".into())
        .spawn(move || {
            let step = |i: usize| {
                w_at.store(i + 1, Ordering::SeqCst);
                if let Some(seen) = &seen {
                    // Tells proptest's shrinker which transitions ran (as `test_sequential`).
                    if i < ops.len() {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            };
            let r = catch_unwind(AssertUnwindSafe(|| exec(subject, &ops, &step)));
            let r = r.unwrap_or_else(|p| {
                let i = w_at.load(Ordering::SeqCst);
                Err(Mismatch {
                    at: (i > 0 && i <= ops.len()).then(|| i - 1),
                    message: format!("panicked: {}", panic_text(&*p)),
                })
            });
            w_done.store(true, Ordering::SeqCst);
            driver.unpark();
            r
        })
        .expect("spawn a model worker thread");
    // A hang: the same operation (or setup, or the final checks) running for `limit`.
    let (mut last, mut since) = (0, Instant::now());
    while !done.load(Ordering::SeqCst) {
        let now = at.load(Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        }
        let waited = since.elapsed();
        if waited >= limit {
            return CaseEnd::Hang {
                at: (now > 0).then(|| now - 1),
                waited,
            };
        }
        std::thread::park_timeout((limit - waited).min(Duration::from_millis(50)));
    }
    match worker.join() {
        Ok(Ok(())) => CaseEnd::Passed,
        Ok(Err(m)) => CaseEnd::Mismatch(m),
        Err(p) => CaseEnd::Mismatch(Mismatch::end(format!(
            "the worker panicked: {}",
            panic_text(&*p)
        ))),
    }
}

/// One report row: `budget.iterations` proptest cases of model `R`, each on a fresh subject
/// from `setup` run by `exec` on a worker thread; shrinks the first failure.
fn run_row<R, S>(
    scenario: &str,
    budget: Budget,
    setup: &dyn Fn() -> S,
    exec: Exec<S, R::Transition>,
) -> Row
where
    R: ReferenceStateMachine,
    R::Transition: Send + 'static,
    S: Send + 'static,
{
    let t0 = Instant::now();
    let limit = budget.time.min(HANG_LIMIT);
    let config = Config {
        cases: budget.iterations.min(u32::MAX as usize) as u32,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(budget.seed));
    let runs = Cell::new(0u64);
    let first_failure = Cell::new(None::<u64>);
    let hang = RefCell::new(None::<(u64, String)>);
    let strategy = R::sequential_strategy(1..MAX_OPS);
    let result = runner.run(&strategy, |(_, ops, seen)| {
        if hang.borrow().is_some() || (first_failure.get().is_none() && t0.elapsed() > budget.time)
        {
            // After a hang nothing more is run (its worker may still hold the subject's
            // resources); past the time budget the remaining cases are not run.
            return Ok(());
        }
        runs.set(runs.get() + 1);
        let shown = format!("{ops:?}");
        match run_case(setup(), ops, exec, seen, limit) {
            CaseEnd::Passed => Ok(()),
            CaseEnd::Mismatch(m) => {
                first_failure.set(first_failure.get().or(Some(runs.get())));
                Err(TestCaseError::fail(m.to_string()))
            }
            CaseEnd::Hang { at, waited } => {
                let what = match at {
                    Some(i) => format!("op #{i}"),
                    None => "setup or teardown".into(),
                };
                *hang.borrow_mut() = Some((
                    runs.get(),
                    format!(
                        "{what} still running after {:.1} s; sequence {shown}",
                        waited.as_secs_f64()
                    ),
                ));
                Err(TestCaseError::fail("hang"))
            }
        }
    });
    let replay = Some(format!("Budget {{ seed: {}, .. }}", budget.seed));
    let outcome = if let Some((executions, report)) = hang.into_inner() {
        Outcome::Hang {
            executions,
            report,
            replay,
        }
    } else {
        match result {
            Ok(()) => Outcome::Passed {
                executions: runs.get(),
            },
            Err(TestError::Fail(reason, (init, minimal, _))) => {
                let (minimal, message) = minimize::<R, S>(
                    init,
                    minimal,
                    reason.message().to_string(),
                    setup,
                    exec,
                    limit,
                );
                Outcome::Failed {
                    executions: first_failure.get().unwrap_or(runs.get()),
                    message: format!(
                        "{message}; minimal sequence ({} ops): {minimal:?}",
                        minimal.len()
                    ),
                    replay,
                }
            }
            Err(TestError::Abort(why)) => Outcome::Failed {
                executions: runs.get(),
                message: format!("proptest aborted: {why}"),
                replay,
            },
        }
    };
    Row {
        scenario: scenario.into(),
        engine: "proptest".into(),
        outcome,
        elapsed: t0.elapsed(),
    }
}

/// Shrinks a failing sequence further than proptest's one pass of deletions: removes single
/// operations and adjacent pairs (a lock and its unlock) while the sequence stays valid for the
/// model and still fails, until nothing more can go (or [`MINIMIZE_RUNS`] runs are spent).
/// A candidate that hangs counts as not failing, and ends the search.
fn minimize<R, S>(
    init: R::State,
    mut ops: Vec<R::Transition>,
    mut message: String,
    setup: &dyn Fn() -> S,
    exec: Exec<S, R::Transition>,
    limit: Duration,
) -> (Vec<R::Transition>, String)
where
    R: ReferenceStateMachine,
    R::Transition: Send + 'static,
    S: Send + 'static,
{
    let valid = |ops: &[R::Transition]| {
        let mut state = init.clone();
        for op in ops {
            if !R::preconditions(&state, op) {
                return false;
            }
            state = R::apply(state, op);
        }
        true
    };
    let mut runs = 0;
    let mut changed = true;
    while changed && runs < MINIMIZE_RUNS {
        changed = false;
        for width in [1, 2] {
            let mut i = 0;
            while i + width <= ops.len() && runs < MINIMIZE_RUNS {
                let mut candidate = ops.clone();
                candidate.drain(i..i + width);
                if candidate.is_empty() || !valid(&candidate) {
                    i += 1;
                    continue;
                }
                runs += 1;
                match run_case(setup(), candidate.clone(), exec, None, limit) {
                    CaseEnd::Mismatch(m) => {
                        (ops, message) = (candidate, m.to_string());
                        changed = true;
                    }
                    CaseEnd::Passed => i += 1,
                    CaseEnd::Hang { .. } => return (ops, message),
                }
            }
        }
    }
    (ops, message)
}
