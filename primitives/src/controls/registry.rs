//! The one registry of negative controls: every deliberately broken variant in the repository,
//! whichever engine runs it — the thread catalogue (the scenario catalogue's `CONTROLS`),
//! the cross-process storm (a [`Flavor`] of the robust MVar, see [`flavor`]), constructor flags
//! of the robust objects, and the fuzz targets' `FUZZ_CONTROL` choices. Every runner looks its
//! controls up here by name; adding a control is one entry here plus its code.

use crate::mvar::Flavor;
use crate::sync::futex::Scope;

/// Where a control runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    /// In one process, on threads: the scenario catalogue (real threads, loom, shuttle,
    /// proptest, the torture runner, the `schedule` fuzz target).
    Thread,
    /// Across processes, with SIGKILLs: the storm and the shared-memory tests.
    Process,
    /// In a fuzz target only (`FUZZ_CONTROL=<name>`).
    Fuzz,
}

/// One negative control: a variant with one seeded defect that the engines in `caught_by` must
/// catch.
#[derive(Clone, Copy, Debug)]
pub struct Control {
    /// Name used on command lines, in `FUZZ_CONTROL` and in regression file names.
    pub name: &'static str,
    /// The seed story it comes from (`"000"`..`"004"`).
    pub story: &'static str,
    /// The defect, in one sentence.
    pub defect: &'static str,
    /// Where it runs.
    pub home: Home,
    /// Engines expected to catch it.
    pub caught_by: &'static [&'static str],
    /// Engines that cannot catch it, and why (empty: none known).
    pub blind_spots: &'static str,
}

