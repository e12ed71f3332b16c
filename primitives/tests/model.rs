//! Model tests: proptest drives each primitive with random operation sequences (real primitives,
//! std build, one thread driving at a time) and checks every result against a sequential model.
//! The models for any `MVarApi`, `LockApi` and `LogApi` live in the library
//! (`primitives::check::model`, one call per kind); this file runs them on the reference types
//! and the controls, and keeps the models that are specific to one type:
//!
//! * `check::model::mvar` on `MVar` and on a crossbeam `bounded(1)` channel (the adapter story);
//!   [`MVarTest`]: `MVar`'s own API (its error types, `is_full`) against the library's
//!   `MVarModel`.
//! * `check::model::lock` on `ReentrantLock` and `Mutex`: the driver's guard stack over three
//!   locks, with probes from a helper thread (spawned and joined, never concurrent) that must
//!   fail while a lock is held.
//! * [`OrderModel`]: the acquisition-order graph; the validator must report an inversion exactly
//!   when an acquisition closes a cycle in it.
//! * [`MsgModel`]: per-thread held locks, staged messages and drops of a `MessageLog`, driven on
//!   persistent worker threads (one command at a time), checked message by message.
//! * `check::model::log`: the delivered texts of any `LogApi` while a sink callback and an "ODB"
//!   lock interleave with logging; the buffered log passes, the seed-001 unbuffered one must fail.
//!
//! Negative controls are run through proptest (five fixed seeds each) and must make it fail;
//! each prints how many cases proptest needed (`-- --nocapture`): `exch-same-bucket`,
//! `logger-self-deadlock`, `abba-odb-sysmsg` and `midas-nested-lock` (the last one through the
//! lock model's probe thread). Controls a sequential engine cannot see:
//! * `mvar-wake-before-grant`, `mvar-if-not-while`, `mvar-one-waiter-class`: the defect is only
//!   reached when a waiter is *blocked* while another thread serves it; here every blocking
//!   operation either proceeds at once or times out alone, so nobody is ever served or woken.
//! * `exch-unordered`: needs two `exch` calls in flight at once, and both buckets are one lock
//!   class (instance order within a class is not checked, as in Linux lockdep).
//!
//! Section 6 holds tests for bugs found in `primitives`; they fail until the bugs are fixed.
//! Section 7 runs `check::model` and `check::fuzz` on deliberately broken types defined here.
#![cfg(all(feature = "engines", not(any(loom, shuttle))))]

