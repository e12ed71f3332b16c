//! The catalogue: every scenario instantiated with the reference primitives, and every
//! negative control instantiated with its broken variant — selectable by name, so that loom,
//! shuttle, the torture binary and the detection matrix all run exactly the same code.

use super::*;
// The makers and the recording sink live in the parent module; re-exported for callers that
// name them through the catalogue.
use super::{mvar_deadlines, mvar_fifo, mvar_read, mvar_swap};
pub use super::{Delivered, MakeLock, MakeLog, MakeMVar};
use crate::controls::{
    exch_naive, registry, MidasNestedLock, TakersOnly, UnbufferedLog, WaitOnce, WakeBeforeGrant,
};
// MVar, lock and log mutants.
use crate::controls::{LifoWaiters, ReadTakePut, SwapTakePut, TimedOutPutStores};
use crate::controls::{LogDefect, MutantLog, NarrowCountLock, RecycledOwnerLock, TryWaitsLock};
use crate::lock::{LockClass, ReentrantLock, Validator};
use crate::msg::MessageLog;
use crate::mvar::{MVar, Policy, Reference};

/// A runnable scenario.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Name used on command lines.
    pub name: &'static str,
    /// What it checks.
    pub about: &'static str,
    /// Runs it once (spawning the engine's threads); panics on a broken invariant.
    pub run: fn(&Params),
}

/// A negative control: a scenario run against a variant with one seeded defect.
#[derive(Clone, Copy, Debug)]
pub struct Control {
    /// Name used on command lines.
    pub name: &'static str,
    /// The seed story it comes from (`seeds/000_…` etc.).
    pub seed: &'static str,
    /// The defect.
    pub defect: &'static str,
    /// Engines that cannot catch it, and why (documented, never hidden).
    pub blind_spots: &'static [(&'static str, &'static str)],
    /// Runs it once; a correct engine sees a panic or a hang.
    pub run: fn(&Params),
}

/// The reference scenarios.
pub const SCENARIOS: &[Entry] = &[
    Entry {
        name: "mvar-handoff",
        about: "producer/consumer hand-off through an MVar, in order",
        run: |p| reference_mvar_scenario("mvar-handoff", p),
    },
    Entry {
        name: "mvar-timeouts",
        about: "timed and try operations racing blocking ones; nothing lost",
        run: |p| reference_mvar_scenario("mvar-timeouts", p),
    },
    Entry {
        name: "mvar-ping-pong",
        about: "two MVars, request/reply",
        run: |p| reference_mvar_scenario("mvar-ping-pong", p),
    },
    Entry {
        name: "mvar-master-slaves",
        about: "seed 000: master puts, slaves take+put then take",
        run: |p| reference_mvar_scenario("mvar-master-slaves", p),
    },
    // The promised MVar properties, each recorded and judged by the oracle.
    Entry {
        name: "mvar-read-races",
        about: ABOUT_READ_RACES,
        run: |p| reference_mvar_scenario("mvar-read-races", p),
    },
    Entry {
        name: "mvar-swap-races",
        about: ABOUT_SWAP_RACES,
        run: |p| reference_mvar_scenario("mvar-swap-races", p),
    },
    Entry {
        name: "mvar-deadlines",
        about: ABOUT_DEADLINES,
        run: |p| reference_mvar_scenario("mvar-deadlines", p),
    },
    Entry {
        name: "mvar-fifo",
        about: ABOUT_FIFO,
        run: |p| reference_mvar_scenario("mvar-fifo", p),
    },
    Entry {
        name: "nested-locking",
        about: "reentrant lock, nested, mutual exclusion, validator on",
        run: |p| reference_lock_scenario("nested-locking", p),
    },
    Entry {
        name: "logging-under-locks",
        about: "buffered log under and outside locks: once, in order",
        run: |p| reference_lock_scenario("logging-under-locks", p),
    },
    Entry {
        name: "log-inside-sink-lock",
        about: "seed 001: log from code holding the sink lock",
        run: |p| reference_log_scenario("log-inside-sink-lock", p),
    },
    Entry {
        name: "odb-sysmsg",
        about: "seed 001: ODB and SYSMSG locks in one global order",
        run: |p| reference_lock_scenario("odb-sysmsg", p),
    },
    // Lock and log contract scenarios.
    Entry {
        name: "lock-owner-after-exit",
        about: "an owner exits with the lock held: no later thread is taken for it",
        run: |p| reference_lock_scenario("lock-owner-after-exit", p),
    },
    Entry {
        name: "lock-try-never-waits",
        about: "try_lock returns None at once while another thread holds the lock",
        run: |p| reference_lock_scenario("lock-try-never-waits", p),
    },
    Entry {
        name: "lock-nesting-overflow",
        about: "nesting beyond the declared max_nesting is refused, never wrapped",
        run: run_nesting_overflow_reference,
    },
    Entry {
        name: "log-exit-without-flush",
        about: "no flush: a thread's messages are delivered by its exit, staged or not",
        run: |p| reference_log_scenario("log-exit-without-flush", p),
    },
    Entry {
        name: "log-drop-without-flush",
        about: "no flush: messages staged when the last log handle drops are delivered",
        run: |p| reference_log_scenario("log-drop-without-flush", p),
    },
    Entry {
        name: "log-overflow-announced",
        about: "a stage overflow is counted and announced: delivered + announced = logged",
        run: |p| reference_log_scenario("log-overflow-announced", p),
    },
    Entry {
        name: "log-delivered-at-outermost-release",
        about: "messages logged under nested locks are delivered at the outermost release",
        run: |p| reference_log_scenario("log-delivered-at-outermost-release", p),
    },
    Entry {
        name: "exch",
        about: "seed 004: exch over buckets with the ordered multi-lock",
        run: |p| run_exch(p, exch_ordered, &EXCH_MIXED),
    },
];

