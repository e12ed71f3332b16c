//! The catalogue: every scenario instantiated with the reference primitives, and every
//! negative control instantiated with its broken variant — selectable by name, so that loom,
//! shuttle, the torture binary and the detection matrix all run exactly the same code.

use super::*;
use crate::controls::{
    exch_naive, registry, MidasNestedLock, TakersOnly, UnbufferedLog, WaitOnce, WakeBeforeGrant,
};
use crate::lock::{LockClass, ReentrantLock, Validator};
use crate::msg::{Message, MessageLog, MessageSink};
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
        run: |p| run_handoff(p, &reference_mvar::<Reference>),
    },
    Entry {
        name: "mvar-timeouts",
        about: "timed and try operations racing blocking ones; nothing lost",
        run: |p| run_timeouts(p, &reference_mvar::<Reference>),
    },
    Entry {
        name: "mvar-ping-pong",
        about: "two MVars, request/reply",
        run: |p| run_ping_pong(p, &reference_mvar::<Reference>),
    },
    Entry {
        name: "mvar-master-slaves",
        about: "seed 000: master puts, slaves take+put then take",
        run: |p| run_master_slaves(p, &reference_mvar::<Reference>),
    },
    Entry {
        name: "nested-locking",
        about: "reentrant lock, nested, mutual exclusion, validator on",
        run: |p| run_nested(p, &reference_lock),
    },
    Entry {
        name: "logging-under-locks",
        about: "buffered log under and outside locks: once, in order",
        run: |p| run_logging(p, &reference_lock),
    },
    Entry {
        name: "log-inside-sink-lock",
        about: "seed 001: log from code holding the sink lock",
        run: |p| run_log_inside_sink(p, false),
    },
    Entry {
        name: "odb-sysmsg",
        about: "seed 001: ODB and SYSMSG locks in one global order",
        run: |p| run_odb_sysmsg(p, false, &reference_lock),
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
        |p| run_master_slaves(p, &reference_mvar::<WakeBeforeGrant>),
    ),
    registered(
        "mvar-if-not-while",
        &[
            ("proptest", "sequential: never sleeps"),
            ("torture", "without --chaos: real futex waits on a private per-waiter word are almost never woken spuriously"),
        ],
        |p| run_master_slaves(p, &reference_mvar::<WaitOnce>),
    ),
    registered(
        "mvar-one-waiter-class",
        &[("proptest", "sequential: a blocked put would block the test itself; try_put is unaffected")],
        |p| run_master_slaves(p, &reference_mvar::<TakersOnly>),
    ),
    registered(
        "midas-nested-lock",
        &[],
        |p| run_nested(p, &|_| MidasNestedLock::default()),
    ),
    registered(
        "abba-odb-sysmsg",
        &[],
        |p| run_odb_sysmsg(p, true, &reference_lock),
    ),
    registered(
        "logger-self-deadlock",
        &[],
        |p| run_log_inside_sink(p, true),
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

/// Runs the MVar scenario `name` on MVars of `u64` values made by `make` (each call: a new,
/// empty one). `false` if `name` is not an MVar scenario. This is how the catalogue runs on any
/// home of an MVar — the robust one in shared memory too (`tests/robust_catalogue.rs`).
pub fn run_on_mvar<M: MVarApi<u64> + 'static>(
    name: &str,
    p: &Params,
    make: &dyn Fn() -> M,
) -> bool {
    match name {
        "mvar-handoff" => run_handoff(p, make),
        "mvar-timeouts" => run_timeouts(p, make),
        "mvar-ping-pong" => run_ping_pong(p, make),
        "mvar-master-slaves" => run_master_slaves(p, make),
        _ => return false,
    }
    true
}

/// Runs the lock scenario `name` on locks made by `make` (each call: a new, free lock, tracked
/// as the given class). `false` if `name` is not a lock scenario.
pub fn run_on_lock<L: LockApi + 'static>(
    name: &str,
    p: &Params,
    make: &dyn Fn(&LockClass) -> L,
) -> bool {
    match name {
        "nested-locking" => run_nested(p, make),
        "logging-under-locks" => run_logging(p, make),
        "odb-sysmsg" => run_odb_sysmsg(p, false, make),
        _ => return false,
    }
    true
}