use crossbeam_channel as chan;
use primitives::check::model::{MVarModel, MVarOp};
use primitives::check::{self, Budget, Outcome, Report};
use primitives::controls::{exch_naive, MidasNestedLock, UnbufferedLog};
use primitives::lock::{held_depth, Violation, ViolationKind};
use primitives::mvar::{PutTimeoutError, TakeTimeoutError, TryPutError, TryTakeError};
use primitives::scenarios::catalogue::{reference_log, Delivered as Sink};
use primitives::scenarios::exch_ordered;
use primitives::sync::current_thread_id;
use primitives::{
    LockApi, LockClass, LogApi, MVar, MVarApi, Message, MessageLog, Mode, Mutex, ReentrantLock,
    Validator,
};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::cell::Cell;
use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait of the harness itself (a worker's reply, a whole control run) may
/// take before it is called a hang.
const HANG_LIMIT: Duration = Duration::from_secs(20);

/// Cases per reference machine: enough to hit every interleaving of a handful of operations,
/// small enough to keep the whole file within a few seconds in a debug build.
fn config(cases: u32) -> Config {
    Config {
        cases,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. MVar
// ---------------------------------------------------------------------------------------------

/// Asserts that an operation that could not proceed waited at least its timeout (a lower
/// bound: it is a correctness property of a deadline, not a performance assertion).
fn assert_waited(op: &MVarOp, since: Instant, timeout: Duration) {
    let waited = since.elapsed();
    assert!(
        waited >= timeout,
        "{op:?} timed out after {waited:?}, before its timeout"
    );
}

/// The real `MVar<u64>`, every operation, with its own error types.
struct MVarTest;

struct MVarSut {
    m: MVar<u64>,
    /// The model state before the next transition.
    model: Option<u64>,
}

impl StateMachineTest for MVarTest {
    type SystemUnderTest = MVarSut;
    type Reference = MVarModel<true>;

    fn init_test(state: &Option<u64>) -> MVarSut {
        let m = match *state {
            None => MVar::new_empty(),
            Some(v) => MVar::new_full(v),
        };
        MVarSut { m, model: *state }
    }

    fn apply(mut sut: MVarSut, after: &Option<u64>, op: MVarOp) -> MVarSut {
        let before = sut.model;
        let m = &sut.m;
        match op {
            MVarOp::TryPut(v) => {
                let r = m.try_put(v);
                match before {
                    None => assert_eq!(r, Ok(())),
                    Some(_) => assert_eq!(
                        r,
                        Err(TryPutError::Full(v)),
                        "try_put on a full MVar must give the value back"
                    ),
                }
            }
            MVarOp::TryTake => assert_eq!(m.try_take(), before.ok_or(TryTakeError::Empty)),
            MVarOp::TryRead => assert_eq!(m.try_read(), before.ok_or(TryTakeError::Empty)),
            MVarOp::Put(v) => m.put(v),
            MVarOp::Take => assert_eq!(Some(m.take()), before),
            MVarOp::Read => assert_eq!(Some(m.read()), before),
            MVarOp::Swap(v) => assert_eq!(Some(m.swap(v)), before),
            MVarOp::PutTimeout(v, d) => {
                let t0 = Instant::now();
                let r = m.put_timeout(v, d);
                match before {
                    None => assert_eq!(r, Ok(())),
                    Some(_) => {
                        assert_eq!(
                            r,
                            Err(PutTimeoutError::Timeout(v)),
                            "put_timeout on a full MVar must give the value back"
                        );
                        assert_waited(&op, t0, d);
                    }
                }
            }
            MVarOp::TakeTimeout(d) => {
                let t0 = Instant::now();
                let r = m.take_timeout(d);
                match before {
                    Some(x) => assert_eq!(r, Ok(x)),
                    None => {
                        assert_eq!(r, Err(TakeTimeoutError::Timeout));
                        assert_waited(&op, t0, d);
                    }
                }
            }
        }
        sut.model = *after;
        sut
    }

    fn check_invariants(sut: &MVarSut, state: &Option<u64>) {
        assert_eq!(
            sut.m.is_full(),
            state.is_some(),
            "is_full disagrees with the model"
        );
    }
}

/// The adapter story: a crossbeam `bounded(1)` channel *is* an MVar (put = send, take = recv).
struct ChannelMVar {
    tx: chan::Sender<u64>,
    rx: chan::Receiver<u64>,
}

impl MVarApi<u64> for ChannelMVar {
    fn put(&self, value: u64) {
        self.tx.send(value).expect("both ends live in the adapter");
    }
    fn take(&self) -> u64 {
        self.rx.recv().expect("both ends live in the adapter")
    }
    fn try_put(&self, value: u64) -> Result<(), u64> {
        self.tx.try_send(value).map_err(|e| e.into_inner())
    }
    fn try_take(&self) -> Option<u64> {
        self.rx.try_recv().ok()
    }
    fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
        self.tx
            .send_timeout(value, timeout)
            .map_err(|e| e.into_inner())
    }
    fn take_timeout(&self, timeout: Duration) -> Option<u64> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl ChannelMVar {
    /// An empty box.
    fn new() -> Self {
        let (tx, rx) = chan::bounded(1);
        ChannelMVar { tx, rx }
    }
}

prop_state_machine! {
    #![proptest_config(config(256))]

    /// `MVar<u64>`: every operation with its own error types, checked against the library's
    /// MVar model (`check::model::MVarModel`), plus `is_full` after every step.
    #[test]
    fn mvar_matches_model(sequential 1..40 => MVarTest);
}

/// Budget of the library-call tests: 256 cases per row, a fixed seed.
fn budget() -> Budget {
    Budget::default().iterations(256).seed(7)
}

/// The rows of `report` with `scenario`, which must be there.
fn row<'r>(report: &'r Report, scenario: &str) -> &'r Outcome {
    &report
        .rows
        .iter()
        .find(|r| r.scenario == scenario)
        .unwrap_or_else(|| panic!("no row {scenario:?} in\n{report}"))
        .outcome
}

/// `MVar<u64>` through `MVarApi`, with the declared read/swap checked too.
#[test]
fn mvar_passes_check_model() {
    let report = check::model::mvar(MVar::<u64>::new_empty, budget());
    eprint!("{report}");
    report.assert_passed();
    assert!(
        matches!(
            row(&report, "model: mvar read/swap"),
            Outcome::Passed { .. }
        ),
        "read/swap is declared, so it must be checked:\n{report}"
    );
}

/// A crossbeam `bounded(1)` channel wrapped as `MVarApi<u64>` passes the same model; it
/// declares no read/swap, so that row is skipped.
#[test]
fn crossbeam_bounded_1_as_mvar_passes_check_model() {
    let report = check::model::mvar(ChannelMVar::new, budget());
    eprint!("{report}");
    report.assert_passed();
    assert!(
        matches!(
            row(&report, "model: mvar core ops"),
            Outcome::Passed { executions: 256 }
        ),
        "{report}"
    );
    assert!(
        matches!(row(&report, "model: mvar read/swap"), Outcome::Skipped(_)),
        "{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2a. Locks through `check::model::lock`: guard stack from one thread, probes from another
// ---------------------------------------------------------------------------------------------

/// `ReentrantLock`: nesting, out-of-order release, try/timeout, exclusion seen by a helper
/// thread, release after the last guard, the held stack matching the guards alive.
#[test]
fn reentrant_lock_passes_check_model() {
    let report = check::model::lock(|c: &LockClass| ReentrantLock::tracked(0u64, c), budget());
    eprint!("{report}");
    report.assert_passed();
}

/// The non-reentrant `Mutex`: a `try_lock` or `lock_timeout` by its holder must fail.
#[test]
fn mutex_passes_check_model() {
    let report = check::model::lock(|c: &LockClass| Mutex::tracked((), c), budget());
    eprint!("{report}");
    report.assert_passed();
}

// ---------------------------------------------------------------------------------------------
// 2b. Lock-order validator against a model acquisition-order graph
// ---------------------------------------------------------------------------------------------

const CLASSES: usize = 4;
const CLASS_NAMES: [&str; CLASSES] = ["c0", "c1", "c2", "c3"];
/// Lock instances per class (two instances of one class taken together add no edge).
const INSTANCES: usize = 2;

/// A chain of (class, instance) acquisitions, nested, by one fresh thread.
type Chain = Vec<(usize, usize)>;

/// The model acquisition-order graph between classes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct OrderGraph {
    edges: BTreeSet<(usize, usize)>,
}

impl OrderGraph {
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = [false; CLASSES];
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            if n == to {
                return true;
            }
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            queue.extend(self.edges.iter().filter(|e| e.0 == n).map(|e| e.1));
        }
        false
    }

    fn has_cycle(&self) -> bool {
        self.edges.iter().any(|&(a, b)| self.reaches(b, a))
    }

    /// The class sets of every simple path `from →* to`.
    fn path_class_sets(&self, from: usize, to: usize) -> Vec<BTreeSet<usize>> {
        fn walk(
            g: &OrderGraph,
            at: usize,
            to: usize,
            path: &mut Vec<usize>,
            out: &mut Vec<BTreeSet<usize>>,
        ) {
            if at == to {
                out.push(path.iter().copied().collect());
                return;
            }
            for &(_, next) in g.edges.iter().filter(|e| e.0 == at) {
                if !path.contains(&next) {
                    path.push(next);
                    walk(g, next, to, path, out);
                    path.pop();
                }
            }
        }
        let mut out = Vec::new();
        walk(self, from, to, &mut vec![from], &mut out);
        out
    }
}

/// What the model says about one acquisition of a chain.
#[derive(Clone, Debug)]
struct Step {
    /// The class acquired.
    class: usize,
    /// The first (outermost) held class `h` whose new edge `h → class` closes a cycle.
    closing: Option<usize>,
    /// The graph after this acquisition.
    graph: OrderGraph,
}

/// Runs a chain on the model graph, lockdep's way: acquiring a lock not already held adds an
/// edge from every held class (other than its own) not yet ordered before it; the first such
/// edge for which the opposite path already exists closes a cycle. Re-entering a held lock adds
/// nothing.
fn model_chain(g: &mut OrderGraph, chain: &Chain) -> Vec<Step> {
    let mut held: Vec<(usize, usize)> = Vec::new();
    let mut steps = Vec::new();
    for &(c, k) in chain {
        let mut closing = None;
        if !held.contains(&(c, k)) {
            for &(h, _) in &held {
                if h == c || g.edges.contains(&(h, c)) {
                    continue;
                }
                if closing.is_none() && g.reaches(c, h) {
                    closing = Some(h);
                }
                g.edges.insert((h, c));
            }
        }
        held.push((c, k));
        steps.push(Step {
            class: c,
            closing,
            graph: g.clone(),
        });
    }
    steps
}

struct OrderModel;

impl ReferenceStateMachine for OrderModel {
    type State = OrderGraph;
    type Transition = Chain;

    fn init_state() -> BoxedStrategy<OrderGraph> {
        Just(OrderGraph::default()).boxed()
    }

    fn transitions(_: &OrderGraph) -> BoxedStrategy<Chain> {
        proptest::collection::vec((0..CLASSES, 0..INSTANCES), 1..=4).boxed()
    }

    fn apply(mut state: OrderGraph, chain: &Chain) -> OrderGraph {
        model_chain(&mut state, chain);
        state
    }
}