/// The negative controls (each one's story and defect come from the one registry,
/// [`registry`]; a name missing there fails the build).
pub const CONTROLS: &[Control] = &[
    registered(
        "mvar-wake-before-grant",
        &[("proptest", "sequential: no second thread to lose a wake-up")],
        |p| {
            run_master_slaves(p, &reference_mvar::<WakeBeforeGrant>);
        },
    ),
    registered(
        "mvar-if-not-while",
        &[
            ("proptest", "sequential: never sleeps"),
            ("torture", "without --chaos: real futex waits on a private per-waiter word are almost never woken spuriously"),
        ],
        |p| {
            run_master_slaves(p, &reference_mvar::<WaitOnce>);
        },
    ),
    registered(
        "mvar-one-waiter-class",
        &[("proptest", "sequential: a blocked put would block the test itself; try_put is unaffected")],
        |p| {
            run_master_slaves(p, &reference_mvar::<TakersOnly>);
        },
    ),
    // Mutants of the promised MVar properties, each against the scenario that checks it.
    registered("mvar-read-take-put", &[], |p| {
        mvar_read::run(p, &ReadTakePut::default);
    }),
    registered("mvar-swap-take-put", &[], |p| {
        mvar_swap::run(p, &SwapTakePut::default);
    }),
    registered("mvar-timeout-takes-effect", &[], |p| {
        mvar_deadlines::run(p, &TimedOutPutStores::default);
    }),
    registered(
        "mvar-lifo-waiters",
        &[
            ("loom", "arrival order is not observable under an exhaustive scheduler: mvar-fifo is skipped there"),
        ],
        |p| {
            mvar_fifo::run(p, &reference_mvar::<LifoWaiters>);
        },
    ),
    registered(
        "midas-nested-lock",
        &[],
        |p| {
            run_nested(p, &|_: &LockClass| MidasNestedLock::default());
        },
    ),
    registered(
        "abba-odb-sysmsg",
        &[],
        |p| {
            run_odb_sysmsg(p, true, &reference_lock);
        },
    ),
    registered(
        "logger-self-deadlock",
        &[],
        |p| {
            run_log_inside_sink(p, &|sink: Delivered, class: &LockClass| {
                UnbufferedLog::new(sink, class)
            });
        },
    ),
    registered(
        "exch-same-bucket",
        &[],
        |p| run_exch(p, exch_naive, &EXCH_SAME),
    ),
    registered(
        "exch-unordered",
        &[
            ("lockdep", "both buckets are one lock class; instance order within a class is not checked (as in Linux lockdep)"),
            ("proptest", "sequential: needs two concurrent exch calls"),
        ],
        |p| run_exch(p, exch_naive, &EXCH_CROSSED),
    ),
    // Lock and log mutants (controls/lock_mutants.rs, controls/log_mutants.rs).
    registered(
        "lock-reused-owner-id",
        &[("proptest", "not wired into tests/model.rs")],
        |p| {
            lock_owner_after_exit::run(p, &RecycledOwnerLock::new);
        },
    ),
    registered(
        "lock-try-waits",
        &[("proptest", "not wired into tests/model.rs")],
        |p| {
            lock_try_never_waits::run(p, &TryWaitsLock::new);
        },
    ),
    registered(
        "lock-nesting-wraps",
        &[("proptest", "not wired into tests/model.rs")],
        |p| {
            let checked = lock_nesting_overflow::run(p, &NarrowCountLock::wrapping);
            assert_eq!(checked, Checked::Yes, "lock-nesting-wraps: the scenario did not run");
        },
    ),
    registered(
        "log-lost-at-exit",
        &[
            ("loom", "join returns before the joined thread's thread-local destructors run"),
            ("proptest", "not wired into tests/model.rs"),
        ],
        |p| {
            log_exit_without_flush::run(p, &mutant_log(LogDefect::LostAtExit));
        },
    ),
    registered(
        "log-lost-at-drop",
        &[("proptest", "not wired into tests/model.rs")],
        |p| {
            log_drop_without_flush::run(p, &mutant_log(LogDefect::LostAtDrop));
        },
    ),
    registered(
        "log-overflow-silent",
        &[("proptest", "not wired into tests/model.rs")],
        |p| {
            log_overflow_announced::run(p, &mutant_log(LogDefect::OverflowSilent));
        },
    ),
];