const ALL: &[Control] = &[
    Control {
        name: "mvar-wake-before-grant",
        story: "000",
        defect: "lost wake-up: the waiter is woken before its grant is published",
        home: Home::Thread,
        caught_by: &[
            "loom",
            "shuttle",
            "torture",
            "fuzz:mvar_ops",
            "fuzz:schedule",
        ],
        blind_spots: "proptest: sequential, no second thread to lose a wake-up",
    },
    Control {
        name: "mvar-if-not-while",
        story: "000",
        defect: "a waiter sleeps once (`if`, not `while`) and trusts any wake-up",
        home: Home::Thread,
        caught_by: &[
            "loom",
            "shuttle",
            "torture --chaos",
            "fuzz:mvar_ops",
            "fuzz:schedule",
        ],
        blind_spots: "proptest: sequential, never sleeps; torture without --chaos: real futex \
                      waits on a private per-waiter word are almost never woken spuriously",
    },
    Control {
        name: "mvar-one-waiter-class",
        story: "000",
        defect: "an emptied box never serves queued putters: only takers are woken",
        home: Home::Thread,
        caught_by: &[
            "loom",
            "shuttle",
            "torture",
            "fuzz:mvar_ops",
            "fuzz:schedule",
        ],
        blind_spots: "proptest: sequential, a blocked put would block the test itself; try_put \
                      is unaffected",
    },
    // MVar mutants of the declared promises (`controls::mvar_mutants`), one scenario each.
    Control {
        name: "mvar-read-take-put",
        story: "000",
        defect: "read is take then put: the box is empty in between, so a try_put slips in and \
                 a try_read sees nothing (read/swap declared)",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "",
    },
    Control {
        name: "mvar-swap-take-put",
        story: "000",
        defect: "swap is take then put: the box is empty in between, so a try_put slips in and \
                 a try_read sees nothing (read/swap declared)",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "",
    },
    Control {
        name: "mvar-timeout-takes-effect",
        story: "000",
        defect: "a timed put that times out stays queued: the caller gets its value back, yet \
                 the value is stored when the box next empties",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "",
    },
    Control {
        name: "mvar-lifo-waiters",
        story: "000",
        defect: "blocked takers and putters are served most recent first while FIFO is declared",
        home: Home::Thread,
        caught_by: &["shuttle", "torture"],
        blind_spots: "loom: arrival order is not observable under an exhaustive scheduler (a \
                      thread may never run while another yields), so mvar-fifo is skipped there; \
                      shuttle dfs: likewise",
    },
    Control {
        name: "midas-nested-lock",
        story: "001",
        defect: "nested lock counts per process, not per thread: a second thread walks in",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "proptest", "torture", "fuzz:schedule"],
        blind_spots: "",
    },
    Control {
        name: "abba-odb-sysmsg",
        story: "001",
        defect: "the watchdog takes SYSMSG then ODB while cm_msg takes ODB then SYSMSG",
        home: Home::Thread,
        caught_by: &[
            "lockdep",
            "loom",
            "shuttle",
            "proptest",
            "torture",
            "fuzz:schedule",
        ],
        blind_spots: "",
    },
    Control {
        name: "logger-self-deadlock",
        story: "001",
        defect: "unbuffered logger re-takes its own sink lock when called under it",
        home: Home::Thread,
        caught_by: &[
            "lockdep",
            "loom",
            "shuttle",
            "proptest",
            "torture",
            "fuzz:msg_ops",
            "fuzz:schedule",
        ],
        blind_spots: "",
    },
    Control {
        name: "exch-same-bucket",
        story: "004",
        defect: "exch locks bucket a then bucket b; both keys in one bucket lock it twice",
        home: Home::Thread,
        caught_by: &[
            "lockdep",
            "loom",
            "shuttle",
            "proptest",
            "torture",
            "fuzz:schedule",
        ],
        blind_spots: "",
    },
    Control {
        name: "exch-unordered",
        story: "004",
        defect: "exch locks its two buckets in argument order; exch(a,b) against exch(b,a) \
                 deadlocks",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture", "fuzz:schedule"],
        blind_spots: "lockdep: both buckets are one lock class; instance order within a class \
                      is not checked (as in Linux lockdep); proptest: sequential, needs two \
                      concurrent exch calls",
    },
    // Lock and log mutants against the LockApi / LogApi contracts (controls/lock_mutants.rs,
    // controls/log_mutants.rs), each caught by its own scenario of the catalogue.
    Control {
        name: "lock-reused-owner-id",
        story: "001",
        defect: "a reentrant lock identifies its owner by a per-thread slot recycled when the \
                 thread exits (a thread-local's address, Rust issue 123458): a thread spawned \
                 after the owner exited holding the lock is taken for it",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "proptest: not wired into tests/model.rs (its lock model has no thread exit)",
    },
    Control {
        name: "lock-try-waits",
        story: "001",
        defect: "try_lock waits for the holder instead of returning None",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "proptest: not wired into tests/model.rs (sequential: a waiting try_lock \
                      would block the test itself)",
    },
    Control {
        name: "lock-nesting-wraps",
        story: "001",
        defect: "a reentrant lock declares max_nesting 255 but its u8 count wraps to 0 instead \
                 of refusing the 256th level",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "proptest: not wired into tests/model.rs",
    },
    Control {
        name: "log-lost-at-exit",
        story: "001",
        defect: "a buffered log discards what a thread still has staged when the thread exits",
        home: Home::Thread,
        caught_by: &["shuttle", "torture"],
        blind_spots: "loom: join returns before the joined thread's thread-local destructors \
                      run (loom 0.7), so delivery at exit is unobservable and the scenario skips \
                      that part; proptest: not wired into tests/model.rs; any engine: a thread \
                      that exits with nothing staged (every lock released) loses nothing",
    },
    Control {
        name: "log-lost-at-drop",
        story: "001",
        defect: "a buffered log's stage keeps only a weak handle on the log: messages staged \
                 when its last handle is dropped are discarded",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "proptest: not wired into tests/model.rs; any engine: a log dropped with \
                      nothing staged loses nothing",
    },
    Control {
        name: "log-overflow-silent",
        story: "001",
        defect: "a full stage drops messages without counting or announcing them",
        home: Home::Thread,
        caught_by: &["loom", "shuttle", "torture"],
        blind_spots: "proptest: not wired into tests/model.rs; any engine: fewer messages \
                      staged under one lock than the stage holds (1024) lose nothing",
    },
    Control {
        name: "private-futex",
        story: "000",
        defect: "the robust MVar's futex words use FUTEX_PRIVATE in shared memory, so wake-ups \
                 never cross processes",
        home: Home::Process,
        caught_by: &["storm", "bench"],
        blind_spots: "loom, shuttle: one process, where a private futex works; it cannot hang, \
                      every sleep is sliced",
    },
    Control {
        name: "no-recovery",
        story: "000",
        defect: "the robust MVar's lock held by a dead participant is never taken over",
        home: Home::Process,
        caught_by: &["storm", "loom", "shuttle"],
        blind_spots: "",
    },
    Control {
        name: "stale-waiter-count",
        story: "000",
        defect: "a committer waits, holding the lock, for every waiter it counted to acknowledge \
                 its wake-up; a killed waiter never does (glibc BZ 21422's class)",
        home: Home::Process,
        caught_by: &["storm"],
        blind_spots: "without kills it runs clean",
    },
    Control {
        name: "pipe-blocking",
        story: "004",
        defect: "request and response written whole with blocking writes before reading: both \
                 sides block in pipe_write once each message exceeds the pipe buffer",
        home: Home::Process,
        caught_by: &["torture pipe"],
        blind_spots: "messages that fit the pipe buffer, or a single request: nothing blocks",
    },
    Control {
        name: "fork-held-lock",
        story: "002",
        defect: "a lock without fork handling (controls::without_fork_handling): a child forked \
                 while another thread holds a lock or the logger's sink lock sleeps forever on \
                 its first acquisition of it",
        home: Home::Process,
        caught_by: &["torture fork"],
        blind_spots: "a fork while no other thread holds a lock runs clean (with 4 hammer \
                      threads, 20-50% of forks land on a held lock, so the first fork or few \
                      hang); loom and shuttle: no fork in the model engines",
    },
    Control {
        name: "lock-no-recovery",
        story: "001",
        defect: "SharedReentrantLock::without_recovery: a robust lock whose dead owner is never \
                 taken over",
        home: Home::Process,
        caught_by: &["torture locks", "tests/shm_lock"],
        blind_spots: "",
    },
    Control {
        name: "lock-cycle",
        story: "001",
        defect: "three processes take shared locks A->B, B->C and C->A: a lock-order cycle no \
                 single process closes, with the shared lock-order validator on",
        home: Home::Process,
        caught_by: &["lockdep", "locks"],
        blind_spots: "",
    },
    Control {
        name: "lock-cycle-no-lockdep",
        story: "001",
        defect: "the same three-process lock-order cycle with the validator off: it is seen only \
                 once it deadlocks",
        home: Home::Process,
        caught_by: &["locks"],
        blind_spots: "lockdep: switched off by design; the hang detector sees the cycle only \
                      once all three processes wait on it",
    },
    Control {
        name: "ring-private-staging",
        story: "001",
        defect: "SharedLog::with_private_staging: messages staged under a lock live in process \
                 memory, so a killed process loses them (MIDAS's buffered cm_msg)",
        home: Home::Process,
        caught_by: &["tests/shm_ring", "torture churn"],
        blind_spots: "nothing is lost while nobody dies",
    },
    Control {
        name: "churn-stale-handle",
        story: "001",
        defect: "the churn watchdog deletes a dead client by the slot it saw, without checking \
                 the handle's serial: a client registered in that slot since is deleted alive \
                 (MIDAS cm_exist)",
        home: Home::Process,
        caught_by: &["torture churn"],
        blind_spots: "needs clients dying and slots reused between a watchdog's snapshot and its \
                      delete: no deaths (no --kill-rate, no crashes), no race",
    },
    Control {
        name: "churn-abba",
        story: "001",
        defect: "the churn watchdog takes the database lock, then the table lock; clients take \
                 the table lock, then the database lock (MIDAS ODB/SYSMSG)",
        home: Home::Process,
        caught_by: &["torture churn"],
        blind_spots: "with the validator off it is seen only once two processes deadlock on it",
    },
    Control {
        name: "lockdep-off",
        story: "001",
        defect: "the lock-order validator in Off mode: a validator that sees nothing",
        home: Home::Fuzz,
        caught_by: &["fuzz:lock_ops"],
        blind_spots: "",
    },
    Control {
        name: "unvalidated-header",
        story: "000",
        defect: "Segment::open_unchecked: a segment reader that trusts the header's sizes \
                 without the checksum or the file's length",
        home: Home::Fuzz,
        caught_by: &["fuzz:shm_open"],
        blind_spots: "found by chance: a SIGBUS in 1 of 3 60-s runs",
    },
];

/// Every negative control in the repository.
pub static CONTROLS: &[Control] = ALL;

/// The control named `name`, if any.
pub fn find(name: &str) -> Option<&'static Control> {
    CONTROLS.iter().find(|c| c.name == name)
}

/// The control named `name`, at compile time (a missing name fails the build): how the
/// catalogue takes its controls' stories and defects from here.
pub const fn entry(name: &str) -> &'static Control {
    let mut i = 0;
    while i < ALL.len() {
        if same(ALL[i].name, name) {
            return &ALL[i];
        }
        i += 1;
    }
    panic!("no such control in controls::registry")
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The robust MVar's protocol flavour of a cross-process control (`None`: the name is not one,
/// e.g. the reference or a thread control).
pub fn flavor(name: &str) -> Option<Flavor> {
    let r = Flavor::REFERENCE;
    match name {
        "private-futex" => Some(Flavor {
            scope: Scope::Private,
            ..r
        }),
        "no-recovery" => Some(Flavor {
            recover: false,
            ..r
        }),
        "stale-waiter-count" => Some(Flavor {
            wait_for_acks: true,
            ..r
        }),
        _ => None,
    }
}