fn class_index(name: &str) -> usize {
    CLASS_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown class {name:?}"))
}

fn class_set(v: &Violation) -> BTreeSet<usize> {
    v.cycle.iter().map(|n| class_index(n)).collect()
}

/// Checks a reported inversion against the model: closed by `h → c` on thread `tid`, and
/// every edge of its cycle and of its earlier chain is in the model graph.
fn check_inversion(v: &Violation, h: usize, c: usize, tid: u64, g: &OrderGraph) {
    assert_eq!(v.kind, ViolationKind::Inversion, "{v}");
    let cycle: Vec<usize> = v.cycle.iter().map(|n| class_index(n)).collect();
    assert!(cycle.len() >= 3, "{v}");
    assert_eq!(
        (cycle[0], cycle[1], cycle[cycle.len() - 1]),
        (h, c, h),
        "cycle not closed by {h} -> {c}: {v}"
    );
    for w in cycle.windows(2) {
        assert!(
            g.edges.contains(&(w[0], w[1])),
            "reported edge {:?} is not in the model graph {:?}: {v}",
            w,
            g.edges
        );
    }
    let this: Vec<(usize, u64)> = v
        .this_chain
        .iter()
        .map(|a| (class_index(a.class), a.thread))
        .collect();
    assert_eq!(this, vec![(h, tid), (c, tid)], "this chain: {v}");
    // The earlier chain establishes the opposite order c →* h, edge by edge.
    let earlier: Vec<usize> = v
        .earlier_chain
        .iter()
        .map(|a| class_index(a.class))
        .collect();
    let expected: Vec<usize> = cycle[1..].windows(2).flat_map(|w| [w[0], w[1]]).collect();
    assert_eq!(earlier, expected, "earlier chain: {v}");
    for pair in v.earlier_chain.chunks(2) {
        assert_eq!(
            pair[0].thread, pair[1].thread,
            "an edge seen on two threads: {v}"
        );
    }
}

struct OrderTest;

struct OrderSut {
    validator: Validator,
    /// `locks[class][instance]`.
    locks: Vec<Vec<ReentrantLock<()>>>,
    graph: OrderGraph,
}

impl StateMachineTest for OrderTest {
    type SystemUnderTest = OrderSut;
    type Reference = OrderModel;

    fn init_test(_: &OrderGraph) -> OrderSut {
        let validator = Validator::new(Mode::Report);
        let locks = CLASS_NAMES
            .iter()
            .map(|name| {
                let class = validator.class(name, true);
                (0..INSTANCES)
                    .map(|_| ReentrantLock::tracked((), &class))
                    .collect()
            })
            .collect();
        OrderSut {
            validator,
            locks,
            graph: OrderGraph::default(),
        }
    }

    fn apply(mut sut: OrderSut, after: &OrderGraph, chain: Chain) -> OrderSut {
        let steps = model_chain(&mut sut.graph, &chain);
        assert_eq!(&sut.graph, after);
        let before = sut.validator.violations().len();
        // A fresh thread per chain: its own held stack, no concurrency (joined at once).
        let (tid, counts) = thread::scope(|s| {
            s.spawn(|| {
                let mut guards = Vec::new();
                let mut counts = Vec::new();
                for &(c, k) in &chain {
                    guards.push(sut.locks[c][k].lock());
                    counts.push(sut.validator.violations().len());
                }
                while guards.pop().is_some() {}
                assert_eq!(held_depth(), 0);
                (current_thread_id(), counts)
            })
            .join()
            .expect("chain thread panicked")
        });
        let all = sut.validator.violations();
        let mut prev = before;
        for (i, (step, &now)) in steps.iter().zip(&counts).enumerate() {
            match step.closing {
                None => assert_eq!(now, prev, "chain {chain:?} step {i}: no cycle closed in the model, but the validator reported {:#?}", &all[prev..now]),
                Some(h) => {
                    assert!(now == prev || now == prev + 1, "chain {chain:?} step {i}: {} reports for one acquisition", now - prev);
                    if now == prev + 1 {
                        check_inversion(&all[prev], h, step.class, tid, &step.graph);
                    } else {
                        // Deduplicated: the cycle found covers the classes of one already reported.
                        let reported: Vec<BTreeSet<usize>> = all[..prev].iter().map(class_set).collect();
                        let candidates = step.graph.path_class_sets(step.class, h);
                        assert!(
                            candidates.iter().any(|p| reported.contains(&p.iter().copied().chain([h]).collect())),
                            "chain {chain:?} step {i}: edge {h} -> {} closes a cycle but nothing was reported",
                            step.class
                        );
                    }
                }
            }
            prev = now;
        }
        // The headline property: reported iff the acquisition-order graph has a cycle.
        assert_eq!(
            !all.is_empty(),
            sut.graph.has_cycle(),
            "graph {:?}, reports {:#?}",
            sut.graph.edges,
            all
        );
        sut
    }
}

prop_state_machine! {
    #![proptest_config(config(256))]

    /// The validator reports an inversion exactly when the first edge closes a cycle.
    #[test]
    fn validator_matches_order_graph_model(sequential 1..12 => OrderTest);
}

// ---------------------------------------------------------------------------------------------
// 3. MessageLog: staging under tracked locks, flush at the outermost release, bounded stage
// ---------------------------------------------------------------------------------------------

const WORKERS: usize = 2;
const MSG_LOCKS: usize = 3;
const STAGE_CAPACITY: usize = 3;