fn reference_mvar<P: Policy>() -> MVar<u64, P> {
    MVar::with_policy_empty()
}

fn reference_lock(class: &LockClass) -> ReentrantLock<()> {
    ReentrantLock::tracked((), class)
}

fn run_handoff<M: MVarApi<u64> + 'static>(p: &Params, make: &dyn Fn() -> M) {
    mvar_handoff(Arc::new(make()), p.rounds as u64 + 1);
}

fn run_timeouts<M: MVarApi<u64> + 'static>(p: &Params, make: &dyn Fn() -> M) {
    mvar_timeouts(Arc::new(make()), (p.rounds as u64 + 1).min(3));
}

fn run_ping_pong<M: MVarApi<u64> + 'static>(p: &Params, make: &dyn Fn() -> M) {
    mvar_ping_pong(Arc::new(make()), Arc::new(make()), p.rounds as u64);
}

fn run_master_slaves<M: MVarApi<u64> + 'static>(p: &Params, make: &dyn Fn() -> M) {
    mvar_master_slaves(Arc::new(make()), p.threads, p.rounds);
}

fn run_nested<L: LockApi + 'static>(p: &Params, make: &dyn Fn(&LockClass) -> L) {
    let v = Validator::new(p.lockdep);
    let class = v.class("nested", true);
    nested_locking(
        Arc::new(make(&class)),
        p.threads,
        3.min(p.rounds.max(1)),
        p.rounds.max(1),
    );
}

/// A sink that records texts, shared with the scenario's checker.
struct Texts(Arc<crate::lock::Mutex<Vec<String>>>);
impl MessageSink for Texts {
    fn deliver(&mut self, m: Message) {
        self.0.lock().with_mut(|v| v.push(m.text));
    }
}

fn run_logging<L: LockApi + 'static>(p: &Params, make: &dyn Fn(&LockClass) -> L) {
    let v = Validator::new(p.lockdep);
    let store = Arc::new(crate::lock::Mutex::new(Vec::new()));
    let log = Arc::new(MessageLog::with_class(
        Texts(store.clone()),
        &v.class("sysmsg", false),
    ));
    let lock = Arc::new(make(&v.class("odb", true)));
    let msgs = if cfg!(loom) { 2 } else { p.rounds.max(2) };
    logging_under_locks(log, lock, p.threads, msgs, move || {
        store.lock().with(|v| v.clone())
    });
}

fn run_log_inside_sink(p: &Params, broken: bool) {
    let v = Validator::new(p.lockdep);
    let class = v.class("sysmsg", false);
    let store = Arc::new(crate::lock::Mutex::new(Vec::new()));
    let texts = {
        let s = store.clone();
        move || s.lock().with(|v| v.clone())
    };
    if broken {
        log_inside_sink_lock(
            Arc::new(UnbufferedLog::new(Texts(store.clone()), &class)),
            texts,
        );
    } else {
        log_inside_sink_lock(
            Arc::new(MessageLog::with_class(Texts(store.clone()), &class)),
            texts,
        );
    }
}

fn run_odb_sysmsg<L: LockApi + 'static>(
    p: &Params,
    inverted: bool,
    make: &dyn Fn(&LockClass) -> L,
) {
    let v = Validator::new(p.lockdep);
    let odb = Arc::new(make(&v.class("odb", true)));
    let sysmsg = Arc::new(make(&v.class("sysmsg", true)));
    odb_sysmsg(odb, sysmsg, inverted);
}

fn run_exch(p: &Params, f: ExchFn, pairs: &[(usize, usize)]) {
    let v = Validator::new(p.lockdep);
    let class = v.class("bucket", false);
    let n = pairs.iter().map(|&(a, b)| a.max(b)).max().unwrap_or(0) + 1;
    let table: Vec<Mutex<u64>> = (0..n as u64).map(|i| Mutex::tracked(i, &class)).collect();
    exch(f, Arc::new(table), pairs, p.rounds.max(1));
}
