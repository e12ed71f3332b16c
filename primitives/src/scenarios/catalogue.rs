//! The catalogue: every scenario instantiated with the reference primitives, and every
//! negative control instantiated with its broken variant — selectable by name, so that loom,
//! shuttle, the torture binary and the detection matrix all run exactly the same code.

use super::*;
use crate::controls::{
    exch_naive, MidasNestedLock, TakersOnly, UnbufferedLog, WaitOnce, WakeBeforeGrant,
};
use crate::lock::{ReentrantLock, Validator};
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
        run: |p| run_handoff::<Reference>(p),
    },
    Entry {
        name: "mvar-timeouts",
        about: "timed and try operations racing blocking ones; nothing lost",
        run: |p| run_timeouts::<Reference>(p),
    },
    Entry {
        name: "mvar-ping-pong",
        about: "two MVars, request/reply",
        run: |p| run_ping_pong::<Reference>(p),
    },
    Entry {
        name: "mvar-master-slaves",
        about: "seed 000: master puts, slaves take+put then take",
        run: |p| run_master_slaves::<Reference>(p),
    },
    Entry {
        name: "nested-locking",
        about: "reentrant lock, nested, mutual exclusion, validator on",
        run: run_nested_reference,
    },
    Entry {
        name: "logging-under-locks",
        about: "buffered log under and outside locks: once, in order",
        run: run_logging_reference,
    },
    Entry {
        name: "log-inside-sink-lock",
        about: "seed 001: log from code holding the sink lock",
        run: |p| run_log_inside_sink(p, false),
    },
    Entry {
        name: "odb-sysmsg",
        about: "seed 001: ODB and SYSMSG locks in one global order",
        run: |p| run_odb_sysmsg(p, false),
    },
    Entry {
        name: "exch",
        about: "seed 004: exch over buckets with the ordered multi-lock",
        run: |p| run_exch(p, exch_ordered, &EXCH_MIXED),
    },
];

/// The negative controls.
pub const CONTROLS: &[Control] = &[
    Control {
        name: "mvar-wake-before-grant",
        seed: "000",
        defect: "lost wake-up: the waiter is woken before its grant is published",
        blind_spots: &[("proptest", "sequential: no second thread to lose a wake-up")],
        run: |p| run_master_slaves::<WakeBeforeGrant>(p),
    },
    Control {
        name: "mvar-if-not-while",
        seed: "000",
        defect: "a waiter sleeps once (`if`, not `while`) and trusts any wake-up",
        blind_spots: &[
            ("proptest", "sequential: never sleeps"),
            ("torture", "real futex waits on a private per-waiter word are almost never woken spuriously"),
        ],
        run: |p| run_master_slaves::<WaitOnce>(p),
    },
    Control {
        name: "mvar-one-waiter-class",
        seed: "000",
        defect: "an emptied box never serves queued putters: only takers are woken",
        blind_spots: &[("proptest", "sequential: a blocked put would block the test itself; try_put is unaffected")],
        run: |p| run_master_slaves::<TakersOnly>(p),
    },
    Control {
        name: "midas-nested-lock",
        seed: "001",
        defect: "nested lock counts per process, not per thread: a second thread walks in",
        blind_spots: &[],
        run: run_nested_midas,
    },
    Control {
        name: "abba-odb-sysmsg",
        seed: "001",
        defect: "the watchdog takes SYSMSG then ODB while cm_msg takes ODB then SYSMSG",
        blind_spots: &[],
        run: |p| run_odb_sysmsg(p, true),
    },
    Control {
        name: "logger-self-deadlock",
        seed: "001",
        defect: "unbuffered logger re-takes its own sink lock when called under it",
        blind_spots: &[],
        run: |p| run_log_inside_sink(p, true),
    },
    Control {
        name: "exch-same-bucket",
        seed: "004",
        defect: "exch locks bucket a then bucket b; both keys in one bucket lock it twice",
        blind_spots: &[],
        run: |p| run_exch(p, exch_naive, &EXCH_SAME),
    },
    Control {
        name: "exch-unordered",
        seed: "004",
        defect: "exch locks its two buckets in argument order; exch(a,b) against exch(b,a) deadlocks",
        blind_spots: &[
            ("lockdep", "both buckets are one lock class; instance order within a class is not checked (as in Linux lockdep)"),
            ("proptest", "sequential: needs two concurrent exch calls"),
        ],
        run: |p| run_exch(p, exch_naive, &EXCH_CROSSED),
    },
];

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

fn run_handoff<P: Policy>(p: &Params) {
    mvar_handoff(
        Arc::new(MVar::<u64, P>::with_policy_empty()),
        p.rounds as u64 + 1,
    );
}

fn run_timeouts<P: Policy>(p: &Params) {
    mvar_timeouts(
        Arc::new(MVar::<u64, P>::with_policy_empty()),
        (p.rounds as u64 + 1).min(3),
    );
}

fn run_ping_pong<P: Policy>(p: &Params) {
    mvar_ping_pong(
        Arc::new(MVar::<u64, P>::with_policy_empty()),
        Arc::new(MVar::<u64, P>::with_policy_empty()),
        p.rounds as u64,
    );
}

fn run_master_slaves<P: Policy>(p: &Params) {
    mvar_master_slaves(
        Arc::new(MVar::<u64, P>::with_policy_empty()),
        p.threads,
        p.rounds,
    );
}

fn run_nested_reference(p: &Params) {
    let v = Validator::new(p.lockdep);
    let class = v.class("nested", true);
    nested_locking(
        Arc::new(ReentrantLock::tracked((), &class)),
        p.threads,
        3.min(p.rounds.max(1)),
        p.rounds.max(1),
    );
}

fn run_nested_midas(p: &Params) {
    nested_locking(
        Arc::new(MidasNestedLock::default()),
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

fn run_logging_reference(p: &Params) {
    let v = Validator::new(p.lockdep);
    let store = Arc::new(crate::lock::Mutex::new(Vec::new()));
    let log = Arc::new(MessageLog::with_class(
        Texts(store.clone()),
        &v.class("sysmsg", false),
    ));
    let lock = Arc::new(ReentrantLock::tracked((), &v.class("odb", true)));
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

fn run_odb_sysmsg(p: &Params, inverted: bool) {
    let v = Validator::new(p.lockdep);
    let odb = Arc::new(ReentrantLock::tracked((), &v.class("odb", true)));
    let sysmsg = Arc::new(ReentrantLock::tracked((), &v.class("sysmsg", true)));
    odb_sysmsg(odb, sysmsg, inverted);
}

fn run_exch(p: &Params, f: ExchFn, pairs: &[(usize, usize)]) {
    let v = Validator::new(p.lockdep);
    let class = v.class("bucket", false);
    let n = pairs.iter().map(|&(a, b)| a.max(b)).max().unwrap_or(0) + 1;
    let table: Vec<Mutex<u64>> = (0..n as u64).map(|i| Mutex::tracked(i, &class)).collect();
    exch(f, Arc::new(table), pairs, p.rounds.max(1));
}