#[derive(Clone, Debug)]
enum MsgOp {
    /// Worker `t` (holding no lock) logs: delivered at once.
    LogOutside {
        t: usize,
        n: u8,
    },
    /// Worker `t` (holding a lock) logs: staged, or dropped and counted if its stage is full.
    LogUnder {
        t: usize,
        n: u8,
    },
    Lock {
        t: usize,
        lock: usize,
    },
    /// Worker `t` drops the guard at position `pos` of its stack.
    Unlock {
        t: usize,
        pos: usize,
    },
    Flush {
        t: usize,
    },
    /// Worker `t` exits leaking its guards: the thread-local stage is delivered on exit, its
    /// locks stay held by a dead thread for good, and a fresh worker takes slot `t`.
    ExitHolding {
        t: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Delivered {
    /// The `call`-th `log` call, by worker incarnation `gen`.
    Msg {
        call: usize,
        gen: usize,
        text: String,
        staged: bool,
    },
    /// The drop marker, after a flush of a stage that dropped `count` messages.
    Dropped { gen: usize, count: u64 },
}

#[derive(Clone, Debug)]
struct WorkerModel {
    /// Incarnation number (index into the SUT's thread ids).
    gen: usize,
    held: Vec<usize>,
    pending: Vec<(usize, String)>,
    dropped: u64,
}

#[derive(Clone, Debug)]
struct MsgModel {
    slots: Vec<WorkerModel>,
    next_gen: usize,
    /// Locks held forever by an exited worker.
    dead_locks: BTreeSet<usize>,
    calls: usize,
    delivered: Vec<Delivered>,
    overflowed: u64,
}

fn text(t: usize, n: u8) -> String {
    format!("w{t}:{n}")
}

impl MsgModel {
    fn usable(&self, t: usize, lock: usize) -> bool {
        !self.dead_locks.contains(&lock)
            && self
                .slots
                .iter()
                .enumerate()
                .all(|(u, w)| u == t || !w.held.contains(&lock))
    }

    fn flush(&mut self, t: usize) {
        let w = &mut self.slots[t];
        for (call, text) in w.pending.drain(..) {
            self.delivered.push(Delivered::Msg {
                call,
                gen: w.gen,
                text,
                staged: true,
            });
        }
        if w.dropped > 0 {
            self.delivered.push(Delivered::Dropped {
                gen: w.gen,
                count: std::mem::take(&mut w.dropped),
            });
        }
    }

    fn new_worker(&mut self) -> WorkerModel {
        self.next_gen += 1;
        WorkerModel {
            gen: self.next_gen - 1,
            held: Vec::new(),
            pending: Vec::new(),
            dropped: 0,
        }
    }
}

impl ReferenceStateMachine for MsgModel {
    type State = MsgModel;
    type Transition = MsgOp;

    fn init_state() -> BoxedStrategy<MsgModel> {
        let mut m = MsgModel {
            slots: Vec::new(),
            next_gen: 0,
            dead_locks: BTreeSet::new(),
            calls: 0,
            delivered: Vec::new(),
            overflowed: 0,
        };
        m.slots = (0..WORKERS).map(|_| m.new_worker()).collect();
        Just(m).boxed()
    }

    fn transitions(state: &MsgModel) -> BoxedStrategy<MsgOp> {
        let mut ops: Vec<(u32, BoxedStrategy<MsgOp>)> = Vec::new();
        for (t, w) in state.slots.iter().enumerate() {
            if w.held.is_empty() {
                ops.push((
                    3,
                    any::<u8>()
                        .prop_map(move |n| MsgOp::LogOutside { t, n })
                        .boxed(),
                ));
            } else {
                ops.push((
                    8,
                    any::<u8>()
                        .prop_map(move |n| MsgOp::LogUnder { t, n })
                        .boxed(),
                ));
                ops.push((
                    4,
                    (0..w.held.len())
                        .prop_map(move |pos| MsgOp::Unlock { t, pos })
                        .boxed(),
                ));
                ops.push((1, Just(MsgOp::ExitHolding { t }).boxed()));
            }
            for lock in (0..MSG_LOCKS).filter(|&l| state.usable(t, l)) {
                ops.push((2, Just(MsgOp::Lock { t, lock }).boxed()));
            }
            ops.push((1, Just(MsgOp::Flush { t }).boxed()));
        }
        Union::new_weighted(ops).boxed()
    }

    fn preconditions(state: &MsgModel, op: &MsgOp) -> bool {
        match *op {
            MsgOp::LogOutside { t, .. } => state.slots[t].held.is_empty(),
            MsgOp::LogUnder { t, .. } | MsgOp::ExitHolding { t } => !state.slots[t].held.is_empty(),
            MsgOp::Lock { t, lock } => state.usable(t, lock),
            MsgOp::Unlock { t, pos } => pos < state.slots[t].held.len(),
            MsgOp::Flush { .. } => true,
        }
    }

    fn apply(mut s: MsgModel, op: &MsgOp) -> MsgModel {
        match *op {
            MsgOp::LogOutside { t, n } => {
                let call = s.calls;
                s.calls += 1;
                s.flush(t);
                s.delivered.push(Delivered::Msg {
                    call,
                    gen: s.slots[t].gen,
                    text: text(t, n),
                    staged: false,
                });
            }
            MsgOp::LogUnder { t, n } => {
                let call = s.calls;
                s.calls += 1;
                let w = &mut s.slots[t];
                if w.pending.len() >= STAGE_CAPACITY {
                    w.dropped += 1;
                    s.overflowed += 1;
                } else {
                    w.pending.push((call, text(t, n)));
                }
            }
            MsgOp::Lock { t, lock } => s.slots[t].held.push(lock),
            MsgOp::Unlock { t, pos } => {
                s.slots[t].held.remove(pos);
                if s.slots[t].held.is_empty() {
                    s.flush(t);
                }
            }
            MsgOp::Flush { t } => {
                if s.slots[t].held.is_empty() {
                    s.flush(t);
                }
            }
            MsgOp::ExitHolding { t } => {
                s.flush(t);
                let held = std::mem::take(&mut s.slots[t].held);
                s.dead_locks.extend(held);
                s.slots[t] = s.new_worker();
            }
        }
        s
    }
}

enum Cmd {
    Log(String),
    Lock(usize),
    Unlock(usize),
    Flush,
    Exit { leak: bool },
}

/// A persistent worker thread that runs one command at a time and answers with its
/// `held_depth()` (so the driver never runs concurrently with it).
struct Worker {
    cmds: chan::Sender<Cmd>,
    acks: chan::Receiver<usize>,
    handle: thread::JoinHandle<()>,
    id: u64,
}

type Log = MessageLog<Vec<Message>>;

impl Worker {
    fn spawn(log: Log, locks: Arc<Vec<ReentrantLock<()>>>) -> Worker {
        let (cmds, cmd_rx) = chan::unbounded::<Cmd>();
        let (ack_tx, acks) = chan::unbounded();
        let (id_tx, id_rx) = chan::bounded(1);
        let handle = thread::spawn(move || {
            id_tx.send(current_thread_id()).expect("driver alive");
            let mut guards = Vec::new();
            for cmd in cmd_rx {
                match cmd {
                    Cmd::Log(text) => log.log(text),
                    Cmd::Lock(i) => guards.push(locks[i].lock()),
                    Cmd::Unlock(pos) => drop(guards.remove(pos)),
                    Cmd::Flush => log.flush(),
                    Cmd::Exit { leak } => {
                        if leak {
                            std::mem::forget(guards);
                        } else {
                            while guards.pop().is_some() {}
                        }
                        return;
                    }
                }
                ack_tx.send(held_depth()).expect("driver alive");
            }
        });
        let id = id_rx
            .recv_timeout(HANG_LIMIT)
            .expect("worker did not start");
        Worker {
            cmds,
            acks,
            handle,
            id,
        }
    }

    fn run(&self, cmd: Cmd) -> usize {
        self.cmds.send(cmd).expect("worker died");
        self.acks
            .recv_timeout(HANG_LIMIT)
            .expect("worker died or hung")
    }

    /// Exits the worker (leaking its guards or not) and waits until its thread-local
    /// destructors have run.
    fn exit(self, leak: bool) {
        self.cmds.send(Cmd::Exit { leak }).expect("worker died");
        self.handle.join().expect("worker panicked");
    }
}

struct MsgSut {
    validator: Validator,
    log: Log,
    locks: Arc<Vec<ReentrantLock<()>>>,
    workers: Vec<Worker>,
    /// Thread id of each worker incarnation.
    thread_of_gen: Vec<u64>,
    /// The model after the last transition (for the teardown's final check).
    model: MsgModel,
}

impl MsgSut {
    fn spawn_worker(&mut self) -> Worker {
        let w = Worker::spawn(self.log.clone(), self.locks.clone());
        self.thread_of_gen.push(w.id);
        w
    }

    fn check(&self, model: &MsgModel) {
        let got = self.log.with_sink(|v| v.clone());
        let show = || {
            format!(
                "delivered {:#?}\nmodel {:#?}",
                got.iter()
                    .map(|m| (m.seq, m.thread, &m.text, m.staged))
                    .collect::<Vec<_>>(),
                model.delivered
            )
        };
        assert_eq!(got.len(), model.delivered.len(), "{}", show());
        let mut seq_of_call = Vec::new();
        for (m, want) in got.iter().zip(&model.delivered) {
            match want {
                Delivered::Msg {
                    call,
                    gen,
                    text,
                    staged,
                } => {
                    assert!(
                        m.text == *text
                            && m.staged == *staged
                            && m.thread == self.thread_of_gen[*gen],
                        "{}",
                        show()
                    );
                    seq_of_call.push((*call, m.seq));
                }
                Delivered::Dropped { gen, count } => {
                    assert!(
                        m.staged && m.thread == self.thread_of_gen[*gen],
                        "drop marker: {}",
                        show()
                    );
                    assert!(
                        m.text.contains("dropped") && m.text.contains(&count.to_string()),
                        "drop marker must say {count} dropped: {}",
                        show()
                    );
                }
            }
        }
        // Sequence numbers: unique, in `log` call order, and increasing per thread as delivered.
        seq_of_call.sort_unstable();
        assert!(
            seq_of_call.windows(2).all(|w| w[0].1 < w[1].1),
            "seq not in call order: {}",
            show()
        );
        let seqs: BTreeSet<u64> = got.iter().map(|m| m.seq).collect();
        assert_eq!(seqs.len(), got.len(), "duplicate seq: {}", show());
        for &tid in &self.thread_of_gen {
            let mine: Vec<u64> = got
                .iter()
                .filter(|m| m.thread == tid)
                .map(|m| m.seq)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "thread {tid} delivered out of order: {}",
                show()
            );
        }
        assert_eq!(self.log.overflowed(), model.overflowed, "overflow count");
    }
}

struct MsgTest;

impl StateMachineTest for MsgTest {
    type SystemUnderTest = MsgSut;
    type Reference = MsgModel;