/// A catalogue control named `name` in the registry of controls, with this engine-by-engine list
/// of blind spots and its runner.
const fn registered(
    name: &'static str,
    blind_spots: &'static [(&'static str, &'static str)],
    run: fn(&Params),
) -> Control {
    let r = registry::entry(name);
    Control {
        name: r.name,
        seed: r.story,
        defect: r.defect,
        blind_spots,
        run,
    }
}

/// Looks a scenario up by name.
pub fn scenario(name: &str) -> Option<&'static Entry> {
    SCENARIOS.iter().find(|e| e.name == name)
}

/// Looks a control up by name.
pub fn control(name: &str) -> Option<&'static Control> {
    CONTROLS.iter().find(|c| c.name == name)
}

const EXCH_MIXED: [(usize, usize); 3] = [(0, 1), (1, 0), (2, 2)];
const EXCH_SAME: [(usize, usize); 1] = [(1, 1)];
const EXCH_CROSSED: [(usize, usize); 2] = [(0, 1), (1, 0)];

const ABOUT_READ_RACES: &str =
    "read/swap: blocking reads never empty the box (try_put, try_read, take+put racing); oracle";
const ABOUT_SWAP_RACES: &str =
    "read/swap: swaps are atomic, each value leaves once (try ops, take+put racing); oracle";
const ABOUT_DEADLINES: &str =
    "timeouts 0/tiny/longer racing blocking ops: a timeout has no effect; oracle";
const ABOUT_FIFO: &str =
    "fifo: blocked takers, then blocked putters, served in arrival order; oracle";

/// Every MVar scenario, for any MVar of `u64` (one line per scenario; scenarios check the
/// capabilities they need and return [`Checked::Skipped`] when one is not declared).
pub fn mvar_scenarios<M: MVarApi<u64> + 'static>() -> Vec<Scenario<MakeMVar<M>>> {
    vec![
        Scenario {
            name: "mvar-handoff",
            about: "producer/consumer hand-off through an MVar, in order",
            run: run_handoff,
        },
        Scenario {
            name: "mvar-timeouts",
            about: "timed and try operations racing blocking ones; nothing lost",
            run: run_timeouts,
        },
        Scenario {
            name: "mvar-ping-pong",
            about: "two MVars, request/reply",
            run: run_ping_pong,
        },
        Scenario {
            name: "mvar-master-slaves",
            about: "seed 000: master puts, slaves take+put then take",
            run: run_master_slaves,
        },
        Scenario {
            name: mvar_read::NAME,
            about: ABOUT_READ_RACES,
            run: mvar_read::run,
        },
        Scenario {
            name: mvar_swap::NAME,
            about: ABOUT_SWAP_RACES,
            run: mvar_swap::run,
        },
        Scenario {
            name: mvar_deadlines::NAME,
            about: ABOUT_DEADLINES,
            run: mvar_deadlines::run,
        },
        Scenario {
            name: mvar_fifo::NAME,
            about: ABOUT_FIFO,
            run: mvar_fifo::run,
        },
    ]
}