    fn init_test(state: &MsgModel) -> MsgSut {
        let validator = Validator::new(Mode::Panic);
        let log = MessageLog::with_stage_capacity(
            Vec::new(),
            &validator.class("msg.sink", false),
            STAGE_CAPACITY,
        );
        let app = validator.class("app", true);
        let locks = Arc::new(
            (0..MSG_LOCKS)
                .map(|_| ReentrantLock::tracked((), &app))
                .collect(),
        );
        let mut sut = MsgSut {
            validator,
            log,
            locks,
            workers: Vec::new(),
            thread_of_gen: Vec::new(),
            model: state.clone(),
        };
        sut.workers = (0..WORKERS).map(|_| sut.spawn_worker()).collect();
        sut
    }

    fn apply(mut sut: MsgSut, after: &MsgModel, op: MsgOp) -> MsgSut {
        let depth = match op {
            MsgOp::LogOutside { t, n } | MsgOp::LogUnder { t, n } => {
                Some((t, sut.workers[t].run(Cmd::Log(text(t, n)))))
            }
            MsgOp::Lock { t, lock } => Some((t, sut.workers[t].run(Cmd::Lock(lock)))),
            MsgOp::Unlock { t, pos } => Some((t, sut.workers[t].run(Cmd::Unlock(pos)))),
            MsgOp::Flush { t } => Some((t, sut.workers[t].run(Cmd::Flush))),
            MsgOp::ExitHolding { t } => {
                let fresh = sut.spawn_worker();
                std::mem::replace(&mut sut.workers[t], fresh).exit(true);
                for &l in &after.dead_locks {
                    // Held by a dead thread: nobody else may mistake itself for the owner.
                    assert!(
                        sut.locks[l].try_lock().is_err(),
                        "lock {l}, leaked by an exited thread, was taken"
                    );
                }
                None
            }
        };
        if let Some((t, depth)) = depth {
            assert_eq!(depth, after.slots[t].held.len(), "worker {t}: held_depth");
        }
        sut.model = after.clone();
        sut
    }

    fn check_invariants(sut: &MsgSut, state: &MsgModel) {
        sut.check(state);
    }

    fn teardown(mut sut: MsgSut) {
        // Every worker releases its locks (the last release flushes its stage) and exits.
        let mut model = sut.model.clone();
        for t in 0..WORKERS {
            if !model.slots[t].held.is_empty() {
                model.slots[t].held.clear();
                model.flush(t);
            }
        }
        for w in std::mem::take(&mut sut.workers) {
            w.exit(false);
        }
        sut.check(&model);
        assert!(
            sut.validator.violations().is_empty(),
            "{:#?}",
            sut.validator.violations()
        );
    }
}

prop_state_machine! {
    #![proptest_config(config(128))]

    /// `MessageLog` with a `Vec<Message>` sink and a stage of 3, on two worker threads.
    #[test]
    fn message_log_matches_model(sequential 1..40 => MsgTest);
}

// ---------------------------------------------------------------------------------------------
// 4. Any `LogApi` under a sink callback and an application lock (seed 001): `check::model::log`
// ---------------------------------------------------------------------------------------------

/// The buffered log survives logging from a sink callback and under the ODB lock, with a
/// watchdog taking the ODB lock under the sink lock: no violation, every text delivered.
#[test]
fn buffered_log_survives_seed_001() {
    let report = check::model::log(reference_log, budget());
    eprint!("{report}");
    report.assert_passed();
}

// ---------------------------------------------------------------------------------------------
// 5. Negative controls: proptest must fail them
// ---------------------------------------------------------------------------------------------

/// Runs `f` on its own thread; a result not back within [`HANG_LIMIT`] is a hang.
fn within_limit<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = chan::bounded(1);
    let handle = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG_LIMIT) {
        Ok(r) => r,
        Err(chan::RecvTimeoutError::Timeout) => {
            panic!("{what}: no result within {HANG_LIMIT:?}: hang")
        }
        Err(chan::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sent nothing but returned"),
        },
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// How proptest caught a control.
#[derive(Debug)]
struct Caught {
    /// Cases run up to and including the first failing one.
    cases: usize,
    /// Every run of the property, shrinking included.
    runs: usize,
    /// The shrunk input.
    minimal: String,
    /// The failure message of the shrunk input.
    reason: String,
}

/// Runs `property` through proptest's `TestRunner` (seeded, so the count is reproducible)
/// and returns how it failed; panics if it passed.
fn run_control<S>(
    name: &str,
    seed: u8,
    strategy: S,
    property: impl Fn(S::Value),
) -> (Caught, S::Value)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        cases: 5_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let runs = Cell::new(0usize);
    let first = Cell::new(None::<usize>);
    let result = runner.run(&strategy, |v| {
        runs.set(runs.get() + 1);
        match catch_unwind(AssertUnwindSafe(|| property(v))) {
            Ok(()) => Ok(()),
            Err(p) => {
                first.set(first.get().or(Some(runs.get())));
                Err(TestCaseError::fail(panic_text(&*p)))
            }
        }
    });
    match result {
        Ok(()) => panic!(
            "{name}: proptest did NOT catch the control in {} cases",
            runs.get()
        ),
        Err(TestError::Abort(r)) => panic!("{name}: proptest aborted: {r}"),
        Err(TestError::Fail(reason, minimal)) => {
            let caught = Caught {
                cases: first.get().expect("failed"),
                runs: runs.get(),
                minimal: format!("{minimal:?}"),
                reason: reason.message().to_string(),
            };
            (caught, minimal)
        }
    }
}

/// Runs a library check on a control with [`SEEDS`] seeds (5 000 cases each): row `row` must
/// fail in every seed, and `check` must accept its message. Prints the cases to the first
/// failure and the first seed's minimal sequence.
fn check_control(
    name: &'static str,
    row: &'static str,
    run: fn(Budget) -> Report,
    check: fn(&str),
) {
    within_limit(name, move || {
        let mut cases = Vec::new();
        let mut first = String::new();
        for seed in 1..=SEEDS {
            let report = run(Budget::default().iterations(5_000).seed(u64::from(seed)));
            match self::row(&report, row) {
                Outcome::Failed {
                    executions,
                    message,
                    ..
                } => {
                    check(message);
                    cases.push(*executions);
                    if first.is_empty() {
                        first = message.clone();
                    }
                }
                other => panic!("{name}: row {row:?} did not fail: {other:?}\n{report}"),
            }
        }
        eprintln!(
            "check::model: {name:<22} caught in every seed; cases to first failure {cases:?}; {first}"
        );
    })
}

/// Seeds per control (each an independent proptest run).
const SEEDS: u8 = 5;

fn report(name: &str, catches: &[Caught]) {
    let cases: Vec<usize> = catches.iter().map(|c| c.cases).collect();
    let runs: Vec<usize> = catches.iter().map(|c| c.runs).collect();
    eprintln!(
        "proptest: {name:<22} caught in every seed; cases to first failure {cases:?}, runs incl. shrinking {runs:?}; minimal {}; {}",
        catches[0].minimal,
        catches[0].reason.lines().next().unwrap_or("")
    );
}

const BUCKETS: usize = 16;

/// Exchanges random bucket pairs of a 16-bucket table whose locks are one non-reentrant class
/// of a panicking validator; the table must stay the model permutation.
fn exch_property(exch: fn(&[Mutex<u64>], usize, usize), pairs: Vec<(usize, usize)>) {
    let v = Validator::new(Mode::Panic);
    let class = v.class("bucket", false);
    let table: Vec<Mutex<u64>> = (0..BUCKETS as u64)
        .map(|i| Mutex::tracked(i, &class))
        .collect();
    let mut model: Vec<u64> = (0..BUCKETS as u64).collect();
    for (a, b) in pairs {
        exch(&table, a, b);
        model.swap(a, b);
    }
    let values: Vec<u64> = table.iter().map(|m| m.lock().with(|v| *v)).collect();
    assert_eq!(values, model);
}

fn exch_pairs() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0..BUCKETS, 0..BUCKETS), 1..=4)
}

/// Control `exch-same-bucket` (seed 004): `exch` as written locks bucket `a` then `b`; proptest
/// finds `a == b`, where the validator sees the recursive acquisition before it self-deadlocks.
#[test]
fn control_exch_same_bucket_is_caught() {
    let catches = within_limit("exch-same-bucket", || {
        (1..=SEEDS)
            .map(|seed| {
                let (caught, minimal) =
                    run_control("exch-same-bucket", seed, exch_pairs(), |pairs| {
                        exch_property(exch_naive, pairs)
                    });
                assert_eq!(minimal.len(), 1, "not shrunk to one exchange: {caught:?}");
                assert_eq!(
                    minimal[0].0, minimal[0].1,
                    "the failing pair must be one bucket twice: {caught:?}"
                );
                assert!(
                    caught.reason.contains("recursive acquisition"),
                    "{caught:?}"
                );
                caught
            })
            .collect::<Vec<_>>()
    });
    report("exch-same-bucket", &catches);
}

/// The fix (`lock_many`: sorted, deduplicated) passes the same property.
#[test]
fn exch_ordered_passes_the_exch_property() {
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&exch_pairs(), |pairs| {
            exch_property(exch_ordered, pairs);
            Ok(())
        })
        .unwrap();
}

/// Control `logger-self-deadlock` (seed 001): the unbuffered log re-takes its own sink lock
/// when a sink callback logs.
#[test]
fn control_logger_self_deadlock_is_caught() {
    check_control(
        "logger-self-deadlock",
        "model: log sink callback",
        |b| check::model::log(UnbufferedLog::<Sink>::new, b),
        |m| {
            assert!(m.contains("recursive acquisition"), "{m}");
            assert!(m.ends_with("(1 ops): [LogUnderSinkLock]"), "{m}");
        },
    );
}

/// Control `abba-odb-sysmsg` (seed 001): logging under the ODB lock takes SYSMSG after ODB;
/// the watchdog takes ODB under SYSMSG. The validator reports the inversion as soon as both
/// orders have been seen, sequentially, without any deadlock happening.
#[test]
fn control_abba_odb_sysmsg_is_caught() {
    check_control(
        "abba-odb-sysmsg",
        "model: log odb/sysmsg",
        |b| check::model::log(UnbufferedLog::<Sink>::new, b),
        |m| {
            assert!(m.contains("lock-order inversion"), "{m}");
            assert!(m.contains("(2 ops)"), "{m}");
        },
    );
}