/// Every lock scenario, for any lock.
pub fn lock_scenarios<L: LockApi + 'static>() -> Vec<Scenario<MakeLock<L>>> {
    vec![
        Scenario {
            name: "nested-locking",
            about: "reentrant lock, nested, mutual exclusion, validator on",
            run: run_nested,
        },
        Scenario {
            name: "logging-under-locks",
            about: "buffered log under and outside locks: once, in order",
            run: run_logging,
        },
        Scenario {
            name: "odb-sysmsg",
            about: "seed 001: ODB and SYSMSG locks in one global order",
            run: |p, make| run_odb_sysmsg(p, false, make),
        },
        // Lock contract scenarios (one file each under scenarios/).
        Scenario {
            name: "lock-owner-after-exit",
            about: "an owner exits with the lock held: no later thread is taken for it",
            run: lock_owner_after_exit::run,
        },
        Scenario {
            name: "lock-try-never-waits",
            about: "try_lock returns None at once while another thread holds the lock",
            run: lock_try_never_waits::run,
        },
        Scenario {
            name: "lock-nesting-overflow",
            about: "nesting beyond the declared max_nesting is refused, never wrapped",
            run: lock_nesting_overflow::run,
        },
    ]
}

/// Every log scenario, for any log.
pub fn log_scenarios<G: LogApi + 'static>() -> Vec<Scenario<MakeLog<G>>> {
    vec![
        Scenario {
            name: "log-inside-sink-lock",
            about: "seed 001: log from code holding the sink lock",
            run: run_log_inside_sink,
        },
        // Log delivery-contract scenarios (one file each under scenarios/).
        Scenario {
            name: "log-exit-without-flush",
            about: "no flush: a thread's messages are delivered by its exit, staged or not",
            run: log_exit_without_flush::run,
        },
        Scenario {
            name: "log-drop-without-flush",
            about: "no flush: messages staged when the last log handle drops are delivered",
            run: log_drop_without_flush::run,
        },
        Scenario {
            name: "log-overflow-announced",
            about: "a stage overflow is counted and announced: delivered + announced = logged",
            run: log_overflow_announced::run,
        },
        Scenario {
            name: "log-delivered-at-outermost-release",
            about: "messages logged under nested locks are delivered at the outermost release",
            run: log_delivered_at_release::run,
        },
    ]
}

/// Runs the scenario `name` of `list` on primitives made by `make`; `None` if `list` has no
/// scenario of that name.
pub fn run_named<F: ?Sized + 'static>(
    list: &[Scenario<F>],
    name: &str,
    p: &Params,
    make: &F,
) -> Option<Checked> {
    list.iter()
        .find(|s| s.name == name)
        .map(|s| (s.run)(p, make))
}

/// Runs the MVar scenario `name` on MVars of `u64` values made by `make` (each call: a new,
/// empty one). `false` if `name` is not an MVar scenario. This is how the catalogue runs on any
/// home of an MVar — the robust one in shared memory too (`tests/robust_catalogue.rs`).
pub fn run_on_mvar<M: MVarApi<u64> + 'static>(name: &str, p: &Params, make: &MakeMVar<M>) -> bool {
    run_named(&mvar_scenarios::<M>(), name, p, make).is_some()
}

/// Runs the lock scenario `name` on locks made by `make`. `false` if `name` is not a lock
/// scenario.
pub fn run_on_lock<L: LockApi + 'static>(name: &str, p: &Params, make: &MakeLock<L>) -> bool {
    run_named(&lock_scenarios::<L>(), name, p, make).is_some()
}

fn reference_mvar<P: Policy>() -> MVar<u64, P> {
    MVar::with_policy_empty()
}

fn reference_lock(class: &LockClass) -> ReentrantLock<()> {
    ReentrantLock::tracked((), class)
}

/// The reference log: the buffered [`MessageLog`].
pub fn reference_log(sink: Delivered, class: &LockClass) -> MessageLog<Delivered> {
    MessageLog::with_class(sink, class)
}