/// Control `midas-nested-lock` (seed 001): the nesting count is per process, so a helper
/// thread probing while the test thread holds the lock walks in. The catalogue lists this as a
/// proptest blind spot ("one thread cannot violate mutual exclusion"); a probe thread spawned
/// and joined between steps is enough — no concurrency needed.
#[test]
fn control_midas_nested_lock_is_caught() {
    check_control(
        "midas-nested-lock",
        "model: lock",
        |b| check::model::lock(|_: &LockClass| MidasNestedLock::default(), b),
        |m| {
            assert!(m.contains("from another thread"), "{m}");
            assert!(m.contains("(2 ops)"), "{m}");
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Bugs found in `primitives` (failing until fixed)
// ---------------------------------------------------------------------------------------------

/// Establishes the order A → B on a helper thread, then runs `f` on another helper thread that
/// holds B (so any order check of A from there sees B → A).
fn with_b_held_after_a_then_b(
    mode: Mode,
    f: impl Fn(&ReentrantLock<u64>) + Sync,
) -> (Validator, ReentrantLock<u64>, bool) {
    let v = Validator::new(mode);
    let a = ReentrantLock::tracked(0u64, &v.class("A", true));
    let b = ReentrantLock::tracked(0u64, &v.class("B", true));
    let panicked = thread::scope(|s| {
        s.spawn(|| {
            let _a = a.lock();
            let _b = b.lock();
        })
        .join()
        .expect("A then B");
        s.spawn(|| {
            let _b = b.lock();
            f(&a);
        })
        .join()
        .is_err()
    });
    (v, a, panicked)
}

/// Regression (found by this file): `ReentrantLock::try_lock` used to take `raw` and become
/// the owner *before* the order check, which could panic (`Mode::Panic`) with no guard created,
/// leaving the lock held forever by a thread that then exited. A try never waits, so it is no
/// longer checked: no panic, and the lock is free afterwards.
#[test]
fn reentrant_try_lock_under_panic_validator_does_not_leak_the_lock() {
    let (_v, a, panicked) = with_b_held_after_a_then_b(Mode::Panic, |a| drop(a.try_lock()));
    assert!(
        !panicked,
        "try_lock cannot deadlock, so the validator must not reject it"
    );
    let free = thread::scope(|s| s.spawn(|| a.try_lock().is_ok()).join().expect("probe"));
    assert!(free, "lock A stays held forever after try_lock panicked in the validator on a thread that has since exited");
}

/// Regression (same fix): a `try_lock` — which never waits and cannot deadlock — is not an
/// ordering violation, for `ReentrantLock` as for `Mutex` (and as for Linux lockdep's trylock).
#[test]
fn reentrant_try_lock_is_not_reported_as_an_inversion() {
    let (v, _a, _) = with_b_held_after_a_then_b(Mode::Report, |a| {
        a.try_lock().expect("A is free");
    });
    let mutex = {
        let v = Validator::new(Mode::Report);
        let a = Mutex::tracked(0u64, &v.class("A", false));
        let b = Mutex::tracked(0u64, &v.class("B", false));
        drop((a.lock(), b.lock()));
        let _b = b.lock();
        let _a = a.try_lock().expect("A is free");
        v.violations()
    };
    assert!(
        mutex.is_empty(),
        "Mutex::try_lock is not an ordering violation: {mutex:?}"
    );
    let reported: Vec<_> = v.violations().into_iter().map(|x| x.cycle).collect();
    assert!(reported.is_empty(), "ReentrantLock::try_lock (which cannot deadlock) was reported as an inversion: {reported:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. `check::model` and `check::fuzz` on deliberately broken types
// ---------------------------------------------------------------------------------------------

/// The defects of [`BrokenMVar`].
const KEEPS_ON_TRY_TAKE: u8 = 0;
const ZERO_TIMEOUT_GIVES_UP: u8 = 1;
const SWAP_RETURNS_NEW: u8 = 2;

/// The reference `MVar` with one defect:
/// * [`KEEPS_ON_TRY_TAKE`]: `try_take` hands the value out but leaves it in the box;
/// * [`ZERO_TIMEOUT_GIVES_UP`]: `take_timeout(0)` returns `None` without looking, even when
///   the box is full (the contract: a zero timeout behaves like `try_take`);
/// * [`SWAP_RETURNS_NEW`]: declares read/swap, and `swap` returns the new value, not the old.
struct BrokenMVar<const DEFECT: u8>(MVar<u64>);

impl<const DEFECT: u8> BrokenMVar<DEFECT> {
    fn new() -> Self {
        BrokenMVar(MVar::new_empty())
    }
}

impl<const DEFECT: u8> MVarApi<u64> for BrokenMVar<DEFECT> {
    fn put(&self, value: u64) {
        self.0.put(value)
    }
    fn take(&self) -> u64 {
        self.0.take()
    }
    fn try_put(&self, value: u64) -> Result<(), u64> {
        MVarApi::try_put(&self.0, value)
    }
    fn try_take(&self) -> Option<u64> {
        if DEFECT == KEEPS_ON_TRY_TAKE {
            self.0.try_read().ok()
        } else {
            MVarApi::try_take(&self.0)
        }
    }
    fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
        MVarApi::put_timeout(&self.0, value, timeout)
    }
    fn take_timeout(&self, timeout: Duration) -> Option<u64> {
        if DEFECT == ZERO_TIMEOUT_GIVES_UP && timeout.is_zero() {
            return None;
        }
        MVarApi::take_timeout(&self.0, timeout)
    }
    fn capabilities(&self) -> primitives::traits::MVarCaps {
        if DEFECT == SWAP_RETURNS_NEW {
            primitives::traits::MVarCaps::ALL
        } else {
            primitives::traits::MVarCaps::CORE
        }
    }
    fn read(&self) -> u64 {
        self.0.read()
    }
    fn try_read(&self) -> Option<u64> {
        self.0.try_read().ok()
    }
    fn swap(&self, value: u64) -> u64 {
        self.0.swap(value);
        value
    }
}

/// A reentrant lock whose `try_lock` "succeeds" while another thread holds it (it hands out a
/// guard that holds nothing).
struct FakeTryLock(ReentrantLock<()>);

impl LockApi for FakeTryLock {
    type Guard<'a> = Option<primitives::lock::ReentrantLockGuard<'a, ()>>;
    fn lock(&self) -> Self::Guard<'_> {
        Some(self.0.lock())
    }
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        self.0.lock_timeout(timeout).ok().map(Some)
    }
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        Some(self.0.try_lock().ok())
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}

/// The buffered log, except that it silently drops whatever is logged while the caller holds a
/// tracked lock (instead of staging it).
struct DropsUnderLock(MessageLog<Sink>);

impl LogApi for DropsUnderLock {
    fn log(&self, text: String) {
        if held_depth() == 0 {
            self.0.log(text)
        }
    }
    fn flush(&self) {
        self.0.flush()
    }
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        self.0.under_sink_lock(f)
    }
}

/// `row` of `report` failed; returns its message (printed with the cases it took).
fn failed(name: &str, report: &Report, scenario: &str) -> String {
    match row(report, scenario) {
        Outcome::Failed {
            executions,
            message,
            replay,
        } => {
            eprintln!(
                "check::model: {name:<26} caught after {executions} cases ({replay:?}): {message}"
            );
            message.clone()
        }
        other => panic!("{name}: {scenario:?} not failed: {other:?}\n{report}"),
    }
}

#[test]
fn check_model_catches_a_try_take_that_keeps_the_value() {
    let report = check::model::mvar(BrokenMVar::<KEEPS_ON_TRY_TAKE>::new, budget());
    let m = failed("try_take keeps the value", &report, "model: mvar core ops");
    // Shrunk to a put and the try_take; the box is then seen still full.
    assert!(m.contains("minimal sequence (2 ops)"), "{m}");
    assert!(m.contains("TryTake]"), "{m}");
}

#[test]
fn check_model_catches_a_zero_timeout_take_that_gives_up_on_a_full_box() {
    let report = check::model::mvar(BrokenMVar::<ZERO_TIMEOUT_GIVES_UP>::new, budget());
    let m = failed("take_timeout(0) gives up", &report, "model: mvar core ops");
    assert!(m.contains("minimal sequence (2 ops)"), "{m}");
    assert!(m.contains("TakeTimeout(0ns)]"), "{m}");
}

#[test]
fn check_model_catches_a_swap_returning_the_new_value_in_the_read_swap_row_only() {
    let report = check::model::mvar(BrokenMVar::<SWAP_RETURNS_NEW>::new, budget());
    assert!(
        matches!(row(&report, "model: mvar core ops"), Outcome::Passed { .. }),
        "{report}"
    );
    let m = failed(
        "swap returns the new value",
        &report,
        "model: mvar read/swap",
    );
    assert!(m.contains("minimal sequence (2 ops)"), "{m}");
    assert!(m.contains("Swap("), "{m}");
}

#[test]
fn check_model_catches_a_try_lock_that_succeeds_while_another_thread_holds_the_lock() {
    let report = check::model::lock(
        |c: &LockClass| FakeTryLock(ReentrantLock::tracked((), c)),
        budget(),
    );
    let m = failed("try_lock ignores the holder", &report, "model: lock");
    assert!(m.contains("from another thread"), "{m}");
    assert!(m.contains("minimal sequence (2 ops)"), "{m}");
}

#[test]
fn check_model_catches_a_log_that_drops_messages_under_a_lock() {
    let report = check::model::log(
        |s: Sink, c: &LockClass| DropsUnderLock(MessageLog::with_class(s, c)),
        budget(),
    );
    eprint!("{report}");
    for scenario in [
        "model: log sink callback",
        "model: log odb/sysmsg",
        "model: log all ops",
    ] {
        let m = failed("log drops under a lock", &report, scenario);
        assert!(m.contains("vanished"), "{m}");
        assert!(m.contains("minimal sequence (1 ops)"), "{m}");
    }
}

/// Pseudo-random fuzz inputs (SplitMix64 bytes, 0–95 bytes long), reproducible.
fn fuzz_inputs(n: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut x = 0x5eed_u64;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n).map(move |_| {
        let len = (next() % 96) as usize;
        (0..len).map(|_| next() as u8).collect()
    })
}

/// Inputs each passing target gets.
const FUZZ_INPUTS: usize = 300;

#[test]
fn check_fuzz_passes_the_reference_types() {
    for data in fuzz_inputs(FUZZ_INPUTS) {
        check::fuzz::mvar(MVar::<u64>::new_empty, &data);
        check::fuzz::mvar(ChannelMVar::new, &data);
        check::fuzz::lock(|c: &LockClass| ReentrantLock::tracked((), c), &data);
        check::fuzz::lock(|c: &LockClass| Mutex::tracked((), c), &data);
        check::fuzz::log(reference_log, &data);
    }
}

/// How many pseudo-random inputs `target` takes to panic (a finding), with the panic text.
fn fuzz_catch(name: &str, target: impl Fn(&[u8])) -> String {
    for (k, data) in fuzz_inputs(2_000).enumerate() {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
            let text = panic_text(&*p);
            eprintln!(
                "check::fuzz: {name:<26} caught at input {}: {}",
                k + 1,
                text.lines().next().unwrap_or("")
            );
            assert!(text.contains("differs from the sequential model"), "{text}");
            return text;
        }
    }
    panic!("check::fuzz did not catch {name} in 2000 inputs");
}

#[test]
fn check_fuzz_catches_the_broken_types() {
    fuzz_catch("try_take keeps the value", |d| {
        check::fuzz::mvar(BrokenMVar::<KEEPS_ON_TRY_TAKE>::new, d)
    });
    fuzz_catch("take_timeout(0) gives up", |d| {
        check::fuzz::mvar(BrokenMVar::<ZERO_TIMEOUT_GIVES_UP>::new, d)
    });
    fuzz_catch("swap returns the new value", |d| {
        check::fuzz::mvar(BrokenMVar::<SWAP_RETURNS_NEW>::new, d)
    });
    fuzz_catch("try_lock ignores the holder", |d| {
        check::fuzz::lock(
            |c: &LockClass| FakeTryLock(ReentrantLock::tracked((), c)),
            d,
        )
    });
    fuzz_catch("midas-nested-lock", |d| {
        check::fuzz::lock(|_: &LockClass| MidasNestedLock::default(), d)
    });
    fuzz_catch("log drops under a lock", |d| {
        check::fuzz::log(
            |s: Sink, c: &LockClass| DropsUnderLock(MessageLog::with_class(s, c)),
            d,
        )
    });
    let t = fuzz_catch("logger-self-deadlock", |d| {
        check::fuzz::log(UnbufferedLog::<Sink>::new, d)
    });
    assert!(
        t.contains("panicked") || t.contains("recursive") || t.contains("inversion"),
        "{t}"
    );
}

/// A blocking operation the model says cannot block, that blocks, is unblocked by the executor
/// (here: a `put` on a box a lying `try_take` left full) and reported as a mismatch, not a hang.
#[test]
fn a_put_that_blocks_on_a_box_the_model_says_is_empty_is_reported_not_hung() {
    let r = check::model::mvar_sequence(
        &BrokenMVar::<KEEPS_ON_TRY_TAKE>::new(),
        &[MVarOp::TryPut(1), MVarOp::TryTake, MVarOp::Put(2)],
        false,
        &|_| {},
    );
    let m = r.expect_err("the put blocks");
    assert_eq!(m.at, Some(2), "{m}");
    assert!(m.message.contains("blocked"), "{m}");
    // The lying try_take does not free it; the timed take does.
    assert!(m.message.contains("a take_timeout got Some(1)"), "{m}");
}

/// A non-reentrant mutex that declares itself reentrant: nesting deadlocks the worker, which
/// the runner reports as a hang naming the operation (the worker thread stays blocked).
struct ClaimsReentrant(Mutex<()>);

impl LockApi for ClaimsReentrant {
    type Guard<'a> = <Mutex<()> as LockApi>::Guard<'a>;
    fn lock(&self) -> Self::Guard<'_> {
        LockApi::lock(&self.0)
    }
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        LockApi::lock_timeout(&self.0, timeout)
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}

#[test]
fn a_lock_that_deadlocks_where_the_model_says_it_cannot_is_reported_as_a_hang() {
    let report = check::model::lock(
        |_: &LockClass| ClaimsReentrant(Mutex::new(())),
        budget().time(Duration::from_millis(500)),
    );
    eprint!("{report}");
    match row(&report, "model: lock") {
        Outcome::Hang { report: r, .. } => assert!(r.contains("still running"), "{r}"),
        other => panic!("not a hang: {other:?}"),
    }
}