fn reference_mvar_scenario(name: &str, p: &Params) {
    let make = reference_mvar::<Reference>;
    run_named(&mvar_scenarios::<MVar<u64>>(), name, p, &make).expect("listed");
}

fn reference_lock_scenario(name: &str, p: &Params) {
    run_named(
        &lock_scenarios::<ReentrantLock<()>>(),
        name,
        p,
        &reference_lock,
    )
    .expect("listed");
}

fn reference_log_scenario(name: &str, p: &Params) {
    run_named(
        &log_scenarios::<MessageLog<Delivered>>(),
        name,
        p,
        &reference_log,
    )
    .expect("listed");
}

fn run_handoff<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    mvar_handoff(Arc::new(make()), p.rounds as u64 + 1);
    Checked::Yes
}

fn run_timeouts<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    mvar_timeouts(Arc::new(make()), (p.rounds as u64 + 1).min(3));
    Checked::Yes
}

fn run_ping_pong<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    mvar_ping_pong(Arc::new(make()), Arc::new(make()), p.rounds as u64);
    Checked::Yes
}

fn run_master_slaves<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    mvar_master_slaves(Arc::new(make()), p.threads, p.rounds);
    Checked::Yes
}

fn run_nested<L: LockApi + 'static>(p: &Params, make: &MakeLock<L>) -> Checked {
    let v = Validator::new(p.lockdep);
    let class = v.class("nested", true);
    nested_locking(
        Arc::new(make(&class)),
        p.threads,
        3.min(p.rounds.max(1)),
        p.rounds.max(1),
    );
    Checked::Yes
}

fn run_logging<L: LockApi + 'static>(p: &Params, make: &MakeLock<L>) -> Checked {
    let v = Validator::new(p.lockdep);
    let sink = Delivered::new();
    let log = Arc::new(reference_log(sink.clone(), &v.class("sysmsg", false)));
    let lock = Arc::new(make(&v.class("odb", true)));
    let msgs = if cfg!(loom) { 2 } else { p.rounds.max(2) };
    logging_under_locks(log, lock, p.threads, msgs, move || sink.texts());
    Checked::Yes
}

fn run_log_inside_sink<G: LogApi + 'static>(p: &Params, make: &MakeLog<G>) -> Checked {
    let v = Validator::new(p.lockdep);
    let sink = Delivered::new();
    let log = Arc::new(make(sink.clone(), &v.class("sysmsg", false)));
    log_inside_sink_lock(log, move || sink.texts());
    Checked::Yes
}

fn run_odb_sysmsg<L: LockApi + 'static>(p: &Params, inverted: bool, make: &MakeLock<L>) -> Checked {
    let v = Validator::new(p.lockdep);
    let odb = Arc::new(make(&v.class("odb", true)));
    let sysmsg = Arc::new(make(&v.class("sysmsg", true)));
    odb_sysmsg(odb, sysmsg, inverted);
    Checked::Yes
}

fn run_exch(p: &Params, f: ExchFn, pairs: &[(usize, usize)]) {
    let v = Validator::new(p.lockdep);
    let class = v.class("bucket", false);
    let n = pairs.iter().map(|&(a, b)| a.max(b)).max().unwrap_or(0) + 1;
    let table: Vec<Mutex<u64>> = (0..n as u64).map(|i| Mutex::tracked(i, &class)).collect();
    exch(f, Arc::new(table), pairs, p.rounds.max(1));
}

/// `lock-nesting-overflow` on the reference lock (which declares no `max_nesting`: skipped) and
/// on [`NarrowCountLock::refusing`], a correct lock that declares 255, so every engine checks
/// the scenario on a lock it applies to.
fn run_nesting_overflow_reference(p: &Params) {
    reference_lock_scenario("lock-nesting-overflow", p);
    let checked = lock_nesting_overflow::run(p, &NarrowCountLock::refusing);
    assert_eq!(checked, Checked::Yes, "lock-nesting-overflow did not run");
}

/// A maker of [`MutantLog`]s with `defect`.
fn mutant_log(defect: LogDefect) -> impl Fn(Delivered, &LockClass) -> MutantLog<Delivered> {
    move |sink, class| MutantLog::new(sink, class, defect)
}
